package dataverse_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestInstallCommands: the installer creates the commands' script as a web resource (published, and served
// at /WebResources/<name> as Dynamics serves it) and one appaction per button, calling its function with
// the form's context; a second install changes nothing; a changed script, label or location is updated
// (the location, which Dataverse fixes at creation, by recreating the button).
func TestInstallCommands(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()

	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	summaries := plan.Summaries()
	assert.Contains(t, summaries, "create web resource csp_/scripts/commands.js (CSP Connector commands, "+strconv.Itoa(len(schema.CommandsScriptContent()))+" bytes)")
	assert.Contains(t, summaries, "publish web resources csp_/scripts/commands.js")
	assert.Contains(t, summaries, `create command csp_licensechangelog_retry: "Retry" on the form of csp_licensechangelog, calls CSPConnector.retry`)
	for _, cmd := range s.App.Commands {
		assert.True(t, slices.ContainsFunc(summaries, func(s string) bool { return strings.HasPrefix(s, "create command "+cmd.UniqueName+":") }), cmd.UniqueName)
	}
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	var script dataverse.Row
	for row, err := range c.List(ctx, "webresourceset", &dataverse.Query{Filter: dataverse.Eq("name", schema.CommandsScript)}) {
		require.NoError(t, err)
		script = row
	}
	require.NotNil(t, script)
	assert.Equal(t, base64.StdEncoding.EncodeToString(schema.CommandsScriptContent()), script.String("content"))
	n, _ := script.Int("webresourcetype")
	assert.EqualValues(t, 3, n, "Script (JScript)")
	scriptID, _ := script.GUID("webresourceid")

	res, err := http.Get(srv.URL + "/WebResources/" + schema.CommandsScript)
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Equal(t, schema.CommandsScriptContent(), body)

	var actions []dataverse.Row
	for row, err := range c.List(ctx, "appactions", nil) {
		require.NoError(t, err)
		actions = append(actions, row)
	}
	require.Len(t, actions, len(s.App.Commands))
	retry := actions[slices.IndexFunc(actions, func(r dataverse.Row) bool { return r.String("uniquename") == "csp_licensechangelog_retry" })]
	assert.Equal(t, "Retry", retry.String("buttonlabeltext"))
	assert.Equal(t, "csp_licensechangelog", retry.String("contextvalue"))
	assert.Equal(t, "CSPConnector.retry", retry.String("onclickeventjavascriptfunctionname"))
	assert.Equal(t, `[{"type":5}]`, retry.String("onclickeventjavascriptparameters"), "PrimaryControl: the form's context")
	for col, want := range map[string]int64{"context": 1, "location": 0, "onclickeventtype": 2, "type": 0} {
		got, _ := retry.Int(col)
		assert.Equal(t, want, got, col)
	}
	wr, _ := retry.GUID("_onclickeventjavascriptwebresourceid_value")
	assert.Equal(t, scriptID, wr)

	again, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())

	// The declaration changes: a new script, a new label, a button moved to the grid.
	changed := schema.Schema()
	changed.App.WebResources[0].Content = append(slices.Clone(changed.App.WebResources[0].Content), "\n// v2\n"...)
	i := slices.IndexFunc(changed.App.Commands, func(c dataverse.Command) bool { return c.UniqueName == "csp_job_runnow" })
	changed.App.Commands[i].Label = "Run now"
	j := slices.IndexFunc(changed.App.Commands, func(c dataverse.Command) bool { return c.UniqueName == "csp_provider_verifyconnectivity" })
	changed.App.Commands[j].Location = dataverse.CommandOnMainGrid
	plan, err = c.PlanSchema(ctx, changed)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"update web resource csp_/scripts/commands.js: content changed",
		"publish web resources csp_/scripts/commands.js",
		`recreate command csp_provider_verifyconnectivity: "Verify Connectivity" on the main grid of csp_provider, calls CSPConnector.verifyConnectivity (its table or location changed)`,
		"update command csp_job_runnow: buttonlabeltext, buttontooltiptitle changed",
	}, plan.Summaries())
	require.NoError(t, c.ApplySchema(ctx, plan, nil))
	again, err = c.PlanSchema(ctx, changed)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
	res, err = http.Get(srv.URL + "/WebResources/" + schema.CommandsScript)
	require.NoError(t, err)
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	assert.True(t, strings.HasSuffix(string(body), "// v2\n"), "the new script is served")
}

// TestCommandProblems: a command naming a table, column, script or function that does not exist is a
// problem of the schema, reported with the others.
func TestCommandProblems(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	s.App.Commands = append(s.App.Commands,
		dataverse.Command{UniqueName: "csp_nosuch_go", Label: "Go", Table: "csp_nosuch", WebResource: schema.CommandsScript, Function: "CSPConnector.retry"},
		dataverse.Command{UniqueName: "csp_job_typo", Label: "Typo", Table: schema.TableJob, WebResource: schema.CommandsScript, Function: "CSPConnector.runNow", Columns: []string{"csp_runrequestdon"}},
		dataverse.Command{UniqueName: "csp_job_missing", Label: "Missing", Table: schema.TableJob, WebResource: schema.CommandsScript, Function: "CSPConnector.explode"},
		dataverse.Command{UniqueName: "csp_job_noscript", Label: "No script", Table: schema.TableJob, WebResource: "csp_/scripts/nosuch.js", Function: "CSPConnector.runNow"},
	)
	err := s.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"command csp_nosuch_go is on table csp_nosuch, which the schema does not declare",
		"command csp_job_typo writes csp_job.csp_runrequestdon, which the schema does not declare",
		"command csp_job_missing calls CSPConnector.explode, which script csp_/scripts/commands.js does not define",
		`command csp_job_noscript calls web resource "csp_/scripts/nosuch.js", which the app does not declare`,
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NoError(t, schema.Schema().Validate(), "the shipped declaration has none")
}
