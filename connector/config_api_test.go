package connector_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/apiauth"
)

// TestLoadConfigAPIReportsEveryProblem: the HTTP API's settings are checked at start, all problems at
// once, and a hash in a bad key entry is not echoed.
func TestLoadConfigAPIReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := connector.LoadConfig(env(map[string]string{
		"CONNECTOR_API_AUDIENCES": "api://csp-connector",
		"CONNECTOR_API_KEYS":      "flows=admin=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"CONNECTOR_API_RATE":      "5",
		"CONNECTOR_HEALTH_ADDR":   "9090",
	}))
	var ce *connector.ConfigError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 5, "%q", ce.Problems)
	assert.Contains(t, ce.Problems[0], "CONNECTOR_HEALTH_ADDR")
	assert.Contains(t, ce.Problems[1], "CONNECTOR_API_KEYS")
	assert.Contains(t, ce.Problems[2], "CONNECTOR_API_RATE")
	assert.Equal(t, "CONNECTOR_API_AUDIENCES needs CONNECTOR_API_TENANT_ID", ce.Problems[3])
	assert.Contains(t, ce.Problems[4], "CONNECTOR_PUBLIC_URL", "without it Location headers would point at the ingress's inside")
	assert.NotContains(t, ce.Error(), "0123456789abcdef0123456789")

	_, err = connector.LoadConfig(env(map[string]string{"CONNECTOR_API_TENANT_ID": "not-a-guid", "CONNECTOR_API_AUDIENCES": "api://x"}))
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, ce.Error(), "HTTP API")
}

// TestLoadConfigAPIKeysAndEntra: a valid configuration builds an authenticator that accepts the key.
func TestLoadConfigAPIKeysAndEntra(t *testing.T) {
	t.Parallel()
	cfg, err := connector.LoadConfig(env(map[string]string{
		"CONNECTOR_API_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
		"CONNECTOR_API_AUDIENCES": "11111111-2222-3333-4444-555555555555, api://csp-connector",
		"CONNECTOR_API_KEYS":      "flows=operator=" + apiauth.HashKey("a-long-enough-api-key"),
		"CONNECTOR_PUBLIC_URL":    "https://csp.contoso.com",
	}))
	require.NoError(t, err)
	assert.Equal(t, []string{"11111111-2222-3333-4444-555555555555", "api://csp-connector"}, cfg.APIAudiences)
	auth, err := cfg.APIAuth(nil)
	require.NoError(t, err)
	r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/api/v1/jobs", nil)
	r.Header.Set(api.KeyHeader, "a-long-enough-api-key")
	p, err := auth.Authenticate(r)
	require.NoError(t, err)
	assert.True(t, p.Has(apiauth.RoleOperator))

	none, err := connector.LoadConfig(env(map[string]string{}))
	require.NoError(t, err)
	auth, err = none.APIAuth(nil)
	require.NoError(t, err)
	assert.Nil(t, auth, "no API credentials configured: the API is off")
}

// TestHealthOnItsOwnAddress: with CONNECTOR_HEALTH_ADDR, health and metrics are served there and not on
// the main server, which keeps the API and the webhook.
func TestHealthOnItsOwnAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	healthAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	sb, err := connector.StartSandbox(t.Context(), connector.SandboxOptions{DataverseAddr: "127.0.0.1:0", PartnerCenterAddr: "127.0.0.1:0", ConnectorAddr: "127.0.0.1:0",
		HealthAddr: healthAddr})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	done := make(chan error, 1)
	go func() { done <- sb.Service.Run(t.Context()) }()
	t.Cleanup(func() { <-done })
	main := "http://" + sb.Service.Addr().String()
	var resp *http.Response
	require.Eventually(t, func() bool {
		resp, err = http.Get("http://" + healthAddr + "/healthz")
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(main + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, "%s is not on the main server", path)
	}
	resp, err = http.Get("http://" + healthAddr + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Get(main + api.Prefix + "/swagger.json")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
