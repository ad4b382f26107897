package dataverse_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// blankEnv is an environment with only the standard tables, as a new Dataverse environment has.
func blankEnv(t *testing.T) (*dataverse.Client, *dataversetest.Server) {
	t.Helper()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.StandardTables()})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
	require.NoError(t, err)
	return c, srv
}

func writes(srv *dataversetest.Server) []dataversetest.Request {
	var out []dataversetest.Request
	for _, r := range srv.Requests() {
		if r.IsWrite() {
			out = append(out, r)
		}
	}
	return out
}

func TestInstallCreatesTheSchemaAndASecondRunChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()

	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.Empty(t, plan.Problems)
	assert.Empty(t, writes(srv), "planning only reads")
	summaries := make([]string, len(plan.Changes))
	for i, ch := range plan.Changes {
		summaries[i] = ch.Summary
	}
	assert.Equal(t, "create publisher cspconnector (prefix csp, option value prefix 41870)", summaries[0])
	assert.Equal(t, "create solution CSPConnector", summaries[1])
	assert.Contains(t, summaries, "create table csp_licensechangelog (License Change Log), entity set csp_licensechangelogs")
	assert.Contains(t, summaries, "add lookup csp_provideraccount.csp_provider → csp_provider")
	assert.Contains(t, summaries, "create table csp_notification (Connector Notification), entity set csp_notifications", "the notification outbox")
	assert.Contains(t, summaries, "add key csp_provideraccount_tenant on csp_provideraccount (csp_provider, csp_tenantid)")
	assert.Contains(t, summaries, `add status reason 418700102 "Archived" to csp_licensechangelog (state 1)`)
	// Order: every table before any lookup (a lookup needs its target), keys after their columns.
	lastTable := slices.IndexFunc(summaries, func(s string) bool { return strings.HasPrefix(s, "add lookup") })
	for i, s := range summaries {
		if strings.HasPrefix(s, "create table") {
			assert.Less(t, i, lastTable)
		}
	}
	// The tables' customizations are published once, after every change to the tables; the app follows, and
	// its publish is the last step.
	publish := slices.IndexFunc(summaries, func(s string) bool { return strings.HasPrefix(s, "publish customizations of ") })
	require.GreaterOrEqual(t, publish, 0)
	for i, s := range summaries {
		for _, tableChange := range []string{"create table", "add column", "add lookup", "add key", "add option", "add status reason"} {
			if strings.HasPrefix(s, tableChange) {
				assert.Less(t, i, publish, s)
			}
		}
	}
	assert.Less(t, publish, slices.Index(summaries, "create sitemap csp_CSPConnector (3 areas, 10 subareas)"))
	assert.Equal(t, "publish app csp_CSPConnector and its sitemap", summaries[len(summaries)-1])

	var progress []int
	require.NoError(t, c.ApplySchema(ctx, plan, func(i int, _ dataverse.Change) { progress = append(progress, i) }))
	assert.Len(t, progress, len(plan.Changes))

	// Every declared table, column, key and status reason now exists as declared.
	for _, table := range s.Tables {
		if table.Standard {
			continue
		}
		got, ok := srv.Table(table.LogicalName)
		require.True(t, ok, table.LogicalName)
		assert.Equal(t, table.EntitySetName, got.EntitySetName)
		for _, col := range table.AllColumns() {
			have, ok := got.Column(col.LogicalName)
			if assert.True(t, ok, "%s.%s", table.LogicalName, col.LogicalName) {
				assert.Equal(t, col.Type, have.Type, "%s.%s", table.LogicalName, col.LogicalName)
				assert.Equal(t, col.Options, have.Options, "%s.%s", table.LogicalName, col.LogicalName)
				assert.Equal(t, col.Target, have.Target, "%s.%s", table.LogicalName, col.LogicalName)
			}
		}
		assert.ElementsMatch(t, table.AllStatusReasons(), got.AllStatusReasons())
		assert.Len(t, got.Keys, len(table.Keys))
	}

	// The second run: an empty plan, and nothing but reads on the wire.
	srv.ResetRequests()
	again, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.True(t, again.Empty(), again.String())
	require.NoError(t, c.ApplySchema(ctx, again, nil))
	assert.Empty(t, writes(srv), "a second install must not write")
	for _, r := range srv.Requests() {
		assert.Equal(t, http.MethodGet, r.Method)
	}
	assert.Contains(t, again.String(), "Nothing to change")
}

func TestInstallAddsWhatIsMissingAndReportsWhatItWillNotChange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := blankEnv(t)
	s := schema.Schema()
	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	// A newer version of the schema adds an option, a column, and changes a column's type.
	next := schema.Schema()
	for i, table := range next.Tables {
		if table.LogicalName != schema.TableLicenseChangeLog {
			continue
		}
		for j, col := range table.Columns {
			switch col.LogicalName {
			case "csp_changetype":
				next.Tables[i].Columns[j].Options = append(slices.Clone(col.Options), dataverse.Option{Value: 418700099, Label: "Transfer"})
			case "csp_pcorderid":
				next.Tables[i].Columns[j].Type = dataverse.TypeInteger
			}
		}
		next.Tables[i].Columns = append(next.Tables[i].Columns, dataverse.Column{LogicalName: "csp_note", DisplayName: "Note", Type: dataverse.TypeMemo, MaxLength: 2000})
	}
	next.App = nil // the tables alone: the app's forms follow their columns (TestInstallUpdatesTheFormOfATableThatGainsAColumn)
	srv.ResetRequests()
	plan, err = c.PlanSchema(ctx, next)
	require.NoError(t, err)
	var summaries []string
	for _, ch := range plan.Changes {
		summaries = append(summaries, ch.Summary)
	}
	assert.Equal(t, []string{
		"add column csp_licensechangelog.csp_note (Memo, 2000 characters)",
		`add option 418700099 "Transfer" to csp_licensechangelog.csp_changetype`,
		"publish customizations of csp_licensechangelog",
	}, summaries)
	assert.Equal(t, []string{"column csp_licensechangelog.csp_pcorderid is String in the environment, the schema declares Integer"}, plan.Problems)
	assert.Contains(t, plan.String(), "! column csp_licensechangelog.csp_pcorderid")
	assert.Empty(t, writes(srv))

	require.NoError(t, c.ApplySchema(ctx, plan, nil))
	got, _ := srv.Table(schema.TableLicenseChangeLog)
	col, ok := got.Column("csp_changetype")
	require.True(t, ok)
	assert.Contains(t, col.Options, dataverse.Option{Value: 418700099, Label: "Transfer"})
	_, ok = got.Column("csp_note")
	assert.True(t, ok)
}

func TestInstallReportsAMissingStandardTable(t *testing.T) {
	t.Parallel()
	srv, err := dataversetest.NewServer(dataversetest.Options{}) // no account, contact, appnotification
	require.NoError(t, err)
	defer srv.Close()
	c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
	require.NoError(t, err)
	plan, err := c.PlanSchema(t.Context(), schema.Schema())
	require.NoError(t, err)
	assert.Contains(t, plan.Problems, "standard table account is missing from the environment")
}

func TestInstallRetriesWhileAnotherCustomizationRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		srv := dataversetest.New(dataversetest.Options{Tables: schema.StandardTables()})
		c, err := dataverse.NewClient("http://dataverse.test", nil, &dataverse.ClientOptions{HTTPClient: srv.InMemoryClient()})
		require.NoError(t, err)
		plan, err := c.PlanSchema(ctx, schema.Schema())
		require.NoError(t, err)
		srv.Inject(dataversetest.Fault{Method: http.MethodPost, Path: "EntityDefinitions", Status: http.StatusBadRequest,
			Code: dataverse.CodeCustomizationLock, Message: "Cannot start another [Import] because there is a previous [Import] running.", Times: 2})
		start := time.Now()
		require.NoError(t, c.ApplySchema(ctx, plan, nil))
		assert.Equal(t, 15*time.Second, time.Since(start), "waits of 5 s and 10 s")
		_, ok := srv.Table(schema.TableProvider)
		assert.True(t, ok)
	})
}

func TestSchemaValidationReportsEveryProblem(t *testing.T) {
	t.Parallel()
	s := schema.Schema()
	s.Tables = append(s.Tables, dataverse.Table{
		LogicalName: "other_thing", EntitySetName: "csp_providers",
		PrimaryName: dataverse.Column{LogicalName: "other_name", Type: dataverse.TypeString, MaxLength: 10},
		Columns: []dataverse.Column{
			{LogicalName: "csp_x", Type: dataverse.TypeLookup, Target: "nowhere"},
			{LogicalName: "csp_y", Type: dataverse.TypeChoice, Options: []dataverse.Option{{Value: 1, Label: "one"}}},
			{LogicalName: "csp_Z", Type: dataverse.TypeString},
		},
		Keys: []dataverse.AlternateKey{{SchemaName: "k", Columns: []string{"csp_missing"}}},
	})
	err := s.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"entity set csp_providers declared twice",
		"table other_thing does not start with csp_",
		"column other_thing.other_name does not start with csp_",
		"lookup other_thing.csp_x points at undeclared table nowhere",
		"choice other_thing.csp_y option 1 (one) is outside the publisher's range 418700000–418709999",
		"column other_thing.csp_Z: logical names are lowercase",
		"column other_thing.csp_Z needs a MaxLength",
		"key k of other_thing names undeclared column csp_missing",
	} {
		assert.ErrorContains(t, err, want)
	}
}
