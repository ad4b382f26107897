// Package metrics holds the connector's Prometheus metrics: events received and settled per intake,
// handler runs per table, the work queue's depth, job runs, API requests and outbound HTTP calls.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Recorder records the connector's Prometheus metrics, on a registry of their own (no global state). A nil
// *Recorder records nothing, so components work without one in tests.
type Recorder struct {
	registry        *prometheus.Registry
	eventsReceived  *prometheus.CounterVec
	eventsSettled   *prometheus.CounterVec
	handlerDuration *prometheus.HistogramVec
	apiRequests     *prometheus.CounterVec
	throttled       *prometheus.CounterVec
	throttleWait    *prometheus.CounterVec
	queueDepthGauge prometheus.Gauge
	jobRuns         *prometheus.CounterVec
	httpAPI         *prometheus.CounterVec
}

// New registers the connector's metrics and the Go runtime's on a new registry.
func New() *Recorder {
	m := &Recorder{
		registry: prometheus.NewRegistry(),
		eventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csp_events_received_total", Help: "Dataverse events received, by intake (servicebus, webhook).",
		}, []string{"source"}),
		eventsSettled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csp_events_settled_total", Help: "Dataverse events settled, by intake and outcome (completed, ignored, abandoned, deadlettered, accepted, rejected).",
		}, []string{"source", "outcome"}),
		handlerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "csp_handler_duration_seconds", Help: "Time a handler run took, by table and result (ok, error, nohandler).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"table", "result"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csp_api_requests_total", Help: "HTTP requests to Dataverse and Partner Center, by target and status code (0: no response).",
		}, []string{"target", "status"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csp_api_throttled_total", Help: "429 Too Many Requests answers, by target.",
		}, []string{"target"}),
		throttleWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csp_api_throttle_wait_seconds_total", Help: "Retry-After seconds the targets asked the connector to wait.",
		}, []string{"target"}),
		queueDepthGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "csp_queue_depth", Help: "Keys (table, row) waiting or running in the work queue.",
		}),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csp_job_runs_total", Help: "Job runs, by job and status.",
		}, []string{"job", "status"}),
		httpAPI: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csp_http_api_requests_total", Help: "Requests to the connector's own HTTP API (/api/v1), by operation and status code.",
		}, []string{"operation", "status"}),
	}
	m.registry.MustRegister(m.eventsReceived, m.eventsSettled, m.handlerDuration, m.apiRequests, m.throttled,
		m.throttleWait, m.queueDepthGauge, m.jobRuns, m.httpAPI,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the registry the metrics live on (tests gather from it).
func (m *Recorder) Registry() *prometheus.Registry { return m.registry }

// Received counts an event received by an intake (servicebus, webhook).
func (m *Recorder) Received(source string) {
	if m != nil {
		m.eventsReceived.WithLabelValues(source).Inc()
	}
}

// Settled counts an event settled by an intake, by outcome (accepted, ignored, rejected, busy…).
func (m *Recorder) Settled(source, outcome string) {
	if m != nil {
		m.eventsSettled.WithLabelValues(source, outcome).Inc()
	}
}

// Handled records one handler run for table: result is ok, error or nohandler.
func (m *Recorder) Handled(table, result string, d time.Duration) {
	if m != nil {
		m.handlerDuration.WithLabelValues(table, result).Observe(d.Seconds())
	}
}

// QueueDepth records how many keys the work queue holds.
func (m *Recorder) QueueDepth(n int) {
	if m != nil {
		m.queueDepthGauge.Set(float64(n))
	}
}

// JobRun counts a job run by its status.
func (m *Recorder) JobRun(job, status string) {
	if m != nil {
		m.jobRuns.WithLabelValues(job, status).Inc()
	}
}

// APIRequest counts an API request by operation and HTTP status.
func (m *Recorder) APIRequest(operation string, status int) {
	if m != nil {
		m.httpAPI.WithLabelValues(operation, strconv.Itoa(status)).Inc()
	}
}

// Instrument wraps an HTTP client's transport so that every request to target is counted by status, and
// 429 answers with their Retry-After. hc may be nil (a default client).
func (m *Recorder) Instrument(target string, hc *http.Client) *http.Client {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	if m == nil {
		return hc
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	wrapped := *hc
	wrapped.Transport = instrumentedTransport{next: next, target: target, m: m}
	return &wrapped
}

type instrumentedTransport struct {
	next   http.RoundTripper
	target string
	m      *Recorder
}

func (t instrumentedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	status := "0"
	if resp != nil {
		status = strconv.Itoa(resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			t.m.throttled.WithLabelValues(t.target).Inc()
			if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
				t.m.throttleWait.WithLabelValues(t.target).Add(float64(secs))
			}
		}
	}
	t.m.apiRequests.WithLabelValues(t.target, status).Inc()
	return resp, err
}
