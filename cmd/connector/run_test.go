package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestDataverseInstallDryRunThenInstallThenNothing(t *testing.T) {
	t.Parallel()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.StandardTables()})
	require.NoError(t, err)
	defer srv.Close()
	vars := getenv(map[string]string{"DATAVERSE_URL": srv.URL, "DATAVERSE_AUTH": "none"})

	var out, errs bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"dataverse", "install", "--dry-run"}, vars, nil, &out, &errs))
	assert.Contains(t, out.String(), "+ create table csp_provider (Provider), entity set csp_providers")
	assert.Contains(t, out.String(), "Dry run: nothing was changed.")
	for _, r := range srv.Requests() {
		assert.False(t, r.IsWrite(), "dry run wrote %s %s", r.Method, r.Path)
	}

	out.Reset()
	require.NoError(t, run(t.Context(), []string{"dataverse", "install"}, vars, nil, &out, &errs))
	assert.Contains(t, out.String(), "Done:")
	assert.Regexp(t, `\[1/\d+\] create publisher cspconnector`, out.String())

	srv.ResetRequests()
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"dataverse", "install", "--output", "json"}, vars, nil, &out, &errs))
	var report struct {
		Applied  bool
		Changes  []string
		Problems []string
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &report))
	assert.False(t, report.Applied)
	assert.Empty(t, report.Changes)
	assert.Empty(t, report.Problems)
	for _, r := range srv.Requests() {
		assert.False(t, r.IsWrite(), "second install wrote %s %s", r.Method, r.Path)
	}
}

func TestConfigurationProblemsAreReportedTogether(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	err := run(t.Context(), []string{"dataverse", "install"}, getenv(map[string]string{"DATAVERSE_AUTH": "sometimes", "CONNECTOR_LOG_LEVEL": "loud"}), nil, &out, &errs)
	require.Error(t, err)
	for _, want := range []string{"DATAVERSE_URL is required", `DATAVERSE_AUTH "sometimes"`, `CONNECTOR_LOG_LEVEL "loud"`} {
		assert.ErrorContains(t, err, want)
	}
}

func TestSandboxStartsInstallsSeedsAndStops(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sandbox", "--dataverse-addr", "127.0.0.1:0", "--partnercenter-addr", "127.0.0.1:0"}, getenv(nil), nil, &out, &errs)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Press Ctrl+C to stop.") }, 30*time.Second, 10*time.Millisecond, "stderr: %s", errs.String())
	text := out.String()
	assert.Contains(t, text, "Dataverse simulator  http://127.0.0.1:")
	assert.Regexp(t, `Schema installed     \d+ change\(s\)`, text)
	assert.Contains(t, text, "csp_licensechangelog=2")

	// The printed URL serves the installed schema: a second install against it plans nothing.
	url := strings.Fields(text[strings.Index(text, "http://127.0.0.1:"):])[0]
	var installOut bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"dataverse", "install", "--dry-run"}, getenv(map[string]string{"DATAVERSE_URL": url, "DATAVERSE_AUTH": "none"}), nil, &installOut, &bytes.Buffer{}))
	assert.Contains(t, installOut.String(), "Nothing to change")

	// `connector pc customers` against the running sandbox lists its demo customers.
	pcAt := strings.Index(text, "Partner Center       http://127.0.0.1:")
	require.GreaterOrEqual(t, pcAt, 0, text)
	pcURL := strings.Fields(text[pcAt+len("Partner Center       "):])[0]
	var pcOut bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"pc", "customers"}, getenv(map[string]string{"PARTNERCENTER_ENDPOINT": pcURL, "PARTNERCENTER_AUTH": "none"}), nil, &pcOut, &bytes.Buffer{}))
	for _, want := range []string{"Contoso Ltd", "Fabrikam Inc", "Adventure Works Cycles", "Northwind Traders", "4 customer(s)"} {
		assert.Contains(t, pcOut.String(), want)
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("sandbox did not stop")
	}
	assert.Contains(t, out.String(), "Stopped.")
}

func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"--help"}, getenv(nil), nil, &out, &bytes.Buffer{}))
	for _, cmd := range []string{"sandbox", "dataverse"} {
		assert.Contains(t, out.String(), cmd)
	}
}

// TestReadmeDocumentsEverySetting keeps the README's configuration table in step with the code.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, s := range connector.Settings() {
		row := "| `" + s.Name + "` | "
		if s.Default != "" {
			row += "`" + s.Default + "` |"
		}
		assert.Contains(t, string(readme), row, "README configuration table row for %s", s.Name)
	}
	assert.Contains(t, string(readme), "make run")
	assert.Contains(t, string(readme), "make test")
}
