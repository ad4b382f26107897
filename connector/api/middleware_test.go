package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/metrics"
)

// requestsCounted reads csp_http_api_requests_total for an operation and status.
func requestsCounted(t *testing.T, m *metrics.Recorder, operation string, status int) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "csp_http_api_requests_total" {
			continue
		}
		for _, c := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range c.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["operation"] == operation && labels["status"] == strconv.Itoa(status) {
				return c.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func readProblem(t *testing.T, rec *httptest.ResponseRecorder) Problem {
	t.Helper()
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p Problem
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p), rec.Body.String())
	assert.Equal(t, rec.Code, p.Status)
	return p
}

// TestRecoverPanic: a panicking operation is answered 500 in words (read the row before retrying), and
// the request is counted under its operation with that status.
func TestRecoverPanic(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	a := New(Deps{}, Options{Metrics: m})
	h := a.observe("Boom", a.recoverPanic(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("nil map") })))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Prefix+"/boom", nil))

	require.Equal(t, http.StatusInternalServerError, rec.Code)
	p := readProblem(t, rec)
	assert.Equal(t, "The connector failed on an internal error; see its log. Read the row before retrying: part of the work may be done.", p.Detail)
	assert.NotContains(t, rec.Body.String(), "nil map", "the panic's text stays in the log")
	assert.Equal(t, 1.0, requestsCounted(t, m, "Boom", http.StatusInternalServerError))
}

// TestReadBody: a body over the limit is a 413 naming the limit and goes no further; one at the limit is
// handed down whole.
func TestReadBody(t *testing.T) {
	t.Parallel()
	a := New(Deps{}, Options{})
	var got []byte
	h := a.observe("Op", a.readBody(1<<10, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = stateOf(r).body
		w.WriteHeader(http.StatusNoContent)
	})))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Prefix+"/op", strings.NewReader(strings.Repeat("a", 1<<10+1))))
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Equal(t, "The request body is larger than 1 KiB.", readProblem(t, rec).Detail)
	assert.Nil(t, got, "the operation is not run")

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Prefix+"/op", strings.NewReader(strings.Repeat("a", 1<<10))))
	require.Equal(t, http.StatusNoContent, rec.Code)
	assert.Len(t, got, 1<<10)
}

// TestRequireStarted: before the connector has reached Dataverse every operation is a 503 with
// Retry-After; after, it runs.
func TestRequireStarted(t *testing.T) {
	t.Parallel()
	started := false
	a := New(Deps{Started: func() bool { return started }}, Options{})
	h := a.observe("Op", a.requireStarted(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Prefix+"/op", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "30", rec.Header().Get("Retry-After"))
	assert.Contains(t, readProblem(t, rec).Detail, "The connector is starting")

	started = true
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Prefix+"/op", nil))
	assert.Equal(t, http.StatusNoContent, rec.Code)
}

// TestIdempotentRemembersSuccessOnly: a POST whose first run failed runs again under the same
// Idempotency-Key; once it succeeds, a repeat gets that answer, headers and all, without running, and the
// same key with another body is refused.
func TestIdempotentRemembersSuccessOnly(t *testing.T) {
	t.Parallel()
	a := New(Deps{}, Options{})
	runs := 0
	h := a.observe("Op", a.readBody(apiMaxBody, a.idempotent(a.answer(func(*apiCall) (apiResult, error) {
		runs++
		if runs == 1 {
			return apiResult{}, &apiError{status: http.StatusServiceUnavailable, retryAfter: 7, detail: "Not now."}
		}
		return apiResult{status: http.StatusAccepted, body: map[string]int{"run": runs}, location: Prefix + "/op/1", retryAfter: 5}, nil
	}))))
	post := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, Prefix+"/op", strings.NewReader(body))
		r.Header.Set("Idempotency-Key", "k1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	first := post("{}")
	require.Equal(t, http.StatusServiceUnavailable, first.Code)
	assert.Equal(t, "7", first.Header().Get("Retry-After"))
	assert.Equal(t, "Not now.", readProblem(t, first).Detail)

	second := post("{}")
	require.Equal(t, http.StatusAccepted, second.Code, "the failure was not remembered: it ran again")
	third := post("{}")
	assert.Equal(t, 2, runs, "the success is replayed, not run again")
	assert.Equal(t, second.Code, third.Code)
	assert.Equal(t, second.Header(), third.Header())
	assert.JSONEq(t, `{"run":2}`, third.Body.String())
	assert.Equal(t, "http://example.com"+Prefix+"/op/1", third.Header().Get("Location"))

	other := post(`{"x":1}`)
	require.Equal(t, http.StatusUnprocessableEntity, other.Code)
	assert.Equal(t, "idempotency_key_reused", readProblem(t, other).Code)
	assert.Equal(t, 2, runs)
}
