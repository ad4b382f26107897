package provisioning

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/intake"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// The closing steps a failed change's message ends with, as an admin reads them (mapping.Remedy's texts).
const (
	retryStep   = "set Provisioning Status back to Awaiting Provisioning to try again"
	archiveStep = "archive this change (Status Reason: Archived)"
)

// TestArchivingAFailedBlockerProvisionsTheChangeItHeld: a change that fails holds the one after it, which
// learns so at once; archiving the failed change is an event that wakes the held one, which is then
// provisioned without waiting for the sweep, and its message no longer tells anyone to archive anything.
func TestArchivingAFailedBlockerProvisionsTheChangeItHeld(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, 30*24*time.Hour, nil) // bought a month ago: no seat can be removed now
	first := r.LCL(t, s.Row, schema.ChangeQuantity, 8, dataverse.Row{"csp_name": "First"})
	r.Clock.Advance(time.Second)
	second := r.LCL(t, s.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_name": "Second"})

	_, err := r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	require.Empty(t, r.Read(t, second).ProvisioningMessage, "next in line behind a change about to run")

	_, err = r.P.Provision(t.Context(), first)
	require.NoError(t, err)
	failed := r.Read(t, first)
	require.Equal(t, schema.ProvisioningFailed, failed.ProvisioningStatus)
	assert.Contains(t, failed.ProvisioningMessage, archiveStep)
	assert.Equal(t, []string{second.String()}, idStrings(r.Woken()), "a change that fails wakes the one in line behind it")

	_, err = r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	held := r.Read(t, second)
	require.Equal(t, schema.HeldBlocked, held.HeldReason)
	assert.Contains(t, held.ProvisioningMessage, "Blocked by the earlier change “First”")
	assert.Contains(t, held.ProvisioningMessage, "archive it")

	// The admin archives the failed change. That is an event the provisioner is woken by…
	gate := &intake.Gate{SelfUserID: uuid.New(), Triggers: Triggers()}
	archive := event.Event{Message: "Update", Table: schema.TableLicenseChangeLog, RowID: first, InitiatingUserID: uuid.New(),
		Target: &event.Entity{Table: schema.TableLicenseChangeLog, ID: first, Columns: []string{"statecode", "statuscode", "modifiedon"}}}
	assert.Equal(t, intake.ActionProcess, gate.Judge(archive).Action, "archiving a change log wakes the provisioner")
	_, err = r.DV.Update(t.Context(), schema.SetLicenseChangeLogs, first, dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.LCLArchived}, nil)
	require.NoError(t, err)

	// …and handling it wakes what it held, now, not at the sweep's safety net 30 minutes away.
	_, err = r.P.Provision(t.Context(), first)
	require.NoError(t, err)
	assert.Equal(t, []string{second.String()}, idStrings(r.Woken()), "archiving the blocker wakes the change it held")

	dg, err := r.P.Diagnose(t.Context(), second)
	require.NoError(t, err)
	assert.Equal(t, mapping.Proceed, dg.Decision.Verdict, dg.Decision.Message)

	out, err := r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	assert.Equal(t, "Seats 10 → 12 in Partner Center.", out.Changed)
	done := r.Read(t, second)
	assert.Equal(t, schema.ProvisioningProvisioned, done.ProvisioningStatus)
	assert.NotContains(t, done.ProvisioningMessage, "archive")
	assert.Equal(t, 12, r.PCQuantity(t, s.PCID))
}

// TestFixingAFailedBlockerUpdatesWhatItHeld: a failed change set back to Awaiting Provisioning that is
// then held (Partner Center throttles it) has not "failed": the change behind it is woken and says what it
// waits for now.
func TestFixingAFailedBlockerUpdatesWhatItHeld(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, time.Hour, nil)
	first := r.LCL(t, s.Row, schema.ChangeQuantity, 11, dataverse.Row{"csp_name": "First", "csp_provisioningstatus": int(schema.ProvisioningFailed)})
	r.Clock.Advance(time.Second)
	second := r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
	_, err := r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	require.Contains(t, r.Read(t, second).ProvisioningMessage, "which failed")

	// The admin sets it back to Awaiting Provisioning; Partner Center is busy.
	_, err = r.DV.Update(t.Context(), schema.SetLicenseChangeLogs, first, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningAwaiting)}, nil)
	require.NoError(t, err)
	r.PCS.Inject(partnercentertest.Fault{Status: 429, RetryAfter: 5 * time.Minute})
	_, err = r.P.Provision(t.Context(), first)
	require.NoError(t, err)
	require.Equal(t, schema.HeldRetrying, r.Read(t, first).HeldReason)
	assert.Contains(t, idStrings(r.Woken()), second.String(), "the change it held is told at once")
	_, err = r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	msg := r.Read(t, second).ProvisioningMessage
	assert.Contains(t, msg, "Waiting for the earlier change “First”")
	assert.NotContains(t, msg, "failed")
}

// TestDiagnoseAgreesWithTheRow: for each outcome a person must act on, `diagnose` gives the same message
// and the same next step as the row.
func TestDiagnoseAgreesWithTheRow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    provOptions
		arrange func(t *testing.T, r *provRig) dataverse.GUID
		status  schema.ProvisioningStatus
		verdict mapping.Verdict // the decision diagnose shows (a failed change walked as a retry would see it)
		step    string          // what the row and diagnose both tell a person to do
		never   string          // what neither may say
	}{
		{name: "blocked by a failed change", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			r.LCL(t, s.Row, schema.ChangeQuantity, 11, dataverse.Row{"csp_name": "First", "csp_provisioningstatus": int(schema.ProvisioningFailed)})
			r.Clock.Advance(time.Second)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningAwaiting, verdict: mapping.Hold, step: "provisioned or archived"},
		{name: "failed seat reduction", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, 30*24*time.Hour, nil)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 8, nil)
		}, status: schema.ProvisioningFailed, verdict: mapping.Fail, step: archiveStep, never: "Awaiting Provisioning"},
		{name: "seat reduction Disallowed", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, dataverse.Row{"csp_reductionbehavior": int(schema.ReductionDisallowed)})
			return r.LCL(t, s.Row, schema.ChangeQuantity, 8, nil)
		}, status: schema.ProvisioningFailed, verdict: mapping.Fail, step: archiveStep, never: "Awaiting Provisioning"},
		{name: "sandbox cap", opts: provOptions{SandboxCaps: true}, arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 30, nil)
		}, status: schema.ProvisioningFailed, verdict: mapping.Proceed, step: retryStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newProvRig(t, tt.opts)
			id := tt.arrange(t, r)
			_, err := r.P.Provision(t.Context(), id)
			require.NoError(t, err)
			l := r.Read(t, id)
			require.Equal(t, mapping.ProvisioningLabel(tt.status), mapping.ProvisioningLabel(l.ProvisioningStatus), l.ProvisioningMessage)

			dg, err := r.P.Diagnose(t.Context(), id)
			require.NoError(t, err)
			assert.Equal(t, tt.verdict, dg.Decision.Verdict, dg.Decision.Message)
			if tt.verdict != mapping.Proceed {
				assert.Equal(t, l.ProvisioningMessage, dg.Decision.Message, "diagnose and the row give the same message")
			}
			if tt.verdict == mapping.Fail {
				assert.Equal(t, mapping.RemedyOf(l.ProvisioningMessage), dg.Decision.Remedy, "one remedy, the same on both")
			} // else a refusal only Partner Center can repeat: the checks before the call pass
			assert.Contains(t, l.ProvisioningMessage, tt.step)
			assert.Contains(t, dg.Next, tt.step, "diagnose's next step is the row's")
			if tt.never != "" {
				assert.NotContains(t, l.ProvisioningMessage, tt.never)
				assert.NotContains(t, dg.Next, tt.never)
			}
			if tt.status == schema.ProvisioningFailed {
				assert.True(t, dg.Decision.Checks[0].Passed, "a failed change's walk is shown as a retry would see it")
			}
		})
	}
}

// TestEditingTheQuantityOfASandboxCapFailure: the admin lowers the quantity of a change the sandbox
// refused. It stays Failed until they try again (a person's explicit step, as the message says); diagnose
// says nothing stops it now and names that same step; taking it provisions the change.
func TestEditingTheQuantityOfASandboxCapFailure(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{SandboxCaps: true})
	s := r.Subscription(t, 10, time.Hour, nil)
	id := r.LCL(t, s.Row, schema.ChangeQuantity, 30, nil)
	_, err := r.P.Provision(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, schema.ProvisioningFailed, r.Read(t, id).ProvisioningStatus)

	_, err = r.DV.Update(t.Context(), schema.SetLicenseChangeLogs, id, dataverse.Row{"csp_quantity": 20}, nil)
	require.NoError(t, err)
	_, err = r.P.Provision(t.Context(), id) // the edit's event
	require.NoError(t, err)
	l := r.Read(t, id)
	assert.Equal(t, schema.ProvisioningFailed, l.ProvisioningStatus)
	assert.Contains(t, l.ProvisioningMessage, "Use a smaller quantity")
	assert.Contains(t, l.ProvisioningMessage, retryStep, "the message names the step that tries again")
	assert.Equal(t, 10, r.PCQuantity(t, s.PCID))

	dg, err := r.P.Diagnose(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, mapping.Proceed, dg.Decision.Verdict, "as a retry would see it: nothing the connector checks stops it now")
	assert.Contains(t, dg.Next, retryStep)

	_, err = r.DV.Update(t.Context(), schema.SetLicenseChangeLogs, id, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningAwaiting)}, nil)
	require.NoError(t, err)
	out, err := r.P.Provision(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, "Seats 10 → 20 in Partner Center.", out.Changed)
}
