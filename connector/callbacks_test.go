package connector

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestWebhookDelivererRefusesInternalCallbacks: a subscription row written straight into Dataverse (not
// through the API) with an internal callback is never posted to, and is counted as missed.
func TestWebhookDelivererRefusesInternalCallbacks(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	dv := sb.DataverseClient
	id, err := dv.Create(t.Context(), schema.SetWebhookSubscriptions, dataverse.Row{
		"csp_name": "metadata", "csp_eventtype": notify.JobFailed.EventType(), "csp_callbackurl": "https://169.254.169.254/latest/meta-data/iam",
		"csp_owner": "key:someone"})
	require.NoError(t, err)
	d := &notify.WebhookDeliverer{DV: dv}
	err = d.Deliver(t.Context(), notify.Notification{Type: notify.JobFailed, Notice: notify.Notice{Title: "x"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not retried")
	assert.NotContains(t, err.Error(), "169.254")
	var sub schema.WebhookSubscription
	raw, err := dv.Get(t.Context(), schema.SetWebhookSubscriptions, id, nil)
	require.NoError(t, err)
	require.NoError(t, dataverse.Unmarshal(raw, &sub))
	assert.Equal(t, 1, sub.ConsecutiveFailures)
}

// TestAPIWebhookSubscriptionsBelongToTheirCaller: internal callbacks are 400s; a caller holds at most 100
// subscriptions; it deletes only its own; the list pages past any size.
func TestAPIWebhookSubscriptionsBelongToTheirCaller(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	dv := sb.DataverseClient
	for _, cb := range []string{"https://169.254.169.254/latest/meta-data/", "https://10.1.2.3/flow", "https://2130706433/flow", "https://metadata.google.internal/x", "https://[fd00::1]/x"} {
		p := op.post(api.Prefix+"/webhook-subscriptions", api.WebhookSubscriptionRequest{CallbackURL: cb, EventType: "JobFailed"}).problem(t, http.StatusBadRequest)
		assert.Equal(t, []string{"callbackUrl"}, p.fields(), cb)
	}

	other, err := dv.Create(t.Context(), schema.SetWebhookSubscriptions, dataverse.Row{
		"csp_name": "theirs", "csp_eventtype": notify.JobFailed.EventType(), "csp_callbackurl": "https://hooks.example.com/theirs", "csp_owner": "key:another-caller"})
	require.NoError(t, err)
	p := op.do(http.MethodDelete, api.Prefix+"/webhook-subscriptions/"+other.String(), nil).problem(t, http.StatusForbidden)
	assert.Equal(t, "not_owner", p.Code)
	assert.Len(t, webhookRows(t, sb), 1, "another caller's subscription stays")

	for i := range api.MaxWebhookSubscriptionsPerCaller {
		_, err := dv.Create(t.Context(), schema.SetWebhookSubscriptions, dataverse.Row{
			"csp_name": "mine", "csp_eventtype": notify.JobFailed.EventType(), "csp_callbackurl": fmt.Sprintf("https://hooks.example.com/%d", i), "csp_owner": "key:sandbox-operator"})
		require.NoError(t, err)
	}
	p = op.post(api.Prefix+"/webhook-subscriptions", api.WebhookSubscriptionRequest{CallbackURL: "https://hooks.example.com/one-more", EventType: "JobFailed"}).problem(t, http.StatusConflict)
	assert.Equal(t, "subscription_limit", p.Code)
	again := op.post(api.Prefix+"/webhook-subscriptions", api.WebhookSubscriptionRequest{CallbackURL: "https://hooks.example.com/7", EventType: "JobFailed"})
	again.ok(t, http.StatusCreated, nil)

	seen := map[string]bool{}
	next := api.Prefix + "/webhook-subscriptions?top=7"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 20)
		var list api.WebhookSubscriptionList
		readerClient(t, sb).get(next).ok(t, http.StatusOK, &list)
		for _, s := range list.Value {
			assert.False(t, seen[s.ID], "each subscription once")
			seen[s.ID] = true
		}
		next = list.NextLink
	}
	assert.Len(t, seen, api.MaxWebhookSubscriptionsPerCaller+1, "every subscription, over pages")
}
