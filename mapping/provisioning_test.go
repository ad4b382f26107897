package mapping_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
)

var now = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func ptr(n int) *int { return &n }

// facts is a quantity change 10 → 15 that passes every rule.
func facts() mapping.LCLFacts {
	provider := schema.Provider{ID: uuid.New(), Name: "Microsoft Partner Center", Type: schema.ProviderAutomatic}
	account := schema.ProviderAccount{ID: uuid.New(), Name: "Contoso Ltd", TenantID: uuid.NewString()}
	sub := schema.Subscription{ID: uuid.New(), Name: "Microsoft 365 Business Premium", PCSubscriptionID: uuid.NewString(), Quantity: 10,
		Provider: dataverse.Ref{ID: provider.ID}, ProviderAccount: dataverse.Ref{ID: account.ID}, ReductionBehavior: schema.ReductionAllowed,
		ActualProvisionedOn: now.AddDate(0, 0, -2), CommitmentEndDate: time.Date(2027, 10, 1, 0, 0, 0, 0, time.UTC)}
	lcl := schema.LicenseChangeLog{ID: uuid.New(), Name: "Contoso +5", Subscription: dataverse.Ref{ID: sub.ID}, ChangeType: schema.ChangeQuantity,
		Quantity: ptr(15), PreviousQuantity: ptr(10), ProvisioningStatus: schema.ProvisioningAwaiting, ChangeSource: schema.SourceDynamics,
		CreatedOn: now.Add(-time.Hour)}
	return mapping.LCLFacts{LCL: lcl, Subscription: &sub, Provider: &provider, ProviderAccount: &account}
}

func pcSubscription(qty, refundable int, until time.Time) partnercenter.Subscription {
	s := partnercenter.Subscription{ID: "pc-1", Quantity: qty, Status: "active"}
	s.RefundableQuantity = &partnercenter.RefundableQuantity{TotalQuantity: refundable, Details: []partnercenter.RefundableQuantityDetail{{Quantity: refundable, AllowedUntil: until}}}
	end := time.Date(2027, 10, 1, 0, 0, 0, 0, time.UTC)
	s.CommitmentEndDate = &end
	return s
}

// TestDecideRules is DESIGN §5's table, one row per case: the verdict, the held reason, the rule that
// stopped the walk, and the words people read.
func TestDecideRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(f *mapping.LCLFacts)
		verdict mapping.Verdict
		held    schema.HeldReason
		rule    int
		message []string
	}{
		{name: "nothing stops a due change", change: func(*mapping.LCLFacts) {}, verdict: mapping.Proceed, rule: 8},
		{name: "archived", change: func(f *mapping.LCLFacts) { f.LCL.State = schema.StateInactive }, verdict: mapping.Skip, message: []string{"archived"}},
		{name: "already provisioned", change: func(f *mapping.LCLFacts) { f.LCL.ProvisioningStatus = schema.ProvisioningProvisioned },
			verdict: mapping.Skip, message: []string{"Provisioned", "nothing left to push"}},
		{name: "failed", change: func(f *mapping.LCLFacts) { f.LCL.ProvisioningStatus = schema.ProvisioningFailed },
			verdict: mapping.Skip, message: []string{"Failed Provisioning", "Set it back to Awaiting Provisioning"}},
		{name: "no quantity", change: func(f *mapping.LCLFacts) { f.LCL.Quantity = nil }, verdict: mapping.Fail, message: []string{"New quantity is empty"}},
		{name: "zero seats", change: func(f *mapping.LCLFacts) { f.LCL.Quantity = ptr(0) }, verdict: mapping.Fail, message: []string{"at least 1 seat", "Cancel change"}},
		{name: "no change type", change: func(f *mapping.LCLFacts) { f.LCL.ChangeType = 0 }, verdict: mapping.Fail, message: []string{"Change type is empty"}},
		{name: "1 provider-originated", change: func(f *mapping.LCLFacts) { f.LCL.ChangeSource = schema.SourceProvider },
			verdict: mapping.NotApplicable, rule: 1, message: []string{"came from the provider itself"}},
		{name: "2 do-nothing provider", change: func(f *mapping.LCLFacts) { f.Provider.Type = schema.ProviderDoNothing; f.Provider.Name = "Bundles" },
			verdict: mapping.NotApplicable, rule: 2, message: []string{"Bundles is a Do Nothing provider"}},
		{name: "3 manual provider", change: func(f *mapping.LCLFacts) { f.Provider.Type = schema.ProviderManual; f.Provider.Name = "Pax8" },
			verdict: mapping.Hold, held: schema.HeldManual, rule: 3, message: []string{"Pax8 is a Manual provider", "provider's portal", "seats 10 → 15", "set Provisioning Status to Provisioned"}},
		{name: "3 manual provider, dated change", change: func(f *mapping.LCLFacts) {
			f.Provider.Type = schema.ProviderManual
			f.LCL.EffectiveDate = now.Add(24 * time.Hour)
		}, verdict: mapping.Hold, held: schema.HeldManual, rule: 3, message: []string{"on or after 22 Nov 2026 10:00 UTC"}},
		{name: "4 subscription gone", change: func(f *mapping.LCLFacts) { f.Subscription = nil },
			verdict: mapping.Fail, rule: 4, message: []string{"subscription no longer exists"}},
		{name: "4 no provider", change: func(f *mapping.LCLFacts) { f.Provider = nil },
			verdict: mapping.Fail, rule: 4, message: []string{"has no provider", "set its Provider"}},
		{name: "4 provider inactive", change: func(f *mapping.LCLFacts) { f.Provider.State = schema.StateInactive },
			verdict: mapping.Fail, rule: 4, message: []string{"is inactive"}},
		{name: "4 no provider account", change: func(f *mapping.LCLFacts) { f.ProviderAccount = nil },
			verdict: mapping.Fail, rule: 4, message: []string{"has no provider account", "Provider account"}},
		{name: "4 no tenant id", change: func(f *mapping.LCLFacts) { f.ProviderAccount.TenantID = "" },
			verdict: mapping.Fail, rule: 4, message: []string{"Contoso Ltd has no Provider specific account ID", "tenant id"}},
		{name: "4 relationship removed", change: func(f *mapping.LCLFacts) { f.ProviderAccount.State = schema.StateInactive },
			verdict: mapping.Fail, rule: 4, message: []string{"relationship", "removed"}},
		{name: "4 no Partner Center subscription id", change: func(f *mapping.LCLFacts) { f.Subscription.PCSubscriptionID = "" },
			verdict: mapping.Fail, rule: 4, message: []string{"no Provider subscription ID", "Purchase change"}},
		{name: "4 purchase of a subscription that exists", change: func(f *mapping.LCLFacts) { f.LCL.ChangeType = schema.ChangePurchase },
			verdict: mapping.Fail, rule: 4, message: []string{"already exists in Partner Center", "Quantity change"}},
		{name: "5 effective date in the future", change: func(f *mapping.LCLFacts) { f.LCL.EffectiveDate = now.Add(48 * time.Hour) },
			verdict: mapping.Hold, held: schema.HeldScheduled, rule: 5, message: []string{"Scheduled for 23 Nov 2026 10:00 UTC"}},
		{name: "6 add-on whose parent is not provisioned", change: func(f *mapping.LCLFacts) {
			parent := schema.Subscription{ID: uuid.New(), Name: "Microsoft 365 E3"}
			f.Subscription.Parent, f.Parent = dataverse.Ref{ID: parent.ID}, &parent
		}, verdict: mapping.Hold, held: schema.HeldWaitingForParent, rule: 6, message: []string{"Waiting for the parent subscription Microsoft 365 E3 to be provisioned"}},
		{name: "6 add-on whose parent is gone", change: func(f *mapping.LCLFacts) { f.Subscription.Parent = dataverse.Ref{ID: uuid.New()} },
			verdict: mapping.Fail, rule: 6, message: []string{"parent subscription no longer exists"}},
		{name: "7 an earlier change is awaiting", change: func(f *mapping.LCLFacts) {
			f.Pending = []schema.LicenseChangeLog{{ID: uuid.New(), Name: "Contoso +2", ProvisioningStatus: schema.ProvisioningAwaiting, CreatedOn: now.Add(-2 * time.Hour)}}
		}, verdict: mapping.Hold, held: schema.HeldBlocked, rule: 7, message: []string{"Waiting for the earlier change “Contoso +2” (Awaiting Provisioning)", "follows it automatically"}},
		{name: "7 an earlier change failed", change: func(f *mapping.LCLFacts) {
			f.Pending = []schema.LicenseChangeLog{{ID: uuid.New(), Name: "Contoso +2", ProvisioningStatus: schema.ProvisioningFailed, CreatedOn: now.Add(-2 * time.Hour)}}
		}, verdict: mapping.Hold, held: schema.HeldBlocked, rule: 7, message: []string{"Blocked by the earlier change “Contoso +2”", "which failed", "archive it"}},
		{name: "7 a later change does not block", change: func(f *mapping.LCLFacts) {
			f.Pending = []schema.LicenseChangeLog{f.LCL, {ID: uuid.New(), Name: "Contoso +9", ProvisioningStatus: schema.ProvisioningFailed, CreatedOn: now}}
		}, verdict: mapping.Proceed, rule: 8},
		{name: "7 a pending purchase holds a change of a subscription not bought yet", change: func(f *mapping.LCLFacts) {
			f.Subscription.PCSubscriptionID = ""
			f.Pending = []schema.LicenseChangeLog{{ID: uuid.New(), Name: "Buy", ChangeType: schema.ChangePurchase, ProvisioningStatus: schema.ProvisioningAwaiting, CreatedOn: now.Add(-2 * time.Hour)}}
		}, verdict: mapping.Hold, held: schema.HeldBlocked, rule: 7, message: []string{"“Buy”"}},
		{name: "8 suspended subscription", change: func(f *mapping.LCLFacts) { f.Subscription.Status = schema.SubscriptionSuspended },
			verdict: mapping.Fail, rule: 8, message: []string{"is suspended", "reactivate it first"}},
		{name: "8 inactive subscription", change: func(f *mapping.LCLFacts) { f.Subscription.State = schema.StateInactive },
			verdict: mapping.Fail, rule: 8, message: []string{"is inactive", "Reactivate change"}},
		{name: "8 reactivating a suspended subscription", change: func(f *mapping.LCLFacts) {
			f.Subscription.Status = schema.SubscriptionSuspended
			f.LCL.ChangeType = schema.ChangeReactivate
		}, verdict: mapping.Proceed, rule: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := facts()
			tt.change(&f)
			d := mapping.Decide(f, now)
			assert.Equal(t, tt.verdict, d.Verdict, d.Message)
			assert.Equal(t, tt.held, d.Held)
			require.NotEmpty(t, d.Checks)
			last := d.Checks[len(d.Checks)-1]
			if tt.verdict == mapping.Proceed {
				assert.True(t, last.Passed)
				assert.Empty(t, d.Message)
			} else {
				assert.False(t, last.Passed, "the stopping check is the failed one")
				assert.Equal(t, d.Message, last.Detail)
			}
			if tt.rule != 0 {
				assert.Equal(t, tt.rule, last.Rule, last.Name)
			}
			for _, m := range tt.message {
				assert.Contains(t, d.Message, m)
			}
			assertRemedy(t, d)
		})
	}
}

func TestDecideSchedulesAtTheEffectiveDateAndNotifiesForManualProviders(t *testing.T) {
	t.Parallel()
	f := facts()
	f.LCL.EffectiveDate = now.Add(time.Hour)
	d := mapping.Decide(f, now)
	assert.Equal(t, f.LCL.EffectiveDate, d.NextAttempt, "picked up when due")
	assert.Equal(t, "Scheduled", d.HeldLabel)

	f = facts()
	f.Provider.Type = schema.ProviderManual
	d = mapping.Decide(f, now)
	assert.True(t, d.Notify)
	assert.True(t, d.NextAttempt.IsZero(), "a person acts; the sweep does not come back")
}

func TestDecideInLineOnlyBehindAChangeAboutToRun(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		earlier schema.LicenseChangeLog
		inLine  bool
	}{
		{"awaiting, not held", schema.LicenseChangeLog{ProvisioningStatus: schema.ProvisioningAwaiting}, true},
		{"being provisioned", schema.LicenseChangeLog{ProvisioningStatus: schema.ProvisioningInProgress}, true},
		{"held itself", schema.LicenseChangeLog{ProvisioningStatus: schema.ProvisioningAwaiting, HeldReason: schema.HeldRetrying}, false},
		{"failed", schema.LicenseChangeLog{ProvisioningStatus: schema.ProvisioningFailed}, false},
	} {
		f := facts()
		e := tt.earlier
		e.ID, e.Name, e.CreatedOn = uuid.New(), "Earlier", now.Add(-2*time.Hour)
		f.Pending = []schema.LicenseChangeLog{e}
		d := mapping.Decide(f, now)
		assert.Equal(t, mapping.Hold, d.Verdict, tt.name)
		assert.Equal(t, tt.inLine, d.InLine, tt.name)
	}
}

func TestCheckPartnerCenterReductionsAndStatus(t *testing.T) {
	t.Parallel()
	week := now.Add(5 * 24 * time.Hour)
	tests := []struct {
		name    string
		change  func(f *mapping.LCLFacts)
		pc      partnercenter.Subscription
		verdict mapping.Verdict
		rule    int
		message []string
	}{
		{name: "an increase", pc: pcSubscription(10, 0, time.Time{}), verdict: mapping.Proceed, rule: 9},
		{name: "a reduction within the refundable seats", change: func(f *mapping.LCLFacts) { f.LCL.Quantity = ptr(8) },
			pc: pcSubscription(10, 3, week), verdict: mapping.Proceed, rule: 9},
		{name: "more seats than are refundable", change: func(f *mapping.LCLFacts) { f.LCL.Quantity = ptr(4) },
			pc: pcSubscription(10, 3, week), verdict: mapping.Fail, rule: 9,
			message: []string{"at most 3 seat(s) now, until 26 Nov 2026 10:00 UTC", "seats 10 → 4", "at least 7", "at renewal (1 Oct 2027)"}},
		{name: "no refundable seats", change: func(f *mapping.LCLFacts) { f.LCL.Quantity = ptr(9) },
			pc: pcSubscription(10, 0, time.Time{}), verdict: mapping.Fail, rule: 9, message: []string{"allows no seat reduction now", "Reduce at renewal (1 Oct 2027)"}},
		{name: "reductions disallowed", change: func(f *mapping.LCLFacts) {
			f.LCL.Quantity = ptr(9)
			f.Subscription.ReductionBehavior = schema.ReductionDisallowed
		}, pc: pcSubscription(10, 10, week), verdict: mapping.Fail, rule: 9, message: []string{"not allowed", "Seat reduction: Disallowed", "1 Oct 2027"}},
		{name: "outside the reduction window", change: func(f *mapping.LCLFacts) {
			f.LCL.Quantity = ptr(9)
			f.Subscription.ReductionBehavior = schema.ReductionAllowedWithinWindow
			f.Subscription.ReductionWindowHrs = 24
		}, pc: pcSubscription(10, 10, week), verdict: mapping.Fail, rule: 9,
			message: []string{"reduction window", "ended 20 Nov 2026 10:00 UTC", "24 hours after it was provisioned on 19 Nov 2026 10:00 UTC"}},
		{name: "inside the reduction window", change: func(f *mapping.LCLFacts) {
			f.LCL.Quantity = ptr(9)
			f.Subscription.ReductionBehavior = schema.ReductionAllowedWithinWindow
			f.Subscription.ReductionWindowHrs = 72
		}, pc: pcSubscription(10, 10, week), verdict: mapping.Proceed, rule: 9},
		{name: "window without a provisioned-on date", change: func(f *mapping.LCLFacts) {
			f.LCL.Quantity = ptr(9)
			f.Subscription.ReductionBehavior = schema.ReductionAllowedWithinWindow
			f.Subscription.ReductionWindowHrs = 72
			f.Subscription.ActualProvisionedOn = time.Time{}
		}, pc: pcSubscription(10, 10, week), verdict: mapping.Fail, rule: 9, message: []string{"Actual provisioned on date is empty"}},
		{name: "cancel within the window", change: func(f *mapping.LCLFacts) { f.LCL.ChangeType = schema.ChangeCancel },
			pc: func() partnercenter.Subscription {
				s := pcSubscription(10, 10, week)
				s.CancellationAllowedUntilDate = &week
				return s
			}(),
			verdict: mapping.Proceed, rule: 9},
		{name: "cancel after the window", change: func(f *mapping.LCLFacts) { f.LCL.ChangeType = schema.ChangeCancel },
			pc: func() partnercenter.Subscription {
				s := pcSubscription(10, 0, time.Time{})
				past := now.Add(-time.Hour)
				s.CancellationAllowedUntilDate = &past
				return s
			}(), verdict: mapping.Fail, rule: 9, message: []string{"no longer allows cancelling", "ended 21 Nov 2026 09:00 UTC", "auto-renew off"}},
		{name: "suspended in Partner Center", pc: func() partnercenter.Subscription {
			s := pcSubscription(10, 0, time.Time{})
			s.Status = "suspended"
			return s
		}(),
			verdict: mapping.Fail, rule: 8, message: []string{"suspended in Partner Center", "reactivate it first"}},
		{name: "reactivating a suspended subscription", change: func(f *mapping.LCLFacts) { f.LCL.ChangeType = schema.ChangeReactivate },
			pc: func() partnercenter.Subscription {
				s := pcSubscription(10, 0, time.Time{})
				s.Status = "Suspended"
				return s
			}(),
			verdict: mapping.Proceed, rule: 9},
		{name: "cancelled in Partner Center", pc: func() partnercenter.Subscription {
			s := pcSubscription(10, 0, time.Time{})
			s.Status = "deleted"
			return s
		}(),
			verdict: mapping.Fail, rule: 8, message: []string{"cancelled in Partner Center", "can no longer be changed"}},
		{name: "cancelling what is cancelled already", change: func(f *mapping.LCLFacts) { f.LCL.ChangeType = schema.ChangeCancel },
			pc: func() partnercenter.Subscription {
				s := pcSubscription(10, 0, time.Time{})
				s.Status = "deleted"
				return s
			}(),
			verdict: mapping.Proceed, rule: 8},
		{name: "pending in Partner Center", pc: func() partnercenter.Subscription {
			s := pcSubscription(10, 0, time.Time{})
			s.Status = "pending"
			return s
		}(),
			verdict: mapping.Hold, rule: 8, message: []string{"pending in Partner Center", "tries again"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := facts()
			if tt.change != nil {
				tt.change(&f)
			}
			d := mapping.Decide(f, now)
			require.Equal(t, mapping.Proceed, d.Verdict, d.Message)
			d = mapping.CheckPartnerCenter(d, f, tt.pc, now)
			assert.Equal(t, tt.verdict, d.Verdict, d.Message)
			last := d.Checks[len(d.Checks)-1]
			assert.Equal(t, tt.rule, last.Rule, last.Name)
			for _, m := range tt.message {
				assert.Contains(t, d.Message, m)
			}
			assertRemedy(t, d)
		})
	}
}

// assertRemedy checks that a failure names one remedy and its message ends with that remedy's words
// (what diagnose says too), and that nothing else carries one.
func assertRemedy(t *testing.T, d mapping.Decision) {
	t.Helper()
	if d.Verdict != mapping.Fail {
		assert.Equal(t, mapping.RemedyNone, d.Remedy)
		return
	}
	require.NotEqual(t, mapping.RemedyNone, d.Remedy, d.Message)
	assert.True(t, strings.HasSuffix(d.Message, " "+d.Remedy.Text()), "%q ends with %q", d.Message, d.Remedy.Text())
	assert.NotContains(t, strings.TrimSuffix(d.Message, d.Remedy.Text()), "Awaiting Provisioning", "the remedy alone says what to do next")
}

func pcErr(status int, code, description string) error {
	return fmt.Errorf("partnercenter: wrapped: %w", &partnercenter.ResponseError{StatusCode: status, Code: code, Description: description,
		RequestID: "req-1", CorrelationID: "corr-1", Method: "PATCH", URL: "https://api.partnercenter.microsoft.com/v1/customers/x/subscriptions/y"})
}

func TestFailureTranslatesPartnerCenter(t *testing.T) {
	t.Parallel()
	throttled := &partnercenter.ResponseError{StatusCode: 429, Description: "Rate limit is exceeded", RetryAfter: 10 * time.Minute}
	tests := []struct {
		name         string
		err          error
		verdict      mapping.Verdict
		held         schema.HeldReason
		rule         int
		notConnected bool
		next         time.Duration
		message      []string
	}{
		{name: "10 no credential", err: fmt.Errorf("x: %w", partnercenter.ErrNoCredential), verdict: mapping.Hold, held: schema.HeldNotConnected, rule: 10, notConnected: true,
			message: []string{"no Partner Center credential", "retried once connectivity is verified"}},
		{name: "10 token refused", err: pcErr(401, "800001", "Partner Token missing"), verdict: mapping.Hold, held: schema.HeldNotConnected, rule: 10, notConnected: true,
			message: []string{"refused the connector's credentials (401)", "Verify Connectivity"}},
		{name: "10 role missing", err: pcErr(403, partnercenter.CodeRoleLacksRights, "role lacks rights"), verdict: mapping.Hold, held: schema.HeldNotConnected, rule: 10, notConnected: true},
		{name: "11 throttled", err: throttled, verdict: mapping.Hold, held: schema.HeldRetrying, rule: 11, next: 10 * time.Minute,
			message: []string{"slow down", "tries again at 21 Nov 2026 10:10 UTC"}},
		{name: "11 outage", err: pcErr(503, "", "Service Unavailable"), verdict: mapping.Hold, held: schema.HeldRetrying, rule: 11, next: 4 * time.Minute,
			message: []string{"outage (HTTP 503)"}},
		{name: "11 busy", err: pcErr(409, partnercenter.CodeSubscriptionNotReady, "not ready"), verdict: mapping.Hold, held: schema.HeldRetrying, rule: 11},
		{name: "11 unreachable", err: &net.OpError{Op: "dial", Err: fmt.Errorf("connection refused")}, verdict: mapping.Hold, held: schema.HeldRetrying, rule: 11,
			message: []string{"could not be reached"}},
		{name: "4 not a customer", err: pcErr(404, "60003", "Tenant not found"), verdict: mapping.Fail, rule: 4,
			message: []string{"is not a customer in Partner Center", "reseller relationship"}},
		{name: "4 no relationship", err: pcErr(403, partnercenter.CodeNoCommerceRelationship, "no relationship"), verdict: mapping.Fail, rule: 4,
			message: []string{"no reseller relationship"}},
		{name: "4 subscription not found", err: pcErr(404, partnercenter.CodeSubscriptionNotFound, "Subscription not found"), verdict: mapping.Fail, rule: 4,
			message: []string{"has no subscription", "Provider subscription ID"}},
		{name: "9 reduction refused", err: pcErr(400, partnercenter.CodeQuantityCannotDecrease, "can't be decreased by 5"), verdict: mapping.Fail, rule: 9,
			message: []string{"refused the seat reduction", "at renewal"}},
		{name: "12 no customer agreement", err: pcErr(403, partnercenter.CodeMCANotAccepted, "MCA"), verdict: mapping.Fail, rule: 12,
			message: []string{"has not accepted the Microsoft Customer Agreement", "request an acceptance link"}},
		{name: "12 sandbox cap", err: pcErr(403, partnercenter.CodeMaxSeats, "The desired seat count exceeded the maximum seat count allowed per subscription (25)."), verdict: mapping.Fail, rule: 12,
			message: []string{"integration sandbox", "(25)", "smaller quantity"}},
		{name: "12 quantity limits", err: pcErr(400, partnercenter.CodeQuantityOutOfRange, "quantity isn't within minimum and maximum allowed quantity (1 to 300)"), verdict: mapping.Fail, rule: 12,
			message: []string{"does not allow this quantity", "(1 to 300)"}},
		{name: "12 partner agreement", err: pcErr(403, partnercenter.CodePartnerMPANotAccepted, "MPA"), verdict: mapping.Fail, rule: 12,
			message: []string{"Microsoft Partner Agreement"}},
		{name: "12 an unknown refusal keeps Partner Center's words", err: pcErr(400, "123456", "Something specific went wrong"), verdict: mapping.Fail, rule: 12,
			message: []string{"(error 123456)", "Something specific went wrong."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := facts()
			f.LCL.Attempts = 3
			d := mapping.Failure(mapping.Decide(f, now), f, tt.err, now)
			assert.Equal(t, tt.verdict, d.Verdict, d.Message)
			assert.Equal(t, tt.held, d.Held)
			assert.Equal(t, tt.notConnected, d.NotConnected)
			last := d.Checks[len(d.Checks)-1]
			assert.Equal(t, tt.rule, last.Rule, last.Name)
			assert.False(t, last.Passed)
			if tt.next > 0 {
				assert.Equal(t, now.Add(tt.next), d.NextAttempt)
			}
			for _, m := range tt.message {
				assert.Contains(t, d.Message, m)
			}
			assertRemedy(t, d)
			assert.Contains(t, d.System, "Attempts: 3", "support sees the attempt count")
			if _, ok := tt.err.(*net.OpError); !ok && tt.err != nil && !errorsIsNoCredential(tt.err) {
				assert.Contains(t, d.System, "MS-RequestId")
			}
		})
	}
}

func errorsIsNoCredential(err error) bool {
	return err != nil && (err == partnercenter.ErrNoCredential || fmt.Sprint(err) == "x: "+partnercenter.ErrNoCredential.Error())
}

func TestSystemMessageCarriesCodesAndIDs(t *testing.T) {
	t.Parallel()
	msg := mapping.SystemMessage(pcErr(403, "800067", "too many seats"), 2)
	for _, want := range []string{"HTTP 403", "error 800067", "too many seats", "PATCH https://api.partnercenter.microsoft.com/v1/customers/x/subscriptions/y", "MS-RequestId: req-1", "MS-CorrelationId: corr-1", "Attempts: 2"} {
		assert.Contains(t, msg, want)
	}
}

func TestRetryDelayBacksOffAndHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	assert.Equal(t, time.Minute, mapping.RetryDelay(0, 0))
	assert.Equal(t, time.Minute, mapping.RetryDelay(1, 0))
	assert.Equal(t, 2*time.Minute, mapping.RetryDelay(2, 0))
	assert.Equal(t, 16*time.Minute, mapping.RetryDelay(5, 0))
	assert.Equal(t, 30*time.Minute, mapping.RetryDelay(50, 0), "capped")
	assert.Equal(t, 45*time.Minute, mapping.RetryDelay(1, 45*time.Minute), "Partner Center's Retry-After wins when longer")
}

func TestBeforeOrdersBySchedule(t *testing.T) {
	t.Parallel()
	a := schema.LicenseChangeLog{ID: uuid.MustParse("00000000-0000-0000-0000-000000000001"), CreatedOn: now}
	b := schema.LicenseChangeLog{ID: uuid.MustParse("00000000-0000-0000-0000-000000000002"), CreatedOn: now.Add(-time.Hour), EffectiveDate: now.Add(time.Hour)}
	c := schema.LicenseChangeLog{ID: uuid.MustParse("00000000-0000-0000-0000-000000000003"), CreatedOn: now}
	assert.True(t, mapping.Before(a, b), "the effective date orders, not the creation")
	assert.True(t, mapping.Before(a, c), "ties fall back to the id")
	assert.False(t, mapping.Before(c, a))
	f := mapping.LCLFacts{LCL: a, Pending: []schema.LicenseChangeLog{b, c, a}}
	assert.Empty(t, f.Earlier())
	assert.Equal(t, []schema.LicenseChangeLog{c, b}, f.Later())
}
