package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/intake"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
)

const testWebhookKey = "0123456789abcdef-service-key"

// serviceSandbox starts the sandbox with the simulators and the connector's own listener on free loopback
// ports, so tests can run side by side.
func serviceSandbox(t *testing.T) *Sandbox {
	t.Helper()
	sb, err := StartSandbox(t.Context(), SandboxOptions{DataverseAddr: "127.0.0.1:0", PartnerCenterAddr: "127.0.0.1:0", ConnectorAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	return sb
}

// serviceConfig is a runtime configuration with the webhook on and the HTTP server on a free port.
func serviceConfig() Config {
	return Config{HTTPAddr: "127.0.0.1:0", WebhookKey: testWebhookKey, ServiceBusQueue: DefaultQueue,
		Workers: 2, QueueLimit: 100, ShutdownTimeout: 5 * time.Second, Instance: "service-test"}
}

// sandboxClients are service options with Dataverse and Partner Center clients of the sandbox's
// simulators, their HTTP clients passed through wrap when it is set (Metrics.Instrument).
func sandboxClients(t *testing.T, sb *Sandbox, wrap func(target string, hc *http.Client) *http.Client, dvOpts *dataverse.ClientOptions) ServiceOptions {
	t.Helper()
	if wrap == nil {
		wrap = func(_ string, hc *http.Client) *http.Client { return hc }
	}
	if dvOpts == nil {
		dvOpts = &dataverse.ClientOptions{}
	}
	dvOpts.HTTPClient = wrap("dataverse", sb.Dataverse.Client())
	dv, err := dataverse.NewClient(sb.Dataverse.URL, nil, dvOpts)
	require.NoError(t, err)
	pc, err := NewPartnerCenterClient(Config{PartnerCenterEndpoint: sb.PartnerCenter.URL, PartnerCenterAuth: AuthNone},
		slog.New(slog.DiscardHandler), wrap("partnercenter", sb.PartnerCenter.Client()))
	require.NoError(t, err)
	return ServiceOptions{DV: dv, PC: pc}
}

// runService runs svc until the test ends. The returned stop cancels Run and returns its error, or an
// error when Run does not return within 5 s.
func runService(t *testing.T, svc *Service) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(5 * time.Second):
				runErr = errors.New("Run did not return within 5 s of its context ending")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitReady(t *testing.T, svc *Service) {
	t.Helper()
	require.Eventually(t, func() bool { _, ready := svc.Health.Status(); return ready }, 5*time.Second, 5*time.Millisecond,
		"the service did not become ready: %v", func() map[string]string { s, _ := svc.Health.Status(); return s }())
}

// fetch sends a request and returns the status and body.
func fetch(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// sample reads one series from m's registry: a counter's or gauge's value, or a histogram's count. ok is
// false when no series of name has every label in want.
func sample(m *metrics.Recorder, name string, want map[string]string) (v float64, ok bool) {
	families, err := m.Registry().Gather()
	if err != nil {
		return 0, false
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range s.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case s.Counter != nil:
				return s.GetCounter().GetValue(), true
			case s.Gauge != nil:
				return s.GetGauge().GetValue(), true
			case s.Histogram != nil:
				return float64(s.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// count is sample's value, zero when the series does not exist yet.
func count(m *metrics.Recorder, name string, want map[string]string) float64 {
	v, _ := sample(m, name, want)
	return v
}

// partnerCenterProvider reads the demo Partner Center provider without failing the test, so it can run
// inside Eventually.
func partnerCenterProvider(ctx context.Context, dv *dataverse.Client) (schema.Provider, error) {
	for r, err := range dv.List(ctx, schema.SetProviders, &dataverse.Query{Select: dataverse.Columns[schema.Provider](), Filter: dataverse.Eq("csp_type", schema.ProviderAutomatic)}) {
		if err != nil {
			return schema.Provider{}, err
		}
		var p schema.Provider
		return p, dataverse.Unmarshal(r, &p)
	}
	return schema.Provider{}, errors.New("no Automatic provider")
}

func jobRow(ctx context.Context, dv *dataverse.Client, name string) (schema.Job, error) {
	r, err := dv.GetByKey(ctx, schema.SetJobs, dataverse.Key{"csp_name": name}, &dataverse.GetOptions{Select: dataverse.Columns[schema.Job]()})
	if err != nil {
		return schema.Job{}, err
	}
	var j schema.Job
	return j, dataverse.Unmarshal(r, &j)
}

func TestServiceHandlesEveryTrigger(t *testing.T) {
	t.Parallel()
	sb := serviceSandbox(t)
	svc := sb.Service
	tables := svc.Dispatcher.Tables()
	for _, tr := range Triggers() {
		assert.Contains(t, tables, tr.Table, "the trigger %s of %s is registered in Dataverse but nothing handles it", tr.Message, tr.Table)
		err := svc.Dispatcher.Dispatch(t.Context(), work.Batch{Key: work.Key{Table: tr.Table, ID: uuid.New()}})
		assert.NoError(t, err, "work for %s (a row that does not exist) is nothing to do", tr.Table)
	}
	assert.ElementsMatch(t, Triggers(), svc.Dispatcher.Triggers(), "the triggers the service handles are the ones registered in Dataverse")

	runService(t, svc)
	waitReady(t, svc)
	// Readiness is reported after start has configured the gate (Health's lock orders the two).
	assert.Equal(t, svc.Dispatcher.Triggers(), svc.Gate.Triggers)
	assert.Equal(t, sb.Dataverse.OrganizationID(), svc.Gate.OrganizationID, "the gate rejects other environments' events")
	assert.Equal(t, sb.Dataverse.UserID(), svc.Gate.SelfUserID, "the loop guard knows the connector's own user")
}

// TestSandboxEndToEndOverWebhook: an admin asks for Verify Connectivity on the provider's row; the Dataverse
// simulator posts the event to the connector's webhook, as Dataverse does; the connector verifies and
// writes the outcome back, and its own writes do not wake it again.
func TestSandboxEndToEndOverWebhook(t *testing.T) {
	t.Parallel()
	sb := serviceSandbox(t)
	svc, dv, m := sb.Service, sb.DataverseClient, sb.Service.Metrics
	sb.PartnerCenter.ResetRequests()
	stop := runService(t, svc)

	// At start the Verify Connectivity job runs once on its schedule; wait for the whole run (lease
	// released), so that none of its writes are still to come.
	var first time.Time
	require.Eventually(t, func() bool {
		j, err := jobRow(t.Context(), dv, connectivity.VerifyJobName)
		if err != nil || j.LastRunOn.IsZero() || j.LeaseOwner != "" {
			return false
		}
		p, err := partnerCenterProvider(t.Context(), dv)
		first = p.LastVerifiedOn
		return err == nil && !first.IsZero()
	}, 5*time.Second, 10*time.Millisecond, "the startup run of Verify Connectivity")
	require.Equal(t, float64(1), count(m, "csp_job_runs_total", map[string]string{"job": connectivity.VerifyJobName, "status": "succeeded"}))
	// The other jobs ran at start too (the provisioning sweep pushes the demo changes); let everything
	// they started finish before measuring what the admin's request causes.
	for _, name := range []string{provisioning.SweepJobName, provisioning.ReportJobName, provideraccounts.SyncJobName} {
		require.Eventually(t, func() bool {
			j, err := jobRow(t.Context(), dv, name)
			return err == nil && !j.LastRunOn.IsZero() && j.LeaseOwner == ""
		}, 5*time.Second, 10*time.Millisecond, name)
	}
	require.NoError(t, sb.Dataverse.WaitDeliveries(t.Context()))
	require.Eventually(t, func() bool { return svc.Queue.Len() == 0 }, 5*time.Second, 5*time.Millisecond)
	webhook := map[string]string{"source": work.SourceWebhook}
	received0 := count(m, "csp_events_received_total", webhook)
	accepted0 := count(m, "csp_events_settled_total", map[string]string{"source": work.SourceWebhook, "outcome": "accepted"})
	sb.Dataverse.ResetDeliveries()
	sb.PartnerCenter.ResetRequests()

	// Dataverse keeps whole seconds: the request must fall in a later second than the last check to be
	// newer than it.
	require.Eventually(t, func() bool { return time.Now().UTC().Truncate(time.Second).After(first) }, 2*time.Second, 5*time.Millisecond)
	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	p, err := partnerCenterProvider(t.Context(), dv)
	require.NoError(t, err)
	_, err = admin.Update(t.Context(), schema.SetProviders, p.ID, dataverse.Row{"csp_verifyrequestedon": time.Now().UTC()}, nil)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		p, err := partnerCenterProvider(t.Context(), dv)
		return err == nil && p.LastVerifiedOn.After(first)
	}, 5*time.Second, 10*time.Millisecond, "the connector answers the admin's request")
	p, err = partnerCenterProvider(t.Context(), dv)
	require.NoError(t, err)
	assert.Equal(t, schema.ConnectivityConnected, p.ConnectivityStatus)
	assert.Contains(t, p.ConnectivityMessage, "Connected:")
	assert.True(t, p.VerifyRequestedOn.IsZero(), "the request is answered and cleared")

	// Every event raised so far (including any the connector's write-back raised) has been posted and
	// answered; what the webhook accepted is in the queue or done. Let the queue drain.
	require.NoError(t, sb.Dataverse.WaitDeliveries(t.Context()))
	require.Eventually(t, func() bool { return svc.Queue.Len() == 0 }, 5*time.Second, 5*time.Millisecond)

	deliveries := sb.Dataverse.Deliveries()
	who := map[dataverse.GUID]string{sb.AdminID: "the admin", sb.Dataverse.UserID(): "the connector"}
	var posted []string
	for _, d := range deliveries {
		ev, err := event.Decode(d.Body)
		require.NoError(t, err)
		posted = append(posted, fmt.Sprintf("%s of %s by %s: %d after %d attempt(s) %s", d.Message, d.Table, who[ev.InitiatingUserID], d.StatusCode, d.Attempts, d.Err))
	}
	require.Equal(t, []string{"Update of csp_provider by the admin: 202 after 1 attempt(s) ", "Update of csp_provider by the connector: 202 after 1 attempt(s) "}, posted,
		"the admin's write raised an event, and so did the connector's clearing of the request it answered (its step's column); "+
			"the other write-backs (verify outcome, job lease and history) raise none")
	assert.Equal(t, int(dataverse.EndpointWebhook), deliveries[0].Contract)
	assert.Equal(t, p.ID, deliveries[0].RowID)

	// The loop guard: the connector's writes did not come back as work. Two events in, the connector's own
	// ignored, one handler run, one pass of Partner Center checks, and the job ran only at start.
	assert.Equal(t, float64(2), count(m, "csp_events_received_total", webhook)-received0, "events received")
	assert.Equal(t, float64(1), count(m, "csp_events_settled_total", map[string]string{"source": work.SourceWebhook, "outcome": "accepted"})-accepted0, "events accepted")
	assert.Equal(t, float64(1), count(m, "csp_handler_duration_seconds", map[string]string{"table": schema.TableProvider}), "provider handler runs")
	var paths []string
	for _, r := range sb.PartnerCenter.Requests() {
		paths = append(paths, r.Path)
	}
	assert.ElementsMatch(t, []string{"customers", "customers/relationshiprequests"}, paths, "Partner Center was checked once for the admin's request (the checks run side by side)")
	assert.Equal(t, float64(1), count(m, "csp_job_runs_total", map[string]string{"job": connectivity.VerifyJobName}), "job runs")
	verifyRuns := 0
	for _, r := range testrig.JobRuns(t, dv) {
		if strings.HasPrefix(r.Name, connectivity.VerifyJobName) {
			verifyRuns++
		}
		assert.Equal(t, schema.RunSucceeded, r.Status, "%s: %s", r.Name, r.ErrorMessage)
	}
	assert.Equal(t, 1, verifyRuns, "job history")

	start := time.Now()
	require.NoError(t, stop(), "Run returns nil when its context ends")
	assert.Less(t, time.Since(start), 2*time.Second, "with nothing running, shutdown is prompt")
}

func TestServiceHealthAndReadiness(t *testing.T) {
	t.Parallel()
	sb := serviceSandbox(t)
	sb.Dataverse.Inject(dataversetest.Fault{Path: "WhoAmI", Status: http.StatusServiceUnavailable, Message: "The environment is being updated."})
	opts := sandboxClients(t, sb, nil, &dataverse.ClientOptions{MaxRetries: 1, MinRetryWait: time.Millisecond, MaxRetryWait: 5 * time.Millisecond})
	svc, err := NewService(serviceConfig(), opts)
	require.NoError(t, err)
	runService(t, svc)
	base := "http://" + svc.Addr().String()

	status, body := fetch(t, http.MethodGet, base+"/healthz", "")
	assert.Equal(t, http.StatusOK, status, "alive while Dataverse is unreachable: %s", body)
	assert.JSONEq(t, `{"status":"ok"}`, body)

	type readiness struct {
		Ready      bool              `json:"ready"`
		Components map[string]string `json:"components"`
	}
	readyz := func() (int, readiness) {
		status, body := fetch(t, http.MethodGet, base+"/readyz", "")
		var r readiness
		require.NoError(t, json.Unmarshal([]byte(body), &r), body)
		return status, r
	}
	// Not ready, and it says why, once the first WhoAmI has failed.
	require.Eventually(t, func() bool {
		_, r := readyz()
		return strings.Contains(r.Components["dataverse"], "The environment is being updated.")
	}, 5*time.Second, 5*time.Millisecond)
	status, r := readyz()
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.False(t, r.Ready)

	// An event that arrives before the connector knows its environment and user must not be swallowed:
	// Dataverse retries a 503 once, while a 202 would end the event.
	message := testrig.EventJSON(sb.Dataverse.OrganizationID(), sb.AdminID, schema.TableProvider, uuid.New(), "csp_verifyrequestedon")
	status, body = fetch(t, http.MethodPost, base+intake.WebhookPath+"?code="+testWebhookKey, message)
	assert.Equal(t, http.StatusServiceUnavailable, status, "webhook before start: %s", body)

	sb.Dataverse.ClearFaults()
	require.Eventually(t, func() bool { s, _ := readyz(); return s == http.StatusOK }, 5*time.Second, 10*time.Millisecond, "ready once Dataverse answers")
	_, r = readyz()
	assert.True(t, r.Ready)
	assert.Equal(t, "ok", r.Components["dataverse"])

	status, body = fetch(t, http.MethodPost, base+intake.WebhookPath+"?code="+testWebhookKey, message)
	assert.Equal(t, http.StatusAccepted, status, "webhook after start: %s", body)
	assert.Contains(t, body, `"accepted"`)
}

// TestHealthReportsEachComponentUnderItsOwnName: the state shown for a component is its own check's.
func TestHealthReportsEachComponentUnderItsOwnName(t *testing.T) {
	t.Parallel()
	h := NewHealth()
	// Registered out of alphabetical order, as components report in whatever order they start.
	h.Set("servicebus", nil)
	h.Set("partnercenter_appuser", nil)
	h.Set("partnercenter", errors.New("Partner Center refused the credentials (401)"))
	h.Check("dataverse", func() error { return nil })
	h.Set("dataverse_schema", nil)
	want := map[string]string{"servicebus": "ok", "partnercenter_appuser": "ok", "partnercenter": "Partner Center refused the credentials (401)",
		"dataverse": "ok", "dataverse_schema": "ok"}
	for range 20 { // map order varies from call to call
		status, ready := h.Status()
		require.Equal(t, want, status)
		require.False(t, ready)
	}

	srv := httptest.NewServer(h.Readiness())
	defer srv.Close()
	code, body := fetch(t, http.MethodGet, srv.URL, "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, `{"ready":false,"components":{"servicebus":"ok","partnercenter_appuser":"ok","partnercenter":"Partner Center refused the credentials (401)","dataverse":"ok","dataverse_schema":"ok"}}`, body)

	h.Set("partnercenter", nil)
	_, ready := h.Status()
	assert.True(t, ready)
}

func TestServiceMetrics(t *testing.T) {
	t.Parallel()
	sb := serviceSandbox(t)
	m := metrics.New()
	opts := sandboxClients(t, sb, m.Instrument, nil)
	opts.Metrics = m
	svc, err := NewService(serviceConfig(), opts)
	require.NoError(t, err)
	runService(t, svc)
	base := "http://" + svc.Addr().String()
	waitReady(t, svc)
	require.Eventually(t, func() bool {
		return count(m, "csp_job_runs_total", map[string]string{"job": connectivity.VerifyJobName, "status": "succeeded"}) == 1
	}, 5*time.Second, 5*time.Millisecond, "the startup run of Verify Connectivity")

	message := testrig.EventJSON(sb.Dataverse.OrganizationID(), sb.AdminID, schema.TableProvider, uuid.New(), "csp_verifyrequestedon")
	status, body := fetch(t, http.MethodPost, base+intake.WebhookPath+"?code="+testWebhookKey, message)
	require.Equal(t, http.StatusAccepted, status, body)
	require.Eventually(t, func() bool {
		return count(m, "csp_handler_duration_seconds", map[string]string{"table": schema.TableProvider}) == 1 && svc.Queue.Len() == 0
	}, 5*time.Second, 5*time.Millisecond, "the event's work ran")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(b)
	for _, want := range []string{
		`(?m)^csp_events_received_total\{source="webhook"\} 1$`,
		`(?m)^csp_events_settled_total\{outcome="accepted",source="webhook"\} 1$`,
		`(?m)^csp_api_requests_total\{status="200",target="dataverse"\} [1-9][0-9]*$`,
		`(?m)^csp_api_requests_total\{status="200",target="partnercenter"\} [1-9][0-9]*$`,
		`(?m)^csp_job_runs_total\{job="Verify Connectivity",status="succeeded"\} 1$`,
		`(?m)^csp_handler_duration_seconds_count\{result="ok",table="csp_provider"\} 1$`,
		`(?m)^csp_queue_depth 0$`,
		`(?m)^go_goroutines `,
	} {
		assert.Regexp(t, want, text)
	}
	assert.NotContains(t, text, testWebhookKey)
}

func TestWebhookRouteIsOffWithoutAKey(t *testing.T) {
	t.Parallel()
	dv, err := dataverse.NewClient("http://127.0.0.1:1", nil, nil) // never called: Handler makes no calls
	require.NoError(t, err)
	pc, err := NewPartnerCenterClient(Config{PartnerCenterEndpoint: "http://127.0.0.1:1", PartnerCenterAuth: AuthNone}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)

	cfg := serviceConfig()
	cfg.WebhookKey = ""
	off, err := NewService(cfg, ServiceOptions{DV: dv, PC: pc})
	require.NoError(t, err)
	srv := httptest.NewServer(off.Handler())
	defer srv.Close()
	message := testrig.EventJSON(uuid.New(), uuid.New(), schema.TableProvider, uuid.New(), "csp_verifyrequestedon")
	status, body := fetch(t, http.MethodPost, srv.URL+intake.WebhookPath+"?code=anything-at-all-1234", message)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, body, "the webhook intake is off: set CONNECTOR_WEBHOOK_KEY")
	status, _ = fetch(t, http.MethodGet, srv.URL+"/healthz", "")
	assert.Equal(t, http.StatusOK, status, "the rest of the server is on")
	status, body = fetch(t, http.MethodGet, srv.URL+"/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, status, "not ready before start")
	assert.Contains(t, body, "not checked yet")

	on, err := NewService(serviceConfig(), ServiceOptions{DV: dv, PC: pc})
	require.NoError(t, err)
	srvOn := httptest.NewServer(on.Handler())
	defer srvOn.Close()
	status, body = fetch(t, http.MethodPost, srvOn.URL+intake.WebhookPath+"?code="+testWebhookKey, message)
	assert.Equal(t, http.StatusServiceUnavailable, status, "with a key the route is on, and asks Dataverse to retry until the service has started: %s", body)
	assert.Contains(t, body, "starting")
}

func TestRunFailsWhenTheAddressIsInUse(t *testing.T) {
	t.Parallel()
	var lc net.ListenConfig
	taken, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	dv, err := dataverse.NewClient("http://127.0.0.1:1", nil, nil)
	require.NoError(t, err)
	pc, err := NewPartnerCenterClient(Config{PartnerCenterEndpoint: "http://127.0.0.1:1", PartnerCenterAuth: AuthNone}, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	cfg := serviceConfig()
	cfg.HTTPAddr = taken.Addr().String()
	svc, err := NewService(cfg, ServiceOptions{DV: dv, PC: pc})
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- svc.Run(t.Context()) }()
	select {
	case err := <-done:
		require.Error(t, err)
		assert.ErrorContains(t, err, "listen on "+cfg.HTTPAddr)
		assert.ErrorContains(t, err, "address already in use")
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return although its address is taken")
	}
	addr := make(chan net.Addr, 1)
	go func() { addr <- svc.Addr() }()
	select {
	case a := <-addr:
		assert.Nil(t, a, "no address when listening failed")
	case <-time.After(time.Second):
		t.Fatal("Addr blocks forever after Run failed to listen")
	}
}
