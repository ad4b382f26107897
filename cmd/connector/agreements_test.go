package main

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// TestAgreementsCommands: `connector agreements create --template`, `connector agreements check` and
// `connector diagnose agreement` against the sandbox (its own service not running).
func TestAgreementsCommands(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	ctx := t.Context()
	dv := ps.sb.DataverseClient
	var template, contosoAgreement dataverse.GUID
	for raw, err := range dv.List(ctx, schema.SetAgreementTemplates, &dataverse.Query{Select: []string{"csp_agreementtemplateid"}}) {
		require.NoError(t, err)
		template, _ = raw.GUID("csp_agreementtemplateid")
	}
	for raw, err := range dv.List(ctx, schema.SetAgreements, &dataverse.Query{Select: []string{"csp_agreementid"}, Filter: dataverse.LookupEq("csp_provideraccount", ps.account)}) {
		require.NoError(t, err)
		contosoAgreement, _ = raw.GUID("csp_agreementid")
	}
	require.NotEqual(t, dataverse.GUID{}, template)
	require.NotEqual(t, dataverse.GUID{}, contosoAgreement)

	// The templates, with what --template accepts.
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"agreements", "templates"}, ps.env, nil, &out, io.Discard))
	assert.Regexp(t, `(?m)^NAME\s+TEMPLATE ID\s+TYPE\s+ACTIVE\s+ROW ID$`, out.String())
	assert.Regexp(t, `(?m)^Microsoft Customer Agreement\s+`+partnercentertest.MCATemplateID+`\s+Microsoft Customer Agreement\s+yes\s+`+template.String()+`$`, out.String())
	out.Reset()
	require.NoError(t, run(ctx, []string{"agreements", "templates", "-o", "json"}, ps.env, nil, &out, io.Discard))
	var list struct{ Templates []map[string]any }
	require.NoError(t, json.Unmarshal(out.Bytes(), &list), out.String())
	require.Len(t, list.Templates, 1)
	assert.Equal(t, map[string]any{"name": "Microsoft Customer Agreement", "templateId": partnercentertest.MCATemplateID, "type": "Microsoft Customer Agreement",
		"active": true, "id": template.String()}, list.Templates[0])

	// Fabrikam is mapped but has no agreement yet; Contoso has one. The template by its name...
	out.Reset()
	require.NoError(t, run(ctx, []string{"agreements", "create", "--template", "microsoft customer agreement"}, ps.env, nil, &out, io.Discard))
	assert.Contains(t, out.String(), "1 Pending agreement(s) created; 1 mapped provider account(s) had one already.")
	// ... by Microsoft's template id, and by its row id: the same template.
	for _, name := range []string{partnercentertest.MCATemplateID, template.String()} {
		out.Reset()
		require.NoError(t, run(ctx, []string{"agreements", "create", "--template", name}, ps.env, nil, &out, io.Discard))
		assert.Contains(t, out.String(), "0 Pending agreement(s) created; 2 mapped provider account(s) had one already.")
	}
	err := run(ctx, []string{"agreements", "create", "--template", "Nope"}, ps.env, nil, io.Discard, io.Discard)
	assert.ErrorContains(t, err, `no agreement template is named "Nope"`)

	out.Reset()
	require.NoError(t, run(ctx, []string{"agreements", "check"}, ps.env, nil, &out, io.Discard))
	assert.Contains(t, out.String(), "Attestation Check: succeeded")
	assert.Contains(t, out.String(), "2 agreement(s) waiting on the customer submitted for checking")

	out.Reset()
	require.NoError(t, run(ctx, []string{"diagnose", "agreement", contosoAgreement.String()}, ps.env, nil, &out, io.Discard))
	t.Log(out.String())
	assert.Contains(t, out.String(), "Status              Pending")
	assert.Contains(t, out.String(), "accepted directly: false")
	assert.Contains(t, out.String(), "Next: ")

	out.Reset()
	require.NoError(t, run(ctx, []string{"diagnose", "agreement", contosoAgreement.String(), "-o", "json"}, ps.env, nil, &out, io.Discard))
	var d map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &d))
	assert.Equal(t, "Pending", d["status"])
	assert.Equal(t, ps.tenant, d["tenantId"])
}

// TestAgreementsCheckKeepsTheSandboxSchedule: the sandbox's service writes the Attestation Check's row with
// its 30-second schedule; `connector agreements check` (whose own default is an hour) runs it and the
// row still says 30s, with the next run 30 seconds after this one.
func TestAgreementsCheckKeepsTheSandboxSchedule(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	ctx := t.Context()
	require.NoError(t, ps.sb.Service.Jobs.Ensure(ctx), "the sandbox's service creates the job rows when it starts")
	read := func() schema.Job {
		r, err := ps.sb.DataverseClient.GetByKey(ctx, schema.SetJobs, dataverse.Key{"csp_name": agreements.AttestationCheckJob}, &dataverse.GetOptions{Select: dataverse.Columns[schema.Job]()})
		require.NoError(t, err)
		var j schema.Job
		require.NoError(t, dataverse.Unmarshal(r, &j))
		return j
	}
	require.Equal(t, "30s", read().Schedule)

	require.NoError(t, run(ctx, []string{"agreements", "check"}, ps.env, nil, io.Discard, io.Discard))
	job := read()
	assert.Equal(t, "30s", job.Schedule)
	assert.Equal(t, 30*time.Second, job.NextRunOn.Sub(job.LastRunOn), "still every 30 seconds")
	assert.NotContains(t, job.Message, "schedule")
}
