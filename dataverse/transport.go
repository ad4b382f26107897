package dataverse

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// tokenCache keeps the current access token until shortly before it expires, so a burst of requests asks
// the credential once.
type tokenCache struct {
	cred  azcore.TokenCredential
	scope string

	mu  sync.Mutex
	tok azcore.AccessToken
}

// tokenRefreshMargin renews a token this long before it expires, so no request leaves with one that expires
// on the way.
const tokenRefreshMargin = 2 * time.Minute

func (t *tokenCache) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok.Token != "" && time.Until(t.tok.ExpiresOn) > tokenRefreshMargin {
		return t.tok.Token, nil
	}
	tok, err := t.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{t.scope}})
	if err != nil {
		return "", &tokenError{err: err}
	}
	t.tok = tok
	return tok.Token, nil
}

// invalidate forgets a token the server refused, unless another request already replaced it.
func (t *tokenCache) invalidate(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok.Token == token {
		t.tok = azcore.AccessToken{}
	}
}

// tokenError is a failure to obtain a token. It is not retried by the HTTP retry loop: the credential has
// retries of its own, and a misconfigured credential does not heal in seconds.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "get access token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// authTransport adds the bearer token. On a 401 it drops the token and tries once more with a fresh one,
// which is safe for every method: the server refused the request before doing anything.
type authTransport struct {
	tokens *tokenCache // nil: no Authorization header
	next   http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.tokens == nil {
		return t.next.RoundTrip(req)
	}
	tok, err := t.tokens.token(req.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.next.RoundTrip(withToken(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	t.tokens.invalidate(tok)
	fresh, err := t.tokens.token(req.Context())
	if err != nil || fresh == tok {
		return resp, nil
	}
	retry := withToken(req, fresh)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	drainClose(resp.Body)
	return t.next.RoundTrip(retry)
}

func withToken(req *http.Request, tok string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// limitTransport holds one slot of the shared concurrency limit for each HTTP attempt (not while a retry
// waits), and lowers the limit when the server's x-ms-dop-hint says it can take less.
type limitTransport struct {
	limiter *limiter
	log     *slog.Logger
	next    http.RoundTripper
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.limiter.acquire(req.Context()); err != nil {
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	t.limiter.release()
	if err == nil {
		if hint, perr := strconv.Atoi(resp.Header.Get("x-ms-dop-hint")); perr == nil && hint > 0 {
			if from, lowered := t.limiter.lowerTo(hint); lowered {
				t.log.Info("dataverse: lowering request concurrency to the server's x-ms-dop-hint", "from", from, "to", hint)
			}
		}
	}
	return resp, err
}

// limiter is a counting semaphore whose size can shrink.
type limiter struct {
	mu    sync.Mutex
	limit int
	inUse int
	freed chan struct{} // closed and replaced whenever a slot frees or the limit changes
}

func newLimiter(n int) *limiter { return &limiter{limit: n, freed: make(chan struct{})} }

func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.inUse < l.limit {
			l.inUse++
			l.mu.Unlock()
			return nil
		}
		wait := l.freed
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("waiting for a free request slot: %w", ctx.Err())
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	l.inUse--
	close(l.freed)
	l.freed = make(chan struct{})
	l.mu.Unlock()
}

// lowerTo shrinks the limit to n if n is smaller; it never raises it above the configured maximum.
func (l *limiter) lowerTo(n int) (from int, lowered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n >= l.limit {
		return l.limit, false
	}
	from, l.limit = l.limit, n
	return from, true
}

// Limit returns the current concurrency limit (after any x-ms-dop-hint).
func (c *Client) Limit() int {
	c.limiter.mu.Lock()
	defer c.limiter.mu.Unlock()
	return c.limiter.limit
}

// backoff waits what the server asked (Retry-After) or, without that, an exponential delay with full
// jitter so that replicas throttled together do not come back together.
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return d
		}
	}
	ceiling := minWait << min(attempt, 16)
	if ceiling <= 0 || ceiling > maxWait {
		ceiling = maxWait
	}
	return minWait/2 + rand.N(ceiling-minWait/2+1)
}
