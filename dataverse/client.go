// Package dataverse is a client for the Microsoft Dataverse Web API (v9.2): rows by id or alternate key,
// OData queries with paging, conditional writes and upserts, $batch, WhoAmI and the metadata calls that
// install a schema. It behaves well under Dataverse's service protection limits by itself: a per-user budget
// of requests and execution time it paces every call within (bulk work, marked WithPriority, leaving a
// reserve to interactive work), one concurrency limit shared by every call, retries that honour
// Retry-After, and batching for bulk writes.
//
// The package knows nothing of the tables it is used with; callers name entity sets and columns, or use the
// struct-tag codec (Unmarshal, Marshal, Changes) with typed rows.
package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/cspconnector/csp-connector/internal/bearer"
	"github.com/cspconnector/csp-connector/internal/retry"
)

// APIPath is the Web API root under the organization URL.
const APIPath = "/api/data/v9.2/"

// Defaults, chosen against Dataverse's service protection limits (per user and web server, 300 s window:
// 6000 requests, 20 minutes of execution time, 52 concurrent requests).
const (
	DefaultMaxConcurrency  = 16  // well under the 52-concurrent limit, leaving room for other replicas
	DefaultPageSize        = 500 // rows per page; Dataverse allows up to 5000
	DefaultBatchSize       = 200 // operations per $batch: far from the 2-minute batch execution limit
	DefaultBulkConcurrency = 4   // $batch requests in flight at once for a bulk write
	MaxBatchOperations     = 1000
	defaultMaxRetries      = 5
)

// Client calls one Dataverse environment. It is safe for concurrent use; make one per process.
type Client struct {
	org     *url.URL // https://contoso.crm.dynamics.com
	api     *url.URL // org + APIPath
	rc      *retryablehttp.Client
	limiter *limiter
	budget  *budget
	log     *slog.Logger
	opts    ClientOptions
	bulk    *bulkTables
}

// ClientOptions tunes a Client; the zero value (or nil) gives the defaults.
type ClientOptions struct {
	// HTTPClient sends the requests. Nil: a pooled client with a 2-minute timeout and no cookie jar (the
	// affinity cookie would pin every request to one web server, and limits are per server).
	HTTPClient *http.Client
	// Logger receives retries and throttling at Info and request detail at Debug. Nil: discard.
	Logger *slog.Logger
	// MaxConcurrency bounds the requests in flight across every call of this client. The server's
	// x-ms-dop-hint lowers it when it advertises less.
	MaxConcurrency int
	// MaxRetries bounds retries of one request (429, 502/503/504, network errors on safe requests).
	MaxRetries int
	// MinRetryWait and MaxRetryWait bound the exponential backoff used when the server sends no Retry-After.
	MinRetryWait, MaxRetryWait time.Duration
	// PageSize is the Prefer: odata.maxpagesize of list calls.
	PageSize int
	// BatchSize and BulkConcurrency shape bulk writes: operations per $batch and batches in flight.
	BatchSize, BulkConcurrency int
	// Tables are the tables WriteBatch may write with bulk messages (CreateMultiple, UpdateMultiple,
	// UpsertMultiple), whose targets name their table by logical name; writes to other entity sets go by
	// $batch.
	Tables []Table
	// BulkSize is the rows per bulk message (default DefaultBulkSize); negative turns bulk messages off.
	BulkSize int
	// UserAgent is sent on every request.
	UserAgent string
	// BudgetRequests and BudgetExecutionTime are the service protection budget the client paces itself
	// within, per sliding 300-second window (budget.go): requests sent, and their combined elapsed time as
	// an estimate of the server's execution time. Zero: Dataverse's documented 6,000 and 20 minutes, which
	// suit one replica per application user (several replicas of one user share it: divide). A negative
	// BudgetRequests switches pacing off; the server's 429s are still honoured.
	BudgetRequests      int
	BudgetExecutionTime time.Duration
	// BulkReserve is the share of the budget, and of the concurrency limit, in percent, that bulk work
	// (WithPriority(ctx, Bulk)) leaves to interactive work. Zero: DefaultBulkReserve; negative: none.
	BulkReserve int
}

func (o *ClientOptions) withDefaults() ClientOptions {
	var c ClientOptions
	if o != nil {
		c = *o
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	p := c.retryPolicy().WithDefaults(defaultMaxRetries)
	c.MaxRetries, c.MinRetryWait, c.MaxRetryWait = p.MaxRetries, p.MinWait, p.MaxWait
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	c.BatchSize = min(c.BatchSize, MaxBatchOperations)
	if c.BulkConcurrency <= 0 {
		c.BulkConcurrency = DefaultBulkConcurrency
	}
	if c.UserAgent == "" {
		c.UserAgent = "csp-connector"
	}
	if c.BudgetRequests == 0 {
		c.BudgetRequests = DefaultBudgetRequests
	}
	if c.BudgetExecutionTime <= 0 {
		c.BudgetExecutionTime = DefaultBudgetExecutionTime
	}
	switch {
	case c.BulkReserve == 0:
		c.BulkReserve = DefaultBulkReserve
	case c.BulkReserve < 0:
		c.BulkReserve = 0
	}
	c.BulkReserve = min(c.BulkReserve, 90)
	c.Logger = retry.Logger(c.Logger)
	return c
}

func (o *ClientOptions) retryPolicy() retry.Policy {
	return retry.Policy{MaxRetries: o.MaxRetries, MinWait: o.MinRetryWait, MaxWait: o.MaxRetryWait}
}

// NewClient returns a client for the environment at orgURL (https://contoso.crm.dynamics.com). cred
// supplies tokens for the scope <orgURL>/.default; nil sends no Authorization header, which only a local
// simulator accepts.
func NewClient(orgURL string, cred azcore.TokenCredential, opts *ClientOptions) (*Client, error) {
	o := opts.withDefaults()
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(orgURL), "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("dataverse: organization URL %q must be an absolute http(s) URL such as https://contoso.crm.dynamics.com", orgURL)
	}
	u.Path, u.RawQuery, u.Fragment, u.User = "", "", "", nil
	org := *u
	api := *u
	api.Path = APIPath

	wrapped, base := retry.HTTPClient(o.HTTPClient)
	c := &Client{org: &org, api: &api, log: o.Logger, opts: o, limiter: newLimiter(o.MaxConcurrency, o.BulkReserve), budget: newBudget(o), bulk: newBulkTables(o.Tables)}
	var tokens *bearer.Cache
	if cred != nil {
		tokens = bearer.NewCache(cred, org.String()+"/.default")
	}
	wrapped.Jar = nil
	wrapped.Transport = bearer.Transport{Tokens: tokens, Next: &limitTransport{budget: c.budget, limiter: c.limiter, log: c.log, next: base}}

	c.rc = retry.NewClient(wrapped, o.retryPolicy(), c.checkRetry, fullJitter)
	return c, nil
}

// OrganizationURL returns the environment's URL without the API path.
func (c *Client) OrganizationURL() string { return c.org.String() }

// Options returns the effective options (defaults applied).
func (c *Client) Options() ClientOptions { return c.opts }

// request is one logical call: retries resend it unchanged.
type request struct {
	method string
	path   string     // relative to the API root, already escaped; or an absolute URL (nextLink)
	query  url.Values // encoded with %20 for spaces; nil for none
	header http.Header
	body   []byte
	// idempotent marks a request that is safe to send twice: reads, PATCH (absolute values), DELETE and
	// batches of those. A POST that creates is not, and is retried only when the server certainly did not
	// process it (429, or a connection that was never made).
	idempotent bool
}

// do sends req and returns the response for 2xx and 304 (the caller closes its body) or a *ResponseError.
func (c *Client) do(ctx context.Context, req request) (*http.Response, error) {
	resp, err := c.doRaw(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		return nil, errorFromResponse(resp)
	}
	return resp, nil
}

// doRaw sends req, with retries, and returns the final response whatever its status.
func (c *Client) doRaw(ctx context.Context, req request) (*http.Response, error) {
	target, err := c.resolve(req.path, req.query)
	if err != nil {
		return nil, err
	}
	var body any
	if req.body != nil {
		body = req.body
	}
	ctx = context.WithValue(ctx, idempotentKey{}, req.idempotent)
	rreq, err := retryablehttp.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("dataverse: build request: %w", err)
	}
	h := rreq.Header
	h.Set("Accept", "application/json")
	h.Set("OData-MaxVersion", "4.0")
	h.Set("OData-Version", "4.0")
	h.Set("User-Agent", c.opts.UserAgent)
	if req.body != nil {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	if req.method == http.MethodGet {
		// Defeats caching of expanded collections (documented standard header); a conditional GET
		// overrides it below.
		h.Set("If-None-Match", "null")
	}
	for k, vs := range req.header {
		h[k] = vs
	}
	resp, err := c.rc.Do(rreq)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("dataverse: %s %s: %w", req.method, redactURL(target), ctxErr)
		}
		return nil, fmt.Errorf("dataverse: %s %s: %w", req.method, redactURL(target), err)
	}
	return resp, nil
}

// doJSON sends req and decodes a JSON response body into out (when out is non-nil and there is a body).
func (c *Client) doJSON(ctx context.Context, req request, out any) (*http.Response, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	defer drainClose(resp.Body)
	if out == nil || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return resp, nil
	}
	if err := decodeJSON(resp.Body, out); err != nil {
		return resp, fmt.Errorf("dataverse: %s %s: decode response: %w", req.method, redactURL(resp.Request.URL.String()), err)
	}
	return resp, nil
}

func decodeJSON(r io.Reader, out any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(out)
}

func (c *Client) resolve(path string, q url.Values) (string, error) {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		u, err := url.Parse(path)
		if err != nil {
			return "", fmt.Errorf("dataverse: bad link %q: %w", redactURL(path), err)
		}
		// A nextLink must stay on the environment it came from: never send the token elsewhere.
		if u.Host != c.org.Host || u.Scheme != c.org.Scheme {
			return "", fmt.Errorf("dataverse: link %q points outside %s", redactURL(path), c.org.Host)
		}
		return path, nil
	}
	target := c.api.String() + path
	if len(q) > 0 {
		target += "?" + encodeQuery(q)
	}
	return target, nil
}

// encodeQuery percent-encodes every reserved character of every value (so '+', '&', '=' and '#' inside a
// filter literal stay literal) and writes spaces as %20, which OData parsers read unambiguously.
func encodeQuery(q url.Values) string {
	return strings.ReplaceAll(q.Encode(), "+", "%20")
}

func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	_ = body.Close()
}

// redactURL drops credentials and shortens the URL for errors and logs.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		u.User = nil
		raw = u.String()
	}
	if len(raw) > 300 {
		raw = raw[:300] + "…"
	}
	return raw
}

type idempotentKey struct{}

// checkRetry decides whether retryablehttp tries again. Only requests that are safe to repeat are retried
// after a failure that may have reached the server; a 429 or a refused connection means the server did
// nothing, so every request may be retried then. A wait that would outlast the context is not started:
// the caller gets the throttling error at once and can schedule the work for later.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	safe, _ := ctx.Value(idempotentKey{}).(bool)
	if err != nil {
		var te *bearer.TokenError
		if errors.As(err, &te) {
			return false, nil
		}
		return safe || neverSent(err), nil
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if !safe {
			return false, nil
		}
	default:
		return false, nil
	}
	wait := retry.After(resp.Header.Get("Retry-After"), time.Now())
	if retry.OutlastsContext(ctx, wait) {
		return false, nil
	}
	c.log.InfoContext(ctx, "dataverse: retrying", "status", resp.StatusCode, "retry_after", wait.String(),
		"method", resp.Request.Method, "url", redactURL(resp.Request.URL.String()))
	return true, nil
}

// neverSent reports a failure to connect at all: the server cannot have seen the request.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
