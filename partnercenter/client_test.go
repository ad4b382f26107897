package partnercenter_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

const mcaTemplate = "117a77b0-9360-443b-8795-c6dedc750cf9"

// env is a simulator with real authentication and a client holding both kinds of credentials.
type env struct {
	srv    *partnercentertest.Server
	client *partnercenter.Client
	store  partnercenter.FileTokenStore
}

func newEnv(t testing.TB, opts partnercentertest.Options, copts *partnercenter.ClientOptions) env {
	t.Helper()
	srv, err := partnercentertest.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return connect(t, srv, srv.Client(), srv.URL, copts)
}

func newMemoryEnv(t testing.TB, opts partnercentertest.Options, copts *partnercenter.ClientOptions) env {
	t.Helper()
	srv := partnercentertest.New(opts)
	return connect(t, srv, srv.InMemoryClient(), "http://partnercenter.test", copts)
}

func connect(t testing.TB, srv *partnercentertest.Server, hc *http.Client, endpoint string, copts *partnercenter.ClientOptions) env {
	t.Helper()
	store := partnercenter.FileTokenStore{Path: filepath.Join(t.TempDir(), "refresh-token")}
	require.NoError(t, store.Save(context.Background(), srv.NewRefreshToken()))
	tokenURL := srv.TokenURL()
	if endpoint != srv.URL {
		tokenURL = endpoint + "/" + srv.PartnerTenantID() + "/oauth2/v2.0/token"
	}
	appOnly, err := partnercenter.NewClientSecretCredential(tokenURL, srv.ClientID(), srv.ClientSecret(), hc)
	require.NoError(t, err)
	appUser, err := partnercenter.NewRefreshTokenCredential(tokenURL, srv.ClientID(), srv.ClientSecret(), store, hc)
	require.NoError(t, err)
	o := partnercenter.ClientOptions{}
	if copts != nil {
		o = *copts
	}
	o.HTTPClient = hc
	c, err := partnercenter.NewClient(endpoint, partnercenter.Credentials{AppOnly: appOnly, AppUser: appUser}, &o)
	require.NoError(t, err)
	return env{srv: srv, client: c, store: store}
}

func tenant(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func TestCustomersFollowsSeekPagingWithoutHoldingAllPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, partnercentertest.Options{}, &partnercenter.ClientOptions{PageSize: 100})
	for i := range 1234 {
		require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(i), CompanyName: fmt.Sprintf("Customer %04d", i), Domain: fmt.Sprintf("c%d.example", i)}))
	}
	e.srv.ResetRequests()
	seen := map[string]bool{}
	for c, err := range e.client.Customers(t.Context(), nil) {
		require.NoError(t, err)
		assert.False(t, seen[c.ID], "customer %s seen twice", c.ID)
		seen[c.ID] = true
		assert.Equal(t, c.ID, c.CompanyProfile.TenantID)
	}
	assert.Len(t, seen, 1234)
	pages := 0
	for _, r := range e.srv.Requests() {
		if r.Path == "customers" {
			pages++
		}
	}
	assert.Equal(t, 13, pages, "one request per page of 100")

	// Stop early: no more pages are fetched.
	e.srv.ResetRequests()
	n := 0
	for _, err := range e.client.Customers(t.Context(), nil) {
		require.NoError(t, err)
		if n++; n == 150 {
			break
		}
	}
	assert.Len(t, e.srv.Requests(), 2)
}

func TestCustomerFilterAndGet(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{}, nil)
	for i, name := range []string{"Contoso Ltd", "contoso east", "Fabrikam"} {
		require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(i), CompanyName: name, Domain: fmt.Sprintf("d%d.example", i), Country: "US"}))
	}
	var names []string
	for c, err := range e.client.Customers(ctx, &partnercenter.ListCustomersOptions{Filter: &partnercenter.CustomerFilter{Field: partnercenter.FilterCompanyName, Value: "CONTOSO"}}) {
		require.NoError(t, err)
		names = append(names, c.CompanyProfile.CompanyName)
	}
	assert.ElementsMatch(t, []string{"Contoso Ltd", "contoso east"}, names)

	for _, err := range e.client.Customers(ctx, &partnercenter.ListCustomersOptions{Filter: &partnercenter.CustomerFilter{Field: "Country", Value: "US"}}) {
		assert.ErrorContains(t, err, "filtered by")
	}

	c, err := e.client.Customer(ctx, tenant(2))
	require.NoError(t, err)
	assert.Equal(t, "Fabrikam", c.CompanyProfile.CompanyName)
	require.NotNil(t, c.BillingProfile)
	assert.NotNil(t, c.AllowDelegatedAccess)

	_, err = e.client.Customer(ctx, tenant(99))
	assert.True(t, partnercenter.IsNotFound(err), err)

	link, err := e.client.RelationshipRequestURL(ctx)
	require.NoError(t, err)
	assert.Contains(t, link, "partnerId="+e.srv.PartnerTenantID())
}

func TestHeadersAndAuthKinds(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{}, nil)
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A"}))
	ctx = partnercenter.WithCorrelationID(ctx, "run-42")
	_, err := e.client.Customer(ctx, tenant(1))
	require.NoError(t, err)
	_, err = e.client.DirectSignedStatus(ctx, tenant(1))
	require.NoError(t, err)
	_, err = e.client.CreateAttestation(ctx, partnercenter.AttestationRequest{CustomerTenantID: tenant(1), Country: "US", Language: "en-US", CompanyName: "A",
		SignatoryFirstName: "Ann", SignatoryLastName: "Lee", SignatoryEmail: "ann@a.example"})
	require.NoError(t, err)
	reqs := e.srv.Requests()
	require.Len(t, reqs, 3)
	kinds := map[string]bool{}
	for _, r := range reqs {
		assert.Equal(t, "run-42", r.CorrelationID)
		assert.NotEmpty(t, r.RequestID)
		kinds[r.Path] = r.AppUser
	}
	assert.False(t, kinds["customers/"+tenant(1)], "customers use app-only")
	assert.True(t, kinds["customers/"+tenant(1)+"/directSignedMicrosoftCustomerAgreementStatus"], "direct-sign status needs app+user")
	assert.False(t, kinds["attestations/enhanced"], "the enhanced attestation needs app-only")
	assert.NotEqual(t, reqs[0].RequestID, reqs[1].RequestID, "a new MS-RequestId per logical call")

	// Without app+user credentials the operation fails before anything is sent.
	c, err := partnercenter.NewClient(e.srv.URL, partnercenter.Credentials{AppOnly: e.srv.AppCredential()}, &partnercenter.ClientOptions{HTTPClient: e.srv.Client()})
	require.NoError(t, err)
	e.srv.ResetRequests()
	_, err = c.Agreements(ctx, tenant(1), partnercenter.MicrosoftCustomerAgreement)
	assert.ErrorIs(t, err, partnercenter.ErrNoCredential)
	assert.Empty(t, e.srv.Requests())
}

func TestExpiredTokenIsRefreshedOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{}, nil)
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A"}))
	_, err := e.client.DirectSignedStatus(ctx, tenant(1))
	require.NoError(t, err)
	first, err := e.store.Load(ctx)
	require.NoError(t, err)
	e.srv.ExpireTokens()
	_, err = e.client.DirectSignedStatus(ctx, tenant(1))
	require.NoError(t, err, "a 401 gets one retry with a fresh token")
	second, err := e.store.Load(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, first, second, "the exchange rotated the refresh token and it was saved")
}

func TestRetriesReuseTheRequestIDAndHonourRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newMemoryEnv(t, partnercentertest.Options{}, nil)
		require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A"}))
		e.srv.Inject(partnercentertest.Fault{Path: "customers/" + tenant(1), Status: http.StatusTooManyRequests, RetryAfter: 9 * time.Second, Times: 1})
		e.srv.Inject(partnercentertest.Fault{Path: "customers/" + tenant(1), Status: http.StatusServiceUnavailable, Times: 1})
		start := time.Now()
		_, err := e.client.Customer(t.Context(), tenant(1))
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 9*time.Second)
		var ids []string
		for _, r := range e.srv.Requests() {
			if r.Path == "customers/"+tenant(1) {
				ids = append(ids, r.RequestID)
			}
		}
		require.Len(t, ids, 3)
		assert.Equal(t, ids[0], ids[1])
		assert.Equal(t, ids[1], ids[2], "one MS-RequestId across the retries of one call")
	})
}

func TestThrottlingPastTheDeadlineReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newMemoryEnv(t, partnercentertest.Options{}, nil)
		require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A"}))
		e.srv.Inject(partnercentertest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		_, err := e.client.Customer(ctx, tenant(1))
		assert.True(t, partnercenter.IsThrottled(err), err)
		assert.Equal(t, 5*time.Minute, partnercenter.RetryAfter(err))
		assert.Zero(t, time.Since(start))
	})
}

func TestAgreementsLegacyAndDirectSign(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{}, nil)
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A"}))
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(2), CompanyName: "B", DirectSigned: true}))

	meta, err := e.client.AgreementMetadata(ctx, partnercenter.MicrosoftCustomerAgreement)
	require.NoError(t, err)
	require.NotEmpty(t, meta)
	assert.Equal(t, mcaTemplate, meta[0].TemplateID)
	_, err = e.client.AgreementMetadata(ctx, "")
	assert.ErrorContains(t, err, "pass an agreement type")

	signed, err := e.client.DirectSignedStatus(ctx, tenant(2))
	require.NoError(t, err)
	assert.True(t, signed)

	contact := partnercenter.Contact{FirstName: "Ann", LastName: "Lee", Email: "ann@a.example"}
	_, err = e.client.CreateAgreement(ctx, tenant(1), partnercenter.Agreement{PrimaryContact: contact, TemplateID: mcaTemplate, DateAgreed: time.Now().Add(time.Hour)})
	assert.Equal(t, partnercenter.CodeOrgRegistrationIDNotSupported, partnercenter.ErrorCode(err), err)

	agreed := time.Now().Add(-time.Hour).In(time.FixedZone("UTC+10", 10*3600))
	created, err := e.client.CreateAgreement(ctx, tenant(1), partnercenter.Agreement{PrimaryContact: contact, TemplateID: mcaTemplate, DateAgreed: agreed})
	require.NoError(t, err)
	assert.True(t, created.DateAgreed.Equal(agreed))
	_, err = e.client.CreateAgreement(ctx, tenant(1), partnercenter.Agreement{PrimaryContact: contact, TemplateID: mcaTemplate, DateAgreed: agreed})
	assert.True(t, partnercenter.IsAlreadyExists(err), err)

	list, err := e.client.Agreements(ctx, tenant(1), partnercenter.MicrosoftCustomerAgreement)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "Ann", list[0].PrimaryContact.FirstName)
}

func TestEnhancedAttestationLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{}, nil)
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A"}))
	req := partnercenter.AttestationRequest{CustomerTenantID: tenant(1), Country: "NL", Language: "nl-NL", CompanyName: "A",
		SignatoryFirstName: "Ann", SignatoryLastName: "Lee", SignatoryEmail: "ann@a.example"}
	a, err := e.client.CreateAttestation(ctx, req)
	require.NoError(t, err)
	assert.True(t, a.Status.Is(partnercenter.AttestationPending))
	assert.True(t, a.ExpiresAt.After(a.CreatedAt))
	assert.Equal(t, "https://cdn.partner.microsoft.com/mca/?attestationid="+a.ID, partnercenter.AcceptanceURL(a.ID))

	_, err = e.client.CreateAgreementFromAttestation(ctx, tenant(1), a.ID, mcaTemplate)
	require.Error(t, err, "not accepted yet")

	require.NoError(t, e.srv.AcceptAttestation(a.ID))
	got, err := e.client.GetAttestation(ctx, a.ID)
	require.NoError(t, err)
	assert.True(t, got.Status.Is(partnercenter.AttestationAccepted))
	require.NotNil(t, got.AcceptedAt)

	agreement, err := e.client.CreateAgreementFromAttestation(ctx, tenant(1), a.ID, mcaTemplate)
	require.NoError(t, err)
	assert.True(t, agreement.DateAgreed.Equal(*got.AcceptedAt), "the agreement is dated when the customer accepted")
	assert.Equal(t, "Ann", agreement.PrimaryContact.FirstName)
	_, err = e.client.CreateAgreementFromAttestation(ctx, tenant(1), a.ID, mcaTemplate)
	assert.True(t, partnercenter.IsAlreadyExists(err), err)

	bad := req
	bad.Country = "Netherlands"
	_, err = e.client.CreateAttestation(ctx, bad)
	require.Error(t, err)
	assert.Equal(t, http.StatusBadRequest, statusOf(err))
}

func statusOf(err error) int {
	var re *partnercenter.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestSubscriptionUpdatesFollowNewCommerceRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		e := newMemoryEnv(t, partnercentertest.Options{}, &partnercenter.ClientOptions{PollInterval: time.Second})
		sub := partnercentertest.Subscription{ID: "sub-1", OfferID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971", Quantity: 10, CreatedOn: time.Now().Add(-30 * 24 * time.Hour)}
		require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A", Subscriptions: []partnercentertest.Subscription{sub}}))

		s, err := e.client.Subscription(ctx, tenant(1), "sub-1")
		require.NoError(t, err)
		assert.Equal(t, 10, s.Quantity)
		assert.NotEmpty(t, s.Attributes.ETag)
		assert.Equal(t, 0, s.Refundable(time.Now()), "bought a month ago: nothing refundable")

		// Adding seats is allowed any time, and the added seats are refundable for a while.
		s.Quantity = 13
		up, err := e.client.UpdateSubscription(ctx, tenant(1), s)
		require.NoError(t, err)
		assert.Equal(t, 13, up.Quantity)
		assert.Equal(t, 3, up.Refundable(time.Now()))

		// A stale ETag is refused.
		_, err = e.client.UpdateSubscription(ctx, tenant(1), s)
		assert.Equal(t, partnercenter.CodeETagInvalid, partnercenter.ErrorCode(err), err)

		// Removing more than is refundable is refused.
		up.Quantity = 9
		_, err = e.client.UpdateSubscription(ctx, tenant(1), up)
		assert.Equal(t, partnercenter.CodeQuantityCannotDecrease, partnercenter.ErrorCode(err), err)
		assert.True(t, partnercenter.IsSeatReductionRefused(err))

		// Removing the refundable seats works — and after the window it would not.
		up.Quantity = 11
		down, err := e.client.UpdateSubscription(ctx, tenant(1), up)
		require.NoError(t, err)
		assert.Equal(t, 11, down.Quantity)

		time.Sleep(8 * 24 * time.Hour)
		cur, err := e.client.Subscription(ctx, tenant(1), "sub-1")
		require.NoError(t, err)
		assert.Equal(t, 0, cur.Refundable(time.Now()))
		cur.Quantity = 10
		_, err = e.client.UpdateSubscription(ctx, tenant(1), cur)
		assert.True(t, partnercenter.IsSeatReductionRefused(err), "past the window: %v", err)

		// Suspended subscriptions refuse changes other than reactivation.
		cur, _ = e.client.Subscription(ctx, tenant(1), "sub-1")
		cur.Status = partnercenter.SubscriptionSuspended
		cur, err = e.client.UpdateSubscription(ctx, tenant(1), cur)
		require.NoError(t, err)
		cur.Quantity = 20
		_, err = e.client.UpdateSubscription(ctx, tenant(1), cur)
		assert.Equal(t, partnercenter.CodeSubscriptionSuspended, partnercenter.ErrorCode(err))

		// A 202 Accepted is followed until the subscription shows the change.
		cur, _ = e.client.Subscription(ctx, tenant(1), "sub-1")
		cur.Status = partnercenter.SubscriptionActive
		e.srv.SetAsyncUpdates(1)
		final, err := e.client.UpdateSubscription(ctx, tenant(1), cur)
		require.NoError(t, err)
		assert.True(t, final.Status.Is(partnercenter.SubscriptionActive))
		state, _ := e.srv.Subscription(tenant(1), "sub-1")
		assert.Equal(t, "active", state.Status)
	})
}

func TestAddOnsAndSubscriptionLists(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{}, nil)
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A", Subscriptions: []partnercentertest.Subscription{
		{ID: "parent", OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", Quantity: 5, Status: "suspended"},
		{ID: "addon", OfferID: "CFQ7TTC0LFLS:0002:CFQ7TTC0KDLJ", Quantity: 5, ParentSubscriptionID: "parent", Status: "suspended"},
	}}))
	subs, err := e.client.Subscriptions(ctx, tenant(1))
	require.NoError(t, err)
	assert.Len(t, subs, 2)
	addons, err := e.client.AddOns(ctx, tenant(1), "parent")
	require.NoError(t, err)
	require.Len(t, addons, 1)
	assert.Equal(t, "parent", addons[0].ParentSubscriptionID)
	addons[0].Status = partnercenter.SubscriptionActive
	_, err = e.client.UpdateSubscription(ctx, tenant(1), addons[0])
	assert.Equal(t, partnercenter.CodeAddOnParentNotActive, partnercenter.ErrorCode(err), "an add-on cannot be activated while its parent is suspended")
	_, err = e.client.Subscription(ctx, tenant(1), "nope")
	assert.True(t, partnercenter.IsNotFound(err))
}

func TestCartCheckoutHappensOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{}, nil)
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "Has MCA", DirectSigned: true}))
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(2), CompanyName: "No MCA"}))
	item := partnercenter.CartLineItem{CatalogItemID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971", Quantity: 3, BillingCycle: "monthly", TermDuration: "P1Y"}

	cart, err := e.client.CreateCart(ctx, tenant(1), partnercenter.Cart{LineItems: []partnercenter.CartLineItem{item}})
	require.NoError(t, err)
	assert.True(t, cart.Status.Is(partnercenter.CartActive))

	// A checkout retried with the same MS-RequestId (after a timeout, or a crash) is the same checkout.
	withID := partnercenter.WithRequestID(ctx, "checkout-attempt-1")
	first, err := e.client.Checkout(withID, tenant(1), cart.ID)
	require.NoError(t, err)
	require.Len(t, first.Orders, 1)
	again, err := e.client.Checkout(withID, tenant(1), cart.ID)
	require.NoError(t, err)
	assert.Equal(t, first.Orders[0].ID, again.Orders[0].ID)
	assert.Equal(t, 1, e.srv.Orders(tenant(1)), "bought once")

	_, err = e.client.Checkout(ctx, tenant(1), cart.ID)
	assert.Equal(t, partnercenter.CodeCartAlreadySubmitted, partnercenter.ErrorCode(err))

	order, err := e.client.Order(ctx, tenant(1), first.Orders[0].ID)
	require.NoError(t, err)
	require.NotEmpty(t, order.LineItems)
	subID := order.LineItems[0].SubscriptionID
	require.NotEmpty(t, subID)
	sub, err := e.client.Subscription(ctx, tenant(1), subID)
	require.NoError(t, err)
	assert.Equal(t, 3, sub.Quantity)
	orders, err := e.client.Orders(ctx, tenant(1))
	require.NoError(t, err)
	assert.Len(t, orders, 1)

	noMCA, err := e.client.CreateCart(ctx, tenant(2), partnercenter.Cart{LineItems: []partnercenter.CartLineItem{item}})
	require.NoError(t, err)
	_, err = e.client.Checkout(ctx, tenant(2), noMCA.ID)
	assert.True(t, partnercenter.IsMCANotAccepted(err), err)

	badCart, err := e.client.CreateCart(ctx, tenant(1), partnercenter.Cart{LineItems: []partnercenter.CartLineItem{{CatalogItemID: "NOPE:0001:NOPE", Quantity: 1}}})
	require.NoError(t, err)
	require.NotNil(t, badCart.LineItems[0].Error)
	assert.Equal(t, 10001, badCart.LineItems[0].Error.ErrorCode)
}

func TestSandboxCaps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{SandboxCaps: true}, nil)
	require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(1), CompanyName: "A", DirectSigned: true}))
	big, err := e.client.CreateCart(ctx, tenant(1), partnercenter.Cart{LineItems: []partnercenter.CartLineItem{{CatalogItemID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971", Quantity: 26, BillingCycle: "monthly", TermDuration: "P1Y"}}})
	if err == nil {
		_, err = e.client.Checkout(ctx, tenant(1), big.ID)
	}
	assert.True(t, partnercenter.IsSandboxLimit(err) || (big.LineItems != nil && big.LineItems[0].Error != nil && big.LineItems[0].Error.ErrorCode == 10009), "26 seats exceed the sandbox cap: %v", err)
}

// Partner Center's REST headers list MS-Contract-Version: v1 as required: every request carries it, reads
// and writes, app-only and app+user, through a simulator that refuses requests without it.
func TestEveryRequestCarriesContractVersion(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t, partnercentertest.Options{RequireContractVersion: true}, &partnercenter.ClientOptions{PageSize: 2})
	for i := range 5 {
		require.NoError(t, e.srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(i), CompanyName: fmt.Sprintf("C%d", i)}))
	}
	e.srv.ResetRequests()
	for _, err := range e.client.Customers(ctx, nil) {
		require.NoError(t, err)
	}
	_, err := e.client.AgreementMetadata(ctx, partnercenter.MicrosoftCustomerAgreement)
	require.NoError(t, err)
	_, err = e.client.DirectSignedStatus(ctx, tenant(1))
	require.NoError(t, err)
	a, err := e.client.CreateAttestation(ctx, partnercenter.AttestationRequest{CustomerTenantID: tenant(1), Country: "NL", Language: "nl-NL",
		CompanyName: "C1", SignatoryFirstName: "Ann", SignatoryLastName: "Lee", SignatoryEmail: "ann@c1.example"})
	require.NoError(t, err)
	_, err = e.client.GetAttestation(ctx, a.ID)
	require.NoError(t, err)

	log := e.srv.Requests()
	require.GreaterOrEqual(t, len(log), 7, "three pages of customers and four single calls")
	for _, r := range log {
		assert.Equal(t, "v1", r.ContractVersion, "%s %s", r.Method, r.Path)
		assert.Less(t, r.Status, 300, "%s %s", r.Method, r.Path)
	}
}
