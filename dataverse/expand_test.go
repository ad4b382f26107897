package dataverse_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// A change log read with its subscription, the subscription's provider and its changes still awaiting,
// in one request: lookups expand to the row (nested), the one-to-many relationship to the filtered rows.
func TestGetExpandsLookupsAndRelationshipsInOneRequest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, nil)
	provider, err := c.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "Partner Center", "csp_type": int(schema.ProviderAutomatic)})
	require.NoError(t, err)
	sub := dataverse.Row{"csp_name": "Seats", "csp_quantity": 10}
	sub.SetLookup("csp_provider", schema.SetProviders, provider)
	subID, err := c.Create(ctx, schema.SetSubscriptions, sub)
	require.NoError(t, err)
	var changes []dataverse.GUID
	for i, status := range []schema.ProvisioningStatus{schema.ProvisioningProvisioned, schema.ProvisioningAwaiting, schema.ProvisioningAwaiting} {
		l := dataverse.Row{"csp_name": "change", "csp_quantity": 11 + i, "csp_provisioningstatus": int(status)}
		l.SetLookup("csp_subscription", schema.SetSubscriptions, subID)
		id, err := c.Create(ctx, schema.SetLicenseChangeLogs, l)
		require.NoError(t, err)
		changes = append(changes, id)
	}
	orphan, err := c.Create(ctx, schema.SetLicenseChangeLogs, dataverse.Row{"csp_name": "no subscription"})
	require.NoError(t, err)
	pending := dataverse.RelationshipName(schema.TableSubscription, schema.TableLicenseChangeLog, "csp_subscription")
	opts := &dataverse.GetOptions{Select: []string{"csp_name"}, Expand: []dataverse.Expand{{
		Nav: "csp_subscription", Select: []string{"csp_quantity"},
		Expand: []dataverse.Expand{
			{Nav: "csp_provider", Select: []string{"csp_type"}},
			{Nav: "csp_provideraccount"},
			{Nav: pending, Select: []string{"csp_quantity"}, Filter: dataverse.Eq("csp_provisioningstatus", schema.ProvisioningAwaiting)},
		},
	}}}
	srv.ResetRequests()

	row, err := c.Get(ctx, schema.SetLicenseChangeLogs, changes[0], opts)
	require.NoError(t, err)
	assert.Len(t, srv.Requests(), 1, "one request")
	s, ok := row.Expanded("csp_subscription")
	require.True(t, ok, "the subscription is expanded: %v", row)
	q, _ := s.Int("csp_quantity")
	assert.EqualValues(t, 10, q)
	assert.NotEmpty(t, s.ETag(), "an expanded row carries its ETag")
	p, ok := s.Expanded("csp_provider")
	require.True(t, ok)
	typ, _ := p.Int("csp_type")
	assert.EqualValues(t, schema.ProviderAutomatic, typ)
	_, ok = s.Expanded("csp_provideraccount")
	assert.False(t, ok, "an empty lookup expands to null")
	rows := s.ExpandedRows(pending)
	var got []dataverse.GUID
	for _, r := range rows {
		id, _ := r.GUID("csp_licensechangelogid")
		got = append(got, id)
	}
	assert.Equal(t, changes[1:], got, "the subscription's changes awaiting, filtered")

	row, err = c.Get(ctx, schema.SetLicenseChangeLogs, orphan, opts)
	require.NoError(t, err)
	_, ok = row.Expanded("csp_subscription")
	assert.False(t, ok)

	_, err = c.Get(ctx, schema.SetLicenseChangeLogs, orphan, &dataverse.GetOptions{Expand: []dataverse.Expand{{Nav: "csp_nosuchlookup"}}})
	assert.True(t, dataverse.IsBadRequest(err), "an unknown navigation property is refused: %v", err)
	_, err = c.Get(ctx, schema.SetLicenseChangeLogs, orphan, &dataverse.GetOptions{Expand: []dataverse.Expand{{Nav: "csp_subscription", Filter: dataverse.Eq("csp_quantity", 1)}}})
	assert.True(t, dataverse.IsBadRequest(err), "$filter on a lookup is refused: %v", err)

	// In a $batch, and in a query.
	var b dataverse.Batch
	b.Add(dataverse.GetOp(schema.SetLicenseChangeLogs, changes[1], opts))
	results, err := c.ExecuteBatch(ctx, &b, nil)
	require.NoError(t, err)
	r, err := results[0].Row()
	require.NoError(t, err)
	s, ok = r.Expanded("csp_subscription")
	require.True(t, ok)
	assert.Len(t, s.ExpandedRows(pending), 2)
	for r, err := range c.List(ctx, schema.SetSubscriptions, &dataverse.Query{Select: []string{"csp_name"}, Expand: []dataverse.Expand{{Nav: pending, Select: []string{"csp_name"}}}}) {
		require.NoError(t, err)
		assert.Len(t, r.ExpandedRows(pending), 3)
	}
}
