package connector

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestSandboxAgreementsReachEveryPath: in the sandbox, Fabrikam's agreement (recorded in Partner Center)
// becomes Attested and Northwind's (accepted in the admin center) Accepted directly; the Demo Admin asks
// for Contoso's acceptance link as Describe shows, the simulator plays the customer accepting it, and the
// next check finalizes it.
func TestSandboxAgreementsReachEveryPath(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	var desc bytes.Buffer
	sb.Describe(&desc)
	assert.Contains(t, desc.String(), "csp_agreements("+sb.contosoAgreement.String()+")")
	runService(t, sb.Service)

	byTenant := func() map[string]schema.Agreement {
		out := map[string]schema.Agreement{}
		for raw, err := range dv.List(t.Context(), schema.SetAgreements, &dataverse.Query{Select: dataverse.Columns[schema.Agreement]()}) {
			require.NoError(t, err)
			var a schema.Agreement
			require.NoError(t, dataverse.Unmarshal(raw, &a))
			pa, err := dv.Get(t.Context(), schema.SetProviderAccounts, a.ProviderAccount.ID, &dataverse.GetOptions{Select: []string{"csp_tenantid", "_csp_provider_value"}})
			require.NoError(t, err)
			if p, _ := pa.Lookup("csp_provider"); p.ID == sb.partnerCenterProvider {
				out[pa.String("csp_tenantid")] = a
			}
		}
		return out
	}
	check := func() {
		_, err := sb.Service.Jobs.RunNow(t.Context(), agreements.AttestationCheckJob, schema.TriggerRunNow)
		if err != nil {
			require.ErrorIs(t, err, jobs.ErrLeaseHeld)
		}
	}
	require.Eventually(t, func() bool {
		check()
		ags := byTenant()
		return ags[demoFabrikamTenant].AttestationStatus == schema.AttestationAttested && ags[demoNorthwindTenant].AttestationStatus == schema.AttestationAcceptedDirectly
	}, 20*time.Second, 200*time.Millisecond, "the check settles Fabrikam and Northwind")
	ags := byTenant()
	assert.Equal(t, schema.StatusActive, ags[demoFabrikamTenant].Status)
	assert.Equal(t, schema.AcceptancePartnerAttestation, ags[demoFabrikamTenant].AcceptancePath)
	assert.False(t, ags[demoFabrikamTenant].DateAgreed.IsZero(), "Fabrikam's date as Partner Center reports it")
	assert.Equal(t, schema.AcceptanceAdminCenter, ags[demoNorthwindTenant].AcceptancePath)

	admin := adminClient(t, sb)
	_, err := admin.Update(t.Context(), schema.SetAgreements, sb.contosoAgreement, dataverse.Row{"csp_signatoryfirstname": "Ada", "csp_signatorylastname": "Lovelace",
		"csp_signatoryemail": "accept.ada@contoso.com", "csp_signatorycompany": "Contoso Ltd", "csp_signatorycountry": "GB", "csp_signatorylanguage": "en-GB",
		"csp_attestationstatus": int(schema.AttestationLinkRequested)}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return byTenant()[demoContosoTenant].AttestationID != ""
	}, 10*time.Second, 50*time.Millisecond, "the link is sent")
	require.Eventually(t, func() bool {
		check()
		a := byTenant()[demoContosoTenant]
		return a.AttestationStatus == schema.AttestationAttested && a.Status == schema.StatusActive
	}, 20*time.Second, 200*time.Millisecond, "the simulated customer accepts; the check finalizes it: %+v", byTenant()[demoContosoTenant])
	t.Log(byTenant()[demoContosoTenant].AttestationMessage)
}

// TestSandboxCreateAgreementsButton: the admin deletes Tailspin's Pending agreement, then presses the
// template's Create Agreements button (which sets csp_createrequestedon). The event reaches the connector
// through the webhook intake; the agreement is created again, the others are left alone, and the template
// says what happened.
func TestSandboxCreateAgreementsButton(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	runService(t, sb.Service)

	agreements := func() map[dataverse.GUID]schema.Agreement {
		out := map[dataverse.GUID]schema.Agreement{}
		q := &dataverse.Query{Select: dataverse.Columns[schema.Agreement](), Filter: dataverse.LookupEq("csp_agreementtemplate", sb.mcaTemplate)}
		for raw, err := range dv.List(t.Context(), schema.SetAgreements, q) {
			require.NoError(t, err)
			var a schema.Agreement
			require.NoError(t, dataverse.Unmarshal(raw, &a))
			out[a.ProviderAccount.ID] = a
		}
		return out
	}
	require.Eventually(t, func() bool {
		j, err := jobRow(t.Context(), dv, provideraccounts.SyncJobName)
		return err == nil && !j.LastRunOn.IsZero() && j.LeaseOwner == ""
	}, 15*time.Second, 10*time.Millisecond, "the sync at start has finished")
	var tailspin dataverse.GUID
	var before map[dataverse.GUID]schema.Agreement
	require.Eventually(t, func() bool {
		for raw, err := range dv.List(t.Context(), schema.SetProviderAccounts, &dataverse.Query{Select: []string{"csp_provideraccountid"}, Filter: dataverse.Eq("csp_tenantid", demoTailspinTenant)}) {
			require.NoError(t, err)
			tailspin, _ = raw.GUID("csp_provideraccountid")
		}
		before = agreements()
		_, ok := before[tailspin]
		return ok
	}, 15*time.Second, 50*time.Millisecond, "the sync at start gives the auto-mapped Tailspin its agreement")

	admin := adminClient(t, sb)
	require.NoError(t, admin.Delete(t.Context(), schema.SetAgreements, before[tailspin].ID, nil))
	_, err := admin.Update(t.Context(), schema.SetAgreementTemplates, sb.mcaTemplate, dataverse.Row{"csp_createrequestedon": time.Now().UTC()}, nil)
	require.NoError(t, err)

	var msg string
	require.Eventually(t, func() bool {
		raw, err := dv.Get(t.Context(), schema.SetAgreementTemplates, sb.mcaTemplate, &dataverse.GetOptions{Select: []string{"csp_createmessage"}})
		require.NoError(t, err)
		msg = raw.String("csp_createmessage")
		return msg != ""
	}, 15*time.Second, 50*time.Millisecond, "the template says what the button did")
	assert.Contains(t, msg, "1 Pending agreement(s) created")
	assert.Contains(t, msg, fmt.Sprintf("%d mapped provider account(s) had one already", len(before)-1))

	after := agreements()
	require.Len(t, after, len(before), "one agreement per mapped provider account again, no doubles")
	again := after[tailspin]
	assert.NotEqual(t, before[tailspin].ID, again.ID, "Tailspin's agreement is a new row")
	assert.Equal(t, schema.AttestationNotStarted, again.AttestationStatus)
	assert.Equal(t, schema.AgreementPending, again.Status)
	assert.True(t, again.DateAgreed.IsZero(), "signed-by and date are left empty")
	assert.Empty(t, again.SignatoryEmail)
	for pa, a := range before {
		if pa != tailspin {
			assert.Equal(t, a.ID, after[pa].ID, "the other agreements are left alone")
		}
	}
}
