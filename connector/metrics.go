package connector

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the connector's Prometheus metrics, on a registry of their own (no global state). A nil
// *Metrics records nothing, so components work without one in tests.
type Metrics struct {
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

// NewMetrics registers the connector's metrics and the Go runtime's on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
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
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the registry the metrics live on (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) received(source string) {
	if m != nil {
		m.eventsReceived.WithLabelValues(source).Inc()
	}
}

func (m *Metrics) settled(source, outcome string) {
	if m != nil {
		m.eventsSettled.WithLabelValues(source, outcome).Inc()
	}
}

func (m *Metrics) handled(table string, err error, d time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, ErrNoHandler):
		result = "nohandler"
	case err != nil:
		result = "error"
	}
	m.handlerDuration.WithLabelValues(table, result).Observe(d.Seconds())
}

func (m *Metrics) queueDepth(n int) {
	if m != nil {
		m.queueDepthGauge.Set(float64(n))
	}
}

func (m *Metrics) jobRun(job, status string) {
	if m != nil {
		m.jobRuns.WithLabelValues(job, status).Inc()
	}
}

func (m *Metrics) apiRequest(operation string, status int) {
	if m != nil {
		m.httpAPI.WithLabelValues(operation, strconv.Itoa(status)).Inc()
	}
}

// Instrument wraps an HTTP client's transport so that every request to target is counted by status, and
// 429 answers with their Retry-After. hc may be nil (a default client).
func (m *Metrics) Instrument(target string, hc *http.Client) *http.Client {
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
	m      *Metrics
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
