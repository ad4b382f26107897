package connector

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
)

// The HTTP API through real HTTP against the sandbox: the connector's own server on loopback, the
// simulators behind it.

// apiSandbox starts a sandbox, runs its service and waits until the jobs it runs at start have finished
// (the Provider Account Sync has mapped the demonstration customers, the sweep has settled the demo changes).
func apiSandbox(t *testing.T) *Sandbox {
	t.Helper()
	sb := testSandbox(t)
	runService(t, sb.Service)
	waitStartupJobs(t, sb)
	return sb
}

// waitStartupJobs waits until every enabled job has run once and none is running.
func waitStartupJobs(t *testing.T, sb *Sandbox) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, name := range sb.Service.Jobs.Names() {
			j, err := jobRow(t.Context(), sb.DataverseClient, name)
			if err != nil || (j.Enabled && j.LastRunOn.IsZero()) || j.LeaseOwner != "" {
				return false
			}
		}
		return true
	}, 15*time.Second, 20*time.Millisecond, "the jobs run at start have finished")
}

// apiClient calls the API over HTTP as one caller.
type apiClient struct {
	t    *testing.T
	base string // http://127.0.0.1:port
	hdr  http.Header
	http *http.Client
}

// apiAnswer is one answer of the API.
type apiAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

func newAPIClient(t *testing.T, base string, hdr http.Header) apiClient {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return apiClient{t: t, base: strings.TrimRight(base, "/"), hdr: hdr, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// sandboxBase is the connector's address in the sandbox.
func sandboxBase(sb *Sandbox) string { return "http://" + sb.Service.Addr().String() }

// operatorClient and readerClient carry the sandbox's demo API keys.
func operatorClient(t *testing.T, sb *Sandbox) apiClient {
	return newAPIClient(t, sandboxBase(sb), http.Header{api.KeyHeader: {SandboxOperatorKey}})
}

func readerClient(t *testing.T, sb *Sandbox) apiClient {
	return newAPIClient(t, sandboxBase(sb), http.Header{api.KeyHeader: {SandboxReaderKey}})
}

// anonymousClient sends no credentials.
func anonymousClient(t *testing.T, sb *Sandbox) apiClient {
	return newAPIClient(t, sandboxBase(sb), http.Header{})
}

// with returns a client sending extra headers (name, value pairs).
func (c apiClient) with(kv ...string) apiClient {
	h := c.hdr.Clone()
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	c.hdr = h
	return c
}

// do sends a request. target is a path under the connector or an absolute URL (a Location, a nextLink);
// body is nil, a string or []byte sent as is, or a value sent as JSON. Every answer is checked for what
// every answer must have: no CORS headers, no-store, nosniff.
func (c apiClient) do(method, target string, body any) apiAnswer {
	c.t.Helper()
	a, err := c.try(method, target, body)
	require.NoError(c.t, err, "%s %s", method, target)
	return a
}

// try is do returning the transport's error (it only asserts, so it may run in a goroutine).
func (c apiClient) try(method, target string, body any) (apiAnswer, error) {
	c.t.Helper()
	u := target
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = c.base + target
	}
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return apiAnswer{}, err
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, u, r)
	if err != nil {
		return apiAnswer{}, err
	}
	for k, v := range c.hdr {
		req.Header[k] = v
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return apiAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiAnswer{}, err
	}
	a := apiAnswer{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	for k := range resp.Header {
		assert.False(c.t, strings.HasPrefix(strings.ToLower(k), "access-control-"), "%s %s: the API sends no CORS headers, got %s", method, target, k)
	}
	if strings.HasPrefix(req.URL.Path, api.Prefix+"/") {
		assert.Equal(c.t, "nosniff", resp.Header.Get("X-Content-Type-Options"), "%s %s", method, target)
		assert.Equal(c.t, "no-store", resp.Header.Get("Cache-Control"), "%s %s", method, target)
	}
	return a, nil
}

func (c apiClient) get(target string) apiAnswer { return c.do(http.MethodGet, target, nil) }

func (c apiClient) post(target string, body any) apiAnswer {
	return c.do(http.MethodPost, target, body)
}

// ok requires status and a JSON body, and decodes it into v (when not nil).
func (a apiAnswer) ok(t *testing.T, status int, v any) {
	t.Helper()
	require.Equal(t, status, a.Status, "answer: %s", a.Body)
	if v == nil {
		return
	}
	assert.Equal(t, "application/json", a.Header.Get("Content-Type"))
	require.NoError(t, json.Unmarshal(a.Body, v), "%s", a.Body)
}

// problem requires status and a problem+json body, and returns it.
func (a apiAnswer) problem(t *testing.T, status int) testProblem {
	t.Helper()
	require.Equal(t, status, a.Status, "answer: %s", a.Body)
	assert.Equal(t, "application/problem+json", a.Header.Get("Content-Type"))
	var p testProblem
	require.NoError(t, json.Unmarshal(a.Body, &p), "%s", a.Body)
	assert.Equal(t, status, p.Status)
	assert.Equal(t, http.StatusText(status), p.Title)
	assert.NotEmpty(t, p.Detail)
	return p
}

// testProblem is a problem answer with what the tests ask of it.
type testProblem struct{ api.Problem }

// fields lists the fields a problem names.
func (p testProblem) fields() []string {
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

// accepted checks a 202 with Location (absolute, under base) and Retry-After, and returns Location.
func (a apiAnswer) accepted(t *testing.T, base string, v any) string {
	t.Helper()
	a.ok(t, http.StatusAccepted, v)
	loc := a.Header.Get("Location")
	require.NotEmpty(t, loc, "a 202 says where to poll")
	assert.True(t, strings.HasPrefix(loc, base+api.Prefix+"/"), "Location %s is an absolute URL on the connector", loc)
	n, err := strconv.Atoi(a.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", a.Header.Get("Retry-After"))
	assert.Positive(t, n)
	return loc
}

// poll reads location until it stops answering 202 (each 202 carrying Retry-After), and returns the last
// answer.
func (c apiClient) poll(location string) (last apiAnswer) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		var err error
		if last, err = c.try(http.MethodGet, location, nil); err != nil {
			return false
		}
		if last.Status == http.StatusAccepted {
			assert.NotEmpty(c.t, last.Header.Get("Retry-After"), "a 202 while running says when to ask again")
			return false
		}
		return true
	}, 15*time.Second, 20*time.Millisecond, "%s finishes", location)
	return last
}

// providerAccountsByTenant reads the sandbox's Partner Center provider accounts by tenant.
func providerAccountsByTenant(t *testing.T, sb *Sandbox) map[string]schema.ProviderAccount {
	t.Helper()
	out := map[string]schema.ProviderAccount{}
	q := &dataverse.Query{Select: dataverse.Columns[schema.ProviderAccount](), Filter: dataverse.LookupEq("csp_provider", sb.partnerCenterProvider)}
	for raw, err := range sb.DataverseClient.List(t.Context(), schema.SetProviderAccounts, q) {
		require.NoError(t, err)
		var pa schema.ProviderAccount
		require.NoError(t, dataverse.Unmarshal(raw, &pa))
		out[pa.TenantID] = pa
	}
	return out
}

func accountByName(t *testing.T, sb *Sandbox, name string) dataverse.GUID {
	t.Helper()
	var id dataverse.GUID
	for raw, err := range sb.DataverseClient.List(t.Context(), schema.SetAccounts, &dataverse.Query{Select: []string{"accountid"}, Filter: dataverse.Eq("name", name)}) {
		require.NoError(t, err)
		id, _ = raw.GUID("accountid")
	}
	require.NotEqual(t, dataverse.GUID{}, id, "account %q", name)
	return id
}

func readAgreement(t *testing.T, sb *Sandbox, id dataverse.GUID) schema.Agreement {
	t.Helper()
	raw, err := sb.DataverseClient.Get(t.Context(), schema.SetAgreements, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Agreement]()})
	require.NoError(t, err)
	var a schema.Agreement
	require.NoError(t, dataverse.Unmarshal(raw, &a))
	return a
}

func agreementsOf(t *testing.T, sb *Sandbox, providerAccount dataverse.GUID) []schema.Agreement {
	t.Helper()
	var out []schema.Agreement
	q := &dataverse.Query{Select: dataverse.Columns[schema.Agreement](), Filter: dataverse.LookupEq("csp_provideraccount", providerAccount)}
	for raw, err := range sb.DataverseClient.List(t.Context(), schema.SetAgreements, q) {
		require.NoError(t, err)
		var a schema.Agreement
		require.NoError(t, dataverse.Unmarshal(raw, &a))
		out = append(out, a)
	}
	return out
}

// attestationPosts counts the acceptance links the connector asked Partner Center for.
func attestationPosts(sb *Sandbox) int {
	n := 0
	for _, r := range sb.PartnerCenter.Requests() {
		if r.Method == http.MethodPost && r.Path == "attestations/enhanced" {
			n++
		}
	}
	return n
}

func jobRunsOf(t *testing.T, sb *Sandbox, name string) []schema.JobRun {
	t.Helper()
	j, err := jobRow(t.Context(), sb.DataverseClient, name)
	require.NoError(t, err)
	var out []schema.JobRun
	for _, r := range testrig.JobRuns(t, sb.DataverseClient) {
		if r.Job.ID == j.ID {
			out = append(out, r)
		}
	}
	return out
}

// waitJobIdle waits until no run holds the job's lease. A run's row says it has finished a moment before
// the job is free to run again; TestAPIRunJobRightAfterItFinished shows what a request in that moment gets.
func waitJobIdle(t *testing.T, sb *Sandbox, name string) {
	t.Helper()
	require.Eventually(t, func() bool {
		j, err := jobRow(t.Context(), sb.DataverseClient, name)
		return err == nil && j.LeaseOwner == ""
	}, 10*time.Second, 5*time.Millisecond, "%s is released", name)
}

func jobPath(name string) string { return api.Prefix + "/jobs/" + url.PathEscape(name) }

// validSignatory is a signatory the simulated customer accepts (an e-mail starting with "accept.").
var validSignatory = api.LinkRequest{SignatoryFirstName: "Ada", SignatoryLastName: "Lovelace", SignatoryEmail: "accept.ada@contoso.com",
	SignatoryCompany: "Contoso Ltd", SignatoryCountry: "GB", SignatoryLanguage: "en-GB"}

// TestAPIListProviderAccounts: after the sync at start, the mapping status filter finds Litware (Ambiguous)
// and Adventure Works (Unmapped); pages of two, followed by their absolute nextLinks, visit every active
// row once; bad query parameters are 400s naming the parameter.
func TestAPIListProviderAccounts(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	c := readerClient(t, sb)
	base := sandboxBase(sb)
	rows := providerAccountsByTenant(t, sb)

	for _, tt := range []struct {
		status, tenant, name string
	}{
		{"ambiguous", demoLitwareTenant, "Litware"},
		{"unmapped", demoAdventureWorksTenant, "Adventure Works Cycles"},
	} {
		var page api.ProviderAccountList
		c.get(api.Prefix+"/provider-accounts?mappingStatus="+tt.status).ok(t, http.StatusOK, &page)
		require.Len(t, page.Value, 1, "%s: %+v", tt.status, page.Value)
		got := page.Value[0]
		assert.Equal(t, tt.tenant, got.TenantID)
		assert.Equal(t, rows[tt.tenant].ID.String(), got.ID)
		assert.Equal(t, tt.name, got.CompanyName)
		assert.Equal(t, tt.status, got.MappingStatus)
		assert.Equal(t, sb.partnerCenterProvider.String(), got.ProviderID)
		assert.NotEmpty(t, got.MappingMessage)
		assert.True(t, got.Active)
		assert.NotNil(t, got.LastSyncedOn)
		assert.Empty(t, page.NextLink, "one page")
	}
	var litware api.ProviderAccountList
	c.get(api.Prefix+"/provider-accounts?tenantId="+demoLitwareTenant).ok(t, http.StatusOK, &litware)
	require.Len(t, litware.Value, 1)
	assert.Equal(t, "ambiguous", litware.Value[0].MappingStatus)

	// Every active row, from Dataverse.
	want := map[string]bool{}
	for raw, err := range sb.DataverseClient.List(t.Context(), schema.SetProviderAccounts, &dataverse.Query{Select: []string{"csp_provideraccountid"}, Filter: dataverse.Eq("statecode", schema.StateActive)}) {
		require.NoError(t, err)
		id, _ := raw.GUID("csp_provideraccountid")
		want[id.String()] = true
	}
	require.Greater(t, len(want), 4, "enough rows for several pages")
	seen := map[string]int{}
	next, pages := api.Prefix+"/provider-accounts?top=2", 0
	for next != "" {
		pages++
		require.LessOrEqual(t, pages, len(want), "the pages end")
		var page api.ProviderAccountList
		c.get(next).ok(t, http.StatusOK, &page)
		assert.LessOrEqual(t, len(page.Value), 2)
		for _, v := range page.Value {
			seen[v.ID]++
		}
		if page.NextLink != "" {
			u, err := url.Parse(page.NextLink)
			require.NoError(t, err)
			assert.True(t, u.IsAbs() && strings.HasPrefix(page.NextLink, base+api.Prefix+"/provider-accounts?"), "nextLink %s is absolute", page.NextLink)
			assert.Equal(t, "2", u.Query().Get("top"), "the page size is kept")
			assert.NotEmpty(t, u.Query().Get("cursor"))
		}
		next = page.NextLink
	}
	assert.Equal(t, (len(want)+1)/2, pages)
	assert.Len(t, seen, len(want))
	for id := range want {
		assert.Equal(t, 1, seen[id], "row %s is on exactly one page", id)
	}

	for _, tt := range []struct{ query, field string }{
		{"mappingStatus=confused", "mappingStatus"},
		{"top=0", "top"},
		{"top=1001", "top"},
		{"top=two", "top"},
		{"cursor=not-a-cursor", "cursor"},
		{"state=sleeping", "state"},
		{"providerId=123", "providerId"},
	} {
		p := c.get(api.Prefix+"/provider-accounts?"+tt.query).problem(t, http.StatusBadRequest)
		assert.Contains(t, p.fields(), tt.field, "%s", tt.query)
		for _, f := range p.Errors {
			assert.NotEmpty(t, f.Message, "%s", tt.query)
		}
	}
}

// TestAPIGetAndMapProviderAccount: reading a row; mapping Ambiguous Litware to one of its two accounts
// makes it Mapped with its Pending agreement; bad requests name the field.
func TestAPIGetAndMapProviderAccount(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	rows := providerAccountsByTenant(t, sb)
	litware := rows[demoLitwareTenant]
	require.Equal(t, schema.MappingAmbiguous, litware.MappingStatus)

	var got api.ProviderAccountView
	op.get(api.Prefix+"/provider-accounts/"+litware.ID.String()).ok(t, http.StatusOK, &got)
	assert.Equal(t, litware.ID.String(), got.ID)
	assert.Equal(t, "Litware", got.Name)
	assert.Equal(t, "litware.com", got.Domain)
	assert.Equal(t, "ambiguous", got.MappingStatus)
	assert.Empty(t, got.AccountID)

	op.get(api.Prefix+"/provider-accounts/"+uuid.NewString()).problem(t, http.StatusNotFound)
	p := op.get(api.Prefix+"/provider-accounts/not-a-guid").problem(t, http.StatusBadRequest)
	assert.Equal(t, []string{"providerAccountId"}, p.fields())

	mapPath := api.Prefix + "/provider-accounts/" + litware.ID.String() + "/map"
	p = op.post(mapPath, map[string]any{"accountId": uuid.NewString()}).problem(t, http.StatusBadRequest)
	assert.Equal(t, []string{"accountId"}, p.fields(), "no such account")
	p = op.post(mapPath, map[string]any{"accountId": "Litware, Inc."}).problem(t, http.StatusBadRequest)
	assert.Equal(t, []string{"accountId"}, p.fields(), "not a GUID")
	account := accountByName(t, sb, "Litware, Inc.")
	p = op.post(mapPath, map[string]any{"accountId": account.String(), "acountId": account.String()}).problem(t, http.StatusBadRequest)
	assert.Equal(t, []string{"acountId"}, p.fields(), "a misspelt field is refused, not ignored")
	op.post(mapPath, "").problem(t, http.StatusBadRequest)
	op.post(mapPath, `{"accountId":`).problem(t, http.StatusBadRequest)
	op.post(api.Prefix+"/provider-accounts/"+uuid.NewString()+"/map", map[string]any{"accountId": account.String()}).problem(t, http.StatusNotFound)
	assert.Empty(t, agreementsOf(t, sb, litware.ID), "nothing was mapped by the refused requests")

	op.post(mapPath, api.MapRequest{AccountID: account.String()}).ok(t, http.StatusOK, &got)
	assert.Equal(t, "mapped", got.MappingStatus)
	assert.Equal(t, account.String(), got.AccountID)
	assert.Contains(t, got.MappingMessage, "Mapped through the API by sandbox-operator")
	ags := agreementsOf(t, sb, litware.ID)
	require.Len(t, ags, 1, "mapping brings the Pending agreement")
	assert.Equal(t, schema.AgreementPending, ags[0].Status)
	assert.Equal(t, account, ags[0].Account.ID)
	assert.Equal(t, sb.mcaTemplate, ags[0].Template.ID)

	op.post(mapPath, api.MapRequest{AccountID: account.String()}).ok(t, http.StatusOK, &got)
	assert.Equal(t, "mapped", got.MappingStatus)
	assert.Len(t, agreementsOf(t, sb, litware.ID), 1, "mapping again creates no second agreement")

	readerClient(t, sb).post(mapPath, api.MapRequest{AccountID: account.String()}).problem(t, http.StatusForbidden)
}

// TestAPISyncProviderAccounts: the sync answers 202 with the run to poll; the run answers 202 while it
// goes and 200 when it has succeeded; asking again while it runs points at the same run, and after it a
// new one.
func TestAPISyncProviderAccounts(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)

	sb.PartnerCenter.SetLatency(300 * time.Millisecond) // a slow Partner Center: the run is seen running
	var first api.JobRunView
	loc := op.post(api.Prefix+"/provider-accounts/sync", nil).accepted(t, base, &first)
	assert.Equal(t, base+jobPath(provideraccounts.SyncJobName)+"/runs/"+first.ID, loc)
	assert.Equal(t, provideraccounts.SyncJobName, first.Job)
	assert.Equal(t, "api", first.Trigger)
	assert.Equal(t, "running", first.Status)

	var running api.JobRunView
	op.get(loc).ok(t, http.StatusAccepted, &running)
	assert.Equal(t, first.ID, running.ID)
	assert.Equal(t, "running", running.Status)
	assert.NotEmpty(t, op.get(loc).Header.Get("Retry-After"))

	var again api.JobRunView
	loc2 := op.post(api.Prefix+"/provider-accounts/sync", nil).accepted(t, base, &again)
	assert.Equal(t, loc, loc2, "a second request while it runs points at the same run")
	assert.Equal(t, first.ID, again.ID)

	sb.PartnerCenter.SetLatency(0)
	last := op.poll(loc)
	var done api.JobRunView
	last.ok(t, http.StatusOK, &done)
	assert.Equal(t, first.ID, done.ID)
	assert.Equal(t, "succeeded", done.Status)
	assert.NotNil(t, done.FinishedOn)
	assert.Positive(t, done.Processed)
	assert.Contains(t, done.Summary, "customers seen: ", "the run's summary in plain words")
	assert.Empty(t, last.Header.Get("Retry-After"))

	var next api.JobRunView
	waitJobIdle(t, sb, provideraccounts.SyncJobName)
	loc3 := op.post(api.Prefix+"/provider-accounts/sync", nil).accepted(t, base, &next)
	assert.NotEqual(t, first.ID, next.ID, "after it finished, a new run")
	last = op.poll(loc3)
	last.ok(t, http.StatusOK, &next)
	assert.Equal(t, "succeeded", next.Status)
	assert.Len(t, jobRunsOf(t, sb, provideraccounts.SyncJobName), 3, "the run at start and two through the API")
}

// TestAPIAgreements: reading an agreement; a link request that fails validation names every bad field and
// writes nothing; a valid one sends the link; asking again returns the same link without a second
// attestation; the Attestation Check runs through the API.
func TestAPIAgreements(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)
	id := sb.contosoAgreement
	linkPath := api.Prefix + "/agreements/" + id.String() + "/request-link"

	var got api.AgreementView
	readerClient(t, sb).get(api.Prefix+"/agreements/"+id.String()).ok(t, http.StatusOK, &got)
	assert.Equal(t, id.String(), got.ID)
	assert.Equal(t, "Contoso Ltd — Microsoft Customer Agreement", got.Name)
	assert.Equal(t, "Pending", got.Status)
	assert.Equal(t, "Not started", got.AttestationStatus)
	assert.Equal(t, sb.mcaTemplate.String(), got.TemplateID)
	assert.Empty(t, got.AcceptanceURL)
	op.get(api.Prefix+"/agreements/"+uuid.NewString()).problem(t, http.StatusNotFound)
	assert.Equal(t, []string{"agreementId"}, op.get(api.Prefix+"/agreements/contoso").problem(t, http.StatusBadRequest).fields())

	before := readAgreement(t, sb, id)
	bad := validSignatory
	bad.SignatoryCountry, bad.SignatoryEmail = "England", ""
	p := op.post(linkPath, bad).problem(t, http.StatusBadRequest)
	assert.ElementsMatch(t, []string{"signatoryCountry", "signatoryEmail"}, p.fields(), "%+v", p.Errors)
	after := readAgreement(t, sb, id)
	assert.Equal(t, before.ETag, after.ETag, "nothing is written on the row")
	assert.Empty(t, after.SignatoryFirstName)
	assert.Empty(t, after.SignatoryCountry)
	assert.Equal(t, schema.AttestationNotStarted, after.AttestationStatus)
	p = op.post(linkPath, map[string]any{"signatoryEmail": "accept.ada@contoso.com", "signatoryTitle": "CEO"}).problem(t, http.StatusBadRequest)
	assert.Equal(t, []string{"signatoryTitle"}, p.fields())
	assert.Zero(t, attestationPosts(sb))

	var sent api.AgreementView
	op.post(linkPath, validSignatory).ok(t, http.StatusOK, &sent)
	assert.Equal(t, "Link sent", sent.AttestationStatus)
	assert.NotEmpty(t, sent.AcceptanceURL)
	assert.NotNil(t, sent.LinkExpiresOn)
	assert.Equal(t, "accept.ada@contoso.com", sent.SignatoryEmail)
	assert.Equal(t, "Pending", sent.Status)
	assert.Equal(t, 1, attestationPosts(sb))
	row := readAgreement(t, sb, id)
	assert.Equal(t, "GB", row.SignatoryCountry, "the request's fields are saved on the agreement")
	assert.Equal(t, "en-GB", row.SignatoryLanguage)

	var repeat api.AgreementView
	op.post(linkPath, validSignatory).ok(t, http.StatusOK, &repeat)
	assert.Equal(t, sent.AcceptanceURL, repeat.AcceptanceURL, "the open link, not a new one")
	assert.Equal(t, "Link sent", repeat.AttestationStatus)
	op.post(linkPath, nil).ok(t, http.StatusOK, &repeat)
	assert.Equal(t, sent.AcceptanceURL, repeat.AcceptanceURL, "an empty body asks again too")
	assert.Equal(t, 1, attestationPosts(sb), "exactly one attestation in Partner Center")

	// The simulated customer accepts (a second after the link); the check run through the API finalizes it.
	for deadline := time.Now().Add(15 * time.Second); ; {
		waitJobIdle(t, sb, agreements.AttestationCheckJob)
		var run api.JobRunView
		loc := op.post(api.Prefix+"/agreements/check", nil).accepted(t, base, &run)
		assert.Equal(t, agreements.AttestationCheckJob, run.Job)
		assert.Equal(t, "api", run.Trigger)
		assert.True(t, strings.HasPrefix(loc, base+jobPath(agreements.AttestationCheckJob)+"/runs/"), loc)
		last := op.poll(loc)
		var done api.JobRunView
		last.ok(t, http.StatusOK, &done)
		assert.Equal(t, "succeeded", done.Status)
		op.get(api.Prefix+"/agreements/"+id.String()).ok(t, http.StatusOK, &got)
		if got.Status == "Active" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the check finds the accepted link: %+v", got)
		time.Sleep(200 * time.Millisecond)
	}
	assert.Equal(t, "Attested", got.AttestationStatus)
	assert.NotNil(t, got.DateAgreed)
	p = op.post(linkPath, validSignatory).problem(t, http.StatusConflict)
	assert.Contains(t, p.Detail, "already accepted")
	assert.Equal(t, 1, attestationPosts(sb))
}

// TestAPIAgreementTemplates: the active templates; Create Agreements answers 202 with the creation to poll,
// which ends done with a message; an inactive template is a 409, an unknown one a 404.
func TestAPIAgreementTemplates(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)

	inactive, err := sb.DataverseClient.Create(t.Context(), schema.SetAgreementTemplates, dataverse.Row{"csp_name": "Old agreement", "csp_agreementtype": int(schema.AgreementMicrosoftCustomerAgreement),
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, sb.partnerCenterProvider)})
	require.NoError(t, err)
	_, err = sb.DataverseClient.Update(t.Context(), schema.SetAgreementTemplates, inactive, dataverse.Row{"statecode": schema.StateInactive, "statuscode": 2}, nil)
	require.NoError(t, err)

	var list api.AgreementTemplateList
	readerClient(t, sb).get(api.Prefix+"/agreement-templates").ok(t, http.StatusOK, &list)
	require.Len(t, list.Value, 1, "the active templates only: %+v", list.Value)
	assert.Equal(t, api.AgreementTemplateView{ID: sb.mcaTemplate.String(), Name: "Microsoft Customer Agreement", ProviderID: sb.partnerCenterProvider.String(),
		AgreementType: schema.OptionLabel(schema.TableAgreementTemplate, "csp_agreementtype", int(schema.AgreementMicrosoftCustomerAgreement))}, list.Value[0])

	creation := api.Prefix + "/agreement-templates/" + sb.mcaTemplate.String() + "/creation"
	op.get(creation).problem(t, http.StatusNotFound) // never requested
	var started api.TemplateCreation
	loc := op.post(api.Prefix+"/agreement-templates/"+sb.mcaTemplate.String()+"/create-agreements", nil).accepted(t, base, &started)
	assert.Equal(t, base+creation, loc)
	assert.Equal(t, sb.mcaTemplate.String(), started.TemplateID)
	assert.NotNil(t, started.RequestedOn)
	last := op.poll(loc)
	var done api.TemplateCreation
	last.ok(t, http.StatusOK, &done)
	assert.Equal(t, "done", done.Status)
	assert.NotEmpty(t, done.Message)
	assert.NotNil(t, done.DoneOn)
	assert.Contains(t, done.Message, "had one already", "every mapped provider account has its agreement from the sync")

	p := op.post(api.Prefix+"/agreement-templates/"+inactive.String()+"/create-agreements", nil).problem(t, http.StatusConflict)
	assert.Contains(t, p.Detail, "inactive")
	op.post(api.Prefix+"/agreement-templates/"+uuid.NewString()+"/create-agreements", nil).problem(t, http.StatusNotFound)
	op.get(api.Prefix+"/agreement-templates/"+uuid.NewString()+"/creation").problem(t, http.StatusNotFound)
	assert.Equal(t, []string{"templateId"}, op.post(api.Prefix+"/agreement-templates/mca/create-agreements", nil).problem(t, http.StatusBadRequest).fields())
}

// TestAPICreateAgreementsTwiceInOneSecond: a second Create Agreements request made in the same second the
// first one finished must still run. The template's columns hold whole seconds, so a request recorded at
// the second the last creation was done looks done already, and the agreement deleted in between is never
// created again.
func TestAPICreateAgreementsTwiceInOneSecond(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)
	create := api.Prefix + "/agreement-templates/" + sb.mcaTemplate.String() + "/create-agreements"
	alpine := providerAccountsByTenant(t, sb)[demoAlpineTenant]
	require.Len(t, agreementsOf(t, sb, alpine.ID), 1, "the sync gave auto-mapped Alpine its agreement")

	var second time.Time
	for range 3 {
		// Start just after a second begins, so both requests fall in it.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
		second = time.Now().Truncate(time.Second)
		last := op.poll(op.post(create, nil).accepted(t, base, nil))
		require.Equal(t, http.StatusOK, last.Status)
		for _, a := range agreementsOf(t, sb, alpine.ID) {
			require.NoError(t, sb.DataverseClient.Delete(t.Context(), schema.SetAgreements, a.ID, nil))
		}
		op.post(create, nil).accepted(t, base, nil)
		if time.Now().Truncate(time.Second).Equal(second) {
			break
		}
	}
	require.Eventually(t, func() bool { return len(agreementsOf(t, sb, alpine.ID)) == 1 }, 5*time.Second, 50*time.Millisecond,
		"the second request (made in second %s, the one the first finished in) creates Alpine's agreement again", second.Format(time.TimeOnly))
}

// TestAPILicenseChangeLogs: reading a demo change, its diagnosis (what `connector diagnose lcl` prints),
// provisioning one now, and retrying a failed one.
func TestAPILicenseChangeLogs(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	dv := sb.DataverseClient
	capped := sb.DemoChanges[demoChangeSandboxCap]
	var failed schema.LicenseChangeLog
	require.Eventually(t, func() bool {
		failed = readLCL(t, dv, capped)
		return failed.ProvisioningStatus == schema.ProvisioningFailed && readLCL(t, dv, sb.DemoChanges[demoChangeProvisioned]).ProvisioningStatus == schema.ProvisioningProvisioned
	}, 15*time.Second, 20*time.Millisecond, "the sweep at start settles the demo changes")

	var st provisioning.LCLState
	readerClient(t, sb).get(api.Prefix+"/license-change-logs/"+sb.DemoChanges[demoChangeProvisioned].String()).ok(t, http.StatusOK, &st)
	assert.Equal(t, sb.DemoChanges[demoChangeProvisioned], st.ID)
	assert.Equal(t, demoChangeProvisioned, st.Name)
	assert.Equal(t, "Provisioned", st.Status)
	assert.Equal(t, 1, st.Attempts)
	require.NotNil(t, st.Quantity)
	assert.Equal(t, 12, *st.Quantity)
	op.get(api.Prefix+"/license-change-logs/"+uuid.NewString()).problem(t, http.StatusNotFound)
	assert.Equal(t, []string{"licenseChangeLogId"}, op.get(api.Prefix+"/license-change-logs/12").problem(t, http.StatusBadRequest).fields())

	for name, id := range sb.DemoChanges {
		var fromAPI map[string]any
		readerClient(t, sb).get(api.Prefix+"/license-change-logs/"+id.String()+"/diagnosis").ok(t, http.StatusOK, &fromAPI)
		dg, err := sb.Service.Prov.Diagnose(t.Context(), id)
		require.NoError(t, err)
		raw, err := json.Marshal(dg)
		require.NoError(t, err)
		var direct map[string]any
		require.NoError(t, json.Unmarshal(raw, &direct))
		assert.Equal(t, direct, fromAPI, "%s: the API's diagnosis is the CLI's", name)
		assert.NotEmpty(t, fromAPI["next"], name)
	}
	op.get(api.Prefix+"/license-change-logs/"+uuid.NewString()+"/diagnosis").problem(t, http.StatusNotFound)

	// Provisioning a held change now keeps it held; nothing reaches Partner Center.
	op.post(api.Prefix+"/license-change-logs/"+sb.DemoChanges[demoChangeScheduled].String()+"/provision", nil).ok(t, http.StatusOK, &st)
	assert.Equal(t, "Awaiting Provisioning", st.Status)
	assert.Equal(t, "Scheduled", st.Held)
	op.post(api.Prefix+"/license-change-logs/"+uuid.NewString()+"/provision", nil).problem(t, http.StatusNotFound)
	assert.Equal(t, []string{"retyr"}, op.post(api.Prefix+"/license-change-logs/"+capped.String()+"/provision", `{"retyr":true}`).problem(t, http.StatusBadRequest).fields())
	assert.Equal(t, []string{"retry"}, op.post(api.Prefix+"/license-change-logs/"+capped.String()+"/provision", `{"retry":"yes"}`).problem(t, http.StatusBadRequest).fields())

	// Without retry a failed change stays as it is; with retry it runs again (and fails again on the cap).
	op.post(api.Prefix+"/license-change-logs/"+capped.String()+"/provision", `{}`).ok(t, http.StatusOK, &st)
	assert.Equal(t, "Failed Provisioning", st.Status)
	assert.Equal(t, failed.Attempts, st.Attempts, "not retried without retry")
	op.post(api.Prefix+"/license-change-logs/"+capped.String()+"/provision", api.ProvisionRequest{Retry: true}).ok(t, http.StatusOK, &st)
	assert.Equal(t, "Failed Provisioning", st.Status, "the same cap again")
	assert.Greater(t, st.Attempts, failed.Attempts, "it was tried again")
	assert.Contains(t, st.Message, "maximum seat count allowed per subscription (25)")
	assert.Equal(t, 3, readSubscription(t, dv, failed.Subscription.ID).Quantity)
}

// TestAPIDiagnoseSubscription: a demo subscription's changes, oldest first.
func TestAPIDiagnoseSubscription(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	c := readerClient(t, sb)
	l := readLCL(t, sb.DataverseClient, sb.DemoChanges[demoChangeScheduled])
	var dg provisioning.SubscriptionDiagnosis
	c.get(api.Prefix+"/subscriptions/"+l.Subscription.ID.String()+"/diagnosis").ok(t, http.StatusOK, &dg)
	assert.Equal(t, l.Subscription.ID, dg.ID)
	assert.Equal(t, "Microsoft 365 Business Premium", dg.Name)
	assert.Equal(t, demoContosoSubscription, dg.PCSubscriptionID)
	var names []string
	for _, ch := range dg.Changes {
		names = append(names, ch.Name)
	}
	assert.Equal(t, []string{demoChangeProvisioned, demoChangeScheduled}, names, "its changes, oldest first")
	direct, err := sb.Service.Prov.DiagnoseSubscription(t.Context(), l.Subscription.ID)
	require.NoError(t, err)
	assert.Equal(t, len(direct.Changes), len(dg.Changes))
	c.get(api.Prefix+"/subscriptions/"+uuid.NewString()+"/diagnosis").problem(t, http.StatusNotFound)
	assert.Equal(t, []string{"subscriptionId"}, c.get(api.Prefix+"/subscriptions/x/diagnosis").problem(t, http.StatusBadRequest).fields())
}

// TestAPIJobs: the job list; Run Now through the API and its run; the runs newest first in pages; a run
// read under another job's name is not found.
func TestAPIJobs(t *testing.T) {
	t.Parallel()
	startedAt := time.Now().Truncate(time.Second)
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)

	var jobs api.JobList
	readerClient(t, sb).get(api.Prefix+"/jobs").ok(t, http.StatusOK, &jobs)
	var names []string
	for _, j := range jobs.Value {
		names = append(names, j.Name)
		assert.NotEmpty(t, j.Schedule, j.Name)
		assert.True(t, j.Enabled, j.Name)
		if assert.NotNil(t, j.LastRunOn, j.Name) {
			assert.False(t, j.LastRunOn.Before(startedAt), "%s last ran at start (%s), not before (%s)", j.Name, j.LastRunOn, startedAt)
		}
		assert.NotNil(t, j.NextRunOn, j.Name)
		assert.NotEmpty(t, j.LastStatus, j.Name)
		assert.False(t, j.Running, j.Name)
	}
	assert.ElementsMatch(t, sb.Service.Jobs.Names(), names, "every job")

	var run api.JobRunView
	loc := op.post(jobPath(connectivity.VerifyJobName)+"/run", nil).accepted(t, base, &run)
	assert.Equal(t, base+jobPath(connectivity.VerifyJobName)+"/runs/"+run.ID, loc)
	assert.Contains(t, loc, "/jobs/Verify%20Connectivity/runs/", "the job's name is escaped in the URL")
	assert.Equal(t, connectivity.VerifyJobName, run.Job)
	assert.Equal(t, "api", run.Trigger)
	assert.Contains(t, []string{"running", "succeeded"}, run.Status)
	last := op.poll(loc)
	last.ok(t, http.StatusOK, &run)
	assert.Equal(t, "succeeded", run.Status)
	assert.Equal(t, "sandbox", run.Instance)
	for range 2 {
		waitJobIdle(t, sb, connectivity.VerifyJobName)
		l := op.poll(op.post(jobPath(connectivity.VerifyJobName)+"/run", nil).accepted(t, base, nil))
		require.Equal(t, http.StatusOK, l.Status)
	}

	op.post(jobPath("Defragment")+"/run", nil).problem(t, http.StatusNotFound)
	op.get(jobPath("Defragment")+"/runs").problem(t, http.StatusNotFound)
	op.get(jobPath(connectivity.VerifyJobName)+"/runs/"+uuid.NewString()).problem(t, http.StatusNotFound)
	p := op.get(jobPath(provisioning.SweepJobName)+"/runs/"+run.ID).problem(t, http.StatusNotFound)
	assert.Contains(t, p.Detail, "not a run of")
	assert.Equal(t, []string{"runId"}, op.get(jobPath(connectivity.VerifyJobName)+"/runs/latest").problem(t, http.StatusBadRequest).fields())
	assert.Equal(t, []string{"cursor"}, op.get(jobPath(connectivity.VerifyJobName)+"/runs?cursor=yesterday").problem(t, http.StatusBadRequest).fields())

	// The runs, two a page, newest first.
	want := jobRunsOf(t, sb, connectivity.VerifyJobName)
	require.Len(t, want, 4, "the run at start and three through the API")
	var got []api.JobRunView
	next, pages := jobPath(connectivity.VerifyJobName)+"/runs?top=2", 0
	for next != "" {
		pages++
		require.LessOrEqual(t, pages, 4, "the pages end")
		var page api.JobRunList
		readerClient(t, sb).get(next).ok(t, http.StatusOK, &page)
		assert.LessOrEqual(t, len(page.Value), 2)
		got = append(got, page.Value...)
		if page.NextLink != "" {
			assert.True(t, strings.HasPrefix(page.NextLink, base+jobPath(connectivity.VerifyJobName)+"/runs?"), "nextLink %s is absolute", page.NextLink)
		}
		next = page.NextLink
	}
	assert.Equal(t, 2, pages)
	require.Len(t, got, len(want), "%+v", got)
	ids := map[string]bool{}
	for i, r := range got {
		ids[r.ID] = true
		assert.Equal(t, connectivity.VerifyJobName, r.Job)
		if i > 0 {
			assert.False(t, r.StartedOn.After(got[i-1].StartedOn), "newest first: %s after %s", r.StartedOn, got[i-1].StartedOn)
		}
	}
	assert.Len(t, ids, len(want), "each run once")
	for _, r := range want {
		assert.True(t, ids[r.ID.String()], "run %s is listed", r.ID)
	}
}

// TestAPIVerifyConnectivity: the checks run now and pass on the simulators.
func TestAPIVerifyConnectivity(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	var rep connectivity.Report
	operatorClient(t, sb).post(api.Prefix+"/connectivity/verify", nil).ok(t, http.StatusOK, &rep)
	assert.True(t, rep.OK, "%+v", rep)
	assert.NotEmpty(t, rep.Checks)
	assert.False(t, rep.At.IsZero())
	readerClient(t, sb).post(api.Prefix+"/connectivity/verify", nil).problem(t, http.StatusForbidden)
}

// swaggerDoc is the part of the OpenAPI document the tests read.
type swaggerDoc struct {
	Swagger string                                `json:"swagger"`
	Host    string                                `json:"host"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

// operations lists the documented methods ("GET") of each documented path.
func (d swaggerDoc) operations() map[string][]string {
	out := map[string][]string{}
	for path, item := range d.Paths {
		for m := range item {
			switch m {
			case "get", "post", "put", "patch", "delete", "head", "options":
				out[path] = append(out[path], strings.ToUpper(m))
			}
		}
	}
	return out
}

// pathMatches reports whether a documented path template matches a concrete path.
func pathMatches(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if !strings.HasPrefix(ts[i], "{") && ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// TestAPIDocumentMatchesRoutes: the OpenAPI document is served without credentials, and what it documents
// is what is served: every documented operation answers (not 404 or 405) with real ids, and every
// documented path allows exactly the documented methods of the templates it matches.
func TestAPIDocumentMatchesRoutes(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)

	a := anonymousClient(t, sb).get(api.Prefix + "/swagger.json")
	var doc swaggerDoc
	a.ok(t, http.StatusOK, &doc)
	assert.Equal(t, "2.0", doc.Swagger)
	assert.Equal(t, sb.Service.Addr().String(), doc.Host, "the served document carries the public URL's host")
	ops := doc.operations()
	var documented []string
	for path, methods := range ops {
		for _, m := range methods {
			documented = append(documented, m+" "+path)
		}
	}
	assert.ElementsMatch(t, api.Operations(), documented, "the document is the route table")

	var run api.JobRunView
	l := op.poll(op.post(jobPath(connectivity.VerifyJobName)+"/run", nil).accepted(t, sandboxBase(sb), &run))
	require.Equal(t, http.StatusOK, l.Status)
	waitJobIdle(t, sb, connectivity.VerifyJobName)
	lcl := readLCL(t, sb.DataverseClient, sb.DemoChanges[demoChangeProvisioned])
	concrete := func(path string) string {
		r := strings.NewReplacer(
			"{providerAccountId}", providerAccountsByTenant(t, sb)[demoContosoTenant].ID.String(),
			"{agreementId}", sb.contosoAgreement.String(),
			"{templateId}", sb.mcaTemplate.String(),
			"{licenseChangeLogId}", sb.DemoChanges[demoChangeProvisioned].String(),
			"{jobName}", url.PathEscape(connectivity.VerifyJobName),
			"{runId}", run.ID)
		if strings.HasPrefix(path, api.Prefix+"/subscriptions/") {
			path = strings.ReplaceAll(path, "{subscriptionId}", lcl.Subscription.ID.String())
		}
		return strings.ReplaceAll(r.Replace(path), "{subscriptionId}", uuid.NewString())
	}
	// POSTs first: reading a template's creation needs one requested.
	rank := func(o string) int {
		if strings.HasPrefix(o, "POST ") {
			return 0
		}
		return 1
	}
	slices.SortFunc(documented, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
	for _, o := range documented {
		method, path, _ := strings.Cut(o, " ")
		got := op.do(method, concrete(path), nil)
		assert.NotContains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusInternalServerError}, got.Status, "%s answers: %s", o, got.Body)
	}
	for path := range ops {
		p := concrete(path)
		var want []string
		for tpl, methods := range ops {
			if pathMatches(tpl, p) {
				want = append(want, methods...)
			}
		}
		a := op.do(http.MethodPut, p, nil)
		a.problem(t, http.StatusMethodNotAllowed)
		allow := strings.Split(a.Header.Get("Allow"), ", ")
		assert.ElementsMatch(t, want, allow, "Allow of %s", p)
	}
}

// TestAPIUnknownPathAndMethod: a path with no operation is a 404, a method the path does not have a 405
// naming the ones it has; both as problem+json, with or without credentials.
func TestAPIUnknownPathAndMethod(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	for _, c := range []apiClient{operatorClient(t, sb), anonymousClient(t, sb)} {
		p := c.get(api.Prefix+"/customers").problem(t, http.StatusNotFound)
		assert.Contains(t, p.Detail, "swagger.json")
		c.get(api.Prefix+"/jobs/"+url.PathEscape(connectivity.VerifyJobName)+"/runs/"+uuid.NewString()+"/log").problem(t, http.StatusNotFound)

		a := c.do(http.MethodDelete, api.Prefix+"/jobs", nil)
		a.problem(t, http.StatusMethodNotAllowed)
		assert.Equal(t, "GET", a.Header.Get("Allow"))
		a = c.get(api.Prefix + "/connectivity/verify")
		a.problem(t, http.StatusMethodNotAllowed)
		assert.Equal(t, "POST", a.Header.Get("Allow"))
		a = c.do(http.MethodPatch, api.Prefix+"/webhook-subscriptions/"+uuid.NewString(), nil)
		a.problem(t, http.StatusMethodNotAllowed)
		assert.Equal(t, "DELETE", a.Header.Get("Allow"))
		a = c.do(http.MethodPost, api.Prefix+"/swagger.json", nil)
		assert.NotEqual(t, http.StatusOK, a.Status, "the document is read-only")
	}
}

// TestAPIIdempotencyKey: a POST repeated with its Idempotency-Key gets the first answer again without the
// work being done again, also when the two arrive together; the key reused for another request is a 422.
func TestAPIIdempotencyKey(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)

	t.Run("RunJob", func(t *testing.T) {
		c := op.with("Idempotency-Key", "run-verify-1")
		before := len(jobRunsOf(t, sb, connectivity.VerifyJobName))
		first := c.post(jobPath(connectivity.VerifyJobName)+"/run", nil)
		loc := first.accepted(t, base, nil)
		last := op.poll(loc)
		require.Equal(t, http.StatusOK, last.Status)
		again := c.post(jobPath(connectivity.VerifyJobName)+"/run", nil)
		assert.Equal(t, first.Status, again.Status)
		assert.Equal(t, string(first.Body), string(again.Body), "the first answer, replayed")
		assert.Equal(t, loc, again.Header.Get("Location"))
		assert.Equal(t, first.Header.Get("Retry-After"), again.Header.Get("Retry-After"))
		assert.Len(t, jobRunsOf(t, sb, connectivity.VerifyJobName), before+1, "one run for the two requests")

		p := c.post(jobPath(connectivity.VerifyJobName)+"/run", `{"note":"another request"}`).problem(t, http.StatusUnprocessableEntity)
		assert.Equal(t, "idempotency_key_reused", p.Code)
		waitJobIdle(t, sb, connectivity.VerifyJobName)
		loc2 := op.with("Idempotency-Key", "run-verify-2").post(jobPath(connectivity.VerifyJobName)+"/run", nil).accepted(t, base, nil)
		assert.NotEqual(t, loc, loc2, "a new key is a new request")
		op.poll(loc2)
		// A key is the caller's own: the reader's same key is another request (which it may not make).
		readerClient(t, sb).with("Idempotency-Key", "run-verify-1").post(jobPath(connectivity.VerifyJobName)+"/run", nil).problem(t, http.StatusForbidden)
		op.with("Idempotency-Key", strings.Repeat("k", 256)).post(jobPath(connectivity.VerifyJobName)+"/run", nil).problem(t, http.StatusBadRequest)
	})

	t.Run("RequestAcceptanceLink", func(t *testing.T) {
		linkPath := api.Prefix + "/agreements/" + sb.contosoAgreement.String() + "/request-link"
		c := op.with("Idempotency-Key", "link-contoso")
		// Two at once, as a flow's retry racing its first attempt.
		var wg sync.WaitGroup
		answers := make([]apiAnswer, 2)
		for i := range answers {
			wg.Go(func() { answers[i] = c.post(linkPath, validSignatory) })
		}
		wg.Wait()
		answers[0].ok(t, http.StatusOK, nil)
		assert.Equal(t, answers[0].Status, answers[1].Status)
		assert.Equal(t, string(answers[0].Body), string(answers[1].Body), "both get the one answer")
		assert.Equal(t, 1, attestationPosts(sb), "one execution: one attestation")
		var sent api.AgreementView
		answers[0].ok(t, http.StatusOK, &sent)
		assert.Equal(t, "Link sent", sent.AttestationStatus)

		again := c.post(linkPath, validSignatory)
		assert.Equal(t, answers[0].Status, again.Status)
		assert.Equal(t, string(answers[0].Body), string(again.Body))
		other := validSignatory
		other.SignatoryFirstName = "Grace"
		p := c.post(linkPath, other).problem(t, http.StatusUnprocessableEntity)
		assert.Equal(t, "idempotency_key_reused", p.Code)
		assert.Equal(t, 1, attestationPosts(sb))
		assert.Equal(t, "Ada", readAgreement(t, sb, sb.contosoAgreement).SignatoryFirstName, "the refused request wrote nothing")
	})

	t.Run("FailureIsNotRemembered", func(t *testing.T) {
		c := op.with("Idempotency-Key", "map-1")
		path := api.Prefix + "/provider-accounts/" + uuid.NewString() + "/map"
		body := api.MapRequest{AccountID: uuid.NewString()}
		c.post(path, body).problem(t, http.StatusNotFound)
		c.post(path, body).problem(t, http.StatusNotFound)
	})
}

// TestAPIBodyLimitAndNoCORS: a body over 64 KiB is refused with 413; no answer carries CORS headers, not
// even to a preflight (the API is for servers and flows, never for browsers' cross-origin calls).
func TestAPIBodyLimitAndNoCORS(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	linkPath := api.Prefix + "/agreements/" + sb.contosoAgreement.String() + "/request-link"

	big := `{"signatoryFirstName":"` + strings.Repeat("a", 64<<10) + `"}`
	p := op.post(linkPath, big).problem(t, http.StatusRequestEntityTooLarge)
	assert.Contains(t, p.Detail, "64 KiB")
	assert.Empty(t, readAgreement(t, sb, sb.contosoAgreement).SignatoryFirstName)
	// Just under the limit is read (and refused for what it says).
	fits := `{"signatoryFirstName":"` + strings.Repeat("a", 64<<10-200) + `"}`
	op.post(linkPath, fits).problem(t, http.StatusBadRequest)

	browser := op.with("Origin", "https://evil.example")
	browser.get(api.Prefix+"/jobs").ok(t, http.StatusOK, nil)
	browser.get(api.Prefix+"/swagger.json").ok(t, http.StatusOK, nil)
	anonymousClient(t, sb).with("Origin", "https://evil.example").get(api.Prefix+"/jobs").problem(t, http.StatusUnauthorized)
	pre := anonymousClient(t, sb).with("Origin", "https://evil.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "x-api-key, content-type").
		do(http.MethodOptions, linkPath, nil)
	assert.NotEqual(t, http.StatusOK, pre.Status, "no preflight is granted")
	assert.NotEqual(t, http.StatusNoContent, pre.Status, "no preflight is granted")
	assert.Empty(t, pre.Header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, pre.Header.Get("Access-Control-Allow-Methods"))
}

// TestAPIRateLimit: with 10 requests a minute per caller (a burst of 20), the 21st request in a burst is a
// 429 with Retry-After; another caller is not affected.
func TestAPIRateLimit(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	auth, err := sandboxAuth()
	require.NoError(t, err)
	srv := httptest.NewServer(api.New(sb.Service.apiDeps(), api.Options{Auth: auth, RatePerMinute: 10}))
	t.Cleanup(srv.Close)
	require.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), srv.URL)
	op := newAPIClient(t, srv.URL, http.Header{api.KeyHeader: {SandboxOperatorKey}})
	reader := newAPIClient(t, srv.URL, http.Header{api.KeyHeader: {SandboxReaderKey}})

	start := time.Now()
	for i := range 20 {
		require.Equal(t, http.StatusOK, op.get(api.Prefix+"/agreement-templates").Status, "request %d is within the burst", i+1)
	}
	for i := 20; i < 25; i++ {
		a := op.get(api.Prefix + "/agreement-templates")
		p := a.problem(t, http.StatusTooManyRequests)
		assert.Contains(t, p.Detail, "10 a minute", "request %d", i+1)
		wait, err := strconv.Atoi(a.Header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", a.Header.Get("Retry-After"))
		assert.True(t, wait >= 1 && wait <= 7, "Retry-After %d: about one request's worth (6 s)", wait)
	}
	require.Less(t, time.Since(start), 5*time.Second, "the burst was quick enough for the limit to bite")
	reader.get(api.Prefix+"/agreement-templates").ok(t, http.StatusOK, nil)
	// The service's own API (600 a minute) is another limiter.
	operatorClient(t, sb).get(api.Prefix+"/agreement-templates").ok(t, http.StatusOK, nil)
}

// TestAPIOffAndStarting: without authentication configured every operation is a 404 saying the API is
// off (the document is still served); before the service has reached Dataverse, a 503 with Retry-After.
func TestAPIOffAndStarting(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t) // not running: the service has not started
	off := httptest.NewServer(api.New(sb.Service.apiDeps(), api.Options{}))
	t.Cleanup(off.Close)
	c := newAPIClient(t, off.URL, http.Header{api.KeyHeader: {SandboxOperatorKey}})
	p := c.get(api.Prefix+"/jobs").problem(t, http.StatusNotFound)
	assert.Contains(t, p.Detail, "The API is off")
	c.get(api.Prefix+"/swagger.json").ok(t, http.StatusOK, nil)

	auth, err := sandboxAuth()
	require.NoError(t, err)
	starting := httptest.NewServer(api.New(sb.Service.apiDeps(), api.Options{Auth: auth}))
	t.Cleanup(starting.Close)
	a := newAPIClient(t, starting.URL, http.Header{api.KeyHeader: {SandboxOperatorKey}}).get(api.Prefix + "/jobs")
	a.problem(t, http.StatusServiceUnavailable)
	assert.Equal(t, "30", a.Header.Get("Retry-After"))
}

// TestAPIIdempotencyKeyAfterPanic: an operation that fails on an internal error (a panic, answered 500)
// must not hold its Idempotency-Key: the retry of a failed request runs again (failures are not
// remembered). The key's entry is left waiting for an answer that never comes, so the retry hangs.
func TestAPIIdempotencyKeyAfterPanic(t *testing.T) {
	t.Parallel()
	// An API without its workflows: VerifyConnectivity panics on the missing checker.
	auth, err := sandboxAuth()
	require.NoError(t, err)
	broken := api.Deps{Started: func() bool { return true }}
	srv := &http.Server{Handler: api.New(broken, api.Options{Auth: auth}), ReadHeaderTimeout: 5 * time.Second}
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() }) // Close, not Shutdown: a hung handler must not hang the test
	c := newAPIClient(t, "http://"+ln.Addr().String(), http.Header{api.KeyHeader: {SandboxOperatorKey}, "Idempotency-Key": {"verify-1"}})

	c.post(api.Prefix+"/connectivity/verify", nil).problem(t, http.StatusInternalServerError)

	c.http.Timeout = 3 * time.Second
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, c.base+api.Prefix+"/connectivity/verify", nil)
	require.NoError(t, err)
	req.Header = c.hdr.Clone()
	resp, err := c.http.Do(req)
	require.NoError(t, err, "the retry with the same Idempotency-Key gets an answer (it waits forever for the panicked first request)")
	defer resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "it runs again, and fails again")
}

// TestAPIRunJobRightAfterItFinished: a caller that polls a run until it has finished and then asks for the
// job again must get a new run (202). The run's row is marked finished before the job's lease is released
// (a Dataverse write, slowed here) and before the replica forgets it is running it; a request in between
// is refused with 409 "running on another replica; its run is not recorded yet", which is not so.
func TestAPIRunJobRightAfterItFinished(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)
	sb.Dataverse.Inject(dataversetest.Fault{Method: http.MethodPatch, Path: "csp_jobs(", Latency: 500 * time.Millisecond})

	var first api.JobRunView
	loc := op.post(jobPath(connectivity.VerifyJobName)+"/run", nil).accepted(t, base, &first)
	last := op.poll(loc)
	last.ok(t, http.StatusOK, &first)
	require.Equal(t, "succeeded", first.Status)

	var next api.JobRunView
	op.post(jobPath(connectivity.VerifyJobName)+"/run", nil).accepted(t, base, &next)
	assert.NotEqual(t, first.ID, next.ID, "a new run")
}

// TestAPIRefusesFieldsLongerThanTheirColumns: a signatory name longer than its column is a 400 naming the
// field, checked before anything is written; Dataverse's refusal (and its URL) never reaches the caller.
func TestAPIRefusesFieldsLongerThanTheirColumns(t *testing.T) {
	t.Parallel()
	sb := apiSandbox(t)
	op := operatorClient(t, sb)
	linkPath := api.Prefix + "/agreements/" + sb.contosoAgreement.String() + "/request-link"

	long := strings.Repeat("é", schema.MaxLength(schema.TableAgreement, "csp_signatorylastname")+1)
	a := op.post(linkPath, api.LinkRequest{SignatoryFirstName: "Ada", SignatoryLastName: long, SignatoryEmail: "ada@contoso.example",
		SignatoryCompany: "Contoso", SignatoryCountry: "GB", SignatoryLanguage: "en-GB"})
	p := a.problem(t, http.StatusBadRequest)
	require.Len(t, p.Errors, 1, "%s", a.Body)
	assert.Equal(t, "signatoryLastName", p.Errors[0].Field)
	assert.Contains(t, p.Errors[0].Message, "at most 100")
	assert.NotContains(t, string(a.Body), "/api/data/", "no Dataverse URL in the answer")
	assert.NotContains(t, string(a.Body), "maximum allowed length", "no Dataverse error text in the answer")
	assert.Empty(t, readAgreement(t, sb, sb.contosoAgreement).SignatoryFirstName, "the refused request wrote nothing")
}
