package retry_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/retry"
)

func TestAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	assert.Equal(t, 30*time.Second, retry.After(now.Add(30*time.Second).Format(http.TimeFormat), now), "an HTTP date")
	assert.Equal(t, time.Duration(0), retry.After(now.Add(-time.Minute).Format(http.TimeFormat), now), "a date past")
	assert.Equal(t, time.Duration(0), retry.After("soon", now))
	assert.Equal(t, time.Duration(0), retry.After("", now))
	assert.Equal(t, time.Duration(0), retry.After("-3", now))
	assert.Equal(t, 1500*time.Millisecond, retry.After(" 1.5 ", now))
}

func TestPolicyDefaults(t *testing.T) {
	t.Parallel()
	assert.Equal(t, retry.Policy{MaxRetries: 4, MinWait: time.Second, MaxWait: time.Minute}, retry.Policy{}.WithDefaults(4))
	set := retry.Policy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Second}
	assert.Equal(t, set, set.WithDefaults(4), "what the caller set stays")
}

func TestBackoffPrefersRetryAfter(t *testing.T) {
	t.Parallel()
	jitter := func(minWait, maxWait time.Duration, attempt int, _ *http.Response) time.Duration {
		return 7 * time.Millisecond
	}
	b := retry.Backoff(jitter)
	resp := &http.Response{Header: http.Header{"Retry-After": {"3"}}}
	assert.Equal(t, 3*time.Second, b(time.Second, time.Minute, 1, resp))
	assert.Equal(t, 7*time.Millisecond, b(time.Second, time.Minute, 1, &http.Response{Header: http.Header{}}))
	assert.Equal(t, 7*time.Millisecond, b(time.Second, time.Minute, 1, nil), "a network error has no response")
}

func TestOutlastsContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		assert.False(t, retry.OutlastsContext(t.Context(), time.Hour), "no deadline")
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		assert.False(t, retry.OutlastsContext(ctx, 9*time.Second))
		assert.True(t, retry.OutlastsContext(ctx, 11*time.Second))
		assert.False(t, retry.OutlastsContext(ctx, 0), "no Retry-After: the backoff is bounded separately")
	})
}

func TestHTTPClient(t *testing.T) {
	t.Parallel()
	hc, base := retry.HTTPClient(nil)
	assert.Equal(t, 2*time.Minute, hc.Timeout)
	assert.Same(t, http.DefaultTransport, base)

	mine := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	hc, base = retry.HTTPClient(mine)
	require.NotSame(t, mine, hc, "a copy: wrapping it leaves the caller's client alone")
	hc.Transport = nil
	assert.NotNil(t, mine.Transport)
	assert.Same(t, mine.Transport, base)
	assert.Equal(t, time.Second, hc.Timeout)
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	p := retry.Policy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: time.Second}
	rc := retry.NewClient(http.DefaultClient, p, nil, func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 })
	assert.Equal(t, 2, rc.RetryMax)
	assert.Equal(t, time.Millisecond, rc.RetryWaitMin)
	assert.Equal(t, time.Second, rc.RetryWaitMax)
	assert.NotNil(t, rc.ErrorHandler, "the last answer is handed back, not wrapped in a giving-up error")
}
