package provisioning

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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

// Provisioning jobs' names (their csp_job rows).
const (
	SweepJobName  = "Provisioning Sweep"
	ReportJobName = "License Change Health Report"
)

// DefaultClaimTTL is how long a claim on an LCL lasts. A replica that dies mid-change leaves the row
// Provisioning; once the claim expires the sweep picks it up and the next attempt finishes the change
// (it reads Partner Center first, so nothing is done twice).
const DefaultClaimTTL = 10 * time.Minute

// safetyNetDelay is when the sweep looks again at a change held for a reason that normally wakes it (an
// earlier change or the parent provisioned, connectivity verified), in case that wake-up was lost.
const safetyNetDelay = 30 * time.Minute

// parentSafetyNet is the same for an add-on waiting for its parent to be bought. That wait is short (the
// parent is usually bought seconds before), and the wake-up that ends it is held only in the memory of the
// replica that bought the parent: a replica killed between the purchase and the wake-up would otherwise
// leave the add-on half an hour late. Re-checking one waiting add-on costs a few reads.
const parentSafetyNet = 2 * time.Minute

// Provisioner pushes License Change Logs to Partner Center exactly once: it re-reads the
// LCL and its context (one request, $expand; or takes them over from the change before it, which woke it:
// handover), decides with mapping.Decide, claims the row (Provisioning, a new attempt id, If-Match),
// makes the change idempotently and writes the outcome and a message on the row.
type Provisioner struct {
	dv          *dataverse.Client
	pc          *partnercenter.Client
	wakeRows    func(ctx context.Context, ids []dataverse.GUID)
	noticeUsers func(ctx context.Context, n notify.Notice) error
	publish     func(notify.Notification)
	claimTTL    time.Duration
	callTimeout time.Duration
	now         func() time.Time
	log         *slog.Logger

	faults provisionFaults

	handover handover
}

// Options are a Provisioner's optional collaborators and settings; the zero value is ready to use.
type Options struct {
	// Wake submits the LCLs a success unblocks (later changes of the subscription, waiting add-ons); nil
	// leaves them to the sweep.
	Wake func(ctx context.Context, ids []dataverse.GUID)
	// NoticeUsers sends an in-app notice directly to the connector's notice recipients
	// (CONNECTOR_NOTIFY_USERS): changes they must make themselves (Manual providers), the weekly health
	// report; nil sends none.
	NoticeUsers func(ctx context.Context, n notify.Notice) error
	// Publish publishes an event through the notifications service to the flows that listen: a change that
	// newly failed (LicenseChangeFailed); nil publishes none.
	Publish func(notify.Notification)
	// ClaimTTL is how long a run holds a row it claimed (default DefaultClaimTTL).
	ClaimTTL time.Duration
	// CallTimeout bounds each Partner Center call, its retries included (default 60 s). A Retry-After
	// longer than that is not slept through in a worker: the change is held and retried when it says.
	CallTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the provisioner's logs (default: discarded).
	Logger *slog.Logger
}

// New returns the provisioner of dv and pc. A nil opts is the defaults.
func New(dv *dataverse.Client, pc *partnercenter.Client, opts *Options) *Provisioner {
	var o Options
	if opts != nil {
		o = *opts
	}
	p := &Provisioner{dv: dv, pc: pc, wakeRows: o.Wake, noticeUsers: o.NoticeUsers, publish: o.Publish,
		claimTTL: o.ClaimTTL, callTimeout: cmp.Or(o.CallTimeout, 60*time.Second), now: o.Now, log: o.Logger}
	if p.claimTTL <= 0 {
		p.claimTTL = DefaultClaimTTL
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	return p
}

// provisionFaults are the crash points of the fault tests: an error there ends the run as if the process
// had been killed at that point.
type provisionFaults struct {
	afterClaim func(id dataverse.GUID) error
	afterCall  func(id dataverse.GUID) error
}

// errConflict is a write refused because the row changed since it was read (412): read it and decide again.
var errConflict = errors.New("the row changed while the connector worked on it")

// Handle is the work handler for csp_licensechangelog rows. A Diagnose request is answered first; a run
// woken by nothing else provisions nothing.
func (p *Provisioner) Handle(ctx context.Context, w work.Batch) error {
	if request.DiagnoseAsked(w.Events) {
		err := request.AnswerDiagnosis(ctx, p.dv, schema.TableLicenseChangeLog, schema.SetLicenseChangeLogs, w.Key.ID, func(ctx context.Context) (string, error) {
			dg, err := p.Diagnose(ctx, w.Key.ID)
			return dg.Text(), err
		})
		if err != nil || request.OnlyDiagnose(w.Events, w.Sources, lclTriggerColumns()) {
			return err
		}
	}
	_, err := p.Provision(ctx, w.Key.ID)
	return err
}

// HandleSubscription is the work handler for csp_subscription rows: it answers a Diagnose request with
// the subscription's changes and what blocks them (DiagnoseSubscription). Subscriptions are otherwise
// written by the sync, not woken by events.
func (p *Provisioner) HandleSubscription(ctx context.Context, w work.Batch) error {
	return request.AnswerDiagnosis(ctx, p.dv, schema.TableSubscription, schema.SetSubscriptions, w.Key.ID, func(ctx context.Context) (string, error) {
		sd, err := p.DiagnoseSubscription(ctx, w.Key.ID)
		return sd.Text(), err
	})
}

// Outcome is what a provisioning run did to one LCL.
type Outcome struct {
	LCL      dataverse.GUID   `json:"id"`
	Decision mapping.Decision `json:"decision"`
	// Written reports that the row was changed (false when it already said this).
	Written bool `json:"written"`
	// Changed describes what changed in Partner Center ("Seats 10 → 15 in Partner Center."), when it did.
	Changed string `json:"changed,omitempty"`
}

// Provision reconciles one LCL. When the row changes under it (an admin edits it), it reads it again and
// decides again, at most three times; the error is for failures worth retrying later.
func (p *Provisioner) Provision(ctx context.Context, id dataverse.GUID) (Outcome, error) {
	var owned claimToken // the claim this run holds, once it claimed the row
	handed, ok := p.handover.take(id, p.now())
	for range 3 {
		var given *mapping.LCLFacts
		if ok {
			given, ok = &handed, false // the first pass only: after a conflict, read
		}
		out, claim, err := p.once(ctx, id, owned, given)
		if !errors.Is(err, errConflict) {
			return out, err
		}
		owned = claim
		p.log.Info("the change log changed while being provisioned; reading it again", "lcl", id)
	}
	return Outcome{LCL: id}, fmt.Errorf("provision %s: the row kept changing while the connector worked on it: %w", id, errConflict)
}

// claimToken identifies one claim: its attempt id and the expiry it wrote. The attempt id alone is not
// enough: a replica that resumes an expired claim keeps the attempt id, and the slow replica that held it
// must then see the claim is no longer its own.
type claimToken struct {
	attempt string
	expires time.Time
}

func (t claimToken) holds(l schema.LicenseChangeLog) bool {
	return t.attempt != "" && l.AttemptID == t.attempt && l.ClaimExpiresOn.Equal(t.expires)
}

// once is one read–decide–act pass. owned is the claim this run made in an earlier pass; given, when not
// nil, are the facts the change before it handed over (handover), used instead of reading them.
func (p *Provisioner) once(ctx context.Context, id dataverse.GUID, owned claimToken, given *mapping.LCLFacts) (Outcome, claimToken, error) {
	out := Outcome{LCL: id}
	now := p.now()
	var f mapping.LCLFacts
	var err error
	if given != nil {
		f = *given
	} else {
		f, err = p.load(ctx, id)
	}
	if dataverse.IsNotFound(err) {
		out.Decision = mapping.Decision{Verdict: mapping.Skip, Message: "The change log no longer exists."}
		return out, owned, nil
	}
	if err != nil {
		return out, owned, err
	}
	l := f.LCL
	if l.ProvisioningStatus == schema.ProvisioningInProgress && !owned.holds(l) && now.Before(l.ClaimExpiresOn) {
		out.Decision = mapping.Decision{Verdict: mapping.Skip, Message: fmt.Sprintf("Another attempt (%s) holds the change until %s.", l.AttemptID, mapping.FormatTime(l.ClaimExpiresOn))}
		return out, owned, nil
	}
	d := mapping.Decide(f, now)
	if d.Verdict == mapping.Proceed && l.ChangeType != schema.ChangePurchase {
		callCtx, cancel := p.callContext(ctx)
		pc, err := p.pc.Subscription(callCtx, f.ProviderAccount.TenantID, f.Subscription.PCSubscriptionID)
		cancel()
		if err != nil {
			d = mapping.Failure(d, f, err, now)
		} else {
			d = mapping.CheckPartnerCenter(d, f, pc, now)
			if d.Verdict == mapping.Proceed {
				return p.perform(ctx, f, d, owned, &pc)
			}
		}
	} else if d.Verdict == mapping.Proceed {
		return p.perform(ctx, f, d, owned, nil)
	}
	out.Decision = d
	if d.Verdict == mapping.Skip && leftClaim(l, owned, now) {
		// Archived, or its status set by hand, while an attempt was making the change (this run, or one
		// that died): find out whether the change went out, and say so on the row.
		return p.resolve(ctx, f, d, owned)
	}
	if d.Verdict == mapping.Skip {
		if done(l) {
			// Archived, or made by hand (Provisioned, Not Applicable): it no longer holds the changes after it.
			p.wakeLater(ctx, f)
		}
		return out, owned, nil
	}
	out.Written, err = p.settle(ctx, f, d, l.ETag)
	return out, owned, err
}

// leftClaim reports a claim left on a row that is no longer to be provisioned (archived, or its status set
// by hand): held by this run, or expired.
func leftClaim(l schema.LicenseChangeLog, owned claimToken, now time.Time) bool {
	if l.ProvisioningStatus != schema.ProvisioningInProgress && l.ClaimExpiresOn.IsZero() {
		return false
	}
	return owned.holds(l) || !now.Before(l.ClaimExpiresOn)
}

// resolve settles a claim left on a row no longer to be provisioned. Partner Center is the truth: when it
// shows the change, the row becomes Provisioned (archived rows stay archived) and the subscription row
// shows it, with a message saying what happened; when it does not, the claim is released and a row left
// Provisioning goes back to Awaiting Provisioning, saying the change was not made. Nothing is sent to
// Partner Center.
func (p *Provisioner) resolve(ctx context.Context, f mapping.LCLFacts, d mapping.Decision, owned claimToken) (Outcome, claimToken, error) {
	out := Outcome{LCL: f.LCL.ID, Decision: d}
	l := f.LCL
	c := &claimed{f: f, attempt: l.AttemptID, token: claimToken{attempt: l.AttemptID, expires: l.ClaimExpiresOn}, etag: l.ETag, resumed: true}
	if why := unobservable(f); why != "" {
		return p.release(ctx, f, d, owned, schema.ProvisioningFailed, fmt.Sprintf(
			"The connector cannot check whether this change was made in Partner Center, because %s: check the subscription in Partner Center and correct the subscription row by hand.", why))
	}
	res, made, err := p.observe(ctx, c)
	if err != nil {
		return out, owned, err // the claim stays; the sweep comes back to it
	}
	if !made {
		return p.release(ctx, f, d, owned, schema.ProvisioningAwaiting, notMadeMessage(l, res))
	}
	message, err := p.finish(ctx, c, res, l)
	if err != nil {
		return out, owned, err
	}
	out.Decision = mapping.Decision{Verdict: mapping.Proceed, Message: message, Checks: d.Checks}
	out.Written, out.Changed = true, message
	p.wake(ctx, c, res)
	return out, owned, nil
}

// unobservable says why Partner Center cannot be asked about f's change ("" when it can).
func unobservable(f mapping.LCLFacts) string {
	l := f.LCL
	switch {
	case f.Subscription == nil:
		return "its subscription no longer exists in Dynamics"
	case f.ProviderAccount == nil || f.ProviderAccount.TenantID == "":
		return "its subscription has no provider account with a tenant id"
	case l.ChangeType == schema.ChangePurchase && l.Quantity == nil:
		return "its New quantity is empty"
	case l.ChangeType != schema.ChangePurchase && f.Subscription.PCSubscriptionID == "":
		return "its subscription has no Provider subscription ID"
	case l.ChangeType == schema.ChangeQuantity && l.Quantity == nil:
		return "its New quantity is empty"
	}
	return ""
}

// observe reads from Partner Center whether the claimed change is there: the order of a purchase (recorded,
// or found through the recorded cart), or the subscription's quantity or status.
func (p *Provisioner) observe(ctx context.Context, c *claimed) (result, bool, error) {
	l, tenant := c.f.LCL, c.f.ProviderAccount.TenantID
	if l.ChangeType == schema.ChangePurchase {
		orderID := l.PCOrderID
		if orderID == "" && l.PCCartID != "" {
			var err error
			if orderID, err = p.findOrder(ctx, tenant, l.PCCartID, c.f.Subscription.OfferID, *l.Quantity); err != nil {
				return result{}, false, err
			}
		}
		if orderID == "" {
			return result{purchased: true}, false, nil
		}
		res, err := p.purchased(ctx, c, orderID)
		return res, err == nil, err
	}
	callCtx, cancel := p.callContext(ctx)
	pc, err := p.pc.Subscription(callCtx, tenant, c.f.Subscription.PCSubscriptionID)
	cancel()
	if err != nil {
		return result{}, false, err
	}
	res := result{quantity: pc.Quantity, status: pc.Status}
	var made bool
	switch l.ChangeType {
	case schema.ChangeQuantity:
		made = pc.Quantity == *l.Quantity
	case schema.ChangeSuspend:
		made = pc.Status.Is(partnercenter.SubscriptionSuspended)
	case schema.ChangeReactivate:
		made = pc.Status.Is(partnercenter.SubscriptionActive)
	case schema.ChangeCancel:
		made = pc.Status.Is(partnercenter.SubscriptionDeleted)
	}
	if made {
		res.message = alreadyMessage(l, pc, true)
	}
	return res, made, nil
}

// notMadeMessage says a change was not made because its row was archived (or deactivated) first, and what Partner Center
// shows instead.
func notMadeMessage(l schema.LicenseChangeLog, res result) string {
	what := "sent the change, and "
	switch {
	case res.purchased:
		what = "placed the order."
	case l.ChangeType == schema.ChangeQuantity:
		what += fmt.Sprintf("Partner Center has %d seats.", res.quantity)
	default:
		what += "the subscription is " + pcStatusWord(res.status) + " in Partner Center."
	}
	done := "archived"
	if l.State != schema.StateActive && l.Status != schema.LCLArchived {
		done = "deactivated"
	}
	return "Not made in Partner Center: the row was " + done + " before the connector " + what + " To have it made after all, activate the row again."
}

// release clears a claim left on a row no longer to be provisioned, when the change was not made: a row
// left Provisioning gets status and message; a status set by hand stays with its message.
func (p *Provisioner) release(ctx context.Context, f mapping.LCLFacts, d mapping.Decision, owned claimToken, status schema.ProvisioningStatus, message string) (Outcome, claimToken, error) {
	l := f.LCL
	out := Outcome{LCL: l.ID, Decision: d}
	changes := dataverse.Row{"csp_claimexpireson": nil}
	if l.ProvisioningStatus == schema.ProvisioningInProgress {
		message = schema.Fit(schema.TableLicenseChangeLog, "csp_provisioningmessage", message)
		changes["csp_provisioningstatus"], changes["csp_provisioningmessage"] = int(status), message
		changes["csp_heldreason"], changes["csp_nextattempton"] = nil, nil
		out.Decision.Message = message
	}
	_, err := p.dv.Update(ctx, schema.SetLicenseChangeLogs, l.ID, changes, &dataverse.UpdateOptions{IfMatch: l.ETag})
	switch {
	case dataverse.IsConflict(err):
		return out, owned, errConflict
	case dataverse.IsNotFound(err):
		return out, owned, nil
	case err != nil:
		return out, owned, fmt.Errorf("provision %s: release the claim: %w", l.ID, err)
	}
	out.Written = true
	p.log.Info("claim released: the change was not made", "lcl", l.ID, "attempt", l.AttemptID, "message", out.Decision.Message)
	if done(l) {
		p.wakeLater(ctx, f)
	}
	return out, owned, nil
}

// settle writes a decision that does not change Partner Center (Not Applicable, held, failed) on the row,
// guarded by its ETag, unless the row already says exactly that; it also releases a claim the row held.
func (p *Provisioner) settle(ctx context.Context, f mapping.LCLFacts, d mapping.Decision, etag dataverse.ETag) (bool, error) {
	l := f.LCL
	if d.InLine && l.ProvisioningStatus == schema.ProvisioningAwaiting && l.HeldReason == 0 && l.ClaimExpiresOn.IsZero() {
		return false, nil // next in line: the change before it wakes it, no need to say so on the row
	}
	status := map[mapping.Verdict]schema.ProvisioningStatus{mapping.NotApplicable: schema.ProvisioningNotApplicable,
		mapping.Hold: schema.ProvisioningAwaiting, mapping.Fail: schema.ProvisioningFailed}[d.Verdict]
	next := d.NextAttempt
	if d.Verdict == mapping.Hold && next.IsZero() && d.Held != schema.HeldManual {
		next = p.now().Add(safetyNetDelay)
		if d.Held == schema.HeldWaitingForParent {
			next = p.now().Add(parentSafetyNet)
		}
	}
	system := d.System
	if system == "" {
		system = l.SystemMessage // keep the support detail of the last failure until there is a new one
		if d.Verdict != mapping.Fail && d.Held != schema.HeldRetrying && d.Held != schema.HeldNotConnected {
			system = ""
		}
	}
	changes := dataverse.Row{}
	set := func(col string, v any, same bool) {
		if !same {
			changes[col] = v
		}
	}
	set("csp_provisioningstatus", int(status), l.ProvisioningStatus == status)
	// Compared as stored: fitted to the columns' lengths.
	message := schema.Fit(schema.TableLicenseChangeLog, "csp_provisioningmessage", d.Message)
	system = schema.Fit(schema.TableLicenseChangeLog, "csp_systemmessage", system)
	set("csp_provisioningmessage", message, l.ProvisioningMessage == message)
	set("csp_systemmessage", dataverse.OrNull(system), l.SystemMessage == system)
	held := d.Held
	if d.Verdict != mapping.Hold {
		held = 0
	}
	set("csp_heldreason", nullableChoice(int(held)), l.HeldReason == held)
	// A hold that only moves its next look by less than a minute is not worth a write (and an event).
	set("csp_nextattempton", nullableTime(next), sameMinute(l.NextAttemptOn, next))
	if l.ProvisioningStatus == schema.ProvisioningInProgress || (!l.ClaimExpiresOn.IsZero() && !p.now().Before(l.ClaimExpiresOn)) {
		// Its claim, or one left expired on a row set back to Awaiting by hand: the sweep stops finding it.
		changes["csp_claimexpireson"] = nil
	}
	if len(changes) == 0 {
		return false, nil
	}
	if _, err := p.dv.Update(ctx, schema.SetLicenseChangeLogs, l.ID, changes, &dataverse.UpdateOptions{IfMatch: etag}); err != nil {
		if dataverse.IsConflict(err) {
			return false, errConflict
		}
		if dataverse.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("provision %s: write the outcome: %w", l.ID, err)
	}
	p.log.Info("change log settled", "lcl", l.ID, "verdict", d.Verdict.String(), "held", d.HeldLabel, "message", d.Message)
	if l.ProvisioningStatus != status || l.HeldReason != held {
		// What the changes after it wait for changed (it failed, or is no longer failed): they say so now.
		p.wakeLater(ctx, f)
	}
	if d.NotConnected && f.Provider != nil {
		p.markNotConnected(ctx, f, d)
	}
	if status == schema.ProvisioningFailed && l.ProvisioningStatus != schema.ProvisioningFailed && p.publish != nil {
		tenant := ""
		if f.ProviderAccount != nil {
			tenant = f.ProviderAccount.TenantID
		}
		p.publish(notify.Notification{Type: notify.LicenseChangeFailed,
			Notice: notify.Notice{Title: "License change failed: " + strings.TrimSpace(l.Name), Body: d.Message, Icon: notify.NoticeFailure,
				Table: schema.TableLicenseChangeLog, RowID: l.ID},
			Data: map[string]any{"licenseChangeLogId": l.ID.String(), "tenantId": tenant}})
	}
	if d.Notify && p.noticeUsers != nil && l.ProvisioningMessage != d.Message {
		if err := p.noticeUsers(ctx, notify.Notice{Title: "A license change needs you: " + strings.TrimSpace(l.Name), Body: d.Message,
			Table: schema.TableLicenseChangeLog, RowID: l.ID, Icon: notify.NoticeWarning}); err != nil {
			p.log.Warn("could not send the notice", "lcl", l.ID, "error", err)
		}
	}
	return true, nil
}

func (p *Provisioner) markNotConnected(ctx context.Context, f mapping.LCLFacts, d mapping.Decision) {
	msg := fmt.Sprintf("Not connected: provisioning %s failed at %s. %s", mapping.LCLName(f.LCL), mapping.FormatTime(p.now()), d.Message)
	_, err := p.dv.Update(ctx, schema.SetProviders, f.Provider.ID, dataverse.Row{
		"csp_connectivitystatus": int(schema.ConnectivityNotConnected), "csp_connectivitymessage": msg}, nil)
	if err != nil {
		p.log.Warn("could not mark the provider not connected", "provider", f.Provider.ID, "error", err)
	}
}

// claim takes the row for one attempt: Provisioning, an attempt id, a claim expiry, one more attempt. It
// keeps the attempt id of an earlier pass of this run, or of an expired claim being resumed (resume).
func (p *Provisioner) claim(ctx context.Context, l schema.LicenseChangeLog, resume string) (claimToken, dataverse.ETag, error) {
	attempt := resume
	attempts := l.Attempts
	if attempt == "" {
		attempt = uuid.NewString()
		attempts++
	}
	// Whole seconds, as Dataverse keeps them: the token must compare equal to what is read back.
	expires := p.now().Add(p.claimTTL).UTC().Truncate(time.Second)
	row, err := p.dv.Update(ctx, schema.SetLicenseChangeLogs, l.ID, dataverse.Row{
		"csp_provisioningstatus": int(schema.ProvisioningInProgress),
		"csp_attemptid":          attempt,
		"csp_attempts":           attempts,
		"csp_claimexpireson":     expires,
		"csp_heldreason":         nil,
		"csp_nextattempton":      nil,
	}, &dataverse.UpdateOptions{IfMatch: l.ETag, Select: []string{"csp_licensechangelogid"}})
	if dataverse.IsConflict(err) {
		return claimToken{}, "", errConflict
	}
	if err != nil {
		return claimToken{}, "", fmt.Errorf("provision %s: claim: %w", l.ID, err)
	}
	tag, _ := row["@odata.etag"].(string)
	return claimToken{attempt: attempt, expires: expires}, dataverse.ETag(tag), nil
}

// claimed is the state of a claimed row while the change is made.
type claimed struct {
	f       mapping.LCLFacts
	attempt string
	token   claimToken
	etag    dataverse.ETag
	// resumed marks an attempt taken up again (an expired claim, or a pass after the row changed): what
	// Partner Center already shows may be its own earlier work.
	resumed bool
}

// result is what the change did in Partner Center.
type result struct {
	message        string // for people: "Seats 10 → 15 in Partner Center."
	quantity       int
	status         partnercenter.Enum
	orderID        string
	subscriptionID string
	purchased      bool
	// sent marks a change this run sent to Partner Center (an update or a checkout that went through), as
	// opposed to one Partner Center already showed.
	sent bool
}

// perform claims the row and makes the change. pc is Partner Center's subscription as just read (nil for
// a purchase). It returns the attempt id it claimed, for the next pass when the row changed under it.
func (p *Provisioner) perform(ctx context.Context, f mapping.LCLFacts, d mapping.Decision, owned claimToken, pc *partnercenter.Subscription) (Outcome, claimToken, error) {
	out := Outcome{LCL: f.LCL.ID, Decision: d}
	resume := ""
	switch {
	case owned.holds(f.LCL):
		resume = owned.attempt // this run's claim, after the row changed under it
	case f.LCL.ProvisioningStatus == schema.ProvisioningInProgress:
		resume = f.LCL.AttemptID // an expired claim: this is the same attempt, resumed
	}
	token, etag, err := p.claim(ctx, f.LCL, resume)
	if err != nil {
		return out, owned, err
	}
	attempt := token.attempt
	if resume == "" {
		f.LCL.Attempts++
	}
	c := &claimed{f: f, attempt: attempt, token: token, etag: etag, resumed: resume != ""}
	if hook := p.faults.afterClaim; hook != nil {
		if err := hook(f.LCL.ID); err != nil {
			return out, token, err
		}
	}
	var res result
	if f.LCL.ChangeType == schema.ChangePurchase {
		res, err = p.purchase(ctx, c)
	} else {
		res, err = p.update(ctx, c, *pc)
	}
	if errors.Is(err, errConflict) {
		return out, token, err
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, token, err // stopped, not failed: the claim expires and the sweep resumes the attempt
		}
		failed := mapping.Failure(d, c.f, err, p.now())
		out.Decision = failed
		// The row as the claim left it, so settle writes every column the outcome needs.
		c.f.LCL.ETag, c.f.LCL.ProvisioningStatus, c.f.LCL.AttemptID = c.etag, schema.ProvisioningInProgress, attempt
		c.f.LCL.HeldReason, c.f.LCL.NextAttemptOn, c.f.LCL.ClaimExpiresOn = 0, time.Time{}, token.expires
		out.Written, err = p.settle(ctx, c.f, failed, c.etag)
		return out, token, err
	}
	if hook := p.faults.afterCall; hook != nil {
		if err := hook(f.LCL.ID); err != nil {
			return out, token, err
		}
	}
	// The row as the claim left it: finish compares what it finds on a conflict with this.
	cur := c.f.LCL
	cur.ETag, cur.ProvisioningStatus, cur.AttemptID, cur.ClaimExpiresOn = c.etag, schema.ProvisioningInProgress, attempt, token.expires
	message, err := p.finish(ctx, c, res, cur)
	if err != nil {
		return out, token, err
	}
	out.Written, out.Changed = true, message
	out.Decision.Message = message
	p.handOver(c.f, res)
	p.wake(ctx, c, res)
	return out, token, nil
}

// handoverTTL is how long facts handed over to the next change stay usable. The woken change normally
// runs within seconds, but a Dataverse client pacing bulk work within its service protection budget may
// hold it back for up to a window (300 s): as it may hold back the claim that follows any read. One that
// waited longer reads its context again.
const handoverTTL = 5 * time.Minute

// handover carries what a provisioned change read and wrote to the next change of its subscription, which
// its success wakes: that change's row (with its ETag, as read a moment ago), the subscription as the
// change set just wrote it, the provider, provider account and parent, and the pending changes but the one
// just provisioned. The woken change then claims without reading again: its claim and every write carry
// the handed-over ETag (If-Match), so a row changed since is refused (412) and the run reads it and
// decides again, as after any conflict. The handover lives in this replica's memory only: a change woken
// elsewhere, or later than handoverTTL, reads as usual.
type handover struct {
	mu    sync.Mutex
	facts map[dataverse.GUID]handed
}

type handed struct {
	f  mapping.LCLFacts
	at time.Time
}

// put keeps f for the next run of f.LCL, and forgets what has expired.
func (h *handover) put(f mapping.LCLFacts, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.facts == nil {
		h.facts = map[dataverse.GUID]handed{}
	}
	for id, x := range h.facts {
		if now.Sub(x.at) >= handoverTTL {
			delete(h.facts, id)
		}
	}
	h.facts[f.LCL.ID] = handed{f: f, at: now}
}

// take returns and forgets the facts handed over to id, if they are fresh.
func (h *handover) take(id dataverse.GUID, now time.Time) (mapping.LCLFacts, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	x, ok := h.facts[id]
	delete(h.facts, id)
	if !ok || now.Sub(x.at) >= handoverTTL || now.Before(x.at) {
		return mapping.LCLFacts{}, false
	}
	return x.f, true
}

// handOver hands the facts of f, after its change res was made and written, to the next change of the
// subscription when that one is next in line (handover).
func (p *Provisioner) handOver(f mapping.LCLFacts, res result) {
	if p.wakeRows == nil || f.Subscription == nil {
		return // nothing is woken: nothing runs next
	}
	later := f.Later()
	if len(later) == 0 || later[0].ProvisioningStatus != schema.ProvisioningAwaiting {
		return
	}
	next := mapping.LCLFacts{LCL: later[0], Provider: f.Provider, ProviderAccount: f.ProviderAccount, Parent: f.Parent}
	sub := wroteSubscription(*f.Subscription, subscriptionChanges(f, res, p.now().UTC()))
	next.Subscription = &sub
	for _, o := range f.Pending {
		if o.ID != f.LCL.ID {
			next.Pending = append(next.Pending, o)
		}
	}
	p.handover.put(next, p.now())
}

// wroteSubscription is sub with the columns of changes (subscriptionChanges) written.
func wroteSubscription(sub schema.Subscription, changes dataverse.Row) schema.Subscription {
	for col, v := range changes {
		i, _ := v.(int)
		switch col {
		case "csp_quantity":
			sub.Quantity = i
		case "csp_pcsubscriptionid":
			sub.PCSubscriptionID, _ = v.(string)
		case "csp_actualprovisionedon":
			sub.ActualProvisionedOn, _ = v.(time.Time)
		case "statecode":
			sub.State = i
		case "statuscode":
			sub.Status = i
		}
	}
	return sub
}

// requestID derives the MS-RequestId of one logical call of an attempt, so a retry of the same call after
// a crash is the same request to Partner Center.
func requestID(attempt, call string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("csp-connector:"+attempt+":"+call)).String()
}

// update changes quantity or status. Partner Center's copy was read just before the claim; values are
// absolute, so when it already shows the target nothing is sent.
func (p *Provisioner) update(ctx context.Context, c *claimed, pc partnercenter.Subscription) (result, error) {
	l, tenant := c.f.LCL, c.f.ProviderAccount.TenantID
	before := pc
	want := pc
	switch l.ChangeType {
	case schema.ChangeQuantity:
		want.Quantity = *l.Quantity
	case schema.ChangeSuspend:
		want.Status = partnercenter.SubscriptionSuspended
	case schema.ChangeReactivate:
		want.Status = partnercenter.SubscriptionActive
	case schema.ChangeCancel:
		want.Status = partnercenter.SubscriptionDeleted
	}
	res := result{quantity: want.Quantity, status: want.Status}
	if want.Quantity == before.Quantity && want.Status.Is(before.Status) {
		res.message = alreadyMessage(l, before, c.resumed)
		return res, nil
	}
	for try := 0; ; try++ {
		// The id names the change (from what, to what), not only the attempt: a pass that reads the row
		// again after an admin's edit keeps the attempt, and must not get the first target's stored answer.
		call := fmt.Sprintf("update-%d:%d/%s→%d/%s", try, before.Quantity, strings.ToLower(string(before.Status)), want.Quantity, strings.ToLower(string(want.Status)))
		callCtx := partnercenter.WithRequestID(ctx, requestID(c.attempt, call))
		callCtx, cancel := p.callContext(callCtx)
		got, err := p.pc.UpdateSubscription(callCtx, tenant, want)
		cancel()
		if partnercenter.IsETagInvalid(err) && try < 2 {
			// Partner Center's copy changed since it was read: read it again and apply the same target.
			readCtx, cancel := p.callContext(ctx)
			fresh, rerr := p.pc.Subscription(readCtx, tenant, want.ID)
			cancel()
			if rerr != nil {
				return result{}, rerr
			}
			q, s := want.Quantity, want.Status
			want = fresh
			want.Quantity, want.Status = q, s
			if fresh.Quantity == q && fresh.Status.Is(s) {
				res.message = alreadyMessage(l, fresh, c.resumed)
				return res, nil
			}
			continue
		}
		if err != nil {
			return result{}, err
		}
		res.quantity, res.status, res.sent = got.Quantity, got.Status, true
		break
	}
	res.message = changedMessage(l, before)
	return res, nil
}

func changedMessage(l schema.LicenseChangeLog, before partnercenter.Subscription) string {
	switch l.ChangeType {
	case schema.ChangeQuantity:
		return fmt.Sprintf("Seats %d → %d in Partner Center.", before.Quantity, *l.Quantity)
	case schema.ChangeSuspend:
		return "Suspended in Partner Center."
	case schema.ChangeReactivate:
		return "Reactivated in Partner Center."
	case schema.ChangeCancel:
		return "Cancelled in Partner Center."
	}
	return "Changed in Partner Center."
}

func alreadyMessage(l schema.LicenseChangeLog, pc partnercenter.Subscription, resumed bool) string {
	if resumed {
		// This attempt may have made the change before it was interrupted: say what is true either way.
		switch l.ChangeType {
		case schema.ChangeQuantity:
			return fmt.Sprintf("Partner Center has %d seats, as asked.", pc.Quantity)
		case schema.ChangeSuspend:
			return "Suspended in Partner Center, as asked."
		case schema.ChangeReactivate:
			return "Active in Partner Center, as asked."
		case schema.ChangeCancel:
			return "Cancelled in Partner Center, as asked."
		}
	}
	switch l.ChangeType {
	case schema.ChangeQuantity:
		return fmt.Sprintf("Partner Center already had %d seats: nothing needed changing.", pc.Quantity)
	case schema.ChangeSuspend:
		return "The subscription was already suspended in Partner Center: nothing needed changing."
	case schema.ChangeReactivate:
		return "The subscription was already active in Partner Center: nothing needed changing."
	case schema.ChangeCancel:
		return "The subscription was already cancelled in Partner Center: nothing needed changing."
	}
	return "Partner Center already showed this change."
}

// purchase buys through a cart. The cart id is written on the claimed row before checkout, the checkout's
// MS-RequestId is derived from the cart, and the order id is recorded as soon as it is known: whichever
// point a crash interrupts, the next attempt finds what was bought instead of buying again.
func (p *Provisioner) purchase(ctx context.Context, c *claimed) (result, error) {
	l, sub, tenant := c.f.LCL, c.f.Subscription, c.f.ProviderAccount.TenantID
	quantity := *l.Quantity
	if l.PCOrderID != "" {
		return p.purchased(ctx, c, l.PCOrderID)
	}
	cartID := l.PCCartID
	if cartID == "" {
		line := partnercenter.CartLineItem{ID: 0, CatalogItemID: sub.OfferID, Quantity: quantity, BillingCycle: sub.BillingCycle,
			TermDuration: sub.TermDuration, FriendlyName: sub.Name}
		if c.f.Parent != nil {
			line.ProvisioningContext = map[string]string{"parentSubscriptionId": c.f.Parent.PCSubscriptionID}
		}
		// The id names the line, not only the attempt: a pass that reads the row again after an admin changed
		// the quantity keeps the attempt, and must not get the first cart back.
		call := fmt.Sprintf("cart:%s:%d:%s:%s", sub.OfferID, quantity, sub.BillingCycle, sub.TermDuration)
		cartCtx, cancel := p.callContext(partnercenter.WithRequestID(ctx, requestID(c.attempt, call)))
		cart, err := p.pc.CreateCart(cartCtx, tenant, partnercenter.Cart{LineItems: []partnercenter.CartLineItem{line}})
		cancel()
		if err != nil {
			return result{}, err
		}
		if err := p.record(ctx, c, dataverse.Row{"csp_pccartid": cart.ID}); err != nil {
			return result{}, err
		}
		cartID = cart.ID
	}
	// Per attempt: a crash retry of this attempt repeats the same checkout; a new attempt after a refusal
	// (13605, fixed since) must not get the stored refusal back.
	checkoutCtx, cancel := p.callContext(partnercenter.WithRequestID(ctx, requestID(c.attempt, "checkout:"+cartID)))
	checkout, err := p.pc.Checkout(checkoutCtx, tenant, cartID)
	cancel()
	if partnercenter.ErrorCode(err) == partnercenter.CodeCartAlreadySubmitted {
		// The cart was bought by an attempt that did not live to record the order: find that order.
		orderID, ferr := p.findOrder(ctx, tenant, cartID, sub.OfferID, quantity)
		if ferr != nil {
			return result{}, ferr
		}
		if orderID == "" {
			return result{}, err
		}
		return p.purchased(ctx, c, orderID)
	}
	if err != nil {
		return result{}, err
	}
	if len(checkout.Orders) == 0 {
		if len(checkout.OrderErrors) > 0 {
			e := checkout.OrderErrors[0]
			return result{}, &partnercenter.ResponseError{StatusCode: 400, Code: fmt.Sprint(e.Code), Description: e.Description}
		}
		return result{}, errors.New("partnercenter: checkout returned no order")
	}
	ord := checkout.Orders[0]
	if err := p.record(ctx, c, dataverse.Row{"csp_pcorderid": ord.ID}); err != nil {
		return result{}, err
	}
	res, err := purchaseResult(ord, sub, quantity)
	res.sent = true
	return res, err
}

// purchased completes a purchase whose order is known.
func (p *Provisioner) purchased(ctx context.Context, c *claimed, orderID string) (result, error) {
	callCtx, cancel := p.callContext(ctx)
	ord, err := p.pc.Order(callCtx, c.f.ProviderAccount.TenantID, orderID)
	cancel()
	if err != nil {
		return result{}, err
	}
	if c.f.LCL.PCOrderID != orderID {
		if err := p.record(ctx, c, dataverse.Row{"csp_pcorderid": orderID}); err != nil {
			return result{}, err
		}
	}
	return purchaseResult(ord, c.f.Subscription, *c.f.LCL.Quantity)
}

func purchaseResult(ord partnercenter.Order, sub *schema.Subscription, quantity int) (result, error) {
	res := result{orderID: ord.ID, quantity: quantity, status: partnercenter.SubscriptionActive, purchased: true}
	for _, li := range ord.LineItems {
		if strings.EqualFold(li.OfferID, sub.OfferID) || len(ord.LineItems) == 1 {
			res.subscriptionID = li.SubscriptionID
			if li.Quantity > 0 {
				res.quantity = li.Quantity // what was bought: the row may have asked for another quantity since
			}
			break
		}
	}
	res.message = fmt.Sprintf("Bought %d seat(s) in Partner Center: order %s", res.quantity, ord.ID)
	if res.subscriptionID != "" {
		res.message += ", subscription " + res.subscriptionID
	}
	res.message += "."
	return res, nil
}

// findOrder looks for the order a checked-out cart produced: created after the cart, for this offer and
// quantity. It returns "" unless exactly one order matches.
func (p *Provisioner) findOrder(ctx context.Context, tenant, cartID, offerID string, quantity int) (string, error) {
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	cart, err := p.pc.Cart(ctx, tenant, cartID)
	if err != nil {
		return "", err
	}
	orders, err := p.pc.Orders(ctx, tenant)
	if err != nil {
		return "", err
	}
	var found []string
	for _, o := range orders {
		if cart.CreationTimestamp != nil && o.CreationDate != nil && o.CreationDate.Before(*cart.CreationTimestamp) {
			continue
		}
		for _, li := range o.LineItems {
			if strings.EqualFold(li.OfferID, offerID) && li.Quantity == quantity {
				found = append(found, o.ID)
				break
			}
		}
	}
	if len(found) != 1 {
		return "", nil
	}
	return found[0], nil
}

// record writes Partner Center ids on the claimed row as soon as they exist, guarded by the claim's ETag.
func (p *Provisioner) record(ctx context.Context, c *claimed, changes dataverse.Row) error {
	row, err := p.dv.Update(ctx, schema.SetLicenseChangeLogs, c.f.LCL.ID, changes, &dataverse.UpdateOptions{IfMatch: c.etag, Select: []string{"csp_licensechangelogid"}})
	if dataverse.IsConflict(err) {
		return errConflict
	}
	if err != nil {
		return fmt.Errorf("provision %s: record %v: %w", c.f.LCL.ID, keys(changes), err)
	}
	etag, _ := row["@odata.etag"].(string)
	c.etag = dataverse.ETag(etag)
	if id, ok := changes["csp_pccartid"].(string); ok {
		c.f.LCL.PCCartID = id
	}
	if id, ok := changes["csp_pcorderid"].(string); ok {
		c.f.LCL.PCOrderID = id
	}
	return nil
}

func keys(r dataverse.Row) []string {
	out := make([]string, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	return out
}

// finish writes the outcome of a change Partner Center now shows (made by this run, or found there): the
// LCL Provisioned with what happened, and the subscription row as Partner Center has it, in one change set:
// both or neither. cur is the LCL as this run last knew it (its ETag guards the write); c.f.LCL is the
// change that was made. An admin's edit since is never overwritten, and the outcome is never dropped for
// it: on a 412 the row is read again and the outcome written onto it as it is now, saying what happened
// (archived, or its status set by hand, while the change was being made). Only a new target entered in
// time on an active row (a new quantity) sends the run back to decide again, once the subscription row
// shows what Partner Center has. It returns the message written ("" when the row was deleted).
func (p *Provisioner) finish(ctx context.Context, c *claimed, res result, cur schema.LicenseChangeLog) (string, error) {
	id := c.f.LCL.ID
	subRow := subscriptionChanges(c.f, res, p.now().UTC())
	for try := 0; ; try++ {
		now := p.now().UTC()
		message := outcomeMessage(c.f.LCL, cur, res, now)
		lcl := dataverse.Row{
			"csp_provisioningstatus":  int(schema.ProvisioningProvisioned),
			"csp_provisionedon":       now,
			"csp_provisioningmessage": schema.Fit(schema.TableLicenseChangeLog, "csp_provisioningmessage", message),
			"csp_systemmessage":       fmt.Sprintf("Attempt id: %s (attempt %d), finished %s.", c.attempt, cur.Attempts, now.Format(time.RFC3339)),
			"csp_claimexpireson":      nil,
			"csp_heldreason":          nil,
			"csp_nextattempton":       nil,
		}
		if res.purchased && res.subscriptionID != "" {
			lcl["csp_pcsubscriptionid"] = res.subscriptionID
		}
		var b dataverse.Batch
		ops := []dataverse.Op{dataverse.UpdateOp(schema.SetLicenseChangeLogs, id, lcl, &dataverse.UpdateOptions{IfMatch: cur.ETag})}
		if len(subRow) > 0 {
			ops = append(ops, dataverse.UpdateOp(schema.SetSubscriptions, c.f.Subscription.ID, subRow, nil))
		}
		b.AddChangeSet(ops...)
		results, err := p.dv.ExecuteBatch(ctx, &b, nil)
		if err != nil {
			return "", fmt.Errorf("provision %s: write Provisioned: %w", id, err)
		}
		// A failed change set answers every operation with the one failure: 412 or 404 means the change's
		// row was edited or deleted since this run read it (or, seen below, the subscription row deleted).
		stale := dataverse.IsConflict(results[0].Err) || dataverse.IsNotFound(results[0].Err)
		for _, r := range results {
			if !stale && r.Err != nil && !errors.Is(r.Err, dataverse.ErrNotExecuted) {
				return "", fmt.Errorf("provision %s: write Provisioned: %w", id, r.Err)
			}
		}
		if !stale {
			p.log.Info("change log provisioned", "lcl", id, "attempt", c.attempt, "message", message)
			return message, nil
		}
		if try == 2 {
			return "", fmt.Errorf("provision %s: write Provisioned: the row kept changing: %w", id, errConflict)
		}
		fresh, err := p.readLCL(ctx, id)
		if dataverse.IsNotFound(err) {
			// Deleted while the change was made: nowhere to say so, but the subscription row still shows it.
			p.log.Warn("the change log was deleted while its change was made; recording the change on the subscription only",
				"lcl", id, "attempt", c.attempt, "message", res.message)
			return "", p.updateSubscription(ctx, c, subRow)
		}
		if err != nil {
			return "", fmt.Errorf("provision %s: read the row again: %w", id, err)
		}
		if !c.token.holds(fresh) {
			return "", errConflict // another attempt holds it now: decide again (it finds the change made)
		}
		if fresh.ETag == cur.ETag && len(subRow) > 0 {
			// The change's row is as it was: it is the subscription row that is gone. Write the outcome alone.
			subRow = nil
			continue
		}
		if retargeted(c.f.LCL, fresh) {
			// A new target entered in time: the subscription row first shows what was made, then the run
			// decides again and makes the new target.
			if err := p.updateSubscription(ctx, c, subRow); err != nil {
				return "", err
			}
			return "", errConflict
		}
		p.log.Info("the change log was edited while its change was made; writing the outcome onto it as it is now", "lcl", id)
		cur = fresh
	}
}

// retargeted reports an active change whose target an admin changed after the change l was made: the new
// target is still to be made. A purchase is not: what was bought stays bought.
func retargeted(l, now schema.LicenseChangeLog) bool {
	if now.State != schema.StateActive || l.ChangeType == schema.ChangePurchase ||
		(now.ProvisioningStatus != schema.ProvisioningInProgress && now.ProvisioningStatus != schema.ProvisioningAwaiting) {
		return false
	}
	return now.ChangeType != l.ChangeType || now.Subscription.ID != l.Subscription.ID || !equalQuantity(now.Quantity, l.Quantity)
}

func equalQuantity(a, b *int) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// subscriptionChanges are the columns of the subscription row that must change to show what Partner
// Center now has after res.
func subscriptionChanges(f mapping.LCLFacts, res result, now time.Time) dataverse.Row {
	l, sub := f.LCL, f.Subscription
	subRow := dataverse.Row{}
	if sub == nil {
		return subRow
	}
	if res.quantity != sub.Quantity && (l.ChangeType == schema.ChangeQuantity || l.ChangeType == schema.ChangePurchase) {
		subRow["csp_quantity"] = res.quantity
	}
	switch {
	case res.purchased:
		if res.subscriptionID != "" && res.subscriptionID != sub.PCSubscriptionID {
			subRow["csp_pcsubscriptionid"] = res.subscriptionID
		}
		if sub.ActualProvisionedOn.IsZero() {
			subRow["csp_actualprovisionedon"] = now
		}
	case l.ChangeType == schema.ChangeSuspend:
		subRow["statuscode"] = schema.SubscriptionSuspended
	case l.ChangeType == schema.ChangeReactivate:
		subRow["statecode"], subRow["statuscode"] = schema.StateActive, schema.StatusActive
	case l.ChangeType == schema.ChangeCancel:
		subRow["statecode"], subRow["statuscode"] = schema.StateInactive, schema.StatusInactive
	}
	return subRow
}

// updateSubscription writes what Partner Center now shows on the subscription row alone.
func (p *Provisioner) updateSubscription(ctx context.Context, c *claimed, subRow dataverse.Row) error {
	if len(subRow) == 0 {
		return nil
	}
	_, err := p.dv.Update(ctx, schema.SetSubscriptions, c.f.Subscription.ID, subRow, nil)
	if dataverse.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("provision %s: write the subscription: %w", c.f.LCL.ID, err)
	}
	return nil
}

// readLCL reads one change log with every column.
func (p *Provisioner) readLCL(ctx context.Context, id dataverse.GUID) (schema.LicenseChangeLog, error) {
	var l schema.LicenseChangeLog
	r, err := p.dv.Get(ctx, schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.LicenseChangeLog]()})
	if err != nil {
		return l, err
	}
	return l, dataverse.Unmarshal(r, &l)
}

// undoStep ends the message of a change made although someone tried to stop it.
const undoStep = "if the change should not have happened, create a new change to undo it."

// outcomeMessage says what the change made did, on the row as it is now (cur): when an admin archived it
// or set its status while it was being made, what Partner Center now shows, when, and why the row says so.
func outcomeMessage(made, cur schema.LicenseChangeLog, res result, now time.Time) string {
	var what, then string
	switch {
	case cur.State != schema.StateActive && cur.Status != schema.LCLArchived:
		what, then = "the row was deactivated", " The row stays inactive; "+undoStep
	case cur.State != schema.StateActive:
		what, then = "the row was archived", " The row stays archived; "+undoStep
	case cur.ProvisioningStatus == schema.ProvisioningAwaiting:
		what = "its Provisioning Status was set to " + mapping.ProvisioningLabel(cur.ProvisioningStatus)
		then = " It is Provisioned because the change was made: there is nothing left to retry."
	case cur.ProvisioningStatus != schema.ProvisioningInProgress && cur.ProvisioningStatus != schema.ProvisioningProvisioned:
		what = "its Provisioning Status was set to " + mapping.ProvisioningLabel(cur.ProvisioningStatus)
		then = " It is Provisioned because the change was made; " + undoStep
	}
	if what == "" {
		msg := res.message
		if res.purchased && cur.Quantity != nil && *cur.Quantity != res.quantity {
			msg += fmt.Sprintf(" New quantity was changed to %d while the order was being placed: Partner Center has the %d seat(s) bought. For %d, create a Quantity change.",
				*cur.Quantity, res.quantity, *cur.Quantity)
		}
		return msg
	}
	shows := pcShows(made.ChangeType, res)
	if res.sent {
		return fmt.Sprintf("%s: this change was made at %s although %s while it was being made.%s", shows, mapping.FormatTime(now), what, then)
	}
	return fmt.Sprintf("%s, as this change asks (checked at %s), although %s while it was being made.%s", shows, mapping.FormatTime(now), what, then)
}

// pcShows says what Partner Center now shows after a change of this type: "Partner Center now has 15 seats".
func pcShows(change schema.ChangeType, res result) string {
	switch {
	case res.purchased:
		s := fmt.Sprintf("Partner Center now has %d seats (order %s", res.quantity, res.orderID)
		if res.subscriptionID != "" {
			s += ", subscription " + res.subscriptionID
		}
		return s + ")"
	case change == schema.ChangeQuantity:
		return fmt.Sprintf("Partner Center now has %d seats", res.quantity)
	}
	return "The subscription is now " + pcStatusWord(res.status) + " in Partner Center"
}

func pcStatusWord(s partnercenter.Enum) string {
	switch {
	case s.Is(partnercenter.SubscriptionDeleted):
		return "cancelled"
	case s == "":
		return "in an unknown state"
	}
	return strings.ToLower(string(s))
}

// done reports a change that holds nothing up any more: archived, or Provisioned or Not Applicable (a
// person may set those by hand).
func done(l schema.LicenseChangeLog) bool {
	return l.State != schema.StateActive || l.ProvisioningStatus == schema.ProvisioningProvisioned ||
		l.ProvisioningStatus == schema.ProvisioningNotApplicable
}

// laterToWake are the changes after f.LCL whose decision depends on it: the next one in line, and, when
// f.LCL is the first pending change of the subscription, those held Blocked (their message names it).
func laterToWake(f mapping.LCLFacts) []dataverse.GUID {
	var ids []dataverse.GUID
	head := len(f.Earlier()) == 0
	for i, o := range f.Later() {
		if o.ProvisioningStatus == schema.ProvisioningAwaiting && (i == 0 || head && o.HeldReason == schema.HeldBlocked) {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

// wakeLater submits the changes after f.LCL whose decision depends on it, when it changed: archived,
// provisioned, failed, or no longer failed. Their message then says what holds them now, and they run at
// once when nothing does, instead of at the sweep's safety net.
func (p *Provisioner) wakeLater(ctx context.Context, f mapping.LCLFacts) {
	if p.wakeRows == nil {
		return
	}
	if ids := laterToWake(f); len(ids) > 0 {
		p.wakeRows(ctx, ids)
	}
}

// wake submits what this success unblocks: the changes after it of the same subscription, and the add-ons
// waiting for a subscription that was just bought.
func (p *Provisioner) wake(ctx context.Context, c *claimed, res result) {
	if p.wakeRows == nil {
		return
	}
	ids := laterToWake(c.f)
	if res.purchased {
		q := &dataverse.Query{Select: []string{"csp_subscriptionid"}, Filter: dataverse.LookupEq("csp_parentsubscription", c.f.Subscription.ID)}
		var children []dataverse.Filter
		for r, err := range p.dv.List(ctx, schema.SetSubscriptions, q) {
			if err != nil {
				p.log.Warn("could not list the add-ons to wake; the sweep will find them", "error", err)
				break
			}
			if id, err := dataverse.ParseGUID(fmt.Sprint(r["csp_subscriptionid"])); err == nil {
				children = append(children, dataverse.LookupEq("csp_subscription", id))
			}
		}
		if len(children) > 0 {
			for r, err := range p.dv.List(ctx, schema.SetLicenseChangeLogs, &dataverse.Query{Select: []string{"csp_licensechangelogid"},
				Filter: dataverse.And(dataverse.Or(children...), dataverse.Eq("csp_heldreason", schema.HeldWaitingForParent),
					dataverse.Eq("csp_provisioningstatus", schema.ProvisioningAwaiting))}) {
				if err != nil {
					p.log.Warn("could not list the add-on changes to wake; the sweep will find them", "error", err)
					break
				}
				if id, err := dataverse.ParseGUID(fmt.Sprint(r["csp_licensechangelogid"])); err == nil {
					ids = append(ids, id)
				}
			}
		}
	}
	if len(ids) > 0 {
		p.wakeRows(ctx, ids)
	}
}

// pendingChanges is the subscription's one-to-many relationship to its change logs: the navigation
// property load expands to read the subscription's changes not yet done.
func pendingChanges() string {
	return dataverse.RelationshipName(schema.TableSubscription, schema.TableLicenseChangeLog, "csp_subscription")
}

// loadExpand is what load reads with the change log, in the same request: its subscription, and the
// subscription's provider, provider account, parent subscription and changes not yet done.
func loadExpand() []dataverse.Expand {
	return []dataverse.Expand{{
		Nav: "csp_subscription", Select: dataverse.Columns[schema.Subscription](),
		Expand: []dataverse.Expand{
			{Nav: "csp_provider", Select: dataverse.Columns[schema.Provider]()},
			{Nav: "csp_provideraccount", Select: dataverse.Columns[schema.ProviderAccount]()},
			{Nav: "csp_parentsubscription", Select: dataverse.Columns[schema.Subscription]()},
			// Plain comparisons: Microsoft documents $filter inside $expand, not its query functions (In).
			{Nav: pendingChanges(), Select: dataverse.Columns[schema.LicenseChangeLog](),
				Filter: dataverse.And(dataverse.Eq("statecode", schema.StateActive), dataverse.Or(
					dataverse.Eq("csp_provisioningstatus", schema.ProvisioningAwaiting),
					dataverse.Eq("csp_provisioningstatus", schema.ProvisioningInProgress),
					dataverse.Eq("csp_provisioningstatus", schema.ProvisioningFailed)))},
		},
	}}
}

// load reads the LCL and its context in one request ($expand, loadExpand): the subscription, its
// provider, provider account and parent subscription, and its changes not yet done.
func (p *Provisioner) load(ctx context.Context, id dataverse.GUID) (mapping.LCLFacts, error) {
	var f mapping.LCLFacts
	r, err := p.dv.Get(ctx, schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.LicenseChangeLog](), Expand: loadExpand()})
	if err != nil {
		return f, err
	}
	if err := dataverse.Unmarshal(r, &f.LCL); err != nil {
		return f, err
	}
	subRow, ok := r.Expanded("csp_subscription")
	if f.LCL.Subscription.ID == uuid.Nil || !ok {
		return f, nil // no subscription, or it no longer exists
	}
	var sub schema.Subscription
	if err := dataverse.Unmarshal(subRow, &sub); err != nil {
		return f, err
	}
	f.Subscription = &sub
	if row, ok := subRow.Expanded("csp_provider"); ok {
		f.Provider = &schema.Provider{}
		if err := dataverse.Unmarshal(row, f.Provider); err != nil {
			return f, err
		}
	}
	if row, ok := subRow.Expanded("csp_provideraccount"); ok {
		f.ProviderAccount = &schema.ProviderAccount{}
		if err := dataverse.Unmarshal(row, f.ProviderAccount); err != nil {
			return f, err
		}
	}
	if row, ok := subRow.Expanded("csp_parentsubscription"); ok {
		f.Parent = &schema.Subscription{}
		if err := dataverse.Unmarshal(row, f.Parent); err != nil {
			return f, err
		}
	}
	for _, row := range subRow.ExpandedRows(pendingChanges()) {
		var o schema.LicenseChangeLog
		if err := dataverse.Unmarshal(row, &o); err != nil {
			return f, err
		}
		f.Pending = append(f.Pending, o)
	}
	return f, nil
}

// callContext bounds one Partner Center call (Options.CallTimeout).
func (p *Provisioner) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.callTimeout)
}

func nullableChoice(v int) any {
	if v == 0 {
		return nil
	}
	return v
}

func nullableTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func sameMinute(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return d < time.Minute && d > -time.Minute
}

// Triggers are the events that wake the provisioner: a change log created, or changed in a way that
// asks for provisioning (status set back to Awaiting, a new quantity, date, type or subscription) or that
// frees the changes after it (archived: statecode).
// A Diagnose request (csp_diagnoserequestedon) wakes it too, to answer it.
func Triggers() []work.Trigger {
	writeBack := []string{"csp_provisioningstatus", "csp_provisioningmessage", "csp_systemmessage", "csp_attemptid", "csp_claimexpireson",
		"csp_attempts", "csp_provisionedon", "csp_pcorderid", "csp_pccartid", "csp_pcsubscriptionid", "csp_heldreason", "csp_nextattempton",
		request.DiagnoseColumn, request.DiagnosisColumn}
	return []work.Trigger{
		{Table: schema.TableLicenseChangeLog, Message: "Create", WriteBack: writeBack},
		{Table: schema.TableLicenseChangeLog, Message: "Update", WriteBack: writeBack, Columns: append(lclTriggerColumns(), request.DiagnoseColumn)},
	}
}

// lclTriggerColumns are the columns whose change asks for provisioning.
func lclTriggerColumns() []string {
	return []string{"csp_provisioningstatus", "csp_quantity", "csp_effectivedate", "csp_changetype", "csp_subscription", "statecode"}
}

// SubscriptionTriggers wake HandleSubscription: a Diagnose request on a subscription.
func SubscriptionTriggers() []work.Trigger {
	return []work.Trigger{{Table: schema.TableSubscription, Message: "Update", Columns: []string{request.DiagnoseColumn},
		WriteBack: []string{request.DiagnoseColumn, request.DiagnosisColumn}}}
}
