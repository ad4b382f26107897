package apiauth_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/apiauth"
)

func TestNewReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := apiauth.New(apiauth.Config{})
	require.ErrorContains(t, err, "neither Entra ID nor API keys")

	_, err = apiauth.New(apiauth.Config{
		Entra: &apiauth.EntraConfig{
			TenantID:  "common",
			Audiences: []string{" "},
			Authority: "http://login.example.com",
			Leeway:    -1,
		},
		Keys:      []apiauth.APIKey{{Name: "ops", Hash: "sha256:abc", Roles: []apiauth.Role{"Admin"}}},
		KeyHeader: "Authorization",
	})
	require.Error(t, err)
	for _, want := range []string{
		`Entra.TenantID must be the directory (tenant) ID, a GUID`,
		`Entra.Audiences[0] is empty`,
		`Entra.Authority: "http://login.example.com" must use https`,
		`Entra.Leeway -1ns is negative`,
		`Keys: entry 1 (ops): hash must be`,
		`Keys: entry 1 (ops): unknown role "Admin"`,
		`KeyHeader "Authorization" is not a usable header name`,
	} {
		assert.ErrorContains(t, err, want)
	}

	_, err = apiauth.New(apiauth.Config{Entra: &apiauth.EntraConfig{TenantID: "72F988BF-86F1-41AF-91AB-2D7CD011DB47", Audiences: []string{"api://x"}}})
	assert.NoError(t, err, "the defaults and an upper-case tenant ID are fine")
}

func TestAuthenticateWithoutUsableCredentials(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	keys := []apiauth.APIKey{{Name: "ops", Hash: apiauth.HashKey(opsKey), Roles: []apiauth.Role{apiauth.RoleOperator}}}
	both := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss), Keys: keys})
	entraOnly := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss)})
	keysOnly := newAuthenticator(t, apiauth.Config{Keys: keys})
	const bareToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"

	tests := []struct {
		name      string
		auth      *apiauth.Authenticator
		headers   []string
		code      string
		detail    string
		challenge string
	}{
		{
			name: "nothing", auth: both,
			code: apiauth.CodeMissingCredentials, detail: "or an API key in the X-API-Key header",
			challenge: `Bearer realm="csp-connector", APIKey realm="csp-connector", header="X-API-Key"`,
		},
		{
			name: "nothing, Entra ID only", auth: entraOnly,
			code: apiauth.CodeMissingCredentials, detail: "Send an Entra ID access token",
			challenge: `Bearer realm="csp-connector"`,
		},
		{
			name: "Basic", auth: both, headers: []string{"Authorization", "Basic dXNlcjpwYXNz"},
			code: apiauth.CodeUnsupportedScheme, detail: "scheme 'Basic' is not supported",
			challenge: `Bearer realm="csp-connector", APIKey realm="csp-connector", header="X-API-Key"`,
		},
		{
			name: "a token without a scheme", auth: both, headers: []string{"Authorization", bareToken},
			code: apiauth.CodeUnsupportedScheme, detail: "does not start with a supported scheme",
			challenge: `Bearer realm="csp-connector", APIKey realm="csp-connector", header="X-API-Key"`,
		},
		{
			name: "an API key in Authorization", auth: both, headers: []string{"Authorization", "sandbox-operator-key"},
			code: apiauth.CodeUnsupportedScheme, detail: "An API key goes in the X-API-Key header",
			challenge: `Bearer realm="csp-connector", APIKey realm="csp-connector", header="X-API-Key"`,
		},
		{
			name: "an API key after a made-up scheme", auth: both, headers: []string{"Authorization", "Key sandbox-operator-key"},
			code: apiauth.CodeUnsupportedScheme, detail: "does not start with a supported scheme",
			challenge: `Bearer realm="csp-connector", APIKey realm="csp-connector", header="X-API-Key"`,
		},
		{
			name: "bearer token, API keys only", auth: keysOnly, headers: []string{"Authorization", "Bearer " + bareToken},
			code: apiauth.CodeUnsupportedScheme, detail: "does not accept Entra ID tokens",
			challenge: `APIKey realm="csp-connector", header="X-API-Key"`,
		},
		{
			name: "API key, Entra ID only", auth: entraOnly, headers: []string{"X-API-Key", opsKey},
			code: apiauth.CodeUnsupportedScheme, detail: "does not accept API keys",
			challenge: `Bearer realm="csp-connector"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.auth.Authenticate(request(t, tt.headers...))
			e := authError(t, err)
			assert.Equal(t, http.StatusUnauthorized, e.Status)
			assert.Equal(t, tt.code, e.Code)
			assert.Contains(t, e.Detail, tt.detail)
			assert.Equal(t, tt.challenge, e.Challenge)
			assertNoSecret(t, e, bareToken)
			assertNoSecret(t, e, opsKey)
			assertNoSecret(t, e, "dXNlcjpwYXNz")
			assertNoSecret(t, e, "sandbox-operator-key")
		})
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	auth := newAuthenticator(t, apiauth.Config{Keys: []apiauth.APIKey{{Name: "ops", Hash: apiauth.HashKey(opsKey), Roles: []apiauth.Role{apiauth.RoleOperator}}}})
	reader := []apiauth.Role{apiauth.RoleReader}
	operator := []apiauth.Role{apiauth.RoleOperator}
	tests := []struct {
		name   string
		p      apiauth.Principal
		need   apiauth.Role
		detail string // empty: allowed
	}{
		{name: "reader reads", p: apiauth.Principal{Kind: apiauth.KindUser, Roles: reader}, need: apiauth.RoleReader},
		{name: "operator operates", p: apiauth.Principal{Kind: apiauth.KindApp, Roles: operator}, need: apiauth.RoleOperator},
		{name: "operator implies reader", p: apiauth.Principal{Kind: apiauth.KindAPIKey, Roles: operator}, need: apiauth.RoleReader},
		{
			name: "reader cannot operate", p: apiauth.Principal{Kind: apiauth.KindUser, Name: "5a8c1f0e", Roles: reader}, need: apiauth.RoleOperator,
			detail: "User '5a8c1f0e' does not have the Connector.Operate role this request needs. In the Entra admin center, open Enterprise applications",
		},
		{
			name: "user without roles", p: apiauth.Principal{Kind: apiauth.KindUser, Name: "5a8c1f0e"}, need: apiauth.RoleReader,
			detail: "does not have the Connector.Read role",
		},
		{
			name: "app without roles", p: apiauth.Principal{Kind: apiauth.KindApp, Name: "c0ffee00"}, need: apiauth.RoleOperator,
			detail: "Application 'c0ffee00' does not have the Connector.Operate role this request needs. In the Entra admin center, add the application permission Connector.Operate",
		},
		{
			name: "reader key", p: apiauth.Principal{Kind: apiauth.KindAPIKey, Name: "flows", Roles: reader}, need: apiauth.RoleOperator,
			detail: "API key 'flows' does not have the Connector.Operate role this request needs. Give the key the operator role",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := auth.Authorize(tt.p, tt.need)
			if tt.detail == "" {
				assert.NoError(t, err)
				assert.True(t, tt.p.Has(tt.need))
				return
			}
			e := authError(t, err)
			assert.Equal(t, http.StatusForbidden, e.Status)
			assert.Equal(t, apiauth.CodeMissingRole, e.Code)
			assert.Contains(t, e.Detail, tt.detail)
			assert.Empty(t, e.Challenge)
			assert.False(t, tt.p.Has(tt.need))
		})
	}
}
