package dataversetest_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
)

const siteMapXML = `<SiteMap IntroducedVersion="7.0.0.0"><Area Id="a" ShowGroups="true"><Group Id="g"><SubArea Id="s" Entity="csp_provider" /></Group></Area></SiteMap>`

// metadataID reads a table's MetadataId as the installer does.
func metadataID(t *testing.T, c webAPI, table string) string {
	t.Helper()
	for _, row := range values(t, c.get("EntityDefinitions"+query("$select", "LogicalName,MetadataId"))) {
		if row["LogicalName"] == table {
			return row["MetadataId"].(string)
		}
	}
	t.Fatalf("no table %s", table)
	return ""
}

func validate(t *testing.T, c webAPI, app string) (bool, []map[string]any) {
	t.Helper()
	res := c.get("ValidateApp(AppModuleId=" + app + ")")
	v := res["AppValidationResponse"].(map[string]any)
	var issues []map[string]any
	for _, is := range v["ValidationIssueList"].([]any) {
		issues = append(issues, is.(map[string]any))
	}
	return v["ValidationSuccess"].(bool), issues
}

func TestAppModuleLifecycle(t *testing.T) {
	t.Parallel()
	c := newWebAPI(t, startServer(t))

	// A sitemap that opens a table that does not exist is refused, on create and on update.
	bad := `<SiteMap><Area Id="a"><Group Id="g"><SubArea Id="s" Entity="csp_nowhere" /></Group></Area></SiteMap>`
	res := c.do(http.MethodPost, "sitemaps", map[string]any{"sitemapname": "X", "sitemapnameunique": "csp_X", "sitemapxml": bad})
	assert.Equal(t, http.StatusBadRequest, res.status)
	_, msg := res.apiError(t)
	assert.Contains(t, msg, "csp_nowhere")
	siteMap := c.create("sitemaps", map[string]any{"sitemapname": "X", "sitemapnameunique": "csp_X", "sitemapxml": siteMapXML, "isappaware": true})
	res = c.do(http.MethodPatch, "sitemaps("+siteMap+")", map[string]any{"sitemapxml": bad})
	assert.Equal(t, http.StatusBadRequest, res.status)
	res = c.do(http.MethodPost, "sitemaps", map[string]any{"sitemapname": "Y", "sitemapnameunique": "csp_X", "sitemapxml": siteMapXML})
	assert.Equal(t, http.StatusPreconditionFailed, res.status, "unique names are unique: %s", res.body)

	// An app needs an icon.
	res = c.do(http.MethodPost, "appmodules", map[string]any{"name": "X", "uniquename": "csp_X"})
	assert.Equal(t, http.StatusBadRequest, res.status)
	app := c.create("appmodules", map[string]any{"name": "X", "uniquename": "csp_X", "webresourceid": dataverse.DefaultAppIconID, "clienttype": 4})
	byName := query("$filter", "uniquename eq 'csp_X'", "$select", "appmoduleid,appmoduleidunique,webresourceid")
	assert.Empty(t, values(t, c.get("appmodules"+byName)), "the entity set lists published apps only")
	got := values(t, c.get("appmodules/Microsoft.Dynamics.CRM.RetrieveUnpublishedMultiple()"+byName))
	require.Len(t, got, 1)
	assert.Equal(t, app, got[0]["appmoduleid"])
	unique := got[0]["appmoduleidunique"].(string)
	assert.NotEqual(t, app, unique, "appmoduleidunique is an id of its own")

	// Without a sitemap the app does not validate.
	ok, issues := validate(t, c, app)
	assert.False(t, ok)
	require.Len(t, issues, 1)
	assert.Equal(t, "App does not contain Site Map", issues[0]["Message"])

	// Components must exist.
	res = c.do(http.MethodPost, "AddAppComponents", map[string]any{"AppId": app, "Components": []any{
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.entity", "entityid": uuid.NewString()},
	}})
	assert.Equal(t, http.StatusNotFound, res.status)
	res = c.do(http.MethodPost, "AddAppComponents", map[string]any{"AppId": uuid.NewString(), "Components": []any{}})
	assert.Equal(t, http.StatusNotFound, res.status)

	// The sitemap alone: its table is not in the app.
	add := map[string]any{"AppId": app, "Components": []any{map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.sitemap", "sitemapid": siteMap}}}
	assert.Equal(t, http.StatusNoContent, c.do(http.MethodPost, "AddAppComponents", add).status)
	ok, issues = validate(t, c, app)
	assert.False(t, ok)
	require.Len(t, issues, 1)
	assert.Contains(t, issues[0]["Message"], "csp_provider")

	// With the table: valid, with the warning about forms and views. Adding again changes nothing.
	provider := metadataID(t, c, "csp_provider")
	add["Components"] = []any{map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.entity", "entityid": provider},
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.sitemap", "sitemapid": siteMap}}
	assert.Equal(t, http.StatusNoContent, c.do(http.MethodPost, "AddAppComponents", add).status)
	ok, issues = validate(t, c, app)
	assert.True(t, ok)
	require.Len(t, issues, 1)
	assert.Equal(t, "Warning", issues[0]["ErrorType"])
	assert.Equal(t, "Provider doesn’t reference a form or view. App users will see all forms and views.", issues[0]["Message"])

	comps := values(t, c.get("appmodulecomponents"+query("$filter", "_appmoduleidunique_value eq "+unique, "$select", "componenttype,objectid")))
	require.Len(t, comps, 2)
	assert.ElementsMatch(t, []any{siteMap, provider}, column(comps, "objectid"))

	// In-app notifications: a setting every environment defines, set per app.
	defs := values(t, c.get("settingdefinitions"+query("$filter", "uniquename eq 'AllowNotificationsEarlyAccess'", "$select", "settingdefinitionid,defaultvalue")))
	require.Len(t, defs, 1)
	assert.Equal(t, "false", defs[0]["defaultvalue"])
	res = c.do(http.MethodPost, "SaveSettingValue", map[string]any{"AppUniqueName": "csp_X", "SettingName": "NoSuchSetting", "Value": "true"})
	assert.Equal(t, http.StatusNotFound, res.status)
	res = c.do(http.MethodPost, "SaveSettingValue", map[string]any{"AppUniqueName": "csp_X", "SettingName": dataverse.NotificationsSetting, "Value": "yes"})
	assert.Equal(t, http.StatusBadRequest, res.status, "a Boolean setting")
	for _, v := range []string{"true", "false", "true"} {
		res = c.do(http.MethodPost, "SaveSettingValue", map[string]any{"AppUniqueName": "csp_X", "SettingName": dataverse.NotificationsSetting, "Value": v})
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	}
	settingOfApp := query("$filter", "_parentappmoduleid_value eq "+app+" and _settingdefinitionid_value eq "+defs[0]["settingdefinitionid"].(string), "$select", "value")
	assert.Empty(t, values(t, c.get("appsettings"+settingOfApp)), "not published yet")
	settings := values(t, c.get("appsettings/Microsoft.Dynamics.CRM.RetrieveUnpublishedMultiple()"+query("$filter", "_parentappmoduleid_value eq "+app+" and _settingdefinitionid_value eq "+defs[0]["settingdefinitionid"].(string), "$select", "value")))
	require.Len(t, settings, 1, "one value per app, updated in place")
	assert.Equal(t, "true", settings[0]["value"])

	// Publishing names apps and sitemaps that exist.
	publish := func(x string) response {
		return c.do(http.MethodPost, "PublishXml", map[string]any{"ParameterXml": x})
	}
	assert.Equal(t, http.StatusNotFound, publish("<importexportxml><appmodules><appmodule>"+uuid.NewString()+"</appmodule></appmodules></importexportxml>").status)
	assert.Equal(t, http.StatusNotFound, publish("<importexportxml><sitemaps><sitemap>"+uuid.NewString()+"</sitemap></sitemaps></importexportxml>").status)
	assert.Equal(t, http.StatusNoContent, publish("<importexportxml><appmodules><appmodule>"+app+"</appmodule></appmodules><sitemaps><sitemap>"+siteMap+"</sitemap></sitemaps></importexportxml>").status)
	assert.NotNil(t, c.get("appmodules(" + app + ")" + query("$select", "publishedon"))["publishedon"])
	assert.Len(t, values(t, c.get("appmodules"+byName)), 1, "published")
	assert.Equal(t, []any{"true"}, column(values(t, c.get("appsettings"+settingOfApp)), "value"), "published with its app")
	assert.Len(t, values(t, c.get("sitemaps"+query("$filter", "sitemapnameunique eq 'csp_X'"))), 1)

	// A change is unpublished until published again.
	require.Equal(t, http.StatusNoContent, c.do(http.MethodPatch, "appmodules("+app+")", map[string]any{"name": "Renamed"}).status)
	assert.Equal(t, []any{"X"}, column(values(t, c.get("appmodules"+byName+",name")), "name"))
	assert.Equal(t, []any{"Renamed"}, column(values(t, c.get("appmodules/Microsoft.Dynamics.CRM.RetrieveUnpublishedMultiple()"+byName+",name")), "name"))
	assert.Equal(t, http.StatusNoContent, publish("<importexportxml><entities><entity>csp_provider</entity></entities></importexportxml>").status, "tables as before")
}
