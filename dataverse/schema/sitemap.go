package schema

import "github.com/cspconnector/csp-connector/dataverse"

// siteMap is the app's navigation, by what an admin comes to do: provisioning (the license changes they
// make and the subscriptions those change), customers (who the provider accounts are and the agreements
// they must accept), and setup (the providers, templates, jobs and webhooks that drive the rest).
//
// The notification outbox is in Setup as "Notifications waiting": its rows are deleted once delivered, so
// what an admin sees there is what has not gone out yet (a webhook that keeps failing, a Service Bus topic
// that is down), with the reason on each row. It is how an admin answers "why did nobody hear about it?".
func siteMap(s dataverse.Schema) dataverse.SiteMap {
	// A subarea takes its title from the table's plural name, so the two cannot drift apart.
	open := func(table string) dataverse.SiteMapSubArea {
		t, _ := s.Table(table)
		return dataverse.SiteMapSubArea{Table: table, Title: t.PluralName}
	}
	waiting := open(TableNotification)
	waiting.Title = "Notifications waiting"
	return dataverse.SiteMap{Areas: []dataverse.SiteMapArea{
		{ID: "csp_provisioning", Title: "Provisioning", Groups: []dataverse.SiteMapGroup{
			{ID: "csp_provisioning_licenses", Title: "Licenses", SubAreas: []dataverse.SiteMapSubArea{
				open(TableLicenseChangeLog), open(TableSubscription),
			}},
		}},
		{ID: "csp_customers", Title: "Customers", Groups: []dataverse.SiteMapGroup{
			{ID: "csp_customers_accounts", Title: "Customers", SubAreas: []dataverse.SiteMapSubArea{
				open(TableProviderAccount), open(TableAgreement),
			}},
		}},
		{ID: "csp_setup", Title: "Setup", Groups: []dataverse.SiteMapGroup{
			{ID: "csp_setup_partner", Title: "Partner Center", SubAreas: []dataverse.SiteMapSubArea{
				open(TableProvider), open(TableAgreementTemplate),
			}},
			{ID: "csp_setup_connector", Title: "Connector", SubAreas: []dataverse.SiteMapSubArea{
				open(TableJob), open(TableJobRun), open(TableWebhookSubscription), waiting,
			}},
		}},
	}}
}
