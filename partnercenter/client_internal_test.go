package partnercenter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T, re *ResponseError)
	}{
		{"numeric code", 400, `{"code": 60012, "description": "run out of licenses", "data": ["LicenseQuotaExceededException : x"], "source": "PartnerFD"}`,
			func(t *testing.T, re *ResponseError) {
				assert.Equal(t, "60012", re.Code)
				assert.Equal(t, "run out of licenses", re.Description)
				assert.Equal(t, []string{"LicenseQuotaExceededException : x"}, re.Data)
				assert.Equal(t, "PartnerFD", re.Source)
			}},
		{"string code with BOM", 404, "\ufeff" + `{"code": "20003", "description": "Subscription not found", "source": "PartnerFD"}`,
			func(t *testing.T, re *ResponseError) {
				assert.Equal(t, CodeSubscriptionNotFound, re.Code)
				assert.True(t, IsNotFound(re))
			}},
		{"agreements shape", 400, `{"code": 600061, "message": "A partner confirmed agreement already exists", "description": "A partner confirmed agreement already exists", "errorName": "PartnerConfirmedAgreementAlreadyExists", "isRetryable": false, "parameters": {}, "errorMessageExtended": "InternalErrorCode=600061"}`,
			func(t *testing.T, re *ResponseError) {
				assert.True(t, IsAlreadyExists(re))
				assert.Equal(t, "PartnerConfirmedAgreementAlreadyExists", re.ErrorName)
				require.NotNil(t, re.Retryable)
				assert.False(t, *re.Retryable)
				assert.False(t, IsTransient(re))
			}},
		{"throttling shape", 429, `{ "statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds." }`,
			func(t *testing.T, re *ResponseError) {
				assert.True(t, IsThrottled(re))
				assert.True(t, IsTransient(re))
				assert.Equal(t, "Rate limit is exceeded. Try again in 57 seconds.", re.Description)
			}},
		{"MCA missing", 403, `{"code": 13605, "description": "MCA not accepted", "source": "PartnerFD"}`,
			func(t *testing.T, re *ResponseError) {
				assert.True(t, IsMCANotAccepted(re))
				assert.True(t, IsForbidden(re))
			}},
		{"sandbox cap", 403, `{"code": 800067, "description": "max seats", "data": []}`,
			func(t *testing.T, re *ResponseError) { assert.True(t, IsSandboxLimit(re)) }},
		{"busy cart", 409, `{"code": 800064, "description": "Cart is being processed by another request"}`,
			func(t *testing.T, re *ResponseError) { assert.True(t, IsTransient(re)) }},
		{"not JSON", 502, `<html>bad gateway</html>`,
			func(t *testing.T, re *ResponseError) {
				assert.Equal(t, "<html>bad gateway</html>", re.Description)
				assert.True(t, IsTransient(re))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			rec.Header().Set("Retry-After", "57")
			rec.Header().Set("MS-CorrelationId", "corr-1")
			rec.WriteHeader(tt.status)
			rec.WriteString(tt.body)
			resp := rec.Result()
			resp.Request = httptest.NewRequest(http.MethodGet, "https://api.partnercenter.microsoft.com/v1/customers", nil)
			re := errorFromResponse(resp)
			assert.Equal(t, tt.status, re.StatusCode)
			assert.Equal(t, 57*time.Second, re.RetryAfter)
			assert.Equal(t, "corr-1", re.CorrelationID)
			assert.Contains(t, re.Error(), "GET https://api.partnercenter.microsoft.com/v1/customers: HTTP")
			tt.check(t, re)
		})
	}
}

func readVector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
	require.NoError(t, err)
	return b
}

// TestDecodeVectors decodes every documented response with and without the byte-order mark Partner
// Center puts in front of its bodies.
func TestDecodeVectors(t *testing.T) {
	t.Parallel()
	for _, bom := range []string{"", "\ufeff"} {
		decode := func(name string, v any) {
			t.Helper()
			require.NoError(t, json.Unmarshal(stripBOM(append([]byte(bom), readVector(t, name)...)), v), name)
		}
		var customers collection[Customer]
		decode("get-customers.json", &customers)
		require.Len(t, customers.Items, 2)
		assert.Equal(t, "b44bb1fb-c595-45b0-9e09-d657365580bf", customers.Items[0].ID)
		assert.True(t, customers.Items[0].RelationshipToPartner.Is(RelationshipReseller))
		assert.Equal(t, "/v1/customers?size=40", customers.Links["self"].URI)

		var sub Subscription
		decode("get-subscription-new-commerce.json", &sub)
		assert.Equal(t, "CFQ7TTC0LH18:0001:CFQ7TTC0K971", sub.OfferID)
		assert.True(t, sub.Status.Is(SubscriptionExpired))
		assert.True(t, sub.Status.Is("EXPIRED"), "enums compare case-insensitively")
		assert.Equal(t, "P1Y", sub.TermDuration)
		require.NotNil(t, sub.CommitmentEndDate)
		assert.Equal(t, 2022, sub.CommitmentEndDate.Year())

		var meta collection[AgreementMetadata]
		decode("get-agreement-metadata-mca.json", &meta)
		assert.Equal(t, "117a77b0-9360-443b-8795-c6dedc750cf9", meta.Items[0].TemplateID)

		var agreement Agreement
		decode("create-agreement-response.json", &agreement)
		assert.Equal(t, "Tania", agreement.PrimaryContact.FirstName)
		assert.Equal(t, time.Date(2018, 6, 14, 0, 0, 0, 0, time.UTC), agreement.DateAgreed)

		var signed struct{ IsSigned bool }
		decode("get-direct-signed-mca-status.json", &signed)
		assert.True(t, signed.IsSigned)

		var cart Cart
		decode("create-cart-new-commerce-response.json", &cart)
		assert.True(t, cart.Status.Is(CartActive))
		require.Len(t, cart.LineItems, 2)
		assert.Equal(t, "transaction_reseller", cart.LineItems[1].Participants[0].Key)

		var cartRequest Cart
		decode("create-cart-new-commerce-request.json", &cartRequest)
		assert.NotEmpty(t, cartRequest.LineItems)

		var orderRequest struct {
			LineItems []OrderLineItem `json:"lineItems"`
		}
		decode("create-order-new-commerce-request.json", &orderRequest)
		assert.Equal(t, "873452", orderRequest.LineItems[0].PartnerIDOnRecord, "PascalCase request samples decode too")

		var agreementRequest Agreement
		decode("create-agreement-request.json", &agreementRequest)
		assert.NotEmpty(t, agreementRequest.TemplateID)
	}
}

func TestSubscriptionRoundTripKeepsUnmodelledFields(t *testing.T) {
	t.Parallel()
	var sub Subscription
	require.NoError(t, json.Unmarshal(readVector(t, "get-subscription-new-commerce.json"), &sub))
	sub.Quantity = 7
	sub.Status = SubscriptionSuspended
	out, err := json.Marshal(sub)
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(out, &back))
	assert.Equal(t, float64(7), back["quantity"])
	assert.Equal(t, "suspended", back["status"])
	assert.Equal(t, "Microsoft Corporation", back["publisherName"], "a field the client does not model is sent back unchanged")
	assert.Equal(t, "OnlineServicesNCE", back["productType"].(map[string]any)["id"])
	assert.NotNil(t, back["refundOptions"])
}

func TestRefundable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s := Subscription{RefundableQuantity: &RefundableQuantity{TotalQuantity: 5, Details: []RefundableQuantityDetail{
		{Quantity: 2, AllowedUntil: now.Add(-time.Hour)},
		{Quantity: 3, AllowedUntil: now.Add(48 * time.Hour)},
	}}}
	assert.Equal(t, 3, s.Refundable(now), "lots past their deadline no longer count")
	assert.Equal(t, 0, Subscription{}.Refundable(now))
}

func TestResolveLinks(t *testing.T) {
	t.Parallel()
	c, err := NewClient("https://api.partnercenter.microsoft.com/", Credentials{}, nil)
	require.NoError(t, err)
	for in, want := range map[string]string{
		"customers":                                              "https://api.partnercenter.microsoft.com/v1/customers",
		"/customers?size=40&seekOperation=Next":                  "https://api.partnercenter.microsoft.com/v1/customers?size=40&seekOperation=Next",
		"/v1/customers/abc/subscriptions":                        "https://api.partnercenter.microsoft.com/v1/customers/abc/subscriptions",
		"https://api.partnercenter.microsoft.com/v1/customers/x": "https://api.partnercenter.microsoft.com/v1/customers/x",
	} {
		got, err := c.resolve(in, nil)
		require.NoError(t, err)
		assert.Equal(t, want, got, in)
	}
	_, err = c.resolve("https://evil.example/v1/customers", nil)
	assert.Error(t, err, "a link may not send the token to another host")
	got, err := c.resolve("customers", url.Values{"size": {"10"}})
	require.NoError(t, err)
	assert.Equal(t, "https://api.partnercenter.microsoft.com/v1/customers?size=10", got)
}

// tokenEndpoint is an OAuth 2.0 token endpoint that rotates refresh tokens, as Microsoft Entra ID does.
type tokenEndpoint struct {
	mu      sync.Mutex
	current string
	issued  int
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = r.ParseForm()
	w.Header().Set("Content-Type", "application/json")
	if r.Form.Get("client_secret") != "s3cret" || r.Form.Get("scope") != Scope {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}`))
		return
	}
	if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != e.current {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity."}`))
		return
	}
	e.issued++
	e.current = "refresh-" + string(rune('a'+e.issued))
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "access-" + string(rune('a'+e.issued)), "refresh_token": e.current, "expires_in": "3599", "token_type": "Bearer"})
}

func TestRefreshTokenRotationIsSaved(t *testing.T) {
	t.Parallel()
	endpoint := &tokenEndpoint{current: "refresh-0"}
	srv := httptest.NewServer(endpoint)
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "refresh-token")
	store := FileTokenStore{Path: path}
	require.NoError(t, store.Save(t.Context(), "refresh-0"))

	cred, err := NewRefreshTokenCredential(srv.URL, "client", "s3cret", store, srv.Client())
	require.NoError(t, err)
	tok, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{Scope}})
	require.NoError(t, err)
	assert.Equal(t, "access-b", tok.Token)
	assert.WithinDuration(t, time.Now().Add(3599*time.Second), tok.ExpiresOn, 5*time.Second)
	saved, err := store.Load(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "refresh-b", saved, "the rotated refresh token replaced the old one")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// The old token no longer works; the stored one does, many times in a row.
	for range 3 {
		_, err = cred.GetToken(t.Context(), policy.TokenRequestOptions{})
		require.NoError(t, err)
	}

	require.NoError(t, store.Save(t.Context(), "zz-stale-token-zz"))
	_, err = cred.GetToken(t.Context(), policy.TokenRequestOptions{})
	var te *TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "invalid_grant", te.Code)
	assert.Contains(t, err.Error(), "must consent again")
	assert.NotContains(t, err.Error(), "s3cret")
	assert.NotContains(t, err.Error(), "zz-stale-token-zz", "the refresh token never appears in errors")

	bad, err := NewClientSecretCredential(srv.URL, "client", "wrong", srv.Client())
	require.NoError(t, err)
	_, err = bad.GetToken(t.Context(), policy.TokenRequestOptions{})
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "AADSTS7000215: Invalid client secret provided.", te.Description, "only the first line of Entra's text")
	assert.NotContains(t, err.Error(), "wrong")
}

func TestConcurrentExchangesDoNotLoseTheRotation(t *testing.T) {
	t.Parallel()
	endpoint := &tokenEndpoint{current: "refresh-0"}
	srv := httptest.NewServer(endpoint)
	defer srv.Close()
	store := NewMemoryTokenStore("refresh-0")
	cred, err := NewRefreshTokenCredential(srv.URL, "client", "s3cret", store, srv.Client())
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 8, endpoint.issued)
}

func TestTenantLimiterNeverExceedsTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newTenantLimiter(500, time.Minute)
		var times []time.Time
		start := time.Now()
		for time.Since(start) < 3*time.Minute {
			require.NoError(t, l.wait(t.Context(), "tenant-a"))
			times = append(times, time.Now())
		}
		// No sliding one-minute window holds more than 500 requests…
		j := 0
		for i := range times {
			for times[i].Sub(times[j]) >= time.Minute {
				j++
			}
			require.LessOrEqual(t, i-j+1, 500, "window ending at %v", times[i].Sub(start))
		}
		// …and the sustained rate is at least 90% of the limit.
		perMinute := float64(len(times)) / 3
		assert.GreaterOrEqual(t, perMinute, 450.0)
		// Other tenants have their own budget.
		before := time.Now()
		require.NoError(t, l.wait(t.Context(), "tenant-b"))
		assert.Zero(t, time.Since(before))
	})
}
