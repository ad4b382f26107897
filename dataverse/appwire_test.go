package dataverse_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// The joins between the app's slices: the command buttons belong to the app, every role may use it, and
// the roles and the field security profile are in the solution.

// TestInstallPutsTheButtonsInTheApp: the app module is created before the buttons, and each button is
// created in it (appmoduleid, which Dataverse takes only at creation); a button outside the app, made by
// an earlier installer or in another app, is recreated in it.
func TestInstallPutsTheButtonsInTheApp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()

	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	summaries := plan.Summaries()
	createApp := slices.Index(summaries, "create app csp_CSPConnector (CSP Connector)")
	require.GreaterOrEqual(t, createApp, 0)
	for i, sum := range summaries {
		if strings.HasPrefix(sum, "create command ") {
			assert.Greater(t, i, createApp, "the app exists before its button: %s", sum)
		}
	}
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	appID := theRow(t, srv, "appmodule")["appmoduleid"]
	actions := srv.Rows("appaction")
	require.Len(t, actions, len(s.App.Commands))
	for _, a := range actions {
		assert.Equal(t, appID, a["appmoduleid"], "%s belongs to the app", a["uniquename"])
	}

	// A button of the earlier installer, made outside any app, and one someone made in another app.
	retry := actions[slices.IndexFunc(actions, func(r map[string]any) bool { return r["uniquename"] == "csp_licensechangelog_retry" })]
	diagnose := actions[slices.IndexFunc(actions, func(r map[string]any) bool { return r["uniquename"] == "csp_agreement_diagnose" })]
	other, err := c.Create(ctx, "appmodules", dataverse.Row{"name": "Other", "uniquename": "csp_Other", "webresourceid": dataverse.DefaultAppIconID})
	require.NoError(t, err)
	for _, moved := range []struct {
		row map[string]any
		app uuid.UUID
	}{{retry, uuid.Nil}, {diagnose, other}} {
		require.NoError(t, c.Delete(ctx, "appactions", uuid.MustParse(moved.row["appactionid"].(string)), nil))
		row := dataverse.Row{}
		for _, col := range []string{"uniquename", "name", "buttonlabeltext", "buttontooltiptitle", "buttontooltipdescription", "context", "contextvalue", "location",
			"type", "fonticon", "sequence", "onclickeventtype", "onclickeventjavascriptfunctionname", "onclickeventjavascriptparameters"} {
			row[col] = moved.row[col]
		}
		row.SetLookup("OnClickEventJavaScriptWebResourceId", "webresourceset", uuid.MustParse(moved.row["onclickeventjavascriptwebresourceid"].(string)))
		if moved.app != uuid.Nil {
			row.SetLookup("AppModuleId", "appmodules", moved.app)
		}
		_, err := c.Create(ctx, "appactions", row)
		require.NoError(t, err)
	}

	plan, err = c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.Equal(t, []string{
		`recreate command csp_licensechangelog_retry: "Retry" on the form of csp_licensechangelog, calls CSPConnector.retry (it belongs to no app)`,
		`recreate command csp_agreement_diagnose: "Diagnose" on the form of csp_agreement, calls CSPConnector.diagnose (it belongs to another app)`,
	}, plan.Summaries())
	require.NoError(t, c.ApplySchema(ctx, plan, nil))
	for _, a := range srv.Rows("appaction") {
		assert.Equal(t, appID, a["appmoduleid"], "%s belongs to the app", a["uniquename"])
	}
	again, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
}

// TestInstallLetsEveryRoleUseTheApp: every declared role is associated with the app (users see a
// model-driven app through its roles); the app's roles are read once, and only a missing association is
// planned.
func TestInstallLetsEveryRoleUseTheApp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := schema.Schema()
	c, srv := installedBlank(t, s)
	appID := uuid.MustParse(theRow(t, srv, "appmodule")["appmoduleid"].(string))

	assert.ElementsMatch(t, []string{schema.ConnectorRole, schema.AdminRole, schema.ReaderRole}, srv.AppRoles(appID))
	have, err := c.AppRoles(ctx, appID)
	require.NoError(t, err)
	want := map[dataverse.GUID]bool{}
	for _, name := range []string{schema.ConnectorRole, schema.AdminRole, schema.ReaderRole} {
		want[roleID(t, ctx, c, name)] = true
	}
	assert.Equal(t, want, have, "read back through appmoduleroles_association")

	// A newer declaration has a fourth role: it is created and given the app, nothing else.
	next := withSecurity(func(a *dataverse.App) {
		reader := a.Roles[roleIndex(a, schema.ReaderRole)]
		a.Roles = append(a.Roles, dataverse.Role{Name: "CSP Connector Auditor", Description: "Reads.", Privileges: reader.Privileges})
	})
	srv.ResetRequests()
	plan, err := c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.Equal(t, []string{
		`create security role "CSP Connector Auditor" with 14 privilege(s)`,
		`let security role "CSP Connector Auditor" use app csp_CSPConnector`,
	}, plan.Summaries())
	reads := 0
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/appmoduleroles_association") {
			reads++
		}
	}
	assert.Equal(t, 1, reads, "the app's roles are read once")
	require.NoError(t, c.ApplySchema(ctx, plan, nil))
	assert.ElementsMatch(t, []string{schema.ConnectorRole, schema.AdminRole, schema.ReaderRole, "CSP Connector Auditor"}, srv.AppRoles(appID))

	again, err := c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
}

// TestInstallPutsTheAppAndItsSecurityInTheSolution: the roles and the field security profile are
// components of the schema's solution, like the app and its sitemap, so exporting the solution carries
// them.
func TestInstallPutsTheAppAndItsSecurityInTheSolution(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	_, srv := installedBlank(t, s)

	var solutionID any
	for _, sol := range srv.Rows("solution") {
		if sol["uniquename"] == s.SolutionName {
			solutionID = sol["solutionid"]
		}
	}
	require.NotNil(t, solutionID)
	inSolution := map[any]int64{}
	for _, comp := range srv.Rows("solutioncomponent") {
		if comp["solutionid"] == solutionID {
			inSolution[comp["objectid"]] = comp["componenttype"].(int64)
		}
	}
	for _, role := range srv.Rows("role") {
		if strings.HasPrefix(role["name"].(string), "CSP Connector") {
			assert.Equal(t, int64(20), inSolution[role["roleid"]], "role %s is in the solution", role["name"])
		}
	}
	assert.Equal(t, int64(70), inSolution[theRow(t, srv, "fieldsecurityprofile")["fieldsecurityprofileid"]], "the field security profile is in the solution")
	assert.Equal(t, int64(80), inSolution[theRow(t, srv, "appmodule")["appmoduleid"]], "the app is in the solution")
	assert.Equal(t, int64(62), inSolution[theRow(t, srv, "sitemap")["sitemapid"]], "its sitemap is in the solution")
}
