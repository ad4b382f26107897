package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// TestOnboardingFromAnEmptyEnvironment: `connector dataverse install` points at the next steps; `connector
// setup` before the consent says to run it; after `connector pc consent`, `setup --dry-run` lists the two
// rows and writes nothing, `setup` creates the Microsoft Partner Center provider and its MCA template with
// the template id Partner Center's metadata gives (app+user, through the consented refresh token), and a
// second run changes nothing.
func TestOnboardingFromAnEmptyEnvironment(t *testing.T) {
	t.Parallel()
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.StandardTables()})
	require.NoError(t, err)
	defer dvs.Close()
	pcs, err := partnercentertest.NewServer(partnercentertest.Options{})
	require.NoError(t, err)
	defer pcs.Close()
	dvEnv := map[string]string{"DATAVERSE_URL": dvs.URL, "DATAVERSE_AUTH": "none"}
	ctx := t.Context()

	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"dataverse", "install"}, getenv(dvEnv), nil, &out, io.Discard))
	assert.Contains(t, out.String(), "Next: connector pc consent (once, as a partner Admin agent), then connector setup")

	c := startConsentWith(t, pcs, dvEnv)
	setup := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"setup"}, args...), getenv(c.env), nil, &out, io.Discard)
		return out.String(), err
	}
	_, err = setup("--partner-model", "direct-bill")
	require.Error(t, err, "no refresh token yet")
	assert.Contains(t, err.Error(), "does not exist yet: run connector pc consent first")

	status, _ := getPage(t, c.authURL.String())
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, c.wait(t))

	_, err = setup()
	assert.ErrorContains(t, err, "--partner-model direct-bill, indirect-provider or indirect-reseller", "the provider row needs a partner model")
	_, err = setup("--partner-model", "cash")
	assert.ErrorContains(t, err, `partner model "cash" is not one of`)

	dvs.ResetRequests()
	text, err := setup("--partner-model", "indirect-provider", "--dry-run")
	require.NoError(t, err)
	assert.Contains(t, text, `would create  csp_provider "Microsoft Partner Center": type Automatic, partner model Indirect provider`)
	assert.Contains(t, text, `would create  csp_agreementtemplate "Microsoft Customer Agreement": template id `+partnercentertest.MCATemplateID+" from Partner Center's agreement metadata")
	assert.Contains(t, text, "Dry run: nothing was changed.")
	for _, r := range dvs.Requests() {
		assert.False(t, r.IsWrite(), "dry run wrote %s %s", r.Method, r.Path)
	}

	text, err = setup("--partner-model", "indirect-provider")
	require.NoError(t, err)
	assert.Contains(t, text, `created       csp_provider "Microsoft Partner Center"`)
	assert.Contains(t, text, `created       csp_agreementtemplate "Microsoft Customer Agreement"`)

	dv, err := dataverse.NewClient(dvs.URL, nil, nil)
	require.NoError(t, err)
	var providers []schema.Provider
	for raw, err := range dv.List(ctx, schema.SetProviders, &dataverse.Query{Select: dataverse.Columns[schema.Provider]()}) {
		require.NoError(t, err)
		var p schema.Provider
		require.NoError(t, dataverse.Unmarshal(raw, &p))
		providers = append(providers, p)
	}
	require.Len(t, providers, 1)
	assert.Equal(t, schema.ProviderAutomatic, providers[0].Type)
	assert.Equal(t, schema.PartnerIndirectProvider, providers[0].PartnerModel)
	assert.True(t, providers[0].AutoMatch)
	var templates []schema.AgreementTemplate
	for raw, err := range dv.List(ctx, schema.SetAgreementTemplates, &dataverse.Query{Select: dataverse.Columns[schema.AgreementTemplate]()}) {
		require.NoError(t, err)
		var tpl schema.AgreementTemplate
		require.NoError(t, dataverse.Unmarshal(raw, &tpl))
		templates = append(templates, tpl)
	}
	require.Len(t, templates, 1)
	assert.Equal(t, partnercentertest.MCATemplateID, templates[0].TemplateID, "Microsoft's id, from the metadata")
	assert.Equal(t, schema.AgreementMicrosoftCustomerAgreement, templates[0].AgreementType)
	assert.Equal(t, providers[0].ID, templates[0].Provider.ID)
	assert.Equal(t, "https://aka.ms/customeragreement", templates[0].AgreementLink)

	// Again: nothing to change, nothing written (the partner model is not needed once the row exists).
	dvs.ResetRequests()
	text, err = setup()
	require.NoError(t, err)
	assert.Contains(t, text, "Nothing to change.")
	for _, r := range dvs.Requests() {
		assert.False(t, r.IsWrite(), "a second setup wrote %s %s", r.Method, r.Path)
	}
	var rep struct {
		Steps []struct{ Table, Action, ID string }
	}
	text, err = setup("-o", "json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(text), &rep), text)
	require.Len(t, rep.Steps, 2)
	for _, s := range rep.Steps {
		assert.Equal(t, "exists", s.Action, s.Table)
		assert.NotEmpty(t, s.ID)
	}
}
