package connector_test

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/provisioning"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := connector.LoadConfig(env(nil))
	require.NoError(t, err)
	assert.Equal(t, connector.AuthDefault, cfg.DataverseAuth)
	assert.Equal(t, 16, cfg.DataverseMaxConcurrency)
	assert.Equal(t, 200, cfg.DataverseBatchSize)
	assert.Equal(t, slog.LevelInfo, cfg.LogLevel)
}

func TestLoadConfigReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	_, err := connector.LoadConfig(env(map[string]string{
		"DATAVERSE_URL":             "http://contoso.crm.dynamics.com",
		"DATAVERSE_AUTH":            "password",
		"DATAVERSE_MAX_CONCURRENCY": "100",
		"DATAVERSE_BATCH_SIZE":      "lots",
		"CONNECTOR_LOG_LEVEL":       "chatty",
	}), "SERVICEBUS_QUEUE")
	require.Error(t, err)
	assert.True(t, connector.IsConfigError(err))
	var ce *connector.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{
		"SERVICEBUS_QUEUE is required",
		"DATAVERSE_URL must use https (plain http is accepted only for a loopback simulator)",
		`DATAVERSE_AUTH "password" is not one of default, managed-identity, none`,
		`DATAVERSE_MAX_CONCURRENCY "100" must be a whole number from 1 to 52`,
		`DATAVERSE_BATCH_SIZE "lots" must be a whole number from 1 to 1000`,
		`CONNECTOR_LOG_LEVEL "chatty" is not one of debug, info, warn, error`,
	}, ce.Problems)
}

func TestAuthNoneOnlyForLoopback(t *testing.T) {
	t.Parallel()
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8091":            true,
		"http://localhost:8091":            true,
		"http://[::1]:8091":                true,
		"https://contoso.crm.dynamics.com": false,
		"http://10.0.0.5:8091":             false,
	} {
		_, err := connector.LoadConfig(env(map[string]string{"DATAVERSE_URL": url, "DATAVERSE_AUTH": "none"}))
		assert.Equal(t, ok, err == nil, "%s: %v", url, err)
	}
}

func TestLoadConfigRejectsURLShapes(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"contoso.crm.dynamics.com", "https://user:pw@contoso.crm.dynamics.com", "https://contoso.crm.dynamics.com/api/data/v9.2"} {
		_, err := connector.LoadConfig(env(map[string]string{"DATAVERSE_URL": u}))
		assert.Error(t, err, u)
		assert.NotContains(t, err.Error(), "pw@", "credentials never appear in errors")
	}
	cfg, err := connector.LoadConfig(env(map[string]string{"DATAVERSE_URL": "https://contoso.crm.dynamics.com/"}))
	require.NoError(t, err)
	assert.Equal(t, "https://contoso.crm.dynamics.com", cfg.DataverseURL)
}

func TestSettingsDocumentEveryVariable(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, s := range connector.Settings() {
		names[s.Name] = true
		assert.NotEmpty(t, s.Help)
	}
	for _, want := range []string{"DATAVERSE_URL", "DATAVERSE_AUTH", "CONNECTOR_LOG_LEVEL", "DATAVERSE_MAX_CONCURRENCY", "DATAVERSE_BATCH_SIZE"} {
		assert.True(t, names[want], want)
	}
}

func TestLoggedConfigurationHasNoSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := connector.LoadConfig(env(map[string]string{
		"PARTNERCENTER_TENANT_ID": "tenant", "PARTNERCENTER_CLIENT_ID": "client",
		"PARTNERCENTER_CLIENT_SECRET": "zz-very-secret-zz", "PARTNERCENTER_REFRESH_TOKEN_FILE": "/run/secrets/pc-refresh",
	}), connector.NeedPartnerCenter)
	require.NoError(t, err)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", cfg)
	assert.NotContains(t, logged.String(), "zz-very-secret-zz")
	assert.Contains(t, logged.String(), `"partnercenter_client_secret_set":true`)
	assert.Contains(t, logged.String(), `"partnercenter_client_id":"client"`)
}

// TestLoopbackDataverseWithoutAuthSaysSetNone: a simulator's URL with DATAVERSE_AUTH left unset would send
// azidentity through every sign-in it knows; the configuration says what to set instead, with the other
// problems.
func TestLoopbackDataverseWithoutAuthSaysSetNone(t *testing.T) {
	t.Parallel()
	_, err := connector.LoadConfig(env(map[string]string{"DATAVERSE_URL": "http://127.0.0.1:8091", "PARTNERCENTER_ENDPOINT": "http://localhost:8092",
		"CONNECTOR_LOG_LEVEL": "chatty"}), connector.NeedDataverse, connector.NeedPartnerCenter)
	var ce *connector.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{
		"DATAVERSE_URL http://127.0.0.1:8091 is a local simulator (a loopback address), which takes no sign-in: set DATAVERSE_AUTH=none (or DATAVERSE_AUTH=default to sign in anyway)",
		"PARTNERCENTER_ENDPOINT http://localhost:8092 is a local simulator (a loopback address), which takes no sign-in: set PARTNERCENTER_AUTH=none (or PARTNERCENTER_TENANT_ID and PARTNERCENTER_CLIENT_ID to sign in anyway)",
		`CONNECTOR_LOG_LEVEL "chatty" is not one of debug, info, warn, error`,
	}, ce.Problems)

	// Said explicitly, it is a choice: a loopback proxy in front of a real environment.
	_, err = connector.LoadConfig(env(map[string]string{"DATAVERSE_URL": "http://127.0.0.1:8091", "DATAVERSE_AUTH": "default"}), connector.NeedDataverse)
	assert.NoError(t, err)
	_, err = connector.LoadConfig(env(map[string]string{"DATAVERSE_URL": "http://127.0.0.1:8091", "DATAVERSE_AUTH": "none"}), connector.NeedDataverse)
	assert.NoError(t, err)
}

// TestClaimTTLSetting: CONNECTOR_CLAIM_TTL sets how long a claim on a license change lasts (10 minutes by
// default), within 30 s to 1 h.
func TestClaimTTLSetting(t *testing.T) {
	t.Parallel()
	cfg, err := connector.LoadConfig(env(nil))
	require.NoError(t, err)
	assert.Equal(t, provisioning.DefaultClaimTTL, cfg.ClaimTTL)
	cfg, err = connector.LoadConfig(env(map[string]string{"CONNECTOR_CLAIM_TTL": "45s"}))
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, cfg.ClaimTTL)
	for _, bad := range []string{"5s", "2h", "soon"} {
		_, err := connector.LoadConfig(env(map[string]string{"CONNECTOR_CLAIM_TTL": bad}))
		assert.ErrorContains(t, err, `CONNECTOR_CLAIM_TTL "`+bad+`" must be a duration from 30s to 1h`)
	}
}

func TestDataverseBudgetSettings(t *testing.T) {
	t.Parallel()
	cfg, err := connector.LoadConfig(env(nil))
	require.NoError(t, err)
	assert.Equal(t, 6000, cfg.DataverseBudgetRequests, "Dataverse's documented limit")
	assert.Equal(t, 20*time.Minute, cfg.DataverseBudgetExecution)
	assert.Equal(t, 10, cfg.DataverseBulkReserve)
	c, err := connector.NewDataverseClient(connector.Config{DataverseURL: "http://127.0.0.1:1", DataverseAuth: connector.AuthNone, DataverseBudgetRequests: 3000,
		DataverseBudgetExecution: 10 * time.Minute, DataverseBulkReserve: 25}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	assert.Equal(t, 3000, c.Options().BudgetRequests)
	assert.Equal(t, 10*time.Minute, c.Options().BudgetExecutionTime)
	assert.Equal(t, 25, c.Options().BulkReserve)

	cfg, err = connector.LoadConfig(env(map[string]string{"DATAVERSE_BUDGET_REQUESTS": "0", "DATAVERSE_BULK_RESERVE": "0"}))
	require.NoError(t, err)
	c, err = connector.NewDataverseClient(connector.Config{DataverseURL: "http://127.0.0.1:1", DataverseAuth: connector.AuthNone,
		DataverseBudgetRequests: cfg.DataverseBudgetRequests, DataverseBulkReserve: cfg.DataverseBulkReserve}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	assert.Negative(t, c.Options().BudgetRequests, "0 switches pacing off")
	assert.Zero(t, c.Options().BulkReserve, "0 leaves no reserve")

	_, err = connector.LoadConfig(env(map[string]string{"DATAVERSE_BUDGET_REQUESTS": "-5", "DATAVERSE_BUDGET_EXECUTION_SECONDS": "0", "DATAVERSE_BULK_RESERVE": "95"}))
	var ce *connector.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{
		`DATAVERSE_BUDGET_REQUESTS "-5" must be a whole number from 0 to 1000000`,
		`DATAVERSE_BUDGET_EXECUTION_SECONDS "0" must be a whole number from 1 to 1000000`,
		`DATAVERSE_BULK_RESERVE "95" must be a whole number from 0 to 90`,
	}, ce.Problems)
}
