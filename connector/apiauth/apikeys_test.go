package apiauth_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/apiauth/apiauthtest"
)

const (
	flowKey = "k3y-for-the-flows-0123456789abcdefghijkl"
	opsKey  = "k3y-for-the-operators-0123456789abcdefgh"
)

func TestHashKey(t *testing.T) {
	t.Parallel()
	// sha256("abc") from FIPS 180-2.
	assert.Equal(t, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", apiauth.HashKey("abc"))
}

func TestParseAPIKeys(t *testing.T) {
	t.Parallel()
	flows, ops := apiauth.HashKey(flowKey), apiauth.HashKey(opsKey)
	tests := []struct {
		name string
		spec string
		want []apiauth.APIKey
	}{
		{name: "empty", spec: "", want: nil},
		{name: "blank", spec: "  ", want: nil},
		{
			name: "words and role values in any case",
			spec: "flows=reader=" + flows + ", ops = Operator+connector.read = " + strings.ToUpper(ops),
			want: []apiauth.APIKey{
				{Name: "flows", Hash: flows, Roles: []apiauth.Role{apiauth.RoleReader}},
				{Name: "ops", Hash: ops, Roles: []apiauth.Role{apiauth.RoleOperator, apiauth.RoleReader}},
			},
		},
		{
			name: "a role given twice counts once",
			spec: "ops=operator+Connector.Operate=" + ops,
			want: []apiauth.APIKey{{Name: "ops", Hash: ops, Roles: []apiauth.Role{apiauth.RoleOperator}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := apiauth.ParseAPIKeys(tt.spec)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseAPIKeysReportsEveryProblem(t *testing.T) {
	t.Parallel()
	flows, ops := apiauth.HashKey(flowKey), apiauth.HashKey(opsKey)
	spec := strings.Join([]string{
		"flows=reader=" + flows,
		"flows=operator=" + ops,         // 2: name used twice
		"ops=reader=" + flows,           // 3: hash used twice
		"raw=reader=" + opsKey,          // 4: the key itself instead of its hash
		"admin=superuser=" + ops[:20],   // 5: unknown role, short hash
		"",                              // 6: empty
		opsKey,                          // 7: a bare key
		"bad name!=reader=" + ops,       // 8: bad name
		"none==" + apiauth.HashKey("x"), // 9: no roles
	}, ",")
	keys, err := apiauth.ParseAPIKeys(spec)
	require.Error(t, err)
	assert.Nil(t, keys)
	msg := err.Error()
	for _, want := range []string{
		`entry 2 (flows): name "flows" is already used by entry 1`,
		"entry 3 (ops): hash sha256:" + flows[7:15] + "… is already used by entry 1 (flows)",
		"entry 4 (raw): hash must be",
		"entry 5 (admin): unknown role \"superuser\"",
		"entry 5 (admin): hash must be",
		"entry 6 is empty",
		"entry 7: want name=role[+role]=sha256:<hex>",
		"entry 8: name must be",
		"entry 9 (none): unknown role of 0 characters",
	} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, opsKey)
	assert.NotContains(t, msg, flows[7:17], "no more than 8 hex digits of a hash")
	assert.NotContains(t, msg, ops[7:17])
}

func TestAuthenticateAPIKey(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	keys := []apiauth.APIKey{
		{Name: "flows", Hash: apiauth.HashKey(flowKey), Roles: []apiauth.Role{apiauth.RoleReader}},
		{Name: "ops", Hash: apiauth.HashKey(opsKey), Roles: []apiauth.Role{apiauth.RoleOperator}},
	}
	both := newAuthenticator(t, apiauth.Config{Entra: entraConfig(iss), Keys: keys})
	keysOnly := newAuthenticator(t, apiauth.Config{Keys: keys, KeyHeader: "x-connector-key"})
	user := iss.Token(t, apiauthtest.Claims{ObjectID: "5a8c1f0e-0d3b-4e5c-9a2f-6b7c8d9e0f1a"})

	tests := []struct {
		name    string
		auth    *apiauth.Authenticator
		headers []string
		want    apiauth.Principal
		code    string
	}{
		{
			name:    "valid key",
			auth:    both,
			headers: []string{"X-API-Key", opsKey},
			want:    apiauth.Principal{ID: "key:ops", Kind: apiauth.KindAPIKey, Name: "ops", Roles: []apiauth.Role{apiauth.RoleOperator}},
		},
		{
			name:    "valid key in a configured header",
			auth:    keysOnly,
			headers: []string{"X-Connector-Key", flowKey},
			want:    apiauth.Principal{ID: "key:flows", Kind: apiauth.KindAPIKey, Name: "flows", Roles: []apiauth.Role{apiauth.RoleReader}},
		},
		{
			name:    "wrong key",
			auth:    both,
			headers: []string{"X-API-Key", opsKey + "x"},
			code:    apiauth.CodeInvalidAPIKey,
		},
		{
			name:    "key in the default header when another is configured",
			auth:    keysOnly,
			headers: []string{"X-API-Key", flowKey},
			code:    apiauth.CodeMissingCredentials,
		},
		{
			name:    "bearer token wins over a key",
			auth:    both,
			headers: []string{"Authorization", "Bearer " + user, "X-API-Key", opsKey},
			want:    apiauth.Principal{ID: iss.TenantID + "/5a8c1f0e-0d3b-4e5c-9a2f-6b7c8d9e0f1a", Kind: apiauth.KindUser, Name: "5a8c1f0e-0d3b-4e5c-9a2f-6b7c8d9e0f1a", TenantID: iss.TenantID},
		},
		{
			name:    "a bad bearer token is not rescued by a good key",
			auth:    both,
			headers: []string{"Authorization", "Bearer not-a-jwt", "X-API-Key", opsKey},
			code:    apiauth.CodeInvalidToken,
		},
		{
			name:    "key with a bearer token the connector does not take",
			auth:    keysOnly,
			headers: []string{"Authorization", "Bearer " + user, "X-Connector-Key", opsKey},
			want:    apiauth.Principal{ID: "key:ops", Kind: apiauth.KindAPIKey, Name: "ops", Roles: []apiauth.Role{apiauth.RoleOperator}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := tt.auth.Authenticate(request(t, tt.headers...))
			if tt.code == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.want, p)
				return
			}
			e := authError(t, err)
			assert.Equal(t, http.StatusUnauthorized, e.Status)
			assert.Equal(t, tt.code, e.Code)
			assert.NotEmpty(t, e.Challenge)
			for _, secret := range []string{opsKey, flowKey, user} {
				assertNoSecret(t, e, secret)
			}
		})
	}
}
