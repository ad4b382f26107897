package dataverse_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// newEnv starts a simulator with the connector's schema on loopback and a client for it.
func newEnv(t testing.TB, opts *dataverse.ClientOptions) (*dataverse.Client, *dataversetest.Server) {
	t.Helper()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	o := dataverse.ClientOptions{}
	if opts != nil {
		o = *opts
	}
	o.HTTPClient = srv.Client()
	c, err := dataverse.NewClient(srv.URL, nil, &o)
	require.NoError(t, err)
	return c, srv
}

// newMemoryEnv is newEnv without a socket, for tests inside synctest bubbles.
func newMemoryEnv(t testing.TB, opts *dataverse.ClientOptions) (*dataverse.Client, *dataversetest.Server) {
	t.Helper()
	srv := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
	o := dataverse.ClientOptions{}
	if opts != nil {
		o = *opts
	}
	o.HTTPClient = srv.InMemoryClient()
	c, err := dataverse.NewClient("http://dataverse.test", nil, &o)
	require.NoError(t, err)
	return c, srv
}

func createProvider(t testing.TB, ctx context.Context, c *dataverse.Client, name string) dataverse.GUID {
	t.Helper()
	row, err := dataverse.Marshal(schema.Provider{Name: name, Type: schema.ProviderAutomatic, PartnerModel: schema.PartnerDirectBill})
	require.NoError(t, err)
	id, err := c.Create(ctx, schema.SetProviders, row)
	require.NoError(t, err)
	return id
}

func TestNewClientRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "contoso.crm.dynamics.com", "ftp://contoso", "https://"} {
		_, err := dataverse.NewClient(u, nil, nil)
		assert.Error(t, err, u)
	}
	c, err := dataverse.NewClient(" https://contoso.crm.dynamics.com/ ", nil, nil)
	require.NoError(t, err)
	assert.Equal(t, "https://contoso.crm.dynamics.com", c.OrganizationURL())
	assert.Equal(t, dataverse.DefaultMaxConcurrency, c.Limit())
}

func TestCreateGetUpdateDelete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, nil)

	id := createProvider(t, ctx, c, "Partner Center")
	row, err := c.Get(ctx, schema.SetProviders, id, &dataverse.GetOptions{Select: []string{"csp_name", "csp_type"}, FormattedValues: true})
	require.NoError(t, err)
	assert.Equal(t, "Partner Center", row.String("csp_name"))
	typ, ok := row.Int("csp_type")
	require.True(t, ok)
	assert.Equal(t, int64(schema.ProviderAutomatic), typ)
	assert.Equal(t, "Automatic", row.FormattedValue("csp_type"))
	etag := row.ETag()
	require.NotEmpty(t, etag)

	// Update guarded by the ETag we read succeeds and changes the ETag…
	updated, err := c.Update(ctx, schema.SetProviders, id, dataverse.Row{"csp_name": "Partner Center (EU)"},
		&dataverse.UpdateOptions{IfMatch: etag, Select: []string{"csp_name"}})
	require.NoError(t, err)
	assert.Equal(t, "Partner Center (EU)", updated.String("csp_name"))
	assert.NotEqual(t, etag, updated.ETag())

	// …and a second update with the stale ETag is a typed conflict, and changes nothing.
	_, err = c.Update(ctx, schema.SetProviders, id, dataverse.Row{"csp_name": "stale"}, &dataverse.UpdateOptions{IfMatch: etag})
	require.Error(t, err)
	assert.True(t, dataverse.IsConflict(err), err)
	got, _ := srv.Row(schema.TableProvider, id.String())
	assert.Equal(t, "Partner Center (EU)", got["csp_name"])

	// Update never creates: a missing row is not found, and still missing afterwards.
	missing := uuid.New()
	_, err = c.Update(ctx, schema.SetProviders, missing, dataverse.Row{"csp_name": "ghost"}, nil)
	assert.True(t, dataverse.IsNotFound(err), err)
	_, exists := srv.Row(schema.TableProvider, missing.String())
	assert.False(t, exists)

	// Conditional read: unchanged row answers ErrNotModified.
	cur, err := c.Get(ctx, schema.SetProviders, id, nil)
	require.NoError(t, err)
	_, err = c.Get(ctx, schema.SetProviders, id, &dataverse.GetOptions{IfNoneMatch: cur.ETag()})
	assert.ErrorIs(t, err, dataverse.ErrNotModified)

	require.NoError(t, c.Delete(ctx, schema.SetProviders, id, &dataverse.DeleteOptions{IfMatch: cur.ETag()}))
	_, err = c.Get(ctx, schema.SetProviders, id, nil)
	assert.True(t, dataverse.IsNotFound(err), err)
	assert.True(t, dataverse.IsNotFound(c.Delete(ctx, schema.SetProviders, id, nil)))
}

func TestLookupsAreBoundAndRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, _ := newEnv(t, nil)
	provider := createProvider(t, ctx, c, "Partner Center")
	row := dataverse.Row{"csp_name": "Contoso", "csp_tenantid": "tenant-1"}
	row.SetLookup("csp_provider", schema.SetProviders, provider)
	id, err := c.Create(ctx, schema.SetProviderAccounts, row)
	require.NoError(t, err)

	got, err := c.Get(ctx, schema.SetProviderAccounts, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.ProviderAccount](), FormattedValues: true})
	require.NoError(t, err)
	var pa schema.ProviderAccount
	require.NoError(t, dataverse.Unmarshal(got, &pa))
	assert.Equal(t, provider, pa.Provider.ID)
	assert.Equal(t, schema.TableProvider, pa.Provider.Table)
	assert.Equal(t, "Partner Center", pa.Provider.Name)
	assert.Equal(t, "tenant-1", pa.TenantID)
	assert.Equal(t, id, pa.ID)
	assert.Equal(t, got.ETag(), pa.ETag)

	// A lookup to a row that does not exist is refused.
	bad := dataverse.Row{"csp_name": "Nobody"}
	bad.SetLookup("csp_provider", schema.SetProviders, uuid.New())
	_, err = c.Create(ctx, schema.SetProviderAccounts, bad)
	assert.True(t, dataverse.IsNotFound(err), err)
}

func TestUpsertByAlternateKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, nil)
	provider := createProvider(t, ctx, c, "Partner Center")
	key := dataverse.Key{dataverse.LookupValue("csp_provider"): provider, "csp_tenantid": "O'Brien-tenant"}

	pk := schema.PrimaryKey(schema.TableProviderAccount)

	// Update-only on a missing row: not found, nothing created.
	_, err := c.Upsert(ctx, schema.SetProviderAccounts, key, dataverse.Row{"csp_name": "x"}, &dataverse.UpsertOptions{Mode: dataverse.UpsertUpdateOnly, PrimaryKey: pk})
	assert.True(t, dataverse.IsNotFound(err), err)
	assert.Empty(t, srv.Rows(schema.TableProviderAccount))

	// Dataverse names a row upserted by alternate key by its key values in OData-EntityId; the id and
	// whether the row was created come from the representation.
	first, err := c.Upsert(ctx, schema.SetProviderAccounts, key, dataverse.Row{"csp_name": "O'Brien Ltd"}, &dataverse.UpsertOptions{PrimaryKey: pk})
	require.NoError(t, err)
	assert.True(t, first.Created)
	_, exists := srv.Row(schema.TableProviderAccount, first.ID.String())
	assert.True(t, exists, "the upsert returns the id of the row it created")

	second, err := c.Upsert(ctx, schema.SetProviderAccounts, key, dataverse.Row{"csp_name": "O'Brien Limited"}, &dataverse.UpsertOptions{PrimaryKey: pk})
	require.NoError(t, err)
	assert.False(t, second.Created)
	assert.Equal(t, first.ID, second.ID)

	third, err := c.Upsert(ctx, schema.SetProviderAccounts, key, dataverse.Row{"csp_domain": "obrien.example"}, &dataverse.UpsertOptions{Mode: dataverse.UpsertUpdateOnly, PrimaryKey: pk})
	require.NoError(t, err)
	assert.Equal(t, dataverse.UpsertResult{ID: first.ID}, third)

	_, err = c.Upsert(ctx, schema.SetProviderAccounts, key, dataverse.Row{"csp_name": "x"}, nil)
	assert.ErrorContains(t, err, "PrimaryKey is required", "without the primary key the upsert could not say which row it wrote")

	_, err = c.Upsert(ctx, schema.SetProviderAccounts, key, dataverse.Row{"csp_name": "again"}, &dataverse.UpsertOptions{Mode: dataverse.UpsertCreateOnly, PrimaryKey: pk})
	assert.True(t, dataverse.IsConflict(err), err)

	rows := srv.Rows(schema.TableProviderAccount)
	require.Len(t, rows, 1)
	assert.Equal(t, "O'Brien Limited", rows[0]["csp_name"])
	assert.Equal(t, "O'Brien-tenant", rows[0]["csp_tenantid"], "key columns come from the address")
	assert.Equal(t, "obrien.example", rows[0]["csp_domain"])

	byKey, err := c.GetByKey(ctx, schema.SetProviderAccounts, key, &dataverse.GetOptions{Select: []string{"csp_name"}})
	require.NoError(t, err)
	assert.Equal(t, "O'Brien Limited", byKey.String("csp_name"))

	_, err = c.GetByKey(ctx, schema.SetProviderAccounts, dataverse.Key{dataverse.LookupValue("csp_provider"): provider, "csp_tenantid": "nobody"}, nil)
	assert.True(t, dataverse.IsNotFound(err), err)
}

func TestListFollowsNextLinkOnePageAtATime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newEnv(t, &dataverse.ClientOptions{PageSize: 7})
	for i := range 30 {
		_, err := srv.Insert(schema.TableAccount, map[string]any{"name": "Account " + string(rune('A'+i%26)) + string(rune('a'+i/26)), "emailaddress1": "a@x.example"})
		require.NoError(t, err)
	}
	_, err := srv.Insert(schema.TableAccount, map[string]any{"name": "Other", "emailaddress1": "b@y.example"})
	require.NoError(t, err)
	srv.ResetRequests()

	var names []string
	for row, err := range c.List(ctx, schema.SetAccounts, &dataverse.Query{
		Select:  []string{"name"},
		Filter:  dataverse.EndsWith("emailaddress1", "@x.example"),
		OrderBy: []string{"name desc"},
	}) {
		require.NoError(t, err)
		names = append(names, row.String("name"))
	}
	require.Len(t, names, 30)
	assert.True(t, slices.IsSortedFunc(names, func(a, b string) int { return -cmpFold(a, b) }), names)
	reqs := srv.Requests()
	assert.Len(t, reqs, 5, "30 rows at 7 per page")
	for _, r := range reqs {
		assert.Equal(t, http.MethodGet, r.Method)
	}

	// Stopping early stops fetching.
	srv.ResetRequests()
	n := 0
	for _, err := range c.List(ctx, schema.SetAccounts, nil) {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	assert.Len(t, srv.Requests(), 1)

	// $top without paging.
	count := 0
	for _, err := range c.List(ctx, schema.SetAccounts, &dataverse.Query{Top: 4}) {
		require.NoError(t, err)
		count++
	}
	assert.Equal(t, 4, count)
}

func cmpFold(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestListReportsBadQueriesBeforeSending(t *testing.T) {
	t.Parallel()
	c, srv := newEnv(t, nil)
	for _, q := range []*dataverse.Query{
		{Filter: dataverse.Eq("name) or (1 eq 1", "x")},
		{Select: []string{"name,accountid"}},
		{OrderBy: []string{"name; drop"}},
		{Filter: dataverse.Eq("name", struct{}{})},
	} {
		for _, err := range c.List(t.Context(), schema.SetAccounts, q) {
			assert.Error(t, err)
		}
	}
	assert.Empty(t, srv.Requests(), "nothing may be sent for an invalid query")
}

func TestServerErrorsSurfaceAsResponseErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, _ := newEnv(t, nil)
	_, err := c.Get(ctx, "nosuchset", uuid.New(), nil)
	require.Error(t, err)
	assert.True(t, dataverse.IsNotFound(err))
	var re *dataverse.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "0x8006088a", re.Code)
	assert.NotEmpty(t, re.RequestID)

	for _, err := range c.List(ctx, schema.SetAccounts, &dataverse.Query{Select: []string{"Name"}}) {
		require.ErrorAs(t, err, &re)
		assert.Equal(t, 400, re.StatusCode)
		assert.Equal(t, "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'.", re.Message)
		assert.True(t, dataverse.IsBadRequest(err))
	}

	long := make([]byte, 201)
	for i := range long {
		long[i] = 'x'
	}
	_, err = c.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": string(long)})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, dataverse.CodeValidation, re.Code)
	assert.Equal(t, "A validation error occurred.  The length of the 'csp_name' attribute of the 'csp_provider' entity exceeded the maximum allowed length of '200'.", re.Message)
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	c, srv := newEnv(t, nil)
	who, err := c.WhoAmI(t.Context())
	require.NoError(t, err)
	assert.Equal(t, srv.UserID(), who.UserID)
	assert.Equal(t, srv.OrganizationID(), who.OrganizationID)
	assert.NotEqual(t, dataverse.GUID{}, who.BusinessUnitID)
}

func TestNextLinkToAnotherHostIsRefused(t *testing.T) {
	t.Parallel()
	// A compromised or misconfigured server must not be able to make the client send its token elsewhere.
	mux := http.NewServeMux()
	srvURL := ""
	mux.HandleFunc("GET /api/data/v9.2/accounts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":[{"name":"a"}],"@odata.nextLink":"http://127.0.0.2:1/api/data/v9.2/accounts?$skiptoken=x"}`))
	})
	srv := newHTTPServer(t, mux)
	srvURL = srv.URL
	c, err := dataverse.NewClient(srvURL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
	require.NoError(t, err)
	var errs []error
	for _, err := range c.List(t.Context(), "accounts", nil) {
		errs = append(errs, err)
	}
	require.Len(t, errs, 2)
	assert.NoError(t, errs[0])
	assert.ErrorContains(t, errs[1], "points outside")
}

func TestTimeValuesRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, _ := newEnv(t, nil)
	when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	id, err := c.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "p", "csp_lastverifiedon": when.Format(time.RFC3339)})
	require.NoError(t, err)
	rows := 0
	for row, err := range c.List(ctx, schema.SetProviders, &dataverse.Query{Filter: dataverse.And(dataverse.Ge("csp_lastverifiedon", when), dataverse.Eq("csp_providerid", id))}) {
		require.NoError(t, err)
		got, ok := row.Time("csp_lastverifiedon")
		require.True(t, ok)
		assert.True(t, when.Equal(got))
		rows++
	}
	assert.Equal(t, 1, rows)
}
