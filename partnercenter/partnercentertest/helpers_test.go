package partnercentertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// These tests speak raw HTTP to the simulator, the way Partner Center is documented to answer, without
// the partnercenter client: a bug shared by the client and the simulator would otherwise go unseen.

const bom = "\ufeff"

// newServer starts a simulator on loopback; it is closed when the test ends.
func newServer(t *testing.T, opts partnercentertest.Options) *partnercentertest.Server {
	t.Helper()
	srv, err := partnercentertest.NewServer(opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

// client sends requests to one simulator with one access token ("" for none).
type client struct {
	t     *testing.T
	srv   *partnercentertest.Server
	hc    *http.Client
	token string
}

// appClient has an app-only token (client credentials).
func appClient(t *testing.T, srv *partnercentertest.Server) client {
	t.Helper()
	c := client{t: t, srv: srv, hc: srv.Client()}
	c.token = c.appToken()
	return c
}

// userClient has an app+user token from a consented partner user's refresh token.
func userClient(t *testing.T, srv *partnercentertest.Server) client {
	t.Helper()
	c := client{t: t, srv: srv, hc: srv.Client()}
	res := c.tokenRequest(url.Values{
		"grant_type": {"refresh_token"}, "client_id": {srv.ClientID()}, "client_secret": {srv.ClientSecret()},
		"refresh_token": {srv.NewRefreshToken()}, "scope": {partnercentertest.UserImpersonationScope + " offline_access"},
	})
	require.Equal(t, http.StatusOK, res.status, "refresh grant: %s", res.body)
	c.token = res.tokenJSON(t)["access_token"].(string)
	return c
}

// anonymous has no token.
func anonymous(t *testing.T, srv *partnercentertest.Server) client {
	return client{t: t, srv: srv, hc: srv.Client()}
}

func (c client) withHTTP(hc *http.Client) client { c.hc = hc; return c }

func (c client) appToken() string {
	c.t.Helper()
	res := c.tokenRequest(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {c.srv.ClientID()}, "client_secret": {c.srv.ClientSecret()},
		"scope": {partnercentertest.Scope},
	})
	require.Equal(c.t, http.StatusOK, res.status, "client credentials grant: %s", res.body)
	return res.tokenJSON(c.t)["access_token"].(string)
}

// tokenRequest posts a form to the simulator's token endpoint.
func (c client) tokenRequest(form url.Values) response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), http.MethodPost, c.srv.TokenURL(), strings.NewReader(form.Encode()))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.send(req)
}

// response is an answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// object decodes a Partner Center JSON body, which must start with a byte-order mark.
func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	r.decode(t, &v)
	return v
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.True(t, bytes.HasPrefix(r.body, []byte(bom)), "Partner Center bodies start with a byte-order mark: %q", r.body)
	require.NoError(t, json.Unmarshal(bytes.TrimPrefix(r.body, []byte(bom)), v), "body: %s", r.body)
}

// tokenJSON decodes an Entra answer (no byte-order mark).
func (r response) tokenJSON(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// code returns the error code of a Partner Center error body.
func (r response) code(t *testing.T) int {
	t.Helper()
	v := r.object(t)
	code, found := v["code"].(float64)
	require.True(t, found, "no numeric code in %s", r.body)
	return int(code)
}

// request builds a request: path below /v1/ unless it starts with "/". body is nil, a string or []byte
// sent as is, or a value sent as JSON; headers are name, value pairs.
func (c client) request(ctx context.Context, method, path string, body any, headers ...string) *http.Request {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd = bytes.NewReader(data)
	}
	target := c.srv.URL + "/v1/" + path
	if strings.HasPrefix(path, "/") {
		target = c.srv.URL + path
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	require.NoError(c.t, err)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	require.Zero(c.t, len(headers)%2, "headers come in pairs")
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

func (c client) send(req *http.Request) response {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func (c client) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	return c.send(c.request(c.t.Context(), method, path, body, headers...))
}

func (c client) get(path string, headers ...string) response {
	c.t.Helper()
	return c.do(http.MethodGet, path, nil, headers...)
}

// getOK reads a resource that must exist.
func (c client) getOK(path string) map[string]any {
	c.t.Helper()
	res := c.get(path)
	require.Equal(c.t, http.StatusOK, res.status, "GET %s: %s", path, res.body)
	return res.object(c.t)
}

// vector reads one of Microsoft's sample payloads saved in partnercenter/testdata/vectors.
func vector(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", name))
	require.NoError(t, err)
	return data
}

// customerID makes a recognisable tenant id for the n-th test customer.
func customerID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// items returns the items of a collection body.
func items(t *testing.T, v map[string]any) []map[string]any {
	t.Helper()
	raw, found := v["items"].([]any)
	require.True(t, found, "no items in %v", v)
	out := make([]map[string]any, len(raw))
	for i, it := range raw {
		out[i] = it.(map[string]any)
	}
	return out
}
