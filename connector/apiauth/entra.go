package apiauth

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
)

// EntraConfig describes the connector's API app registration in Entra ID. Only v2.0 access tokens of the
// one tenant are accepted; set api.requestedAccessTokenVersion to 2 in the app registration's manifest so
// that every caller gets one.
type EntraConfig struct {
	// TenantID is the directory (tenant) ID, a GUID. Required.
	TenantID string
	// Audiences are the values a token's aud may have: the API app's client ID and/or its App ID URI
	// (api://…). At least one is required.
	Audiences []string
	// Authority is the Entra ID host, "https://login.microsoftonline.com" if empty (other clouds have
	// their own). Tokens must be issued by Authority/TenantID/v2.0 and are checked against the keys at
	// Authority/TenantID/discovery/v2.0/keys. It must be https unless it is a loopback address (tests).
	Authority string
	// HTTPClient fetches the signing keys; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed on exp and nbf; 2 minutes if zero.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

const (
	defaultAuthority = "https://login.microsoftonline.com"
	defaultLeeway    = 2 * time.Minute
	keyFetchTimeout  = 10 * time.Second
	// maxTokenSize bounds the bearer tokens parsed. Entra ID access tokens are a few kilobytes; group
	// claims overflow into _claim_names long before this.
	maxTokenSize = 32 << 10
)

// checkEntraConfig reports every problem with c.
func checkEntraConfig(c EntraConfig) []error {
	var errs []error
	if id, err := uuid.Parse(strings.TrimSpace(c.TenantID)); err != nil || len(strings.TrimSpace(c.TenantID)) != 36 || id == uuid.Nil {
		errs = append(errs, fmt.Errorf("Entra.TenantID must be the directory (tenant) ID, a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47; got %q", c.TenantID))
	}
	if len(c.Audiences) == 0 {
		errs = append(errs, errors.New("Entra.Audiences is empty: give the API app registration's client ID and/or App ID URI"))
	}
	for i, aud := range c.Audiences {
		if strings.TrimSpace(aud) == "" {
			errs = append(errs, fmt.Errorf("Entra.Audiences[%d] is empty", i))
		}
	}
	if c.Authority != "" {
		if err := checkAuthority(c.Authority); err != nil {
			errs = append(errs, fmt.Errorf("Entra.Authority: %w", err))
		}
	}
	if c.Leeway < 0 {
		errs = append(errs, fmt.Errorf("Entra.Leeway %v is negative", c.Leeway))
	}
	return errs
}

func checkAuthority(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("%q is not a bare URL like %s", s, defaultAuthority)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q must use https", s)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// entraVerifier checks Entra ID v2.0 access tokens of one tenant.
type entraVerifier struct {
	tenantID  string // lower case, as Entra ID writes it in iss and tid
	issuer    string
	jwksURL   string
	audiences []string
	leeway    time.Duration
	now       func() time.Time
	keys      *keyFetcher
	verifier  *oidc.IDTokenVerifier
}

// newEntraVerifier builds a verifier from a checked config. No request is made until a token arrives.
func newEntraVerifier(c EntraConfig) *entraVerifier {
	authority := strings.TrimRight(c.Authority, "/")
	if authority == "" {
		authority = defaultAuthority
	}
	v := &entraVerifier{
		tenantID: strings.ToLower(strings.TrimSpace(c.TenantID)),
		leeway:   c.Leeway,
		now:      c.Now,
	}
	v.issuer = authority + "/" + v.tenantID + "/v2.0"
	v.jwksURL = authority + "/" + v.tenantID + "/discovery/v2.0/keys"
	for _, aud := range c.Audiences {
		v.audiences = append(v.audiences, strings.TrimSpace(aud))
	}
	if v.leeway == 0 {
		v.leeway = defaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}

	hc := http.Client{Timeout: keyFetchTimeout}
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	}
	v.keys = &keyFetcher{next: hc.Transport, now: v.now}
	if v.keys.next == nil {
		v.keys.next = http.DefaultTransport
	}
	hc.Transport = v.keys
	// The key set keeps this context for its fetches; it is only a carrier for the HTTP client.
	ctx := oidc.ClientContext(context.Background(), &hc)
	v.verifier = oidc.NewVerifier(v.issuer, oidc.NewRemoteKeySet(ctx, v.jwksURL), &oidc.Config{
		// Several audiences are accepted, so checkClaims checks aud instead of go-oidc.
		SkipClientIDCheck:    true,
		SupportedSigningAlgs: []string{"RS256"},
		// go-oidc has no leeway on exp; its clock runs behind by the leeway instead.
		Now: func() time.Time { return v.now().Add(-v.leeway) },
	})
	return v
}

// tokenHeader is the JOSE header of a token.
type tokenHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// tokenClaims are the claims of an Entra ID access token the connector uses
// (learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
type tokenClaims struct {
	Issuer    string    `json:"iss"`
	Audience  audience  `json:"aud"`
	Expiry    *unixTime `json:"exp"`
	NotBefore *unixTime `json:"nbf"`
	Version   string    `json:"ver"`
	TenantID  string    `json:"tid"`
	ObjectID  string    `json:"oid"`
	AZP       string    `json:"azp"`   // client app id in v2.0 tokens
	AppID     string    `json:"appid"` // the same in v1.0 tokens
	Scope     string    `json:"scp"`   // delegated scopes; absent in app-only tokens
	IDType    string    `json:"idtyp"` // "app" in app-only tokens when the optional claim is configured
	Roles     []string  `json:"roles"`
}

// audience is aud, a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// unixTime is a NumericDate: seconds since the epoch, possibly fractional.
type unixTime float64

func (t unixTime) time() time.Time {
	sec := int64(t)
	return time.Unix(sec, int64((float64(t)-float64(sec))*1e9))
}

// authenticate checks a bearer token and returns its caller.
//
// The claims are first read without checking the signature, to refuse at once, with a precise reason,
// tokens that would be refused whatever their signature (another tenant, another API, expired, v1.0).
// Such tokens cost no key fetch, so junk tokens cannot make the connector hammer Entra ID. Then go-oidc
// checks the signature, issuer and expiry, and only the claims it has verified decide who the caller is
// and which roles they hold.
func (v *entraVerifier) authenticate(ctx context.Context, raw string) (Principal, *Error) {
	hdr, unverified, err := parseUnverified(raw)
	if err != nil {
		return Principal{}, bearerError(CodeInvalidToken, fmt.Sprintf("The bearer token is not an Entra ID access token: %v.", err))
	}
	if hdr.Alg != "RS256" {
		return Principal{}, bearerError(CodeInvalidToken, fmt.Sprintf("The token is signed with algorithm %s; Entra ID access tokens are signed with RS256, and no other algorithm is accepted.", quoteClaim(hdr.Alg)))
	}
	if e := v.checkClaims(unverified); e != nil {
		return Principal{}, e
	}
	tok, err := v.verifier.Verify(ctx, raw)
	if err != nil {
		return Principal{}, v.verifyFailure(ctx, hdr, err)
	}
	var c tokenClaims
	if err := tok.Claims(&c); err != nil {
		return Principal{}, bearerError(CodeInvalidToken, fmt.Sprintf("The token's claims cannot be read: %v.", err))
	}
	if e := v.checkClaims(c); e != nil {
		return Principal{}, e
	}
	return v.principal(c), nil
}

// parseUnverified decodes a compact JWS's header and claims without checking anything.
func parseUnverified(raw string) (tokenHeader, tokenClaims, error) {
	var (
		hdr tokenHeader
		c   tokenClaims
	)
	if raw == "" {
		return hdr, c, errors.New("the token is empty")
	}
	if len(raw) > maxTokenSize {
		return hdr, c, fmt.Errorf("the token is %d bytes long, more than the %d accepted", len(raw), maxTokenSize)
	}
	h, rest, ok1 := strings.Cut(raw, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") || sig == "" {
		return hdr, c, errors.New("it is not a signed JSON Web Token (three base64url parts separated by dots)")
	}
	if err := decodeSegment(h, &hdr); err != nil {
		return hdr, c, fmt.Errorf("its header segment %w", err)
	}
	if err := decodeSegment(p, &c); err != nil {
		return hdr, c, fmt.Errorf("its claims segment %w", err)
	}
	return hdr, c, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("is not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("is not the expected JSON")
	}
	return nil
}

// checkClaims applies the connector's rules to a token's claims. Configuration mistakes (version, tenant,
// audience) are reported before time problems, as they are the ones a person has to fix.
func (v *entraVerifier) checkClaims(c tokenClaims) *Error {
	now := v.now()
	switch {
	case c.Version == "1.0" || strings.HasPrefix(c.Issuer, "https://sts.windows.net/") || c.Issuer == strings.TrimSuffix(v.issuer, "v2.0"):
		return bearerError(CodeV1Token, fmt.Sprintf("The token is an Entra ID v1.0 token (issuer %s); this connector accepts v2.0 tokens only. In the API's app registration manifest set api.requestedAccessTokenVersion to 2 (accessTokenAcceptedVersion in the older manifest), then have the caller get a new token.", quoteClaim(c.Issuer)))
	case c.Issuer != v.issuer:
		return bearerError(CodeWrongIssuer, fmt.Sprintf("The token was issued by %s, but this connector accepts tokens issued by %s only. The caller must get its token from tenant %s.", quoteClaim(c.Issuer), quoteClaim(v.issuer), v.tenantID))
	case !strings.EqualFold(c.TenantID, v.tenantID):
		return bearerError(CodeWrongIssuer, fmt.Sprintf("The token is for tenant %s, but this connector accepts tenant %s only.", quoteClaim(c.TenantID), v.tenantID))
	case !v.audienceOK(c.Audience):
		return bearerError(CodeWrongAudience, fmt.Sprintf("The token is for audience %s, but this connector accepts %s. The caller must request a token for the connector's API (scope '<client ID or App ID URI>/.default' for apps, the API's delegated scope for users); in a custom connector, set Resource URL to one of these.", quoteClaim(strings.Join(c.Audience, " ")), v.audienceList()))
	case c.Expiry == nil:
		return bearerError(CodeInvalidToken, "The token has no expiry (exp) claim, which Entra ID access tokens always have.")
	case now.After(c.Expiry.time().Add(v.leeway)):
		return bearerError(CodeTokenExpired, fmt.Sprintf("The token expired at %s (it is now %s, %s of clock skew allowed). The caller must get a new token; if this keeps happening, check the clocks of the caller and of the connector host.", c.Expiry.time().UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.leeway))
	case c.NotBefore != nil && now.Add(v.leeway).Before(c.NotBefore.time()):
		return bearerError(CodeInvalidToken, fmt.Sprintf("The token is not valid before %s (it is now %s, %s of clock skew allowed). Check the clock of the connector host.", c.NotBefore.time().UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.leeway))
	case c.ObjectID == "":
		return bearerError(CodeInvalidToken, "The token has no oid claim, so the caller cannot be identified.")
	}
	return nil
}

func (v *entraVerifier) audienceOK(aud audience) bool {
	return slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(v.audiences, a) })
}

func (v *entraVerifier) audienceList() string {
	q := make([]string, len(v.audiences))
	for i, a := range v.audiences {
		q[i] = quoteClaim(a)
	}
	return strings.Join(q, " or ")
}

// verifyFailure explains why go-oidc refused a token whose claims passed checkClaims: what is left is the
// signature, or the keys to check it with.
func (v *entraVerifier) verifyFailure(ctx context.Context, hdr tokenHeader, err error) *Error {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) { // the clock moved on since checkClaims
		return bearerError(CodeTokenExpired, fmt.Sprintf("The token expired at %s. The caller must get a new token.", expired.Expiry.UTC().Format(time.RFC3339)))
	}
	if fetchErr := v.keys.failure(); fetchErr != nil || ctx.Err() != nil {
		host := v.jwksURL
		if u, err := url.Parse(v.jwksURL); err == nil {
			host = u.Host
		}
		return &Error{
			Status: http.StatusServiceUnavailable,
			Code:   CodeKeysUnavailable,
			Detail: fmt.Sprintf("The connector could not fetch Entra ID's signing keys, so it cannot check tokens now. Try again shortly; if this persists, check that the connector host can reach %s over HTTPS.", host),
			cause:  cmp.Or(fetchErr, ctx.Err()),
		}
	}
	return bearerError(CodeBadSignature, fmt.Sprintf("The token's signature does not verify with any signing key Entra ID publishes for tenant %s (the token names key %s). The token was altered or was not issued by Entra ID; the caller must get a new one.", v.tenantID, quoteClaim(hdr.Kid)))
}

// principal is the caller a verified token names.
func (v *entraVerifier) principal(c tokenClaims) Principal {
	p := Principal{
		ID:       v.tenantID + "/" + c.ObjectID,
		Kind:     KindUser,
		Name:     c.ObjectID,
		TenantID: v.tenantID,
	}
	if c.IDType == "app" || c.Scope == "" {
		p.Kind = KindApp
		p.Name = cmp.Or(c.AZP, c.AppID, c.ObjectID)
	}
	roles := make([]Role, len(c.Roles))
	for i, r := range c.Roles {
		roles[i] = Role(r)
	}
	p.Roles = knownRoles(roles)
	return p
}
