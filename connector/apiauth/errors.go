package apiauth

import (
	"fmt"
	"net/http"
	"strings"
)

// Codes of Error. They are stable: clients, dashboards and tests branch on them, so a new kind of failure
// gets a new code rather than a new meaning for an old one.
const (
	CodeMissingCredentials = "missing_credentials" // neither a bearer token nor an API key
	CodeUnsupportedScheme  = "unsupported_scheme"  // an Authorization scheme or credential this connector does not take
	CodeInvalidToken       = "invalid_token"       // not a well-formed Entra ID v2 access token, or not yet valid
	CodeTokenExpired       = "token_expired"
	CodeWrongAudience      = "wrong_audience"
	CodeWrongIssuer        = "wrong_issuer" // another tenant or another identity provider
	CodeBadSignature       = "bad_signature"
	CodeV1Token            = "v1_token"
	CodeInvalidAPIKey      = "invalid_api_key"
	CodeMissingRole        = "missing_role"     // 403
	CodeKeysUnavailable    = "keys_unavailable" // 503: the signing keys could not be fetched
)

// realm names the protection space in WWW-Authenticate challenges.
const realm = "csp-connector"

// Error is why a request was not let in. Status is the HTTP status to answer with, Code a stable machine
// code, Detail a sentence for the administrator who has to fix it, and Challenge the WWW-Authenticate value
// to send with a 401. None of its fields ever contains the presented token or key.
type Error struct {
	Status    int    // 401, 403, or 503 for keys_unavailable
	Code      string // one of the Code constants
	Detail    string
	Challenge string // empty unless Status is 401

	// cause is the underlying failure (a key fetch error), for logs; it never carries a credential.
	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("apiauth: %s: %s (%v)", e.Code, e.Detail, e.cause)
	}
	return fmt.Sprintf("apiauth: %s: %s", e.Code, e.Detail)
}

// Unwrap returns the failure behind a keys_unavailable error, if any.
func (e *Error) Unwrap() error { return e.cause }

// bearerError is a 401 about a presented bearer token, with the RFC 6750 challenge that names the
// problem.
func bearerError(code, detail string) *Error {
	return &Error{
		Status:    http.StatusUnauthorized,
		Code:      code,
		Detail:    detail,
		Challenge: fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description="%s"`, realm, headerSafe(detail)),
	}
}

// apiKeyError is a 401 about a presented API key. The challenge uses an "APIKey" scheme, which no standard
// defines; it tells a person reading the response which header the key goes in.
func apiKeyError(header, detail string) *Error {
	return &Error{
		Status:    http.StatusUnauthorized,
		Code:      CodeInvalidAPIKey,
		Detail:    detail,
		Challenge: fmt.Sprintf(`APIKey realm=%q, header=%q, error="invalid_key", error_description="%s"`, realm, header, headerSafe(detail)),
	}
}

// headerSafe makes s fit inside a quoted string of an HTTP header as RFC 6750 allows for
// error_description: printable ASCII without '"' or '\'.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// quoteClaim quotes a claim value taken from a token for a Detail sentence. The value comes from the
// caller, so it is cut short and reduced to printable ASCII: it must not be able to forge log lines or
// headers.
func quoteClaim(s string) string {
	const limit = 100
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return "'" + headerSafe(s) + "'"
}
