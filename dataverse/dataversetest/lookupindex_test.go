package dataversetest

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestLookupIndexAnswersAsTheScan: after creates, updates that move and clear lookups, deletes and change
// sets that fail and are undone (a deleted row comes back at the end of the table's order), every filter
// answers the same rows in the same order through the lookup index as by scanning every row, and the
// filters the index can narrow do go through it.
func TestLookupIndexAnswersAsTheScan(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, err := NewServer(Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	dv, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client(), MaxRetries: -1})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))

	create := func(set string, row dataverse.Row) dataverse.GUID {
		id, err := dv.Create(ctx, set, row)
		require.NoError(t, err)
		return id
	}
	var pas, accounts, subs []dataverse.GUID
	for i := range 6 {
		pas = append(pas, create(schema.SetProviderAccounts, dataverse.Row{"csp_name": "pa"}))
		if i < 3 {
			accounts = append(accounts, create(schema.SetAccounts, dataverse.Row{"name": "account"}))
		}
	}
	pick := func(ids []dataverse.GUID) dataverse.GUID { return ids[rng.IntN(len(ids))] }
	subRow := func() dataverse.Row {
		row := dataverse.Row{"csp_name": "sub", "csp_quantity": rng.IntN(20)}
		if rng.IntN(5) > 0 {
			row["csp_provideraccount@odata.bind"] = dataverse.Bind(schema.SetProviderAccounts, pick(pas))
		}
		if rng.IntN(3) == 0 {
			row["csp_account@odata.bind"] = dataverse.Bind(schema.SetAccounts, pick(accounts))
		}
		if len(subs) > 0 && rng.IntN(4) == 0 {
			row["csp_parentsubscription@odata.bind"] = dataverse.Bind(schema.SetSubscriptions, pick(subs))
		}
		return row
	}
	for range 200 {
		subs = append(subs, create(schema.SetSubscriptions, subRow()))
	}
	// Updates: lookups moved to another row or cleared.
	for range 100 {
		changes := dataverse.Row{}
		switch rng.IntN(3) {
		case 0:
			changes["csp_provideraccount@odata.bind"] = dataverse.Bind(schema.SetProviderAccounts, pick(pas))
		case 1:
			changes["csp_provideraccount@odata.bind"] = nil
		default:
			changes["csp_parentsubscription@odata.bind"] = dataverse.Bind(schema.SetSubscriptions, pick(subs))
		}
		_, err := dv.Update(ctx, schema.SetSubscriptions, pick(subs), changes, nil)
		require.NoError(t, err)
	}
	// Deletes.
	for range 20 {
		i := rng.IntN(len(subs))
		require.NoError(t, dv.Delete(ctx, schema.SetSubscriptions, subs[i], nil))
		subs = append(subs[:i], subs[i+1:]...)
	}
	// Change sets that fail: their delete, update and create are undone.
	for range 10 {
		var b dataverse.Batch
		b.AddChangeSet(dataverse.DeleteOp(schema.SetSubscriptions, pick(subs), nil),
			dataverse.UpdateOp(schema.SetSubscriptions, pick(subs), dataverse.Row{"csp_provideraccount@odata.bind": dataverse.Bind(schema.SetProviderAccounts, pick(pas))}, nil),
			dataverse.CreateOp(schema.SetSubscriptions, subRow()),
			dataverse.UpdateOp(schema.SetSubscriptions, uuid.New(), dataverse.Row{"csp_quantity": 1}, nil)) // no such row: the change set fails
		res, err := dv.ExecuteBatch(ctx, &b, nil)
		require.NoError(t, err)
		require.Error(t, res[0].Err)
	}

	unknown := uuid.New()
	lookupEq := func() dataverse.Filter {
		switch rng.IntN(6) {
		case 0:
			return dataverse.LookupEq("csp_parentsubscription", pick(subs))
		case 1:
			return dataverse.LookupEq("csp_account", pick(accounts))
		case 2:
			return dataverse.LookupEq("csp_provideraccount", unknown)
		case 3:
			return dataverse.Eq("csp_subscriptionid", pick(subs))
		}
		return dataverse.LookupEq("csp_provideraccount", pick(pas))
	}
	other := func() dataverse.Filter {
		switch rng.IntN(5) {
		case 0:
			return dataverse.Gt("csp_quantity", rng.IntN(20))
		case 1:
			return dataverse.IsNull(dataverse.LookupValue("csp_provideraccount"))
		case 2:
			return dataverse.Ne(dataverse.LookupValue("csp_provideraccount"), pick(pas))
		case 3:
			return dataverse.Eq("statecode", 0)
		}
		return dataverse.NotNull(dataverse.LookupValue("csp_account"))
	}
	type tc struct {
		filter  string
		indexed bool
	}
	var cases []tc
	for range 300 {
		var f dataverse.Filter
		indexed := true
		switch rng.IntN(8) {
		case 0:
			f = lookupEq()
		case 1:
			of := make([]dataverse.Filter, 1+rng.IntN(50))
			for i := range of {
				of[i] = lookupEq()
			}
			f = dataverse.Or(of...)
		case 2:
			f = dataverse.And(other(), lookupEq(), other())
		case 3:
			f = dataverse.And(other(), dataverse.Or(lookupEq(), lookupEq()))
		case 4:
			f, indexed = dataverse.Or(lookupEq(), other()), false
		case 5:
			f, indexed = dataverse.Not(lookupEq()), false
		case 6:
			f = dataverse.In(dataverse.LookupValue("csp_provideraccount"), pick(pas).String(), strings.ToUpper(pick(pas).String()), unknown.String())
		default:
			f, indexed = other(), false
		}
		require.NoError(t, f.Err())
		cases = append(cases, tc{filter: f.String(), indexed: indexed})
	}
	// An upper-case GUID literal and a text literal compare as the row ids do.
	cases = append(cases, tc{filter: "_csp_provideraccount_value eq " + strings.ToUpper(pas[0].String()), indexed: true},
		tc{filter: "_csp_provideraccount_value eq '" + strings.ToUpper(pas[1].String()) + "'", indexed: true})

	srv.mu.Lock()
	defer srv.mu.Unlock()
	table := srv.tables[schema.TableSubscription]
	ids := func(rows []*record) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r.id
		}
		return out
	}
	nonEmpty := 0
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		require.NoError(t, err, c.filter)
		_, narrowed := table.candidates(f)
		assert.Equal(t, c.indexed, narrowed, "through the index: %s", c.filter)
		want := ids(table.scan(f))
		assert.Equal(t, want, ids(table.matching(f)), c.filter)
		if len(want) > 0 {
			nonEmpty++
		}
	}
	assert.Greater(t, nonEmpty, len(cases)/2, "the filters find rows")
}

// TestListThroughTheLookupIndexPages: a query the index narrows pages as a scanned one does.
func TestListThroughTheLookupIndexPages(t *testing.T) {
	t.Parallel()
	srv, err := NewServer(Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: srv.Client().Transport}
	dv, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: hc})
	require.NoError(t, err)
	ctx := context.Background()
	pa, err := dv.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "pa"})
	require.NoError(t, err)
	var want []dataverse.GUID
	for i := range 25 {
		row := dataverse.Row{"csp_name": "sub", "csp_quantity": i}
		if i%2 == 0 {
			row["csp_provideraccount@odata.bind"] = dataverse.Bind(schema.SetProviderAccounts, pa)
		}
		id, err := dv.Create(ctx, schema.SetSubscriptions, row)
		require.NoError(t, err)
		if i%2 == 0 {
			want = append(want, id)
		}
	}
	var got []dataverse.GUID
	for raw, err := range dv.List(ctx, schema.SetSubscriptions, &dataverse.Query{Select: []string{"csp_subscriptionid"}, PageSize: 4,
		Filter: dataverse.Or(dataverse.LookupEq("csp_provideraccount", pa), dataverse.LookupEq("csp_provideraccount", uuid.New()))}) {
		require.NoError(t, err)
		id, _ := raw.GUID("csp_subscriptionid")
		got = append(got, id)
	}
	assert.Equal(t, want, got, "every row, in creation order, over pages")
}
