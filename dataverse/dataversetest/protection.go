package dataversetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Limits model Dataverse's per-user service protection limits ("Service protection API limits"): a
// sliding window in which a user's requests and their combined execution time are bounded, and a bound on
// the requests a user has in flight. As in Dataverse, a request is refused with 429 and Retry-After when
// the window is already full (the request that fills it is served: "you can expect to exceed the number
// of requests and execution time limits … before the service protection API limits take effect"); the
// concurrency limit refuses at once.
//
// A $batch counts as one request however many operations it holds ("A batch can contain up to 1000
// operations and will avoid the number of requests limit"), and the execution time of its operations
// accrues ("The combined execution time limit will counter this"). A bulk message (CreateMultiple, …) is
// one request too, its execution time that of the rows it touches.
type Limits struct {
	// Requests is the number of requests a user may make per Window (Dataverse: 6000 per 300 s).
	Requests int
	Window   time.Duration
	// ExecutionTime is the combined execution time a user's requests may take per Window (Dataverse: 20
	// minutes per 300 s).
	ExecutionTime time.Duration
	// Concurrent is the number of requests a user may have in flight (Dataverse: 52).
	Concurrent int
	// Cost is the execution time the simulator spends on each request, besides the injected latency.
	Cost Cost
}

// Cost models a request's execution time: Operation for each operation (a request, or each operation of a
// $batch) plus Row for each row it returns or writes. Microsoft publishes no such figures: the model is
// the simulator's (work done grows with the rows touched), chosen to make the execution time limit bite
// where Dataverse's does, on large batches and pages.
type Cost struct {
	Operation, Row time.Duration
}

// DataverseLimits are Dataverse's documented default limits. Execution time is the injected latency
// alone (no Cost): set one to model a busier server.
func DataverseLimits() Limits {
	return Limits{Requests: 6000, Window: 300 * time.Second, ExecutionTime: 20 * time.Minute, Concurrent: 52}
}

// BenchCost is the cost model of the service protection benchmarks: 10 ms an operation and 0.1 ms a row,
// so a 200-operation $batch costs 2 s and a page of 5,000 rows 0.51 s.
func BenchCost() Cost { return Cost{Operation: 10 * time.Millisecond, Row: 100 * time.Microsecond} }

func (l Limits) off() bool {
	return l.Requests <= 0 && l.Concurrent <= 0 && l.ExecutionTime <= 0 && l.Cost == Cost{}
}

// usage is one user's requests within the window, for the service protection limits.
type usage struct {
	starts   []time.Time // start times of admitted requests, oldest first
	spent    []spent     // execution time of finished requests, oldest first
	total    time.Duration
	inflight int
}

type spent struct {
	at time.Time
	d  time.Duration
}

// admit applies the service protection limits to a request by user. It returns the refusal, or a release
// function to call with the execution time the request took when it ends.
func (s *Server) admit(user string) (func(time.Duration), *apiError) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	l := s.opts.Limits
	if l.off() {
		return func(time.Duration) {}, nil
	}
	u := s.usage[user]
	if u == nil {
		u = &usage{}
		s.usage[user] = u
	}
	now := s.now()
	if l.Concurrent > 0 && u.inflight >= l.Concurrent {
		return nil, &apiError{status: http.StatusTooManyRequests, code: dataverse.CodeThrottledConcurrency, retryAfter: time.Second,
			message: fmt.Sprintf("Number of concurrent requests exceeded the limit of %d.", l.Concurrent)}
	}
	if l.Window > 0 {
		u.slide(now, l.Window)
		if l.Requests > 0 && len(u.starts) >= l.Requests {
			// Until enough requests leave the window that this one fits.
			wait := max(l.Window-now.Sub(u.starts[len(u.starts)-l.Requests]), time.Second)
			return nil, &apiError{status: http.StatusTooManyRequests, code: dataverse.CodeThrottledRequests, retryAfter: wait,
				message: fmt.Sprintf("Number of requests exceeded the limit of %d over time window of %d seconds.", l.Requests, int(l.Window.Seconds()))}
		}
		if l.ExecutionTime > 0 && u.total >= l.ExecutionTime {
			wait, left := time.Second, u.total
			for _, sp := range u.spent {
				left -= sp.d
				if left < l.ExecutionTime {
					wait = max(l.Window-now.Sub(sp.at), time.Second)
					break
				}
			}
			return nil, &apiError{status: http.StatusTooManyRequests, code: dataverse.CodeThrottledExecutionTime, retryAfter: wait,
				message: fmt.Sprintf("Combined execution time of incoming requests exceeded limit of %s  milliseconds over time window of %d seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
					thousands(l.ExecutionTime.Milliseconds()), int(l.Window.Seconds()))}
		}
		u.starts = append(u.starts, now)
	}
	u.inflight++
	return func(d time.Duration) {
		s.ctl.Lock()
		defer s.ctl.Unlock()
		u.inflight--
		if d > 0 && l.Window > 0 {
			u.spent = append(u.spent, spent{at: s.now(), d: d})
			u.total += d
		}
	}, nil
}

// slide drops what has left the window.
func (u *usage) slide(now time.Time, window time.Duration) {
	cut := 0
	for cut < len(u.starts) && now.Sub(u.starts[cut]) >= window {
		cut++
	}
	u.starts = u.starts[cut:]
	cut = 0
	for cut < len(u.spent) && now.Sub(u.spent[cut].at) >= window {
		u.total -= u.spent[cut].d
		cut++
	}
	u.spent = u.spent[cut:]
}

// cost is the execution time the cost model gives an operation and its result.
func (s *Server) cost(o op, res result) time.Duration {
	s.ctl.Lock()
	c := s.opts.Limits.Cost
	s.ctl.Unlock()
	if c == (Cost{}) {
		return 0
	}
	if res.err != nil {
		return c.Operation
	}
	return c.Operation + time.Duration(rowsTouched(o, res))*c.Row
}

// rowsTouched is the number of rows an operation returned or wrote: a page's rows, a bulk message's
// targets, otherwise one.
func rowsTouched(o op, res result) int {
	if m, ok := res.body.(map[string]any); ok {
		if v, ok := m["value"].([]any); ok {
			n := len(v)
			for _, row := range v {
				if r, ok := row.(map[string]any); ok {
					n += expandedRows(r)
				}
			}
			return n
		}
		if _, ok := m["@odata.etag"]; ok {
			return 1 + expandedRows(m) // a row, and the rows its $expand added
		}
		for _, k := range []string{"value", "Ids"} {
			if v, ok := m[k].([]any); ok {
				return len(v)
			}
			if v, ok := m[k].([]map[string]any); ok {
				return len(v)
			}
		}
	}
	if o.method == http.MethodPost && strings.Contains(o.path, "Multiple") {
		var body struct {
			Targets []json.RawMessage
		}
		if json.Unmarshal(o.body, &body) == nil && len(body.Targets) > 0 {
			return len(body.Targets)
		}
	}
	return 1
}

// thousands writes n with comma separators, as Dataverse's message does (1,200,000).
func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
