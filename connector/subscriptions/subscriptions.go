package subscriptions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// SyncJobName is the job's name on its csp_job row.
const SyncJobName = "Subscription Sync"

// Drift outcomes.
const (
	// Recorded: the row was updated and a Provider license change records what changed.
	Recorded = "Recorded"
	// Blocked: a change of ours is in flight (Awaiting or Provisioning): nothing was written.
	Blocked = "Blocked"
	// Undone: Partner Center no longer shows a change we provisioned; recorded like any drift, and the
	// row says so.
	Undone = "Undone"
	// Missing: Partner Center no longer lists a subscription the row has.
	Missing = "Missing"
)

// DefaultWorkers is how many customers' subscriptions the sync lists at once. Partner Center limits
// subscription reads per customer tenant (500 a minute), and the client paces each tenant, so customers
// listed at once do not share a limit; no partner-wide limit on them is published. Eight keeps the sync
// gentle (8 requests in flight) while a run's time is the customers × the latency ÷ 8.
const DefaultWorkers = 8

// Workflow is the Subscription Sync.
type Workflow struct {
	dv        *dataverse.Client
	pc        *partnercenter.Client
	publish   func(notify.Notification) bool
	batchSize int
	groupSize int
	workers   int
	result    func(SyncResult)
	progress  func(SyncCounts)
	now       func() time.Time
	log       *slog.Logger
}

// Options configure a Workflow; zero values take the defaults.
type Options struct {
	// Publish publishes a notification (in-app, topic, webhooks) and reports whether it is kept until
	// delivered; nil sends none.
	Publish func(notify.Notification) bool
	// BatchSize is the operations per $batch (default dataverse.DefaultBatchSize).
	BatchSize int
	// GroupSize is the provider accounts whose existing rows one Dataverse query reads (default 50): the
	// sync holds the rows of the groups being listed (two, at most three) at a time, so its memory does
	// not grow with the subscriptions.
	GroupSize int
	// Workers is how many customers' subscriptions are listed at once (default DefaultWorkers).
	Workers int
	// Result, when set, is told what each sync did (the CLI prints it with -o json).
	Result func(SyncResult)
	// Progress, when set, is told after every group (the CLI draws it on a terminal).
	Progress func(SyncCounts)
	// Now is the clock (default time.Now); Logger the log (default none).
	Now    func() time.Time
	Logger *slog.Logger
}

// New returns the subscription sync over the two clients; nil opts take the defaults.
func New(dv *dataverse.Client, pc *partnercenter.Client, opts *Options) *Workflow {
	var o Options
	if opts != nil {
		o = *opts
	}
	w := &Workflow{dv: dv, pc: pc, publish: o.Publish, result: o.Result, progress: o.Progress, now: o.Now, log: o.Logger,
		batchSize: cmp.Or(o.BatchSize, dataverse.DefaultBatchSize), groupSize: cmp.Or(o.GroupSize, 50), workers: cmp.Or(o.Workers, DefaultWorkers)}
	if w.now == nil {
		w.now = time.Now
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w
}

// SyncOptions narrow a sync.
type SyncOptions struct {
	// ProviderAccount syncs only this provider account's subscriptions (zero: every one).
	ProviderAccount uuid.UUID
}

// SyncCounts are what a sync did. Seen = Created + Updated + Unchanged + Skipped + the blocked drifts +
// Failed.
type SyncCounts struct {
	// Seen is the subscriptions Partner Center listed.
	Seen int `json:"seen"`
	// Created and Updated are rows written; Unchanged rows were not written at all.
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Skipped is the subscriptions left for the next run because a change of ours was being made to them
	// while the sync ran (Partner Center already shows it; the provisioning writes the row), including a
	// purchase of ours not yet written back and a row the provisioning wrote after the sync read it.
	Skipped int `json:"skipped"`
	// Drifted is the subscriptions Partner Center changed on its own (recorded or blocked) plus those it
	// no longer lists.
	Drifted int `json:"drifted"`
	// Failed is rows Dataverse refused to write and customers whose listing failed.
	Failed int `json:"failed"`
}

func (c *SyncCounts) add(o SyncCounts) {
	c.Seen += o.Seen
	c.Created += o.Created
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Skipped += o.Skipped
	c.Drifted += o.Drifted
	c.Failed += o.Failed
}

// Drift is one mismatch the sync found.
type Drift struct {
	Subscription     uuid.UUID `json:"subscriptionId,omitempty"`
	PCSubscriptionID string    `json:"pcSubscriptionId"`
	TenantID         string    `json:"tenantId"`
	Name             string    `json:"name,omitempty"`
	// Change says what changed in plain words ("Seats 10 → 12").
	Change string `json:"change"`
	// Outcome is Recorded, Blocked, Undone or Missing.
	Outcome string `json:"outcome"`
	// LicenseChange is the Provider license change recorded (Recorded and Undone).
	LicenseChange uuid.UUID `json:"licenseChangeLogId,omitempty"`
}

// keptDrifts is how many drifts a result lists; the count has them all.
const keptDrifts = 100

// SyncResult is a sync's counts and the drifts it found (the first 100).
type SyncResult struct {
	SyncCounts
	Drifts []Drift `json:"drifts"`
}

// Summary is the run's summary: the counts and the first mismatches.
func (r SyncResult) Summary() string {
	s := fmt.Sprintf("%d subscriptions seen: %d created, %d updated, %d unchanged, %d drifted, %d failed",
		r.Seen, r.Created, r.Updated, r.Unchanged, r.Drifted, r.Failed)
	if r.Skipped > 0 {
		s += fmt.Sprintf(" (%d left for the next run: a change of ours was being made to them)", r.Skipped)
	}
	if len(r.Drifts) == 0 {
		return s
	}
	var parts []string
	for _, d := range r.Drifts[:min(len(r.Drifts), 5)] {
		parts = append(parts, fmt.Sprintf("%s: %s (%s)", cmp.Or(d.Name, d.PCSubscriptionID), d.Change, outcomeWords(d.Outcome)))
	}
	more := ""
	if r.Drifted > len(parts) {
		more = fmt.Sprintf("; and %d more", r.Drifted-len(parts))
	}
	return s + ". Mismatches: " + strings.Join(parts, "; ") + more
}

func outcomeWords(o string) string {
	switch o {
	case Blocked:
		return "not recorded: a change of ours is in flight"
	case Undone:
		return "our provisioned change is no longer shown; recorded as a Provider change"
	case Missing:
		return "no longer listed by Partner Center"
	}
	return "recorded as a Provider change"
}

// Job is the scheduled sync. It may run while license changes are being provisioned: whether a change of
// ours explains a difference is read when the difference is found.
func (w *Workflow) Job(every time.Duration) jobs.Job {
	return jobs.Job{Name: SyncJobName, Schedule: every, Run: func(ctx context.Context) (jobs.RunCounts, error) {
		r, err := w.Sync(ctx, SyncOptions{})
		return jobs.RunCounts{Processed: r.Seen, Created: r.Created, Updated: r.Updated, Failed: r.Failed, Summary: r.Summary()}, err
	}}
}

// Sync syncs the subscriptions of every active provider account mapped to an account and a tenant (or of
// the one opts names). A customer whose listing fails does not stop the others; the error names each.
//
// It runs as a pipeline with bounded memory: one goroutine reads the provider accounts (pages of 500) and
// each group's existing rows, a group ahead of the listing; Workers goroutines list customers'
// subscriptions (each holds one page); the calling goroutine compares and queues the writes, a $batch at
// a time. At most four groups' rows and Workers customers' listings are held at once, whatever the number
// of subscriptions.
//
// A change of ours may be made while the sync runs, so whether one explains what Partner Center shows is
// read when it is needed, not at the start: one read per subscription that differs (ours), and one per
// new subscription Partner Center created within the last hour (a purchase of ours not yet written back).
//
// API: GET csp_provideraccounts (pages), per group of accounts GET csp_subscriptions, per customer GET
// /v1/customers/{id}/subscriptions, per difference GET csp_licensechangelogs, per recent new subscription
// GET csp_subscriptions, POST $batch.
func (w *Workflow) Sync(ctx context.Context, opts SyncOptions) (SyncResult, error) {
	run := &syncRun{w: w, now: w.now().UTC()}
	var errs []error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	groups := make(chan *syncGroup, 1)
	jobs := make(chan listJob)
	out := make(chan listed, 2*w.workers)
	var senders sync.WaitGroup
	var found int
	var readErr error
	senders.Go(func() {
		defer close(groups)
		found, readErr = run.read(ctx, opts, groups)
	})
	senders.Go(func() {
		defer close(jobs)
		run.dispatch(ctx, groups, jobs, out)
	})
	for range w.workers {
		senders.Go(func() {
			for j := range jobs {
				run.list(ctx, j, out)
			}
		})
	}
	go func() { senders.Wait(); close(out) }()
	b := &batcher{r: run}
	customers := map[*listJob]*customerState{}
	for m := range out {
		if err := run.receive(ctx, b, customers, m); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.flush(ctx); err != nil {
		errs = append(errs, err)
	}
	if readErr != nil {
		return run.result, readErr
	}
	if opts.ProviderAccount != uuid.Nil && found == 0 {
		return run.result, fmt.Errorf("provider account %s is not an active provider account mapped to an account and a customer tenant: nothing to sync", opts.ProviderAccount)
	}
	run.notify()
	if w.result != nil {
		w.result(run.result)
	}
	w.log.Info("subscriptions synced", "seen", run.result.Seen, "created", run.result.Created, "updated", run.result.Updated,
		"unchanged", run.result.Unchanged, "drifted", run.result.Drifted, "failed", run.result.Failed)
	return run.result, errors.Join(errs...)
}

// syncGroup is a group of provider accounts and their existing rows, read in one query.
type syncGroup struct {
	accounts  []schema.ProviderAccount
	existing  map[string]*existingRow
	err       error // reading the rows failed: the group is not synced
	remaining int   // customers whose listing has not ended
}

// listJob is one customer to list.
type listJob struct {
	g  *syncGroup
	pa schema.ProviderAccount
}

// listed is what the pipeline hands the comparing goroutine: a chunk of one customer's subscriptions, the
// end of its listing (done), its listing's failure, or a group whose rows could not be read (g set, j nil).
type listed struct {
	j    *listJob
	subs []partnercenter.Subscription
	done bool
	err  error
	g    *syncGroup
}

// listChunk is the most subscriptions a worker hands on at a time.
const listChunk = 100

// read reads the provider accounts, a page of 500 at a time, forms the groups and reads each group's rows,
// a group ahead of the workers. It returns how many accounts it found and why reading them failed.
func (r *syncRun) read(ctx context.Context, opts SyncOptions, groups chan<- *syncGroup) (int, error) {
	w := r.w
	filter := dataverse.And(dataverse.Eq("statecode", schema.StateActive), dataverse.NotNull("csp_tenantid"), dataverse.NotNull(dataverse.LookupValue("csp_account")))
	if opts.ProviderAccount != uuid.Nil {
		filter = dataverse.And(filter, dataverse.Eq("csp_provideraccountid", opts.ProviderAccount))
	}
	q := &dataverse.Query{Select: []string{"csp_provideraccountid", "csp_name", "csp_tenantid", dataverse.LookupValue("csp_account"), dataverse.LookupValue("csp_provider")},
		Filter: filter, PageSize: 500}
	found := 0
	send := func(accounts []schema.ProviderAccount) bool {
		existing, err := r.loadExisting(ctx, accounts)
		select {
		case groups <- &syncGroup{accounts: accounts, existing: existing, err: err, remaining: len(accounts)}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	group := make([]schema.ProviderAccount, 0, w.groupSize)
	for raw, err := range w.dv.List(ctx, schema.SetProviderAccounts, q) {
		if err != nil {
			return found, fmt.Errorf("subscription sync: read provider accounts: %w", err)
		}
		var pa schema.ProviderAccount
		if err := dataverse.Unmarshal(raw, &pa); err != nil {
			return found, err
		}
		if _, err := uuid.Parse(pa.TenantID); err != nil {
			continue // not a Partner Center customer (a row made by hand)
		}
		found++
		group = append(group, pa)
		if len(group) == w.groupSize {
			if !send(group) {
				return found, ctx.Err()
			}
			group = make([]schema.ProviderAccount, 0, w.groupSize)
		}
	}
	if len(group) > 0 && !send(group) {
		return found, ctx.Err()
	}
	return found, nil
}

// dispatch hands each group's customers to the workers, in order; a group whose rows could not be read
// goes straight to the comparing goroutine, which reports it.
func (r *syncRun) dispatch(ctx context.Context, groups <-chan *syncGroup, jobs chan<- listJob, out chan<- listed) {
	for g := range groups {
		if g.err != nil {
			select {
			case out <- listed{g: g, err: g.err}:
				continue
			case <-ctx.Done():
				return
			}
		}
		for _, pa := range g.accounts {
			select {
			case jobs <- listJob{g: g, pa: pa}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// list lists one customer's subscriptions and hands them on a chunk at a time.
func (r *syncRun) list(ctx context.Context, j listJob, out chan<- listed) {
	send := func(m listed) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var chunk []partnercenter.Subscription
	for s, err := range r.w.pc.ListSubscriptions(ctx, j.pa.TenantID) {
		if err != nil {
			if len(chunk) > 0 && !send(listed{j: &j, subs: chunk}) {
				return
			}
			send(listed{j: &j, err: err, done: true})
			return
		}
		chunk = append(chunk, s)
		if len(chunk) == listChunk {
			if !send(listed{j: &j, subs: chunk}) {
				return
			}
			chunk = nil
		}
	}
	send(listed{j: &j, subs: chunk, done: true})
}

// customerState is what the comparing goroutine keeps of a customer while its listing runs.
type customerState struct {
	queued  map[string]bool // this customer's subscriptions queued or already rows, by lower-case id
	skipped map[string]bool // left for the next run: a purchase of ours not yet written back
	waiting []partnercenter.Subscription
}

// receive compares what the pipeline handed on and queues the writes. An add-on whose parent is neither
// a row already nor written earlier in this run waits until the customer's listing ends, so the parent is
// resolved whatever the order Partner Center lists them in. When a group's last customer is done, its
// rows that Partner Center no longer lists are flagged and the group is let go.
func (r *syncRun) receive(ctx context.Context, b *batcher, customers map[*listJob]*customerState, m listed) error {
	if m.j == nil {
		return m.err
	}
	j, g := m.j, m.j.g
	pa := j.pa
	cs := customers[j]
	if cs == nil {
		cs = &customerState{queued: map[string]bool{}, skipped: map[string]bool{}}
		customers[j] = cs
	}
	known := func(pcID string) bool {
		id := strings.ToLower(pcID)
		return cs.queued[id] || g.existing[rowKey(pa.ID, id)] != nil
	}
	for _, s := range m.subs {
		if s.ParentSubscriptionID != "" && !known(s.ParentSubscriptionID) {
			cs.waiting = append(cs.waiting, s)
			continue
		}
		r.subscribe(ctx, b, pa, s, g.existing, cs, known)
	}
	if !m.done {
		return nil
	}
	delete(customers, j)
	var err error
	if m.err != nil {
		r.result.Failed++
		// Rows not seen are not flagged: they may be on the pages that were not read.
		for k, ex := range g.existing {
			if strings.HasPrefix(k, pa.ID.String()+"/") {
				ex.seen = true
			}
		}
		r.w.log.Warn("listing a customer's subscriptions failed; the next run tries again", "provider_account", pa.ID, "tenant", pa.TenantID, "error", m.err)
		err = fmt.Errorf("%s: listing Partner Center subscriptions failed: %w", cmp.Or(pa.Name, pa.TenantID), m.err)
	} else {
		for _, s := range cs.waiting {
			r.subscribe(ctx, b, pa, s, g.existing, cs, known)
		}
	}
	if g.remaining--; g.remaining == 0 {
		r.flagMissing(ctx, b, g.accounts, g.existing)
		g.existing = nil
		if r.w.progress != nil {
			r.w.progress(r.result.SyncCounts)
		}
	}
	return err
}

// subscribe compares one subscription, or leaves it for the next run: a new one that a purchase of ours
// may have made (not yet written back), and an add-on of one left so.
func (r *syncRun) subscribe(ctx context.Context, b *batcher, pa schema.ProviderAccount, s partnercenter.Subscription, existing map[string]*existingRow, cs *customerState, known func(string) bool) {
	id := strings.ToLower(s.ID)
	if existing[rowKey(pa.ID, id)] == nil {
		ours := s.ParentSubscriptionID != "" && cs.skipped[strings.ToLower(s.ParentSubscriptionID)]
		if !ours {
			var err error
			if ours, err = r.purchaseInFlight(ctx, pa, s); err != nil {
				r.w.log.Warn("could not read whether a purchase of ours made a new subscription; it is left for the next run", "subscription", s.ID, "error", err)
				r.result.Seen++
				r.result.Failed++
				cs.skipped[id] = true
				return
			}
		}
		if ours {
			r.w.log.Info("a new subscription may be a purchase of ours not yet written back; it is left for the next run", "subscription", s.ID, "offer", s.OfferID, "tenant", pa.TenantID)
			r.result.Seen++
			r.result.Skipped++
			cs.skipped[id] = true
			return
		}
	}
	r.subscription(ctx, b, pa, s, existing, known)
	cs.queued[id] = true
}

// purchaseWindow is how recent a new Partner Center subscription must be to be checked for a purchase of
// ours in flight: a purchase is written back within minutes of its checkout (a replica that died between
// them leaves its claim to expire first).
const purchaseWindow = time.Hour

// clockSkew is how far Partner Center's clock may be from ours.
const clockSkew = 5 * time.Minute

// purchaseInFlight reports whether a new subscription may be one a purchase of ours made and has not yet
// written back: the customer has an active row for the same offer with no Partner Center subscription id
// that existed when Partner Center created it. Importing it would make a second row, and the purchase's
// write-back would then collide with it on the key. Only a subscription created within purchaseWindow is
// checked, so a first import of older subscriptions makes no such read.
//
// API: GET csp_subscriptions?$filter=_csp_provideraccount_value eq {id} and csp_pcsubscriptionid eq null
// and csp_offerid eq {offer} and statecode eq 0 and createdon le {created}&$top=1
func (r *syncRun) purchaseInFlight(ctx context.Context, pa schema.ProviderAccount, s partnercenter.Subscription) (bool, error) {
	if s.CreationDate == nil || s.OfferID == "" || s.CreationDate.Before(r.now.Add(-purchaseWindow)) {
		return false, nil
	}
	q := &dataverse.Query{Select: []string{"csp_subscriptionid"}, Top: 1,
		Filter: dataverse.And(dataverse.LookupEq("csp_provideraccount", pa.ID), dataverse.IsNull("csp_pcsubscriptionid"),
			dataverse.Eq("csp_offerid", s.OfferID), dataverse.Eq("statecode", schema.StateActive), dataverse.Le("createdon", s.CreationDate.UTC().Add(clockSkew)))}
	for _, err := range r.w.dv.List(ctx, schema.SetSubscriptions, q) {
		if err != nil {
			return false, fmt.Errorf("subscription sync: read the purchases of ours in flight: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// syncRun is one sync and what it found.
type syncRun struct {
	w      *Workflow
	now    time.Time
	result SyncResult
}

// existingRow is what the sync keeps of one subscription row between reading it and seeing its
// subscription (one group of provider accounts at a time).
type existingRow struct {
	id, parent  uuid.UUID
	etag        dataverse.ETag
	name        string
	described   uint64 // hash of the descriptive columns (no drift when they change)
	quantity    int
	state       int
	status      int
	autoRenew   bool
	term        string
	provisioned bool      // Actual provisioned on is set
	modified    time.Time // when the row was last written (modifiedon)
	missingFlag bool      // its sync message says Partner Center no longer lists it
	seen        bool
}

var subscriptionColumns = []string{"csp_subscriptionid", "csp_name", "csp_pcsubscriptionid", dataverse.LookupValue("csp_provideraccount"),
	dataverse.LookupValue("csp_parentsubscription"), "csp_offerid", "csp_offername", "csp_quantity", "csp_termduration", "csp_billingcycle",
	"csp_commitmentenddate", "csp_autorenew", "csp_actualprovisionedon", "csp_syncmessage", "statecode", "statuscode", "modifiedon"}

// missingPrefix starts the sync message of a row whose subscription Partner Center no longer lists.
const missingPrefix = "Partner Center no longer lists this subscription"

func rowKey(pa uuid.UUID, pcID string) string { return pa.String() + "/" + strings.ToLower(pcID) }

// loadExisting reads the group's rows in one query (pages of 5,000).
func (r *syncRun) loadExisting(ctx context.Context, accounts []schema.ProviderAccount) (map[string]*existingRow, error) {
	of := make([]dataverse.Filter, len(accounts))
	for i, pa := range accounts {
		of[i] = dataverse.LookupEq("csp_provideraccount", pa.ID)
	}
	rows := map[string]*existingRow{}
	q := &dataverse.Query{Select: subscriptionColumns, Filter: dataverse.And(dataverse.NotNull("csp_pcsubscriptionid"), dataverse.Or(of...)), PageSize: 5000}
	for raw, err := range r.w.dv.List(ctx, schema.SetSubscriptions, q) {
		if err != nil {
			return nil, fmt.Errorf("subscription sync: read subscriptions: %w", err)
		}
		var s schema.Subscription
		if err := dataverse.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		modified, _ := raw.Time("modifiedon")
		rows[rowKey(s.ProviderAccount.ID, s.PCSubscriptionID)] = &existingRow{modified: modified,
			id: s.ID, parent: s.Parent.ID, etag: s.ETag, name: s.Name,
			described: describedHash(s.Name, s.OfferID, s.OfferName, s.BillingCycle, s.CommitmentEndDate),
			quantity:  s.Quantity, state: s.State, status: s.Status, autoRenew: s.AutoRenew, term: s.TermDuration,
			provisioned: !s.ActualProvisionedOn.IsZero(), missingFlag: strings.HasPrefix(s.SyncMessage, missingPrefix),
		}
	}
	return rows, nil
}

func describedHash(name, offerID, offerName, billingCycle string, end time.Time) uint64 {
	h := fnv.New64a()
	for _, f := range []string{name, offerID, offerName, billingCycle, dateKey(end)} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func dateKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// target is what a Partner Center subscription says the row should hold.
type target struct {
	name, offerID, offerName, billingCycle, term string
	end                                          time.Time
	quantity, state, status                      int
	autoRenew                                    bool
}

func targetOf(s partnercenter.Subscription) target {
	t := target{
		name:         schema.Fit(schema.TableSubscription, "csp_name", cmp.Or(s.FriendlyName, s.OfferName, s.ID)),
		offerID:      schema.Fit(schema.TableSubscription, "csp_offerid", s.OfferID),
		offerName:    schema.Fit(schema.TableSubscription, "csp_offername", s.OfferName),
		billingCycle: schema.Fit(schema.TableSubscription, "csp_billingcycle", string(s.BillingCycle)),
		term:         schema.Fit(schema.TableSubscription, "csp_termduration", s.TermDuration),
		quantity:     s.Quantity, autoRenew: s.AutoRenewEnabled,
	}
	if s.CommitmentEndDate != nil {
		t.end = s.CommitmentEndDate.UTC().Truncate(time.Second)
	}
	t.state, t.status = stateOf(s.Status)
	return t
}

// stateOf is the statecode and statuscode of a Partner Center status: suspended stays Active with the
// Suspended reason; deleted, expired and disabled are Inactive.
func stateOf(st partnercenter.Enum) (int, int) {
	switch {
	case st.Is(partnercenter.SubscriptionSuspended):
		return schema.StateActive, schema.SubscriptionSuspended
	case st.Is(partnercenter.SubscriptionDeleted), st.Is(partnercenter.SubscriptionExpired), st.Is(partnercenter.SubscriptionDisabled):
		return schema.StateInactive, schema.StatusInactive
	}
	return schema.StateActive, schema.StatusActive
}

func statusWords(state, status int) string {
	switch {
	case state == schema.StateInactive:
		return "Inactive"
	case status == schema.SubscriptionSuspended:
		return "Suspended"
	}
	return "Active"
}

// subscription compares one Partner Center subscription with its row and queues what differs.
func (r *syncRun) subscription(ctx context.Context, b *batcher, pa schema.ProviderAccount, s partnercenter.Subscription, existing map[string]*existingRow, known func(string) bool) {
	r.result.Seen++
	t := targetOf(s)
	ex := existing[rowKey(pa.ID, s.ID)]
	row := dataverse.Row{}
	var parentBind string
	if s.ParentSubscriptionID != "" && known(s.ParentSubscriptionID) {
		if pex := existing[rowKey(pa.ID, s.ParentSubscriptionID)]; pex != nil {
			if ex == nil || ex.parent != pex.id {
				row["csp_parentsubscription@odata.bind"] = dataverse.Bind(schema.SetSubscriptions, pex.id)
			}
		} else {
			// The parent is new in this run, written before this row (an earlier op of this or an earlier
			// $batch): bind it by its key.
			parentBind, _ = dataverse.BindKey(schema.SetSubscriptions, subscriptionKey(pa.ID, s.ParentSubscriptionID))
			row["csp_parentsubscription@odata.bind"] = parentBind
		}
	} else if s.ParentSubscriptionID != "" {
		r.w.log.Warn("an add-on's parent subscription is not among the customer's subscriptions; its parent is left empty", "subscription", s.ID, "parent", s.ParentSubscriptionID)
	}
	if ex == nil {
		row["csp_name"], row["csp_offerid"], row["csp_offername"], row["csp_billingcycle"], row["csp_termduration"] = t.name, t.offerID, t.offerName, t.billingCycle, t.term
		row["csp_quantity"], row["csp_autorenew"], row["csp_actualprovisionedon"] = t.quantity, t.autoRenew, r.now
		row["csp_commitmentenddate"] = nullTime(t.end)
		row["statecode"], row["statuscode"] = t.state, t.status
		row["csp_provideraccount@odata.bind"] = dataverse.Bind(schema.SetProviderAccounts, pa.ID)
		row["csp_account@odata.bind"] = dataverse.Bind(schema.SetAccounts, pa.Account.ID)
		if !pa.Provider.IsZero() {
			row["csp_provider@odata.bind"] = dataverse.Bind(schema.SetProviders, pa.Provider.ID)
		}
		b.add(ctx, pending{op: dataverse.UpsertOp(schema.SetSubscriptions, subscriptionKey(pa.ID, s.ID), row,
			&dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableSubscription)}), kind: opSubscription})
		return
	}
	ex.seen = true
	if ex.described != describedHash(t.name, t.offerID, t.offerName, t.billingCycle, t.end) {
		row["csp_name"], row["csp_offerid"], row["csp_offername"], row["csp_billingcycle"] = t.name, t.offerID, t.offerName, t.billingCycle
		row["csp_commitmentenddate"] = nullTime(t.end)
	}
	if !ex.provisioned {
		row["csp_actualprovisionedon"] = r.now
	}
	if ex.missingFlag {
		row["csp_syncmessage"] = nil
	}
	changes := r.changes(ex, t)
	if len(changes) == 0 {
		r.write(ctx, b, ex, row, nil)
		return
	}
	d := Drift{Subscription: ex.id, PCSubscriptionID: s.ID, TenantID: pa.TenantID, Name: cmp.Or(ex.name, t.name), Change: describe(changes)}
	ours, err := r.ourChanges(ctx, ex)
	if err != nil {
		// Not knowing whether a change of ours explains it, nothing is written: the next run looks again.
		r.w.log.Warn("could not read the subscription's license changes; it is left for the next run", "subscription", ex.id, "error", err)
		r.result.Failed++
		return
	}
	if len(ours.inFlight) > 0 {
		// A change of ours is in flight: the row is not touched (the provisioning writes it). What that change
		// (or the last one provisioned) explains is not drift; anything else is reported.
		if ours.explain(changes) {
			r.result.Skipped++
			return
		}
		d.Outcome = Blocked
		r.drift(d)
		return
	}
	explained, undone := ours.explainedByLast(changes)
	row["csp_quantity"], row["csp_autorenew"], row["csp_termduration"] = t.quantity, t.autoRenew, t.term
	row["statecode"], row["statuscode"] = t.state, t.status
	if explained {
		r.write(ctx, b, ex, row, nil)
		return
	}
	d.Outcome = Recorded
	seen := mapping.FormatTime(r.now)
	if undone {
		d.Outcome = Undone
		row["csp_syncmessage"] = schema.Fit(schema.TableSubscription, "csp_syncmessage",
			fmt.Sprintf("Partner Center no longer shows the change we provisioned: %s, seen on %s. It was recorded as a Provider license change; check the subscription in Partner Center and, if ours was right, make the change again.", d.Change, seen))
	}
	lcls := make([]pending, 0, len(changes))
	for _, c := range changes {
		lcls = append(lcls, r.providerChange(ex, s, c, seen))
	}
	d.LicenseChange = lcls[0].lcl
	r.write(ctx, b, ex, row, lcls)
	r.drift(d)
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func subscriptionKey(pa uuid.UUID, pcID string) dataverse.Key {
	return dataverse.Key{dataverse.LookupValue("csp_provideraccount"): pa, "csp_pcsubscriptionid": pcID}
}

// change is one aspect of a subscription Partner Center changed.
type change struct {
	kind       schema.ChangeType
	from, to   int // seats (Quantity)
	words      string
	fromStatus string
}

// changes lists what differs between the row and Partner Center in the columns drift is about.
func (r *syncRun) changes(ex *existingRow, t target) []change {
	var cs []change
	if ex.quantity != t.quantity {
		cs = append(cs, change{kind: schema.ChangeQuantity, from: ex.quantity, to: t.quantity, words: fmt.Sprintf("Seats %d → %d", ex.quantity, t.quantity)})
	}
	if ex.state != t.state || ex.status != t.status {
		from, to := statusWords(ex.state, ex.status), statusWords(t.state, t.status)
		kind := schema.ChangeReactivate
		switch to {
		case "Suspended":
			kind = schema.ChangeSuspend
		case "Inactive":
			kind = schema.ChangeCancel
		}
		if from != to {
			cs = append(cs, change{kind: kind, words: fmt.Sprintf("Status %s → %s", from, to), fromStatus: from})
		}
	}
	var renewal []string
	if ex.autoRenew != t.autoRenew {
		renewal = append(renewal, fmt.Sprintf("Auto-renew %s → %s", onOff(ex.autoRenew), onOff(t.autoRenew)))
	}
	if ex.term != t.term {
		renewal = append(renewal, fmt.Sprintf("Term %s → %s", cmp.Or(ex.term, "(none)"), cmp.Or(t.term, "(none)")))
	}
	if len(renewal) > 0 {
		cs = append(cs, change{kind: schema.ChangeRenewal, words: strings.Join(renewal, ", ")})
	}
	return cs
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func describe(cs []change) string {
	words := make([]string, len(cs))
	for i, c := range cs {
		words[i] = c.words
	}
	return strings.Join(words, "; ")
}

// ourChangesRead is what ourChanges reads of a subscription's license changes of ours.
type ourChangesRead struct {
	inFlight []schema.LicenseChangeLog // Awaiting or Provisioning, active
	last     *schema.LicenseChangeLog  // the last one provisioned (of those provisioned the same second, the last created)
	// lastTies are the changes provisioned the same second as last, last first: times are kept to the
	// second, so which of them reached Partner Center last is not known.
	lastTies []schema.LicenseChangeLog
	// rowModified is when the row was last written, as the sync read it.
	rowModified time.Time
}

// ourChanges reads the subscription's license changes of ours in flight now and the last ones provisioned,
// in one request: ordered by status (Awaiting and Provisioning come before Provisioned), then the newest
// provisioned first, it stops after those provisioned the same second as the newest. It is read when a
// difference is found, not at the start of the run, so a change made while the sync runs is seen: Partner
// Center can only show a change of ours after it was claimed (Provisioning), and the listing came before
// this read.
//
// API: GET csp_licensechangelogs?$filter=_csp_subscription_value eq {id} and csp_changesource ne Provider
// and ((statecode eq 0 and (csp_provisioningstatus eq Awaiting or eq Provisioning)) or
// csp_provisioningstatus eq Provisioned)&$orderby=csp_provisioningstatus,csp_provisionedon desc,createdon desc
func (r *syncRun) ourChanges(ctx context.Context, ex *existingRow) (ourChangesRead, error) {
	id := ex.id
	out := ourChangesRead{rowModified: ex.modified}
	inFlight := dataverse.And(dataverse.Eq("statecode", schema.StateActive),
		dataverse.Or(dataverse.Eq("csp_provisioningstatus", schema.ProvisioningAwaiting), dataverse.Eq("csp_provisioningstatus", schema.ProvisioningInProgress)))
	q := &dataverse.Query{Select: []string{"csp_changetype", "csp_quantity", "csp_provisioningstatus", "csp_provisionedon"}, PageSize: 10,
		OrderBy: []string{"csp_provisioningstatus", "csp_provisionedon desc", "createdon desc"},
		Filter: dataverse.And(dataverse.LookupEq("csp_subscription", id), dataverse.Ne("csp_changesource", schema.SourceProvider),
			dataverse.Or(inFlight, dataverse.Eq("csp_provisioningstatus", schema.ProvisioningProvisioned)))}
	for raw, err := range r.w.dv.List(ctx, schema.SetLicenseChangeLogs, q) {
		if err != nil {
			return out, fmt.Errorf("subscription sync: read the license changes of %s: %w", id, err)
		}
		var l schema.LicenseChangeLog
		if err := dataverse.Unmarshal(raw, &l); err != nil {
			return out, err
		}
		if l.ProvisioningStatus != schema.ProvisioningProvisioned {
			out.inFlight = append(out.inFlight, l)
			continue
		}
		if len(out.lastTies) > 0 && !l.ProvisionedOn.Equal(out.lastTies[0].ProvisionedOn) {
			break
		}
		out.lastTies = append(out.lastTies, l)
	}
	if len(out.lastTies) > 0 {
		out.last = &out.lastTies[0]
	}
	return out, nil
}

// explains reports whether the change l made explains c: Partner Center shows l's target (wantTo), or the
// row still shows it (not wantTo). rowModified is when the row was last written: a purchase of ours
// explains the renewal terms Partner Center gave the subscription (auto-renew, term) until the row has been
// written since (its write-back records what was bought, not those terms).
func explains(l *schema.LicenseChangeLog, c change, wantTo bool, rowModified time.Time) bool {
	switch c.kind {
	case schema.ChangeRenewal:
		return wantTo && l.ChangeType == schema.ChangePurchase && l.ProvisioningStatus == schema.ProvisioningProvisioned &&
			!l.ProvisionedOn.Before(rowModified.Add(-clockSkew))
	case schema.ChangeQuantity:
		if l.ChangeType != schema.ChangeQuantity && l.ChangeType != schema.ChangePurchase || l.Quantity == nil {
			return false
		}
		if wantTo {
			return *l.Quantity == c.to
		}
		return *l.Quantity == c.from
	case schema.ChangeSuspend, schema.ChangeReactivate, schema.ChangeCancel:
		if wantTo {
			return l.ChangeType == c.kind
		}
		return statusAfter(l.ChangeType) == c.fromStatus
	}
	return false
}

// explain reports whether a change of ours in flight, or the last one provisioned, explains every change:
// Partner Center shows what we are making (or made).
func (o ourChangesRead) explain(cs []change) bool {
	for _, c := range cs {
		ok := o.explainedByLastTies(c)
		for i := range o.inFlight {
			ok = ok || explains(&o.inFlight[i], c, true, o.rowModified)
		}
		if !ok {
			return false
		}
	}
	return true
}

// explainedByLast reports whether our last provisioned change explains every change (the row did not catch
// up with what we provisioned), and whether Partner Center no longer shows it (the row holds what we
// provisioned, Partner Center something else).
func (o ourChangesRead) explainedByLast(cs []change) (explained, undone bool) {
	if o.last == nil {
		return false, false
	}
	explained = true
	for _, c := range cs {
		if !o.explainedByLastTies(c) {
			explained = false
		}
		if explains(o.last, c, false, o.rowModified) {
			undone = true
		}
	}
	return explained, undone && !explained
}

// explainedByLastTies reports whether one of the changes provisioned last (the same second) explains c.
func (o ourChangesRead) explainedByLastTies(c change) bool {
	for i := range o.lastTies {
		if explains(&o.lastTies[i], c, true, o.rowModified) {
			return true
		}
	}
	return false
}

func statusAfter(t schema.ChangeType) string {
	switch t {
	case schema.ChangeSuspend:
		return "Suspended"
	case schema.ChangeCancel:
		return "Inactive"
	case schema.ChangeReactivate:
		return "Active"
	}
	return ""
}

// providerChange is the Provider license change that records one change Partner Center made.
func (r *syncRun) providerChange(ex *existingRow, s partnercenter.Subscription, c change, seen string) pending {
	// The id is derived from what changed, so a $batch sent again cannot record it twice.
	id := uuid.NewSHA1(providerChangeSpace, fmt.Appendf(nil, "%s|%d|%s|%s", ex.id, c.kind, c.words, r.now.Format(time.RFC3339)))
	msg := fmt.Sprintf("%s, changed in Partner Center; seen on %s. Recorded by the subscription sync: nothing is sent to Partner Center.", c.words, seen)
	row := dataverse.Row{
		schema.PrimaryKey(schema.TableLicenseChangeLog): id,
		"csp_name":                    schema.Fit(schema.TableLicenseChangeLog, "csp_name", fmt.Sprintf("%s: %s (Partner Center)", cmp.Or(ex.name, s.OfferName, s.ID), c.words)),
		"csp_subscription@odata.bind": dataverse.Bind(schema.SetSubscriptions, ex.id),
		"csp_changetype":              c.kind,
		"csp_effectivedate":           r.now,
		"csp_provisioningstatus":      schema.ProvisioningNotApplicable,
		"csp_provisioningmessage":     schema.Fit(schema.TableLicenseChangeLog, "csp_provisioningmessage", msg),
		"csp_changesource":            schema.SourceProvider,
		"csp_pcsubscriptionid":        schema.Fit(schema.TableLicenseChangeLog, "csp_pcsubscriptionid", s.ID),
	}
	if c.kind == schema.ChangeQuantity {
		row["csp_quantity"], row["csp_previousquantity"] = c.to, c.from
	}
	return pending{op: dataverse.CreateOp(schema.SetLicenseChangeLogs, row), kind: opLicenseChange, lcl: id}
}

var providerChangeSpace = uuid.MustParse("4f0c6a52-7a57-4d0e-9a43-5b1f3c1b2d10")

// write queues the row's changes, if any, and the license changes that go with them (after the row, in
// the same or a later $batch).
func (r *syncRun) write(ctx context.Context, b *batcher, ex *existingRow, row dataverse.Row, lcls []pending) {
	if len(row) == 0 && len(lcls) == 0 {
		r.result.Unchanged++
		return
	}
	b.add(ctx, pending{op: dataverse.UpdateOp(schema.SetSubscriptions, ex.id, row, &dataverse.UpdateOptions{IfMatch: ex.etag}), kind: opSubscription, updated: true})
	for _, l := range lcls {
		b.add(ctx, l)
	}
}

func (r *syncRun) drift(d Drift) {
	r.result.Drifted++
	if len(r.result.Drifts) < keptDrifts {
		r.result.Drifts = append(r.result.Drifts, d)
	}
}

// flagMissing flags the active rows of the group's customers whose subscription Partner Center no longer
// lists (once: a flagged row is not written again).
func (r *syncRun) flagMissing(ctx context.Context, b *batcher, accounts []schema.ProviderAccount, existing map[string]*existingRow) {
	tenants := map[string]string{}
	for _, pa := range accounts {
		tenants[pa.ID.String()] = pa.TenantID
	}
	keys := make([]string, 0)
	for k, ex := range existing {
		if !ex.seen && ex.state == schema.StateActive {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		ex := existing[k]
		pa, pcID, _ := strings.Cut(k, "/")
		d := Drift{Subscription: ex.id, PCSubscriptionID: pcID, TenantID: tenants[pa], Name: ex.name, Change: "no longer listed by Partner Center", Outcome: Missing}
		r.drift(d)
		if ex.missingFlag {
			continue
		}
		msg := fmt.Sprintf("%s (seen on %s): it may have been cancelled or moved there. Check it in Partner Center; if it is gone, deactivate this row.", missingPrefix, mapping.FormatTime(r.now))
		b.add(ctx, pending{op: dataverse.UpdateOp(schema.SetSubscriptions, ex.id, dataverse.Row{"csp_syncmessage": msg}, &dataverse.UpdateOptions{IfMatch: ex.etag}), kind: opFlag})
	}
}

type opKind int

const (
	opSubscription opKind = iota
	opLicenseChange
	opFlag
)

// pending is one queued write.
type pending struct {
	op      dataverse.Op
	kind    opKind
	updated bool
	lcl     uuid.UUID
}

// batcher sends the queued writes a $batch at a time, in the order queued (a parent before its add-ons,
// a row before its license changes).
type batcher struct {
	r       *syncRun
	pending []pending
	err     error
}

func (b *batcher) add(ctx context.Context, p pending) {
	b.pending = append(b.pending, p)
	if len(b.pending) >= b.r.w.batchSize {
		if err := b.flush(ctx); err != nil && b.err == nil {
			b.err = err
		}
	}
}

func (b *batcher) flush(ctx context.Context) error {
	if len(b.pending) == 0 {
		return b.err
	}
	w := b.r.w
	ops := make([]dataverse.Op, len(b.pending))
	for i, p := range b.pending {
		ops[i] = p.op
	}
	results, err := w.dv.WriteBatch(ctx, ops)
	done := b.pending
	b.pending = b.pending[:0:0]
	if err != nil {
		for _, p := range done {
			if p.kind == opSubscription {
				b.r.result.Failed++
			}
		}
		return cmp.Or(b.err, fmt.Errorf("subscription sync: write subscriptions: %w", err))
	}
	for i, res := range results {
		p := done[i]
		switch {
		case res.Err != nil && p.kind == opLicenseChange && dataverse.IsDuplicate(res.Err):
			// recorded by an earlier attempt of the same $batch
		case res.Err != nil && p.kind == opSubscription && p.updated && dataverse.IsConflict(res.Err):
			// The row changed since the sync read it (a change of ours written back): the next run compares it
			// as it is now.
			b.r.result.Skipped++
			w.log.Info("a subscription row changed while the sync ran; the next run compares it again")
		case res.Err != nil:
			if p.kind == opSubscription {
				b.r.result.Failed++
			}
			w.log.Warn("writing a subscription failed; the next run tries again", "error", res.Err)
		case p.kind == opSubscription && p.updated:
			b.r.result.Updated++
		case p.kind == opSubscription && res.Created():
			b.r.result.Created++
		case p.kind == opSubscription:
			b.r.result.Updated++
		}
	}
	return b.err
}

// notify sends one SubscriptionDrift notification for the run's drifts.
func (r *syncRun) notify() {
	w := r.w
	if w.publish == nil || r.result.Drifted == 0 {
		return
	}
	drifts := make([]map[string]any, 0, min(len(r.result.Drifts), 20))
	var names []string
	for i, d := range r.result.Drifts {
		if i < 20 {
			m := map[string]any{"pcSubscriptionId": d.PCSubscriptionID, "tenantId": d.TenantID, "name": d.Name, "change": d.Change, "outcome": d.Outcome}
			if d.Subscription != uuid.Nil {
				m["subscriptionId"] = d.Subscription.String()
			}
			if d.LicenseChange != uuid.Nil {
				m["licenseChangeLogId"] = d.LicenseChange.String()
			}
			drifts = append(drifts, m)
		}
		if i < 5 {
			names = append(names, fmt.Sprintf("%s: %s (%s)", cmp.Or(d.Name, d.PCSubscriptionID), d.Change, outcomeWords(d.Outcome)))
		}
	}
	more := ""
	if r.result.Drifted > len(names) {
		more = fmt.Sprintf("; and %d more", r.result.Drifted-len(names))
	}
	n := notify.Notification{Type: notify.SubscriptionDrift,
		Notice: notify.Notice{
			Title: fmt.Sprintf("%d subscription(s) differ from Partner Center", r.result.Drifted),
			Body: fmt.Sprintf("The subscription sync found changes made in Partner Center, not through Dynamics: %s%s. Changes it recorded appear as license changes with source Provider; a subscription with a change of ours in flight was left as it is until that change is done.",
				strings.Join(names, "; "), more),
			Icon: notify.NoticeWarning,
		},
		Data: map[string]any{"count": r.result.Drifted, "seen": r.result.Seen, "drifts": drifts, "digest": r.result.Drifted > 1}}
	if len(r.result.Drifts) == 1 && r.result.Drifts[0].Subscription != uuid.Nil {
		n.Table, n.RowID = schema.TableSubscription, r.result.Drifts[0].Subscription
	}
	w.publish(n)
}
