package agreements

import (
	"os"
	"testing"
	"testing/synctest"

	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

const protectionEnv = "CONNECTOR_PROTECTION_CHECK"

// protectionBlocks sizes the workload: 300 blocks of BenchmarkAttestationCheck's 50 agreements, 15,000
// agreements. At about 1.14 requests an agreement that is some 17,100 requests: more than three windows'
// worth of the budget bulk work may use (5,400 of the 6,000 requests per 300 s), so the run spans whole
// windows in which the budget, not the work, bounds it (testrig: what the budget allows).
const protectionBlocks = 300

// BenchmarkServiceProtection runs the Attestation Check of 15,000 agreements (BenchmarkAttestationCheck's
// workload three times over, and its wiring: the job's wake-ups handled by a work queue of 8 workers) in
// fake time against the Dataverse simulator enforcing Dataverse's per-user service protection limits, and
// reports its 429s, requests per agreement beside the floor and throughput against what the budget allows
// (testrig.ReportBudget). It fails when a goal is missed.
//
//	go test -run XXX -bench BenchmarkServiceProtection -benchtime 1x ./...
func BenchmarkServiceProtection(b *testing.B) {
	b.Run("attestation-check", func(b *testing.B) {
		var f testrig.BudgetFigures
		for range b.N {
			f = testrig.RunWorkload(b, "TestServiceProtectionCheck", protectionEnv, "1")
		}
		testrig.ReportBudget(b, f)
	})
}

// TestServiceProtectionCheck is BenchmarkServiceProtection's workload, run in a child process (synctest
// bubbles only a *testing.T). Without the variable it does nothing.
func TestServiceProtectionCheck(t *testing.T) {
	if os.Getenv(protectionEnv) == "" {
		t.Skip("the workload of BenchmarkServiceProtection: run by the benchmark")
	}
	synctest.Test(t, func(t *testing.T) {
		dvs := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
		pcs := partnercentertest.New(partnercentertest.Options{AuthOptional: true}) // Partner Center's rate limit on
		r := seedAgBenchRig(t, dvs, pcs, "http://dataverse.test", 0, protectionBlocks)
		dvs.SetLimits(testrig.ProtectedDataverse())
		dvs.ResetRequests()
		pcs.ResetRequests()
		waited := r.DV.BudgetWaited()
		_, took := r.run(t)
		r.verify(t)

		rows := len(r.Rows)
		f := testrig.FiguresOf(dvs, r.DV, "attestation-check", rows, took)
		f.Waited -= waited
		f.Bulk = true
		// The floor: one read a row, the agreement with its provider account and template expanded ($expand
		// of the two lookups), the writes of the rows that changed (7 in 50), and the job's listing, one
		// page of 5,000 rows.
		pages := (rows + 4999) / 5000
		f.Floor = float64(rows+r.writes()+pages) / float64(rows)
		f.FloorWhy = "1 read a row with its lookups expanded + a write for each row accepted (7 in 50) + the listing, 5,000 rows a page"
		f.Print(os.Stdout)
	})
}
