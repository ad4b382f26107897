package dataverse_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func TestChangeSetIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, nil)
	var b dataverse.Batch
	b.AddChangeSet(
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "first"}),
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": strings.Repeat("x", 201)}), // too long
	)
	results, err := c.ExecuteBatch(ctx, &b, nil)
	require.NoError(t, err)
	require.Len(t, results, 2)
	for _, r := range results {
		assert.True(t, dataverse.IsBadRequest(r.Err), r.Err)
	}
	assert.Empty(t, srv.Rows(schema.TableProvider), "the first create was rolled back")

	var ok dataverse.Batch
	ok.AddChangeSet(
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "a"}),
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "b"}),
	)
	results, err = c.ExecuteBatch(ctx, &ok, nil)
	require.NoError(t, err)
	for _, r := range results {
		require.NoError(t, r.Err)
		id, err := r.ID()
		require.NoError(t, err)
		_, exists := srv.Row(schema.TableProvider, id.String())
		assert.True(t, exists)
	}
}

func TestBatchReadsRowsAndQueriesInOneRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, nil)
	a, err := c.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "a", "csp_type": int(schema.ProviderManual)})
	require.NoError(t, err)
	_, err = c.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "b", "csp_type": int(schema.ProviderAutomatic)})
	require.NoError(t, err)
	srv.ResetRequests()

	var b dataverse.Batch
	b.Add(dataverse.GetOp(schema.SetProviders, a, &dataverse.GetOptions{Select: []string{"csp_name"}}),
		dataverse.QueryOp(schema.SetProviders, &dataverse.Query{Select: []string{"csp_name"}, Filter: dataverse.Eq("csp_type", schema.ProviderAutomatic)}),
		dataverse.QueryOp(schema.SetProviders, &dataverse.Query{Filter: dataverse.Eq("csp_name", "nobody")}))
	results, err := c.ExecuteBatch(ctx, &b, nil)
	require.NoError(t, err)
	row, err := results[0].Row()
	require.NoError(t, err)
	assert.Equal(t, "a", row["csp_name"])
	rows, err := results[1].Rows()
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, "b", rows[0]["csp_name"])
	rows, err = results[2].Rows()
	require.NoError(t, err)
	assert.Empty(t, rows)
	assert.Len(t, srv.Requests(), 4, "one $batch carrying three reads")

	_, err = dataverse.OpResult{Err: dataverse.ErrNotExecuted}.Rows()
	assert.ErrorIs(t, err, dataverse.ErrNotExecuted)
	bad := dataverse.QueryOp(schema.SetProviders, &dataverse.Query{Filter: dataverse.Eq("bad name", 1)})
	var b2 dataverse.Batch
	b2.Add(bad)
	_, err = c.ExecuteBatch(ctx, &b2, nil)
	assert.Error(t, err, "an invalid query is refused before sending")
}

func TestBatchStopsOrContinuesOnError(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ops := func() *dataverse.Batch {
		var b dataverse.Batch
		b.Add(
			dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "one"}),
			dataverse.UpdateOp(schema.SetProviders, uuid.New(), dataverse.Row{"csp_name": "missing"}, nil),
			dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "three"}),
		)
		return &b
	}
	t.Run("stop", func(t *testing.T) {
		c, srv := newEnv(t, nil)
		results, err := c.ExecuteBatch(ctx, ops(), nil)
		require.NoError(t, err)
		assert.NoError(t, results[0].Err)
		assert.True(t, dataverse.IsNotFound(results[1].Err), results[1].Err)
		assert.ErrorIs(t, results[2].Err, dataverse.ErrNotExecuted)
		assert.Len(t, srv.Rows(schema.TableProvider), 1)
	})
	t.Run("continue", func(t *testing.T) {
		c, srv := newEnv(t, nil)
		results, err := c.ExecuteBatch(ctx, ops(), &dataverse.BatchOptions{ContinueOnError: true})
		require.NoError(t, err)
		assert.NoError(t, results[0].Err)
		assert.True(t, dataverse.IsNotFound(results[1].Err))
		assert.NoError(t, results[2].Err)
		assert.Len(t, srv.Rows(schema.TableProvider), 2)
	})
	t.Run("reads in a batch", func(t *testing.T) {
		c, _ := newEnv(t, nil)
		id := createProvider(t, ctx, c, "read me")
		var b dataverse.Batch
		b.Add(dataverse.GetOp(schema.SetProviders, id, &dataverse.GetOptions{Select: []string{"csp_name"}}))
		results, err := c.ExecuteBatch(ctx, &b, nil)
		require.NoError(t, err)
		row, err := results[0].Row()
		require.NoError(t, err)
		assert.Equal(t, "read me", row.String("csp_name"))
	})
}

func TestExecuteManyUsesFewRequests(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, &dataverse.ClientOptions{BatchSize: 1000})
	provider := createProvider(t, ctx, c, "Partner Center")
	ops := make([]dataverse.Op, 2500)
	for i := range ops {
		ops[i] = dataverse.UpsertOp(schema.SetProviderAccounts,
			dataverse.Key{dataverse.LookupValue("csp_provider"): provider, "csp_tenantid": fmt.Sprintf("tenant-%04d", i)},
			dataverse.Row{"csp_name": fmt.Sprintf("Customer %d", i)}, &dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableProviderAccount)})
	}
	// One bad row must not sink the others.
	ops[1234] = dataverse.UpsertOp(schema.SetProviderAccounts, dataverse.Key{dataverse.LookupValue("csp_provider"): provider, "csp_tenantid": "bad"},
		dataverse.Row{"csp_name": strings.Repeat("x", 300)}, &dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableProviderAccount)})
	srv.ResetRequests()
	results, err := c.ExecuteMany(ctx, ops, nil)
	require.NoError(t, err)
	require.Len(t, results, len(ops))
	failed := 0
	ids := map[int]dataverse.GUID{}
	for i, r := range results {
		if r.Err != nil {
			failed++
			assert.Equal(t, 1234, i)
			assert.True(t, dataverse.IsBadRequest(r.Err))
			assert.False(t, r.Created())
			continue
		}
		// The id comes from the representation: OData-EntityId names the row by its key values.
		id, err := r.ID()
		require.NoError(t, err)
		row, ok := srv.Row(schema.TableProviderAccount, id.String())
		require.True(t, ok, "operation %d names row %s", i, id)
		assert.Equal(t, fmt.Sprintf("tenant-%04d", i), row["csp_tenantid"])
		assert.True(t, r.Created(), "operation %d created its row", i)
		ids[i] = id
	}
	assert.Equal(t, 1, failed)
	assert.Len(t, srv.Rows(schema.TableProviderAccount), 2499)
	batches := countRequests(srv, http.MethodPost, "$batch")
	assert.Equal(t, 3, batches, "2500 operations at 1000 per batch")

	// Running the same upserts again changes rows in place: still 2499 rows, the same ids, none created.
	results, err = c.ExecuteMany(ctx, ops, nil)
	require.NoError(t, err)
	assert.Len(t, srv.Rows(schema.TableProviderAccount), 2499)
	for i, r := range results {
		if i == 1234 {
			continue
		}
		id, err := r.ID()
		require.NoError(t, err)
		assert.Equal(t, ids[i], id)
		assert.False(t, r.Created(), "operation %d updated its row", i)
	}
}

func TestExecuteManySplitsABatchThatTimedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{BatchSize: 8, MaxRetries: 1})
		ops := make([]dataverse.Op, 8)
		for i := range ops {
			ops[i] = dataverse.UpsertOp(schema.SetAccounts, dataverse.Key{"accountid": uuid.New()}, dataverse.Row{"name": fmt.Sprint(i)}, &dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableAccount)})
		}
		// The full batch of 8 times out (twice: the try and its retry); the halves go through.
		srv.Inject(dataversetest.Fault{Path: "$batch", Status: http.StatusGatewayTimeout, Times: 2})
		results, err := c.ExecuteMany(t.Context(), ops, nil)
		require.NoError(t, err)
		for _, r := range results {
			assert.NoError(t, r.Err)
		}
		assert.Len(t, srv.Rows(schema.TableAccount), 8)
		assert.Equal(t, 4, countRequests(srv, http.MethodPost, "$batch"))
	})
}
