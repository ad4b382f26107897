package dataverse_test

import (
	"flag"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

var (
	benchRows    = flag.Int("bench.rows", 10_000, "rows upserted by BenchmarkUpsertRows")
	benchLatency = flag.Duration("bench.latency", 20*time.Millisecond, "latency the simulator adds to every request in BenchmarkUpsertRows")
)

// BenchmarkUpsertRows upserts rows into provider accounts through the client, over real HTTP on loopback
// to the simulator with latency added to every request (the round trip and server time of a real
// environment), the way the provider-account sync writes them.
//
// It measures, in one run: the client's bulk path (ExecuteMany: $batch of the client's default size,
// DefaultBulkConcurrency in flight) and a baseline of one sequential upsert request per row. It reports
// requests per 1,000 rows and wall time for both, and the speed-up, and fails if the bulk path needs more
// than ceil(rows / batch size) + 2 requests or is less than 20× faster than the baseline.
//
// Limits it is measured against: Dataverse allows 6,000 requests per user and web server per 5 minutes,
// and a $batch of up to 1,000 operations (every operation counts towards the request limit). Service
// protection is off in the simulator here so that the baseline is not throttled, which would flatter the
// bulk path.
//
//	go test -run XXX -bench BenchmarkUpsertRows -benchtime 1x ./dataverse/
func BenchmarkUpsertRows(b *testing.B) {
	rows := *benchRows
	for b.Loop() {
		bulk := upsertRows(b, rows, true)
		baseline := upsertRows(b, rows, false)
		batchSize := dataverse.DefaultBatchSize
		maxRequests := int(math.Ceil(float64(rows)/float64(batchSize))) + 2
		b.ReportMetric(float64(bulk.requests)*1000/float64(rows), "req/1000rows")
		b.ReportMetric(bulk.wall.Seconds(), "bulk-s")
		b.ReportMetric(float64(baseline.requests)*1000/float64(rows), "baseline-req/1000rows")
		b.ReportMetric(baseline.wall.Seconds(), "baseline-s")
		speedup := baseline.wall.Seconds() / bulk.wall.Seconds()
		b.ReportMetric(speedup, "speedup-x")
		b.Logf("%d rows, %v latency: bulk %d requests in %v; baseline %d requests in %v; %.0f× faster (limit: ≤ %d requests, ≥ 20×)",
			rows, *benchLatency, bulk.requests, bulk.wall.Round(time.Millisecond), baseline.requests, baseline.wall.Round(time.Millisecond), speedup, maxRequests)
		if bulk.requests > maxRequests {
			b.Fatalf("bulk upsert used %d requests for %d rows; the target is at most %d", bulk.requests, rows, maxRequests)
		}
		if speedup < 20 {
			b.Fatalf("bulk upsert is only %.1f× faster than one request per row; the target is 20×", speedup)
		}
	}
}

type upsertRun struct {
	requests int
	wall     time.Duration
}

func upsertRows(b *testing.B, rows int, bulk bool) upsertRun {
	b.Helper()
	ctx := b.Context()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(b, err)
	defer srv.Close()
	c, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.Client()})
	require.NoError(b, err)
	provider := createProvider(b, ctx, c, "Partner Center")
	ops := make([]dataverse.Op, rows)
	keys := make([]dataverse.Key, rows)
	bodies := make([]dataverse.Row, rows)
	for i := range ops {
		keys[i] = dataverse.Key{dataverse.LookupValue("csp_provider"): provider, "csp_tenantid": fmt.Sprintf("00000000-0000-4000-8000-%012d", i)}
		bodies[i] = dataverse.Row{"csp_name": fmt.Sprintf("Customer %d", i), "csp_domain": fmt.Sprintf("customer%d.onmicrosoft.com", i)}
		ops[i] = dataverse.UpsertOp(schema.SetProviderAccounts, keys[i], bodies[i], &dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableProviderAccount)})
	}
	srv.SetLatency(*benchLatency)
	srv.ResetRequests()
	start := time.Now()
	if bulk {
		results, err := c.ExecuteMany(ctx, ops, nil)
		require.NoError(b, err)
		for _, r := range results {
			require.NoError(b, r.Err)
		}
	} else {
		for i := range keys {
			_, err := c.Upsert(ctx, schema.SetProviderAccounts, keys[i], bodies[i], &dataverse.UpsertOptions{PrimaryKey: schema.PrimaryKey(schema.TableProviderAccount)})
			require.NoError(b, err)
		}
	}
	run := upsertRun{wall: time.Since(start)}
	for _, r := range srv.Requests() {
		if !r.InBatch && r.Method != http.MethodGet {
			run.requests++
		}
	}
	require.Len(b, srv.Rows(schema.TableProviderAccount), rows)
	return run
}
