package partnercentertest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// cartBody is a one-line new-commerce cart.
func cartBody(catalogItemID string, quantity int) map[string]any {
	return map[string]any{"lineItems": []any{map[string]any{
		"id": 0, "catalogItemId": catalogItemID, "quantity": quantity, "billingCycle": "monthly", "termDuration": "P1Y",
	}}}
}

// createCart posts a cart and returns its id.
func createCart(c client, cust string, body any) string {
	c.t.Helper()
	res := c.do(http.MethodPost, "customers/"+cust+"/carts", body)
	require.Equal(c.t, http.StatusCreated, res.status, "%s", res.body)
	return res.object(c.t)["id"].(string)
}

func checkoutPath(cust, cartID string) string {
	return "customers/" + cust + "/carts/" + cartID + "/checkout"
}

func TestCartFromMicrosoftSample(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	app := appClient(t, srv)

	res := app.do(http.MethodPost, "customers/"+cust+"/carts", vector(t, "create-cart-new-commerce-request.json"))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	got := res.object(t)
	var sample map[string]any
	require.NoError(t, json.Unmarshal(vector(t, "create-cart-new-commerce-response.json"), &sample))
	for k := range sample {
		assert.Contains(t, got, k, "every field of Microsoft's sample cart is present")
	}
	assert.Equal(t, "Active", got["status"])
	created, _ := time.Parse(time.RFC3339, got["creationTimestamp"].(string))
	expires, _ := time.Parse(time.RFC3339, got["expirationTimestamp"].(string))
	assert.Equal(t, 7*24*time.Hour, expires.Sub(created), "a new-commerce cart lives seven days")
	assert.Equal(t, "/customers/"+cust+"/carts/"+got["id"].(string), got["links"].(map[string]any)["self"].(map[string]any)["uri"])
	lines := got["lineItems"].([]any)
	require.Len(t, lines, 2)
	for i, l := range lines {
		line := l.(map[string]any)
		want := sample["lineItems"].([]any)[i].(map[string]any)
		for _, k := range []string{"id", "catalogItemId", "quantity", "currencyCode", "billingCycle", "termDuration", "orderGroup", "provisioningContext"} {
			assert.Equal(t, want[k], line[k], "line %d %s", i, k)
		}
		assert.NotContains(t, line, "error")
	}
	assert.Equal(t, sample["lineItems"].([]any)[1].(map[string]any)["participants"], lines[1].(map[string]any)["participants"])
	again := app.getOK("customers/" + cust + "/carts/" + got["id"].(string))
	assert.Equal(t, got, again)
}

func TestCheckout(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	app := appClient(t, srv)
	cartID := createCart(app, cust, vector(t, "create-cart-new-commerce-request.json"))

	res := app.do(http.MethodPost, checkoutPath(cust, cartID), nil)
	require.Equal(t, http.StatusForbidden, res.status, "%s", res.body)
	assert.Equal(t, partnercentertest.CodeMCARequired, res.code(t), "no MCA: no purchase")
	assert.Zero(t, srv.Orders(cust))

	srv.SetDirectSigned(cust, true)
	res = app.do(http.MethodPost, checkoutPath(cust, cartID), nil)
	require.Equal(t, http.StatusCreated, res.status, "the customer accepted in the admin center: %s", res.body)
	result := res.object(t)
	assert.Equal(t, []any{}, result["orderErrors"])
	assert.Equal(t, "CartCheckoutResult", result["attributes"].(map[string]any)["objectType"])
	orders := result["orders"].([]any)
	require.Len(t, orders, 1)
	order := orders[0].(map[string]any)
	assert.Equal(t, "pending", order["status"])
	assert.Equal(t, cust, order["referenceCustomerId"])
	assert.Len(t, order["id"], 12)
	lines := order["lineItems"].([]any)
	require.Len(t, lines, 2)
	first := lines[0].(map[string]any)
	assert.Equal(t, partnercentertest.CatalogAIBuilder, first["offerId"])
	assert.Equal(t, "AI Builder Capacity add-on", first["friendlyName"])
	assert.Equal(t, "New", first["transactionType"])
	assert.Equal(t, "5357564", lines[1].(map[string]any)["partnerIdOnRecord"])

	subID := lines[1].(map[string]any)["subscriptionId"].(string)
	sub, found := srv.Subscription(cust, subID)
	require.True(t, found, "the subscriptions exist from the checkout on")
	assert.Equal(t, 2, sub.Quantity)
	assert.Equal(t, "active", sub.Status)
	assert.Equal(t, partnercentertest.CatalogAADPremiumP1, sub.OfferID)
	got := app.getOK("customers/" + cust + "/subscriptions/" + subID)
	assert.EqualValues(t, 2, got["refundableQuantity"].(map[string]any)["totalQuantity"], "new seats are refundable")
	assert.Equal(t, order["id"], got["orderId"])
	bySub := items(t, app.getOK("customers/"+cust+"/subscriptions?order_id="+order["id"].(string)))
	assert.Len(t, bySub, 2)

	orderPath := "customers/" + cust + "/orders/" + order["id"].(string)
	assert.Equal(t, "pending", items(t, app.getOK("customers/"+cust+"/orders"))[0]["status"], "listing is not a poll")
	assert.Equal(t, "pending", app.getOK(orderPath)["status"], "the first poll still sees it pending")
	assert.Equal(t, "completed", app.getOK(orderPath)["status"])
	assert.Equal(t, "completed", items(t, app.getOK("customers/"+cust+"/orders"))[0]["status"])
	assert.Equal(t, "Ordered", app.getOK("customers/" + cust + "/carts/" + cartID)["status"])

	res = app.do(http.MethodPost, checkoutPath(cust, cartID), nil)
	require.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, partnercentertest.CodeCartAlreadySubmitted, res.code(t))
	assert.Equal(t, 1, srv.Orders(cust))

	for _, tt := range []struct {
		path string
		code int
	}{
		{"customers/" + cust + "/carts/" + uuid.NewString(), partnercentertest.CodeCartNotFound},
		{"customers/" + cust + "/orders/abcdef012345", partnercentertest.CodeOrderNotFound},
	} {
		res := app.get(tt.path)
		assert.Equal(t, http.StatusNotFound, res.status)
		assert.Equal(t, tt.code, res.code(t))
	}
	res = app.do(http.MethodPost, checkoutPath(cust, uuid.NewString()), nil)
	assert.Equal(t, partnercentertest.CodeCartNotFound, res.code(t))
}

func TestCartLineErrors(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true, Subscriptions: []partnercentertest.Subscription{
		{ID: "basic", OfferID: partnercentertest.CatalogBusinessBasic, Quantity: 5},
		{ID: "p1", OfferID: partnercentertest.CatalogAADPremiumP1, Quantity: 5},
		{ID: "off", OfferID: partnercentertest.CatalogBusinessPremium, Quantity: 5, Status: "suspended"},
	}}))
	app := appClient(t, srv)
	line := func(edit func(map[string]any)) map[string]any {
		l := map[string]any{"id": 0, "catalogItemId": partnercentertest.CatalogBusinessBasic, "quantity": 1, "billingCycle": "monthly", "termDuration": "P1M"}
		edit(l)
		return map[string]any{"lineItems": []any{l}}
	}
	addOn := func(parent string) func(map[string]any) {
		return func(l map[string]any) {
			l["catalogItemId"] = partnercentertest.CatalogExtraStorage
			if parent != "" {
				l["provisioningContext"] = map[string]any{"parentSubscriptionId": parent}
			}
		}
	}
	tests := []struct {
		name string
		body any
		code int // 0: no line error
	}{
		{"unknown catalog item", line(func(l map[string]any) { l["catalogItemId"] = "DZH318Z0BQ3Q:0001:DZH318Z0BNVX" }), partnercentertest.LineErrorCatalogItemNotValid},
		{"annual billing on a monthly term", line(func(l map[string]any) { l["billingCycle"] = "annual" }), partnercentertest.LineErrorInvalidInput},
		{"unknown term", line(func(l map[string]any) { l["termDuration"] = "P2Y" }), partnercentertest.LineErrorInvalidInput},
		{"no seats", line(func(l map[string]any) { l["quantity"] = 0 }), partnercentertest.LineErrorInvalidInput},
		{"add-on without parent", line(addOn("")), partnercentertest.LineErrorInvalidInput},
		{"add-on of an unknown subscription", line(addOn("nope")), partnercentertest.LineErrorSubscriptionInvalid},
		{"add-on of a suspended subscription", line(addOn("off")), partnercentertest.LineErrorSubscriptionInvalid},
		{"add-on of another product", line(addOn("p1")), partnercentertest.LineErrorSubscriptionInvalid},
		{"add-on of a Business Basic subscription", line(addOn("BASIC")), 0},
		{"PascalCase", map[string]any{"LineItems": []any{map[string]any{"Id": 0, "CatalogItemId": partnercentertest.CatalogBusinessBasic, "Quantity": 3, "BillingCycle": "Monthly", "TermDuration": "p1y"}}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := app.withT(t)
			res := c.do(http.MethodPost, "customers/"+cust+"/carts", tt.body)
			require.Equal(t, http.StatusCreated, res.status, "a cart is created even with bad lines: %s", res.body)
			cart := res.object(t)
			l := cart["lineItems"].([]any)[0].(map[string]any)
			if tt.code == 0 {
				assert.NotContains(t, l, "error")
				return
			}
			require.Contains(t, l, "error")
			assert.EqualValues(t, tt.code, l["error"].(map[string]any)["errorCode"])

			res = c.do(http.MethodPost, checkoutPath(cust, cart["id"].(string)), nil)
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			body := res.object(t)
			assert.EqualValues(t, partnercentertest.CodeCartItemErrors, body["code"])
			assert.Equal(t, "Error in Cart item(s)", body["description"])
			require.Len(t, body["data"], 1)
			assert.Contains(t, body["data"].([]any)[0], strconv.Itoa(tt.code))
			assert.Equal(t, "Active", c.getOK("customers/" + cust + "/carts/" + cart["id"].(string))["status"], "a refused cart stays active")
		})
	}
	assert.Zero(t, srv.Orders(cust))
	res := app.do(http.MethodPost, "customers/"+cust+"/carts", map[string]any{"lineItems": []any{}})
	assert.Equal(t, http.StatusBadRequest, res.status, "an empty cart")
}

func TestAddOnPurchase(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true, Subscriptions: []partnercentertest.Subscription{
		{ID: "basic", OfferID: partnercentertest.CatalogBusinessBasic, Quantity: 5},
	}}))
	app := appClient(t, srv)
	cartID := createCart(app, cust, map[string]any{"lineItems": []any{
		map[string]any{"catalogItemId": partnercentertest.CatalogExtraStorage, "quantity": 3, "billingCycle": "monthly", "termDuration": "P1Y",
			"provisioningContext": map[string]any{"ParentSubscriptionId": "basic"}},
		map[string]any{"id": 1, "catalogItemId": partnercentertest.CatalogBusinessPremium, "quantity": 4, "billingCycle": "annual", "termDuration": "P1Y",
			"addonItems": []any{map[string]any{"catalogItemId": partnercentertest.CatalogExtraStorage, "quantity": 1, "billingCycle": "monthly", "termDuration": "P1M"}}},
	}})
	res := app.do(http.MethodPost, checkoutPath(cust, cartID), nil)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	lines := res.object(t)["orders"].([]any)[0].(map[string]any)["lineItems"].([]any)
	require.Len(t, lines, 3)
	toExisting, premium, nested := lines[0].(map[string]any), lines[1].(map[string]any), lines[2].(map[string]any)
	assert.Equal(t, "basic", toExisting["parentSubscriptionId"])
	assert.Equal(t, premium["subscriptionId"], nested["parentSubscriptionId"], "an addonItems entry attaches to its base line's new subscription")
	assert.Len(t, items(t, app.getOK("customers/"+cust+"/subscriptions/basic/addons")), 1)
	assert.Len(t, items(t, app.getOK("customers/"+cust+"/subscriptions/"+premium["subscriptionId"].(string)+"/addons")), 1)
	assert.Len(t, srv.Subscriptions(cust), 4)

	// The parent of an add-on line is checked again at checkout.
	later := createCart(app, cust, map[string]any{"lineItems": []any{map[string]any{
		"catalogItemId": partnercentertest.CatalogExtraStorage, "quantity": 1, "billingCycle": "monthly", "termDuration": "P1Y",
		"provisioningContext": map[string]any{"parentSubscriptionId": "basic"},
	}}})
	require.Equal(t, http.StatusOK, patch(app, cust, "basic", map[string]any{"status": "suspended"}).status)
	res = app.do(http.MethodPost, checkoutPath(cust, later), nil)
	require.Equal(t, http.StatusConflict, res.status, "%s", res.body)
	assert.Equal(t, partnercentertest.CodeAddOnParentInactive, res.code(t))
}

func TestCheckoutAfterAttestation(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	app := appClient(t, srv)
	cartID := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessPremium, 3))
	assert.Equal(t, http.StatusForbidden, app.do(http.MethodPost, checkoutPath(cust, cartID), nil).status)

	res := app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust))
	require.Equal(t, http.StatusCreated, res.status)
	id := res.object(t)["attestationId"].(string)
	require.NoError(t, srv.AcceptAttestation(id))
	assert.Equal(t, http.StatusForbidden, app.do(http.MethodPost, checkoutPath(cust, cartID), nil).status, "accepted is not enough: the agreement must be created")
	require.Equal(t, http.StatusCreated, app.do(http.MethodPost, "customers/"+cust+"/agreements", finalizeBody(id)).status)
	assert.Equal(t, http.StatusCreated, app.do(http.MethodPost, checkoutPath(cust, cartID), nil).status)
	assert.Equal(t, 1, srv.Orders(cust))
}

func TestCheckoutReplayByRequestID(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true}))
	app := appClient(t, srv)
	cartID := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessBasic, 5))
	id := uuid.NewString()
	first := app.do(http.MethodPost, checkoutPath(cust, cartID), nil, "MS-RequestId", id)
	require.Equal(t, http.StatusCreated, first.status, "%s", first.body)
	again := app.do(http.MethodPost, checkoutPath(cust, cartID), nil, "MS-RequestId", id)
	require.Equal(t, http.StatusCreated, again.status, "the same MS-RequestId gets the stored answer, not 800065")
	assert.Equal(t, first.body, again.body)
	assert.Equal(t, 1, srv.Orders(cust))
	fresh := app.do(http.MethodPost, checkoutPath(cust, cartID), nil, "MS-RequestId", uuid.NewString())
	assert.Equal(t, partnercentertest.CodeCartAlreadySubmitted, fresh.code(t))
	log := srv.Requests()
	require.Len(t, log, 4)
	assert.True(t, log[2].Replayed)
	assert.Equal(t, id, log[2].RequestID)
}

// TestCheckoutTimeoutAndRetry: the client gives up while the checkout is in flight; the order is placed
// anyway, and a retry with the same MS-RequestId gets its answer instead of buying twice.
func TestCheckoutTimeoutAndRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		cust := customerID(1)
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true}))
		app := appClient(t, srv)
		cartID := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessBasic, 5))
		srv.Inject(partnercentertest.Fault{Path: "checkout", Latency: 30 * time.Second, Times: 1})
		id := uuid.NewString()

		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := app.hc.Do(app.request(ctx, http.MethodPost, checkoutPath(cust, cartID), nil, "MS-RequestId", id))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1, srv.Orders(cust), "the service acted although the client saw no answer")

		res := app.do(http.MethodPost, checkoutPath(cust, cartID), nil, "MS-RequestId", id)
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
		assert.Len(t, res.object(t)["orders"], 1)
		assert.Equal(t, 1, srv.Orders(cust))
	})
}

func TestConcurrentCheckout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		cust := customerID(1)
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true}))
		app := appClient(t, srv)
		cartID := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessBasic, 5))
		srv.SetLatency(2 * time.Second)

		statuses := make([]response, 2)
		var wg sync.WaitGroup
		wg.Go(func() { statuses[0] = app.do(http.MethodPost, checkoutPath(cust, cartID), nil) })
		synctest.Wait() // the first checkout is in flight, held by the latency
		wg.Go(func() { statuses[1] = app.do(http.MethodPost, checkoutPath(cust, cartID), nil) })
		wg.Wait()
		assert.Equal(t, http.StatusCreated, statuses[0].status)
		require.Equal(t, http.StatusConflict, statuses[1].status, "%s", statuses[1].body)
		assert.Equal(t, partnercentertest.CodeCartBeingProcessed, statuses[1].code(t))
		assert.Equal(t, 1, srv.Orders(cust))

		// The same MS-RequestId while the first is still running is refused too, and not stored.
		other := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessBasic, 1))
		id := uuid.NewString()
		wg.Go(func() { statuses[0] = app.do(http.MethodPost, checkoutPath(cust, other), nil, "MS-RequestId", id) })
		synctest.Wait()
		statuses[1] = app.do(http.MethodPost, checkoutPath(cust, other), nil, "MS-RequestId", id)
		wg.Wait()
		assert.Equal(t, http.StatusCreated, statuses[0].status)
		assert.Equal(t, http.StatusConflict, statuses[1].status)
		res := app.do(http.MethodPost, checkoutPath(cust, other), nil, "MS-RequestId", id)
		assert.Equal(t, http.StatusCreated, res.status, "once settled, the retry gets the stored answer")
	})
}

func TestSandboxCapsAtCheckout(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{SandboxCaps: true})
	cust := customerID(1)
	var subs []partnercentertest.Subscription
	for range 4 {
		subs = append(subs, partnercentertest.Subscription{OfferID: partnercentertest.CatalogBusinessBasic, Quantity: 1})
	}
	subs = append(subs, partnercentertest.Subscription{OfferID: partnercentertest.CatalogBusinessBasic, Quantity: 1, Status: "deleted"})
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true, Subscriptions: subs}))
	app := appClient(t, srv)

	seats := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessBasic, 26))
	res := app.do(http.MethodPost, checkoutPath(cust, seats), nil)
	require.Equal(t, http.StatusForbidden, res.status, "%s", res.body)
	assert.Equal(t, partnercentertest.CodeSandboxSeats, res.code(t))

	two := createCart(app, cust, map[string]any{"lineItems": []any{
		cartBody(partnercentertest.CatalogBusinessBasic, 1)["lineItems"].([]any)[0],
		cartBody(partnercentertest.CatalogBusinessPremium, 1)["lineItems"].([]any)[0],
	}})
	res = app.do(http.MethodPost, checkoutPath(cust, two), nil)
	require.Equal(t, http.StatusForbidden, res.status, "%s", res.body)
	assert.Equal(t, partnercentertest.CodeSandboxSubscriptions, res.code(t), "4 active + 2 new > 5 (the deleted one does not count)")

	one := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessPremium, 25))
	assert.Equal(t, http.StatusCreated, app.do(http.MethodPost, checkoutPath(cust, one), nil).status)
	another := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessBasic, 1))
	res = app.do(http.MethodPost, checkoutPath(cust, another), nil)
	require.Equal(t, http.StatusForbidden, res.status, "five active subscriptions: the sixth is refused")
	assert.Equal(t, partnercentertest.CodeSandboxSubscriptions, res.code(t))
}

func TestCatalogItems(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	assert.Equal(t, []string{
		partnercentertest.CatalogBusinessBasic, partnercentertest.CatalogBusinessPremium, partnercentertest.CatalogAADPremiumP1,
		partnercentertest.CatalogAIBuilder, partnercentertest.CatalogExtraStorage,
	}, srv.CatalogItems())
}

func TestCheckoutNeedsRelationship(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Former", Relationship: "none", DirectSigned: true}))
	app := appClient(t, srv)
	cartID := createCart(app, cust, cartBody(partnercentertest.CatalogBusinessBasic, 1))
	res := app.do(http.MethodPost, checkoutPath(cust, cartID), nil)
	require.Equal(t, http.StatusForbidden, res.status)
	assert.Equal(t, partnercentertest.CodeNoRelationship, res.code(t))
}

func TestCartExpires(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		cust := customerID(1)
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true}))
		cartID := createCart(appClient(t, srv), cust, cartBody(partnercentertest.CatalogBusinessBasic, 1))
		time.Sleep(7 * 24 * time.Hour)
		res := appClient(t, srv).do(http.MethodPost, checkoutPath(cust, cartID), nil)
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeInvalidInput, res.code(t))
		assert.Zero(t, srv.Orders(cust))
	})
}
