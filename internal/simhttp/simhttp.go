// Package simhttp holds the HTTP parts the two simulators (dataversetest, partnercentertest) share, the way
// azcore's fake package serves every Azure fake: a loopback listener, a transport that serves a handler in
// memory, injected faults with a latency, a request log, and a response writer that remembers its status.
//
// What each simulator answers (error shapes, headers, which requests a fault matches) stays in the
// simulator; this package only holds the mechanics they had each written out.
package simhttp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Start serves h on addr ("127.0.0.1:0" if empty), which must be a loopback address: a simulator accepts
// tokens it issued itself and must not be reachable from elsewhere. name prefixes errors.
func Start(name string, h http.Handler, addr string) (*httptest.Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: address %q: %w", name, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s: address %q is not a loopback address", name, addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	return srv, nil
}

// Transport serves requests with Handler in the calling goroutine, without a socket, so that injected
// latency sleeps on the caller's clock and tests can run inside testing/synctest. Name prefixes errors.
type Transport struct {
	Name    string
	Handler http.Handler
}

// RoundTrip serves req. A handler that aborts (a dropped connection) becomes a transport error, as it would
// on a socket; so does a context that ended while the request was served, because a client that gave up
// never sees the answer even when the server acted on it.
func (t Transport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				resp, err = nil, fmt.Errorf("%s: %s %s: connection closed without a response: %w", t.Name, req.Method, req.URL.Path, io.ErrUnexpectedEOF)
				return
			}
			panic(p)
		}
	}()
	if req.Body == nil {
		req.Body = http.NoBody
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	t.Handler.ServeHTTP(rec, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	resp = rec.Result()
	resp.Request = req
	return resp, nil
}

// Pause waits d, the network and server time of a request. It reports false when the client gave up first
// (or had already given up).
func Pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Faults holds the injected faults of type F, matched in the order they were injected, and the latency
// added to every answer. It is safe for concurrent use.
type Faults[F any] struct {
	mu      sync.Mutex
	list    []*F
	latency time.Duration
}

// Inject adds a fault.
func (fs *Faults[F]) Inject(f F) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = append(fs.list, &f)
}

// Clear removes every fault.
func (fs *Faults[F]) Clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = nil
}

// SetLatency sets the latency Take returns.
func (fs *Faults[F]) SetLatency(d time.Duration) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.latency = d
}

// Take returns a copy of the first fault that matches, the latency, and whether one matched. match may
// change the fault it is given (to count down requests it lets through); times points at the fault's
// remaining uses: a positive count is used up by one and the fault removed at zero, zero means until Clear.
func (fs *Faults[F]) Take(match func(*F) bool, times func(*F) *int) (F, time.Duration, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.list {
		if !match(f) {
			continue
		}
		matched := *f
		if n := times(f); *n > 0 {
			*n--
			if *n == 0 {
				fs.list = append(fs.list[:i], fs.list[i+1:]...)
			}
		}
		return matched, fs.latency, true
	}
	var none F
	return none, fs.latency, false
}

// Log is a request log of entries of type R. It is safe for concurrent use.
type Log[R any] struct {
	mu      sync.Mutex
	entries []R
}

// Record appends an entry.
func (l *Log[R]) Record(r R) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, r)
}

// Entries returns a copy of the log.
func (l *Log[R]) Entries() []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]R(nil), l.entries...)
}

// Reset empties the log.
func (l *Log[R]) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

// StatusWriter remembers the status written, and calls OnHeader (once, when set) just before the header
// goes out, so a request log can be complete by the time a client reads the answer.
type StatusWriter struct {
	http.ResponseWriter
	Status   int
	OnHeader func(status int)
}

// WriteHeader implements http.ResponseWriter.
func (w *StatusWriter) WriteHeader(code int) {
	w.Status = code
	if w.OnHeader != nil {
		w.OnHeader(code)
		w.OnHeader = nil
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.OnHeader != nil {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
