package provisioning

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

func TestProvisionQuantityChangeEndToEnd(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, 24*time.Hour, nil)
	first := r.LCL(t, s.Row, schema.ChangeQuantity, 15, map[string]any{"csp_previousquantity": 10})
	r.Clock.Advance(time.Second)
	second := r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)

	// The later change waits for the earlier one. The earlier one is next in line, and its success wakes
	// this one: nothing is written meanwhile.
	r.DVS.ResetRequests()
	out, err := r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	assert.Equal(t, mapping.Hold, out.Decision.Verdict, out.Decision.Message)
	assert.True(t, out.Decision.InLine)
	assert.False(t, out.Written)
	for _, req := range r.DVS.Requests() {
		assert.False(t, req.IsWrite(), "%s %s", req.Method, req.Path)
	}
	l := r.Read(t, second)
	assert.Equal(t, schema.ProvisioningAwaiting, l.ProvisioningStatus)
	assert.Empty(t, l.ProvisioningMessage)

	r.PCS.ResetRequests()
	r.DVS.ResetRequests()
	out, err = r.P.Provision(t.Context(), first)
	require.NoError(t, err)
	assert.Equal(t, mapping.Proceed, out.Decision.Verdict)
	assert.Equal(t, "Seats 10 → 15 in Partner Center.", out.Changed)
	assert.Equal(t, 15, r.PCQuantity(t, s.PCID))
	l = r.Read(t, first)
	assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus)
	assert.Equal(t, "Seats 10 → 15 in Partner Center.", l.ProvisioningMessage)
	assert.Equal(t, 1, l.Attempts)
	assert.False(t, l.ProvisionedOn.IsZero())
	assert.Equal(t, 15, r.ReadSubscription(t, s.Row).Quantity)
	assert.Len(t, r.PCS.Requests(), 2, "one GET and one PATCH")
	assert.Equal(t, []string{second.String()}, idStrings(r.Woken()), "the success wakes the next change")
	t.Logf("Dataverse requests for one change: %d", len(r.DVS.Requests()))

	out, err = r.P.Provision(t.Context(), second)
	require.NoError(t, err)
	assert.Equal(t, "Seats 15 → 12 in Partner Center.", out.Changed)
	assert.Equal(t, 12, r.PCQuantity(t, s.PCID))
}

// TestProvisionOutcomesOnTheRow runs each row of DESIGN §5 through the provisioner on the simulators and
// checks what lands on the LCL row: status, held reason and the message people read.
func TestProvisionOutcomesOnTheRow(t *testing.T) {
	t.Parallel()
	type setup struct {
		r   *provRig
		lcl dataverse.GUID
	}
	tests := []struct {
		name    string
		opts    provOptions
		arrange func(t *testing.T, r *provRig) dataverse.GUID
		status  schema.ProvisioningStatus
		held    schema.HeldReason
		message []string
		system  []string
	}{
		{name: "1 provider-originated", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_changesource": int(schema.SourceProvider)})
		}, status: schema.ProvisioningNotApplicable, message: []string{"came from the provider itself"}},
		{name: "2 do-nothing provider", opts: provOptions{ProviderType: schema.ProviderDoNothing}, arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningNotApplicable, message: []string{"Do Nothing provider"}},
		{name: "3 manual provider", opts: provOptions{ProviderType: schema.ProviderManual}, arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_previousquantity": 10})
		}, status: schema.ProvisioningAwaiting, held: schema.HeldManual, message: []string{"Manual provider", "seats 10 → 12", "set Provisioning Status to Provisioned"}},
		{name: "4 no provider account", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, dataverse.Row{"csp_provideraccount@odata.bind": nil})
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningFailed, message: []string{"has no provider account"}},
		{name: "4 tenant is not a customer", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			other, err := r.DV.Create(t.Context(), schema.SetProviderAccounts, dataverse.Row{"csp_name": "Stranger", "csp_tenantid": uuid.NewString(),
				"csp_provider@odata.bind": "/csp_providers(" + r.Provider.String() + ")"})
			require.NoError(t, err)
			s := r.Subscription(t, 10, time.Hour, dataverse.Row{"csp_provideraccount@odata.bind": "/csp_provideraccounts(" + other.String() + ")"})
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningFailed, message: []string{"is not a customer in Partner Center"}, system: []string{"HTTP 404", "MS-RequestId"}},
		{name: "5 future effective date", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_effectivedate": r.Clock.Now().Add(72 * time.Hour)})
		}, status: schema.ProvisioningAwaiting, held: schema.HeldScheduled, message: []string{"Scheduled for 24 Nov 2026 10:00 UTC"}},
		{name: "6 add-on waiting for its parent", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			parent := r.Subscription(t, 10, time.Hour, dataverse.Row{"csp_pcsubscriptionid": nil, "csp_name": "Parent plan"})
			s := r.Subscription(t, 10, time.Hour, dataverse.Row{"csp_parentsubscription@odata.bind": "/csp_subscriptions(" + parent.Row.String() + ")"})
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningAwaiting, held: schema.HeldWaitingForParent, message: []string{"Waiting for the parent subscription Parent plan"}},
		{name: "7 behind an earlier failed change", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			r.LCL(t, s.Row, schema.ChangeQuantity, 11, dataverse.Row{"csp_name": "First", "csp_provisioningstatus": int(schema.ProvisioningFailed)})
			r.Clock.Advance(time.Second)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningAwaiting, held: schema.HeldBlocked, message: []string{"Blocked by the earlier change “First”", "archive it"}},
		{name: "8 suspended subscription", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, dataverse.Row{"statuscode": schema.SubscriptionSuspended})
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningFailed, message: []string{"is suspended", "reactivate it first"}},
		{name: "9 more seats removed than refundable", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, 30*24*time.Hour, nil) // bought a month ago: past the 7-day refund window
			return r.LCL(t, s.Row, schema.ChangeQuantity, 8, nil)
		}, status: schema.ProvisioningFailed, message: []string{"allows no seat reduction now", "seats 10 → 8", "at renewal"}},
		{name: "10 credentials refused", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			r.PCS.Inject(partnercentertest.Fault{Status: 401, Code: 800001})
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningAwaiting, held: schema.HeldNotConnected, message: []string{"refused the connector's credentials (401)"}, system: []string{"800001"}},
		{name: "11 throttled", arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			r.PCS.Inject(partnercentertest.Fault{Status: 429, RetryAfter: 5 * time.Minute})
			return r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
		}, status: schema.ProvisioningAwaiting, held: schema.HeldRetrying, message: []string{"throttled", "tries again at 21 Nov 2026 10:05 UTC"}, system: []string{"HTTP 429"}},
		{name: "12 sandbox cap", opts: provOptions{SandboxCaps: true}, arrange: func(t *testing.T, r *provRig) dataverse.GUID {
			s := r.Subscription(t, 10, time.Hour, nil)
			return r.LCL(t, s.Row, schema.ChangeQuantity, 30, nil)
		}, status: schema.ProvisioningFailed, message: []string{"integration sandbox", "(25)"}, system: []string{"error 800067", "MS-CorrelationId", "Attempts: 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newProvRig(t, tt.opts)
			id := tt.arrange(t, r)
			_, err := r.P.Provision(t.Context(), id)
			require.NoError(t, err)
			l := r.Read(t, id)
			assert.Equal(t, mapping.ProvisioningLabel(tt.status), mapping.ProvisioningLabel(l.ProvisioningStatus), l.ProvisioningMessage)
			assert.Equal(t, tt.held, l.HeldReason)
			for _, m := range tt.message {
				assert.Contains(t, l.ProvisioningMessage, m)
			}
			for _, m := range tt.system {
				assert.Contains(t, l.SystemMessage, m)
			}
			if tt.status == schema.ProvisioningAwaiting && tt.held != schema.HeldManual {
				assert.False(t, l.NextAttemptOn.IsZero(), "a held change says when it is looked at again")
			}

			// A second run on an unchanged row writes nothing: no churn, no events.
			r.DVS.ResetRequests()
			r.PCS.ClearFaults()
			if tt.held == schema.HeldRetrying || tt.held == schema.HeldNotConnected {
				return // these try Partner Center again, which now answers
			}
			_, err = r.P.Provision(t.Context(), id)
			require.NoError(t, err)
			for _, req := range r.DVS.Requests() {
				assert.False(t, req.IsWrite(), "%s %s", req.Method, req.Path)
			}
		})
	}
}

func TestSweepSubmitsDueHeadsAndExpiredClaims(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	now := r.Clock.Now()
	a := r.Subscription(t, 10, time.Hour, nil)
	b := r.Subscription(t, 10, time.Hour, nil)
	aFirst := r.LCL(t, a.Row, schema.ChangeQuantity, 11, dataverse.Row{"csp_effectivedate": now.Add(-2 * time.Hour)})
	r.LCL(t, a.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_effectivedate": now.Add(-time.Hour)}) // behind aFirst: woken by it
	future := r.LCL(t, b.Row, schema.ChangeQuantity, 13, dataverse.Row{"csp_effectivedate": now.Add(time.Hour), "csp_nextattempton": now.Add(time.Hour),
		"csp_heldreason": int(schema.HeldScheduled)})
	retryLater := r.LCL(t, b.Row, schema.ChangeQuantity, 14, dataverse.Row{"csp_nextattempton": now.Add(5 * time.Minute), "csp_heldreason": int(schema.HeldRetrying)})
	manual := r.LCL(t, uuid.Nil, schema.ChangeQuantity, 15, dataverse.Row{"csp_heldreason": int(schema.HeldManual)})
	noSubscription := r.LCL(t, uuid.Nil, schema.ChangeQuantity, 16, nil)
	expired := r.LCL(t, b.Row, schema.ChangeQuantity, 17, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningInProgress),
		"csp_claimexpireson": now.Add(-time.Minute), "csp_attemptid": "dead-replica"})
	live := r.LCL(t, b.Row, schema.ChangeQuantity, 18, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningInProgress),
		"csp_claimexpireson": now.Add(time.Minute), "csp_attemptid": "busy-replica"})
	r.LCL(t, b.Row, schema.ChangeQuantity, 19, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningProvisioned)})
	// Archived, or set Failed by hand, while a replica that died was making the change: the claim left on
	// the row is all that says its outcome is still to be written.
	archivedExpired := r.LCL(t, b.Row, schema.ChangeQuantity, 20, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningInProgress),
		"csp_claimexpireson": now.Add(-time.Minute), "csp_attemptid": "dead-replica", "statecode": schema.StateInactive, "statuscode": schema.LCLArchived})
	failedExpired := r.LCL(t, b.Row, schema.ChangeQuantity, 21, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningFailed),
		"csp_claimexpireson": now.Add(-time.Minute), "csp_attemptid": "dead-replica"})
	archivedLive := r.LCL(t, b.Row, schema.ChangeQuantity, 22, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningInProgress),
		"csp_claimexpireson": now.Add(time.Minute), "csp_attemptid": "busy-replica", "statecode": schema.StateInactive, "statuscode": schema.LCLArchived})
	r.LCL(t, b.Row, schema.ChangeQuantity, 23, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningAwaiting),
		"statecode": schema.StateInactive, "statuscode": schema.LCLArchived})

	n, err := r.P.Sweep(t.Context())
	require.NoError(t, err)
	woken := idStrings(r.Woken())
	assert.Equal(t, 5, n)
	assert.ElementsMatch(t, []string{aFirst.String(), noSubscription.String(), expired.String(), archivedExpired.String(), failedExpired.String()}, woken,
		"due heads (one per subscription), rows without a subscription, expired claims (on active rows or not)")
	for _, not := range []dataverse.GUID{future, retryLater, manual, live, archivedLive} {
		assert.NotContains(t, woken, not.String())
	}

	r.Clock.Advance(10 * time.Minute)
	_, err = r.P.Sweep(t.Context())
	require.NoError(t, err)
	assert.Contains(t, idStrings(r.Woken()), retryLater.String(), "its next attempt has come")
}

func TestHealthReportListsOldWaitingAndFailedChangesOldestFirst(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, time.Hour, nil)
	r.LCL(t, s.Row, schema.ChangeQuantity, 11, dataverse.Row{"csp_name": "Old and failed", "csp_provisioningstatus": int(schema.ProvisioningFailed),
		"csp_provisioningmessage": "Partner Center refused it."})
	r.Clock.Advance(time.Hour)
	r.LCL(t, s.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_name": "Waiting a while"})
	r.Clock.Advance(time.Hour)
	r.LCL(t, s.Row, schema.ChangeQuantity, 13, dataverse.Row{"csp_name": "Done", "csp_provisioningstatus": int(schema.ProvisioningProvisioned)})
	r.Clock.Advance(47 * time.Hour)
	r.LCL(t, s.Row, schema.ChangeQuantity, 14, dataverse.Row{"csp_name": "Just created"})

	var notices []notify.Notice
	r.P.noticeUsers = func(_ context.Context, n notify.Notice) error { notices = append(notices, n); return nil }
	res, err := r.P.ReportJob(7*24*time.Hour, 24*time.Hour).Run(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, res.Processed)
	assert.Equal(t, 1, res.Failed)
	require.Len(t, notices, 1, "one notice for the whole report")
	body := notices[0].Body
	first, second := strings.Index(body, "Old and failed"), strings.Index(body, "Waiting a while")
	require.True(t, first >= 0 && second > first, "oldest first: %s", body)
	assert.Contains(t, body, "Failed Provisioning since 21 Nov 2026 10:00 UTC. Partner Center refused it.")
	assert.NotContains(t, body, "Done")
	assert.NotContains(t, body, "Just created")

	// Nothing old: no notice.
	notices = nil
	res, err = r.P.ReportJob(7*24*time.Hour, 30*24*time.Hour).Run(t.Context())
	require.NoError(t, err)
	assert.Zero(t, res.Processed)
	assert.Empty(t, notices)
	assert.Contains(t, res.Summary, "No license change has waited")
}

func TestPurchasingAParentWakesItsWaitingAddOnsAndTheAddOnIsBoughtUnderIt(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	// Rows only: neither exists in Partner Center yet.
	row := func(extra dataverse.Row) sub {
		fields := dataverse.Row{"csp_offerid": partnercentertest.CatalogBusinessPremium, "csp_termduration": "P1Y", "csp_billingcycle": "monthly",
			"csp_provider@odata.bind": "/csp_providers(" + r.Provider.String() + ")", "csp_provideraccount@odata.bind": "/csp_provideraccounts(" + r.Account.String() + ")"}
		for k, v := range extra {
			fields[k] = v
		}
		id, err := r.DV.Create(t.Context(), schema.SetSubscriptions, fields)
		require.NoError(t, err)
		return sub{Row: id}
	}
	parent := row(dataverse.Row{"csp_name": "Parent plan"})
	addOn := row(dataverse.Row{"csp_name": "Extra storage", "csp_offerid": partnercentertest.CatalogExtraStorage,
		"csp_parentsubscription@odata.bind": "/csp_subscriptions(" + parent.Row.String() + ")"})
	buyAddOn := r.LCL(t, addOn.Row, schema.ChangePurchase, 3, nil)
	_, err := r.P.Provision(t.Context(), buyAddOn)
	require.NoError(t, err)
	held := r.Read(t, buyAddOn)
	require.Equal(t, schema.HeldWaitingForParent, held.HeldReason)
	assert.Equal(t, r.Clock.Now().Add(parentSafetyNet), held.NextAttemptOn,
		"the sweep looks again within minutes, in case the replica that buys the parent dies before waking it")

	buyParent := r.LCL(t, parent.Row, schema.ChangePurchase, 5, nil)
	out, err := r.P.Provision(t.Context(), buyParent)
	require.NoError(t, err)
	assert.Contains(t, out.Changed, "Bought 5 seat(s) in Partner Center: order ")
	assert.Equal(t, []string{buyAddOn.String()}, idStrings(r.Woken()), "the parent's purchase wakes the add-on waiting for it")
	parentRow := r.ReadSubscription(t, parent.Row)
	require.NotEmpty(t, parentRow.PCSubscriptionID)
	assert.Equal(t, 5, parentRow.Quantity)
	assert.False(t, parentRow.ActualProvisionedOn.IsZero())

	_, err = r.P.Provision(t.Context(), buyAddOn)
	require.NoError(t, err)
	l := r.Read(t, buyAddOn)
	require.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus, l.ProvisioningMessage)
	bought, ok := r.PCS.Subscription(r.Tenant, l.PCSubscriptionID)
	require.True(t, ok)
	assert.Equal(t, parentRow.PCSubscriptionID, bought.ParentSubscriptionID, "bought as an add-on of the parent")
	assert.Equal(t, 3, bought.Quantity)
}

func TestAFailureAfterTheClaimWritesItsHoldAgain(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, time.Hour, nil)
	id := r.LCL(t, s.Row, schema.ChangeQuantity, 12, nil)
	r.PCS.Inject(partnercentertest.Fault{Status: 401, Code: 800001})
	_, err := r.P.Provision(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, schema.HeldNotConnected, r.Read(t, id).HeldReason)

	// Connectivity comes back for reads, but the update is refused again: the claim cleared the hold, so
	// the release must write it again, or WakeNotConnected would never find the change.
	r.PCS.ClearFaults()
	r.PCS.Inject(partnercentertest.Fault{Method: "PATCH", Status: 401, Code: 800001})
	n, err := r.P.WakeNotConnected(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = r.P.Provision(t.Context(), id)
	require.NoError(t, err)
	l := r.Read(t, id)
	assert.Equal(t, schema.ProvisioningAwaiting, l.ProvisioningStatus)
	assert.Equal(t, schema.HeldNotConnected, l.HeldReason)
	assert.False(t, l.NextAttemptOn.IsZero())
	assert.Equal(t, 1, l.Attempts, "the first run stopped at the read, before any claim")
	r.Woken()
	n, err = r.P.WakeNotConnected(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, n, "still found by the next successful verification")
}

// TestHealthReportSaysItsThresholdInWords: the report's summary, on the job row, reads "24 hours" and ends
// with one full stop.
func TestHealthReportSaysItsThresholdInWords(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	runner := jobs.New(r.DV, []jobs.Job{r.P.ReportJob(7*24*time.Hour, 24*time.Hour)}, jobs.Options{Instance: "a", Now: r.Clock.Now})
	res, err := runner.RunNow(t.Context(), ReportJobName, schema.TriggerSchedule)
	require.NoError(t, err)
	assert.Equal(t, "No license change has waited or stayed failed for more than 24 hours", res.Counts.Summary)
	row := testrig.Job(t, r.DV, ReportJobName)
	assert.True(t, strings.HasSuffix(row.Message, "succeeded: No license change has waited or stayed failed for more than 24 hours."), row.Message)
	assert.NotContains(t, row.Message, "..")
	assert.NotContains(t, row.Message, "24h0m0s")
	assert.Equal(t, "168h", row.Schedule)

	s := r.Subscription(t, 10, time.Hour, nil)
	r.LCL(t, s.Row, schema.ChangeQuantity, 11, dataverse.Row{"csp_name": "Old and failed", "csp_provisioningstatus": int(schema.ProvisioningFailed)})
	r.Clock.Advance(25 * time.Hour)
	var notices []notify.Notice
	r.P.noticeUsers = func(_ context.Context, n notify.Notice) error { notices = append(notices, n); return nil }
	runner = jobs.New(r.DV, []jobs.Job{r.P.ReportJob(7*24*time.Hour, 24*time.Hour)}, jobs.Options{Instance: "a", Now: r.Clock.Now})
	res, err = runner.RunNow(t.Context(), ReportJobName, schema.TriggerRunNow)
	require.NoError(t, err)
	assert.Equal(t, "1 license change(s) waiting or failed for more than 24 hours (1 failed)", res.Counts.Summary)
	row = testrig.Job(t, r.DV, ReportJobName)
	assert.True(t, strings.HasSuffix(row.Message, "partly succeeded: 1 license change(s) waiting or failed for more than 24 hours (1 failed)."), row.Message)
	require.Len(t, notices, 1)
	assert.True(t, strings.HasPrefix(notices[0].Body, "1 license change(s) waiting or failed for more than 24 hours (1 failed), oldest first:\n- "), notices[0].Body)
}

// TestAClaimLeftOnARowSetBackToAwaitingIsReleasedByItsHold has a row set back to Awaiting Provisioning by
// hand while a replica that died held it, now scheduled for later: the hold written on it releases the
// expired claim, so the sweep stops finding it as an expired claim.
func TestAClaimLeftOnARowSetBackToAwaitingIsReleasedByItsHold(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	now := r.Clock.Now()
	s := r.Subscription(t, 10, time.Hour, nil)
	id := r.LCL(t, s.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_effectivedate": now.Add(time.Hour),
		"csp_claimexpireson": now.Add(-time.Minute), "csp_attemptid": "dead-replica"})

	out, err := r.P.Provision(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, mapping.Hold, out.Decision.Verdict, out.Decision.Message)
	l := r.Read(t, id)
	assert.Equal(t, schema.HeldScheduled, l.HeldReason)
	assert.True(t, l.ClaimExpiresOn.IsZero(), "the expired claim is released")
	r.Woken()
	_, err = r.P.Sweep(t.Context())
	require.NoError(t, err)
	assert.NotContains(t, idStrings(r.Woken()), id.String())
}
