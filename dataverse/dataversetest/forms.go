package dataversetest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Forms and views: the systemforms and savedqueries entity sets, kept like any other table, with what
// Dataverse checks when one is written: the table it belongs to exists, and every column its FormXml,
// FetchXml or LayoutXml names is a column of that table. A table created through the metadata API gets
// the main form and views Dataverse gives every new table ("Information", "Active …", …).

// Form types (systemform.type) and view query types (savedquery.querytype) the simulator knows.
const (
	formTypeMain          = 2
	queryTypePublic       = 0
	queryTypeAdvancedFind = 1
	queryTypeAssociated   = 2
	queryTypeQuickFind    = 4
	queryTypeLookup       = 64
)

// formTables are the system tables of forms and views, with the columns the Web API writes.
func formTables() []dataverse.Table {
	str := func(name string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeString, MaxLength: max}
	}
	memo := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeMemo, MaxLength: 1073741823}
	}
	yesNo := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeBoolean}
	}
	o := func(v int, label string) dataverse.Option { return dataverse.Option{Value: v, Label: label} }
	return []dataverse.Table{
		{LogicalName: "systemform", EntitySetName: "systemforms", DisplayName: "System Form", Standard: true, OrganizationOwned: true,
			PrimaryID: "formid", PrimaryName: str("name", 100),
			Columns: []dataverse.Column{
				memo("description"), memo("formxml"), str("objecttypecode", 64), yesNo("isdefault"),
				{LogicalName: "type", DisplayName: "Form Type", Type: dataverse.TypeChoice, Options: []dataverse.Option{
					o(0, "Dashboard"), o(1, "AppointmentBook"), o(2, "Main"), o(5, "Mobile - Express"), o(6, "Quick View Form"),
					o(7, "Quick Create"), o(8, "Dialog"), o(11, "Card"), o(12, "Main - Interactive experience"),
				}},
				{LogicalName: "formactivationstate", DisplayName: "Form State", Type: dataverse.TypeChoice, Options: []dataverse.Option{o(0, "Inactive"), o(1, "Active")}},
			}},
		{LogicalName: "savedquery", EntitySetName: "savedqueries", DisplayName: "View", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 200),
			Columns: []dataverse.Column{
				memo("description"), memo("fetchxml"), memo("layoutxml"), str("returnedtypecode", 64), yesNo("isdefault"),
				{LogicalName: "querytype", DisplayName: "Query Type", Type: dataverse.TypeInteger},
			}},
	}
}

// Object type codes of the system tables the simulator knows them for; every other table, custom tables
// first of all, is numbered from 10000 as it is added, as Dataverse numbers custom tables.
var standardObjectTypeCodes = map[string]int{
	"account": 1, "contact": 2, "systemuser": 8, "team": 9, "savedquery": 1039, "systemform": 1030,
	"solution": 7100, "publisher": 7101, "serviceendpoint": 4618, "sdkmessage": 4606,
	"sdkmessagefilter": 4607, "sdkmessageprocessingstep": 4608, "sdkmessageprocessingstepimage": 4615,
}

// nextObjectTypeCode numbers a table the server adds. The caller holds s.mu.
func (s *Server) nextObjectTypeCode(name string) int {
	if code, ok := standardObjectTypeCodes[name]; ok {
		return code
	}
	next := 10000
	for _, t := range s.tables {
		if t.objectTypeCode >= next {
			next = t.objectTypeCode + 1
		}
	}
	return next
}

// addDefaultForms gives a table created through the metadata API what Dataverse gives every new table:
// the "Information" main form with its primary name, and its system views. The caller holds s.mu.
func (s *Server) addDefaultForms(t *table) {
	forms, views := s.tables["systemform"], s.tables["savedquery"]
	if forms == nil || views == nil {
		return
	}
	name, pk := t.def.PrimaryName.LogicalName, t.def.PrimaryKey()
	s.seedRow(forms, map[string]any{
		"name": "Information", "objecttypecode": t.def.LogicalName, "type": int64(formTypeMain), "isdefault": true, "formactivationstate": int64(1),
		"formxml": `<form><tabs><tab name="general" id="{` + uuid.NewString() + `}"><labels><label description="General" languagecode="1033" /></labels>` +
			`<columns><column width="100%"><sections><section name="general" id="{` + uuid.NewString() + `}"><labels><label description="General" languagecode="1033" /></labels>` +
			`<rows><row><cell id="{` + uuid.NewString() + `}"><labels><label description="Name" languagecode="1033" /></labels>` +
			`<control id="` + name + `" classid="{4273EDBD-AC1D-40d3-9FB2-095C621B552D}" datafieldname="` + name + `" disabled="false" /></cell></row></rows>` +
			`</section></sections></column></columns></tab></tabs></form>`,
	})
	plural := t.def.PluralName
	if plural == "" {
		plural = t.def.DisplayName
	}
	layout := fmt.Sprintf(`<grid name="resultset" object="%d" jump="%s" select="1" icon="1" preview="1"><row name="result" id="%s"><cell name="%s" width="300" /><cell name="createdon" width="125" /></row></grid>`,
		t.objectTypeCode, name, pk, name)
	fetch := func(filter string) string {
		return `<fetch version="1.0" mapping="logical"><entity name="` + t.def.LogicalName + `"><attribute name="` + pk + `" /><attribute name="` + name + `" />` +
			`<attribute name="createdon" /><order attribute="` + name + `" descending="false" />` + filter + `</entity></fetch>`
	}
	state := func(v int) string {
		return fmt.Sprintf(`<filter type="and"><condition attribute="statecode" operator="eq" value="%d" /></filter>`, v)
	}
	for _, v := range []struct {
		name, filter string
		queryType    int
		isDefault    bool
	}{
		{"Active " + plural, state(0), queryTypePublic, true},
		{"Inactive " + plural, state(1), queryTypePublic, false},
		{"Quick Find Active " + plural, state(0), queryTypeQuickFind, true},
		{t.def.DisplayName + " Advanced Find View", "", queryTypeAdvancedFind, true},
		{t.def.DisplayName + " Associated View", state(0), queryTypeAssociated, true},
		{t.def.DisplayName + " Lookup View", state(0), queryTypeLookup, true},
	} {
		s.seedRow(views, map[string]any{
			"name": v.name, "returnedtypecode": t.def.LogicalName, "querytype": int64(v.queryType), "isdefault": v.isDefault,
			"fetchxml": fetch(v.filter), "layoutxml": layout,
		})
	}
}

// checkComponent refuses a form or view naming a table or column that does not exist, as Dataverse does
// when one is saved. r holds the row as it would be after the write.
func (s *Server) checkComponent(t *table, r *record) *apiError {
	switch t.def.LogicalName {
	case "systemform":
		if r.values["formactivationstate"] == nil {
			r.values["formactivationstate"] = int64(1)
		}
		target, e := s.componentTable(r.values["objecttypecode"])
		if e != nil {
			return e
		}
		if doc, _ := r.values["formxml"].(string); doc != "" {
			return s.checkFormXML(target, doc)
		}
	case "savedquery":
		target, e := s.componentTable(r.values["returnedtypecode"])
		if e != nil {
			return e
		}
		if doc, _ := r.values["fetchxml"].(string); doc != "" {
			if e := s.checkFetchXML(target, doc); e != nil {
				return e
			}
		}
		if doc, _ := r.values["layoutxml"].(string); doc != "" {
			return checkLayoutXML(target, doc)
		}
	}
	return nil
}

// entityNotFound is Dataverse's answer to a component or query naming a table it does not have: the
// metadata cache's 0x80041102, "The entity with a name = 'adx_webpage' with namemapping = 'Logical' was
// not found in the MetadataCache." (as reported by SDK clients; the MetadataCacheDetails that follow are
// left out).
func entityNotFound(name string) *apiError {
	return &apiError{status: 400, code: "0x80041102", message: fmt.Sprintf("The entity with a name = '%s' with namemapping = 'Logical' was not found in the MetadataCache.", name)}
}

// attributeNotFound is Dataverse's QueryBuilderNoAttribute: "'Account' entity doesn't contain attribute
// with Name = 'contactid'." (that wording is Dataverse's as users report it; the code 0x80041103 and the
// NameMapping clause are inferred, and Dataverse's answer to a FormXml control bound to no column is
// assumed to be the same).
func attributeNotFound(table, column string) *apiError {
	return &apiError{status: 400, code: "0x80041103", message: fmt.Sprintf("'%s' entity doesn't contain attribute with Name = '%s' and NameMapping = 'Logical'.", table, column)}
}

func invalidXML(what string, err error) *apiError {
	return &apiError{status: 400, code: "0x80040216", message: fmt.Sprintf("The %s is not valid XML: %v.", what, err)}
}

func (s *Server) componentTable(v any) (*table, *apiError) {
	name, _ := v.(string)
	if name == "" {
		return nil, &apiError{status: 400, code: "0x80040203", message: "The entity the component belongs to is missing (objecttypecode or returnedtypecode)."}
	}
	t := s.tables[name]
	if t == nil {
		return nil, entityNotFound(name)
	}
	return t, nil
}

// walkXML calls visit with every element's name, attributes and the names of its ancestors.
func walkXML(doc string, visit func(name string, attrs map[string]string, parents []string) *apiError) (*apiError, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	var stack []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attrs := map[string]string{}
			for _, a := range el.Attr {
				attrs[a.Name.Local] = a.Value
			}
			if e := visit(el.Name.Local, attrs, stack); e != nil {
				return e, nil
			}
			stack = append(stack, el.Name.Local)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 && stack[len(stack)-1] == "TargetEntityType" {
				if name := strings.TrimSpace(string(el)); name != "" {
					if e := visit("#TargetEntityType", map[string]string{"name": name}, stack); e != nil {
						return e, nil
					}
				}
			}
		}
	}
}

// checkFormXML: every control bound to a column names a column of the form's table, and every subgrid a
// table that exists.
func (s *Server) checkFormXML(t *table, doc string) *apiError {
	e, err := walkXML(doc, func(name string, attrs map[string]string, _ []string) *apiError {
		switch name {
		case "control":
			if col := attrs["datafieldname"]; col != "" {
				if _, ok := t.cols[col]; !ok {
					return attributeNotFound(t.def.LogicalName, col)
				}
			}
		case "#TargetEntityType":
			if s.tables[attrs["name"]] == nil {
				return entityNotFound(attrs["name"])
			}
		}
		return nil
	})
	if err != nil {
		return invalidXML("formxml", err)
	}
	return e
}

// checkFetchXML: the query is of the view's table, and every attribute, order and condition names a
// column of the entity or link-entity it is in.
func (s *Server) checkFetchXML(t *table, doc string) *apiError {
	var scopes []*table
	e, err := walkXML(doc, func(name string, attrs map[string]string, parents []string) *apiError {
		scopes = scopes[:min(len(scopes), countEntities(parents))]
		switch name {
		case "entity", "link-entity":
			et := s.tables[attrs["name"]]
			if et == nil {
				return entityNotFound(attrs["name"])
			}
			if name == "entity" && et != t {
				return &apiError{status: 400, code: "0x80040203", message: fmt.Sprintf("The fetchxml queries %s, the view returns %s.", et.def.LogicalName, t.def.LogicalName)}
			}
			scopes = append(scopes, et)
		case "attribute", "order", "condition":
			col := attrs["name"]
			if name != "attribute" {
				col = attrs["attribute"]
			}
			if col == "" || len(scopes) == 0 || attrs["entityname"] != "" {
				return nil
			}
			scope := scopes[len(scopes)-1]
			if _, ok := scope.cols[col]; !ok {
				return attributeNotFound(scope.def.LogicalName, col)
			}
		}
		return nil
	})
	if err != nil {
		return invalidXML("fetchxml", err)
	}
	return e
}

func countEntities(parents []string) int {
	n := 0
	for _, p := range parents {
		if p == "entity" || p == "link-entity" {
			n++
		}
	}
	return n
}

// checkLayoutXML: the grid's row id and cells name columns of the view's table (a cell of a linked
// table, "alias.column", is left to the fetchxml's link-entity).
func checkLayoutXML(t *table, doc string) *apiError {
	e, err := walkXML(doc, func(name string, attrs map[string]string, _ []string) *apiError {
		col := ""
		switch name {
		case "row":
			col = attrs["id"]
		case "cell":
			col = attrs["name"]
		}
		if col == "" || strings.Contains(col, ".") {
			return nil
		}
		if _, ok := t.cols[col]; !ok {
			return attributeNotFound(t.def.LogicalName, col)
		}
		return nil
	})
	if err != nil {
		return invalidXML("layoutxml", err)
	}
	return e
}
