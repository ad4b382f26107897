package dataversetest

import (
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The tables through which Dataverse is told where to send events: service endpoints (a Service Bus queue
// or topic, or a webhook), the messages (Create, Update, …) and their per-table filters, the processing
// steps that tie a message on a table to an endpoint, and the entity images a step asks for. The
// simulator keeps them like any other table and reads them on every write to decide what to deliver
// (events.go).

// Message names the simulator knows; every table gets a filter for each.
var eventMessages = []string{"Create", "Update", "Delete"}

// Service endpoint contracts, message formats and authentication types (serviceendpoint.contract,
// .messageformat, .authtype).
const (
	contractQueue           = 2
	contractTopic           = 5
	contractQueuePersistent = 6
	contractWebhook         = 8

	formatJSON = 2

	authWebhookKey  = 4
	authHTTPHeader  = 5
	authHTTPQuery   = 6
	stepImagePre    = 0
	stepImagePost   = 1
	stepImageBoth   = 2
	stepModeAsync   = 1
	stepStagePostOp = 40
)

// registrationTables are the system tables of event registration, with the columns the Web API writes.
func registrationTables() []dataverse.Table {
	str := func(name string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeString, MaxLength: max}
	}
	choice := func(name string, opts ...dataverse.Option) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeChoice, Options: opts}
	}
	yesNo := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeBoolean}
	}
	lookup := func(name, target string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeLookup, Target: target}
	}
	o := func(v int, label string) dataverse.Option { return dataverse.Option{Value: v, Label: label} }
	return []dataverse.Table{
		{LogicalName: "serviceendpoint", EntitySetName: "serviceendpoints", DisplayName: "Service Endpoint", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 256),
			Columns: []dataverse.Column{
				choice("contract", o(1, "OneWay"), o(2, "Queue"), o(3, "Rest"), o(4, "TwoWay"), o(5, "Topic"), o(6, "Queue (Persistent)"),
					o(7, "Event Hub"), o(8, "Webhook"), o(9, "Event Grid"), o(10, "Managed Data Lake")),
				choice("connectionmode", o(1, "Normal"), o(2, "Federated")),
				choice("messageformat", o(1, "Binary XML"), o(2, "Json"), o(3, "Text XML")),
				choice("messagecharset", o(0, "Default"), o(1, "UTF8")),
				choice("namespaceformat", o(1, "Namespace Name"), o(2, "Namespace Address")),
				choice("authtype", o(1, "ACS"), o(2, "SAS Key"), o(3, "SAS Token"), o(4, "Webhook Key"), o(5, "Http Header"),
					o(6, "Http Query String"), o(7, "Connection String"), o(8, "Access Key")),
				choice("userclaim", o(1, "None"), o(2, "UserId"), o(3, "UserInfo")),
				str("namespaceaddress", 255), str("path", 160), str("solutionnamespace", 160), str("url", 2000),
				str("saskeyname", 256), str("saskey", 256), str("sastoken", 256), str("authvalue", 2048),
				{LogicalName: "description", DisplayName: "description", Type: dataverse.TypeMemo, MaxLength: 2000},
				yesNo("isauthvalueset"), yesNo("issaskeyset"), yesNo("issastokenset"),
			}},
		{LogicalName: "sdkmessage", EntitySetName: "sdkmessages", DisplayName: "Sdk Message", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 256)},
		{LogicalName: "sdkmessagefilter", EntitySetName: "sdkmessagefilters", DisplayName: "Sdk Message Filter", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 256),
			Columns: []dataverse.Column{
				lookup("sdkmessageid", "sdkmessage"), str("primaryobjecttypecode", 128), str("secondaryobjecttypecode", 128),
				yesNo("iscustomprocessingstepallowed"),
			}},
		{LogicalName: "sdkmessageprocessingstep", EntitySetName: "sdkmessageprocessingsteps", DisplayName: "Sdk Message Processing Step", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 256),
			Columns: []dataverse.Column{
				choice("mode", o(0, "Synchronous"), o(1, "Asynchronous")),
				choice("stage", o(10, "Pre-validation"), o(20, "Pre-operation"), o(30, "Main operation"), o(40, "Post-operation")),
				{LogicalName: "rank", DisplayName: "rank", Type: dataverse.TypeInteger},
				choice("supporteddeployment", o(0, "Server Only"), o(1, "Microsoft Dynamics 365 Client for Outlook Only"), o(2, "Both")),
				choice("invocationsource", o(-1, "Internal"), o(0, "Parent"), o(1, "Child")),
				yesNo("asyncautodelete"), yesNo("canbebypassed"),
				str("filteringattributes", 100000), str("description", 256),
				{LogicalName: "configuration", DisplayName: "configuration", Type: dataverse.TypeMemo, MaxLength: 1048576},
				lookup("eventhandler", "serviceendpoint"), lookup("sdkmessageid", "sdkmessage"),
				lookup("sdkmessagefilterid", "sdkmessagefilter"), lookup("impersonatinguserid", "systemuser"),
			}},
		{LogicalName: "sdkmessageprocessingstepimage", EntitySetName: "sdkmessageprocessingstepimages", DisplayName: "Sdk Message Processing Step Image", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 256),
			Columns: []dataverse.Column{
				str("entityalias", 256),
				choice("imagetype", o(0, "PreImage"), o(1, "PostImage"), o(2, "Both")),
				str("messagepropertyname", 256), str("attributes", 100000), str("description", 256),
				lookup("sdkmessageprocessingstepid", "sdkmessageprocessingstep"),
			}},
	}
}

// navigationColumns maps the navigation properties of polymorphic lookups (and of lookups whose navigation
// property is not named like their column, such as appaction's OnClickEventJavaScriptWebResourceId) to their column, per table. A
// polymorphic lookup is written through one navigation property per target table
// ("eventhandler_serviceendpoint@odata.bind"); its bare name is not a navigation property. The simulator
// only knows the service endpoint target of eventhandler (the other is plugintype).
var navigationColumns = map[string]map[string]string{
	"sdkmessageprocessingstep": {"eventhandler_serviceendpoint": "eventhandler"},
	"appaction":                {"OnClickEventJavaScriptWebResourceId": "onclickeventjavascriptwebresourceid", "AppModuleId": "appmoduleid"},
}

// navigationColumn resolves a navigation property named in an @odata.bind to the lookup column it sets.
func navigationColumn(t *table, nav string) (string, bool) {
	aliases := navigationColumns[t.def.LogicalName]
	if col, ok := aliases[nav]; ok {
		return col, true
	}
	for _, col := range aliases {
		if col == nav {
			return "", false // the bare name of a polymorphic lookup
		}
	}
	return nav, true
}

// writeOnlyColumns are secrets Dataverse accepts but never returns; each has a flag that says whether it
// is set.
var writeOnlyColumns = map[string]map[string]string{
	"serviceendpoint": {"saskey": "issaskeyset", "sastoken": "issastokenset", "authvalue": "isauthvalueset"},
}

// hideSecrets replaces write-only columns by null in a rendered row and fills their is…set flags.
func hideSecrets(t *table, r *record, out map[string]any) {
	for col, flag := range writeOnlyColumns[t.def.LogicalName] {
		if _, ok := out[col]; ok {
			out[col] = nil
		}
		if _, ok := out[flag]; ok {
			out[flag] = r.values[col] != nil
		}
	}
}

// cascades are the parental relationships among the registration tables: deleting the parent deletes the
// children, as Dataverse does (an endpoint's steps, a step's images).
var cascades = map[string][]struct{ child, lookup string }{
	"serviceendpoint":          {{"sdkmessageprocessingstep", "eventhandler"}},
	"sdkmessageprocessingstep": {{"sdkmessageprocessingstepimage", "sdkmessageprocessingstepid"}},
}

// cascadeDelete removes the rows that belong to a removed row.
func (s *Server) cascadeDelete(parent *table, id string, undoLog *[]undo) {
	for _, c := range cascades[parent.def.LogicalName] {
		child := s.tables[c.child]
		if child == nil {
			continue
		}
		for _, rid := range slices.Clone(child.order) {
			if r := child.rows[rid]; r != nil && r.values[c.lookup] == id {
				s.remove(child, r, undoLog)
			}
		}
	}
}

// seedMessages creates the sdkmessage rows and a filter for every message and table (the bulk messages
// only on the tables that support them, see supportsBulk). The caller holds s.mu or has the server to
// itself.
func (s *Server) seedMessages() {
	messages := s.tables["sdkmessage"]
	for _, name := range append(slices.Clone(eventMessages), bulkMessages...) {
		s.seedRow(messages, map[string]any{"name": name})
	}
	names := make([]string, 0, len(s.tables))
	for name := range s.tables {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s.addMessageFilters(s.tables[name])
	}
}

// addMessageFilters gives a table the sdkmessagefilter rows that let steps be registered on it.
func (s *Server) addMessageFilters(t *table) {
	messages, filters := s.tables["sdkmessage"], s.tables["sdkmessagefilter"]
	if messages == nil || filters == nil {
		return
	}
	for _, id := range messages.order {
		m := messages.rows[id]
		name, _ := m.values["name"].(string)
		if slices.Contains(bulkMessages, name) && !supportsBulk(t.def) {
			continue
		}
		s.seedRow(filters, map[string]any{
			"name": name + " of " + t.def.LogicalName, "primaryobjecttypecode": t.def.LogicalName, "secondaryobjecttypecode": "none",
			"iscustomprocessingstepallowed": true, "sdkmessageid": lookupValue{id: m.id, table: "sdkmessage"},
		})
	}
}

// seedRow inserts a row of normalised values (lookups as lookupValue) without the Web API; the caller
// holds s.mu. Seeding is not a write through the API, so it raises no events.
func (s *Server) seedRow(t *table, values map[string]any) string {
	id := uuid.NewString()
	if _, err := s.insert(t, id, values, nil); err != nil {
		panic("dataversetest: seed " + t.def.LogicalName + ": " + err.message)
	}
	return id
}

// splitList reads a comma-separated list of column names (filteringattributes, image attributes).
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.ToLower(strings.TrimSpace(part)); part != "" && !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out
}
