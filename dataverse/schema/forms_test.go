package schema_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestConnectorOwnedColumns keeps ConnectorOwned honest: the messages, claims, attempts and provider ids
// are the connector's; what people set to ask for something, and the inputs of a change, are not.
func TestConnectorOwnedColumns(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	owned := map[string]bool{}
	for _, table := range s.Tables {
		for _, c := range table.AllColumns() {
			if c.ConnectorOwned {
				owned[table.LogicalName+"."+c.LogicalName] = true
			}
			if !table.Standard && strings.HasSuffix(c.LogicalName, "message") {
				assert.True(t, c.ConnectorOwned, "%s.%s: only the connector writes messages", table.LogicalName, c.LogicalName)
			}
			if table.Standard {
				assert.False(t, c.ConnectorOwned, "%s.%s: a standard table's column", table.LogicalName, c.LogicalName)
			}
		}
	}
	for _, col := range []string{
		"csp_provider.csp_connectivitystatus", "csp_provider.csp_lastverifiedon",
		"csp_provideraccount.csp_tenantid", "csp_provideraccount.csp_mappingstatus", "csp_provideraccount.csp_lastsyncedon",
		"csp_agreement.csp_attestationid", "csp_agreement.csp_acceptanceurl", "csp_agreement.csp_linkexpireson", "csp_agreement.csp_verifiedon",
		"csp_subscription.csp_pcsubscriptionid",
		"csp_licensechangelog.csp_heldreason", "csp_licensechangelog.csp_nextattempton", "csp_licensechangelog.csp_attempts",
		"csp_licensechangelog.csp_attemptid", "csp_licensechangelog.csp_claimexpireson", "csp_licensechangelog.csp_provisionedon",
		"csp_licensechangelog.csp_pcorderid", "csp_licensechangelog.csp_pccartid", "csp_licensechangelog.csp_pcsubscriptionid",
		"csp_job.csp_leaseowner", "csp_job.csp_leaseexpireson", "csp_job.csp_laststatus", "csp_job.csp_lastrunon",
		"csp_jobrun.csp_status", "csp_jobrun.csp_processed", "csp_jobrun.csp_failed", "csp_jobrun.csp_startedon",
		"csp_notification.csp_deliverystate",
	} {
		assert.True(t, owned[col], "%s is the connector's", col)
	}
	for _, col := range []string{
		// requests people make
		"csp_provider.csp_verifyrequestedon", "csp_agreementtemplate.csp_createrequestedon", "csp_job.csp_runrequestedon", "csp_job.csp_enabled",
		// statuses people set to ask for something: Awaiting Provisioning (again after a failure), Link requested
		"csp_licensechangelog.csp_provisioningstatus", "csp_agreement.csp_attestationstatus", "csp_agreement.csp_acceptancepath",
		// the inputs of a change
		"csp_licensechangelog.csp_quantity", "csp_licensechangelog.csp_effectivedate", "csp_licensechangelog.csp_subscription",
		"csp_licensechangelog.csp_changetype", "csp_subscription.csp_quantity", "csp_subscription.csp_offerid",
		"csp_provideraccount.csp_account", "csp_agreement.csp_account",
		"csp_agreement.csp_signatoryfirstname", "csp_agreement.csp_signatorylastname", "csp_agreement.csp_signatoryemail",
		"csp_agreement.csp_signatoryphone", "csp_agreement.csp_signatorycompany", "csp_agreement.csp_signatorycountry", "csp_agreement.csp_signatorylanguage",
		"csp_webhooksubscription.csp_callbackurl",
	} {
		assert.False(t, owned[col], "%s is set by people", col)
	}
}

// TestEveryConnectorTableHasAMainForm: the status in the header, the message first, the columns people
// set, then the connector's read-only, and the related rows as subgrids.
func TestEveryConnectorTableHasAMainForm(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	require.NotNil(t, s.App)
	byTable := map[string]dataverse.Form{}
	for _, f := range s.App.Forms {
		byTable[f.Table] = f
	}
	for _, table := range s.Tables {
		f, ok := byTable[table.LogicalName]
		if table.Standard {
			assert.False(t, ok, "no form for the standard table %s", table.LogicalName)
			continue
		}
		require.True(t, ok, "a main form for %s", table.LogicalName)
		assert.Equal(t, table.DisplayName, f.Name)
		assert.Equal(t, table.Description, f.Description)
		require.NotEmpty(t, f.Header)

		shown := map[string]dataverse.Field{}
		for _, fl := range f.Header {
			shown[fl.Column] = fl
		}
		var connector *dataverse.Section
		for _, tab := range f.Tabs {
			for i, sec := range tab.Sections {
				for _, fl := range sec.Fields {
					require.NotContains(t, shown, fl.Column, "%s shows %s once", f.Name, fl.Column)
					shown[fl.Column] = fl
					c, _ := table.Column(fl.Column)
					// Read-only: what the connector owns, and the requests, which their buttons make.
					request := strings.HasSuffix(fl.Column, "requestedon")
					assert.Equal(t, c.ConnectorOwned || fl.Column == "statuscode" || request, fl.ReadOnly, "%s.%s is read-only when the connector owns it or a button sets it", table.LogicalName, fl.Column)
				}
				if sec.Name == "connector" {
					connector = &tab.Sections[i]
				}
			}
		}
		for _, c := range table.AllColumns() {
			assert.Contains(t, shown, c.LogicalName, "%s shows every column", f.Name)
		}
		// The connector's section holds the connector's columns only; the others are in sections people edit.
		require.NotNil(t, connector, "%s has a Connector section", f.Name)
		assert.Equal(t, "Connector", connector.Label)
		for _, fl := range connector.Fields {
			c, _ := table.Column(fl.Column)
			assert.True(t, c.ConnectorOwned && fl.ReadOnly, "%s.%s in the Connector section", table.LogicalName, fl.Column)
		}
		for _, h := range f.Header {
			c, _ := table.Column(h.Column)
			assert.Equal(t, c.ConnectorOwned || h.Column == "statuscode", h.ReadOnly, "%s header %s", f.Name, h.Column)
		}
	}
	subgrids := map[string][]string{}
	for _, f := range s.App.Forms {
		for _, tab := range f.Tabs {
			for _, sec := range tab.Sections {
				for _, g := range sec.Subgrids {
					subgrids[f.Table] = append(subgrids[f.Table], g.Table+" by "+g.View)
				}
			}
		}
	}
	assert.Equal(t, map[string][]string{
		schema.TableSubscription:    {"csp_licensechangelog by " + schema.ViewLCLOldestFirst},
		schema.TableProviderAccount: {"csp_agreement by " + schema.ViewAgreementsOfAccount, "csp_subscription by " + schema.ViewSubscriptionsOfAccount},
		schema.TableJob:             {"csp_jobrun by " + schema.ViewJobRunsNewestFirst},
	}, subgrids)
}

// TestViewsAnswerThePeoplesQuestions names the views people look for, and a default view per table.
func TestViewsAnswerThePeoplesQuestions(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	views := map[string]dataverse.View{}
	for _, v := range s.App.Views {
		views[v.Table+": "+v.Name] = v
	}
	for _, table := range s.Tables {
		if table.Standard {
			continue
		}
		v, ok := views[table.LogicalName+": Active "+table.PluralName]
		if assert.True(t, ok, "a default view of %s", table.LogicalName) {
			assert.True(t, v.Default)
		}
	}
	for name, want := range map[string]string{
		"csp_licensechangelog: " + schema.ViewLCLAwaitingOrFailed: `<condition attribute="csp_provisioningstatus" operator="in"><value>418700000</value><value>418700003</value></condition>`,
		"csp_licensechangelog: " + schema.ViewLCLHeld:             `<condition attribute="csp_heldreason" operator="not-null" />`,
		"csp_licensechangelog: " + schema.ViewLCLDrift:            `<condition attribute="csp_changesource" operator="eq" value="418700001" />`,
		"csp_provideraccount: " + schema.ViewAccountsNeedMapping:  `<condition attribute="csp_mappingstatus" operator="in"><value>418700000</value><value>418700003</value></condition>`,
		"csp_agreement: " + schema.ViewAgreementsWaiting:          `<condition attribute="csp_attestationstatus" operator="eq" value="418700002" />`,
		"csp_agreement: " + schema.ViewAgreementsLinkExpires:      `<condition attribute="csp_linkexpireson" operator="next-x-days" value="7" />`,
		"csp_jobrun: " + schema.ViewJobRunsFailed:                 `<condition attribute="csp_status" operator="eq" value="418700003" />`,
		"csp_licensechangelog: " + schema.ViewLCLOldestFirst:      `<order attribute="createdon" descending="false" />`,
		"csp_jobrun: " + schema.ViewJobRunsNewestFirst:            `<order attribute="csp_startedon" descending="true" />`,
	} {
		v, ok := views[name]
		require.True(t, ok, name)
		fetch, err := v.FetchXML(s)
		require.NoError(t, err)
		assert.Contains(t, fetch, want, name)
		assert.NotEmpty(t, v.Description, name)
	}
}
