package schema

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
)

// TestAColumnAddedToATableShowsOnItsForm: the forms are generated from the tables, so a column declared
// on a table is planned onto its form (and a column the connector owns into its section) by the next
// install, and installing it twice finds nothing more to do.
func TestAColumnAddedToATableShowsOnItsForm(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: StandardTables()})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
	require.NoError(t, err)
	plan, err := c.PlanSchema(ctx, Schema())
	require.NoError(t, err)
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	next := Schema()
	for i, table := range next.Tables {
		if table.LogicalName == TableLicenseChangeLog {
			next.Tables[i].Columns = append(next.Tables[i].Columns,
				dataverse.Column{LogicalName: "csp_note", DisplayName: "Note", Type: dataverse.TypeMemo, MaxLength: 2000},
				owned(whole("csp_retries", "Retries")))
		}
	}
	next.App = app(next)
	plan, err = c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"add column csp_licensechangelog.csp_note (Memo, 2000 characters)",
		"add column csp_licensechangelog.csp_retries (Integer)",
		"publish customizations of csp_licensechangelog",
		"update main form csp_licensechangelog: License Change Log: formxml changed",
		"publish forms and views of csp_licensechangelog",
	}, plan.Summaries())
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	form, ok := srv.Row("systemform", dataverse.FormID(TableLicenseChangeLog, "License Change Log").String())
	require.True(t, ok)
	assert.Contains(t, form["formxml"], `<control id="csp_note" classid="{E0DECE4B-6FC8-4a8f-A065-082708572369}" datafieldname="csp_note" disabled="false" />`)
	assert.Contains(t, form["formxml"], `<control id="csp_retries" classid="{C6D124CA-7EDA-4a60-AEA9-7FB8D318B68F}" datafieldname="csp_retries" disabled="true" />`)

	again, err := c.PlanSchema(ctx, next)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
}
