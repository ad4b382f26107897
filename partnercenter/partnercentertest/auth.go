package partnercentertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/internal/simhttp"
)

// Partner Center's token audience and the scopes a client asks for.
const (
	// Resource is the audience of every Partner Center token.
	Resource = "https://api.partnercenter.microsoft.com"
	// Scope is the client-credentials scope (app-only), also accepted on the refresh-token grant.
	Scope = Resource + "/.default"
	// UserImpersonationScope is the delegated scope of the secure application model (app+user).
	UserImpersonationScope = Resource + "/user_impersonation"
)

const (
	// accessTokenLifetime is what Entra answers as expires_in for Partner Center tokens in Microsoft's
	// samples.
	accessTokenLifetime = 3599 * time.Second
	// refreshTokenLifetime: refresh tokens lapse after 90 days without use; every exchange rotates them.
	refreshTokenLifetime = 90 * 24 * time.Hour
)

type accessToken struct {
	kind    tokenKind // appOnly or appUserOnly
	userID  string
	expires time.Time
}

type refreshToken struct {
	userID  string
	expires time.Time
}

// principal is who a request comes from, as its token says.
type principal struct {
	kind      tokenKind // appOnly or appUserOnly; eitherToken for anonymous
	userID    string
	anonymous bool // no Authorization header, accepted under Options.AuthOptional
}

func (p principal) appUser() bool { return p.anonymous || p.kind == appUserOnly }

// allows checks the token kind an operation needs. Partner Center refuses an app-only token on an
// app+user operation with 403 / 900329; the reverse case is undocumented and answered the same way with
// 900308 (simulator's choice). Neither is a 401, which would make a client refresh a token that is fine.
func (p principal) allows(need tokenKind) *apiError {
	switch {
	case p.anonymous || need == eitherToken:
		return nil
	case need == appUserOnly && p.kind != appUserOnly:
		return newError(http.StatusForbidden, CodeAppOnlyNotSupported, "This resource does not support application-only authentication. Use an App+User token.")
	case need == appOnly && p.kind != appOnly:
		return newError(http.StatusForbidden, CodeAppUserNotSupported, "Insufficient privileges to complete the operation. This operation supports only application-only (AppOnly) authentication.")
	}
	return nil
}

// authenticate reads the bearer token of an API request.
func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" && s.opts.AuthOptional {
		return principal{anonymous: true, userID: s.partnerUserID}, nil
	}
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return principal{}, s.unauthorized("Partner token missing in request context")
	}
	s.ctl.Lock()
	t := s.access[tok]
	s.ctl.Unlock()
	switch {
	case t == nil:
		return principal{}, s.unauthorized("Partner token missing in request context")
	case !s.now().Before(t.expires):
		return principal{kind: t.kind}, s.unauthorized("Partner token in request context has expired")
	}
	return principal{kind: t.kind, userID: t.userID}, nil
}

func (s *Server) unauthorized(description string) *apiError {
	e := newError(http.StatusUnauthorized, CodeTokenMissing, "%s", description)
	e.header = http.Header{"Www-Authenticate": {"OAuth realm=urn:cpsvc:cpid:" + s.opts.PartnerTenantID}}
	return e
}

// TokenURL is the simulator's Entra token endpoint for the partner tenant (OAuth 2.0 v2.0 form).
func (s *Server) TokenURL() string {
	return s.URL + "/" + s.opts.PartnerTenantID + "/oauth2/v2.0/token"
}

// TokenRequests counts the requests the token endpoint received (they are not in the request log).
func (s *Server) TokenRequests() int {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	return s.tokenReq
}

// NewRefreshToken returns a refresh token as if a partner user had consented to the app (the secure
// application model). Exchanging it at the token endpoint yields an app+user token and a new refresh
// token; the one exchanged stops working.
func (s *Server) NewRefreshToken() string {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	return s.issueRefreshToken(s.partnerUserID)
}

// ExpireTokens makes every access token issued so far expired, as if an hour had passed: the API answers
// 401 until the client fetches a new one. Refresh tokens are unaffected.
func (s *Server) ExpireTokens() {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	for _, t := range s.access {
		t.expires = time.Time{}
	}
}

// issueAccessToken records a new token; the caller holds s.ctl. Tokens expired for over an hour are
// forgotten then, so a long-running sandbox does not keep them all.
func (s *Server) issueAccessToken(kind tokenKind, userID string) string {
	now := s.now()
	if len(s.access) > 1000 {
		for k, t := range s.access {
			if now.Sub(t.expires) > time.Hour {
				delete(s.access, k)
			}
		}
	}
	tok := "pcsim." + randomToken(32)
	s.access[tok] = &accessToken{kind: kind, userID: userID, expires: now.Add(accessTokenLifetime)}
	return tok
}

// issueRefreshToken records a new refresh token; the caller holds s.ctl.
func (s *Server) issueRefreshToken(userID string) string {
	tok := "pcsim-rt." + randomToken(48)
	s.refresh[tok] = &refreshToken{userID: userID, expires: s.now().Add(refreshTokenLifetime)}
	return tok
}

// tokenPath recognises /{tenant}/oauth2/v2.0/token and the older /{tenant}/oauth2/token.
func tokenPath(p string) (tenant string, ok bool) {
	seg := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(seg) == 4 && seg[1] == "oauth2" && seg[2] == "v2.0" && seg[3] == "token":
		return seg[0], true
	case len(seg) == 3 && seg[1] == "oauth2" && seg[2] == "token":
		return seg[0], true
	}
	return "", false
}

// tokenError is Entra's error answer.
type tokenError struct {
	status      int
	err         string
	aadsts      int
	description string
}

func (e tokenError) write(w http.ResponseWriter, correlationID string, now time.Time) {
	stamp := now.UTC().Format("2006-01-02 15:04:05Z")
	traceID := uuid.NewString()
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", e.aadsts, e.description, traceID, correlationID, stamp)
	writeTokenJSON(w, e.status, map[string]any{
		"error": e.err, "error_description": desc, "error_codes": []int{e.aadsts},
		"timestamp": stamp, "trace_id": traceID, "correlation_id": correlationID,
	})
}

// writeTokenJSON answers like Entra: plain JSON (no byte-order mark, unlike Partner Center) and no caching.
func writeTokenJSON(w http.ResponseWriter, status int, v any) {
	data, _ := json.Marshal(v) // maps of strings and numbers always encode
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// serveTokenRequest is the token endpoint: client credentials (app-only), authorization code (the secure
// application model's consent, with PKCE: consent.go) and refresh-token (app+user) grants for the one app
// registration, with Entra's error answers.
func (s *Server) serveTokenRequest(w http.ResponseWriter, r *http.Request, tenant string) {
	s.ctl.Lock()
	s.tokenReq++
	s.ctl.Unlock()
	correlationID := w.Header().Get("MS-CorrelationId")
	if f, latency, faulted := s.fault(r.Method, strings.TrimPrefix(r.URL.Path, "/"), true); faulted {
		if !simhttp.Pause(r.Context(), latency+f.Latency) {
			return
		}
		if f.Drop {
			panic(http.ErrAbortHandler)
		}
		if f.Status != 0 {
			tokenError{status: f.Status, err: "temporarily_unavailable", aadsts: 90033, description: "A transient error has occurred. Please try again."}.write(w, correlationID, s.now())
			return
		}
	}
	fail := func(status int, errName string, code int, format string, args ...any) {
		tokenError{status: status, err: errName, aadsts: code, description: fmt.Sprintf(format, args...)}.write(w, correlationID, s.now())
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a %s request.", r.Method)
		return
	}
	if !strings.EqualFold(tenant, s.opts.PartnerTenantID) {
		fail(http.StatusBadRequest, "invalid_request", 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body could not be read.")
		return
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
		return
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if id, sec, basic := r.BasicAuth(); basic {
		clientID, secret = id, sec
	}
	grant := form.Get("grant_type")
	switch {
	case grant == "":
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	case grant != "client_credentials" && grant != "refresh_token" && grant != "authorization_code":
		fail(http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'.", grant)
		return
	case clientID == "":
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	case !strings.EqualFold(clientID, s.opts.ClientID):
		fail(http.StatusBadRequest, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'.", clientID, s.opts.PartnerTenantID)
		return
	case secret == "":
		fail(http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	case secret != s.opts.ClientSecret:
		// Entra answers a wrong secret with 401 invalid_client (RFC 6749 §5.2), not 400 invalid_grant.
		fail(http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)
		return
	}
	if grant == "authorization_code" {
		s.redeemCode(w, form, correlationID)
		return
	}
	scope := form.Get("scope")
	if scope == "" && form.Get("resource") != "" {
		scope = strings.TrimRight(form.Get("resource"), "/") + "/.default" // the v1 endpoint's resource parameter
	}
	pcScope, e := partnerCenterScope(scope)
	if e != nil {
		e.write(w, correlationID, s.now())
		return
	}

	s.ctl.Lock()
	defer s.ctl.Unlock()
	switch grant {
	case "client_credentials":
		if !strings.EqualFold(pcScope, Scope) || len(strings.Fields(scope)) != 1 {
			fail(http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
			return
		}
		writeTokenJSON(w, http.StatusOK, map[string]any{
			"token_type": "Bearer", "expires_in": int(accessTokenLifetime / time.Second), "ext_expires_in": int(accessTokenLifetime / time.Second),
			"access_token": s.issueAccessToken(appOnly, ""), "scope": Scope,
		})
	case "refresh_token":
		old := form.Get("refresh_token")
		rt := s.refresh[old]
		switch {
		case old == "":
			fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'refresh_token'.")
			return
		case rt == nil:
			// Rotation is strict here: a refresh token that was exchanged once is gone, so a client that
			// does not keep the newest one fails at once instead of 90 days later.
			fail(http.StatusBadRequest, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
			return
		case !s.now().Before(rt.expires):
			delete(s.refresh, old)
			fail(http.StatusBadRequest, "invalid_grant", 700082, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for 90.00:00:00.", rt.expires.Add(-refreshTokenLifetime).UTC().Format(time.RFC3339))
			return
		}
		delete(s.refresh, old)
		writeTokenJSON(w, http.StatusOK, map[string]any{
			"token_type": "Bearer", "expires_in": int(accessTokenLifetime / time.Second), "ext_expires_in": int(accessTokenLifetime / time.Second),
			"access_token": s.issueAccessToken(appUserOnly, rt.userID), "refresh_token": s.issueRefreshToken(rt.userID),
			"scope": UserImpersonationScope,
		})
	}
}

// partnerCenterScope finds the Partner Center scope among the requested ones. OpenID scopes may come
// along; any other resource is unknown to this directory.
func partnerCenterScope(scope string) (string, *tokenError) {
	var found string
	for _, sc := range strings.Fields(scope) {
		switch lower := strings.ToLower(sc); {
		case lower == "openid" || lower == "profile" || lower == "offline_access" || lower == "email":
		case strings.HasPrefix(lower, strings.ToLower(Resource)+"/"):
			if lower != strings.ToLower(Scope) && lower != strings.ToLower(UserImpersonationScope) {
				return "", &tokenError{status: http.StatusBadRequest, err: "invalid_scope", aadsts: 70011, description: fmt.Sprintf("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", sc)}
			}
			found = sc
		default:
			return "", &tokenError{status: http.StatusBadRequest, err: "invalid_resource", aadsts: 500011, description: fmt.Sprintf("The resource principal named %s was not found in the tenant.", sc)}
		}
	}
	if found == "" {
		return "", &tokenError{status: http.StatusBadRequest, err: "invalid_scope", aadsts: 70011, description: "The provided request must include a 'scope' input parameter for " + Resource + "."}
	}
	return found, nil
}

// AppCredential returns a credential that gets app-only tokens (client credentials) from this
// simulator's token endpoint over Client(), for tests and the sandbox. It asks for a new token on every
// call; callers cache, as azcore's bearer-token policy does.
func (s *Server) AppCredential() azcore.TokenCredential { return appCredential{s: s} }

type appCredential struct{ s *Server }

// GetToken implements azcore.TokenCredential.
func (c appCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	scope := strings.Join(opts.Scopes, " ")
	if scope == "" {
		scope = Scope
	}
	form := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {c.s.opts.ClientID},
		"client_secret": {c.s.opts.ClientSecret}, "scope": {scope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.s.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("partnercentertest: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.s.Client().Do(req)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("partnercentertest: token request: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("partnercentertest: token request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return azcore.AccessToken{}, fmt.Errorf("partnercentertest: token request: %s: %s", resp.Status, data)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(data, &tok); err != nil {
		return azcore.AccessToken{}, fmt.Errorf("partnercentertest: token response: %w", err)
	}
	return azcore.AccessToken{Token: tok.AccessToken, ExpiresOn: c.s.now().Add(time.Duration(tok.ExpiresIn) * time.Second)}, nil
}
