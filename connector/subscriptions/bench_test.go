package subscriptions

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// The workload of BenchmarkSubscriptionSync: customers with 4 subscriptions each (one an add-on), every
// customer a mapped provider account.
const (
	subBenchPerCustomer = 4
	subBenchDVLatency   = 2 * time.Millisecond
	subBenchPCLatency   = 50 * time.Millisecond
	subBenchChildEnv    = "CONNECTOR_SUBSCRIPTION_BENCH_CUSTOMERS"
)

// The benchmark's goals: a sync's time at least subBenchGoal of the ceiling the limits and the workers
// allow, and the peak heap the sync adds growing by less than subBenchHeapGrowth from 5,000 to 20,000
// subscriptions.
const (
	subBenchGoal       = 0.8
	subBenchHeapGrowth = 1 << 20
)

// subBenchPeak is the peak heap a sync of each size added, for the growth between them.
var subBenchPeak = map[int]uint64{}

// BenchmarkSubscriptionSync runs a first sync and two unchanged re-syncs of 5,000 and 20,000 subscriptions
// against both simulators in a child process, over loopback HTTP with latency. It fails if Partner Center
// requests are not one per customer listing or any is answered 429, if Dataverse reads or writes are
// more than the minimum (a $batch per 200 rows), if a re-sync writes anything, if a sync takes longer
// than the ceiling ÷ 0.8, or if the peak heap grows by 1 MiB or more from 5,000 to 20,000.
//
// The ceiling: every customer costs one listing of Partner Center's latency and Workers run at once, so
// no sync can list faster than Workers ÷ latency customers a second. The rate limits do not lower it:
// Partner Center's is 500 requests a minute per customer tenant (one listing each here) and no
// partner-wide limit on subscription reads is published; Dataverse's is 6,000 requests per 5 minutes,
// far above the reads and $batches counted here. The heap is measured with GOGC at 5 (first sync and
// first re-sync); the time of the second re-sync, at the default GOGC.
//
//	go test -run XXX -bench BenchmarkSubscriptionSync -benchtime 1x ./connector/subscriptions/
func BenchmarkSubscriptionSync(b *testing.B) {
	for _, subs := range []int{5000, 20000} {
		b.Run(fmt.Sprintf("subscriptions=%d", subs), func(b *testing.B) {
			for range b.N {
				benchSubscriptionSync(b, subs/subBenchPerCustomer)
			}
		})
	}
}

// TestSubscriptionBenchSimulators is the child process of BenchmarkSubscriptionSync.
func TestSubscriptionBenchSimulators(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(subBenchChildEnv))
	if err != nil {
		t.Skip("the simulators of BenchmarkSubscriptionSync: run by the benchmark")
	}
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	defer dvs.Close()
	pcs, err := partnercentertest.NewServer(partnercentertest.Options{AuthOptional: true})
	require.NoError(t, err)
	defer pcs.Close()
	provider, err := dvs.Insert(schema.TableProvider, map[string]any{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic)})
	require.NoError(t, err)
	account, err := dvs.Insert(schema.TableAccount, map[string]any{"name": "Accounts"})
	require.NoError(t, err)
	// Bought a month ago: a partner's existing subscriptions (a new one of the last hour costs a read, in
	// case a purchase of ours made it).
	bought := time.Now().AddDate(0, -1, 0)
	for i := range n {
		tenant := uuid.NewString()
		require.NoError(t, pcs.AddCustomer(partnercentertest.Customer{TenantID: tenant, CompanyName: fmt.Sprintf("Customer %05d", i), Domain: fmt.Sprintf("customer%05d.example", i)}))
		parent := uuid.NewString()
		require.NoError(t, pcs.AddSubscription(tenant, partnercentertest.Subscription{ID: parent, OfferID: offerE3, Quantity: 10, AutoRenew: true, CreatedOn: bought}))
		require.NoError(t, pcs.AddSubscription(tenant, partnercentertest.Subscription{ID: uuid.NewString(), OfferID: offerAddOnID, ParentSubscriptionID: parent, Quantity: 10, CreatedOn: bought}))
		for range subBenchPerCustomer - 2 {
			require.NoError(t, pcs.AddSubscription(tenant, partnercentertest.Subscription{ID: uuid.NewString(), OfferID: offerBasic, Quantity: 5, CreatedOn: bought}))
		}
		_, err := dvs.Insert(schema.TableProviderAccount, map[string]any{"csp_name": fmt.Sprintf("Customer %05d", i), "csp_tenantid": tenant,
			"csp_provider@odata.bind": "/csp_providers(" + provider + ")", "csp_account@odata.bind": "/accounts(" + account + ")"})
		require.NoError(t, err)
	}
	dvs.SetLatency(subBenchDVLatency)
	pcs.SetLatency(subBenchPCLatency)
	fmt.Printf("READY %s %s\n", dvs.URL, pcs.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func benchSubscriptionSync(b *testing.B, customers int) {
	b.StopTimer()
	dvURL, pcURL, stop := testrig.StartSimulatorChild(b, "TestSubscriptionBenchSimulators", fmt.Sprintf("%s=%d", subBenchChildEnv, customers))
	defer stop()

	dvCount := &testrig.RequestCounter{Next: http.DefaultTransport}
	pcCount := &testrig.RequestCounter{Next: http.DefaultTransport}
	dv, err := dataverse.NewClient(dvURL, nil, &dataverse.ClientOptions{HTTPClient: &http.Client{Transport: dvCount}, Tables: schema.Schema().Tables})
	require.NoError(b, err)
	pc, err := partnercenter.NewClient(pcURL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: &http.Client{Transport: pcCount}})
	require.NoError(b, err)
	w := New(dv, pc, nil)
	subs := customers * subBenchPerCustomer
	ceil := func(a, b int) int { return (a + b - 1) / b }
	groups := ceil(customers, w.groupSize)
	measure := func(gcPercent int) (SyncResult, subMeasure) {
		dvCount.Reset()
		pcCount.Reset()
		var res SyncResult
		m := measureHeap(b, gcPercent, func() {
			var err error
			res, err = w.Sync(b.Context(), SyncOptions{})
			require.NoError(b, err)
		})
		m.dvReads, m.dvBatches, m.dvOther = int(dvCount.Reads.Load()), int(dvCount.Batches.Load()+dvCount.Bulk.Load()), int(dvCount.Rest.Load())
		m.dvCounted = int(dvCount.Requests())
		m.pcRequests, m.pc429 = int(pcCount.Reads.Load()+pcCount.Rest.Load()), int(pcCount.Status429.Load())
		return res, m
	}
	first, fm := measure(5)
	require.Equal(b, subs, first.Created)
	require.Equal(b, customers, fm.pcRequests, "Partner Center requests = one listing (page) per customer")
	require.Zero(b, fm.pc429)
	// Reads: the provider accounts (pages of 500), the rows of each group; once per client, which bulk
	// messages csp_subscription takes: the messages' ids and its filters.
	minReads := max(1, ceil(customers, 500)) + groups + 2
	require.Equal(b, minReads, fm.dvReads, "Dataverse reads")
	// Writes: a CreateMultiple per 200 rows; only the last one short.
	require.Equal(b, ceil(subs, w.batchSize), fm.dvBatches, "Dataverse bulk messages")
	require.Equal(b, minReads+ceil(subs, w.batchSize), fm.dvCounted, "Dataverse requests as service protection counts them")
	require.Zero(b, fm.dvOther)

	second, sm := measure(5)
	require.Equal(b, subs, second.Unchanged)
	require.Zero(b, sm.dvBatches+sm.dvOther, "an unchanged re-sync writes nothing")
	require.Equal(b, customers, sm.pcRequests)
	require.Zero(b, sm.pc429)

	third, tm := measure(100)
	require.Equal(b, subs, third.Unchanged)
	require.Zero(b, tm.dvBatches+tm.dvOther)
	ceiling := time.Duration(ceil(customers, w.workers)) * subBenchPCLatency
	ofCeiling := ceiling.Seconds() / tm.wall.Seconds()
	firstOfCeiling := ceiling.Seconds() / fm.wall.Seconds()

	b.ReportMetric(float64(fm.pcRequests), "pc-req")
	b.ReportMetric(float64(fm.pc429), "pc-429")
	b.ReportMetric(float64(fm.dvReads), "first-dv-reads")
	b.ReportMetric(float64(fm.dvBatches), "first-dv-batches")
	b.ReportMetric(float64(fm.dvCounted), "first-dv-counted")
	b.ReportMetric(fm.wall.Seconds(), "first-s")
	b.ReportMetric(float64(fm.peakHeap)/(1<<20), "first-peak-MiB")
	b.ReportMetric(float64(sm.dvBatches+sm.dvOther), "resync-dv-writes")
	b.ReportMetric(sm.wall.Seconds(), "resync-s")
	b.ReportMetric(float64(sm.peakHeap)/(1<<20), "resync-peak-MiB")
	b.ReportMetric(tm.wall.Seconds(), "timed-resync-s")
	b.ReportMetric(ceiling.Seconds(), "ceiling-s")
	b.ReportMetric(100*ofCeiling, "%-of-ceiling")
	b.Logf("%d subscriptions of %d customers, %d workers, Partner Center latency %s (ceiling %s): first sync %s (%.0f%% of the ceiling): %d PC requests (%d 429), %d DV reads (min %d), %d DV batches (min %d), peak heap +%.2f MiB; re-sync %s: %d PC requests, %d DV writes, peak heap +%.2f MiB; timed re-sync %s (%.0f%% of the ceiling)",
		subs, customers, w.workers, subBenchPCLatency, ceiling, fm.wall.Round(time.Millisecond), 100*firstOfCeiling, fm.pcRequests, fm.pc429, fm.dvReads, minReads, fm.dvBatches, ceil(subs, w.batchSize), float64(fm.peakHeap)/(1<<20),
		sm.wall.Round(time.Millisecond), sm.pcRequests, sm.dvBatches+sm.dvOther, float64(sm.peakHeap)/(1<<20), tm.wall.Round(time.Millisecond), 100*ofCeiling)
	assert.GreaterOrEqual(b, ofCeiling, subBenchGoal, "the re-sync's time against the ceiling")
	subBenchPeak[subs] = max(fm.peakHeap, sm.peakHeap)
	if small, ok := subBenchPeak[5000]; ok && subs == 20000 {
		growth := int64(subBenchPeak[20000]) - int64(small)
		b.ReportMetric(float64(growth)/(1<<20), "heap-growth-MiB")
		b.Logf("peak heap growth from 5,000 to 20,000 subscriptions: %+.2f MiB (goal: under %.0f MiB)", float64(growth)/(1<<20), float64(subBenchHeapGrowth)/(1<<20))
		assert.Less(b, growth, int64(subBenchHeapGrowth), "the peak heap grows with the subscriptions")
	}
}

type subMeasure struct {
	wall                                           time.Duration
	pcRequests, pc429, dvReads, dvBatches, dvOther int
	dvCounted                                      int
	peakHeap                                       uint64
}

// measureHeap times run and samples the live heap while it runs, with GOGC at gcPercent: lowered (5) so
// that garbage waiting for collection does not pass for live data, or the default (100) for the time.
func measureHeap(b *testing.B, gcPercent int, run func()) subMeasure {
	wall, peak := testrig.MeasureHeap(b, gcPercent, run)
	return subMeasure{wall: wall, peakHeap: peak}
}
