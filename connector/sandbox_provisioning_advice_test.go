package connector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestSandboxArchivingAFailedChangeProvisionsTheNextAtOnce: end to end on the sandbox (events from the
// Dataverse simulator, the service's work queue): the change behind a failed one is provisioned as soon as
// an admin archives the failed one, not at the sweep's safety net half an hour later.
func TestSandboxArchivingAFailedChangeProvisionsTheNextAtOnce(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	runService(t, sb.Service)
	var done schema.LicenseChangeLog
	require.Eventually(t, func() bool {
		done = readLCL(t, dv, sb.DemoChanges[demoChangeProvisioned])
		return done.ProvisioningStatus == schema.ProvisioningProvisioned
	}, 15*time.Second, 20*time.Millisecond)
	subscription := "/csp_subscriptions(" + done.Subscription.ID.String() + ")"

	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	failed, err := admin.Create(t.Context(), schema.SetLicenseChangeLogs, dataverse.Row{"csp_name": "Refused earlier", "csp_changetype": int(schema.ChangeQuantity),
		"csp_quantity": 30, "csp_provisioningstatus": int(schema.ProvisioningFailed), "csp_changesource": int(schema.SourceDynamics),
		"csp_effectivedate": time.Now().Add(-time.Hour).UTC(), "csp_subscription@odata.bind": subscription})
	require.NoError(t, err)
	next, err := admin.Create(t.Context(), schema.SetLicenseChangeLogs, dataverse.Row{"csp_name": "Next", "csp_changetype": int(schema.ChangeQuantity),
		"csp_quantity": 14, "csp_provisioningstatus": int(schema.ProvisioningAwaiting), "csp_changesource": int(schema.SourceDynamics),
		"csp_effectivedate": time.Now().Add(-time.Minute).UTC(), "csp_subscription@odata.bind": subscription})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return readLCL(t, dv, next).HeldReason == schema.HeldBlocked }, 15*time.Second, 20*time.Millisecond,
		"held behind the failed change")
	held := readLCL(t, dv, next)
	assert.Contains(t, held.ProvisioningMessage, "Blocked by the earlier change “Refused earlier")
	assert.True(t, held.NextAttemptOn.After(time.Now().Add(10*time.Minute)), "the sweep's safety net is far away: %s", held.NextAttemptOn)

	_, err = admin.Update(t.Context(), schema.SetLicenseChangeLogs, failed, dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.LCLArchived}, nil)
	require.NoError(t, err)
	var l schema.LicenseChangeLog
	require.Eventually(t, func() bool {
		l = readLCL(t, dv, next)
		return l.ProvisioningStatus == schema.ProvisioningProvisioned
	}, 15*time.Second, 20*time.Millisecond, "archiving the failed change provisions the next at once")
	assert.Equal(t, "Seats 12 → 14 in Partner Center.", l.ProvisioningMessage)
	sub, ok := sb.PartnerCenter.Subscription(demoContosoTenant, demoContosoSubscription)
	require.True(t, ok)
	assert.Equal(t, 14, sub.Quantity)
}
