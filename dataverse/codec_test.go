package dataverse_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func TestUnmarshalReadsAWebAPIRow(t *testing.T) {
	t.Parallel()
	sub := uuid.MustParse("6d81597f-0f9f-e711-8122-000d3aa2331c")
	var row dataverse.Row
	dec := json.NewDecoder(stringsReader(`{
		"@odata.etag": "W/\"81359849\"",
		"csp_licensechangelogid": "e73ffc82-e292-ed11-aad1-000d3a9933c9",
		"csp_name": "Contoso: 10 → 12",
		"_csp_subscription_value": "6d81597f-0f9f-e711-8122-000d3aa2331c",
		"_csp_subscription_value@Microsoft.Dynamics.CRM.lookuplogicalname": "csp_subscription",
		"_csp_subscription_value@OData.Community.Display.V1.FormattedValue": "M365 Business Premium",
		"csp_changetype": 418700001,
		"csp_quantity": 12,
		"csp_previousquantity": null,
		"csp_effectivedate": "2026-02-01T00:00:00Z",
		"csp_provisioningstatus": 418700000,
		"csp_attempts": 0,
		"statecode": 0, "statuscode": 1
	}`))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&row))
	var lcl schema.LicenseChangeLog
	require.NoError(t, dataverse.Unmarshal(row, &lcl))
	assert.Equal(t, "e73ffc82-e292-ed11-aad1-000d3a9933c9", lcl.ID.String())
	assert.Equal(t, dataverse.ETag(`W/"81359849"`), lcl.ETag)
	assert.Equal(t, dataverse.Ref{Table: "csp_subscription", ID: sub, Name: "M365 Business Premium"}, lcl.Subscription)
	assert.Equal(t, schema.ChangeQuantity, lcl.ChangeType)
	require.NotNil(t, lcl.Quantity)
	assert.Equal(t, 12, *lcl.Quantity)
	assert.Nil(t, lcl.PreviousQuantity, "null stays distinguishable from zero")
	assert.Equal(t, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), lcl.EffectiveDate)
	assert.Equal(t, schema.ProvisioningAwaiting, lcl.ProvisioningStatus)
}

func TestUnmarshalRejectsWrongTypes(t *testing.T) {
	t.Parallel()
	var p schema.Provider
	assert.ErrorContains(t, dataverse.Unmarshal(dataverse.Row{"csp_name": json.Number("3")}, &p), "csp_name")
	assert.ErrorContains(t, dataverse.Unmarshal(dataverse.Row{"csp_lastverifiedon": "yesterday"}, &p), "csp_lastverifiedon")
	assert.ErrorContains(t, dataverse.Unmarshal(dataverse.Row{"csp_type": json.Number("1.5")}, &p), "csp_type")
	assert.Error(t, dataverse.Unmarshal(dataverse.Row{}, p), "needs a pointer")
	type badTag struct {
		X int `dataverse:"x,sometimes"`
	}
	assert.ErrorContains(t, dataverse.Unmarshal(dataverse.Row{}, &badTag{}), "unknown tag option")
	type badLookup struct {
		X dataverse.Ref `dataverse:"x"`
	}
	_, err := dataverse.Marshal(badLookup{})
	assert.ErrorContains(t, err, "lookup=")
}

func TestMarshalWritesWhatACreateNeeds(t *testing.T) {
	t.Parallel()
	sub := uuid.New()
	q := 5
	row, err := dataverse.Marshal(schema.LicenseChangeLog{
		ID: uuid.New(), ETag: "W/\"1\"", Name: "n", Subscription: dataverse.Ref{ID: sub}, ChangeType: schema.ChangePurchase,
		Quantity: &q, EffectiveDate: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("+1", 3600)),
	})
	require.NoError(t, err)
	assert.Equal(t, "/csp_subscriptions("+sub.String()+")", row["csp_subscription@odata.bind"])
	assert.Equal(t, json.Number("418700000"), row["csp_changetype"])
	assert.Equal(t, json.Number("5"), row["csp_quantity"])
	assert.Nil(t, row["csp_previousquantity"])
	assert.Equal(t, "2026-01-02T02:04:05Z", row["csp_effectivedate"])
	assert.Nil(t, row["csp_provisioningstatus"], "an unset choice is null, not 0")
	assert.Nil(t, row["csp_provisionedon"], "a zero time is null")
	for _, absent := range []string{"csp_licensechangelogid", "@odata.etag", "createdon", "statecode", "statuscode"} {
		_, present := row[absent]
		assert.False(t, present, absent)
	}
}

func TestChangesWritesOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	acct := uuid.New()
	before := schema.ProviderAccount{Name: "Contoso", TenantID: "t", MappingStatus: schema.MappingUnmapped, State: schema.StateActive,
		LastSyncedOn: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	same := before
	same.LastSyncedOn = before.LastSyncedOn.In(time.FixedZone("x", 7200)) // same instant
	row, err := dataverse.Changes(before, same)
	require.NoError(t, err)
	assert.Empty(t, row, "nothing changed, nothing to write")

	after := before
	after.Account = dataverse.Ref{ID: acct, Name: "ignored"}
	after.MappingStatus = schema.MappingAutoMapped
	after.State = schema.StateInactive
	row, err = dataverse.Changes(&before, &after)
	require.NoError(t, err)
	assert.Equal(t, dataverse.Row{
		"csp_account@odata.bind": "/accounts(" + acct.String() + ")",
		"csp_mappingstatus":      json.Number("418700001"),
		"statecode":              json.Number("1"),
	}, row)

	back := after
	back.State = schema.StateActive
	row, err = dataverse.Changes(after, back)
	require.NoError(t, err)
	assert.Equal(t, dataverse.Row{"statecode": json.Number("0")}, row, "omitzero does not hide a change to zero")

	cleared := after
	cleared.Account = dataverse.Ref{}
	row, err = dataverse.Changes(after, cleared)
	require.NoError(t, err)
	assert.Equal(t, dataverse.Row{"csp_account@odata.bind": nil}, row)

	_, err = dataverse.Changes(schema.Provider{}, schema.Job{})
	assert.Error(t, err)
}

func TestColumnsSelectsWhatTheTypeReads(t *testing.T) {
	t.Parallel()
	cols := dataverse.Columns[schema.Contact]()
	assert.Equal(t, []string{"contactid", "firstname", "lastname", "emailaddress1", "_parentcustomerid_value"}, cols)
}
