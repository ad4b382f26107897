package bearer_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/bearer"
)

// credential hands out tok-1, tok-2, … each valid for life, and records the scopes it was asked for.
type credential struct {
	mu     sync.Mutex
	life   time.Duration
	calls  int
	scopes []string
	err    error
}

func (c *credential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.scopes = append(c.scopes, strings.Join(o.Scopes, " "))
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: "tok-" + string(rune('0'+c.calls)), ExpiresOn: time.Now().Add(c.life)}, nil
}

func TestCacheAsksOncePerLifetimeAndRenewsBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cred := &credential{life: time.Hour}
		c := bearer.NewCache(cred, "https://example.test/.default")
		for range 3 {
			tok, err := c.Token(t.Context())
			require.NoError(t, err)
			assert.Equal(t, "tok-1", tok)
		}
		assert.Equal(t, 1, cred.calls)
		assert.Equal(t, []string{"https://example.test/.default"}, cred.scopes)

		time.Sleep(time.Hour - bearer.RefreshMargin) // fake clock: the token is now inside the margin
		tok, err := c.Token(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "tok-2", tok)
	})
}

func TestCacheInvalidateKeepsAReplacedToken(t *testing.T) {
	cred := &credential{life: time.Hour}
	c := bearer.NewCache(cred, "s")
	_, err := c.Token(t.Context())
	require.NoError(t, err)
	c.Invalidate("some-older-token") // another request already replaced it: nothing to drop
	tok, _ := c.Token(t.Context())
	assert.Equal(t, "tok-1", tok)
	c.Invalidate("tok-1")
	tok, _ = c.Token(t.Context())
	assert.Equal(t, "tok-2", tok)
}

func TestCacheFailureIsATokenError(t *testing.T) {
	cause := errors.New("AADSTS7000215: invalid client secret")
	c := bearer.NewCache(&credential{err: cause}, "s")
	_, err := c.Token(t.Context())
	var te *bearer.TokenError
	require.ErrorAs(t, err, &te)
	assert.ErrorIs(t, err, cause)
	assert.Equal(t, "get access token: AADSTS7000215: invalid client secret", err.Error())
}

// server refuses every token but the accepted one with a 401 and echoes the body it received.
func server(t *testing.T, accepted string) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+accepted {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestTransportRetriesA401OnceWithAFreshToken(t *testing.T) {
	srv, seen := server(t, "tok-2")
	cred := &credential{life: time.Hour}
	hc := &http.Client{Transport: bearer.Transport{Tokens: bearer.NewCache(cred, "s"), Next: http.DefaultTransport}}
	resp, err := hc.Post(srv.URL, "text/plain", strings.NewReader("payload"))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "payload", string(body), "the retry resends the body")
	assert.Equal(t, []string{"Bearer tok-1 payload", "Bearer tok-2 payload"}, *seen)
}

func TestTransportGivesUpWhenTheFreshTokenIsRefusedToo(t *testing.T) {
	srv, seen := server(t, "never")
	hc := &http.Client{Transport: bearer.Transport{Tokens: bearer.NewCache(&credential{life: time.Hour}, "s"), Next: http.DefaultTransport}}
	resp, err := hc.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Len(t, *seen, 2, "one retry, not a loop")
}

func TestTransportDoesNotResendABodyItCannotReadAgain(t *testing.T) {
	srv, seen := server(t, "tok-2")
	hc := &http.Client{Transport: bearer.Transport{Tokens: bearer.NewCache(&credential{life: time.Hour}, "s"), Next: http.DefaultTransport}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("once")))
	require.NoError(t, err)
	req.GetBody = nil
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Len(t, *seen, 1)
}

func TestTransportWithoutTokensSendsNoAuthorization(t *testing.T) {
	srv, seen := server(t, "x")
	hc := &http.Client{Transport: bearer.Transport{Next: http.DefaultTransport}}
	resp, err := hc.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{" "}, *seen)
}

func TestTransportReturnsTheTokenErrorWithoutSending(t *testing.T) {
	srv, seen := server(t, "x")
	hc := &http.Client{Transport: bearer.Transport{Tokens: bearer.NewCache(&credential{err: errors.New("no")}, "s"), Next: http.DefaultTransport}}
	_, err := hc.Get(srv.URL)
	var te *bearer.TokenError
	require.ErrorAs(t, err, &te)
	assert.Empty(t, *seen)
}
