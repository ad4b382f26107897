package apiauth_test

import (
	"testing"

	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/apiauth/apiauthtest"
)

// BenchmarkAuthenticateBearer is the cost of a request with a valid token once the keys are cached:
// parsing, the claim checks and one RSA-2048 signature verification.
func BenchmarkAuthenticateBearer(b *testing.B) {
	iss := newIssuer(b)
	auth := newAuthenticator(b, apiauth.Config{Entra: entraConfig(iss)})
	r := request(b, "Authorization", "Bearer "+iss.Token(b, apiauthtest.Claims{Roles: []string{"Connector.Read"}}))
	if _, err := auth.Authenticate(r); err != nil { // fetches the keys
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := auth.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
	if n := iss.KeyRequests(); n != 1 {
		b.Fatalf("keys fetched %d times", n)
	}
}

// BenchmarkAuthenticateAPIKey is the cost of a request with a valid key among ten.
func BenchmarkAuthenticateAPIKey(b *testing.B) {
	keys := []apiauth.APIKey{{Name: "ops", Hash: apiauth.HashKey(opsKey), Roles: []apiauth.Role{apiauth.RoleOperator}}}
	for i := range 9 {
		keys = append(keys, apiauth.APIKey{Name: "flow" + string(rune('a'+i)), Hash: apiauth.HashKey(flowKey + string(rune('a'+i))), Roles: []apiauth.Role{apiauth.RoleReader}})
	}
	auth := newAuthenticator(b, apiauth.Config{Keys: keys})
	r := request(b, "X-API-Key", opsKey)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := auth.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}
