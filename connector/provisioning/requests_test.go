package provisioning

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
