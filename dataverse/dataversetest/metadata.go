package dataversetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
)

// systemTables exist in every environment: what WhoAmI and the installer need.
func systemTables() []dataverse.Table {
	str := func(name string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeString, MaxLength: max}
	}
	return []dataverse.Table{
		{LogicalName: "publisher", EntitySetName: "publishers", DisplayName: "Publisher", Standard: true,
			PrimaryName: str("friendlyname", 256),
			Columns: []dataverse.Column{str("uniquename", 256), str("customizationprefix", 8),
				{LogicalName: "customizationoptionvalueprefix", DisplayName: "Option value prefix", Type: dataverse.TypeInteger, MinValue: 10000, MaxValue: 99999}}},
		{LogicalName: "solution", EntitySetName: "solutions", DisplayName: "Solution", Standard: true,
			PrimaryName: str("friendlyname", 256),
			Columns: []dataverse.Column{str("uniquename", 65), str("version", 256),
				{LogicalName: "publisherid", DisplayName: "Publisher", Type: dataverse.TypeLookup, Target: "publisher"}}},
		{LogicalName: "systemuser", EntitySetName: "systemusers", DisplayName: "User", Standard: true,
			PrimaryName: str("fullname", 200),
			Columns: []dataverse.Column{str("internalemailaddress", 100), str("azureactivedirectoryobjectid", 40),
				{LogicalName: "isdisabled", DisplayName: "Disabled", Type: dataverse.TypeBoolean}}},
		{LogicalName: "team", EntitySetName: "teams", DisplayName: "Team", Standard: true, PrimaryName: str("name", 160)},
	}
}

// addTable creates a table, or merges the columns of a declaration into an existing one of that name.
func (s *Server) addTable(def dataverse.Table) {
	if t := s.tables[def.LogicalName]; t != nil {
		for _, c := range def.AllColumns() {
			if _, ok := t.cols[c.LogicalName]; !ok {
				t.def.Columns = append(t.def.Columns, c)
				t.cols[c.LogicalName] = c
			}
		}
		t.def.Keys = append(t.def.Keys, def.Keys...)
		for _, k := range def.Keys {
			t.addKey(keyDef{name: k.SchemaName, columns: k.Columns})
		}
		t.def.StatusReasons = append(t.def.StatusReasons, def.StatusReasons...)
		t.refreshStatus()
		return
	}
	t := newTable(def)
	t.objectTypeCode = s.nextObjectTypeCode(def.LogicalName)
	s.tables[def.LogicalName] = t
	s.sets[def.EntitySetName] = t
}

// mustInsert seeds a row; a seeding mistake is a bug in the simulator's caller.
func (s *Server) mustInsert(table string, values map[string]any) string {
	id, err := s.Insert(table, values)
	if err != nil {
		panic(err)
	}
	return id
}

// Insert adds a row directly, bypassing the HTTP API and the request log: for seeding tests and demos.
// values use the Web API's JSON forms (text, numbers, booleans, RFC 3339 dates, lookups as
// "name@odata.bind": "/set(id)"). It returns the row's id.
func (s *Server) Insert(table string, values map[string]any) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[table]
	if t == nil {
		return "", fmt.Errorf("dataversetest: no table %s", table)
	}
	body, err := json.Marshal(values)
	if err != nil {
		return "", err
	}
	res := s.create(op{method: http.MethodPost, path: t.def.EntitySetName, body: body, header: http.Header{}, host: "simulator"}, t, nil)
	if res.err != nil {
		return "", fmt.Errorf("dataversetest: insert into %s: %s", table, res.err.message)
	}
	loc := res.header.Get("Odata-Entityid")
	return loc[strings.LastIndexByte(loc, '(')+1 : len(loc)-1], nil
}

// Row returns a copy of a row's values (lookups by column name as the target id), and whether it exists.
func (s *Server) Row(table, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[table]
	if t == nil {
		return nil, false
	}
	r := t.rows[strings.ToLower(id)]
	if r == nil {
		return nil, false
	}
	return r.clone().values, true
}

// Rows returns copies of every row of a table, in creation order.
func (s *Server) Rows(table string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[table]
	if t == nil {
		return nil
	}
	out := make([]map[string]any, 0, len(t.order))
	for _, id := range t.order {
		out = append(out, t.rows[id].clone().values)
	}
	return out
}

// Tables returns the logical names of the tables that exist, sorted.
func (s *Server) Tables() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.tables {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Table returns the current definition of a table (as created, including metadata changes since).
func (s *Server) Table(logicalName string) (dataverse.Table, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[logicalName]
	if t == nil {
		return dataverse.Table{}, false
	}
	return t.def, true
}

var (
	entityDefinition = regexp.MustCompile(`^EntityDefinitions\(LogicalName='([a-z0-9_]+)'\)(/.*)?$`)
	metadataActions  = []string{"EntityDefinitions", "RelationshipDefinitions", "InsertOptionValue", "InsertStatusValue", "PublishXml", "PublishAllXml"}
)

func isMetadataPath(path string) bool {
	for _, a := range metadataActions {
		if path == a || strings.HasPrefix(path, a+"(") {
			return true
		}
	}
	return false
}

func metadataError(status int, msg string) result {
	return fail(&apiError{status: status, code: "0x80044150", message: msg})
}

// metadata serves the metadata calls the installer makes.
func (s *Server) metadata(o op, path string) result {
	if e := s.checkSolution(o.header.Get("MSCRM.SolutionUniqueName")); e != nil {
		return fail(e)
	}
	switch {
	case o.method == http.MethodGet:
		m := entityDefinition.FindStringSubmatch(path)
		if m == nil {
			return fail(&apiError{status: 400, message: "Only EntityDefinitions(LogicalName='…') reads are simulated."})
		}
		t := s.tables[m[1]]
		if t == nil {
			return fail(&apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("Could not find entity with name '%s'.", m[1])})
		}
		switch m[2] {
		case "":
			return result{status: 200, body: tableMetadata(t)}
		case "/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata":
			return result{status: 200, body: optionMetadata(t, dataverse.TypeChoice)}
		case "/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata":
			return result{status: 200, body: optionMetadata(t, dataverse.TypeStatus)}
		}
		return fail(&apiError{status: 400, message: "Unsupported metadata read " + m[2]})
	case o.method != http.MethodPost:
		return fail(&apiError{status: 405, message: "Unsupported method."})
	case path == "PublishXml" || path == "PublishAllXml":
		return result{status: http.StatusNoContent}
	}
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(o.body))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return fail(&apiError{status: 400, code: dataverse.CodeODataPayload, message: "The metadata payload is not JSON."})
	}
	solution := o.header.Get("MSCRM.SolutionUniqueName")
	if sol, _ := body["SolutionUniqueName"].(string); sol != "" {
		if e := s.checkSolution(sol); e != nil {
			return fail(e)
		}
		solution = sol
	}
	switch {
	case path == "EntityDefinitions":
		return s.createTable(o, body, solution)
	case path == "RelationshipDefinitions":
		return s.createLookup(body, solution)
	case path == "InsertOptionValue" || path == "InsertStatusValue":
		return s.insertOption(body, path == "InsertStatusValue")
	}
	m := entityDefinition.FindStringSubmatch(path)
	if m == nil {
		return fail(&apiError{status: 400, message: "Unsupported metadata call " + path})
	}
	t := s.tables[m[1]]
	if t == nil {
		return fail(&apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("Could not find entity with name '%s'.", m[1])})
	}
	switch m[2] {
	case "/Attributes":
		col, err := columnFromMetadata(body)
		if err != nil {
			return metadataError(400, err.Error())
		}
		if e := s.checkPrefix(col.LogicalName, solution); e != nil {
			return fail(e)
		}
		if _, exists := t.cols[col.LogicalName]; exists {
			return metadataError(400, fmt.Sprintf("An attribute with the specified name %s already exists.", col.LogicalName))
		}
		t.def.Columns = append(t.def.Columns, col)
		t.cols[col.LogicalName] = col
		return result{status: http.StatusNoContent, header: http.Header{"Odata-Entityid": {o.base() + path + "(" + col.LogicalName + ")"}}}
	case "/Keys":
		name, _ := body["SchemaName"].(string)
		var cols []string
		for _, c := range asSlice(body["KeyAttributes"]) {
			col, _ := c.(string)
			if _, ok := t.cols[col]; !ok {
				return metadataError(400, fmt.Sprintf("The key attribute %s does not exist on %s.", col, t.def.LogicalName))
			}
			cols = append(cols, col)
		}
		if name == "" || len(cols) == 0 {
			return metadataError(400, "A key needs a SchemaName and KeyAttributes.")
		}
		if slices.ContainsFunc(t.keys, func(k keyDef) bool { return strings.EqualFold(k.name, name) }) {
			return metadataError(400, fmt.Sprintf("A key with the name %s already exists.", name))
		}
		k := t.addKey(keyDef{name: strings.ToLower(name), columns: cols})
		t.def.Keys = append(t.def.Keys, dataverse.AlternateKey{SchemaName: k.name, Columns: cols})
		return result{status: http.StatusNoContent}
	}
	return fail(&apiError{status: 400, message: "Unsupported metadata call " + path})
}

func (s *Server) checkSolution(name string) *apiError {
	if name == "" {
		return nil
	}
	if s.solutionPrefix(name) == "" {
		return &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("The solution %s does not exist.", name)}
	}
	return nil
}

// solutionPrefix is the customization prefix of a solution's publisher ("" if unknown).
func (s *Server) solutionPrefix(solution string) string {
	sol := s.tables["solution"]
	pub := s.tables["publisher"]
	for _, id := range sol.order {
		r := sol.rows[id]
		if name, _ := r.values["uniquename"].(string); strings.EqualFold(name, solution) {
			pid, _ := r.values["publisherid"].(string)
			if p := pub.rows[pid]; p != nil {
				prefix, _ := p.values["customizationprefix"].(string)
				return prefix
			}
		}
	}
	return ""
}

// checkPrefix refuses a custom name that does not carry the solution publisher's prefix, as Dataverse does.
func (s *Server) checkPrefix(name, solution string) *apiError {
	if solution == "" {
		return nil
	}
	prefix := s.solutionPrefix(solution)
	if !strings.HasPrefix(name, prefix+"_") {
		return &apiError{status: 400, code: "0x80044151", message: fmt.Sprintf("The schema name %s is not prefixed by the publisher customization prefix %s_ of solution %s.", name, prefix, solution)}
	}
	return nil
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func labelText(v any) string {
	m, _ := v.(map[string]any)
	for _, l := range asSlice(m["LocalizedLabels"]) {
		if lm, ok := l.(map[string]any); ok {
			if s, ok := lm["Label"].(string); ok {
				return s
			}
		}
	}
	return ""
}

func intOf(v any) int64 {
	n, _ := v.(json.Number)
	i, _ := n.Int64()
	return i
}

// columnFromMetadata reads an attribute definition body back into a column declaration.
func columnFromMetadata(m map[string]any) (dataverse.Column, error) {
	name, _ := m["SchemaName"].(string)
	if name == "" {
		return dataverse.Column{}, fmt.Errorf("the attribute has no SchemaName")
	}
	c := dataverse.Column{LogicalName: strings.ToLower(name), DisplayName: labelText(m["DisplayName"]), Description: labelText(m["Description"])}
	odataType, _ := m["@odata.type"].(string)
	switch strings.TrimPrefix(odataType, "Microsoft.Dynamics.CRM.") {
	case "StringAttributeMetadata":
		c.Type, c.MaxLength = dataverse.TypeString, int(intOf(m["MaxLength"]))
		if f, ok := m["FormatName"].(map[string]any); ok {
			c.Format, _ = f["Value"].(string)
		}
	case "MemoAttributeMetadata":
		c.Type, c.MaxLength = dataverse.TypeMemo, int(intOf(m["MaxLength"]))
	case "IntegerAttributeMetadata":
		c.Type, c.MinValue, c.MaxValue = dataverse.TypeInteger, intOf(m["MinValue"]), intOf(m["MaxValue"])
	case "DecimalAttributeMetadata":
		c.Type, c.Precision = dataverse.TypeDecimal, int(intOf(m["Precision"]))
	case "MoneyAttributeMetadata":
		c.Type = dataverse.TypeMoney
	case "BooleanAttributeMetadata":
		c.Type = dataverse.TypeBoolean
	case "DateTimeAttributeMetadata":
		c.Type = dataverse.TypeDateTime
		c.DateOnly = m["Format"] == "DateOnly"
	case "PicklistAttributeMetadata":
		c.Type = dataverse.TypeChoice
		os, _ := m["OptionSet"].(map[string]any)
		for _, o := range asSlice(os["Options"]) {
			om, _ := o.(map[string]any)
			c.Options = append(c.Options, dataverse.Option{Value: int(intOf(om["Value"])), Label: labelText(om["Label"])})
		}
		if len(c.Options) == 0 {
			return c, fmt.Errorf("the choice %s has no options", name)
		}
	default:
		return c, fmt.Errorf("attribute type %q is not simulated", odataType)
	}
	if c.Type == dataverse.TypeString || c.Type == dataverse.TypeMemo {
		if c.MaxLength <= 0 {
			return c, fmt.Errorf("the attribute %s needs a MaxLength", name)
		}
	}
	c.Secured, _ = m["IsSecured"].(bool)
	if rl, ok := m["RequiredLevel"].(map[string]any); ok {
		c.Required = rl["Value"] == "ApplicationRequired"
	}
	return c, nil
}

func (s *Server) createTable(o op, body map[string]any, solution string) result {
	name, _ := body["SchemaName"].(string)
	logical := strings.ToLower(name)
	if logical == "" {
		return metadataError(400, "The entity has no SchemaName.")
	}
	if e := s.checkPrefix(logical, solution); e != nil {
		return fail(e)
	}
	if s.tables[logical] != nil {
		return metadataError(400, fmt.Sprintf("An entity with the specified name %s already exists.", logical))
	}
	attrs := asSlice(body["Attributes"])
	if len(attrs) != 1 {
		return metadataError(400, "A new entity needs exactly one attribute: its primary name.")
	}
	am, _ := attrs[0].(map[string]any)
	if primary, _ := am["IsPrimaryName"].(bool); !primary {
		return metadataError(400, "The attribute of a new entity must be its primary name (IsPrimaryName).")
	}
	primary, err := columnFromMetadata(am)
	if err != nil || primary.Type != dataverse.TypeString {
		return metadataError(400, "The primary name attribute must be a StringAttributeMetadata.")
	}
	set, _ := body["EntitySetName"].(string)
	if set == "" {
		set = logical + "s"
	}
	if s.sets[set] != nil {
		return metadataError(400, fmt.Sprintf("The entity set name %s is already used.", set))
	}
	def := dataverse.Table{
		LogicalName: logical, EntitySetName: set, DisplayName: labelText(body["DisplayName"]),
		PluralName: labelText(body["DisplayCollectionName"]), Description: labelText(body["Description"]),
		PrimaryName: primary, OrganizationOwned: body["OwnershipType"] == "OrganizationOwned",
	}
	s.addTable(def)
	s.addMessageFilters(s.tables[logical])
	s.addDefaultForms(s.tables[logical])
	id := s.tables[logical].metadataID
	return result{status: http.StatusNoContent, header: http.Header{"Odata-Entityid": {o.base() + "EntityDefinitions(" + id + ")"}}}
}

func (s *Server) createLookup(body map[string]any, solution string) result {
	referencing, _ := body["ReferencingEntity"].(string)
	referenced, _ := body["ReferencedEntity"].(string)
	lookup, _ := body["Lookup"].(map[string]any)
	name, _ := lookup["SchemaName"].(string)
	nav, _ := body["ReferencingEntityNavigationPropertyName"].(string)
	t, target := s.tables[referencing], s.tables[referenced]
	switch {
	case t == nil || target == nil:
		return metadataError(404, fmt.Sprintf("The relationship refers to a missing entity (%s → %s).", referencing, referenced))
	case name == "":
		return metadataError(400, "The lookup has no SchemaName.")
	case nav != "" && nav != strings.ToLower(name):
		return metadataError(400, "The simulator expects the navigation property name to equal the lookup's logical name.")
	}
	if e := s.checkPrefix(strings.ToLower(name), solution); e != nil {
		return fail(e)
	}
	col := dataverse.Column{LogicalName: strings.ToLower(name), DisplayName: labelText(lookup["DisplayName"]), Type: dataverse.TypeLookup, Target: referenced}
	if _, exists := t.cols[col.LogicalName]; exists {
		return metadataError(400, fmt.Sprintf("An attribute with the specified name %s already exists.", col.LogicalName))
	}
	t.def.Columns = append(t.def.Columns, col)
	t.cols[col.LogicalName] = col
	return result{status: http.StatusNoContent}
}

func (s *Server) insertOption(body map[string]any, status bool) result {
	table, _ := body["EntityLogicalName"].(string)
	attr, _ := body["AttributeLogicalName"].(string)
	t := s.tables[table]
	if t == nil {
		return metadataError(404, fmt.Sprintf("Could not find entity with name '%s'.", table))
	}
	o := dataverse.Option{Value: int(intOf(body["Value"])), Label: labelText(body["Label"]), State: int(intOf(body["StateCode"]))}
	if status {
		if attr != "statuscode" {
			return metadataError(400, "InsertStatusValue applies to statuscode.")
		}
		if slices.ContainsFunc(t.def.AllStatusReasons(), func(x dataverse.Option) bool { return x.Value == o.Value }) {
			return metadataError(400, fmt.Sprintf("The status value %d already exists.", o.Value))
		}
		t.def.StatusReasons = append(t.def.StatusReasons, o)
		t.refreshStatus()
		return result{status: 200, body: map[string]any{"NewOptionValue": o.Value}}
	}
	c, ok := t.cols[attr]
	if !ok || c.Type != dataverse.TypeChoice {
		return metadataError(404, fmt.Sprintf("Could not find choice attribute %s on %s.", attr, table))
	}
	if slices.ContainsFunc(c.Options, func(x dataverse.Option) bool { return x.Value == o.Value }) {
		return metadataError(400, fmt.Sprintf("The option value %d already exists.", o.Value))
	}
	c.Options = append(slices.Clone(c.Options), dataverse.Option{Value: o.Value, Label: o.Label})
	t.cols[attr] = c
	for i := range t.def.Columns {
		if t.def.Columns[i].LogicalName == attr {
			t.def.Columns[i] = c
		}
	}
	return result{status: 200, body: map[string]any{"NewOptionValue": o.Value}}
}

func tableMetadata(t *table) map[string]any {
	var attrs []any
	names := make([]string, 0, len(t.cols))
	for name := range t.cols {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		attrs = append(attrs, map[string]any{"LogicalName": name, "AttributeType": string(t.cols[name].Type)})
	}
	var keys []any
	for _, k := range t.keys {
		keys = append(keys, map[string]any{"SchemaName": k.name, "KeyAttributes": k.columns, "EntityKeyIndexStatus": k.status})
	}
	return map[string]any{
		"MetadataId": t.metadataID, "LogicalName": t.def.LogicalName, "EntitySetName": t.def.EntitySetName,
		"PrimaryIdAttribute": t.def.PrimaryKey(), "PrimaryNameAttribute": t.def.PrimaryName.LogicalName,
		"ObjectTypeCode": t.objectTypeCode, "Attributes": attrs, "Keys": keys,
	}
}

func optionMetadata(t *table, kind dataverse.ColumnType) map[string]any {
	var out []any
	names := make([]string, 0, len(t.cols))
	for name, c := range t.cols {
		if c.Type == kind {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		var opts []any
		for _, o := range t.cols[name].Options {
			om := map[string]any{"Value": o.Value, "Label": map[string]any{"UserLocalizedLabel": map[string]any{"Label": o.Label}}}
			if kind == dataverse.TypeStatus {
				om["State"] = o.State
			}
			opts = append(opts, om)
		}
		out = append(out, map[string]any{"LogicalName": name, "OptionSet": map[string]any{"Options": opts}})
	}
	if out == nil {
		out = []any{}
	}
	return map[string]any{"value": out}
}
