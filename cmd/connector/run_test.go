package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/fakesb"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
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
	assert.Contains(t, out.String(), "+ create app csp_CSPConnector (CSP Connector)")
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
		done <- run(ctx, []string{"sandbox", "--dataverse-addr", "127.0.0.1:0", "--partnercenter-addr", "127.0.0.1:0", "--addr", "127.0.0.1:0"}, getenv(nil), nil, &out, &errs)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Press Ctrl+C to stop.") }, 30*time.Second, 10*time.Millisecond, "stderr: %s", errs.String())
	text := out.String()
	assert.Contains(t, text, "Dataverse simulator  http://127.0.0.1:")
	assert.Regexp(t, `Schema installed     \d+ change\(s\)`, text)
	assert.Contains(t, text, "csp_licensechangelog=7")

	// The printed URL serves the installed schema: a second install against it plans nothing.
	_, after, _ := strings.Cut(text, "Dataverse simulator  ")
	url := strings.Fields(after)[0]
	assert.True(t, strings.HasPrefix(text, "Open the CSP Connector app in a browser: "+url+"/main.aspx?appname=csp_CSPConnector\n"), "the app's address comes first: %s", text)
	var installOut bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"dataverse", "install", "--dry-run"}, getenv(map[string]string{"DATAVERSE_URL": url, "DATAVERSE_AUTH": "none"}), nil, &installOut, &bytes.Buffer{}))
	assert.Contains(t, installOut.String(), "Nothing to change")

	// `connector pc customers` against the running sandbox lists its demo customers.
	pcAt := strings.Index(text, "Partner Center       http://127.0.0.1:")
	require.GreaterOrEqual(t, pcAt, 0, text)
	pcURL := strings.Fields(text[pcAt+len("Partner Center       "):])[0]
	var pcOut bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"pc", "customers"}, getenv(map[string]string{"PARTNERCENTER_ENDPOINT": pcURL, "PARTNERCENTER_AUTH": "none"}), nil, &pcOut, &bytes.Buffer{}))
	for _, want := range []string{"Contoso Ltd", "Fabrikam Inc", "Adventure Works Cycles", "Northwind Traders", "7 customer(s)"} {
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

// TestRunEndToEndOverServiceBus is the runtime end to end: `connector dataverse install` registers a
// Service Bus endpoint and steps in the Dataverse simulator; `connector run` listens on the fake broker
// with the real SDK; an admin's write in the simulator is posted to the queue as Dataverse would; the
// connector receives it, runs Verify Connectivity for that provider and writes the outcome on its row.
func TestRunEndToEndOverServiceBus(t *testing.T) {
	t.Parallel()
	broker := fakesb.Start(t, fakesb.Options{Queues: []string{connector.DefaultQueue}})
	sbc, err := azservicebus.NewClientFromConnectionString(broker.ConnectionString(), nil)
	require.NoError(t, err)
	sender, err := sbc.NewSender(connector.DefaultQueue, nil)
	require.NoError(t, err)
	defer sender.Close(context.Background())
	contentType := "application/json"
	sb, err := connector.StartSandbox(t.Context(), connector.SandboxOptions{DataverseAddr: "127.0.0.1:0", PartnerCenterAddr: "127.0.0.1:0", ConnectorAddr: "127.0.0.1:0",
		ServiceBusDelivery: func(ctx context.Context, target dataversetest.ServiceBusTarget, body []byte, props map[string]any) error {
			if target.Path != connector.DefaultQueue {
				return fmt.Errorf("posted to queue %q", target.Path)
			}
			return sender.SendMessage(ctx, &azservicebus.Message{Body: body, ContentType: &contentType, ApplicationProperties: props}, nil)
		}})
	require.NoError(t, err)
	defer sb.Close()
	env := getenv(map[string]string{
		"DATAVERSE_URL": sb.Dataverse.URL, "DATAVERSE_AUTH": "none",
		"PARTNERCENTER_ENDPOINT": sb.PartnerCenter.URL, "PARTNERCENTER_AUTH": "none",
		"SERVICEBUS_CONNECTION_STRING": broker.ConnectionString(), "SERVICEBUS_SEND_CONNECTION_STRING": broker.ConnectionString(),
		"CONNECTOR_HTTP_ADDR": "127.0.0.1:0", "CONNECTOR_INSTANCE": "e2e",
	})

	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"dataverse", "install"}, env, nil, &out, io.Discard))
	assert.Contains(t, out.String(), "Event registration (Service Bus queue dataverse-events on sb://127.0.0.1:")
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"dataverse", "install", "--dry-run"}, env, nil, &out, io.Discard))
	assert.Equal(t, 2, strings.Count(out.String(), "Nothing to change"), "a second install changes nothing: %s", out.String())

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var logs syncBuffer
	go func() { done <- run(ctx, []string{"run"}, env, nil, io.Discard, &logs) }()

	provider := func() schema.Provider {
		var p schema.Provider
		for r, err := range sb.DataverseClient.List(t.Context(), schema.SetProviders, &dataverse.Query{Select: dataverse.Columns[schema.Provider](), Filter: dataverse.Eq("csp_type", schema.ProviderAutomatic)}) {
			require.NoError(t, err)
			require.NoError(t, dataverse.Unmarshal(r, &p))
		}
		return p
	}
	// At start the Verify Connectivity job runs once on its schedule.
	require.Eventually(t, func() bool { return !provider().LastVerifiedOn.IsZero() }, 30*time.Second, 20*time.Millisecond, "logs: %s", logs.String())
	first := provider().LastVerifiedOn

	// An admin asks for a check from the provider's form.
	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond) // Dataverse keeps whole seconds
	_, err = admin.Update(t.Context(), schema.SetProviders, provider().ID, dataverse.Row{"csp_verifyrequestedon": time.Now().UTC()}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return provider().LastVerifiedOn.After(first) }, 30*time.Second, 20*time.Millisecond, "logs: %s", logs.String())
	p := provider()
	assert.Equal(t, schema.ConnectivityConnected, p.ConnectivityStatus)
	assert.Contains(t, p.ConnectivityMessage, "Connected:")
	assert.True(t, p.VerifyRequestedOn.IsZero(), "the request is answered and cleared")
	// Besides the admin's event, the connector's own write-backs are posted too (the demo changes it
	// provisions at start, its clearing of the request it answered), and dropped by the loop guard: every
	// message is completed.
	require.NoError(t, sb.Dataverse.WaitDeliveries(t.Context()))
	var adminEvents, ownEvents int
	for _, d := range sb.Dataverse.Deliveries() {
		assert.True(t, d.Delivered(), "%+v", d)
		if d.Table == schema.TableProvider {
			ev, err := event.Decode(d.Body)
			require.NoError(t, err)
			if ev.InitiatingUserID == sb.AdminID {
				adminEvents++
			} else {
				ownEvents++
			}
		}
	}
	assert.Equal(t, 1, adminEvents, "the admin's write of the provider raised one event")
	assert.Equal(t, 1, ownEvents, "the connector's clearing of the request raised one, which it ignores")
	require.Eventually(t, func() bool {
		stats := broker.Stats(t, connector.DefaultQueue)
		return stats.Active == 0 && stats.Locked == 0
	}, 10*time.Second, 20*time.Millisecond)
	stats := broker.Stats(t, connector.DefaultQueue)
	// The SDK releases a message that arrives after a receive call ended (its link drained); the broker
	// delivers it again. Every delivery is completed or released, none abandoned.
	assert.Equal(t, stats.Delivered, stats.Completed+stats.Released, "every event was completed, none abandoned: %+v", stats)
	assert.Zero(t, stats.Abandoned, "%+v", stats)
	assert.Positive(t, stats.Completed, "the admin's event went through the queue: %+v", stats)
	assert.Equal(t, 0, stats.DeadLettered)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("connector run did not stop")
	}
	assert.Contains(t, logs.String(), `"msg":"stopped"`)
}

func TestVerifyAndJobsCommands(t *testing.T) {
	t.Parallel()
	sb, err := connector.StartSandbox(t.Context(), connector.SandboxOptions{DataverseAddr: "127.0.0.1:0", PartnerCenterAddr: "127.0.0.1:0", ConnectorAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	defer sb.Close()
	env := map[string]string{"DATAVERSE_URL": sb.Dataverse.URL, "DATAVERSE_AUTH": "none", "PARTNERCENTER_ENDPOINT": sb.PartnerCenter.URL, "PARTNERCENTER_AUTH": "none", "CONNECTOR_INSTANCE": "cli"}

	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"verify"}, getenv(env), nil, &out, io.Discard))
	assert.Regexp(t, `Dataverse\s+ok`, out.String())
	assert.Regexp(t, `Service Bus\s+skipped\s+\d+ms\s+events arrive by webhook`, out.String())
	assert.Contains(t, out.String(), "Connected: Dataverse, Partner Center, Partner Center app+user answered.")

	// Recorded only when asked to.
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"verify", "--write"}, getenv(env), nil, &out, io.Discard))
	assert.Contains(t, out.String(), "Connected: Dataverse, Partner Center, Partner Center app+user answered.")

	out.Reset()
	require.NoError(t, run(t.Context(), []string{"jobs", "run", connectivity.VerifyJobName}, getenv(env), nil, &out, io.Discard))
	assert.Regexp(t, `^Verify Connectivity: succeeded in \S+ \(processed 1, created 0, updated 1, failed 0\)\. 1 provider\(s\) marked connected\.\n$`, out.String())

	out.Reset()
	require.NoError(t, run(t.Context(), []string{"jobs", "run", connectivity.VerifyJobName, "-o", "json"}, getenv(env), nil, &out, io.Discard))
	var ran api.JobRunView
	require.NoError(t, json.Unmarshal(out.Bytes(), &ran), out.String())
	assert.Equal(t, connectivity.VerifyJobName, ran.Job)
	assert.Equal(t, "succeeded", ran.Status)
	assert.Equal(t, "run_now", ran.Trigger)
	assert.Equal(t, 1, ran.Processed)
	assert.Equal(t, "1 provider(s) marked connected", ran.Summary)
	assert.NotEmpty(t, ran.ID)

	out.Reset()
	require.NoError(t, run(t.Context(), []string{"jobs", "list"}, getenv(env), nil, &out, io.Discard))
	assert.Regexp(t, `Verify Connectivity\s+15m\s+true\s+\d{4}-\d\d-\d\d \d\d:\d\dZ`, out.String())
	assert.Contains(t, out.String(), "succeeded: 1 provider(s) marked connected.")

	var runs int
	for _, err := range sb.DataverseClient.List(t.Context(), schema.SetJobRuns, &dataverse.Query{Select: []string{"csp_jobrunid"}}) {
		require.NoError(t, err)
		runs++
	}
	assert.Equal(t, 3, runs, "verify --write and both jobs runs recorded a run, verify alone none")

	// Partner Center refuses the token: verify says so and exits non-zero, with JSON for scripts.
	sb.PartnerCenter.Inject(partnercentertest.Fault{Status: 401})
	out.Reset()
	err = run(t.Context(), []string{"verify", "-o", "json"}, getenv(env), nil, &out, io.Discard)
	require.ErrorContains(t, err, "not connected: Partner Center")
	var rep connectivity.Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	assert.False(t, rep.OK)

	err = run(t.Context(), []string{"jobs", "run", "Nope"}, getenv(env), nil, io.Discard, io.Discard)
	assert.ErrorContains(t, err, `no job named "Nope"`)
}

// TestDataverseInstallDryRunListsTheWholeApp: `connector dataverse install --help` says what it installs,
// and --dry-run on a blank environment names every form, view, command and role of the app.
func TestDataverseInstallDryRunListsTheWholeApp(t *testing.T) {
	t.Parallel()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.StandardTables()})
	require.NoError(t, err)
	defer srv.Close()
	vars := getenv(map[string]string{"DATAVERSE_URL": srv.URL, "DATAVERSE_AUTH": "none"})

	var help bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"dataverse", "install", "--help"}, vars, nil, &help, io.Discard))
	for _, want := range []string{"the tables", "the CSP Connector app: a main form per table, the views, the sitemap", "command buttons",
		schema.AdminRole, schema.ReaderRole, "each allowed to use the app", "field security profile " + schema.SecretsProfile, "register the event intake"} {
		assert.Contains(t, strings.Join(strings.Fields(help.String()), " "), want)
	}

	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"dataverse", "install", "--dry-run"}, vars, nil, &out, io.Discard))
	lines := strings.Split(out.String(), "\n")
	has := func(format string, args ...any) bool {
		want := fmt.Sprintf(format, args...)
		for _, l := range lines {
			if strings.Contains(l, want) {
				return true
			}
		}
		return false
	}
	app := schema.Schema().App
	for _, f := range app.Forms {
		assert.True(t, has("+ create main form %s: %s", f.Table, f.Name), "form %s of %s", f.Name, f.Table)
	}
	for _, v := range app.Views {
		assert.True(t, has("view %s: %s", v.Table, v.Name), "view %s of %s", v.Name, v.Table)
	}
	for _, c := range app.Commands {
		assert.True(t, has("+ create command %s: %q on the form of %s", c.UniqueName, c.Label, c.Table), "command %s", c.UniqueName)
	}
	for _, r := range app.Roles {
		assert.True(t, has("+ create security role %q", r.Name), "role %s", r.Name)
		assert.True(t, has("+ let security role %q use app %s", r.Name, app.UniqueName), "role %s uses the app", r.Name)
	}
	for _, f := range app.FieldSecurityProfiles {
		assert.True(t, has("+ create field security profile %q", f.Name), "profile %s", f.Name)
	}
	assert.True(t, has("Dry run: nothing was changed."))
}
