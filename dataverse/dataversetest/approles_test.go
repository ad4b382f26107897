package dataversetest_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
)

// TestAppModuleRoles: a role is associated with an app through appmoduleroles_association/$ref and read
// back through the relationship; associating it again changes nothing; an unknown app, an unknown role and
// a row that is not a role are refused; the intersect table is read-only.
func TestAppModuleRoles(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	bu := c.get("businessunits")["value"].([]any)[0].(map[string]any)["businessunitid"].(string)
	role := c.create("roles", map[string]any{"name": "Readers", "businessunitid@odata.bind": "/businessunits(" + bu + ")"})
	app := c.create("appmodules", map[string]any{"name": "App", "uniquename": "csp_App", "webresourceid": dataverse.DefaultAppIconID})
	ref := map[string]any{"@odata.id": srv.URL + dataverse.APIPath + "roles(" + role + ")"}

	for range 2 {
		res := c.do(http.MethodPost, "appmodules("+app+")/appmoduleroles_association/$ref", ref)
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	}
	roles := c.get("appmodules(" + app + ")/appmoduleroles_association?$select=roleid,name")["value"].([]any)
	require.Len(t, roles, 1, "associated once")
	assert.Equal(t, role, roles[0].(map[string]any)["roleid"])
	assert.Equal(t, "Readers", roles[0].(map[string]any)["name"])
	assert.Equal(t, []string{"Readers"}, srv.AppRoles(uuid.MustParse(app)))
	assert.Len(t, srv.Rows("appmoduleroles"), 1)

	nosuch := "00000000-0000-0000-0000-0000000000aa"
	res := c.do(http.MethodPost, "appmodules("+nosuch+")/appmoduleroles_association/$ref", ref)
	assert.Equal(t, http.StatusNotFound, res.status, "an unknown app: %s", res.body)
	res = c.do(http.MethodPost, "appmodules("+app+")/appmoduleroles_association/$ref", map[string]any{"@odata.id": srv.URL + dataverse.APIPath + "roles(" + nosuch + ")"})
	assert.Equal(t, http.StatusNotFound, res.status, "an unknown role: %s", res.body)
	res = c.do(http.MethodPost, "appmodules("+app+")/appmoduleroles_association/$ref", map[string]any{"@odata.id": srv.URL + dataverse.APIPath + "businessunits(" + bu + ")"})
	assert.Equal(t, http.StatusBadRequest, res.status, "not a role: %s", res.body)
	res = c.do(http.MethodPost, "appmodulerolescollection", map[string]any{"appmoduleid": app, "roleid": role})
	assert.Equal(t, http.StatusMethodNotAllowed, res.status, "the intersect table is read-only: %s", res.body)
}

// TestAppActionBelongsToAnApp: a button is created in an app through the navigation property
// AppModuleId, served as _appmoduleid_value; an app that does not exist is refused.
func TestAppActionBelongsToAnApp(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	wr := c.create("webresourceset", map[string]any{"name": "csp_/scripts/x.js", "displayname": "X", "webresourcetype": 3, "content": "dmFyIFggPSB7fTs="})
	app := c.create("appmodules", map[string]any{"name": "App", "uniquename": "csp_App", "webresourceid": dataverse.DefaultAppIconID})
	action := map[string]any{"uniquename": "csp_job_runnow", "name": "csp_job_runnow", "buttonlabeltext": "Run Now", "context": 1, "contextvalue": "csp_job",
		"location": 0, "type": 0, "onclickeventtype": 2, "onclickeventjavascriptfunctionname": "X.run", "onclickeventjavascriptparameters": `[{"type":5}]`,
		"OnClickEventJavaScriptWebResourceId@odata.bind": "/webresourceset(" + wr + ")", "AppModuleId@odata.bind": "/appmodules(" + app + ")"}
	id := c.create("appactions", action)
	assert.Equal(t, app, c.get("appactions(" + id + ")?$select=_appmoduleid_value")["_appmoduleid_value"])

	unknown := clone(action)
	unknown["uniquename"] = "csp_job_elsewhere"
	unknown["AppModuleId@odata.bind"] = "/appmodules(00000000-0000-0000-0000-0000000000aa)"
	res := c.do(http.MethodPost, "appactions", unknown)
	assert.Equal(t, http.StatusNotFound, res.status, "an unknown app: %s", res.body)
}

// TestCreateInASolution: a solution-aware row created with MSCRM.SolutionUniqueName is a component of
// that solution; an unknown solution is refused.
func TestCreateInASolution(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	publisher := c.create("publishers", map[string]any{"uniquename": "examplepublisher", "friendlyname": "Example", "customizationprefix": "new", "customizationoptionvalueprefix": 72700})
	solution := c.create("solutions", map[string]any{"uniquename": "examplesolution", "friendlyname": "Example", "publisherid@odata.bind": "/publishers(" + publisher + ")"})
	res := c.do(http.MethodPost, "fieldsecurityprofiles", map[string]any{"name": "Secrets"}, "MSCRM.SolutionUniqueName", "examplesolution")
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	profile := entityID(t, res.header.Get("OData-EntityId"))
	comps := srv.Rows("solutioncomponent")
	require.Len(t, comps, 1)
	assert.Equal(t, profile, comps[0]["objectid"])
	assert.Equal(t, int64(70), comps[0]["componenttype"])
	assert.Equal(t, solution, comps[0]["solutionid"])

	res = c.do(http.MethodPost, "fieldsecurityprofiles", map[string]any{"name": "Other"}, "MSCRM.SolutionUniqueName", "nosuchsolution")
	assert.Equal(t, http.StatusNotFound, res.status, "an unknown solution: %s", res.body)
	assert.Len(t, srv.Rows("fieldsecurityprofile"), 1)
}
