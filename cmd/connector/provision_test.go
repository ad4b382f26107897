package main

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// provSandbox is a sandbox with the environment the provisioning commands run with, and the seeded Contoso
// customer the tests add subscriptions to. Each test adds a Partner Center subscription of its own, so
// the seeded changes (which the sandbox's connector may push) never touch it.
type provSandbox struct {
	sb       *connector.Sandbox
	env      func(string) string
	tenant   string
	provider dataverse.GUID
	account  dataverse.GUID // the Contoso provider account
}

func startProvSandbox(t *testing.T) *provSandbox {
	t.Helper()
	sb, err := connector.StartSandbox(t.Context(), connector.SandboxOptions{DataverseAddr: "127.0.0.1:0", PartnerCenterAddr: "127.0.0.1:0", ConnectorAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	ps := &provSandbox{sb: sb, env: getenv(map[string]string{"DATAVERSE_URL": sb.Dataverse.URL, "DATAVERSE_AUTH": "none",
		"PARTNERCENTER_ENDPOINT": sb.PartnerCenter.URL, "PARTNERCENTER_AUTH": "none", "CONNECTOR_INSTANCE": "cli"})}
	for r, err := range sb.DataverseClient.List(t.Context(), schema.SetProviderAccounts, &dataverse.Query{Select: dataverse.Columns[schema.ProviderAccount](),
		Filter: dataverse.Eq("csp_name", "Contoso Ltd")}) {
		require.NoError(t, err)
		var pa schema.ProviderAccount
		require.NoError(t, dataverse.Unmarshal(r, &pa))
		ps.tenant, ps.provider, ps.account = pa.TenantID, pa.Provider.ID, pa.ID
	}
	require.NotEmpty(t, ps.tenant, "the sandbox seeds the Contoso provider account")
	return ps
}

// subscription adds a subscription to Contoso in Partner Center (status "" is active) and its row in
// Dataverse; it returns the row id and the Partner Center id.
func (ps *provSandbox) subscription(t *testing.T, name, status string, quantity int) (dataverse.GUID, string) {
	t.Helper()
	pcID := uuid.NewString()
	require.NoError(t, ps.sb.PartnerCenter.AddSubscription(ps.tenant, partnercentertest.Subscription{ID: pcID, OfferID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971",
		FriendlyName: name, Status: status, Quantity: quantity, TermDuration: "P1M", CreatedOn: time.Now().Add(-time.Hour)}))
	return ps.create(t, schema.SetSubscriptions, schema.Subscription{Name: name, ProviderAccount: dataverse.Ref{ID: ps.account}, Provider: dataverse.Ref{ID: ps.provider},
		PCSubscriptionID: pcID, OfferID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971", Quantity: quantity, TermDuration: "P1M", BillingCycle: "monthly"}), pcID
}

// quantityChange adds an LCL made in Dynamics, Awaiting Provisioning (effective zero: due now).
func (ps *provSandbox) quantityChange(t *testing.T, sub dataverse.GUID, name string, quantity int, effective time.Time) dataverse.GUID {
	t.Helper()
	return ps.create(t, schema.SetLicenseChangeLogs, schema.LicenseChangeLog{Name: name, Subscription: dataverse.Ref{ID: sub}, ChangeType: schema.ChangeQuantity,
		Quantity: &quantity, EffectiveDate: effective, ProvisioningStatus: schema.ProvisioningAwaiting, ChangeSource: schema.SourceDynamics})
}

func (ps *provSandbox) create(t *testing.T, set string, v any) dataverse.GUID {
	t.Helper()
	row, err := dataverse.Marshal(v)
	require.NoError(t, err)
	id, err := ps.sb.DataverseClient.Create(t.Context(), set, row)
	require.NoError(t, err)
	return id
}

func (ps *provSandbox) lcl(t *testing.T, id dataverse.GUID) schema.LicenseChangeLog {
	t.Helper()
	r, err := ps.sb.DataverseClient.Get(t.Context(), schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.LicenseChangeLog]()})
	require.NoError(t, err)
	var l schema.LicenseChangeLog
	require.NoError(t, dataverse.Unmarshal(r, &l))
	return l
}

// run runs the command and returns its output.
func (ps *provSandbox) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(t.Context(), args, ps.env, nil, &out, io.Discard)
	return out.String(), err
}

func TestDiagnoseLCLWalksEveryCheck(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	sub, _ := ps.subscription(t, "Contoso Business Basic", "", 3)
	// Scheduled: held by rule 5 whoever looks at it, so the walk is the same if the sandbox's connector
	// has already written the hold on the row.
	effective := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Minute)
	id := ps.quantityChange(t, sub, "Contoso: 3 → 8 seats next month", 8, effective)

	out, err := ps.run(t, "diagnose", "lcl", id.String())
	require.NoError(t, err)
	t.Logf("diagnose lcl:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^License change\s+Contoso: 3 → 8 seats next month$`),
		regexp.MustCompile(`(?m)^Change\s+Quantity, 8 seat\(s\), effective ` + regexp.QuoteMeta(mapping.FormatTime(effective)) + `$`),
		regexp.MustCompile(`(?m)^Status\s+Awaiting Provisioning$`),
		regexp.MustCompile(`(?m)^Attempts\s+0$`),
		regexp.MustCompile(`(?m)^  ✓\s+-\s+Awaiting Provisioning\s+status Awaiting Provisioning$`),
		regexp.MustCompile(`(?m)^  ✓\s+-\s+Complete\s+set seats to 8$`),
		regexp.MustCompile(`(?m)^  ✓\s+1\s+Change source\s+made in Dynamics$`),
		regexp.MustCompile(`(?m)^  ✓\s+2\s+Provider type\s+Microsoft Partner Center is Automatic$`),
		regexp.MustCompile(`(?m)^  ✓\s+4\s+Mapping\s+subscription Contoso Business Basic, provider Microsoft Partner Center, provider account Contoso Ltd \(tenant ` + ps.tenant + `\)$`),
		regexp.MustCompile(`(?m)^  ✗\s+5\s+Effective date\s+Scheduled for ` + regexp.QuoteMeta(mapping.FormatTime(effective)) + `: the connector pushes it then\.$`),
		regexp.MustCompile(`(?m)^Verdict: hold \(Scheduled\)$`),
		regexp.MustCompile(`(?m)^Next: It stays Awaiting Provisioning \(Scheduled\); the connector looks again at ` + regexp.QuoteMeta(mapping.FormatTime(effective)) + `\.$`),
	} {
		assert.Regexp(t, want, out)
	}
	assert.NotContains(t, out, "Parent subscription", "the walk stops at the first check that holds it")
	assert.NotContains(t, out, "\nPartner Center\n", "Partner Center is read only when the rules before it pass")

	out, err = ps.run(t, "diagnose", "lcl", id.String(), "-o", "json")
	require.NoError(t, err)
	var dg struct {
		LCL      provisioning.LCLState `json:"lcl"`
		Decision struct {
			Verdict     string    `json:"verdict"`
			Held        string    `json:"held"`
			NextAttempt time.Time `json:"nextAttempt"`
			Checks      []struct {
				Rule   int    `json:"rule"`
				Name   string `json:"name"`
				Passed bool   `json:"passed"`
			} `json:"checks"`
		} `json:"decision"`
		Next string `json:"next"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &dg), out)
	assert.Equal(t, id, dg.LCL.ID)
	assert.Equal(t, "hold", dg.Decision.Verdict)
	assert.Equal(t, "Scheduled", dg.Decision.Held)
	assert.True(t, dg.Decision.NextAttempt.Equal(effective), "next attempt %s", dg.Decision.NextAttempt)
	require.NotEmpty(t, dg.Decision.Checks)
	last := dg.Decision.Checks[len(dg.Decision.Checks)-1]
	assert.Equal(t, 5, last.Rule)
	assert.False(t, last.Passed)
	assert.Contains(t, dg.Next, "It stays Awaiting Provisioning (Scheduled)")
}

func TestDiagnoseLCLShowsPartnerCenter(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	// Pending in Partner Center: every Dataverse rule passes and rule 8 holds it on Partner Center's
	// status, the same decision on every run.
	sub, pcID := ps.subscription(t, "Contoso pending", "pending", 4)
	id := ps.quantityChange(t, sub, "Contoso: 4 → 6 seats", 6, time.Time{})

	out, err := ps.run(t, "diagnose", "lcl", id.String())
	require.NoError(t, err)
	t.Logf("diagnose lcl:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  ✓\s+5\s+Effective date\s+none: due now$`),
		regexp.MustCompile(`(?m)^  ✓\s+6\s+Parent subscription\s+not an add-on$`),
		regexp.MustCompile(`(?m)^  ✓\s+7\s+Earlier changes\s+none pending$`),
		regexp.MustCompile(`(?m)^  ✓\s+8\s+Subscription status\s+active in Dynamics$`),
		regexp.MustCompile(`(?m)^  ✗\s+8\s+Partner Center status\s+The subscription is pending in Partner Center: the connector tries again when it is active\.$`),
		regexp.MustCompile(`(?m)^Partner Center$`),
		regexp.MustCompile(`(?m)^  Subscription\s+` + pcID + `$`),
		regexp.MustCompile(`(?m)^  Status\s+pending$`),
		regexp.MustCompile(`(?m)^  Quantity\s+4$`),
		regexp.MustCompile(`(?m)^  Refundable now\s+\d+ seat\(s\)$`),
		regexp.MustCompile(`(?m)^  Cancellable until\s+\S`),
		regexp.MustCompile(`(?m)^Verdict: hold \(Retrying\)$`),
		regexp.MustCompile(`(?m)^Next: It stays Awaiting Provisioning \(Retrying\); the connector looks again at \d`),
	} {
		assert.Regexp(t, want, out)
	}
}

func TestDiagnoseSubscriptionListsChangesOldestFirst(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	sub, pcID := ps.subscription(t, "Contoso Business Basic", "", 3)
	now := time.Now().UTC()
	// Created newest-last on purpose: the order is by effective date, not creation.
	later := ps.quantityChange(t, sub, "Contoso: 8 seats in two months", 8, now.Add(60*24*time.Hour))
	sooner := ps.quantityChange(t, sub, "Contoso: 6 seats next month", 6, now.Add(30*24*time.Hour))
	due := ps.quantityChange(t, sub, "Contoso: 4 seats now", 4, time.Time{})

	out, err := ps.run(t, "diagnose", "subscription", sub.String())
	require.NoError(t, err)
	t.Logf("diagnose subscription:\n%s", out)
	assert.Regexp(t, `(?m)^Subscription\s+Contoso Business Basic$`, out)
	assert.Regexp(t, `(?m)^Partner Center\s+`+pcID+`$`, out)
	assert.Regexp(t, `(?m)^Quantity\s+[34]$`, out) // 4 once the due change is pushed
	assert.Regexp(t, `(?m)^Status\s+Active$`, out)
	assert.Contains(t, out, "License changes, oldest first (3)")
	assert.Regexp(t, `(?m)^  #\s+NAME\s+CHANGE\s+QUANTITY\s+EFFECTIVE\s+STATUS\s+HELD$`, out)
	iDue, iSooner, iLater := strings.Index(out, "Contoso: 4 seats now"), strings.Index(out, "Contoso: 6 seats next month"), strings.Index(out, "Contoso: 8 seats in two months")
	require.True(t, iDue > 0 && iSooner > 0 && iLater > 0, out)
	assert.Less(t, iDue, iSooner)
	assert.Less(t, iSooner, iLater)
	assert.Regexp(t, `(?m)^  2\s+Contoso: 6 seats next month\s+Quantity\s+6\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+Awaiting Provisioning\s+\S+$\n^     ↳ Scheduled for `, out)
	assert.Regexp(t, `(?m)^  3\s+Contoso: 8 seats in two months\s+Quantity\s+8\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+Awaiting Provisioning\s+\S+$\n^     ↳ Scheduled for `, out)

	out, err = ps.run(t, "diagnose", "subscription", sub.String(), "-o", "json")
	require.NoError(t, err)
	var sd provisioning.SubscriptionDiagnosis
	require.NoError(t, json.Unmarshal([]byte(out), &sd), out)
	require.Len(t, sd.Changes, 3)
	assert.Equal(t, []dataverse.GUID{due, sooner, later}, []dataverse.GUID{sd.Changes[0].ID, sd.Changes[1].ID, sd.Changes[2].ID})
	assert.Contains(t, sd.Changes[2].Blocker, "Scheduled for")

	// Partner Center's subscription id, as `connector pc subscriptions` lists it, names the same row.
	out, err = ps.run(t, "diagnose", "subscription", pcID, "-o", "json")
	require.NoError(t, err)
	var byPC provisioning.SubscriptionDiagnosis
	require.NoError(t, json.Unmarshal([]byte(out), &byPC), out)
	assert.Equal(t, sub, byPC.ID)
	assert.Len(t, byPC.Changes, 3)
}

func TestProvisionLCLPushesAQuantityChange(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	sub, pcID := ps.subscription(t, "Contoso Business Basic", "", 3)
	id := ps.quantityChange(t, sub, "Contoso: 3 → 5 seats", 5, time.Time{})

	out, err := ps.run(t, "provision", "lcl", id.String())
	require.NoError(t, err)
	t.Logf("provision lcl:\n%s", out)
	// The sandbox's own connector may push the change too: the claim lets one of them make it, and the row
	// ends the same either way.
	require.Eventually(t, func() bool { return ps.lcl(t, id).ProvisioningStatus == schema.ProvisioningProvisioned }, 10*time.Second, 20*time.Millisecond)
	if strings.Contains(out, "Another attempt") { // it was making the change at that very moment
		out, err = ps.run(t, "provision", "lcl", id.String())
		require.NoError(t, err)
	}
	assert.Regexp(t, `(?m)^License change\s+Contoso: 3 → 5 seats$`, out)
	assert.Regexp(t, `(?m)^Status\s+Provisioned$`, out)
	assert.Regexp(t, `(?m)^Message\s+Seats 3 → 5 in Partner Center\.$`, out)
	assert.Regexp(t, `(?m)^Attempts\s+1$`, out)
	l := ps.lcl(t, id)
	assert.Equal(t, "Seats 3 → 5 in Partner Center.", l.ProvisioningMessage)
	pc, ok := ps.sb.PartnerCenter.Subscription(ps.tenant, pcID)
	require.True(t, ok)
	assert.Equal(t, 5, pc.Quantity)

	// Again: the row is done, so nothing is sent; JSON for scripts.
	ps.sb.PartnerCenter.ResetRequests()
	out, err = ps.run(t, "provision", "lcl", id.String(), "-o", "json")
	require.NoError(t, err)
	var res struct {
		Outcome struct {
			Decision struct {
				Verdict string `json:"verdict"`
			} `json:"decision"`
			Written bool   `json:"written"`
			Changed string `json:"changed"`
		} `json:"outcome"`
		LCL provisioning.LCLState `json:"lcl"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	assert.Equal(t, "skip", res.Outcome.Decision.Verdict)
	assert.False(t, res.Outcome.Written)
	assert.Empty(t, res.Outcome.Changed)
	assert.Equal(t, "Provisioned", res.LCL.Status)
	assert.Equal(t, "Seats 3 → 5 in Partner Center.", res.LCL.Message)
	for _, r := range ps.sb.PartnerCenter.Requests() {
		assert.NotEqual(t, "PATCH", r.Method, "a done change is not sent again: %+v", r)
	}
}

func TestProvisionLCLFailedChangeExitsNonZero(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	sub, pcID := ps.subscription(t, "Contoso Business Basic", "", 3)
	// Zero seats is not a change Partner Center can make: the rules fail it, whoever looks first.
	id := ps.quantityChange(t, sub, "Contoso: 3 → 0 seats", 0, time.Time{})

	out, err := ps.run(t, "provision", "lcl", id.String())
	require.ErrorContains(t, err, "license change log "+id.String()+" is Failed Provisioning: New quantity is 0")
	assert.Regexp(t, `(?m)^Status\s+Failed Provisioning$`, out)
	pc, ok := ps.sb.PartnerCenter.Subscription(ps.tenant, pcID)
	require.True(t, ok)
	assert.Equal(t, 3, pc.Quantity)
}

func TestHelpListsProvisioningCommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"diagnose", "--help"}, {"provision", "--help"}} {
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), args, getenv(nil), nil, &out, io.Discard))
		for _, want := range map[string][]string{"--help": {"provision", "diagnose"}, "diagnose": {"lcl", "subscription"}, "provision": {"lcl"}}[args[0]] {
			assert.Contains(t, out.String(), want, "connector %s", strings.Join(args, " "))
		}
	}
}

func TestProvisioningCommandsRejectBadIDs(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	unknown := uuid.New()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"provision", "lcl", "not-a-guid"}, `"not-a-guid" is not a license change log id`},
		{[]string{"diagnose", "lcl", "12345"}, `"12345" is not a license change log id`},
		{[]string{"diagnose", "subscription", "contoso"}, `"contoso" is not a subscription id`},
		{[]string{"provision", "lcl", unknown.String()}, "no license change log " + unknown.String()},
		{[]string{"diagnose", "lcl", unknown.String()}, "no license change log " + unknown.String()},
		{[]string{"diagnose", "lcl", unknown.String(), "-o", "json"}, "no license change log " + unknown.String()},
		{[]string{"diagnose", "subscription", unknown.String()}, "no subscription " + unknown.String()},
		{[]string{"diagnose", "lcl", unknown.String(), "-o", "yaml"}, "--output must be text or json"},
		{[]string{"provision", "lcl"}, "accepts 1 arg(s), received 0"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			out, err := ps.run(t, tc.args...)
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error()[:min(len(err.Error()), len(tc.want))], "error: %v", err)
			assert.Empty(t, out)
		})
	}

	// The connector's configuration is needed like for verify: both services, no intake.
	var out bytes.Buffer
	err := run(t.Context(), []string{"diagnose", "lcl", unknown.String()}, getenv(nil), nil, &out, io.Discard)
	require.ErrorContains(t, err, "DATAVERSE_URL is required")
}

func TestPrintDiagnosisKeepsMultiLineValuesUnderTheirLabel(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	dg := provisioning.Diagnosis{
		LCL: provisioning.LCLState{ID: id, Name: "Contoso: 3 → 5 seats", ChangeType: "Quantity", Status: "Awaiting Provisioning", Held: "Retrying",
			Message: "Partner Center is not answering: the connector tries again.", SystemMessage: "Partner Center HTTP 503\nRequest: GET /v1/customers/x/subscriptions/y"},
		Decision: mapping.Decision{Verdict: mapping.Hold, HeldLabel: "Retrying", Checks: []mapping.Check{
			{Rule: 0, Name: "Awaiting Provisioning", Passed: true, Detail: "status Awaiting Provisioning"},
			{Rule: 8, Name: "Partner Center status", Detail: "first line\nsecond line"},
		}},
		PartnerCenter: &provisioning.PartnerCenterView{SubscriptionID: "y", ReadError: "Partner Center is not answering.", ReadErrorSystemText: "HTTP 503\nMS-RequestId: r"},
		Next:          "It stays Awaiting Provisioning (Retrying).",
	}
	var out bytes.Buffer
	dg.WriteText(&out)
	want := `License change  Contoso: 3 → 5 seats
Id              ` + id.String() + `
Change          Quantity
Status          Awaiting Provisioning
Held            Retrying
Next attempt    -
Attempts        0
Message         Partner Center is not answering: the connector tries again.
System message  Partner Center HTTP 503
                Request: GET /v1/customers/x/subscriptions/y

Checks (rule number, or - for a preliminary)
  ✓  -  Awaiting Provisioning  status Awaiting Provisioning
  ✗  8  Partner Center status  first line
                               second line

Partner Center
  Subscription       y
  Could not read it  Partner Center is not answering.
  Detail             HTTP 503
                     MS-RequestId: r

Verdict: hold (Retrying)
Next: It stays Awaiting Provisioning (Retrying).
`
	assert.Equal(t, want, out.String())
}
