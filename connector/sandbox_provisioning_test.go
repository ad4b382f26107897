package connector

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// TestSandboxDemoChangesReachEveryOutcome: the connector's first Provisioning Sweep brings each of the
// sandbox's demonstration License Change Logs to the outcome Describe promises, and buying the add-on's
// parent then completes the add-on, as Describe suggests.
func TestSandboxDemoChangesReachEveryOutcome(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	require.Len(t, sb.DemoChanges, 7)
	assert.Equal(t, 7, sb.Seeded[schema.TableLicenseChangeLog])
	assert.Equal(t, 3, sb.Seeded[schema.TableSubscription], "the rows not in Partner Center: two purchases to make, a manual provider's")
	assert.Equal(t, 5, sb.Imported.Created, "Partner Center's subscriptions of the mapped customers, imported by the Subscription Sync")

	var desc bytes.Buffer
	sb.Describe(&desc)
	t.Logf("Describe:\n%s", desc.String())
	for name, id := range sb.DemoChanges {
		assert.Regexp(t, `(?m)^  `+id.String()+`  \Q`+name+`\E\s+→ \S`, desc.String())
	}
	assert.Contains(t, desc.String(), "connector diagnose lcl <id>")
	assert.Contains(t, desc.String(), "go run ./cmd/connector diagnose lcl "+sb.DemoChanges[demoChangeAddOn].String())

	runService(t, sb.Service)

	tests := []struct {
		name    string
		status  schema.ProvisioningStatus
		held    schema.HeldReason
		message func(t *testing.T, l schema.LicenseChangeLog) []string // the message's key words
	}{
		{name: demoChangeProvisioned, status: schema.ProvisioningProvisioned, message: func(*testing.T, schema.LicenseChangeLog) []string {
			return []string{"Seats 10 → 12 in Partner Center."}
		}},
		{name: demoChangeScheduled, status: schema.ProvisioningAwaiting, held: schema.HeldScheduled, message: scheduledFor},
		{name: demoChangeParentPurchase, status: schema.ProvisioningAwaiting, held: schema.HeldScheduled, message: scheduledFor},
		{name: demoChangeAddOn, status: schema.ProvisioningAwaiting, held: schema.HeldWaitingForParent, message: func(*testing.T, schema.LicenseChangeLog) []string {
			return []string{"Waiting for the parent subscription Microsoft 365 Business Premium to be provisioned"}
		}},
		{name: demoChangeManual, status: schema.ProvisioningAwaiting, held: schema.HeldManual, message: func(*testing.T, schema.LicenseChangeLog) []string {
			return []string{"Distributor portal (manual) is a Manual provider", "make this change (seats 5 → 8) yourself", "set Provisioning Status to Provisioned"}
		}},
		{name: demoChangeReduction, status: schema.ProvisioningFailed, message: func(t *testing.T, l schema.LicenseChangeLog) []string {
			sub := readSubscription(t, dv, l.Subscription.ID)
			end := sub.ActualProvisionedOn.Add(time.Duration(sub.ReductionWindowHrs) * time.Hour)
			return []string{"The reduction window of subscription Azure Active Directory Premium P1 ended " + mapping.FormatTime(end),
				"168 hours after it was provisioned", "Reduce at renewal (" + sub.CommitmentEndDate.UTC().Format("2 Jan 2006") + ")", "archive this change"}
		}},
		{name: demoChangeSandboxCap, status: schema.ProvisioningFailed, message: func(*testing.T, schema.LicenseChangeLog) []string {
			return []string{"This is a Partner Center integration sandbox", "maximum seat count allowed per subscription (25)", "Use a smaller quantity"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := sb.DemoChanges[tt.name]
			require.True(t, ok, "the sandbox seeds %q", tt.name)
			var l schema.LicenseChangeLog
			require.Eventually(t, func() bool {
				l = readLCL(t, dv, id)
				return l.ProvisioningStatus == tt.status && l.HeldReason == tt.held && l.ProvisioningMessage != ""
			}, 15*time.Second, 20*time.Millisecond, "%s: the first sweep settles it", tt.name)
			t.Logf("%s: %s, held %q: %s", tt.name, mapping.ProvisioningLabel(l.ProvisioningStatus), mapping.HeldLabel(l.HeldReason), l.ProvisioningMessage)
			for _, want := range tt.message(t, l) {
				assert.Contains(t, l.ProvisioningMessage, want)
			}
		})
	}

	// What each outcome means in Partner Center and on the rows.
	pcQuantity := func(tenant, id string) int {
		sub, ok := sb.PartnerCenter.Subscription(tenant, id)
		require.True(t, ok, "Partner Center has subscription %s", id)
		return sub.Quantity
	}
	assert.Equal(t, 12, pcQuantity(demoContosoTenant, demoContosoSubscription), "the provisioned change reached Partner Center")
	provisioned := readLCL(t, dv, sb.DemoChanges[demoChangeProvisioned])
	assert.Equal(t, 12, readSubscription(t, dv, provisioned.Subscription.ID).Quantity, "and the subscription row")
	assert.Equal(t, 1, provisioned.Attempts)
	assert.Equal(t, 20, pcQuantity(demoFabrikamTenant, demoFabrikamP1Subscription), "the refused reduction changed nothing")
	assert.Equal(t, 3, pcQuantity(demoContosoTenant, demoContosoBasicSubscription), "the capped increase changed nothing")
	capped := readLCL(t, dv, sb.DemoChanges[demoChangeSandboxCap])
	assert.Contains(t, capped.SystemMessage, "800067")
	for _, name := range []string{demoChangeScheduled, demoChangeParentPurchase} {
		l := readLCL(t, dv, sb.DemoChanges[name])
		assert.True(t, l.NextAttemptOn.Equal(l.EffectiveDate), "%s: looked at again on its effective date, not %s", name, l.NextAttemptOn)
	}
	assert.True(t, readLCL(t, dv, sb.DemoChanges[demoChangeManual]).NextAttemptOn.IsZero(), "a manual change waits for a person")
	// The demo admin was told about it: an in-app notification with an action that opens the change.
	var notices []map[string]any
	for _, n := range sb.Dataverse.Rows(schema.TableAppNotification) {
		if strings.Contains(fmt.Sprint(n["title"]), "A license change needs you") {
			notices = append(notices, n)
		}
	}
	require.Len(t, notices, 1, "one notice for the manual change, not one per run")
	assert.Contains(t, notices[0]["body"], "Manual provider")
	assert.Contains(t, notices[0]["data"], sb.DemoChanges[demoChangeManual].String())
	assert.Len(t, sb.PartnerCenter.Subscriptions(demoFabrikamTenant), 2, "nothing bought for Fabrikam yet")

	// An admin brings the parent's purchase forward: the parent is bought, then the add-on under it.
	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	_, err = admin.Update(t.Context(), schema.SetLicenseChangeLogs, sb.DemoChanges[demoChangeParentPurchase],
		dataverse.Row{"csp_effectivedate": time.Now().Add(-time.Second).UTC()}, nil)
	require.NoError(t, err)
	var parent, addOn schema.LicenseChangeLog
	require.Eventually(t, func() bool {
		parent, addOn = readLCL(t, dv, sb.DemoChanges[demoChangeParentPurchase]), readLCL(t, dv, sb.DemoChanges[demoChangeAddOn])
		return parent.ProvisioningStatus == schema.ProvisioningProvisioned && addOn.ProvisioningStatus == schema.ProvisioningProvisioned
	}, 15*time.Second, 20*time.Millisecond, "the parent and then its add-on are bought")
	assert.Contains(t, parent.ProvisioningMessage, "Bought 10 seat(s) in Partner Center")
	assert.Contains(t, addOn.ProvisioningMessage, "Bought 10 seat(s) in Partner Center")
	require.NotEmpty(t, parent.PCSubscriptionID)
	bought, ok := sb.PartnerCenter.Subscription(demoFabrikamTenant, addOn.PCSubscriptionID)
	require.True(t, ok)
	assert.Equal(t, parent.PCSubscriptionID, bought.ParentSubscriptionID, "the add-on is attached to the parent just bought")
	assert.Len(t, sb.PartnerCenter.Subscriptions(demoFabrikamTenant), 4, "within the sandbox's 5 subscriptions per customer")
}

func scheduledFor(_ *testing.T, l schema.LicenseChangeLog) []string {
	return []string{"Scheduled for " + mapping.FormatTime(l.EffectiveDate) + ": the connector pushes it then."}
}

func readLCL(t *testing.T, dv *dataverse.Client, id dataverse.GUID) schema.LicenseChangeLog {
	t.Helper()
	r, err := dv.Get(context.Background(), schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.LicenseChangeLog]()})
	require.NoError(t, err)
	var l schema.LicenseChangeLog
	require.NoError(t, dataverse.Unmarshal(r, &l))
	return l
}

func readSubscription(t *testing.T, dv *dataverse.Client, id dataverse.GUID) schema.Subscription {
	t.Helper()
	r, err := dv.Get(context.Background(), schema.SetSubscriptions, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Subscription]()})
	require.NoError(t, err)
	var s schema.Subscription
	require.NoError(t, dataverse.Unmarshal(r, &s))
	return s
}
