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

// protectionSubscriptions sizes the workload: 1,200 subscriptions of 5 changes, 6,000 changes. At about
// 3 requests a change (events) and 2.2 (sweep), that is 18,000 and 13,200 requests: more than two windows'
// worth of the budget (6,000 requests per 300 s; 5,400 for bulk work), so the run spans whole windows in
// which the budget, not the work, bounds it (testrig: what the budget allows).
const protectionSubscriptions = 1200

// BenchmarkServiceProtection provisions 6,000 license changes (BenchmarkProvisioning's workload, six
// times over), woken by events and by the sweep, in fake time against the Dataverse simulator enforcing
// Dataverse's per-user service protection limits, and reports their 429s, requests per change beside the
// floor and throughput against what the budget allows (testrig.ReportBudget). It fails when a goal is
// missed.
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
		r := seedBenchRig(t, dvs, pcs, "http://dataverse.test", 0, protectionSubscriptions)
		// The seeding went through the client: let its requests leave the client's window.
		time.Sleep(dataverse.DefaultBudgetWindow + 2*time.Second)
		dvs.SetLimits(testrig.ProtectedDataverse())
		dvs.ResetRequests()
		pcs.ResetRequests()
		waited := r.DV.BudgetWaited()
		_, took := r.run(t, scenario)
		r.verifyOrder(t)

		f := testrig.FiguresOf(dvs, r.DV, "license-changes-"+scenario, r.Changes, took)
		f.Waited -= waited
		f.Bulk = true // the sweep's wake-ups, and in both the changes a success wakes, are bulk work
		// The floor. A change read by its own run: 1 read with its context expanded (its subscription, the
		// subscription's provider, provider account, parent and changes in flight), the claim (a PATCH with
		// If-Match of its own, before Partner Center is called: exactly once), and one change-set $batch
		// writing the outcome on the change and the subscription: 3. A change woken by the one before it,
		// which hands over what it read and wrote: the claim and the write, 2.
		switch scenario {
		case "events":
			// Every change's event reads it (it cannot know it is behind another without reading it), then
			// the first of each subscription is provisioned and the others, held, are woken in turn: 1 +
			// 2 for each change.
			f.Floor = 3
			f.FloorWhy = "each change's event reads it once (with $expand); the claim; 1 write-back $batch"
		case "sweep":
			// The sweep's one listing, each subscription's first change read, claimed and written (3), the
			// four after it woken and handed over (2).
			heads := len(r.Subs)
			f.Floor = float64(1+3*heads+2*(r.Changes-heads)) / float64(r.Changes)
			f.FloorWhy = "1 listing + 3 for each subscription's first change (read with $expand, claim, write) + 2 for each change woken by the one before it (claim, write)"
		}
		f.Print(os.Stdout)
	})
}
