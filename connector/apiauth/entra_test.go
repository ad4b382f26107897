package apiauth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/apiauth/apiauthtest"
)

// now is the fixed time of every test clock.
var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// newIssuer is an issuer whose default token times are relative to now.
func newIssuer(t testing.TB) *apiauthtest.Issuer {
	iss := apiauthtest.NewIssuer(t)
	iss.Now = func() time.Time { return now }
	return iss
}

// entraConfig accepts iss's tokens for its client ID and App ID URI, on the fixed clock.
func entraConfig(iss *apiauthtest.Issuer) *apiauth.EntraConfig {
	c := iss.Config()
	c.Audiences = append(c.Audiences, "api://csp-connector")
	c.Now = func() time.Time { return now }
	return c
}

func newAuthenticator(t testing.TB, cfg apiauth.Config) *apiauth.Authenticator {
	t.Helper()
	a, err := apiauth.New(cfg)
	require.NoError(t, err)
	return a
}

func request(t testing.TB, headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/rows", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

func authError(t *testing.T, err error) *apiauth.Error {
	t.Helper()
	var e *apiauth.Error
	require.ErrorAs(t, err, &e)
	return e
}

// assertNoSecret checks that no part of an error repeats the credential.
func assertNoSecret(t *testing.T, e *apiauth.Error, secret string) {
	t.Helper()
	for _, s := range []string{e.Detail, e.Challenge, e.Error()} {
		assert.NotContains(t, s, secret)
		if parts := strings.Split(secret, "."); len(parts) == 3 && len(parts[2]) >= 16 {
			assert.NotContains(t, s, parts[2], "signature")
		}
	}
}

func TestAuthenticateBearer(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	auth := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	otherTenant := "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"
	const (
		userOID = "5a8c1f0e-0d3b-4e5c-9a2f-6b7c8d9e0f1a"
		appOID  = "9b0c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4"
		flowApp = "c0ffee00-1234-4abc-9def-0123456789ab"
	)

	tests := []struct {
		name   string
		claims apiauthtest.Claims
		want   apiauth.Principal // when code is empty
		code   string
		detail string // a phrase Detail must contain
	}{
		{
			name:   "user token with reader role",
			claims: apiauthtest.Claims{ObjectID: userOID, AppID: flowApp, Roles: []string{"Connector.Read", "Other.Role"}},
			want:   apiauth.Principal{ID: iss.TenantID + "/" + userOID, Kind: apiauth.KindUser, Name: userOID, TenantID: iss.TenantID, Roles: []apiauth.Role{apiauth.RoleReader}},
		},
		{
			name:   "app-only token with operator role",
			claims: apiauthtest.Claims{App: true, ObjectID: appOID, AppID: flowApp, Roles: []string{"Connector.Operate"}},
			want:   apiauth.Principal{ID: iss.TenantID + "/" + appOID, Kind: apiauth.KindApp, Name: flowApp, TenantID: iss.TenantID, Roles: []apiauth.Role{apiauth.RoleOperator}},
		},
		{
			name:   "token without scp or idtyp is app-only",
			claims: apiauthtest.Claims{ObjectID: appOID, AppID: flowApp, Extra: map[string]any{"scp": nil}},
			want:   apiauth.Principal{ID: iss.TenantID + "/" + appOID, Kind: apiauth.KindApp, Name: flowApp, TenantID: iss.TenantID},
		},
		{
			name:   "App ID URI audience",
			claims: apiauthtest.Claims{Audience: "api://csp-connector", ObjectID: userOID, Roles: []string{"Connector.Read"}},
			want:   apiauth.Principal{ID: iss.TenantID + "/" + userOID, Kind: apiauth.KindUser, Name: userOID, TenantID: iss.TenantID, Roles: []apiauth.Role{apiauth.RoleReader}},
		},
		{
			name:   "audience in an array",
			claims: apiauthtest.Claims{ObjectID: userOID, Extra: map[string]any{"aud": []string{"other", iss.ClientID}}},
			want:   apiauth.Principal{ID: iss.TenantID + "/" + userOID, Kind: apiauth.KindUser, Name: userOID, TenantID: iss.TenantID},
		},
		{
			name:   "expired within leeway",
			claims: apiauthtest.Claims{ObjectID: userOID, Expiry: now.Add(-time.Minute)},
			want:   apiauth.Principal{ID: iss.TenantID + "/" + userOID, Kind: apiauth.KindUser, Name: userOID, TenantID: iss.TenantID},
		},
		{
			name:   "not yet valid within leeway",
			claims: apiauthtest.Claims{ObjectID: userOID, NotBefore: now.Add(time.Minute)},
			want:   apiauth.Principal{ID: iss.TenantID + "/" + userOID, Kind: apiauth.KindUser, Name: userOID, TenantID: iss.TenantID},
		},
		{
			name:   "expired beyond leeway",
			claims: apiauthtest.Claims{Expiry: now.Add(-3 * time.Minute)},
			code:   apiauth.CodeTokenExpired, detail: "expired at 2026-11-21T11:57:00Z",
		},
		{
			name:   "not yet valid",
			claims: apiauthtest.Claims{NotBefore: now.Add(10 * time.Minute)},
			code:   apiauth.CodeInvalidToken, detail: "not valid before 2026-11-21T12:10:00Z",
		},
		{
			name:   "no expiry",
			claims: apiauthtest.Claims{Extra: map[string]any{"exp": nil}},
			code:   apiauth.CodeInvalidToken, detail: "no expiry",
		},
		{
			name:   "wrong audience",
			claims: apiauthtest.Claims{Audience: "https://graph.microsoft.com"},
			code:   apiauth.CodeWrongAudience, detail: "accepts '" + iss.ClientID + "' or 'api://csp-connector'",
		},
		{
			name:   "issuer of another tenant",
			claims: apiauthtest.Claims{Issuer: iss.URL + "/" + otherTenant + "/v2.0", TenantID: otherTenant},
			code:   apiauth.CodeWrongIssuer, detail: "tokens issued by '" + iss.Issuer() + "'",
		},
		{
			name:   "v1 issuer",
			claims: apiauthtest.Claims{Issuer: "https://sts.windows.net/" + iss.TenantID + "/", Extra: map[string]any{"ver": "1.0"}},
			code:   apiauth.CodeV1Token, detail: "api.requestedAccessTokenVersion to 2",
		},
		{
			name:   "tid of another tenant",
			claims: apiauthtest.Claims{TenantID: otherTenant},
			code:   apiauth.CodeWrongIssuer, detail: "for tenant '" + otherTenant + "'",
		},
		{
			name:   "no oid",
			claims: apiauthtest.Claims{Extra: map[string]any{"oid": nil}},
			code:   apiauth.CodeInvalidToken, detail: "no oid",
		},
		{
			name:   "signed with a key not published, same kid",
			claims: apiauthtest.Claims{SignWithOtherKey: true},
			code:   apiauth.CodeBadSignature, detail: "does not verify",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			token := iss.Token(t, tt.claims)
			p, err := auth.Authenticate(request(t, "Authorization", "Bearer "+token))
			if tt.code == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.want, p)
				return
			}
			e := authError(t, err)
			assert.Equal(t, http.StatusUnauthorized, e.Status)
			assert.Equal(t, tt.code, e.Code)
			assert.Contains(t, e.Detail, tt.detail)
			assert.True(t, strings.HasPrefix(e.Challenge, `Bearer realm="csp-connector", error="invalid_token", error_description="`), e.Challenge)
			assert.Zero(t, p)
			assertNoSecret(t, e, token)
		})
	}
}

func TestAuthenticateMalformedBearer(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	auth := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	valid := iss.Token(t, apiauthtest.Claims{Roles: []string{"Connector.Operate"}})
	_, payload, _ := strings.Cut(valid, ".")
	payload, _, _ = strings.Cut(payload, ".")

	tests := []struct {
		name, token, detail string
	}{
		{"not a JWT", "not-a-jwt", "three base64url parts"},
		{"empty", "", "empty"},
		{"four parts", valid + ".x", "three base64url parts"},
		{"garbage parts", "a!.b!.c", "not base64url"},
		{"claims not JSON", segment("{\"alg\":\"RS256\"}") + "." + segment("[1,2") + ".c2ln", "claims segment is not the expected JSON"},
		{"alg none", segment(`{"alg":"none","typ":"JWT"}`) + "." + payload + ".", "three base64url parts"},
		{"alg none with a signature", segment(`{"alg":"none","typ":"JWT"}`) + "." + payload + ".c2ln", "algorithm 'none'"},
		{"HS256", hs256(`{"alg":"HS256","typ":"JWT"}`, payload, "the public key as a secret"), "algorithm 'HS256'"},
		{"too long", strings.Repeat("a", 40<<10), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := auth.Authenticate(request(t, "Authorization", "Bearer "+tt.token))
			e := authError(t, err)
			assert.Equal(t, http.StatusUnauthorized, e.Status)
			assert.Equal(t, apiauth.CodeInvalidToken, e.Code)
			assert.Contains(t, e.Detail, tt.detail)
			if tt.token != "" {
				assertNoSecret(t, e, tt.token)
			}
		})
	}
}

func segment(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// hs256 signs header.payload with HMAC-SHA256, the classic attempt to pass a token signed with a shared
// secret to a verifier that expects RSA.
func hs256(header, payload, secret string) string {
	signingInput := segment(header) + "." + payload
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestAuthenticateBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	auth := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	_, err := auth.Authenticate(request(t, "Authorization", "bearer "+iss.Token(t, apiauthtest.Claims{})))
	assert.NoError(t, err)
}

func TestRefusedClaimsCostNoKeyFetch(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	auth := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	for _, c := range []apiauthtest.Claims{
		{Audience: "https://graph.microsoft.com"},
		{Expiry: now.Add(-time.Hour)},
		{Issuer: "https://sts.windows.net/" + iss.TenantID + "/"},
	} {
		_, err := auth.Authenticate(request(t, "Authorization", "Bearer "+iss.Token(t, c)))
		require.Error(t, err)
	}
	assert.Zero(t, iss.KeyRequests())
}

func TestSigningKeysAreFetchedOnceAndCached(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	auth := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	assert.Zero(t, iss.KeyRequests(), "no fetch before the first token")

	tokens := make([]string, 50)
	for i := range tokens {
		tokens[i] = iss.Token(t, apiauthtest.Claims{Roles: []string{"Connector.Read"}})
	}
	var wg sync.WaitGroup
	for _, token := range tokens {
		wg.Go(func() {
			_, err := auth.Authenticate(request(t, "Authorization", "Bearer "+token))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, iss.KeyRequests())
}

func TestForgedTokensDoNotRefetchKeys(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	auth := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	for range 20 {
		_, err := auth.Authenticate(request(t, "Authorization", "Bearer "+iss.Token(t, apiauthtest.Claims{SignWithOtherKey: true})))
		assert.Equal(t, apiauth.CodeBadSignature, authError(t, err).Code)
	}
	assert.Equal(t, 1, iss.KeyRequests())
}

func TestSigningKeysAreRefreshedForANewKeyID(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	clock := now
	cfg := entraConfig(iss)
	cfg.Now = func() time.Time { return clock }
	auth := newAuthenticator(t, apiauth.Config{Entra: cfg})

	_, err := auth.Authenticate(request(t, "Authorization", "Bearer "+iss.Token(t, apiauthtest.Claims{})))
	require.NoError(t, err)
	iss.RotateKey(t)
	rotated := iss.Token(t, apiauthtest.Claims{Expiry: now.Add(24 * time.Hour)})

	// Within minutes of a fetch the cached set is taken as current, so forged key ids cost nothing.
	_, err = auth.Authenticate(request(t, "Authorization", "Bearer "+rotated))
	assert.Equal(t, apiauth.CodeBadSignature, authError(t, err).Code)
	assert.Equal(t, 1, iss.KeyRequests())

	clock = now.Add(5 * time.Minute)
	_, err = auth.Authenticate(request(t, "Authorization", "Bearer "+rotated))
	require.NoError(t, err)
	assert.Equal(t, 2, iss.KeyRequests())
}

func TestSigningKeysUnavailable(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	auth := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	token := iss.Token(t, apiauthtest.Claims{Roles: []string{"Connector.Read"}})

	iss.FailKeys(http.StatusInternalServerError)
	_, err := auth.Authenticate(request(t, "Authorization", "Bearer "+token))
	e := authError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, e.Status)
	assert.Equal(t, apiauth.CodeKeysUnavailable, e.Code)
	assert.Empty(t, e.Challenge)
	assert.Contains(t, e.Detail, "127.0.0.1")
	assert.ErrorContains(t, e, "HTTP 500")
	assertNoSecret(t, e, token)

	// A failed fetch is not cached: the next request tries again.
	iss.FailKeys(0)
	_, err = auth.Authenticate(request(t, "Authorization", "Bearer "+token))
	require.NoError(t, err)
	assert.Equal(t, 2, iss.KeyRequests())
}

func TestSigningKeysUnreachable(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // its port now refuses connections
	cfg := entraConfig(iss)
	cfg.Authority = dead.URL
	cfg.HTTPClient = nil
	auth := newAuthenticator(t, apiauth.Config{Entra: cfg})
	token := iss.Token(t, apiauthtest.Claims{Issuer: dead.URL + "/" + iss.TenantID + "/v2.0"})

	_, err := auth.Authenticate(request(t, "Authorization", "Bearer "+token))
	e := authError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, e.Status)
	assert.Equal(t, apiauth.CodeKeysUnavailable, e.Code)
}
