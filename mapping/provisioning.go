// Package mapping holds the pure functions between Partner Center and the connector's Dataverse rows: the
// provisioning decision for a License Change Log (DESIGN §5), and Partner Center's answers in words. No
// I/O and no clock: callers pass what they read and the time.
package mapping

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// Verdict is what the decision says to do with an LCL.
type Verdict int

// Verdicts.
const (
	Proceed       Verdict = iota // nothing stops it: claim it and make the change
	NotApplicable                // nothing to push: write Not Applicable
	Hold                         // stays Awaiting Provisioning, with the reason and when to look again
	Fail                         // Failed Provisioning: a person must act
	Skip                         // not awaiting provisioning: leave the row alone
)

func (v Verdict) String() string {
	switch v {
	case Proceed:
		return "proceed"
	case NotApplicable:
		return "not applicable"
	case Hold:
		return "hold"
	case Fail:
		return "fail"
	case Skip:
		return "skip"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// MarshalText writes the verdict as its word (for --output json).
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Remedy is what a person does about a failed change. A failure's message ends with its remedy's text,
// and `connector diagnose lcl` names the same step: one text per remedy, so the row and diagnose cannot
// disagree about what to do.
type Remedy int

// Remedies.
const (
	RemedyNone           Remedy = iota // not a failure
	RemedyRetry                        // fix what the message names, then set the change back to Awaiting Provisioning
	RemedyArchive                      // it cannot be made as asked: archive it, and the changes after it go ahead
	RemedyRetryOrArchive               // either: change it so it can be made and try again, or archive it
)

// The steps the remedies name, in the words of the form.
const (
	retryStep   = "set Provisioning Status back to Awaiting Provisioning to try again"
	archiveStep = "archive this change (Status Reason: Archived)"
	// laterGoAhead is what archiving does for the changes after it: they are woken at once.
	laterGoAhead = "the later changes of this subscription then go ahead"
)

// Step is the remedy's step in words: "set Provisioning Status back to Awaiting Provisioning to try again".
func (r Remedy) Step() string {
	switch r {
	case RemedyRetry:
		return retryStep
	case RemedyArchive:
		return archiveStep + ": it cannot be made as asked, and " + laterGoAhead
	case RemedyRetryOrArchive:
		return retryStep + ", or " + archiveStep + " if it should not happen: " + laterGoAhead
	}
	return ""
}

// Text is the remedy as the closing sentence of a failure's message.
func (r Remedy) Text() string {
	if r == RemedyNone {
		return ""
	}
	return "Then " + r.Step() + "."
}

// RemedyOf reads the remedy a failure's message ends with (RemedyNone when it ends with none): what the
// row told people to do, for diagnose to repeat.
func RemedyOf(message string) Remedy {
	for _, r := range []Remedy{RemedyRetry, RemedyArchive, RemedyRetryOrArchive} {
		if strings.HasSuffix(message, r.Text()) {
			return r
		}
	}
	return RemedyNone
}

// AsRetried is f as a retry would see it: a Failed change set back to Awaiting Provisioning. Diagnose walks
// a failed change so, to show what would stop it now.
func AsRetried(f LCLFacts) LCLFacts {
	if f.LCL.State == schema.StateActive && f.LCL.ProvisioningStatus == schema.ProvisioningFailed {
		f.LCL.ProvisioningStatus = schema.ProvisioningAwaiting
	}
	return f
}

func (r Remedy) String() string {
	switch r {
	case RemedyRetry:
		return "retry"
	case RemedyArchive:
		return "archive"
	case RemedyRetryOrArchive:
		return "retry or archive"
	}
	return ""
}

// MarshalText writes the remedy as its word (for --output json).
func (r Remedy) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Check is one step of the decision walk, as `connector diagnose lcl` prints it.
type Check struct {
	// Rule is the row of DESIGN §5's table the check belongs to; 0 for the preliminaries.
	Rule   int    `json:"rule" desc:"The rule's number in the design's table (0: preliminaries)."`
	Name   string `json:"name" desc:"The rule."`
	Passed bool   `json:"passed" desc:"Whether it passed."`
	Detail string `json:"detail" desc:"What it found."`
}

// Decision is the outcome of the walk.
type Decision struct {
	Verdict Verdict `json:"verdict" desc:"What the connector does: Proceed, NotApplicable, Hold, Fail or Skip."`
	// Held says why a Hold holds; NextAttempt when to look again (zero: when something wakes it).
	Held        schema.HeldReason `json:"-"`
	HeldLabel   string            `json:"held,omitempty" desc:"Why it is held, when it is."`
	NextAttempt time.Time         `json:"nextAttempt,omitzero" desc:"When it is looked at again."`
	// Message is for people (csp_provisioningmessage); System for support (csp_systemmessage).
	Message string `json:"message,omitempty" desc:"What it means, in plain words."`
	System  string `json:"system,omitempty" desc:"Technical detail for support."`
	// Remedy is what a person does about a Fail; Message ends with its Text.
	Remedy Remedy `json:"remedy,omitempty" desc:"What a person does about a failure: retry, archive, or retry or archive."`
	// NotConnected asks for the provider to be marked not connected (rule 10).
	NotConnected bool `json:"notConnected,omitempty" desc:"True when the provider is to be marked not connected."`
	// Notify asks for the people who handle changes to be told (a Manual provider's change).
	Notify bool `json:"notify,omitempty" desc:"True when the people who handle changes are told."`
	// InLine marks a change held only behind the one before it, which is about to run or running: its
	// success wakes this one, so there is nothing worth writing on the row meanwhile.
	InLine bool    `json:"inLine,omitempty" desc:"True when it only waits for the change before it."`
	Checks []Check `json:"checks" desc:"Every rule, in order, with its result."`
}

// LCLFacts is what the decision reads: the LCL and its context, as read from Dataverse just now.
type LCLFacts struct {
	LCL             schema.LicenseChangeLog
	Subscription    *schema.Subscription    // nil: the LCL names no subscription, or it is gone
	Provider        *schema.Provider        // the subscription's provider
	ProviderAccount *schema.ProviderAccount // the subscription's provider account
	Parent          *schema.Subscription    // an add-on's parent subscription (nil if not an add-on, or gone)
	// Pending are the subscription's other active LCLs that are not done (Awaiting Provisioning,
	// Provisioning or Failed Provisioning), in any order.
	Pending []schema.LicenseChangeLog
}

// Earlier returns the pending LCLs that come before f.LCL, first first.
func (f LCLFacts) Earlier() []schema.LicenseChangeLog {
	var out []schema.LicenseChangeLog
	for _, o := range f.Pending {
		if o.ID != f.LCL.ID && Before(o, f.LCL) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, Compare)
	return out
}

// Later returns the pending LCLs that come after f.LCL, first first: the one to wake when it is done.
func (f LCLFacts) Later() []schema.LicenseChangeLog {
	var out []schema.LicenseChangeLog
	for _, o := range f.Pending {
		if o.ID != f.LCL.ID && Before(f.LCL, o) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, Compare)
	return out
}

// Before orders the changes of one subscription: by effective date (the creation time when there is none),
// then creation time, then id. Quantities are absolute, so applying them in this order leaves the last one.
func Before(a, b schema.LicenseChangeLog) bool { return Compare(a, b) < 0 }

// Compare is Before as a comparison for slices.SortFunc.
func Compare(a, b schema.LicenseChangeLog) int {
	return cmp.Or(orderTime(a).Compare(orderTime(b)), a.CreatedOn.Compare(b.CreatedOn), strings.Compare(a.ID.String(), b.ID.String()))
}

func orderTime(l schema.LicenseChangeLog) time.Time {
	if !l.EffectiveDate.IsZero() {
		return l.EffectiveDate
	}
	return l.CreatedOn
}

// walk accumulates checks until one stops the decision.
type walk struct{ d Decision }

func (w *walk) pass(rule int, name, detail string, args ...any) {
	w.d.Checks = append(w.d.Checks, Check{Rule: rule, Name: name, Passed: true, Detail: fmt.Sprintf(detail, args...)})
}

func (w *walk) stop(rule int, name string, v Verdict, message string) Decision {
	w.d.Checks = append(w.d.Checks, Check{Rule: rule, Name: name, Detail: message})
	w.d.Verdict, w.d.Message = v, message
	return w.d
}

// fail stops the walk with a failure: what went wrong and what to do about it, then the remedy's step.
func (w *walk) fail(rule int, name, what string, r Remedy) Decision {
	d := w.stop(rule, name, Fail, strings.TrimSpace(sentence(what)+" "+r.Text()))
	d.Remedy = r
	return d
}

func (w *walk) hold(rule int, name string, reason schema.HeldReason, next time.Time, message string) Decision {
	d := w.stop(rule, name, Hold, message)
	d.Held, d.HeldLabel, d.NextAttempt = reason, HeldLabel(reason), next
	return d
}

// Decide walks rules 1–8 of DESIGN §5, the ones that need only Dataverse, and stops at the first that
// applies. Proceed means Partner Center comes next: read the subscription and call CheckPartnerCenter.
func Decide(f LCLFacts, now time.Time) Decision {
	var w walk
	l := f.LCL
	switch {
	case l.State != schema.StateActive:
		return w.stop(0, "Active", Skip, "The change is archived: it is not provisioned.")
	case l.ProvisioningStatus == schema.ProvisioningProvisioned:
		return w.stop(0, "Awaiting Provisioning", Skip, "The change is Provisioned: there is nothing left to push.")
	case l.ProvisioningStatus != schema.ProvisioningAwaiting && l.ProvisioningStatus != schema.ProvisioningInProgress:
		return w.stop(0, "Awaiting Provisioning", Skip, fmt.Sprintf("The change is %s: only changes Awaiting Provisioning are pushed. Set it back to Awaiting Provisioning to push it.", ProvisioningLabel(l.ProvisioningStatus)))
	}
	w.pass(0, "Awaiting Provisioning", "status %s", ProvisioningLabel(l.ProvisioningStatus))
	if msg, r := validate(l); msg != "" {
		return w.fail(0, "Complete", msg, r)
	}
	w.pass(0, "Complete", "%s", describeRequest(l))

	if l.ChangeSource == schema.SourceProvider {
		return w.stop(1, "Change source", NotApplicable, "This change came from the provider itself (Change source: Provider): there is nothing to push back.")
	}
	w.pass(1, "Change source", "made in Dynamics")

	if f.Provider != nil {
		switch f.Provider.Type {
		case schema.ProviderDoNothing:
			return w.stop(2, "Provider type", NotApplicable, fmt.Sprintf("%s is a Do Nothing provider: its changes are recorded only, never pushed.", name(f.Provider.Name, "The provider")))
		case schema.ProviderManual:
			when := ""
			if l.EffectiveDate.After(now) {
				when = " on or after " + FormatTime(l.EffectiveDate)
			}
			d := w.hold(3, "Provider type", schema.HeldManual, time.Time{}, fmt.Sprintf(
				"%s is a Manual provider: make this change (%s) yourself in the provider's portal%s, then set Provisioning Status to Provisioned.",
				name(f.Provider.Name, "The provider"), describeRequest(l), when))
			d.Notify = true
			return d
		}
		w.pass(2, "Provider type", "%s is Automatic", name(f.Provider.Name, "the provider"))
	}

	if msg, r := missingMapping(f); msg != "" {
		return w.fail(4, "Mapping", msg, r)
	}
	w.pass(4, "Mapping", "subscription %s, provider %s, provider account %s (tenant %s)", name(f.Subscription.Name, f.Subscription.ID.String()),
		name(f.Provider.Name, f.Provider.ID.String()), name(f.ProviderAccount.Name, f.ProviderAccount.ID.String()), f.ProviderAccount.TenantID)

	if l.EffectiveDate.After(now) {
		return w.hold(5, "Effective date", schema.HeldScheduled, l.EffectiveDate,
			fmt.Sprintf("Scheduled for %s: the connector pushes it then.", FormatTime(l.EffectiveDate)))
	}
	if l.EffectiveDate.IsZero() {
		w.pass(5, "Effective date", "none: due now")
	} else {
		w.pass(5, "Effective date", "%s, due", FormatTime(l.EffectiveDate))
	}

	if f.Subscription.Parent.ID == uuid.Nil {
		w.pass(6, "Parent subscription", "not an add-on")
	} else {
		switch {
		case f.Parent == nil:
			return w.fail(6, "Parent subscription", fmt.Sprintf("Subscription %s is an add-on, but its parent subscription no longer exists in Dynamics: set its Parent subscription.", name(f.Subscription.Name, "")), RemedyRetry)
		case f.Parent.PCSubscriptionID == "":
			return w.hold(6, "Parent subscription", schema.HeldWaitingForParent, time.Time{},
				fmt.Sprintf("Waiting for the parent subscription %s to be provisioned: this add-on change runs as soon as it is.", name(f.Parent.Name, f.Parent.ID.String())))
		}
		w.pass(6, "Parent subscription", "%s is provisioned (%s)", name(f.Parent.Name, f.Parent.ID.String()), f.Parent.PCSubscriptionID)
	}

	if earlier := f.Earlier(); len(earlier) > 0 {
		e := earlier[0]
		if e.ProvisioningStatus == schema.ProvisioningFailed {
			return w.hold(7, "Earlier changes", schema.HeldBlocked, time.Time{}, fmt.Sprintf(
				"Blocked by the earlier change %s of this subscription, which failed: do what its message says (fix it and set it back to Awaiting Provisioning, or archive it). This change follows as soon as it is provisioned or archived.",
				LCLName(e)))
		}
		d := w.hold(7, "Earlier changes", schema.HeldBlocked, time.Time{}, fmt.Sprintf(
			"Waiting for the earlier change %s (%s) of this subscription: this one follows it automatically.", LCLName(e), ProvisioningLabel(e.ProvisioningStatus)))
		d.InLine = e.ProvisioningStatus == schema.ProvisioningInProgress || (e.HeldReason == 0 && !e.EffectiveDate.After(now))
		return d
	}
	w.pass(7, "Earlier changes", "none pending")

	if l.ChangeType != schema.ChangeReactivate && l.ChangeType != schema.ChangePurchase {
		if f.Subscription.State != schema.StateActive {
			return w.fail(8, "Subscription status", fmt.Sprintf("Subscription %s is inactive in Dynamics: reactivate it first (a Reactivate change).", name(f.Subscription.Name, "")), RemedyRetry)
		}
		if f.Subscription.Status == schema.SubscriptionSuspended && l.ChangeType != schema.ChangeSuspend {
			return w.fail(8, "Subscription status", fmt.Sprintf("Subscription %s is suspended: reactivate it first (a Reactivate change).", name(f.Subscription.Name, "")), RemedyRetry)
		}
	}
	w.pass(8, "Subscription status", "active in Dynamics")
	w.d.Verdict = Proceed
	return w.d
}

// validate reports an LCL whose own fields cannot describe a change, and what to do about it.
func validate(l schema.LicenseChangeLog) (string, Remedy) {
	switch l.ChangeType {
	case schema.ChangePurchase, schema.ChangeQuantity:
		if l.Quantity == nil {
			return "New quantity is empty: enter the total number of seats the subscription should have.", RemedyRetry
		}
		if *l.Quantity < 1 {
			return fmt.Sprintf("New quantity is %d: a subscription needs at least 1 seat. Enter at least 1, or, to remove the subscription entirely, use a Cancel change instead.", *l.Quantity), RemedyRetryOrArchive
		}
	case schema.ChangeSuspend, schema.ChangeReactivate, schema.ChangeCancel:
	default:
		return "Change type is empty or unknown: choose Purchase, Quantity, Suspend, Reactivate or Cancel.", RemedyRetry
	}
	if l.Subscription.ID == uuid.Nil {
		return "The change names no subscription: set its Subscription.", RemedyRetry
	}
	return "", RemedyNone
}

// missingMapping names the first missing link between the change and a Partner Center customer, and what
// to do about it.
func missingMapping(f LCLFacts) (string, Remedy) {
	switch {
	case f.Subscription == nil:
		return "The change's subscription no longer exists in Dynamics: point the change at the right subscription.", RemedyRetryOrArchive
	case f.Provider == nil:
		return fmt.Sprintf("Subscription %s has no provider: set its Provider.", name(f.Subscription.Name, "")), RemedyRetry
	case f.Provider.State != schema.StateActive:
		return fmt.Sprintf("Provider %s is inactive: activate it, or move the subscription to an active provider.", name(f.Provider.Name, "")), RemedyRetry
	case f.ProviderAccount == nil:
		return fmt.Sprintf("Subscription %s has no provider account: set its Provider account to the customer's (Provider Accounts lists every Partner Center customer).", name(f.Subscription.Name, "")), RemedyRetry
	case f.ProviderAccount.TenantID == "":
		return fmt.Sprintf("Provider account %s has no Provider specific account ID: enter the customer's Microsoft tenant id.", name(f.ProviderAccount.Name, "")), RemedyRetry
	case f.ProviderAccount.State != schema.StateActive:
		return fmt.Sprintf("Provider account %s is inactive: the customer's relationship with the partner was removed in Partner Center. Restore the reseller relationship and sync provider accounts.", name(f.ProviderAccount.Name, "")), RemedyRetry
	case f.LCL.ChangeType == schema.ChangePurchase && f.Subscription.PCSubscriptionID != "" && f.LCL.PCOrderID == "" && f.LCL.PCCartID == "":
		return fmt.Sprintf("Subscription %s already exists in Partner Center (%s): buying it again would create a second subscription. Use a Quantity change to add seats.", name(f.Subscription.Name, ""), f.Subscription.PCSubscriptionID), RemedyArchive
	case f.LCL.ChangeType != schema.ChangePurchase && f.Subscription.PCSubscriptionID == "" && !purchasePending(f):
		return fmt.Sprintf("Subscription %s has no Provider subscription ID, so the connector cannot find it in Partner Center: enter its Partner Center subscription id, or buy it first with a Purchase change.", name(f.Subscription.Name, "")), RemedyRetry
	}
	return "", RemedyNone
}

// purchasePending reports an earlier purchase of the subscription that is not done: rule 7 holds the change
// behind it instead of failing it for a missing subscription id.
func purchasePending(f LCLFacts) bool {
	for _, e := range f.Earlier() {
		if e.ChangeType == schema.ChangePurchase {
			return true
		}
	}
	return false
}

// CheckPartnerCenter walks the rules that need Partner Center's copy of the subscription: its status (rule
// 8 again, as Partner Center sees it) and seat reductions (rule 9). d is Decide's Proceed decision; the
// checks are appended to it.
func CheckPartnerCenter(d Decision, f LCLFacts, pc partnercenter.Subscription, now time.Time) Decision {
	w := walk{d: d}
	l := f.LCL
	status := strings.ToLower(string(pc.Status))
	switch {
	case pc.Status.Is(partnercenter.SubscriptionActive):
		if l.ChangeType == schema.ChangeReactivate {
			w.pass(8, "Partner Center status", "active: reactivating changes nothing")
		} else {
			w.pass(8, "Partner Center status", "active")
		}
	case pc.Status.Is(partnercenter.SubscriptionSuspended) && (l.ChangeType == schema.ChangeReactivate || l.ChangeType == schema.ChangeSuspend):
		w.pass(8, "Partner Center status", "suspended")
	case pc.Status.Is(partnercenter.SubscriptionSuspended):
		return w.fail(8, "Partner Center status", "The subscription is suspended in Partner Center: reactivate it first (a Reactivate change).", RemedyRetry)
	case pc.Status.Is(partnercenter.SubscriptionDeleted) && l.ChangeType == schema.ChangeCancel:
		// Cancelled already (by an attempt that did not live to write it back, or in the portal): done.
		w.pass(8, "Partner Center status", "cancelled already")
		w.d.Verdict = Proceed
		return w.d
	case pc.Status.Is(partnercenter.SubscriptionDeleted), pc.Status.Is(partnercenter.SubscriptionExpired), pc.Status.Is(partnercenter.SubscriptionDisabled):
		return w.fail(8, "Partner Center status", fmt.Sprintf("The subscription is %s in Partner Center: it can no longer be changed. Buy a new subscription (a Purchase change on a new subscription row) if the customer still needs it.", statusWord(status)), RemedyArchive)
	default:
		return w.hold(8, "Partner Center status", schema.HeldRetrying, now.Add(RetryDelay(l.Attempts, 0)),
			fmt.Sprintf("The subscription is %s in Partner Center: the connector tries again when it is active.", statusWord(status)))
	}

	switch l.ChangeType {
	case schema.ChangeQuantity:
		target := *l.Quantity
		if target >= pc.Quantity {
			w.pass(9, "Seat reduction", "not a reduction (%d → %d)", pc.Quantity, target)
			break
		}
		if msg, r := checkReduction(f, pc, pc.Quantity-target, now); msg != "" {
			return w.fail(9, "Seat reduction", msg, r)
		}
		w.pass(9, "Seat reduction", "%d seat(s) may be removed now; this removes %d", pc.Refundable(now), pc.Quantity-target)
	case schema.ChangeCancel:
		if msg, r := checkBehavior(f, now); msg != "" {
			return w.fail(9, "Cancellation", msg, r)
		}
		until := pc.CancellationAllowedUntilDate
		if until == nil || !now.Before(*until) {
			msg := "Partner Center no longer allows cancelling this subscription"
			if until != nil {
				msg += fmt.Sprintf(" (the cancellation window ended %s)", FormatTime(*until))
			}
			return w.fail(9, "Cancellation", msg+". Turn auto-renew off so it ends at renewal"+renewalHint(f, pc)+".", RemedyArchive)
		}
		w.pass(9, "Cancellation", "allowed until %s", FormatTime(*until))
	default:
		w.pass(9, "Seat reduction", "not a reduction")
	}
	w.d.Verdict = Proceed
	return w.d
}

// checkReduction applies the subscription's reduction behaviour and Partner Center's refundable seats.
func checkReduction(f LCLFacts, pc partnercenter.Subscription, remove int, now time.Time) (string, Remedy) {
	if msg, r := checkBehavior(f, now); msg != "" {
		return msg, r
	}
	refundable := pc.Refundable(now)
	if remove <= refundable {
		return "", RemedyNone
	}
	target := pc.Quantity - remove
	if refundable == 0 {
		return fmt.Sprintf("Partner Center allows no seat reduction now (seats %d → %d asked): the seats are past their refund window. Reduce at renewal%s instead.",
			pc.Quantity, target, renewalHint(f, pc)), RemedyArchive
	}
	return fmt.Sprintf("Partner Center allows removing at most %d seat(s) now, until %s (seats %d → %d asked, which removes %d). Set a new quantity of at least %d, or reduce at renewal%s instead.",
		refundable, FormatTime(earliestRefundDeadline(pc, now)), pc.Quantity, target, remove, pc.Quantity-refundable, renewalHint(f, pc)), RemedyRetryOrArchive
}

// checkBehavior applies the subscription row's Seat reduction setting and window.
func checkBehavior(f LCLFacts, now time.Time) (string, Remedy) {
	s := f.Subscription
	switch s.ReductionBehavior {
	case schema.ReductionDisallowed:
		return fmt.Sprintf("Seat reductions are not allowed for subscription %s (Seat reduction: Disallowed). Reduce at renewal%s instead.", name(s.Name, ""), renewalDate(s.CommitmentEndDate)), RemedyArchive
	case schema.ReductionAllowedWithinWindow:
		if s.ReductionWindowHrs <= 0 {
			return fmt.Sprintf("Subscription %s allows reductions within a window, but its Reduction window (hours) is empty: enter it.", name(s.Name, "")), RemedyRetry
		}
		if s.ActualProvisionedOn.IsZero() {
			return fmt.Sprintf("Subscription %s allows reductions within %d hours of provisioning, but its Actual provisioned on date is empty: enter it.", name(s.Name, ""), s.ReductionWindowHrs), RemedyRetry
		}
		end := s.ActualProvisionedOn.Add(time.Duration(s.ReductionWindowHrs) * time.Hour)
		if !now.Before(end) {
			return fmt.Sprintf("The reduction window of subscription %s ended %s (%d hours after it was provisioned on %s). Reduce at renewal%s instead.",
				name(s.Name, ""), FormatTime(end), s.ReductionWindowHrs, FormatTime(s.ActualProvisionedOn), renewalDate(s.CommitmentEndDate)), RemedyArchive
		}
	}
	return "", RemedyNone
}

func earliestRefundDeadline(pc partnercenter.Subscription, now time.Time) time.Time {
	var first time.Time
	if pc.RefundableQuantity != nil {
		for _, d := range pc.RefundableQuantity.Details {
			if d.AllowedUntil.After(now) && (first.IsZero() || d.AllowedUntil.Before(first)) {
				first = d.AllowedUntil
			}
		}
	}
	return first
}

func renewalHint(f LCLFacts, pc partnercenter.Subscription) string {
	if pc.CommitmentEndDate != nil {
		return renewalDate(*pc.CommitmentEndDate)
	}
	return renewalDate(f.Subscription.CommitmentEndDate)
}

func renewalDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " (" + t.UTC().Format("2 Jan 2006") + ")"
}

// RetryDelay is how long a change held by throttling or an outage waits: what Partner Center asked for, and
// at least 1 minute doubling with each attempt up to 30 minutes.
func RetryDelay(attempts int, retryAfter time.Duration) time.Duration {
	d := time.Minute
	for i := 1; i < attempts && d < 30*time.Minute; i++ {
		d *= 2
	}
	return max(min(d, 30*time.Minute), retryAfter)
}

// FormatTime writes a time for people: "2 Jan 2027 09:00 UTC".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "(never)"
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

// LCLName names an LCL for a message: its name and effective date.
func LCLName(l schema.LicenseChangeLog) string {
	n := name(l.Name, l.ID.String())
	if !l.EffectiveDate.IsZero() {
		n += " (effective " + l.EffectiveDate.UTC().Format("2 Jan 2006") + ")"
	}
	return "“" + n + "”"
}

func describeRequest(l schema.LicenseChangeLog) string {
	switch l.ChangeType {
	case schema.ChangePurchase:
		return fmt.Sprintf("buy %d seat(s)", deref(l.Quantity))
	case schema.ChangeQuantity:
		if l.PreviousQuantity != nil {
			return fmt.Sprintf("seats %d → %d", *l.PreviousQuantity, deref(l.Quantity))
		}
		return fmt.Sprintf("set seats to %d", deref(l.Quantity))
	case schema.ChangeSuspend:
		return "suspend the subscription"
	case schema.ChangeReactivate:
		return "reactivate the subscription"
	case schema.ChangeCancel:
		return "cancel the subscription"
	}
	return "unknown change"
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func name(n, fallback string) string {
	if strings.TrimSpace(n) != "" {
		return n
	}
	if fallback == "" {
		return "(unnamed)"
	}
	return fallback
}

func statusWord(s string) string {
	switch s {
	case "deleted":
		return "cancelled"
	case "":
		return "in an unknown state"
	}
	return s
}

// ProvisioningLabel is the status as the form shows it.
func ProvisioningLabel(s schema.ProvisioningStatus) string {
	if l := schema.OptionLabel(schema.TableLicenseChangeLog, "csp_provisioningstatus", int(s)); l != "" {
		return l
	}
	return "no status"
}

// HeldLabel is the held reason as the form shows it.
func HeldLabel(r schema.HeldReason) string {
	return schema.OptionLabel(schema.TableLicenseChangeLog, "csp_heldreason", int(r))
}
