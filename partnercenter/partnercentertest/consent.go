package partnercentertest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The secure application model's consent: a partner user signs in (with MFA) at the authorize endpoint,
// which redirects the browser back to the app with an authorization code; the app redeems the code at
// the token endpoint (grant_type=authorization_code) for an app+user access token and the first refresh
// token. The simulator plays the sign-in: the partner user is always signed in and consents at once, so a
// test plays the browser by GETting the authorize URL and following the redirect.
//
// Microsoft Entra ID's v2.0 shape: /{tenant}/oauth2/v2.0/authorize with response_type=code, redirect_uri,
// scope, state, code_challenge and code_challenge_method (PKCE, RFC 7636); the code is redeemed with the
// same redirect_uri and the code_verifier. A refresh token is issued only when offline_access was asked for.

// authCodeLifetime: Entra's authorization codes are short-lived ("about 10 minutes").
const authCodeLifetime = 10 * time.Minute

// OfflineAccessScope asks for a refresh token alongside the access token.
const OfflineAccessScope = "offline_access"

type authCode struct {
	clientID, redirectURI string
	challenge, method     string // PKCE; empty challenge: none was sent
	offline               bool
	userID                string
	expires               time.Time
	redeemed              bool
}

// AuthorizeURL is the simulator's authorize endpoint for the partner tenant (OAuth 2.0 v2.0 form): the
// token URL with /authorize in place of /token.
func (s *Server) AuthorizeURL() string {
	return s.URL + "/" + s.opts.PartnerTenantID + "/oauth2/v2.0/authorize"
}

// authorizePath recognises /{tenant}/oauth2/v2.0/authorize.
func authorizePath(p string) (tenant string, ok bool) {
	seg := strings.Split(strings.Trim(p, "/"), "/")
	if len(seg) == 4 && seg[1] == "oauth2" && seg[2] == "v2.0" && seg[3] == "authorize" {
		return seg[0], true
	}
	return "", false
}

// loopbackRedirect reports whether u is a loopback redirect URI an app registration may use with any
// port: Entra ignores the port of http://localhost (and 127.0.0.1) redirect URIs, for tools that listen
// on a free port.
func loopbackRedirect(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveAuthorize is the authorize endpoint. Problems with the client or the redirect URI are shown to the
// person (Entra's error page: there is nowhere safe to redirect to); the others go back to the app as
// error= and error_description= on the redirect, with the state.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request, tenant string) {
	page := func(status, aadsts int, format string, args ...any) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "Sorry, but we're having trouble signing you in.\n\nAADSTS%d: %s\n", aadsts, fmt.Sprintf(format, args...))
	}
	if r.Method != http.MethodGet {
		page(http.StatusMethodNotAllowed, 900561, "The endpoint only accepts GET requests. Received a %s request.", r.Method)
		return
	}
	q := r.URL.Query()
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	switch {
	case !strings.EqualFold(tenant, s.opts.PartnerTenantID):
		page(http.StatusBadRequest, 90002, "Tenant '%s' not found.", tenant)
		return
	case clientID == "":
		page(http.StatusBadRequest, 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	case !strings.EqualFold(clientID, s.opts.ClientID):
		page(http.StatusBadRequest, 700016, "Application with identifier '%s' was not found in the directory '%s'.", clientID, s.opts.PartnerTenantID)
		return
	case !loopbackRedirect(redirectURI):
		// The app registration's redirect URIs are http://localhost (any port) in the simulator.
		page(http.StatusBadRequest, 50011, "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", redirectURI, clientID)
		return
	}
	back := func(params url.Values) {
		u, _ := url.Parse(redirectURI) // checked by loopbackRedirect
		v := u.Query()
		for k, vals := range params {
			v[k] = vals
		}
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	refuse := func(errName string, aadsts int, format string, args ...any) {
		back(url.Values{"error": {errName}, "error_description": {fmt.Sprintf("AADSTS%d: %s", aadsts, fmt.Sprintf(format, args...))}})
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge != "" && method == "" {
		method = "plain" // RFC 7636 §4.3
	}
	scope := q.Get("scope")
	if _, e := partnerCenterScope(scope); e != nil {
		refuse(e.err, e.aadsts, "%s", e.description)
		return
	}
	switch {
	case q.Get("response_type") != "code":
		refuse("unsupported_response_type", 700054, "response_type '%s' is not enabled for the application: use code.", q.Get("response_type"))
		return
	case challenge != "" && method != "S256" && method != "plain":
		refuse("invalid_request", 501491, "Invalid code_challenge_method '%s': use S256.", method)
		return
	case challenge != "" && (len(challenge) < 43 || len(challenge) > 128):
		refuse("invalid_request", 501491, "Invalid size of code_challenge parameter.")
		return
	}
	offline := false
	for _, sc := range strings.Fields(scope) {
		offline = offline || strings.EqualFold(sc, OfflineAccessScope)
	}
	s.ctl.Lock()
	now := s.now()
	for k, c := range s.codes { // forget the codes that lapsed
		if !now.Before(c.expires) {
			delete(s.codes, k)
		}
	}
	code := "pcsim-code." + randomToken(32)
	s.codes[code] = &authCode{clientID: clientID, redirectURI: redirectURI, challenge: challenge, method: method, offline: offline,
		userID: s.partnerUserID, expires: now.Add(authCodeLifetime)}
	s.ctl.Unlock()
	back(url.Values{"code": {code}})
}

// redeemCode answers grant_type=authorization_code for a client already authenticated by
// serveTokenRequest: the code must be one the authorize endpoint issued to this client, not redeemed yet
// and not expired, presented with the same redirect_uri and the code_verifier of its code_challenge.
func (s *Server) redeemCode(w http.ResponseWriter, form url.Values, correlationID string) {
	fail := func(status int, errName string, aadsts int, format string, args ...any) {
		tokenError{status: status, err: errName, aadsts: aadsts, description: fmt.Sprintf(format, args...)}.write(w, correlationID, s.now())
	}
	if sc := form.Get("scope"); sc != "" {
		if _, e := partnerCenterScope(sc); e != nil {
			e.write(w, correlationID, s.now())
			return
		}
	}
	s.ctl.Lock()
	defer s.ctl.Unlock()
	raw := form.Get("code")
	c := s.codes[raw]
	switch {
	case raw == "":
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'code'.")
		return
	case c == nil || !strings.EqualFold(c.clientID, form.Get("client_id")):
		fail(http.StatusBadRequest, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
		return
	case c.redeemed:
		fail(http.StatusBadRequest, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
		return
	case !s.now().Before(c.expires):
		fail(http.StatusBadRequest, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
		return
	case form.Get("redirect_uri") != c.redirectURI:
		// Simulator's choice of code: Entra refuses a redirect_uri that differs from the authorize request's.
		fail(http.StatusBadRequest, "invalid_grant", 50011, "The redirect URI '%s' specified in the request does not match the redirect URI the authorization code was issued for.", form.Get("redirect_uri"))
		return
	case c.challenge != "" && !pkceMatches(c.challenge, c.method, form.Get("code_verifier")):
		fail(http.StatusBadRequest, "invalid_grant", 50148, "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.")
		return
	}
	c.redeemed = true
	answer := map[string]any{
		"token_type": "Bearer", "expires_in": int(accessTokenLifetime / time.Second), "ext_expires_in": int(accessTokenLifetime / time.Second),
		"access_token": s.issueAccessToken(appUserOnly, c.userID), "scope": UserImpersonationScope,
	}
	if c.offline {
		answer["refresh_token"] = s.issueRefreshToken(c.userID)
	}
	writeTokenJSON(w, http.StatusOK, answer)
}

// pkceMatches checks a code_verifier against the code_challenge (RFC 7636 §4.6), in constant time.
func pkceMatches(challenge, method, verifier string) bool {
	if verifier == "" {
		return false
	}
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}
