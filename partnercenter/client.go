// Package partnercenter is a client for the Microsoft Partner Center REST API (v1): customers, the
// Microsoft Customer Agreement (metadata, agreements, direct-sign status, the enhanced attestation),
// subscriptions and add-ons, carts, checkout and orders.
//
// It behaves well under Microsoft's limits by itself: a per-tenant rate limiter keeps normal work under
// the published 500 requests per minute per tenant, 429 answers are retried after Retry-After, and every
// logical call carries one MS-RequestId, reused across its retries, which makes retried writes idempotent
// on Partner Center's side. It uses the two kinds of authentication Partner Center needs: app-only
// (any azcore.TokenCredential) and app+user (the secure application model's refresh token, see
// RefreshTokenCredential), each operation with the kind Partner Center accepts for it.
package partnercenter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/google/uuid"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"

	"github.com/cspconnector/csp-connector/internal/bearer"
	"github.com/cspconnector/csp-connector/internal/retry"
)

// DefaultEndpoint is Partner Center's global endpoint.
const DefaultEndpoint = "https://api.partnercenter.microsoft.com"

// ContractVersion is the MS-Contract-Version every request carries: Partner Center's REST headers list it
// as required, with the value v1.
const ContractVersion = "v1"

// Defaults.
const (
	// DefaultTenantRequests per DefaultTenantWindow is Partner Center's published limit for the customer
	// and subscription resources: 500 requests per minute per tenant identifier.
	DefaultTenantRequests = 500
	DefaultTenantWindow   = time.Minute
	// DefaultPageSize is the customers page size: the most one page has been seen to return.
	DefaultPageSize   = 500
	defaultMaxRetries = 4
)

// Credentials are the two kinds of authentication. Either may be nil: an operation that needs the missing
// kind fails with ErrNoCredential before anything is sent. Both nil means no Authorization header, which
// only a local simulator accepts.
type Credentials struct {
	// AppOnly gets app-only tokens (client credentials): customers, subscriptions, carts, orders and the
	// enhanced attestation.
	AppOnly azcore.TokenCredential
	// AppUser gets app+user tokens: agreement metadata and reads, legacy agreement creation, the
	// direct-sign status and the reseller relationship link. Use a RefreshTokenCredential.
	AppUser azcore.TokenCredential
}

// ErrNoCredential is returned for an operation whose kind of authentication was not configured.
var ErrNoCredential = errors.New("partnercenter: no credential of the kind this operation needs")

// ClientOptions tunes a Client; nil gives the defaults.
type ClientOptions struct {
	// HTTPClient sends the requests; nil: a pooled client with a 2-minute timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// TenantRequests per TenantWindow is the per-tenant rate the client stays under (default 500 per
	// minute). The limiter spreads requests so that no window of that length holds more.
	TenantRequests int
	TenantWindow   time.Duration
	// MaxRetries, MinRetryWait and MaxRetryWait bound retries (429, 5xx, network errors).
	MaxRetries                 int
	MinRetryWait, MaxRetryWait time.Duration
	// PageSize is the customers page size.
	PageSize int
	// PollInterval is the first wait when following a 202 Accepted (default 2 s, doubling to 30 s).
	PollInterval time.Duration
}

// Client calls Partner Center. It is safe for concurrent use.
type Client struct {
	base    *url.URL // endpoint + /v1/
	appOnly *bearer.Cache
	appUser *bearer.Cache
	rc      *retryablehttp.Client
	limits  *tenantLimiter
	log     *slog.Logger
	opts    ClientOptions
}

// NewClient returns a client for endpoint (DefaultEndpoint in production).
func NewClient(endpoint string, creds Credentials, opts *ClientOptions) (*Client, error) {
	var o ClientOptions
	if opts != nil {
		o = *opts
	}
	if o.TenantRequests <= 0 {
		o.TenantRequests = DefaultTenantRequests
	}
	if o.TenantWindow <= 0 {
		o.TenantWindow = DefaultTenantWindow
	}
	policy := retry.Policy{MaxRetries: o.MaxRetries, MinWait: o.MinRetryWait, MaxWait: o.MaxRetryWait}.WithDefaults(defaultMaxRetries)
	o.MaxRetries, o.MinRetryWait, o.MaxRetryWait = policy.MaxRetries, policy.MinWait, policy.MaxWait
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	o.Logger = retry.Logger(o.Logger)
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(endpoint), "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("partnercenter: endpoint %q must be an absolute http(s) URL such as %s", endpoint, DefaultEndpoint)
	}
	u.Path, u.RawQuery, u.Fragment, u.User = "/v1/", "", "", nil
	hc, next := retry.HTTPClient(o.HTTPClient)
	hc.Transport = transport{next: next}
	c := &Client{base: u, log: o.Logger, opts: o, limits: newTenantLimiter(o.TenantRequests, o.TenantWindow)}
	if creds.AppOnly != nil {
		c.appOnly = bearer.NewCache(creds.AppOnly, Scope)
	}
	if creds.AppUser != nil {
		c.appUser = bearer.NewCache(creds.AppUser, Scope)
	}
	c.rc = retry.NewClient(hc, policy, c.checkRetry, linearJitter)
	return c, nil
}

// Endpoint returns the API root (endpoint + /v1/).
func (c *Client) Endpoint() string { return c.base.String() }

type contextKey int

const (
	correlationKey contextKey = iota
	requestIDKey
)

// WithCorrelationID makes every call made with ctx carry this MS-CorrelationId, tying a run's calls
// together in Microsoft's logs. Without it each call gets its own.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey, id)
}

// CorrelationID returns the correlation id carried by ctx, if any.
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey).(string)
	return s
}

// WithRequestID returns a context whose calls carry this MS-RequestId. Partner Center answers a repeated
// request id with the first request's answer, so a caller that records the id before a purchase and
// reuses it after a crash cannot buy twice. Derive it for that one logical call only, never for a whole
// run: every call made with the context would otherwise get the first call's answer. Without it each
// logical call gets a new id, reused across its own retries.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// authKind is the kind of token an operation needs.
type authKind int

const (
	authAny     authKind = iota // app-only if configured, else app+user
	authAppUser                 // app+user only
	authAppOnly                 // app-only only
)

// call is one logical Partner Center call.
type call struct {
	method string
	path   string // below /v1/, escaped; or a link from a response (resolved against the endpoint)
	query  url.Values
	header http.Header
	body   any
	auth   authKind
	tenant string // rate-limit key: the customer tenant, or "" for partner-level calls
	// op names the operation in errors: "get customer 123".
	op string
}

// do sends the call with retries and returns a 2xx response (the caller closes its body) or an error.
func (c *Client) do(ctx context.Context, cl call) (*http.Response, error) {
	target, err := c.resolve(cl.path, cl.query)
	if err != nil {
		return nil, fmt.Errorf("partnercenter: %s: %w", cl.op, err)
	}
	tokens, err := c.tokensFor(cl.auth)
	if err != nil {
		return nil, fmt.Errorf("partnercenter: %s: %w", cl.op, err)
	}
	var body []byte
	if cl.body != nil {
		if body, err = json.Marshal(cl.body); err != nil {
			return nil, fmt.Errorf("partnercenter: %s: encode body: %w", cl.op, err)
		}
	}
	var raw any
	if body != nil {
		raw = body
	}
	// The transport reads which tokens and which tenant's rate limit apply from the request's context.
	rctx := context.WithValue(ctx, callKey{}, &callState{tokens: tokens, tenant: cl.tenant, limiter: c.limits})
	req, err := retryablehttp.NewRequestWithContext(rctx, cl.method, target, raw)
	if err != nil {
		return nil, fmt.Errorf("partnercenter: %s: %w", cl.op, err)
	}
	requestID, _ := ctx.Value(requestIDKey).(string)
	if requestID == "" {
		requestID = uuid.NewString()
	}
	correlation := CorrelationID(ctx)
	if correlation == "" {
		correlation = uuid.NewString()
	}
	h := req.Header
	h.Set("Accept", "application/json")
	h.Set("MS-RequestId", requestID) // one per logical call: retries below resend the same request
	h.Set("MS-CorrelationId", correlation)
	// Listed as required in Partner Center's REST headers (headers.md), though the .NET SDK never sends it.
	h.Set("MS-Contract-Version", ContractVersion)
	h.Set("MS-PartnerCenter-Application", "csp-connector")
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	for k, vs := range cl.header {
		h[k] = vs
	}
	resp, err := c.rc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, fmt.Errorf("partnercenter: %s: %w", cl.op, err)
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("partnercenter: %s: %w", cl.op, errorFromResponse(resp))
	}
	return resp, nil
}

// doJSON sends the call and decodes the JSON answer into out (when out is non-nil).
func (c *Client) doJSON(ctx context.Context, cl call, out any) (*http.Response, error) {
	resp, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	defer drainClose(resp.Body)
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp, nil
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, fmt.Errorf("partnercenter: %s: read response: %w", cl.op, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(stripBOM(data)), out); err != nil {
		return resp, fmt.Errorf("partnercenter: %s: decode response: %w", cl.op, err)
	}
	return resp, nil
}

func (c *Client) tokensFor(kind authKind) (*bearer.Cache, error) {
	if c.appOnly == nil && c.appUser == nil {
		return nil, nil // no authentication at all: a local simulator
	}
	switch kind {
	case authAppUser:
		if c.appUser == nil {
			return nil, fmt.Errorf("%w: this operation needs app+user authentication (a secure application model refresh token)", ErrNoCredential)
		}
		return c.appUser, nil
	case authAppOnly:
		if c.appOnly == nil {
			return nil, fmt.Errorf("%w: this operation needs app-only authentication (client credentials)", ErrNoCredential)
		}
		return c.appOnly, nil
	}
	if c.appOnly != nil {
		return c.appOnly, nil
	}
	return c.appUser, nil
}

// resolve builds the URL of a path below /v1/, or of a link from a response. Links are relative
// ("/customers?…", "/v1/customers/…") and sometimes lack /v1; a link may never leave the endpoint.
func (c *Client) resolve(path string, q url.Values) (string, error) {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		u, err := url.Parse(path)
		if err != nil || u.Host != c.base.Host || u.Scheme != c.base.Scheme {
			return "", fmt.Errorf("link %q points outside %s", path, c.base.Host)
		}
		return path, nil
	}
	if strings.HasPrefix(path, "/") {
		path = strings.TrimPrefix(strings.TrimPrefix(path, "/"), "v1/")
	}
	target := c.base.String() + path
	if len(q) > 0 {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + q.Encode()
	}
	return target, nil
}

func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	_ = body.Close()
}

// callKey carries the per-call state the transport needs: which tokens, which tenant's rate limit.
type callKey struct{}

type callState struct {
	tokens  *bearer.Cache
	tenant  string
	limiter *tenantLimiter
}

// checkRetry decides whether retryablehttp tries again: 429 and 5xx answers and network failures, never
// starting a wait that outlasts the context (the caller then gets the 429 with its RetryAfter).
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		var te *bearer.TokenError
		if errors.As(err, &te) {
			return false, nil
		}
		// Every call carries its MS-RequestId, Partner Center's idempotency key: a resend after a network
		// failure is the same request, not a second one.
		return true, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
	default:
		return false, nil
	}
	wait := retry.After(resp.Header.Get("Retry-After"), time.Now())
	if retry.OutlastsContext(ctx, wait) {
		return false, nil
	}
	c.log.InfoContext(ctx, "partnercenter: retrying", "status", resp.StatusCode, "retry_after", wait.String(),
		"method", resp.Request.Method, "url", resp.Request.URL.Redacted(), "request_id", resp.Request.Header.Get("MS-RequestId"))
	return true, nil
}

// linearJitter is the wait when the server sent no Retry-After: an exponential ceiling with linear
// jitter below it.
func linearJitter(minWait, maxWait time.Duration, attempt int, _ *http.Response) time.Duration {
	return retryablehttp.LinearJitterBackoff(minWait, min(minWait<<min(attempt, 16), maxWait), attempt, nil)
}

// tenantLimiter keeps requests per tenant under the limit with a token bucket: burst + rate × window is
// 98% of the limit, so no window of that length can hold more than the limit even when network jitter
// bunches arrivals a little, while steady work runs at about 96% of the allowed rate.
type tenantLimiter struct {
	mu       sync.Mutex
	every    rate.Limit
	burst    int
	limiters map[string]*rate.Limiter
}

func newTenantLimiter(requests int, window time.Duration) *tenantLimiter {
	burst := max(requests*2/100, 1)
	budget := float64(requests)*0.98 - float64(burst)
	return &tenantLimiter{every: rate.Limit(budget / window.Seconds()), burst: burst, limiters: map[string]*rate.Limiter{}}
}

func (t *tenantLimiter) wait(ctx context.Context, tenant string) error {
	if tenant == "" {
		tenant = "partner"
	}
	t.mu.Lock()
	l := t.limiters[tenant]
	if l == nil {
		l = rate.NewLimiter(t.every, t.burst)
		t.limiters[tenant] = l
	}
	t.mu.Unlock()
	return l.Wait(ctx)
}

// transport waits for the tenant's rate limit on every attempt (a retry costs a request too), then adds
// the call's bearer token (bearer.Transport: on a 401, once more with a fresh token).
type transport struct{ next http.RoundTripper }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(callKey{}).(*callState)
	if st == nil {
		return t.next.RoundTrip(req)
	}
	if err := st.limiter.wait(req.Context(), st.tenant); err != nil {
		return nil, err
	}
	return bearer.Transport{Tokens: st.tokens, Next: t.next}.RoundTrip(req)
}
