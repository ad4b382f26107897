// Package dataversetest is a simulator of the Dataverse Web API for tests and for `connector sandbox`. It
// keeps tables in memory and speaks the subset of OData the connector uses with Dataverse's own semantics
// and error shapes: tables and columns from a schema (unknown ones are refused), GUID ids, ETags that change
// on every write, If-Match / If-None-Match, alternate keys, $select, $filter, $orderby, $top, paging with
// odata.maxpagesize and @odata.nextLink, $batch with atomic change sets and continue-on-error, the
// metadata calls of the installer, and WhoAmI.
//
// Writes raise events as in Dataverse: service endpoints, steps and images registered through the Web
// API (serviceendpoints, sdkmessageprocessingsteps, sdkmessageprocessingstepimages) make the simulator
// post a RemoteExecutionContext to webhooks, or hand it to Options.ServiceBusDelivery, after each Create,
// Update or Delete it commits (events.go, delivery.go). The MSCRMCallerID header impersonates a user.
//
// It also misbehaves on request: injected faults (429 with Retry-After, 5xx, latency, dropped
// connections), per-user service protection limits modelled on Dataverse's (requests and combined
// execution time per sliding window, a $batch counting as one request; concurrent requests), and a
// request log tests assert on.
//
// NewServer starts it on a loopback port, like httptest.NewServer; InMemoryClient reaches it without a
// socket, which lets tests run it inside testing/synctest.
package dataversetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/internal/simhttp"
)

// Options configures a simulator.
type Options struct {
	// Tables are created at start, in addition to the built-in system tables (publisher, solution,
	// systemuser, team, and the event registration tables serviceendpoint, sdkmessage, sdkmessagefilter,
	// sdkmessageprocessingstep, sdkmessageprocessingstepimage). A table declared here with a built-in
	// name adds its columns to the built-in one.
	Tables []dataverse.Table
	// Addr is the loopback address to listen on ("127.0.0.1:0" if empty).
	Addr string
	// UserID, BusinessUnitID and OrganizationID are what WhoAmI returns; zero values are generated.
	UserID, BusinessUnitID, OrganizationID dataverse.GUID
	// Now is the simulator's clock; nil means time.Now.
	Now func() time.Time
	// MaxPageSize caps page sizes (Dataverse: 5000).
	MaxPageSize int
	// Limits are the service protection limits (protection.go); the zero value disables them.
	Limits Limits
	// DOPHint, when positive, is sent as x-ms-dop-hint on every response.
	DOPHint int
	// OrganizationName is the environment's unique name in events ("unq" and the organization id in hex
	// if empty, the shape of real unique names).
	OrganizationName string
	// WebhookClient posts events to webhook endpoints; nil uses a client of the simulator's own.
	WebhookClient *http.Client
	// ServiceBusDelivery receives the events of Service Bus endpoints; nil fails them ("no Service Bus in
	// the simulator").
	ServiceBusDelivery ServiceBusDelivery
}

// Fault is a misbehaviour to inject into matching requests.
type Fault struct {
	// Method and Path select requests: an empty Method matches every method, Path is a substring of the
	// path below /api/data/v9.2/ ("" matches all; "$batch" matches batches).
	Method string
	Path   string
	// Status is the HTTP status to answer with instead of serving the request (429, 500, 503, …); zero
	// serves it normally (for Latency alone).
	Status int
	// Code and Message go in the error body; they default to Dataverse's for the status.
	Code, Message string
	// RetryAfter is sent as the Retry-After header (whole seconds).
	RetryAfter time.Duration
	// Latency delays the answer.
	Latency time.Duration
	// Drop closes the connection without answering.
	Drop bool
	// Times is how many matching requests the fault applies to; zero means until ClearFaults.
	Times int
	// InBatch applies the fault to the operations inside a $batch (matched by their own method and path)
	// instead of to whole requests: the operation answers with Status and the batch goes on as Dataverse
	// does (stopping unless continue-on-error). Latency and Drop do not apply.
	InBatch bool
}

// Request is one entry of the request log.
type Request struct {
	Method string
	// Path is below /api/data/v9.2/, unescaped.
	Path  string
	Query string
	// Status is the answer's HTTP status.
	Status int
	// InBatch marks an operation that arrived inside a $batch; the $batch itself is logged too, with
	// Operations set.
	InBatch    bool
	Operations int
	User       string
	// ExecutionTime is what the request added to its user's combined execution time (protection.go):
	// zero for operations inside a $batch (the $batch carries their sum) and for refused requests.
	ExecutionTime time.Duration
	// At is when the request arrived, on the server's clock.
	At time.Time
}

// IsWrite reports a request that changes data or metadata. A $batch envelope is not itself a write: its
// operations are logged one by one.
func (r Request) IsWrite() bool {
	return r.Method != http.MethodGet && r.Path != "$batch"
}

// Server is a running simulator.
type Server struct {
	// URL is the organization URL (http://127.0.0.1:port), the value for DATAVERSE_URL.
	URL string

	httpServer *httptest.Server
	opts       Options
	now        func() time.Time

	mu      sync.Mutex // guards the store
	tables  map[string]*table
	sets    map[string]*table
	version int64
	sec     securityState // roles' privileges, privileges used (security.go)

	events *deliveryBus
	// published is the published layer of app modules, sitemaps and app settings (appmodule.go).
	published publishedLayer

	faults simhttp.Faults[Fault]
	log    simhttp.Log[Request]

	ctl   sync.Mutex // guards everything below
	usage map[string]*usage
}

// NewServer starts a simulator on a loopback address. Close it when done.
func NewServer(opts Options) (*Server, error) {
	s := New(opts)
	hs, err := simhttp.Start("dataversetest", s, opts.Addr)
	if err != nil {
		return nil, err
	}
	s.httpServer = hs
	s.URL = hs.URL
	return s, nil
}

// New returns a simulator that is not listening: serve it with ServeHTTP or reach it with InMemoryClient.
func New(opts Options) *Server {
	s := &Server{opts: opts, now: opts.Now, tables: map[string]*table{}, sets: map[string]*table{}, usage: map[string]*usage{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.MaxPageSize <= 0 {
		s.opts.MaxPageSize = 5000
	}
	for _, id := range []*dataverse.GUID{&s.opts.UserID, &s.opts.BusinessUnitID, &s.opts.OrganizationID} {
		if *id == (dataverse.GUID{}) {
			*id = uuid.New()
		}
	}
	if s.opts.OrganizationName == "" {
		s.opts.OrganizationName = "unq" + strings.ReplaceAll(s.opts.OrganizationID.String(), "-", "")
	}
	for _, t := range slices.Concat(systemTables(), registrationTables(), formTables(), securityTables(), []dataverse.Table{solutionComponentTable(), appModuleRolesTable()}) {
		s.addTable(t)
	}
	s.addAppModules()
	for _, t := range commandTables() {
		s.addTable(t)
	}
	for _, t := range opts.Tables {
		s.addTable(t)
	}
	s.seedMessages()
	s.seedSecurity()
	s.events = newDeliveryBus(s.opts)
	s.mustInsert("systemuser", map[string]any{
		"systemuserid": s.opts.UserID.String(), "fullname": "# CSP Connector (application user)", "isdisabled": false,
	})
	return s
}

// Close stops the listener and waits for requests in flight, then stops event delivery: posts in flight
// are abandoned and events still waiting fail.
func (s *Server) Close() {
	if s.httpServer != nil {
		s.httpServer.Close()
	}
	s.events.close()
}

// Client returns an HTTP client for the loopback listener.
func (s *Server) Client() *http.Client {
	if s.httpServer == nil {
		return s.InMemoryClient()
	}
	return s.httpServer.Client()
}

// InMemoryClient returns an HTTP client that calls the simulator directly, without a socket. Injected
// latency then sleeps on the caller's clock, so tests can run inside testing/synctest. A request whose
// context ends while it is served gets the context's error, as on a socket.
func (s *Server) InMemoryClient() *http.Client {
	return &http.Client{Transport: simhttp.Transport{Name: "dataversetest", Handler: s}}
}

// UserID is the application user's id (what WhoAmI returns).
func (s *Server) UserID() dataverse.GUID { return s.opts.UserID }

// OrganizationID is the environment's id.
func (s *Server) OrganizationID() dataverse.GUID { return s.opts.OrganizationID }

// Inject adds a fault.
func (s *Server) Inject(f Fault) { s.faults.Inject(f) }

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// SetLatency delays every answer by d (the network and server time of a real environment).
func (s *Server) SetLatency(d time.Duration) { s.faults.SetLatency(d) }

// SetLimits changes the service protection limits.
func (s *Server) SetLimits(l Limits) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	s.opts.Limits = l
	s.usage = map[string]*usage{}
}

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request { return s.log.Entries() }

// ResetRequests empties the request log.
func (s *Server) ResetRequests() { s.log.Reset() }

// fault returns the first injected fault matching the request, consuming one of its uses.
func (s *Server) fault(method, path string) (Fault, time.Duration, bool) {
	return s.matchFault(method, path, false)
}

// matchFault finds the first fault of the kind (whole request, or operation inside a batch) that matches.
func (s *Server) matchFault(method, path string, inBatch bool) (Fault, time.Duration, bool) {
	return s.faults.Take(func(f *Fault) bool {
		return f.InBatch == inBatch && (f.Method == "" || f.Method == method) && strings.Contains(path, f.Path)
	}, func(f *Fault) *int { return &f.Times })
}

// apiError is an answer in Dataverse's error shape.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
}

func (e *apiError) write(w http.ResponseWriter) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]any{"code": e.code, "message": e.message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func defaultFaultError(f Fault) *apiError {
	e := &apiError{status: f.Status, code: f.Code, message: f.Message, retryAfter: f.RetryAfter}
	if e.message == "" {
		switch f.Status {
		case http.StatusTooManyRequests:
			e.code, e.message = dataverse.CodeThrottledRequests, "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
		default:
			e.message = http.StatusText(f.Status)
		}
	}
	return e
}

// ServeHTTP serves the Web API under /api/data/v9.2/, and the app's web resources and sandbox page (serveApp).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveApp(w, r) {
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, dataverse.APIPath)
	if !ok && r.URL.Path+"/" == dataverse.APIPath {
		path, ok = "", true
	}
	if !ok {
		if s.servePages(w, r) { // the app pages (pages.go)
			return
		}
		(&apiError{status: 404, message: "No HTTP resource was found that matches the request URI '" + r.URL.String() + "'."}).write(w)
		return
	}
	user := userOf(r)
	entry := Request{Method: r.Method, Path: path, Query: r.URL.RawQuery, User: user, At: s.now()}
	rw := &simhttp.StatusWriter{ResponseWriter: w, Status: http.StatusOK}
	defer func() {
		entry.Status = rw.Status
		s.log.Record(entry)
	}()
	if s.opts.DOPHint > 0 {
		w.Header().Set("x-ms-dop-hint", strconv.Itoa(s.opts.DOPHint))
	}
	w.Header().Set("x-ms-service-request-id", uuid.NewString())

	f, latency, faulted := s.fault(r.Method, path)
	if faulted && f.Latency > 0 {
		latency += f.Latency
	}
	if faulted && (f.Drop || f.Status != 0) {
		if !simhttp.Pause(r.Context(), latency) {
			rw.Status = 499
			return
		}
		if f.Drop {
			rw.Status = 0
			panic(http.ErrAbortHandler)
		}
		defaultFaultError(f).write(rw)
		return
	}
	if r.Body == nil {
		r.Body = http.NoBody // a handler called directly, not through a server
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, 64<<20))
	if err != nil {
		(&apiError{status: http.StatusRequestEntityTooLarge, code: "0x8004418a", message: "Request length exceeds the limit."}).write(rw)
		return
	}
	if path == "$batch" && r.Method == http.MethodPost {
		s.serveBatch(rw, r, body, user, &entry, latency)
		return
	}
	// Admission comes before the latency: a request is in flight, and counts against the concurrency
	// limit, for as long as it takes.
	release, refused := s.admit(user)
	if refused != nil {
		refused.write(rw)
		return
	}
	var spent time.Duration
	defer func() { entry.ExecutionTime = spent; release(spent) }()
	if !simhttp.Pause(r.Context(), latency) {
		rw.Status = 499
		return
	}
	spent = latency
	s.mu.Lock()
	var changes []change
	o := op{method: r.Method, path: path, query: r.URL.Query(), header: r.Header, body: body, host: r.Host, changes: &changes}
	res := s.dispatch(o, nil)
	s.raise(changes, uuid.NewString())
	s.mu.Unlock()
	cost := s.cost(o, res)
	if !simhttp.Pause(r.Context(), cost) {
		rw.Status = 499
		return
	}
	spent += cost
	res.write(rw)
}

// userOf identifies the caller for the service protection limits: one user per bearer token.
func userOf(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "anonymous"
	}
	sum := 0
	for _, c := range auth {
		sum = sum*31 + int(c)
	}
	return "token-" + strconv.Itoa(sum&0xffffff)
}

// errNotFound is a missing table segment.
func segmentNotFound(segment string) *apiError {
	return &apiError{status: 404, code: dataverse.CodeResourceNotFoundForSegment, message: fmt.Sprintf("Resource not found for the segment '%s'.", segment)}
}
