package connector

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestSandboxProviderAccountsReachEveryMappingOutcome: the Provider Account Sync the sandbox runs at start
// maps its demonstration customers as Describe says, gives the mapped ones their Pending agreement, and
// leaves the Demo Admin an in-app notification for each customer a person must map. Then the admin maps
// Litware by hand (through the simulator, as a person): the event makes the row Mapped with its agreement.
func TestSandboxProviderAccountsReachEveryMappingOutcome(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	var desc bytes.Buffer
	sb.Describe(&desc)
	assert.Contains(t, desc.String(), "Litware                  → Ambiguous")
	assert.Contains(t, desc.String(), "sync provider-accounts")

	runService(t, sb.Service)

	want := map[string]schema.MappingStatus{
		demoAlpineTenant: schema.MappingAutoMapped, demoTailspinTenant: schema.MappingAutoMapped, demoLitwareTenant: schema.MappingAmbiguous,
		demoAdventureWorksTenant: schema.MappingUnmapped, demoContosoTenant: schema.MappingMapped, demoFabrikamTenant: schema.MappingAutoMapped,
	}
	rows := map[string]schema.ProviderAccount{}
	require.Eventually(t, func() bool {
		rows = map[string]schema.ProviderAccount{}
		q := &dataverse.Query{Select: dataverse.Columns[schema.ProviderAccount](), Filter: dataverse.LookupEq("csp_provider", sb.partnerCenterProvider)}
		for raw, err := range dv.List(t.Context(), schema.SetProviderAccounts, q) {
			require.NoError(t, err)
			var pa schema.ProviderAccount
			require.NoError(t, dataverse.Unmarshal(raw, &pa))
			rows[pa.TenantID] = pa
		}
		for tenant, status := range want {
			if rows[tenant].MappingStatus != status {
				t.Logf("waiting: %s %q is %d: %s", tenant, rows[tenant].Name, rows[tenant].MappingStatus, rows[tenant].MappingMessage)
				return false
			}
		}
		return rows[demoNorthwindTenant].MappingStatus == schema.MappingAutoMapped
	}, 15*time.Second, 50*time.Millisecond, "the sync at start maps the demo customers")
	for tenant, pa := range rows {
		t.Logf("%s %s: %d %s", tenant, pa.Name, pa.MappingStatus, pa.MappingMessage)
	}
	assert.Contains(t, rows[demoNorthwindTenant].MappingMessage, "Northwind Traders")
	assert.Contains(t, rows[demoLitwareTenant].MappingMessage, "Litware, Inc.")

	var notes []string
	require.Eventually(t, func() bool {
		notes = nil
		for raw, err := range dv.List(t.Context(), schema.SetAppNotifications, &dataverse.Query{Select: []string{"title", "body", "data"}}) {
			require.NoError(t, err)
			if strings.HasPrefix(raw.String("title"), "Map ") {
				notes = append(notes, raw.String("title")+" | "+raw.String("data"))
			}
		}
		return len(notes) == 2
	}, 10*time.Second, 50*time.Millisecond, "one in-app notification per row a person must map")
	assert.Contains(t, strings.Join(notes, "\n"), "Map Litware to an account")
	assert.Contains(t, strings.Join(notes, "\n"), "Map Adventure Works Cycles to an account")
	assert.Contains(t, strings.Join(notes, "\n"), rows[demoLitwareTenant].ID.String(), "the notification opens the row")

	// The Demo Admin chooses Litware's account, in the simulator as a person would in the form.
	var litware dataverse.GUID
	for raw, err := range dv.List(t.Context(), schema.SetAccounts, &dataverse.Query{Select: []string{"accountid"}, Filter: dataverse.Eq("name", "Litware, Inc.")}) {
		require.NoError(t, err)
		litware, _ = raw.GUID("accountid")
	}
	admin := adminClient(t, sb)
	_, err := admin.Update(t.Context(), schema.SetProviderAccounts, rows[demoLitwareTenant].ID, dataverse.Row{"csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, litware)}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		raw, err := dv.Get(t.Context(), schema.SetProviderAccounts, rows[demoLitwareTenant].ID, &dataverse.GetOptions{Select: []string{"csp_mappingstatus"}})
		require.NoError(t, err)
		st, _ := raw.Int("csp_mappingstatus")
		return schema.MappingStatus(st) == schema.MappingMapped
	}, 10*time.Second, 50*time.Millisecond, "the person's mapping is recorded as Mapped")
	require.Eventually(t, func() bool {
		n := 0
		for _, err := range dv.List(t.Context(), schema.SetAgreements, &dataverse.Query{Select: []string{"csp_agreementid"}, Filter: dataverse.LookupEq("csp_provideraccount", rows[demoLitwareTenant].ID)}) {
			require.NoError(t, err)
			n++
		}
		return n == 1
	}, 10*time.Second, 50*time.Millisecond, "mapping by hand creates the Pending agreement")
}

// adminClient writes as the sandbox's Demo Admin: a person's changes, which wake the connector.
func adminClient(t *testing.T, sb *Sandbox) *dataverse.Client {
	t.Helper()
	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	return admin
}
