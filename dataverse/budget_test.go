package dataverse_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
)

// throttled counts the simulator's 429s.
func throttled(srv *dataversetest.Server) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Status == http.StatusTooManyRequests {
			n++
		}
	}
	return n
}

// The budget tests run in synctest bubbles against the in-memory simulator enforcing small limits, so the
// 300-second window costs fake time only.

func TestBudgetPacesRequestsWithinTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{BudgetRequests: 10})
		srv.SetLimits(dataversetest.Limits{Requests: 10, Window: 300 * time.Second})
		start := time.Now()
		for i := range 25 {
			_, err := c.WhoAmI(t.Context())
			require.NoError(t, err, "request %d", i+1)
		}
		assert.Zero(t, throttled(srv), "the client keeps within the server's window: no 429")
		// 10 at once, 10 when the first leave the window (300 s plus the client's 1 s of skew), 5 after.
		assert.Equal(t, 602*time.Second, time.Since(start))
		assert.Equal(t, 602*time.Second, c.BudgetWaited(), "one at a time: the 11th waited 301 s, the 21st 301 s")
	})
}

func TestBudgetPacesExecutionTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{BudgetExecutionTime: 10 * time.Second})
		srv.SetLimits(dataversetest.Limits{Window: 300 * time.Second, ExecutionTime: 10 * time.Second})
		srv.SetLatency(3 * time.Second) // every request takes 3 s of the server's time
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := c.WhoAmI(t.Context())
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		assert.Zero(t, throttled(srv), "the client waits for execution time to leave the window: no 429")
		requests, spent := c.Usage()
		assert.LessOrEqual(t, requests, 8)
		assert.Positive(t, spent)
	})
}

func TestBudgetBulkLeavesTheReserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{BudgetRequests: 10, BulkReserve: 20})
		srv.SetLimits(dataversetest.Limits{Requests: 10, Window: 300 * time.Second})
		bulk := dataverse.WithPriority(t.Context(), dataverse.Bulk)
		assert.Equal(t, dataverse.Bulk, dataverse.PriorityOf(bulk))
		assert.Equal(t, dataverse.Interactive, dataverse.PriorityOf(t.Context()), "interactive by default")

		start := time.Now()
		for range 8 {
			_, err := c.WhoAmI(bulk)
			require.NoError(t, err)
		}
		require.Zero(t, time.Since(start), "bulk work takes 80% of the budget at once")
		bulkDone := make(chan time.Duration)
		go func() {
			_, err := c.WhoAmI(bulk)
			assert.NoError(t, err)
			bulkDone <- time.Since(start)
		}()
		synctest.Wait()
		for range 2 {
			_, err := c.WhoAmI(t.Context())
			require.NoError(t, err)
		}
		assert.Zero(t, time.Since(start), "interactive work finds the reserve untouched")
		assert.Equal(t, 301*time.Second, <-bulkDone, "the ninth bulk request waited for the window to slide")
		assert.Zero(t, throttled(srv))
	})
}

func TestBudgetHoldsBulkWorkAfterA429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{MaxRetries: 2})
		srv.Inject(dataversetest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second, Times: 1})
		start := time.Now()
		_, err := c.WhoAmI(t.Context())
		require.NoError(t, err)
		require.Equal(t, 30*time.Second, time.Since(start), "the throttled request honours Retry-After")

		srv.Inject(dataversetest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second, Times: 1})
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := c.WhoAmI(t.Context())
			assert.NoError(t, err)
		})
		synctest.Wait() // the 429 is in: Dataverse refuses the user's requests until Retry-After
		start = time.Now()
		_, err = c.WhoAmI(dataverse.WithPriority(context.WithoutCancel(t.Context()), dataverse.Bulk))
		require.NoError(t, err)
		assert.Equal(t, 30*time.Second, time.Since(start), "bulk work waits out the hold instead of drawing more 429s")
		wg.Wait()
		assert.Equal(t, 2, throttled(srv), "the two injected 429s, nothing more")
	})
}

func TestBudgetOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{BudgetRequests: -1, MaxRetries: 1, MinRetryWait: time.Second, MaxRetryWait: time.Second})
		srv.SetLimits(dataversetest.Limits{Requests: 2, Window: 300 * time.Second})
		for range 2 {
			_, err := c.WhoAmI(t.Context())
			require.NoError(t, err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := c.WhoAmI(ctx)
		require.Error(t, err, "without pacing the server throttles (and its Retry-After outlasts the context)")
		assert.True(t, dataverse.IsThrottled(err), "%v", err)
	})
}

func TestWriteBatchesSendsSeveralBatchesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, srv := newMemoryEnv(t, &dataverse.ClientOptions{BatchSize: 200, BulkConcurrency: 4})
		var ids []dataverse.GUID
		for i := range 800 {
			ids = append(ids, createProvider(t, t.Context(), c, "p"+strconv.Itoa(i)))
		}
		srv.SetLatency(time.Second)
		srv.ResetRequests()
		ops := make([]dataverse.Op, len(ids))
		for i, id := range ids {
			ops[i] = dataverse.UpdateOp("csp_providers", id, dataverse.Row{"csp_name": "renamed"}, nil)
		}
		start := time.Now()
		results, err := c.WriteBatches(t.Context(), ops, 0)
		require.NoError(t, err)
		assert.Equal(t, time.Second, time.Since(start), "four $batches of 200 in flight together")
		require.Len(t, results, 800)
		for _, r := range results {
			require.NoError(t, r.Err)
		}
		assert.Equal(t, 4, countRequests(srv, http.MethodPost, "$batch"))
	})
}
