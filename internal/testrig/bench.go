package testrig

import (
	"net/http"
	"strings"
	"time"
)

// The benchmarks' platform, the same for every workflow's benchmark so their figures compare.
const (
	// BenchWorkers is the runtime's concurrency: CONNECTOR_WORKERS' default.
	BenchWorkers = 8
	// BenchDVLatency and BenchPCLatency are the latency of one Dataverse request and one Partner Center
	// call the simulators add.
	BenchDVLatency = 20 * time.Millisecond
	BenchPCLatency = 100 * time.Millisecond
)

// Pooled is hc with enough idle connections per host for BenchWorkers workers, so a benchmark measures
// the work and not connection set-up.
func Pooled(hc *http.Client) *http.Client {
	c := *hc
	if t, ok := hc.Transport.(*http.Transport); ok {
		t = t.Clone()
		t.MaxIdleConnsPerHost = 4 * BenchWorkers
		c.Transport = t
	}
	return &c
}

// IsBulkMessage reports a request that is a bulk message.
func IsBulkMessage(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/Microsoft.Dynamics.CRM.") && strings.HasSuffix(r.URL.Path, "Multiple")
}
