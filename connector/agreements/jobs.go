package agreements

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/request"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// Waiting lists the agreements waiting on the customer: active, Pending, and Not started, Link sent or
// Customer accepted (Expired and Failed rows wait for a person).
func (g *Workflow) Waiting(ctx context.Context) ([]dataverse.GUID, error) {
	var ids []dataverse.GUID
	q := &dataverse.Query{Select: []string{"csp_agreementid"}, PageSize: 5000, Filter: dataverse.And(
		dataverse.Eq("statecode", schema.StateActive), dataverse.Eq("statuscode", schema.AgreementPending),
		dataverse.In("csp_attestationstatus", schema.AttestationNotStarted, schema.AttestationLinkSent, schema.AttestationCustomerAccepted))}
	for raw, err := range g.dv.List(ctx, schema.SetAgreements, q) {
		if err != nil {
			return nil, fmt.Errorf("attestation check: list waiting agreements: %w", err)
		}
		id, _ := raw.GUID("csp_agreementid")
		ids = append(ids, id)
	}
	return ids, nil
}

// CheckJob is the Attestation Check: every waiting agreement goes through the work queue, where each is
// checked against Partner Center (in parallel up to the workers, under the client's per-tenant limit).
func (g *Workflow) CheckJob(every time.Duration) jobs.Job {
	return jobs.Job{Name: AttestationCheckJob, Schedule: every, Run: func(ctx context.Context) (jobs.RunCounts, error) {
		ids, err := g.Waiting(ctx)
		if err != nil {
			return jobs.RunCounts{}, err
		}
		if len(ids) > 0 {
			if g.wake != nil {
				g.wake(ctx, ids)
			} else {
				for _, id := range ids {
					if err := g.Handle(ctx, work.Batch{Key: work.Key{Table: schema.TableAgreement, ID: id}}); err != nil {
						return jobs.RunCounts{Processed: len(ids)}, err
					}
				}
			}
		}
		return jobs.RunCounts{Processed: len(ids), Summary: fmt.Sprintf("%d agreement(s) waiting on the customer submitted for checking", len(ids))}, nil
	}}
}

// CreateForTemplate creates a Pending agreement of the template for every active provider account of its
// provider that is mapped to an account and has none yet (signed-by and date left empty), in batches. It
// reads the accounts and the template's existing agreements once; each create is an upsert by the
// agreement's alternate key that only creates, so a retry or a second replica cannot double one.
func (g *Workflow) CreateForTemplate(ctx context.Context, templateID dataverse.GUID) (created, existing int, err error) {
	started := g.now().UTC()
	t, err := g.template(ctx, templateID)
	if err != nil {
		return 0, 0, fmt.Errorf("create agreements: read template %s: %w", templateID, err)
	}
	if t.State != schema.StateActive {
		return 0, 0, g.templateMessage(ctx, t, started, "This template is inactive: activate it before creating agreements.")
	}
	if t.Provider.IsZero() {
		return 0, 0, g.templateMessage(ctx, t, started, "This template has no provider: set its Provider, then press Create Agreements again.")
	}
	have := map[uuid.UUID]bool{}
	q := &dataverse.Query{Select: []string{dataverse.LookupValue("csp_provideraccount")}, PageSize: 5000, Filter: dataverse.LookupEq("csp_agreementtemplate", t.ID)}
	for raw, err := range g.dv.List(ctx, schema.SetAgreements, q) {
		if err != nil {
			return 0, 0, fmt.Errorf("create agreements: read existing agreements: %w", err)
		}
		if ref, ok := raw.Lookup("csp_provideraccount"); ok {
			have[ref.ID] = true
		}
	}
	var ops []dataverse.Op
	q = &dataverse.Query{Select: []string{"csp_provideraccountid", "csp_name", "csp_companyname", "csp_tenantid", dataverse.LookupValue("csp_account")}, PageSize: 5000,
		Filter: dataverse.And(dataverse.LookupEq("csp_provider", t.Provider.ID), dataverse.Eq("statecode", schema.StateActive), dataverse.NotNull(dataverse.LookupValue("csp_account")))}
	for raw, err := range g.dv.List(ctx, schema.SetProviderAccounts, q) {
		if err != nil {
			return 0, 0, fmt.Errorf("create agreements: read provider accounts: %w", err)
		}
		var pa schema.ProviderAccount
		if err := dataverse.Unmarshal(raw, &pa); err != nil {
			return 0, 0, err
		}
		if have[pa.ID] {
			existing++
			continue
		}
		ops = append(ops, PendingOp(pa.ID, pa.Account.ID, t, cmp.Or(pa.CompanyName, pa.Name, pa.TenantID)))
	}
	created, failed, err := CreatePending(ctx, g.dv, g.log, g.batchSize, ops)
	if err != nil {
		return created, existing, err
	}
	msg := fmt.Sprintf("On %s: %d Pending agreement(s) created, %d mapped provider account(s) had one already.", mapping.FormatTime(g.now()), created, existing)
	if failed > 0 {
		msg += fmt.Sprintf(" %d could not be created (see the connector's log); press Create Agreements again to retry them.", failed)
	}
	return created, existing, g.templateMessage(ctx, t, started, msg)
}

// createRequestedColumn is csp_createrequestedon's display name, for messages.
const createRequestedColumn = "Create agreements requested on"

// templateMessage writes what the run did, records when it started as when the request was done, and
// clears the Create Agreements request the run answered (t is the template as the run read it at its
// start). A request set again while the run went on is later than that start: it stays, for a run of its
// own, which the done time (the start, not the end) lets through.
func (g *Workflow) templateMessage(ctx context.Context, t schema.AgreementTemplate, started time.Time, msg string) error {
	served, done := t.CreateRequestedOn, started
	if request.InFuture(served, done) {
		msg += " " + request.FutureNote(createRequestedColumn, served, done, "the agreements were created")
	}
	for attempt := 0; ; attempt++ {
		changes := dataverse.Row{"csp_createmessage": schema.Fit(schema.TableAgreementTemplate, "csp_createmessage", msg), "csp_createdoneon": done}
		if !served.IsZero() && t.CreateRequestedOn.Equal(served) {
			changes["csp_createrequestedon"] = nil
		}
		_, err := g.dv.Update(ctx, schema.SetAgreementTemplates, t.ID, changes, &dataverse.UpdateOptions{IfMatch: t.ETag})
		if !dataverse.IsConflict(err) || attempt == 2 {
			return err
		}
		if t, err = g.template(ctx, t.ID); err != nil {
			return err
		}
	}
}

func (g *Workflow) template(ctx context.Context, id dataverse.GUID) (schema.AgreementTemplate, error) {
	raw, err := g.dv.Get(ctx, schema.SetAgreementTemplates, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.AgreementTemplate]()})
	if err != nil {
		return schema.AgreementTemplate{}, err
	}
	var t schema.AgreementTemplate
	return t, dataverse.Unmarshal(raw, &t)
}

// HandleTemplate is the work handler of the template's Create Agreements button.
// It is level-triggered: a request later than the last finished run is carried out (at once, even one
// dated in the future) and cleared, so the event of a request and the API's own submission of it (or a
// redelivered event) run it once; a request dated no later than the last run is answered on the row.
func (g *Workflow) HandleTemplate(ctx context.Context, w work.Batch) error {
	t, err := g.template(ctx, w.Key.ID)
	if dataverse.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	switch request.Of(t.CreateRequestedOn, t.CreateDoneOn) {
	case request.None:
		return nil
	case request.Stale:
		note := request.StaleNote(createRequestedColumn, t.CreateRequestedOn, t.CreateDoneOn, "agreements were created",
			"To create agreements again, press Create Agreements (it sets Create agreements requested on to now).")
		_, err := g.dv.Update(ctx, schema.SetAgreementTemplates, t.ID, dataverse.Row{"csp_createrequestedon": nil,
			"csp_createmessage": request.WithNote(note, createRequestedColumn, t.CreateMessage)}, &dataverse.UpdateOptions{IfMatch: t.ETag})
		if dataverse.IsConflict(err) || dataverse.IsNotFound(err) {
			return nil // changed meanwhile: its own event looks again
		}
		return err
	}
	_, _, err = g.CreateForTemplate(ctx, w.Key.ID)
	if dataverse.IsNotFound(err) {
		return nil
	}
	return err
}

// CreationPending reports whether a template's Create Agreements request has not been carried out yet:
// one later than the last run (the run clears the request it carries out).
func CreationPending(t schema.AgreementTemplate) bool {
	return request.Of(t.CreateRequestedOn, t.CreateDoneOn) == request.Waiting
}

// PendingOp creates the Pending agreement of a provider account for a template, by the agreement's
// alternate key and only if there is none: a retry, a second replica or an agreement made earlier (even
// one deactivated since) is left as it is.
func PendingOp(providerAccount, account uuid.UUID, template schema.AgreementTemplate, customer string) dataverse.Op {
	row := dataverse.Row{
		"csp_name":                         schema.Fit(schema.TableAgreement, "csp_name", cmp.Or(template.Name, "Agreement")+" – "+customer),
		"csp_provideraccount@odata.bind":   dataverse.Bind(schema.SetProviderAccounts, providerAccount),
		"csp_agreementtemplate@odata.bind": dataverse.Bind(schema.SetAgreementTemplates, template.ID),
		"csp_attestationstatus":            schema.AttestationNotStarted,
		"statuscode":                       schema.AgreementPending,
	}
	if account != uuid.Nil {
		row["csp_account@odata.bind"] = dataverse.Bind(schema.SetAccounts, account)
	}
	key := dataverse.Key{dataverse.LookupValue("csp_provideraccount"): providerAccount, dataverse.LookupValue("csp_agreementtemplate"): template.ID}
	return dataverse.UpsertOp(schema.SetAgreements, key, row, &dataverse.UpsertOptions{Mode: dataverse.UpsertCreateOnly, PrimaryKey: schema.PrimaryKey(schema.TableAgreement)})
}

// CreatePending runs PendingOps in batches of batchSize; an agreement that exists already is
// not a failure.
func CreatePending(ctx context.Context, dv *dataverse.Client, log *slog.Logger, batchSize int, ops []dataverse.Op) (created, failed int, err error) {
	// Several $batches at once (WriteBatches): Dataverse's execution time budget allows about four large
	// ones in flight.
	for part := range slices.Chunk(ops, batchSize*dv.Options().BulkConcurrency) {
		results, err := dv.WriteBatches(ctx, part, batchSize)
		if err != nil {
			for _, res := range results {
				if res.Err == nil {
					created++
				}
			}
			return created, failed, fmt.Errorf("create agreements: %w", err)
		}
		for _, res := range results {
			switch {
			case res.Err == nil:
				created++
			case dataverse.IsConflict(res.Err) || dataverse.IsDuplicate(res.Err):
			default:
				failed++
				log.Warn("creating a Pending agreement failed", "error", res.Err)
			}
		}
	}
	return created, failed, nil
}
