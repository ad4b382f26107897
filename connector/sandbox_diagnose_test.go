package connector

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/request"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestSandboxDiagnoseRequest: an admin's Diagnose request on a failed license change, its subscription
// and an agreement is answered through the event path: the row's Diagnosis holds the walk `connector
// diagnose` prints (the same text), the request is emptied, and nothing else about the row changes (the
// failed change is not provisioned again).
func TestSandboxDiagnoseRequest(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	runService(t, sb.Service)

	capped := sb.DemoChanges[demoChangeSandboxCap]
	var before schema.LicenseChangeLog
	require.Eventually(t, func() bool {
		before = readLCL(t, dv, capped)
		return before.ProvisioningStatus == schema.ProvisioningFailed
	}, 15*time.Second, 20*time.Millisecond, "the first sweep fails the capped change")
	sub := before.Subscription.ID

	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	ask := func(set string, id dataverse.GUID) {
		_, err := admin.Update(t.Context(), set, id, dataverse.Row{request.DiagnoseColumn: time.Now().UTC().Truncate(time.Second).Add(time.Second)}, nil)
		require.NoError(t, err)
	}
	answered := func(set string, id dataverse.GUID) string {
		t.Helper()
		var row dataverse.Row
		require.Eventually(t, func() bool {
			row, err = dv.Get(t.Context(), set, id, &dataverse.GetOptions{Select: []string{request.DiagnoseColumn, request.DiagnosisColumn}})
			require.NoError(t, err)
			_, pending := row.Time(request.DiagnoseColumn)
			return !pending && row.String(request.DiagnosisColumn) != ""
		}, 15*time.Second, 20*time.Millisecond, "%s(%s): the request is answered", set, id)
		return row.String(request.DiagnosisColumn)
	}

	ask(schema.SetLicenseChangeLogs, capped)
	got := answered(schema.SetLicenseChangeLogs, capped)
	want, err := sb.Service.Prov.Diagnose(t.Context(), capped)
	require.NoError(t, err)
	assert.Equal(t, want.Text(), got, "the same text as connector diagnose lcl")
	assert.Contains(t, got, "Checks (rule number, or - for a preliminary)")
	after := readLCL(t, dv, capped)
	assert.Equal(t, schema.ProvisioningFailed, after.ProvisioningStatus, "Diagnose does not provision")
	assert.Equal(t, before.Attempts, after.Attempts)
	assert.Equal(t, before.ProvisioningMessage, after.ProvisioningMessage)
	assert.Equal(t, before.SystemMessage, after.SystemMessage)

	ask(schema.SetSubscriptions, sub)
	gotSub := answered(schema.SetSubscriptions, sub)
	wantSub, err := sb.Service.Prov.DiagnoseSubscription(t.Context(), sub)
	require.NoError(t, err)
	assert.Equal(t, wantSub.Text(), gotSub, "the same text as connector diagnose subscription")
	assert.Contains(t, gotSub, "License changes, oldest first")

	require.NotZero(t, sb.contosoAgreement)
	var agreementBefore schema.Agreement
	r, err := dv.Get(t.Context(), schema.SetAgreements, sb.contosoAgreement, &dataverse.GetOptions{Select: dataverse.Columns[schema.Agreement]()})
	require.NoError(t, err)
	require.NoError(t, dataverse.Unmarshal(r, &agreementBefore))
	ask(schema.SetAgreements, sb.contosoAgreement)
	gotAgreement := answered(schema.SetAgreements, sb.contosoAgreement)
	wantAgreement, err := sb.Service.Agreements.Diagnose(t.Context(), sb.contosoAgreement)
	require.NoError(t, err)
	assert.Equal(t, wantAgreement.Text(), gotAgreement, "the same text as connector diagnose agreement")
	var agreementAfter schema.Agreement
	r, err = dv.Get(t.Context(), schema.SetAgreements, sb.contosoAgreement, &dataverse.GetOptions{Select: dataverse.Columns[schema.Agreement]()})
	require.NoError(t, err)
	require.NoError(t, dataverse.Unmarshal(r, &agreementAfter))
	assert.Equal(t, agreementBefore.AttestationStatus, agreementAfter.AttestationStatus, "Diagnose sends no link")
	assert.Equal(t, agreementBefore.AttestationMessage, agreementAfter.AttestationMessage)
}
