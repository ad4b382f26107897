package provideraccounts

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// paRig is the provider account sync on both simulators: one Automatic provider with auto-matching on,
// one active agreement template, small Partner Center pages so every test crosses page boundaries.
type paRig struct {
	*testrig.Sims
	P        *Workflow
	Provider dataverse.GUID
	Template dataverse.GUID

	mu      sync.Mutex
	notices []notify.Notification
}

type paOptions struct {
	PageSize  int // Partner Center customers per page (default 10)
	BatchSize int // Dataverse operations per $batch (default 7: not a divisor of the page size)
	AutoMatch *bool
	// DataverseRetries: the client's retries (default 3, with a quick wait).
	DataverseRetries int
	// BatchOnly writes by $batch, without bulk messages.
	BatchOnly bool
}

func newPARig(t testing.TB, o paOptions) *paRig {
	t.Helper()
	ctx := t.Context()
	bulkSize := 0
	if o.BatchOnly {
		bulkSize = -1
	}
	sims := testrig.StartSims(t, testrig.SimOptions{
		Dataverse:           dataverse.ClientOptions{MaxRetries: max(o.DataverseRetries, 3), MinRetryWait: time.Millisecond, MaxRetryWait: 20 * time.Millisecond, BulkSize: bulkSize},
		PartnerCenterClient: partnercenter.ClientOptions{PageSize: cmpOr(o.PageSize, 10), MaxRetries: 1, MinRetryWait: time.Millisecond, MaxRetryWait: 5 * time.Millisecond},
	})
	dv, pc, clk := sims.DV, sims.PC, sims.Clock
	var err error
	r := &paRig{Sims: sims}
	auto := o.AutoMatch == nil || *o.AutoMatch
	r.Provider, err = dv.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic), "csp_automatch": auto})
	require.NoError(t, err)
	r.Template, err = dv.Create(ctx, schema.SetAgreementTemplates, dataverse.Row{"csp_name": "Microsoft Customer Agreement",
		"csp_agreementtype": int(schema.AgreementMicrosoftCustomerAgreement), "csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider)})
	require.NoError(t, err)
	r.P = New(dv, pc, &Options{Now: clk.Now, BatchSize: cmpOr(o.BatchSize, 7), DigestOver: 5, Publish: func(n notify.Notification) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.notices = append(r.notices, n)
		return true
	}})
	return r
}

func cmpOr(v, def int) int {
	if v != 0 {
		return v
	}
	return def
}

// Notices returns and forgets the notifications published.
func (r *paRig) Notices() []notify.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.notices
	r.notices = nil
	return n
}

// Customer adds a Partner Center customer and returns its tenant id.
func (r *paRig) Customer(t testing.TB, company, domain string) string {
	t.Helper()
	id := uuid.NewString()
	require.NoError(t, r.PCS.AddCustomer(partnercentertest.Customer{TenantID: id, CompanyName: company, Domain: domain}))
	return id
}

// Account creates a Dynamics account with contacts of the given e-mail addresses.
func (r *paRig) Account(t testing.TB, name, website, email string, contacts ...string) dataverse.GUID {
	t.Helper()
	row := dataverse.Row{"name": name}
	if website != "" {
		row["websiteurl"] = website
	}
	if email != "" {
		row["emailaddress1"] = email
	}
	id, err := r.DV.Create(t.Context(), schema.SetAccounts, row)
	require.NoError(t, err)
	for i, c := range contacts {
		_, err := r.DV.Create(t.Context(), schema.SetContacts, dataverse.Row{"firstname": "Contact", "lastname": fmt.Sprint(i), "emailaddress1": c,
			"parentcustomerid@odata.bind": dataverse.Bind(schema.SetAccounts, id)})
		require.NoError(t, err)
	}
	return id
}

// Rows reads the provider's provider accounts by tenant id.
func (r *paRig) Rows(t testing.TB) map[string]schema.ProviderAccount {
	t.Helper()
	out := map[string]schema.ProviderAccount{}
	for raw, err := range r.DV.List(t.Context(), schema.SetProviderAccounts, &dataverse.Query{Select: dataverse.Columns[schema.ProviderAccount]()}) {
		require.NoError(t, err)
		var pa schema.ProviderAccount
		require.NoError(t, dataverse.Unmarshal(raw, &pa))
		_, dup := out[pa.TenantID]
		require.False(t, dup, "two rows for tenant %s", pa.TenantID)
		out[pa.TenantID] = pa
	}
	return out
}

// Agreements reads every agreement.
func (r *paRig) Agreements(t testing.TB) []schema.Agreement {
	t.Helper()
	var out []schema.Agreement
	for raw, err := range r.DV.List(t.Context(), schema.SetAgreements, &dataverse.Query{Select: dataverse.Columns[schema.Agreement]()}) {
		require.NoError(t, err)
		var a schema.Agreement
		require.NoError(t, dataverse.Unmarshal(raw, &a))
		out = append(out, a)
	}
	return out
}

// writes counts the Dataverse requests that could change something (batches included).
func writes(reqs []dataversetest.Request) int {
	n := 0
	for _, q := range reqs {
		if q.IsWrite() || q.Path == "$batch" {
			n++
		}
	}
	return n
}

func TestProviderAccountSyncCreatesMapsAndNotifies(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	alpine := r.Account(t, "Alpine Ski House", "https://www.alpineskihouse.com/en", "")
	tailspin := r.Account(t, "Tailspin Toys Ltd", "", "", "jo@tailspintoys.com", "sam@gmail.com")
	r.Account(t, "Litware, Inc.", "litware.com", "")
	r.Account(t, "Litware Inc.", "https://eu.litware.com", "")
	odd := r.Account(t, `O'Neil & "Sons" (UK) #1 / 100%`, "", "accounts@oneil-sons.co.uk")
	r.Account(t, "Gmail user", "", "someone@gmail.com")

	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	tTailspin := r.Customer(t, "Tailspin Toys", "tailspintoys.com")
	tLitware := r.Customer(t, "Litware", "litware.com")
	tAdventure := r.Customer(t, "Adventure Works Cycles", "adventure-works.onmicrosoft.com")
	tOdd := r.Customer(t, `O'Neil & "Sons" (UK) #1 / 100%`, "oneil-sons.co.uk")
	tGmail := r.Customer(t, "Someone's shop", "gmail.com")
	for i := range 15 { // crosses pages of 10 and batches of 7
		r.Customer(t, fmt.Sprintf("Filler %02d", i), fmt.Sprintf("filler%02d.example", i))
	}

	counts, err := r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 21, counts.Seen)
	assert.Equal(t, 21, counts.Created)
	assert.Equal(t, 3, counts.Mapped, "Alpine by website, Tailspin by a contact, O'Neil by e-mail domain")
	assert.Equal(t, 18, counts.NeedMapping)
	assert.Equal(t, 3, counts.Agreements)
	assert.Zero(t, counts.Failed)

	rows := r.Rows(t)
	require.Len(t, rows, 21)
	check := func(tenant string, status schema.MappingStatus, account dataverse.GUID, msg ...string) {
		t.Helper()
		row := rows[tenant]
		assert.Equal(t, status, row.MappingStatus, row.MappingMessage)
		assert.Equal(t, account, row.Account.ID, row.Name)
		for _, m := range msg {
			assert.Contains(t, row.MappingMessage, m)
		}
		assert.Equal(t, r.Provider, row.Provider.ID)
		assert.Equal(t, r.Clock.Now(), row.LastSyncedOn)
	}
	check(tAlpine, schema.MappingAutoMapped, alpine, "Alpine Ski House", "alpineskihouse.com")
	check(tTailspin, schema.MappingAutoMapped, tailspin, "Tailspin Toys Ltd", "contact")
	check(tLitware, schema.MappingAmbiguous, uuid.Nil, "Litware, Inc.", "Litware Inc.")
	check(tAdventure, schema.MappingUnmapped, uuid.Nil, "onmicrosoft.com")
	check(tOdd, schema.MappingAutoMapped, odd, `O'Neil & "Sons" (UK) #1 / 100%`)
	check(tGmail, schema.MappingUnmapped, uuid.Nil)
	assert.Equal(t, `O'Neil & "Sons" (UK) #1 / 100%`, rows[tOdd].CompanyName, "quotes and OData-reserved characters are stored as they are")
	assert.Equal(t, "oneil-sons.co.uk", rows[tOdd].Domain)
	assert.Equal(t, "reseller", strings.ToLower(rows[tAlpine].Relationship))

	agreements := r.Agreements(t)
	require.Len(t, agreements, 3, "one Pending agreement per auto-mapped row and active template")
	for _, a := range agreements {
		assert.Equal(t, schema.AgreementPending, a.Status)
		assert.Equal(t, r.Template, a.Template.ID)
		assert.Equal(t, schema.AttestationNotStarted, a.AttestationStatus)
		assert.Contains(t, []dataverse.GUID{alpine, tailspin, odd}, a.Account.ID)
		assert.True(t, a.DateAgreed.IsZero())
		assert.Empty(t, a.SignatoryEmail)
	}

	notices := r.Notices()
	require.Len(t, notices, 1, "18 rows need a person, over the digest threshold of 5: one digest")
	assert.Contains(t, notices[0].Title, "18 provider accounts need mapping")
	assert.Equal(t, notify.ProviderAccountNeedsMapping, notices[0].Type)
}

func TestProviderAccountSyncNotifiesEachRowUnderTheThreshold(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	r.Account(t, "Litware, Inc.", "litware.com", "")
	r.Account(t, "Litware Inc.", "https://eu.litware.com", "")
	tLitware := r.Customer(t, "Litware", "litware.com")
	tAdventure := r.Customer(t, "Adventure Works Cycles", "adventure-works.com")
	_, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	rows := r.Rows(t)
	notices := r.Notices()
	require.Len(t, notices, 2)
	byTenant := map[string]notify.Notification{}
	for _, n := range notices {
		assert.Equal(t, notify.ProviderAccountNeedsMapping, n.Type)
		assert.Equal(t, schema.TableProviderAccount, n.Table, "the in-app notice opens the row")
		byTenant[fmt.Sprint(n.Data["tenantId"])] = n
	}
	assert.Equal(t, "Ambiguous", byTenant[tLitware].Data["mappingStatus"])
	assert.Len(t, byTenant[tLitware].Data["candidates"], 2)
	assert.Equal(t, rows[tLitware].ID, byTenant[tLitware].RowID)
	assert.Equal(t, "Unmapped", byTenant[tAdventure].Data["mappingStatus"])
	assert.Equal(t, rows[tAdventure].ID, byTenant[tAdventure].RowID)

	_, err = r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Empty(t, r.Notices(), "a row that still needs a person is not announced again")
}

func TestProviderAccountResyncWithNothingChangedWritesNothing(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	for i := range 24 {
		r.Customer(t, fmt.Sprintf("Customer %02d", i), fmt.Sprintf("c%02d.example", i))
	}
	_, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	r.Notices()
	r.DVS.ResetRequests()
	r.PCS.ResetRequests()
	r.Clock.Advance(time.Hour)

	counts, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, SyncCounts{Seen: 25, Unchanged: 25, NeedPerson: 24}, counts, "the 24 customers no account fits still need a person, none newly")
	assert.Zero(t, writes(r.DVS.Requests()), "an unchanged re-sync writes nothing")
	assert.Len(t, r.PCS.Requests(), 3, "25 customers in pages of 10: 3 Partner Center requests")
	assert.Empty(t, r.Notices())
}

func TestProviderAccountSyncUpdatesDeactivatesAndReactivates(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	alpine := r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	tRenamed := r.Customer(t, "Old Name Ltd", "renamed.example")
	_, err := r.P.Sync(ctx)
	require.NoError(t, err)
	require.Len(t, r.Agreements(t), 1)

	require.NoError(t, r.PCS.RemoveCustomer(tAlpine)) // the customer removed the reseller relationship
	require.NoError(t, r.PCS.RemoveCustomer(tRenamed))
	require.NoError(t, r.PCS.AddCustomer(partnercentertest.Customer{TenantID: tRenamed, CompanyName: "New Name Ltd", Domain: "renamed.example"}))
	r.Clock.Advance(time.Hour)
	counts, err := r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, counts.Deactivated)
	assert.Equal(t, 1, counts.Updated)
	rows := r.Rows(t)
	assert.Equal(t, schema.StateInactive, rows[tAlpine].State)
	assert.Equal(t, alpine, rows[tAlpine].Account.ID, "deactivating keeps the mapping")
	assert.Equal(t, "New Name Ltd", rows[tRenamed].CompanyName)
	assert.Equal(t, r.Clock.Now(), rows[tRenamed].LastSyncedOn)
	for _, a := range r.Agreements(t) {
		assert.Equal(t, schema.StateInactive, a.State, "the agreements of a customer who left are deactivated")
	}

	require.NoError(t, r.PCS.AddCustomer(partnercentertest.Customer{TenantID: tAlpine, CompanyName: "Alpine Ski House", Domain: "alpineskihouse.com"}))
	counts, err = r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, counts.Updated, "a customer who came back is reactivated")
	assert.Equal(t, schema.StateActive, r.Rows(t)[tAlpine].State)
}

func TestProviderAccountSyncNeverChangesAPersonsMapping(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	chosen := r.Account(t, "Holding Company", "", "")
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	_, err := r.DV.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Alpine", "csp_tenantid": tAlpine,
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider), "csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, chosen),
		"csp_mappingstatus": int(schema.MappingMapped), "csp_mappingmessage": "Mapped by hand."})
	require.NoError(t, err)
	counts, err := r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, counts.Mapped)
	row := r.Rows(t)[tAlpine]
	assert.Equal(t, chosen, row.Account.ID)
	assert.Equal(t, schema.MappingMapped, row.MappingStatus)
	assert.Equal(t, "Alpine Ski House", row.CompanyName, "Partner Center's columns are still synced")
}

func TestProviderAccountSyncWithAutoMatchOff(t *testing.T) {
	t.Parallel()
	off := false
	r := newPARig(t, paOptions{AutoMatch: &off})
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	_, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	row := r.Rows(t)[tAlpine]
	assert.Equal(t, schema.MappingUnmapped, row.MappingStatus)
	assert.True(t, row.Account.IsZero())
	assert.Contains(t, row.MappingMessage, "Automatic matching is off")
	assert.Len(t, r.Notices(), 1)
}

func TestProviderAccountSyncInterruptedPagingResumesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	var tenants []string
	for i := range 35 {
		tenants = append(tenants, r.Customer(t, fmt.Sprintf("Customer %02d", i), fmt.Sprintf("c%02d.example", i)))
	}
	// A row from an earlier sync whose customer is on a page the interrupted run never reads.
	_, err := r.DV.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Customer 34", "csp_tenantid": tenants[34],
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider)})
	require.NoError(t, err)
	r.PCS.Inject(partnercentertest.Fault{Path: "customers", Status: http.StatusInternalServerError, After: 2}) // the third page fails, every time

	counts, err := r.P.Sync(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nothing was deactivated")
	assert.Equal(t, 20, counts.Seen)
	assert.Zero(t, counts.Deactivated)
	rows := r.Rows(t)
	assert.Len(t, rows, 21, "the first two pages are written; the old row stays")
	assert.Equal(t, schema.StateActive, rows[tenants[34]].State, "a customer not seen because paging broke is not deactivated")

	r.PCS.ClearFaults()
	counts, err = r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 35, counts.Seen)
	assert.Equal(t, 14, counts.Created, "the rerun creates only what the first run did not")
	assert.Len(t, r.Rows(t), 35, "no duplicates")
}

func TestProviderAccountSyncSurvivesThrottledBatches(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{DataverseRetries: 5, BatchOnly: true})
	for i := range 30 {
		r.Customer(t, fmt.Sprintf("Customer %02d", i), fmt.Sprintf("c%02d.example", i))
	}
	r.DVS.Inject(dataversetest.Fault{Method: http.MethodPost, Path: "$batch", Status: http.StatusTooManyRequests, RetryAfter: time.Millisecond, Times: 3})
	counts, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 30, counts.Created)
	assert.Zero(t, counts.Failed)
	assert.Len(t, r.Rows(t), 30, "nothing lost, nothing doubled")
}

func TestProviderAccountSyncRetriesTheOperationsABatchDidNotRun(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{BatchSize: 50, BatchOnly: true})
	for i := range 30 {
		r.Customer(t, fmt.Sprintf("Customer %02d", i), fmt.Sprintf("c%02d.example", i))
	}
	// Three writes inside the first batch are refused for a moment (503, Dataverse busy)
	// while the others of the batch succeed: the sync sends those three again.
	r.DVS.Inject(dataversetest.Fault{InBatch: true, Method: http.MethodPatch, Path: "csp_provideraccounts", Status: http.StatusServiceUnavailable, Times: 3})
	counts, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 30, counts.Created)
	assert.Zero(t, counts.Failed)
	assert.Len(t, r.Rows(t), 30)
}

func TestProviderAccountSyncWritesInBulkMessages(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{BatchSize: 50})
	for i := range 30 {
		r.Customer(t, fmt.Sprintf("Customer %02d", i), fmt.Sprintf("c%02d.example", i))
	}
	counts, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 30, counts.Created)
	assert.Zero(t, counts.Failed)
	assert.Len(t, r.Rows(t), 30)
	var bulk, counted int
	for _, q := range r.DVS.Requests() {
		switch {
		case q.InBatch:
			assert.False(t, q.IsWrite(), "no write by $batch: %s %s", q.Method, q.Path)
		case q.Path == "$batch":
			counted += q.Operations
		default:
			counted++
			if strings.HasSuffix(q.Path, "Multiple") {
				bulk++
			}
		}
	}
	// The rows (CreateMultiple) and the marks that their notices went out (UpdateMultiple).
	assert.Equal(t, 2, bulk)
	assert.Less(t, counted, 30, "service protection counts fewer requests than rows written")
}

func TestProviderAccountSyncFallsBackToBatchWhenABulkMessageFails(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{BatchSize: 50})
	for i := range 30 {
		r.Customer(t, fmt.Sprintf("Customer %02d", i), fmt.Sprintf("c%02d.example", i))
	}
	// The CreateMultiple of the rows fails as a whole: they go by $batch, each with its own answer.
	r.DVS.Inject(dataversetest.Fault{Method: http.MethodPost, Path: "Microsoft.Dynamics.CRM.CreateMultiple", Status: http.StatusInternalServerError, Times: 1})
	counts, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 30, counts.Created)
	assert.Zero(t, counts.Failed)
	assert.Len(t, r.Rows(t), 30, "nothing lost, nothing doubled")
	assert.Equal(t, 1, countWrites(r.DVS, "$batch"), "the rows went by one $batch")
}

func countWrites(srv *dataversetest.Server, path string) int {
	n := 0
	for _, q := range srv.Requests() {
		if q.Method == http.MethodPost && q.Path == path {
			n++
		}
	}
	return n
}

func TestProviderAccountSyncTwoAtOnceTheLeaseLetsOneRun(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	for i := range 30 {
		r.Customer(t, fmt.Sprintf("Customer %02d", i), fmt.Sprintf("c%02d.example", i))
	}
	r.PCS.SetLatency(20 * time.Millisecond)
	var wg sync.WaitGroup
	results := make([]error, 2)
	for i := range 2 {
		runner := jobs.New(r.DV, []jobs.Job{r.P.Job(time.Hour)}, jobs.Options{Instance: fmt.Sprintf("replica-%d", i), Now: r.Clock.Now})
		require.NoError(t, runner.Ensure(t.Context()))
		wg.Go(func() { _, results[i] = runner.RunNow(t.Context(), SyncJobName, schema.TriggerSchedule) })
	}
	wg.Wait()
	held := 0
	for _, err := range results {
		if errors.Is(err, jobs.ErrLeaseHeld) {
			held++
		} else {
			require.NoError(t, err)
		}
	}
	assert.Equal(t, 1, held, "one replica ran the sync, the other found the lease held")
	assert.Len(t, r.Rows(t), 30)
}

func TestProviderAccountSyncRecordsItsCountsInTheRun(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	r.Customer(t, "Adventure Works Cycles", "adventure-works.com")
	runner := jobs.New(r.DV, []jobs.Job{r.P.Job(time.Hour)}, jobs.Options{Instance: "a", Now: r.Clock.Now})
	res, err := runner.RunNow(t.Context(), SyncJobName, schema.TriggerRunNow)
	require.NoError(t, err)
	require.NoError(t, res.Err)
	var run schema.JobRun
	raw, err := r.DV.Get(t.Context(), schema.SetJobRuns, res.RunID, &dataverse.GetOptions{Select: dataverse.Columns[schema.JobRun]()})
	require.NoError(t, err)
	require.NoError(t, dataverse.Unmarshal(raw, &run))
	assert.Equal(t, schema.RunSucceeded, run.Status)
	assert.Equal(t, 2, run.Processed)
	assert.Equal(t, 2, run.Created)
	assert.Equal(t, 1, run.Mapped)
	assert.Equal(t, 1, run.Unmapped)
	assert.Zero(t, run.Deactivated)
}

// personEvent is the event of a person's update of the given columns.
func personEvent(table string, id dataverse.GUID, cols ...string) work.Batch {
	return work.Batch{Key: work.Key{Table: table, ID: id}, Events: []event.Event{{Message: "Update", Table: table, RowID: id,
		Target: &event.Entity{Table: table, ID: id, Columns: cols}}}}
}

func TestProviderAccountMappedByHandGetsAgreementsAndClearedByHandIsLeftToPeople(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	tAdventure := r.Customer(t, "Adventure Works Cycles", "adventure-works.com")
	_, err := r.P.Sync(ctx)
	require.NoError(t, err)
	r.Notices()
	row := r.Rows(t)[tAdventure]
	require.Equal(t, schema.MappingUnmapped, row.MappingStatus)

	// A person chooses the account.
	adventure := r.Account(t, "Adventure Works", "", "")
	_, err = r.DV.Update(ctx, schema.SetProviderAccounts, row.ID, dataverse.Row{"csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, adventure)}, nil)
	require.NoError(t, err)
	require.NoError(t, r.P.Handle(ctx, personEvent(schema.TableProviderAccount, row.ID, "csp_account")))
	require.NoError(t, r.P.Handle(ctx, personEvent(schema.TableProviderAccount, row.ID, "csp_account")), "a repeated event changes nothing")
	row = r.Rows(t)[tAdventure]
	assert.Equal(t, schema.MappingMapped, row.MappingStatus)
	assert.Contains(t, row.MappingMessage, "Mapped by hand")
	agreements := r.Agreements(t)
	require.Len(t, agreements, 1, "one Pending agreement, however many times the event comes")
	assert.Equal(t, adventure, agreements[0].Account.ID)
	assert.Equal(t, row.ID, agreements[0].ProviderAccount.ID)

	// A person removes it: the row is left to people, and the sync does not map it again.
	r.Account(t, "Adventure Works Cycles", "adventure-works.com", "")
	_, err = r.DV.Update(ctx, schema.SetProviderAccounts, row.ID, dataverse.Row{"csp_account@odata.bind": nil}, nil)
	require.NoError(t, err)
	require.NoError(t, r.P.Handle(ctx, personEvent(schema.TableProviderAccount, row.ID, "csp_account")))
	row = r.Rows(t)[tAdventure]
	assert.Equal(t, schema.MappingUnmapped, row.MappingStatus)
	assert.Contains(t, row.MappingMessage, clearedByHand)
	require.Len(t, r.Notices(), 1)
	counts, err := r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, counts.Mapped)
	assert.True(t, r.Rows(t)[tAdventure].Account.IsZero())

	// A person deactivates it: its agreements are deactivated.
	_, err = r.DV.Update(ctx, schema.SetProviderAccounts, row.ID, dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.StatusInactive}, nil)
	require.NoError(t, err)
	require.NoError(t, r.P.Handle(ctx, personEvent(schema.TableProviderAccount, row.ID, "statecode")))
	for _, a := range r.Agreements(t) {
		assert.Equal(t, schema.StateInactive, a.State)
	}
}

func TestProviderAccountAutoMappedRowChangedByHandBecomesMapped(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	other := r.Account(t, "Alpine Group", "", "")
	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	_, err := r.P.Sync(ctx)
	require.NoError(t, err)
	row := r.Rows(t)[tAlpine]
	require.Equal(t, schema.MappingAutoMapped, row.MappingStatus)
	_, err = r.DV.Update(ctx, schema.SetProviderAccounts, row.ID, dataverse.Row{"csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, other)}, nil)
	require.NoError(t, err)
	require.NoError(t, r.P.Handle(ctx, personEvent(schema.TableProviderAccount, row.ID, "csp_account")))
	row = r.Rows(t)[tAlpine]
	assert.Equal(t, schema.MappingMapped, row.MappingStatus)
	assert.Equal(t, other, row.Account.ID)
	_, err = r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, other, r.Rows(t)[tAlpine].Account.ID, "the sync keeps the person's choice")
}

// TestProviderAccountForgedEventDoesNotMakeAnAutoMappedRowMappedByHand: an Update event that claims
// csp_account changed, when the row's account is still the one the connector chose, changes nothing: the
// handler decides from the row.
func TestProviderAccountForgedEventDoesNotMakeAnAutoMappedRowMappedByHand(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	alpine := r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	_, err := r.P.Sync(ctx)
	require.NoError(t, err)
	row := r.Rows(t)[tAlpine]
	require.Equal(t, schema.MappingAutoMapped, row.MappingStatus)
	assert.Equal(t, alpine, row.AutoMappedAccount.ID, "the connector records its own choice")
	message := row.MappingMessage

	require.NoError(t, r.P.Handle(ctx, personEvent(schema.TableProviderAccount, row.ID, "csp_account")))
	row = r.Rows(t)[tAlpine]
	assert.Equal(t, schema.MappingAutoMapped, row.MappingStatus, "the event's column list is not evidence")
	assert.Equal(t, message, row.MappingMessage)
	assert.Equal(t, alpine, row.Account.ID)
}

func TestProviderAccountSyncCreatesAgreementsAnEarlierSyncMissed(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	r.DVS.Inject(dataversetest.Fault{InBatch: true, Method: http.MethodPatch, Path: "csp_agreements", Status: http.StatusBadRequest, Times: 1})
	counts, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, counts.Mapped)
	assert.Equal(t, 1, counts.Failed, "the agreement could not be created")
	require.Empty(t, r.Agreements(t))

	counts, err = r.P.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, counts.Agreements, "the next sync creates what is missing")
	assert.Len(t, r.Agreements(t), 1)
}

func TestProviderAccountSyncNeverOverwritesAPersonsChangeMadeDuringIt(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{BatchSize: 2})
	ctx := t.Context()
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	holding := r.Account(t, "Alpine Holding", "", "")
	r.Customer(t, "Filler 1", "f1.example")
	r.Customer(t, "Filler 2", "f2.example")
	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	id, err := r.DV.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Alpine", "csp_tenantid": tAlpine, "csp_mappingstatus": int(schema.MappingUnmapped),
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider)})
	require.NoError(t, err)
	once := sync.Once{}
	r.P.progress = func(SyncProgress) { // after the first batch, before Alpine's: a person maps it
		once.Do(func() {
			_, err := r.DV.Update(ctx, schema.SetProviderAccounts, id, dataverse.Row{"csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, holding),
				"csp_mappingstatus": int(schema.MappingMapped)}, nil)
			require.NoError(t, err)
		})
	}
	_, err = r.P.Sync(ctx)
	require.NoError(t, err)
	row := r.Rows(t)[tAlpine]
	assert.Equal(t, holding, row.Account.ID, "the person's mapping stands")
	assert.Equal(t, schema.MappingMapped, row.MappingStatus)
}

func TestProviderAccountSyncNoticesAMappingRemovedWithoutAnEvent(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	tAlpine := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	_, err := r.P.Sync(ctx)
	require.NoError(t, err)
	row := r.Rows(t)[tAlpine]
	require.Equal(t, schema.MappingAutoMapped, row.MappingStatus)
	_, err = r.DV.Update(ctx, schema.SetProviderAccounts, row.ID, dataverse.Row{"csp_account@odata.bind": nil}, nil) // its event was lost
	require.NoError(t, err)
	r.Notices()
	_, err = r.P.Sync(ctx)
	require.NoError(t, err)
	row = r.Rows(t)[tAlpine]
	assert.Equal(t, schema.MappingUnmapped, row.MappingStatus)
	assert.True(t, row.Account.IsZero(), "the account the person removed is not bound again")
	assert.Contains(t, row.MappingMessage, clearedByHand)
	assert.Len(t, r.Notices(), 1)
	_, err = r.P.Sync(ctx)
	require.NoError(t, err)
	assert.True(t, r.Rows(t)[tAlpine].Account.IsZero(), "and stays left to people")
}

// An agreement made later for a customer mapped earlier (here: after a failed create) is named by the
// customer's company, as the ones made when a customer is first mapped are, never by its tenant id.
func TestProviderAccountSyncNamesAgreementsOfMappedCustomersByCompany(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	r.Account(t, "Alpine Ski House", "alpineskihouse.com", "")
	tenant := r.Customer(t, "Alpine Ski House", "alpineskihouse.com")
	r.DVS.Inject(dataversetest.Fault{InBatch: true, Method: http.MethodPatch, Path: "csp_agreements", Status: http.StatusBadRequest, Times: 1})
	_, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	require.Empty(t, r.Agreements(t))

	counts, err := r.P.Sync(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, counts.Agreements)
	ags := r.Agreements(t)
	require.Len(t, ags, 1)
	assert.Equal(t, "Microsoft Customer Agreement – Alpine Ski House", ags[0].Name)
	assert.NotContains(t, ags[0].Name, tenant)
}

// TestProviderAccountSyncAnnouncesWhatAStoppedSyncLeftUnannounced: a replica that stopped after writing
// the rows' statuses but before its notices went into the outbox (here: a sync with no notifier) leaves
// the rows marked as unannounced; the next sync announces them, once, and records it on the rows.
func TestProviderAccountSyncAnnouncesWhatAStoppedSyncLeftUnannounced(t *testing.T) {
	t.Parallel()
	r := newPARig(t, paOptions{})
	ctx := t.Context()
	tAdventure := r.Customer(t, "Adventure Works Cycles", "adventure-works.onmicrosoft.com")
	tFabrikam := r.Customer(t, "Fabrikam Residences", "fabrikamresidences.example")

	notify := r.P.publish
	r.P.publish = nil // the replica stops before announcing
	counts, err := r.P.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, counts.NeedMapping)
	for _, tenant := range []string{tAdventure, tFabrikam} {
		row := r.Rows(t)[tenant]
		require.Equal(t, schema.MappingUnmapped, row.MappingStatus)
		assert.True(t, row.MappingNoticedOn.IsZero(), "written as still to announce")
	}

	r.P.publish = notify
	r.Clock.Advance(time.Hour)
	counts, err = r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, counts.NeedMapping, "not newly in need of a person")
	announced := map[string]bool{}
	for _, n := range r.notices {
		announced[fmt.Sprint(n.Data["tenantId"])] = true
	}
	assert.Equal(t, map[string]bool{tAdventure: true, tFabrikam: true}, announced, "the next sync announces both")
	for _, tenant := range []string{tAdventure, tFabrikam} {
		assert.Equal(t, r.Clock.Now(), r.Rows(t)[tenant].MappingNoticedOn, "and records it")
	}

	before := len(r.notices)
	_, err = r.P.Sync(ctx)
	require.NoError(t, err)
	assert.Len(t, r.notices, before, "announced once")
}
