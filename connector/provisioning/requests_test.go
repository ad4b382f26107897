package provisioning

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// requestsOf lists the requests service protection counts (a $batch is one), as "GET csp_licensechangelogs(…)".
func requestsOf(dvs *dataversetest.Server) []string {
	var out []string
	for _, r := range dvs.Requests() {
		if !r.InBatch {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// The floor of a provisioned change: one read of the change with its whole context ($expand: the
// subscription, its provider, provider account, parent and pending changes), the claim, and one change set
// writing the outcome on the change and the subscription. A change held behind an earlier one costs the
// one read.
func TestProvisionCostsOneReadOneClaimOneWrite(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, 24*time.Hour, nil)
	first := r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)
	r.Clock.Advance(time.Second)
	second := r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)

	r.DVS.ResetRequests()
	out, err := r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	require.True(t, out.Decision.InLine, out.Decision.Message)
	assert.Equal(t, []string{"GET csp_licensechangelogs(" + second.String() + ")"}, requestsOf(r.DVS),
		"a change held behind another costs one read")

	r.DVS.ResetRequests()
	out, err = r.P.Provision(t.Context(), first)
	require.NoError(t, err)
	require.Equal(t, mapping.Proceed, out.Decision.Verdict, out.Decision.Message)
	assert.Equal(t, []string{
		"GET csp_licensechangelogs(" + first.String() + ")",
		"PATCH csp_licensechangelogs(" + first.String() + ")",
		"POST $batch",
	}, requestsOf(r.DVS), "read, claim, write back")
	assert.Equal(t, 15, r.ReadSubscription(t, s.Row).Quantity)
}

// A change woken by the one before it takes over what that one read and wrote: it claims and writes back
// without reading (2 requests). Its row's ETag still guards the claim: a change edited since is refused,
// read again and decided on as it is now.
func TestWokenChangeClaimsWithoutReadingAgain(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, 24*time.Hour, nil)
	first := r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)
	r.Clock.Advance(time.Second)
	second := r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
	r.Clock.Advance(time.Second)
	third := r.LCL(t, s.Row, schema.ChangeQuantity, 20, nil)

	_, err := r.P.Provision(t.Context(), first)
	require.NoError(t, err)
	require.Equal(t, []dataverse.GUID{second}, r.Woken())

	r.DVS.ResetRequests()
	r.PCS.ResetRequests()
	out, err := r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	require.Equal(t, mapping.Proceed, out.Decision.Verdict, out.Decision.Message)
	assert.Equal(t, "Seats 15 → 12 in Partner Center.", out.Changed)
	assert.Equal(t, []string{"PATCH csp_licensechangelogs(" + second.String() + ")", "POST $batch"}, requestsOf(r.DVS),
		"claim and write back: the first change handed over what it read")
	assert.Len(t, r.PCS.Requests(), 2, "Partner Center is still read before it is changed")
	assert.Equal(t, 12, r.ReadSubscription(t, s.Row).Quantity)
	require.Equal(t, []dataverse.GUID{third}, r.Woken())

	// An admin changes the third change's target after the second was provisioned: the handed-over row is
	// stale, the claim is refused and the run decides on the row as it is now.
	_, err = r.DV.Update(t.Context(), schema.SetLicenseChangeLogs, third, dataverse.Row{"csp_quantity": 25}, nil)
	require.NoError(t, err)
	r.DVS.ResetRequests()
	out, err = r.P.Provision(t.Context(), third)
	require.NoError(t, err)
	assert.Equal(t, "Seats 12 → 25 in Partner Center.", out.Changed)
	assert.Equal(t, 25, r.PCQuantity(t, s.PCID))
	assert.Equal(t, []string{
		"PATCH csp_licensechangelogs(" + third.String() + ")", // refused: 412
		"GET csp_licensechangelogs(" + third.String() + ")",
		"PATCH csp_licensechangelogs(" + third.String() + ")",
		"POST $batch",
	}, requestsOf(r.DVS))
	assert.Equal(t, 1, r.Read(t, third).Attempts)

	// Facts handed over too long ago are not used.
	r.Clock.Advance(time.Second)
	fourth := r.LCL(t, s.Row, schema.ChangeQuantity, 30, nil)
	r.Clock.Advance(time.Second)
	fifth := r.LCL(t, s.Row, schema.ChangeQuantity, 31, nil)
	_, err = r.P.Provision(t.Context(), fourth)
	require.NoError(t, err)
	require.Equal(t, []dataverse.GUID{fifth}, r.Woken())
	r.Clock.Advance(handoverTTL)
	r.DVS.ResetRequests()
	_, err = r.P.Provision(t.Context(), fifth)
	require.NoError(t, err)
	assert.Equal(t, "GET csp_licensechangelogs("+fifth.String()+")", requestsOf(r.DVS)[0], "read again")
}
