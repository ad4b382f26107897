package connector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

func TestProvisionQuantityChangeEndToEnd(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, 24*time.Hour, nil)
	first := r.LCL(t, s.Row, schema.ChangeQuantity, 15, map[string]any{"csp_previousquantity": 10})
	r.Clock.Advance(time.Second)
	second := r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)

	// The later change waits for the earlier one.
	out, err := r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	assert.Equal(t, mapping.Hold, out.Decision.Verdict, out.Decision.Message)
	l := r.Read(t, second)
	assert.Equal(t, schema.ProvisioningAwaiting, l.ProvisioningStatus)
	assert.Equal(t, schema.HeldBlocked, l.HeldReason)
	assert.Contains(t, l.ProvisioningMessage, "Waiting for the earlier change")

	r.PCS.ResetRequests()
	r.DVS.ResetRequests()
	out, err = r.P.Provision(t.Context(), first)
	require.NoError(t, err)
	assert.Equal(t, mapping.Proceed, out.Decision.Verdict)
	assert.Equal(t, "Seats 10 → 15 in Partner Center.", out.Changed)
	assert.Equal(t, 15, r.PCQuantity(t, s.PCID))
	l = r.Read(t, first)
	assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus)
	assert.Equal(t, "Seats 10 → 15 in Partner Center.", l.ProvisioningMessage)
	assert.Equal(t, 1, l.Attempts)
	assert.False(t, l.ProvisionedOn.IsZero())
	assert.Equal(t, 15, r.ReadSubscription(t, s.Row).Quantity)
	assert.Len(t, r.PCS.Requests(), 2, "one GET and one PATCH")
	assert.Equal(t, []string{second.String()}, idStrings(r.Woken()), "the success wakes the next change")
	t.Logf("Dataverse requests for one change: %d", len(r.DVS.Requests()))

	out, err = r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	assert.Equal(t, "Seats 15 → 12 in Partner Center.", out.Changed)
	assert.Equal(t, 12, r.PCQuantity(t, s.PCID))
}
