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
)

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

// fullJitter is the wait when the server sent no Retry-After: an exponential delay with full jitter, so
// that replicas throttled together do not come back together.
func fullJitter(minWait, maxWait time.Duration, attempt int, _ *http.Response) time.Duration {
	ceiling := minWait << min(attempt, 16)
	if ceiling <= 0 || ceiling > maxWait {
		ceiling = maxWait
	}
	return minWait/2 + rand.N(ceiling-minWait/2+1)
}
