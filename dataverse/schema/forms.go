package schema

import (
	"strconv"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
)

// View names: the questions people ask of the tables, and the views the forms' subgrids show.
const (
	ViewLCLAwaitingOrFailed    = "Awaiting or Failed, oldest first"
	ViewLCLHeld                = "Held, and why"
	ViewLCLDrift               = "Drift: changes made at the provider"
	ViewLCLOldestFirst         = "License changes, oldest first"
	ViewAccountsNeedMapping    = "Needing mapping"
	ViewAgreementsWaiting      = "Waiting on the customer"
	ViewAgreementsLinkExpires  = "Links expiring"
	ViewJobRunsFailed          = "Failed job runs"
	ViewJobRunsNewestFirst     = "Runs, newest first"
	ViewAgreementsOfAccount    = "Agreements by template"
	ViewSubscriptionsOfAccount = "Subscriptions by offer"
)

// formLayout says, per table, which column is its status (shown in the form's header) and which its
// message for people (the form's first section), and what its default view lists after the name.
var formLayout = map[string]struct {
	status, message string
	list            []string
}{
	TableProvider:            {"csp_connectivitystatus", "csp_connectivitymessage", []string{"csp_type", "csp_connectivitystatus", "csp_lastverifiedon"}},
	TableProviderAccount:     {"csp_mappingstatus", "csp_mappingmessage", []string{"csp_companyname", "csp_domain", "csp_account", "csp_mappingstatus", "csp_lastsyncedon"}},
	TableAgreementTemplate:   {"statuscode", "csp_createmessage", []string{"csp_agreementtype", "csp_provider", "statuscode"}},
	TableAgreement:           {"csp_attestationstatus", "csp_attestationmessage", []string{"csp_provideraccount", "csp_agreementtemplate", "statuscode", "csp_attestationstatus", "csp_dateagreed"}},
	TableSubscription:        {"statuscode", "csp_syncmessage", []string{"csp_provideraccount", "csp_offername", "csp_quantity", "statuscode", "csp_commitmentenddate"}},
	TableLicenseChangeLog:    {"csp_provisioningstatus", "csp_provisioningmessage", []string{"csp_subscription", "csp_changetype", "csp_quantity", "csp_provisioningstatus", "csp_effectivedate", "createdon"}},
	TableJob:                 {"csp_laststatus", "csp_message", []string{"csp_enabled", "csp_schedule", "csp_lastrunon", "csp_laststatus", "csp_nextrunon"}},
	TableJobRun:              {"csp_status", "csp_summary", []string{"csp_job", "csp_trigger", "csp_startedon", "csp_status", "csp_processed", "csp_failed"}},
	TableWebhookSubscription: {"statuscode", "", []string{"csp_eventtype", "csp_owner", "csp_consecutivefailures", "statuscode"}},
	TableNotification:        {"statuscode", "csp_systemmessage", []string{"csp_type", "csp_attempts", "csp_nextattempton", "createdon"}},
}

// forms are the main forms of the connector's tables, generated from their columns: the status in the
// header, the message for people first, then the columns people set, then, read-only, the columns the
// connector owns, then the rows that belong to the row.
func forms(s dataverse.Schema) []dataverse.Form {
	var out []dataverse.Form
	for _, t := range s.Tables {
		if t.Standard {
			continue
		}
		layout := formLayout[t.LogicalName]
		owned := func(col string) bool { c, _ := t.Column(col); return c.ConnectorOwned }
		header := []dataverse.Field{{Column: layout.status, ReadOnly: owned(layout.status) || layout.status == "statuscode"}}
		var sections []dataverse.Section
		if layout.message != "" {
			sections = append(sections, dataverse.Section{Name: "status", Label: "Status", Fields: []dataverse.Field{{Column: layout.message, ReadOnly: owned(layout.message)}}})
		}
		details := dataverse.Section{Name: "details", Label: "Details"}
		connector := dataverse.Section{Name: "connector", Label: "Connector"}
		for _, c := range t.AllColumns() {
			switch {
			case c.LogicalName == layout.status || c.LogicalName == layout.message:
			case c.ConnectorOwned:
				connector.Fields = append(connector.Fields, dataverse.Field{Column: c.LogicalName, ReadOnly: true})
			case strings.HasSuffix(c.LogicalName, "requestedon"):
				// A request is made with its button, which stamps the server's time; a date typed here is
				// how a Run Now dated in the future once ran a job over and over.
				details.Fields = append(details.Fields, dataverse.Field{Column: c.LogicalName, ReadOnly: true})
			default:
				details.Fields = append(details.Fields, dataverse.Field{Column: c.LogicalName})
			}
		}
		sections = append(sections, details)
		if len(connector.Fields) > 0 {
			sections = append(sections, connector)
		}
		sections = append(sections, related(s, t)...)
		out = append(out, dataverse.Form{
			Table: t.LogicalName, Name: t.DisplayName, Description: t.Description,
			Header: header,
			Tabs:   []dataverse.Tab{{Name: "general", Label: "General", Sections: sections}},
		})
	}
	return out
}

// related are the subgrids of a table's form: the rows of other tables that belong to its row.
func related(s dataverse.Schema, t dataverse.Table) []dataverse.Section {
	grid := func(name, label, table, lookup, view string) dataverse.Section {
		return dataverse.Section{Name: name, Label: label, Subgrids: []dataverse.Subgrid{{
			Name: name, Label: label, Table: table, Lookup: lookup, View: view, RecordsPerPage: 10,
		}}}
	}
	switch t.LogicalName {
	case TableSubscription:
		return []dataverse.Section{grid("licensechanges", "License changes", TableLicenseChangeLog, "csp_subscription", ViewLCLOldestFirst)}
	case TableProviderAccount:
		return []dataverse.Section{
			grid("agreements", "Agreements", TableAgreement, "csp_provideraccount", ViewAgreementsOfAccount),
			grid("subscriptions", "Subscriptions", TableSubscription, "csp_provideraccount", ViewSubscriptionsOfAccount),
		}
	case TableJob:
		return []dataverse.Section{grid("runs", "Runs", TableJobRun, "csp_job", ViewJobRunsNewestFirst)}
	}
	return nil
}

// views are the public views of the connector's tables: a default "Active …" view per table, the views
// that answer the questions people ask, and the views the subgrids show.
func views(s dataverse.Schema) []dataverse.View {
	var out []dataverse.View
	byName := map[string]dataverse.Table{}
	for _, t := range s.Tables {
		byName[t.LogicalName] = t
	}
	cols := func(table string, names ...string) []dataverse.ViewColumn {
		t := byName[table]
		out := []dataverse.ViewColumn{{Column: t.PrimaryName.LogicalName, Width: 200}}
		for _, n := range names {
			c, _ := t.Column(n)
			width := 150
			switch c.Type {
			case dataverse.TypeMemo:
				width = 300
			case dataverse.TypeDateTime, dataverse.TypeInteger, dataverse.TypeBoolean:
				width = 125
			}
			out = append(out, dataverse.ViewColumn{Column: n, Width: width})
		}
		return out
	}
	active := dataverse.Condition{Column: "statecode", Operator: "eq", Values: []string{strconv.Itoa(StateActive)}}
	eq := func(col string, v int) dataverse.Condition {
		return dataverse.Condition{Column: col, Operator: "eq", Values: []string{strconv.Itoa(v)}}
	}
	in := func(col string, vs ...int) dataverse.Condition {
		c := dataverse.Condition{Column: col, Operator: "in"}
		for _, v := range vs {
			c.Values = append(c.Values, strconv.Itoa(v))
		}
		return c
	}
	oldest := []dataverse.Order{{Column: "createdon"}}

	for _, t := range s.Tables {
		if t.Standard {
			continue
		}
		out = append(out, dataverse.View{
			Table: t.LogicalName, Name: "Active " + t.PluralName, Default: true,
			Description: "Active " + lower(t.PluralName) + ", by name.",
			Columns:     cols(t.LogicalName, formLayout[t.LogicalName].list...),
			Filter:      []dataverse.Condition{active},
			Order:       []dataverse.Order{{Column: t.PrimaryName.LogicalName}},
		})
	}
	lclColumns := cols(TableLicenseChangeLog, "csp_subscription", "csp_changetype", "csp_quantity", "csp_provisioningstatus", "csp_heldreason", "csp_provisioningmessage", "createdon")
	out = append(out,
		dataverse.View{
			Table: TableLicenseChangeLog, Name: ViewLCLAwaitingOrFailed,
			Description: "License changes still to make or that failed, oldest first: the weekly health check starts here.",
			Columns:     lclColumns,
			Filter:      []dataverse.Condition{active, in("csp_provisioningstatus", int(ProvisioningAwaiting), int(ProvisioningFailed))},
			Order:       oldest,
		},
		dataverse.View{
			Table: TableLicenseChangeLog, Name: ViewLCLHeld,
			Description: "License changes the connector is holding back, why, and when it tries again.",
			Columns:     cols(TableLicenseChangeLog, "csp_subscription", "csp_changetype", "csp_heldreason", "csp_nextattempton", "csp_provisioningmessage"),
			Filter:      []dataverse.Condition{active, eq("csp_provisioningstatus", int(ProvisioningAwaiting)), {Column: "csp_heldreason", Operator: "not-null"}},
			Order:       []dataverse.Order{{Column: "csp_nextattempton"}},
		},
		dataverse.View{
			Table: TableLicenseChangeLog, Name: ViewLCLDrift,
			Description: "Changes the connector found made at the provider, outside Dynamics (the Subscription Sync job records them), newest first.",
			Columns:     cols(TableLicenseChangeLog, "csp_subscription", "csp_changetype", "csp_previousquantity", "csp_quantity", "createdon"),
			Filter:      []dataverse.Condition{eq("csp_changesource", int(SourceProvider))},
			Order:       []dataverse.Order{{Column: "createdon", Descending: true}},
		},
		dataverse.View{
			Table: TableLicenseChangeLog, Name: ViewLCLOldestFirst,
			Description: "Every license change of a subscription, oldest first (the subscription form shows it).",
			Columns:     cols(TableLicenseChangeLog, "csp_changetype", "csp_quantity", "csp_provisioningstatus", "csp_effectivedate", "csp_changesource", "createdon"),
			Order:       oldest,
		},
		dataverse.View{
			Table: TableProviderAccount, Name: ViewAccountsNeedMapping,
			Description: "Provider accounts the connector could not map to an account by itself: pick the account on each.",
			Columns:     cols(TableProviderAccount, "csp_companyname", "csp_domain", "csp_tenantid", "csp_mappingstatus", "csp_mappingmessage"),
			Filter:      []dataverse.Condition{active, in("csp_mappingstatus", int(MappingUnmapped), int(MappingAmbiguous))},
			Order:       oldest,
		},
		dataverse.View{
			Table: TableAgreement, Name: ViewAgreementsWaiting,
			Description: "Agreements whose acceptance link went to the customer, who has not accepted yet; the link that expires first on top.",
			Columns:     cols(TableAgreement, "csp_provideraccount", "csp_signatoryemail", "csp_linkexpireson", "csp_attestationmessage"),
			Filter:      []dataverse.Condition{active, eq("csp_attestationstatus", int(AttestationLinkSent))},
			Order:       []dataverse.Order{{Column: "csp_linkexpireson"}},
		},
		dataverse.View{
			Table: TableAgreement, Name: ViewAgreementsLinkExpires,
			Description: "Acceptance links that expire within 7 days: remind the customer, or ask for a new link.",
			Columns:     cols(TableAgreement, "csp_provideraccount", "csp_signatoryemail", "csp_linkexpireson"),
			Filter: []dataverse.Condition{active, eq("csp_attestationstatus", int(AttestationLinkSent)),
				{Column: "csp_linkexpireson", Operator: "next-x-days", Values: []string{"7"}}},
			Order: []dataverse.Order{{Column: "csp_linkexpireson"}},
		},
		dataverse.View{
			Table: TableJobRun, Name: ViewJobRunsFailed,
			Description: "Job runs that failed, newest first, with what went wrong.",
			Columns:     cols(TableJobRun, "csp_job", "csp_trigger", "csp_startedon", "csp_errormessage"),
			Filter:      []dataverse.Condition{eq("csp_status", int(RunFailed))},
			Order:       []dataverse.Order{{Column: "csp_startedon", Descending: true}},
		},
		dataverse.View{
			Table: TableAgreement, Name: ViewAgreementsOfAccount,
			Description: "Agreements by template, with how far acceptance went (the provider account form shows them).",
			Columns:     cols(TableAgreement, "csp_agreementtemplate", "statuscode", "csp_attestationstatus", "csp_acceptancepath", "csp_dateagreed"),
			Order:       []dataverse.Order{{Column: "csp_agreementtemplate"}},
		},
		dataverse.View{
			Table: TableSubscription, Name: ViewSubscriptionsOfAccount,
			Description: "Subscriptions by offer, with their seats and status (the provider account form shows them).",
			Columns:     cols(TableSubscription, "csp_offername", "csp_quantity", "statuscode", "csp_termduration", "csp_commitmentenddate"),
			Order:       []dataverse.Order{{Column: "csp_offername"}},
		},
		dataverse.View{
			Table: TableJobRun, Name: ViewJobRunsNewestFirst,
			Description: "Every run of a job, newest first (the job form shows it).",
			Columns:     cols(TableJobRun, "csp_trigger", "csp_startedon", "csp_finishedon", "csp_status", "csp_processed", "csp_failed", "csp_summary"),
			Order:       []dataverse.Order{{Column: "csp_startedon", Descending: true}},
		},
	)
	return out
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' && (i == 0 || b[i-1] == ' ') {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
