package connector

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/apiauth/apiauthtest"
)

// TestAPIAuthentication: the API behind Entra ID tokens (from a local issuer) and API keys, through real
// HTTP. Every refusal is problem+json with its stable code, a 401 offers the schemes in WWW-Authenticate,
// and no answer repeats the credential that was presented.
func TestAPIAuthentication(t *testing.T) {
	t.Parallel()
	iss := apiauthtest.NewIssuer(t)
	const readerKey, operatorKey = "reader-key-3f9c2a7e1b", "operator-key-8d41c6f0a9"
	auth, err := apiauth.New(apiauth.Config{Entra: iss.Config(), KeyHeader: api.KeyHeader, Keys: []apiauth.APIKey{
		{Name: "flows-reader", Hash: apiauth.HashKey(readerKey), Roles: []apiauth.Role{apiauth.RoleReader}},
		{Name: "flows-operator", Hash: apiauth.HashKey(operatorKey), Roles: []apiauth.Role{apiauth.RoleOperator}},
	}})
	require.NoError(t, err)
	sb, err := StartSandbox(t.Context(), SandboxOptions{DataverseAddr: "127.0.0.1:0", PartnerCenterAddr: "127.0.0.1:0", ConnectorAddr: "127.0.0.1:0", APIAuth: auth})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	runService(t, sb.Service)
	waitStartupJobs(t, sb)
	base := sandboxBase(sb)

	other := apiauthtest.NewIssuer(t) // another tenant's issuer, with its own keys
	readerRole, operatorRole := []string{string(apiauth.RoleReader)}, []string{string(apiauth.RoleOperator)}
	bearer := func(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }
	key := func(k string) http.Header { return http.Header{api.KeyHeader: {k}} }
	readOp := api.Prefix + "/jobs"                   // Connector.Read
	operateOp := api.Prefix + "/connectivity/verify" // Connector.Operate
	readOpMethod, operateOpMethod := http.MethodGet, http.MethodPost

	tests := []struct {
		name       string
		header     http.Header
		secret     string // what the answer must never contain
		operate    bool   // call the operator operation, else the reader one
		status     int
		code       string
		challenged bool // a WWW-Authenticate header is expected
	}{
		{name: "no credentials", header: http.Header{}, status: http.StatusUnauthorized, code: apiauth.CodeMissingCredentials, challenged: true},
		{name: "wrong audience", secret: "tok", header: nil, status: http.StatusUnauthorized, code: apiauth.CodeWrongAudience, challenged: true},
		{name: "wrong issuer", secret: "tok", status: http.StatusUnauthorized, code: apiauth.CodeWrongIssuer, challenged: true},
		{name: "expired", secret: "tok", status: http.StatusUnauthorized, code: apiauth.CodeTokenExpired, challenged: true},
		{name: "bad signature", secret: "tok", status: http.StatusUnauthorized, code: apiauth.CodeBadSignature, challenged: true},
		{name: "no role", secret: "tok", status: http.StatusForbidden, code: apiauth.CodeMissingRole},
		{name: "reader token, operator operation", secret: "tok", operate: true, status: http.StatusForbidden, code: apiauth.CodeMissingRole},
		{name: "reader token, reader operation", secret: "tok", status: http.StatusOK},
		{name: "operator token, operator operation", secret: "tok", operate: true, status: http.StatusOK},
		{name: "operator app token, reader operation", secret: "tok", status: http.StatusOK},
		{name: "wrong API key", header: key("guessed-key-0000000000"), secret: "guessed-key-0000000000", status: http.StatusUnauthorized, code: apiauth.CodeInvalidAPIKey, challenged: true},
		{name: "reader key, reader operation", header: key(readerKey), secret: readerKey, status: http.StatusOK},
		{name: "reader key, operator operation", header: key(readerKey), secret: readerKey, operate: true, status: http.StatusForbidden, code: apiauth.CodeMissingRole},
		{name: "operator key, operator operation", header: key(operatorKey), secret: operatorKey, operate: true, status: http.StatusOK},
		{name: "basic auth", header: http.Header{"Authorization": {"Basic b3BlcmF0b3I6c2VjcmV0"}}, secret: "b3BlcmF0b3I6c2VjcmV0", status: http.StatusUnauthorized, code: apiauth.CodeUnsupportedScheme, challenged: true},
	}
	tokens := map[string]string{
		"wrong audience":                       iss.Token(t, apiauthtest.Claims{Audience: uuid.NewString(), Roles: operatorRole}),
		"wrong issuer":                         other.Token(t, apiauthtest.Claims{Audience: iss.ClientID, Roles: operatorRole}),
		"expired":                              iss.Token(t, apiauthtest.Claims{Roles: operatorRole, IssuedAt: time.Now().Add(-3 * time.Hour), NotBefore: time.Now().Add(-3 * time.Hour), Expiry: time.Now().Add(-time.Hour)}),
		"bad signature":                        iss.Token(t, apiauthtest.Claims{Roles: operatorRole, SignWithOtherKey: true}),
		"no role":                              iss.Token(t, apiauthtest.Claims{}),
		"reader token, operator operation":     iss.Token(t, apiauthtest.Claims{Roles: readerRole}),
		"reader token, reader operation":       iss.Token(t, apiauthtest.Claims{Roles: readerRole}),
		"operator token, operator operation":   iss.Token(t, apiauthtest.Claims{Roles: operatorRole}),
		"operator app token, reader operation": iss.Token(t, apiauthtest.Claims{Roles: operatorRole, App: true, AppID: uuid.NewString()}),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header, secret := tt.header, tt.secret
			if tok, ok := tokens[tt.name]; ok {
				header, secret = bearer(tok), tok
			}
			require.NotNil(t, header)
			c := newAPIClient(t, base, header)
			method, path := readOpMethod, readOp
			if tt.operate {
				method, path = operateOpMethod, operateOp
			}
			a := c.do(method, path, nil)
			if secret != "" {
				assert.NotContains(t, string(a.Body), secret, "the answer never repeats the credential")
				for _, sig := range strings.Split(secret, ".") {
					if len(sig) > 16 {
						assert.NotContains(t, string(a.Body), sig, "nor a part of the token")
					}
				}
				for k, vs := range a.Header {
					for _, v := range vs {
						assert.NotContains(t, v, secret, "header %s", k)
					}
				}
			}
			if tt.status == http.StatusOK {
				a.ok(t, http.StatusOK, nil)
				return
			}
			p := a.problem(t, tt.status)
			assert.Equal(t, tt.code, p.Code)
			if tt.challenged {
				assert.NotEmpty(t, a.Header.Get("WWW-Authenticate"), "a 401 says how to authenticate")
			} else {
				assert.Empty(t, a.Header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("missing credentials offers both schemes", func(t *testing.T) {
		a := newAPIClient(t, base, http.Header{}).get(readOp)
		a.problem(t, http.StatusUnauthorized)
		challenge := a.Header.Get("WWW-Authenticate")
		assert.Contains(t, challenge, "Bearer")
		assert.Contains(t, challenge, api.KeyHeader)
	})
	t.Run("the document needs no credentials", func(t *testing.T) {
		newAPIClient(t, base, http.Header{}).get(api.Prefix+"/swagger.json").ok(t, http.StatusOK, nil)
	})
	t.Run("the demo keys are not accepted", func(t *testing.T) {
		p := newAPIClient(t, base, key(SandboxOperatorKey)).get(readOp).problem(t, http.StatusUnauthorized)
		assert.Equal(t, apiauth.CodeInvalidAPIKey, p.Code)
	})
}
