package agreements

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// requestsOf lists the requests service protection counts (a $batch is one).
func requestsOf(dvs *dataversetest.Server) []string {
	var out []string
	for _, r := range dvs.Requests() {
		if !r.InBatch {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	return out
}

// The floor of a checked agreement: one read of the row with its provider account and template expanded,
// and a write only when something changed.
func TestAgreementCheckCostsOneRead(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	row := "csp_agreements(" + r.Row.String() + ")"
	check := func() { // as the Attestation Check's wake-up
		require.NoError(t, r.G.Handle(t.Context(), work.Batch{Key: work.Key{Table: schema.TableAgreement, ID: r.Row}, Sources: []string{work.SourceSweep}}))
	}

	check() // the first check says on the row that it waits for the customer
	r.DVS.ResetRequests()
	check()
	assert.Equal(t, []string{"GET " + row}, requestsOf(r.DVS), "still waiting on the customer: one read, nothing written")

	r.PCS.SetDirectSigned(r.Tenant, true)
	r.DVS.ResetRequests()
	check()
	assert.Equal(t, []string{"GET " + row, "PATCH " + row}, requestsOf(r.DVS), "accepted: one read, one write")
	assert.Equal(t, schema.AttestationAcceptedDirectly, r.Read(t).AttestationStatus)
}
