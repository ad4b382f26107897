package dataverse_test

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// formSchema is a small schema with a parent and a child table, a form of each kind of column and a
// subgrid, and two views.
func formSchema() dataverse.Schema {
	parent := dataverse.Table{LogicalName: "csp_parent", EntitySetName: "csp_parents", DisplayName: "Parent", PluralName: "Parents",
		PrimaryName: dataverse.Column{LogicalName: "csp_name", DisplayName: "Name", Type: dataverse.TypeString, MaxLength: 100},
		Columns: []dataverse.Column{
			{LogicalName: "csp_email", DisplayName: "Email", Type: dataverse.TypeString, MaxLength: 100, Format: "Email"},
			{LogicalName: "csp_note", DisplayName: "Note & more", Type: dataverse.TypeMemo, MaxLength: 2000},
			{LogicalName: "csp_count", DisplayName: "Count", Type: dataverse.TypeInteger},
			{LogicalName: "csp_on", DisplayName: "On", Type: dataverse.TypeBoolean},
			{LogicalName: "csp_when", DisplayName: "When", Type: dataverse.TypeDateTime},
			{LogicalName: "csp_kind", DisplayName: "Kind", Type: dataverse.TypeChoice, Options: []dataverse.Option{{Value: 418700000, Label: "A"}}},
			{LogicalName: "csp_message", DisplayName: "Message", Type: dataverse.TypeMemo, MaxLength: 2000, ConnectorOwned: true},
		}}
	child := dataverse.Table{LogicalName: "csp_child", EntitySetName: "csp_children", DisplayName: "Child", PluralName: "Children",
		PrimaryName: dataverse.Column{LogicalName: "csp_name", DisplayName: "Name", Type: dataverse.TypeString, MaxLength: 100},
		Columns: []dataverse.Column{
			{LogicalName: "csp_parent", DisplayName: "Parent", Type: dataverse.TypeLookup, Target: "csp_parent"},
			{LogicalName: "csp_status", DisplayName: "Status", Type: dataverse.TypeChoice, Options: []dataverse.Option{{Value: 418700000, Label: "Waiting"}, {Value: 418700001, Label: "Failed"}}},
			{LogicalName: "csp_expireson", DisplayName: "Expires on", Type: dataverse.TypeDateTime},
		}}
	s := dataverse.Schema{Prefix: "csp", OptionValuePrefix: 41870, Tables: []dataverse.Table{parent, child}}
	s.App = &dataverse.App{
		UniqueName: "csp_Family", DisplayName: "Family",
		SiteMap: dataverse.SiteMap{Areas: []dataverse.SiteMapArea{{Title: "Family", Groups: []dataverse.SiteMapGroup{{Title: "Family",
			SubAreas: []dataverse.SiteMapSubArea{{Table: "csp_parent"}, {Table: "csp_child"}}}}}}},
		Forms: []dataverse.Form{{
			Table: "csp_parent", Name: "Parent", Description: "A parent.",
			Header: []dataverse.Field{{Column: "statuscode", ReadOnly: true}},
			Tabs: []dataverse.Tab{{Name: "general", Label: "General", Sections: []dataverse.Section{
				{Name: "details", Label: "Details", Fields: []dataverse.Field{
					{Column: "csp_name"}, {Column: "csp_email"}, {Column: "csp_note"}, {Column: "csp_count"},
					{Column: "csp_on"}, {Column: "csp_when"}, {Column: "csp_kind"},
				}},
				{Name: "connector", Label: "Connector", Fields: []dataverse.Field{{Column: "csp_message", ReadOnly: true}}},
				{Name: "children", Label: "Children", Subgrids: []dataverse.Subgrid{{Name: "children", Label: "Children", Table: "csp_child", Lookup: "csp_parent", View: "Waiting, oldest first"}}},
			}}},
		}},
		Views: []dataverse.View{
			{Table: "csp_child", Name: "Waiting, oldest first", Description: "Children still waiting.",
				Columns: []dataverse.ViewColumn{{Column: "csp_name", Width: 200}, {Column: "csp_parent"}, {Column: "csp_status"}},
				Filter: []dataverse.Condition{
					{Column: "statecode", Operator: "eq", Values: []string{"0"}},
					{Column: "csp_status", Operator: "in", Values: []string{"418700000", "418700001"}},
					{Column: "csp_expireson", Operator: "next-x-days", Values: []string{"7"}},
					{Column: "csp_parent", Operator: "not-null"},
				},
				Order: []dataverse.Order{{Column: "createdon"}, {Column: "csp_name", Descending: true}}},
			{Table: "csp_child", Name: "Active Children", Default: true, Columns: []dataverse.ViewColumn{{Column: "csp_name"}}},
		},
	}
	return s
}

// formElement is a FormXml element as the tests look at it.
type formElement struct {
	XMLName  xml.Name
	Attrs    []xml.Attr    `xml:",any,attr"`
	Text     string        `xml:",chardata"`
	Children []formElement `xml:",any"`
}

func (e formElement) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// find returns every element of this name below e, depth first.
func (e formElement) find(name string) []formElement {
	var out []formElement
	for _, c := range e.Children {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
		out = append(out, c.find(name)...)
	}
	return out
}

func TestFormXMLHasOneControlPerFieldWithItsTypesClassAndStableIDs(t *testing.T) {
	t.Parallel()
	s := formSchema()
	f := s.App.Forms[0]
	doc, err := f.FormXML(s, nil)
	require.NoError(t, err)
	again, err := f.FormXML(s, nil)
	require.NoError(t, err)
	assert.Equal(t, doc, again, "a re-render is byte-identical")

	var form formElement
	require.NoError(t, xml.Unmarshal([]byte(doc), &form))
	assert.Equal(t, "form", form.XMLName.Local)
	require.Len(t, form.Children, 2)
	assert.Equal(t, "tabs", form.Children[0].XMLName.Local)
	assert.Equal(t, "header", form.Children[1].XMLName.Local)

	classes := map[string]string{}
	disabled := map[string]string{}
	for _, c := range form.find("control") {
		if c.attr("datafieldname") != "" {
			classes[c.attr("id")] = c.attr("classid")
			disabled[c.attr("id")] = c.attr("disabled")
		}
	}
	assert.Equal(t, map[string]string{
		"header_statuscode": "{5D68B988-0661-4DB2-BC3E-17598AD3BE6C}",
		"csp_name":          "{4273EDBD-AC1D-40d3-9FB2-095C621B552D}",
		"csp_email":         "{ADA2203E-B4CD-49BE-9DDF-234642B43B52}",
		"csp_note":          "{E0DECE4B-6FC8-4a8f-A065-082708572369}",
		"csp_count":         "{C6D124CA-7EDA-4a60-AEA9-7FB8D318B68F}",
		"csp_on":            "{67FAC785-CD58-4f9f-ABB3-4B7DDC6ED5ED}",
		"csp_when":          "{5B773807-9FB2-42db-97C3-7A91EFF8ADFF}",
		"csp_kind":          "{3EF39988-22BB-4f0b-BBBE-64B5A3748AEE}",
		"csp_message":       "{E0DECE4B-6FC8-4a8f-A065-082708572369}",
	}, classes)
	assert.Equal(t, "true", disabled["csp_message"], "the connector's column is read-only")
	assert.Equal(t, "true", disabled["header_statuscode"])
	assert.Equal(t, "false", disabled["csp_name"])

	// Labels: the columns' display names, escaped.
	assert.Contains(t, doc, `<label description="Note &amp; more" languagecode="1033" />`)

	// Every id is a braced GUID and none repeats.
	ids := map[string]bool{}
	for _, name := range []string{"tab", "section", "cell", "header"} {
		for _, e := range form.find(name) {
			id := e.attr("id")
			assert.Regexp(t, `^\{[0-9a-f-]{36}\}$`, id, name)
			assert.False(t, ids[id], "id %s repeats", id)
			ids[id] = true
		}
	}
	for _, e := range form.Children[1:] {
		ids[e.attr("id")] = true
	}

	// The subgrid: the relationship the lookup created, the related table, the view's stable id.
	var grid formElement
	for _, c := range form.find("control") {
		if c.attr("classid") == "{E7A81278-8635-4D9E-8D4D-59480B391C5B}" {
			grid = c
		}
	}
	require.Equal(t, "children", grid.attr("id"))
	params := map[string]string{}
	for _, p := range grid.find("parameters")[0].Children {
		params[p.XMLName.Local] = p.Text
	}
	assert.Equal(t, "{"+dataverse.ViewID("csp_child", "Waiting, oldest first").String()+"}", params["ViewId"])
	assert.Equal(t, "csp_parent_csp_child_parent", params["RelationshipName"])
	assert.Equal(t, "csp_child", params["TargetEntityType"])
	assert.Equal(t, "false", params["IsUserView"])

	// Another form of the table gets other ids.
	other := f
	other.Name = "Parent (compact)"
	doc2, err := other.FormXML(s, nil)
	require.NoError(t, err)
	var form2 formElement
	require.NoError(t, xml.Unmarshal([]byte(doc2), &form2))
	for _, e := range form2.find("section") {
		assert.False(t, ids[e.attr("id")])
	}
	assert.NotEqual(t, dataverse.FormID("csp_parent", "Parent"), dataverse.FormID("csp_parent", "Parent (compact)"))
}

func TestViewRendersFetchXMLAndLayoutXML(t *testing.T) {
	t.Parallel()
	s := formSchema()
	v := s.App.Views[0]
	fetch, err := v.FetchXML(s)
	require.NoError(t, err)
	assert.Equal(t, `<fetch version="1.0" mapping="logical"><entity name="csp_child">`+
		`<attribute name="csp_name" /><attribute name="csp_parent" /><attribute name="csp_status" /><attribute name="csp_childid" />`+
		`<order attribute="createdon" descending="false" /><order attribute="csp_name" descending="true" />`+
		`<filter type="and"><condition attribute="statecode" operator="eq" value="0" />`+
		`<condition attribute="csp_status" operator="in"><value>418700000</value><value>418700001</value></condition>`+
		`<condition attribute="csp_expireson" operator="next-x-days" value="7" />`+
		`<condition attribute="csp_parent" operator="not-null" /></filter></entity></fetch>`, fetch)
	layout, err := v.LayoutXML(s, 10042)
	require.NoError(t, err)
	assert.Equal(t, `<grid name="resultset" object="10042" jump="csp_name" select="1" icon="1" preview="1">`+
		`<row name="result" id="csp_childid"><cell name="csp_name" width="200" /><cell name="csp_parent" width="150" /><cell name="csp_status" width="150" /></row></grid>`, layout)
}

func TestValidateReportsFormsAndViewsNamingWhatTheSchemaLacks(t *testing.T) {
	t.Parallel()
	s := formSchema()
	require.NoError(t, s.Validate())

	f := &s.App.Forms[0]
	f.Tabs[0].Sections[0].Fields = append(f.Tabs[0].Sections[0].Fields, dataverse.Field{Column: "csp_nosuch"}, dataverse.Field{Column: "csp_name"})
	f.Tabs[0].Sections[2].Subgrids = append(f.Tabs[0].Sections[2].Subgrids,
		dataverse.Subgrid{Name: "strangers", Table: "csp_stranger", Lookup: "csp_parent", View: "x"},
		dataverse.Subgrid{Name: "wrong", Table: "csp_child", Lookup: "csp_status", View: "No such view"},
		dataverse.Subgrid{Name: "defaulted", Table: "csp_child", Lookup: "csp_parent", View: "Active Children"})
	s.App.Forms = append(s.App.Forms, dataverse.Form{Table: "csp_nosuchtable", Name: "Ghost"})
	v := &s.App.Views[0]
	v.Columns = append(v.Columns, dataverse.ViewColumn{Column: "_csp_parent_value"})
	v.Filter = append(v.Filter, dataverse.Condition{Column: "csp_gone", Operator: "eq", Values: []string{"1"}},
		dataverse.Condition{Column: "csp_status", Operator: "between-ish", Values: []string{"1"}},
		dataverse.Condition{Column: "csp_status", Operator: "eq"})
	v.Order = append(v.Order, dataverse.Order{Column: "csp_sortkey"})
	s.App.Views = append(s.App.Views, dataverse.View{Table: "csp_child", Name: "Also default", Default: true, Columns: []dataverse.ViewColumn{{Column: "csp_name"}}})

	err := s.Validate()
	require.Error(t, err)
	for _, want := range []string{
		`form "Parent" shows undeclared column csp_parent.csp_nosuch`,
		`form "Parent" shows csp_name twice`,
		`subgrid strangers of form "Parent" names undeclared table csp_stranger`,
		`subgrid wrong of form "Parent": csp_child.csp_status is not a lookup to csp_parent`,
		`subgrid wrong of form "Parent" shows undeclared view "No such view" of csp_child`,
		`subgrid defaulted of form "Parent" shows the default view "Active Children" of csp_child: give it a view of its own`,
		`form "Ghost" names undeclared table csp_nosuchtable`,
		`view "Waiting, oldest first" shows undeclared column csp_child._csp_parent_value`,
		`view "Waiting, oldest first" filters on undeclared column csp_child.csp_gone`,
		`view "Waiting, oldest first" uses unknown condition operator "between-ish"`,
		`view "Waiting, oldest first": operator eq on csp_status has 0 value(s)`,
		`view "Waiting, oldest first" orders by undeclared column csp_child.csp_sortkey`,
		`views "Active Children" and "Also default" of csp_child are both the default`,
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Len(t, strings.Split(strings.TrimPrefix(err.Error(), "dataverse: schema: "), "; "), 13, "nothing else is reported")
}

func TestInstallCreatesFormsAndViewsAndASecondRunFindsThem(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()

	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	for _, r := range srv.Requests() {
		// Tables that do not exist have no forms or views; a filter naming them on objecttypecode or
		// returnedtypecode (EntityName columns) could fail the read.
		assert.NotContains(t, []string{"systemforms", "savedqueries"}, r.Path, "nothing to read before the tables exist")
	}
	summaries := plan.Summaries()
	for _, want := range []string{
		"create main form csp_licensechangelog: License Change Log",
		"create default view csp_licensechangelog: Active License Change Logs",
		"create view csp_licensechangelog: Awaiting or Failed, oldest first",
		"create view csp_provideraccount: Needing mapping",
	} {
		assert.Contains(t, summaries, want)
	}
	last := summaries[slices.IndexFunc(summaries, func(s string) bool { return strings.HasPrefix(s, "publish forms and views of ") })]
	for _, table := range []string{"csp_licensechangelog", "csp_provideraccount", "csp_jobrun"} {
		assert.Contains(t, last, table, "the forms' and views' tables are published after them")
	}
	require.True(t, strings.HasPrefix(last, "publish forms and views of "), last)
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	forms := srv.Rows("systemform")
	for _, f := range s.App.Forms {
		i := slices.IndexFunc(forms, func(r map[string]any) bool { return r["formid"] == dataverse.FormID(f.Table, f.Name).String() })
		require.GreaterOrEqual(t, i, 0, "form %s of %s has its stable id", f.Name, f.Table)
		row := forms[i]
		assert.Equal(t, f.Table, row["objecttypecode"])
		assert.EqualValues(t, 2, row["type"], "a main form")
		assert.Equal(t, true, row["isdefault"], "the table's default form")
		want, err := f.FormXML(s, nil)
		require.NoError(t, err)
		assert.Equal(t, want, row["formxml"])
		assert.True(t, slices.ContainsFunc(forms, func(r map[string]any) bool {
			return r["objecttypecode"] == f.Table && r["name"] == "Information"
		}), "Dataverse's own form of %s stays", f.Table)
	}

	// The default view is Dataverse's own "Active …" view, made into the connector's: one of that name.
	views := srv.Rows("savedquery")
	named := func(table, name string) []map[string]any {
		var out []map[string]any
		for _, r := range views {
			if r["returnedtypecode"] == table && r["name"] == name && r["querytype"] == int64(0) {
				out = append(out, r)
			}
		}
		return out
	}
	active := named("csp_licensechangelog", "Active License Change Logs")
	require.Len(t, active, 1)
	assert.NotEqual(t, dataverse.ViewID("csp_licensechangelog", "Active License Change Logs").String(), active[0]["savedqueryid"])
	assert.Equal(t, true, active[0]["isdefault"])
	i := slices.IndexFunc(s.App.Views, func(v dataverse.View) bool { return v.Name == "Active License Change Logs" })
	fetch, err := s.App.Views[i].FetchXML(s)
	require.NoError(t, err)
	assert.Equal(t, fetch, active[0]["fetchxml"])

	health := named("csp_licensechangelog", schema.ViewLCLAwaitingOrFailed)
	require.Len(t, health, 1)
	assert.Equal(t, dataverse.ViewID("csp_licensechangelog", schema.ViewLCLAwaitingOrFailed).String(), health[0]["savedqueryid"])
	def, err := c.GetTableDefinition(ctx, "csp_licensechangelog")
	require.NoError(t, err)
	require.GreaterOrEqual(t, def.ObjectTypeCode, 10000, "a custom table's number")
	assert.Contains(t, health[0]["layoutxml"], fmt.Sprintf(`<grid name="resultset" object="%d" jump="csp_name"`, def.ObjectTypeCode))
	for _, v := range s.App.Views {
		assert.Len(t, named(v.Table, v.Name), 1, "view %s of %s", v.Name, v.Table)
	}

	srv.ResetRequests()
	again, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
	assert.Empty(t, writes(srv))
	reads := map[string]int{}
	for _, r := range srv.Requests() {
		reads[r.Path]++
	}
	assert.Equal(t, 1, reads["systemforms"], "forms are read once for every table")
	assert.Equal(t, 1, reads["savedqueries"], "views are read once for every table")
}

func TestInstallUpdatesTheFormsAndViewsWhoseDeclarationChanged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := formSchema()
	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	// The next version: a column on the parent, shown on its form, and a column more in a view.
	next := formSchema()
	next.Tables[0].Columns = append(next.Tables[0].Columns, dataverse.Column{LogicalName: "csp_extra", DisplayName: "Extra", Type: dataverse.TypeString, MaxLength: 50})
	sec := &next.App.Forms[0].Tabs[0].Sections[0]
	sec.Fields = append(sec.Fields, dataverse.Field{Column: "csp_extra"})
	next.App.Views[0].Columns = append(next.App.Views[0].Columns, dataverse.ViewColumn{Column: "csp_expireson", Width: 125})
	next.App.Views[1].Description = "Every active child."

	srv.ResetRequests()
	plan, err = c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"add column csp_parent.csp_extra (String, 50 characters)",
		"publish customizations of csp_parent",
		"update view csp_child: Waiting, oldest first: fetchxml, layoutxml changed",
		"update view csp_child: Active Children: description changed",
		"update main form csp_parent: Parent: formxml changed",
		"publish forms and views of csp_child, csp_parent",
	}, plan.Summaries())
	assert.Empty(t, writes(srv), "planning only reads")
	require.NoError(t, c.ApplySchema(ctx, plan, nil))
	patched := 0
	for _, r := range writes(srv) {
		if r.Method == "PATCH" && (strings.HasPrefix(r.Path, "systemforms(") || strings.HasPrefix(r.Path, "savedqueries(")) {
			patched++
		}
	}
	assert.Equal(t, 3, patched, "updates in place, no new forms or views")

	again, err := c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())

	// Dataverse may keep the XML its own way (attributes in another order, line breaks): the same
	// document is no change.
	doc, err := next.App.Forms[0].FormXML(next, nil)
	require.NoError(t, err)
	kept := strings.ReplaceAll(doc, "><", ">\n  <")
	kept = strings.Replace(kept, `id="csp_name" classid="{4273EDBD-AC1D-40d3-9FB2-095C621B552D}" datafieldname="csp_name" disabled="false"`,
		`datafieldname="csp_name" disabled="false" classid="{4273EDBD-AC1D-40d3-9FB2-095C621B552D}" id="csp_name"`, 1)
	require.NotEqual(t, doc, kept)
	_, err = c.Update(ctx, "systemforms", dataverse.FormID("csp_parent", "Parent"), dataverse.Row{"formxml": kept}, nil)
	require.NoError(t, err)
	again, err = c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
}
