package dataverse

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Form is a table's main form (systemform of type Main): a header, and tabs of sections of fields and
// subgrids. It is rendered to FormXml (Form.FormXML) and installed by id, so a second install finds it.
type Form struct {
	Table, Name, Description string
	// Header holds the fields shown above the tabs, whichever tab is open (status and message).
	Header []Field
	Tabs   []Tab
}

// Tab is a tab of a form: one column of sections.
type Tab struct {
	Name, Label string
	Sections    []Section
}

// Section is a titled group of fields, then subgrids, one per row.
type Section struct {
	Name, Label string
	Fields      []Field
	Subgrids    []Subgrid
}

// Field shows one column of the form's table; ReadOnly disables it (the columns the connector owns).
type Field struct {
	Column   string
	ReadOnly bool
}

// Subgrid lists the rows of another table that point at the form's row through one of its lookups,
// through a public view of that table.
type Subgrid struct {
	Name, Label string
	// Table is the related table, Lookup its column that points at the form's table, View the name of a
	// View of Table (App.Views) whose columns, filter and order the grid shows.
	Table, Lookup, View string
	// RecordsPerPage is how many rows show before paging (default 5).
	RecordsPerPage int
}

// View is a public view of a table (savedquery of query type 0): the columns it shows, the rows it
// keeps and their order. It is rendered to FetchXml (View.FetchXML) and LayoutXml (View.LayoutXML).
type View struct {
	Table, Name, Description string
	// Default makes it the table's default public view. Dataverse creates a default view ("Active …")
	// with every table; a Default view of the same name takes it over instead of adding a second one.
	Default bool
	Columns []ViewColumn
	// Filter keeps the rows that meet every condition.
	Filter []Condition
	Order  []Order
}

// ViewColumn is a column of a view and its width in pixels (default 150).
type ViewColumn struct {
	Column string
	Width  int
}

// Condition is a FetchXml condition: a column, an operator (eq, ne, in, null, not-null, lt, gt,
// next-x-days, olderthan-x-days, …) and its values (none for null and not-null, several for in).
type Condition struct {
	Column, Operator string
	Values           []string
}

// Order sorts a view by a column.
type Order struct {
	Column     string
	Descending bool
}

// Form control class ids by column type (FormXml <control classid>: the control reference's table of
// class ids, "control (FormXml)").
const (
	classTextBox     = "{4273EDBD-AC1D-40d3-9FB2-095C621B552D}"
	classEmail       = "{ADA2203E-B4CD-49BE-9DDF-234642B43B52}"
	classURL         = "{71716B6C-711E-476C-8AB8-5D11542BFB47}"
	classPhone       = "{8C10015A-B339-4982-9474-A95FE05631A5}"
	classTextArea    = "{E0DECE4B-6FC8-4a8f-A065-082708572369}"
	classInteger     = "{C6D124CA-7EDA-4a60-AEA9-7FB8D318B68F}"
	classDecimal     = "{C3EFE0C3-0EC6-42be-8349-CBD9079DFD8E}"
	classMoney       = "{533B9E00-756B-4312-95A0-DC888637AC78}"
	classTwoOptions  = "{67FAC785-CD58-4f9f-ABB3-4B7DDC6ED5ED}"
	classDateTime    = "{5B773807-9FB2-42db-97C3-7A91EFF8ADFF}"
	classPicklist    = "{3EF39988-22BB-4f0b-BBBE-64B5A3748AEE}"
	classStatus      = "{5D68B988-0661-4DB2-BC3E-17598AD3BE6C}"
	classLookup      = "{270BD3DB-D9AF-4782-9025-509E298DEC0A}"
	classSubgrid     = "{E7A81278-8635-4D9E-8D4D-59480B391C5B}"
	formTypeMain     = 2
	queryTypePublic  = 0
	languageEnglish  = "1033"
	defaultGridWidth = 150
)

// ControlClassID returns the class id of the form control that edits a column, "" for a column no form
// control edits (the primary key).
func ControlClassID(c Column) string {
	switch c.Type {
	case TypeString:
		switch c.Format {
		case "Email":
			return classEmail
		case "Url":
			return classURL
		case "Phone":
			return classPhone
		}
		return classTextBox
	case TypeMemo:
		return classTextArea
	case TypeInteger:
		return classInteger
	case TypeDecimal:
		return classDecimal
	case TypeMoney:
		return classMoney
	case TypeBoolean:
		return classTwoOptions
	case TypeDateTime:
		return classDateTime
	case TypeChoice, TypeState:
		return classPicklist
	case TypeStatus:
		return classStatus
	case TypeLookup:
		return classLookup
	}
	return ""
}

// componentIDs is the namespace of the ids the installer gives forms, views and the parts of a form: a
// name-based (SHA-1) UUID of the same names is the same id in every environment and every render, so a
// re-render is byte-identical and a second install matches what the first created.
var componentIDs = uuid.MustParse("5f3c2b1e-8d4a-4e7b-9c61-2a0f7d9e4b13")

func stableID(parts ...string) GUID {
	return uuid.NewSHA1(componentIDs, []byte(strings.Join(parts, "\x00")))
}

// FormID is the systemform id the installer gives a form of table named name.
func FormID(table, name string) GUID { return stableID("systemform", table, name) }

// ViewID is the savedquery id the installer gives a view of table named name.
func ViewID(table, name string) GUID { return stableID("savedquery", table, name) }

func braced(id GUID) string { return "{" + id.String() + "}" }

// xmlWriter builds XML text; attribute values and text are escaped.
type xmlWriter struct{ b strings.Builder }

func (w *xmlWriter) open(name string, attrs ...string)  { w.tag(name, false, attrs) }
func (w *xmlWriter) empty(name string, attrs ...string) { w.tag(name, true, attrs) }
func (w *xmlWriter) close(name string)                  { w.b.WriteString("</" + name + ">") }

func (w *xmlWriter) tag(name string, empty bool, attrs []string) {
	w.b.WriteString("<" + name)
	for i := 0; i+1 < len(attrs); i += 2 {
		w.b.WriteString(" " + attrs[i] + `="`)
		_ = xml.EscapeText(&w.b, []byte(attrs[i+1]))
		w.b.WriteString(`"`)
	}
	if empty {
		w.b.WriteString(" />")
		return
	}
	w.b.WriteString(">")
}

func (w *xmlWriter) element(name, text string) {
	if text == "" {
		w.empty(name)
		return
	}
	w.open(name)
	_ = xml.EscapeText(&w.b, []byte(text))
	w.close(name)
}

func (w *xmlWriter) labels(text string) {
	w.open("labels")
	w.empty("label", "description", text, "languagecode", languageEnglish)
	w.close("labels")
}

// FormXML renders the form as a systemform's formxml. viewID gives the id of a view (table, name) a
// subgrid shows; nil uses ViewID. Labels of fields are the columns' display names in s.
func (f Form) FormXML(s Schema, viewID func(table, name string) GUID) (string, error) {
	if viewID == nil {
		viewID = ViewID
	}
	t, ok := s.Table(f.Table)
	if !ok {
		return "", fmt.Errorf("dataverse: form %s: table %s is not declared", f.Name, f.Table)
	}
	id := FormID(f.Table, f.Name)
	var w xmlWriter
	var err error
	control := func(fl Field, controlID string) {
		c, ok := t.Column(fl.Column)
		if !ok || ControlClassID(c) == "" {
			err = fmt.Errorf("dataverse: form %s: %s has no column %s a form can show", f.Name, f.Table, fl.Column)
			return
		}
		w.empty("control", "id", controlID, "classid", ControlClassID(c), "datafieldname", c.LogicalName, "disabled", strconv.FormatBool(fl.ReadOnly))
	}
	cell := func(cellID GUID, label string) {
		w.open("cell", "id", braced(cellID), "showlabel", "true")
		w.labels(label)
	}
	w.open("form")
	w.open("tabs")
	for _, tab := range f.Tabs {
		w.open("tab", "name", tab.Name, "id", braced(stableID(id.String(), "tab", tab.Name)), "IsUserDefined", "0", "showlabel", "true", "expanded", "true", "verticallayout", "true")
		w.labels(tab.Label)
		w.open("columns")
		w.open("column", "width", "100%")
		w.open("sections")
		for _, sec := range tab.Sections {
			w.open("section", "name", sec.Name, "id", braced(stableID(id.String(), "section", sec.Name)), "IsUserDefined", "0", "showlabel", "true", "showbar", "false", "columns", "1")
			w.labels(sec.Label)
			w.open("rows")
			for _, fl := range sec.Fields {
				c, _ := t.Column(fl.Column)
				w.open("row")
				cell(stableID(id.String(), "cell", fl.Column), c.DisplayName)
				control(fl, fl.Column)
				w.close("cell")
				w.close("row")
			}
			for _, g := range sec.Subgrids {
				per := g.RecordsPerPage
				if per <= 0 {
					per = 5
				}
				w.open("row")
				cell(stableID(id.String(), "subgrid", g.Name), g.Label)
				w.open("control", "id", g.Name, "classid", classSubgrid, "indicationOfSubgrid", "true")
				w.open("parameters")
				for _, p := range [][2]string{
					{"ViewId", braced(viewID(g.Table, g.View))},
					{"IsUserView", "false"},
					{"RelationshipName", relationshipName(f.Table, g.Table, g.Lookup)},
					{"TargetEntityType", g.Table},
					{"AutoExpand", "Fixed"},
					{"EnableQuickFind", "false"},
					{"EnableViewPicker", "false"},
					{"EnableJumpBar", "false"},
					{"ChartGridMode", "Grid"},
					{"VisualizationId", ""},
					{"IsUserChart", "false"},
					{"EnableChartPicker", "false"},
					{"RecordsPerPage", strconv.Itoa(per)},
				} {
					w.element(p[0], p[1])
				}
				w.close("parameters")
				w.close("control")
				w.close("cell")
				w.close("row")
			}
			w.close("rows")
			w.close("section")
		}
		w.close("sections")
		w.close("column")
		w.close("columns")
		w.close("tab")
	}
	w.close("tabs")
	if len(f.Header) > 0 {
		w.open("header", "id", braced(stableID(id.String(), "header")), "celllabelposition", "Top", "columns", strings.Repeat("1", len(f.Header)), "labelwidth", "115", "celllabelalignment", "Left")
		w.open("rows")
		w.open("row")
		for _, fl := range f.Header {
			c, _ := t.Column(fl.Column)
			cell(stableID(id.String(), "header", fl.Column), c.DisplayName)
			control(fl, "header_"+fl.Column)
			w.close("cell")
		}
		w.close("row")
		w.close("rows")
		w.close("header")
	}
	w.close("form")
	if err != nil {
		return "", err
	}
	return w.b.String(), nil
}

// FetchXML renders the view's query: its columns and the primary key, its order and its filter.
func (v View) FetchXML(s Schema) (string, error) {
	t, ok := s.Table(v.Table)
	if !ok {
		return "", fmt.Errorf("dataverse: view %s: table %s is not declared", v.Name, v.Table)
	}
	var w xmlWriter
	w.open("fetch", "version", "1.0", "mapping", "logical")
	w.open("entity", "name", v.Table)
	for _, c := range v.Columns {
		w.empty("attribute", "name", c.Column)
	}
	if !slices.ContainsFunc(v.Columns, func(c ViewColumn) bool { return c.Column == t.PrimaryKey() }) {
		w.empty("attribute", "name", t.PrimaryKey())
	}
	for _, o := range v.Order {
		w.empty("order", "attribute", o.Column, "descending", strconv.FormatBool(o.Descending))
	}
	if len(v.Filter) > 0 {
		w.open("filter", "type", "and")
		for _, c := range v.Filter {
			switch len(c.Values) {
			case 0:
				w.empty("condition", "attribute", c.Column, "operator", c.Operator)
			case 1:
				if c.Operator != "in" && c.Operator != "not-in" {
					w.empty("condition", "attribute", c.Column, "operator", c.Operator, "value", c.Values[0])
					continue
				}
				fallthrough
			default:
				w.open("condition", "attribute", c.Column, "operator", c.Operator)
				for _, val := range c.Values {
					w.element("value", val)
				}
				w.close("condition")
			}
		}
		w.close("filter")
	}
	w.close("entity")
	w.close("fetch")
	return w.b.String(), nil
}

// LayoutXML renders the view's grid: its cells in order. objectTypeCode is the table's ObjectTypeCode in
// the environment (Dataverse numbers custom tables when it creates them).
func (v View) LayoutXML(s Schema, objectTypeCode int) (string, error) {
	t, ok := s.Table(v.Table)
	if !ok {
		return "", fmt.Errorf("dataverse: view %s: table %s is not declared", v.Name, v.Table)
	}
	var w xmlWriter
	w.open("grid", "name", "resultset", "object", strconv.Itoa(objectTypeCode), "jump", t.PrimaryName.LogicalName, "select", "1", "icon", "1", "preview", "1")
	w.open("row", "name", "result", "id", t.PrimaryKey())
	for _, c := range v.Columns {
		width := c.Width
		if width <= 0 {
			width = defaultGridWidth
		}
		w.empty("cell", "name", c.Column, "width", strconv.Itoa(width))
	}
	w.close("row")
	w.close("grid")
	return w.b.String(), nil
}

// fetchOperators are the FetchXml condition operators the declarations may use, with how many values
// each takes (-1: one or more).
var fetchOperators = map[string]int{
	"eq": 1, "ne": 1, "lt": 1, "le": 1, "gt": 1, "ge": 1, "like": 1, "not-like": 1,
	"in": -1, "not-in": -1, "null": 0, "not-null": 0,
	"today": 0, "yesterday": 0, "tomorrow": 0, "last-seven-days": 0, "next-seven-days": 0,
	"next-x-days": 1, "last-x-days": 1, "next-x-hours": 1, "last-x-hours": 1,
	"olderthan-x-days": 1, "olderthan-x-hours": 1, "on-or-before": 1, "on-or-after": 1,
	"eq-userid": 0, "ne-userid": 0,
}

// formProblems checks the forms and views against the schema: every table, column, lookup and view they
// name exists, and names and ids are unique.
func (a *App) formProblems(s Schema) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	views := map[[2]string]View{}
	defaults := map[string]string{}
	for _, v := range a.Views {
		key := [2]string{v.Table, strings.ToLower(v.Name)}
		if _, dup := views[key]; dup {
			add("view %q of %s declared twice", v.Name, v.Table)
		}
		views[key] = v
		t, ok := s.Table(v.Table)
		if !ok {
			add("view %q names undeclared table %s", v.Name, v.Table)
			continue
		}
		if v.Default {
			if d, ok := defaults[v.Table]; ok {
				add("views %q and %q of %s are both the default", d, v.Name, v.Table)
			}
			defaults[v.Table] = v.Name
		}
		if len(v.Columns) == 0 {
			add("view %q of %s has no columns", v.Name, v.Table)
		}
		for _, c := range v.Columns {
			if _, ok := t.Column(c.Column); !ok {
				add("view %q shows undeclared column %s.%s", v.Name, v.Table, c.Column)
			}
		}
		for _, c := range v.Filter {
			if _, ok := t.Column(c.Column); !ok {
				add("view %q filters on undeclared column %s.%s", v.Name, v.Table, c.Column)
			}
			n, known := fetchOperators[c.Operator]
			switch {
			case !known:
				add("view %q uses unknown condition operator %q", v.Name, c.Operator)
			case n >= 0 && len(c.Values) != n, n < 0 && len(c.Values) == 0:
				add("view %q: operator %s on %s has %d value(s)", v.Name, c.Operator, c.Column, len(c.Values))
			}
		}
		for _, o := range v.Order {
			if _, ok := t.Column(o.Column); !ok {
				add("view %q orders by undeclared column %s.%s", v.Name, v.Table, o.Column)
			}
		}
	}
	forms := map[[2]string]bool{}
	for _, f := range a.Forms {
		key := [2]string{f.Table, strings.ToLower(f.Name)}
		if forms[key] {
			add("form %q of %s declared twice", f.Name, f.Table)
		}
		forms[key] = true
		t, ok := s.Table(f.Table)
		if !ok {
			add("form %q names undeclared table %s", f.Name, f.Table)
			continue
		}
		controls := map[string]bool{}
		field := func(fl Field, controlID string) {
			if controls[controlID] {
				add("form %q shows %s twice", f.Name, controlID)
			}
			controls[controlID] = true
			c, ok := t.Column(fl.Column)
			if !ok {
				add("form %q shows undeclared column %s.%s", f.Name, f.Table, fl.Column)
			} else if ControlClassID(c) == "" {
				add("form %q shows %s.%s, which no form control edits", f.Name, f.Table, fl.Column)
			}
		}
		for _, fl := range f.Header {
			field(fl, "header_"+fl.Column)
		}
		names := map[string]bool{}
		for _, tab := range f.Tabs {
			if names["tab "+tab.Name] {
				add("form %q has two tabs named %s", f.Name, tab.Name)
			}
			names["tab "+tab.Name] = true
			for _, sec := range tab.Sections {
				if names["section "+sec.Name] {
					add("form %q has two sections named %s", f.Name, sec.Name)
				}
				names["section "+sec.Name] = true
				for _, fl := range sec.Fields {
					field(fl, fl.Column)
				}
				for _, g := range sec.Subgrids {
					if controls[g.Name] {
						add("form %q has two controls named %s", f.Name, g.Name)
					}
					controls[g.Name] = true
					rt, ok := s.Table(g.Table)
					if !ok {
						add("subgrid %s of form %q names undeclared table %s", g.Name, f.Name, g.Table)
						continue
					}
					if c, ok := rt.Column(g.Lookup); !ok || c.Type != TypeLookup || c.Target != f.Table {
						add("subgrid %s of form %q: %s.%s is not a lookup to %s", g.Name, f.Name, g.Table, g.Lookup, f.Table)
					}
					switch v, ok := views[[2]string{g.Table, strings.ToLower(g.View)}]; {
					case !ok:
						add("subgrid %s of form %q shows undeclared view %q of %s", g.Name, f.Name, g.View, g.Table)
					case v.Default:
						// A default view takes over the one Dataverse creates with the table, whose id is
						// not known before the install.
						add("subgrid %s of form %q shows the default view %q of %s: give it a view of its own", g.Name, f.Name, g.View, g.Table)
					}
				}
			}
		}
	}
	return out
}

// sameXML compares two XML documents as Dataverse keeps them: the same elements, attributes (in any
// order) and text, whitespace between elements aside. Text that does not parse compares as text.
func sameXML(a, b string) bool {
	ca, errA := canonicalXML(a)
	cb, errB := canonicalXML(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return ca == cb
}

func canonicalXML(doc string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return b.String(), nil
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			attrs := slices.Clone(t.Attr)
			slices.SortFunc(attrs, func(x, y xml.Attr) int { return strings.Compare(x.Name.Local, y.Name.Local) })
			b.WriteString("<" + t.Name.Local)
			for _, at := range attrs {
				b.WriteString(" " + at.Name.Local + "=" + strconv.Quote(at.Value))
			}
			b.WriteString(">")
		case xml.EndElement:
			b.WriteString("</" + t.Name.Local + ">")
		case xml.CharData:
			if s := strings.TrimSpace(string(t)); s != "" {
				b.WriteString(strconv.Quote(s))
			}
		}
	}
}

// planForms adds the forms' and views' changes to p: what is missing is created with its stable id, what
// differs is updated, and the tables whose forms or views changed are published. Existing forms and
// views are read once per kind for all the tables.
//
// API: GET /systemforms?$filter=type eq 2 and Microsoft.Dynamics.CRM.In(PropertyName='objecttypecode',…),
// GET /savedqueries?$filter=querytype eq 0 and …(returnedtypecode), POST and PATCH of both, POST /PublishXml.
func (c *Client) planForms(ctx context.Context, s Schema, a *App, p *Plan) error {
	if len(a.Forms) == 0 && len(a.Views) == 0 {
		return nil
	}
	// Only the tables that exist can have forms and views; naming another in a filter on an EntityName
	// column (objecttypecode, returnedtypecode) could fail the read.
	var tables []any
	for _, name := range append(tableNames(a.Forms, func(f Form) string { return f.Table }), tableNames(a.Views, func(v View) string { return v.Table })...) {
		if p.definitions[name] != nil && !slices.Contains(tables, any(name)) {
			tables = append(tables, name)
		}
	}
	var forms, views []Row
	if len(tables) == 0 {
		return c.planFormChanges(ctx, s, a, p, forms, views)
	}
	for row, err := range c.List(ctx, "systemforms", &Query{
		Select: []string{"formid", "name", "description", "objecttypecode", "type", "formxml"},
		Filter: And(Eq("type", formTypeMain), In("objecttypecode", tables...)),
	}) {
		if err != nil {
			return fmt.Errorf("dataverse: read main forms: %w", err)
		}
		forms = append(forms, row)
	}
	for row, err := range c.List(ctx, "savedqueries", &Query{
		Select: []string{"savedqueryid", "name", "description", "returnedtypecode", "fetchxml", "layoutxml", "querytype", "isdefault"},
		Filter: And(Eq("querytype", queryTypePublic), In("returnedtypecode", tables...)),
	}) {
		if err != nil {
			return fmt.Errorf("dataverse: read public views: %w", err)
		}
		views = append(views, row)
	}
	return c.planFormChanges(ctx, s, a, p, forms, views)
}

// planFormChanges compares the declared forms and views with those that exist (forms, views) and adds
// what differs to p.
func (c *Client) planFormChanges(ctx context.Context, s Schema, a *App, p *Plan, forms, views []Row) error {
	// A view is the one with its stable id, else, for a default view, the table's view of that name
	// (Dataverse's own "Active …" view, which it is then made into).
	find := func(rows []Row, idCol, tableCol string, id GUID, table, name string, byName bool) Row {
		for _, r := range rows {
			if got, _ := r.GUID(idCol); got == id {
				return r
			}
		}
		for _, r := range rows {
			if byName && r.String(tableCol) == table && strings.EqualFold(r.String("name"), name) {
				return r
			}
		}
		return nil
	}
	viewIDs := map[[2]string]GUID{}
	existingViews := map[[2]string]Row{}
	for _, v := range a.Views {
		key := [2]string{v.Table, strings.ToLower(v.Name)}
		id := ViewID(v.Table, v.Name)
		if r := find(views, "savedqueryid", "returnedtypecode", id, v.Table, v.Name, v.Default); r != nil {
			id, _ = r.GUID("savedqueryid")
			existingViews[key] = r
		}
		viewIDs[key] = id
	}
	viewID := func(table, name string) GUID { return viewIDs[[2]string{table, strings.ToLower(name)}] }

	var publish []string
	changed := func(table string) {
		if !slices.Contains(publish, table) {
			publish = append(publish, table)
		}
	}
	for _, v := range a.Views {
		key := [2]string{v.Table, strings.ToLower(v.Name)}
		id := viewIDs[key]
		fetch, err := v.FetchXML(s)
		if err != nil {
			return err
		}
		r := existingViews[key]
		if r == nil {
			summary := fmt.Sprintf("create view %s: %s", v.Table, v.Name)
			if v.Default {
				summary = fmt.Sprintf("create default view %s: %s", v.Table, v.Name)
			}
			p.add(summary, func(ctx context.Context) error { return c.createView(ctx, s, p, v, id, fetch) })
			changed(v.Table)
			continue
		}
		otc, err := c.objectTypeCode(ctx, p, v.Table)
		if err != nil {
			return err
		}
		layout, err := v.LayoutXML(s, otc)
		if err != nil {
			return err
		}
		diff := Row{}
		if r.String("name") != v.Name {
			diff["name"] = v.Name
		}
		if r.String("description") != v.Description {
			diff["description"] = v.Description
		}
		if !sameXML(r.String("fetchxml"), fetch) {
			diff["fetchxml"] = fetch
		}
		if !sameXML(r.String("layoutxml"), layout) {
			diff["layoutxml"] = layout
		}
		if isDefault, _ := r.Bool("isdefault"); v.Default && !isDefault {
			diff["isdefault"] = true
		}
		if len(diff) == 0 {
			continue
		}
		p.add(fmt.Sprintf("update view %s: %s: %s changed", v.Table, v.Name, strings.Join(sortedKeys(diff), ", ")), func(ctx context.Context) error {
			if _, err := c.Update(ctx, "savedqueries", id, diff, nil); err != nil {
				return fmt.Errorf("dataverse: update view %s of %s: %w", v.Name, v.Table, err)
			}
			return nil
		})
		changed(v.Table)
	}

	for _, f := range a.Forms {
		formXML, err := f.FormXML(s, viewID)
		if err != nil {
			return err
		}
		id := FormID(f.Table, f.Name)
		r := find(forms, "formid", "objecttypecode", id, f.Table, f.Name, true)
		if r == nil {
			// Ours is made the table's default main form; Dataverse's own "Information" form stays, and the
			// app, which lists only our forms, never shows it.
			p.add(fmt.Sprintf("create main form %s: %s", f.Table, f.Name), func(ctx context.Context) error {
				_, err := c.Create(ctx, "systemforms", Row{
					"formid": id, "name": f.Name, "description": f.Description, "objecttypecode": f.Table,
					"type": formTypeMain, "formxml": formXML, "isdefault": true,
				})
				if err != nil {
					return fmt.Errorf("dataverse: create main form %s of %s: %w", f.Name, f.Table, err)
				}
				return nil
			})
			changed(f.Table)
			continue
		}
		id, _ = r.GUID("formid")
		diff := Row{}
		if r.String("description") != f.Description {
			diff["description"] = f.Description
		}
		if !sameXML(r.String("formxml"), formXML) {
			diff["formxml"] = formXML
		}
		if len(diff) == 0 {
			continue
		}
		p.add(fmt.Sprintf("update main form %s: %s: %s changed", f.Table, f.Name, strings.Join(sortedKeys(diff), ", ")), func(ctx context.Context) error {
			if _, err := c.Update(ctx, "systemforms", id, diff, nil); err != nil {
				return fmt.Errorf("dataverse: update main form %s of %s: %w", f.Name, f.Table, err)
			}
			return nil
		})
		changed(f.Table)
	}
	if len(publish) > 0 {
		p.add("publish forms and views of "+strings.Join(publish, ", "), func(ctx context.Context) error { return c.PublishTables(ctx, publish) })
	}
	return nil
}

// createView creates a view with its stable id. A default view of a table created by this install takes
// over the view of that name Dataverse created with the table, which was not there when the plan was made.
func (c *Client) createView(ctx context.Context, s Schema, p *Plan, v View, id GUID, fetch string) error {
	otc, err := c.objectTypeCode(ctx, p, v.Table)
	if err != nil {
		return err
	}
	layout, err := v.LayoutXML(s, otc)
	if err != nil {
		return err
	}
	row := Row{"name": v.Name, "description": v.Description, "fetchxml": fetch, "layoutxml": layout, "isdefault": v.Default}
	if v.Default {
		q := &Query{Select: []string{"savedqueryid"}, Filter: And(Eq("querytype", queryTypePublic), Eq("returnedtypecode", v.Table), Eq("name", v.Name)), Top: 1}
		for existing, err := range c.List(ctx, "savedqueries", q) {
			if err != nil {
				return fmt.Errorf("dataverse: find view %s of %s: %w", v.Name, v.Table, err)
			}
			existingID, _ := existing.GUID("savedqueryid")
			if _, err := c.Update(ctx, "savedqueries", existingID, row, nil); err != nil {
				return fmt.Errorf("dataverse: update view %s of %s: %w", v.Name, v.Table, err)
			}
			return nil
		}
	}
	row["savedqueryid"], row["returnedtypecode"], row["querytype"] = id, v.Table, queryTypePublic
	if _, err := c.Create(ctx, "savedqueries", row); err != nil {
		return fmt.Errorf("dataverse: create view %s of %s: %w", v.Name, v.Table, err)
	}
	return nil
}

// objectTypeCode is a table's ObjectTypeCode: from the definitions the plan read, or, for a table the
// plan creates, read when the change is applied.
func (c *Client) objectTypeCode(ctx context.Context, p *Plan, table string) (int, error) {
	if def := p.definitions[table]; def != nil && def.ObjectTypeCode != 0 {
		return def.ObjectTypeCode, nil
	}
	def, err := c.GetTableDefinition(ctx, table)
	if err != nil {
		return 0, err
	}
	return def.ObjectTypeCode, nil
}

func tableNames[T any](items []T, table func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = table(it)
	}
	return out
}

func sortedKeys(r Row) []string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
