package partnercentertest_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// seedSubscriptions adds customer 1 with a Business Basic subscription "base" (10 seats) and its add-on
// "addon" (2 seats), both bought now.
func seedSubscriptions(t *testing.T, srv *partnercentertest.Server) string {
	t.Helper()
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", Subscriptions: []partnercentertest.Subscription{
		{ID: "base", OfferID: partnercentertest.CatalogBusinessBasic, Quantity: 10, AutoRenew: true},
		{ID: "addon", OfferID: partnercentertest.CatalogExtraStorage, Quantity: 2, ParentSubscriptionID: "base"},
	}}))
	return cust
}

// patch sends a full-resource update the documented way: GET, change, PATCH with If-Match.
func patch(c client, cust, sub string, change map[string]any, headers ...string) response {
	c.t.Helper()
	current := c.getOK("customers/" + cust + "/subscriptions/" + sub)
	for k, v := range change {
		current[k] = v
	}
	etag := current["attributes"].(map[string]any)["etag"].(string)
	return c.do(http.MethodPatch, "customers/"+cust+"/subscriptions/"+sub, current, append([]string{"If-Match", `"` + etag + `"`}, headers...)...)
}

func TestSubscriptionShape(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := seedSubscriptions(t, srv)
	app := appClient(t, srv)
	got := app.getOK("customers/" + cust + "/subscriptions/base")

	var sample map[string]any
	require.NoError(t, json.Unmarshal(vector(t, "get-subscription-new-commerce.json"), &sample))
	for k := range sample {
		assert.Contains(t, got, k, "every field of Microsoft's new-commerce sample is present")
	}
	for k := range sample["links"].(map[string]any) {
		assert.Contains(t, got["links"], k)
	}
	assert.Equal(t, "Microsoft 365 Business Basic", got["offerName"])
	assert.Equal(t, "/products/CFQ7TTC0LH18/skus/0001?country=US", got["links"].(map[string]any)["sku"].(map[string]any)["uri"])
	assert.Equal(t, "/customers/"+cust+"/subscriptions/base", got["links"].(map[string]any)["self"].(map[string]any)["uri"])
	assert.Equal(t, "active", got["status"])
	assert.Equal(t, true, got["hasPurchasableAddons"])
	assert.NotContains(t, got, "parentSubscriptionId")
	rq := got["refundableQuantity"].(map[string]any)
	assert.EqualValues(t, 10, rq["totalQuantity"])
	require.Len(t, rq["details"], 1)
	attrs := got["attributes"].(map[string]any)
	assert.Equal(t, "Subscription", attrs["objectType"])
	assert.NotEmpty(t, attrs["etag"])
	created, err := time.Parse(time.RFC3339, got["creationDate"].(string))
	require.NoError(t, err)
	until, err := time.Parse(time.RFC3339, got["cancellationAllowedUntilDate"].(string))
	require.NoError(t, err)
	assert.Equal(t, 7*24*time.Hour, until.Sub(created))
	end, err := time.Parse(time.RFC3339, got["commitmentEndDate"].(string))
	require.NoError(t, err)
	assert.Equal(t, created.UTC().Truncate(24*time.Hour).AddDate(1, 0, -1), end, "a one-year term ends the day before its anniversary")

	addOn := app.getOK("customers/" + cust + "/subscriptions/addon")
	assert.Equal(t, "base", addOn["parentSubscriptionId"])
	assert.Equal(t, "/customers/"+cust+"/subscriptions/base", addOn["links"].(map[string]any)["parentSubscription"].(map[string]any)["uri"])
	assert.Equal(t, false, addOn["hasPurchasableAddons"])

	addOns := items(t, app.getOK("customers/"+cust+"/subscriptions/base/addons"))
	require.Len(t, addOns, 1)
	assert.Equal(t, "addon", addOns[0]["id"])
	assert.Empty(t, items(t, app.getOK("customers/"+cust+"/subscriptions/addon/addons")))
	list := app.getOK("customers/" + cust + "/subscriptions")
	assert.EqualValues(t, 2, list["totalCount"])
	assert.Equal(t, "Collection", list["attributes"].(map[string]any)["objectType"])

	res := app.get("customers/" + cust + "/subscriptions/nope")
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, partnercentertest.CodeSubscriptionNotFound, res.code(t))
	res = app.get("customers/" + customerID(2) + "/subscriptions")
	assert.Equal(t, http.StatusNotFound, res.status)
}

func TestSubscriptionETag(t *testing.T) {
	t.Parallel()
	srv := newServer(t, partnercentertest.Options{})
	cust := seedSubscriptions(t, srv)
	app := appClient(t, srv)
	path := "customers/" + cust + "/subscriptions/base"
	current := app.getOK(path)
	etag := current["attributes"].(map[string]any)["etag"].(string)

	res := app.do(http.MethodPatch, path, current, "If-Match", `"stale"`)
	require.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, partnercentertest.CodeETagInvalid, res.code(t))

	current["quantity"] = 11
	res = app.do(http.MethodPatch, path, current, "If-Match", `"`+etag+`"`)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	updated := res.object(t)
	assert.EqualValues(t, 11, updated["quantity"])
	newTag := updated["attributes"].(map[string]any)["etag"].(string)
	assert.NotEqual(t, etag, newTag, "the ETag changes on every change")

	current["quantity"] = 12
	res = app.do(http.MethodPatch, path, current, "If-Match", etag)
	assert.Equal(t, partnercentertest.CodeETagInvalid, res.code(t), "the old ETag no longer works")

	current["attributes"] = map[string]any{"etag": etag, "objectType": "Subscription"}
	res = app.do(http.MethodPatch, path, current)
	assert.Equal(t, partnercentertest.CodeETagInvalid, res.code(t), "without If-Match the body's attributes.etag is checked")

	res = app.do(http.MethodPatch, path, map[string]any{"Quantity": 12, "Attributes": map[string]any{"Etag": newTag}})
	require.Equal(t, http.StatusOK, res.status, "PascalCase body with its ETag: %s", res.body)
	tag3 := res.object(t)["attributes"].(map[string]any)["etag"].(string)

	res = app.do(http.MethodPatch, path, map[string]any{"quantity": 12}, "If-Match", `W/"`+tag3+`"`)
	require.Equal(t, http.StatusOK, res.status, "a weak ETag is accepted")
	assert.Equal(t, tag3, res.object(t)["attributes"].(map[string]any)["etag"], "nothing changed: same ETag")
	assert.Equal(t, http.StatusOK, app.do(http.MethodPatch, path, map[string]any{"autoRenewEnabled": false}, "If-Match", "*").status)
	sub, _ := srv.Subscription(cust, "base")
	assert.False(t, sub.AutoRenew)
}

// TestRefundWindow walks a subscription through the new-commerce seat-reduction and cancellation rules
// on the bubble's clock.
func TestRefundWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		cust := seedSubscriptions(t, srv)
		day := 24 * time.Hour
		bought := time.Now().UTC()
		refundable := func(c client) (int, []any) {
			rq := c.getOK("customers/" + cust + "/subscriptions/base")["refundableQuantity"].(map[string]any)
			return int(rq["totalQuantity"].(float64)), rq["details"].([]any)
		}

		time.Sleep(day)
		app := appClient(t, srv)
		res := patch(app, cust, "base", map[string]any{"quantity": 15})
		require.Equal(t, http.StatusOK, res.status, "seats can be added any time: %s", res.body)
		total, details := refundable(app)
		assert.Equal(t, 15, total)
		assert.Equal(t, []any{
			map[string]any{"quantity": float64(10), "allowedUntilDateTime": bought.Add(7 * day).Format(time.RFC3339Nano)},
			map[string]any{"quantity": float64(5), "allowedUntilDateTime": bought.Add(8 * day).Format(time.RFC3339Nano)},
		}, details, "each addition is a lot with its own window")

		time.Sleep(day)
		app = appClient(t, srv)
		require.Equal(t, http.StatusOK, patch(app, cust, "base", map[string]any{"quantity": 12}).status)
		total, details = refundable(app)
		assert.Equal(t, 12, total)
		assert.Equal(t, float64(2), details[1].(map[string]any)["quantity"], "the newest seats go first")

		time.Sleep(5*day + time.Hour) // the first lot's window has closed
		app = appClient(t, srv)
		total, _ = refundable(app)
		assert.Equal(t, 2, total)
		res = patch(app, cust, "base", map[string]any{"quantity": 9})
		require.Equal(t, http.StatusBadRequest, res.status)
		body := res.object(t)
		assert.EqualValues(t, partnercentertest.CodeQuantityNotDecreased, body["code"])
		assert.Equal(t, []any{"refundableQuantity=2"}, body["data"])
		require.Equal(t, http.StatusOK, patch(app, cust, "base", map[string]any{"quantity": 10}).status, "two seats are still refundable")
		total, _ = refundable(app)
		assert.Zero(t, total)

		res = patch(app, cust, "base", map[string]any{"quantity": 9})
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeReductionWindow, res.code(t))
		assert.Contains(t, res.object(t)["description"], "7-day window for reducing seats")

		res = patch(app, cust, "base", map[string]any{"status": "deleted"})
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeCancellationWindow, res.code(t))
		assert.Contains(t, res.object(t)["description"], "7-day cancellation window")
		sub, _ := srv.Subscription(cust, "base")
		assert.Equal(t, 10, sub.Quantity)
		assert.Equal(t, "active", sub.Status)
	})
}

func TestCancelWithinWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		cust := seedSubscriptions(t, srv)
		time.Sleep(6 * 24 * time.Hour)
		app := appClient(t, srv)
		res := patch(app, cust, "base", map[string]any{"status": "deleted"})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		assert.Equal(t, "deleted", res.object(t)["status"])
		res = patch(app, cust, "base", map[string]any{"status": "active"})
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeDeletedNotUpdatable, res.code(t))
	})
}

func TestSuspendedAndAddOnRules(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{SandboxCaps: true})
	cust := seedSubscriptions(t, srv)
	app := appClient(t, srv)
	steps := []struct {
		name   string
		sub    string
		change map[string]any
		status int
		code   int
	}{
		{"quantity change while suspending", "base", map[string]any{"status": "suspended", "quantity": 11}, 400, partnercentertest.CodeQuantityWhileSuspend},
		{"suspend the add-on", "addon", map[string]any{"status": "suspended"}, 200, 0},
		{"suspend the parent", "base", map[string]any{"status": "suspended"}, 200, 0},
		{"seats of a suspended subscription", "base", map[string]any{"quantity": 11}, 400, partnercentertest.CodeSuspendedNotUpdatable},
		{"cancel a suspended subscription", "base", map[string]any{"status": "deleted"}, 400, partnercentertest.CodeSuspendedNotUpdatable},
		{"reactivate with a seat change", "base", map[string]any{"status": "active", "quantity": 11}, 400, partnercentertest.CodeSuspendedNotUpdatable},
		{"reactivate the add-on under a suspended parent", "addon", map[string]any{"status": "active"}, 409, partnercentertest.CodeAddOnParentInactive},
		{"reactivate the parent", "base", map[string]any{"status": "active"}, 200, 0},
		{"reactivate the add-on", "addon", map[string]any{"status": "Active"}, 200, 0},
		{"unknown status", "base", map[string]any{"status": "paused"}, 400, partnercentertest.CodeStatusNotUpdatable},
		{"billing cycle", "base", map[string]any{"billingCycle": "annual"}, 400, partnercentertest.CodeBillingCycleImmutable},
		{"zero seats", "base", map[string]any{"quantity": 0}, 400, partnercentertest.CodeQuantityOutOfRange},
		{"above the offer maximum", "base", map[string]any{"quantity": 301}, 400, partnercentertest.CodeQuantityOutOfRange},
		{"above the sandbox seat cap", "base", map[string]any{"quantity": 26}, 403, partnercentertest.CodeSandboxSeats},
		{"at the sandbox seat cap", "base", map[string]any{"quantity": 25}, 200, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res := patch(app.withT(t), cust, st.sub, st.change)
			require.Equal(t, st.status, res.status, "%s", res.body)
			if st.code != 0 {
				assert.Equal(t, st.code, res.code(t))
			}
		})
	}
	base, _ := srv.Subscription(cust, "base")
	addOn, _ := srv.Subscription(cust, "addon")
	assert.Equal(t, []any{"active", 25, "active"}, []any{base.Status, base.Quantity, addOn.Status})
	res := app.do(http.MethodPatch, "customers/"+cust+"/subscriptions/base", "{not json")
	assert.Equal(t, http.StatusBadRequest, res.status)
	res = app.do(http.MethodPatch, "customers/"+cust+"/subscriptions/nope", map[string]any{"quantity": 1})
	assert.Equal(t, partnercentertest.CodeSubscriptionNotFound, res.code(t))
}

func TestAsyncSubscriptionUpdate(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := seedSubscriptions(t, srv)
	app := appClient(t, srv)
	srv.SetAsyncUpdates(1)

	res := patch(app, cust, "base", map[string]any{"quantity": 14})
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	assert.Equal(t, "/customers/"+cust+"/subscriptions/base", res.header.Get("Location"), "Microsoft's sample Location has no /v1")
	assert.Empty(t, res.body)
	sub, _ := srv.Subscription(cust, "base")
	assert.Equal(t, 14, sub.Quantity, "the change is applied at once")

	res = app.do(http.MethodPatch, "customers/"+cust+"/subscriptions/base", map[string]any{"quantity": 15})
	require.Equal(t, http.StatusConflict, res.status, "%s", res.body)
	assert.Equal(t, partnercentertest.CodeNotReadyToUpdate, res.code(t), "not ready until the update has been observed")

	assert.EqualValues(t, 10, app.getOK("customers/" + cust + "/subscriptions/base")["quantity"], "the first poll still shows the old state")
	assert.EqualValues(t, 14, app.getOK("customers/" + cust + "/subscriptions/base")["quantity"])
	res = patch(app, cust, "base", map[string]any{"quantity": 15})
	assert.Equal(t, http.StatusOK, res.status, "only the next n updates are asynchronous")
}

func TestAddSubscriptionToExistingCustomer(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{AuthOptional: true})
	t.Cleanup(srv.Close)
	tenant := "11111111-2222-3333-4444-555555555555"
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: tenant, CompanyName: "Contoso"}))
	require.NoError(t, srv.AddSubscription(tenant, partnercentertest.Subscription{ID: "aaaaaaaa-0000-4000-8000-000000000001", OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", Quantity: 3}))
	got, ok := srv.Subscription(tenant, "aaaaaaaa-0000-4000-8000-000000000001")
	require.True(t, ok)
	assert.Equal(t, 3, got.Quantity)
	assert.Error(t, srv.AddSubscription(tenant, partnercentertest.Subscription{ID: "aaaaaaaa-0000-4000-8000-000000000001", OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", Quantity: 3}), "twice")
	assert.Error(t, srv.AddSubscription("99999999-2222-3333-4444-555555555555", partnercentertest.Subscription{OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", Quantity: 1}), "no such customer")
}
