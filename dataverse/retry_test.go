package dataverse_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func newHTTPServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func countRequests(srv *dataversetest.Server, method, path string) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// The retry tests run in synctest bubbles against the in-memory simulator: every wait is on the fake
// clock, so a 7-second Retry-After costs no real time and the elapsed time is exact.

func TestRetryHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, nil)
		srv.Inject(dataversetest.Fault{Method: http.MethodGet, Status: http.StatusTooManyRequests, RetryAfter: 7 * time.Second, Times: 2})
		start := time.Now()
		_, err := c.WhoAmI(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 14*time.Second, time.Since(start), "two waits of exactly Retry-After")
		assert.Equal(t, 3, countRequests(srv, http.MethodGet, "WhoAmI"))
	})
}

func TestRetryNeverSleepsPastTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, nil)
		srv.Inject(dataversetest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 120 * time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.WhoAmI(ctx)
		require.Error(t, err)
		assert.Zero(t, time.Since(start), "a wait longer than the deadline is not started")
		assert.True(t, dataverse.IsThrottled(err), err)
		assert.Equal(t, 120*time.Second, dataverse.RetryAfter(err), "the caller learns when to come back")
		assert.Equal(t, 1, countRequests(srv, http.MethodGet, "WhoAmI"))
	})
}

func TestRetryStopsWhenTheContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{MinRetryWait: 10 * time.Second, MaxRetryWait: 10 * time.Second})
		srv.Inject(dataversetest.Fault{Status: http.StatusServiceUnavailable})
		ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.WhoAmI(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.LessOrEqual(t, time.Since(start), 25*time.Second)
	})
}

func TestRetriesAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{MaxRetries: 3})
		srv.Inject(dataversetest.Fault{Status: http.StatusBadGateway})
		_, err := c.WhoAmI(t.Context())
		require.Error(t, err)
		assert.True(t, dataverse.IsTransient(err), err)
		assert.Equal(t, 4, countRequests(srv, http.MethodGet, "WhoAmI"), "one try and three retries")
	})
}

func TestOnlySafeRequestsAreRetriedAfterAmbiguousFailures(t *testing.T) {
	cases := []struct {
		name      string
		fault     dataversetest.Fault
		wantPosts int
		wantOK    bool
	}{
		// The server may have created the row before failing: creating again could duplicate it.
		{"503 on create", dataversetest.Fault{Method: http.MethodPost, Status: http.StatusServiceUnavailable, Times: 1}, 1, false},
		{"dropped connection on create", dataversetest.Fault{Method: http.MethodPost, Drop: true, Times: 1}, 1, false},
		// A 429 means the server refused before doing anything: safe for every request.
		{"429 on create", dataversetest.Fault{Method: http.MethodPost, Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 1}, 2, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, srv := newMemoryEnv(t, nil)
				srv.Inject(tc.fault)
				_, err := c.Create(t.Context(), schema.SetProviders, dataverse.Row{"csp_name": "p"})
				assert.Equal(t, tc.wantOK, err == nil, err)
				assert.Equal(t, tc.wantPosts, countRequests(srv, http.MethodPost, schema.SetProviders))
			})
		})
	}
	t.Run("dropped connection on an update is retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, srv := newMemoryEnv(t, nil)
			id := createProvider(t, t.Context(), c, "p")
			srv.Inject(dataversetest.Fault{Method: http.MethodPatch, Drop: true, Times: 1})
			_, err := c.Update(t.Context(), schema.SetProviders, id, dataverse.Row{"csp_name": "q"}, nil)
			require.NoError(t, err)
			row, _ := srv.Row(schema.TableProvider, id.String())
			assert.Equal(t, "q", row["csp_name"])
		})
	})
}

// countingCredential hands out numbered tokens and counts requests for them.
type countingCredential struct {
	calls atomic.Int32
}

func (c *countingCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := c.calls.Add(1)
	if len(opts.Scopes) != 1 || opts.Scopes[0] != "http://dataverse.test/.default" {
		panic("unexpected scopes " + opts.Scopes[0])
	}
	return azcore.AccessToken{Token: "token-" + string(rune('0'+n)), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestTokensAreCachedAndRefreshedOnceAfter401(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
		cred := &countingCredential{}
		var seen []string
		var mu sync.Mutex
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Authorization"))
			mu.Unlock()
			if r.Header.Get("Authorization") == "Bearer token-1" && r.URL.Path == "/api/data/v9.2/csp_providers" {
				w.WriteHeader(http.StatusUnauthorized) // the first token was revoked
				return
			}
			srv.ServeHTTP(w, r)
		})
		c, err := dataverse.NewClient("http://dataverse.test", cred, &dataverse.ClientOptions{HTTPClient: &http.Client{Transport: handlerTransport{h}}})
		require.NoError(t, err)
		for range 3 {
			_, err := c.WhoAmI(t.Context())
			require.NoError(t, err)
		}
		assert.Equal(t, int32(1), cred.calls.Load(), "one token for many requests")
		_, err = c.Create(t.Context(), schema.SetProviders, dataverse.Row{"csp_name": "p"})
		require.NoError(t, err, "a 401 is retried once with a fresh token, even for a create")
		assert.Equal(t, int32(2), cred.calls.Load())
		assert.Equal(t, []string{"Bearer token-1", "Bearer token-1", "Bearer token-1", "Bearer token-1", "Bearer token-2"}, seen)
		assert.Len(t, srv.Rows(schema.TableProvider), 1)
	})
}

// handlerTransport serves requests with a handler in the calling goroutine.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func TestConcurrencyLimitIsSharedAndFollowsDOPHint(t *testing.T) {
	t.Run("limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var inFlight, peak atomic.Int32
			srv := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
			srv.SetLatency(time.Second)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := inFlight.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				srv.ServeHTTP(w, r)
				inFlight.Add(-1)
			})
			c, err := dataverse.NewClient("http://dataverse.test", nil, &dataverse.ClientOptions{MaxConcurrency: 3, HTTPClient: &http.Client{Transport: handlerTransport{h}}})
			require.NoError(t, err)
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					_, err := c.WhoAmI(t.Context())
					assert.NoError(t, err)
				})
			}
			wg.Wait()
			assert.Equal(t, int32(3), peak.Load())
		})
	})
	t.Run("dop hint", func(t *testing.T) {
		srv, err := dataversetest.NewServer(dataversetest.Options{DOPHint: 5})
		require.NoError(t, err)
		defer srv.Close()
		c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
		require.NoError(t, err)
		_, err = c.WhoAmI(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 5, c.Limit())
	})
}

func TestCookiesAreNeverSent(t *testing.T) {
	t.Parallel()
	// Dataverse's affinity cookie would pin every request to one web server; limits are per server.
	var cookies atomic.Int32
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cookie") != "" {
			cookies.Add(1)
		}
		http.SetCookie(w, &http.Cookie{Name: "ARRAffinity", Value: "server-7"})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"UserId":"75c2dd85-e89e-e711-8122-000d3aa2331c","BusinessUnitId":"e2b9dd85-e89e-e711-8122-000d3aa2331c","OrganizationId":"4ef5b371-e89e-e711-8122-000d3aa2331c"}`))
	}))
	hc := srv.Client()
	c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: hc})
	require.NoError(t, err)
	for range 3 {
		_, err := c.WhoAmI(t.Context())
		require.NoError(t, err)
	}
	assert.Zero(t, cookies.Load())
}

func TestStandardHeaders(t *testing.T) {
	t.Parallel()
	var got http.Header
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("OData-EntityId", "http://x/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)")
		w.WriteHeader(http.StatusNoContent)
	}))
	c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
	require.NoError(t, err)
	_, err = c.Create(t.Context(), "accounts", dataverse.Row{"name": "x"})
	require.NoError(t, err)
	assert.Equal(t, "application/json", got.Get("Accept"))
	assert.Equal(t, "4.0", got.Get("OData-MaxVersion"))
	assert.Equal(t, "4.0", got.Get("OData-Version"))
	assert.Equal(t, "application/json; charset=utf-8", got.Get("Content-Type"))
	assert.Empty(t, got.Get("Authorization"), "no credential, no token")
}
