package provideraccounts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// SyncJobName is the job's name on its csp_job row.
const SyncJobName = "Provider Account Sync"

// Workflow keeps csp_provideraccount rows in step with Partner Center's customers: the
// sync creates and updates rows by their alternate key, deactivates the rows of customers who left, maps
// new rows to Accounts by the rules in mapping, creates their Pending agreements, and tells people about
// the rows it could not map. Make one with New.
type Workflow struct {
	dv         *dataverse.Client
	pc         *partnercenter.Client
	publish    func(notify.Notification) bool
	progress   func(SyncProgress)
	batchSize  int
	digestOver int
	now        func() time.Time
	log        *slog.Logger
}

// Options are a Workflow's optional collaborators and settings; the zero value is ready to use.
type Options struct {
	// Publish publishes an event through the notifications service (a row needs a person) without waiting
	// for its delivery, and reports whether it is kept until delivered (in the outbox); nil publishes none.
	// A row is recorded as announced only when its notification is kept.
	Publish func(notify.Notification) bool
	// Progress, when set, is told after every batch (the CLI draws it on a terminal).
	Progress func(SyncProgress)
	// BatchSize is the operations per $batch (default dataverse.DefaultBatchSize).
	BatchSize int
	// DigestOver: a sync that finds more rows needing a person than this sends one digest instead of one
	// notification each (default 20).
	DigestOver int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the workflow's logs (default: discarded).
	Logger *slog.Logger
}

// New returns the provider accounts workflow of dv and pc. A nil opts is the defaults.
func New(dv *dataverse.Client, pc *partnercenter.Client, opts *Options) *Workflow {
	var o Options
	if opts != nil {
		o = *opts
	}
	p := &Workflow{dv: dv, pc: pc, publish: o.Publish, progress: o.Progress, batchSize: o.BatchSize, digestOver: o.DigestOver,
		now: o.Now, log: o.Logger}
	if p.batchSize <= 0 {
		p.batchSize = dataverse.DefaultBatchSize
	}
	if p.digestOver <= 0 {
		p.digestOver = 20
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p
}

// SyncProgress is where a running sync is.
type SyncProgress struct {
	Provider string
	Counts   SyncCounts
}

// SyncCounts are what a sync did.
type SyncCounts struct {
	// Seen is the customers Partner Center listed.
	Seen, Created, Updated, Unchanged, Deactivated int
	// Mapped is rows mapped automatically; NeedMapping is rows left Unmapped or Ambiguous for a person
	// by this sync (new ones and ones that changed to it); NeedPerson is every listed customer's row that
	// is Unmapped or Ambiguous after it, the new ones and the ones that were already.
	Mapped, NeedMapping, NeedPerson int
	// Agreements is the Pending agreements created for newly mapped rows.
	Agreements int
	// Failed is rows Dataverse refused to write (each is in the log, with the reason).
	Failed int
}

func (c *SyncCounts) add(o SyncCounts) {
	c.Seen += o.Seen
	c.Created += o.Created
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deactivated += o.Deactivated
	c.Mapped += o.Mapped
	c.NeedMapping += o.NeedMapping
	c.NeedPerson += o.NeedPerson
	c.Agreements += o.Agreements
	c.Failed += o.Failed
}

// String is the run's one-line summary.
func (c SyncCounts) String() string {
	return fmt.Sprintf("%d customers seen: %d created, %d updated, %d unchanged, %d deactivated; %d mapped automatically, %d need a person (%d newly); %d agreements created; %d failed",
		c.Seen, c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Mapped, c.NeedPerson, c.NeedMapping, c.Agreements, c.Failed)
}

// Job is the scheduled sync.
func (p *Workflow) Job(every time.Duration) jobs.Job {
	return jobs.Job{Name: SyncJobName, Schedule: every, Run: func(ctx context.Context) (jobs.RunCounts, error) {
		c, err := p.Sync(ctx)
		return jobs.RunCounts{Processed: c.Seen, Created: c.Created, Updated: c.Updated, Failed: c.Failed,
			Deactivated: c.Deactivated, Mapped: c.Mapped, Unmapped: c.NeedMapping, Summary: c.String()}, err
	}}
}

// Sync syncs every active Automatic provider. A provider whose sync fails does not stop the others; the
// error names each.
func (p *Workflow) Sync(ctx context.Context) (SyncCounts, error) {
	var total SyncCounts
	var errs []error
	filter := dataverse.And(dataverse.Eq("statecode", schema.StateActive), dataverse.Eq("csp_type", schema.ProviderAutomatic))
	var providers []schema.Provider
	for r, err := range p.dv.List(ctx, schema.SetProviders, &dataverse.Query{Select: dataverse.Columns[schema.Provider](), Filter: filter}) {
		if err != nil {
			return total, fmt.Errorf("provider account sync: list providers: %w", err)
		}
		var pr schema.Provider
		if err := dataverse.Unmarshal(r, &pr); err != nil {
			return total, err
		}
		providers = append(providers, pr)
	}
	run := &syncRun{p: p}
	for _, pr := range providers {
		c, err := run.provider(ctx, pr)
		total.add(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pr.Name, err))
		}
	}
	run.notify(ctx)
	if err := run.markAnnounced(ctx); err != nil {
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// syncRun is one sync: what it loads once for all providers (the accounts the rules match against) and the
// notices it collects for the end.
type syncRun struct {
	// announced are the rows whose notice this run sends (one each, or within the digest).
	announced []uuid.UUID
	p         *Workflow
	accounts  *mapping.AccountIndex
	// needing holds at most DigestOver+1 notices; beyond, only the count grows and one digest is sent.
	needing      []notify.Notification
	needingCount int
	// agreementOps are Pending agreements waiting to fill a batch.
	agreementOps []dataverse.Op
}

// existingRow is what the sync keeps of one Provider Account row between reading it and seeing its
// customer: about 60 bytes, so 20,000 customers cost about a megabyte.
type existingRow struct {
	tenant, id, account uuid.UUID
	company             string         // the customer's company as the row has it (else its name): agreements are named by it
	etag                dataverse.ETag // writes are guarded: a person's edit since the read wins
	synced              uint64         // hash of the columns the sync writes from Partner Center
	message             uint64         // hash of the mapping message
	status              schema.MappingStatus
	active              bool
	seen                bool
	leftToUs            bool // no account, and not one a person cleared: the rules may map it
	// clearedNow: Mapped or Auto-mapped without an account, a person removed it and no event said so
	// yet: the sync records it as the event would.
	clearedNow bool
	// unannounced: the row needs a person but no notice was sent (a replica stopped between writing the
	// status and announcing it); unannouncedMessage is its mapping message, for the notice.
	unannounced        bool
	unannouncedMessage string
}

// providerAccountColumns are what the sync reads of existing rows.
var providerAccountColumns = []string{"csp_provideraccountid", "csp_tenantid", "csp_name", "csp_domain", "csp_companyname",
	"csp_relationship", "_csp_account_value", "csp_mappingstatus", "csp_mappingmessage", "csp_mappingnoticedon", "statecode"}

// clearedByHand starts the message of a row whose account a person removed: the rules leave it alone.
const clearedByHand = "The account was removed by hand"

func (r *syncRun) provider(ctx context.Context, pr schema.Provider) (SyncCounts, error) {
	p := r.p
	log := p.log.With("provider", pr.Name)
	var counts SyncCounts
	existing, err := r.loadExisting(ctx, pr)
	if err != nil {
		return counts, err
	}
	templates, err := r.p.activeTemplates(ctx, pr.ID)
	if err != nil {
		return counts, err
	}
	// Mapped rows that lack an agreement of an active template get it now (an earlier sync that failed
	// to create it, a template activated since): agreements are level-triggered like everything else.
	for _, t := range templates {
		have, err := r.p.agreementHolders(ctx, t.ID)
		if err != nil {
			return counts, err
		}
		for _, ex := range existing {
			if ex.active && ex.account != uuid.Nil && !sortedHas(have, ex.id) {
				r.agreementOps = append(r.agreementOps, agreements.PendingOp(ex.id, ex.account, t, cmp.Or(ex.company, ex.tenant.String())))
			}
		}
	}
	// A chunk is written as several $batches at once (WriteBatches): Dataverse's execution time budget
	// allows about four large ones in flight.
	chunk := make([]partnercenter.Customer, 0, p.batchSize*p.dv.Options().BulkConcurrency)
	flush := func() error {
		c, err := r.writeChunk(ctx, pr, existing, templates, chunk)
		counts.add(c)
		chunk = chunk[:0]
		if p.progress != nil {
			p.progress(SyncProgress{Provider: pr.Name, Counts: counts})
		}
		return err
	}
	for cust, err := range p.pc.Customers(ctx, nil) {
		if err != nil {
			// Rows written so far stay (a rerun upserts the same keys); nothing is deactivated, since the
			// customers not seen yet may be on the pages that were not read.
			if ferr := flush(); ferr != nil {
				err = errors.Join(err, ferr)
			}
			c, ferr := r.flushAgreements(ctx)
			counts.add(c)
			if ferr != nil {
				err = errors.Join(err, ferr)
			}
			return counts, fmt.Errorf("listing Partner Center customers stopped after %d: %w (nothing was deactivated; the next run resumes)", counts.Seen, err)
		}
		chunk = append(chunk, cust)
		if len(chunk) == cap(chunk) {
			if err := flush(); err != nil {
				return counts, err
			}
		}
	}
	if err := flush(); err != nil {
		return counts, err
	}
	c, err := r.flushAgreements(ctx)
	counts.add(c)
	if err != nil {
		return counts, err
	}
	c, err = r.deactivateGone(ctx, existing)
	counts.add(c)
	log.Info("provider accounts synced", "seen", counts.Seen, "created", counts.Created, "updated", counts.Updated,
		"deactivated", counts.Deactivated, "mapped", counts.Mapped, "need_person", counts.NeedPerson, "need_person_newly", counts.NeedMapping, "failed", counts.Failed)
	return counts, err
}

// loadExisting reads the provider's rows once, sorted by tenant for lookups.
func (r *syncRun) loadExisting(ctx context.Context, pr schema.Provider) ([]existingRow, error) {
	var rows []existingRow
	q := &dataverse.Query{Select: providerAccountColumns, Filter: dataverse.LookupEq("csp_provider", pr.ID), PageSize: 5000}
	for raw, err := range r.p.dv.List(ctx, schema.SetProviderAccounts, q) {
		if err != nil {
			return nil, fmt.Errorf("read provider accounts: %w", err)
		}
		var pa schema.ProviderAccount
		if err := dataverse.Unmarshal(raw, &pa); err != nil {
			return nil, err
		}
		tenant, err := uuid.Parse(pa.TenantID)
		if err != nil {
			continue // not a Partner Center customer id (a row made by hand): no customer will match it
		}
		mapped := pa.MappingStatus == schema.MappingMapped || pa.MappingStatus == schema.MappingAutoMapped
		rows = append(rows, existingRow{
			tenant: tenant, id: pa.ID, account: pa.Account.ID, etag: pa.ETag, company: cmp.Or(strings.TrimSpace(pa.CompanyName), strings.TrimSpace(pa.Name)), synced: syncedHash(pa.Name, pa.Domain, pa.CompanyName, pa.Relationship),
			message: syncedHash(pa.MappingMessage), status: pa.MappingStatus, active: pa.State == schema.StateActive,
			leftToUs:   pa.Account.IsZero() && !mapped && !strings.HasPrefix(pa.MappingMessage, clearedByHand),
			clearedNow: pa.Account.IsZero() && mapped,
		})
		if needsPerson(pa.MappingStatus) && pa.MappingNoticedOn.IsZero() && pa.State == schema.StateActive {
			rows[len(rows)-1].unannounced, rows[len(rows)-1].unannouncedMessage = true, pa.MappingMessage
		}
	}
	slices.SortFunc(rows, func(a, b existingRow) int { return slices.Compare(a.tenant[:], b.tenant[:]) })
	return rows, nil
}

func findRow(rows []existingRow, tenant uuid.UUID) *existingRow {
	i, ok := slices.BinarySearchFunc(rows, tenant, func(r existingRow, t uuid.UUID) int { return slices.Compare(r.tenant[:], t[:]) })
	if !ok {
		return nil
	}
	return &rows[i]
}

func syncedHash(fields ...string) uint64 {
	h := fnv.New64a()
	for _, f := range fields {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// customerColumns are the columns the sync writes from a customer, cut to the columns' lengths so a long
// name cannot fail the write or differ from what is stored on every run.
func customerColumns(c partnercenter.Customer) (name, domain, company, relationship string) {
	company = schema.Fit(schema.TableProviderAccount, "csp_companyname", c.CompanyProfile.CompanyName)
	domain = schema.Fit(schema.TableProviderAccount, "csp_domain", c.CompanyProfile.Domain)
	name = schema.Fit(schema.TableProviderAccount, "csp_name", cmp.Or(c.CompanyProfile.CompanyName, c.CompanyProfile.Domain, c.ID))
	relationship = schema.Fit(schema.TableProviderAccount, "csp_relationship", string(c.RelationshipToPartner))
	return name, domain, company, relationship
}

// pending is one row write of a chunk and what to do once it is written.
type pending struct {
	cust    partnercenter.Customer
	created bool
	mapped  *mapping.Match // set when this write maps or re-decides the mapping
	notify  bool           // the row newly needs a person
	status  schema.MappingStatus
}

func (r *syncRun) writeChunk(ctx context.Context, pr schema.Provider, existing []existingRow, templates []schema.AgreementTemplate, chunk []partnercenter.Customer) (SyncCounts, error) {
	p := r.p
	var counts SyncCounts
	var ops []dataverse.Op
	var writes []pending
	now := p.now().UTC()
	for _, cust := range chunk {
		counts.Seen++
		tenant, err := uuid.Parse(cust.ID)
		if err != nil {
			p.log.Warn("Partner Center listed a customer whose id is not a GUID; skipped", "customer", cust.ID)
			counts.Failed++
			continue
		}
		name, domain, company, rel := customerColumns(cust)
		row := dataverse.Row{}
		ex := findRow(existing, tenant)
		if ex != nil {
			ex.seen = true
			if ex.synced != syncedHash(name, domain, company, rel) {
				row["csp_name"], row["csp_domain"], row["csp_companyname"], row["csp_relationship"] = name, domain, company, rel
			}
			if !ex.active {
				row["statecode"], row["statuscode"] = schema.StateActive, schema.StatusActive
			}
		} else {
			row["csp_name"], row["csp_domain"], row["csp_companyname"], row["csp_relationship"] = name, domain, company, rel
		}
		w := pending{cust: cust, created: ex == nil}
		if ex != nil && ex.clearedNow {
			msg := fmt.Sprintf("%s (found by the sync on %s). Choose the right one in Account; automatic matching leaves this row to people.", clearedByHand, mapping.FormatTime(now))
			m := mapping.Match{Outcome: mapping.NoMatch, Message: msg}
			w.mapped, w.notify = &m, true
			row["csp_mappingstatus"], row["csp_mappingmessage"] = schema.MappingUnmapped, msg
		}
		if ex == nil || ex.leftToUs {
			m, err := r.decideMapping(ctx, pr, cust)
			if err != nil {
				return counts, err
			}
			msg := schema.Fit(schema.TableProviderAccount, "csp_mappingmessage", m.message)
			if ex == nil || m.status != ex.status || syncedHash(msg) != ex.message {
				// A row already Unmapped or Ambiguous whose candidates changed gets the new message
				// without a second notice.
				w.mapped, w.notify = &m.Match, ex == nil || !needsPerson(ex.status)
				row["csp_mappingstatus"], row["csp_mappingmessage"] = m.status, msg
				if m.outcome == mapping.Matched {
					row["csp_account@odata.bind"] = dataverse.Bind(schema.SetAccounts, m.Account)
					row["csp_automappedaccount@odata.bind"] = dataverse.Bind(schema.SetAccounts, m.Account)
				}
			}
		}
		if ex != nil {
			w.status = ex.status
		}
		if st, ok := row["csp_mappingstatus"].(schema.MappingStatus); ok {
			w.status = st
		}
		if w.notify {
			row["csp_mappingnoticedon"] = nil // to announce: set once the notice is in the outbox
		} else if ex != nil && ex.unannounced && needsPerson(w.status) {
			r.announceAgain(pr, ex, cust)
		}
		if len(row) == 0 {
			counts.Unchanged++
			if needsPerson(w.status) {
				counts.NeedPerson++
			}
			continue
		}
		row["csp_lastsyncedon"] = now
		if ex == nil {
			row["csp_provider@odata.bind"] = dataverse.Bind(schema.SetProviders, pr.ID)
			row["csp_tenantid"] = tenant.String()
			ops = append(ops, dataverse.UpsertOp(schema.SetProviderAccounts, providerAccountKey(pr.ID, tenant), row,
				&dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableProviderAccount)}))
		} else {
			ops = append(ops, dataverse.UpdateOp(schema.SetProviderAccounts, ex.id, row, &dataverse.UpdateOptions{IfMatch: ex.etag}))
		}
		writes = append(writes, w)
	}
	if len(ops) == 0 {
		return counts, nil
	}
	results, err := p.dv.WriteBatches(ctx, ops, p.batchSize)
	if err != nil {
		return counts, err
	}
	var agreementOps []dataverse.Op
	for i, res := range results {
		w := writes[i]
		if dataverse.IsConflict(res.Err) && !w.created {
			continue // a person changed the row since it was read: their change stands; the next sync reads it
		}
		if res.Err != nil {
			counts.Failed++
			p.log.Warn("writing a provider account failed", "tenant", w.cust.ID, "error", res.Err)
			continue
		}
		if res.Created() { // an upsert may find the row another replica created: then it updated it
			counts.Created++
		} else {
			counts.Updated++
		}
		if needsPerson(w.status) {
			counts.NeedPerson++
		}
		if w.mapped == nil {
			continue
		}
		id, err := res.ID()
		if err != nil {
			ex := findRow(existing, uuid.MustParse(w.cust.ID))
			if ex == nil {
				p.log.Warn("Dataverse did not say which row it wrote; its agreements and notice wait for the next sync", "tenant", w.cust.ID, "error", err)
				continue
			}
			id = ex.id
		}
		switch w.mapped.Outcome {
		case mapping.Matched:
			counts.Mapped++
			for _, t := range templates {
				agreementOps = append(agreementOps, agreements.PendingOp(id, w.mapped.Account, t, cmp.Or(w.cust.CompanyProfile.CompanyName, w.cust.ID)))
			}
		default:
			if w.notify {
				counts.NeedMapping++
				r.needsMapping(pr, id, w.cust, *w.mapped)
			}
		}
	}
	// Agreements wait for full batches, as many as go out at once: a chunk maps only some of its rows.
	r.agreementOps = append(r.agreementOps, agreementOps...)
	step := p.batchSize * p.dv.Options().BulkConcurrency
	if full := len(r.agreementOps) / step * step; full > 0 {
		c, err := r.createAgreements(ctx, full)
		counts.add(c)
		return counts, err
	}
	return counts, nil
}

// flushAgreements creates the Pending agreements collected so far.
func (r *syncRun) flushAgreements(ctx context.Context) (SyncCounts, error) {
	return r.createAgreements(ctx, len(r.agreementOps))
}

// createAgreements creates the first n Pending agreements collected and keeps the rest for later.
func (r *syncRun) createAgreements(ctx context.Context, n int) (SyncCounts, error) {
	var counts SyncCounts
	if n == 0 {
		return counts, nil
	}
	created, failed, err := agreements.CreatePending(ctx, r.p.dv, r.p.log, r.p.batchSize, r.agreementOps[:n])
	r.agreementOps = append(r.agreementOps[:0], r.agreementOps[n:]...)
	counts.Agreements, counts.Failed = created, failed
	return counts, err
}

// needsPerson reports a mapping state that already asked a person to act: changing between them is not
// announced again.
func needsPerson(s schema.MappingStatus) bool {
	return s == schema.MappingUnmapped || s == schema.MappingAmbiguous
}

func providerAccountKey(provider, tenant uuid.UUID) dataverse.Key {
	return dataverse.Key{dataverse.LookupValue("csp_provider"): provider, "csp_tenantid": tenant.String()}
}

// mappingDecision is what the rules say about one customer, as the row records it.
type mappingDecision struct {
	mapping.Match
	outcome mapping.Outcome
	status  schema.MappingStatus
	message string
}

func (r *syncRun) decideMapping(ctx context.Context, pr schema.Provider, cust partnercenter.Customer) (mappingDecision, error) {
	if !pr.AutoMatch {
		m := mapping.Match{Outcome: mapping.NoMatch}
		return mappingDecision{Match: m, outcome: m.Outcome, status: schema.MappingUnmapped,
			message: fmt.Sprintf("Automatic matching is off for %s. Choose the account in Account.", pr.Name)}, nil
	}
	if r.accounts == nil {
		idx, err := r.p.loadAccounts(ctx)
		if err != nil {
			return mappingDecision{}, err
		}
		r.accounts = idx
	}
	m := r.accounts.Match(mapping.CustomerFacts{TenantID: cust.ID, Domain: cust.CompanyProfile.Domain, CompanyName: cust.CompanyProfile.CompanyName})
	d := mappingDecision{Match: m, outcome: m.Outcome, message: m.Message}
	switch m.Outcome {
	case mapping.Matched:
		d.status = schema.MappingAutoMapped
	case mapping.Ambiguous:
		d.status = schema.MappingAmbiguous
	default:
		d.status = schema.MappingUnmapped
	}
	return d, nil
}

// loadAccounts reads, in bulk and once per sync, what the matching rules need: active accounts, their
// contacts' e-mail addresses and the tenants other provider accounts already map to them.
func (p *Workflow) loadAccounts(ctx context.Context) (*mapping.AccountIndex, error) {
	byID := map[uuid.UUID]*mapping.AccountFacts{}
	var order []uuid.UUID
	q := &dataverse.Query{Select: []string{"accountid", "name", "websiteurl", "emailaddress1"}, Filter: dataverse.Eq("statecode", schema.StateActive), PageSize: 5000}
	for raw, err := range p.dv.List(ctx, schema.SetAccounts, q) {
		if err != nil {
			return nil, fmt.Errorf("read accounts for matching: %w", err)
		}
		var a schema.Account
		if err := dataverse.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		byID[a.ID] = &mapping.AccountFacts{ID: a.ID, Name: a.Name, Website: a.Website, Email: a.Email}
		order = append(order, a.ID)
	}
	q = &dataverse.Query{Select: []string{"emailaddress1", dataverse.LookupValue("parentcustomerid")},
		Filter: dataverse.And(dataverse.Eq("statecode", schema.StateActive), dataverse.NotNull("emailaddress1"), dataverse.NotNull(dataverse.LookupValue("parentcustomerid"))), PageSize: 5000}
	for raw, err := range p.dv.List(ctx, schema.SetContacts, q) {
		if err != nil {
			return nil, fmt.Errorf("read contacts for matching: %w", err)
		}
		var c schema.Contact
		if err := dataverse.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		if a := byID[c.ParentAccount.ID]; a != nil && c.Email != "" {
			a.ContactEmails = append(a.ContactEmails, c.Email)
		}
	}
	q = &dataverse.Query{Select: []string{"csp_tenantid", dataverse.LookupValue("csp_account")},
		Filter: dataverse.And(dataverse.NotNull(dataverse.LookupValue("csp_account")), dataverse.Eq("statecode", schema.StateActive)), PageSize: 5000}
	for raw, err := range p.dv.List(ctx, schema.SetProviderAccounts, q) {
		if err != nil {
			return nil, fmt.Errorf("read mapped provider accounts for matching: %w", err)
		}
		var pa schema.ProviderAccount
		if err := dataverse.Unmarshal(raw, &pa); err != nil {
			return nil, err
		}
		if a := byID[pa.Account.ID]; a != nil && pa.TenantID != "" && !slices.Contains(a.TenantIDs, pa.TenantID) {
			a.TenantIDs = append(a.TenantIDs, pa.TenantID)
		}
	}
	facts := make([]mapping.AccountFacts, 0, len(order))
	for _, id := range order {
		facts = append(facts, *byID[id])
	}
	return mapping.NewAccountIndex(facts), nil
}

// activeTemplates are the provider's active agreement templates: each mapped row gets a Pending agreement
// of each.
func (p *Workflow) activeTemplates(ctx context.Context, provider dataverse.GUID) ([]schema.AgreementTemplate, error) {
	var ts []schema.AgreementTemplate
	q := &dataverse.Query{Select: []string{"csp_agreementtemplateid", "csp_name"}, Filter: dataverse.And(dataverse.LookupEq("csp_provider", provider), dataverse.Eq("statecode", schema.StateActive))}
	for raw, err := range p.dv.List(ctx, schema.SetAgreementTemplates, q) {
		if err != nil {
			return nil, fmt.Errorf("read agreement templates: %w", err)
		}
		var t schema.AgreementTemplate
		if err := dataverse.Unmarshal(raw, &t); err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// agreementHolders returns, sorted, the provider accounts that have an agreement of the template (any
// state: one deactivated on purpose is not recreated).
func (p *Workflow) agreementHolders(ctx context.Context, template uuid.UUID) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	q := &dataverse.Query{Select: []string{dataverse.LookupValue("csp_provideraccount")}, PageSize: 5000, Filter: dataverse.LookupEq("csp_agreementtemplate", template)}
	for raw, err := range p.dv.List(ctx, schema.SetAgreements, q) {
		if err != nil {
			return nil, fmt.Errorf("read agreements of template %s: %w", template, err)
		}
		if ref, ok := raw.Lookup("csp_provideraccount"); ok {
			ids = append(ids, ref.ID)
		}
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ids, nil
}

func sortedHas(ids []uuid.UUID, id uuid.UUID) bool {
	_, ok := slices.BinarySearchFunc(ids, id, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ok
}

// deactivateGone sets Inactive the active rows whose customer Partner Center no longer lists (the
// relationship was removed), and their agreements.
func (r *syncRun) deactivateGone(ctx context.Context, existing []existingRow) (SyncCounts, error) {
	p := r.p
	var counts SyncCounts
	var gone []uuid.UUID
	for _, ex := range existing {
		if !ex.seen && ex.active {
			gone = append(gone, ex.id)
		}
	}
	inactive := dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.StatusInactive}
	for part := range slices.Chunk(gone, p.batchSize) {
		ops := make([]dataverse.Op, len(part))
		for i, id := range part {
			ops[i] = dataverse.UpdateOp(schema.SetProviderAccounts, id, inactive, nil)
		}
		results, err := p.dv.WriteBatch(ctx, ops)
		if err != nil {
			return counts, fmt.Errorf("deactivate provider accounts: %w", err)
		}
		var done []uuid.UUID
		for i, res := range results {
			if res.Err != nil {
				counts.Failed++
				p.log.Warn("deactivating a provider account failed", "provider_account", part[i], "error", res.Err)
				continue
			}
			counts.Deactivated++
			done = append(done, part[i])
		}
		if _, err := p.deactivateAgreements(ctx, done); err != nil {
			return counts, err
		}
	}
	return counts, nil
}

// deactivateAgreements sets Inactive the active agreements of the given provider accounts. It reads them in
// groups (one query per 50 accounts) and writes them in batches.
func (p *Workflow) deactivateAgreements(ctx context.Context, providerAccounts []uuid.UUID) (int, error) {
	var n int
	inactive := dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.StatusInactive}
	for group := range slices.Chunk(providerAccounts, 50) {
		of := make([]dataverse.Filter, len(group))
		for i, id := range group {
			of[i] = dataverse.LookupEq("csp_provideraccount", id)
		}
		var ops []dataverse.Op
		q := &dataverse.Query{Select: []string{"csp_agreementid"}, Filter: dataverse.And(dataverse.Eq("statecode", schema.StateActive), dataverse.Or(of...))}
		for raw, err := range p.dv.List(ctx, schema.SetAgreements, q) {
			if err != nil {
				return n, fmt.Errorf("read agreements to deactivate: %w", err)
			}
			id, _ := raw.GUID("csp_agreementid")
			ops = append(ops, dataverse.UpdateOp(schema.SetAgreements, id, inactive, nil))
		}
		for part := range slices.Chunk(ops, p.batchSize) {
			results, err := p.dv.WriteBatch(ctx, part)
			if err != nil {
				return n, fmt.Errorf("deactivate agreements: %w", err)
			}
			for _, res := range results {
				if res.Err != nil {
					p.log.Warn("deactivating an agreement failed", "error", res.Err)
					continue
				}
				n++
			}
		}
	}
	return n, nil
}

// announceAgain collects the notice of a row an earlier sync made need a person but did not announce.
func (r *syncRun) announceAgain(pr schema.Provider, ex *existingRow, cust partnercenter.Customer) {
	m := mapping.Match{Outcome: mapping.NoMatch, Message: ex.unannouncedMessage}
	if ex.status == schema.MappingAmbiguous {
		m.Outcome = mapping.Ambiguous
	}
	r.p.log.Info("announcing a provider account an earlier sync left unannounced", "provider_account", ex.id)
	r.needsMapping(pr, ex.id, cust, m)
}

// needsMapping collects the notice for a row a person must map.
func (r *syncRun) needsMapping(pr schema.Provider, id uuid.UUID, cust partnercenter.Customer, m mapping.Match) {
	r.needingCount++
	r.announced = append(r.announced, id)
	if len(r.needing) > r.p.digestOver {
		return
	}
	status := "Unmapped"
	if m.Outcome == mapping.Ambiguous {
		status = "Ambiguous"
	}
	candidates := make([]map[string]any, 0, len(m.Candidates))
	for _, c := range m.Candidates {
		candidates = append(candidates, map[string]any{"accountId": c.Account.String(), "name": c.Name, "score": c.Score, "reasons": c.Reasons})
	}
	name := cmp.Or(cust.CompanyProfile.CompanyName, cust.CompanyProfile.Domain, cust.ID)
	r.needing = append(r.needing, notify.Notification{
		Type: notify.ProviderAccountNeedsMapping,
		Notice: notify.Notice{
			Title: fmt.Sprintf("Map %s to an account", name),
			Body:  m.Message, Icon: notify.NoticeWarning, Table: schema.TableProviderAccount, RowID: id,
		},
		Data: map[string]any{
			"providerAccountId": id.String(), "providerId": pr.ID.String(), "provider": pr.Name,
			"tenantId": cust.ID, "companyName": cust.CompanyProfile.CompanyName, "domain": cust.CompanyProfile.Domain,
			"mappingStatus": status, "candidates": candidates,
		},
	})
}

// markAnnounced records on the rows whose notice went out that it did: a row still without the mark needs
// announcing by a later sync.
//
// API: POST /$batch of PATCH csp_provideraccounts({id}) {"csp_mappingnoticedon": now}, several at once
func (r *syncRun) markAnnounced(ctx context.Context) error {
	if r.p.publish == nil || len(r.announced) == 0 {
		return nil
	}
	now := r.p.now().UTC()
	for part := range slices.Chunk(r.announced, r.p.batchSize*r.p.dv.Options().BulkConcurrency) {
		ops := make([]dataverse.Op, len(part))
		for i, id := range part {
			ops[i] = dataverse.UpdateOp(schema.SetProviderAccounts, id, dataverse.Row{"csp_mappingnoticedon": now}, nil)
		}
		results, err := r.p.dv.WriteBatches(ctx, ops, r.p.batchSize)
		if err != nil {
			return fmt.Errorf("record the notices sent: %w", err)
		}
		for _, res := range results {
			if res.Err != nil && !dataverse.IsNotFound(res.Err) {
				r.p.log.Warn("could not record a notice as sent; the next sync announces the row again", "error", res.Err)
			}
		}
	}
	return nil
}

// notify sends what the sync collected: one notification per row, or one digest when there are more than
// DigestOver.
func (r *syncRun) notify(context.Context) {
	p := r.p
	if p.publish == nil || r.needingCount == 0 {
		return
	}
	if r.needingCount <= p.digestOver {
		kept := r.announced[:0]
		for _, n := range r.needing {
			if p.publish(n) {
				kept = append(kept, n.RowID)
			}
		}
		r.announced = kept
		return
	}
	var names []string
	for _, n := range r.needing[:min(len(r.needing), 10)] {
		names = append(names, fmt.Sprint(n.Data["companyName"]))
	}
	more := ""
	if r.needingCount > len(names) {
		more = fmt.Sprintf(" and %d more", r.needingCount-len(names))
	}
	if !p.publish(notify.Notification{
		Type: notify.ProviderAccountNeedsMapping,
		Notice: notify.Notice{
			Title: fmt.Sprintf("%d provider accounts need mapping", r.needingCount),
			Body: fmt.Sprintf("The provider account sync could not map %d customers to accounts by itself: %s%s. Open Provider Accounts, view Unmapped and Ambiguous, and choose each one's account.",
				r.needingCount, strings.Join(names, ", "), more),
			Icon: notify.NoticeWarning,
		},
		Data: map[string]any{"digest": true, "count": r.needingCount},
	}) {
		r.announced = nil // not kept: the next sync announces them again
	}
}

// Triggers are the events the handler needs: a person creates a provider account, sets or
// clears its Account, or deactivates it. The sync's own writes are write-backs.
func Triggers() []work.Trigger {
	writeBack := []string{"csp_account", "csp_automappedaccount", "csp_mappingstatus", "csp_mappingmessage", "csp_name", "csp_domain", "csp_companyname",
		"csp_relationship", "csp_lastsyncedon", "statecode", "statuscode"}
	return []work.Trigger{
		{Table: schema.TableProviderAccount, Message: "Create", WriteBack: writeBack},
		{Table: schema.TableProviderAccount, Message: "Update", WriteBack: writeBack, Columns: []string{"csp_account", "statecode"}},
	}
}

// Handle reconciles one provider account after a person changed it: an Account set by hand makes the row
// Mapped (the rules never change it again) and gives it the Pending agreements of its provider's active
// templates; an Account removed by hand makes it Unmapped, left to people, with a notification; a row
// made Inactive has its agreements made Inactive.
func (p *Workflow) Handle(ctx context.Context, w work.Batch) error {
	raw, err := p.dv.Get(ctx, schema.SetProviderAccounts, w.Key.ID, &dataverse.GetOptions{Select: dataverse.Columns[schema.ProviderAccount]()})
	if dataverse.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var pa schema.ProviderAccount
	if err := dataverse.Unmarshal(raw, &pa); err != nil {
		return err
	}
	if pa.State != schema.StateActive {
		_, err := p.deactivateAgreements(ctx, []uuid.UUID{pa.ID})
		return err
	}
	// Who set the account is decided from the row, never from what an event says changed (an event can be
	// forged or stale): on an Auto-mapped row, an Account other than the one the connector chose was set by
	// a person. A row auto-mapped before the connector recorded its choice counts as the connector's.
	byHand := pa.MappingStatus == schema.MappingAutoMapped && !pa.AutoMappedAccount.IsZero() && pa.AutoMappedAccount.ID != pa.Account.ID
	now := p.now().UTC()
	if !pa.Account.IsZero() {
		if pa.MappingStatus != schema.MappingMapped && (byHand || pa.MappingStatus != schema.MappingAutoMapped) {
			_, err := p.dv.Update(ctx, schema.SetProviderAccounts, pa.ID, dataverse.Row{
				"csp_mappingstatus": schema.MappingMapped, "csp_mappingmessage": fmt.Sprintf("Mapped by hand on %s.", mapping.FormatTime(now)),
			}, &dataverse.UpdateOptions{IfMatch: pa.ETag})
			if err != nil {
				return fmt.Errorf("provider account %s: record the mapping: %w", pa.ID, err)
			}
		}
		templates, err := p.activeTemplates(ctx, pa.Provider.ID)
		if err != nil {
			return err
		}
		ops := make([]dataverse.Op, len(templates))
		for i, t := range templates {
			ops[i] = agreements.PendingOp(pa.ID, pa.Account.ID, t, cmp.Or(pa.CompanyName, pa.Name))
		}
		n, failed, err := agreements.CreatePending(ctx, p.dv, p.log, p.batchSize, ops)
		if err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("provider account %s: %d Pending agreement(s) could not be created", pa.ID, failed)
		}
		if n > 0 {
			p.log.Info("Pending agreements created for a mapped provider account", "provider_account", pa.ID, "created", n)
		}
		return nil
	}
	if pa.MappingStatus != schema.MappingMapped && pa.MappingStatus != schema.MappingAutoMapped {
		return nil
	}
	msg := fmt.Sprintf("%s on %s. Choose the right one in Account; automatic matching leaves this row to people.", clearedByHand, mapping.FormatTime(now))
	if _, err := p.dv.Update(ctx, schema.SetProviderAccounts, pa.ID, dataverse.Row{"csp_mappingstatus": schema.MappingUnmapped, "csp_mappingmessage": msg,
		"csp_mappingnoticedon": nil}, &dataverse.UpdateOptions{IfMatch: pa.ETag}); err != nil {
		return fmt.Errorf("provider account %s: record the removed mapping: %w", pa.ID, err)
	}
	if p.publish != nil {
		name := cmp.Or(pa.CompanyName, pa.Name, pa.TenantID)
		kept := p.publish(notify.Notification{Type: notify.ProviderAccountNeedsMapping,
			Notice: notify.Notice{Title: fmt.Sprintf("Map %s to an account", name), Body: msg, Icon: notify.NoticeWarning, Table: schema.TableProviderAccount, RowID: pa.ID},
			Data: map[string]any{"providerAccountId": pa.ID.String(), "providerId": pa.Provider.ID.String(), "tenantId": pa.TenantID,
				"companyName": pa.CompanyName, "domain": pa.Domain, "mappingStatus": "Unmapped"}})
		if !kept {
			return nil // the next sync announces it
		}
		if _, err := p.dv.Update(ctx, schema.SetProviderAccounts, pa.ID, dataverse.Row{"csp_mappingnoticedon": now}, nil); err != nil {
			p.log.Warn("could not record the notice as sent; the next sync announces the row again", "provider_account", pa.ID, "error", err)
		}
	}
	return nil
}
