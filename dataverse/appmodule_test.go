package dataverse_test

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func TestSiteMapRendersAsDataverseStoresIt(t *testing.T) {
	t.Parallel()
	m := dataverse.SiteMap{Areas: []dataverse.SiteMapArea{
		{Title: "Provisioning & Setup", Groups: []dataverse.SiteMapGroup{
			{ID: "g1", Title: "Licenses", SubAreas: []dataverse.SiteMapSubArea{
				{Table: "csp_licensechangelog", Title: "License Change Logs"},
				{Table: "account"},
				{Title: "Partner Center", URL: "https://partner.microsoft.com/?a=1&b=\"2\""},
			}},
		}},
	}}
	want := `<SiteMap IntroducedVersion="7.0.0.0">` +
		`<Area Id="area_provisioning_setup" ShowGroups="true"><Titles><Title LCID="1033" Title="Provisioning &amp; Setup" /></Titles>` +
		`<Group Id="g1" IsProfile="false"><Titles><Title LCID="1033" Title="Licenses" /></Titles>` +
		`<SubArea Id="subarea_csp_licensechangelog" Entity="csp_licensechangelog"><Titles><Title LCID="1033" Title="License Change Logs" /></Titles></SubArea>` +
		`<SubArea Id="subarea_account" Entity="account" />` +
		`<SubArea Id="subarea_partner_center" Url="https://partner.microsoft.com/?a=1&amp;b=&#34;2&#34;"><Titles><Title LCID="1033" Title="Partner Center" /></Titles></SubArea>` +
		`</Group></Area></SiteMap>`
	assert.Equal(t, want, m.XML())
	assert.Equal(t, m.XML(), m.XML(), "the same declaration renders to the same bytes")

	// It reads back as XML with the declared structure.
	var parsed struct {
		XMLName xml.Name `xml:"SiteMap"`
		Areas   []struct {
			ID     string `xml:"Id,attr"`
			Titles []struct {
				LCID  string `xml:"LCID,attr"`
				Title string `xml:"Title,attr"`
			} `xml:"Titles>Title"`
			Groups []struct {
				SubAreas []struct {
					Entity string `xml:"Entity,attr"`
					URL    string `xml:"Url,attr"`
				} `xml:"SubArea"`
			} `xml:"Group"`
		} `xml:"Area"`
	}
	require.NoError(t, xml.Unmarshal([]byte(m.XML()), &parsed))
	require.Len(t, parsed.Areas, 1)
	require.Len(t, parsed.Areas[0].Titles, 1)
	assert.Equal(t, "Provisioning & Setup", parsed.Areas[0].Titles[0].Title)
	assert.Equal(t, "1033", parsed.Areas[0].Titles[0].LCID)
	assert.Equal(t, `https://partner.microsoft.com/?a=1&b="2"`, parsed.Areas[0].Groups[0].SubAreas[2].URL)
	assert.Equal(t, []string{"csp_licensechangelog", "account"}, m.Tables())
}

func TestTheConnectorSiteMapOpensEveryCustomTable(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	require.NoError(t, s.Validate())
	var custom []string
	for _, table := range s.Tables {
		if !table.Standard {
			custom = append(custom, table.LogicalName)
		}
	}
	assert.ElementsMatch(t, custom, s.App.SiteMap.Tables())
	var areas []string
	for _, a := range s.App.SiteMap.Areas {
		areas = append(areas, a.Title)
	}
	assert.Equal(t, []string{"Provisioning", "Customers", "Setup"}, areas)
	assert.Contains(t, s.App.SiteMap.XML(), `Entity="csp_notification"><Titles><Title LCID="1033" Title="Notifications waiting" />`)
}

func TestSiteMapProblemsAreSchemaProblems(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	s.App.SiteMap.Areas = append(s.App.SiteMap.Areas, dataverse.SiteMapArea{ID: "csp_setup", Title: "More", Groups: []dataverse.SiteMapGroup{
		{ID: "bad id", Title: "Odd", SubAreas: []dataverse.SiteMapSubArea{
			{Table: "csp_nowhere"},
			{Title: "Nothing"},
			{Table: schema.TableAgreement, URL: "https://example.com"},
		}},
		{Title: "Empty"},
	}})
	err := s.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"sitemap subarea subarea_csp_nowhere opens table csp_nowhere, which the schema does not declare",
		"sitemap subarea subarea_nothing opens neither a table nor a URL",
		"names both a table and a URL",
		`sitemap area id "csp_setup" is used twice`,
		`sitemap group id "bad id": only letters, digits and _`,
		"sitemap group group_empty has no subareas",
	} {
		assert.ErrorContains(t, err, want)
	}
}

// tableIDs reads every table's MetadataId from the simulator, as the installer does.
func tableIDs(t *testing.T, srv *dataversetest.Server) map[string]string {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + dataverse.APIPath + "EntityDefinitions?$select=LogicalName,MetadataId")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		Value []struct{ LogicalName, MetadataId string } `json:"value"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	ids := map[string]string{}
	for _, v := range out.Value {
		ids[v.MetadataId] = v.LogicalName
	}
	return ids
}

func theRow(t *testing.T, srv *dataversetest.Server, table string) map[string]any {
	t.Helper()
	rows := srv.Rows(table)
	require.Len(t, rows, 1, table)
	return rows[0]
}

func installed(t *testing.T, c *dataverse.Client, s dataverse.Schema) {
	t.Helper()
	plan, err := c.PlanSchema(t.Context(), s)
	require.NoError(t, err)
	require.Empty(t, plan.Problems)
	require.NoError(t, c.ApplySchema(t.Context(), plan, nil))
}

func TestInstallMakesTheAppAndASecondRunChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()

	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	require.Empty(t, plan.Problems)
	summaries := plan.Summaries()
	var app []string // the app module's own changes; the buttons and roles that belong to it come between
	for _, s := range summaries[slices.Index(summaries, "create sitemap csp_CSPConnector (3 areas, 10 subareas)"):] {
		if !strings.HasPrefix(s, "create command ") && !strings.Contains(s, "web resource") && !strings.Contains(s, "security role") && !strings.Contains(s, "field security profile") {
			app = append(app, s)
		}
	}
	assert.Equal(t, "publish app csp_CSPConnector and its sitemap", summaries[len(summaries)-1], "the app is published last, with everything in it")
	assert.Equal(t, []string{
		"create sitemap csp_CSPConnector (3 areas, 10 subareas)",
		"create app csp_CSPConnector (CSP Connector)",
		"add to app csp_CSPConnector: sitemap; tables csp_licensechangelog, csp_subscription, csp_provideraccount, csp_agreement, csp_provider, csp_agreementtemplate, csp_job, csp_jobrun, csp_webhooksubscription, csp_notification",
		"switch on in-app notifications for app csp_CSPConnector (setting AllowNotificationsEarlyAccess = true)",
		"validate app csp_CSPConnector",
		"publish app csp_CSPConnector and its sitemap",
	}, app, "what --dry-run lists for the app")
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	siteMap := theRow(t, srv, "sitemap")
	assert.Equal(t, s.App.SiteMap.XML(), siteMap["sitemapxml"])
	assert.Equal(t, "csp_CSPConnector", siteMap["sitemapnameunique"])
	assert.Equal(t, true, siteMap["isappaware"])

	appRow := theRow(t, srv, "appmodule")
	assert.Equal(t, "CSP Connector", appRow["name"])
	assert.Equal(t, "csp_CSPConnector", appRow["uniquename"])
	assert.Equal(t, dataverse.DefaultAppIconID, appRow["webresourceid"])
	assert.Equal(t, int64(4), appRow["clienttype"], "Unified Interface")
	assert.NotNil(t, appRow["publishedon"], "published")

	// The app's components, as Dataverse lists them: the sitemap and the tables it opens.
	ids := tableIDs(t, srv)
	var tables []string
	var siteMaps []any
	for _, comp := range srv.Rows("appmodulecomponent") {
		assert.Equal(t, appRow["appmoduleidunique"], comp["appmoduleidunique"])
		switch comp["componenttype"] {
		case int64(1):
			tables = append(tables, ids[comp["objectid"].(string)])
		case int64(62):
			siteMaps = append(siteMaps, comp["objectid"])
		default:
			t.Errorf("unexpected component %v", comp)
		}
	}
	assert.Equal(t, []any{siteMap["sitemapid"]}, siteMaps)
	assert.ElementsMatch(t, s.App.SiteMap.Tables(), tables)

	// In-app notifications are on for the app.
	setting := theRow(t, srv, "appsetting")
	assert.Equal(t, "true", setting["value"])
	assert.Equal(t, appRow["appmoduleid"], setting["parentappmoduleid"])
	def, ok := srv.Row("settingdefinition", setting["settingdefinitionid"].(string))
	require.True(t, ok)
	assert.Equal(t, dataverse.NotificationsSetting, def["uniquename"])

	srv.ResetRequests()
	again, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
	assert.Empty(t, again.Problems)
	assert.Empty(t, writes(srv), "a second install must not write")
}

func TestInstallUpdatesTheAppWhenTheDeclarationOrTheEnvironmentChanged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()
	installed(t, c, s)
	appID := theRow(t, srv, "appmodule")["appmoduleid"].(string)
	siteMapID := theRow(t, srv, "sitemap")["sitemapid"].(string)

	// A newer declaration opens accounts too; in the environment, someone renamed the app and switched
	// its notifications off in the app designer.
	next := schema.Schema()
	next.App.SiteMap.Areas[1].Groups[0].SubAreas = append(next.App.SiteMap.Areas[1].Groups[0].SubAreas, dataverse.SiteMapSubArea{Table: schema.TableAccount, Title: "Accounts"})
	_, err := c.Update(ctx, "appmodules", uuid.MustParse(appID), dataverse.Row{"name": "Renamed"}, nil)
	require.NoError(t, err)
	setting := theRow(t, srv, "appsetting")
	_, err = c.Update(ctx, "appsettings", uuid.MustParse(setting["appsettingid"].(string)), dataverse.Row{"value": "false"}, nil)
	require.NoError(t, err)

	srv.ResetRequests()
	plan, err := c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"update sitemap csp_CSPConnector: navigation changed",
		"update app csp_CSPConnector: name changed",
		"add to app csp_CSPConnector: tables account",
		"switch on in-app notifications for app csp_CSPConnector (setting AllowNotificationsEarlyAccess = true)",
		"validate app csp_CSPConnector",
		"publish app csp_CSPConnector and its sitemap",
	}, plan.Summaries())
	assert.Empty(t, writes(srv), "planning only reads")
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	siteMap := theRow(t, srv, "sitemap")
	assert.Equal(t, siteMapID, siteMap["sitemapid"], "updated in place")
	assert.Equal(t, next.App.SiteMap.XML(), siteMap["sitemapxml"])
	assert.Contains(t, siteMap["sitemapxml"], `Entity="account"`)
	assert.Equal(t, "CSP Connector", theRow(t, srv, "appmodule")["name"])
	assert.Equal(t, "true", theRow(t, srv, "appsetting")["value"])
	assert.Len(t, srv.Rows("appmodulecomponent"), 12, "sitemap, 10 custom tables, account")
	var published bool
	for _, r := range srv.Requests() {
		published = published || r.Method == http.MethodPost && r.Path == "PublishXml"
	}
	assert.True(t, published, "the changed app is published again")

	again, err := c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
}

func TestInstallSaysWhenTheEnvironmentCannotSwitchNotificationsOn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	def := theRow(t, srv, "settingdefinition")
	require.NoError(t, c.Delete(ctx, "settingdefinitions", uuid.MustParse(def["settingdefinitionid"].(string)), nil))

	plan, err := c.PlanSchema(ctx, schema.Schema())
	require.NoError(t, err)
	assert.Equal(t, []string{"this environment has no setting AllowNotificationsEarlyAccess, so in-app notifications cannot be switched on for app csp_CSPConnector: switch them on in the app designer (Settings → Features → In-app notifications)"}, plan.Problems)
	assert.NotContains(t, plan.String(), "switch on in-app notifications for app")
	require.NoError(t, c.ApplySchema(ctx, plan, nil), "the rest of the app installs")
	assert.NotNil(t, theRow(t, srv, "appmodule")["publishedon"])
}

// TestInstallResumesAnAppItMadeButDidNotPublish: the entity sets list published apps and sitemaps only,
// so an install that stopped between creating the app and publishing it must find them in the unpublished
// layer, not create them again (a duplicate unique name), and publish them.
func TestInstallResumesAnAppItMadeButDidNotPublish(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()
	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	srv.Inject(dataversetest.Fault{Method: http.MethodGet, Path: "ValidateApp", Status: http.StatusBadRequest, Code: dataverse.CodeValidation, Message: "Something went wrong.", Times: 1})
	require.ErrorContains(t, c.ApplySchema(ctx, plan, nil), "validate app csp_CSPConnector")
	require.Nil(t, theRow(t, srv, "appmodule")["publishedon"], "stopped before publishing")

	plan, err = c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.Equal(t, []string{"validate app csp_CSPConnector", "publish app csp_CSPConnector and its sitemap"}, plan.Summaries())
	require.NoError(t, c.ApplySchema(ctx, plan, nil))
	assert.Len(t, srv.Rows("appmodule"), 1)
	assert.Len(t, srv.Rows("sitemap"), 1)
	assert.NotNil(t, theRow(t, srv, "appmodule")["publishedon"])

	plan, err = c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.True(t, plan.Empty(), plan.String())
}
