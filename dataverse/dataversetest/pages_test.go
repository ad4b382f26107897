package dataversetest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
)

// The pages are driven by stored metadata only: these tests store hand-made forms, views, a sitemap, an
// app, commands and notifications (in Dynamics' formats, shaped like internal/xsdcheck/testdata) and read
// what the pages render from them.

// pageTables are the tables of the hand-made app beside the simulator's own (systemforms, savedqueries,
// sitemaps, appmodules, webresourceset, appactions): in-app notifications, accounts, and two related
// tables to show.
func pageTables() []dataverse.Table {
	str := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeString, MaxLength: 300}
	}
	memo := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeMemo, MaxLength: 1 << 20}
	}
	col := func(name string, typ dataverse.ColumnType) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: typ}
	}
	lookup := func(name, target string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeLookup, Target: target}
	}
	named := func(name, display string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeString, MaxLength: max}
	}
	return []dataverse.Table{
		{LogicalName: "appnotification", EntitySetName: "appnotifications", DisplayName: "Notification", Standard: true, PrimaryName: str("title"),
			Columns: []dataverse.Column{memo("body"), memo("data"), col("icontype", dataverse.TypeInteger), lookup("ownerid", "systemuser")}},
		{LogicalName: "account", EntitySetName: "accounts", DisplayName: "Account", PluralName: "Accounts", Standard: true, PrimaryName: named("name", "Account Name", 160)},
		{LogicalName: "csp_widget", EntitySetName: "csp_widgets", DisplayName: "Widget", PluralName: "Widgets", PrimaryName: named("csp_name", "Name", 100),
			Columns: []dataverse.Column{
				{LogicalName: "csp_quantity", DisplayName: "Quantity", Type: dataverse.TypeInteger},
				{LogicalName: "csp_status", DisplayName: "Status", Type: dataverse.TypeChoice, Options: []dataverse.Option{{Value: 1, Label: "Ready"}, {Value: 2, Label: "Failed"}}},
				{LogicalName: "csp_renewon", DisplayName: "Renews on", Type: dataverse.TypeDateTime},
				{LogicalName: "csp_account", DisplayName: "Account", Type: dataverse.TypeLookup, Target: "account"},
				{LogicalName: "csp_message", DisplayName: "Message", Type: dataverse.TypeMemo, MaxLength: 4000},
			}},
		{LogicalName: "csp_part", EntitySetName: "csp_parts", DisplayName: "Part", PluralName: "Parts", PrimaryName: named("csp_name", "Part name", 100),
			Columns: []dataverse.Column{{LogicalName: "csp_widget", DisplayName: "Widget", Type: dataverse.TypeLookup, Target: "csp_widget"}}},
	}
}

const (
	pagesWidgetForm = `<form>
  <tabs>
    <tab name="general" id="{6b2f0e4c-1d7a-4c8e-9a51-3f0c2d9e7a10}" IsUserDefined="0" verticallayout="true" showlabel="true" expanded="true">
      <labels><label description="General" languagecode="1033" /></labels>
      <columns><column width="100%"><sections>
        <section name="widget" id="{0f4c8b2a-5e6d-4a3b-8c7d-9e1f2a3b4c5d}" IsUserDefined="0" showlabel="true" showbar="false" columns="1">
          <labels><label description="Widget" languagecode="1033" /></labels>
          <rows>
            <row><cell id="{9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d}" showlabel="true"><labels><label description="Name" languagecode="1033" /></labels>
              <control id="csp_name" classid="{4273EDBD-AC1D-40d3-9FB2-095C621B552D}" datafieldname="csp_name" disabled="false" /></cell></row>
            <row><cell id="{1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d}" showlabel="true"><labels><label description="Seats" languagecode="1033" /></labels>
              <control id="csp_quantity" classid="{C6D124CA-7EDA-4a60-AEA9-7FB8D318B68F}" datafieldname="csp_quantity" disabled="false" /></cell></row>
            <row><cell id="{2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e}" showlabel="true"><labels><label description="Account" languagecode="1033" /></labels>
              <control id="csp_account" classid="{270BD3DB-D9AF-4782-9025-509E298DEC0A}" datafieldname="csp_account" disabled="false" /></cell></row>
            <row><cell id="{3c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f}" showlabel="true"><labels><label description="Renews on" languagecode="1033" /></labels>
              <control id="csp_renewon" classid="{5B773807-9FB2-42db-97C3-7A91EFF8ADFF}" datafieldname="csp_renewon" disabled="false" /></cell></row>
            <row><cell id="{4c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f}" showlabel="true"><labels><label description="Parts" languagecode="1033" /></labels>
              <control id="parts" classid="{E7A81278-8635-4D9E-8D4D-59480B391C5B}" indicationOfSubgrid="true"><parameters>
                <ViewId>{VIEWID}</ViewId><IsUserView>false</IsUserView><RelationshipName>csp_widget_csp_part_csp_widget</RelationshipName>
                <TargetEntityType>csp_part</TargetEntityType><AutoExpand>Fixed</AutoExpand><RecordsPerPage>5</RecordsPerPage></parameters></control></cell></row>
            <row><cell id="{5c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f}" showlabel="true"><labels><label description="Map" languagecode="1033" /></labels>
              <control id="map" classid="{62B0DF79-0464-470F-8AF7-4483CFEA0C7D}" /></cell></row>
          </rows>
        </section>
        <section name="connector" id="{7f4c8b2a-5e6d-4a3b-8c7d-9e1f2a3b4c5d}" IsUserDefined="0" showlabel="true" showbar="false" columns="1">
          <labels><label description="From the connector" languagecode="1033" /></labels>
          <rows>
            <row><cell id="{6a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d}" showlabel="true"><labels><label description="Message" languagecode="1033" /></labels>
              <control id="csp_message" classid="{E0DECE4B-6FC8-4a8f-A065-082708572369}" datafieldname="csp_message" disabled="true" /></cell></row>
          </rows>
        </section>
      </sections></column></columns>
    </tab>
  </tabs>
  <header id="{4d5e6f7a-8b9c-4d0e-1f2a-3b4c5d6e7f8a}" celllabelposition="Top" columns="1" labelwidth="115" celllabelalignment="Left">
    <rows><row><cell id="{5e6f7a8b-9c0d-4e1f-2a3b-4c5d6e7f8a9b}" showlabel="true"><labels><label description="Status" languagecode="1033" /></labels>
      <control id="header_csp_status" classid="{3EF39988-22BB-4f0b-BBBE-64B5A3748AEE}" datafieldname="csp_status" disabled="false" /></cell></row></rows>
  </header>
</form>`

	pagesSiteMap = `<SiteMap IntroducedVersion="7.0.0.0">
  <Area Id="csp_work" ShowGroups="true"><Titles><Title LCID="1033" Title="Work" /></Titles>
    <Group Id="csp_things" IsProfile="false"><Titles><Title LCID="1033" Title="Things" /></Titles>
      <SubArea Id="csp_widgets" Entity="csp_widget"><Titles><Title LCID="1033" Title="All the widgets" /></Titles></SubArea>
      <SubArea Id="csp_parts" Entity="csp_part" />
      <SubArea Id="csp_help" Url="https://example.invalid/help"><Titles><Title LCID="1033" Title="Help" /></Titles></SubArea>
    </Group>
  </Area>
</SiteMap>`
)

func fetchOf(table, filter, order string) string {
	return `<fetch version="1.0" mapping="logical"><entity name="` + table + `"><attribute name="csp_name" />` + order + filter + `</entity></fetch>`
}

// pageFixture is a simulator with an app and its metadata stored, and some rows.
type pageFixture struct {
	srv                          *dataversetest.Server
	app, failedView, allView     string
	ready, failed, other, accent string
}

func newPageFixture(t *testing.T, now time.Time) *pageFixture {
	t.Helper()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: pageTables(), Now: func() time.Time { return now }})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	f := &pageFixture{srv: srv}
	ins := func(table string, v map[string]any) string {
		id, err := srv.Insert(table, v)
		require.NoError(t, err)
		return id
	}
	f.accent = ins("account", map[string]any{"name": "Accent Ltd"})
	ins("account", map[string]any{"name": "Birch plc"})
	layout := `<grid name="resultset" object="10001" jump="csp_name" select="1" icon="1" preview="1"><row name="result" id="csp_widgetid">` +
		`<cell name="csp_name" width="300" /><cell name="csp_quantity" width="100" /><cell name="csp_status" width="150" /><cell name="csp_account" width="200" /><cell name="csp_renewon" width="160" /></row></grid>`
	f.failedView = ins("savedquery", map[string]any{"name": "Failed widgets, most seats first", "returnedtypecode": "csp_widget", "querytype": 0, "isdefault": true, "layoutxml": layout,
		"fetchxml": fetchOf("csp_widget", `<filter type="and"><condition attribute="csp_status" operator="eq" value="2" /></filter>`, `<order attribute="csp_quantity" descending="true" />`)})
	f.allView = ins("savedquery", map[string]any{"name": "All widgets", "returnedtypecode": "csp_widget", "querytype": 0, "isdefault": false, "layoutxml": layout,
		"fetchxml": fetchOf("csp_widget", "", `<order attribute="csp_name" descending="false" />`)})
	ins("savedquery", map[string]any{"name": "Quick find widgets", "returnedtypecode": "csp_widget", "querytype": 4, "layoutxml": layout, "fetchxml": fetchOf("csp_widget", "", "")})
	partsView := ins("savedquery", map[string]any{"name": "Parts of a widget", "returnedtypecode": "csp_part", "querytype": 0, "isdefault": true,
		"layoutxml": `<grid name="resultset" object="10002" jump="csp_name" select="1" icon="1" preview="1"><row name="result" id="csp_partid"><cell name="csp_name" width="200" /></row></grid>`,
		"fetchxml":  fetchOf("csp_part", "", `<order attribute="csp_name" descending="false" />`)})
	ins("systemform", map[string]any{"name": "Information", "objecttypecode": "csp_widget", "type": 2, "isdefault": true, "formactivationstate": 1,
		"formxml": `<form><tabs><tab name="t"><labels><label description="Old" languagecode="1033" /></labels><columns><column width="100%"><sections /></column></columns></tab></tabs></form>`})
	ins("systemform", map[string]any{"name": "Widget", "objecttypecode": "csp_widget", "type": 2, "isdefault": true, "formactivationstate": 1,
		"formxml": strings.ReplaceAll(pagesWidgetForm, "{VIEWID}", "{"+partsView+"}")})
	ins("sitemap", map[string]any{"sitemapname": "Widgets", "sitemapnameunique": "csp_Widgets", "sitemapxml": pagesSiteMap})
	f.app = ins("appmodule", map[string]any{"name": "Widget Works", "uniquename": "csp_Widgets", "description": "Widgets and their parts."})
	sitemap := srv.Rows("sitemap")[0]["sitemapid"].(string)
	f.post(t, "SaveSettingValue", map[string]any{"AppUniqueName": "csp_Widgets", "SettingName": dataverse.NotificationsSetting, "Value": "true"})
	f.publish(t, sitemap)

	renew := now.Add(48 * time.Hour).UTC().Format(time.RFC3339)
	f.ready = ins("csp_widget", map[string]any{"csp_name": "Ready widget", "csp_quantity": 3, "csp_status": 1})
	f.failed = ins("csp_widget", map[string]any{"csp_name": "Failed widget", "csp_quantity": 30, "csp_status": 2, "csp_renewon": renew,
		"csp_account@odata.bind": "/accounts(" + f.accent + ")", "csp_message": "Failed: the seat cap is 25. Lower the quantity, then press Retry."})
	f.other = ins("csp_widget", map[string]any{"csp_name": "Another failed widget", "csp_quantity": 7, "csp_status": 2})
	ins("csp_part", map[string]any{"csp_name": "Cog", "csp_widget@odata.bind": "/csp_widgets(" + f.failed + ")"})
	ins("csp_part", map[string]any{"csp_name": "Sprocket", "csp_widget@odata.bind": "/csp_widgets(" + f.failed + ")"})
	ins("csp_part", map[string]any{"csp_name": "Spring of another", "csp_widget@odata.bind": "/csp_widgets(" + f.other + ")"})

	script := `var Widgets = { bump: async function (formContext) {
  var id = formContext.data.entity.getId().replace(/[{}]/g, "");
  formContext.ui.setFormNotification("Bumping", "INFO", "bump");
  var r = await fetch("/api/data/v9.2/csp_widgets(" + id + ")", { method: "PATCH", headers: { "Content-Type": "application/json", "If-Match": "*" }, body: JSON.stringify({ csp_message: "Bumped by the command." }) });
  if (!r.ok) { throw new Error("PATCH " + r.status); }
  await formContext.data.refresh(false);
  formContext.ui.setFormNotification("Bumped", "INFO", "bump");
} };`
	wr := ins("webresource", map[string]any{"name": "csp_widgets.js", "webresourcetype": 3, "content": base64.StdEncoding.EncodeToString([]byte(script))})
	bump := map[string]any{"name": "csp_widget_bump", "uniquename": "csp_widget_bump", "buttonlabeltext": "Bump", "buttontooltipdescription": "Writes a message on the row.",
		"context": 1, "contextvalue": "csp_widget", "location": 0, "onclickeventtype": 2, "onclickeventjavascriptfunctionname": "Widgets.bump",
		"onclickeventjavascriptparameters": `[{"type":5}]`, "sequence": 10, "OnClickEventJavaScriptWebResourceId@odata.bind": "/webresourceset(" + wr + ")"}
	ins("appaction", bump)
	ins("appaction", map[string]any{"name": "csp_widget_formula", "uniquename": "csp_widget_formula", "buttonlabeltext": "Formula", "context": 1, "contextvalue": "csp_widget",
		"location": 0, "onclickeventtype": 1, "sequence": 20})
	other := ins("appmodule", map[string]any{"name": "Another app", "uniquename": "csp_Other"})
	ins("appaction", map[string]any{"name": "csp_widget_elsewhere", "uniquename": "csp_widget_elsewhere", "buttonlabeltext": "In another app", "context": 1,
		"contextvalue": "csp_widget", "location": 0, "onclickeventtype": 1, "sequence": 1, "AppModuleId@odata.bind": "/appmodules(" + other + ")"})
	ins("appaction", map[string]any{"name": "csp_part_other", "uniquename": "csp_part_other", "buttonlabeltext": "Not for widgets", "context": 1, "contextvalue": "csp_part",
		"location": 0, "onclickeventtype": 1, "sequence": 5})

	ins("appnotification", map[string]any{"title": "A widget failed", "body": "Failed widget could not be provisioned.", "icontype": 100000002,
		"ownerid@odata.bind": "/systemusers(" + srv.UserID().String() + ")",
		"data":               `{"actions":[{"title":"Open","data":{"url":"?appname=csp_Widgets&pagetype=entityrecord&etn=csp_widget&id=` + f.failed + `","navigationTarget":"newWindow"}}]}`})
	return f
}

// post calls a Web API action, as the installer does.
func (f *pageFixture) post(t *testing.T, action string, body map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	res, err := f.srv.Client().Post(f.srv.URL+"/api/data/v9.2/"+action, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	require.Less(t, res.StatusCode, 300, "%s: %s", action, answer)
}

// publish publishes the app and its sitemap: until then people see neither.
func (f *pageFixture) publish(t *testing.T, sitemap string) {
	t.Helper()
	f.post(t, "PublishXml", map[string]any{"ParameterXml": "<importexportxml><appmodules><appmodule>{" + f.app + "}</appmodule></appmodules>" +
		"<sitemaps><sitemap>{" + sitemap + "}</sitemap></sitemaps></importexportxml>"})
}

// get fetches a page and parses it.
func (f *pageFixture) get(t *testing.T, path string) *html.Node {
	t.Helper()
	res, err := f.srv.Client().Get(f.srv.URL + path)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	doc, err := html.Parse(strings.NewReader(string(body)))
	require.NoError(t, err)
	return doc
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return n.Type == html.ElementNode && strings.Contains(" "+attr(n, "class")+" ", " "+class+" ")
}

// find returns the elements under n that match.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
		out = append(out, find(c, match)...)
	}
	return out
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func texts(nodes []*html.Node) []string {
	out := []string{}
	for _, n := range nodes {
		out = append(out, text(n))
	}
	return out
}

// gridRows are the cell texts of the rows of the first grid under n.
func gridRows(t *testing.T, n *html.Node) (header []string, rows [][]string) {
	t.Helper()
	grids := find(n, func(n *html.Node) bool { return n.Data == "table" && hasClass(n, "grid") })
	require.NotEmpty(t, grids, "no grid")
	header = texts(find(grids[0], tag("th")))
	for _, tr := range find(find(grids[0], tag("tbody"))[0], tag("tr")) {
		rows = append(rows, texts(find(tr, tag("td"))))
	}
	return header, rows
}

func notes(n *html.Node) []string {
	return texts(find(n, func(n *html.Node) bool { return hasClass(n, "unsupported") }))
}

func TestPagesShowOnlyPublishedApps(t *testing.T) {
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: pageTables()})
	require.NoError(t, err)
	defer srv.Close()
	f := &pageFixture{srv: srv}

	doc := f.get(t, "/")
	assert.Contains(t, text(doc), "No model-driven app is installed and published in this Dataverse environment yet.")
	assert.Contains(t, text(doc), "a simulator of Dynamics 365's pages for the sandbox and tests")

	f.app, err = srv.Insert("appmodule", map[string]any{"name": "Widget Works", "uniquename": "csp_Widgets"})
	require.NoError(t, err)
	doc = f.get(t, "/main.aspx")
	assert.Contains(t, text(doc), "No model-driven app is installed and published", "an app not yet published shows nowhere")
	sitemap, err := srv.Insert("sitemap", map[string]any{"sitemapname": "Widgets", "sitemapnameunique": "csp_Widgets", "sitemapxml": pagesSiteMap})
	require.NoError(t, err)
	f.publish(t, sitemap)
	doc = f.get(t, "/main.aspx?appname=csp_Widgets")
	assert.NotEmpty(t, find(doc, tag("nav")), "published, it opens with its sitemap")
	assert.Empty(t, find(doc, func(n *html.Node) bool { return attr(n, "id") == "bell" }), "in-app notifications are off for the app by default: no bell")
}

func TestPagesShowTheAppPickerAndTheSitemap(t *testing.T) {
	f := newPageFixture(t, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))

	doc := f.get(t, "/main.aspx")
	apps := find(doc, func(n *html.Node) bool { return n.Data == "a" && strings.Contains(attr(n, "href"), "appid=") })
	require.Len(t, apps, 1)
	assert.Equal(t, "Widget Works", text(apps[0]))

	doc = f.get(t, attr(apps[0], "href"))
	nav := find(doc, tag("nav"))
	require.NotEmpty(t, nav)
	assert.Equal(t, []string{"Work"}, texts(find(nav[0], tag("h2"))))
	assert.Equal(t, []string{"Things"}, texts(find(nav[0], tag("h3"))))
	links := find(nav[0], tag("a"))
	assert.Equal(t, []string{"All the widgets", "Parts"}, texts(links), "a subarea without a title takes the table's plural name")
	assert.Equal(t, "page", attr(links[0], "aria-current"), "the app opens its first subarea")
	assert.Contains(t, notes(nav[0]), "Help: opens https://example.invalid/help, which the sandbox does not render")
	u, err := url.Parse(attr(links[1], "href"))
	require.NoError(t, err)
	assert.Equal(t, url.Values{"appid": {f.app}, "pagetype": {"entitylist"}, "etn": {"csp_part"}}, u.Query())

	// The home page is the first subarea's list, with its default view.
	assert.Equal(t, "Widgets", text(find(doc, tag("h1"))[0]))
}

func TestPagesRenderAViewAsAGrid(t *testing.T) {
	f := newPageFixture(t, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))

	doc := f.get(t, "/main.aspx?appid="+f.app+"&pagetype=entitylist&etn=csp_widget")
	header, rows := gridRows(t, doc)
	assert.Equal(t, []string{"Name", "Quantity", "Status", "Account", "Renews on"}, header, "the LayoutXml's columns, labelled by the columns' display names")
	assert.Equal(t, [][]string{
		{"Failed widget", "30", "Failed", "Accent Ltd", "9 Dec 2026 12:00 UTC"},
		{"Another failed widget", "7", "Failed", "", ""},
	}, rows, "the default view: its FetchXml's filter and order, choices by label, lookups by name")
	widths := []string{}
	for _, th := range find(doc, tag("th")) {
		widths = append(widths, attr(th, "style"))
	}
	assert.Equal(t, "width: 300px", widths[0])

	links := find(find(doc, tag("tbody"))[0], tag("a"))
	assert.Equal(t, "/main.aspx?appid="+f.app+"&etn=csp_widget&id="+f.failed+"&pagetype=entityrecord", attr(links[0], "href"), "the jump column opens the row")
	assert.Equal(t, "/main.aspx?appid="+f.app+"&etn=account&id="+f.accent+"&pagetype=entityrecord", attr(links[1], "href"), "a lookup opens the row it names")

	picker := find(doc, func(n *html.Node) bool { return n.Data == "select" && attr(n, "id") == "viewid" })
	require.Len(t, picker, 1)
	assert.Equal(t, []string{"All widgets", "Failed widgets, most seats first"}, texts(find(picker[0], tag("option"))), "public views only, by name")
	labels := find(doc, func(n *html.Node) bool { return n.Data == "label" && attr(n, "for") == "viewid" })
	assert.Len(t, labels, 1, "the view picker is labelled")

	doc = f.get(t, "/main.aspx?appid="+f.app+"&pagetype=entitylist&etn=csp_widget&viewid="+f.allView)
	_, rows = gridRows(t, doc)
	assert.Equal(t, []string{"Another failed widget", "Failed widget", "Ready widget"}, []string{rows[0][0], rows[1][0], rows[2][0]})
}

func TestPagesRenderTheForm(t *testing.T) {
	f := newPageFixture(t, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))

	doc := f.get(t, "/main.aspx?appid="+f.app+"&pagetype=entityrecord&etn=csp_widget&id="+f.failed)
	assert.Equal(t, "Failed widget", text(find(doc, tag("h1"))[0]))
	assert.Equal(t, []string{"Status"}, texts(find(doc, tag("dt"))), "the header's fields")
	assert.Equal(t, []string{"Failed"}, texts(find(doc, tag("dd"))))
	assert.Equal(t, []string{"Widget", "From the connector"}, texts(find(doc, tag("legend"))), "the default form (the last created): its sections")

	field := func(column string) *html.Node {
		for _, n := range find(doc, func(n *html.Node) bool { return attr(n, "data-column") == column && n.Data != "dd" }) {
			return n
		}
		t.Fatalf("no field %s", column)
		return nil
	}
	label := func(n *html.Node) string {
		for _, l := range find(doc, tag("label")) {
			if attr(l, "for") == attr(n, "id") {
				return text(l)
			}
		}
		return ""
	}
	name := field("csp_name")
	assert.Equal(t, "Failed widget", attr(name, "value"))
	assert.Equal(t, "Name", label(name), "each field is labelled (label for=)")
	seats := field("csp_quantity")
	assert.Equal(t, "30", attr(seats, "value"))
	assert.Equal(t, "number", attr(seats, "type"))
	assert.Equal(t, "Seats", label(seats), "the cell's label, not the column's")
	account := field("csp_account")
	assert.Equal(t, "select", account.Data)
	selected := find(account, func(n *html.Node) bool { return n.Data == "option" && hasAttr(n, "selected") })
	assert.Equal(t, []string{"Accent Ltd"}, texts(selected))
	assert.Equal(t, "2026-12-09T12:00", attr(field("csp_renewon"), "value"))
	message := field("csp_message")
	assert.Equal(t, "textarea", message.Data)
	assert.True(t, hasAttr(message, "readonly"), "a disabled control is read-only")
	assert.Equal(t, "Failed: the seat cap is 25. Lower the quantity, then press Retry.", text(message))

	sub := find(doc, func(n *html.Node) bool { return hasClass(n, "subgrid") })
	require.Len(t, sub, 1)
	assert.Equal(t, "Parts", text(find(sub[0], tag("h3"))[0]))
	_, rows := gridRows(t, sub[0])
	assert.Equal(t, [][]string{{"Cog"}, {"Sprocket"}}, rows, "the subgrid: the related rows only, in its view's order")

	assert.Contains(t, notes(doc), "This form uses a control the sandbox does not render: map (class {62B0DF79-0464-470F-8AF7-4483CFEA0C7D}).")
	assert.Contains(t, notes(doc), `The command "Formula" runs a Power Fx formula or nothing, which the sandbox does not run.`)

	buttons := find(doc, func(n *html.Node) bool { return n.Data == "button" && hasClass(n, "appaction") })
	assert.Equal(t, []string{"Bump", "Formula"}, texts(buttons), "the table's form commands in this app, by sequence")
	assert.Equal(t, "csp_widgets.js", attr(buttons[0], "data-webresource"))
	assert.Equal(t, "Widgets.bump", attr(buttons[0], "data-function"))
	assert.True(t, hasAttr(buttons[0], "disabled") && hasAttr(buttons[0], "data-wait"), "a button waits for the page's script, which enables it")
	assert.True(t, hasAttr(buttons[1], "disabled") && !hasAttr(buttons[1], "data-wait"), "a command the sandbox cannot run stays disabled")

	res, err := f.srv.Client().Get(f.srv.URL + "/main.aspx?appid=" + f.app + "&pagetype=entityrecord&etn=csp_widget&id=" + f.failed + "&part=record")
	require.NoError(t, err)
	part, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Contains(t, string(part), `data-column="csp_quantity"`, "the form alone, for formContext.data.refresh")
	assert.NotContains(t, string(part), "<html")
}

func hasAttr(n *html.Node, name string) bool {
	for _, a := range n.Attr {
		if a.Key == name {
			return true
		}
	}
	return false
}

func TestPagesBellShowsNotificationsOpeningRowsInTheApp(t *testing.T) {
	f := newPageFixture(t, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))

	doc := f.get(t, "/main.aspx?appid="+f.app)
	bell := find(doc, func(n *html.Node) bool { return attr(n, "id") == "bell" })
	require.Len(t, bell, 1)
	assert.Equal(t, "bell-panel", attr(bell[0], "aria-controls"))
	assert.Equal(t, "1", text(find(bell[0], func(n *html.Node) bool { return hasClass(n, "count") })[0]))
	items := find(doc, func(n *html.Node) bool { return hasClass(n, "notice") })
	require.Len(t, items, 1)
	assert.Contains(t, text(items[0]), "A widget failed")
	assert.Contains(t, text(items[0]), "Failed widget could not be provisioned.")
	open := find(items[0], tag("a"))
	require.Len(t, open, 1)
	assert.Equal(t, "/main.aspx?appname=csp_Widgets&pagetype=entityrecord&etn=csp_widget&id="+f.failed, attr(open[0], "href"))

	doc = f.get(t, attr(open[0], "href"))
	assert.Equal(t, "Failed widget", text(find(doc, tag("h1"))[0]), "the action opens the row inside the app")
	assert.NotEmpty(t, find(doc, tag("nav")), "with the app's navigation")
}

func TestPagesServeTheirAssetsLocally(t *testing.T) {
	f := newPageFixture(t, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	doc := f.get(t, "/main.aspx?appid="+f.app)
	var refs []string
	for _, n := range find(doc, func(n *html.Node) bool { return n.Data == "script" || n.Data == "link" }) {
		if v := attr(n, "src") + attr(n, "href"); v != "" {
			refs = append(refs, v)
		}
	}
	assert.Equal(t, []string{"/_pages/app.css", "/sandbox/xrm.js", "/_pages/app.js"}, refs, "everything from the simulator itself")
	for _, ref := range []string{"/_pages/app.css", "/_pages/app.js"} {
		res, err := f.srv.Client().Get(f.srv.URL + ref)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode, ref)
	}
}
