package connector

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/subscriptions"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestSandboxImportsSubscriptionsAndRecordsTheDemoDrift: the sandbox's subscriptions come from the Partner
// Center simulator through the Subscription Sync (not seeded as rows); the seat change it then makes in
// Partner Center is recorded by the sync's run when the connector starts as one Provider license change,
// while the demonstration changes of ours provisioned at the same time are not.
func TestSandboxImportsSubscriptionsAndRecordsTheDemoDrift(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	assert.Equal(t, subscriptions.SyncCounts{Seen: 5, Created: 5}, sb.Imported.SyncCounts)
	var desc bytes.Buffer
	sb.Describe(&desc)
	assert.Contains(t, desc.String(), "5 imported from Partner Center by the Subscription Sync at start")
	assert.Contains(t, desc.String(), "went from 10 to 12 seats in Partner Center")

	rows := map[string]schema.Subscription{}
	for raw, err := range dv.List(t.Context(), schema.SetSubscriptions, &dataverse.Query{Select: dataverse.Columns[schema.Subscription]()}) {
		require.NoError(t, err)
		var s schema.Subscription
		require.NoError(t, dataverse.Unmarshal(raw, &s))
		rows[s.PCSubscriptionID] = s
	}
	for _, tenant := range []string{demoContosoTenant, demoFabrikamTenant} {
		for _, id := range sb.PartnerCenter.Subscriptions(tenant) {
			pcSub, _ := sb.PartnerCenter.Subscription(tenant, id)
			row, ok := rows[id]
			if assert.True(t, ok, "Partner Center's subscription %s has its row", id) {
				assert.Equal(t, pcSub.OfferID, row.OfferID)
				assert.False(t, row.ActualProvisionedOn.IsZero())
			}
		}
	}
	drifted := rows[demoContosoP1Subscription]
	require.Equal(t, sb.DriftSubscription, drifted.ID)
	assert.Equal(t, 10, drifted.Quantity, "imported before the change in Partner Center")
	assert.Equal(t, schema.ReductionAllowedWithinWindow, rows[demoFabrikamP1Subscription].ReductionBehavior, "the partner's policy, set on the imported row")

	runService(t, sb.Service)

	providerChanges := func() []schema.LicenseChangeLog {
		var out []schema.LicenseChangeLog
		q := &dataverse.Query{Select: dataverse.Columns[schema.LicenseChangeLog](), Filter: dataverse.Eq("csp_changesource", schema.SourceProvider)}
		for raw, err := range dv.List(t.Context(), schema.SetLicenseChangeLogs, q) {
			require.NoError(t, err)
			var l schema.LicenseChangeLog
			require.NoError(t, dataverse.Unmarshal(raw, &l))
			out = append(out, l)
		}
		return out
	}
	require.Eventually(t, func() bool { return len(providerChanges()) > 0 }, 15*time.Second, 50*time.Millisecond,
		"the Subscription Sync's run at start records the drift")
	// Our demonstration change of Contoso's Business Premium (10 → 12) is provisioned meanwhile.
	require.Eventually(t, func() bool {
		return readLCL(t, dv, sb.DemoChanges[demoChangeProvisioned]).ProvisioningStatus == schema.ProvisioningProvisioned
	}, 15*time.Second, 50*time.Millisecond)
	res, err := sb.Service.Subscriptions.Sync(t.Context(), subscriptions.SyncOptions{})
	require.NoError(t, err)
	assert.Zero(t, res.Drifted, "nothing else differs: %s", res.Summary())

	got := providerChanges()
	require.Len(t, got, 1, "one drift, and none for our own changes")
	l := got[0]
	t.Log(l.ProvisioningMessage)
	assert.Equal(t, sb.DriftSubscription, l.Subscription.ID)
	assert.Equal(t, schema.ChangeQuantity, l.ChangeType)
	assert.Equal(t, schema.ProvisioningNotApplicable, l.ProvisioningStatus)
	assert.Contains(t, l.ProvisioningMessage, "Seats 10 → 12, changed in Partner Center; seen on")
	assert.Equal(t, 12, readSubscription(t, dv, sb.DriftSubscription).Quantity)

	// The Demo Admin is told.
	var notices []string
	for _, n := range sb.Dataverse.Rows(schema.TableAppNotification) {
		if title := fmt.Sprint(n["title"]); strings.Contains(title, "differ from Partner Center") {
			notices = append(notices, title+": "+fmt.Sprint(n["body"]))
		}
	}
	require.Len(t, notices, 1)
	assert.Contains(t, notices[0], "Seats 10 → 12")
}
