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

// BenchmarkServiceProtection runs the Attestation Check of 5,000 agreements (BenchmarkAttestationCheck's
// workload and wiring: the job's wake-ups handled by a work queue of 8 workers) in fake time against the
// Dataverse simulator enforcing Dataverse's per-user service protection limits, and reports its 429s,
// requests per agreement and throughput against what the budget allows (testrig.ReportBudget). It fails
// when a goal is missed.
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
		r := seedAgBenchRig(t, dvs, pcs, "http://dataverse.test", 0)
		dvs.SetLimits(testrig.ProtectedDataverse())
		dvs.ResetRequests()
		pcs.ResetRequests()
		_, took := r.run(t)
		r.verify(t)

		f := testrig.FiguresOf(dvs, "attestation-check", agBenchRows, took)
		// The floor: one read a row, the agreement with its provider account and template expanded
		// ($expand of single-valued lookups; the check reads them with a GET and a $batch of two, 2
		// requests), the writes of the 700 rows that changed, and the job's one page of 5,000 rows.
		f.Floor = float64(agBenchRows+agBenchWrites+1) / agBenchRows
		f.FloorWhy = "1 read a row with its lookups expanded + 700 writes + 1 listing page; the check reads with a GET and a $batch (2 a row): the simulator has no $expand"
		f.Print(os.Stdout)
	})
}
