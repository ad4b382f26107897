package provisioning

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// LCLState is an LCL as people see it on the form.
type LCLState struct {
	ID             dataverse.GUID `json:"id" desc:"The license change log's row id."`
	Name           string         `json:"name" desc:"The change log's name."`
	ChangeType     string         `json:"changeType" desc:"The kind of change (Quantity, Purchase, Suspend, Reactivate, Cancel…)."`
	Quantity       *int           `json:"quantity,omitempty" desc:"The seat count the change asks for."`
	EffectiveDate  time.Time      `json:"effectiveDate,omitzero" desc:"When the change is due."`
	CreatedOn      time.Time      `json:"createdOn,omitzero" desc:"When the row was created."`
	Status         string         `json:"status" desc:"Its provisioning status, as the form shows it."`
	Held           string         `json:"held,omitempty" desc:"Why it waits, when it is held."`
	NextAttemptOn  time.Time      `json:"nextAttemptOn,omitzero" desc:"When the connector looks at it again."`
	Message        string         `json:"message,omitempty" desc:"What happened and what to do, in plain words."`
	SystemMessage  string         `json:"systemMessage,omitempty" desc:"Technical detail for support."`
	Attempts       int            `json:"attempts" desc:"How many times the connector tried it."`
	AttemptID      string         `json:"attemptId,omitempty" desc:"The id of the current attempt (it makes the Partner Center request idempotent)."`
	ClaimExpiresOn time.Time      `json:"claimExpiresOn,omitzero" desc:"Until when the current attempt holds the row."`
	PCCartID       string         `json:"cartId,omitempty" desc:"Partner Center's cart id of a purchase."`
	PCOrderID      string         `json:"orderId,omitempty" desc:"Partner Center's order id of a purchase."`
	ProvisionedOn  time.Time      `json:"provisionedOn,omitzero" desc:"When Partner Center made the change."`
}

// StateOf is the state of a license change as people read it, for the API and the CLI.
func StateOf(l schema.LicenseChangeLog) LCLState {
	st := LCLState{ID: l.ID, Name: l.Name, ChangeType: schema.OptionLabel(schema.TableLicenseChangeLog, "csp_changetype", int(l.ChangeType)),
		Quantity: l.Quantity, EffectiveDate: l.EffectiveDate, CreatedOn: l.CreatedOn, Status: mapping.ProvisioningLabel(l.ProvisioningStatus),
		Held: mapping.HeldLabel(l.HeldReason), NextAttemptOn: l.NextAttemptOn, Message: l.ProvisioningMessage, SystemMessage: l.SystemMessage,
		Attempts: l.Attempts, AttemptID: l.AttemptID, ClaimExpiresOn: l.ClaimExpiresOn, PCCartID: l.PCCartID, PCOrderID: l.PCOrderID, ProvisionedOn: l.ProvisionedOn}
	if l.State != schema.StateActive {
		st.Status += " (archived)"
	}
	return st
}

// PartnerCenterView is Partner Center's copy of a subscription, as the decision saw it.
type PartnerCenterView struct {
	SubscriptionID      string     `json:"subscriptionId" desc:"The subscription's id in Partner Center."`
	Status              string     `json:"status" desc:"Its status in Partner Center."`
	Quantity            int        `json:"quantity" desc:"Its seats in Partner Center."`
	RefundableNow       int        `json:"refundableNow" desc:"Seats that can be removed now with a refund."`
	CancellableUntil    *time.Time `json:"cancellableUntil,omitempty" desc:"Until when it can be cancelled."`
	CommitmentEndDate   *time.Time `json:"commitmentEndDate,omitempty" desc:"When its term ends."`
	ReadError           string     `json:"readError,omitempty" desc:"Why Partner Center could not be read, in words."`
	ReadErrorSystemText string     `json:"readErrorDetail,omitempty" desc:"Partner Center's own error text."`
}

// Diagnosis is `connector diagnose lcl`: the row, every check of the decision with its result, Partner
// Center's view, and what the connector would do now. Nothing is changed to make it.
type Diagnosis struct {
	LCL           LCLState           `json:"lcl" desc:"The license change log."`
	Decision      mapping.Decision   `json:"decision" desc:"The decision and its checks."`
	PartnerCenter *PartnerCenterView `json:"partnerCenter,omitempty" desc:"Partner Center's view of the subscription."`
	Next          string             `json:"next" desc:"What the connector would do now, and what a person should do."`
}

// Diagnose walks the provisioning decision for one LCL without changing anything: the same reads and the
// same rules as a run, and Partner Center's subscription read (a GET) when the rules before it pass. A
// Failed change is walked as a retry would see it (set back to Awaiting Provisioning), so its checks show
// what stops it now; the next step repeats the remedy its message names.
func (p *Provisioner) Diagnose(ctx context.Context, id dataverse.GUID) (Diagnosis, error) {
	f, err := p.load(ctx, id)
	if err != nil {
		return Diagnosis{}, fmt.Errorf("diagnose %s: %w", id, err)
	}
	now := p.now()
	dg := Diagnosis{LCL: StateOf(f.LCL)}
	if f.LCL.ProvisioningStatus == schema.ProvisioningInProgress && now.Before(f.LCL.ClaimExpiresOn) {
		dg.Decision = mapping.Decide(f, now)
		dg.Next = fmt.Sprintf("Attempt %s is making this change now (its claim runs until %s). If no replica is running it, the sweep resumes it after that.", f.LCL.AttemptID, mapping.FormatTime(f.LCL.ClaimExpiresOn))
		return dg, nil
	}
	failed := f.LCL.State == schema.StateActive && f.LCL.ProvisioningStatus == schema.ProvisioningFailed
	walked := mapping.AsRetried(f)
	d := mapping.Decide(walked, now)
	if failed && len(d.Checks) > 0 && d.Checks[0].Passed {
		d.Checks[0].Detail = "status Failed Provisioning: walked as if set back to Awaiting Provisioning"
	}
	if d.Verdict == mapping.Proceed && f.LCL.ChangeType != schema.ChangePurchase {
		pc, err := p.pc.Subscription(ctx, f.ProviderAccount.TenantID, f.Subscription.PCSubscriptionID)
		if err != nil {
			d = mapping.Failure(d, walked, err, now)
			dg.PartnerCenter = &PartnerCenterView{SubscriptionID: f.Subscription.PCSubscriptionID, ReadError: d.Message, ReadErrorSystemText: d.System}
		} else {
			dg.PartnerCenter = &PartnerCenterView{SubscriptionID: pc.ID, Status: string(pc.Status), Quantity: pc.Quantity, RefundableNow: pc.Refundable(now),
				CancellableUntil: pc.CancellationAllowedUntilDate, CommitmentEndDate: pc.CommitmentEndDate}
			d = mapping.CheckPartnerCenter(d, walked, pc, now)
		}
	}
	dg.Decision = d
	if failed {
		dg.Next = failedNextStep(f, d)
	} else {
		dg.Next = nextStep(f, d, dg.PartnerCenter)
	}
	return dg, nil
}

// nextStep says what a run would do now.
func nextStep(f mapping.LCLFacts, d mapping.Decision, pc *PartnerCenterView) string {
	switch d.Verdict {
	case mapping.Proceed:
		if f.LCL.ChangeType == schema.ChangePurchase {
			if f.LCL.PCCartID != "" || f.LCL.PCOrderID != "" {
				return "The connector would resume the purchase: it looks up the recorded cart or order before buying anything."
			}
			return "The connector would claim the change and buy it through a Partner Center cart."
		}
		if pc != nil && f.LCL.ChangeType == schema.ChangeQuantity && pc.Quantity == *f.LCL.Quantity {
			return fmt.Sprintf("Partner Center already has %d seats: the connector would mark the change Provisioned without calling Partner Center again.", pc.Quantity)
		}
		return "Nothing stops it: the connector would claim the change and push it to Partner Center now."
	case mapping.Hold:
		if d.Held == schema.HeldBlocked {
			return fmt.Sprintf("It stays Awaiting Provisioning (%s): it runs as soon as the earlier change is provisioned or archived.", d.HeldLabel)
		}
		next := "when what holds it clears"
		if !d.NextAttempt.IsZero() {
			next = "at " + mapping.FormatTime(d.NextAttempt)
		}
		return fmt.Sprintf("It stays Awaiting Provisioning (%s); the connector looks again %s.", d.HeldLabel, next)
	case mapping.Fail:
		return fmt.Sprintf("It would be set to Failed Provisioning, and a person must act on its message: %s.", d.Remedy.Step())
	case mapping.NotApplicable:
		return "It would be set to Not Applicable: nothing is pushed."
	}
	return "Nothing: " + d.Message
}

// failedNextStep says what a person does about a Failed change, given the walk as a retry would see it:
// the remedy of the failure it would meet again, or, when the checks pass now, the remedy the row's
// message names (a refusal only Partner Center can repeat).
func failedNextStep(f mapping.LCLFacts, d mapping.Decision) string {
	switch d.Verdict {
	case mapping.Fail:
		return fmt.Sprintf("It stays Failed Provisioning until a person acts on its message: %s.", d.Remedy.Step())
	case mapping.Hold:
		return fmt.Sprintf("It stays Failed Provisioning until a person sets Provisioning Status back to Awaiting Provisioning; it would then wait (%s): %s", d.HeldLabel, d.Message)
	case mapping.NotApplicable:
		return "It stays Failed Provisioning until a person sets Provisioning Status back to Awaiting Provisioning; it would then be set to Not Applicable: " + d.Message
	}
	if mapping.RemedyOf(f.LCL.ProvisioningMessage) == mapping.RemedyArchive {
		return fmt.Sprintf("It stays Failed Provisioning until a person acts on its message: %s.", mapping.RemedyArchive.Step())
	}
	return fmt.Sprintf("It stays Failed Provisioning until a person acts. The checks the connector makes before calling Partner Center pass now (Partner Center decides the rest): %s.", mapping.RemedyRetry.Step())
}

// SubscriptionDiagnosis is `connector diagnose subscription`: the subscription and its changes oldest
// first, each with its state and what blocks it.
type SubscriptionDiagnosis struct {
	ID               dataverse.GUID    `json:"id" desc:"The subscription's row id."`
	Name             string            `json:"name" desc:"The subscription's name."`
	PCSubscriptionID string            `json:"pcSubscriptionId,omitempty" desc:"Its id in Partner Center."`
	Quantity         int               `json:"quantity" desc:"Its seats in Dynamics 365."`
	Status           string            `json:"status" desc:"Its status."`
	Changes          []SubscriptionLCL `json:"changes" desc:"Its license changes, oldest first."`
}

// SubscriptionLCL is one change of a subscription in the diagnosis.
type SubscriptionLCL struct {
	LCLState
	// Blocker is what holds or fails a pending change, from the rules that need no Partner Center call.
	Blocker string `json:"blocker,omitempty" desc:"What holds or fails it, when something does."`
}

// DiagnoseSubscription lists a subscription's changes oldest first with their state and blockers.
func (p *Provisioner) DiagnoseSubscription(ctx context.Context, id dataverse.GUID) (SubscriptionDiagnosis, error) {
	r, err := p.dv.Get(ctx, schema.SetSubscriptions, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Subscription]()})
	if err != nil {
		return SubscriptionDiagnosis{}, fmt.Errorf("diagnose subscription %s: %w", id, err)
	}
	var sub schema.Subscription
	if err := dataverse.Unmarshal(r, &sub); err != nil {
		return SubscriptionDiagnosis{}, err
	}
	out := SubscriptionDiagnosis{ID: sub.ID, Name: sub.Name, PCSubscriptionID: sub.PCSubscriptionID, Quantity: sub.Quantity, Status: subscriptionStatus(sub)}
	var all []schema.LicenseChangeLog
	for r, err := range p.dv.List(ctx, schema.SetLicenseChangeLogs, &dataverse.Query{Select: dataverse.Columns[schema.LicenseChangeLog](),
		Filter: dataverse.LookupEq("csp_subscription", id)}) {
		if err != nil {
			return out, fmt.Errorf("diagnose subscription %s: list its changes: %w", id, err)
		}
		var l schema.LicenseChangeLog
		if err := dataverse.Unmarshal(r, &l); err != nil {
			return out, err
		}
		all = append(all, l)
	}
	slices.SortFunc(all, mapping.Compare)
	now := p.now()
	var shared *mapping.LCLFacts // the subscription's context, read once for all its awaiting changes
	for _, l := range all {
		line := SubscriptionLCL{LCLState: StateOf(l)}
		pending := l.State == schema.StateActive && (l.ProvisioningStatus == schema.ProvisioningAwaiting || l.ProvisioningStatus == schema.ProvisioningFailed)
		if pending && l.ProvisioningStatus == schema.ProvisioningAwaiting {
			if shared == nil {
				f, err := p.load(ctx, l.ID)
				if err != nil {
					return out, err
				}
				shared = &f
			}
			f := *shared
			f.LCL = l
			if d := mapping.Decide(f, now); d.Verdict != mapping.Proceed {
				line.Blocker = d.Message
			} else {
				line.Blocker = "nothing: it is pushed on its next run"
			}
		} else if pending {
			line.Blocker = "failed: " + failedStep(l) + "; later changes wait for it"
		}
		out.Changes = append(out.Changes, line)
	}
	return out, nil
}

// failedStep is what a person does about a failed change: the remedy its message names, the same words.
func failedStep(l schema.LicenseChangeLog) string {
	if r := mapping.RemedyOf(l.ProvisioningMessage); r != mapping.RemedyNone {
		return r.Step()
	}
	return "a person must act on its message: fix it and " + mapping.RemedyRetry.Step() + ", or archive it"
}

func subscriptionStatus(s schema.Subscription) string {
	switch {
	case s.State != schema.StateActive:
		return "Inactive"
	case s.Status == schema.SubscriptionSuspended:
		return "Suspended"
	}
	return "Active"
}
