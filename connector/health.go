package connector

import (
	"encoding/json"
	"net/http"
	"sort"
	"sync"
)

// Health holds the readiness of the connector's dependencies. Components report their state as it
// changes (the intake when it connects or fails, the Verify Connectivity job after each check); /readyz
// reads the last reports and calls nothing, so a probe every few seconds costs nothing.
type Health struct {
	mu     sync.Mutex
	checks map[string]func() error
}

// NewHealth returns an empty Health: ready until a component reports otherwise.
func NewHealth() *Health { return &Health{checks: map[string]func() error{}} }

// Check registers (or replaces) a readiness check that reads cached state.
func (h *Health) Check(name string, check func() error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// Set records a component's state: nil is ready.
func (h *Health) Set(name string, err error) { h.Check(name, func() error { return err }) }

// Status returns each component's state ("ok" or the problem) and whether all are ready.
func (h *Health) Status() (map[string]string, bool) {
	h.mu.Lock()
	names := make([]string, 0, len(h.checks))
	for name := range h.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := make([]func() error, len(names))
	for i, name := range names {
		checks[i] = h.checks[name]
	}
	h.mu.Unlock()
	out := map[string]string{}
	ready := true
	for i, name := range names {
		if err := checks[i](); err != nil {
			out[name] = err.Error()
			ready = false
		} else {
			out[name] = "ok"
		}
	}
	return out, ready
}

// Liveness serves /healthz: the process is up and serving HTTP.
func (h *Health) Liveness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Readiness serves /readyz: 200 when every component is ready, 503 with each one's state otherwise.
func (h *Health) Readiness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		status, ready := h.Status()
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "components": status})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
