package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/internal/jsontree"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// The HTTP API under /api/v1: what Power Automate flows (through the custom connector in
// infra/powerplatform/) and operators call. Every operation is in apiRoutes, which both serves it and
// documents it in the OpenAPI 2.0 document at /api/v1/swagger.json.

// Prefix is where the API is served.
const Prefix = "/api/v1"

// KeyHeader carries an API key.
const KeyHeader = "X-API-Key"

// Limits of the API.
const (
	apiMaxBody     = 64 << 10         // request bodies: the largest real one is a signatory (~1 KiB)
	apiCallTimeout = 60 * time.Second // synchronous work: under the server's 70 s write timeout and Power Automate's 120 s
	apiIdemTTL     = 24 * time.Hour   // how long an Idempotency-Key is remembered
	apiIdemMax     = 10000            // keys remembered per replica
	apiRetryAfter  = 5                // seconds a poller of running work waits
	apiDefaultPage = 100
	apiMaxPage     = 1000
	// MaxWebhookSubscriptionsPerCaller caps the active webhook subscriptions one caller may hold.
	MaxWebhookSubscriptionsPerCaller = 100
	apiLimiterIdle                   = 10 * time.Minute // a caller's rate limiter is forgotten after this long unused
	apiRateBurstMin                  = 20
)

// Options configure the API.
type Options struct {
	// Auth authenticates callers (Entra ID tokens, API keys); nil turns the API off (every operation
	// answers 404 saying so), except the OpenAPI document.
	Auth *apiauth.Authenticator
	// PublicURL is the connector's external URL (CONNECTOR_PUBLIC_URL): Location headers and nextLinks are
	// built on it. Empty: on the request's Host.
	PublicURL string
	// RatePerMinute is each caller's allowance (0: 600).
	RatePerMinute int
	Logger        *slog.Logger
	Metrics       *metrics.Recorder
	Now           func() time.Time
}

// Server serves /api/v1.
type Server struct {
	deps  Deps
	opts  Options
	mux   *http.ServeMux
	doc   []byte
	docMu sync.Once

	limMu    sync.Mutex
	limiters map[string]*callerLimiter

	idem idempotency
}

type callerLimiter struct {
	lim  *rate.Limiter
	seen time.Time
}

// New builds the API over the connector's workflows.
func New(deps Deps, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RatePerMinute <= 0 {
		opts.RatePerMinute = 600
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Server{deps: deps, opts: opts, mux: http.NewServeMux(), limiters: map[string]*callerLimiter{}, idem: idempotency{entries: map[string]*idemEntry{}}}
	for _, rt := range apiRoutes() {
		a.mux.Handle(rt.Method+" "+rt.Path, a.operation(rt))
	}
	return a
}

// ServeHTTP serves every request under /api/v1.
func (a *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if r.URL.Path == Prefix+"/swagger.json" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		a.serveDocument(w)
		return
	}
	_, pattern := a.mux.Handler(r)
	if pattern == "" {
		if allow := a.allowed(r); len(allow) > 0 {
			h.Set("Allow", strings.Join(allow, ", "))
			writeProblem(w, &apiError{status: http.StatusMethodNotAllowed, detail: fmt.Sprintf("%s is not an operation of %s; it allows %s.", r.Method, r.URL.Path, strings.Join(allow, ", "))})
			return
		}
		writeProblem(w, &apiError{status: http.StatusNotFound, detail: fmt.Sprintf("There is no operation at %s. The operations are listed in %s/swagger.json.", r.URL.Path, Prefix)})
		return
	}
	// Through the mux, not the handler Handler returned: only ServeHTTP sets the path values (PathValue).
	a.mux.ServeHTTP(w, r)
}

// allowed lists the methods the path has operations for.
func (a *Server) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := a.mux.Handler(probe); p != "" {
			out = append(out, m)
		}
	}
	return out
}

func (a *Server) serveDocument(w http.ResponseWriter) {
	a.docMu.Do(func() {
		doc, err := Definition(a.opts.PublicURL)
		if err != nil {
			a.opts.Logger.Error("the OpenAPI document could not be built", "error", err)
			return
		}
		a.doc = doc
	})
	if a.doc == nil {
		writeProblem(w, &apiError{status: http.StatusInternalServerError, detail: "The OpenAPI document could not be built; see the connector's log."})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.doc)
}

// apiCall is one request to an operation.
type apiCall struct {
	api  *Server
	r    *http.Request
	who  apiauth.Principal
	body []byte
}

// apiResult is what an operation answers.
type apiResult struct {
	status     int
	body       any
	location   string // a path under the API; made absolute
	retryAfter int
}

// operation is an operation's handler behind the API's middleware, outermost first: the request is
// counted, a panic answered, then refused while the API is off or the connector starting, signed in and
// rate limited, checked for its role, its body read (64 KiB at most), answered once per Idempotency-Key,
// and given a minute.
func (a *Server) operation(rt apiRoute) http.Handler {
	h := a.answer(rt.handle)
	h = withTimeout(apiCallTimeout, h)
	h = a.idempotent(h)
	h = a.readBody(apiMaxBody, h)
	h = a.authorize(rt.Role, h)
	h = a.authenticate(h)
	h = a.requireStarted(h)
	h = a.requireOn(h)
	h = a.recoverPanic(h)
	return a.observe(rt.ID, h)
}

// render turns a result into the bytes and headers of the answer.
func (a *Server) render(r *http.Request, res apiResult) (idemEntry, error) {
	e := idemEntry{status: cmp.Or(res.status, http.StatusOK), header: http.Header{}}
	if res.location != "" {
		e.header.Set("Location", a.absolute(r, res.location))
	}
	if res.retryAfter > 0 {
		e.header.Set("Retry-After", strconv.Itoa(res.retryAfter))
	}
	if res.body != nil {
		b, err := json.Marshal(res.body)
		if err != nil {
			return e, err
		}
		e.body = b
		e.header.Set("Content-Type", "application/json")
	}
	return e, nil
}

// absolute makes a path under the API an absolute URL: on CONNECTOR_PUBLIC_URL when set (behind a proxy
// the request's own scheme and host are not the public ones), else on the request's host.
func (a *Server) absolute(r *http.Request, path string) string {
	if a.opts.PublicURL != "" {
		return strings.TrimRight(a.opts.PublicURL, "/") + path
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// allow takes one request from the caller's allowance; when refused it says how many seconds to wait.
func (a *Server) allow(caller string) (bool, int) {
	now := a.opts.Now()
	a.limMu.Lock()
	defer a.limMu.Unlock()
	l := a.limiters[caller]
	if l == nil {
		if len(a.limiters) > 10000 {
			for k, v := range a.limiters {
				if now.Sub(v.seen) > apiLimiterIdle {
					delete(a.limiters, k)
				}
			}
		}
		perSecond := rate.Limit(float64(a.opts.RatePerMinute) / 60)
		l = &callerLimiter{lim: rate.NewLimiter(perSecond, max(apiRateBurstMin, a.opts.RatePerMinute/10))}
		a.limiters[caller] = l
	}
	l.seen = now
	rv := l.lim.ReserveN(now, 1)
	if d := rv.DelayFrom(now); d > 0 {
		rv.CancelAt(now)
		return false, int(d/time.Second) + 1
	}
	return true, 0
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Problem is an error answer (RFC 9457, application/problem+json).
type Problem struct {
	Type   string       `json:"type" desc:"A URI naming the kind of problem; about:blank when the status says it all."`
	Title  string       `json:"title" desc:"The HTTP status in words."`
	Status int          `json:"status" desc:"The HTTP status code."`
	Detail string       `json:"detail" desc:"What went wrong and what to do, in plain words."`
	Code   string       `json:"code,omitempty" desc:"A stable machine-readable code for the problem, when there is one."`
	Errors []FieldError `json:"errors,omitempty" desc:"The fields of the request that are not valid, each with its reason."`
}

// FieldError is one invalid field of a request.
type FieldError struct {
	Field   string `json:"field" desc:"The field: a body property, a query or path parameter."`
	Message string `json:"message" desc:"Why it is not valid and what it should be."`
}

// apiError is an error answer an operation returns.
type apiError struct {
	status     int
	code       string
	detail     string
	fields     []FieldError
	retryAfter int
	challenge  string
}

func (e *apiError) Error() string { return e.detail }

func badRequest(detail string, fields ...FieldError) *apiError {
	return &apiError{status: http.StatusBadRequest, detail: detail, fields: fields}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, detail: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *apiError {
	return &apiError{status: http.StatusConflict, detail: fmt.Sprintf(format, args...)}
}

// asAPIError maps any error onto an answer: the operation's own, Dataverse's and Partner Center's
// refusals, timeouts; anything else is a 500 in words.
func asAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case dataverse.IsNotFound(err):
		return notFound("No such row in Dataverse.")
	case dataverse.IsConflict(err):
		return conflict("The row changed while the connector worked on it: read it again and retry.")
	case dataverse.IsThrottled(err) || partnercenter.IsThrottled(err):
		return &apiError{status: http.StatusTooManyRequests, retryAfter: 60, detail: "Dataverse or Partner Center is throttling the connector: try again in a minute."}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusGatewayTimeout, detail: "The operation took too long; it may still finish. Read the row again before retrying."}
	case errors.Is(err, jobs.ErrLeaseHeld):
		return conflict("The job is running on another replica.")
	}
	var dvErr *dataverse.ResponseError
	var pcErr *partnercenter.ResponseError
	if errors.As(err, &dvErr) || errors.As(err, &pcErr) {
		return &apiError{status: http.StatusBadGateway, detail: "Dataverse or Partner Center failed: " + err.Error()}
	}
	return &apiError{status: http.StatusInternalServerError, detail: "The connector failed: " + err.Error()}
}

func authError(err error) *apiError {
	var ae *apiauth.Error
	if !errors.As(err, &ae) {
		return &apiError{status: http.StatusUnauthorized, detail: err.Error()}
	}
	return &apiError{status: ae.Status, code: ae.Code, detail: ae.Detail, challenge: ae.Challenge}
}

func writeProblem(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.challenge != "" {
		h.Set("WWW-Authenticate", e.challenge)
	}
	h.Set("Content-Type", "application/problem+json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: http.StatusText(e.status), Status: e.status, Detail: e.detail, Code: e.code, Errors: e.fields})
}

// idempotency remembers the answers to POSTs that carried an Idempotency-Key, so a flow's retry gets the
// first answer instead of doing the work twice. It is per replica; the operations are idempotent by
// themselves (a second link request finds the open attestation, a second run request finds the job
// running, a second subscription finds the first), so a retry that lands on another replica is safe too.
type idempotency struct {
	mu      sync.Mutex
	entries map[string]*idemEntry
}

type idemEntry struct {
	hash   [32]byte
	at     time.Time
	done   chan struct{}
	status int
	header http.Header
	body   []byte
	err    error
}

func (e *idemEntry) write(w http.ResponseWriter) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
}

// do runs fn once per key: a repeat with the same body waits for and replays the first answer; with another
// body it is refused (422). Failed runs are not remembered, so a retry runs again.
func (m *idempotency) do(ctx context.Context, key string, hash [32]byte, now time.Time, fn func() (idemEntry, error)) (*idemEntry, error) {
	m.mu.Lock()
	if e, ok := m.entries[key]; ok && now.Sub(e.at) < apiIdemTTL {
		m.mu.Unlock()
		if e.hash != hash {
			return nil, &apiError{status: http.StatusUnprocessableEntity, code: "idempotency_key_reused",
				detail: "This Idempotency-Key was used with a different request: use a new key for a new request."}
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	}
	if len(m.entries) >= apiIdemMax {
		m.evict(now)
	}
	e := &idemEntry{hash: hash, at: now, done: make(chan struct{})}
	m.entries[key] = e
	m.mu.Unlock()

	// A run that fails, or panics, is forgotten (a retry runs again) and releases who waits on it.
	settled := false
	defer func() {
		if settled {
			return
		}
		m.mu.Lock()
		delete(m.entries, key)
		e.err = errors.New("the first request with this Idempotency-Key failed; retry it")
		m.mu.Unlock()
		close(e.done)
	}()
	out, err := fn()
	m.mu.Lock()
	e.status, e.header, e.body, e.err = out.status, out.header, out.body, err
	if err != nil {
		delete(m.entries, key)
	}
	m.mu.Unlock()
	settled = true
	close(e.done)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// evict drops expired keys, and the oldest half when none has expired. Called with mu held.
func (m *idempotency) evict(now time.Time) {
	for k, e := range m.entries {
		if now.Sub(e.at) >= apiIdemTTL {
			delete(m.entries, k)
		}
	}
	if len(m.entries) < apiIdemMax {
		return
	}
	var oldest []time.Time
	for _, e := range m.entries {
		oldest = append(oldest, e.at)
	}
	cut := medianTime(oldest)
	for k, e := range m.entries {
		if !e.at.After(cut) {
			select {
			case <-e.done:
				delete(m.entries, k)
			default:
			}
		}
	}
}

func medianTime(ts []time.Time) time.Time {
	slices.SortFunc(ts, time.Time.Compare)
	return ts[len(ts)/2]
}

// decode reads the JSON body into v, refusing unknown fields (a misspelt field would otherwise be
// silently ignored) with field-level messages.
func (c *apiCall) decode(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return badRequest("The request needs a JSON body.")
	}
	// encoding/json is lenient where a caller's mistake should show: it takes the first of several values,
	// the last of duplicate members and a member name in any case. The body is read strictly first.
	root, err := jsontree.Parse(c.body)
	if err != nil {
		return badRequest("The body is not valid JSON: " + err.Error() + ".")
	}
	if root.Kind != jsontree.Object {
		return badRequest("The body must be a JSON object.")
	}
	if fields := strictMembers(root, reflect.TypeOf(v).Elem()); len(fields) > 0 {
		return badRequest("The body has fields this operation does not take as written.", fields...)
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return badRequest("A field has the wrong type.", FieldError{Field: typeErr.Field, Message: fmt.Sprintf("must be a %s", typeErr.Type)})
		case errors.As(err, &syntaxErr):
			return badRequest(fmt.Sprintf("The body is not valid JSON (at byte %d).", syntaxErr.Offset))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badRequest("The body has a field this operation does not know.", FieldError{Field: field, Message: "is not a field of this operation"})
		}
		return badRequest("The body could not be read as JSON: " + err.Error())
	}
	return nil
}

// strictMembers checks an object's member names against the JSON names of struct type t: each must be
// written exactly as documented, and once.
func strictMembers(obj *jsontree.Node, t reflect.Type) []FieldError {
	known := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			known[name] = true
		}
	}
	var fields []FieldError
	seen := map[string]bool{}
	for _, k := range obj.Keys {
		switch {
		case seen[k]:
			fields = append(fields, FieldError{Field: k, Message: "is given more than once"})
		case !known[k]:
			msg := "is not a field of this operation"
			for name := range known {
				if strings.EqualFold(name, k) {
					msg = fmt.Sprintf("is not a field of this operation: the field is %s (names are case-sensitive)", name)
				}
			}
			fields = append(fields, FieldError{Field: k, Message: msg})
		}
		seen[k] = true
	}
	return fields
}

// id reads a path parameter that is a row id.
func (c *apiCall) id(name string) (dataverse.GUID, error) {
	v := c.r.PathValue(name)
	id, err := dataverse.ParseGUID(v)
	if err != nil {
		return id, badRequest("The id in the path is not a GUID.", FieldError{Field: name, Message: fmt.Sprintf("%q is not a GUID such as 00000000-0000-0000-0000-000000000000", v)})
	}
	return id, nil
}

// pageQuery reads $top-style paging: top (1–1000) and the opaque cursor of a nextLink.
func (c *apiCall) pageQuery() (top int, cursor string, err error) {
	q := c.r.URL.Query()
	top = apiDefaultPage
	if v := q.Get("top"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > apiMaxPage {
			return 0, "", badRequest("top is out of range.", FieldError{Field: "top", Message: fmt.Sprintf("must be a whole number from 1 to %d", apiMaxPage)})
		}
		top = n
	}
	return top, q.Get("cursor"), nil
}

// nextLink is the absolute URL of the page after the one that ended at cursor.
func (c *apiCall) nextLink(cursor string, top int) string {
	q := c.r.URL.Query()
	q.Set("cursor", cursor)
	q.Set("top", strconv.Itoa(top))
	return c.api.absolute(c.r, c.r.URL.EscapedPath()+"?"+q.Encode())
}
