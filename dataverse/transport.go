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

// limitTransport paces each HTTP attempt (not while a retry waits) within the service protection budget
// (budget.go), then holds one slot of the shared concurrency limit while it is sent, and lowers the limit
// when the server's x-ms-dop-hint says it can take less.
type limitTransport struct {
	budget  *budget // nil: no pacing
	limiter *limiter
	log     *slog.Logger
	next    http.RoundTripper
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	p := PriorityOf(ctx)
	var taken time.Time
	if t.budget != nil {
		var err error
		if taken, err = t.budget.take(ctx, p); err != nil {
			return nil, fmt.Errorf("waiting for the service protection budget: %w", err)
		}
	}
	if err := t.limiter.acquire(ctx, p); err != nil {
		if t.budget != nil {
			t.budget.done(t.budget.sent(taken), nil)
		}
		return nil, err
	}
	sent := time.Now()
	if t.budget != nil {
		sent = t.budget.sent(taken)
	}
	resp, err := t.next.RoundTrip(req)
	t.limiter.release()
	if t.budget != nil {
		t.budget.done(sent, resp)
	}
	if err == nil {
		if hint, perr := strconv.Atoi(resp.Header.Get("x-ms-dop-hint")); perr == nil && hint > 0 {
			if from, lowered := t.limiter.lowerTo(hint); lowered {
				t.log.Info("dataverse: lowering request concurrency to the server's x-ms-dop-hint", "from", from, "to", hint)
			}
		}
	}
	return resp, err
}

// limiter is a counting semaphore whose size can shrink. Bulk work leaves the last reservePct percent of
// the slots (at least one) to interactive work.
type limiter struct {
	mu         sync.Mutex
	limit      int
	reservePct int
	inUse      int
	freed      chan struct{} // closed and replaced whenever a slot frees or the limit changes
}

func newLimiter(n, reservePct int) *limiter {
	return &limiter{limit: n, reservePct: reservePct, freed: make(chan struct{})}
}

func (l *limiter) acquire(ctx context.Context, p Priority) error {
	for {
		l.mu.Lock()
		limit := l.limit
		if p == Bulk && l.reservePct > 0 && limit > 1 {
			limit -= max(1, limit*l.reservePct/100)
		}
		if l.inUse < limit {
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
