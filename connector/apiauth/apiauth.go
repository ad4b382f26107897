// Package apiauth decides who is calling the connector's HTTP API and what they may do. Callers are Power
// Automate flows and custom connectors, and operators with scripts; they present either an Entra ID v2.0
// access token for the connector's API app registration ("Authorization: Bearer …"), whose app roles
// become the caller's roles, or an API key (in X-API-Key by default) whose roles are configured with its
// hash. A request that carries both is judged by its token.
//
// Entra ID tokens are checked with go-oidc against the tenant's published signing keys, which are fetched
// on first use (never at start-up) and again when a token names a key that is not cached, at most once
// every five minutes so that forged tokens cannot turn the connector against Entra ID. Tokens whose
// claims already disqualify them (another tenant or API, expired, v1.0) are refused before any key is
// needed. Failures are reported as *Error with a stable code and a sentence that tells an administrator
// what to fix.
//
// apiauthtest has a token issuer on loopback for tests.
package apiauth

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Role is an app role of the connector's API. The values are the app role values to declare in the API's
// app registration and to give API keys.
type Role string

// The roles the connector knows; role values it does not know are ignored.
const (
	RoleReader   Role = "Connector.Read"    // read rows, diagnoses, jobs, run history
	RoleOperator Role = "Connector.Operate" // everything a reader can, plus actions (map, request link, provision, run jobs, webhook subscriptions)
)

// Kinds of Principal.
const (
	KindUser   = "user"   // a delegated token: the signed-in user through a client app
	KindApp    = "app"    // an app-only token (client credentials)
	KindAPIKey = "apikey" // an API key
)

// Principal is who called.
type Principal struct {
	// ID is stable across calls and token renewals: "<tid>/<oid>" for Entra ID callers, "key:<name>" for
	// API keys.
	ID string
	// Kind is KindUser, KindApp or KindAPIKey.
	Kind string
	// Name is for logs: the key's name, the client app id (azp, else appid) for apps, the object id for
	// users. It is never a user's e-mail or UPN.
	Name     string
	TenantID string // empty for API keys
	Roles    []Role // the known roles only
}

// Has reports whether p holds role r. An operator is also a reader.
func (p Principal) Has(r Role) bool {
	return slices.Contains(p.Roles, r) || r == RoleReader && slices.Contains(p.Roles, RoleOperator)
}

// Config says which credentials the API accepts. At least one of Entra and Keys is required.
type Config struct {
	// Entra, when set, accepts Entra ID v2.0 access tokens issued for the connector's API.
	Entra *EntraConfig
	// Keys are the API keys accepted; see ParseAPIKeys.
	Keys []APIKey
	// KeyHeader is the request header an API key is read from; "X-API-Key" if empty.
	KeyHeader string
}

const defaultKeyHeader = "X-API-Key"

// Authenticator checks the credentials of API requests. It is safe for concurrent use.
type Authenticator struct {
	entra     *entraVerifier // nil: bearer tokens are not accepted
	keys      []storedKey
	keyHeader string
	// accepted is the WWW-Authenticate value offering every accepted scheme, sent when a request has
	// no usable credentials.
	accepted string
}

// New returns an Authenticator for cfg, or an error that lists every problem with cfg. It makes no network
// calls: Entra ID's signing keys are fetched when the first token arrives.
func New(cfg Config) (*Authenticator, error) {
	var errs []error
	if cfg.Entra == nil && len(cfg.Keys) == 0 {
		errs = append(errs, errors.New("neither Entra ID nor API keys are configured, so no caller could be let in"))
	}
	header := cmp.Or(strings.TrimSpace(cfg.KeyHeader), defaultKeyHeader)
	if !httpguts.ValidHeaderFieldName(header) || http.CanonicalHeaderKey(header) == "Authorization" {
		errs = append(errs, fmt.Errorf("KeyHeader %q is not a usable header name", cfg.KeyHeader))
	}
	if cfg.Entra != nil {
		errs = append(errs, checkEntraConfig(*cfg.Entra)...)
	}
	checker := newKeyChecker()
	for i, k := range cfg.Keys {
		for _, err := range checker.check(keyEntry{pos: i + 1, key: k}) {
			errs = append(errs, fmt.Errorf("Keys: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("apiauth: config: %w", err)
	}

	a := &Authenticator{keys: compileKeys(cfg.Keys), keyHeader: header}
	var offers []string
	if cfg.Entra != nil {
		a.entra = newEntraVerifier(*cfg.Entra)
		offers = append(offers, fmt.Sprintf("Bearer realm=%q", realm))
	}
	if len(a.keys) > 0 {
		offers = append(offers, fmt.Sprintf("APIKey realm=%q, header=%q", realm, header))
	}
	a.accepted = strings.Join(offers, ", ")
	return a, nil
}

// Authenticate identifies the caller of r from "Authorization: Bearer <token>" or the API key header; a
// bearer token wins when both are present. The error is always an *Error. Neither the principal nor the
// error carries the token or the key.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	authz := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, token, _ := strings.Cut(authz, " ")
	bearer := strings.EqualFold(scheme, "Bearer")
	key := strings.TrimSpace(r.Header.Get(a.keyHeader))
	switch {
	case bearer && a.entra != nil:
		p, err := a.entra.authenticate(r.Context(), strings.TrimSpace(token))
		if err != nil {
			return Principal{}, err
		}
		return p, nil
	case key != "" && len(a.keys) > 0:
		return a.authenticateKey(key)
	case authz != "" || key != "":
		return Principal{}, a.unsupported(scheme, bearer, key != "")
	}
	return Principal{}, &Error{
		Status:    http.StatusUnauthorized,
		Code:      CodeMissingCredentials,
		Detail:    "The request has no credentials. " + a.howToCall(),
		Challenge: a.accepted,
	}
}

// unsupported explains a credential this connector was not configured to take.
func (a *Authenticator) unsupported(scheme string, bearer, hasKey bool) *Error {
	var what string
	switch {
	case bearer:
		what = "This connector does not accept Entra ID tokens."
	case hasKey && scheme == "":
		what = fmt.Sprintf("This connector does not accept API keys (%s header).", a.keyHeader)
	case isSchemeName(scheme):
		what = fmt.Sprintf("The Authorization scheme %s is not supported.", quoteClaim(scheme))
	default:
		// Without a registered scheme the header may be a bare token or key; it is not repeated.
		what = "The Authorization header does not start with a supported scheme (its value is not repeated here, as it may be a credential)."
		if len(a.keys) > 0 {
			what += fmt.Sprintf(" An API key goes in the %s header, not in Authorization.", a.keyHeader)
		}
	}
	return &Error{
		Status:    http.StatusUnauthorized,
		Code:      CodeUnsupportedScheme,
		Detail:    what + " " + a.howToCall(),
		Challenge: a.accepted,
	}
}

func (a *Authenticator) howToCall() string {
	switch {
	case a.entra != nil && len(a.keys) > 0:
		return fmt.Sprintf("Send an Entra ID access token for the connector's API as 'Authorization: Bearer <token>', or an API key in the %s header.", a.keyHeader)
	case a.entra != nil:
		return "Send an Entra ID access token for the connector's API as 'Authorization: Bearer <token>'."
	}
	return fmt.Sprintf("Send an API key in the %s header.", a.keyHeader)
}

// isSchemeName reports whether s is a registered HTTP authentication scheme (IANA's registry). Only those
// are named back to the caller: anything else in the scheme's place may be a credential sent without one
// (an API key pasted into Authorization), and a credential is never repeated.
func isSchemeName(s string) bool {
	for _, scheme := range []string{"Basic", "Digest", "Negotiate", "NTLM", "HOBA", "Mutual", "OAuth", "DPoP", "GNAP",
		"PrivateToken", "Concealed", "SCRAM-SHA-1", "SCRAM-SHA-256", "vapid", "AWS4-HMAC-SHA256", "Token", "ApiKey"} {
		if strings.EqualFold(s, scheme) {
			return true
		}
	}
	return false
}

// Authorize returns nil if p holds role need, and otherwise a 403 *Error that says how to grant it.
func (a *Authenticator) Authorize(p Principal, need Role) error {
	if p.Has(need) {
		return nil
	}
	var who, grant string
	switch p.Kind {
	case KindUser:
		who = "User " + quoteClaim(p.Name)
		grant = fmt.Sprintf("In the Entra admin center, open Enterprise applications, select the connector's API, and under Users and groups assign the user (or a group they belong to) the %s role; the user then signs in again to get a token that carries it.", need)
	case KindApp:
		who = "Application " + quoteClaim(p.Name)
		grant = fmt.Sprintf("In the Entra admin center, add the application permission %s of the connector's API to the calling app registration (API permissions > Add a permission > My APIs) and grant admin consent; the assignment then shows in Enterprise applications under the calling app's Permissions. The app must get a new token afterwards.", need)
	default:
		who = "API key " + quoteClaim(p.Name)
		grant = fmt.Sprintf("Give the key the %s role in the connector's API key configuration (name=%s=sha256:…), or use a key that has it.", roleWord(need), roleWord(need))
	}
	return &Error{
		Status: http.StatusForbidden,
		Code:   CodeMissingRole,
		Detail: fmt.Sprintf("%s does not have the %s role this request needs. %s", who, need, grant),
	}
}

// roleWord is the short form of a role in an API key spec.
func roleWord(r Role) string {
	if r == RoleOperator {
		return "operator"
	}
	return "reader"
}
