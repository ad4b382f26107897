package dataversetest

import (
	"bytes"
	"embed"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The simulator's pages: a simulator of the pages of Dynamics 365's model-driven apps, for the sandbox and
// tests, driven only by the metadata stored in the simulator (what `connector dataverse install` wrote):
//
//   - /main.aspx: the app picker (appmodules), or a page saying no app is installed;
//   - /main.aspx?appid=…: the app's sitemap (sitemaps.sitemapxml: areas, groups, subareas) as the left
//     navigation, opening its first subarea;
//   - …&pagetype=entitylist&etn=<table>[&viewid=…]: a view (savedqueries of query type 0, the default one
//     unless viewid names another) as a grid: its FetchXml run against the store (fetchxml.go), its
//     LayoutXml's columns and widths, a view picker;
//   - …&pagetype=entityrecord&etn=<table>&id=<row>: the table's main form (systemforms of type 2, the
//     default one, the last created when several say so) rendered from its FormXml: header, tabs, sections,
//     rows, cells with labels and values formatted by column type, read-only where the control is disabled,
//     subgrids as small grids of related rows; edits save through the Web API (PATCH) as Dynamics does;
//   - the command bar: the appactions of the table and location (form or main grid), whose buttons load
//     the web resource named by onclickeventjavascriptwebresourceid from /WebResources/<name> and call its
//     function with the primary control (the form's or grid's context); the Xrm host the scripts call is
//     one script include (xrmHostScript);
//   - the bell, when the app has in-app notifications switched on (its published app setting): in-app
//     notifications (appnotifications), newest first, with their actions' links opening the row inside the
//     app.
//
// Apps and sitemaps are read from their published layer, as people see them in Dynamics.
//
// The sandbox has no sign-in. The pages act as (and write as, through MSCRMCallerID) the user named by
// ?user=<systemuserid>, or else the first enabled user who is not the application user, or else the
// application user. The bell shows the notifications of every user, each with its recipient's name.
//
// What the pages do not render they say on the page (a control, a link-entity, a condition, a Power Fx
// command, form scripts) rather than drop it. Everything is served from this package (embedded), with no
// network.

// PagesPath is the address of the app pages on the simulator, as in Dynamics.
const PagesPath = "/main.aspx"

// xrmHostScript is the minimal Xrm host the command scripts call (Xrm.WebApi, Xrm.Utility), served by the
// simulator's commands (serveApp). The pages work without it; only command scripts that call Xrm need it.
const xrmHostScript = "/sandbox/xrm.js"

// assetsPath serves the pages' stylesheet and script.
const assetsPath = "/_pages/"

//go:embed pages
var pageFiles embed.FS

var pageTemplates = template.Must(template.New("pages").Funcs(template.FuncMap{
	"json": func(v any) (template.JS, error) {
		b, err := json.Marshal(v)
		return template.JS(b), err
	},
}).ParseFS(pageFiles, "pages/*.html"))

// Form control class ids the pages render (FormXml <control classid>, "control (FormXml)").
var fieldControlClasses = map[string]bool{
	"{4273edbd-ac1d-40d3-9fb2-095c621b552d}": true, // text
	"{ada2203e-b4cd-49be-9ddf-234642b43b52}": true, // email
	"{71716b6c-711e-476c-8ab8-5d11542bfb47}": true, // url
	"{8c10015a-b339-4982-9474-a95fe05631a5}": true, // phone
	"{e0dece4b-6fc8-4a8f-a065-082708572369}": true, // multiple lines of text
	"{c6d124ca-7eda-4a60-aea9-7fb8d318b68f}": true, // whole number
	"{c3efe0c3-0ec6-42be-8349-cbd9079dfd8e}": true, // decimal
	"{533b9e00-756b-4312-95a0-dc888637ac78}": true, // currency
	"{67fac785-cd58-4f9f-abb3-4b7ddc6ed5ed}": true, // two options
	"{5b773807-9fb2-42db-97c3-7a91eff8adff}": true, // date and time
	"{3ef39988-22bb-4f0b-bbbe-64b5a3748aee}": true, // choice
	"{5d68b988-0661-4db2-bc3e-17598ad3be6c}": true, // status reason
	"{270bd3db-d9af-4782-9025-509e298dec0a}": true, // lookup
}

const subgridControlClass = "{e7a81278-8635-4d9e-8d4d-59480b391c5b}"

// servePages serves the app pages and their assets; it reports whether the request was one of them.
func (s *Server) servePages(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		http.Redirect(w, r, PagesPath, http.StatusFound)
	case r.URL.Path == PagesPath:
		s.mainPage(w, r)
	case strings.HasPrefix(r.URL.Path, assetsPath):
		name := path.Clean(strings.TrimPrefix(r.URL.Path, assetsPath))
		b, err := fs.ReadFile(pageFiles, "pages/"+name)
		if err != nil || strings.Contains(name, "/") || strings.HasSuffix(name, ".html") {
			http.NotFound(w, r)
			return true
		}
		types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
		w.Header().Set("Content-Type", types[path.Ext(name)])
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	default:
		return false
	}
	return true
}

// page is what one page shows.
type page struct {
	Title string
	App   *appView
	Apps  []appView
	Nav   []navArea
	Bell  []bellItem
	// BellOn: the app has in-app notifications switched on (its published app setting), so it has a bell.
	BellOn   bool
	User     userView
	Commands []commandView
	Notes    []string
	Message  string
	List     *listView
	Record   *recordView
	// Sets maps the tables' logical names to their entity sets, for the page's script.
	Sets    map[string]string
	XrmHost string
}

type appView struct{ ID, Name, UniqueName, Description, Href string }

type userView struct{ ID, Name, Rule string }

type navArea struct {
	Title  string
	Groups []navGroup
}

type navGroup struct {
	Title    string
	SubAreas []navLink
}

type navLink struct {
	Title, Href, Note string
	Current           bool
}

type bellItem struct {
	Title, Body, Icon, When, Recipient string
	Actions                            []navLink
}

type commandView struct {
	ID, Label, Tooltip, WebResource, Function, Parameters, Note string
}

type listView struct {
	Table, TableLabel string
	Views             []option
	ViewID            string
	Grid              gridView
	// Hidden carries the page's other parameters through the view picker's form.
	Hidden map[string]string
}

type option struct {
	Value, Label, Href string
	Selected           bool
}

type gridView struct {
	Caption string
	Columns []gridColumn
	Rows    []gridRow
	Total   int
	Notes   []string
	Empty   string
	More    string
}

type gridColumn struct {
	Label string
	Width int
}

type gridRow struct {
	ID    string
	Cells []gridCell
}

type gridCell struct{ Text, Href string }

type recordView struct {
	Table, TableLabel, Set, ID, Name, State, FormName string
	Header                                            []fieldView
	Tabs                                              []tabView
	Forms                                             []option
	Notes                                             []string
}

type tabView struct {
	Anchor, Label string
	Sections      []sectionView
}

type sectionView struct {
	Label string
	Cells []cellView
}

type cellView struct {
	Field       *fieldView
	Subgrid     *gridView
	Label       string
	Unsupported string
}

type fieldView struct {
	InputID, Column, Label, Kind, Value, Display, Href, Target string
	ReadOnly                                                   bool
	Options                                                    []option
}

// Script is what the page's script needs: who it acts as, the entity sets, the app and the row.
func (p *page) Script() map[string]any {
	out := map[string]any{"userId": p.User.ID, "userName": p.User.Name, "sets": p.Sets}
	if p.App != nil {
		out["appId"] = p.App.ID
	}
	if p.Record != nil {
		out["table"], out["id"], out["set"] = p.Record.Table, p.Record.ID, p.Record.Set
	}
	if p.List != nil {
		out["table"], out["set"] = p.List.Table, p.Sets[p.List.Table]
	}
	return out
}

// mainPage serves /main.aspx. ?part=record answers only the form (for formContext.data.refresh).
func (s *Server) mainPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	p := s.buildPage(q)
	s.mu.Unlock()
	name := "page"
	if q.Get("part") == "record" {
		name = "record"
		if p.Record == nil {
			http.Error(w, p.Message, http.StatusNotFound)
			return
		}
	}
	var b bytes.Buffer
	var data any = p
	if name == "record" {
		data = p.Record
	}
	if err := pageTemplates.ExecuteTemplate(&b, name, data); err != nil {
		http.Error(w, "The page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// buildPage gathers what the page shows. The caller holds s.mu.
func (s *Server) buildPage(q url.Values) *page {
	p := &page{XrmHost: xrmHostScript, Sets: map[string]string{}}
	for name, t := range s.tables {
		p.Sets[name] = t.def.EntitySetName
	}
	p.User = s.pageUser(q.Get("user"))
	apps := s.publishedRows("appmodule")
	for _, a := range apps {
		p.Apps = append(p.Apps, s.appOf(a))
	}
	appID, appName := bareID(q.Get("appid")), q.Get("appname")
	for i, a := range apps {
		if (appID != "" && a.id == appID) || (appName != "" && strings.EqualFold(str(a.values["uniquename"]), appName)) {
			p.App = &p.Apps[i]
		}
	}
	pageType, etn := q.Get("pagetype"), q.Get("etn")
	switch {
	case p.App == nil && pageType == "" && len(apps) == 0:
		p.Title = "No app installed"
		p.Message = "No model-driven app is installed and published in this Dataverse environment yet. `connector dataverse install` (or `make run`, which installs through it) puts the CSP Connector app here."
		return p
	case p.App == nil && (appID != "" || appName != ""):
		p.Title = "App not found"
		p.Message = "No app with that id or name is installed in this environment. Choose one of the apps below."
		return p
	case p.App == nil && pageType == "":
		p.Title = "Apps"
		return p
	}
	var firstTable string
	if p.App != nil {
		p.Nav, firstTable, p.Notes = s.siteMapOf(p.App, apps, etn)
		if p.BellOn = s.notificationsOn(p.App); p.BellOn {
			p.Bell = s.bell()
		}
	}
	if pageType == "" {
		if firstTable == "" {
			p.Title = p.App.Name
			p.Message = "This app's sitemap opens no table."
			return p
		}
		pageType, etn = "entitylist", firstTable
		p.Nav, _, _ = s.siteMapOf(p.App, apps, etn)
	}
	t := s.tables[etn]
	if t == nil {
		p.Title = "Table not found"
		p.Message = fmt.Sprintf("There is no table %q in this environment.", etn)
		return p
	}
	switch pageType {
	case "entitylist":
		p.List = s.listOf(p.App, t, bareID(q.Get("viewid")))
		p.Title = p.List.TableLabel
		p.Commands, p.Notes = s.commandsOf(p.App, t, 1, p.Notes)
		p.List.Hidden = map[string]string{"pagetype": "entitylist", "etn": etn}
		if p.App != nil {
			p.List.Hidden["appid"] = p.App.ID
		}
	case "entityrecord":
		rec := t.rows[bareID(q.Get("id"))]
		if rec == nil {
			p.Title = "Row not found"
			p.Message = fmt.Sprintf("This %s does not exist: it may have been deleted.", tableLabel(t))
			return p
		}
		p.Record = s.recordOf(p.App, t, rec, bareID(q.Get("formid")))
		p.Title = p.Record.Name
		p.Commands, p.Notes = s.commandsOf(p.App, t, 0, p.Notes)
	default:
		p.Title = "Page not supported"
		p.Message = fmt.Sprintf("The sandbox does not render pages of type %q; it renders entitylist and entityrecord.", pageType)
	}
	return p
}

func (s *Server) rowsOf(table string) []*record {
	t := s.tables[table]
	if t == nil {
		return nil
	}
	return s.rowsOfTable(t)
}

func (s *Server) rowsOfTable(t *table) []*record {
	out := make([]*record, 0, len(t.order))
	for _, id := range t.order {
		if r := t.rows[id]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// publishedRows are the rows people see: for app modules, sitemaps and app settings, those last published
// (what is written and not yet published shows nowhere, as in Dynamics); for other tables, every row.
func (s *Server) publishedRows(table string) []*record {
	t := s.tables[table]
	if t == nil {
		return nil
	}
	for _, name := range layered {
		if name == table {
			return s.rowsOfTable(s.publishedTable(t))
		}
	}
	return s.rowsOfTable(t)
}

// notificationsOn says whether in-app notifications are switched on for the app: its published value of
// the setting, or else the setting's default.
func (s *Server) notificationsOn(app *appView) bool {
	var def *record
	for _, d := range s.rowsOf("settingdefinition") {
		if strings.EqualFold(str(d.values["uniquename"]), dataverse.NotificationsSetting) {
			def = d
		}
	}
	if def == nil {
		return false
	}
	value := str(def.values["defaultvalue"])
	for _, v := range s.publishedRows("appsetting") {
		if v.values["parentappmoduleid"] == app.ID && v.values["settingdefinitionid"] == def.id {
			value = str(v.values["value"])
		}
	}
	return strings.EqualFold(value, "true")
}

func bareID(s string) string {
	id, err := uuid.Parse(strings.Trim(strings.TrimSpace(s), "{}"))
	if err != nil {
		return ""
	}
	return id.String()
}

func (s *Server) appOf(a *record) appView {
	return appView{ID: a.id, Name: str(a.values["name"]), UniqueName: str(a.values["uniquename"]), Description: str(a.values["description"]),
		Href: PagesPath + "?appid=" + a.id}
}

func tableLabel(t *table) string {
	if t.def.PluralName != "" {
		return t.def.PluralName
	}
	return t.def.DisplayName
}

func (s *Server) listHref(app *appView, table string, extra ...string) string {
	v := url.Values{}
	if app != nil {
		v.Set("appid", app.ID)
	}
	v.Set("pagetype", "entitylist")
	v.Set("etn", table)
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return PagesPath + "?" + v.Encode()
}

func (s *Server) recordHref(app *appView, table, id string) string {
	v := url.Values{}
	if app != nil {
		v.Set("appid", app.ID)
	}
	v.Set("pagetype", "entityrecord")
	v.Set("etn", table)
	v.Set("id", id)
	return PagesPath + "?" + v.Encode()
}

// pageUser is who the page acts as: the user named, else the first enabled person, else the application user.
func (s *Server) pageUser(named string) userView {
	app := s.opts.UserID.String()
	users := s.tables["systemuser"]
	rule := "The sandbox has no sign-in: pages act as the first user who is not the connector's application user (add ?user=<systemuserid> to act as another)."
	if id := bareID(named); id != "" && users.rows[id] != nil {
		return userView{ID: id, Name: str(users.rows[id].values["fullname"]), Rule: "Acting as the user named in the address (?user=…)."}
	}
	for _, id := range users.order {
		r := users.rows[id]
		if id != app && r != nil && r.values["isdisabled"] != true {
			return userView{ID: id, Name: str(r.values["fullname"]), Rule: rule}
		}
	}
	return userView{ID: app, Name: str(users.rows[app].values["fullname"]), Rule: rule}
}

// bell lists the in-app notifications, newest first.
func (s *Server) bell() []bellItem {
	rows := s.rowsOf("appnotification")
	sort.SliceStable(rows, func(i, j int) bool {
		a, _ := rows[i].values["createdon"].(time.Time)
		b, _ := rows[j].values["createdon"].(time.Time)
		return a.After(b)
	})
	icons := map[int64]string{100000000: "Info", 100000001: "Success", 100000002: "Failure", 100000003: "Warning", 100000004: "Mention", 100000005: "Custom"}
	var out []bellItem
	for _, r := range rows {
		it := bellItem{Title: str(r.values["title"]), Body: str(r.values["body"]), Icon: "Info"}
		if v, ok := r.values["icontype"].(int64); ok && icons[v] != "" {
			it.Icon = icons[v]
		}
		if at, ok := r.values["createdon"].(time.Time); ok {
			it.When = at.UTC().Format("2 Jan 2006 15:04 UTC")
		}
		if owner := str(r.values["ownerid"]); owner != "" {
			it.Recipient = s.primaryName(r.lookupTables["ownerid"], owner)
		}
		var data struct {
			Actions []struct {
				Title string `json:"title"`
				Data  struct {
					URL string `json:"url"`
				} `json:"data"`
			} `json:"actions"`
		}
		if raw := str(r.values["data"]); raw != "" && json.Unmarshal([]byte(raw), &data) == nil {
			for _, a := range data.Actions {
				it.Actions = append(it.Actions, navLink{Title: a.Title, Href: actionHref(a.Data.URL)})
			}
		}
		out = append(out, it)
	}
	return out
}

// actionHref resolves a notification action's URL: a relative one ("?pagetype=…") is relative to the
// app's main page, as in Dynamics.
func actionHref(u string) string {
	switch {
	case strings.HasPrefix(u, "?"):
		return PagesPath + u
	case strings.HasPrefix(u, "main.aspx"):
		return "/" + u
	}
	return u
}

// siteMap documents (SiteMap XML).
type siteMapDoc struct {
	Areas []struct {
		Title  string     `xml:"Title,attr"`
		Titles []xmlTitle `xml:"Titles>Title"`
		Groups []struct {
			Title    string     `xml:"Title,attr"`
			Titles   []xmlTitle `xml:"Titles>Title"`
			SubAreas []struct {
				ID     string     `xml:"Id,attr"`
				Entity string     `xml:"Entity,attr"`
				URL    string     `xml:"Url,attr"`
				Title  string     `xml:"Title,attr"`
				Titles []xmlTitle `xml:"Titles>Title"`
			} `xml:"SubArea"`
		} `xml:"Group"`
	} `xml:"Area"`
}

type xmlTitle struct {
	LCID  string `xml:"LCID,attr"`
	Title string `xml:"Title,attr"`
}

func titleOf(attr string, titles []xmlTitle) string {
	for _, t := range titles {
		if t.LCID == "1033" {
			return t.Title
		}
	}
	if len(titles) > 0 {
		return titles[0].Title
	}
	return attr
}

// siteMapOf renders the app's sitemap (the sitemap whose unique name is the app's, else the only one) as
// navigation; first is the table its first subarea opens.
func (s *Server) siteMapOf(app *appView, apps []*record, current string) (nav []navArea, first string, notes []string) {
	maps := s.publishedRows("sitemap")
	var sm *record
	for _, m := range maps {
		if strings.EqualFold(str(m.values["sitemapnameunique"]), app.UniqueName) {
			sm = m
		}
	}
	if sm == nil && len(maps) == 1 && len(apps) == 1 {
		sm = maps[0]
	}
	if sm == nil {
		return nil, "", []string{"This app has no sitemap (no sitemap's unique name is " + app.UniqueName + "), so there is no navigation."}
	}
	var doc siteMapDoc
	if err := xml.Unmarshal([]byte(str(sm.values["sitemapxml"])), &doc); err != nil {
		return nil, "", []string{"This app's sitemap could not be read: " + err.Error()}
	}
	for _, a := range doc.Areas {
		area := navArea{Title: titleOf(a.Title, a.Titles)}
		for _, g := range a.Groups {
			group := navGroup{Title: titleOf(g.Title, g.Titles)}
			for _, sa := range g.SubAreas {
				link := navLink{Title: titleOf(sa.Title, sa.Titles)}
				switch t := s.tables[sa.Entity]; {
				case sa.Entity != "" && t != nil:
					if link.Title == "" {
						link.Title = tableLabel(t)
					}
					link.Href = s.listHref(app, sa.Entity)
					link.Current = sa.Entity == current
					if first == "" {
						first = sa.Entity
					}
				case sa.Entity != "":
					link.Note = "opens table " + sa.Entity + ", which does not exist"
				default:
					link.Note = "opens " + sa.URL + ", which the sandbox does not render"
				}
				if link.Title == "" {
					link.Title = sa.ID
				}
				group.SubAreas = append(group.SubAreas, link)
			}
			area.Groups = append(area.Groups, group)
		}
		nav = append(nav, area)
	}
	return nav, first, nil
}

// views are the public views (query type 0) of a table, by name.
func (s *Server) viewsOf(table string) []*record {
	var out []*record
	for _, v := range s.rowsOf("savedquery") {
		if str(v.values["returnedtypecode"]) == table && v.values["querytype"] == int64(0) {
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return str(out[i].values["name"]) < str(out[j].values["name"]) })
	return out
}

// preferred picks the row named by id, else the last created of those marked default, else the first.
func preferred(rows []*record, id string, created func(*record) int) *record {
	var pick *record
	for _, r := range rows {
		if r.id == id {
			return r
		}
		if r.values["isdefault"] == true && (pick == nil || created(r) > created(pick)) {
			pick = r
		}
	}
	if pick == nil && len(rows) > 0 {
		pick = rows[0]
	}
	return pick
}

func (s *Server) creationOrder(table string) func(*record) int {
	t := s.tables[table]
	return func(r *record) int { return slices.Index(t.order, r.id) }
}

func (s *Server) listOf(app *appView, t *table, viewID string) *listView {
	l := &listView{Table: t.def.LogicalName, TableLabel: tableLabel(t)}
	views := s.viewsOf(t.def.LogicalName)
	v := preferred(views, viewID, s.creationOrder("savedquery"))
	for _, x := range views {
		l.Views = append(l.Views, option{Value: x.id, Label: str(x.values["name"]), Selected: x == v})
	}
	if v == nil {
		l.Grid = gridView{Caption: l.TableLabel, Notes: []string{"This table has no public view, so there is nothing to show."}}
		return l
	}
	l.ViewID = v.id
	l.Grid = s.gridOf(app, v, nil, 250)
	l.Grid.Caption = str(v.values["name"])
	return l
}

// layoutDoc is a view's LayoutXml.
type layoutDoc struct {
	Jump string `xml:"jump,attr"`
	Rows []struct {
		Cells []struct {
			Name     string `xml:"name,attr"`
			Width    string `xml:"width,attr"`
			IsHidden string `xml:"ishidden,attr"`
		} `xml:"cell"`
	} `xml:"row"`
}

// gridOf runs a view (its FetchXml, and extra when given) and lays out its LayoutXml's columns; at most
// limit rows are shown.
func (s *Server) gridOf(app *appView, view *record, extra func(*record) bool, limit int) gridView {
	g := gridView{Caption: str(view.values["name"]), Empty: "No data available."}
	q, err := s.compileFetch(str(view.values["fetchxml"]))
	if err != nil {
		g.Notes = append(g.Notes, err.Error())
		return g
	}
	for _, u := range q.unsupported {
		g.Notes = append(g.Notes, "This view uses "+u+".")
	}
	var layout layoutDoc
	if err := xml.Unmarshal([]byte(str(view.values["layoutxml"])), &layout); err != nil {
		g.Notes = append(g.Notes, "The view's LayoutXml could not be read: "+err.Error())
	}
	t := q.t
	type col struct {
		name string
		ok   bool
	}
	var cols []col
	for _, row := range layout.Rows {
		for _, c := range row.Cells {
			if c.IsHidden == "1" || c.IsHidden == "true" {
				continue
			}
			w, _ := strconv.Atoi(c.Width)
			label := c.Name
			_, ok := t.cols[c.Name]
			if ok {
				label = t.cols[c.Name].DisplayName
			} else {
				g.Notes = append(g.Notes, fmt.Sprintf("The column %s is not one of %s's columns (a linked table's?): the sandbox leaves it empty.", c.Name, t.def.LogicalName))
			}
			cols = append(cols, col{c.Name, ok})
			g.Columns = append(g.Columns, gridColumn{Label: label, Width: w})
		}
	}
	if len(cols) == 0 {
		cols = []col{{t.def.PrimaryName.LogicalName, true}}
		g.Columns = []gridColumn{{Label: t.def.PrimaryName.DisplayName, Width: 300}}
	}
	jump := layout.Jump
	if jump == "" {
		jump = t.def.PrimaryName.LogicalName
	}
	rows := q.run(extra)
	g.Total = len(rows)
	if len(rows) > limit {
		g.More = fmt.Sprintf("Showing the first %d of %d rows.", limit, len(rows))
		rows = rows[:limit]
	}
	for _, r := range rows {
		gr := gridRow{ID: r.id}
		linked := false
		for _, c := range cols {
			cell := gridCell{}
			if c.ok {
				cell = s.displayOf(app, t, r, c.name)
			}
			if c.name == jump && !linked {
				cell.Href = s.recordHref(app, t.def.LogicalName, r.id)
				if cell.Text == "" {
					cell.Text = "(no name)"
				}
				linked = true
			}
			gr.Cells = append(gr.Cells, cell)
		}
		if !linked {
			gr.Cells[0].Href = s.recordHref(app, t.def.LogicalName, r.id)
			if gr.Cells[0].Text == "" {
				gr.Cells[0].Text = "(open)"
			}
		}
		g.Rows = append(g.Rows, gr)
	}
	return g
}

// displayOf is a column's value as a page shows it: choices by label, lookups by the row's name (a link
// to it), dates and numbers as the Web API formats them.
func (s *Server) displayOf(app *appView, t *table, r *record, name string) gridCell {
	c := t.cols[name]
	v := r.values[name]
	if v == nil {
		return gridCell{}
	}
	if flags, ok := writeOnlyColumns[t.def.LogicalName]; ok {
		if _, secret := flags[name]; secret {
			return gridCell{Text: "(hidden: write-only)"}
		}
	}
	switch c.Type {
	case dataverse.TypeLookup:
		target := r.lookupTables[name]
		if target == "" {
			target = c.Target
		}
		text := s.primaryName(target, v.(string))
		if text == "" {
			text = "(no name)"
		}
		return gridCell{Text: text, Href: s.recordHref(app, target, v.(string))}
	case dataverse.TypeDateTime:
		if at, ok := v.(time.Time); ok {
			return gridCell{Text: at.UTC().Format("2 Jan 2006 15:04 UTC")}
		}
	}
	if f := formatValue(c, v); f != "" {
		return gridCell{Text: f}
	}
	return gridCell{Text: fmt.Sprint(v)}
}

// commandsOf lists the command buttons (appactions) of a table at a location (0 form, 1 main grid) in the
// app: those made in it (appmoduleid) and those made in none.
func (s *Server) commandsOf(app *appView, t *table, location int64, notes []string) ([]commandView, []string) {
	var rows []*record
	for _, a := range s.rowsOf("appaction") {
		ctx, _ := a.values["context"].(int64)
		if a.values["hidden"] == true || a.values["location"] != location {
			continue
		}
		if in := str(a.values["appmoduleid"]); in != "" && (app == nil || in != app.ID) {
			continue
		}
		if ctx == 0 || (ctx == 1 && str(a.values["contextvalue"]) == t.def.LogicalName) {
			rows = append(rows, a)
		}
	}
	seq := func(r *record) float64 {
		switch v := r.values["sequence"].(type) {
		case float64:
			return v
		case int64:
			return float64(v)
		}
		return 0
	}
	sort.SliceStable(rows, func(i, j int) bool { return seq(rows[i]) < seq(rows[j]) })
	var out []commandView
	for _, a := range rows {
		c := commandView{ID: a.id, Label: str(a.values["buttonlabeltext"]), Tooltip: str(a.values["buttontooltipdescription"]),
			Function: str(a.values["onclickeventjavascriptfunctionname"]), Parameters: str(a.values["onclickeventjavascriptparameters"])}
		if c.Label == "" {
			c.Label = str(a.values["name"])
		}
		kind, _ := a.values["onclickeventtype"].(int64)
		switch {
		case kind != 2:
			c.Note = "runs a Power Fx formula or nothing, which the sandbox does not run"
		default:
			if id := str(a.values["onclickeventjavascriptwebresourceid"]); id != "" {
				c.WebResource = s.primaryName("webresource", id)
			}
			if c.WebResource == "" {
				c.Note = "its web resource does not exist"
			}
		}
		if c.Note != "" {
			notes = append(notes, fmt.Sprintf("The command %q %s.", c.Label, c.Note))
		}
		out = append(out, c)
	}
	return out, notes
}

// Form documents (FormXml).
type formDoc struct {
	Tabs []struct {
		Name    string     `xml:"name,attr"`
		Visible string     `xml:"visible,attr"`
		Labels  []xmlLabel `xml:"labels>label"`
		Columns []struct {
			Sections []formSection `xml:"sections>section"`
		} `xml:"columns>column"`
	} `xml:"tabs>tab"`
	Header *struct {
		Rows []formRow `xml:"rows>row"`
	} `xml:"header"`
	Footer *struct {
		Rows []formRow `xml:"rows>row"`
	} `xml:"footer"`
	Libraries []struct {
		Name string `xml:"name,attr"`
	} `xml:"formLibraries>Library"`
	Events []struct {
		Name string `xml:"name,attr"`
	} `xml:"events>event"`
}

type formSection struct {
	Name      string     `xml:"name,attr"`
	ShowLabel string     `xml:"showlabel,attr"`
	Visible   string     `xml:"visible,attr"`
	Labels    []xmlLabel `xml:"labels>label"`
	Rows      []formRow  `xml:"rows>row"`
}

type formRow struct {
	Cells []formCell `xml:"cell"`
}

type formCell struct {
	ShowLabel string       `xml:"showlabel,attr"`
	Visible   string       `xml:"visible,attr"`
	Labels    []xmlLabel   `xml:"labels>label"`
	Control   *formControl `xml:"control"`
}

type formControl struct {
	ID            string `xml:"id,attr"`
	ClassID       string `xml:"classid,attr"`
	DataFieldName string `xml:"datafieldname,attr"`
	Disabled      string `xml:"disabled,attr"`
	Parameters    struct {
		ViewID           string `xml:"ViewId"`
		RelationshipName string `xml:"RelationshipName"`
		TargetEntityType string `xml:"TargetEntityType"`
		RecordsPerPage   string `xml:"RecordsPerPage"`
	} `xml:"parameters"`
}

type xmlLabel struct {
	Description  string `xml:"description,attr"`
	LanguageCode string `xml:"languagecode,attr"`
}

func labelOf(labels []xmlLabel) string {
	for _, l := range labels {
		if l.LanguageCode == "1033" {
			return l.Description
		}
	}
	if len(labels) > 0 {
		return labels[0].Description
	}
	return ""
}

// recordOf renders a row on the table's main form.
func (s *Server) recordOf(app *appView, t *table, r *record, formID string) *recordView {
	rv := &recordView{Table: t.def.LogicalName, TableLabel: t.def.DisplayName, Set: t.def.EntitySetName, ID: r.id,
		Name: str(r.values[t.def.PrimaryName.LogicalName])}
	if rv.Name == "" {
		rv.Name = "(no name)"
	}
	if st, ok := r.values["statecode"]; ok && st != nil {
		rv.State = formatValue(t.cols["statecode"], st)
	}
	var forms []*record
	for _, f := range s.rowsOf("systemform") {
		if str(f.values["objecttypecode"]) == t.def.LogicalName && f.values["type"] == int64(2) && f.values["formactivationstate"] != int64(0) {
			forms = append(forms, f)
		}
	}
	form := preferred(forms, formID, s.creationOrder("systemform"))
	for _, f := range forms {
		rv.Forms = append(rv.Forms, option{Value: f.id, Label: str(f.values["name"]), Selected: f == form,
			Href: s.recordHref(app, t.def.LogicalName, r.id) + "&formid=" + f.id})
	}
	if form == nil {
		rv.Notes = append(rv.Notes, "This table has no main form, so only the row's name is shown.")
		return rv
	}
	rv.FormName = str(form.values["name"])
	var doc formDoc
	if err := xml.Unmarshal([]byte(str(form.values["formxml"])), &doc); err != nil {
		rv.Notes = append(rv.Notes, "The form's FormXml could not be read: "+err.Error())
		return rv
	}
	for _, l := range doc.Libraries {
		rv.Notes = append(rv.Notes, "This form loads the script library "+l.Name+", which the sandbox does not run (only command buttons run scripts).")
	}
	for _, e := range doc.Events {
		rv.Notes = append(rv.Notes, "This form has an "+e.Name+" event handler, which the sandbox does not run.")
	}
	n := 0
	cellOf := func(c formCell, header bool) cellView {
		n++
		cv := cellView{Label: labelOf(c.Labels)}
		ctl := c.Control
		if ctl == nil {
			return cv
		}
		class := strings.ToLower(ctl.ClassID)
		switch {
		case class == subgridControlClass:
			g := s.subgridOf(app, t, r, ctl)
			cv.Subgrid = &g
		case fieldControlClasses[class] && ctl.DataFieldName != "":
			c, ok := t.cols[ctl.DataFieldName]
			if !ok {
				cv.Unsupported = fmt.Sprintf("This form names the column %s, which %s does not have.", ctl.DataFieldName, t.def.LogicalName)
				break
			}
			if cv.Label == "" {
				cv.Label = c.DisplayName
			}
			f := s.fieldOf(app, t, r, c, ctl.Disabled == "true" || header)
			f.Label = cv.Label
			f.InputID = fmt.Sprintf("f%d_%s", n, c.LogicalName)
			cv.Field = &f
		default:
			cv.Unsupported = fmt.Sprintf("This form uses a control the sandbox does not render: %s (class %s).", ctl.ID, ctl.ClassID)
		}
		return cv
	}
	if doc.Header != nil {
		for _, row := range doc.Header.Rows {
			for _, c := range row.Cells {
				if cv := cellOf(c, true); cv.Field != nil {
					rv.Header = append(rv.Header, *cv.Field)
				} else if cv.Unsupported != "" {
					rv.Notes = append(rv.Notes, cv.Unsupported)
				}
			}
		}
	}
	if doc.Footer != nil {
		rv.Notes = append(rv.Notes, "This form has a footer, which the sandbox does not render.")
	}
	for i, tab := range doc.Tabs {
		if tab.Visible == "false" {
			continue
		}
		tv := tabView{Anchor: fmt.Sprintf("tab-%d", i), Label: labelOf(tab.Labels)}
		for _, col := range tab.Columns {
			for _, sec := range col.Sections {
				if sec.Visible == "false" {
					continue
				}
				sv := sectionView{}
				if sec.ShowLabel != "false" {
					sv.Label = labelOf(sec.Labels)
				}
				for _, row := range sec.Rows {
					for _, c := range row.Cells {
						if c.Visible == "false" {
							continue
						}
						cv := cellOf(c, false)
						if c.ShowLabel == "false" && cv.Field == nil {
							cv.Label = ""
						}
						sv.Cells = append(sv.Cells, cv)
					}
				}
				tv.Sections = append(tv.Sections, sv)
			}
		}
		rv.Tabs = append(rv.Tabs, tv)
	}
	return rv
}

// fieldOf is one column of a row on a form: its value, formatted, and what editing it takes.
func (s *Server) fieldOf(app *appView, t *table, r *record, c dataverse.Column, readOnly bool) fieldView {
	v := r.values[c.LogicalName]
	d := s.displayOf(app, t, r, c.LogicalName)
	f := fieldView{Column: c.LogicalName, Display: d.Text, Href: d.Href, ReadOnly: readOnly}
	switch c.Type {
	case dataverse.TypeString:
		f.Kind, f.Value = "text", str(v)
	case dataverse.TypeMemo:
		f.Kind, f.Value = "memo", str(v)
	case dataverse.TypeInteger:
		f.Kind = "integer"
		if n, ok := v.(int64); ok {
			f.Value = strconv.FormatInt(n, 10)
		}
	case dataverse.TypeDecimal, dataverse.TypeMoney:
		f.Kind = "decimal"
		if x, ok := v.(float64); ok {
			f.Value = strconv.FormatFloat(x, 'f', -1, 64)
		}
	case dataverse.TypeBoolean:
		f.Kind = "boolean"
		b, _ := v.(bool)
		f.Value = strconv.FormatBool(b)
		f.Options = []option{{Value: "false", Label: "No", Selected: !b}, {Value: "true", Label: "Yes", Selected: b}}
	case dataverse.TypeChoice, dataverse.TypeStatus, dataverse.TypeState:
		f.Kind = "choice"
		n, ok := v.(int64)
		if ok {
			f.Value = strconv.FormatInt(n, 10)
		} else {
			f.Options = append(f.Options, option{Value: "", Label: "--- Select ---", Selected: true})
		}
		state, _ := r.values["statecode"].(int64)
		for _, o := range c.Options {
			if c.Type == dataverse.TypeStatus && int64(o.State) != state {
				continue // a status reason of another state: the state changes first
			}
			f.Options = append(f.Options, option{Value: strconv.Itoa(o.Value), Label: o.Label, Selected: ok && int64(o.Value) == n})
		}
		if c.Type == dataverse.TypeState {
			f.ReadOnly = true // Dynamics changes the state with Deactivate/Activate, not on the form
		}
	case dataverse.TypeDateTime:
		f.Kind = "datetime"
		if at, ok := v.(time.Time); ok {
			f.Value = at.UTC().Format("2006-01-02T15:04")
		}
	case dataverse.TypeLookup:
		f.Kind = "lookup"
		f.Target = r.lookupTables[c.LogicalName]
		if f.Target == "" {
			f.Target = c.Target
		}
		f.Value = str(v)
		target := s.tables[f.Target]
		if target == nil || len(target.order) > 500 {
			f.ReadOnly = true
			break
		}
		if f.Value == "" {
			f.Options = append(f.Options, option{Value: "", Label: "--- Choose ---", Selected: true})
		}
		for _, id := range target.order {
			if row := target.rows[id]; row != nil {
				f.Options = append(f.Options, option{Value: id, Label: str(row.values[target.def.PrimaryName.LogicalName]), Selected: id == f.Value})
			}
		}
	default:
		f.Kind = "text"
		f.Value = d.Text
		f.ReadOnly = true
	}
	return f
}

// subgridOf is a subgrid: the view it names, over the rows of its table whose lookup (the one the
// relationship names) points at r.
func (s *Server) subgridOf(app *appView, t *table, r *record, ctl *formControl) gridView {
	p := ctl.Parameters
	target := s.tables[p.TargetEntityType]
	if target == nil {
		return gridView{Notes: []string{fmt.Sprintf("This subgrid shows table %q, which does not exist.", p.TargetEntityType)}}
	}
	var lookups []string
	for name, c := range target.cols {
		if c.Type == dataverse.TypeLookup && c.Target == t.def.LogicalName {
			lookups = append(lookups, name)
		}
	}
	sort.Strings(lookups)
	lookup := ""
	for _, name := range lookups {
		if strings.HasSuffix(strings.ToLower(p.RelationshipName), "_"+name) {
			lookup = name
		}
	}
	if lookup == "" && len(lookups) == 1 {
		lookup = lookups[0]
	}
	if lookup == "" {
		return gridView{Notes: []string{fmt.Sprintf("This subgrid's relationship %s is not a lookup of %s to %s the sandbox can find.", p.RelationshipName, p.TargetEntityType, t.def.LogicalName)}}
	}
	var view *record
	for _, v := range s.rowsOf("savedquery") {
		if v.id == bareID(p.ViewID) {
			view = v
		}
	}
	if view == nil {
		view = preferred(s.viewsOf(target.def.LogicalName), "", s.creationOrder("savedquery"))
	}
	if view == nil {
		return gridView{Notes: []string{"This subgrid's view does not exist and its table has no public view."}}
	}
	per, err := strconv.Atoi(p.RecordsPerPage)
	if err != nil || per <= 0 {
		per = 5
	}
	return s.gridOf(app, view, func(x *record) bool { return x.values[lookup] == r.id }, per)
}
