package agreements

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// The workload of BenchmarkAttestationCheck: 5,000 agreements waiting on the customer, one per customer,
// all Pending and active, all of the one MCA template of one connected Automatic provider. The kinds repeat
// in blocks of 50 rows, so each is spread evenly through the job's listing, as rows made over months are:
//
//	not started, nothing accepted     39 a block   3,900 rows
//	not started, accepted directly     5             500   (in the Microsoft 365 admin center)
//	not started, MCA recorded          1             100   (a partner attestation made in Partner Center)
//	link sent, still pending           4             400
//	link sent, accepted by customer    1             100
//
// Every row's message is what the previous hourly check wrote, so a row on which nothing changed costs no
// write: most rows of a real run are like that.
const (
	agBenchBlock          = 50
	agBenchNothingPer     = 39
	agBenchDirectPer      = 5
	agBenchRecordedPer    = 1
	agBenchPendingLinkPer = 4
	agBenchAcceptedPer    = 1
	agBenchBlocks         = 100
	agBenchRows           = agBenchBlock * agBenchBlocks
)

// The fewest calls each kind needs (Agreements.check and applyCheck). Every row first costs load's one
// Dataverse request: GET the row with its provider account and its template expanded ($expand; the check
// never reads the provider row: only a link request does). Then, each call waiting for
// the one before:
//
//	nothing accepted   Partner Center 2: the customer's MCA agreements (none), the direct-sign status
//	                   (false). No write: the row already says so.
//	accepted directly  Partner Center 2: agreements (none), direct-sign status (true). 1 PATCH: Accepted
//	                   directly, Active.
//	MCA recorded       Partner Center 1: agreements (one dated after April 2023 settles it). 1 PATCH:
//	                   Attested through a partner attestation, Active.
//	link pending       Partner Center 2: the attestation (Pending), the direct-sign status (the customer may
//	                   have accepted in the admin center instead of through the link). No write.
//	link accepted      Partner Center 2: the attestation (Accepted), the create-agreement POST that
//	                   finalizes it. 1 PATCH: Attested through the link, Active.
const (
	agBenchLoadRoundTrips = 1
	agBenchLoadRequests   = 1

	agBenchNothingPC  = 2
	agBenchDirectPC   = 2
	agBenchRecordedPC = 1
	agBenchPendingPC  = 2
	agBenchAcceptedPC = 2

	agBenchWrites = (agBenchDirectPer + agBenchRecordedPer + agBenchAcceptedPer) * agBenchBlocks

	agBenchMinPCCalls = (agBenchNothingPer*agBenchNothingPC + agBenchDirectPer*agBenchDirectPC + agBenchRecordedPer*agBenchRecordedPC +
		agBenchPendingLinkPer*agBenchPendingPC + agBenchAcceptedPer*agBenchAcceptedPC) * agBenchBlocks
	agBenchMinDVRoundTrips = agBenchLoadRoundTrips*agBenchRows + agBenchWrites
	agBenchMinDVRequests   = agBenchLoadRequests*agBenchRows + agBenchWrites
)

// agBenchMinLatency is the least time the workload spends waiting on calls, summed over its rows (a row's
// calls are in sequence; the rows run in parallel up to the workers).
const agBenchMinLatency = agBenchMinDVRoundTrips*testrig.BenchDVLatency + agBenchMinPCCalls*testrig.BenchPCLatency

// Two things bound how many agreements a second the check can get through:
//
//   - the workers: all 8 busy all the time on rows that each take their minimum latency, 8 rows per
//     agBenchMinLatency/5,000 (≈ 221 ms) ≈ 36.2 a second;
//   - Partner Center's partner-level bucket: GET attestations/enhanced/{id} names no customer, so every
//     attestation read of every row shares one bucket of 500 a minute (the per-customer buckets are far
//     from full: a customer's row makes at most 2 calls). With one row in ten reading its attestation,
//     that allows 500 / 60 × 10 ≈ 83.3 rows a second (the client's own limiter keeps to 480 a minute
//     plus a burst of 10, about 80).
//
// The lesser binds: the workers, by two and a half to one. Dataverse's service protection limits are off in
// the simulator and the client, as in BenchmarkProvisioning; with them (6,000 requests per user per web
// server in 300 s, a $batch counting as one) 1.14 requests a row allow about 17.5 rows a second on a single
// web server: BenchmarkServiceProtection measures the check against them.
const (
	agBenchPartnerLimit  = 500 // a minute
	agBenchPartnerReads  = (agBenchPendingLinkPer + agBenchAcceptedPer) * agBenchBlocks
	agBenchWorkerCeiling = float64(testrig.BenchWorkers) * agBenchRows * float64(time.Second) / float64(agBenchMinLatency)
	// agBenchPartnerCeiling is the rows a second at which the attestation reads use the whole bucket.
	agBenchPartnerCeiling = float64(agBenchPartnerLimit) / 60 * agBenchRows / agBenchPartnerReads
	agBenchCeiling        = min(agBenchWorkerCeiling, agBenchPartnerCeiling)
)

// agBenchKind is which of the workload's kinds a row is.
type agBenchKind int

const (
	agNothing agBenchKind = iota
	agDirect
	agRecorded
	agPendingLink
	agAcceptedLink
	agBenchKinds
)

func (k agBenchKind) String() string {
	return [...]string{"nothing accepted", "accepted directly", "MCA recorded", "link pending", "link accepted"}[k]
}

// minPC is the kind's Partner Center calls; writes its PATCHes of the row.
func (k agBenchKind) minPC() int {
	return [...]int{agBenchNothingPC, agBenchDirectPC, agBenchRecordedPC, agBenchPendingPC, agBenchAcceptedPC}[k]
}

func (k agBenchKind) writes() int {
	return [...]int{0, 1, 1, 0, 1}[k]
}

// agBenchKindOf is the kind of the i-th row: its place in its block of 50.
func agBenchKindOf(i int) agBenchKind {
	switch j := i % agBenchBlock; {
	case j < agBenchNothingPer:
		return agNothing
	case j < agBenchNothingPer+agBenchDirectPer:
		return agDirect
	case j < agBenchNothingPer+agBenchDirectPer+agBenchRecordedPer:
		return agRecorded
	case j < agBenchNothingPer+agBenchDirectPer+agBenchRecordedPer+agBenchPendingLinkPer:
		return agPendingLink
	}
	return agAcceptedLink
}

// BenchmarkAttestationCheck runs the Attestation Check job over 5,000 waiting agreements on the
// simulators with injected latency (Dataverse 20 ms, Partner Center 100 ms a call) and Partner Center's
// per-tenant rate limit on: the job lists the waiting rows and wakes them into a real work queue with the
// runtime's 8 workers, as the service wires it. It reports the Partner Center calls and Dataverse round
// trips per agreement against the minimum and the throughput against the ceiling (agBenchCeiling), and
// fails on any 429, on any kind of row costing more than its minimum, or on a row that did not end where
// the check should put it.
//
//	go test -run XXX -bench BenchmarkAttestationCheck -benchtime 1x ./connector/
func BenchmarkAttestationCheck(b *testing.B) {
	var total agBenchCounts
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		r := newAgBenchRig(b)
		b.StartTimer()
		c, took := r.run(b)
		b.StopTimer()
		r.verify(b)
		r.close()
		total.add(c)
		elapsed += took
		b.StartTimer()
	}
	n := float64(b.N * agBenchRows)
	perSec := n / elapsed.Seconds()
	pcCalls, dvRoundTrips, dvRequests := float64(total.pcCalls)/n, float64(total.dvRoundTrips)/n, float64(total.dvRequests)/n
	partnerPerMin := float64(total.partnerCalls) / elapsed.Minutes()
	b.ReportMetric(perSec, "agreements/s")
	b.ReportMetric(agBenchCeiling, "ceiling-agreements/s")
	b.ReportMetric(100*perSec/agBenchCeiling, "pct-of-ceiling")
	b.ReportMetric(pcCalls, "pc-calls/agreement")
	b.ReportMetric(float64(agBenchMinPCCalls)/agBenchRows, "min-pc-calls/agreement")
	b.ReportMetric(dvRoundTrips, "dv-roundtrips/agreement")
	b.ReportMetric(float64(agBenchMinDVRoundTrips)/agBenchRows, "min-dv-roundtrips/agreement")
	b.ReportMetric(dvRequests, "dv-requests/agreement")
	b.ReportMetric(partnerPerMin, "partner-calls/min")
	b.ReportMetric(float64(total.throttled), "429s")
	b.ReportMetric(float64(total.listRoundTrips)/float64(b.N), "list-dv-roundtrips")
	binds := "the workers"
	if agBenchPartnerCeiling < agBenchWorkerCeiling {
		binds = "the partner-level bucket"
	}
	b.Logf("%d agreement(s) in %s: %.1f/s (ceiling %.1f/s, %.0f%%; workers allow %.1f/s, the partner-level bucket %.1f/s: %s bind); "+
		"per agreement %.3f Partner Center calls (minimum %.3f), %.3f Dataverse round trips (minimum %.3f), %.3f Dataverse requests (minimum %.3f); "+
		"attestation reads %.0f a minute of the partner bucket's %d; %d 429(s); the job's own listing: %d round trip(s)",
		b.N*agBenchRows, elapsed.Round(time.Millisecond), perSec, agBenchCeiling, 100*perSec/agBenchCeiling, agBenchWorkerCeiling, agBenchPartnerCeiling, binds,
		pcCalls, float64(agBenchMinPCCalls)/agBenchRows, dvRoundTrips, float64(agBenchMinDVRoundTrips)/agBenchRows, dvRequests, float64(agBenchMinDVRequests)/agBenchRows,
		partnerPerMin, agBenchPartnerLimit, total.throttled, total.listRoundTrips)
	want := int64(b.N)
	if total.pcCalls != agBenchMinPCCalls*want || total.dvRoundTrips != agBenchMinDVRoundTrips*want || total.dvRequests != agBenchMinDVRequests*want {
		b.Fatalf("%d Partner Center calls, %d Dataverse round trips, %d Dataverse requests; the minimum is %d, %d and %d",
			total.pcCalls, total.dvRoundTrips, total.dvRequests, agBenchMinPCCalls*want, agBenchMinDVRoundTrips*want, agBenchMinDVRequests*want)
	}
}

// agBenchCounts are what one run cost. The per-agreement counts leave out the job's listing of waiting rows
// (listRoundTrips): it is one query for all of them.
type agBenchCounts struct {
	pcCalls        int64
	partnerCalls   int64 // the calls in the partner-level bucket: the attestation reads
	throttled      int64
	dvRoundTrips   int64 // HTTP requests to Dataverse (a $batch is one)
	dvRequests     int64 // API requests, each operation of a $batch counted
	listRoundTrips int64
}

func (c *agBenchCounts) add(o agBenchCounts) {
	c.pcCalls += o.pcCalls
	c.partnerCalls += o.partnerCalls
	c.throttled += o.throttled
	c.dvRoundTrips += o.dvRoundTrips
	c.dvRequests += o.dvRequests
	c.listRoundTrips += o.listRoundTrips
}

// agBenchRig is the agreements workflow on both simulators with the workload's 5,000 customers and their
// agreements. Its clock is the real one: Partner Center's rate window follows the wall clock the latency is
// measured on.
type agBenchRig struct {
	DVS *dataversetest.Server
	PCS *partnercentertest.Server
	DV  *dataverse.Client
	PC  *partnercenter.Client
	// Rows are the agreements in the order they were created.
	Rows []agBenchRow

	byID          map[dataverse.GUID]int
	byTenant      map[string]int
	byAttestation map[string]int
	accepted      atomic.Int64 // AgreementAccepted notifications
}

// agBenchRow is one agreement as seeded: what the check should find and leave.
type agBenchRow struct {
	ID          dataverse.GUID
	Kind        agBenchKind
	Tenant      string
	Attestation string
	ETag        dataverse.ETag
	Message     string
	DateAgreed  time.Time // of the recorded MCA, or when the customer accepted the link
}

func newAgBenchRig(b *testing.B) *agBenchRig {
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
	return seedAgBenchRig(b, dvs, pcs, dvs.URL, -1, agBenchBlocks)
}

// seedAgBenchRig seeds the workload into the simulators, reached at dvURL (a loopback listener, or any
// URL for the in-memory client of a simulator that is not listening): blocks of agBenchBlock agreements;
// budget is the Dataverse client's BudgetRequests (0: the default, -1: no pacing).
func seedAgBenchRig(b testing.TB, dvs *dataversetest.Server, pcs *partnercentertest.Server, dvURL string, budget, blocks int) *agBenchRig {
	b.Helper()
	ctx := b.Context()
	var err error
	r := &agBenchRig{DVS: dvs, PCS: pcs, byID: map[dataverse.GUID]int{}, byTenant: map[string]int{}, byAttestation: map[string]int{}}
	r.DV, err = dataverse.NewClient(dvURL, nil, &dataverse.ClientOptions{HTTPClient: testrig.Pooled(dvs.Client()), BudgetRequests: budget,
		Tables: schema.Schema().Tables}) // as connector.NewDataverseClient
	require.NoError(b, err)
	pcURL := cmp.Or(pcs.URL, "http://partnercenter.test")
	r.PC, err = partnercenter.NewClient(pcURL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: testrig.Pooled(pcs.Client())})
	require.NoError(b, err)
	// Seeding creates 500 attestations and reads 400, all in the partner-level bucket: lift the limit (in
	// the simulator and in a client of its own) until the run, which gets a fresh window.
	pcs.SetRateLimit(partnercentertest.Limit{Requests: 1 << 30, Window: time.Minute})
	seed, err := partnercenter.NewClient(pcURL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: testrig.Pooled(pcs.Client()), TenantRequests: 1 << 30})
	require.NoError(b, err)

	provider, err := dvs.Insert(schema.TableProvider, map[string]any{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic),
		"csp_partnermodel": int(schema.PartnerDirectBill), "csp_connectivitystatus": int(schema.ConnectivityConnected)})
	require.NoError(b, err)
	template, err := dvs.Insert(schema.TableAgreementTemplate, map[string]any{"csp_name": "Microsoft Customer Agreement",
		"csp_templateid": partnercentertest.MCATemplateID, "csp_agreementtype": int(schema.AgreementMicrosoftCustomerAgreement),
		"csp_provider@odata.bind": "/" + schema.SetProviders + "(" + provider + ")"})
	require.NoError(b, err)

	now := time.Now()
	recordedOn := time.Date(2025, 6, 2, 9, 30, 0, 0, time.UTC)
	notFalse := false
	var nothingMessage string
	for i := range blocks * agBenchBlock {
		kind := agBenchKindOf(i)
		name := fmt.Sprintf("Customer %04d", i+1)
		domain := fmt.Sprintf("customer%04d.example", i+1)
		row := agBenchRow{Kind: kind, Tenant: uuid.NewString()}
		c := partnercentertest.Customer{TenantID: row.Tenant, CompanyName: name, Domain: domain, DirectSigned: kind == agDirect}
		signatory := schema.Agreement{SignatoryFirstName: "Ana", SignatoryLastName: "Bowman", SignatoryEmail: "ana.bowman@" + domain,
			SignatoryCompany: name, SignatoryCountry: "GB", SignatoryLanguage: "en-GB"}
		if kind == agRecorded {
			c.Agreements = []partnercentertest.Agreement{{FirstName: signatory.SignatoryFirstName, LastName: signatory.SignatoryLastName,
				Email: signatory.SignatoryEmail, DateAgreed: recordedOn}}
			row.DateAgreed = recordedOn
		}
		require.NoError(b, pcs.AddCustomer(c))
		if nothingMessage == "" {
			// What the previous check wrote on a row with nothing accepted, from Partner Center's own answers.
			ags, err := seed.Agreements(ctx, row.Tenant, partnercenter.MicrosoftCustomerAgreement)
			require.NoError(b, err)
			signed, err := seed.DirectSignedStatus(ctx, row.Tenant)
			require.NoError(b, err)
			out := mapping.DecideCheck(schema.Agreement{AttestationStatus: schema.AttestationNotStarted, State: schema.StateActive, Status: schema.AgreementPending},
				mapping.CheckInput{Agreements: ags, DirectSigned: &signed}, now)
			require.False(b, out.Active, "the first customer has nothing accepted")
			nothingMessage = out.Message
		}
		account, err := dvs.Insert(schema.TableAccount, map[string]any{"name": name})
		require.NoError(b, err)
		pa, err := dvs.Insert(schema.TableProviderAccount, map[string]any{"csp_name": name, "csp_companyname": name, "csp_tenantid": row.Tenant,
			"csp_provider@odata.bind": "/" + schema.SetProviders + "(" + provider + ")", "csp_account@odata.bind": "/" + schema.SetAccounts + "(" + account + ")"})
		require.NoError(b, err)
		values := map[string]any{"csp_name": name + " — MCA", "statuscode": schema.AgreementPending,
			"csp_attestationstatus": int(schema.AttestationNotStarted), "csp_attestationmessage": nothingMessage,
			"csp_provideraccount@odata.bind":   "/" + schema.SetProviderAccounts + "(" + pa + ")",
			"csp_account@odata.bind":           "/" + schema.SetAccounts + "(" + account + ")",
			"csp_agreementtemplate@odata.bind": "/" + schema.SetAgreementTemplates + "(" + template + ")"}
		if kind == agPendingLink || kind == agAcceptedLink {
			att, err := seed.CreateAttestation(ctx, partnercenter.AttestationRequest{CustomerTenantID: row.Tenant, Country: signatory.SignatoryCountry,
				Language: signatory.SignatoryLanguage, CompanyName: name, SignatoryFirstName: signatory.SignatoryFirstName,
				SignatoryLastName: signatory.SignatoryLastName, SignatoryEmail: signatory.SignatoryEmail})
			require.NoError(b, err)
			row.Attestation = att.ID
			a := signatory
			a.AttestationStatus, a.AttestationID, a.LinkExpiresOn = schema.AttestationLinkSent, att.ID, att.ExpiresAt
			msg := mapping.LinkSentMessage(a, att, "")
			if kind == agAcceptedLink {
				require.NoError(b, pcs.AcceptAttestation(att.ID))
				row.DateAgreed = time.Now()
			} else {
				// What the previous check wrote: the attestation as Partner Center answers its read.
				got, err := seed.GetAttestation(ctx, att.ID)
				require.NoError(b, err)
				out := mapping.DecideCheck(a, mapping.CheckInput{Attestation: &got, DirectSigned: &notFalse}, now)
				require.Equal(b, schema.AttestationLinkSent, out.Status, out.Message)
				msg = out.Message
			}
			values["csp_signatoryfirstname"], values["csp_signatorylastname"], values["csp_signatoryemail"] = a.SignatoryFirstName, a.SignatoryLastName, a.SignatoryEmail
			values["csp_signatorycompany"], values["csp_signatorycountry"], values["csp_signatorylanguage"] = a.SignatoryCompany, a.SignatoryCountry, a.SignatoryLanguage
			values["csp_attestationstatus"], values["csp_acceptancepath"] = int(schema.AttestationLinkSent), int(schema.AcceptanceLink)
			values["csp_attestationid"], values["csp_acceptanceurl"] = att.ID, partnercenter.AcceptanceURL(att.ID)
			values["csp_linkexpireson"], values["csp_attestationmessage"] = att.ExpiresAt.UTC().Format(time.RFC3339), msg
			r.byAttestation[strings.ToLower(att.ID)] = i
		}
		id, err := dvs.Insert(schema.TableAgreement, values)
		require.NoError(b, err)
		row.ID, err = dataverse.ParseGUID(id)
		require.NoError(b, err)
		r.byID[row.ID] = i
		r.byTenant[strings.ToLower(row.Tenant)] = i
		r.Rows = append(r.Rows, row)
	}
	// The rows as the check will read them: their ETags and messages, to tell a write from none.
	for id, a := range r.agreements(b) {
		i, ok := r.byID[id]
		require.True(b, ok, "agreement %s was not seeded", id)
		r.Rows[i].ETag, r.Rows[i].Message = a.ETag, a.AttestationMessage
	}
	pcs.SetRateLimit(partnercentertest.Limit{}) // Partner Center's 500 a minute, the window empty
	dvs.SetLatency(testrig.BenchDVLatency)
	pcs.SetLatency(testrig.BenchPCLatency)
	dvs.ResetRequests()
	pcs.ResetRequests()
	return r
}

// agreements reads every agreement row.
func (r *agBenchRig) agreements(b testing.TB) map[dataverse.GUID]schema.Agreement {
	b.Helper()
	rows := map[dataverse.GUID]schema.Agreement{}
	for raw, err := range r.DV.List(b.Context(), schema.SetAgreements, &dataverse.Query{Select: dataverse.Columns[schema.Agreement](), PageSize: 5000}) {
		require.NoError(b, err)
		var a schema.Agreement
		require.NoError(b, dataverse.Unmarshal(raw, &a))
		rows[a.ID] = a
	}
	return rows
}

// writes is the number of rows the check writes: the accepted ones.
func (r *agBenchRig) writes() int {
	return (agBenchDirectPer + agBenchRecordedPer + agBenchAcceptedPer) * len(r.Rows) / agBenchBlock
}

func (r *agBenchRig) close() {
	r.DVS.Close()
	r.PCS.Close()
}

// run runs the Attestation Check job once, its rows handled by a work queue of testrig.BenchWorkers workers the way
// the service wires it, and returns what it cost and how long it took until every row was handled. The
// rows are counted in the handler, so waiting adds no request to the counts.
func (r *agBenchRig) run(b testing.TB) (agBenchCounts, time.Duration) {
	b.Helper()
	var (
		mu       sync.Mutex
		handled  = map[dataverse.GUID]int{}
		failures []string
		done     = make(chan struct{})
	)
	var q *work.Queue
	// As Service.submitAll: the submissions must not hold up the job.
	wake := func(ctx context.Context, ids []dataverse.GUID) {
		ctx = context.WithoutCancel(ctx)
		go func() {
			for _, id := range ids {
				if err := q.Submit(ctx, work.Item{Key: work.Key{Table: schema.TableAgreement, ID: id}, Source: work.SourceSweep}); err != nil {
					return
				}
			}
		}()
	}
	g := New(r.DV, r.PC, &Options{Wake: wake,
		Publish: func(n notify.Notification) {
			if n.Type == notify.AgreementAccepted {
				r.accepted.Add(1)
			}
		}})
	// g.Handle, counting the rows it got through.
	handle := func(ctx context.Context, w work.Batch) error {
		if w.Bulk() { // as work.Dispatcher: the job's wake-ups are bulk work
			ctx = dataverse.WithPriority(ctx, dataverse.Bulk)
		}
		err := g.Handle(ctx, w)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", w.Key.ID, err))
			return err
		}
		handled[w.Key.ID]++
		if len(handled) == len(r.Rows) && handled[w.Key.ID] == 1 {
			close(done)
		}
		return nil
	}
	q = work.NewQueue(handle, work.Options{Workers: testrig.BenchWorkers})
	ctx, cancel := context.WithCancel(context.WithoutCancel(b.Context()))
	stopped := make(chan struct{})
	go func() { q.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	start := time.Now()
	counts, err := g.CheckJob(time.Hour).Run(dataverse.WithPriority(ctx, dataverse.Bulk)) // as the job runner runs it
	require.NoError(b, err)
	require.Equal(b, len(r.Rows), counts.Processed, "the job submits every waiting agreement")
	select {
	case <-done:
	case <-time.After(30 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("only %d of %d agreements checked after 30 minutes (%d failure(s): %v)", len(handled), len(r.Rows), len(failures), failures)
	}
	took := time.Since(start)
	cancel()
	<-stopped // every handler has returned: the request logs are complete

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		b.Fatalf("%d check(s) failed: %v", len(failures), failures)
	}
	for id, n := range handled {
		if n != 1 {
			b.Fatalf("agreement %s checked %d times", id, n)
		}
	}
	return r.count(b), took
}

// count reads the simulators' request logs: the totals, and each kind of row's Partner Center calls and
// writes against its minimum.
func (r *agBenchRig) count(b testing.TB) agBenchCounts {
	b.Helper()
	var c agBenchCounts
	var pcByKind, writesByKind, rowsByKind [agBenchKinds]int
	for _, row := range r.Rows {
		rowsByKind[row.Kind]++
	}
	for _, req := range r.DVS.Requests() {
		switch {
		case req.InBatch:
			continue
		case req.Status >= 400:
			b.Fatalf("Dataverse answered %s %s with %d", req.Method, req.Path, req.Status)
		case req.Method == http.MethodGet && req.Path == schema.SetAgreements: // the job's listing
			c.listRoundTrips++
			continue
		case req.Path == "$batch":
			c.dvRoundTrips++
			c.dvRequests += int64(req.Operations)
			continue
		}
		c.dvRoundTrips++
		c.dvRequests++
		if req.Method == http.MethodPatch && strings.HasPrefix(req.Path, schema.SetAgreements+"(") {
			id, err := dataverse.ParseGUID(strings.TrimSuffix(strings.TrimPrefix(req.Path, schema.SetAgreements+"("), ")"))
			require.NoError(b, err)
			i, ok := r.byID[id]
			require.True(b, ok, "a write of agreement %s, which was not seeded", id)
			writesByKind[r.Rows[i].Kind]++
		}
	}
	for _, req := range r.PCS.Requests() {
		c.pcCalls++
		if req.Status == http.StatusTooManyRequests {
			c.throttled++
			b.Fatalf("Partner Center throttled %s %s (bucket %s): the check should stay under 500 requests a minute per bucket", req.Method, req.Path, req.Tenant)
		}
		if req.Status >= 400 {
			b.Fatalf("Partner Center answered %s %s with %d", req.Method, req.Path, req.Status)
		}
		i, ok := r.byTenant[req.Tenant]
		if req.Tenant == "partner" {
			c.partnerCalls++
			i, ok = r.byAttestation[strings.ToLower(req.Path[strings.LastIndex(req.Path, "/")+1:])]
		}
		if !ok {
			b.Fatalf("Partner Center call %s %s belongs to no seeded row", req.Method, req.Path)
		}
		pcByKind[r.Rows[i].Kind]++
	}
	for k := range agBenchKinds {
		if pcByKind[k] != k.minPC()*rowsByKind[k] || writesByKind[k] != k.writes()*rowsByKind[k] {
			b.Fatalf("%s: %d row(s) cost %d Partner Center call(s) and %d write(s); the minimum is %d and %d",
				k, rowsByKind[k], pcByKind[k], writesByKind[k], k.minPC()*rowsByKind[k], k.writes()*rowsByKind[k])
		}
	}
	return c
}

// verify checks where each row ended: the accepted ones Active with how they were accepted, the rest still
// Pending and not written at all (same ETag, same message).
func (r *agBenchRig) verify(b testing.TB) {
	b.Helper()
	r.DVS.SetLatency(0)
	r.PCS.SetLatency(0)
	rows := r.agreements(b)
	if len(rows) != len(r.Rows) {
		b.Fatalf("%d agreement rows, want %d", len(rows), len(r.Rows))
	}
	for _, want := range r.Rows {
		a := rows[want.ID]
		active := a.Status == schema.StatusActive && !a.VerifiedOn.IsZero() && a.State == schema.StateActive
		unchanged := a.Status == schema.AgreementPending && a.ETag == want.ETag && a.AttestationMessage == want.Message
		var problem string
		switch want.Kind {
		case agNothing:
			if !unchanged || a.AttestationStatus != schema.AttestationNotStarted {
				problem = "want Not started, Pending, not written"
			}
		case agPendingLink:
			if !unchanged || a.AttestationStatus != schema.AttestationLinkSent || a.AttestationID != want.Attestation {
				problem = "want Link sent, Pending, not written"
			}
		case agDirect:
			if !active || a.AttestationStatus != schema.AttestationAcceptedDirectly || a.AcceptancePath != schema.AcceptanceAdminCenter || !a.DateAgreed.IsZero() {
				problem = "want Accepted directly, Active, through the admin center, no Date agreed"
			}
		case agRecorded:
			if !active || a.AttestationStatus != schema.AttestationAttested || a.AcceptancePath != schema.AcceptancePartnerAttestation || !a.DateAgreed.Equal(want.DateAgreed) {
				problem = fmt.Sprintf("want Attested, Active, through a partner attestation, agreed %s", want.DateAgreed)
			}
		case agAcceptedLink:
			if !active || a.AttestationStatus != schema.AttestationAttested || a.AcceptancePath != schema.AcceptanceLink || a.DateAgreed.Sub(want.DateAgreed).Abs() > time.Second {
				problem = fmt.Sprintf("want Attested, Active, through the link, agreed %s", want.DateAgreed)
			}
		}
		if problem != "" {
			b.Fatalf("agreement %s (%s): %s; it is %s, status %d, path %s, agreed %s (%s)", want.ID, want.Kind, problem,
				schema.OptionLabel(schema.TableAgreement, "csp_attestationstatus", int(a.AttestationStatus)), a.Status, schema.OptionLabel(schema.TableAgreement, "csp_acceptancepath", int(a.AcceptancePath)),
				mapping.FormatTime(a.DateAgreed), a.AttestationMessage)
		}
	}
	finalized := 0
	for _, req := range r.PCS.Requests() {
		if req.Method == http.MethodPost && req.Status == http.StatusCreated {
			finalized++
		}
	}
	if wantFinal := agBenchAcceptedPer * len(r.Rows) / agBenchBlock; finalized != wantFinal {
		b.Fatalf("%d agreement(s) created from an attestation, want %d", finalized, wantFinal)
	}
	if got, want := r.accepted.Load(), int64(r.writes()); got != want {
		b.Fatalf("%d AgreementAccepted notification(s), want %d", got, want)
	}
}
