package provideraccounts

import (
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

const (
	protectionCustomers = 20000
	protectionEnv       = "CONNECTOR_PROTECTION_SYNC"
)

// BenchmarkServiceProtection runs the first sync of 20,000 customers (BenchmarkProviderAccountSync's
// workload) in fake time against the Dataverse simulator enforcing Dataverse's per-user service
// protection limits, and reports its 429s, requests per customer and throughput against what the budget
// allows (testrig.ReportBudget). It fails when a goal is missed.
//
//	go test -run XXX -bench BenchmarkServiceProtection -benchtime 1x ./...
func BenchmarkServiceProtection(b *testing.B) {
	b.Run("provider-account-sync", func(b *testing.B) {
		var f testrig.BudgetFigures
		for range b.N {
			f = testrig.RunWorkload(b, "TestServiceProtectionSync", protectionEnv, "1")
		}
		testrig.ReportBudget(b, f)
	})
}

// TestServiceProtectionSync is BenchmarkServiceProtection's workload, run in a child process (synctest
// bubbles only a *testing.T). Without the variable it does nothing.
func TestServiceProtectionSync(t *testing.T) {
	if os.Getenv(protectionEnv) == "" {
		t.Skip("the workload of BenchmarkServiceProtection: run by the benchmark")
	}
	synctest.Test(t, func(t *testing.T) {
		dvs := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
		pcs := partnercentertest.New(partnercentertest.Options{AuthOptional: true, DisableRateLimit: true})
		seedSyncBench(t, dvs, pcs, protectionCustomers)
		dvs.SetLatency(testrig.BenchDVLatency)
		pcs.SetLatency(testrig.BenchPCLatency)
		dvs.SetLimits(testrig.ProtectedDataverse())
		dvs.ResetRequests()

		// The production configuration (connector.NewDataverseClient): the client knows the tables, so
		// WriteBatch writes them with bulk messages (UpsertMultiple, …) rather than $batch.
		dv, err := dataverse.NewClient("http://dataverse.test", nil, &dataverse.ClientOptions{HTTPClient: dvs.InMemoryClient(),
			Tables: schema.Schema().Tables})
		require.NoError(t, err)
		pc, err := partnercenter.NewClient("http://partnercenter.test", partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: pcs.InMemoryClient(), PageSize: syncBenchPCPageSize})
		require.NoError(t, err)
		p := New(dv, pc, &Options{BatchSize: syncBenchDVBatchSize, Publish: func(notify.Notification) bool { return true }})

		start := time.Now()
		counts, err := p.Sync(dataverse.WithPriority(t.Context(), dataverse.Bulk)) // as the job runner calls it
		require.NoError(t, err)
		elapsed := time.Since(start)
		require.Equal(t, protectionCustomers, counts.Created)

		f := testrig.FiguresOf(dvs, dv, "provider-account-sync", protectionCustomers, elapsed)
		f.Bulk = true
		// The floor: the sync's 7 reads (providers, its rows, templates, the template's agreements, 1 page
		// of accounts, 1 of contacts, the mapped rows) and its writes in requests of 1,000 operations, the
		// most a $batch (or a bulk message) may carry: 20,000 rows, 1,000 agreements of the mapped rows,
		// 19,000 notice marks of the unmapped ones = 20 + 1 + 19.
		f.Floor = float64(7+20+1+19) / protectionCustomers
		f.FloorWhy = "7 reads + writes in requests of 1,000 rows (a $batch's maximum, and the client's bulk message size); the sync writes chunks of 200 (DATAVERSE_BATCH_SIZE), each one bulk message"
		f.Print(os.Stdout)
	})
}
