package provisioning

import (
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

const protectionEnv = "CONNECTOR_PROTECTION_PROVISIONING"

// BenchmarkServiceProtection provisions BenchmarkProvisioning's 1,000 license changes, woken by events
// and by the sweep, in fake time against the Dataverse simulator enforcing Dataverse's per-user service
// protection limits, and reports their 429s, requests per change and throughput against what the budget
// allows (testrig.ReportBudget). It fails when a goal is missed.
//
//	go test -run XXX -bench BenchmarkServiceProtection -benchtime 1x ./...
func BenchmarkServiceProtection(b *testing.B) {
	for _, scenario := range []string{"events", "sweep"} {
		b.Run("license-changes-"+scenario, func(b *testing.B) {
			var f testrig.BudgetFigures
			for range b.N {
				f = testrig.RunWorkload(b, "TestServiceProtectionProvisioning", protectionEnv, scenario)
			}
			testrig.ReportBudget(b, f)
		})
	}
}

// TestServiceProtectionProvisioning is BenchmarkServiceProtection's workload, run in a child process
// (synctest bubbles only a *testing.T). Without the variable it does nothing.
func TestServiceProtectionProvisioning(t *testing.T) {
	scenario := os.Getenv(protectionEnv)
	if scenario == "" {
		t.Skip("the workload of BenchmarkServiceProtection: run by the benchmark")
	}
	synctest.Test(t, func(t *testing.T) {
		dvs := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
		pcs := partnercentertest.New(partnercentertest.Options{AuthOptional: true}) // Partner Center's rate limit on
		r := seedBenchRig(t, dvs, pcs, "http://dataverse.test", 0)
		// The seeding went through the client: let its requests leave the client's window.
		time.Sleep(dataverse.DefaultBudgetWindow + 2*time.Second)
		dvs.SetLimits(testrig.ProtectedDataverse())
		dvs.ResetRequests()
		pcs.ResetRequests()
		_, took := r.run(t, scenario)
		r.verifyOrder(t)

		f := testrig.FiguresOf(dvs, "license-changes-"+scenario, benchChanges, took)
		// The floor: 1 read of the change with what the decision needs expanded (its subscription, the
		// subscription's provider and provider account, the subscription's earlier changes in flight);
		// the claim (a PATCH with If-Match of its own, before Partner Center is called: exactly once);
		// one change-set $batch writing the outcome on the change and the subscription.
		f.Floor = 3
		f.FloorWhy = "1 read with $expand + the claim + 1 write-back $batch; the workflow reads with a GET, a GET and a $batch of 3 (5 in all): the simulator has no $expand"
		f.Print(os.Stdout)
	})
}
