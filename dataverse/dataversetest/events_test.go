package dataversetest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
)

// These tests register endpoints, steps and images through the Web API as a client would, write rows,
// and check what a receiver gets against the RemoteExecutionContext fields the connector reads.

var eventClock = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// widgets is a table with a column of every kind an event types differently.
func widgets() dataverse.Table {
	return dataverse.Table{LogicalName: "csp_widget", EntitySetName: "csp_widgets", DisplayName: "Widget",
		PrimaryName: dataverse.Column{LogicalName: "csp_name", Type: dataverse.TypeString, MaxLength: 200},
		Columns: []dataverse.Column{
			{LogicalName: "csp_status", Type: dataverse.TypeChoice, Options: []dataverse.Option{{Value: 100000000, Label: "Open"}, {Value: 100000001, Label: "Closed"}}},
			{LogicalName: "csp_price", Type: dataverse.TypeMoney},
			{LogicalName: "csp_due", Type: dataverse.TypeDateTime},
			{LogicalName: "csp_count", Type: dataverse.TypeInteger},
			{LogicalName: "csp_flag", Type: dataverse.TypeBoolean},
			{LogicalName: "csp_parent", Type: dataverse.TypeLookup, Target: "csp_widget"},
			{LogicalName: "csp_notes", Type: dataverse.TypeMemo, MaxLength: 1048576},
		}}
}

func startEventServer(t *testing.T, opts dataversetest.Options) (*dataversetest.Server, webAPI) {
	t.Helper()
	opts.Tables = []dataverse.Table{widgets()}
	opts.Now = func() time.Time { return eventClock }
	srv, err := dataversetest.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv, newWebAPI(t, srv)
}

// receiver is a webhook: it records what it is sent and answers with the statuses it is given, then 200.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []received
	statuses []int
	block    chan struct{} // when set, each request waits for it to close
}

type received struct {
	header http.Header
	query  url.Values
	body   []byte
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), query: req.URL.Query(), body: body})
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		block := r.block
		r.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-req.Context().Done():
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// registration helpers, through the Web API.

func (c webAPI) id(set, filter, idCol string) string {
	c.t.Helper()
	rows := values(c.t, c.get(set+query("$filter", filter, "$select", idCol)))
	require.Len(c.t, rows, 1, "%s where %s", set, filter)
	return rows[0][idCol].(string)
}

func (c webAPI) webhook(url string, authType int, authValue string) string {
	c.t.Helper()
	return c.create("serviceendpoints", map[string]any{"name": "hook " + url, "contract": 8, "url": url, "authtype": authType, "authvalue": authValue})
}

// step registers an asynchronous post-operation step of message on table for an endpoint.
func (c webAPI) step(endpoint, message, table, filtering string) string {
	c.t.Helper()
	msg := c.id("sdkmessages", "name eq '"+message+"'", "sdkmessageid")
	filter := c.id("sdkmessagefilters", "_sdkmessageid_value eq "+msg+" and primaryobjecttypecode eq '"+table+"'", "sdkmessagefilterid")
	body := map[string]any{"name": message + " of " + table, "mode": 1, "stage": 40, "rank": 1, "supporteddeployment": 0, "asyncautodelete": true,
		"eventhandler_serviceendpoint@odata.bind": "/serviceendpoints(" + endpoint + ")",
		"sdkmessageid@odata.bind":                 "/sdkmessages(" + msg + ")",
		"sdkmessagefilterid@odata.bind":           "/sdkmessagefilters(" + filter + ")"}
	if filtering != "" {
		body["filteringattributes"] = filtering
	}
	return c.create("sdkmessageprocessingsteps", body)
}

func (c webAPI) image(step, alias string, imageType int, attributes string) {
	c.t.Helper()
	body := map[string]any{"name": alias, "entityalias": alias, "imagetype": imageType, "messagepropertyname": "Target",
		"sdkmessageprocessingstepid@odata.bind": "/sdkmessageprocessingsteps(" + step + ")"}
	if attributes != "" {
		body["attributes"] = attributes
	}
	c.create("sdkmessageprocessingstepimages", body)
}

func (c webAPI) patch(path string, body any, headers ...string) {
	c.t.Helper()
	res := c.do(http.MethodPatch, path, body, append([]string{"If-Match", "*"}, headers...)...)
	require.Equal(c.t, http.StatusNoContent, res.status, "PATCH %s: %s", path, res.body)
}

func wait(t *testing.T, srv *dataversetest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.WaitDeliveries(ctx))
}

// event is the RemoteExecutionContext as the connector reads it (connector.DecodeEvent), decoded here
// with its own small types: this package cannot import the connector.
type event struct {
	BusinessUnitID     string `json:"BusinessUnitId"`
	CorrelationID      string `json:"CorrelationId"`
	Depth              int
	InitiatingUserID   string `json:"InitiatingUserId"`
	InputParameters    []pair
	MessageName        string
	Mode               int
	OperationCreatedOn string
	OperationID        string `json:"OperationId"`
	OrganizationID     string `json:"OrganizationId"`
	OrganizationName   string
	OutputParameters   []pair
	OwningExtension    struct {
		ID          string `json:"Id"`
		LogicalName string
		Name        *string
	}
	ParentContext       *event
	PostEntityImages    []pair
	PreEntityImages     []pair
	PrimaryEntityID     string `json:"PrimaryEntityId"`
	PrimaryEntityName   string
	RequestID           *string `json:"RequestId"`
	SecondaryEntityName string
	SharedVariables     []pair
	Stage               int
	UserID              string `json:"UserId"`
}

type pair struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type entity struct {
	Type            string `json:"__type"`
	Attributes      []pair
	FormattedValues []pair
	ID              string `json:"Id"`
	LogicalName     string
	RowVersion      *string
}

type entityRef struct {
	Type        string `json:"__type"`
	ID          string `json:"Id"`
	LogicalName string
	Name        *string
}

type typed struct {
	Type  string `json:"__type"`
	Value json.Number
}

func decodeEvent(t *testing.T, body []byte) event {
	t.Helper()
	var ev event
	require.NoError(t, json.Unmarshal(body, &ev), "%s", body)
	return ev
}

func param(t *testing.T, ps []pair, key string, out any) {
	t.Helper()
	for _, p := range ps {
		if p.Key == key {
			require.NoError(t, json.Unmarshal(p.Value, out), "%s: %s", key, p.Value)
			return
		}
	}
	t.Fatalf("no %s in %v", key, ps)
}

func (e entity) keys() []string {
	out := make([]string, len(e.Attributes))
	for i, a := range e.Attributes {
		out[i] = a.Key
	}
	return out
}

func (e entity) raw(key string) string {
	for _, a := range e.Attributes {
		if a.Key == key {
			return string(a.Value)
		}
	}
	return "<absent>"
}

func (e entity) formatted(key string) string {
	for _, a := range e.FormattedValues {
		if a.Key == key {
			var s string
			_ = json.Unmarshal(a.Value, &s)
			return s
		}
	}
	return ""
}

func TestEventCreateCarriesTheRemoteExecutionContext(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{OrganizationName: "contoso"})
	hook := newReceiver(t)
	endpoint := c.webhook(hook.URL+"/api/events?tenant=a", 4, "function-key")
	step := c.step(endpoint, "Create", "csp_widget", "")
	parent := c.create("csp_widgets", map[string]any{"csp_name": "parent"})
	wait(t, srv)
	srv.ResetDeliveries()
	hook.mu.Lock()
	hook.got = nil
	hook.mu.Unlock()

	id := c.create("csp_widgets", map[string]any{"csp_name": "Gizmo", "csp_status": 100000001, "csp_price": 12.5,
		"csp_due": "2026-04-01T12:00:00Z", "csp_count": 3, "csp_flag": true, "csp_parent@odata.bind": "/csp_widgets(" + parent + ")"})
	wait(t, srv)

	got := hook.received()
	require.Len(t, got, 1)
	r := got[0]
	assert.Equal(t, "function-key", r.query.Get("code"), "authtype 4 sends the key as ?code=")
	assert.Equal(t, "a", r.query.Get("tenant"), "the URL's own query stays")
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, strings.TrimPrefix(srv.URL, "http://"), r.header.Get("x-ms-dynamics-organization"))
	assert.Equal(t, "csp_widget", r.header.Get("x-ms-dynamics-entity-name"))
	assert.Equal(t, "Create", r.header.Get("x-ms-dynamics-request-name"))
	assert.Empty(t, r.header.Values("x-ms-dynamics-msg-size-exceeded"))
	assert.Contains(t, string(r.body), `"OperationCreatedOn":"\/Date(`, "slashes are escaped as WCF writes them")

	ev := decodeEvent(t, r.body)
	who := c.get("WhoAmI")
	assert.Equal(t, r.header.Get("x-ms-correlation-request-id"), ev.CorrelationID)
	assert.Equal(t, who["BusinessUnitId"], ev.BusinessUnitID)
	assert.Equal(t, who["OrganizationId"], ev.OrganizationID)
	assert.Equal(t, who["UserId"], ev.UserID)
	assert.Equal(t, who["UserId"], ev.InitiatingUserID)
	assert.Equal(t, "contoso", ev.OrganizationName)
	assert.Equal(t, "Create", ev.MessageName)
	assert.Equal(t, 1, ev.Depth)
	assert.Equal(t, 1, ev.Mode)
	assert.Equal(t, 40, ev.Stage)
	assert.Equal(t, "/Date("+strconv.FormatInt(eventClock.UnixMilli(), 10)+")/", ev.OperationCreatedOn)
	assert.NotEmpty(t, ev.OperationID)
	require.NotNil(t, ev.RequestID)
	assert.Equal(t, "csp_widget", ev.PrimaryEntityName)
	assert.Equal(t, id, ev.PrimaryEntityID)
	assert.Equal(t, "none", ev.SecondaryEntityName)
	assert.Equal(t, step, ev.OwningExtension.ID)
	assert.Equal(t, "sdkmessageprocessingstep", ev.OwningExtension.LogicalName)
	var newID string
	param(t, ev.OutputParameters, "id", &newID)
	assert.Equal(t, id, newID)
	assert.NotNil(t, ev.SharedVariables)
	require.NotNil(t, ev.ParentContext)
	assert.Equal(t, 30, ev.ParentContext.Stage)

	var target entity
	param(t, ev.InputParameters, "Target", &target)
	assert.Equal(t, "Entity:http://schemas.microsoft.com/xrm/2011/Contracts", target.Type)
	assert.Equal(t, id, target.ID)
	assert.Equal(t, "csp_widget", target.LogicalName)
	assert.Subset(t, target.keys(), []string{"csp_name", "csp_status", "csp_price", "csp_due", "csp_count", "csp_flag", "csp_parent",
		"csp_widgetid", "statecode", "statuscode", "createdon", "modifiedon", "createdby", "modifiedby"})
	assert.NotContains(t, target.keys(), "csp_notes", "a Create carries what was set")
	assert.Equal(t, `"Gizmo"`, target.raw("csp_name"))
	assert.Equal(t, `3`, target.raw("csp_count"))
	assert.Equal(t, `true`, target.raw("csp_flag"))
	assert.Equal(t, `"`+id+`"`, target.raw("csp_widgetid"))
	var status, price typed
	require.NoError(t, json.Unmarshal([]byte(target.raw("csp_status")), &status))
	assert.Equal(t, typed{Type: "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", Value: "100000001"}, status)
	assert.Equal(t, "Closed", target.formatted("csp_status"))
	require.NoError(t, json.Unmarshal([]byte(target.raw("csp_price")), &price))
	assert.Equal(t, typed{Type: "Money:http://schemas.microsoft.com/xrm/2011/Contracts", Value: "12.5"}, price)
	due := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	var dueText string
	require.NoError(t, json.Unmarshal([]byte(target.raw("csp_due")), &dueText))
	assert.Equal(t, "/Date("+strconv.FormatInt(due.UnixMilli(), 10)+")/", dueText)
	var lookup, createdBy entityRef
	require.NoError(t, json.Unmarshal([]byte(target.raw("csp_parent")), &lookup))
	assert.Equal(t, entityRef{Type: "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", ID: parent, LogicalName: "csp_widget"}, lookup)
	require.NoError(t, json.Unmarshal([]byte(target.raw("createdby")), &createdBy))
	assert.Equal(t, who["UserId"], createdBy.ID)
	assert.Equal(t, "systemuser", createdBy.LogicalName)
	assert.Equal(t, "null", target.raw("modifiedonbehalfby"))

	d := srv.Deliveries()
	require.Len(t, d, 1)
	assert.True(t, d[0].Delivered(), d[0].Err)
	assert.Equal(t, 1, d[0].Attempts)
	assert.Equal(t, http.StatusOK, d[0].StatusCode)
	assert.Equal(t, "Create of csp_widget", d[0].Step)
	assert.Equal(t, "Create", d[0].Message)
	assert.Equal(t, "csp_widget", d[0].Table)
	assert.Equal(t, id, d[0].RowID.String())
	assert.Equal(t, 8, d[0].Contract)
	assert.Equal(t, eventClock, d[0].Time)
	assert.NotContains(t, string(d[0].Body), "function-key")
}

func TestEventUpdateHonoursFilteringAttributes(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	c.step(c.webhook(hook.URL, 4, "k"), "Update", "csp_widget", "csp_status, CSP_Count")
	id := c.create("csp_widgets", map[string]any{"csp_name": "Gizmo"})

	c.patch("csp_widgets("+id+")", map[string]any{"csp_name": "renamed", "csp_flag": true})
	wait(t, srv)
	assert.Empty(t, hook.received(), "an update of unfiltered columns raises nothing; neither does the Create")

	c.patch("csp_widgets("+id+")", map[string]any{"csp_status": 100000000, "csp_name": "again"})
	c.patch("csp_widgets("+id+")", map[string]any{"csp_count": 7})
	wait(t, srv)
	got := hook.received()
	require.Len(t, got, 2)
	ev := decodeEvent(t, got[0].body)
	assert.Equal(t, "Update", ev.MessageName)
	var target entity
	param(t, ev.InputParameters, "Target", &target)
	assert.Subset(t, target.keys(), []string{"csp_name", "csp_status", "csp_widgetid", "modifiedon", "modifiedby", "modifiedonbehalfby"})
	assert.NotContains(t, target.keys(), "csp_flag", "an Update carries only the columns written")
	assert.NotContains(t, target.keys(), "createdon")
	assert.Empty(t, ev.OutputParameters)
	ev2 := decodeEvent(t, got[1].body)
	param(t, ev2.InputParameters, "Target", &target)
	assert.Equal(t, "7", target.raw("csp_count"))

	// An upsert that updates is an Update; a disabled step raises nothing.
	c.patch("csp_widgets("+id+")", map[string]any{"csp_status": 100000001}, "If-Match", "")
	wait(t, srv)
	assert.Len(t, hook.received(), 3)
	for _, r := range srv.Rows("sdkmessageprocessingstep") {
		c.patch("sdkmessageprocessingsteps("+r["sdkmessageprocessingstepid"].(string)+")", map[string]any{"statecode": 1})
	}
	c.patch("csp_widgets("+id+")", map[string]any{"csp_status": 100000000})
	wait(t, srv)
	assert.Len(t, hook.received(), 3)
}

func TestEventDeleteCarriesAReferenceAndThePreImage(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	step := c.step(c.webhook(hook.URL, 4, "k"), "Delete", "csp_widget", "")
	c.image(step, "gone", 0, "csp_name,csp_count")
	id := c.create("csp_widgets", map[string]any{"csp_name": "Gizmo", "csp_count": 2, "csp_flag": false})

	res := c.do(http.MethodDelete, "csp_widgets("+id+")", nil)
	require.Equal(t, http.StatusNoContent, res.status)
	wait(t, srv)
	got := hook.received()
	require.Len(t, got, 1)
	assert.Equal(t, "Delete", got[0].header.Get("x-ms-dynamics-request-name"))
	ev := decodeEvent(t, got[0].body)
	assert.Equal(t, "Delete", ev.MessageName)
	assert.Equal(t, id, ev.PrimaryEntityID)
	var target entityRef
	param(t, ev.InputParameters, "Target", &target)
	assert.Equal(t, entityRef{Type: "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", ID: id, LogicalName: "csp_widget"}, target)
	var pre entity
	param(t, ev.PreEntityImages, "gone", &pre)
	assert.ElementsMatch(t, []string{"csp_name", "csp_count"}, pre.keys())
	assert.Equal(t, `"Gizmo"`, pre.raw("csp_name"))
	assert.Empty(t, ev.PostEntityImages, "nothing is left after a Delete")
}

func TestEventImagesHoldTheirAttributes(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	step := c.step(c.webhook(hook.URL, 4, "k"), "Update", "csp_widget", "")
	c.image(step, "before", 0, "csp_status,csp_count")
	c.image(step, "both", 2, "")
	id := c.create("csp_widgets", map[string]any{"csp_name": "Gizmo", "csp_status": 100000000, "csp_count": 1})
	c.patch("csp_widgets("+id+")", map[string]any{"csp_status": 100000001, "csp_count": 2})
	wait(t, srv)

	got := hook.received()
	require.Len(t, got, 1)
	ev := decodeEvent(t, got[0].body)
	var before, preBoth, postBoth, primary entity
	param(t, ev.PreEntityImages, "before", &before)
	assert.ElementsMatch(t, []string{"csp_status", "csp_count"}, before.keys())
	assert.Equal(t, "1", before.raw("csp_count"))
	assert.Equal(t, "Open", before.formatted("csp_status"))
	assert.Empty(t, before.Type, "images carry no __type")
	param(t, ev.PreEntityImages, "both", &preBoth)
	param(t, ev.PostEntityImages, "both", &postBoth)
	assert.Equal(t, "1", preBoth.raw("csp_count"))
	assert.Equal(t, "2", postBoth.raw("csp_count"))
	assert.Equal(t, `"Gizmo"`, postBoth.raw("csp_name"), "an image without attributes has every column")
	assert.NotContains(t, postBoth.keys(), "csp_notes", "null columns are left out")
	param(t, ev.PostEntityImages, "AsynchronousStepPrimaryName", &primary)
	assert.ElementsMatch(t, []string{"csp_name", "csp_widgetid"}, primary.keys())
}

func TestEventsOfAChangeSetAreRaisedOnlyIfItCommits(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	c.step(c.webhook(hook.URL, 4, "k"), "Create", "csp_widget", "")
	create := func(name string) batchOp {
		return batchOp{method: http.MethodPost, url: "csp_widgets", body: `{"csp_name":"` + name + `"}`}
	}
	bad := batchOp{method: http.MethodPost, url: "csp_widgets", body: `{"csp_name":"bad","csp_nosuch":1}`}

	res, parts := c.batch(batchBody(changeSet{create("A"), create("B")}, create("C")))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, []int{204, 204, 204}, statuses(parts))
	wait(t, srv)
	got := hook.received()
	require.Len(t, got, 3)
	var names []string
	for _, r := range got {
		ev := decodeEvent(t, r.body)
		var target entity
		param(t, ev.InputParameters, "Target", &target)
		names = append(names, target.raw("csp_name"))
		assert.Equal(t, decodeEvent(t, got[0].body).CorrelationID, ev.CorrelationID, "one batch, one correlation")
	}
	assert.Equal(t, []string{`"A"`, `"B"`, `"C"`}, names, "one endpoint's events arrive in order")

	ctype, body := batchBody(changeSet{create("D"), bad})
	res, _ = c.batch(ctype, body, "Prefer", "odata.continue-on-error")
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res, _ = c.batch(batchBody(create("E")))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	wait(t, srv)
	got = hook.received()
	require.Len(t, got, 4, "the rolled-back change set raised nothing")
	var target entity
	param(t, decodeEvent(t, got[3].body).InputParameters, "Target", &target)
	assert.Equal(t, `"E"`, target.raw("csp_name"))
}

func TestEventOfAnImpersonatedWriteNamesTheCaller(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	c.step(c.webhook(hook.URL, 4, "k"), "Create", "csp_widget", "")
	userID, err := srv.Insert("systemuser", map[string]any{"fullname": "Ada Lovelace", "azureactivedirectoryobjectid": "6f1c2c84-67b5-4f4e-b6ef-0d7f0b3a2e11"})
	require.NoError(t, err)
	user, _ := dataverse.ParseGUID(userID)

	as := webAPI{t: t, url: srv.URL, http: srv.ClientAs(user)}
	assert.Equal(t, userID, as.get("WhoAmI")["UserId"], "WhoAmI answers for the impersonated user")
	as.create("csp_widgets", map[string]any{"csp_name": "by Ada"})
	c.create("csp_widgets", map[string]any{"csp_name": "by objectid"}) // not impersonated
	res := c.do(http.MethodPost, "csp_widgets", map[string]any{"csp_name": "x"}, "CallerObjectId", "6F1C2C84-67B5-4F4E-B6EF-0D7F0B3A2E11")
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	ctype, body := batchBody(batchOp{method: http.MethodPost, url: "csp_widgets", body: `{"csp_name":"batch"}`})
	bres, _ := c.batch(ctype, body, dataversetest.CallerIDHeader, userID)
	require.Equal(t, http.StatusOK, bres.status)
	wait(t, srv)

	got := hook.received()
	require.Len(t, got, 4)
	app := srv.UserID().String()
	for i, want := range []string{userID, app, userID, userID} {
		ev := decodeEvent(t, got[i].body)
		assert.Equal(t, want, ev.InitiatingUserID, "event %d", i)
		assert.Equal(t, want, ev.UserID, "event %d", i)
		var target entity
		param(t, ev.InputParameters, "Target", &target)
		var by entityRef
		require.NoError(t, json.Unmarshal([]byte(target.raw("modifiedby")), &by))
		assert.Equal(t, want, by.ID)
		if want == userID {
			var onBehalf entityRef
			require.NoError(t, json.Unmarshal([]byte(target.raw("modifiedonbehalfby")), &onBehalf))
			assert.Equal(t, app, onBehalf.ID, "the application user acted on behalf")
		}
	}

	res = c.do(http.MethodPost, "csp_widgets", map[string]any{"csp_name": "x"}, dataversetest.CallerIDHeader, "00000000-0000-0000-0000-000000000001")
	assert.Equal(t, http.StatusNotFound, res.status, "the impersonated user must exist")
}

func TestEventWebhookAuthenticationHeaders(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	c.step(c.webhook(hook.URL, 5, `<settings><setting name="x-api-key" value="s&amp;cret" /><setting name="x-tenant" value="t1" /></settings>`), "Create", "csp_widget", "")
	c.create("csp_widgets", map[string]any{"csp_name": "Gizmo"})
	wait(t, srv)
	got := hook.received()
	require.Len(t, got, 1)
	assert.Equal(t, "s&cret", got[0].header.Get("x-api-key"))
	assert.Equal(t, "t1", got[0].header.Get("x-tenant"))
	assert.Empty(t, got[0].query)
}

func TestEventWebhookRetriesOnceOnGatewayErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		statuses  []int
		attempts  int
		delivered bool
	}{
		{"503 then 200", []int{503, 200}, 2, true},
		{"502 twice", []int{502, 502}, 2, false},
		{"504 then 500", []int{504, 500}, 2, false},
		{"500", []int{500}, 1, false},
		{"401", []int{401}, 1, false},
		{"202", []int{202}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, c := startEventServer(t, dataversetest.Options{})
			hook := newReceiver(t, tc.statuses...)
			c.step(c.webhook(hook.URL, 4, "k"), "Create", "csp_widget", "")
			c.create("csp_widgets", map[string]any{"csp_name": "Gizmo"})
			wait(t, srv)
			d := srv.Deliveries()
			require.Len(t, d, 1)
			assert.Equal(t, tc.attempts, d[0].Attempts)
			assert.Equal(t, tc.delivered, d[0].Delivered(), d[0].Err)
			assert.Equal(t, tc.statuses[tc.attempts-1], d[0].StatusCode)
			assert.Len(t, hook.received(), tc.attempts)
		})
	}
}

func TestEventWriteDoesNotWaitForTheWebhook(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	hook.block = make(chan struct{})
	c.step(c.webhook(hook.URL, 4, "k"), "Create", "csp_widget", "")
	c.create("csp_widgets", map[string]any{"csp_name": "one"})
	c.create("csp_widgets", map[string]any{"csp_name": "two"})

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := srv.WaitDeliveries(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the webhook is still busy: the writes returned without it")
	close(hook.block)
	wait(t, srv)
	assert.Len(t, srv.Deliveries(), 2)
}

func TestEventCloseAbandonsDeliveries(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	hook.block = make(chan struct{})
	defer close(hook.block)
	c.step(c.webhook(hook.URL, 4, "k"), "Create", "csp_widget", "")
	c.create("csp_widgets", map[string]any{"csp_name": "one"})
	c.create("csp_widgets", map[string]any{"csp_name": "two"})
	srv.Close()
	d := srv.Deliveries()
	require.Len(t, d, 2)
	for _, x := range d {
		assert.False(t, x.Delivered())
	}
}

func TestEventOverTheSizeLimitIsCut(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var props []map[string]any
	srv, c := startEventServer(t, dataversetest.Options{ServiceBusDelivery: func(_ context.Context, _ dataversetest.ServiceBusTarget, _ []byte, p map[string]any) error {
		mu.Lock()
		defer mu.Unlock()
		props = append(props, p)
		return nil
	}})
	hook := newReceiver(t)
	c.step(c.webhook(hook.URL, 4, "k"), "Update", "csp_widget", "")
	queue := c.create("serviceendpoints", map[string]any{"name": "queue", "contract": 2, "messageformat": 2, "authtype": 2,
		"namespaceaddress": "sb://contoso.servicebus.windows.net/", "path": "events", "saskeyname": "send", "saskey": "key"})
	c.step(queue, "Update", "csp_widget", "")
	id := c.create("csp_widgets", map[string]any{"csp_name": "Gizmo"})

	c.patch("csp_widgets("+id+")", map[string]any{"csp_notes": strings.Repeat("x", 100*1024)}) // over 192 KB with the parent context
	wait(t, srv)
	got := hook.received()
	require.Len(t, got, 1)
	assert.Empty(t, got[0].header.Values("x-ms-dynamics-msg-size-exceeded"), "under 256 KB a webhook gets it all")
	mu.Lock()
	require.Len(t, props, 1)
	assert.Equal(t, true, props[0][dataversetest.PropertyMessageMaxSizeExceeded], "over 192 KB Service Bus gets it cut")
	mu.Unlock()

	c.patch("csp_widgets("+id+")", map[string]any{"csp_notes": strings.Repeat("y", 200*1024)})
	wait(t, srv)
	got = hook.received()
	require.Len(t, got, 2)
	assert.Equal(t, "true", got[1].header.Get("x-ms-dynamics-msg-size-exceeded"))
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(got[1].body, &raw))
	for _, dropped := range []string{"ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"} {
		assert.Equal(t, "null", string(raw[dropped]), dropped)
	}
	ev := decodeEvent(t, got[1].body)
	assert.Equal(t, id, ev.PrimaryEntityID, "the row can be read again")
	assert.Equal(t, "csp_widget", ev.PrimaryEntityName)
	assert.Less(t, len(got[1].body), 256*1024)
	for _, d := range srv.Deliveries()[2:] {
		assert.True(t, d.Truncated, d.Endpoint)
	}
}

func TestEventServiceBusEndpoints(t *testing.T) {
	t.Parallel()
	type sent struct {
		target dataversetest.ServiceBusTarget
		body   []byte
		props  map[string]any
	}
	var mu sync.Mutex
	var got []sent
	fail := errors.New("namespace unreachable")
	srv, c := startEventServer(t, dataversetest.Options{ServiceBusDelivery: func(ctx context.Context, target dataversetest.ServiceBusTarget, body []byte, props map[string]any) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, sent{target, body, props})
		if target.Path == "broken" {
			return fail
		}
		return nil
	}})
	endpoint := func(name string, contract, format int, path string) string {
		return c.create("serviceendpoints", map[string]any{"name": name, "contract": contract, "messageformat": format, "authtype": 2,
			"namespaceaddress": "sb://contoso.servicebus.windows.net/", "path": path, "saskeyname": "send", "saskey": "key"})
	}
	c.step(endpoint("queue", 2, 2, "events"), "Create", "csp_widget", "")
	c.step(endpoint("topic", 5, 2, "broken"), "Create", "csp_widget", "")
	c.step(endpoint("xml", 2, 3, "xml"), "Create", "csp_widget", "")
	id := c.create("csp_widgets", map[string]any{"csp_name": "Gizmo"})
	wait(t, srv)

	mu.Lock()
	require.Len(t, got, 2, "the XML endpoint is not sent to")
	q := got[0]
	if q.target.Path != "events" {
		q = got[1]
	}
	mu.Unlock()
	assert.Equal(t, dataversetest.ServiceBusTarget{Endpoint: "queue", Contract: 2, NamespaceAddress: "sb://contoso.servicebus.windows.net/", Path: "events", SASKeyName: "send"}, q.target)
	app := srv.UserID().String()
	assert.Equal(t, map[string]any{
		dataversetest.ClaimOrganization:      strings.TrimPrefix(srv.URL, "http://"),
		dataversetest.ClaimUser:              app,
		dataversetest.ClaimInitiatingUser:    app,
		dataversetest.ClaimEntityLogicalName: "csp_widget",
		dataversetest.ClaimRequestName:       "Create",
	}, q.props)
	assert.Equal(t, id, decodeEvent(t, q.body).PrimaryEntityID)

	byEndpoint := map[string]dataversetest.Delivery{}
	for _, d := range srv.Deliveries() {
		byEndpoint[d.Endpoint] = d
	}
	assert.True(t, byEndpoint["queue"].Delivered())
	assert.Equal(t, "namespace unreachable", byEndpoint["topic"].Err)
	assert.Contains(t, byEndpoint["xml"].Err, "message format 3 is not simulated")

	// Without a Service Bus hook the delivery fails and says why.
	bare, c2 := startEventServer(t, dataversetest.Options{})
	c2.step(c2.create("serviceendpoints", map[string]any{"name": "queue", "contract": 2, "messageformat": 2}), "Create", "csp_widget", "")
	c2.create("csp_widgets", map[string]any{"csp_name": "Gizmo"})
	wait(t, bare)
	d := bare.Deliveries()
	require.Len(t, d, 1)
	assert.Contains(t, d[0].Err, "no Service Bus in the simulator")
}

func TestRegistrationTablesBehaveLikeDataverse(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	endpoint := c.webhook("https://x.example.com", 4, "secret")

	t.Run("secrets are write-only", func(t *testing.T) {
		row := c.get("serviceendpoints(" + endpoint + ")")
		assert.Nil(t, row["authvalue"])
		assert.Equal(t, true, row["isauthvalueset"])
		assert.Equal(t, false, row["issaskeyset"])
	})
	t.Run("a polymorphic lookup is bound through its typed navigation property", func(t *testing.T) {
		res := c.do(http.MethodPost, "sdkmessageprocessingsteps", map[string]any{"name": "s", "eventhandler@odata.bind": "/serviceendpoints(" + endpoint + ")"})
		assert.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
		res = c.do(http.MethodPost, "sdkmessageprocessingsteps", map[string]any{"name": "s", "EventHandler_ServiceEndpoint@odata.bind": "/serviceendpoints(" + endpoint + ")"})
		assert.Equal(t, http.StatusBadRequest, res.status, "navigation property names are lowercase: %s", res.body)
	})
	t.Run("filters exist for tables created later", func(t *testing.T) {
		dv, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
		require.NoError(t, err)
		require.NoError(t, dv.CreateTable(t.Context(), dataverse.Table{LogicalName: "csp_late", EntitySetName: "csp_lates", DisplayName: "Late",
			PrimaryName: dataverse.Column{LogicalName: "csp_name", Type: dataverse.TypeString, MaxLength: 100}}, ""))
		msg := c.id("sdkmessages", "name eq 'Update'", "sdkmessageid")
		c.id("sdkmessagefilters", "_sdkmessageid_value eq "+msg+" and primaryobjecttypecode eq 'csp_late'", "sdkmessagefilterid")
	})
	t.Run("deleting an endpoint deletes its steps and their images", func(t *testing.T) {
		step := c.step(endpoint, "Update", "csp_widget", "")
		c.image(step, "pre", 0, "")
		res := c.do(http.MethodDelete, "serviceendpoints("+endpoint+")", nil)
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Empty(t, srv.Rows("sdkmessageprocessingstep"))
		assert.Empty(t, srv.Rows("sdkmessageprocessingstepimage"))
	})
}
