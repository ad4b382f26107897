package partnercenter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/cspconnector/csp-connector/internal/apierror"
)

// Scope is the token scope of every Partner Center call.
const Scope = "https://api.partnercenter.microsoft.com/.default"

// TokenURL is Microsoft Entra ID's v2 token endpoint for a partner tenant.
func TokenURL(partnerTenantID string) string {
	return "https://login.microsoftonline.com/" + url.PathEscape(partnerTenantID) + "/oauth2/v2.0/token"
}

// RefreshTokenStore keeps the secure application model's refresh token. Every exchange returns a new
// refresh token that replaces the old one, so the store is written as well as read; it can be a file, a
// vault, or memory.
type RefreshTokenStore interface {
	Load(ctx context.Context) (string, error)
	Save(ctx context.Context, refreshToken string) error
}

// FileTokenStore keeps the refresh token in a file readable only by its owner. Saves are atomic (write,
// then rename), so a crash never leaves half a token.
type FileTokenStore struct{ Path string }

// Load reads the token.
func (f FileTokenStore) Load(context.Context) (string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("partnercenter: read refresh token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("partnercenter: refresh token file %s is empty", f.Path)
	}
	return tok, nil
}

// Save replaces the token.
func (f FileTokenStore) Save(_ context.Context, refreshToken string) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), ".refresh-token-*")
	if err != nil {
		return fmt.Errorf("partnercenter: save refresh token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.WriteString(refreshToken + "\n")
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		return fmt.Errorf("partnercenter: save refresh token: %w", err)
	}
	return nil
}

// MemoryTokenStore keeps the refresh token in memory (tests, and callers with their own persistence).
type MemoryTokenStore struct {
	mu    sync.Mutex
	token string
}

// NewMemoryTokenStore returns a store holding token.
func NewMemoryTokenStore(token string) *MemoryTokenStore { return &MemoryTokenStore{token: token} }

// Load returns the token.
func (m *MemoryTokenStore) Load(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token == "" {
		return "", errors.New("partnercenter: no refresh token stored")
	}
	return m.token, nil
}

// Save replaces the token.
func (m *MemoryTokenStore) Save(_ context.Context, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.token = token
	return nil
}

// RefreshTokenCredential gives app+user access tokens from the secure application model: a refresh token
// a partner user (Admin agent or Sales agent, with MFA) consented to once, exchanged at the token
// endpoint. Each exchange's new refresh token is saved to the store before the access token is used, so a
// rotation is never lost. It implements azcore.TokenCredential.
type RefreshTokenCredential struct {
	tokenURL, clientID, clientSecret string
	store                            RefreshTokenStore
	hc                               *http.Client

	mu sync.Mutex // one exchange at a time: two concurrent exchanges would race to rotate the token
}

// NewRefreshTokenCredential returns a credential that exchanges the stored refresh token at tokenURL
// (TokenURL(partnerTenant) in production) for the app registration clientID/clientSecret.
func NewRefreshTokenCredential(tokenURL, clientID, clientSecret string, store RefreshTokenStore, hc *http.Client) (*RefreshTokenCredential, error) {
	if tokenURL == "" || clientID == "" || clientSecret == "" || store == nil {
		return nil, errors.New("partnercenter: a refresh-token credential needs a token URL, a client id, a client secret and a store")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &RefreshTokenCredential{tokenURL: tokenURL, clientID: clientID, clientSecret: clientSecret, store: store, hc: hc}, nil
}

// TokenError is a refused token request, with Microsoft Entra ID's error (invalid_grant, …) and the
// AADSTS text. It never contains the token or the secret.
type TokenError struct {
	StatusCode  int
	Code        string
	Description string
	// Grant is the grant_type of the refused request (refresh_token, authorization_code, …).
	Grant string
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("partnercenter: the token endpoint refused the request: HTTP %d %s: %s", e.StatusCode, e.Code, e.Description)
	if e.Code == "invalid_grant" && e.Grant == "refresh_token" {
		msg += " (the refresh token expired after 90 days without use, was revoked, or needs a new MFA sign-in: a partner Admin agent must consent again)"
	}
	return msg
}

// GetToken exchanges the stored refresh token for an access token.
func (c *RefreshTokenCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	refresh, err := c.store.Load(ctx)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {c.clientID},
		"client_secret": {c.clientSecret},
		"refresh_token": {refresh},
		"scope":         {scopeOf(opts)},
	}
	tr, err := exchange(ctx, c.hc, c.tokenURL, form)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	if tr.RefreshToken != "" && tr.RefreshToken != refresh {
		if err := c.store.Save(ctx, tr.RefreshToken); err != nil {
			return azcore.AccessToken{}, fmt.Errorf("partnercenter: the token endpoint rotated the refresh token but it could not be saved: %w", err)
		}
	}
	return azcore.AccessToken{Token: tr.AccessToken, ExpiresOn: time.Now().Add(expiresIn(tr.ExpiresIn))}, nil
}

func scopeOf(opts policy.TokenRequestOptions) string {
	if len(opts.Scopes) > 0 {
		return strings.Join(opts.Scopes, " ")
	}
	return Scope
}

type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	Error        string          `json:"error"`
	Description  string          `json:"error_description"`
}

// exchange posts a token request (OAuth 2.0 form) and returns the answer, or a *TokenError that carries
// neither the token nor the secret.
func exchange(ctx context.Context, hc *http.Client, tokenURL string, form url.Values) (tokenResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("partnercenter: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("partnercenter: token request: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, apierror.MaxBody))
	var tr tokenResponse
	if err := json.Unmarshal(stripBOM(body), &tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		te := &TokenError{StatusCode: resp.StatusCode, Code: tr.Error, Description: firstLine(tr.Description), Grant: form.Get("grant_type")}
		if te.Code == "" && te.Description == "" {
			te.Description = http.StatusText(resp.StatusCode)
		}
		return tokenResponse{}, te
	}
	return tr, nil
}

// ClientSecretCredential gets app-only tokens with the client-credentials grant from any OAuth 2.0 token
// endpoint. In production use azidentity's ClientSecretCredential (Microsoft Entra ID); this one exists
// for token endpoints azidentity will not talk to, such as the Partner Center simulator's.
type ClientSecretCredential struct {
	tokenURL, clientID, clientSecret string
	hc                               *http.Client
}

// NewClientSecretCredential returns a client-credentials credential for tokenURL.
func NewClientSecretCredential(tokenURL, clientID, clientSecret string, hc *http.Client) (*ClientSecretCredential, error) {
	if tokenURL == "" || clientID == "" || clientSecret == "" {
		return nil, errors.New("partnercenter: a client-secret credential needs a token URL, a client id and a secret")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &ClientSecretCredential{tokenURL: tokenURL, clientID: clientID, clientSecret: clientSecret, hc: hc}, nil
}

// GetToken requests an app-only token.
func (c *ClientSecretCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tr, err := exchange(ctx, c.hc, c.tokenURL, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {c.clientID}, "client_secret": {c.clientSecret}, "scope": {scopeOf(opts)},
	})
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tr.AccessToken, ExpiresOn: time.Now().Add(expiresIn(tr.ExpiresIn))}, nil
}

// expiresIn reads expires_in, a number or a numeric string depending on the endpoint version.
func expiresIn(raw json.RawMessage) time.Duration {
	s := strings.Trim(string(raw), `"`)
	var secs int64
	if _, err := fmt.Sscan(s, &secs); err != nil || secs <= 0 {
		secs = 3599
	}
	return time.Duration(secs) * time.Second
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\r\n")
	s, _, _ = strings.Cut(s, "\n")
	return s
}
