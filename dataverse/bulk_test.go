package dataverse_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// counted is what the simulator's log says service protection counts: a request outside a $batch is one,
// a $batch is one per operation (a bulk message is one request whatever its rows).
func counted(srv *dataversetest.Server) (requests, writes, bulk int) {
	for _, r := range srv.Requests() {
		switch {
		case r.InBatch:
			if r.IsWrite() {
				writes++
			}
		case r.Path == "$batch":
			requests += r.Operations
		default:
			requests++
			if strings.Contains(r.Path, "/Microsoft.Dynamics.CRM.") {
				bulk++
				writes++
			} else if r.IsWrite() {
				writes++
			}
		}
	}
	return requests, writes, bulk
}

func tenantKey(provider dataverse.GUID, tenant string) dataverse.Key {
	return dataverse.Key{dataverse.LookupValue("csp_provider"): provider, "csp_tenantid": tenant}
}

// accountUpserts are upserts of provider accounts that carry their key's lookup as a bind, as the provider
// account sync writes them.
func accountUpserts(provider dataverse.GUID, from, to int) []dataverse.Op {
	var ops []dataverse.Op
	for i := from; i < to; i++ {
		row := dataverse.Row{"csp_name": fmt.Sprintf("Customer %d", i), "csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, provider)}
		ops = append(ops, dataverse.UpsertOp(schema.SetProviderAccounts, tenantKey(provider, fmt.Sprintf("tenant-%04d", i)), row,
			&dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableProviderAccount)}))
	}
	return ops
}

func TestWriteBatchSendsBulkMessagesAndKeepsEachResult(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, bulk := range []bool{true, false} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			t.Parallel()
			opts := &dataverse.ClientOptions{Tables: schema.Schema().Tables}
			if !bulk {
				opts.BulkSize = -1
			}
			c, srv := newEnv(t, opts)
			provider := createProvider(t, ctx, c, "Partner Center")
			// 250 new rows by upsert, then 20 plain updates of some of them.
			results, err := c.WriteBatch(ctx, accountUpserts(provider, 0, 250))
			require.NoError(t, err)
			ids := make([]dataverse.GUID, 250)
			for i, r := range results {
				require.NoError(t, r.Err, "op %d", i)
				id, err := r.ID()
				require.NoError(t, err, "op %d", i)
				row, ok := srv.Row(schema.TableProviderAccount, id.String())
				require.True(t, ok, "op %d names row %s", i, id)
				assert.Equal(t, fmt.Sprintf("tenant-%04d", i), row["csp_tenantid"])
				assert.Equal(t, fmt.Sprintf("Customer %d", i), row["csp_name"])
				assert.Equal(t, provider.String(), row["csp_provider"])
				assert.True(t, r.Created(), "op %d", i)
				ids[i] = id
			}
			var updates []dataverse.Op
			for i := range 20 {
				updates = append(updates, dataverse.UpdateOp(schema.SetProviderAccounts, ids[i], dataverse.Row{"csp_domain": fmt.Sprintf("d%d.example", i)}, nil))
			}
			results, err = c.WriteBatch(ctx, updates)
			require.NoError(t, err)
			for i, r := range results {
				require.NoError(t, r.Err)
				row, _ := srv.Row(schema.TableProviderAccount, ids[i].String())
				assert.Equal(t, fmt.Sprintf("d%d.example", i), row["csp_domain"])
			}
			assert.Len(t, srv.Rows(schema.TableProviderAccount), 250)
			requests, writes, bulkCalls := counted(srv)
			if !bulk {
				assert.Equal(t, 1+270, requests, "the provider, then a $batch counts each of its 270 writes")
				assert.Zero(t, bulkCalls)
				return
			}
			// The provider; two reads of support (the bulk messages' ids, the table's filters); a
			// CreateMultiple for the upserts; an UpdateMultiple for the updates.
			assert.Equal(t, 2, bulkCalls)
			assert.Equal(t, 1+2, writes, "no write went by $batch")
			assert.Equal(t, 1+2+2, requests)

			// Upserts of rows of which some exist: the CreateMultiple is rolled back, the $batch says for
			// each upsert whether it created its row and which row it wrote.
			srv.ResetRequests()
			results, err = c.WriteBatch(ctx, accountUpserts(provider, 240, 260))
			require.NoError(t, err)
			for j, r := range results {
				require.NoError(t, r.Err)
				id, err := r.ID()
				require.NoError(t, err)
				if i := 240 + j; i < 250 {
					assert.Equal(t, ids[i], id, "op %d updated the row that was there", i)
					assert.False(t, r.Created())
				} else {
					assert.True(t, r.Created())
				}
			}
			assert.Len(t, srv.Rows(schema.TableProviderAccount), 260)
			assert.Equal(t, 1, countRequests(srv, http.MethodPost, schema.SetProviderAccounts+"/Microsoft.Dynamics.CRM.CreateMultiple"))
			assert.Equal(t, 1, countRequests(srv, http.MethodPost, "$batch"))
		})
	}
}

func TestWriteBatchFallsBackToBatchWhenABulkMessageFails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, &dataverse.ClientOptions{Tables: schema.Schema().Tables})
	var ops []dataverse.Op
	for i := range 10 {
		name := fmt.Sprintf("provider %d", i)
		if i == 6 {
			name = strings.Repeat("x", 300) // too long: refused
		}
		ops = append(ops, dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": name}))
	}
	results, err := c.WriteBatch(ctx, ops)
	require.NoError(t, err)
	for i, r := range results {
		if i == 6 {
			assert.True(t, dataverse.IsBadRequest(r.Err), "op 6 has its own error: %v", r.Err)
			assert.False(t, r.Created())
			continue
		}
		require.NoError(t, r.Err, "op %d", i)
		id, err := r.ID()
		require.NoError(t, err)
		row, ok := srv.Row(schema.TableProvider, id.String())
		require.True(t, ok)
		assert.Equal(t, fmt.Sprintf("provider %d", i), row["csp_name"])
	}
	assert.Len(t, srv.Rows(schema.TableProvider), 9)
	var statuses []int
	for _, r := range srv.Requests() {
		if r.Path == schema.SetProviders+"/Microsoft.Dynamics.CRM.CreateMultiple" {
			statuses = append(statuses, r.Status)
		}
	}
	assert.Equal(t, []int{http.StatusBadRequest}, statuses, "one CreateMultiple, rolled back")
	assert.Equal(t, 1, countRequests(srv, http.MethodPost, "$batch"), "then one $batch")

	// An update of a row that is gone rolls back an UpdateMultiple; the $batch says which one.
	first, _ := results[0].ID()
	second, _ := results[1].ID()
	gone := dataverse.GUID{1}
	results, err = c.WriteBatch(ctx, []dataverse.Op{
		dataverse.UpdateOp(schema.SetProviders, first, dataverse.Row{"csp_name": "renamed 0"}, nil),
		dataverse.UpdateOp(schema.SetProviders, gone, dataverse.Row{"csp_name": "nobody"}, nil),
		dataverse.UpdateOp(schema.SetProviders, second, dataverse.Row{"csp_name": "renamed 1"}, nil),
	})
	require.NoError(t, err)
	assert.NoError(t, results[0].Err)
	assert.True(t, dataverse.IsNotFound(results[1].Err), "%v", results[1].Err)
	assert.NoError(t, results[2].Err)
	row, _ := srv.Row(schema.TableProvider, second.String())
	assert.Equal(t, "renamed 1", row["csp_name"])
}

func TestWriteBatchUsesBatchWhereBulkMessagesAreNotSupported(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	team := dataverse.Table{LogicalName: "team", EntitySetName: "teams", Standard: true, PrimaryName: dataverse.Column{LogicalName: "name", Type: dataverse.TypeString, MaxLength: 160}}
	c, srv := newEnv(t, &dataverse.ClientOptions{Tables: append(schema.Schema().Tables, team)})
	ops := []dataverse.Op{
		dataverse.CreateOp("teams", dataverse.Row{"name": "a"}),
		dataverse.CreateOp("teams", dataverse.Row{"name": "b"}),
	}
	for range 2 {
		results, err := c.WriteBatch(ctx, ops)
		require.NoError(t, err)
		for _, r := range results {
			assert.NoError(t, r.Err)
		}
	}
	assert.Len(t, srv.Rows("team"), 4)
	assert.Equal(t, 2, countRequests(srv, http.MethodPost, "$batch"))
	assert.Equal(t, 1, countRequests(srv, http.MethodGet, "sdkmessagefilters"), "support is read once per table")
	assert.Zero(t, countRequests(srv, http.MethodPost, "teams/Microsoft.Dynamics.CRM.CreateMultiple"))

	// A client that is told of no tables never asks and writes by $batch.
	plain, srv2 := newEnv(t, nil)
	results, err := plain.WriteBatch(ctx, []dataverse.Op{
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "a"}),
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "b"}),
	})
	require.NoError(t, err)
	assert.NoError(t, results[0].Err)
	assert.Equal(t, 1, countRequests(srv2, http.MethodPost, "$batch"))
	assert.Zero(t, countRequests(srv2, http.MethodGet, "sdkmessagefilters"))
}

func TestWriteBatchSendsUpsertsWithoutResultAsUpsertMultiple(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, &dataverse.ClientOptions{Tables: schema.Schema().Tables})
	provider := createProvider(t, ctx, c, "Partner Center")
	var ops []dataverse.Op
	for i := range 3 {
		ops = append(ops, dataverse.UpsertOp(schema.SetProviderAccounts, tenantKey(provider, fmt.Sprintf("t%d", i)), dataverse.Row{"csp_name": fmt.Sprint(i)}, nil))
	}
	results, err := c.WriteBatch(ctx, ops)
	require.NoError(t, err)
	for _, r := range results {
		assert.NoError(t, r.Err)
		assert.False(t, r.Created(), "UpsertMultiple does not say")
		_, err := r.ID()
		assert.Error(t, err, "UpsertMultiple does not say")
	}
	assert.Len(t, srv.Rows(schema.TableProviderAccount), 3)
	assert.Equal(t, 1, countRequests(srv, http.MethodPost, schema.SetProviderAccounts+"/Microsoft.Dynamics.CRM.UpsertMultiple"))
	assert.Zero(t, countRequests(srv, http.MethodPost, "$batch"))
}

func TestWriteBatchCreatesByKeyAndFallsBackOnDuplicates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, &dataverse.ClientOptions{Tables: schema.Schema().Tables})
	provider := createProvider(t, ctx, c, "Partner Center")
	ops := func() []dataverse.Op {
		var out []dataverse.Op
		for i := range 4 {
			out = append(out, dataverse.UpsertOp(schema.SetProviderAccounts, tenantKey(provider, fmt.Sprintf("t%d", i)),
				dataverse.Row{"csp_name": fmt.Sprint(i), "csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, provider)},
				&dataverse.UpsertOptions{Mode: dataverse.UpsertCreateOnly, PrimaryKey: schema.PrimaryKey(schema.TableProviderAccount)}))
		}
		return out
	}
	results, err := c.WriteBatch(ctx, ops())
	require.NoError(t, err)
	for i, r := range results {
		require.NoError(t, r.Err)
		id, err := r.ID()
		require.NoError(t, err)
		row, ok := srv.Row(schema.TableProviderAccount, id.String())
		require.True(t, ok)
		assert.Equal(t, fmt.Sprintf("t%d", i), row["csp_tenantid"])
		assert.True(t, r.Created())
	}
	assert.Equal(t, 1, countRequests(srv, http.MethodPost, schema.SetProviderAccounts+"/Microsoft.Dynamics.CRM.CreateMultiple"))

	// Again: the rows exist, the CreateMultiple is rolled back and each op hears it exists already.
	results, err = c.WriteBatch(ctx, ops())
	require.NoError(t, err)
	for _, r := range results {
		assert.True(t, dataverse.IsConflict(r.Err) || dataverse.IsDuplicate(r.Err), "%v", r.Err)
	}
	assert.Len(t, srv.Rows(schema.TableProviderAccount), 4)
	assert.Equal(t, 1, countRequests(srv, http.MethodPost, "$batch"))
}

func TestWriteBatchDoesNotRepeatCreatesAfterAnUnansweredBulkMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, &dataverse.ClientOptions{Tables: schema.Schema().Tables, MaxRetries: 1})
	own := dataverse.GUID{7}
	ops := []dataverse.Op{
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "no id"}),
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "own id", schema.PrimaryKey(schema.TableProvider): own}),
	}
	// The connection drops: the client cannot know whether the rows were created.
	srv.Inject(dataversetest.Fault{Method: http.MethodPost, Path: "Microsoft.Dynamics.CRM.CreateMultiple", Drop: true, Times: 1})
	results, err := c.WriteBatch(ctx, ops)
	require.NoError(t, err)
	assert.Error(t, results[0].Err, "a create without its id is not sent twice")
	require.NoError(t, results[1].Err, "a create with its id is safe to send again")
	id, err := results[1].ID()
	require.NoError(t, err)
	assert.Equal(t, own, id)
	assert.Len(t, srv.Rows(schema.TableProvider), 1)
}

func TestWriteBatchSendsEveryOpOfAMixedList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, &dataverse.ClientOptions{Tables: schema.Schema().Tables})
	a := createProvider(t, ctx, c, "a")
	b := createProvider(t, ctx, c, "b")
	row, err := c.Get(ctx, schema.SetProviders, a, nil)
	require.NoError(t, err)
	// A conditional update ($batch), two creates (CreateMultiple), a lone update ($batch with the first).
	ops := []dataverse.Op{
		dataverse.UpdateOp(schema.SetProviders, a, dataverse.Row{"csp_name": "a2"}, &dataverse.UpdateOptions{IfMatch: row.ETag()}),
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "c"}),
		dataverse.CreateOp(schema.SetProviders, dataverse.Row{"csp_name": "d"}),
		dataverse.UpdateOp(schema.SetProviders, b, dataverse.Row{"csp_name": "b2"}, nil),
	}
	results, err := c.WriteBatch(ctx, ops)
	require.NoError(t, err)
	for i, r := range results {
		require.NoError(t, r.Err, "op %d", i)
		assert.NotZero(t, r.StatusCode, "op %d was sent", i)
	}
	var names []any
	for _, r := range srv.Rows(schema.TableProvider) {
		names = append(names, r["csp_name"])
	}
	assert.ElementsMatch(t, []any{"a2", "b2", "c", "d"}, names)
}

// Writes that start together on a new client wait for the one that asks Dataverse which bulk messages the
// table supports, and it is asked once. They wait durably: in a testing/synctest bubble fake time moves on
// (a sync.Mutex held across the question froze the bubble, and the service protection benchmarks with it).
func TestConcurrentFirstWritesAskForBulkSupportOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{Tables: schema.Schema().Tables})
		provider := createProvider(t, t.Context(), c, "Partner Center")
		srv.SetLatency(20 * time.Millisecond)
		srv.ResetRequests()
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				results, err := c.WriteBatch(t.Context(), accountUpserts(provider, 100*i, 100*i+100))
				assert.NoError(t, err)
				for _, r := range results {
					assert.NoError(t, r.Err)
				}
			})
		}
		wg.Wait()
		asked := 0
		for _, r := range srv.Requests() {
			if r.Path == "sdkmessages" {
				asked++
			}
		}
		assert.Equal(t, 1, asked, "the message ids are read once")
		assert.Len(t, srv.Rows(schema.TableProviderAccount), 400)
	})
}
