package partnercenter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ConsentScope is what a partner user consents to in the secure application model: Partner Center on the
// user's behalf, and offline_access, without which no refresh token is issued.
const ConsentScope = "https://api.partnercenter.microsoft.com/user_impersonation offline_access"

// PKCE is a proof key for one authorization request (RFC 7636): the challenge goes in the authorize URL,
// the verifier, kept by the app, redeems the code. A code intercepted on its way back is useless without
// the verifier.
type PKCE struct {
	Verifier  string
	Challenge string // base64url(SHA-256(Verifier)), method S256
}

// NewPKCE returns a fresh proof key: 32 random bytes as the verifier (43 characters).
func NewPKCE() PKCE {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	v := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(v))
	return PKCE{Verifier: v, Challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// AuthorizeURLFor is the authorize endpoint beside a v2.0 token endpoint (…/oauth2/v2.0/token →
// …/oauth2/v2.0/authorize), so an overridden token URL (a simulator, another cloud) moves both.
func AuthorizeURLFor(tokenURL string) (string, error) {
	u, err := url.Parse(tokenURL)
	if err != nil || !strings.HasSuffix(u.Path, "/oauth2/v2.0/token") {
		return "", fmt.Errorf("partnercenter: %q is not a v2.0 token endpoint (…/oauth2/v2.0/token): no authorize endpoint beside it", tokenURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/token") + "/authorize"
	u.RawQuery = ""
	return u.String(), nil
}

// AuthorizationRequest is the sign-in a partner user completes in a browser: the authorization code flow
// with PKCE, answered on RedirectURI.
type AuthorizationRequest struct {
	TokenURL    string // the v2.0 token endpoint; the authorize endpoint is beside it
	ClientID    string
	RedirectURI string // http://localhost:<port> for a loopback listener
	State       string // random, checked on the way back
	PKCE        PKCE
}

// URL is the address the partner user opens to sign in and consent.
func (a AuthorizationRequest) URL() (string, error) {
	base, err := AuthorizeURLFor(a.TokenURL)
	if err != nil {
		return "", err
	}
	q := url.Values{
		"client_id":             {a.ClientID},
		"response_type":         {"code"},
		"redirect_uri":          {a.RedirectURI},
		"response_mode":         {"query"},
		"scope":                 {ConsentScope},
		"state":                 {a.State},
		"code_challenge":        {a.PKCE.Challenge},
		"code_challenge_method": {"S256"},
		"prompt":                {"select_account"},
	}
	return base + "?" + q.Encode(), nil
}

// ErrNoRefreshToken: the token endpoint redeemed the code but returned no refresh token (offline_access
// was not granted).
var ErrNoRefreshToken = errors.New("partnercenter: the sign-in gave no refresh token (offline_access was not granted)")

// RedeemCode exchanges the authorization code the browser brought back for the secure application
// model's first refresh token, with the app's secret and the request's PKCE verifier. The access token
// that comes with it is not kept: the connector gets its own from the refresh token. A refusal is a
// *TokenError, which carries neither the code nor the secret. hc may be nil.
func RedeemCode(ctx context.Context, hc *http.Client, a AuthorizationRequest, clientSecret, code string) (refreshToken string, err error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	tr, err := exchange(ctx, hc, a.TokenURL, url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {a.ClientID},
		"client_secret": {clientSecret},
		"code":          {code},
		"redirect_uri":  {a.RedirectURI},
		"code_verifier": {a.PKCE.Verifier},
		"scope":         {ConsentScope},
	})
	if err != nil {
		return "", err
	}
	if tr.RefreshToken == "" {
		return "", ErrNoRefreshToken
	}
	return tr.RefreshToken, nil
}
