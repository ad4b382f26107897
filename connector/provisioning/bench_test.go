package provisioning

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// The workload of BenchmarkProvisioning: 1,000 quantity changes over 200 subscriptions.
//
// Partner Center's rate limit is per customer tenant (500 requests a minute, on in the simulator here),
// so the subscriptions are spread over 50 customers, 4 each: 1,000 changes × 2 Partner Center calls over
// 50 tenants is 40 calls per tenant in a run, far under 500 a minute (and under the client's own token
// bucket, whose burst of 10 and 8 a second a tenant's ~1 call a second never reaches).
const (
	benchCustomers       = 50
	benchSubsPerCustomer = 4
	benchChangesPerSub   = 5
	benchSubscriptions   = benchCustomers * benchSubsPerCustomer
	benchChanges         = benchSubscriptions * benchChangesPerSub
	benchInitialSeats    = 10

	benchWorkers   = testrig.BenchWorkers
	benchDVLatency = testrig.BenchDVLatency
	benchPCLatency = testrig.BenchPCLatency
)

// The fewest calls the design needs for one quantity change, all on its critical path (each waits for the
// one before):
//
//	Dataverse round trips (3): read the LCL with its context expanded (its subscription, the
//	subscription's provider, provider account, parent and pending LCLs: one GET with $expand); the claim
//	(PATCH, If-Match); one change-set $batch writing Provisioned on the LCL and the new quantity on the
//	subscription row. A change woken by the one before it takes over what that one read and wrote
//	(handover) and skips the read: 2.
//	Dataverse operations (4, woken 3), each operation of a $batch counted: 1 + 1 + 2. Service protection
//	counts a $batch as one request, so it counts the round trips (BenchmarkServiceProtection).
//	Partner Center calls (2): GET the subscription (its current quantity and ETag), PATCH it.
//
// In the sweep, each subscription's first change is read and the four after it are woken: 200 × 3 + 800 ×
// 2 = 2,200 round trips for the 1,000 changes, 2.2 a change.
const (
	minDVRoundTrips      = 3
	minDVRequests        = 4
	minDVRoundTripsWoken = 2
	minDVRequestsWoken   = 3
	minPCCalls           = 2
)

// benchMinLCLLatency is the least time one change can take on average in the sweep: the latencies of its
// calls, in sequence (260 ms for a subscription's first change, 240 ms for a woken one).
const benchMinLCLLatency = (benchSubscriptions*(minDVRoundTrips*benchDVLatency+minPCCalls*benchPCLatency) +
	(benchChanges-benchSubscriptions)*(minDVRoundTripsWoken*benchDVLatency+minPCCalls*benchPCLatency)) / benchChanges

// benchCeiling is the most changes a second the runtime can provision: every worker busy all the time on
// changes that each take benchMinLCLLatency (8 / 244 ms ≈ 32.8 changes a second). Nothing else bounds it:
// the simulators serve concurrent requests in parallel, and the 200 subscriptions always have more
// changes ready than there are workers.
const benchCeiling = float64(benchWorkers) * float64(time.Second) / float64(benchMinLCLLatency)

// BenchmarkProvisioning provisions 1,000 quantity changes on the simulators with injected latency
// (Dataverse 20 ms, Partner Center 100 ms a call) through a real work queue with the runtime's 8 workers,
// and reports the calls per change and the throughput against the ceiling (benchCeiling). Two ways in:
//
//	sweep:  the provisioning sweep submits the first due change of each subscription; each success wakes
//	        the next. Its per-change counts must equal the design's minimum.
//	events: all 1,000 changes are submitted at once, as Dataverse events would be, each subscription's
//	        five together; later ones are held behind the earlier and woken when it is done.
//
// After each run it checks that every subscription's changes reached Partner Center in order.
func BenchmarkProvisioning(b *testing.B) {
	for _, scenario := range []string{"sweep", "events"} {
		b.Run(scenario, func(b *testing.B) {
			var total benchCounts
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				r := newBenchRig(b)
				b.StartTimer()
				c, took := r.run(b, scenario)
				b.StopTimer()
				r.verifyOrder(b)
				r.close()
				total.add(c)
				elapsed += took
				b.StartTimer()
			}
			n := float64(b.N * benchChanges)
			lclPerSec := n / elapsed.Seconds()
			dvRoundTrips, dvRequests, pcCalls := float64(total.dvRoundTrips)/n, float64(total.dvRequests)/n, float64(total.pcCalls)/n
			b.ReportMetric(lclPerSec, "lcl/s")
			b.ReportMetric(dvRoundTrips, "dv-roundtrips/lcl")
			b.ReportMetric(dvRequests, "dv-requests/lcl")
			b.ReportMetric(pcCalls, "pc-calls/lcl")
			b.ReportMetric(benchCeiling, "ceiling-lcl/s")
			b.ReportMetric(100*lclPerSec/benchCeiling, "pct-of-ceiling")
			b.ReportMetric(float64(total.sweepRoundTrips)/float64(b.N), "sweep-dv-roundtrips")
			b.ReportMetric(float64(total.held)/n, "holds/lcl")
			b.Logf("%s: %d change(s) in %s: %.1f/s (ceiling %.1f/s, %.0f%%); per change %.3f Dataverse round trips, %.3f Dataverse requests, %.3f Partner Center calls; %d hold(s); the sweep's own listing: %d round trip(s)",
				scenario, b.N*benchChanges, elapsed.Round(time.Millisecond), lclPerSec, benchCeiling, 100*lclPerSec/benchCeiling,
				dvRoundTrips, dvRequests, pcCalls, total.held, total.sweepRoundTrips)
			if scenario == "sweep" {
				// In order and with nothing held, each change costs exactly the design's minimum.
				want, heads := int64(b.N*benchChanges), int64(b.N*benchSubscriptions)
				roundTrips := minDVRoundTrips*heads + minDVRoundTripsWoken*(want-heads)
				requests := minDVRequests*heads + minDVRequestsWoken*(want-heads)
				if total.dvRoundTrips != roundTrips || total.dvRequests != requests || total.pcCalls != minPCCalls*want {
					b.Fatalf("sweep: %d Dataverse round trips, %d Dataverse requests, %d Partner Center calls for %d changes; the design's minimum is %d, %d and %d",
						total.dvRoundTrips, total.dvRequests, total.pcCalls, want, roundTrips, requests, minPCCalls*want)
				}
			}
		})
	}
}

// benchCounts are what one run cost. The per-change counts leave out the sweep's own listing of due
// changes (sweepRoundTrips): it is one query for all of them, not a cost of each.
type benchCounts struct {
	dvRoundTrips    int64 // HTTP requests to Dataverse (a $batch is one)
	dvRequests      int64 // API requests, each operation of a $batch counted
	pcCalls         int64
	sweepRoundTrips int64
	held            int64
}

func (c *benchCounts) add(o benchCounts) {
	c.dvRoundTrips += o.dvRoundTrips
	c.dvRequests += o.dvRequests
	c.pcCalls += o.pcCalls
	c.sweepRoundTrips += o.sweepRoundTrips
	c.held += o.held
}

// benchRig is a provisioner on both simulators with 50 customers, 200 subscriptions and their 1,000
// changes. Its clock is the real one: the claims, the provisioned-on times and Partner Center's rate
// window all follow the wall clock the latency is measured on.
type benchRig struct {
	DVS *dataversetest.Server
	PCS *partnercentertest.Server
	DV  *dataverse.Client
	PC  *partnercenter.Client
	// Subs are the subscriptions in the order they were created; each one's changes are in order.
	Subs []benchSub
	// Changes is the number of changes, benchChangesPerSub a subscription.
	Changes int
}

type benchSub struct {
	Row     dataverse.GUID
	PCID    string
	Tenant  string
	Changes []benchChange
}

type benchChange struct {
	ID     dataverse.GUID
	Target int
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(b, err)
	pcs, err := partnercentertest.NewServer(partnercentertest.Options{AuthOptional: true}) // Partner Center's rate limit on
	if err != nil {
		dvs.Close()
		require.NoError(b, err)
	}
	// Dataverse's service protection is off here, in the simulator and in the client: this benchmark
	// measures the workflow's own ceiling (BenchmarkServiceProtection measures it against the budget).
	return seedBenchRig(b, dvs, pcs, dvs.URL, -1, benchSubscriptions)
}

// seedBenchRig seeds the workload into the simulators, reached at dvURL (a loopback listener, or any URL
// for the in-memory client of a simulator that is not listening): subscriptions spread over
// benchCustomers customers, benchChangesPerSub changes each; budget is the Dataverse client's
// BudgetRequests (0: the default, -1: no pacing).
func seedBenchRig(b testing.TB, dvs *dataversetest.Server, pcs *partnercentertest.Server, dvURL string, budget, subscriptions int) *benchRig {
	b.Helper()
	ctx := b.Context()
	r := &benchRig{DVS: dvs, PCS: pcs, Changes: subscriptions * benchChangesPerSub}
	dv, err := dataverse.NewClient(dvURL, nil, &dataverse.ClientOptions{HTTPClient: testrig.Pooled(dvs.Client()), BudgetRequests: budget,
		Tables: schema.Schema().Tables}) // as connector.NewDataverseClient
	require.NoError(b, err)
	pc, err := partnercenter.NewClient(cmp.Or(pcs.URL, "http://partnercenter.test"), partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: testrig.Pooled(pcs.Client())})
	require.NoError(b, err)
	r.DV, r.PC = dv, pc

	provider, err := dv.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic),
		"csp_connectivitystatus": int(schema.ConnectivityConnected)})
	require.NoError(b, err)
	tenants := make([]string, benchCustomers)
	accounts := make([]dataverse.GUID, benchCustomers)
	for i := range benchCustomers {
		tenants[i] = uuid.NewString()
		name := fmt.Sprintf("Customer %02d", i+1)
		require.NoError(b, pcs.AddCustomer(partnercentertest.Customer{TenantID: tenants[i], CompanyName: name}))
		accounts[i], err = dv.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": name, "csp_tenantid": tenants[i],
			"csp_provider@odata.bind": "/csp_providers(" + provider.String() + ")"})
		require.NoError(b, err)
	}
	now := time.Now()
	bought := now.Add(-30 * 24 * time.Hour)
	// Effective dates: change k of subscription i is due at base + k hours + i seconds, all in the past. The
	// sweep submits the heads in that order, so consecutive heads belong to different customers (i mod 50).
	base := now.Add(-24 * time.Hour)
	const offer = "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS"
	for i := range subscriptions {
		c := i % benchCustomers
		s := benchSub{PCID: uuid.NewString(), Tenant: tenants[c]}
		require.NoError(b, pcs.AddSubscription(s.Tenant, partnercentertest.Subscription{ID: s.PCID, OfferID: offer, Quantity: benchInitialSeats,
			TermDuration: "P1Y", BillingCycle: "monthly", AutoRenew: true, CreatedOn: bought}))
		s.Row, err = dv.Create(ctx, schema.SetSubscriptions, dataverse.Row{"csp_name": fmt.Sprintf("Microsoft 365 Business Premium #%03d", i+1),
			"csp_pcsubscriptionid": s.PCID, "csp_quantity": benchInitialSeats, "csp_offerid": offer, "csp_termduration": "P1Y",
			"csp_billingcycle": "monthly", "csp_reductionbehavior": int(schema.ReductionAllowed), "csp_actualprovisionedon": bought.UTC(),
			"csp_provider@odata.bind": "/csp_providers(" + provider.String() + ")", "csp_provideraccount@odata.bind": "/csp_provideraccounts(" + accounts[c].String() + ")"})
		require.NoError(b, err)
		for k := range benchChangesPerSub {
			ch := benchChange{Target: benchInitialSeats + 2*(k+1)} // increasing: no reduction to refuse
			ch.ID, err = dv.Create(ctx, schema.SetLicenseChangeLogs, dataverse.Row{"csp_name": fmt.Sprintf("Seats #%03d.%d", i+1, k+1),
				"csp_changetype": int(schema.ChangeQuantity), "csp_quantity": ch.Target, "csp_provisioningstatus": int(schema.ProvisioningAwaiting),
				"csp_changesource": int(schema.SourceDynamics), "csp_effectivedate": base.Add(time.Duration(k)*time.Hour + time.Duration(i)*time.Second).UTC(),
				"csp_subscription@odata.bind": "/csp_subscriptions(" + s.Row.String() + ")"})
			require.NoError(b, err)
			s.Changes = append(s.Changes, ch)
		}
		r.Subs = append(r.Subs, s)
	}
	dvs.SetLatency(benchDVLatency)
	pcs.SetLatency(benchPCLatency)
	dvs.ResetRequests()
	pcs.ResetRequests()
	return r
}

func (r *benchRig) close() {
	r.DVS.Close()
	r.PCS.Close()
}

// run provisions every change through a work queue of benchWorkers workers, the way the service wires it,
// and returns what it cost and how long it took. The outcomes are counted in the handler, so waiting adds
// no request to the counts.
func (r *benchRig) run(b testing.TB, scenario string) (benchCounts, time.Duration) {
	b.Helper()
	var (
		mu          sync.Mutex
		provisioned = map[dataverse.GUID]int{}
		held        int64
		failures    []string
		done        = make(chan struct{})
	)
	var q *work.Queue
	// As Service.submitAll: the submissions must not hold up the worker that wakes them.
	p := New(r.DV, r.PC, &Options{Wake: func(ctx context.Context, ids []dataverse.GUID) {
		ctx = context.WithoutCancel(ctx)
		go func() {
			for _, id := range ids {
				if err := q.Submit(ctx, work.Item{Key: work.Key{Table: schema.TableLicenseChangeLog, ID: id}, Source: work.SourceSweep}); err != nil {
					return
				}
			}
		}()
	}})
	// p.Handle, counting what each run did.
	handle := func(ctx context.Context, w work.Batch) error {
		if w.Bulk() { // as work.Dispatcher: the sweep's wake-ups are bulk work, events interactive
			ctx = dataverse.WithPriority(ctx, dataverse.Bulk)
		}
		out, err := p.Provision(ctx, w.Key.ID)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("%s: %v", w.Key.ID, err))
		case out.Decision.Verdict == mapping.Proceed && out.Changed != "":
			provisioned[w.Key.ID]++
			if len(provisioned) == r.Changes && provisioned[w.Key.ID] == 1 {
				close(done)
			}
		case out.Decision.Verdict == mapping.Hold:
			held++
		case out.Decision.Verdict != mapping.Skip:
			failures = append(failures, fmt.Sprintf("%s: %s: %s", w.Key.ID, out.Decision.Verdict, out.Decision.Message))
		}
		return err
	}
	q = work.NewQueue(handle, work.Options{Workers: benchWorkers})
	ctx, cancel := context.WithCancel(context.WithoutCancel(b.Context()))
	stopped := make(chan struct{})
	go func() { q.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	start := time.Now()
	switch scenario {
	case "sweep":
		n, err := p.Sweep(dataverse.WithPriority(ctx, dataverse.Bulk)) // as the job runner runs it
		require.NoError(b, err)
		require.Equal(b, len(r.Subs), n, "the sweep submits the first change of each subscription")
	case "events":
		for _, s := range r.Subs {
			for _, ch := range s.Changes {
				require.NoError(b, q.Submit(ctx, work.Item{Key: work.Key{Table: schema.TableLicenseChangeLog, ID: ch.ID}, Source: work.SourceServiceBus}))
			}
		}
	default:
		b.Fatalf("unknown scenario %q", scenario)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("%s: only %d of %d changes provisioned after 30 minutes (%d hold(s), %d failure(s): %v)", scenario, len(provisioned), r.Changes, held, len(failures), failures)
	}
	took := time.Since(start)
	cancel()
	<-stopped // every handler has returned: the request logs are complete

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		b.Fatalf("%s: %d run(s) failed: %v", scenario, len(failures), failures)
	}
	for id, n := range provisioned {
		if n != 1 {
			b.Fatalf("%s: change %s provisioned %d times", scenario, id, n)
		}
	}
	c := benchCounts{held: held}
	for _, req := range r.DVS.Requests() {
		switch {
		case req.InBatch:
		case req.Method == http.MethodGet && req.Path == schema.SetLicenseChangeLogs: // the sweep's listing
			c.sweepRoundTrips++
		case req.Path == "$batch":
			c.dvRoundTrips++
			c.dvRequests += int64(req.Operations)
		default:
			c.dvRoundTrips++
			c.dvRequests++
		}
	}
	for _, req := range r.PCS.Requests() {
		if req.Status == http.StatusTooManyRequests {
			b.Fatalf("%s: Partner Center throttled %s %s (tenant %s): the workload should stay under 500 requests a minute per tenant", scenario, req.Method, req.Path, req.Tenant)
		}
		c.pcCalls++
	}
	return c, took
}

// verifyOrder checks that each subscription's changes reached Partner Center in order: its final quantity
// is the last change's, Partner Center got one PATCH per change, every change was claimed once and says
// "Seats X → Y" with X the target of the change before it (the quantity Partner Center had when it was
// made), and the changes were provisioned in order.
func (r *benchRig) verifyOrder(b testing.TB) {
	b.Helper()
	rows := map[dataverse.GUID]schema.LicenseChangeLog{}
	for row, err := range r.DV.List(b.Context(), schema.SetLicenseChangeLogs, &dataverse.Query{Select: dataverse.Columns[schema.LicenseChangeLog](), PageSize: 5000}) {
		require.NoError(b, err)
		var l schema.LicenseChangeLog
		require.NoError(b, dataverse.Unmarshal(row, &l))
		rows[l.ID] = l
	}
	patches := map[string]int{}
	for _, req := range r.PCS.Requests() {
		if req.Method == http.MethodPatch {
			patches[strings.ToLower(req.Path[strings.LastIndex(req.Path, "/")+1:])]++
		}
	}
	subs := map[dataverse.GUID]schema.Subscription{}
	for row, err := range r.DV.List(b.Context(), schema.SetSubscriptions, &dataverse.Query{Select: dataverse.Columns[schema.Subscription](), PageSize: 5000}) {
		require.NoError(b, err)
		var s schema.Subscription
		require.NoError(b, dataverse.Unmarshal(row, &s))
		subs[s.ID] = s
	}
	for _, s := range r.Subs {
		last := s.Changes[len(s.Changes)-1].Target
		pc, ok := r.PCS.Subscription(s.Tenant, s.PCID)
		if !ok || pc.Quantity != last {
			b.Fatalf("subscription %s: Partner Center has %d seats, want %d (its last change's)", s.PCID, pc.Quantity, last)
		}
		if got := subs[s.Row].Quantity; got != last {
			b.Fatalf("subscription %s: the Dataverse row has %d seats, want %d", s.PCID, got, last)
		}
		if got := patches[strings.ToLower(s.PCID)]; got != len(s.Changes) {
			b.Fatalf("subscription %s: Partner Center got %d PATCH(es), want %d (one per change)", s.PCID, got, len(s.Changes))
		}
		before, prev := benchInitialSeats, time.Time{}
		for k, ch := range s.Changes {
			l, ok := rows[ch.ID]
			switch want := fmt.Sprintf("Seats %d → %d in Partner Center.", before, ch.Target); {
			case !ok:
				b.Fatalf("subscription %s, change %d: the row is gone", s.PCID, k+1)
			case l.ProvisioningStatus != schema.ProvisioningProvisioned:
				b.Fatalf("subscription %s, change %d: %s, want Provisioned (%s)", s.PCID, k+1, mapping.ProvisioningLabel(l.ProvisioningStatus), l.ProvisioningMessage)
			case l.ProvisioningMessage != want:
				b.Fatalf("subscription %s, change %d: message %q, want %q: the changes reached Partner Center out of order", s.PCID, k+1, l.ProvisioningMessage, want)
			case l.Attempts != 1:
				b.Fatalf("subscription %s, change %d: claimed %d times, want once", s.PCID, k+1, l.Attempts)
			case l.ProvisionedOn.Before(prev):
				b.Fatalf("subscription %s, change %d: provisioned %s, before the change ahead of it (%s)", s.PCID, k+1, l.ProvisionedOn, prev)
			}
			before, prev = ch.Target, l.ProvisionedOn
		}
	}
	if len(rows) != r.Changes {
		b.Fatalf("%d change rows, want %d", len(rows), r.Changes)
	}
}
