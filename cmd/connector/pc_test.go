package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

func TestPartnerCenterCommands(t *testing.T) {
	t.Parallel()
	srv, err := partnercentertest.NewServer(partnercentertest.Options{AuthOptional: true})
	require.NoError(t, err)
	defer srv.Close()
	const tenant = "4c721420-72ad-4708-a0a7-371a2f7b0969"
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: tenant, CompanyName: "Contoso Ltd", Domain: "contoso.com", Country: "GB",
		Subscriptions: []partnercentertest.Subscription{{ID: "a4c1340d-6911-4758-bba3-0c4c6007d161", OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", FriendlyName: "Microsoft 365 Business Premium", Quantity: 10, CreatedOn: time.Now().Add(-time.Hour)}},
		Agreements:    []partnercentertest.Agreement{{TemplateID: partnercentertest.MCATemplateID, Type: "MicrosoftCustomerAgreement", FirstName: "Ann", LastName: "Lee", Email: "ann@contoso.com", DateAgreed: time.Now().Add(-24 * time.Hour)}}}))
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: "a1b2c3d4-0000-4000-8000-000000000002", CompanyName: "Fabrikam Inc", Domain: "fabrikam.com"}))
	// Only Partner Center settings: a pc command needs nothing else.
	vars := getenv(map[string]string{"PARTNERCENTER_ENDPOINT": srv.URL, "PARTNERCENTER_AUTH": "none"})
	pc := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), append([]string{"pc"}, args...), vars, nil, &out, &bytes.Buffer{}), "pc %v", args)
		return out.String()
	}

	out := pc("customers", "--name", "cont")
	assert.Contains(t, out, "Contoso Ltd")
	assert.NotContains(t, out, "Fabrikam")
	assert.Contains(t, out, "1 customer(s)")

	var list struct{ Customers []struct{ ID string } }
	require.NoError(t, json.Unmarshal([]byte(pc("customers", "-o", "json")), &list))
	assert.Len(t, list.Customers, 2)

	assert.Contains(t, pc("customer", tenant), "Company           Contoso Ltd")
	assert.Contains(t, pc("subscriptions", tenant), "Microsoft 365 Business Premium")
	sub := pc("subscription", tenant, "a4c1340d-6911-4758-bba3-0c4c6007d161")
	assert.Contains(t, sub, "Seats removable now  10", "bought an hour ago: every seat may still be removed")
	assert.Contains(t, sub, "Cancellable until")
	agreements := pc("agreements", tenant)
	assert.Contains(t, agreements, "Microsoft Customer Agreement accepted: yes")
	assert.Contains(t, agreements, "ann@contoso.com")

	var subJSON struct {
		Quantity           int
		RefundableQuantity struct{ TotalQuantity int }
	}
	require.NoError(t, json.Unmarshal([]byte(pc("subscription", tenant, "a4c1340d-6911-4758-bba3-0c4c6007d161", "-o", "json")), &subJSON))
	assert.Equal(t, 10, subJSON.Quantity)
	assert.Equal(t, 10, subJSON.RefundableQuantity.TotalQuantity)

	// The lists print as one object a script reads by name.
	var subsJSON map[string][]map[string]any
	require.NoError(t, json.Unmarshal([]byte(pc("subscriptions", tenant, "-o", "json")), &subsJSON))
	require.Len(t, subsJSON["subscriptions"], 1)
	assert.Equal(t, "a4c1340d-6911-4758-bba3-0c4c6007d161", subsJSON["subscriptions"][0]["id"])
	var agreementsJSON struct {
		Agreements   []struct{ PrimaryContact struct{ Email string } }
		DirectSigned *bool
	}
	require.NoError(t, json.Unmarshal([]byte(pc("agreements", tenant, "-o", "json")), &agreementsJSON))
	require.Len(t, agreementsJSON.Agreements, 1)
	assert.Equal(t, "ann@contoso.com", agreementsJSON.Agreements[0].PrimaryContact.Email)
	require.NotNil(t, agreementsJSON.DirectSigned, "the direct-sign status is always said")

	var errOut bytes.Buffer
	err = run(t.Context(), []string{"pc", "customer", "00000000-0000-4000-8000-000000000099"}, vars, nil, &bytes.Buffer{}, &errOut)
	assert.ErrorContains(t, err, "HTTP 404")
}

func TestPartnerCenterCommandsReportMissingSettings(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"pc", "customers"}, getenv(nil), nil, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.ErrorContains(t, err, "PARTNERCENTER_TENANT_ID is required")
	assert.ErrorContains(t, err, "PARTNERCENTER_CLIENT_ID is required")
	assert.NotContains(t, err.Error(), "DATAVERSE", "a pc command needs no Dataverse settings")
}
