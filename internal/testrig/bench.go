package testrig

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// RequestCounter is an http.RoundTripper that counts the requests a client sends, by kind, and the answers
// that were 429. Requests is every request: what Dataverse's service protection counts, since a $batch and
// a bulk message each count as one ("A batch can contain up to 1000 operations and will avoid the number of
// requests limit").
type RequestCounter struct {
	Next                                  http.RoundTripper
	Reads, Batches, Bulk, Rest, Status429 atomic.Int64
}

// RoundTrip counts r and sends it on.
func (c *RequestCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case r.Method == http.MethodGet:
		c.Reads.Add(1)
	case strings.HasSuffix(r.URL.Path, "/$batch"):
		c.Batches.Add(1)
	case IsBulkMessage(r):
		c.Bulk.Add(1)
	default:
		c.Rest.Add(1)
	}
	resp, err := c.Next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.Status429.Add(1)
	}
	return resp, err
}

// Requests is how many requests were sent.
func (c *RequestCounter) Requests() int64 {
	return c.Reads.Load() + c.Batches.Load() + c.Bulk.Load() + c.Rest.Load()
}

// Reset sets every count back to zero.
func (c *RequestCounter) Reset() {
	for _, n := range []*atomic.Int64{&c.Reads, &c.Batches, &c.Bulk, &c.Rest, &c.Status429} {
		n.Store(0)
	}
}

// StartSimulatorChild runs this test binary's test named testName in a child process with env added, which
// starts the simulators, prints "READY <dataverse URL> <partner center URL>" and serves until its stdin
// closes; it returns both URLs and stop, which ends the child. A benchmark measures the client apart from
// the simulators' own allocations this way.
func StartSimulatorChild(b *testing.B, testName string, env ...string) (dvURL, pcURL string, stop func()) {
	b.Helper()
	child := exec.Command(os.Args[0], "-test.run=^"+testName+"$")
	child.Env = append(os.Environ(), env...)
	stdin, err := child.StdinPipe()
	require.NoError(b, err)
	stdout, err := child.StdoutPipe()
	require.NoError(b, err)
	child.Stderr = os.Stderr
	require.NoError(b, child.Start())
	stop = func() { _ = stdin.Close(); _ = child.Wait() }
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
			dvURL, pcURL = f[1], f[2]
			break
		}
	}
	if dvURL == "" {
		stop()
		b.Fatal("the simulators' child process did not start")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return dvURL, pcURL, stop
}
