package provideraccounts

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// The workload of BenchmarkProviderAccountSync: n Partner Center customers, of which one in ten (up to
// 1,000) has an account with its domain as website (they map automatically and get a Pending agreement);
// 2,000 accounts with two contacts each; one active agreement template.
const (
	syncBenchAccounts    = 2000
	syncBenchMatchEvery  = 10
	syncBenchDVLatency   = 20 * time.Millisecond
	syncBenchPCLatency   = 100 * time.Millisecond
	syncBenchPCPageSize  = partnercenter.DefaultPageSize // 500, Partner Center's largest page
	syncBenchDVReadPage  = 5000                          // the sync's page size for bulk reads (Dataverse's maximum)
	syncBenchDVBatchSize = dataverse.DefaultBatchSize    // 200 operations per $batch
	syncBenchChildEnv    = "CONNECTOR_SYNC_BENCH_CUSTOMERS"
)

// BenchmarkProviderAccountSync runs a first sync of n customers and then a second one with nothing
// changed, against both simulators over loopback HTTP with latency injected into every request. The
// simulators run in a child process (this test binary, see TestSyncBenchSimulators), so the heap measured
// here is the connector's alone. It reports requests against the minimum the design needs, wall time and
// the peak heap the sync adds; it fails if the unchanged re-sync writes anything or if a sync makes more
// requests than the minimum.
//
//	go test -run XXX -bench BenchmarkProviderAccountSync -benchtime 1x ./connector/
func BenchmarkProviderAccountSync(b *testing.B) {
	for _, n := range []int{5000, 20000} {
		b.Run(fmt.Sprintf("customers=%d", n), func(b *testing.B) {
			for range b.N {
				benchSync(b, n)
			}
		})
	}
}

// TestSyncBenchSimulators is the child process of BenchmarkProviderAccountSync: it runs and seeds both
// simulators, prints their URLs and serves until its stdin closes. Without the variable it does nothing.
func TestSyncBenchSimulators(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(syncBenchChildEnv))
	if err != nil {
		t.Skip("the simulators of BenchmarkProviderAccountSync: run by the benchmark")
	}
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	defer dvs.Close()
	pcs, err := partnercentertest.NewServer(partnercentertest.Options{AuthOptional: true, DisableRateLimit: true})
	require.NoError(t, err)
	defer pcs.Close()
	seedSyncBench(t, dvs, pcs, n)
	dvs.SetLatency(syncBenchDVLatency)
	pcs.SetLatency(syncBenchPCLatency)
	fmt.Printf("READY %s %s\n", dvs.URL, pcs.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func benchSync(b *testing.B, n int) {
	b.StopTimer()
	dvURL, pcURL, stop := testrig.StartSimulatorChild(b, "TestSyncBenchSimulators", fmt.Sprintf("%s=%d", syncBenchChildEnv, n))
	defer stop()

	dvCount := &testrig.RequestCounter{Next: http.DefaultTransport}
	pcCount := &testrig.RequestCounter{Next: http.DefaultTransport}
	dv, err := dataverse.NewClient(dvURL, nil, &dataverse.ClientOptions{HTTPClient: &http.Client{Transport: dvCount}, Tables: schema.Schema().Tables})
	require.NoError(b, err)
	pc, err := partnercenter.NewClient(pcURL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: &http.Client{Transport: pcCount}, PageSize: syncBenchPCPageSize})
	require.NoError(b, err)
	var notices atomic.Int64
	p := New(dv, pc, &Options{BatchSize: syncBenchDVBatchSize, Publish: func(notify.Notification) bool { notices.Add(1); return true }})

	ceil := func(a, b int) int { return (a + b - 1) / b }
	mapped := min(ceil(n, syncBenchMatchEvery), syncBenchAccounts/2)
	pcPages := ceil(n, syncBenchPCPageSize)
	// The reads the design needs: the providers; the provider's rows (pages of 5,000; one empty page when
	// there are none); its templates; for matching, the accounts, the contacts and the mapped provider
	// accounts (pages of 5,000).
	accountReads := ceil(syncBenchAccounts, syncBenchDVReadPage) + ceil(2*syncBenchAccounts, syncBenchDVReadPage)
	// The first sync also reads, once per client, which tables take bulk messages: the messages' ids and
	// the sdkmessagefilters of the two tables it writes.
	minFirstReads := 1 + 1 + 1 + 1 + accountReads + 1 + 3 // providers, rows, templates, the template's agreements, matching, bulk support
	// Writes, a bulk message per 200 and no $batch: the rows (CreateMultiple), the agreements of the
	// mapped ones (CreateMultiple), and the mark that the notice of each row that needs a person is in
	// the outbox (UpdateMultiple). Before bulk messages they were as many $batches: the same number of
	// requests for service protection, but Dataverse runs a bulk message's rows as one operation, so it
	// costs less execution time (Microsoft: "use bulk operation APIs when you can").
	minFirstBulk := ceil(n, syncBenchDVBatchSize) + ceil(mapped, syncBenchDVBatchSize) + ceil(n-mapped, syncBenchDVBatchSize)
	minFirstBatches := 0
	minFirstCounted := minFirstReads + minFirstBulk // what service protection counts
	minSecondReads := 1 + ceil(n, syncBenchDVReadPage) + 1 + ceil(mapped, syncBenchDVReadPage) + accountReads + ceil(mapped, syncBenchDVReadPage)

	measure := func() (SyncCounts, syncMeasure) {
		dvCount.Reset()
		pcCount.Reset()
		var c SyncCounts
		m := measureHeap(b, func() {
			var err error
			c, err = p.Sync(b.Context())
			require.NoError(b, err)
		})
		m.dvReads, m.dvBatches, m.dvOther, m.pcRequests = int(dvCount.Reads.Load()), int(dvCount.Batches.Load()), int(dvCount.Rest.Load()), int(pcCount.Reads.Load()+pcCount.Rest.Load())
		m.dvBulk, m.dvCounted = int(dvCount.Bulk.Load()), int(dvCount.Requests())
		return c, m
	}
	firstCounts, first := measure()
	require.Equal(b, n, firstCounts.Created)
	require.Equal(b, mapped, firstCounts.Mapped)
	require.Equal(b, mapped, firstCounts.Agreements)
	require.Equal(b, pcPages, first.pcRequests, "Partner Center requests = pages")
	require.Equal(b, minFirstReads, first.dvReads, "Dataverse reads")
	require.Equal(b, minFirstBatches, first.dvBatches, "Dataverse $batches")
	require.Equal(b, minFirstBulk, first.dvBulk, "Dataverse writes: a bulk message per 200 rows, per 200 agreements and per 200 notices recorded")
	require.Equal(b, minFirstCounted, first.dvCounted, "Dataverse requests as service protection counts them")
	require.Zero(b, first.dvOther)

	secondCounts, second := measure()
	require.Equal(b, n, secondCounts.Unchanged)
	require.Zero(b, second.dvBatches+second.dvBulk+second.dvOther, "an unchanged re-sync writes nothing")
	require.Equal(b, pcPages, second.pcRequests)
	require.Equal(b, minSecondReads, second.dvReads, "Dataverse reads")

	b.ReportMetric(float64(pcPages), "pc-pages")
	b.ReportMetric(float64(first.pcRequests), "first-pc-req")
	b.ReportMetric(float64(first.dvReads), "first-dv-reads")
	b.ReportMetric(float64(first.dvBatches), "first-dv-batches")
	b.ReportMetric(float64(first.dvBulk), "first-dv-bulk")
	b.ReportMetric(float64(first.dvCounted), "first-dv-counted")
	b.ReportMetric(first.wall.Seconds(), "first-s")
	b.ReportMetric(float64(first.peakHeap)/(1<<20), "first-peak-MiB")
	b.ReportMetric(float64(second.dvReads), "resync-dv-reads")
	b.ReportMetric(float64(second.dvBatches+second.dvBulk+second.dvOther), "resync-dv-writes")
	b.ReportMetric(second.wall.Seconds(), "resync-s")
	b.ReportMetric(float64(second.peakHeap)/(1<<20), "resync-peak-MiB")
	b.Logf("customers %d: first sync %s: %d PC requests (%d pages), %d DV reads (min %d), %d DV batches (min %d), %d DV bulk messages (min %d), %d DV requests as service protection counts them (min %d), peak heap +%.1f MiB; re-sync %s: %d PC requests, %d DV reads (min %d), %d writes, peak heap +%.1f MiB; %d notification(s)",
		n, first.wall.Round(time.Millisecond), first.pcRequests, pcPages, first.dvReads, minFirstReads, first.dvBatches, minFirstBatches, first.dvBulk, minFirstBulk, first.dvCounted, minFirstCounted, float64(first.peakHeap)/(1<<20),
		second.wall.Round(time.Millisecond), second.pcRequests, second.dvReads, minSecondReads, second.dvBatches+second.dvBulk+second.dvOther, float64(second.peakHeap)/(1<<20), notices.Load())
}

type syncMeasure struct {
	wall                                    time.Duration
	pcRequests, dvReads, dvBatches, dvOther int
	dvBulk, dvCounted                       int
	peakHeap                                uint64 // live heap above what it was before the sync
}

// measureHeap times run and samples the live heap while it runs, with GOGC lowered so that garbage waiting
// for collection does not pass for live data.
func measureHeap(b *testing.B, run func()) syncMeasure {
	wall, peak := testrig.MeasureHeap(b, 5, run)
	return syncMeasure{wall: wall, peakHeap: peak}
}

// seedSyncBench adds the workload of BenchmarkProviderAccountSync for n customers to the simulators.
func seedSyncBench(t testing.TB, dvs *dataversetest.Server, pcs *partnercentertest.Server, n int) {
	t.Helper()
	provider, err := dvs.Insert(schema.TableProvider, map[string]any{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic), "csp_automatch": true})
	require.NoError(t, err)
	_, err = dvs.Insert(schema.TableAgreementTemplate, map[string]any{"csp_name": "Microsoft Customer Agreement",
		"csp_provider@odata.bind": "/csp_providers(" + provider + ")"})
	require.NoError(t, err)
	for i := range syncBenchAccounts {
		site := fmt.Sprintf("https://www.unrelated%05d.example", i)
		if i < syncBenchAccounts/2 && i*syncBenchMatchEvery < n {
			site = fmt.Sprintf("https://www.customer%05d.example", i*syncBenchMatchEvery)
		}
		id, err := dvs.Insert(schema.TableAccount, map[string]any{"name": fmt.Sprintf("Account %05d", i), "websiteurl": site})
		require.NoError(t, err)
		for c := range 2 {
			_, err := dvs.Insert(schema.TableContact, map[string]any{"lastname": fmt.Sprint(c), "emailaddress1": fmt.Sprintf("p%d@contact%05d.example", c, i),
				"parentcustomerid@odata.bind": "/accounts(" + id + ")"})
			require.NoError(t, err)
		}
	}
	for i := range n {
		require.NoError(t, pcs.AddCustomer(partnercentertest.Customer{TenantID: uuid.NewString(), CompanyName: fmt.Sprintf("Customer %05d", i),
			Domain: fmt.Sprintf("customer%05d.example", i)}))
	}
}
