// Package partnercentertest is a simulator of the Microsoft Partner Center REST API, for tests and for
// `connector sandbox`. It keeps one partner's customers, agreements, enhanced MCA attestations,
// subscriptions, carts and orders in memory and answers with Partner Center's shapes and rules: JSON bodies
// that start with a byte-order mark, the three error shapes (standard, agreements, throttling), app-only
// and app+user tokens from its own Entra-like token endpoint with refresh-token rotation, seek paging of
// customers through links.next and MS-ContinuationToken, agreement metadata defaults, ETags on
// subscriptions, the new-commerce refund window for seat decreases and cancellation, carts that check out
// once, MCA enforcement at checkout, the integration sandbox's caps, MS-RequestId idempotency and
// Partner Center's published rate limit of 500 requests per minute per tenant.
//
// It also misbehaves on request: injected faults (any status, Retry-After, latency, dropped connections),
// updates answered 202 Accepted, and a request log tests assert on. A person plays the customer through
// AcceptAttestation, ExpireAttestation and SetDirectSigned.
//
// NewServer starts it on a loopback port, like httptest.NewServer; InMemoryClient reaches it without a
// socket, which lets tests run it inside testing/synctest, where latency, token expiry, refund windows and
// the rate window all follow the bubble's fake clock.
//
// Where Microsoft's documentation is silent (the enhanced attestation wire shape, several error codes, the
// attestation lifetime), the simulator's choice is marked as inferred next to the code that makes it.
package partnercentertest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/internal/simhttp"
)

// APIPath is the prefix of every Partner Center REST path.
const APIPath = "/v1/"

// contractVersion is the MS-Contract-Version value Partner Center's REST headers document.
const contractVersion = "v1"

// inMemoryURL is the base URL of a simulator that is not listening. The .test top-level domain never
// resolves (RFC 2606), so only InMemoryClient reaches it.
const inMemoryURL = "http://partnercenter.test"

// Defaults, from Partner Center's documentation unless marked.
const (
	defaultRequestsPerMinute = 500 // "500 requests per minute per tenant identifier" (customer and subscription resources)
	defaultMaxPageSize       = 500
	defaultRefundWindow      = 168 * time.Hour // new commerce: seven days after purchase or seat addition
	// DefaultAttestationTTL is how long an acceptance link lives unless Options.AttestationTTL says
	// otherwise. Microsoft does not publish it; the peers that do cap theirs at seven days (CloudCockpit's
	// API takes a link lifetime of 5 to 10080 minutes), so the simulator uses that.
	DefaultAttestationTTL = 7 * 24 * time.Hour
	sandboxMaxCustomers   = 75
	sandboxMaxSubs        = 5
	sandboxMaxSeats       = 25
)

// Options configures a simulator.
type Options struct {
	// Addr is the loopback address to listen on ("127.0.0.1:0" if empty). A non-loopback address is an
	// error: the simulator accepts tokens it issued itself and must not be reachable from elsewhere.
	Addr string
	// PartnerTenantID is the partner's Entra tenant; empty means generated.
	PartnerTenantID string
	// ClientID and ClientSecret are the one app registration the token endpoint accepts; empty means
	// generated.
	ClientID, ClientSecret string
	// Now is the simulator's clock (refund windows, attestation expiry, token expiry, the rate window);
	// nil means time.Now.
	Now func() time.Time
	// RateLimit is the per-tenant limit; the zero value is Partner Center's published 500 requests per
	// minute.
	RateLimit Limit
	// DisableRateLimit turns the rate limit off.
	DisableRateLimit bool
	// SandboxCaps applies the integration sandbox's limits: 75 customers, 5 subscriptions per customer, 25
	// seats per subscription.
	SandboxCaps bool
	// AuthOptional accepts requests without an Authorization header, as if they carried whichever token
	// the operation needs (for PARTNERCENTER_AUTH=none against a loopback simulator). A header that is
	// present is still checked.
	AuthOptional bool
	// RequireContractVersion refuses (400) an API request without MS-Contract-Version: v1. Partner Center's
	// REST headers list the header as required, but the .NET SDK never sends it and works, so the service
	// evidently does not enforce it; by default the simulator only records it (Request.ContractVersion).
	RequireContractVersion bool
	// MaxPageSize caps the customers page size; 0 means 500.
	MaxPageSize int
	// AttestationTTL is how long an enhanced attestation link stays acceptable; 0 means
	// DefaultAttestationTTL, seven days (Microsoft does not publish a lifetime; peers cap theirs at seven
	// days). Past it a pending attestation reads Expired and cannot be accepted or finalized.
	AttestationTTL time.Duration
	// OnAttestation, when set, is called (on its own goroutine) with each new attestation and its
	// signatory's e-mail: the sandbox plays the customer with it (AcceptAttestation, ExpireAttestation).
	OnAttestation func(attestationID, signatoryEmail string)
}

// Limit is a rate limit: Requests admitted per sliding Window.
type Limit struct {
	Requests int
	Window   time.Duration
}

// Fault is a misbehaviour to inject into matching requests. A fault with a Status or Drop answers before
// authentication and handling, so it never changes anything and is not counted by the rate limit; a fault
// with Latency alone delays a request that is then served normally.
type Fault struct {
	// Method and Path select requests: an empty Method matches every method; Path is a substring of the
	// path below /v1/ ("" matches every API request). The token endpoint is matched only by a non-empty
	// Path that occurs in its path ("oauth2" or "token"), so a catch-all fault leaves tokens alone.
	Method string
	Path   string
	// Status is the HTTP status to answer with instead of serving the request; zero serves it normally
	// (for Latency alone).
	Status int
	// Code and Description go in the standard error body; they default to a generic code for the status.
	// A 429 without Code is answered in the throttling shape.
	Code        int
	Description string
	// RetryAfter is sent as Retry-After (whole seconds, rounded up).
	RetryAfter time.Duration
	// Latency delays the answer.
	Latency time.Duration
	// Drop closes the connection without answering (a transport error for InMemoryClient).
	Drop bool
	// Times is how many matching requests the fault applies to; zero means until ClearFaults.
	Times int
	// After serves the first After matching requests normally (the third page of a list fails: After 2).
	After int
}

// Request is one entry of the request log. Token requests are not logged (see TokenRequests).
type Request struct {
	Method string
	// Path is below /v1/, unescaped, without a trailing slash; a request outside /v1/ keeps its leading
	// slash (so a client that dropped /v1 shows up as "/customers").
	Path  string
	Query string
	// Status is the answer's HTTP status (0 for a dropped connection, 499 when the client gave up before
	// a read was served).
	Status int
	// Tenant is the customer tenant in the path, or "partner" for partner-level calls; it is the key of
	// the rate limit.
	Tenant string
	// AppUser reports an app+user token (or no token under AuthOptional); false is app-only or none.
	AppUser bool
	// RequestID and CorrelationID are the MS-RequestId and MS-CorrelationId the client sent, or the ones
	// generated for it.
	RequestID, CorrelationID string
	// ContractVersion is the MS-Contract-Version the client sent ("" when it sent none).
	ContractVersion string
	// Replayed marks a write answered from the idempotency store (same MS-RequestId as an earlier one).
	Replayed bool
}

// Server is a simulator.
type Server struct {
	// URL is the base URL (http://127.0.0.1:port); the API is under URL + "/v1". A simulator made with New
	// has the placeholder http://partnercenter.test, reachable only through InMemoryClient.
	URL string

	httpServer *httptest.Server
	routes     []*route
	opts       Options
	now        func() time.Time
	pagingKey  []byte // signs customer continuation tokens
	// partnerUserID is the partner user whose consent NewRefreshToken stands for; agreements created with
	// app+user tokens carry it as userId.
	partnerUserID string

	mu            sync.Mutex // guards the partner's data below
	customers     map[string]*customer
	customerOrder []*customer
	attestations  map[string]*attestation
	attestOrder   []*attestation
	asyncUpdates  int

	faults simhttp.Faults[Fault]
	log    simhttp.Log[Request]

	ctl      sync.Mutex             // guards everything below
	windows  map[string][]time.Time // admitted request times per tenant, oldest first
	replays  map[string]*storedResponse
	replayQ  []string // replay keys, oldest first, to bound the store
	access   map[string]*accessToken
	refresh  map[string]*refreshToken
	codes    map[string]*authCode // authorization codes issued by the authorize endpoint
	tokenReq int
}

// NewServer starts a simulator on a loopback address. Close it when done.
func NewServer(opts Options) (*Server, error) {
	s := New(opts)
	hs, err := simhttp.Start("partnercentertest", s, opts.Addr)
	if err != nil {
		return nil, err
	}
	s.httpServer = hs
	s.URL = hs.URL
	return s, nil
}

// New returns a simulator that is not listening: serve it with ServeHTTP or reach it with InMemoryClient.
func New(opts Options) *Server {
	s := &Server{
		URL: inMemoryURL, opts: opts, now: opts.Now, pagingKey: randomBytes(32), partnerUserID: uuid.NewString(),
		customers: map[string]*customer{}, attestations: map[string]*attestation{},
		windows: map[string][]time.Time{}, replays: map[string]*storedResponse{},
		access: map[string]*accessToken{}, refresh: map[string]*refreshToken{}, codes: map[string]*authCode{},
	}
	s.routes = routes()
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.PartnerTenantID == "" {
		s.opts.PartnerTenantID = uuid.NewString()
	}
	if s.opts.ClientID == "" {
		s.opts.ClientID = uuid.NewString()
	}
	if s.opts.ClientSecret == "" {
		s.opts.ClientSecret = randomToken(30)
	}
	if s.opts.RateLimit.Requests <= 0 || s.opts.RateLimit.Window <= 0 {
		s.opts.RateLimit = Limit{Requests: defaultRequestsPerMinute, Window: time.Minute}
	}
	if s.opts.MaxPageSize <= 0 {
		s.opts.MaxPageSize = defaultMaxPageSize
	}
	if s.opts.AttestationTTL <= 0 {
		s.opts.AttestationTTL = DefaultAttestationTTL
	}
	return s
}

// Close stops the listener and waits for requests in flight.
func (s *Server) Close() {
	if s.httpServer != nil {
		s.httpServer.Close()
	}
}

// Client returns an HTTP client for the loopback listener, or InMemoryClient when not listening.
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
	return &http.Client{Transport: simhttp.Transport{Name: "partnercentertest", Handler: s}}
}

// PartnerTenantID is the partner's tenant id (the token endpoint's tenant).
func (s *Server) PartnerTenantID() string { return s.opts.PartnerTenantID }

// ClientID is the app registration's client id the token endpoint accepts.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret is the app registration's secret the token endpoint accepts.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// PartnerUserID is the object id of the partner user behind NewRefreshToken; agreements created with
// app+user tokens carry it as userId.
func (s *Server) PartnerUserID() string { return s.partnerUserID }

// Inject adds a fault.
func (s *Server) Inject(f Fault) { s.faults.Inject(f) }

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// SetLatency delays every API answer by d (the network and server time of the real service). A read the
// client gives up on during the wait is not served; a write is carried out anyway (see ServeHTTP).
func (s *Server) SetLatency(d time.Duration) { s.faults.SetLatency(d) }

// SetRateLimit replaces the per-tenant rate limit and forgets the requests counted so far. A zero Limit
// restores Partner Center's 500 per minute.
func (s *Server) SetRateLimit(l Limit) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if l.Requests <= 0 || l.Window <= 0 {
		l = Limit{Requests: defaultRequestsPerMinute, Window: time.Minute}
	}
	s.opts.RateLimit = l
	s.windows = map[string][]time.Time{}
}

// SetAsyncUpdates makes the next n successful subscription PATCHes answer 202 Accepted with a Location
// header instead of 200. The change is applied at once, but the first GET of that subscription afterwards
// still shows the state from before it (the update "has not landed yet"); later GETs show the new state.
// Until that first GET, further PATCHes of the subscription answer 409 with code 800082.
func (s *Server) SetAsyncUpdates(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asyncUpdates = max(n, 0)
}

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request { return s.log.Entries() }

// ResetRequests empties the request log.
func (s *Server) ResetRequests() { s.log.Reset() }

// fault returns the first injected fault matching the request, consuming one of its uses, and the
// latency to add.
func (s *Server) fault(method, path string, token bool) (Fault, time.Duration, bool) {
	return s.faults.Take(func(f *Fault) bool {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			return false
		}
		if !strings.Contains(path, f.Path) || (token && f.Path == "") {
			return false
		}
		if f.After > 0 {
			f.After--
			return false
		}
		return true
	}, func(f *Fault) *int { return &f.Times })
}

func faultError(f Fault) *apiError {
	if f.Status == http.StatusTooManyRequests && f.Code == 0 {
		e := throttled(f.RetryAfter)
		if f.RetryAfter <= 0 {
			e.retryAfter = 0 // no header: tests of clients that must cope without one
		}
		return e
	}
	e := &apiError{status: f.Status, code: f.Code, description: f.Description, retryAfter: f.RetryAfter}
	if e.code == 0 {
		switch {
		case f.Status == http.StatusUnauthorized:
			e.code = CodeTokenMissing
		case f.Status == http.StatusNotFound:
			e.code = CodeNotFound
		case f.Status >= 500:
			e.code = 800003 // Unexpected service error
		default:
			e.code = CodeInvalidInput
		}
	}
	if e.description == "" {
		e.description = http.StatusText(f.Status)
	}
	return e
}

// ServeHTTP serves the token endpoint (/{tenant}/oauth2/v2.0/token, and the older /{tenant}/oauth2/token)
// and the API under /v1/. An API request meets, in order: the injected faults, the bearer token (401), the
// route (404, 405), the token kind the operation takes (403), the per-tenant rate limit (429), for a write
// the MS-RequestId idempotency store, then the latency and the handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil {
		r.Body = http.NoBody // a handler called directly, not through a server
	}
	requestID := r.Header.Get("MS-RequestId")
	if requestID == "" {
		requestID = uuid.NewString()
	}
	correlationID := r.Header.Get("MS-CorrelationId")
	if correlationID == "" {
		correlationID = uuid.NewString()
	}
	h := w.Header()
	h.Set("MS-RequestId", requestID)
	h.Set("MS-CorrelationId", correlationID)
	h.Set("MS-CV", randomToken(12)+".0")
	h.Set("MS-ServerId", "partnercentertest")

	if tenant, ok := tokenPath(r.URL.Path); ok {
		s.serveTokenRequest(w, r, tenant)
		return
	}
	if tenant, ok := authorizePath(r.URL.Path); ok {
		s.serveAuthorize(w, r, tenant)
		return
	}

	path, inAPI := strings.CutPrefix(r.URL.Path, APIPath)
	if !inAPI {
		path = r.URL.Path
	}
	path = strings.TrimSuffix(path, "/")
	entry := Request{Method: r.Method, Path: path, Query: r.URL.RawQuery, Tenant: tenantOf(path), RequestID: requestID, CorrelationID: correlationID,
		ContractVersion: r.Header.Get("MS-Contract-Version")}
	recorded := false
	rw := &simhttp.StatusWriter{ResponseWriter: w, Status: http.StatusOK}
	rw.OnHeader = func(status int) { entry.Status, recorded = status, true; s.log.Record(entry) }
	defer func() {
		if !recorded { // no answer was written: a dropped connection or a client that gave up
			entry.Status = rw.Status
			s.log.Record(entry)
		}
	}()

	f, latency, faulted := s.fault(r.Method, path, false)
	if faulted {
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
		faultError(f).result().write(rw)
		return
	}

	who, authErr := s.authenticate(r)
	entry.AppUser = who.appUser()
	if authErr != nil {
		authErr.result().write(rw)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, 4<<20))
	if err != nil {
		newError(http.StatusRequestEntityTooLarge, CodeInvalidInput, "The request body is too large.").result().write(rw)
		return
	}
	if !inAPI {
		s.notFound(r.URL.Path).result().write(rw)
		return
	}
	if s.opts.RequireContractVersion && !strings.EqualFold(entry.ContractVersion, contractVersion) {
		invalidInput("The MS-Contract-Version header must be %s; the request had %q.", contractVersion, entry.ContractVersion).result().write(rw)
		return
	}
	o := &op{method: r.Method, path: path, segments: strings.Split(path, "/"), query: r.URL.Query(), header: r.Header, body: body, who: who}
	rt, e := s.match(o)
	if e != nil {
		e.result().write(rw)
		return
	}
	if e := who.allows(rt.need(o)); e != nil {
		e.result().write(rw)
		return
	}
	if e := s.admit(entry.Tenant); e != nil {
		e.result().write(rw)
		return
	}

	if r.Method == http.MethodGet {
		if !simhttp.Pause(r.Context(), latency) {
			rw.Status = 499
			return
		}
		s.mu.Lock()
		res := rt.handle(s, o)
		s.mu.Unlock()
		res.write(rw)
		return
	}

	// A write is idempotent by MS-RequestId: a repeat is answered from the store instead of acting twice.
	key := r.Method + " " + path + " " + requestID
	stored, inFlight := s.claim(key)
	switch {
	case stored != nil:
		entry.Replayed = true
		stored.write(rw)
		return
	case inFlight:
		code := CodeOrderInProgress
		if rt.begin != nil {
			code = CodeCartBeingProcessed
		}
		newError(http.StatusConflict, code, "A request with MS-RequestId %s is still being processed. Check its outcome in a few moments.", requestID).result().write(rw)
		return
	}
	res := s.serveWrite(r.Context(), rt, o, latency)
	s.settle(key, res)
	res.write(rw)
}

// serveWrite carries out a write. A write that reached the service is carried out even when the client
// gives up while waiting for the answer (the latency ends early then): that is the situation MS-RequestId
// exists for, and a client that timed out must retry with the same id. A route with a begin step (cart
// checkout) marks its resource busy before the latency, so a concurrent request can see it.
func (s *Server) serveWrite(ctx context.Context, rt *route, o *op, latency time.Duration) result {
	if rt.begin != nil {
		s.mu.Lock()
		early := rt.begin(s, o)
		s.mu.Unlock()
		if early != nil {
			return *early
		}
	}
	simhttp.Pause(ctx, latency)
	s.mu.Lock()
	defer s.mu.Unlock()
	return rt.handle(s, o)
}

func (s *Server) notFound(path string) *apiError {
	return newError(http.StatusNotFound, CodeNotFound, "No HTTP resource was found that matches the request URI '%s'.", path)
}

// tenantOf names the tenant a path is about, the key of the rate limit: the customer tenant for
// customers/{id}/…, "partner" for partner-level calls.
func tenantOf(path string) string {
	seg := strings.Split(path, "/")
	if len(seg) >= 2 && strings.EqualFold(seg[0], "customers") && !strings.EqualFold(seg[1], "relationshiprequests") && seg[1] != "" {
		return strings.ToLower(seg[1])
	}
	return "partner"
}

// admit applies the per-tenant rate limit: a sliding window of admitted requests. Refused requests are
// not counted, so a client that backs off as told gets through when the window frees a slot.
func (s *Server) admit(tenant string) *apiError {
	if s.opts.DisableRateLimit {
		return nil
	}
	s.ctl.Lock()
	defer s.ctl.Unlock()
	l := s.opts.RateLimit
	now := s.now()
	times := s.windows[tenant]
	cut := 0
	for cut < len(times) && now.Sub(times[cut]) >= l.Window {
		cut++
	}
	times = times[cut:]
	if len(times) >= l.Requests {
		s.windows[tenant] = times
		return throttled(l.Window - now.Sub(times[0]))
	}
	s.windows[tenant] = append(times, now)
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return b
}

// randomToken is n random bytes as URL-safe base64: opaque ids for tokens, etags and MS-CV.
func randomToken(n int) string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}
