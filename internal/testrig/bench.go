package testrig

import (
	"bytes"
	"io"
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

// ProtectionCount is how many requests Dataverse's service protection counts for r: one for a request,
// one per operation for a $batch (read from its body, which is put back), one for a bulk message
// (CreateMultiple, UpdateMultiple, UpsertMultiple) whatever its rows.
func ProtectionCount(r *http.Request) int {
	if !strings.HasSuffix(r.URL.Path, "/$batch") || r.Body == nil {
		return 1
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return 1
	}
	return max(1, bytes.Count(body, []byte(" HTTP/1.1\r\n")))
}

// IsBulkMessage reports a request that is a bulk message.
func IsBulkMessage(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/Microsoft.Dynamics.CRM.") && strings.HasSuffix(r.URL.Path, "Multiple")
}
