package partnercentertest_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

func TestNewServerListensOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", "example.com:0", "nonsense"} {
		_, err := partnercentertest.NewServer(partnercentertest.Options{Addr: addr})
		assert.Error(t, err, addr)
	}
	srv := newServer(t, partnercentertest.Options{Addr: "127.0.0.1:0"})
	assert.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), srv.URL)
	assert.Equal(t, srv.URL+"/"+srv.PartnerTenantID()+"/oauth2/v2.0/token", srv.TokenURL())

	fixed := partnercentertest.New(partnercentertest.Options{PartnerTenantID: "p-tenant", ClientID: "app", ClientSecret: "s3cret"})
	assert.Equal(t, "p-tenant", fixed.PartnerTenantID())
	assert.Equal(t, "app", fixed.ClientID())
	assert.Equal(t, "s3cret", fixed.ClientSecret())
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	c := anonymous(t, srv)
	good := func(edit func(url.Values)) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()}, "scope": {partnercentertest.Scope}}
		edit(f)
		return f
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		err    string
		aadsts string
	}{
		{"client credentials", good(func(url.Values) {}), http.StatusOK, "", ""},
		{"wrong secret", good(func(f url.Values) { f.Set("client_secret", "nope") }), http.StatusUnauthorized, "invalid_client", "AADSTS7000215"},
		{"no secret", good(func(f url.Values) { f.Del("client_secret") }), http.StatusUnauthorized, "invalid_client", "AADSTS7000218"},
		{"unknown client", good(func(f url.Values) { f.Set("client_id", uuid.NewString()) }), http.StatusBadRequest, "unauthorized_client", "AADSTS700016"},
		{"no grant type", good(func(f url.Values) { f.Del("grant_type") }), http.StatusBadRequest, "invalid_request", "AADSTS900144"},
		{"password grant", good(func(f url.Values) { f.Set("grant_type", "password") }), http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003"},
		{"no scope", good(func(f url.Values) { f.Del("scope") }), http.StatusBadRequest, "invalid_scope", "AADSTS70011"},
		{"other resource", good(func(f url.Values) { f.Set("scope", "https://graph.microsoft.com/.default") }), http.StatusBadRequest, "invalid_resource", "AADSTS500011"},
		{"delegated scope on client credentials", good(func(f url.Values) { f.Set("scope", partnercentertest.UserImpersonationScope) }), http.StatusBadRequest, "invalid_scope", "AADSTS1002012"},
		{"unknown refresh token", good(func(f url.Values) {
			f.Set("grant_type", "refresh_token")
			f.Set("refresh_token", "forged")
		}), http.StatusBadRequest, "invalid_grant", "AADSTS70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.tokenRequest(tt.form)
			require.Equal(t, tt.status, res.status, "%s", res.body)
			body := res.tokenJSON(t)
			if tt.status == http.StatusOK {
				assert.Equal(t, "Bearer", body["token_type"])
				assert.EqualValues(t, 3599, body["expires_in"])
				assert.Equal(t, partnercentertest.Scope, body["scope"])
				assert.NotEmpty(t, body["access_token"])
				assert.NotContains(t, body, "refresh_token", "client credentials never return a refresh token")
				return
			}
			assert.Equal(t, tt.err, body["error"])
			assert.True(t, strings.HasPrefix(body["error_description"].(string), tt.aadsts+":"), body["error_description"])
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/"+uuid.NewString()+"/oauth2/v2.0/token", strings.NewReader(good(func(url.Values) {}).Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res := c.send(req)
		assert.Equal(t, http.StatusBadRequest, res.status)
		assert.Contains(t, res.tokenJSON(t)["error_description"], "AADSTS90002")
	})
	t.Run("GET", func(t *testing.T) {
		res := c.get("/" + srv.PartnerTenantID() + "/oauth2/v2.0/token")
		assert.Equal(t, http.StatusMethodNotAllowed, res.status)
	})
	t.Run("basic auth and the v1 endpoint", func(t *testing.T) {
		form := url.Values{"grant_type": {"client_credentials"}, "resource": {partnercentertest.Resource}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/"+srv.PartnerTenantID()+"/oauth2/token", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.SetBasicAuth(srv.ClientID(), srv.ClientSecret())
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res := c.send(req)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	})
}

func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	c := anonymous(t, srv)
	exchange := func(refresh string) response {
		return c.tokenRequest(url.Values{
			"grant_type": {"refresh_token"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()},
			"refresh_token": {refresh}, "scope": {partnercentertest.Scope},
		})
	}
	first := srv.NewRefreshToken()
	res := exchange(first)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	body := res.tokenJSON(t)
	second, _ := body["refresh_token"].(string)
	require.NotEmpty(t, second, "the refresh grant returns a new refresh token")
	assert.NotEqual(t, first, second)
	assert.Equal(t, partnercentertest.UserImpersonationScope, body["scope"])

	user := c
	user.token = body["access_token"].(string)
	assert.Equal(t, http.StatusOK, user.get("agreements?agreementType=MicrosoftCustomerAgreement").status, "an app+user token reads agreement metadata")

	res = exchange(first)
	assert.Equal(t, http.StatusBadRequest, res.status, "a rotated refresh token stops working")
	assert.Equal(t, "invalid_grant", res.tokenJSON(t)["error"])
	require.Equal(t, http.StatusOK, exchange(second).status, "the newest one works")
	assert.Equal(t, http.StatusBadRequest, exchange(second).status, "once")
}

func TestRefreshTokenLapsesAfterNinetyDays(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		c := anonymous(t, srv)
		refresh := srv.NewRefreshToken()
		time.Sleep(90 * 24 * time.Hour)
		res := c.tokenRequest(url.Values{
			"grant_type": {"refresh_token"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()},
			"refresh_token": {refresh}, "scope": {partnercentertest.Scope},
		})
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Contains(t, res.tokenJSON(t)["error_description"], "AADSTS700082")
	})
}

func TestAPIRefusesMissingUnknownAndExpiredTokens(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	app := appClient(t, srv)
	require.Equal(t, http.StatusOK, app.get("customers").status)

	check := func(t *testing.T, res response, description string) {
		t.Helper()
		require.Equal(t, http.StatusUnauthorized, res.status, "%s", res.body)
		assert.Equal(t, "OAuth realm=urn:cpsvc:cpid:"+srv.PartnerTenantID(), res.header.Get("WWW-Authenticate"))
		body := res.object(t)
		assert.EqualValues(t, partnercentertest.CodeTokenMissing, body["code"])
		assert.Equal(t, "PartnerFD", body["source"])
		assert.Contains(t, body["description"], description)
	}
	check(t, anonymous(t, srv).get("customers"), "Partner token missing in request context")
	forged := app
	forged.token = "forged"
	check(t, forged.get("customers"), "Partner token missing in request context")
	basic := anonymous(t, srv)
	check(t, basic.get("customers", "Authorization", "Basic "+app.token), "missing")

	srv.ExpireTokens()
	check(t, app.get("customers"), "expired")
	fresh := appClient(t, srv)
	assert.Equal(t, http.StatusOK, fresh.get("customers").status, "a token issued after ExpireTokens works")
}

func TestAccessTokensExpireAfterAnHour(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		app := appClient(t, srv)
		time.Sleep(3598 * time.Second)
		assert.Equal(t, http.StatusOK, app.get("customers").status)
		time.Sleep(time.Second)
		res := app.get("customers")
		assert.Equal(t, http.StatusUnauthorized, res.status)
		assert.Contains(t, res.object(t)["description"], "expired")
	})
}

func TestAuthOptional(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{AuthOptional: true})
	c := anonymous(t, srv)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: customerID(1), CompanyName: "Contoso"}))
	// Without a header every operation is allowed, whichever token kind it needs.
	assert.Equal(t, http.StatusOK, c.get("agreements").status)
	assert.Equal(t, http.StatusOK, c.get("customers/"+customerID(1)+"/directSignedMicrosoftCustomerAgreementStatus").status)
	res := c.do(http.MethodPost, "attestations/enhanced", attestationBody(customerID(1)))
	assert.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	log := srv.Requests()
	require.NotEmpty(t, log)
	assert.True(t, log[0].AppUser)
	// A header that is present is still checked.
	assert.Equal(t, http.StatusUnauthorized, c.get("customers", "Authorization", "Bearer forged").status)
}

// TestTokenKinds checks which operations take which token: app+user only, app-only only, or either.
func TestTokenKinds(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	app, user := appClient(t, srv), userClient(t, srv)
	legacy := string(vector(t, "create-agreement-request.json"))
	enhanced := `{"attestationId":"` + uuid.NewString() + `","type":"MicrosoftCustomerAgreement"}`
	tests := []struct {
		name         string
		method, path string
		body         any
		appOK        bool
		userOK       bool
	}{
		{"list customers", http.MethodGet, "customers", nil, true, true},
		{"get customer", http.MethodGet, "customers/" + cust, nil, true, true},
		{"relationship request", http.MethodGet, "customers/relationshiprequests", nil, false, true},
		{"agreement metadata", http.MethodGet, "agreements", nil, false, true},
		{"customer agreements", http.MethodGet, "customers/" + cust + "/agreements", nil, false, true},
		{"create agreement (legacy body)", http.MethodPost, "customers/" + cust + "/agreements", legacy, false, true},
		{"direct-sign status", http.MethodGet, "customers/" + cust + "/directSignedMicrosoftCustomerAgreementStatus", nil, false, true},
		{"create attestation", http.MethodPost, "attestations/enhanced", attestationBody(cust), true, false},
		{"get attestation", http.MethodGet, "attestations/enhanced/" + uuid.NewString(), nil, true, false},
		{"create agreement (attestation)", http.MethodPost, "customers/" + cust + "/agreements", enhanced, true, false},
		{"subscriptions", http.MethodGet, "customers/" + cust + "/subscriptions", nil, true, true},
		{"orders", http.MethodGet, "customers/" + cust + "/orders", nil, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kind := range []struct {
				c       client
				allowed bool
				refusal int
			}{{app.withT(t), tt.appOK, partnercentertest.CodeAppOnlyNotSupported}, {user.withT(t), tt.userOK, partnercentertest.CodeAppUserNotSupported}} {
				res := kind.c.do(tt.method, tt.path, tt.body)
				if kind.allowed {
					assert.NotEqual(t, http.StatusForbidden, res.status, "%s", res.body)
					assert.NotEqual(t, http.StatusUnauthorized, res.status, "%s", res.body)
					continue
				}
				require.Equal(t, http.StatusForbidden, res.status, "%s", res.body)
				assert.Equal(t, kind.refusal, res.code(t))
			}
		})
	}
}

func (c client) withT(t *testing.T) client { c.t = t; return c }

func TestAppCredential(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	tok, err := srv.AppCredential().GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{partnercentertest.Scope}})
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(3599*time.Second), tok.ExpiresOn, time.Minute)
	c := anonymous(t, srv)
	c.token = tok.Token
	assert.Equal(t, http.StatusOK, c.get("customers").status)
	assert.Equal(t, 1, srv.TokenRequests())

	_, err = srv.AppCredential().GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
	assert.ErrorContains(t, err, "AADSTS500011")
}

func TestResponsesCarryBOMAndRequestHeaders(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{RateLimit: partnercentertest.Limit{Requests: 1, Window: time.Hour}})
	app := appClient(t, srv)
	reqID, corrID := uuid.NewString(), uuid.NewString()
	tests := []struct {
		name   string
		res    response
		status int
	}{
		{"success", app.get("customers", "MS-RequestId", reqID, "MS-CorrelationId", corrID), http.StatusOK},
		{"throttled", app.get("customers", "MS-RequestId", reqID, "MS-CorrelationId", corrID), http.StatusTooManyRequests},
		{"unauthorized", anonymous(t, srv).get("customers", "MS-RequestId", reqID, "MS-CorrelationId", corrID), http.StatusUnauthorized},
		{"not found", app.get("customers/"+customerID(9), "MS-RequestId", reqID, "MS-CorrelationId", corrID), http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.status, tt.res.status, "%s", tt.res.body)
			assert.True(t, strings.HasPrefix(string(tt.res.body), bom+"{"), "body starts with EF BB BF: % x", tt.res.body[:min(4, len(tt.res.body))])
			assert.Equal(t, reqID, tt.res.header.Get("MS-RequestId"))
			assert.Equal(t, corrID, tt.res.header.Get("MS-CorrelationId"))
			assert.NotEmpty(t, tt.res.header.Get("MS-CV"))
			assert.Equal(t, "application/json; charset=utf-8", tt.res.header.Get("Content-Type"))
		})
	}
	t.Run("generated ids", func(t *testing.T) {
		res := anonymous(t, srv).get("customers")
		_, err := uuid.Parse(res.header.Get("MS-RequestId"))
		assert.NoError(t, err)
		_, err = uuid.Parse(res.header.Get("MS-CorrelationId"))
		assert.NoError(t, err)
	})
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	cust := customerID(7)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Fabrikam"}))
	app, user := appClient(t, srv), userClient(t, srv)
	reqID, corrID := uuid.NewString(), uuid.NewString()
	app.get("customers?size=10", "MS-RequestId", reqID, "MS-CorrelationId", corrID)
	user.get("customers/" + strings.ToUpper(cust) + "/subscriptions")
	user.get("customers/relationshiprequests")
	app.get("/customers?size=10") // a client that forgot /v1
	anonymous(t, srv).get("customers")

	log := srv.Requests()
	require.Len(t, log, 5)
	assert.Equal(t, partnercentertest.Request{Method: http.MethodGet, Path: "customers", Query: "size=10", Status: http.StatusOK,
		Tenant: "partner", AppUser: false, RequestID: reqID, CorrelationID: corrID}, log[0])
	assert.Equal(t, "customers/"+strings.ToUpper(cust)+"/subscriptions", log[1].Path)
	assert.Equal(t, cust, log[1].Tenant, "the tenant is the customer in the path, normalised")
	assert.True(t, log[1].AppUser)
	assert.Equal(t, "partner", log[2].Tenant)
	assert.Equal(t, "/customers", log[3].Path, "a path outside /v1 keeps its slash")
	assert.Equal(t, http.StatusNotFound, log[3].Status)
	assert.Equal(t, http.StatusUnauthorized, log[4].Status)
	for _, r := range log {
		assert.NotEmpty(t, r.RequestID)
		assert.NotEmpty(t, r.CorrelationID)
	}
	srv.ResetRequests()
	assert.Empty(t, srv.Requests())
	assert.Equal(t, 2, srv.TokenRequests(), "token requests are counted, not logged")
}

func TestUnknownPathsAndMethods(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	app := appClient(t, srv)
	res := app.get("nothing/here")
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, partnercentertest.CodeNotFound, res.code(t))
	res = app.do(http.MethodDelete, "customers", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, res.status)
	assert.Equal(t, http.StatusOK, app.get("Customers/").status, "paths are case-insensitive and a trailing slash is ignored")
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		fault       partnercentertest.Fault
		status      int
		code        int
		description string
		retryAfter  string
	}{
		{"server error", partnercentertest.Fault{Path: "customers", Status: 503}, 503, 800003, "Service Unavailable", ""},
		{"custom code", partnercentertest.Fault{Status: 400, Code: 800082, Description: "Try again after sometime"}, 400, 800082, "Try again after sometime", ""},
		{"throttled", partnercentertest.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond}, 429, 0, "", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, partnercentertest.Options{})
			app := appClient(t, srv)
			tt.fault.Times = 1
			srv.Inject(tt.fault)
			res := app.get("customers")
			require.Equal(t, tt.status, res.status, "%s", res.body)
			assert.Equal(t, tt.retryAfter, res.header.Get("Retry-After"))
			body := res.object(t)
			if tt.status == 429 {
				assert.EqualValues(t, 429, body["statusCode"])
				assert.Equal(t, "Rate limit is exceeded. Try again in 2 seconds.", body["message"])
			} else {
				assert.EqualValues(t, tt.code, body["code"])
				assert.Equal(t, tt.description, body["description"])
				assert.Equal(t, "PartnerFD", body["source"])
			}
			assert.Equal(t, http.StatusOK, app.get("customers").status, "Times: 1 is used up")
		})
	}

	t.Run("method, path and clearing", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, partnercentertest.Options{})
		app := appClient(t, srv)
		srv.Inject(partnercentertest.Fault{Method: http.MethodPost, Path: "carts", Status: 500})
		assert.Equal(t, http.StatusOK, app.get("customers").status, "other paths are served")
		srv.Inject(partnercentertest.Fault{Path: "customers", Status: 502})
		assert.Equal(t, http.StatusBadGateway, app.get("customers").status)
		assert.Equal(t, http.StatusBadGateway, app.get("customers").status, "Times: 0 lasts")
		assert.Equal(t, 1, srv.TokenRequests())
		appClient(t, srv) // a catch-all API fault leaves the token endpoint alone
		srv.ClearFaults()
		assert.Equal(t, http.StatusOK, app.get("customers").status)

		srv.Inject(partnercentertest.Fault{Path: "oauth2", Status: 503, Times: 1})
		res := app.tokenRequest(url.Values{"grant_type": {"client_credentials"}})
		assert.Equal(t, http.StatusServiceUnavailable, res.status)
		assert.Equal(t, "temporarily_unavailable", res.tokenJSON(t)["error"])
	})

	t.Run("drop", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, partnercentertest.Options{})
		app := appClient(t, srv)
		srv.Inject(partnercentertest.Fault{Drop: true})
		_, err := app.hc.Do(app.request(t.Context(), http.MethodGet, "customers", nil))
		assert.Error(t, err, "loopback: the connection closes without an answer")
		_, err = app.withHTTP(srv.InMemoryClient()).hc.Do(app.request(t.Context(), http.MethodGet, "customers", nil))
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "in memory: a transport error")
		log := srv.Requests()
		require.GreaterOrEqual(t, len(log), 2, "Go's transport may retry a dropped GET once on a reused connection")
		for _, r := range log {
			assert.Zero(t, r.Status)
		}
		srv.ClearFaults()
		assert.Equal(t, http.StatusOK, app.get("customers").status)
	})

	t.Run("latency", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv := partnercentertest.New(partnercentertest.Options{})
			app := appClient(t, srv)
			srv.SetLatency(time.Second)
			srv.Inject(partnercentertest.Fault{Path: "customers", Latency: 2 * time.Second, Times: 1})
			start := time.Now()
			assert.Equal(t, http.StatusOK, app.get("customers").status)
			assert.Equal(t, 3*time.Second, time.Since(start))
			start = time.Now()
			app.get("customers")
			assert.Equal(t, time.Second, time.Since(start))

			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			_, err := app.hc.Do(app.request(ctx, http.MethodGet, "customers", nil))
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, 499, srv.Requests()[2].Status, "a read the client gave up on is not served")
		})
	})
}

func TestRateLimitPerTenant(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{RateLimit: partnercentertest.Limit{Requests: 3, Window: time.Minute}})
		a, b := customerID(1), customerID(2)
		for _, id := range []string{a, b} {
			require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: id, CompanyName: "Customer " + id[len(id)-1:]}))
		}
		app := appClient(t, srv)
		for i := range 3 {
			require.Equal(t, http.StatusOK, app.get("customers/"+a).status, "request %d", i)
			time.Sleep(10 * time.Second)
		}
		res := app.get("customers/" + a + "/subscriptions")
		require.Equal(t, http.StatusTooManyRequests, res.status)
		assert.Equal(t, "30", res.header.Get("Retry-After"), "the oldest request leaves the window 60 s after it came, 30 s from now")
		assert.Equal(t, "Rate limit is exceeded. Try again in 30 seconds.", res.object(t)["message"])

		assert.Equal(t, http.StatusOK, app.get("customers/"+b).status, "another customer has its own window")
		assert.Equal(t, http.StatusOK, app.get("customers").status, "so have partner-level calls")

		for range 10 {
			require.Equal(t, http.StatusTooManyRequests, app.get("customers/"+a).status)
		}
		time.Sleep(30 * time.Second)
		assert.Equal(t, http.StatusOK, app.get("customers/"+a).status, "refused requests were not counted: one slot is free")
		res = app.get("customers/" + a)
		assert.Equal(t, http.StatusTooManyRequests, res.status)
		assert.Equal(t, "10", res.header.Get("Retry-After"))

		srv.SetRateLimit(partnercentertest.Limit{})
		for i := range 500 {
			require.Equal(t, http.StatusOK, app.get("customers/"+b).status, "request %d of Partner Center's 500 per minute", i)
		}
		assert.Equal(t, http.StatusTooManyRequests, app.get("customers/"+b).status)
	})
}

func TestRateLimitCanBeDisabled(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{DisableRateLimit: true, RateLimit: partnercentertest.Limit{Requests: 1, Window: time.Hour}})
	app := appClient(t, srv)
	for range 5 {
		require.Equal(t, http.StatusOK, app.get("customers").status)
	}
}

// TestWritesAreIdempotentByRequestID repeats a create with the same MS-RequestId: the stored answer comes
// back and nothing is created twice.
func TestWritesAreIdempotentByRequestID(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	cust := customerID(3)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Tailspin"}))
	user := userClient(t, srv)
	body := vector(t, "create-agreement-request.json")
	id := uuid.NewString()
	first := user.do(http.MethodPost, "customers/"+cust+"/agreements", body, "MS-RequestId", id)
	require.Equal(t, http.StatusCreated, first.status, "%s", first.body)
	again := user.do(http.MethodPost, "customers/"+cust+"/agreements", body, "MS-RequestId", id)
	assert.Equal(t, http.StatusCreated, again.status)
	assert.Equal(t, first.body, again.body)
	fresh := user.do(http.MethodPost, "customers/"+cust+"/agreements", body, "MS-RequestId", uuid.NewString())
	assert.Equal(t, http.StatusBadRequest, fresh.status, "a new request id acts again: the agreement exists")
	assert.Equal(t, partnercentertest.CodeAgreementExists, fresh.code(t))

	log := srv.Requests()
	require.Len(t, log, 3)
	assert.Equal(t, []bool{false, true, false}, []bool{log[0].Replayed, log[1].Replayed, log[2].Replayed})
	list := user.getOK("customers/" + cust + "/agreements?agreementType=MicrosoftCustomerAgreement")
	assert.Len(t, items(t, list), 1)
}

// TestConcurrentUse hammers one simulator from many goroutines (for the race detector).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{DisableRateLimit: true})
	app := appClient(t, srv)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := customerID(100 + i)
			if err := srv.AddCustomer(partnercentertest.Customer{TenantID: id, CompanyName: "Parallel " + strconv.Itoa(i), DirectSigned: true}); err != nil {
				t.Error(err)
				return
			}
			c := app.withT(t)
			c.get("customers?size=3")
			res := c.do(http.MethodPost, "customers/"+id+"/carts", cartBody(partnercentertest.CatalogBusinessBasic, 2))
			cartID, _ := res.object(t)["id"].(string)
			c.do(http.MethodPost, "customers/"+id+"/carts/"+cartID+"/checkout", nil)
			srv.Requests()
		})
	}
	wg.Wait()
	for i := range 8 {
		assert.Equal(t, 1, srv.Orders(customerID(100+i)))
	}
}
