package intake

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cspconnector/csp-connector/connector/work"
)

// WebhookOptions configure the webhook intake.
type WebhookOptions struct {
	// Key is what Dataverse must present: the code query value (auth type WebhookKey) or, with Header set,
	// that header's value (auth type HttpHeader). An empty Key refuses every request.
	Key    string
	Header string
	// MaxBody caps the body (default 1 MiB; Dataverse cuts its own payload above 256 KB).
	MaxBody int64
	// SubmitTimeout bounds the wait for room in a full work queue before answering 503 (default 10 s;
	// Dataverse waits 60 s and retries once on 503).
	SubmitTimeout time.Duration
	// FailedKeys bounds the wrong keys one address may present: a burst of this many (default 20), then
	// one every FailedKeyEvery (default 3 s); beyond, a wrong key is answered 429 instead of 401. The right
	// key is never throttled.
	FailedKeys     int
	FailedKeyEvery time.Duration
	// Now is the limiter's clock (nil: time.Now).
	Now func() time.Time
}

// WebhookPath is where Dataverse's webhook service endpoint posts.
const WebhookPath = "/webhooks/dataverse"

// Webhook returns the handler for POST /webhooks/dataverse: it authenticates the post, decodes and judges
// the event, hands it to the work queue and answers 202 without waiting for the work. A message that can
// never succeed gets 400 with the reason (Dataverse marks its system job failed and does not retry); a
// full queue gets 503 (Dataverse retries once).
func (in *Intake) Webhook(opts WebhookOptions) http.Handler {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.SubmitTimeout <= 0 {
		opts.SubmitTimeout = 10 * time.Second
	}
	opts.FailedKeys = cmp.Or(opts.FailedKeys, 20)
	opts.FailedKeyEvery = cmp.Or(opts.FailedKeyEvery, 3*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	failures := &addressLimiter{every: opts.FailedKeyEvery, burst: opts.FailedKeys, now: opts.Now, byAddr: map[string]*addressAllowance{}}
	want := sha256.Sum256([]byte(opts.Key))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
			return
		}
		presented := r.URL.Query().Get("code")
		if opts.Header != "" {
			presented = r.Header.Get(opts.Header)
		}
		// Compare digests so neither the length nor the content of the key leaks through timing.
		got := sha256.Sum256([]byte(presented))
		if opts.Key == "" || presented == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			// Only wrong keys are counted and throttled: Dataverse, with the right key, is never held up,
			// even behind an ingress that gives every caller the same address.
			addr, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				addr = r.RemoteAddr
			}
			in.Metrics.Settled(work.SourceWebhook, "unauthorized")
			if wait := failures.fail(addr); wait > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
				writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many wrong webhook keys from this address; wait before trying again"})
				return
			}
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong webhook key"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, opts.MaxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				in.Metrics.Settled(work.SourceWebhook, "rejected")
				writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body larger than the webhook accepts"})
				return
			}
			// err names the connection's addresses (a slow sender's i/o timeout): not for the answer.
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the body could not be read: the sender was too slow or closed the connection before the body ended"})
			return
		}
		truncated := r.Header.Get("x-ms-dynamics-msg-size-exceeded") != ""
		ev, early := in.Receive(body, work.SourceWebhook, truncated)
		if early != nil {
			switch early.Action {
			case SettleDeadLetter:
				in.Metrics.Settled(work.SourceWebhook, "rejected")
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": early.Reason, "detail": early.Description})
			default:
				in.Metrics.Settled(work.SourceWebhook, "ignored")
				writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": early.Reason})
			}
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opts.SubmitTimeout)
		defer cancel()
		key := work.KeyFor(ev)
		if err := in.Queue.Submit(ctx, work.Item{Key: key, Event: &ev, Source: work.SourceWebhook}); err != nil {
			in.Metrics.Settled(work.SourceWebhook, "busy")
			w.Header().Set("Retry-After", "30")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the connector is busy or stopping: " + err.Error()})
			return
		}
		in.Metrics.Settled(work.SourceWebhook, "accepted")
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "key": key.String()})
	})
}

// addressLimiter counts failures per remote address: a token bucket each, refilled one per every, burst
// deep. It holds at most maxAddresses; when full, addresses unseen for an hour are forgotten, and if none
// is, all are (a flood of addresses must not grow it without bound).
type addressLimiter struct {
	every  time.Duration
	burst  int
	now    func() time.Time
	mu     sync.Mutex
	byAddr map[string]*addressAllowance
}

const maxAddresses = 10000

type addressAllowance struct {
	tokens float64
	at     time.Time
}

// fail takes one failure from addr's allowance and says how long addr must wait before its next failure
// is answered rather than refused (0: answer this one).
func (l *addressLimiter) fail(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.byAddr[addr]
	if a == nil {
		if len(l.byAddr) >= maxAddresses {
			for k, v := range l.byAddr {
				if now.Sub(v.at) > time.Hour {
					delete(l.byAddr, k)
				}
			}
			if len(l.byAddr) >= maxAddresses {
				clear(l.byAddr)
			}
		}
		a = &addressAllowance{tokens: float64(l.burst), at: now}
		l.byAddr[addr] = a
	}
	a.tokens = min(float64(l.burst), a.tokens+float64(now.Sub(a.at))/float64(l.every))
	a.at = now
	if a.tokens >= 1 {
		a.tokens--
		return 0
	}
	return time.Duration((1 - a.tokens) * float64(l.every))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
