package connector

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
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
			in.Metrics.settled(SourceWebhook, "unauthorized")
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong webhook key"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, opts.MaxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				in.Metrics.settled(SourceWebhook, "rejected")
				writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body larger than the webhook accepts"})
				return
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading the body: " + err.Error()})
			return
		}
		truncated := r.Header.Get("x-ms-dynamics-msg-size-exceeded") != ""
		ev, early := in.Receive(body, SourceWebhook, truncated)
		if early != nil {
			switch early.Action {
			case SettleDeadLetter:
				in.Metrics.settled(SourceWebhook, "rejected")
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": early.Reason, "detail": early.Description})
			default:
				in.Metrics.settled(SourceWebhook, "ignored")
				writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored", "reason": early.Reason})
			}
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), opts.SubmitTimeout)
		defer cancel()
		key := KeyFor(ev)
		if err := in.Queue.Submit(ctx, WorkItem{Key: key, Event: &ev, Source: SourceWebhook}); err != nil {
			in.Metrics.settled(SourceWebhook, "busy")
			w.Header().Set("Retry-After", "30")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the connector is busy or stopping: " + err.Error()})
			return
		}
		in.Metrics.settled(SourceWebhook, "accepted")
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "key": key.String()})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
