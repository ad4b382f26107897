package apiauthtest_test

import (
	"net/http"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/apiauth/apiauthtest"
)

// The issuer's metadata must hold up to OpenID discovery, which checks that it names itself as the
// issuer, and its tokens must verify against the keys the metadata points at.
func TestIssuerPassesDiscovery(t *testing.T) {
	t.Parallel()
	iss := apiauthtest.NewIssuer(t)
	ctx := oidc.ClientContext(t.Context(), iss.Config().HTTPClient)
	provider, err := oidc.NewProvider(ctx, iss.Issuer())
	require.NoError(t, err)

	verifier := provider.VerifierContext(ctx, &oidc.Config{ClientID: iss.ClientID})
	tok, err := verifier.Verify(ctx, iss.Token(t, apiauthtest.Claims{ObjectID: "oid-1", Roles: []string{"Connector.Read"}}))
	require.NoError(t, err)
	var claims struct {
		TID   string   `json:"tid"`
		OID   string   `json:"oid"`
		Ver   string   `json:"ver"`
		Scp   string   `json:"scp"`
		Roles []string `json:"roles"`
	}
	require.NoError(t, tok.Claims(&claims))
	assert.Equal(t, iss.TenantID, claims.TID)
	assert.Equal(t, "oid-1", claims.OID)
	assert.Equal(t, "2.0", claims.Ver)
	assert.Equal(t, "access_as_user", claims.Scp)
	assert.Equal(t, []string{"Connector.Read"}, claims.Roles)
	assert.Equal(t, 1, iss.KeyRequests())

	_, err = verifier.Verify(ctx, iss.Token(t, apiauthtest.Claims{SignWithOtherKey: true}))
	assert.Error(t, err)

	iss.RotateKey(t)
	_, err = verifier.Verify(ctx, iss.Token(t, apiauthtest.Claims{}))
	assert.NoError(t, err, "a rotated key is published")
}

func TestIssuerFailKeys(t *testing.T) {
	t.Parallel()
	iss := apiauthtest.NewIssuer(t)
	keysURL := iss.URL + "/" + iss.TenantID + "/discovery/v2.0/keys"
	client := iss.Config().HTTPClient

	iss.FailKeys(http.StatusServiceUnavailable)
	resp, err := client.Get(keysURL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	iss.FailKeys(0)
	resp, err = client.Get(keysURL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, iss.KeyRequests())
}
