package dataversetest_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
)

func widget(name string) map[string]any {
	return map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.csp_widget", "csp_name": name}
}

func TestBulkMessagesWriteEveryTargetAndRaiseEventsPerRow(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{OrganizationName: "contoso"})
	hook := newReceiver(t)
	endpoint := c.webhook(hook.URL, 4, "k")
	c.step(endpoint, "Create", "csp_widget", "")
	c.step(endpoint, "Update", "csp_widget", "")
	srv.ResetRequests()

	res := c.do(http.MethodPost, "csp_widgets/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{widget("a"), widget("b")}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	ids := res.json(t)["Ids"].([]any)
	require.Len(t, ids, 2)
	assert.Equal(t, "a", c.get("csp_widgets(" + ids[0].(string) + ")")["csp_name"])
	assert.Equal(t, "b", c.get("csp_widgets(" + ids[1].(string) + ")")["csp_name"])

	update := func(id, name string) map[string]any {
		w := widget(name)
		w["csp_widgetid"] = id
		return w
	}
	res = c.do(http.MethodPost, "csp_widgets/Microsoft.Dynamics.CRM.UpdateMultiple", map[string]any{"Targets": []any{update(ids[0].(string), "a2"), update(ids[1].(string), "b2")}})
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	assert.Equal(t, "b2", c.get("csp_widgets(" + ids[1].(string) + ")")["csp_name"])

	upsert := widget("c")
	upsert["@odata.id"] = "csp_widgets(" + ids[0].(string) + ")"
	res = c.do(http.MethodPost, "csp_widgets/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []any{upsert}})
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	assert.Empty(t, res.body, "UpsertMultiple answers 204 with no body")
	assert.Equal(t, "c", c.get("csp_widgets(" + ids[0].(string) + ")")["csp_name"])

	wait(t, srv)
	var messages []string
	for _, r := range hook.received() {
		messages = append(messages, decodeEvent(t, r.body).MessageName)
	}
	assert.Equal(t, []string{"Create", "Create", "Update", "Update", "Update"}, messages, "the per-row events of single writes")

	bulk := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodPost && r.Path != "" && !r.InBatch {
			bulk++
		}
	}
	assert.Equal(t, 3, bulk, "each bulk message is one request in the log, whatever its targets")
}

func TestBulkMessageRollsBackOnAFailingTarget(t *testing.T) {
	t.Parallel()
	srv, c := startEventServer(t, dataversetest.Options{})
	hook := newReceiver(t)
	c.step(c.webhook(hook.URL, 4, "k"), "Create", "csp_widget", "")

	bad := widget("b")
	bad["csp_nothere"] = 1
	res := c.do(http.MethodPost, "csp_widgets/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{widget("a"), bad, widget("c")}})
	require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	_, msg := res.apiError(t)
	assert.Contains(t, msg, "Targets[1]")
	assert.Contains(t, msg, "csp_nothere")
	assert.Empty(t, srv.Rows("csp_widget"), "the first target was rolled back")

	untyped := widget("d")
	delete(untyped, "@odata.type")
	res = c.do(http.MethodPost, "csp_widgets/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{widget("a"), untyped}})
	require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	_, msg = res.apiError(t)
	assert.Contains(t, msg, "@odata.type")
	assert.Empty(t, srv.Rows("csp_widget"))

	missing := widget("e")
	missing["csp_widgetid"] = "00000000-0000-0000-0000-000000000001"
	id := c.create("csp_widgets", map[string]any{"csp_name": "kept"})
	exists := widget("changed")
	exists["csp_widgetid"] = id
	res = c.do(http.MethodPost, "csp_widgets/Microsoft.Dynamics.CRM.UpdateMultiple", map[string]any{"Targets": []any{exists, missing}})
	require.Equal(t, http.StatusNotFound, res.status, "UpdateMultiple does not create: %s", res.body)
	assert.Equal(t, "kept", c.get("csp_widgets(" + id + ")")["csp_name"], "the update of the first target was rolled back")

	wait(t, srv)
	assert.Len(t, hook.received(), 1, "only the single create raised an event")
}

func TestBulkMessagesUpsertByAlternateKeyAndSupportIsListed(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	provider := c.create("csp_providers", map[string]any{"csp_name": "Partner Center"})
	account := func(tenant, name string) map[string]any {
		return map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.csp_provideraccount", "csp_name": name,
			"@odata.id": "csp_provideraccounts(_csp_provider_value=" + provider + ",csp_tenantid='" + tenant + "')"}
	}
	res := c.do(http.MethodPost, "csp_provideraccounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []any{account("t1", "one"), account("t2", "two")}})
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	res = c.do(http.MethodPost, "csp_provideraccounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []any{account("T1", "one again"), account("t3", "three")}})
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	rows := srv.Rows("csp_provideraccount")
	require.Len(t, rows, 3, "t1 was updated (keys match case-insensitively), t3 created")
	names := column(rows, "csp_name")
	assert.ElementsMatch(t, []any{"one again", "two", "three"}, names)

	supported := func(message, table string) bool {
		msg := c.id("sdkmessages", "name eq '"+message+"'", "sdkmessageid")
		return len(values(t, c.get("sdkmessagefilters"+query("$select", "sdkmessagefilterid",
			"$filter", "_sdkmessageid_value eq "+msg+" and primaryobjecttypecode eq '"+table+"'")))) > 0
	}
	for _, m := range []string{"CreateMultiple", "UpdateMultiple", "UpsertMultiple"} {
		assert.True(t, supported(m, "csp_provideraccount"), "custom tables support %s", m)
		assert.True(t, supported(m, "account"), "account supports %s", m)
		assert.False(t, supported(m, "systemuser"), "systemuser does not support %s (the simulator's choice)", m)
	}
	res = c.do(http.MethodPost, "teams/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.team", "name": "x"}}})
	assert.Equal(t, http.StatusBadRequest, res.status, "a table without the message refuses it: %s", res.body)
	assert.Empty(t, srv.Rows("team"))
}

func TestBulkMessageCountsAsOneRequestForServiceProtection(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	srv.SetLimits(dataversetest.Limits{Requests: 5, Window: time.Minute})
	providers := func(n int) map[string]any {
		var targets []any
		for i := range n {
			targets = append(targets, map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.csp_provider", "csp_name": fmt.Sprint(i)})
		}
		return map[string]any{"Targets": targets}
	}
	for i := range 5 {
		res := c.do(http.MethodPost, "csp_providers/Microsoft.Dynamics.CRM.CreateMultiple", providers(10))
		require.Equal(t, http.StatusOK, res.status, "call %d of 10 rows is one request: %s", i+1, res.body)
	}
	assert.Len(t, srv.Rows("csp_provider"), 50)
	assert.Equal(t, http.StatusTooManyRequests, c.do(http.MethodPost, "csp_providers/Microsoft.Dynamics.CRM.CreateMultiple", providers(1)).status, "the 6th request")
}
