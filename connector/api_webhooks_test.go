package connector

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// flowCallback stands for a Power Automate flow's trigger URL: it records what the connector posts.
type flowCallback struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []flowDelivery
}

type flowDelivery struct {
	method, contentType, eventID, eventType string
	payload                                 notify.Payload
}

func newFlowCallback(t *testing.T) *flowCallback {
	t.Helper()
	f := &flowCallback{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := flowDelivery{method: r.Method, contentType: r.Header.Get("Content-Type"), eventID: r.Header.Get("X-Connector-Event-Id"), eventType: r.Header.Get("X-Connector-Event-Type")}
		if err := json.Unmarshal(body, &d.payload); err != nil {
			t.Errorf("the callback got a body that is not a Payload: %v: %s", err, body)
		}
		f.mu.Lock()
		f.got = append(f.got, d)
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// about returns the deliveries whose data names the company.
func (f *flowCallback) about(company string) []flowDelivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []flowDelivery
	for _, d := range f.got {
		if d.payload.Data["companyName"] == company {
			out = append(out, d)
		}
	}
	return out
}

// addUnmappableCustomer adds a Partner Center customer no account matches, and runs the sync through the
// API until it has finished and its notifications are delivered.
func addUnmappableCustomer(t *testing.T, sb *Sandbox, op apiClient, company, domain string) string {
	t.Helper()
	tenant := uuid.NewString()
	require.NoError(t, sb.PartnerCenter.AddCustomer(partnercentertest.Customer{TenantID: tenant, CompanyName: company, Domain: domain, Country: "US"}))
	var run api.JobRunView
	waitJobIdle(t, sb, provideraccounts.SyncJobName)
	last := op.poll(op.post(api.Prefix+"/provider-accounts/sync", nil).accepted(t, sandboxBase(sb), &run))
	last.ok(t, http.StatusOK, &run)
	require.Equal(t, "succeeded", run.Status)
	pa := providerAccountsByTenant(t, sb)[tenant]
	require.Equal(t, schema.MappingUnmapped, pa.MappingStatus, "%s fits no account", company)
	require.NoError(t, sb.Service.Notifications.Flush(waitCtx(t, 10*time.Second)))
	return pa.ID.String()
}

func webhookRows(t *testing.T, sb *Sandbox) []schema.WebhookSubscription {
	t.Helper()
	var out []schema.WebhookSubscription
	for raw, err := range sb.DataverseClient.List(t.Context(), schema.SetWebhookSubscriptions, &dataverse.Query{Select: dataverse.Columns[schema.WebhookSubscription]()}) {
		require.NoError(t, err)
		var s schema.WebhookSubscription
		require.NoError(t, dataverse.Unmarshal(raw, &s))
		out = append(out, s)
	}
	return out
}

// TestAPIWebhookTrigger: the Power Automate trigger end to end. A flow subscribes (twice, as a saved flow
// may: one subscription); a customer no account matches arrives and the sync posts the event to the
// flow's callback; the flow unsubscribes (twice: still 204) and the next event is not posted.
func TestAPIWebhookTrigger(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)
	flow := newFlowCallback(t)
	callback := flow.srv.URL + "/workflows/4f1c0e/triggers/manual/paths/invoke?api-version=2016-06-01&sig=Zm9yZ2VkLXNpZ25hdHVyZQ"
	require.NoError(t, sb.Service.Notifications.Flush(waitCtx(t, 10*time.Second)), "the events of the sync at start are delivered before the flow subscribes")

	req := api.WebhookSubscriptionRequest{CallbackURL: callback, EventType: string(notify.ProviderAccountNeedsMapping)}
	a := op.post(api.Prefix+"/webhook-subscriptions", req)
	var sub api.WebhookSubscriptionView
	a.ok(t, http.StatusCreated, &sub)
	loc := a.Header.Get("Location")
	assert.Equal(t, base+api.Prefix+"/webhook-subscriptions/"+sub.ID, loc, "Location is absolute: Power Automate deletes it when the flow goes")
	assert.Equal(t, "ProviderAccountNeedsMapping", sub.EventType)
	assert.Equal(t, "127.0.0.1", sub.CallbackHost)
	assert.Equal(t, "key:sandbox-operator", sub.Owner)
	assert.NotContains(t, string(a.Body), "sig=", "the callback URL is a secret")

	again := op.post(api.Prefix+"/webhook-subscriptions", req)
	again.ok(t, http.StatusCreated, nil)
	assert.Equal(t, loc, again.Header.Get("Location"), "the same subscription")
	rows := webhookRows(t, sb)
	require.Len(t, rows, 1, "one csp_webhooksubscription row")
	assert.Equal(t, callback, rows[0].CallbackURL)

	var list api.WebhookSubscriptionList
	l := readerClient(t, sb).get(api.Prefix + "/webhook-subscriptions")
	l.ok(t, http.StatusOK, &list)
	require.Len(t, list.Value, 1)
	assert.Equal(t, sub.ID, list.Value[0].ID)
	assert.Equal(t, "127.0.0.1", list.Value[0].CallbackHost)
	assert.NotContains(t, string(l.Body), "/workflows/", "the list never shows the URL")
	assert.NotContains(t, string(l.Body), "sig=")

	paID := addUnmappableCustomer(t, sb, op, "Woodgrove Bank", "woodgrovebank.com")
	var got []flowDelivery
	require.Eventually(t, func() bool { got = flow.about("Woodgrove Bank"); return len(got) > 0 }, 10*time.Second, 20*time.Millisecond, "the flow is called")
	require.Len(t, got, 1, "once")
	d := got[0]
	assert.Equal(t, http.MethodPost, d.method)
	assert.Equal(t, "application/json", d.contentType)
	assert.NotEmpty(t, d.payload.ID)
	assert.Equal(t, d.payload.ID, d.eventID, "X-Connector-Event-Id is the event's id")
	assert.Equal(t, notify.ProviderAccountNeedsMapping, d.payload.Type)
	assert.Equal(t, "ProviderAccountNeedsMapping", d.eventType)
	assert.Equal(t, paID, d.payload.Data["providerAccountId"])
	assert.Equal(t, "Unmapped", d.payload.Data["mappingStatus"])
	assert.Equal(t, schema.TableProviderAccount, d.payload.Table)
	assert.Equal(t, paID, d.payload.RowID)
	assert.Contains(t, d.payload.Title, "Woodgrove Bank")
	for _, f := range flow.about("Litware") {
		t.Errorf("an event of the sync at start reached the flow that subscribed after it: %+v", f)
	}

	op.do(http.MethodDelete, loc, nil).ok(t, http.StatusNoContent, nil)
	op.do(http.MethodDelete, loc, nil).ok(t, http.StatusNoContent, nil)
	assert.Empty(t, webhookRows(t, sb))
	readerClient(t, sb).get(api.Prefix+"/webhook-subscriptions").ok(t, http.StatusOK, &list)
	assert.Empty(t, list.Value)

	published := sb.Service.Notifications.Stats().Published
	addUnmappableCustomer(t, sb, op, "Proseware, Inc.", "proseware.com")
	assert.Greater(t, sb.Service.Notifications.Stats().Published, published, "the sync raised the event")
	assert.Empty(t, flow.about("Proseware, Inc."), "no delivery after the flow unsubscribed")
}

// TestAPIWebhookSubscriptionValidation: callback URLs the connector would not call and unknown event types
// are 400s naming the field; the URL never shows in the answer.
func TestAPIWebhookSubscriptionValidation(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	valid := "https://prod-12.westeurope.logic.azure.com/workflows/9a7/triggers/manual/paths/invoke?sig=c2VjcmV0LXNpZw"
	tests := []struct {
		name, callback, eventType string
		fields                    []string
	}{
		{"ftp", "ftp://127.0.0.1/hooks/flow?sig=ZnRwLXNpZw", "ProviderAccountNeedsMapping", []string{"callbackUrl"}},
		{"user information", "https://flow-user:hunter2-pass@prod-12.westeurope.logic.azure.com/workflows/9a7", "ProviderAccountNeedsMapping", []string{"callbackUrl"}},
		{"empty", "", "ProviderAccountNeedsMapping", []string{"callbackUrl"}},
		{"relative", "/workflows/9a7/invoke?sig=cmVsYXRpdmU", "ProviderAccountNeedsMapping", []string{"callbackUrl"}},
		{"http off loopback", "http://prod-12.westeurope.logic.azure.com/workflows/9a7?sig=aHR0cC1zaWc", "JobFailed", []string{"callbackUrl"}},
		{"unknown event", valid, "CustomerLeft", []string{"eventType"}},
		{"event in another case", valid, "providerAccountNeedsMapping", []string{"eventType"}},
		{"both", "ftp://127.0.0.1/hooks/flow?sig=Ym90aC1zaWc", "", []string{"callbackUrl", "eventType"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := op.post(api.Prefix+"/webhook-subscriptions", api.WebhookSubscriptionRequest{CallbackURL: tt.callback, EventType: tt.eventType})
			p := a.problem(t, http.StatusBadRequest)
			assert.ElementsMatch(t, tt.fields, p.fields(), "%+v", p.Errors)
			if tt.callback != "" {
				assert.NotContains(t, string(a.Body), tt.callback, "the callback URL is a secret")
				u := tt.callback
				if i := strings.Index(u, "sig="); i >= 0 {
					assert.NotContains(t, string(a.Body), u[i:], "not even its signature")
				}
				assert.NotContains(t, string(a.Body), "hunter2")
			}
			assert.Empty(t, a.Header.Get("Location"))
		})
	}
	op.post(api.Prefix+"/webhook-subscriptions", nil).problem(t, http.StatusBadRequest)
	p := op.post(api.Prefix+"/webhook-subscriptions", map[string]any{"callbackUrl": valid, "eventType": "JobFailed", "notificationUrl": valid}).problem(t, http.StatusBadRequest)
	assert.Equal(t, []string{"notificationUrl"}, p.fields())
	readerClient(t, sb).post(api.Prefix+"/webhook-subscriptions", api.WebhookSubscriptionRequest{CallbackURL: valid, EventType: "JobFailed"}).problem(t, http.StatusForbidden)
	assert.Empty(t, webhookRows(t, sb), "nothing was subscribed")
	assert.Equal(t, []string{"subscriptionId"}, op.do(http.MethodDelete, api.Prefix+"/webhook-subscriptions/flow-1", nil).problem(t, http.StatusBadRequest).fields())
}

// waitCtx bounds a wait in a test helper.
func waitCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestAPIBodiesAreReadStrictly: what encoding/json would quietly accept is a 400 naming the problem.
func TestAPIBodiesAreReadStrictly(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	const cb = `"https://prod-12.westeurope.logic.azure.com/workflows/9a7/triggers/manual/paths/invoke?sig=c2VjcmV0"`
	tests := []struct {
		name, body, detail string
		fields             []string
	}{
		{"a second value", `{"callbackUrl":` + cb + `,"eventType":"JobFailed"} {"eventType":"LicenseChangeFailed"}`, "not valid JSON", nil},
		{"duplicate member", `{"callbackUrl":` + cb + `,"eventType":"JobFailed","eventType":"LicenseChangeFailed"}`, "as written", []string{"eventType"}},
		{"member in another case", `{"CallbackURL":` + cb + `,"eventType":"JobFailed"}`, "as written", []string{"CallbackURL"}},
		{"null", `null`, "must be a JSON object", nil},
		{"array", `[{"callbackUrl":` + cb + `,"eventType":"JobFailed"}]`, "must be a JSON object", nil},
	}
	for _, tt := range tests {
		p := op.post(api.Prefix+"/webhook-subscriptions", tt.body).problem(t, http.StatusBadRequest)
		assert.Contains(t, p.Detail, tt.detail, tt.name)
		assert.Equal(t, tt.fields, p.fields(), tt.name)
	}
	p := op.post(api.Prefix+"/webhook-subscriptions", `{"CallbackURL":`+cb+`,"eventType":"JobFailed"}`).problem(t, http.StatusBadRequest)
	assert.Contains(t, p.Errors[0].Message, "the field is callbackUrl")
	assert.Empty(t, webhookRows(t, sb))
}
