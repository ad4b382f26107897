package dataverse_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// installedEnv is an environment with the connector's tables already in place.
func installedEnv(t *testing.T, opts dataversetest.Options) (*dataverse.Client, *dataversetest.Server) {
	t.Helper()
	opts.Tables = schema.Schema().Tables
	srv, err := dataversetest.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client(), MaxRetries: 1,
		MinRetryWait: 1, MaxRetryWait: 1})
	require.NoError(t, err)
	return c, srv
}

const (
	webhookKey = "s3cr3t-function-key"
	sasKey     = "c2FzLWtleS1kby1ub3QtcHJpbnQ="
)

func webhookRegistration() dataverse.Registration {
	return dataverse.Registration{
		Endpoint: dataverse.ServiceEndpoint{Name: "CSP Connector", Kind: dataverse.EndpointWebhook,
			URL: "https://connector.example.com/api/dataverse/events", WebhookKey: webhookKey},
		Steps: []dataverse.Step{
			{Name: "CSP Connector: Create of csp_licensechangelog", Message: "Create", Table: "csp_licensechangelog"},
			{Name: "CSP Connector: Update of csp_licensechangelog", Message: "Update", Table: "csp_licensechangelog",
				FilteringAttributes: []string{"csp_provisioningstatus", "csp_quantity"},
				Images:              []dataverse.StepImage{{Alias: "before", Type: dataverse.PreImage, Attributes: []string{"csp_provisioningstatus", "csp_quantity"}}}},
			{Name: "CSP Connector: Delete of csp_licensechangelog", Message: "Delete", Table: "csp_licensechangelog",
				Images: []dataverse.StepImage{{Alias: "gone", Type: dataverse.PreImage, Attributes: []string{"csp_name"}}}},
		},
	}
}

func planAndApply(t *testing.T, c *dataverse.Client, r dataverse.Registration) *dataverse.RegistrationPlan {
	t.Helper()
	plan, err := c.PlanRegistration(t.Context(), r)
	require.NoError(t, err)
	require.NoError(t, c.ApplyRegistration(t.Context(), plan, nil))
	return plan
}

func rowsWhere(srv *dataversetest.Server, table, col string, v any) []map[string]any {
	var out []map[string]any
	for _, r := range srv.Rows(table) {
		if r[col] == v {
			out = append(out, r)
		}
	}
	return out
}

func onlyRow(t *testing.T, srv *dataversetest.Server, table, col string, v any) map[string]any {
	t.Helper()
	rows := rowsWhere(srv, table, col, v)
	require.Len(t, rows, 1, "%s where %s = %v", table, col, v)
	return rows[0]
}

func TestRegistrationCreatesEndpointStepsAndImagesAndASecondRunChangesNothing(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := webhookRegistration()

	plan, err := c.PlanRegistration(t.Context(), r)
	require.NoError(t, err)
	assert.Empty(t, writes(srv), "planning only reads")
	assert.Equal(t, []string{
		`create service endpoint "CSP Connector": webhook https://connector.example.com/api/dataverse/events, key ********`,
		`create step "CSP Connector: Create of csp_licensechangelog": asynchronous, post-operation Create of csp_licensechangelog`,
		`create step "CSP Connector: Update of csp_licensechangelog": asynchronous, post-operation Update of csp_licensechangelog, filtering attributes csp_provisioningstatus,csp_quantity`,
		`create image "before" of step "CSP Connector: Update of csp_licensechangelog": PreImage of csp_provisioningstatus,csp_quantity`,
		`create step "CSP Connector: Delete of csp_licensechangelog": asynchronous, post-operation Delete of csp_licensechangelog`,
		`create image "gone" of step "CSP Connector: Delete of csp_licensechangelog": PreImage of csp_name`,
	}, plan.Summaries())
	require.NoError(t, c.ApplyRegistration(t.Context(), plan, nil))

	endpoint := onlyRow(t, srv, "serviceendpoint", "name", "CSP Connector")
	assert.Equal(t, int64(8), endpoint["contract"])
	assert.Equal(t, int64(4), endpoint["authtype"])
	assert.Equal(t, webhookKey, endpoint["authvalue"])
	assert.Equal(t, "https://connector.example.com/api/dataverse/events", endpoint["url"])

	update := onlyRow(t, srv, "sdkmessageprocessingstep", "name", "CSP Connector: Update of csp_licensechangelog")
	assert.Equal(t, endpoint["serviceendpointid"], update["eventhandler"])
	assert.Equal(t, int64(1), update["mode"])
	assert.Equal(t, int64(40), update["stage"])
	assert.Equal(t, int64(1), update["rank"])
	assert.Equal(t, int64(0), update["supporteddeployment"])
	assert.Equal(t, true, update["asyncautodelete"])
	assert.Equal(t, "csp_provisioningstatus,csp_quantity", update["filteringattributes"])
	msg := onlyRow(t, srv, "sdkmessage", "name", "Update")
	assert.Equal(t, msg["sdkmessageid"], update["sdkmessageid"])
	filter := onlyRow(t, srv, "sdkmessagefilter", "sdkmessagefilterid", update["sdkmessagefilterid"])
	assert.Equal(t, "csp_licensechangelog", filter["primaryobjecttypecode"])
	assert.Equal(t, msg["sdkmessageid"], filter["sdkmessageid"])

	create := onlyRow(t, srv, "sdkmessageprocessingstep", "name", "CSP Connector: Create of csp_licensechangelog")
	assert.Nil(t, create["filteringattributes"])

	before := onlyRow(t, srv, "sdkmessageprocessingstepimage", "sdkmessageprocessingstepid", update["sdkmessageprocessingstepid"])
	assert.Equal(t, "before", before["entityalias"])
	assert.Equal(t, int64(0), before["imagetype"])
	assert.Equal(t, "Target", before["messagepropertyname"])
	assert.Equal(t, "csp_provisioningstatus,csp_quantity", before["attributes"])

	again, err := c.PlanRegistration(t.Context(), r)
	require.NoError(t, err)
	assert.True(t, again.Empty(), "%s", again)
	assert.Empty(t, again.Problems)
	assert.Equal(t, "Nothing to change: the events of service endpoint \"CSP Connector\" are registered as declared.\n", again.String())
}

func TestRegistrationPlanNeverShowsSecrets(t *testing.T) {
	t.Parallel()
	c, _ := installedEnv(t, dataversetest.Options{})
	for _, e := range []dataverse.ServiceEndpoint{
		{Name: "key", Kind: dataverse.EndpointWebhook, URL: "https://x.example.com/hook?code=" + webhookKey, WebhookKey: webhookKey},
		{Name: "header", Kind: dataverse.EndpointWebhook, URL: "https://x.example.com/hook", HeaderName: "x-api-key", HeaderValue: webhookKey},
		{Name: "queue", Kind: dataverse.EndpointServiceBusQueue, NamespaceAddress: "contoso", Path: "events", SASKeyName: "send", SASKey: sasKey},
	} {
		r := dataverse.Registration{Endpoint: e, RotateSecrets: true}
		plan, err := c.PlanRegistration(t.Context(), r)
		require.NoError(t, err)
		require.NoError(t, c.ApplyRegistration(t.Context(), plan, nil))
		rotate, err := c.PlanRegistration(t.Context(), r)
		require.NoError(t, err)
		require.Len(t, rotate.Changes, 1, "rotation always updates")
		for _, p := range []*dataverse.RegistrationPlan{plan, rotate} {
			js, err := json.Marshal(p)
			require.NoError(t, err)
			for _, text := range []string{p.String(), string(js), e.String()} {
				assert.NotContains(t, text, webhookKey)
				assert.NotContains(t, text, sasKey)
			}
		}
	}
}

func TestRegistrationChangedFilteringAttributesUpdateOneStep(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := webhookRegistration()
	planAndApply(t, c, r)

	r.Steps[1].FilteringAttributes = append(r.Steps[1].FilteringAttributes, "csp_effectivedate")
	srv.ResetRequests()
	plan := planAndApply(t, c, r)
	assert.Equal(t, []string{
		`update step "CSP Connector: Update of csp_licensechangelog": filtering attributes csp_provisioningstatus,csp_quantity → csp_effectivedate,csp_provisioningstatus,csp_quantity`,
	}, plan.Summaries())
	w := writes(srv)
	require.Len(t, w, 1)
	assert.Equal(t, http.MethodPatch, w[0].Method)
	assert.Equal(t, "csp_effectivedate,csp_provisioningstatus,csp_quantity",
		onlyRow(t, srv, "sdkmessageprocessingstep", "name", r.Steps[1].Name)["filteringattributes"])

	// Images follow the same rules.
	r.Steps[1].Images[0].Attributes = []string{"csp_provisioningstatus"}
	r.Steps[1].Images = append(r.Steps[1].Images, dataverse.StepImage{Alias: "after", Type: dataverse.PostImage})
	plan = planAndApply(t, c, r)
	assert.Equal(t, []string{
		`update image "before" of step "CSP Connector: Update of csp_licensechangelog": attributes csp_provisioningstatus,csp_quantity → csp_provisioningstatus`,
		`create image "after" of step "CSP Connector: Update of csp_licensechangelog": PostImage of (all)`,
	}, plan.Summaries())
	again, err := c.PlanRegistration(t.Context(), r)
	require.NoError(t, err)
	assert.True(t, again.Empty(), "%s", again)
}

func TestRegistrationRemovedStepIsDeletedWithItsImages(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := webhookRegistration()
	planAndApply(t, c, r)
	// A step of another endpoint is not ours to delete.
	other, err := srv.Insert("serviceendpoint", map[string]any{"name": "Someone else", "contract": 8, "url": "https://other.example.com", "authtype": 4, "authvalue": "k"})
	require.NoError(t, err)
	_, err = srv.Insert("sdkmessageprocessingstep", map[string]any{"name": "theirs", "mode": 1, "stage": 40,
		"eventhandler_serviceendpoint@odata.bind": "/serviceendpoints(" + other + ")"})
	require.NoError(t, err)

	r.Steps = r.Steps[:2]
	plan := planAndApply(t, c, r)
	assert.Equal(t, []string{`delete step "CSP Connector: Delete of csp_licensechangelog"`}, plan.Summaries())
	assert.Empty(t, rowsWhere(srv, "sdkmessageprocessingstep", "name", "CSP Connector: Delete of csp_licensechangelog"))
	assert.Empty(t, rowsWhere(srv, "sdkmessageprocessingstepimage", "entityalias", "gone"), "images go with their step")
	assert.Len(t, rowsWhere(srv, "sdkmessageprocessingstep", "name", "theirs"), 1)
	assert.Len(t, srv.Rows("sdkmessageprocessingstepimage"), 1)
}

func TestRegistrationWebhookWithHeader(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := dataverse.Registration{Endpoint: dataverse.ServiceEndpoint{Name: "hook", Kind: dataverse.EndpointWebhook,
		URL: "https://x.example.com/events", HeaderName: "x-api-key", HeaderValue: `a"b<c`}}
	plan := planAndApply(t, c, r)
	assert.Equal(t, []string{`create service endpoint "hook": webhook https://x.example.com/events, header x-api-key: ********`}, plan.Summaries())
	e := onlyRow(t, srv, "serviceendpoint", "name", "hook")
	assert.Equal(t, int64(5), e["authtype"])
	assert.Equal(t, `<settings><setting name="x-api-key" value="a&#34;b&lt;c" /></settings>`, e["authvalue"])

	// The Web API never returns the secret, and says it is set.
	got, err := c.Get(t.Context(), "serviceendpoints", mustParse(t, e["serviceendpointid"]), &dataverse.GetOptions{Select: []string{"authvalue", "isauthvalueset"}})
	require.NoError(t, err)
	assert.Nil(t, got["authvalue"])
	assert.Equal(t, true, got["isauthvalueset"])

	// Switching from a header to a key changes the authentication type, so the new secret goes along.
	r.Endpoint.HeaderName, r.Endpoint.HeaderValue, r.Endpoint.WebhookKey = "", "", "new-key"
	plan = planAndApply(t, c, r)
	assert.Equal(t, []string{`update service endpoint "hook": authentication type 5 → 4; new secret ******** for the new authentication type`}, plan.Summaries())
	e = onlyRow(t, srv, "serviceendpoint", "name", "hook")
	assert.Equal(t, int64(4), e["authtype"])
	assert.Equal(t, "new-key", e["authvalue"])
}

func mustParse(t *testing.T, v any) dataverse.GUID {
	t.Helper()
	id, err := dataverse.ParseGUID(v.(string))
	require.NoError(t, err)
	return id
}

func TestRegistrationSecretsAreKeptUnlessRotated(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := webhookRegistration()
	planAndApply(t, c, r)

	r.Endpoint.WebhookKey = "changed"
	r.Endpoint.URL = "https://moved.example.com/events?code=inline"
	plan := planAndApply(t, c, r)
	assert.Equal(t, []string{`update service endpoint "CSP Connector": url https://connector.example.com/api/dataverse/events → https://moved.example.com/events?code=****`}, plan.Summaries())
	e := onlyRow(t, srv, "serviceendpoint", "name", "CSP Connector")
	assert.Equal(t, webhookKey, e["authvalue"], "without rotation the secret stays")

	r.RotateSecrets = true
	plan = planAndApply(t, c, r)
	assert.Equal(t, []string{`update service endpoint "CSP Connector": rotate secret ********`}, plan.Summaries())
	assert.Equal(t, "changed", onlyRow(t, srv, "serviceendpoint", "name", "CSP Connector")["authvalue"])
}

func TestRegistrationServiceBusQueue(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := dataverse.Registration{
		Endpoint: dataverse.ServiceEndpoint{Name: "CSP Connector", Kind: dataverse.EndpointServiceBusQueue,
			NamespaceAddress: "Contoso-Events", Path: "dataverse-events", SASKeyName: "dataverse-send", SASKey: sasKey},
		Steps: []dataverse.Step{{Name: "jobs", Message: "Update", Table: "csp_job", FilteringAttributes: []string{"csp_runrequestedon"}}},
	}
	plan := planAndApply(t, c, r)
	assert.Equal(t, `create service endpoint "CSP Connector": Service Bus queue dataverse-events on sb://contoso-events.servicebus.windows.net/, SAS policy dataverse-send ********`, plan.Summaries()[0])
	e := onlyRow(t, srv, "serviceendpoint", "name", "CSP Connector")
	for col, want := range map[string]any{
		"contract": int64(2), "authtype": int64(2), "messageformat": int64(2), "userclaim": int64(1), "connectionmode": int64(1),
		"namespaceformat": int64(2), "namespaceaddress": "sb://contoso-events.servicebus.windows.net/", "solutionnamespace": "contoso-events",
		"path": "dataverse-events", "saskeyname": "dataverse-send", "saskey": sasKey,
	} {
		assert.Equal(t, want, e[col], col)
	}
	again, err := c.PlanRegistration(t.Context(), r)
	require.NoError(t, err)
	assert.True(t, again.Empty(), "%s", again)

	// Someone switched the format to XML: the plan puts Json back, which the connector needs.
	_, err = c.Update(t.Context(), "serviceendpoints", mustParse(t, e["serviceendpointid"]), dataverse.Row{"messageformat": 3}, nil)
	require.NoError(t, err)
	again, err = c.PlanRegistration(t.Context(), r)
	require.NoError(t, err)
	assert.Equal(t, []string{`update service endpoint "CSP Connector": message format 3 → 2`}, again.Summaries())
}

func TestRegistrationDisabledStepIsReportedNotChanged(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := webhookRegistration()
	planAndApply(t, c, r)
	step := onlyRow(t, srv, "sdkmessageprocessingstep", "name", r.Steps[0].Name)
	_, err := c.Update(t.Context(), "sdkmessageprocessingsteps", mustParse(t, step["sdkmessageprocessingstepid"]), dataverse.Row{"statecode": 1}, nil)
	require.NoError(t, err)
	plan, err := c.PlanRegistration(t.Context(), r)
	require.NoError(t, err)
	assert.True(t, plan.Empty())
	assert.Equal(t, []string{`step "CSP Connector: Create of csp_licensechangelog" is disabled in the environment: enable it to receive its events`}, plan.Problems)
}

func TestRegistrationRefusesBadDeclarations(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	hook := dataverse.ServiceEndpoint{Name: "hook", Kind: dataverse.EndpointWebhook, URL: "https://x.example.com", WebhookKey: "k"}
	for _, tc := range []struct {
		name string
		r    dataverse.Registration
		want string
	}{
		{"no name", dataverse.Registration{Endpoint: dataverse.ServiceEndpoint{Kind: dataverse.EndpointWebhook}}, "needs a name"},
		{"relative url", dataverse.Registration{Endpoint: dataverse.ServiceEndpoint{Name: "x", Kind: dataverse.EndpointWebhook, URL: "/events", WebhookKey: "k"}}, "absolute https URL"},
		{"no auth", dataverse.Registration{Endpoint: dataverse.ServiceEndpoint{Name: "x", Kind: dataverse.EndpointWebhook, URL: "https://x"}}, "either a key or a header"},
		{"both auths", dataverse.Registration{Endpoint: dataverse.ServiceEndpoint{Name: "x", Kind: dataverse.EndpointWebhook, URL: "https://x", WebhookKey: "k", HeaderName: "h", HeaderValue: "v"}}, "either a key or a header"},
		{"queue without key", dataverse.Registration{Endpoint: dataverse.ServiceEndpoint{Name: "x", Kind: dataverse.EndpointServiceBusQueue, NamespaceAddress: "ns", Path: "q"}}, "SAS policy name and key"},
		{"unknown kind", dataverse.Registration{Endpoint: dataverse.ServiceEndpoint{Name: "x", Kind: 7}}, "unsupported kind 7"},
		{"twice", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "Create", Table: "csp_job"}, {Name: "S", Message: "Delete", Table: "csp_job"}}}, "declared twice"},
		{"filtering a create", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "Create", Table: "csp_job", FilteringAttributes: []string{"csp_status"}}}}, "only Update steps"},
		{"no table", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "Update"}}}, "needs a table"},
		{"bad column", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "Update", Table: "csp_job", FilteringAttributes: []string{"a b"}}}}, "not a column name"},
		{"pre-image of create", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "Create", Table: "csp_job", Images: []dataverse.StepImage{{Alias: "a", Type: dataverse.PreImage}}}}}, "a Create has no pre-image"},
		{"post-image of delete", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "Delete", Table: "csp_job", Images: []dataverse.StepImage{{Alias: "a", Type: dataverse.BothImages}}}}}, "a Delete has no post-image"},
		{"unknown message", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "csp_DoesNotExist"}}}, `Dataverse has no message "csp_DoesNotExist"`},
		{"unknown table", dataverse.Registration{Endpoint: hook, Steps: []dataverse.Step{{Name: "s", Message: "Update", Table: "csp_nothere"}}}, "no sdkmessagefilter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PlanRegistration(t.Context(), tc.r)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "dataverse: register: "), err.Error())
		})
	}
	assert.Empty(t, writes(srv))
}

func TestRegistrationErrorsFromDataverseAreWrapped(t *testing.T) {
	t.Parallel()
	c, srv := installedEnv(t, dataversetest.Options{})
	srv.Inject(dataversetest.Fault{Method: http.MethodGet, Path: "serviceendpoints", Status: http.StatusForbidden, Code: "0x80040220",
		Message: "Principal user is missing prvReadServiceEndpoint privilege"})
	_, err := c.PlanRegistration(t.Context(), webhookRegistration())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `dataverse: register: look up service endpoint "CSP Connector": `)
	assert.True(t, dataverse.IsForbidden(err), "%v", err)
	srv.ClearFaults()

	plan, err := c.PlanRegistration(t.Context(), webhookRegistration())
	require.NoError(t, err)
	srv.Inject(dataversetest.Fault{Method: http.MethodPost, Path: "sdkmessageprocessingsteps", Status: http.StatusBadRequest,
		Code: "0x80040203", Message: "Invalid filtering attributes", Times: 1})
	err = c.ApplyRegistration(t.Context(), plan, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `dataverse: registration change 2 of 6 (create step "CSP Connector: Create of csp_licensechangelog"`)
	assert.Contains(t, err.Error(), "Invalid filtering attributes")
	var re *dataverse.ResponseError
	assert.True(t, errors.As(err, &re))

	// Running again resumes: the endpoint exists, the steps are created.
	plan = planAndApply(t, c, webhookRegistration())
	assert.NotContains(t, strings.Join(plan.Summaries(), "\n"), "service endpoint")
	assert.Len(t, srv.Rows("sdkmessageprocessingstep"), 3)
}

// TestRegisteredWebhookReceivesEvents runs the whole path: the client registers, a write through the
// client raises the event, the simulator posts it to the webhook with the key.
func TestRegisteredWebhookReceivesEvents(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	defer hook.Close()
	c, srv := installedEnv(t, dataversetest.Options{})
	r := webhookRegistration()
	r.Endpoint.URL = hook.URL + "/events"
	planAndApply(t, c, r)

	ctx := t.Context()
	id, err := c.Create(ctx, "csp_licensechangelogs", dataverse.Row{"csp_name": "change 1"})
	require.NoError(t, err)
	_, err = c.Update(ctx, "csp_licensechangelogs", id, dataverse.Row{"csp_name": "renamed"}, nil) // not a filtering attribute
	require.NoError(t, err)
	require.NoError(t, srv.WaitDeliveries(ctx))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 1, "the Create only: the Update touched no filtering attribute")
	assert.Equal(t, webhookKey, got[0].URL.Query().Get("code"))
	assert.Equal(t, "Create", got[0].Header.Get("x-ms-dynamics-request-name"))
	var ev struct {
		MessageName       string
		PrimaryEntityName string
		PrimaryEntityID   string `json:"PrimaryEntityId"`
	}
	require.NoError(t, json.Unmarshal(bodies[0], &ev))
	assert.Equal(t, "csp_licensechangelog", ev.PrimaryEntityName)
	assert.Equal(t, id.String(), ev.PrimaryEntityID)
	d := srv.Deliveries()
	require.Len(t, d, 1)
	assert.True(t, d[0].Delivered(), d[0].Err)
	assert.Equal(t, r.Steps[0].Name, d[0].Step)
}
