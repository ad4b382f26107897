// Package retry holds the retry mechanics both API clients (dataverse, partnercenter) share on top of
// go-retryablehttp: the bounds and their defaults, the HTTP client a Client starts from, Retry-After, and
// the rule that no wait may outlast the caller's context. What to retry stays with each client: Dataverse
// retries only what is safe to repeat, Partner Center every call (MS-RequestId makes it idempotent).
package retry

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Default bounds of the exponential backoff used when the server sends no Retry-After.
const (
	DefaultMinWait = time.Second
	DefaultMaxWait = 60 * time.Second
)

// Policy bounds the retries of one request.
type Policy struct {
	MaxRetries       int
	MinWait, MaxWait time.Duration
}

// WithDefaults fills the unset bounds: maxRetries (each client has its own), DefaultMinWait and
// DefaultMaxWait.
func (p Policy) WithDefaults(maxRetries int) Policy {
	if p.MaxRetries <= 0 {
		p.MaxRetries = maxRetries
	}
	if p.MinWait <= 0 {
		p.MinWait = DefaultMinWait
	}
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	return p
}

// Logger returns l, or a logger that discards everything when l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// HTTPClient returns a copy of hc (nil: a pooled client with a 2-minute timeout) for the caller to wrap,
// and the transport it sends with (http.DefaultTransport when hc has none).
func HTTPClient(hc *http.Client) (*http.Client, http.RoundTripper) {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	c := *hc
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &c, base
}

// NewClient returns a retrying client that sends with hc under policy p, asks check whether to retry,
// waits as jitter says when the server sent no Retry-After, and hands the last response or error back
// to the caller instead of wrapping it.
func NewClient(hc *http.Client, p Policy, check retryablehttp.CheckRetry, jitter retryablehttp.Backoff) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: p.MinWait,
		RetryWaitMax: p.MaxWait,
		RetryMax:     p.MaxRetries,
		CheckRetry:   check,
		Backoff:      Backoff(jitter),
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
}

// Backoff waits what the server asked (Retry-After) or, without that, what jitter gives.
func Backoff(jitter retryablehttp.Backoff) retryablehttp.Backoff {
	return func(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
		if resp != nil {
			if d := After(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
				return d
			}
		}
		return jitter(minWait, maxWait, attempt, resp)
	}
}

// After reads a Retry-After value, delay seconds or an HTTP date, as a wait from now; zero when absent,
// unreadable or past.
func After(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(max(secs, 0) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// OutlastsContext reports a Retry-After wait that would end after ctx's deadline: the caller is better
// served by the throttling error at once, so it can schedule the work for later.
func OutlastsContext(ctx context.Context, wait time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return ok && wait > 0 && time.Now().Add(wait).After(deadline)
}
