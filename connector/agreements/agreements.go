package agreements

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/request"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// AttestationCheckJob is the job's name on its csp_job row.
const AttestationCheckJob = "Attestation Check"

// DefaultLinkLifetime and MaxLinkLifetime bound the connector's count of an acceptance link's life when
// Partner Center does not say: Microsoft publishes no lifetime, and the peers that do cap theirs at seven
// days (CloudCockpit takes 5 to 10080 minutes).
const (
	DefaultLinkLifetime = 7 * 24 * time.Hour
	MinLinkLifetime     = 5 * time.Minute
	MaxLinkLifetime     = 7 * 24 * time.Hour
)

// Workflow drives the Microsoft Customer Agreement for each customer: it requests acceptance
// links through the enhanced attestation API (for partner attestations too, since the legacy form was
// retired on 5 January 2026), checks what the customer did, creates Pending agreements for a template in bulk, and records how and when each
// customer accepted. Make one with New.
type Workflow struct {
	// DV is the Dataverse client the workflow reads and writes with (the HTTP API's link request writes
	// the row through it before handing the row to Handle).
	dv *dataverse.Client

	pc           *partnercenter.Client
	publish      func(notify.Notification)
	noticeUser   func(ctx context.Context, user dataverse.GUID, n notify.Notice) error
	wake         func(ctx context.Context, ids []dataverse.GUID)
	batchSize    int
	callTimeout  time.Duration
	linkLifetime time.Duration
	now          func() time.Time
	log          *slog.Logger
}

// Options are a Workflow's optional collaborators and settings; the zero value is ready to use.
type Options struct {
	// Publish publishes an event through the notifications service, for flows (an agreement accepted);
	// nil publishes none.
	Publish func(notify.Notification)
	// NoticeUser sends an in-app notice directly to one user (the admin who asked for a link); nil sends
	// none.
	NoticeUser func(ctx context.Context, user dataverse.GUID, n notify.Notice) error
	// Wake submits agreement rows to the work queue (the check job's); nil checks them in line.
	Wake func(ctx context.Context, ids []dataverse.GUID)
	// BatchSize is the operations per $batch of bulk creates (default dataverse.DefaultBatchSize).
	BatchSize int
	// CallTimeout bounds each Partner Center call, so a long Retry-After does not hold a worker (default
	// 60 s).
	CallTimeout time.Duration
	// LinkLifetime is how long the connector counts an acceptance link as open when Partner Center does not
	// say when it expires (default DefaultLinkLifetime, kept between MinLinkLifetime and MaxLinkLifetime).
	// It is the connector's own bookkeeping: no source documents a lifetime field Partner Center would
	// accept, so none is sent (partnercenter/attestation.go).
	LinkLifetime time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the workflow's logs (default: discarded).
	Logger *slog.Logger
}

// New returns the agreements workflow of dv and pc. A nil opts is the defaults.
func New(dv *dataverse.Client, pc *partnercenter.Client, opts *Options) *Workflow {
	var o Options
	if opts != nil {
		o = *opts
	}
	g := &Workflow{dv: dv, pc: pc, publish: o.Publish, noticeUser: o.NoticeUser, wake: o.Wake,
		batchSize:    cmp.Or(o.BatchSize, dataverse.DefaultBatchSize),
		callTimeout:  cmp.Or(o.CallTimeout, 60*time.Second),
		linkLifetime: min(max(cmp.Or(o.LinkLifetime, DefaultLinkLifetime), MinLinkLifetime), MaxLinkLifetime),
		now:          o.Now, log: o.Logger}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	return g
}

// load reads the row and what the check needs, in one request: the row with its provider account and
// template expanded ($expand of the two lookups). It leaves f.Provider nil: only a link request reads the
// provider (withProvider), and the check runs on thousands of rows an hour.
func (g *Workflow) load(ctx context.Context, id dataverse.GUID) (mapping.AgreementFacts, error) {
	var f mapping.AgreementFacts
	raw, err := g.dv.Get(ctx, schema.SetAgreements, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Agreement](), Expand: []dataverse.Expand{
		{Nav: "csp_provideraccount", Select: dataverse.Columns[schema.ProviderAccount]()},
		{Nav: "csp_agreementtemplate", Select: dataverse.Columns[schema.AgreementTemplate]()},
	}})
	if err != nil {
		return f, err
	}
	if err := dataverse.Unmarshal(raw, &f.Agreement); err != nil {
		return f, err
	}
	if row, ok := raw.Expanded("csp_provideraccount"); ok && !f.Agreement.ProviderAccount.IsZero() {
		f.ProviderAccount = &schema.ProviderAccount{}
		if err := dataverse.Unmarshal(row, f.ProviderAccount); err != nil {
			return f, err
		}
	}
	if row, ok := raw.Expanded("csp_agreementtemplate"); ok && !f.Agreement.Template.IsZero() {
		f.Template = &schema.AgreementTemplate{}
		if err := dataverse.Unmarshal(row, f.Template); err != nil {
			return f, err
		}
	}
	return f, nil
}

// withProvider reads the provider of the agreement (providerID) into f.Provider, for what checks the
// provider's type and state: a link request, a partner attestation, a diagnosis. A provider that no longer
// exists leaves it nil.
func (g *Workflow) withProvider(ctx context.Context, f *mapping.AgreementFacts) error {
	id := providerID(*f)
	if id == (dataverse.GUID{}) {
		return nil
	}
	raw, err := g.dv.Get(ctx, schema.SetProviders, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Provider]()})
	switch {
	case dataverse.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	var p schema.Provider
	if err := dataverse.Unmarshal(raw, &p); err != nil {
		return err
	}
	f.Provider = &p
	return nil
}

// providerID is the agreement's provider: its template's, else its provider account's (zero: neither
// names one).
func providerID(f mapping.AgreementFacts) dataverse.GUID {
	if f.Template != nil && f.Template.Provider.ID != (dataverse.GUID{}) {
		return f.Template.Provider.ID
	}
	if f.ProviderAccount != nil {
		return f.ProviderAccount.Provider.ID
	}
	return dataverse.GUID{}
}

// Triggers are the events that wake the workflow: an admin asks for a link (or records a partner
// attestation) by setting the attestation status, and a Diagnose request (answered, and nothing else done).
func Triggers() []work.Trigger {
	return []work.Trigger{
		{Table: schema.TableAgreement, Message: "Update", Columns: []string{"csp_attestationstatus", request.DiagnoseColumn},
			WriteBack: []string{"csp_attestationstatus", "csp_acceptancepath", "csp_attestationid", "csp_acceptanceurl", "csp_linkexpireson",
				"csp_dateagreed", "csp_verifiedon", "csp_attestationmessage", "csp_systemmessage", "statecode", "statuscode",
				request.DiagnoseColumn, request.DiagnosisColumn}},
	}
}

// TemplateTriggers wake the bulk create: the template's Create Agreements button sets csp_createrequestedon.
func TemplateTriggers() []work.Trigger {
	return []work.Trigger{{Table: schema.TableAgreementTemplate, Message: "Update", Columns: []string{"csp_createrequestedon"},
		WriteBack: []string{"csp_createmessage", "csp_createdoneon", "csp_createrequestedon"}}}
}

// Handle reconciles one agreement row: a requested link or partner attestation is carried out; a row
// waiting on the customer is checked; an accepted row is only re-verified (never moved back).
func (g *Workflow) Handle(ctx context.Context, w work.Batch) error {
	if request.DiagnoseAsked(w.Events) {
		err := request.AnswerDiagnosis(ctx, g.dv, schema.TableAgreement, schema.SetAgreements, w.Key.ID, func(ctx context.Context) (string, error) {
			d, err := g.Diagnose(ctx, w.Key.ID)
			return d.Text(), err
		})
		if err != nil || request.OnlyDiagnose(w.Events, w.Sources, []string{"csp_attestationstatus"}) {
			return err
		}
	}
	f, err := g.load(ctx, w.Key.ID)
	if dataverse.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	a := f.Agreement
	if a.State != schema.StateActive {
		return nil // deactivated: no further checks
	}
	if a.AttestationStatus == schema.AttestationLinkRequested {
		if err := g.withProvider(ctx, &f); err != nil {
			return err
		}
	}
	switch {
	case a.AttestationStatus == schema.AttestationLinkRequested && a.AcceptancePath == schema.AcceptancePartnerAttestation:
		return g.partnerAttestation(ctx, f, requester(w))
	case a.AttestationStatus == schema.AttestationLinkRequested:
		return g.requestLink(ctx, f, requester(w))
	case a.Status == schema.StatusActive:
		return g.reverify(ctx, f)
	case mapping.WaitingForCustomer(a):
		return g.check(ctx, f)
	}
	return nil
}

// requester is the person whose change asked for the work (the admin who set Link requested).
func requester(w work.Batch) dataverse.GUID {
	for _, ev := range slices.Backward(w.Events) {
		if ev.InitiatingUserID != (dataverse.GUID{}) {
			return ev.InitiatingUserID
		}
	}
	return dataverse.GUID{}
}

// write changes the row (If-Match: an admin's edit since the read wins; the next event or check decides
// again). It writes nothing when the row already says it.
func (g *Workflow) write(ctx context.Context, a schema.Agreement, changes dataverse.Row) error {
	schema.FitRow(schema.TableAgreement, changes) // messages carry error text of any length
	current, err := dataverse.Marshal(a)
	if err != nil {
		return err
	}
	for k, v := range changes {
		if cur, ok := current[k]; ok && sameValue(cur, v) {
			delete(changes, k)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	_, err = g.dv.Update(ctx, schema.SetAgreements, a.ID, changes, &dataverse.UpdateOptions{IfMatch: a.ETag})
	if dataverse.IsConflict(err) {
		return nil // changed since it was read: that change's event brings the row back
	}
	if err != nil {
		return fmt.Errorf("agreement %s: %w", a.ID, err)
	}
	return nil
}

func sameValue(a, b any) bool {
	if b == nil {
		switch v := a.(type) {
		case nil:
			return true
		case string:
			return v == ""
		case time.Time:
			return v.IsZero()
		}
		return false
	}
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// requestLink validates the request, then creates the enhanced attestation and stores its link, unless one
// is still open. The MS-RequestId is derived from the row and the attestation it replaces, so a retry after
// a crash gets Partner Center's first answer instead of a second attestation.
func (g *Workflow) requestLink(ctx context.Context, f mapping.AgreementFacts, who dataverse.GUID) error {
	a := f.Agreement
	now := g.now()
	if problems := mapping.LinkRequestProblems(f); len(problems) > 0 {
		return g.write(ctx, a, dataverse.Row{"csp_attestationstatus": int(schema.AttestationFailed),
			"csp_attestationmessage": "The link was not requested: " + strings.Join(problems, " ") + " Correct this, then set Attestation status to Link requested again."})
	}
	if a.AttestationID != "" {
		att, err := g.getAttestation(ctx, a.AttestationID)
		if err != nil {
			return g.callFailed(ctx, f, err)
		}
		expires := cmp.Or(att.ExpiresAt, a.LinkExpiresOn)
		if !att.Status.Is(partnercenter.AttestationExpired) && !(att.Status.Is(partnercenter.AttestationPending) && !expires.IsZero() && expires.Before(now)) {
			// Never a second attestation while one is open: check the open one instead.
			return g.applyCheck(ctx, f, mapping.CheckInput{Attestation: &att})
		}
	}
	tenant := f.ProviderAccount.TenantID
	req := partnercenter.AttestationRequest{
		CustomerTenantID: tenant, Country: strings.ToUpper(strings.TrimSpace(a.SignatoryCountry)), Language: strings.TrimSpace(a.SignatoryLanguage),
		CompanyName:        strings.TrimSpace(cmp.Or(a.SignatoryCompany, f.ProviderAccount.CompanyName)),
		SignatoryFirstName: strings.TrimSpace(a.SignatoryFirstName), SignatoryLastName: strings.TrimSpace(a.SignatoryLastName),
		SignatoryEmail: strings.TrimSpace(a.SignatoryEmail), SignatoryPhone: strings.TrimSpace(a.SignatoryPhone),
	}
	reqID := uuid.NewSHA1(uuid.NameSpaceOID, []byte("attestation:"+a.ID.String()+":"+a.AttestationID)).String()
	cctx, cancel := context.WithTimeout(partnercenter.WithRequestID(ctx, reqID), g.callTimeout)
	att, err := g.pc.CreateAttestation(cctx, req)
	cancel()
	if err != nil {
		return g.callFailed(ctx, f, err)
	}
	if att.ExpiresAt.IsZero() {
		// Partner Center did not say: the connector counts the link's life itself.
		att.ExpiresAt = cmp.Or(att.CreatedAt, now).Add(g.linkLifetime)
	}
	url := partnercenter.AcceptanceURL(att.ID)
	msg := mapping.LinkSentMessage(a, att, url)
	if err := g.write(ctx, a, dataverse.Row{
		"csp_attestationstatus": int(schema.AttestationLinkSent), "csp_acceptancepath": int(mapping.LinkPath(a)),
		"csp_attestationid": att.ID, "csp_acceptanceurl": url, "csp_linkexpireson": nullTime(att.ExpiresAt),
		"csp_attestationmessage": msg, "csp_systemmessage": nil,
	}); err != nil {
		return err
	}
	if g.noticeUser != nil && who != (dataverse.GUID{}) {
		if err := g.noticeUser(ctx, who, notify.Notice{Title: "Acceptance link for " + agreementName(f), Body: msg + " " + url,
			Icon: notify.NoticeInfo, Table: schema.TableAgreement, RowID: a.ID}); err != nil {
			g.log.Warn("could not send the link to the requester", "agreement", a.ID, "error", err)
		}
	}
	return nil
}

// partnerAttestation serves a link request whose Acceptance path is Partner attestation. Microsoft retired
// the legacy partner attestation (signatory and date recorded through create agreement, the Partner Center
// attestation page, the bulk tool) on 5 January 2026: a partner who holds evidence of the customer's
// acceptance now attests through the enhanced flow like everyone else (create the attestation, the
// signatory accepts on Microsoft's page, the agreement is created with the attestation id), and the row
// keeps Partner attestation as its path. A row set up the old way (a Date agreed entered to be recorded)
// is never sent through the retired call: it becomes Failed, saying what to do now.
func (g *Workflow) partnerAttestation(ctx context.Context, f mapping.AgreementFacts, who dataverse.GUID) error {
	a := f.Agreement
	if mapping.IsLegacyPartnerAttestation(a) {
		return g.write(ctx, a, dataverse.Row{"csp_attestationstatus": int(schema.AttestationFailed),
			"csp_attestationmessage": mapping.LegacyPartnerAttestationMessage(a), "csp_systemmessage": nil})
	}
	return g.requestLink(ctx, f, who)
}

// check reads what Partner Center says about a waiting row and moves it. Reads, fewest first: the row's
// attestation when it has one; otherwise the customer's MCA agreements; the direct-sign status only when
// neither settles it.
func (g *Workflow) check(ctx context.Context, f mapping.AgreementFacts) error {
	a := f.Agreement
	if f.ProviderAccount == nil || f.ProviderAccount.TenantID == "" {
		return g.write(ctx, a, dataverse.Row{"csp_attestationmessage": "This agreement has no provider account mapped to a customer tenant, so the connector cannot check it: set its Provider account."})
	}
	tenant := f.ProviderAccount.TenantID
	var in mapping.CheckInput
	if a.AttestationID != "" {
		att, err := g.getAttestation(ctx, a.AttestationID)
		if err != nil {
			return g.callFailed(ctx, f, err)
		}
		in.Attestation = &att
		if !att.Status.Is(partnercenter.AttestationPending) && !att.Status.Is(partnercenter.AttestationExpired) {
			return g.applyCheck(ctx, f, in)
		}
	} else {
		cctx, cancel := context.WithTimeout(ctx, g.callTimeout)
		ags, err := g.pc.Agreements(cctx, tenant, partnercenter.MicrosoftCustomerAgreement)
		cancel()
		if err != nil {
			return g.callFailed(ctx, f, err)
		}
		in.Agreements = ags
		if out := mapping.DecideCheck(a, in, g.now()); out.Active {
			return g.applyCheck(ctx, f, in) // an agreement settles it; an old one (before April 2023) does not
		}
	}
	cctx, cancel := context.WithTimeout(ctx, g.callTimeout)
	signed, err := g.pc.DirectSignedStatus(cctx, tenant)
	cancel()
	if err != nil {
		return g.callFailed(ctx, f, err)
	}
	in.DirectSigned = &signed
	return g.applyCheck(ctx, f, in)
}

// applyCheck writes what the check decided; an accepted link is finalized first.
func (g *Workflow) applyCheck(ctx context.Context, f mapping.AgreementFacts, in mapping.CheckInput) error {
	a := f.Agreement
	now := g.now()
	out := mapping.DecideCheck(a, in, now)
	if out.Finalize && in.Attestation != nil {
		templateID := ""
		if f.Template != nil {
			templateID = f.Template.TemplateID
		}
		cctx, cancel := context.WithTimeout(partnercenter.WithRequestID(ctx, uuid.NewSHA1(uuid.NameSpaceOID, []byte("finalize:"+in.Attestation.ID)).String()), g.callTimeout)
		_, err := g.pc.CreateAgreementFromAttestation(cctx, f.ProviderAccount.TenantID, in.Attestation.ID, templateID)
		cancel()
		existed := partnercenter.IsAlreadyExists(err)
		if err != nil && !existed {
			return g.callFailed(ctx, f, err)
		}
		out = mapping.FinalizedOutcome(a, *in.Attestation, existed, now)
	}
	changes := dataverse.Row{"csp_attestationstatus": int(out.Status), "csp_attestationmessage": out.Message, "csp_systemmessage": nil}
	if out.Path != 0 {
		changes["csp_acceptancepath"] = int(out.Path)
	}
	if !out.Active {
		return g.write(ctx, a, changes)
	}
	changes["statuscode"] = schema.StatusActive
	changes["csp_verifiedon"] = now.UTC()
	changes["csp_dateagreed"] = nullTime(out.DateAgreed)
	return g.accepted(ctx, f, changes)
}

// accepted writes an accepted row and tells the flows that listen.
func (g *Workflow) accepted(ctx context.Context, f mapping.AgreementFacts, changes dataverse.Row) error {
	if err := g.write(ctx, f.Agreement, changes); err != nil {
		return err
	}
	if g.publish != nil {
		tenant := ""
		if f.ProviderAccount != nil {
			tenant = f.ProviderAccount.TenantID
		}
		g.publish(notify.Notification{Type: notify.AgreementAccepted,
			Notice: notify.Notice{Title: agreementName(f) + " accepted", Body: fmt.Sprint(changes["csp_attestationmessage"]), Icon: notify.NoticeSuccess,
				Table: schema.TableAgreement, RowID: f.Agreement.ID},
			Data: map[string]any{"agreementId": f.Agreement.ID.String(), "tenantId": tenant,
				"acceptancePath": schema.OptionLabel(schema.TableAgreement, "csp_acceptancepath", choiceOf(changes["csp_acceptancepath"]))}})
	}
	return nil
}

func choiceOf(v any) int {
	if n, ok := v.(int); ok {
		return n
	}
	return 0
}

// reverify looks at an accepted row again: what Partner Center says now only refreshes csp_verifiedon. A
// read that no longer shows the acceptance (stale data, a replica lagging) never moves the row back.
func (g *Workflow) reverify(ctx context.Context, f mapping.AgreementFacts) error {
	a := f.Agreement
	if f.ProviderAccount == nil || f.ProviderAccount.TenantID == "" {
		return nil
	}
	var in mapping.CheckInput
	if a.AttestationID != "" {
		att, err := g.getAttestation(ctx, a.AttestationID)
		if err != nil {
			return nil
		}
		in.Attestation = &att
	} else {
		cctx, cancel := context.WithTimeout(ctx, g.callTimeout)
		signed, err := g.pc.DirectSignedStatus(cctx, f.ProviderAccount.TenantID)
		cancel()
		if err != nil {
			return nil
		}
		in.DirectSigned = &signed
	}
	if out := mapping.DecideCheck(a, in, g.now()); out.Active || out.Finalize {
		return g.write(ctx, a, dataverse.Row{"csp_verifiedon": g.now().UTC()})
	}
	g.log.Info("an accepted agreement was not confirmed by this read; it stays accepted", "agreement", a.ID)
	return nil
}

func (g *Workflow) getAttestation(ctx context.Context, id string) (partnercenter.Attestation, error) {
	cctx, cancel := context.WithTimeout(ctx, g.callTimeout)
	defer cancel()
	return g.pc.GetAttestation(cctx, id)
}

// callFailed handles a Partner Center failure: throttling and outages are retried later (the row is left
// as it is); refused credentials hold the row with a message and mark the provider not connected; a
// refusal fails the row with Partner Center's reason in words.
func (g *Workflow) callFailed(ctx context.Context, f mapping.AgreementFacts, err error) error {
	a := f.Agreement
	var re *partnercenter.ResponseError
	isRE := errors.As(err, &re)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case partnercenter.IsThrottled(err) || partnercenter.IsTransient(err) || !isRE && !errors.Is(err, partnercenter.ErrNoCredential) || isRE && re.StatusCode >= 500:
		return fmt.Errorf("agreement %s: Partner Center: %w", a.ID, err) // the queue and the next check retry
	case errors.Is(err, partnercenter.ErrNoCredential) || partnercenter.IsUnauthorized(err) || partnercenter.IsForbidden(err):
		msg := "Partner Center refused the connector's sign-in for this check (the agreement reads need the delegated app+user sign-in: its refresh token may have expired). Renew it (PARTNERCENTER_REFRESH_TOKEN_FILE), then run Verify Connectivity on the provider; the check runs again by itself."
		// By id: the check does not read the provider row, and a provider that no longer exists is not marked.
		if provider := providerID(f); provider != (dataverse.GUID{}) {
			if _, uerr := g.dv.Update(ctx, schema.SetProviders, provider, dataverse.Row{
				"csp_connectivitystatus":  int(schema.ConnectivityNotConnected),
				"csp_connectivitymessage": fmt.Sprintf("Not connected: checking agreement %s failed at %s. %s", agreementName(f), mapping.FormatTime(g.now()), msg)}, nil); uerr != nil && !dataverse.IsNotFound(uerr) {
				g.log.Warn("could not mark the provider not connected", "provider", provider, "error", uerr)
			}
		}
		return g.write(ctx, a, dataverse.Row{"csp_attestationmessage": msg, "csp_systemmessage": mapping.SystemMessage(err, 1)})
	}
	status := a.AttestationStatus
	if status == schema.AttestationLinkRequested {
		status = schema.AttestationFailed
	}
	return g.write(ctx, a, dataverse.Row{"csp_attestationstatus": int(status),
		"csp_attestationmessage": mapping.AgreementRefusal(re, err), "csp_systemmessage": mapping.SystemMessage(err, 1)})
}

func agreementName(f mapping.AgreementFacts) string {
	if f.ProviderAccount != nil {
		return "the agreement of " + cmp.Or(f.ProviderAccount.CompanyName, f.ProviderAccount.Name, f.ProviderAccount.TenantID)
	}
	return cmp.Or(f.Agreement.Name, "the agreement")
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// Facts loads an agreement with everything a decision on it reads: its provider account, template and
// provider.
func (g *Workflow) Facts(ctx context.Context, id dataverse.GUID) (mapping.AgreementFacts, error) {
	f, err := g.load(ctx, id)
	if err != nil {
		return f, err
	}
	return f, g.withProvider(ctx, &f)
}
