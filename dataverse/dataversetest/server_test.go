package dataversetest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// These tests speak raw HTTP to the simulator, the way Dataverse is documented to answer, without going
// through the dataverse client: a bug shared by the client and the simulator would otherwise go unseen.

const api = "/api/data/v9.2/"

// startServer starts a simulator with the connector's real schema. The caller closes it.
func startServer(t *testing.T) *dataversetest.Server {
	t.Helper()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	return srv
}

// webAPI sends requests to one simulator with the headers Dataverse asks every client to send.
type webAPI struct {
	t    *testing.T
	url  string
	http *http.Client
}

func newWebAPI(t *testing.T, srv *dataversetest.Server) webAPI {
	return webAPI{t: t, url: srv.URL, http: srv.Client()}
}

// response is an answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request builds a request for path (below /api/data/v9.2/, query included). body is nil, a string sent as
// is, or a value sent as JSON; headers are name, value pairs.
func (c webAPI) request(method, path string, body any, headers ...string) *http.Request {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(c.t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.url+api+path, r)
	require.NoError(c.t, err)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("OData-Version", "4.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	require.Zero(c.t, len(headers)%2, "headers come in pairs")
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

func (c webAPI) send(req *http.Request) response {
	c.t.Helper()
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (c webAPI) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	return c.send(c.request(method, path, body, headers...))
}

// create POSTs a row and returns its id from OData-EntityId.
func (c webAPI) create(set string, body any) string {
	c.t.Helper()
	res := c.do(http.MethodPost, set, body)
	require.Equal(c.t, http.StatusNoContent, res.status, "create in %s: %s", set, res.body)
	return entityID(c.t, res.header.Get("OData-EntityId"))
}

// get reads one row.
func (c webAPI) get(path string, headers ...string) map[string]any {
	c.t.Helper()
	res := c.do(http.MethodGet, path, nil, headers...)
	require.Equal(c.t, http.StatusOK, res.status, "GET %s: %s", path, res.body)
	return res.json(c.t)
}

var entityIDPattern = regexp.MustCompile(`\(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)$`)

func entityID(t *testing.T, header string) string {
	t.Helper()
	m := entityIDPattern.FindStringSubmatch(header)
	require.NotNil(t, m, "OData-EntityId %q names no row", header)
	return m[1]
}

func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&out), "body: %s", data)
	return out
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	return decodeJSON(t, r.body)
}

// apiError is Dataverse's error body: {"error":{"code":…,"message":…}}.
func (r response) apiError(t *testing.T) (code, message string) {
	t.Helper()
	var e struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &e), "body: %s", r.body)
	require.NotNil(t, e.Error, "no error object in %s", r.body)
	require.NotNil(t, e.Error.Code, "no error code in %s", r.body)
	require.NotNil(t, e.Error.Message, "no error message in %s", r.body)
	return *e.Error.Code, *e.Error.Message
}

// query encodes query options the way the Web API wants them (%20, not +).
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return "?" + strings.ReplaceAll(v.Encode(), "+", "%20")
}

// values returns the rows of a collection answer.
func values(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	raw, ok := body["value"].([]any)
	require.True(t, ok, "no value array in %v", body)
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	return out
}

func column(rows []map[string]any, name string) []any {
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = r[name]
	}
	return out
}

var etagPattern = regexp.MustCompile(`^W/"\d+"$`)

func TestCreate(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	t.Run("204 with OData-EntityId", func(t *testing.T) {
		res := c.do(http.MethodPost, "csp_providers", map[string]any{"csp_name": "Contoso"})
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Empty(t, res.body)
		assert.Regexp(t, `^`+regexp.QuoteMeta(srv.URL+api)+`csp_providers\([0-9a-f-]{36}\)$`, res.header.Get("OData-EntityId"))
		assert.Equal(t, "4.0", res.header.Get("OData-Version"))
		id := entityID(t, res.header.Get("OData-EntityId"))
		row := c.get("csp_providers(" + id + ")")
		assert.Equal(t, "Contoso", row["csp_name"])
	})

	t.Run("return=representation", func(t *testing.T) {
		res := c.do(http.MethodPost, "csp_providers", map[string]any{"csp_name": "Fabrikam", "csp_type": schema.ProviderManual},
			"Prefer", "return=representation")
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
		assert.Empty(t, res.header.Get("OData-EntityId"), "the row is in the body; Dataverse sends no OData-EntityId")
		body := res.json(t)
		assert.Regexp(t, etagPattern, body["@odata.etag"])
		assert.Equal(t, srv.URL+api+"$metadata#csp_providers/$entity", body["@odata.context"])
		assert.Equal(t, "Fabrikam", body["csp_name"])
		assert.Equal(t, json.Number(strconv.Itoa(int(schema.ProviderManual))), body["csp_type"])
		assert.Equal(t, json.Number("0"), body["statecode"])
		assert.Equal(t, json.Number("1"), body["statuscode"])
		_, err := uuid.Parse(body["csp_providerid"].(string))
		assert.NoError(t, err)
	})

	t.Run("return=representation with $select", func(t *testing.T) {
		res := c.do(http.MethodPost, "csp_providers?$select=csp_name", map[string]any{"csp_name": "Selected"}, "Prefer", "return=representation")
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
		body := res.json(t)
		assert.ElementsMatch(t, []string{"@odata.context", "@odata.etag", "csp_providerid", "csp_name"}, keys(body))
	})

	t.Run("client-chosen id", func(t *testing.T) {
		id := uuid.NewString()
		res := c.do(http.MethodPost, "csp_providers", map[string]any{"csp_providerid": id, "csp_name": "Chosen"})
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Equal(t, srv.URL+api+"csp_providers("+id+")", res.header.Get("OData-EntityId"))
		assert.Equal(t, "Chosen", c.get("csp_providers(" + id + ")")["csp_name"])

		again := c.do(http.MethodPost, "csp_providers", map[string]any{"csp_providerid": id, "csp_name": "Again"})
		assert.Equal(t, http.StatusPreconditionFailed, again.status, "a second row with the same id: %s", again.body)
		assert.Equal(t, "Chosen", c.get("csp_providers(" + id + ")")["csp_name"])
	})

	t.Run("text length counts characters", func(t *testing.T) {
		res := c.do(http.MethodPost, "csp_provideraccounts", map[string]any{"csp_name": "x", "csp_tenantid": strings.Repeat("é", 100)})
		assert.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestCreateRefusesInvalidPayloads(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	tests := []struct {
		name         string
		set          string
		body         any
		wantStatus   int
		wantCode     string
		wantMessage  string // exact, when set
		wantContains string
	}{
		{name: "unknown property", set: "csp_providers", body: map[string]any{"csp_name": "x", "csp_nosuch": 1},
			wantStatus: 400, wantCode: "0x80048d19", wantContains: "'csp_nosuch'"},
		{name: "property of another table", set: "csp_providers", body: map[string]any{"csp_tenantid": "abc"},
			wantStatus: 400, wantCode: "0x80048d19", wantContains: "csp_tenantid"},
		{name: "lookup value written directly", set: "csp_provideraccounts", body: map[string]any{"_csp_provider_value": uuid.NewString()},
			wantStatus: 400, wantCode: "0x80048d19", wantContains: "_csp_provider_value"},
		{name: "text for a boolean", set: "csp_providers", body: map[string]any{"csp_automatch": "yes"},
			wantStatus: 400, wantCode: "0x80048d19", wantContains: "Edm.Boolean"},
		{name: "number for text", set: "csp_providers", body: map[string]any{"csp_name": 5},
			wantStatus: 400, wantCode: "0x80048d19", wantContains: "Edm.String"},
		{name: "decimal for a whole number", set: "csp_subscriptions", body: map[string]any{"csp_quantity": 1.5},
			wantStatus: 400, wantCode: "0x80048d19"},
		{name: "whole number beyond Int32", set: "csp_subscriptions", body: map[string]any{"csp_quantity": int64(3_000_000_000)},
			wantStatus: 400, wantCode: "0x80048d19"},
		{name: "text for a date", set: "csp_providers", body: map[string]any{"csp_lastverifiedon": "yesterday"},
			wantStatus: 400, wantCode: "0x80048d19"},
		{name: "not a JSON object", set: "csp_providers", body: "[1,2]", wantStatus: 400, wantCode: "0x80048d19"},
		{name: "text longer than MaxLength", set: "csp_provideraccounts", body: map[string]any{"csp_tenantid": strings.Repeat("x", 101)},
			wantStatus: 400, wantCode: "0x80044331",
			wantMessage: "A validation error occurred.  The length of the 'csp_tenantid' attribute of the 'csp_provideraccount' entity exceeded the maximum allowed length of '100'."},
		{name: "invalid choice value", set: "csp_providers", body: map[string]any{"csp_type": 1},
			wantStatus: 400, wantContains: "csp_type"},
		{name: "invalid status reason", set: "csp_providers", body: map[string]any{"statuscode": 3},
			wantStatus: 400, wantContains: "statuscode"},
		{name: "unknown entity set", set: "csp_provider", body: map[string]any{"csp_name": "x"},
			wantStatus: 404, wantCode: "0x8006088a", wantMessage: "Resource not found for the segment 'csp_provider'."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.Rows(strings.TrimSuffix(tt.set, "s")))
			res := c.do(http.MethodPost, tt.set, tt.body)
			require.Equal(t, tt.wantStatus, res.status, "%s", res.body)
			assert.Equal(t, "application/json; odata.metadata=minimal", res.header.Get("Content-Type"))
			code, msg := res.apiError(t)
			if tt.wantCode != "" {
				assert.Equal(t, tt.wantCode, code)
			}
			if tt.wantMessage != "" {
				assert.Equal(t, tt.wantMessage, msg)
			}
			assert.Contains(t, msg, tt.wantContains)
			assert.Len(t, srv.Rows(strings.TrimSuffix(tt.set, "s")), before, "a refused create stores nothing")
		})
	}
}

func TestRetrieve(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	provider := c.create("csp_providers", map[string]any{"csp_name": "Contoso", "csp_automatch": true})
	account := c.create("accounts", map[string]any{"name": "Fabrikam"})
	etag := c.get("csp_providers(" + provider + ")")["@odata.etag"].(string)
	missing := uuid.NewString()

	tests := []struct {
		name        string
		path        string
		headers     []string
		wantStatus  int
		wantCode    string
		wantMessage string
		check       func(t *testing.T, body map[string]any)
	}{
		{name: "by id", path: "csp_providers(" + provider + ")", wantStatus: 200, check: func(t *testing.T, body map[string]any) {
			assert.Equal(t, provider, body["csp_providerid"])
			assert.Equal(t, "Contoso", body["csp_name"])
			assert.Equal(t, true, body["csp_automatch"])
			assert.Nil(t, body["csp_type"])
			assert.Contains(t, body, "csp_type", "unset columns are returned as null")
			assert.Equal(t, etag, body["@odata.etag"])
			assert.Equal(t, srv.URL+api+"$metadata#csp_providers/$entity", body["@odata.context"])
			assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, body["createdon"])
		}},
		{name: "upper-case id", path: "csp_providers(" + strings.ToUpper(provider) + ")", wantStatus: 200, check: func(t *testing.T, body map[string]any) {
			assert.Equal(t, provider, body["csp_providerid"])
		}},
		{name: "primary key form", path: "csp_providers(csp_providerid=" + provider + ")", wantStatus: 200, check: func(t *testing.T, body map[string]any) {
			assert.Equal(t, provider, body["csp_providerid"])
		}},
		{name: "$select", path: "csp_providers(" + provider + ")?$select=csp_name,csp_automatch", wantStatus: 200, check: func(t *testing.T, body map[string]any) {
			assert.Equal(t, []string{"@odata.context", "@odata.etag", "csp_automatch", "csp_name", "csp_providerid"}, keys(body),
				"the primary key is always returned")
		}},
		{name: "$select unknown column", path: "accounts(" + account + ")?$select=Name", wantStatus: 400, wantCode: "0x0",
			wantMessage: "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'."},
		{name: "unknown entity set", path: "Account", wantStatus: 404, wantCode: "0x8006088a",
			wantMessage: "Resource not found for the segment 'Account'."},
		{name: "unknown entity set with id", path: "Account(" + account + ")", wantStatus: 404, wantCode: "0x8006088a",
			wantMessage: "Resource not found for the segment 'Account'."},
		{name: "missing row", path: "csp_providers(" + missing + ")", wantStatus: 404, wantCode: "0x80040217",
			wantMessage: "csp_provider With Id = " + missing + " Does Not Exist"},
		{name: "If-None-Match current etag", path: "csp_providers(" + provider + ")", headers: []string{"If-None-Match", etag}, wantStatus: 304},
		{name: "If-None-Match null", path: "csp_providers(" + provider + ")", headers: []string{"If-None-Match", "null"}, wantStatus: 200},
		{name: "If-None-Match stale etag", path: "csp_providers(" + provider + ")", headers: []string{"If-None-Match", `W/"1"`}, wantStatus: 200},
		{name: "If-None-Match with annotations", path: "csp_providers(" + provider + ")",
			headers: []string{"If-None-Match", etag, "Prefer", `odata.include-annotations="*"`}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.do(http.MethodGet, tt.path, nil, tt.headers...)
			require.Equal(t, tt.wantStatus, res.status, "%s", res.body)
			switch {
			case tt.wantStatus == http.StatusNotModified:
				assert.Empty(t, res.body)
			case tt.wantStatus >= 400:
				code, msg := res.apiError(t)
				assert.Equal(t, tt.wantCode, code)
				assert.Equal(t, tt.wantMessage, msg)
			case tt.check != nil:
				tt.check(t, res.json(t))
			}
		})
	}
}

func TestConcurrencyAndUpsertByID(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	id := c.create("csp_providers", map[string]any{"csp_name": "v1"})
	path := "csp_providers(" + id + ")"
	etag := func() string { return c.get(path)["@odata.etag"].(string) }

	e1 := etag()
	require.Equal(t, http.StatusNoContent, c.do(http.MethodPatch, path, map[string]any{"csp_name": "v2"}).status)
	e2 := etag()
	assert.NotEqual(t, e1, e2, "every write changes the ETag")
	require.Equal(t, http.StatusNoContent, c.do(http.MethodPatch, path, map[string]any{"csp_name": "v2"}).status)
	e3 := etag()
	assert.NotEqual(t, e2, e3, "a write of unchanged values is still a write")

	t.Run("If-Match stale", func(t *testing.T) {
		res := c.do(http.MethodPatch, path, map[string]any{"csp_name": "lost"}, "If-Match", e1)
		require.Equal(t, http.StatusPreconditionFailed, res.status, "%s", res.body)
		_, msg := res.apiError(t)
		assert.Equal(t, "The version of the existing record doesn't match the RowVersion property provided.", msg)
		assert.Equal(t, "v2", c.get(path)["csp_name"])
		assert.Equal(t, e3, etag(), "a refused write leaves the version alone")
	})

	t.Run("If-Match current", func(t *testing.T) {
		res := c.do(http.MethodPatch, path, map[string]any{"csp_name": "v3"}, "If-Match", e3, "Prefer", "return=representation")
		require.Equal(t, http.StatusOK, res.status, "an update with return=representation is 200: %s", res.body)
		body := res.json(t)
		assert.Equal(t, "v3", body["csp_name"])
		assert.NotEqual(t, e3, body["@odata.etag"])
	})

	t.Run("If-Match * on a missing row", func(t *testing.T) {
		missing := uuid.NewString()
		res := c.do(http.MethodPatch, "csp_providers("+missing+")", map[string]any{"csp_name": "x"}, "If-Match", "*")
		require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
		code, msg := res.apiError(t)
		assert.Empty(t, code)
		assert.Equal(t, "csp_provider With Id = "+missing+" Does Not Exist", msg)
		_, exists := srv.Row("csp_provider", missing)
		assert.False(t, exists)
	})

	t.Run("If-Match * on an existing row", func(t *testing.T) {
		res := c.do(http.MethodPatch, path, map[string]any{"csp_name": "v4"}, "If-Match", "*")
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Equal(t, srv.URL+api+path, res.header.Get("OData-EntityId"))
		assert.Equal(t, "v4", c.get(path)["csp_name"])
	})

	t.Run("If-None-Match * on an existing row", func(t *testing.T) {
		res := c.do(http.MethodPatch, path, map[string]any{"csp_name": "nope"}, "If-None-Match", "*")
		require.Equal(t, http.StatusPreconditionFailed, res.status, "%s", res.body)
		_, msg := res.apiError(t)
		assert.Equal(t, "A record with matching key values already exists.", msg)
	})

	t.Run("PATCH by id creates", func(t *testing.T) {
		newID := uuid.NewString()
		res := c.do(http.MethodPatch, "csp_providers("+newID+")", map[string]any{"csp_name": "upserted"})
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Equal(t, srv.URL+api+"csp_providers("+newID+")", res.header.Get("OData-EntityId"))
		assert.Equal(t, "upserted", c.get("csp_providers(" + newID + ")")["csp_name"])

		other := uuid.NewString()
		res = c.do(http.MethodPatch, "csp_providers("+other+")", map[string]any{"csp_name": "represented"}, "Prefer", "return=representation")
		require.Equal(t, http.StatusCreated, res.status, "an upsert that creates is 201 with return=representation: %s", res.body)
		assert.Equal(t, other, res.json(t)["csp_providerid"])
	})

	t.Run("DELETE", func(t *testing.T) {
		victim := c.create("csp_providers", map[string]any{"csp_name": "victim"})
		vpath := "csp_providers(" + victim + ")"
		stale := c.get(vpath)["@odata.etag"].(string)
		require.Equal(t, http.StatusNoContent, c.do(http.MethodPatch, vpath, map[string]any{"csp_name": "changed"}).status)
		assert.Equal(t, http.StatusPreconditionFailed, c.do(http.MethodDelete, vpath, nil, "If-Match", stale).status)
		assert.Equal(t, http.StatusNoContent, c.do(http.MethodDelete, vpath, nil).status)
		assert.Equal(t, http.StatusNotFound, c.do(http.MethodGet, vpath, nil).status)
		assert.Equal(t, http.StatusNotFound, c.do(http.MethodDelete, vpath, nil).status)
	})
}

func TestAlternateKey(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	provider := c.create("csp_providers", map[string]any{"csp_name": "Partner Center"})
	byKey := func(tenant string) string {
		return "csp_provideraccounts(_csp_provider_value=" + provider + ",csp_tenantid=" + tenant + ")"
	}

	res := c.do(http.MethodPatch, byKey("'abc'"), map[string]any{"csp_name": "first"})
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	assert.Equal(t, srv.URL+api+"csp_provideraccounts(_csp_provider_value="+provider+",csp_tenantid='abc')", res.header.Get("OData-EntityId"),
		"an upsert by alternate key is named by its key values, not its id")
	id := c.get(byKey("'abc'"))["csp_provideraccountid"].(string)

	t.Run("upsert updates the same row", func(t *testing.T) {
		res := c.do(http.MethodPatch, byKey("'abc'"), map[string]any{"csp_name": "second"})
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Equal(t, srv.URL+api+"csp_provideraccounts(_csp_provider_value="+provider+",csp_tenantid='abc')", res.header.Get("OData-EntityId"))
		row := c.get(byKey("'abc'"))
		assert.Equal(t, id, row["csp_provideraccountid"])
		assert.Equal(t, "second", row["csp_name"])
		assert.Equal(t, "abc", row["csp_tenantid"])
		assert.Equal(t, provider, row["_csp_provider_value"])
		assert.Len(t, srv.Rows("csp_provideraccount"), 1)

		res = c.do(http.MethodPatch, byKey("'abc'")+"?$select=csp_provideraccountid", map[string]any{"csp_name": "third"}, "Prefer", "return=representation")
		require.Equal(t, http.StatusOK, res.status, "an upsert that updates is 200: %s", res.body)
		assert.Equal(t, id, res.json(t)["csp_provideraccountid"], "the representation carries the id")
		assert.Empty(t, res.header.Get("OData-EntityId"), "the row is in the body")
	})

	t.Run("key values in OData-EntityId are percent-encoded", func(t *testing.T) {
		res := c.do(http.MethodPatch, byKey("'Provider%20Account%20Sync'"), map[string]any{"csp_name": "spaced"})
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Equal(t, srv.URL+api+"csp_provideraccounts(_csp_provider_value="+provider+",csp_tenantid='Provider%20Account%20Sync')", res.header.Get("OData-EntityId"))
		res = c.do(http.MethodPatch, byKey("'new-one'")+"?$select=csp_provideraccountid", map[string]any{"csp_name": "created"}, "Prefer", "return=representation")
		require.Equal(t, http.StatusCreated, res.status, "an upsert that creates is 201: %s", res.body)
		assert.NotEqual(t, id, res.json(t)["csp_provideraccountid"])
	})

	t.Run("key values match case-insensitively", func(t *testing.T) {
		assert.Equal(t, id, c.get(byKey("'ABC'"))["csp_provideraccountid"])
	})

	t.Run("a key lookup is a lookup", func(t *testing.T) {
		row := c.get(byKey("'abc'"), "Prefer", `odata.include-annotations="*"`)
		assert.Equal(t, "csp_provider", row["_csp_provider_value@Microsoft.Dynamics.CRM.lookuplogicalname"])
		assert.Equal(t, "Partner Center", row["_csp_provider_value@OData.Community.Display.V1.FormattedValue"])
	})

	t.Run("If-None-Match * on an existing key", func(t *testing.T) {
		res := c.do(http.MethodPatch, byKey("'abc'"), map[string]any{"csp_name": "nope"}, "If-None-Match", "*")
		require.Equal(t, http.StatusPreconditionFailed, res.status, "%s", res.body)
		code, msg := res.apiError(t)
		assert.Empty(t, code)
		assert.Equal(t, "A record with matching key values already exists.", msg)
	})

	t.Run("If-None-Match * on a new key creates", func(t *testing.T) {
		res := c.do(http.MethodPatch, byKey("'def'"), map[string]any{"csp_name": "created"}, "If-None-Match", "*")
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.NotEqual(t, id, c.get(byKey("'def'"))["csp_provideraccountid"])
	})

	t.Run("GET by a missing key", func(t *testing.T) {
		res := c.do(http.MethodGet, byKey("'nope'"), nil)
		require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
		code, msg := res.apiError(t)
		assert.Equal(t, "0x80060891", code)
		assert.Equal(t, "A record with the specified key values does not exist in csp_provideraccount entity", msg)
	})

	t.Run("If-Match * on a missing key", func(t *testing.T) {
		res := c.do(http.MethodPatch, byKey("'nope'"), map[string]any{"csp_name": "x"}, "If-Match", "*")
		require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
		code, _ := res.apiError(t)
		assert.Equal(t, "0x80060891", code)
	})

	t.Run("POST of a duplicate key", func(t *testing.T) {
		before := len(srv.Rows("csp_provideraccount"))
		res := c.do(http.MethodPost, "csp_provideraccounts", map[string]any{
			"csp_name": "dup", "csp_tenantid": "ABC", "csp_provider@odata.bind": "/csp_providers(" + provider + ")",
		})
		require.Equal(t, http.StatusPreconditionFailed, res.status, "%s", res.body)
		code, msg := res.apiError(t)
		assert.Equal(t, "0x80060892", code, "DuplicateRecordEntityKey")
		assert.Contains(t, msg, "csp_provideraccount_tenant")
		assert.Len(t, srv.Rows("csp_provideraccount"), before)
	})

	t.Run("update into a duplicate key", func(t *testing.T) {
		res := c.do(http.MethodPatch, byKey("'def'"), map[string]any{"csp_tenantid": "abc"})
		require.Equal(t, http.StatusNoContent, res.status, "key columns in the body are ignored on update: %s", res.body)
		other := c.create("csp_provideraccounts", map[string]any{"csp_name": "other", "csp_tenantid": "ghi",
			"csp_provider@odata.bind": "/csp_providers(" + provider + ")"})
		res = c.do(http.MethodPatch, "csp_provideraccounts("+other+")", map[string]any{"csp_tenantid": "abc"})
		require.Equal(t, http.StatusPreconditionFailed, res.status, "%s", res.body)
		assert.Equal(t, "ghi", c.get("csp_provideraccounts(" + other + ")")["csp_tenantid"])
	})

	t.Run("doubled quotes in a key literal", func(t *testing.T) {
		res := c.do(http.MethodPatch, byKey("'O''Brien'"), map[string]any{"csp_name": "quoted"})
		require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
		assert.Equal(t, srv.URL+api+"csp_provideraccounts(_csp_provider_value="+provider+",csp_tenantid='O''Brien')", res.header.Get("OData-EntityId"))
		quoted := c.get(byKey("'O''Brien'"))["csp_provideraccountid"].(string)
		row := c.get("csp_provideraccounts(" + quoted + ")")
		assert.Equal(t, "O'Brien", row["csp_tenantid"])
		assert.Equal(t, quoted, c.get(byKey("'O''Brien'"))["csp_provideraccountid"])
	})

	t.Run("key naming a missing lookup target", func(t *testing.T) {
		missing := uuid.NewString()
		res := c.do(http.MethodPatch, "csp_provideraccounts(_csp_provider_value="+missing+",csp_tenantid='x')", map[string]any{"csp_name": "orphan"})
		require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
		_, msg := res.apiError(t)
		assert.Equal(t, "csp_provider With Id = "+missing+" Does Not Exist", msg)
	})

	t.Run("columns that are not a key", func(t *testing.T) {
		res := c.do(http.MethodGet, "csp_provideraccounts(csp_domain='x.com')", nil)
		require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
		_, msg := res.apiError(t)
		assert.Contains(t, msg, "The key in the request URI is not valid for resource")
	})
}

func TestLookups(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	provider := c.create("csp_providers", map[string]any{"csp_name": "Partner Center"})
	account := c.create("accounts", map[string]any{"name": "Fabrikam"})
	row := c.create("csp_provideraccounts", map[string]any{
		"csp_name": "Fabrikam @ PC", "csp_tenantid": "t1", "csp_mappingstatus": schema.MappingMapped,
		"csp_provider@odata.bind": "/csp_providers(" + provider + ")",
		"csp_account@odata.bind":  srv.URL + api + "accounts(" + account + ")",
	})
	path := "csp_provideraccounts(" + row + ")"

	t.Run("bind stores the lookup value", func(t *testing.T) {
		body := c.get(path)
		assert.Equal(t, provider, body["_csp_provider_value"])
		assert.Equal(t, account, body["_csp_account_value"], "an absolute URL binds too")
		assert.NotContains(t, body, "csp_provider", "the navigation property is not a column")
		for k := range body {
			assert.False(t, strings.Contains(k, "@") && k != "@odata.etag" && k != "@odata.context",
				"annotation %s without Prefer: odata.include-annotations", k)
		}
	})

	t.Run("formatted values with include-annotations", func(t *testing.T) {
		body := c.get(path, "Prefer", `odata.include-annotations="*"`)
		assert.Equal(t, "csp_provider", body["_csp_provider_value@Microsoft.Dynamics.CRM.lookuplogicalname"])
		assert.Equal(t, "Partner Center", body["_csp_provider_value@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, "account", body["_csp_account_value@Microsoft.Dynamics.CRM.lookuplogicalname"])
		assert.Equal(t, "Fabrikam", body["_csp_account_value@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, "Mapped", body["csp_mappingstatus@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, "Active", body["statecode@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, "Active", body["statuscode@OData.Community.Display.V1.FormattedValue"])
		assert.NotContains(t, body, "csp_domain@OData.Community.Display.V1.FormattedValue", "null has no formatted value")
	})

	t.Run("formatted values in a collection", func(t *testing.T) {
		res := c.do(http.MethodGet, "csp_provideraccounts?$select=csp_mappingstatus,_csp_provider_value", nil, "Prefer", `odata.include-annotations="*"`)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		rows := values(t, res.json(t))
		require.Len(t, rows, 1)
		assert.Equal(t, "Mapped", rows[0]["csp_mappingstatus@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, "Partner Center", rows[0]["_csp_provider_value@OData.Community.Display.V1.FormattedValue"])
	})

	tests := []struct {
		name         string
		body         map[string]any
		wantStatus   int
		wantContains string
	}{
		{name: "bind to a missing row", body: map[string]any{"csp_provider@odata.bind": "/csp_providers(" + uuid.NewString() + ")"}, wantStatus: 404, wantContains: "Does Not Exist"},
		{name: "bind to the wrong table", body: map[string]any{"csp_provider@odata.bind": "/accounts(" + account + ")"}, wantStatus: 400},
		{name: "bind to an unknown set", body: map[string]any{"csp_provider@odata.bind": "/nosuch(" + provider + ")"}, wantStatus: 404},
		{name: "bind a column that is not a lookup", body: map[string]any{"csp_tenantid@odata.bind": "/csp_providers(" + provider + ")"}, wantStatus: 400},
		{name: "write the lookup value", body: map[string]any{"_csp_provider_value": provider}, wantStatus: 400, wantContains: "_csp_provider_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.get(path)["@odata.etag"]
			res := c.do(http.MethodPatch, path, tt.body)
			require.Equal(t, tt.wantStatus, res.status, "%s", res.body)
			_, msg := res.apiError(t)
			assert.Contains(t, msg, tt.wantContains)
			after := c.get(path)
			assert.Equal(t, before, after["@odata.etag"], "a refused write changes nothing")
			assert.Equal(t, provider, after["_csp_provider_value"])
		})
	}
}

func TestStateAndStatus(t *testing.T) {
	t.Parallel()
	archived, pending := schema.LCLArchived, schema.AgreementPending
	tests := []struct {
		name       string
		set        string
		body       map[string]any
		wantStatus int
		wantState  int
		wantReason int
	}{
		{name: "default", set: "csp_licensechangelogs", body: map[string]any{}, wantStatus: 204, wantState: 0, wantReason: 1},
		{name: "status reason of state 1 flips statecode", set: "csp_licensechangelogs", body: map[string]any{"statuscode": archived}, wantStatus: 204, wantState: 1, wantReason: archived},
		{name: "Inactive flips statecode", set: "csp_licensechangelogs", body: map[string]any{"statuscode": 2}, wantStatus: 204, wantState: 1, wantReason: 2},
		{name: "statecode alone takes the state's first reason", set: "csp_licensechangelogs", body: map[string]any{"statecode": 1}, wantStatus: 204, wantState: 1, wantReason: 2},
		{name: "consistent pair", set: "csp_licensechangelogs", body: map[string]any{"statecode": 1, "statuscode": archived}, wantStatus: 204, wantState: 1, wantReason: archived},
		{name: "custom reason of state 0", set: "csp_agreements", body: map[string]any{"statuscode": pending}, wantStatus: 204, wantState: 0, wantReason: pending},
		{name: "inconsistent pair", set: "csp_licensechangelogs", body: map[string]any{"statecode": 0, "statuscode": archived}, wantStatus: 400},
		{name: "inconsistent default pair", set: "csp_licensechangelogs", body: map[string]any{"statecode": 1, "statuscode": 1}, wantStatus: 400},
		{name: "reason of another table", set: "csp_licensechangelogs", body: map[string]any{"statuscode": pending}, wantStatus: 400},
		{name: "unknown state", set: "csp_licensechangelogs", body: map[string]any{"statecode": 2}, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			defer srv.Close()
			c := newWebAPI(t, srv)
			body := map[string]any{"csp_name": tt.name}
			for k, v := range tt.body {
				body[k] = v
			}
			res := c.do(http.MethodPost, tt.set, body)
			require.Equal(t, tt.wantStatus, res.status, "%s", res.body)
			if tt.wantStatus != http.StatusNoContent {
				res.apiError(t)
				return
			}
			row := c.get(tt.set + "(" + entityID(t, res.header.Get("OData-EntityId")) + ")?$select=statecode,statuscode")
			assert.Equal(t, json.Number(strconv.Itoa(tt.wantState)), row["statecode"])
			assert.Equal(t, json.Number(strconv.Itoa(tt.wantReason)), row["statuscode"])
		})
	}

	t.Run("update flips and refuses like create", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		id := c.create("csp_licensechangelogs", map[string]any{"csp_name": "lcl"})
		path := "csp_licensechangelogs(" + id + ")"
		require.Equal(t, http.StatusNoContent, c.do(http.MethodPatch, path, map[string]any{"statuscode": archived}).status)
		row := c.get(path)
		assert.Equal(t, json.Number("1"), row["statecode"])
		assert.Equal(t, json.Number(strconv.Itoa(archived)), row["statuscode"])

		res := c.do(http.MethodPatch, path, map[string]any{"statecode": 0, "statuscode": 2})
		require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
		row = c.get(path)
		assert.Equal(t, json.Number(strconv.Itoa(archived)), row["statuscode"], "a refused state change leaves the row alone")

		require.Equal(t, http.StatusNoContent, c.do(http.MethodPatch, path, map[string]any{"statecode": 0}).status)
		row = c.get(path)
		assert.Equal(t, json.Number("0"), row["statecode"])
		assert.Equal(t, json.Number("1"), row["statuscode"])
	})
}

// seedSubscriptions creates five subscriptions under two providers; names are the test's handles.
func seedSubscriptions(t *testing.T, c webAPI) (p1, p2 string) {
	t.Helper()
	p1 = c.create("csp_providers", map[string]any{"csp_name": "P1"})
	p2 = c.create("csp_providers", map[string]any{"csp_name": "P2"})
	bind := func(p string) string { return "/csp_providers(" + p + ")" }
	for _, row := range []map[string]any{
		{"csp_name": "Alpha", "csp_quantity": 5, "csp_offerid": "O-1", "csp_provider@odata.bind": bind(p1), "csp_commitmentenddate": "2026-03-01T00:00:00Z"},
		{"csp_name": "beta", "csp_quantity": 10, "csp_offerid": "O-2", "csp_provider@odata.bind": bind(p1), "csp_commitmentenddate": "2026-01-01T00:00:00Z"},
		{"csp_name": "Gamma", "csp_offerid": "X-3", "csp_provider@odata.bind": bind(p2)},
		{"csp_name": "delta", "csp_quantity": 1, "csp_provider@odata.bind": bind(p2), "csp_commitmentenddate": "2027-01-01T00:00:00Z"},
		{"csp_name": "O'Brien Epsilon", "csp_quantity": 7, "csp_offerid": "O-5"},
	} {
		c.create("csp_subscriptions", row)
	}
	return p1, p2
}

func TestQuery(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	p1, _ := seedSubscriptions(t, c)

	tests := []struct {
		name        string
		query       string
		want        []any // csp_name in answer order
		unordered   bool
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{name: "eq is case-insensitive", query: query("$filter", "csp_name eq 'ALPHA'"), want: []any{"Alpha"}},
		{name: "ne", query: query("$filter", "csp_name ne 'alpha'"), want: []any{"beta", "Gamma", "delta", "O'Brien Epsilon"}},
		{name: "gt", query: query("$filter", "csp_quantity gt 5"), want: []any{"beta", "O'Brien Epsilon"}},
		{name: "le on a date", query: query("$filter", "csp_commitmentenddate le 2026-03-01T00:00:00Z"), want: []any{"Alpha", "beta"}},
		{name: "contains", query: query("$filter", "contains(csp_offerid,'o-')"), want: []any{"Alpha", "beta", "O'Brien Epsilon"}},
		{name: "startswith", query: query("$filter", "startswith(csp_name,'g')"), want: []any{"Gamma"}},
		{name: "and", query: query("$filter", "csp_quantity ge 5 and startswith(csp_offerid,'O')"), want: []any{"Alpha", "beta", "O'Brien Epsilon"}},
		{name: "or", query: query("$filter", "csp_name eq 'Gamma' or csp_quantity eq 1"), want: []any{"Gamma", "delta"}},
		{name: "not", query: query("$filter", "not contains(csp_name,'a')"), want: []any{"O'Brien Epsilon"}},
		{name: "parentheses", query: query("$filter", "(csp_quantity lt 6 or csp_quantity gt 8) and _csp_provider_value ne null"), want: []any{"Alpha", "beta", "delta"}},
		{name: "eq null", query: query("$filter", "csp_quantity eq null"), want: []any{"Gamma"}},
		{name: "ne null", query: query("$filter", "csp_offerid ne null"), want: []any{"Alpha", "beta", "Gamma", "O'Brien Epsilon"}},
		{name: "null is not a value", query: query("$filter", "csp_quantity lt 100"), want: []any{"Alpha", "beta", "delta", "O'Brien Epsilon"}},
		{name: "lookup", query: query("$filter", "_csp_provider_value eq "+p1), want: []any{"Alpha", "beta"}},
		{name: "lookup upper-case", query: query("$filter", "_csp_provider_value eq "+strings.ToUpper(p1)), want: []any{"Alpha", "beta"}},
		{name: "In", query: query("$filter", `Microsoft.Dynamics.CRM.In(PropertyName='csp_offerid',PropertyValues=["O-1","X-3"])`), want: []any{"Alpha", "Gamma"}},
		{name: "doubled quote", query: query("$filter", "csp_name eq 'O''Brien Epsilon'"), want: []any{"O'Brien Epsilon"}},
		{name: "orderby asc puts nulls first", query: query("$orderby", "csp_quantity asc"), want: []any{"Gamma", "delta", "Alpha", "O'Brien Epsilon", "beta"}},
		{name: "orderby default is asc", query: query("$orderby", "csp_quantity"), want: []any{"Gamma", "delta", "Alpha", "O'Brien Epsilon", "beta"}},
		{name: "orderby desc puts nulls last", query: query("$orderby", "csp_quantity desc"), want: []any{"beta", "O'Brien Epsilon", "Alpha", "delta", "Gamma"}},
		{name: "orderby text ignores case", query: query("$orderby", "csp_name"), want: []any{"Alpha", "beta", "delta", "Gamma", "O'Brien Epsilon"}},
		{name: "orderby two columns", query: query("$orderby", "_csp_provider_value desc,csp_name desc", "$filter", "_csp_provider_value eq "+p1), want: []any{"beta", "Alpha"}},
		{name: "top", query: query("$orderby", "csp_name", "$top", "2"), want: []any{"Alpha", "beta"}},
		{name: "top with filter", query: query("$filter", "csp_quantity ne null", "$orderby", "csp_quantity desc", "$top", "1"), want: []any{"beta"}},
		{name: "quoted GUID against a Guid", query: query("$filter", "_csp_provider_value eq '"+p1+"'"), wantStatus: 400, wantCode: "0x0"},
		{name: "text against a number", query: query("$filter", "csp_quantity eq '5'"), wantStatus: 400},
		{name: "unknown column", query: query("$filter", "csp_nosuch eq 1"), wantStatus: 400, wantCode: "0x0",
			wantMessage: "Could not find a property named 'csp_nosuch' on type 'Microsoft.Dynamics.CRM.csp_subscription'."},
		{name: "syntax error", query: query("$filter", "csp_name eq"), wantStatus: 400},
		{name: "unterminated literal", query: query("$filter", "csp_name eq 'O'Brien'"), wantStatus: 400},
		{name: "orderby unknown column", query: query("$orderby", "Name"), wantStatus: 400, wantCode: "0x0",
			wantMessage: "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.csp_subscription'."},
		{name: "select unknown column", query: query("$select", "csp_name,csp_nosuch"), wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.do(http.MethodGet, "csp_subscriptions"+tt.query, nil)
			if tt.wantStatus != 0 {
				require.Equal(t, tt.wantStatus, res.status, "%s", res.body)
				code, msg := res.apiError(t)
				if tt.wantCode != "" {
					assert.Equal(t, tt.wantCode, code)
				}
				if tt.wantMessage != "" {
					assert.Equal(t, tt.wantMessage, msg)
				}
				return
			}
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			body := res.json(t)
			assert.Equal(t, srv.URL+api+"$metadata#csp_subscriptions", body["@odata.context"])
			assert.NotContains(t, body, "@odata.nextLink")
			assert.Equal(t, tt.want, column(values(t, body), "csp_name"))
		})
	}

	t.Run("$select in a collection", func(t *testing.T) {
		res := c.do(http.MethodGet, "csp_subscriptions"+query("$select", "csp_name,_csp_provider_value", "$filter", "csp_name eq 'Alpha'"), nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		rows := values(t, res.json(t))
		require.Len(t, rows, 1)
		assert.Equal(t, []string{"@odata.etag", "_csp_provider_value", "csp_name", "csp_subscriptionid"}, keys(rows[0]))
		assert.Equal(t, p1, rows[0]["_csp_provider_value"])
	})

	t.Run("$count", func(t *testing.T) {
		body := c.get("csp_subscriptions" + query("$count", "true", "$filter", "csp_quantity gt 1", "$select", "csp_name"))
		assert.Equal(t, json.Number("3"), body["@odata.count"])
		assert.Len(t, values(t, body), 3)
		assert.NotContains(t, c.get("csp_subscriptions"), "@odata.count", "no count unless asked")
	})
}

func TestPaging(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	const n = 23
	want := map[string]bool{}
	for i := range n {
		id := c.create("csp_jobruns", map[string]any{"csp_name": fmt.Sprintf("run %02d", i), "csp_processed": i % 4})
		want[id] = true
	}

	tests := []struct {
		name      string
		query     string
		pageSize  int
		wantPages []int
		wantRows  int
	}{
		{name: "all rows", query: "?$select=csp_name", pageSize: 5, wantPages: []int{5, 5, 5, 5, 3}, wantRows: n},
		{name: "exact multiple", query: query("$select", "csp_name", "$filter", "csp_processed ne 3"), pageSize: 6, wantPages: []int{6, 6, 6}, wantRows: 18},
		{name: "filtered and ordered", query: query("$filter", "csp_processed ge 2", "$orderby", "csp_name desc"), pageSize: 4, wantPages: []int{4, 4, 3}, wantRows: 11},
		{name: "top is ignored with maxpagesize", query: query("$top", "2", "$select", "csp_name"), pageSize: 10, wantPages: []int{10, 10, 3}, wantRows: n},
		{name: "one page", query: "?$select=csp_name", pageSize: 100, wantPages: []int{n}, wantRows: n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefer := "odata.maxpagesize=" + strconv.Itoa(tt.pageSize)
			var pages []int
			var names []any
			seen := map[string]int{}
			req := c.request(http.MethodGet, "csp_jobruns"+tt.query, nil, "Prefer", prefer)
			for range 20 {
				res := c.send(req)
				require.Equal(t, http.StatusOK, res.status, "%s", res.body)
				body := res.json(t)
				rows := values(t, body)
				pages = append(pages, len(rows))
				for _, r := range rows {
					seen[r["csp_jobrunid"].(string)]++
					names = append(names, r["csp_name"])
				}
				next, ok := body["@odata.nextLink"].(string)
				if !ok {
					break
				}
				assert.True(t, strings.HasPrefix(next, srv.URL+api+"csp_jobruns?"), "nextLink %s is absolute", next)
				assert.Contains(t, next, "skiptoken")
				var err error
				req, err = http.NewRequestWithContext(t.Context(), http.MethodGet, next, nil)
				require.NoError(t, err)
				req.Header.Set("Accept", "application/json")
				req.Header.Set("Prefer", prefer)
			}
			assert.Equal(t, tt.wantPages, pages)
			assert.Len(t, seen, tt.wantRows)
			for id, times := range seen {
				assert.Equal(t, 1, times, "row %s seen once", id)
				assert.True(t, want[id])
			}
			// The pages together are the one-shot answer, in the same order.
			all := c.get("csp_jobruns" + tt.query)
			if !strings.Contains(tt.query, "top") {
				assert.Equal(t, column(values(t, all), "csp_name"), names)
			}
		})
	}

	t.Run("a malformed skiptoken", func(t *testing.T) {
		res := c.do(http.MethodGet, "csp_jobruns?$skiptoken=%25%25", nil, "Prefer", "odata.maxpagesize=5")
		assert.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	})

	t.Run("count with paging", func(t *testing.T) {
		body := c.get("csp_jobruns?$count=true&$select=csp_name", "Prefer", "odata.maxpagesize=5")
		assert.Equal(t, json.Number(strconv.Itoa(n)), body["@odata.count"], "the count is of all rows, not the page")
		assert.Len(t, values(t, body), 5)
	})
}

// batchOp is one operation of a $batch request body built by hand.
type batchOp struct {
	method    string
	url       string // below /api/data/v9.2/, or a $n reference
	body      string
	contentID string
	headers   []string
}

// changeSet is a group of operations run as one transaction.
type changeSet []batchOp

// batchBody builds a multipart/mixed $batch body from batchOp and changeSet items, with CRLF line ends and
// no Content-Length in the parts, like the documentation's samples.
func batchBody(items ...any) (contentType, body string) {
	outer := "batch_" + uuid.NewString()
	var b strings.Builder
	for _, it := range items {
		b.WriteString("--" + outer + "\r\n")
		switch x := it.(type) {
		case batchOp:
			writeBatchOp(&b, x)
		case changeSet:
			inner := "changeset_" + uuid.NewString()
			b.WriteString("Content-Type: multipart/mixed; boundary=\"" + inner + "\"\r\n\r\n")
			for _, op := range x {
				b.WriteString("--" + inner + "\r\n")
				writeBatchOp(&b, op)
			}
			b.WriteString("--" + inner + "--\r\n\r\n")
		default:
			panic(fmt.Sprintf("batch item %T", it))
		}
	}
	b.WriteString("--" + outer + "--\r\n")
	return "multipart/mixed; boundary=\"" + outer + "\"", b.String()
}

func writeBatchOp(b *strings.Builder, op batchOp) {
	b.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
	if op.contentID != "" {
		b.WriteString("Content-ID: " + op.contentID + "\r\n")
	}
	b.WriteString("\r\n")
	target := op.url
	if !strings.HasPrefix(target, "$") {
		target = api + target
	}
	b.WriteString(op.method + " " + target + " HTTP/1.1\r\n")
	if op.body != "" {
		b.WriteString("Content-Type: application/json; type=entry\r\n")
	}
	for i := 0; i+1 < len(op.headers); i += 2 {
		b.WriteString(op.headers[i] + ": " + op.headers[i+1] + "\r\n")
	}
	b.WriteString("\r\n") // end of the headers
	// The CRLF before the next boundary belongs to the boundary, not to the part.
	b.WriteString(op.body + "\r\n")
}

// batchPart is one answer inside a $batch response.
type batchPart struct {
	status      int
	header      http.Header
	body        []byte
	contentID   string
	inChangeSet bool
}

func (c webAPI) batch(contentType, body string, headers ...string) (response, []batchPart) {
	c.t.Helper()
	res := c.do(http.MethodPost, "$batch", body, append([]string{"Content-Type", contentType}, headers...)...)
	if !strings.HasPrefix(res.header.Get("Content-Type"), "multipart/") {
		return res, nil
	}
	return res, readBatchResponse(c.t, res)
}

// readBatchResponse parses a batch response with mime/multipart and http.ReadResponse.
func readBatchResponse(t *testing.T, res response) []batchPart {
	t.Helper()
	mediaType, params, err := mime.ParseMediaType(res.header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/mixed", mediaType)
	require.True(t, strings.HasPrefix(params["boundary"], "batchresponse_"), "boundary %q", params["boundary"])
	var parts []batchPart
	read := func(r io.Reader, h textprotoHeader, inChangeSet bool) {
		resp, err := http.ReadResponse(bufio.NewReader(r), nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		parts = append(parts, batchPart{status: resp.StatusCode, header: resp.Header, body: bytes.TrimSpace(body),
			contentID: h.Get("Content-ID"), inChangeSet: inChangeSet})
	}
	mr := multipart.NewReader(bytes.NewReader(res.body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		mt, ps, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		require.NoError(t, err)
		if mt != "multipart/mixed" {
			require.Equal(t, "application/http", mt)
			read(p, p.Header, false)
			continue
		}
		require.True(t, strings.HasPrefix(ps["boundary"], "changesetresponse_"), "boundary %q", ps["boundary"])
		cr := multipart.NewReader(p, ps["boundary"])
		for {
			cp, err := cr.NextPart()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			read(cp, cp.Header, true)
		}
	}
	return parts
}

type textprotoHeader interface{ Get(string) string }

func statuses(parts []batchPart) []int {
	out := make([]int, len(parts))
	for i, p := range parts {
		out[i] = p.status
	}
	return out
}

func providerNames(t *testing.T, srv *dataversetest.Server) []string {
	t.Helper()
	var out []string
	for _, r := range srv.Rows("csp_provider") {
		out = append(out, r["csp_name"].(string))
	}
	return out
}

func createProvider(name string) batchOp {
	return batchOp{method: http.MethodPost, url: "csp_providers", body: `{"csp_name":"` + name + `"}`}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	bad := batchOp{method: http.MethodPost, url: "csp_providers", body: `{"csp_name":"bad","csp_nosuch":1}`}

	t.Run("independent operations stop at the first failure", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		res, parts := c.batch(batchBody(createProvider("A"), bad, createProvider("C")))
		require.Equal(t, http.StatusBadRequest, res.status, "the batch answers with the failing status: %s", res.body)
		assert.Equal(t, []int{204, 400}, statuses(parts))
		assert.Regexp(t, `^`+regexp.QuoteMeta(srv.URL+api)+`csp_providers\([0-9a-f-]{36}\)$`, parts[0].header.Get("OData-EntityId"))
		code, _ := response{body: parts[1].body}.apiError(t)
		assert.Equal(t, "0x80048d19", code)
		assert.Equal(t, []string{"A"}, providerNames(t, srv), "operations after the failure do not run")
	})

	t.Run("continue-on-error answers every operation", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		ct, body := batchBody(createProvider("A"), bad, createProvider("C"))
		res, parts := c.batch(ct, body, "Prefer", "odata.continue-on-error")
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		assert.Equal(t, []int{204, 400, 204}, statuses(parts))
		assert.Equal(t, []string{"A", "C"}, providerNames(t, srv))
	})

	t.Run("a failed change set rolls back", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		existing := c.create("csp_providers", map[string]any{"csp_name": "before"})
		etag := c.get("csp_providers(" + existing + ")")["@odata.etag"]
		res, parts := c.batch(batchBody(changeSet{
			createProvider("A"),
			{method: http.MethodPatch, url: "csp_providers(" + existing + ")", body: `{"csp_name":"changed"}`},
			{method: http.MethodDelete, url: "csp_providers(" + existing + ")"},
			bad,
		}))
		require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
		require.NotEmpty(t, parts)
		assert.Equal(t, 400, parts[len(parts)-1].status)
		assert.Equal(t, []string{"before"}, providerNames(t, srv), "the create is undone")
		row := c.get("csp_providers(" + existing + ")")
		assert.Equal(t, "before", row["csp_name"], "the update and the delete are undone")
		assert.Equal(t, etag, row["@odata.etag"])
	})

	t.Run("a failed change set with continue-on-error", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		ct, body := batchBody(changeSet{createProvider("A"), bad}, createProvider("B"))
		res, parts := c.batch(ct, body, "Prefer", "odata.continue-on-error")
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Len(t, parts, 2)
		assert.Equal(t, 400, parts[0].status)
		assert.Equal(t, 204, parts[1].status)
		assert.Equal(t, []string{"B"}, providerNames(t, srv))
	})

	t.Run("Content-ID references", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		res, parts := c.batch(batchBody(changeSet{
			{method: http.MethodPost, url: "csp_providers", body: `{"csp_name":"P"}`, contentID: "1"},
			{method: http.MethodPost, url: "csp_provideraccounts", contentID: "2",
				body: `{"csp_name":"acc","csp_tenantid":"t1","csp_provider@odata.bind":"$1"}`},
			{method: http.MethodPatch, url: "$2", body: `{"csp_domain":"fabrikam.example"}`, contentID: "3"},
		}))
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Len(t, parts, 3)
		for i, p := range parts {
			assert.Equal(t, 204, p.status, "part %d: %s", i, p.body)
			assert.True(t, p.inChangeSet)
			assert.Equal(t, strconv.Itoa(i+1), p.contentID)
		}
		provider := entityID(t, parts[0].header.Get("OData-EntityId"))
		account := entityID(t, parts[1].header.Get("OData-EntityId"))
		assert.Equal(t, account, entityID(t, parts[2].header.Get("OData-EntityId")), "$2 is the row part 2 created")
		row := c.get("csp_provideraccounts(" + account + ")")
		assert.Equal(t, provider, row["_csp_provider_value"])
		assert.Equal(t, "fabrikam.example", row["csp_domain"])
	})

	t.Run("GET and headers inside a batch", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		id := c.create("csp_providers", map[string]any{"csp_name": "Contoso", "csp_type": schema.ProviderManual})
		res, parts := c.batch(batchBody(
			batchOp{method: http.MethodGet, url: "csp_providers(" + id + ")?$select=csp_name,csp_type",
				headers: []string{"Prefer", `odata.include-annotations="*"`}},
			batchOp{method: http.MethodPost, url: "csp_providers?$select=csp_name", body: `{"csp_name":"Represented"}`,
				headers: []string{"Prefer", "return=representation"}},
			batchOp{method: http.MethodGet, url: "csp_providers?$filter=csp_name%20eq%20'Contoso'&$select=csp_name"},
		))
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Equal(t, []int{200, 201, 200}, statuses(parts))
		got := decodeJSON(t, parts[0].body)
		assert.Equal(t, "Contoso", got["csp_name"])
		assert.Equal(t, "Manual", got["csp_type@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, "Represented", decodeJSON(t, parts[1].body)["csp_name"])
		assert.Equal(t, []any{"Contoso"}, column(values(t, decodeJSON(t, parts[2].body)), "csp_name"))
	})

	t.Run("bare LF line ends", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		ct, body := batchBody(
			changeSet{createProvider("one"), {method: http.MethodPost, url: "csp_providers", body: "{\n  \"csp_name\": \"two\"\n}"}},
			batchOp{method: http.MethodGet, url: "csp_providers?$select=csp_name&$orderby=csp_name"},
		)
		res, parts := c.batch(ct, strings.ReplaceAll(body, "\r\n", "\n"))
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Equal(t, []int{204, 204, 200}, statuses(parts))
		assert.Equal(t, []any{"one", "two"}, column(values(t, decodeJSON(t, parts[2].body)), "csp_name"))
	})

	t.Run("the documentation's sample shape", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		account := c.create("accounts", map[string]any{"name": "Fabrikam"})
		// As in vectors/dataverse/batch-changeset.http: LF line ends, quoted boundaries, no Content-Length,
		// a relative bind without a leading slash, blank lines after the change set.
		body := strings.Join([]string{
			"--batch_22975cad",
			`Content-Type: multipart/mixed; boundary="changeset_246e6bfe"`,
			"",
			"--changeset_246e6bfe",
			"Content-Type: application/http",
			"Content-Transfer-Encoding: binary",
			"Content-ID: 1",
			"",
			"POST /api/data/v9.2/contacts HTTP/1.1",
			"Content-Type: application/json; type=entry",
			"",
			"{",
			`  "fullname": "Contact 1 in batch",`,
			`  "parentcustomerid@odata.bind": "accounts(` + account + `)"`,
			"}",
			"--changeset_246e6bfe--",
			"",
			"--batch_22975cad",
			"Content-Type: application/http",
			"Content-Transfer-Encoding: binary",
			"",
			"GET /api/data/v9.2/contacts?$select=fullname HTTP/1.1",
			"",
			"",
			"--batch_22975cad--",
			"",
		}, "\n")
		res, parts := c.batch(`multipart/mixed; boundary="batch_22975cad"`, body)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Equal(t, []int{204, 200}, statuses(parts), "%s", res.body)
		assert.Equal(t, "1", parts[0].contentID)
		rows := values(t, decodeJSON(t, parts[1].body))
		require.Len(t, rows, 1)
		assert.Equal(t, "Contact 1 in batch", rows[0]["fullname"])
	})

	refusals := []struct {
		name  string
		items []any
	}{
		{name: "more than 1000 operations", items: func() []any {
			items := make([]any, 1001)
			for i := range items {
				items[i] = batchOp{method: http.MethodGet, url: "WhoAmI"}
			}
			return items
		}()},
		{name: "more than 1000 operations in change sets", items: func() []any {
			cs := make(changeSet, 1001)
			for i := range cs {
				cs[i] = createProvider("x")
			}
			return []any{cs}
		}()},
		{name: "GET inside a change set", items: []any{changeSet{{method: http.MethodGet, url: "WhoAmI"}}}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			defer srv.Close()
			c := newWebAPI(t, srv)
			res, _ := c.batch(batchBody(tt.items...))
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			res.apiError(t)
			assert.Empty(t, srv.Rows("csp_provider"), "a refused batch runs nothing")
		})
	}

	t.Run("exactly 1000 operations", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		items := make([]any, 1000)
		for i := range items {
			items[i] = batchOp{method: http.MethodGet, url: "WhoAmI"}
		}
		res, parts := c.batch(batchBody(items...))
		require.Equal(t, http.StatusOK, res.status)
		assert.Len(t, parts, 1000)
	})

	t.Run("not multipart", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		res, _ := c.batch("application/json", `{"requests":[]}`)
		assert.Equal(t, http.StatusBadRequest, res.status)
	})
}

// bankAccountTable is the body of vectors/dataverse/metadata-create-table-request.http.
const bankAccountTable = `{
 "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
 "Attributes": [
  {
   "AttributeType": "String",
   "AttributeTypeName": {"Value": "StringType"},
   "Description": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": "Type the name of the bank account", "LanguageCode": 1033}]},
   "DisplayName": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": "Account Name", "LanguageCode": 1033}]},
   "IsPrimaryName": true,
   "RequiredLevel": {"Value": "None", "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
   "SchemaName": "new_AccountName",
   "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
   "FormatName": {"Value": "Text"},
   "MaxLength": 100
  }
 ],
 "Description": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": "An entity to store information about customer bank accounts", "LanguageCode": 1033}]},
 "DisplayCollectionName": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": "Bank Accounts", "LanguageCode": 1033}]},
 "DisplayName": {"@odata.type": "Microsoft.Dynamics.CRM.Label", "LocalizedLabels": [{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": "Bank Account", "LanguageCode": 1033}]},
 "HasActivities": false,
 "HasNotes": false,
 "IsActivity": false,
 "OwnershipType": "UserOwned",
 "SchemaName": "new_BankAccount"
}`

func label(text string) map[string]any {
	return map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.Label",
		"LocalizedLabels": []any{map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": 1033}}}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	publisher := c.create("publishers", map[string]any{"uniquename": "examplepublisher", "friendlyname": "Example", "customizationprefix": "new", "customizationoptionvalueprefix": 72700})
	c.create("solutions", map[string]any{"uniquename": "examplesolution", "friendlyname": "Example", "publisherid@odata.bind": "/publishers(" + publisher + ")"})
	solution := []string{"MSCRM.SolutionUniqueName", "examplesolution"}
	definition := "EntityDefinitions(LogicalName='new_bankaccount')"

	res := c.do(http.MethodPost, "EntityDefinitions", bankAccountTable, solution...)
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	assert.Regexp(t, `^`+regexp.QuoteMeta(srv.URL+api)+`EntityDefinitions\([0-9a-f-]{36}\)$`, res.header.Get("OData-EntityId"))
	metadataID := entityID(t, res.header.Get("OData-EntityId"))

	steps := []struct {
		name string
		path string
		body map[string]any
		want int
	}{
		{name: "choice column", path: definition + "/Attributes", want: 204, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", "AttributeType": "Picklist", "SchemaName": "new_Kind",
			"DisplayName": label("Kind"), "RequiredLevel": map[string]any{"Value": "None"},
			"OptionSet": map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata", "IsGlobal": false, "OptionSetType": "Picklist",
				"Options": []any{map[string]any{"Value": 727000000, "Label": label("One")}, map[string]any{"Value": 727000001, "Label": label("Two")}}},
		}},
		{name: "text column", path: definition + "/Attributes", want: 204, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "AttributeType": "String", "SchemaName": "new_Code",
			"DisplayName": label("Code"), "MaxLength": 10, "FormatName": map[string]any{"Value": "Text"},
		}},
		{name: "second text column", path: definition + "/Attributes", want: 204, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "AttributeType": "String", "SchemaName": "new_Ref",
			"DisplayName": label("Reference"), "MaxLength": 20,
		}},
		{name: "column without the prefix", path: definition + "/Attributes", want: 400, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "other_Code", "MaxLength": 10,
		}},
		{name: "duplicate column", path: definition + "/Attributes", want: 400, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "new_Code", "MaxLength": 10,
		}},
		{name: "lookup", path: "RelationshipDefinitions", want: 204, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata", "SchemaName": "new_account_new_bankaccount",
			"ReferencedEntity": "account", "ReferencedAttribute": "accountid", "ReferencingEntity": "new_bankaccount",
			"ReferencingEntityNavigationPropertyName": "new_account",
			"CascadeConfiguration":                    map[string]any{"Assign": "NoCascade", "Delete": "RemoveLink", "Merge": "NoCascade", "Reparent": "NoCascade", "Share": "NoCascade", "Unshare": "NoCascade"},
			"Lookup": map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata", "AttributeType": "Lookup",
				"AttributeTypeName": map[string]any{"Value": "LookupType"}, "SchemaName": "new_Account", "DisplayName": label("Account")},
		}},
		{name: "key", path: definition + "/Keys", want: 204, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.EntityKeyMetadata", "SchemaName": "new_bankaccount_code", "DisplayName": label("Code"), "KeyAttributes": []string{"new_code"},
		}},
		{name: "key on a missing column", path: definition + "/Keys", want: 400, body: map[string]any{
			"SchemaName": "new_bankaccount_nosuch", "KeyAttributes": []string{"new_nosuch"},
		}},
		{name: "option", path: "InsertOptionValue", want: 200, body: map[string]any{
			"EntityLogicalName": "new_bankaccount", "AttributeLogicalName": "new_kind", "Value": 727000002, "Label": label("Three"), "SolutionUniqueName": "examplesolution",
		}},
		{name: "duplicate option", path: "InsertOptionValue", want: 400, body: map[string]any{
			"EntityLogicalName": "new_bankaccount", "AttributeLogicalName": "new_kind", "Value": 727000002, "Label": label("Again"),
		}},
		{name: "status reason", path: "InsertStatusValue", want: 200, body: map[string]any{
			"EntityLogicalName": "new_bankaccount", "AttributeLogicalName": "statuscode", "Value": 727000010, "StateCode": 1, "Label": label("Closed"),
		}},
		{name: "table without the prefix", path: "EntityDefinitions", want: 400, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata", "SchemaName": "other_Thing", "OwnershipType": "UserOwned",
			"DisplayName": label("Thing"), "DisplayCollectionName": label("Things"),
			"Attributes": []any{map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata", "SchemaName": "other_Name", "IsPrimaryName": true, "MaxLength": 100}},
		}},
		{name: "table without a primary name", path: "EntityDefinitions", want: 400, body: map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata", "SchemaName": "new_Thing", "OwnershipType": "UserOwned", "Attributes": []any{},
		}},
	}
	for _, st := range steps {
		res := c.do(http.MethodPost, st.path, st.body, solution...)
		require.Equal(t, st.want, res.status, "%s: %s", st.name, res.body)
		if st.want >= 400 {
			res.apiError(t)
		}
		if st.name == "option" {
			assert.Equal(t, json.Number("727000002"), res.json(t)["NewOptionValue"])
		}
	}

	t.Run("the table reads back", func(t *testing.T) {
		body := c.get(definition)
		assert.Equal(t, metadataID, body["MetadataId"])
		assert.Equal(t, "new_bankaccount", body["LogicalName"])
		assert.Equal(t, "new_bankaccounts", body["EntitySetName"])
		assert.Equal(t, "new_bankaccountid", body["PrimaryIdAttribute"])
		assert.Equal(t, "new_accountname", body["PrimaryNameAttribute"])
		types := map[string]any{}
		for _, a := range body["Attributes"].([]any) {
			m := a.(map[string]any)
			types[m["LogicalName"].(string)] = m["AttributeType"]
		}
		assert.Equal(t, "String", types["new_accountname"])
		assert.Equal(t, "Picklist", types["new_kind"])
		assert.Equal(t, "String", types["new_code"])
		assert.Equal(t, "Lookup", types["new_account"])
		assert.NotContains(t, types, "other_code")
		keys := body["Keys"].([]any)
		require.Len(t, keys, 1)
		assert.Equal(t, "new_bankaccount_code", keys[0].(map[string]any)["SchemaName"])
		assert.Equal(t, "Active", keys[0].(map[string]any)["EntityKeyIndexStatus"])
	})

	t.Run("the choice options read back", func(t *testing.T) {
		body := c.get(definition + "/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet")
		attrs := values(t, body)
		require.Len(t, attrs, 1)
		assert.Equal(t, "new_kind", attrs[0]["LogicalName"])
		var got []string
		for _, o := range attrs[0]["OptionSet"].(map[string]any)["Options"].([]any) {
			m := o.(map[string]any)
			got = append(got, fmt.Sprintf("%v=%v", m["Value"], m["Label"].(map[string]any)["UserLocalizedLabel"].(map[string]any)["Label"]))
		}
		assert.Equal(t, []string{"727000000=One", "727000001=Two", "727000002=Three"}, got)
	})

	t.Run("the status reasons read back", func(t *testing.T) {
		attrs := values(t, c.get(definition+"/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata"))
		require.Len(t, attrs, 1)
		var got []string
		for _, o := range attrs[0]["OptionSet"].(map[string]any)["Options"].([]any) {
			m := o.(map[string]any)
			got = append(got, fmt.Sprintf("%v/%v", m["Value"], m["State"]))
		}
		assert.Equal(t, []string{"1/0", "2/1", "727000010/1"}, got)
	})

	t.Run("rows use the new columns", func(t *testing.T) {
		account := c.create("accounts", map[string]any{"name": "Fabrikam"})
		id := c.create("new_bankaccounts", map[string]any{"new_accountname": "Main", "new_kind": 727000002, "new_code": "A1",
			"new_account@odata.bind": "/accounts(" + account + ")", "statuscode": 727000010})
		row := c.get("new_bankaccounts("+id+")", "Prefer", `odata.include-annotations="*"`)
		assert.Equal(t, "Three", row["new_kind@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, account, row["_new_account_value"])
		assert.Equal(t, json.Number("1"), row["statecode"])
		assert.Equal(t, "Closed", row["statuscode@OData.Community.Display.V1.FormattedValue"])
		assert.Equal(t, id, c.get("new_bankaccounts(new_code='A1')")["new_bankaccountid"], "the new key addresses rows")
		res := c.do(http.MethodPost, "new_bankaccounts", map[string]any{"new_accountname": "Dup", "new_code": "a1"})
		assert.Equal(t, http.StatusPreconditionFailed, res.status, "the new key is unique: %s", res.body)
		res = c.do(http.MethodPost, "new_bankaccounts", map[string]any{"new_code": "12345678901"})
		assert.Equal(t, http.StatusBadRequest, res.status, "MaxLength of the new column: %s", res.body)
	})

	t.Run("a key over duplicate data fails to build", func(t *testing.T) {
		c.create("new_bankaccounts", map[string]any{"new_accountname": "r1", "new_ref": "same"})
		c.create("new_bankaccounts", map[string]any{"new_accountname": "r2", "new_ref": "SAME"})
		res := c.do(http.MethodPost, definition+"/Keys", map[string]any{
			"@odata.type": "Microsoft.Dynamics.CRM.EntityKeyMetadata", "SchemaName": "new_bankaccount_ref", "KeyAttributes": []string{"new_ref"},
		}, solution...)
		require.Equal(t, http.StatusNoContent, res.status, "the key is created; its index fails asynchronously: %s", res.body)
		status := map[string]any{}
		for _, k := range c.get(definition)["Keys"].([]any) {
			m := k.(map[string]any)
			status[m["SchemaName"].(string)] = m["EntityKeyIndexStatus"]
		}
		assert.Equal(t, map[string]any{"new_bankaccount_code": "Active", "new_bankaccount_ref": "Failed"}, status)
		assert.Equal(t, http.StatusNoContent, c.do(http.MethodPost, "new_bankaccounts", map[string]any{"new_ref": "same"}).status,
			"a failed key does not enforce uniqueness")
	})

	t.Run("an unknown solution", func(t *testing.T) {
		res := c.do(http.MethodPost, "EntityDefinitions", bankAccountTable, "MSCRM.SolutionUniqueName", "nosuchsolution")
		assert.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
	})

	t.Run("a missing table", func(t *testing.T) {
		res := c.do(http.MethodGet, "EntityDefinitions(LogicalName='new_nosuch')", nil)
		assert.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
	})

	t.Run("the same table twice", func(t *testing.T) {
		res := c.do(http.MethodPost, "EntityDefinitions", bankAccountTable, solution...)
		assert.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
	})
}

func TestWhoAmI(t *testing.T) {
	t.Parallel()
	user, org := uuid.New(), uuid.New()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables, UserID: user, OrganizationID: org, DOPHint: 7})
	require.NoError(t, err)
	defer srv.Close()
	c := newWebAPI(t, srv)
	require.Equal(t, user, srv.UserID())
	require.Equal(t, org, srv.OrganizationID())

	for _, path := range []string{"WhoAmI", "WhoAmI()"} {
		t.Run(path, func(t *testing.T) {
			res := c.do(http.MethodGet, path, nil)
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			assert.Equal(t, "7", res.header.Get("x-ms-dop-hint"))
			body := res.json(t)
			assert.Equal(t, srv.URL+api+"$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse", body["@odata.context"])
			assert.Equal(t, user.String(), body["UserId"])
			assert.Equal(t, org.String(), body["OrganizationId"])
			_, err := uuid.Parse(body["BusinessUnitId"].(string))
			assert.NoError(t, err)
		})
	}

	t.Run("POST", func(t *testing.T) {
		res := c.do(http.MethodPost, "WhoAmI", "{}")
		require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
		res.apiError(t)
	})

	t.Run("the user row exists", func(t *testing.T) {
		row := c.get("systemusers(" + user.String() + ")")
		assert.Equal(t, user.String(), row["systemuserid"])
	})

	t.Run("generated ids", func(t *testing.T) {
		other := startServer(t)
		defer other.Close()
		body := newWebAPI(t, other).get("WhoAmI")
		assert.Equal(t, other.UserID().String(), body["UserId"])
		assert.Equal(t, other.OrganizationID().String(), body["OrganizationId"])
		assert.NotEqual(t, uuid.UUID{}, other.UserID())
		assert.NotEqual(t, user, other.UserID())
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()
	type step struct {
		method, path string
		wantStatus   int
		wantCode     string
		wantMessage  string
		wantRetry    string
	}
	get := func(status int) step { return step{method: http.MethodGet, path: "WhoAmI", wantStatus: status} }
	tests := []struct {
		name   string
		faults []dataversetest.Fault
		steps  []step
	}{
		{name: "429 with Retry-After once", faults: []dataversetest.Fault{{Status: 429, RetryAfter: 3 * time.Second, Times: 1}},
			steps: []step{
				{method: http.MethodGet, path: "WhoAmI", wantStatus: 429, wantCode: "0x80072322", wantRetry: "3",
					wantMessage: "Number of requests exceeded the limit of 6000 over time window of 300 seconds."},
				get(200), get(200),
			}},
		{name: "Retry-After rounds up to whole seconds", faults: []dataversetest.Fault{{Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 1}},
			steps: []step{{method: http.MethodGet, path: "WhoAmI", wantStatus: 429, wantRetry: "2"}, get(200)}},
		{name: "503 twice", faults: []dataversetest.Fault{{Status: 503, Times: 2}},
			steps: []step{{method: http.MethodGet, path: "WhoAmI", wantStatus: 503, wantMessage: "Service Unavailable"}, get(503), get(200)}},
		{name: "custom code and message", faults: []dataversetest.Fault{{Status: 500, Code: "-2147204784", Message: "Sql deadlock", Times: 1}},
			steps: []step{{method: http.MethodGet, path: "WhoAmI", wantStatus: 500, wantCode: "-2147204784", wantMessage: "Sql deadlock"}, get(200)}},
		{name: "method and path select requests", faults: []dataversetest.Fault{{Method: http.MethodPost, Path: "csp_providers", Status: 503}},
			steps: []step{
				{method: http.MethodGet, path: "csp_providers", wantStatus: 200},
				{method: http.MethodPost, path: "accounts", wantStatus: 204},
				{method: http.MethodPost, path: "csp_providers", wantStatus: 503},
				{method: http.MethodPost, path: "csp_providers", wantStatus: 503},
			}},
		{name: "the first matching fault wins", faults: []dataversetest.Fault{{Path: "WhoAmI", Status: 500, Times: 1}, {Status: 503, Times: 1}},
			steps: []step{get(500), get(503), get(200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			defer srv.Close()
			c := newWebAPI(t, srv)
			for _, f := range tt.faults {
				srv.Inject(f)
			}
			for i, st := range tt.steps {
				var body any
				if st.method == http.MethodPost {
					body = map[string]any{}
				}
				res := c.do(st.method, st.path, body)
				require.Equal(t, st.wantStatus, res.status, "step %d: %s", i, res.body)
				if st.wantStatus < 400 {
					continue
				}
				code, msg := res.apiError(t)
				if st.wantCode != "" {
					assert.Equal(t, st.wantCode, code, "step %d", i)
				}
				if st.wantMessage != "" {
					assert.Equal(t, st.wantMessage, msg, "step %d", i)
				}
				assert.Equal(t, st.wantRetry, res.header.Get("Retry-After"), "step %d", i)
			}
		})
	}

	t.Run("ClearFaults", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.Inject(dataversetest.Fault{Status: 503})
		assert.Equal(t, 503, c.do(http.MethodGet, "WhoAmI", nil).status)
		assert.Equal(t, 503, c.do(http.MethodGet, "WhoAmI", nil).status)
		srv.ClearFaults()
		assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
	})

	t.Run("a faulted request changes nothing", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.Inject(dataversetest.Fault{Status: 503, Times: 1})
		assert.Equal(t, 503, c.do(http.MethodPost, "csp_providers", map[string]any{"csp_name": "x"}).status)
		assert.Empty(t, srv.Rows("csp_provider"))
	})

	t.Run("$batch", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.Inject(dataversetest.Fault{Path: "$batch", Status: 503, Times: 1})
		assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
		res, _ := c.batch(batchBody(createProvider("x")))
		assert.Equal(t, 503, res.status)
		assert.Empty(t, srv.Rows("csp_provider"))
		res, _ = c.batch(batchBody(createProvider("x")))
		assert.Equal(t, 200, res.status)
	})

	t.Run("Drop", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		// Until cleared, so that the transport's own retry of an idempotent request is dropped too.
		srv.Inject(dataversetest.Fault{Drop: true})
		resp, err := c.http.Do(c.request(http.MethodGet, "WhoAmI", nil))
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err, "a dropped connection is a transport error")
		srv.ClearFaults()
		assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
	})

	t.Run("Latency", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		const delay = 150 * time.Millisecond
		srv.Inject(dataversetest.Fault{Path: "WhoAmI", Latency: delay, Times: 1})
		start := time.Now()
		assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status, "latency alone serves the request")
		assert.GreaterOrEqual(t, time.Since(start), delay)
	})

	t.Run("a client that gives up during latency", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.SetLatency(time.Minute)
		hc := &http.Client{Transport: srv.Client().Transport, Timeout: 50 * time.Millisecond}
		start := time.Now()
		resp, err := hc.Do(c.request(http.MethodPost, "csp_providers", map[string]any{"csp_name": "late"}))
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err)
		assert.Less(t, time.Since(start), 30*time.Second)
		srv.SetLatency(0)
		require.Eventually(t, func() bool { return len(srv.Requests()) == 1 }, 5*time.Second, 10*time.Millisecond)
		assert.Empty(t, srv.Rows("csp_provider"), "the write was never served")
	})
}

func TestServiceProtection(t *testing.T) {
	t.Parallel()

	t.Run("requests per window", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.SetLimits(dataversetest.Limits{Requests: 5, Window: time.Minute})
		for i := range 5 {
			require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status, "request %d", i+1)
		}
		res := c.do(http.MethodGet, "WhoAmI", nil)
		require.Equal(t, http.StatusTooManyRequests, res.status, "%s", res.body)
		code, msg := res.apiError(t)
		assert.Equal(t, "0x80072322", code)
		assert.Equal(t, "Number of requests exceeded the limit of 5 over time window of 60 seconds.", msg)
		retry, err := strconv.Atoi(res.header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After is whole seconds")
		assert.Greater(t, retry, 0)
		assert.LessOrEqual(t, retry, 60)

		other := c.do(http.MethodGet, "WhoAmI", nil, "Authorization", "Bearer another-user")
		assert.Equal(t, 200, other.status, "limits are per user")
	})

	t.Run("a batch counts as one request", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.SetLimits(dataversetest.Limits{Requests: 3, Window: time.Minute})
		who := batchOp{method: http.MethodGet, url: "WhoAmI"}
		res, parts := c.batch(batchBody(who, who, changeSet{createProvider("a"), createProvider("b")}))
		require.Equal(t, 200, res.status, "%s", res.body)
		require.Len(t, parts, 4)
		assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status, "2nd request")
		assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status, "3rd request")
		assert.Equal(t, 429, c.do(http.MethodGet, "WhoAmI", nil).status, "4th request")
	})

	t.Run("a batch in a full window is refused whole", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.SetLimits(dataversetest.Limits{Requests: 2, Window: time.Minute})
		require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
		require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
		res, _ := c.batch(batchBody(createProvider("a"), createProvider("b")))
		require.Equal(t, http.StatusTooManyRequests, res.status, "%s", res.body)
		code, _ := res.apiError(t)
		assert.Equal(t, "0x80072322", code)
		assert.Empty(t, srv.Rows("csp_provider"))
	})

	t.Run("SetLimits with zero lifts the limits", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		defer srv.Close()
		c := newWebAPI(t, srv)
		srv.SetLimits(dataversetest.Limits{Requests: 1, Window: time.Minute})
		require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
		require.Equal(t, 429, c.do(http.MethodGet, "WhoAmI", nil).status)
		srv.SetLimits(dataversetest.Limits{})
		for range 10 {
			require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		assert.Equal(t, dataversetest.Limits{Requests: 6000, Window: 300 * time.Second, ExecutionTime: 20 * time.Minute, Concurrent: 52}, dataversetest.DataverseLimits())
	})
}

// TestFakeTime runs the simulator inside a synctest bubble through InMemoryClient: latency, Retry-After
// and the service protection window then cost fake time only.
func TestFakeTime(t *testing.T) {
	t.Parallel()
	newBubbleAPI := func(t *testing.T) (*dataversetest.Server, webAPI) {
		srv := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
		return srv, webAPI{t: t, url: "http://dataverse.example", http: srv.InMemoryClient()}
	}

	t.Run("latency", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv, c := newBubbleAPI(t)
			srv.Inject(dataversetest.Fault{Latency: 10 * time.Second, Times: 1})
			srv.SetLatency(time.Second)
			start := time.Now()
			require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
			assert.Equal(t, 11*time.Second, time.Since(start), "fault latency adds to the base latency")
			start = time.Now()
			require.Equal(t, 204, c.do(http.MethodPost, "csp_providers", map[string]any{"csp_name": "x"}).status)
			assert.Equal(t, time.Second, time.Since(start))
		})
	})

	t.Run("a client that gives up during the latency gets no answer", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
			srv.SetLatency(time.Second)
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://dataverse.example/api/data/v9.2/WhoAmI", nil)
			require.NoError(t, err)
			resp, err := srv.InMemoryClient().Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			require.ErrorIs(t, err, context.DeadlineExceeded, "as on a socket: no empty 200 for a request the client abandoned")
			assert.Equal(t, 499, srv.Requests()[0].Status)
		})
	})

	t.Run("honouring Retry-After", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv, c := newBubbleAPI(t)
			srv.Inject(dataversetest.Fault{Status: 429, RetryAfter: 3 * time.Second, Times: 2})
			start := time.Now()
			attempts := 0
			for {
				attempts++
				res := c.do(http.MethodGet, "WhoAmI", nil)
				if res.status != http.StatusTooManyRequests {
					require.Equal(t, 200, res.status)
					break
				}
				secs, err := strconv.Atoi(res.header.Get("Retry-After"))
				require.NoError(t, err)
				time.Sleep(time.Duration(secs) * time.Second)
			}
			assert.Equal(t, 3, attempts)
			assert.Equal(t, 6*time.Second, time.Since(start))
		})
	})

	t.Run("the request window slides", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv, c := newBubbleAPI(t)
			srv.SetLimits(dataversetest.Limits{Requests: 2, Window: time.Minute})
			require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
			time.Sleep(20 * time.Second)
			require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
			res := c.do(http.MethodGet, "WhoAmI", nil)
			require.Equal(t, 429, res.status)
			assert.Equal(t, "40", res.header.Get("Retry-After"), "until the oldest request leaves the window")
			time.Sleep(40 * time.Second)
			assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
			assert.Equal(t, 429, c.do(http.MethodGet, "WhoAmI", nil).status)
		})
	})

	t.Run("execution time per window", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv, c := newBubbleAPI(t)
			srv.SetLimits(dataversetest.Limits{Window: time.Minute, ExecutionTime: 3 * time.Second,
				Cost: dataversetest.Cost{Operation: 500 * time.Millisecond, Row: 250 * time.Millisecond}})
			srv.SetLatency(250 * time.Millisecond)
			start := time.Now()
			// 250 ms latency + 500 ms an operation + 250 ms a row (two creates) = 1.75 s: the operations of
			// a batch accrue.
			res, _ := c.batch(batchBody(createProvider("a"), createProvider("b")))
			require.Equal(t, 200, res.status, "%s", res.body)
			assert.Equal(t, 1750*time.Millisecond, time.Since(start), "the simulator spends the execution time it counts")
			log := srv.Requests()
			assert.Equal(t, 1750*time.Millisecond, log[len(log)-1].ExecutionTime)
			// A read of both rows: 250 + 500 + 2 × 250 = 1.25 s, 3 s in all: the window is full now.
			require.Equal(t, 200, c.do(http.MethodGet, "csp_providers", nil).status)
			time.Sleep(10 * time.Second)
			res = c.do(http.MethodGet, "WhoAmI", nil)
			require.Equal(t, http.StatusTooManyRequests, res.status, "%s", res.body)
			code, msg := res.apiError(t)
			assert.Equal(t, "0x80072321", code)
			assert.Equal(t, "Combined execution time of incoming requests exceeded limit of 3,000  milliseconds over time window of 60 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.", msg)
			// The batch ended at 1.75 s and leaves the window at 61.75 s, 48.75 s from now (13 s): whole
			// seconds, rounded up.
			assert.Equal(t, "49", res.header.Get("Retry-After"))
			assert.Zero(t, srv.Requests()[len(srv.Requests())-1].ExecutionTime, "a refusal costs nothing")
			time.Sleep(49 * time.Second)
			assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
		})
	})

	t.Run("the request that fills the window is served", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv, c := newBubbleAPI(t)
			srv.SetLimits(dataversetest.Limits{Window: time.Minute, ExecutionTime: time.Second})
			srv.SetLatency(5 * time.Second)
			require.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status, "Dataverse lets the window be exceeded before it enforces")
			assert.Equal(t, 429, c.do(http.MethodGet, "WhoAmI", nil).status)
		})
	})

	t.Run("concurrent requests", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv, c := newBubbleAPI(t)
			srv.SetLimits(dataversetest.Limits{Concurrent: 2})
			srv.SetLatency(5 * time.Second)
			var wg sync.WaitGroup
			statuses := make([]int, 2)
			for i := range statuses {
				wg.Go(func() {
					resp, err := c.http.Do(c.request(http.MethodGet, "WhoAmI", nil))
					if err == nil {
						statuses[i] = resp.StatusCode
						resp.Body.Close()
					}
				})
			}
			synctest.Wait() // both are in flight, held by the latency
			start := time.Now()
			res := c.do(http.MethodGet, "WhoAmI", nil)
			require.Equal(t, http.StatusTooManyRequests, res.status, "%s", res.body)
			assert.Zero(t, time.Since(start), "a refusal is immediate")
			code, msg := res.apiError(t)
			assert.Equal(t, "0x80072326", code)
			assert.Equal(t, "Number of concurrent requests exceeded the limit of 2.", msg)
			assert.NotEmpty(t, res.header.Get("Retry-After"))
			wg.Wait()
			assert.Equal(t, []int{200, 200}, statuses)
			assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status, "the slots are free again")
		})
	})

	t.Run("Drop", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			srv, c := newBubbleAPI(t)
			srv.Inject(dataversetest.Fault{Drop: true, Times: 1})
			resp, err := c.http.Do(c.request(http.MethodGet, "WhoAmI", nil))
			if resp != nil {
				resp.Body.Close()
			}
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			assert.Equal(t, 200, c.do(http.MethodGet, "WhoAmI", nil).status)
		})
	})
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)
	seed := c.create("csp_providers", map[string]any{"csp_name": "seed"})
	require.NotEmpty(t, srv.Requests())
	srv.ResetRequests()
	require.Empty(t, srv.Requests())

	created := c.create("csp_providers", map[string]any{"csp_name": "Contoso"})
	require.Equal(t, 200, c.do(http.MethodGet, "csp_providers("+created+")?$select=csp_name", nil).status)
	require.Equal(t, 412, c.do(http.MethodPatch, "csp_providers("+created+")", map[string]any{"csp_name": "x"}, "If-Match", `W/"0"`).status)
	res, _ := c.batch(batchBody(
		batchOp{method: http.MethodGet, url: "csp_providers(" + seed + ")"},
		changeSet{{method: http.MethodPatch, url: "csp_providers(" + seed + ")", body: `{"csp_name":"seeded"}`}, createProvider("in batch")},
	))
	require.Equal(t, 200, res.status)
	missing := uuid.NewString()
	require.Equal(t, 404, c.do(http.MethodDelete, "csp_providers("+missing+")", nil).status)
	require.Equal(t, 404, c.do(http.MethodGet, "csp_provideraccounts(_csp_provider_value="+created+",csp_tenantid='a%20b')", nil).status)

	type entry struct {
		Method, Path string
		Status       int
		InBatch      bool
		Operations   int
		IsWrite      bool
	}
	var got []entry
	for _, r := range srv.Requests() {
		got = append(got, entry{r.Method, r.Path, r.Status, r.InBatch, r.Operations, r.IsWrite()})
		assert.Equal(t, "anonymous", r.User)
	}
	want := []entry{
		{"POST", "csp_providers", 204, false, 0, true},
		{"GET", "csp_providers(" + created + ")", 200, false, 0, false},
		{"PATCH", "csp_providers(" + created + ")", 412, false, 0, true},
		{"GET", "csp_providers(" + seed + ")", 200, true, 0, false},
		{"PATCH", "csp_providers(" + seed + ")", 204, true, 0, true},
		{"POST", "csp_providers", 204, true, 0, true},
		{"POST", "$batch", 200, false, 3, false},
		{"DELETE", "csp_providers(" + missing + ")", 404, false, 0, true},
		{"GET", "csp_provideraccounts(_csp_provider_value=" + created + ",csp_tenantid='a b')", 404, false, 0, false},
	}
	assert.Equal(t, want, got)
	assert.Equal(t, "$select=csp_name", srv.Requests()[1].Query)

	t.Run("faults and throttling are logged", func(t *testing.T) {
		srv.ResetRequests()
		srv.Inject(dataversetest.Fault{Status: 503, Times: 1})
		c.do(http.MethodGet, "WhoAmI", nil)
		reqs := srv.Requests()
		require.Len(t, reqs, 1)
		assert.Equal(t, 503, reqs[0].Status)
		assert.Equal(t, "WhoAmI", reqs[0].Path)
	})

	t.Run("the log is a copy", func(t *testing.T) {
		reqs := srv.Requests()
		require.NotEmpty(t, reqs)
		reqs[0].Path = "changed"
		assert.NotEqual(t, "changed", srv.Requests()[0].Path)
	})

	t.Run("the user is per token", func(t *testing.T) {
		srv.ResetRequests()
		c.do(http.MethodGet, "WhoAmI", nil, "Authorization", "Bearer a")
		c.do(http.MethodGet, "WhoAmI", nil, "Authorization", "Bearer b")
		c.do(http.MethodGet, "WhoAmI", nil, "Authorization", "Bearer a")
		reqs := srv.Requests()
		require.Len(t, reqs, 3)
		assert.Equal(t, reqs[0].User, reqs[2].User)
		assert.NotEqual(t, reqs[0].User, reqs[1].User)
	})
}

func TestServiceDocumentAndUnknownRoutes(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	t.Run("service document", func(t *testing.T) {
		body := c.get("")
		var names []string
		for _, s := range values(t, body) {
			assert.Equal(t, "EntitySet", s["kind"])
			names = append(names, s["name"].(string))
		}
		assert.Subset(t, names, []string{"csp_providers", "csp_provideraccounts", "csp_licensechangelogs", "accounts", "systemusers", "publishers", "solutions"})
		assert.True(t, slices.IsSorted(names))
	})

	t.Run("outside the API path", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/data/v9.1/accounts", nil)
		require.NoError(t, err)
		res := c.send(req)
		assert.Equal(t, http.StatusNotFound, res.status)
		res.apiError(t)
	})

	t.Run("wrong method on a collection", func(t *testing.T) {
		assert.Equal(t, http.StatusMethodNotAllowed, c.do(http.MethodDelete, "accounts", nil).status)
	})
}
