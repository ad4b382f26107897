package dataverse

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// SiteMap is an app's navigation: areas of groups of subareas, each opening a table's default view or a
// URL. The installer stores it as the app's own sitemap (app-aware, unique name = the app's unique name).
type SiteMap struct {
	Areas []SiteMapArea
}

// SiteMapArea is an area of the navigation (the area switcher at the bottom of the left pane).
type SiteMapArea struct {
	// ID is the area's Id in the SiteMap XML (letters, digits and _); empty derives it from the title.
	ID, Title string
	Groups    []SiteMapGroup
}

// SiteMapGroup is a heading of subareas within an area.
type SiteMapGroup struct {
	ID, Title string
	SubAreas  []SiteMapSubArea
}

// SiteMapSubArea is one entry of the navigation: it opens Table's default view, or URL.
type SiteMapSubArea struct {
	// ID empty derives it from the table (or the title of a URL entry).
	ID string
	// Title empty shows the table's plural name.
	Title string
	Table string
	URL   string
}

// siteMapIntroducedVersion is what Dataverse writes on app-aware sitemaps made by the app designer.
const siteMapIntroducedVersion = "7.0.0.0"

// LCID of the titles the installer writes (English); the schema's labels are English.
const siteMapLCID = "1033"

var siteMapID = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

func slug(prefix, s string) string {
	var b strings.Builder
	b.WriteString(prefix)
	under := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimRight(b.String(), "_")
}

func (a SiteMapArea) id() string {
	if a.ID != "" {
		return a.ID
	}
	return slug("area_", a.Title)
}

func (g SiteMapGroup) id() string {
	if g.ID != "" {
		return g.ID
	}
	return slug("group_", g.Title)
}

func (s SiteMapSubArea) id() string {
	switch {
	case s.ID != "":
		return s.ID
	case s.Table != "":
		return "subarea_" + s.Table
	}
	return slug("subarea_", s.Title)
}

// SubAreas returns every subarea, in navigation order.
func (m SiteMap) SubAreas() []SiteMapSubArea {
	var out []SiteMapSubArea
	for _, a := range m.Areas {
		for _, g := range a.Groups {
			out = append(out, g.SubAreas...)
		}
	}
	return out
}

// Tables returns the tables the navigation opens, each once, in navigation order.
func (m SiteMap) Tables() []string {
	var out []string
	for _, sa := range m.SubAreas() {
		if sa.Table != "" && !slices.Contains(out, sa.Table) {
			out = append(out, sa.Table)
		}
	}
	return out
}

// XML renders the sitemap as Dataverse stores it in sitemap.sitemapxml (SiteMap.xsd): titles as
// Titles/Title elements (the Title attributes are deprecated), ids derived from the declaration, so the
// same declaration renders to the same bytes and an unchanged sitemap is never written again.
func (m SiteMap) XML() string {
	var b strings.Builder
	attr := func(name, value string) {
		b.WriteString(" " + name + `="`)
		_ = xml.EscapeText(&b, []byte(value))
		b.WriteString(`"`)
	}
	titles := func(title string) {
		if title == "" {
			return
		}
		b.WriteString("<Titles><Title")
		attr("LCID", siteMapLCID)
		attr("Title", title)
		b.WriteString(" /></Titles>")
	}
	b.WriteString("<SiteMap")
	attr("IntroducedVersion", siteMapIntroducedVersion)
	b.WriteString(">")
	for _, a := range m.Areas {
		b.WriteString("<Area")
		attr("Id", a.id())
		attr("ShowGroups", "true")
		b.WriteString(">")
		titles(a.Title)
		for _, g := range a.Groups {
			b.WriteString("<Group")
			attr("Id", g.id())
			attr("IsProfile", "false")
			b.WriteString(">")
			titles(g.Title)
			for _, sa := range g.SubAreas {
				b.WriteString("<SubArea")
				attr("Id", sa.id())
				if sa.Table != "" {
					attr("Entity", sa.Table)
				} else {
					attr("Url", sa.URL)
				}
				if sa.Title == "" {
					b.WriteString(" />")
					continue
				}
				b.WriteString(">")
				titles(sa.Title)
				b.WriteString("</SubArea>")
			}
			b.WriteString("</Group>")
		}
		b.WriteString("</Area>")
	}
	b.WriteString("</SiteMap>")
	return b.String()
}

// siteMapProblems checks the navigation against the schema: every subarea opens a declared table or a URL,
// and ids are valid and unique where SiteMap.xsd requires it.
func (a *App) siteMapProblems(s Schema) []string {
	var out []string
	if a.UniqueName == "" {
		out = append(out, "app: no unique name")
	}
	m := a.SiteMap
	if len(m.Areas) == 0 {
		out = append(out, fmt.Sprintf("app %s: the sitemap has no areas", a.UniqueName))
	}
	ids := map[string]bool{}
	checkID := func(kind, id string) {
		if !siteMapID.MatchString(id) {
			out = append(out, fmt.Sprintf("sitemap %s id %q: only letters, digits and _", kind, id))
		}
		if ids[id] {
			out = append(out, fmt.Sprintf("sitemap %s id %q is used twice", kind, id))
		}
		ids[id] = true
	}
	for _, ar := range m.Areas {
		checkID("area", ar.id())
		if len(ar.Groups) == 0 {
			out = append(out, fmt.Sprintf("sitemap area %s has no groups", ar.id()))
		}
		for _, g := range ar.Groups {
			checkID("group", g.id())
			if len(g.SubAreas) == 0 {
				out = append(out, fmt.Sprintf("sitemap group %s has no subareas", g.id()))
			}
			for _, sa := range g.SubAreas {
				checkID("subarea", sa.id())
				switch {
				case sa.Table != "" && sa.URL != "":
					out = append(out, fmt.Sprintf("sitemap subarea %s names both a table and a URL", sa.id()))
				case sa.Table != "":
					if _, ok := s.Table(sa.Table); !ok {
						out = append(out, fmt.Sprintf("sitemap subarea %s opens table %s, which the schema does not declare", sa.id(), sa.Table))
					}
				case sa.URL == "":
					out = append(out, fmt.Sprintf("sitemap subarea %s opens neither a table nor a URL", sa.id()))
				}
			}
		}
	}
	return out
}

// The app module's fixed properties.
const (
	// DefaultAppIconID is the web resource Dataverse provides as a model-driven app's icon; an app module
	// needs a webresourceid (create-manage-model-driven-apps-using-code).
	DefaultAppIconID = "953b9fac-1e5e-e611-80d6-00155ded156f"
	appClientUnified = 4 // clienttype: Unified Interface
	appFormFactor    = 1 // formfactor: the main (desktop/browser) form factor
	appNavSingle     = 0 // navigationtype: single session

	// NotificationsSetting is the setting definition that switches in-app notifications on for an app
	// (the app designer's Settings → Features → In-app notifications).
	NotificationsSetting = "AllowNotificationsEarlyAccess"
)

// appModuleRow is the app module as the installer writes it; compared column by column with what exists.
func appModuleRow(a *App) Row {
	return Row{
		"name": a.DisplayName, "uniquename": a.UniqueName, "description": a.Description,
		"webresourceid": DefaultAppIconID, "clienttype": appClientUnified, "formfactor": appFormFactor,
		"navigationtype": appNavSingle,
	}
}

func siteMapRow(a *App) Row {
	return Row{"sitemapname": a.DisplayName, "sitemapnameunique": a.UniqueName, "sitemapxml": a.SiteMap.XML(), "isappaware": true}
}

// differing lists the columns of want whose value differs in have (text compared as written, numbers and
// booleans by value).
func differing(want, have Row) []string {
	var out []string
	for _, col := range slices.Sorted(maps.Keys(want)) {
		switch w := want[col].(type) {
		case string:
			if have.String(col) != w {
				out = append(out, col)
			}
		case int:
			if n, ok := have.Int(col); !ok || n != int64(w) {
				out = append(out, col)
			}
		case bool:
			if b, ok := have.Bool(col); !ok || b != w {
				out = append(out, col)
			}
		}
	}
	return out
}

// createInSolution creates a solution component row (sitemap, app module) in the schema's solution.
//
// API: POST /{entitySet} with MSCRM.SolutionUniqueName
func (c *Client) createInSolution(ctx context.Context, entitySet string, row Row, solution string) (GUID, error) {
	body, err := json.Marshal(row)
	if err != nil {
		return GUID{}, err
	}
	h := http.Header{}
	if solution != "" {
		h.Set("MSCRM.SolutionUniqueName", solution)
	}
	resp, err := c.doJSON(ctx, request{method: http.MethodPost, path: entitySet, header: h, body: body}, nil)
	if err != nil {
		return GUID{}, fmt.Errorf("dataverse: create %s: %w", entitySet, err)
	}
	return idFromEntityID(resp.Header.Get("OData-EntityId"))
}

// layers are a solution component's rows as published (what users see) and as last written (the
// unpublished layer, which also has every published row): nil where there is none.
type layers struct{ published, unpublished Row }

// current is the row as last written.
func (l layers) current() Row {
	if l.unpublished != nil {
		return l.unpublished
	}
	return l.published
}

// readLayers reads the first row matching q of an entity set whose rows are published (app modules,
// sitemaps, app settings) in both layers: the entity set lists published rows only, so an app created by
// an install that stopped before publishing is found only in the unpublished layer.
//
// API: GET /{entitySet}?…; GET /{entitySet}/Microsoft.Dynamics.CRM.RetrieveUnpublishedMultiple()?…
func (c *Client) readLayers(ctx context.Context, entitySet string, q *Query) (layers, error) {
	var l layers
	vals, err := q.values()
	if err != nil {
		return l, err
	}
	for _, unpublished := range []bool{false, true} {
		path := entitySet
		if unpublished {
			path += "/Microsoft.Dynamics.CRM.RetrieveUnpublishedMultiple()"
		}
		var p page
		if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: path, query: vals, idempotent: true}, &p); err != nil {
			return l, fmt.Errorf("dataverse: list %s: %w", path, err)
		}
		if len(p.Value) > 0 {
			if unpublished {
				l.unpublished = p.Value[0]
			} else {
				l.published = p.Value[0]
			}
		}
	}
	return l, nil
}

// tableIDs returns the MetadataId of every table, by logical name: a table is an app component by it.
//
// API: GET /EntityDefinitions?$select=LogicalName,MetadataId
func (c *Client) tableIDs(ctx context.Context) (map[string]GUID, error) {
	var out struct {
		Value []struct {
			LogicalName string `json:"LogicalName"`
			MetadataID  GUID   `json:"MetadataId"`
		} `json:"value"`
	}
	req := request{method: http.MethodGet, path: "EntityDefinitions", query: url.Values{"$select": {"LogicalName,MetadataId"}}, idempotent: true}
	if _, err := c.doJSON(ctx, req, &out); err != nil {
		return nil, fmt.Errorf("dataverse: list tables: %w", err)
	}
	ids := make(map[string]GUID, len(out.Value))
	for _, t := range out.Value {
		ids[t.LogicalName] = t.MetadataID
	}
	return ids, nil
}

// appComponent is a component of an app module as AddAppComponents takes it: its type and id.
type appComponent struct {
	kind string // entity, sitemap, systemform, savedquery
	id   GUID
}

func (ac appComponent) MarshalJSON() ([]byte, error) {
	key := map[string]string{"entity": "entityid", "sitemap": "sitemapid", "systemform": "formid", "savedquery": "savedqueryid"}[ac.kind]
	return json.Marshal(map[string]string{"@odata.type": "Microsoft.Dynamics.CRM." + ac.kind, key: ac.id.String()})
}

// addAppComponents adds components to an app module.
//
// API: POST /AddAppComponents {AppId, Components}
func (c *Client) addAppComponents(ctx context.Context, app GUID, comps []appComponent) error {
	body, err := json.Marshal(map[string]any{"AppId": app.String(), "Components": comps})
	if err != nil {
		return err
	}
	if _, err := c.doJSON(ctx, request{method: http.MethodPost, path: "AddAppComponents", body: body, idempotent: true}, nil); err != nil {
		return fmt.Errorf("dataverse: add app components: %w", err)
	}
	return nil
}

// appValidationIssue is one finding of ValidateApp (an item of AppValidationResponse.ValidationIssueList).
type appValidationIssue struct {
	ErrorType string `json:"ErrorType"` // Error or Warning
	Message   string `json:"Message"`
}

// validateApp checks the app for missing required components, as the app designer's Validate does. Only
// errors fail it: a warning such as "doesn't reference a form or view" is how an app that shows all of a
// table's forms and views is meant to be.
//
// API: GET /ValidateApp(AppModuleId={id})
func (c *Client) validateApp(ctx context.Context, app GUID) ([]appValidationIssue, error) {
	var out struct {
		Response struct {
			Success bool                 `json:"ValidationSuccess"`
			Issues  []appValidationIssue `json:"ValidationIssueList"`
		} `json:"AppValidationResponse"`
	}
	if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: "ValidateApp(AppModuleId=" + app.String() + ")", idempotent: true}, &out); err != nil {
		return nil, fmt.Errorf("dataverse: validate app: %w", err)
	}
	var errs []string
	for _, is := range out.Response.Issues {
		if is.ErrorType == "Error" {
			errs = append(errs, is.Message)
		}
	}
	if !out.Response.Success || len(errs) > 0 {
		return out.Response.Issues, fmt.Errorf("dataverse: the app does not validate: %s", strings.Join(errs, "; "))
	}
	return out.Response.Issues, nil
}

// saveSettingValue sets an app's value of a setting (an appsetting row), creating or updating it.
//
// API: POST /SaveSettingValue {AppUniqueName, SettingName, Value, SolutionUniqueName}
func (c *Client) saveSettingValue(ctx context.Context, app, setting, value, solution string) error {
	body := map[string]any{"AppUniqueName": app, "SettingName": setting, "Value": value}
	if solution != "" {
		body["SolutionUniqueName"] = solution
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	if _, err := c.doJSON(ctx, request{method: http.MethodPost, path: "SaveSettingValue", body: data, idempotent: true}, nil); err != nil {
		return fmt.Errorf("dataverse: save setting %s of app %s: %w", setting, app, err)
	}
	return nil
}

// publishApp publishes an app module and its sitemap, so users see the changes.
//
// API: POST /PublishXml
func (c *Client) publishApp(ctx context.Context, app, siteMap GUID) error {
	x := "<importexportxml><appmodules><appmodule>" + app.String() + "</appmodule></appmodules>" +
		"<sitemaps><sitemap>" + siteMap.String() + "</sitemap></sitemaps></importexportxml>"
	if err := c.postMetadata(ctx, "PublishXml", map[string]any{"ParameterXml": x}, ""); err != nil {
		return fmt.Errorf("dataverse: publish app: %w", err)
	}
	return nil
}

// planAppModule plans the app itself: its sitemap, the app module, its components (the sitemap and the
// tables the sitemap opens) and the in-app notifications setting. It returns the app as the plan knows it,
// for what is planned after it (the command buttons and the roles that belong to the app, then
// planAppPublish). Each kind is read once.
//
// The app's components are the tables, not their forms and views one by one: an app whose table names no
// form or view shows all of them (ValidateApp says so as a warning), and every form and view of the
// connector's tables is the installer's own (Forms, Views) or Dataverse's default one. That keeps the app
// right whatever forms and views exist, without reading them at apply time.
func (c *Client) planAppModule(ctx context.Context, s Schema, a *App, p *Plan) (*appModule, error) {
	sol := s.SolutionName
	changed := false
	app := &appModule{}

	siteMaps, err := c.readLayers(ctx, "sitemaps", &Query{Select: []string{"sitemapid", "sitemapname", "sitemapnameunique", "sitemapxml", "isappaware"}, Filter: Eq("sitemapnameunique", a.UniqueName), Top: 1})
	if err != nil {
		return nil, err
	}
	haveSiteMap := siteMaps.current()
	if haveSiteMap != nil {
		app.siteMapID, _ = haveSiteMap.GUID("sitemapid")
	}
	wantSiteMap := siteMapRow(a)
	if haveSiteMap == nil {
		p.add(fmt.Sprintf("create sitemap %s (%d areas, %d subareas)", a.UniqueName, len(a.SiteMap.Areas), len(a.SiteMap.SubAreas())), func(ctx context.Context) error {
			id, err := c.createInSolution(ctx, "sitemaps", wantSiteMap, sol)
			app.siteMapID = id
			return err
		})
		changed = true
	} else if diff := differing(wantSiteMap, haveSiteMap); len(diff) > 0 {
		p.add(fmt.Sprintf("update sitemap %s: %s changed", a.UniqueName, describeSiteMapDiff(diff)), func(ctx context.Context) error {
			_, err := c.Update(ctx, "sitemaps", app.siteMapID, pick(wantSiteMap, diff), nil)
			return err
		})
		changed = true
	}

	var appUnique GUID
	apps, err := c.readLayers(ctx, "appmodules", &Query{Select: []string{"appmoduleid", "appmoduleidunique", "name", "uniquename", "description", "webresourceid", "clienttype", "formfactor", "navigationtype"}, Filter: Eq("uniquename", a.UniqueName), Top: 1})
	if err != nil {
		return nil, err
	}
	haveApp := apps.current()
	if haveApp != nil {
		app.id, _ = haveApp.GUID("appmoduleid")
		appUnique, _ = haveApp.GUID("appmoduleidunique")
		app.exists = true
	}
	wantApp := appModuleRow(a)
	if haveApp == nil {
		p.add(fmt.Sprintf("create app %s (%s)", a.UniqueName, a.DisplayName), func(ctx context.Context) error {
			id, err := c.createInSolution(ctx, "appmodules", wantApp, sol)
			app.id = id
			return err
		})
		changed = true
	} else if diff := differing(wantApp, haveApp); len(diff) > 0 {
		p.add(fmt.Sprintf("update app %s: %s changed", a.UniqueName, strings.Join(diff, ", ")), func(ctx context.Context) error {
			_, err := c.Update(ctx, "appmodules", app.id, pick(wantApp, diff), nil)
			return err
		})
		changed = true
	}

	// Components: the sitemap and the tables it opens.
	tables := a.SiteMap.Tables()
	haveComponents := map[GUID]bool{}
	var ids map[string]GUID
	if haveApp != nil {
		for row, err := range c.List(ctx, "appmodulecomponents", &Query{Select: []string{"componenttype", "objectid"}, Filter: Eq(LookupValue("appmoduleidunique"), appUnique)}) {
			if err != nil {
				return nil, err
			}
			if id, ok := row.GUID("objectid"); ok {
				haveComponents[id] = true
			}
		}
		var err error
		if ids, err = c.tableIDs(ctx); err != nil {
			return nil, err
		}
	}
	var missing []string
	missingSiteMap := haveSiteMap == nil || !haveComponents[app.siteMapID]
	if missingSiteMap {
		missing = append(missing, "sitemap")
	}
	var missingTables []string
	for _, t := range tables {
		if id, ok := ids[t]; !ok || !haveComponents[id] {
			missingTables = append(missingTables, t)
		}
	}
	if len(missingTables) > 0 {
		missing = append(missing, "tables "+strings.Join(missingTables, ", "))
	}
	if len(missing) > 0 {
		p.add(fmt.Sprintf("add to app %s: %s", a.UniqueName, strings.Join(missing, "; ")), func(ctx context.Context) error {
			var comps []appComponent
			if missingSiteMap {
				comps = append(comps, appComponent{kind: "sitemap", id: app.siteMapID})
			}
			if len(missingTables) > 0 {
				// Tables created by this plan have their ids only now.
				ids, err := c.tableIDs(ctx)
				if err != nil {
					return err
				}
				for _, t := range missingTables {
					id, ok := ids[t]
					if !ok {
						return fmt.Errorf("dataverse: table %s does not exist", t)
					}
					comps = append(comps, appComponent{kind: "entity", id: id})
				}
			}
			return c.addAppComponents(ctx, app.id, comps)
		})
		changed = true
	}

	// What users see is the published layer: publish when it is not what the declaration says, even when
	// nothing is written now (an earlier install stopped before publishing).
	unpublished := siteMaps.published == nil || len(differing(wantSiteMap, siteMaps.published)) > 0 ||
		apps.published == nil || len(differing(wantApp, apps.published)) > 0
	settingUnpublished, err := c.planNotificationsSetting(ctx, s, a, p, app.id, haveApp != nil, &changed)
	if err != nil {
		return nil, err
	}
	app.publish = changed || unpublished || settingUnpublished
	return app, nil
}

// planAppPublish validates and publishes the app when planAppModule found it changed or unpublished: the
// last of the app's changes, after everything in it.
func (c *Client) planAppPublish(a *App, app *appModule, p *Plan) {
	if !app.publish {
		return
	}
	p.add(fmt.Sprintf("validate app %s", a.UniqueName), func(ctx context.Context) error {
		_, err := c.validateApp(ctx, app.id)
		return err
	})
	p.add(fmt.Sprintf("publish app %s and its sitemap", a.UniqueName), func(ctx context.Context) error {
		return c.publishApp(ctx, app.id, app.siteMapID)
	})
}

// planNotificationsSetting plans the app's value of the in-app notifications setting, and reports whether
// the published value differs from the declaration (the app needs publishing for it to apply).
//
// API: GET /settingdefinitions?$filter=uniquename eq 'AllowNotificationsEarlyAccess';
// GET /appsettings?$filter=_parentappmoduleid_value eq {app} and _settingdefinitionid_value eq {definition}
// (both layers)
func (c *Client) planNotificationsSetting(ctx context.Context, s Schema, a *App, p *Plan, appID GUID, appExists bool, changed *bool) (unpublished bool, err error) {
	var defID GUID
	defValue, found := "", false
	for row, err := range c.List(ctx, "settingdefinitions", &Query{Select: []string{"settingdefinitionid", "defaultvalue"}, Filter: Eq("uniquename", NotificationsSetting), Top: 1}) {
		if err != nil {
			return false, err
		}
		defID, _ = row.GUID("settingdefinitionid")
		defValue, found = row.String("defaultvalue"), true
	}
	if !found {
		if a.Notifications {
			p.Problems = append(p.Problems, fmt.Sprintf("this environment has no setting %s, so in-app notifications cannot be switched on for app %s: switch them on in the app designer (Settings → Features → In-app notifications)", NotificationsSetting, a.UniqueName))
		}
		return false, nil
	}
	have, published := defValue, defValue
	if appExists {
		l, err := c.readLayers(ctx, "appsettings", &Query{Select: []string{"value"}, Filter: And(Eq(LookupValue("parentappmoduleid"), appID), Eq(LookupValue("settingdefinitionid"), defID)), Top: 1})
		if err != nil {
			return false, err
		}
		if l.published != nil {
			published = l.published.String("value")
		}
		if cur := l.current(); cur != nil {
			have = cur.String("value")
		}
	}
	want := "false"
	if a.Notifications {
		want = "true"
	}
	if strings.EqualFold(have, want) {
		return !strings.EqualFold(published, want), nil
	}
	verb := "switch off"
	if a.Notifications {
		verb = "switch on"
	}
	p.add(fmt.Sprintf("%s in-app notifications for app %s (setting %s = %s)", verb, a.UniqueName, NotificationsSetting, want), func(ctx context.Context) error {
		return c.saveSettingValue(ctx, a.UniqueName, NotificationsSetting, want, s.SolutionName)
	})
	*changed = true
	return true, nil
}

func pick(r Row, cols []string) Row {
	out := Row{}
	for _, c := range cols {
		out[c] = r[c]
	}
	return out
}

func describeSiteMapDiff(cols []string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = map[string]string{"sitemapxml": "navigation", "sitemapname": "name", "isappaware": "app-aware"}[c]
		if names[i] == "" {
			names[i] = c
		}
	}
	return strings.Join(names, ", ")
}
