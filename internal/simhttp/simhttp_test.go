package simhttp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/simhttp"
)

func get(t *testing.T, ctx context.Context, h http.Handler) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sim.test/x", nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: simhttp.Transport{Name: "sim", Handler: h}}).Do(req)
	if resp != nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func TestTransport(t *testing.T) {
	t.Parallel()
	t.Run("serves the handler in memory", func(t *testing.T) {
		resp, err := get(t, t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, "hi")
		}))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, http.StatusTeapot, resp.StatusCode)
		assert.Equal(t, "hi", string(body))
		assert.NotNil(t, resp.Request)
	})
	t.Run("a dropped connection is a transport error", func(t *testing.T) {
		_, err := get(t, t.Context(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Contains(t, err.Error(), "sim: GET /x: connection closed without a response")
	})
	t.Run("a context that ends while served gets no answer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			served := false
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err := get(t, ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(2 * time.Second) // a handler that carries on, as a write does, after the client gave up
				served = true
			}))
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.True(t, served)
		})
	})
	t.Run("a context that already ended is not served", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		served := false
		_, err := get(t, ctx, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
		require.ErrorIs(t, err, context.Canceled)
		assert.False(t, served)
	})
}

func TestPause(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		assert.True(t, simhttp.Pause(t.Context(), 3*time.Second))
		assert.Equal(t, 3*time.Second, time.Since(start))

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		assert.False(t, simhttp.Pause(ctx, 3*time.Second), "the client gave up first")
		assert.False(t, simhttp.Pause(ctx, 0), "already gone")
		assert.True(t, simhttp.Pause(t.Context(), 0))
	})
}

type fault struct {
	Path         string
	Times, After int
}

func take(fs *simhttp.Faults[fault], path string) (fault, bool) {
	f, _, ok := fs.Take(func(f *fault) bool {
		if f.Path != path {
			return false
		}
		if f.After > 0 {
			f.After--
			return false
		}
		return true
	}, func(f *fault) *int { return &f.Times })
	return f, ok
}

func TestFaults(t *testing.T) {
	t.Parallel()
	var fs simhttp.Faults[fault]
	fs.SetLatency(time.Second)
	fs.Inject(fault{Path: "a", Times: 2})
	fs.Inject(fault{Path: "b", After: 1})

	f, ok := take(&fs, "a")
	require.True(t, ok)
	assert.Equal(t, fault{Path: "a", Times: 2}, f, "a copy as injected")
	_, ok = take(&fs, "a")
	assert.True(t, ok)
	_, ok = take(&fs, "a")
	assert.False(t, ok, "used up after Times")

	_, ok = take(&fs, "b")
	assert.False(t, ok, "After lets the first one through")
	for range 3 {
		_, ok = take(&fs, "b")
		assert.True(t, ok, "Times 0 lasts")
	}
	_, latency, ok := fs.Take(func(*fault) bool { return false }, func(f *fault) *int { return &f.Times })
	assert.False(t, ok)
	assert.Equal(t, time.Second, latency, "the latency comes with or without a fault")

	fs.Clear()
	_, ok = take(&fs, "b")
	assert.False(t, ok)
}

func TestLog(t *testing.T) {
	t.Parallel()
	var l simhttp.Log[string]
	l.Record("a")
	l.Record("b")
	got := l.Entries()
	assert.Equal(t, []string{"a", "b"}, got)
	got[0] = "changed"
	assert.Equal(t, []string{"a", "b"}, l.Entries(), "a copy")
	l.Reset()
	assert.Empty(t, l.Entries())
}

func TestStatusWriter(t *testing.T) {
	t.Parallel()
	var heard []int
	rec := httptest.NewRecorder()
	w := &simhttp.StatusWriter{ResponseWriter: rec, Status: http.StatusOK, OnHeader: func(s int) { heard = append(heard, s) }}
	_, _ = w.Write([]byte("x"))
	_, _ = w.Write([]byte("y"))
	assert.Equal(t, []int{http.StatusOK}, heard, "once, before the first byte")
	assert.Equal(t, http.StatusOK, w.Status)

	rec = httptest.NewRecorder()
	w = &simhttp.StatusWriter{ResponseWriter: rec, Status: http.StatusOK}
	w.WriteHeader(http.StatusConflict)
	assert.Equal(t, http.StatusConflict, w.Status)
	assert.Equal(t, http.StatusConflict, rec.Code)
}

func TestStartListensOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	_, err := simhttp.Start("sim", http.NotFoundHandler(), "0.0.0.0:0")
	require.EqualError(t, err, `sim: address "0.0.0.0:0" is not a loopback address`)
	_, err = simhttp.Start("sim", http.NotFoundHandler(), "nonsense")
	require.Error(t, err)

	srv, err := simhttp.Start("sim", http.NotFoundHandler(), "")
	require.NoError(t, err)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}
