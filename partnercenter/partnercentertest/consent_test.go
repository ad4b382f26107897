package partnercentertest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// authorize GETs the simulator's authorize endpoint as a browser would, without following the redirect,
// and returns the status and where it redirects to.
func authorize(t *testing.T, srv *partnercentertest.Server, params url.Values) (int, *url.URL, string) {
	t.Helper()
	hc := *srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := hc.Get(srv.AuthorizeURL() + "?" + params.Encode())
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusFound {
		return res.StatusCode, nil, string(body)
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	return res.StatusCode, loc, string(body)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestAuthorizationCodeWithPKCE: the secure application model's consent. The authorize endpoint sends the
// browser back to the loopback redirect URI with a code and the state; the code is redeemed once, with
// the same redirect URI and the PKCE verifier, for an app+user token and a refresh token that work with
// the rest of the simulator.
func TestAuthorizationCodeWithPKCE(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	srv := newServer(t, partnercentertest.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	c := anonymous(t, srv)
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789"
	const redirect = "http://localhost:53117"
	params := url.Values{
		"client_id": {srv.ClientID()}, "response_type": {"code"}, "redirect_uri": {redirect}, "state": {"st-1"},
		"scope":          {partnercentertest.UserImpersonationScope + " offline_access"},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"},
	}
	status, loc, body := authorize(t, srv, params)
	require.Equal(t, http.StatusFound, status, body)
	assert.Equal(t, "localhost:53117", loc.Host, "back to the loopback listener")
	assert.Equal(t, "st-1", loc.Query().Get("state"))
	code := loc.Query().Get("code")
	require.NotEmpty(t, code)

	redeem := func(code, redirectURI, verifier string) response {
		return c.tokenRequest(url.Values{
			"grant_type": {"authorization_code"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()},
			"code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier},
			"scope": {partnercentertest.UserImpersonationScope + " offline_access"},
		})
	}
	errorOf := func(r response) (string, string) {
		v := r.tokenJSON(t)
		return v["error"].(string), v["error_description"].(string)
	}

	res := redeem(code, redirect, verifier+"x")
	require.Equal(t, http.StatusBadRequest, res.status)
	name, desc := errorOf(res)
	assert.Equal(t, "invalid_grant", name)
	assert.Contains(t, desc, "AADSTS50148: The code_verifier does not match the code_challenge")
	res = redeem(code, "http://localhost:9999", verifier)
	require.Equal(t, http.StatusBadRequest, res.status, "the redirect URI must be the authorize request's")
	name, _ = errorOf(res)
	assert.Equal(t, "invalid_grant", name)
	res = redeem(code, redirect, "")
	require.Equal(t, http.StatusBadRequest, res.status, "a code issued with a challenge needs the verifier")

	res = redeem(code, redirect, verifier)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	tok := res.tokenJSON(t)
	refresh, _ := tok["refresh_token"].(string)
	require.NotEmpty(t, refresh, "offline_access was asked for")
	user := c
	user.token = tok["access_token"].(string)
	assert.Equal(t, http.StatusOK, user.get("agreements?agreementType=MicrosoftCustomerAgreement").status, "an app+user token reads agreement metadata")

	res = redeem(code, redirect, verifier)
	require.Equal(t, http.StatusBadRequest, res.status, "a code is redeemed once")
	_, desc = errorOf(res)
	assert.Contains(t, desc, "AADSTS54005")

	res = c.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()},
		"refresh_token": {refresh}, "scope": {partnercentertest.Scope}})
	require.Equal(t, http.StatusOK, res.status, "the consent's refresh token is exchanged like any: %s", res.body)

	// Without offline_access there is no refresh token; a code lapses after ten minutes.
	params.Del("code_challenge")
	params.Del("code_challenge_method")
	params.Set("scope", partnercentertest.UserImpersonationScope)
	_, loc, _ = authorize(t, srv, params)
	res = redeem(loc.Query().Get("code"), redirect, "")
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	assert.NotContains(t, res.tokenJSON(t), "refresh_token")
	_, loc, _ = authorize(t, srv, params)
	mu.Lock()
	now = now.Add(11 * time.Minute)
	mu.Unlock()
	res = redeem(loc.Query().Get("code"), redirect, "")
	require.Equal(t, http.StatusBadRequest, res.status)
	_, desc = errorOf(res)
	assert.Contains(t, desc, "AADSTS70008")
}

// TestAuthorizeRefusals: an unknown app or a redirect URI that is not loopback is refused on Entra's error
// page (nowhere safe to send the browser); other problems go back to the app as error= with the state.
func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	base := func() url.Values {
		return url.Values{"client_id": {srv.ClientID()}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1:5000/cb"}, "state": {"s"},
			"scope": {partnercentertest.UserImpersonationScope}, "code_challenge": {s256(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"}}
	}
	p := base()
	p.Set("client_id", "00000000-0000-4000-8000-000000000001")
	status, _, body := authorize(t, srv, p)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, "AADSTS700016")
	p = base()
	p.Set("redirect_uri", "https://evil.example/cb")
	status, _, body = authorize(t, srv, p)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, "AADSTS50011")

	p = base()
	p.Set("scope", "https://graph.microsoft.com/User.Read")
	status, loc, _ := authorize(t, srv, p)
	require.Equal(t, http.StatusFound, status)
	assert.Equal(t, "invalid_resource", loc.Query().Get("error"))
	assert.Equal(t, "s", loc.Query().Get("state"))
	assert.Empty(t, loc.Query().Get("code"))
	p = base()
	p.Set("code_challenge_method", "S512")
	_, loc, _ = authorize(t, srv, p)
	assert.Equal(t, "invalid_request", loc.Query().Get("error"))
}
