package dataversetest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Model-driven apps: sitemaps, app modules and their components, app settings. The simulator keeps them as
// tables (sitemaps, appmodules, appmodulecomponents, settingdefinitions, appsettings) and serves the
// messages that write and check them: AddAppComponents, ValidateApp, SaveSettingValue and PublishXml of
// app modules and sitemaps. It refuses what Dataverse refuses that the installer could get wrong: a sitemap
// that opens a table that does not exist, a component that does not exist, an app without an icon, a
// setting nobody defined. App modules, sitemaps and app settings have a published layer besides what is
// written (publishedLayer): the entity set lists what was published, RetrieveUnpublishedMultiple what was
// written, and publishing an app stamps its publishedon.

// Solution component types (appmodulecomponent.componenttype).
const (
	componentTypeEntity     = 1
	componentTypeSavedQuery = 26
	componentTypeSystemForm = 60
	componentTypeSiteMap    = 62
)

// appModuleTables are the system tables of model-driven apps, with the columns the installer uses.
func appModuleTables() []dataverse.Table {
	str := func(name string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeString, MaxLength: max}
	}
	memo := func(name string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeMemo, MaxLength: max}
	}
	col := func(name string, typ dataverse.ColumnType) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: typ}
	}
	lookup := func(name, target string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeLookup, Target: target}
	}
	choice := func(name string, labels ...string) dataverse.Column {
		c := col(name, dataverse.TypeChoice)
		for i, l := range labels {
			c.Options = append(c.Options, dataverse.Option{Value: i, Label: l})
		}
		return c
	}
	return []dataverse.Table{
		{LogicalName: "sitemap", EntitySetName: "sitemaps", DisplayName: "Site Map", Standard: true, OrganizationOwned: true,
			PrimaryName: str("sitemapname", 200),
			Columns: []dataverse.Column{str("sitemapnameunique", 200), memo("sitemapxml", 1073741823), col("isappaware", dataverse.TypeBoolean),
				col("showhome", dataverse.TypeBoolean), col("showpinned", dataverse.TypeBoolean), col("showrecents", dataverse.TypeBoolean)},
			Keys: []dataverse.AlternateKey{{SchemaName: "sitemapnameunique", Columns: []string{"sitemapnameunique"}}}},
		{LogicalName: "appmodule", EntitySetName: "appmodules", DisplayName: "Model-driven App", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 100),
			Columns: []dataverse.Column{str("uniquename", 100), memo("description", 2000), col("webresourceid", dataverse.TypeID),
				col("appmoduleidunique", dataverse.TypeID), col("clienttype", dataverse.TypeInteger), col("formfactor", dataverse.TypeInteger),
				choice("navigationtype", "Single session", "Multi session"), col("publishedon", dataverse.TypeDateTime)},
			Keys: []dataverse.AlternateKey{{SchemaName: "uniquename", Columns: []string{"uniquename"}}}},
		// appmoduleidunique points at the app's appmoduleidunique, not its appmoduleid.
		{LogicalName: "appmodulecomponent", EntitySetName: "appmodulecomponents", DisplayName: "App Module Component", Standard: true,
			Columns: []dataverse.Column{lookup("appmoduleidunique", "appmodule"), col("objectid", dataverse.TypeID), col("componenttype", dataverse.TypeInteger)}},
		{LogicalName: "settingdefinition", EntitySetName: "settingdefinitions", DisplayName: "Setting Definition", Standard: true, OrganizationOwned: true,
			PrimaryName: str("uniquename", 100),
			Columns: []dataverse.Column{str("defaultvalue", 2000), choice("datatype", "Number", "String", "Boolean"),
				choice("overridablelevel", "App and organization", "Organization only", "App only")}},
		{LogicalName: "appsetting", EntitySetName: "appsettings", DisplayName: "App Setting", Standard: true, OrganizationOwned: true,
			PrimaryName: str("uniquename", 100),
			Columns:     []dataverse.Column{str("value", 2000), lookup("parentappmoduleid", "appmodule"), lookup("settingdefinitionid", "settingdefinition")}},
	}
}

// publishedLayer holds rows of app modules, sitemaps and app settings as they were when last published,
// by table and id. Writes change the unpublished layer (the tables themselves); PublishXml copies an app
// (with its settings) or a sitemap into this one. Listing the entity set reads the published layer, as in
// Dataverse; RetrieveUnpublishedMultiple reads the unpublished one, which has every row.
type publishedLayer map[string]map[string]*record

// layered are the tables whose list reads the published layer.
var layered = map[string]string{"appmodules": "appmodule", "sitemaps": "sitemap", "appsettings": "appsetting"}

const retrieveUnpublished = "/Microsoft.Dynamics.CRM.RetrieveUnpublishedMultiple()"

func (s *Server) publish(t *table, r *record) {
	if s.published[t.def.LogicalName] == nil {
		s.published[t.def.LogicalName] = map[string]*record{}
	}
	s.published[t.def.LogicalName][r.id] = r.clone()
}

// publishedTable is a read-only view of a table's published rows, in creation order.
func (s *Server) publishedTable(t *table) *table {
	view := &table{def: t.def, cols: t.cols, rows: map[string]*record{}, index: map[string]map[string]string{}, lookups: lookupIndex{}, metadataID: t.metadataID}
	for _, id := range t.order {
		if r := s.published[t.def.LogicalName][id]; r != nil {
			view.rows[id] = r
			view.order = append(view.order, id)
			view.indexLookups(r) // a filter on a lookup is answered from the index
		}
	}
	return view
}

// addAppModules adds the app tables and the setting definitions every environment has.
func (s *Server) addAppModules() {
	s.published = publishedLayer{}
	for _, t := range appModuleTables() {
		s.addTable(t)
	}
	s.mustInsert("settingdefinition", map[string]any{"uniquename": dataverse.NotificationsSetting, "defaultvalue": "false", "datatype": 2, "overridablelevel": 0})
}

var validateAppPath = regexp.MustCompile(`^ValidateApp\(AppModuleId=([0-9A-Fa-f-]{36})\)$`)

// appModuleOp serves the app messages, and checks writes of sitemaps and app modules before the generic
// handlers store them. handled is false for anything else.
func (s *Server) appModuleOp(o *op, path string) (res result, handled bool) {
	switch {
	case path == "EntityDefinitions" && o.method == http.MethodGet:
		return s.listTableIDs(*o), true
	case path == "AddAppComponents" && o.method == http.MethodPost:
		return s.addAppComponents(o), true
	case path == "SaveSettingValue" && o.method == http.MethodPost:
		return s.saveSettingValue(o), true
	case path == "PublishXml" && o.method == http.MethodPost:
		if e := s.publishApps(o); e != nil {
			return fail(e), true
		}
		return result{}, false // the metadata handler publishes the rest
	case o.method == http.MethodGet:
		if m := validateAppPath.FindStringSubmatch(path); m != nil {
			return s.validateApp(o, strings.ToLower(m[1])), true
		}
		if set, ok := strings.CutSuffix(path, retrieveUnpublished); ok && layered[set] != "" {
			return s.list(*o, s.tables[layered[set]]), true
		}
		if name := layered[path]; name != "" {
			return s.list(*o, s.publishedTable(s.tables[name])), true
		}
	case path == "sitemaps" || strings.HasPrefix(path, "sitemaps("):
		if e := s.checkSiteMapWrite(o); e != nil {
			return fail(e), true
		}
	case path == "appmodules" && o.method == http.MethodPost:
		if e := s.checkAppModuleCreate(o); e != nil {
			return fail(e), true
		}
	}
	return result{}, false
}

// listTableIDs answers GET EntityDefinitions?$select=LogicalName,MetadataId: every table's id.
func (s *Server) listTableIDs(o op) result {
	var out []any
	for _, name := range s.sortedTableNames() {
		t := s.tables[name]
		out = append(out, map[string]any{"LogicalName": name, "MetadataId": t.metadataID})
	}
	return result{status: 200, body: map[string]any{"@odata.context": o.base() + "$metadata#EntityDefinitions(LogicalName,MetadataId)", "value": out}}
}

func (s *Server) sortedTableNames() []string {
	out := make([]string, 0, len(s.tables))
	for name := range s.tables {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func decodeAction(body []byte, into any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return &apiError{status: 400, code: dataverse.CodeODataPayload, message: "The request body is not a valid JSON object for the action."}
	}
	return nil
}

// siteMapTables returns the tables a SiteMap XML opens (SubArea/@Entity).
func siteMapTables(x string) ([]string, error) {
	dec := xml.NewDecoder(strings.NewReader(x))
	var out []string
	root := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root && el.Name.Local != "SiteMap" {
			return nil, fmt.Errorf("the root element is %s, not SiteMap", el.Name.Local)
		}
		root = false
		if el.Name.Local != "SubArea" {
			continue
		}
		for _, a := range el.Attr {
			if a.Name.Local == "Entity" {
				out = append(out, a.Value)
			}
		}
	}
}

// checkSiteMapWrite refuses a sitemap whose XML is not a SiteMap or opens a table that does not exist.
func (s *Server) checkSiteMapWrite(o *op) *apiError {
	if o.method != http.MethodPost && o.method != http.MethodPatch {
		return nil
	}
	var body map[string]any
	if e := decodeAction(o.body, &body); e != nil {
		return e
	}
	x, ok := body["sitemapxml"].(string)
	if !ok {
		return nil
	}
	tables, err := siteMapTables(x)
	if err != nil {
		return &apiError{status: 400, code: dataverse.CodeValidation, message: "The sitemap XML is not valid: " + err.Error()}
	}
	for _, t := range tables {
		if s.tables[t] == nil {
			return &apiError{status: 400, code: dataverse.CodeValidation, message: fmt.Sprintf("The sitemap refers to the entity '%s', which does not exist.", t)}
		}
	}
	return nil
}

// checkAppModuleCreate refuses an app without the properties Dataverse requires (name, uniquename,
// webresourceid) and gives it its appmoduleidunique.
func (s *Server) checkAppModuleCreate(o *op) *apiError {
	var body map[string]any
	if e := decodeAction(o.body, &body); e != nil {
		return e
	}
	for _, req := range []string{"name", "uniquename", "webresourceid"} {
		if v, _ := body[req].(string); v == "" {
			return &apiError{status: 400, code: dataverse.CodeValidation, message: fmt.Sprintf("A model-driven app needs %s.", req)}
		}
	}
	if _, ok := body["appmoduleidunique"]; !ok {
		body["appmoduleidunique"] = uuid.NewString()
		o.body, _ = json.Marshal(body)
	}
	return nil
}

// appByID finds an app module row by its id.
func (s *Server) appByID(id string) *record {
	return s.tables["appmodule"].rows[strings.ToLower(id)]
}

func (s *Server) appByUniqueName(name string) *record {
	t := s.tables["appmodule"]
	for _, id := range t.order {
		if n, _ := t.rows[id].values["uniquename"].(string); strings.EqualFold(n, name) {
			return t.rows[id]
		}
	}
	return nil
}

func appNotFound(id string) *apiError {
	return &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("appmodule With Id = %s Does Not Exist", id)}
}

// componentsOf returns an app's component rows.
func (s *Server) componentsOf(app *record) []*record {
	unique, _ := app.values["appmoduleidunique"].(string)
	t := s.tables["appmodulecomponent"]
	var out []*record
	for _, id := range t.order {
		if r := t.rows[id]; r.values["appmoduleidunique"] == unique {
			out = append(out, r)
		}
	}
	return out
}

// addAppComponents serves AddAppComponents: each component must exist; one already in the app is left as
// it is.
func (s *Server) addAppComponents(o *op) result {
	var body struct {
		AppID      string           `json:"AppId"`
		Components []map[string]any `json:"Components"`
	}
	if e := decodeAction(o.body, &body); e != nil {
		return fail(e)
	}
	app := s.appByID(body.AppID)
	if app == nil {
		return fail(appNotFound(body.AppID))
	}
	type component struct {
		kind int64
		id   string
	}
	var add []component
	for _, c := range body.Components {
		typ, _ := c["@odata.type"].(string)
		kind := strings.TrimPrefix(strings.TrimPrefix(typ, "#"), "Microsoft.Dynamics.CRM.")
		var comp component
		var exists bool
		switch kind {
		case "entity":
			comp = component{componentTypeEntity, strings.ToLower(str(c["entityid"]))}
			for _, t := range s.tables {
				exists = exists || t.metadataID == comp.id
			}
		case "sitemap":
			comp = component{componentTypeSiteMap, strings.ToLower(str(c["sitemapid"]))}
			exists = s.tables["sitemap"].rows[comp.id] != nil
		case "systemform", "savedquery":
			comp = component{componentTypeSystemForm, strings.ToLower(str(c["formid"]))}
			if kind == "savedquery" {
				comp = component{componentTypeSavedQuery, strings.ToLower(str(c["savedqueryid"]))}
			}
			t := s.tables[kind]
			exists = t != nil && t.rows[comp.id] != nil
		default:
			return fail(&apiError{status: 400, code: dataverse.CodeODataPayload, message: fmt.Sprintf("The component type '%s' cannot be added to an app by the simulator.", typ)})
		}
		if !exists {
			return fail(&apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("%s With Id = %s Does Not Exist", kind, comp.id)})
		}
		add = append(add, comp)
	}
	have := map[string]bool{}
	for _, r := range s.componentsOf(app) {
		have[str(r.values["objectid"])] = true
	}
	unique := str(app.values["appmoduleidunique"])
	t := s.tables["appmodulecomponent"]
	for _, c := range add {
		if have[c.id] {
			continue
		}
		have[c.id] = true
		if _, e := s.insert(t, uuid.NewString(), map[string]any{
			"appmoduleidunique": lookupValue{id: unique, table: "appmodule"}, "objectid": c.id, "componenttype": c.kind,
		}, nil); e != nil {
			return fail(e)
		}
	}
	return result{status: http.StatusNoContent}
}

// validateApp serves ValidateApp: an app needs a sitemap, and each table its sitemap opens must be in the
// app; a table with no form or view in the app shows all of them, which is a warning.
func (s *Server) validateApp(o *op, id string) result {
	app := s.appByID(id)
	if app == nil {
		return fail(appNotFound(id))
	}
	var issues []any
	issue := func(kind, msg string, code int64) {
		issues = append(issues, map[string]any{
			"ErrorType": kind, "Message": msg, "DisplayName": nil, "ComponentId": "00000000-0000-0000-0000-000000000000",
			"ComponentType": 0, "ComponentSubType": 0, "ParentEntityId": "00000000-0000-0000-0000-000000000000",
			"ParentEntityName": nil, "CRMErrorCode": code, "RequiredComponents": []any{},
		})
	}
	var siteMap *record
	entities := map[string]bool{}
	formsOrViews := false
	for _, c := range s.componentsOf(app) {
		switch c.values["componenttype"] {
		case int64(componentTypeSiteMap):
			siteMap = s.tables["sitemap"].rows[str(c.values["objectid"])]
		case int64(componentTypeEntity):
			for name, t := range s.tables {
				if t.metadataID == c.values["objectid"] {
					entities[name] = true
				}
			}
		case int64(componentTypeSystemForm), int64(componentTypeSavedQuery):
			formsOrViews = true
		}
	}
	if siteMap == nil {
		issue("Error", "App does not contain Site Map", -2147155684)
	} else {
		tables, _ := siteMapTables(str(siteMap.values["sitemapxml"]))
		for _, t := range tables {
			if !entities[t] {
				issue("Error", fmt.Sprintf("The site map opens %s, which is not a component of the app.", t), -2147155684)
			}
		}
	}
	if !formsOrViews {
		for _, name := range s.sortedTableNames() {
			if entities[name] {
				issue("Warning", fmt.Sprintf("%s doesn’t reference a form or view. App users will see all forms and views.", s.tables[name].def.DisplayName), -2147155691)
			}
		}
	}
	success := true
	for _, is := range issues {
		if is.(map[string]any)["ErrorType"] == "Error" {
			success = false
		}
	}
	if issues == nil {
		issues = []any{}
	}
	return result{status: 200, body: map[string]any{
		"@odata.context":        o.base() + "$metadata#Microsoft.Dynamics.CRM.ValidateAppResponse",
		"AppValidationResponse": map[string]any{"ValidationSuccess": success, "ValidationIssueList": issues},
	}}
}

// saveSettingValue serves SaveSettingValue for an app (AppUniqueName) or, without one, the organization
// (which the simulator does not keep).
func (s *Server) saveSettingValue(o *op) result {
	var body struct{ AppUniqueName, SettingName, Value, SolutionUniqueName string }
	if e := decodeAction(o.body, &body); e != nil {
		return fail(e)
	}
	if e := s.checkSolution(body.SolutionUniqueName); e != nil {
		return fail(e)
	}
	defs := s.tables["settingdefinition"]
	var def *record
	for _, id := range defs.order {
		if n := str(defs.rows[id].values["uniquename"]); strings.EqualFold(n, body.SettingName) {
			def = defs.rows[id]
		}
	}
	if def == nil {
		return fail(&apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("Setting definition '%s' does not exist.", body.SettingName)})
	}
	if body.AppUniqueName == "" {
		return fail(&apiError{status: 400, message: "The simulator keeps app setting values only: give AppUniqueName."})
	}
	app := s.appByUniqueName(body.AppUniqueName)
	if app == nil {
		return fail(&apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("App module '%s' does not exist.", body.AppUniqueName)})
	}
	if def.values["datatype"] == int64(2) && body.Value != "true" && body.Value != "false" {
		return fail(&apiError{status: 400, code: dataverse.CodeValidation, message: fmt.Sprintf("The value '%s' is not valid for the Boolean setting %s.", body.Value, body.SettingName)})
	}
	t := s.tables["appsetting"]
	for _, id := range t.order {
		r := t.rows[id]
		if r.values["parentappmoduleid"] == app.id && r.values["settingdefinitionid"] == def.id {
			if e := s.update(t, r, map[string]any{"value": body.Value}, nil); e != nil {
				return fail(e)
			}
			return result{status: http.StatusNoContent}
		}
	}
	if _, e := s.insert(t, uuid.NewString(), map[string]any{
		"uniquename": str(app.values["uniquename"]) + "_" + str(def.values["uniquename"]), "value": body.Value,
		"parentappmoduleid":   lookupValue{id: app.id, table: "appmodule"},
		"settingdefinitionid": lookupValue{id: def.id, table: "settingdefinition"},
	}, nil); e != nil {
		return fail(e)
	}
	return result{status: http.StatusNoContent}
}

// publishApps checks the app modules and sitemaps a PublishXml names exist, and stamps each app published.
func (s *Server) publishApps(o *op) *apiError {
	var body struct{ ParameterXml string }
	if e := decodeAction(o.body, &body); e != nil {
		return e
	}
	var x struct {
		AppModules []string `xml:"appmodules>appmodule"`
		SiteMaps   []string `xml:"sitemaps>sitemap"`
	}
	if err := xml.Unmarshal([]byte(body.ParameterXml), &x); err != nil {
		return &apiError{status: 400, code: dataverse.CodeValidation, message: "ParameterXml is not valid XML."}
	}
	var apps []*record
	for _, id := range x.AppModules {
		app := s.appByID(strings.Trim(id, "{}"))
		if app == nil {
			return appNotFound(id)
		}
		apps = append(apps, app)
	}
	for _, id := range x.SiteMaps {
		id = strings.ToLower(strings.Trim(id, "{}"))
		if id != "" && s.tables["sitemap"].rows[id] == nil {
			return &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("sitemap With Id = %s Does Not Exist", id)}
		}
	}
	for _, app := range apps {
		if e := s.update(s.tables["appmodule"], app, map[string]any{"publishedon": s.now().UTC().Truncate(time.Second)}, nil); e != nil {
			return e
		}
		s.publish(s.tables["appmodule"], app)
		settings := s.tables["appsetting"]
		for _, id := range settings.order {
			if r := settings.rows[id]; r.values["parentappmoduleid"] == app.id {
				s.publish(settings, r)
			}
		}
	}
	for _, id := range x.SiteMaps {
		if r := s.tables["sitemap"].rows[strings.ToLower(strings.Trim(id, "{}"))]; r != nil {
			s.publish(s.tables["sitemap"], r)
		}
	}
	return nil
}
