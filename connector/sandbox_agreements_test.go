package connector

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		_, err := sb.Service.Jobs.RunNow(t.Context(), AttestationCheckJob, schema.TriggerRunNow)
		if err != nil {
			require.ErrorIs(t, err, ErrLeaseHeld)
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
