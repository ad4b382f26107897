package dataverse

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/cspconnector/csp-connector/internal/retry"
)

// Dataverse's documented service protection limits per user and web server ("Service protection API
// limits"): 6,000 requests and 20 minutes of combined execution time in a sliding 300-second window. A
// $batch or a bulk message (CreateMultiple, UpdateMultiple, UpsertMultiple) is one request; its execution
// time is that of everything it does.
const (
	DefaultBudgetRequests      = 6000
	DefaultBudgetExecutionTime = 20 * time.Minute
	DefaultBudgetWindow        = 300 * time.Second
	// DefaultBulkReserve is the share of the budget, in percent, that bulk work leaves to interactive work.
	DefaultBulkReserve = 10
)

// budgetSkew widens the client's window: Dataverse starts counting a request a little after the client
// sent it, so the client lets it leave its window a little later than the server does.
const budgetSkew = time.Second

// Priority says whose work a call is, for the client's service protection budget.
type Priority int

const (
	// Interactive work (events, API calls, buttons: someone is waiting) may use the whole budget. It is
	// the default.
	Interactive Priority = iota
	// Bulk work (syncs, checks, sweeps) stops short of the reserve and waits there, so interactive work
	// always finds budget left.
	Bulk
)

type priorityKey struct{}

// WithPriority marks the calls made with ctx as interactive or bulk work.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority WithPriority put in ctx (Interactive if none).
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// budget paces one client (one Dataverse user) within the service protection limits: every HTTP attempt
// takes one request from a sliding window before it is sent, and adds its elapsed time (an upper bound of
// the server's execution time) to the window's execution time when it ends. A request is sent only while
// the window holds fewer requests and less execution time than its priority's share; bulk work's share
// leaves the reserve. A 429 from the server holds every request back until its Retry-After.
type budget struct {
	requests      [2]int           // per priority
	executionTime [2]time.Duration // per priority
	window        time.Duration

	mu        sync.Mutex
	starts    []time.Time // requests sent within the window, oldest first
	spent     []spent     // execution time of finished requests, oldest first
	total     time.Duration
	heldUntil time.Time     // a 429's Retry-After, which holds bulk work back
	changed   chan struct{} // closed and replaced when execution time is added or a hold is set
	waited    time.Duration // requests' time spent waiting for room, summed
}

type spent struct {
	at time.Time
	d  time.Duration
}

// newBudget returns the pacing of o's budget, or nil when it is switched off.
func newBudget(o ClientOptions) *budget {
	if o.BudgetRequests < 0 {
		return nil
	}
	bulk := func(n int64) int64 { return max(1, n*int64(100-o.BulkReserve)/100) }
	return &budget{
		requests:      [2]int{o.BudgetRequests, int(bulk(int64(o.BudgetRequests)))},
		executionTime: [2]time.Duration{o.BudgetExecutionTime, time.Duration(bulk(int64(o.BudgetExecutionTime)))},
		window:        DefaultBudgetWindow + budgetSkew,
		changed:       make(chan struct{}),
	}
}

// take waits until a request of priority p fits the budget and counts it. It returns the time it was
// counted at.
func (b *budget) take(ctx context.Context, p Priority) (time.Time, error) {
	if p != Bulk {
		p = Interactive
	}
	asked := time.Now()
	for {
		b.mu.Lock()
		now := time.Now()
		b.slide(now)
		wait := b.wait(now, p)
		if wait <= 0 {
			b.starts = append(b.starts, now)
			b.waited += now.Sub(asked)
			b.mu.Unlock()
			return now, nil
		}
		changed := b.changed
		b.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return time.Time{}, context.Cause(ctx)
		}
	}
}

// wait is how long a request of priority p must wait for room (zero: there is room now). The caller
// holds b.mu.
func (b *budget) wait(now time.Time, p Priority) time.Duration {
	if d := b.heldUntil.Sub(now); d > 0 && p == Bulk {
		return d // an interactive request is sent: it retries on its own 429 if the hold is still on
	}
	var wait time.Duration
	if limit := b.requests[p]; len(b.starts) >= limit {
		wait = b.window - now.Sub(b.starts[len(b.starts)-limit])
	}
	if limit := b.executionTime[p]; b.total >= limit {
		left := b.total
		for _, sp := range b.spent {
			left -= sp.d
			if left < limit {
				wait = max(wait, b.window-now.Sub(sp.at))
				break
			}
		}
	}
	return max(wait, 0)
}

// slide drops what has left the window. The caller holds b.mu.
func (b *budget) slide(now time.Time) {
	cut := 0
	for cut < len(b.starts) && now.Sub(b.starts[cut]) >= b.window {
		cut++
	}
	b.starts = b.starts[cut:]
	cut = 0
	for cut < len(b.spent) && now.Sub(b.spent[cut].at) >= b.window {
		b.total -= b.spent[cut].d
		cut++
	}
	b.spent = b.spent[cut:]
}

// sent moves the count of a request taken at taken to now, when it actually leaves (after waiting for a
// free connection slot): the server counts it from then. Every other request was counted at or before
// now, so the window stays in order.
func (b *budget) sent(taken time.Time) time.Time {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.starts) - 1; i >= 0; i-- {
		if b.starts[i].Equal(taken) {
			b.starts = append(b.starts[:i], b.starts[i+1:]...)
			break
		}
	}
	b.starts = append(b.starts, now)
	return now
}

// done adds a finished request's elapsed time to the window and, for a 429, holds bulk work back for its
// Retry-After (Dataverse refuses every request of the user until then).
func (b *budget) done(sent time.Time, resp *http.Response) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(sent); d > 0 {
		b.spent = append(b.spent, spent{at: now, d: d})
		b.total += d
	}
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		if until := now.Add(retry.After(resp.Header.Get("Retry-After"), now)); until.After(b.heldUntil) {
			b.heldUntil = until
		}
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// Usage reports the client's own count of the current window: requests sent and execution time (elapsed
// time) spent, as its pacing sees them.
func (c *Client) Usage() (requests int, executionTime time.Duration) {
	if c.budget == nil {
		return 0, 0
	}
	c.budget.mu.Lock()
	defer c.budget.mu.Unlock()
	c.budget.slide(time.Now())
	return len(c.budget.starts), c.budget.total
}

// BudgetWaited reports how long requests have waited for room in the client's budget since it was made,
// summed over the requests: zero when the budget never held one back.
func (c *Client) BudgetWaited() time.Duration {
	if c.budget == nil {
		return 0
	}
	c.budget.mu.Lock()
	defer c.budget.mu.Unlock()
	return c.budget.waited
}
