// Package apiauthtest is a stand-in for Entra ID in tests of code behind apiauth: an Issuer on loopback
// publishes a tenant's OpenID metadata and signing keys at Entra ID's paths and signs v2.0 access tokens
// with whatever claims a test needs, including wrong ones.
//
//	iss := apiauthtest.NewIssuer(t)
//	auth, err := apiauth.New(apiauth.Config{Entra: iss.Config()})
//	req.Header.Set("Authorization", "Bearer "+iss.Token(t, apiauthtest.Claims{Roles: []string{"Connector.Read"}}))
package apiauthtest

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/connector/apiauth"
)

// Issuer is a tenant's token issuer. It serves /<tenant>/discovery/v2.0/keys and
// /<tenant>/v2.0/.well-known/openid-configuration on a loopback port until the test ends.
type Issuer struct {
	URL      string // the authority, http://127.0.0.1:<port>: what EntraConfig.Authority is set to
	TenantID string // a fresh GUID
	ClientID string // a fresh GUID standing for the API app's client ID, the default audience
	// Now is the clock default token times are taken from; nil means time.Now. Set it before the first
	// Token.
	Now func() time.Time

	srv         *httptest.Server
	keyRequests atomic.Int64

	mu         sync.Mutex
	keys       []signingKey // published; the last one signs
	keysStatus int          // when not 0, the status the keys endpoint answers with
	otherKey   *rsa.PrivateKey
}

type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

// NewIssuer starts an issuer with one RSA 2048 signing key; it stops when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	i := &Issuer{TenantID: uuid.NewString(), ClientID: uuid.NewString()}
	i.keys = []signingKey{newSigningKey(t)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+i.TenantID+"/discovery/v2.0/keys", i.serveKeys)
	mux.HandleFunc("GET /"+i.TenantID+"/v2.0/.well-known/openid-configuration", i.serveMetadata)
	i.srv = httptest.NewServer(mux)
	t.Cleanup(i.srv.Close)
	i.URL = i.srv.URL
	return i
}

func newSigningKey(t testing.TB) signingKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("apiauthtest: generate key: %v", err)
	}
	thumb, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("apiauthtest: key thumbprint: %v", err)
	}
	return signingKey{kid: base64.RawURLEncoding.EncodeToString(thumb[:20]), key: key}
}

// Issuer returns the issuer (iss) of the tokens it signs: URL/TenantID/v2.0.
func (i *Issuer) Issuer() string { return i.URL + "/" + i.TenantID + "/v2.0" }

// Config returns an EntraConfig that accepts this issuer's tokens for ClientID.
func (i *Issuer) Config() *apiauth.EntraConfig {
	return &apiauth.EntraConfig{
		TenantID:   i.TenantID,
		Audiences:  []string{i.ClientID},
		Authority:  i.URL,
		HTTPClient: i.srv.Client(),
	}
}

// KeyRequests returns how many times the signing keys were requested.
func (i *Issuer) KeyRequests() int { return int(i.keyRequests.Load()) }

// FailKeys makes the keys endpoint answer with status (an outage); 0 restores it.
func (i *Issuer) FailKeys(status int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keysStatus = status
}

// RotateKey publishes a new signing key, with a new key id, and signs with it from now on; the old key
// stays published, as in Entra ID.
func (i *Issuer) RotateKey(t testing.TB) {
	t.Helper()
	k := newSigningKey(t)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = append(i.keys, k)
}

// Claims are the claims of a token. Zero fields take the defaults noted; the result is a v2.0 access
// token (ver 2.0, sub = oid).
type Claims struct {
	Audience string // aud; default i.ClientID
	Issuer   string // iss; default i.Issuer()
	TenantID string // tid; default i.TenantID
	ObjectID string // oid and sub; default a fresh GUID
	AppID    string // azp, the client app's id; omitted if empty
	Scope    string // scp of a delegated token; default "access_as_user"
	Roles    []string

	IssuedAt, NotBefore, Expiry time.Time // defaults now-1m, now-1m, now+1h

	// App makes an app-only token: idtyp=app and no scp.
	App bool
	// SignWithOtherKey signs with a key the key set does not have, under the current key id, so the
	// signature does not verify.
	SignWithOtherKey bool
	// Extra claims are added last and win over the ones above; a nil value removes a claim.
	Extra map[string]any
}

// Token returns a compact RS256 token with claims c, its header naming the current key id.
func (i *Issuer) Token(t testing.TB, c Claims) string {
	t.Helper()
	now := time.Now()
	if i.Now != nil {
		now = i.Now()
	}
	oid := cmp.Or(c.ObjectID, uuid.NewString())
	claims := map[string]any{
		"aud": cmp.Or(c.Audience, i.ClientID),
		"iss": cmp.Or(c.Issuer, i.Issuer()),
		"tid": cmp.Or(c.TenantID, i.TenantID),
		"oid": oid,
		"sub": oid,
		"ver": "2.0",
		"iat": orTime(c.IssuedAt, now.Add(-time.Minute)).Unix(),
		"nbf": orTime(c.NotBefore, now.Add(-time.Minute)).Unix(),
		"exp": orTime(c.Expiry, now.Add(time.Hour)).Unix(),
	}
	if c.AppID != "" {
		claims["azp"] = c.AppID
		claims["azpacr"] = "1"
	}
	if c.App {
		claims["idtyp"] = "app"
	} else {
		claims["scp"] = cmp.Or(c.Scope, "access_as_user")
	}
	if len(c.Roles) > 0 {
		claims["roles"] = c.Roles
	}
	for k, v := range c.Extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("apiauthtest: claims: %v", err)
	}

	i.mu.Lock()
	current := i.keys[len(i.keys)-1]
	key := current.key
	if c.SignWithOtherKey {
		if i.otherKey == nil {
			i.otherKey = newSigningKey(t).key
		}
		key = i.otherKey
	}
	i.mu.Unlock()

	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: current.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("apiauthtest: signer: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("apiauthtest: sign: %v", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("apiauthtest: serialize: %v", err)
	}
	return token
}

func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// serveKeys publishes the public keys as Entra ID does: RSA, use sig, key id, no alg.
func (i *Issuer) serveKeys(w http.ResponseWriter, _ *http.Request) {
	i.keyRequests.Add(1)
	i.mu.Lock()
	status := i.keysStatus
	set := jose.JSONWebKeySet{}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid, Use: "sig"})
	}
	i.mu.Unlock()
	if status != 0 {
		http.Error(w, `{"error":"temporarily_unavailable"}`, status)
		return
	}
	writeJSON(w, set)
}

// serveMetadata serves the OpenID Provider metadata of the tenant's v2.0 endpoint.
func (i *Issuer) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	base := i.URL + "/" + i.TenantID
	writeJSON(w, map[string]any{
		"issuer":                                i.Issuer(),
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
