package agreements

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// agRig is the agreements workflow on both simulators: an Automatic direct-bill provider, one customer
// mapped to an account, the MCA template, and a Pending agreement.
type agRig struct {
	*testrig.Sims
	G        *Workflow
	Provider dataverse.GUID
	PA       dataverse.GUID
	Account  dataverse.GUID
	Template dataverse.GUID
	Row      dataverse.GUID // the Pending agreement
	Tenant   string

	mu      sync.Mutex
	events  []notify.Notification
	toUsers []notify.Notice
}

func newAgRig(t testing.TB, model schema.PartnerModel) *agRig {
	t.Helper()
	ctx := t.Context()
	sims := testrig.StartSims(t, testrig.SimOptions{})
	dv, pc, pcs, clk := sims.DV, sims.PC, sims.PCS, sims.Clock
	var err error
	r := &agRig{Sims: sims, Tenant: uuid.NewString()}
	require.NoError(t, pcs.AddCustomer(partnercentertest.Customer{TenantID: r.Tenant, CompanyName: "Contoso Ltd", Domain: "contoso.com"}))
	r.Provider, err = dv.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic), "csp_partnermodel": int(model)})
	require.NoError(t, err)
	r.Account, err = dv.Create(ctx, schema.SetAccounts, dataverse.Row{"name": "Contoso Ltd"})
	require.NoError(t, err)
	r.PA, err = dv.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Contoso Ltd", "csp_companyname": "Contoso Ltd", "csp_tenantid": r.Tenant,
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider), "csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, r.Account)})
	require.NoError(t, err)
	r.Template, err = dv.Create(ctx, schema.SetAgreementTemplates, dataverse.Row{"csp_name": "Microsoft Customer Agreement", "csp_templateid": partnercentertest.MCATemplateID,
		"csp_agreementtype": int(schema.AgreementMicrosoftCustomerAgreement), "csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider)})
	require.NoError(t, err)
	r.Row = r.agreement(t, r.PA)
	r.G = New(dv, pc, &Options{Now: clk.Now, CallTimeout: 5 * time.Second,
		Publish: func(n notify.Notification) { r.mu.Lock(); defer r.mu.Unlock(); r.events = append(r.events, n) },
		NoticeUser: func(_ context.Context, _ dataverse.GUID, n notify.Notice) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.toUsers = append(r.toUsers, n)
			return nil
		}})
	return r
}

// agreement creates a Pending agreement of the MCA template for a provider account.
func (r *agRig) agreement(t testing.TB, pa dataverse.GUID) dataverse.GUID {
	t.Helper()
	id, err := r.DV.Create(t.Context(), schema.SetAgreements, dataverse.Row{"csp_name": "Contoso — MCA", "statuscode": schema.AgreementPending,
		"csp_attestationstatus":          int(schema.AttestationNotStarted),
		"csp_provideraccount@odata.bind": dataverse.Bind(schema.SetProviderAccounts, pa), "csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, r.Account),
		"csp_agreementtemplate@odata.bind": dataverse.Bind(schema.SetAgreementTemplates, r.Template)})
	require.NoError(t, err)
	return id
}

// Request fills the signatory and sets Link requested (extra columns override), as an admin would.
func (r *agRig) Request(t testing.TB, extra dataverse.Row) {
	t.Helper()
	row := dataverse.Row{"csp_signatoryfirstname": "Zoë", "csp_signatorylastname": "O'Brien-Łukasz", "csp_signatoryemail": "zoe.obrien@contoso.com",
		"csp_signatorycompany": `Contoso "UK" Ltd`, "csp_signatorycountry": "gb", "csp_signatorylanguage": "en-GB",
		"csp_attestationstatus": int(schema.AttestationLinkRequested)}
	for k, v := range extra {
		row[k] = v
	}
	_, err := r.DV.Update(t.Context(), schema.SetAgreements, r.Row, row, nil)
	require.NoError(t, err)
}

// Run handles the row as an admin's event would.
func (r *agRig) Run(t testing.TB) error {
	t.Helper()
	return r.G.Handle(t.Context(), work.Batch{Key: work.Key{Table: schema.TableAgreement, ID: r.Row},
		Events: []event.Event{{Message: "Update", Table: schema.TableAgreement, RowID: r.Row, InitiatingUserID: uuid.New()}}})
}

func (r *agRig) Read(t testing.TB) schema.Agreement {
	t.Helper()
	raw, err := r.DV.Get(t.Context(), schema.SetAgreements, r.Row, &dataverse.GetOptions{Select: dataverse.Columns[schema.Agreement]()})
	require.NoError(t, err)
	var a schema.Agreement
	require.NoError(t, dataverse.Unmarshal(raw, &a))
	return a
}

func (r *agRig) Events() []notify.Notification { r.mu.Lock(); defer r.mu.Unlock(); return r.events }

func TestAgreementLinkAcceptedIsFinalizedAndRecorded(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.Request(t, nil)
	require.NoError(t, r.Run(t))
	require.NoError(t, r.Run(t), "a repeated event sends nothing again")
	a := r.Read(t)
	require.Equal(t, schema.AttestationLinkSent, a.AttestationStatus, a.AttestationMessage)
	require.Len(t, r.PCS.Attestations(), 1, "one attestation however many events")
	assert.Equal(t, r.PCS.Attestations()[0], a.AttestationID)
	assert.Equal(t, partnercenter.AcceptanceURL(a.AttestationID), a.AcceptanceURL)
	assert.False(t, a.LinkExpiresOn.IsZero())
	assert.Equal(t, schema.AcceptanceLink, a.AcceptancePath)
	assert.Contains(t, a.AttestationMessage, "zoe.obrien@contoso.com")
	require.Len(t, r.toUsers, 1, "the requester gets the link")
	assert.Contains(t, r.toUsers[0].Body, a.AcceptanceURL)

	// The customer accepts an hour later; the check two hours after that finalizes it.
	r.Clock.Advance(time.Hour)
	accepted := r.Clock.Now()
	require.NoError(t, r.PCS.AcceptAttestation(a.AttestationID))
	r.Clock.Advance(2 * time.Hour)
	require.NoError(t, r.Run(t))
	a = r.Read(t)
	assert.Equal(t, schema.AttestationAttested, a.AttestationStatus, a.AttestationMessage)
	assert.Equal(t, schema.StatusActive, a.Status)
	assert.Equal(t, schema.AcceptanceLink, a.AcceptancePath)
	assert.Equal(t, accepted, a.DateAgreed, "when the customer accepted, as Partner Center reports it")
	assert.Equal(t, r.Clock.Now(), a.VerifiedOn, "when the connector confirmed it, kept apart")
	assert.Empty(t, a.SystemMessage)
	require.Len(t, r.Events(), 1)
	assert.Equal(t, notify.AgreementAccepted, r.Events()[0].Type)

	ags, err := r.G.pc.Agreements(t.Context(), r.Tenant, partnercenter.MicrosoftCustomerAgreement)
	require.NoError(t, err)
	require.Len(t, ags, 1, "the agreement was created from the attestation")

	// Later checks only refresh Verified on.
	r.Clock.Advance(24 * time.Hour)
	require.NoError(t, r.Run(t))
	b := r.Read(t)
	assert.Equal(t, schema.AttestationAttested, b.AttestationStatus)
	assert.Equal(t, accepted, b.DateAgreed)
	assert.Equal(t, r.Clock.Now(), b.VerifiedOn)
	ags, err = r.G.pc.Agreements(t.Context(), r.Tenant, partnercenter.MicrosoftCustomerAgreement)
	require.NoError(t, err)
	assert.Len(t, ags, 1)
}

func TestAgreementExpiredLinkCanBeRequestedAgain(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.Request(t, nil)
	require.NoError(t, r.Run(t))
	first := r.Read(t).AttestationID
	require.NoError(t, r.PCS.ExpireAttestation(first))
	require.NoError(t, r.Run(t))
	a := r.Read(t)
	assert.Equal(t, schema.AttestationExpired, a.AttestationStatus)
	assert.Contains(t, a.AttestationMessage, "Link requested")
	require.NoError(t, r.Run(t))
	assert.Equal(t, a.ETag, r.Read(t).ETag, "an expired row waits for a person: nothing is written again")

	r.Request(t, nil)
	require.NoError(t, r.Run(t))
	a = r.Read(t)
	assert.Equal(t, schema.AttestationLinkSent, a.AttestationStatus)
	assert.NotEqual(t, first, a.AttestationID, "a new link for an expired one")
	assert.Len(t, r.PCS.Attestations(), 2)
}

func TestAgreementOpenLinkIsNotSentTwice(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.Request(t, nil)
	require.NoError(t, r.Run(t))
	r.Request(t, nil) // an admin presses it again while the link is open
	require.NoError(t, r.Run(t))
	assert.Len(t, r.PCS.Attestations(), 1)
	assert.Equal(t, schema.AttestationLinkSent, r.Read(t).AttestationStatus)
}

func TestAgreementAcceptedDirectlyInTheAdminCenter(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	require.NoError(t, r.Run(t))
	a := r.Read(t)
	assert.Equal(t, schema.AttestationNotStarted, a.AttestationStatus)
	assert.NotEqual(t, schema.StatusActive, a.Status)

	r.PCS.SetDirectSigned(r.Tenant, true)
	require.NoError(t, r.Run(t))
	a = r.Read(t)
	assert.Equal(t, schema.AttestationAcceptedDirectly, a.AttestationStatus, a.AttestationMessage)
	assert.Equal(t, schema.StatusActive, a.Status)
	assert.Equal(t, schema.AcceptanceAdminCenter, a.AcceptancePath)
	assert.Equal(t, r.Clock.Now(), a.VerifiedOn)
	assert.Empty(t, r.PCS.Attestations())

	// A later read that no longer shows it (stale data) never moves the row back.
	r.PCS.SetDirectSigned(r.Tenant, false)
	r.Clock.Advance(time.Hour)
	require.NoError(t, r.Run(t))
	b := r.Read(t)
	assert.Equal(t, schema.AttestationAcceptedDirectly, b.AttestationStatus)
	assert.Equal(t, schema.StatusActive, b.Status)
	assert.Equal(t, a.VerifiedOn, b.VerifiedOn, "not confirmed by this read: Verified on stays")
}

// agreementPosts are the create-agreement calls Partner Center received for the tenant.
func (r *agRig) agreementPosts() []partnercentertest.Request {
	var out []partnercentertest.Request
	for _, q := range r.PCS.Requests() {
		if q.Method == http.MethodPost && q.Path == "customers/"+r.Tenant+"/agreements" {
			out = append(out, q)
		}
	}
	return out
}

// A row set up for the legacy partner attestation (Partner attestation with a Date agreed to record) is
// never sent through the create-agreement call Microsoft retired on 5 January 2026: it is Failed, a status
// a person acts from, with a message that says why and what to do now.
func TestAgreementPartnerAttestationLegacyFormIsRetired(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.PCS.ResetRequests()
	agreed := r.Clock.Now().Add(-48 * time.Hour)
	r.Request(t, dataverse.Row{"csp_acceptancepath": int(schema.AcceptancePartnerAttestation), "csp_dateagreed": agreed, "csp_signatorycountry": nil, "csp_signatorylanguage": nil})
	require.NoError(t, r.Run(t))

	a := r.Read(t)
	assert.Equal(t, schema.AttestationFailed, a.AttestationStatus)
	assert.Equal(t, schema.AgreementPending, a.Status, "not accepted")
	for _, phrase := range []string{"Nothing was sent to Partner Center", "retired", "5 January 2026", "clear Date agreed", "Link requested", "Microsoft 365 admin center"} {
		assert.Contains(t, a.AttestationMessage, phrase)
	}
	assert.NotContains(t, a.AttestationMessage, "http")
	assert.Empty(t, r.agreementPosts(), "no create-agreement call: the legacy one is retired")
	assert.Empty(t, r.PCS.Attestations(), "nothing is created before a person says how to go on")

	// Doing what the message says goes through the enhanced flow.
	r.Request(t, dataverse.Row{"csp_acceptancepath": int(schema.AcceptancePartnerAttestation), "csp_dateagreed": nil})
	require.NoError(t, r.Run(t))
	a = r.Read(t)
	assert.Equal(t, schema.AttestationLinkSent, a.AttestationStatus, a.AttestationMessage)
	assert.NotEmpty(t, a.AttestationID)
}

// A partner attestation goes through the enhanced flow: the attestation, the signatory's acceptance on
// Microsoft's page, then the agreement created with the attestation id; the row keeps its path.
func TestAgreementPartnerAttestationGoesThroughTheEnhancedFlow(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.Request(t, dataverse.Row{"csp_acceptancepath": int(schema.AcceptancePartnerAttestation)})
	require.NoError(t, r.Run(t))
	a := r.Read(t)
	require.Equal(t, schema.AttestationLinkSent, a.AttestationStatus, a.AttestationMessage)
	assert.Equal(t, schema.AcceptancePartnerAttestation, a.AcceptancePath)
	assert.Equal(t, partnercenter.AcceptanceURL(a.AttestationID), a.AcceptanceURL)
	assert.Empty(t, r.agreementPosts(), "no agreement before the customer accepts")

	require.NoError(t, r.PCS.AcceptAttestation(a.AttestationID))
	require.NoError(t, r.Run(t))
	a = r.Read(t)
	assert.Equal(t, schema.AttestationAttested, a.AttestationStatus, a.AttestationMessage)
	assert.Equal(t, schema.StatusActive, a.Status)
	assert.Equal(t, schema.AcceptancePartnerAttestation, a.AcceptancePath)
	assert.False(t, a.DateAgreed.IsZero(), "Partner Center's acceptance date")
	require.Len(t, r.agreementPosts(), 1, "one create-agreement call, with the attestation id")
	att, err := r.G.pc.GetAttestation(t.Context(), a.AttestationID)
	require.NoError(t, err)
	assert.True(t, att.Status.Is(partnercenter.AttestationFinalized), "the agreement was made from the attestation")
}

func TestAgreementLinkRequestValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		model schema.PartnerModel
		extra dataverse.Row
		want  []string
	}{
		{"missing names and a bad e-mail", schema.PartnerDirectBill, dataverse.Row{"csp_signatoryfirstname": nil, "csp_signatorylastname": " ", "csp_signatoryemail": "Zoe <zoe@contoso>"},
			[]string{"first name", "last name", "email"}},
		{"UK is not a country code", schema.PartnerDirectBill, dataverse.Row{"csp_signatorycountry": "UK"}, []string{"GB"}},
		{"no language", schema.PartnerDirectBill, dataverse.Row{"csp_signatorylanguage": nil}, []string{"anguage"}},
		{"indirect reseller", schema.PartnerIndirectReseller, nil, []string{"indirect provider"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newAgRig(t, tt.model)
			r.Request(t, tt.extra)
			require.NoError(t, r.Run(t))
			a := r.Read(t)
			assert.Equal(t, schema.AttestationFailed, a.AttestationStatus)
			for _, w := range tt.want {
				assert.Contains(t, a.AttestationMessage, w)
			}
			assert.Empty(t, r.PCS.Attestations(), "nothing is sent")
			assert.Empty(t, a.AttestationID)
		})
	}
}

func TestAgreementUnmappedProviderAccountIsNamed(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	_, err := r.DV.Update(t.Context(), schema.SetProviderAccounts, r.PA, dataverse.Row{"csp_tenantid": nil}, nil)
	require.NoError(t, err)
	r.Request(t, nil)
	require.NoError(t, r.Run(t))
	a := r.Read(t)
	assert.Equal(t, schema.AttestationFailed, a.AttestationStatus)
	assert.Contains(t, a.AttestationMessage, "tenant")
	assert.Empty(t, r.PCS.Attestations())
}

func TestAgreementCrashAfterTheAttestationDoesNotCreateASecond(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.Request(t, nil)
	// The write-back of the link fails (the replica dies after Partner Center answered).
	r.DVS.Inject(dataversetest.Fault{Method: http.MethodPatch, Path: "csp_agreements", Status: http.StatusBadRequest, Times: 1})
	require.Error(t, r.Run(t))
	require.Equal(t, schema.AttestationLinkRequested, r.Read(t).AttestationStatus)
	require.NoError(t, r.Run(t), "the redelivered event")
	assert.Len(t, r.PCS.Attestations(), 1, "the same MS-RequestId: Partner Center answers with the first attestation")
	assert.Equal(t, r.PCS.Attestations()[0], r.Read(t).AttestationID)
}

func TestAgreementCheckOutagesLeaveTheRowAndExpiredDelegationIsExplained(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	before := r.Read(t)
	r.PCS.Inject(partnercentertest.Fault{Path: "agreements", Status: http.StatusServiceUnavailable})
	require.Error(t, r.Run(t), "an outage is retried later")
	assert.Equal(t, before.ETag, r.Read(t).ETag, "nothing written")
	r.PCS.ClearFaults()
	r.PCS.Inject(partnercentertest.Fault{Path: "agreements", Status: http.StatusTooManyRequests, RetryAfter: time.Hour})
	require.Error(t, r.Run(t), "throttled: the call is bounded and retried later")
	r.PCS.ClearFaults()

	r.PCS.Inject(partnercentertest.Fault{Path: "agreements", Status: http.StatusUnauthorized})
	require.NoError(t, r.Run(t))
	a := r.Read(t)
	assert.Equal(t, schema.AttestationNotStarted, a.AttestationStatus, "held, not failed")
	assert.Contains(t, a.AttestationMessage, "refresh token")
	raw, err := r.DV.Get(t.Context(), schema.SetProviders, r.Provider, nil)
	require.NoError(t, err)
	st, _ := raw.Int("csp_connectivitystatus")
	assert.Equal(t, int64(schema.ConnectivityNotConnected), st)
}

func TestAgreementsCreateForTemplate(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill) // Contoso has its agreement already
	ctx := t.Context()
	for _, name := range []string{"Fabrikam", "Northwind"} {
		acc, err := r.DV.Create(ctx, schema.SetAccounts, dataverse.Row{"name": name})
		require.NoError(t, err)
		_, err = r.DV.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": name, "csp_companyname": name, "csp_tenantid": uuid.NewString(),
			"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider), "csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, acc)})
		require.NoError(t, err)
	}
	_, err := r.DV.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Unmapped", "csp_tenantid": uuid.NewString(),
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider)})
	require.NoError(t, err)

	created, existing, err := r.G.CreateForTemplate(ctx, r.Template)
	require.NoError(t, err)
	assert.Equal(t, 2, created)
	assert.Equal(t, 1, existing)
	created, existing, err = r.G.CreateForTemplate(ctx, r.Template)
	require.NoError(t, err)
	assert.Zero(t, created, "a second press creates nothing")
	assert.Equal(t, 3, existing)
	raw, err := r.DV.Get(ctx, schema.SetAgreementTemplates, r.Template, nil)
	require.NoError(t, err)
	assert.Contains(t, raw.String("csp_createmessage"), "0 Pending agreement(s) created, 3 mapped provider account(s) had one already")
	n := 0
	for raw, err := range r.DV.List(ctx, schema.SetAgreements, &dataverse.Query{Select: dataverse.Columns[schema.Agreement]()}) {
		require.NoError(t, err)
		var a schema.Agreement
		require.NoError(t, dataverse.Unmarshal(raw, &a))
		assert.Equal(t, schema.AgreementPending, a.Status)
		assert.True(t, a.DateAgreed.IsZero(), "signed-by and date left empty")
		assert.Empty(t, a.SignatoryEmail)
		n++
	}
	assert.Equal(t, 3, n)
}

func TestAgreementDeactivatedIsNotChecked(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.PCS.SetDirectSigned(r.Tenant, true)
	_, err := r.DV.Update(t.Context(), schema.SetAgreements, r.Row, dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.StatusInactive}, nil)
	require.NoError(t, err)
	r.PCS.ResetRequests()
	require.NoError(t, r.Run(t))
	assert.Equal(t, schema.AttestationNotStarted, r.Read(t).AttestationStatus)
	assert.Empty(t, r.PCS.Requests(), "no Partner Center call for an inactive agreement")
}

func TestAgreementFinalizeRefusedIsExplained(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	_, err := r.DV.Update(t.Context(), schema.SetAgreementTemplates, r.Template, dataverse.Row{"csp_templateid": "117a1e9f-3e79-4b1b-9b4e-6f2b1c0b7d1a"}, nil)
	require.NoError(t, err)
	r.Request(t, nil)
	require.NoError(t, r.Run(t))
	require.NoError(t, r.PCS.AcceptAttestation(r.Read(t).AttestationID))
	err = r.Run(t)
	a := r.Read(t)
	t.Logf("err %v; status %d; message %s; system %s", err, a.AttestationStatus, a.AttestationMessage, a.SystemMessage)
	assert.Contains(t, a.AttestationMessage, "Partner Center refused it: The templateId")
	assert.Contains(t, a.AttestationMessage, "Link requested again")
	assert.NotContains(t, a.AttestationMessage, "Awaiting Provisioning")
	assert.NotEqual(t, schema.StatusActive, a.Status)
}

// 600002 is "Organization registration id value is not supported" in Partner Center's error table (not a
// date in the future): the row says so in words, with what to check.
func TestAgreementRefusal600002SaysOrganizationRegistrationID(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	r.PCS.Inject(partnercentertest.Fault{Method: http.MethodPost, Path: "attestations/enhanced", Status: http.StatusBadRequest,
		Code: partnercentertest.CodeOrgRegistrationIDNotSupported, Description: "Organization registration id value is not supported", Times: 1})
	r.Request(t, nil)
	require.NoError(t, r.Run(t))
	a := r.Read(t)
	assert.Equal(t, schema.AttestationFailed, a.AttestationStatus)
	assert.Contains(t, a.AttestationMessage, "organization registration number", "says what to check")
	assert.Contains(t, a.AttestationMessage, "600002")
	assert.NotContains(t, a.AttestationMessage, "date")
	assert.Contains(t, a.AttestationMessage, "Link requested again", "says what to do next")
	assert.Contains(t, a.SystemMessage, "600002")
}

// TestCreateAgreementsRequestedInTheFutureOrThePast: Create agreements requested on dated hours ahead
// creates once, now, and says so (the API's creation is done, not running for ever); one dated before the
// last creation creates nothing and says it was already done.
func TestCreateAgreementsRequestedInTheFutureOrThePast(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	ctx := t.Context()
	read := func() schema.AgreementTemplate {
		tpl, err := r.G.template(ctx, r.Template)
		require.NoError(t, err)
		return tpl
	}
	handle := func() {
		require.NoError(t, r.G.HandleTemplate(ctx, work.Batch{Key: work.Key{Table: schema.TableAgreementTemplate, ID: r.Template}}))
	}
	agreements := func() int {
		n := 0
		for _, err := range r.DV.List(ctx, schema.SetAgreements, &dataverse.Query{Select: []string{"csp_agreementid"}}) {
			require.NoError(t, err)
			n++
		}
		return n
	}
	acc, err := r.DV.Create(ctx, schema.SetAccounts, dataverse.Row{"name": "Fabrikam"})
	require.NoError(t, err)
	fabrikam, err := r.DV.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Fabrikam", "csp_tenantid": uuid.NewString(),
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, r.Provider), "csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, acc)})
	require.NoError(t, err)

	requested := r.Clock.Now().Add(3 * time.Hour)
	_, err = r.DV.Update(ctx, schema.SetAgreementTemplates, r.Template, dataverse.Row{"csp_createrequestedon": requested}, nil)
	require.NoError(t, err)
	handle()
	require.Equal(t, 2, agreements(), "Fabrikam got its agreement")
	done := r.Clock.Now()
	tpl := read()
	assert.True(t, tpl.CreateRequestedOn.IsZero(), "the request is cleared once carried out")
	assert.Equal(t, done, tpl.CreateDoneOn)
	assert.False(t, CreationPending(tpl), "the API's creation reads done")
	assert.Contains(t, tpl.CreateMessage, "1 Pending agreement(s) created")
	assert.Contains(t, tpl.CreateMessage, "Create agreements requested on was set to "+requested.Format("2 Jan 2006 15:04 UTC")+
		", a time still to come; a request means now, so the agreements were created at "+done.Format("2 Jan 2006 15:04 UTC"))

	// Fabrikam's agreement is deleted: a wake-up that re-ran the request would create it again.
	for raw, err := range r.DV.List(ctx, schema.SetAgreements, &dataverse.Query{Select: []string{"csp_agreementid"}, Filter: dataverse.LookupEq("csp_provideraccount", fabrikam)}) {
		require.NoError(t, err)
		id, _ := raw.GUID("csp_agreementid")
		require.NoError(t, r.DV.Delete(ctx, schema.SetAgreements, id, nil))
	}
	for range 5 {
		r.Clock.Advance(10 * time.Second)
		handle()
	}
	assert.Equal(t, 1, agreements(), "carried out once")

	// Dated before the last creation: answered, nothing created.
	r.Clock.Advance(time.Hour)
	_, err = r.DV.Update(ctx, schema.SetAgreementTemplates, r.Template, dataverse.Row{"csp_createrequestedon": done.Add(-time.Hour)}, nil)
	require.NoError(t, err)
	handle()
	handle()
	assert.Equal(t, 1, agreements(), "nothing created")
	tpl = read()
	assert.True(t, tpl.CreateRequestedOn.IsZero(), "the request is answered and cleared")
	assert.Equal(t, done, tpl.CreateDoneOn)
	assert.True(t, strings.HasPrefix(tpl.CreateMessage, "Create agreements requested on was set to "+done.Add(-time.Hour).Format("2 Jan 2006 15:04 UTC")+
		", which is not after the last time agreements were created ("+done.Format("2 Jan 2006 15:04 UTC")+"): that was already done"), tpl.CreateMessage)
	assert.Contains(t, tpl.CreateMessage, "press Create Agreements (it sets Create agreements requested on to now).\nOn ", "the last creation's message stays below the note")

	// A request now creates it again.
	_, err = r.DV.Update(ctx, schema.SetAgreementTemplates, r.Template, dataverse.Row{"csp_createrequestedon": r.Clock.Now()}, nil)
	require.NoError(t, err)
	handle()
	assert.Equal(t, 2, agreements())
	assert.NotContains(t, read().CreateMessage, "requested on", "a request carried out as asked needs no note")
}
