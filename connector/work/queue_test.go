package work

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/event"
)

func key(n byte) Key { return Key{Table: "csp_licensechangelog", ID: uuid.UUID{n}} }

// startQueue runs q until the test ends.
func startQueue(t *testing.T, q *Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestQueueCollapsesDuplicatesWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var runs []Batch
		q := NewQueue(func(ctx context.Context, w Batch) error {
			if w.Key == key(1) {
				<-release
			}
			mu.Lock()
			runs = append(runs, w)
			mu.Unlock()
			return nil
		}, Options{Workers: 1})
		startQueue(t, q)

		require.NoError(t, q.Submit(t.Context(), Item{Key: key(1), Source: SourceSweep}))
		synctest.Wait() // key 1 is running and holds the only worker
		for i := range 5 {
			ev := event.Event{Message: "Update", OperationID: string(rune('a' + i))}
			require.NoError(t, q.Submit(t.Context(), Item{Key: key(2), Event: &ev, Source: SourceServiceBus}))
		}
		require.NoError(t, q.Submit(t.Context(), Item{Key: key(2), Source: SourceWebhook}))
		assert.Equal(t, 2, q.Len())
		close(release)
		synctest.Wait()

		require.Len(t, runs, 2, "six submissions for key 2 must collapse into one run")
		assert.Equal(t, key(2), runs[1].Key)
		assert.Len(t, runs[1].Events, 5)
		assert.Equal(t, []string{SourceServiceBus, SourceWebhook}, runs[1].Sources)
		assert.Equal(t, 0, q.Len())
	})
}

func TestQueueRunsAKeyAgainWhenChangedWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{}, 4)
		release := make(chan struct{})
		var runs, concurrent, maxConcurrent atomic.Int32
		q := NewQueue(func(ctx context.Context, w Batch) error {
			n := concurrent.Add(1)
			if n > maxConcurrent.Load() {
				maxConcurrent.Store(n)
			}
			runs.Add(1)
			started <- struct{}{}
			<-release
			concurrent.Add(-1)
			return nil
		}, Options{Workers: 4})
		startQueue(t, q)

		first := make(chan error, 1)
		go func() { first <- q.Do(t.Context(), Item{Key: key(1)}) }()
		<-started
		// A change arrives while the first run is under way: the run may have read the row before it.
		second := make(chan error, 1)
		go func() { second <- q.Do(t.Context(), Item{Key: key(1)}) }()
		synctest.Wait()
		assert.Equal(t, int32(1), runs.Load(), "one run per key at a time")
		release <- struct{}{}
		require.NoError(t, <-first)
		<-started
		select {
		case <-second:
			t.Fatal("the second Do returned before the run that followed its submission finished")
		default:
		}
		release <- struct{}{}
		require.NoError(t, <-second)
		assert.Equal(t, int32(2), runs.Load())
		assert.Equal(t, int32(1), maxConcurrent.Load())
	})
}

func TestQueueRunsDifferentKeysInParallelUpToWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var concurrent, maxConcurrent atomic.Int32
		q := NewQueue(func(ctx context.Context, w Batch) error {
			n := concurrent.Add(1)
			for {
				m := maxConcurrent.Load()
				if n <= m || maxConcurrent.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			concurrent.Add(-1)
			return nil
		}, Options{Workers: 3})
		startQueue(t, q)
		for i := range 10 {
			require.NoError(t, q.Submit(t.Context(), Item{Key: key(byte(i))}))
		}
		synctest.Wait()
		assert.Equal(t, int32(3), concurrent.Load())
		close(release)
		synctest.Wait()
		assert.Equal(t, int32(3), maxConcurrent.Load())
		assert.Equal(t, 0, q.Len())
	})
}

func TestQueueBackPressureWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		q := NewQueue(func(ctx context.Context, w Batch) error { <-release; return nil }, Options{Workers: 1, Limit: 2})
		startQueue(t, q)
		require.NoError(t, q.Submit(t.Context(), Item{Key: key(1)}))
		require.NoError(t, q.Submit(t.Context(), Item{Key: key(2)}))
		// A duplicate of a present key never waits: it takes no new room.
		require.NoError(t, q.Submit(t.Context(), Item{Key: key(2)}))

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := q.Submit(ctx, Item{Key: key(3)})
		require.ErrorIs(t, err, context.DeadlineExceeded, "a third key must wait for room")

		blocked := make(chan error, 1)
		go func() { blocked <- q.Submit(t.Context(), Item{Key: key(3)}) }()
		synctest.Wait()
		select {
		case <-blocked:
			t.Fatal("Submit returned while the queue was full")
		default:
		}
		close(release)
		require.NoError(t, <-blocked)
	})
}

func TestQueueReportsErrorsToWaitersAndRetriesDetachedWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("partner center is down")
		var runs atomic.Int32
		q := NewQueue(func(ctx context.Context, w Batch) error {
			if runs.Add(1) <= 3 {
				return boom
			}
			return nil
		}, Options{Workers: 1, Retries: 5, RetryDelay: time.Second})
		startQueue(t, q)

		// Somebody waits: the error goes to them (Service Bus abandons), no retry inside the queue.
		require.ErrorIs(t, q.Do(t.Context(), Item{Key: key(1)}), boom)
		synctest.Wait()
		assert.Equal(t, int32(1), runs.Load())

		// Nobody waits (a webhook event): the queue retries with backoff 1 s, 2 s, … until it works.
		start := time.Now()
		require.NoError(t, q.Submit(t.Context(), Item{Key: key(2)}))
		synctest.Wait()
		assert.Equal(t, int32(2), runs.Load())
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, int32(3), runs.Load())
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, int32(4), runs.Load())
		assert.Equal(t, 3*time.Second, time.Since(start))
		assert.Equal(t, 0, q.Len())
	})
}

func TestQueueNoHandlerAndPanics(t *testing.T) {
	d := NewDispatcher()
	d.Handle("csp_job", func(ctx context.Context, w Batch) error { panic("bad row") })
	q := NewQueue(d.Dispatch, Options{Workers: 2, Retries: -1})
	startQueue(t, q)
	assert.ErrorIs(t, q.Do(t.Context(), Item{Key: Key{Table: "account"}}), ErrNoHandler)
	err := q.Do(t.Context(), Item{Key: Key{Table: "csp_job"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "panicked: bad row")
}

func TestQueueShutdownAnswersWaitingWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		q := NewQueue(func(ctx context.Context, w Batch) error { <-release; return ctx.Err() }, Options{Workers: 1})
		stopped := make(chan struct{})
		go func() { q.Run(context.Background()); close(stopped) }()

		running := make(chan error, 1)
		go func() { running <- q.Do(context.Background(), Item{Key: key(1)}) }()
		synctest.Wait()
		waiting := make(chan error, 1)
		go func() { waiting <- q.Do(context.Background(), Item{Key: key(2)}) }()
		synctest.Wait()

		shutdown := make(chan error, 1)
		go func() { shutdown <- q.Shutdown(context.Background()) }()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("Run returned while a handler was still running")
		case <-shutdown:
			t.Fatal("Shutdown returned while a handler was still running")
		default:
		}
		assert.ErrorIs(t, <-waiting, ErrShuttingDown, "work that never started is handed back")
		close(release)
		require.NoError(t, <-running, "running work finishes, its context not cancelled")
		require.NoError(t, <-shutdown)
		<-stopped
		assert.ErrorIs(t, q.Do(context.Background(), Item{Key: key(3)}), ErrShuttingDown)
	})
}

func TestQueueShutdownBoundCancelsRunningWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := NewQueue(func(ctx context.Context, w Batch) error { <-ctx.Done(); return ctx.Err() }, Options{Workers: 1})
		stopped := make(chan struct{})
		go func() { q.Run(context.Background()); close(stopped) }()
		running := make(chan error, 1)
		go func() { running <- q.Do(context.Background(), Item{Key: key(1)}) }()
		synctest.Wait()

		bound, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		assert.ErrorIs(t, q.Shutdown(bound), context.DeadlineExceeded, "the handler outlived the bound")
		assert.Equal(t, 30*time.Second, time.Since(start))
		assert.ErrorIs(t, <-running, context.Canceled, "the handler is cut off when the bound ends")
		<-stopped
	})
}

func TestQueueShutdownEndsASubmitWaitingForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		q := NewQueue(func(ctx context.Context, w Batch) error { <-release; return nil }, Options{Workers: 1, Limit: 1})
		startQueue(t, q)
		require.NoError(t, q.Submit(t.Context(), Item{Key: key(1)}))
		synctest.Wait()
		submitted := make(chan error, 1)
		// A detached submission (rows a run woke) waits for room with a context that never ends.
		go func() { submitted <- q.Submit(context.Background(), Item{Key: key(2)}) }()
		synctest.Wait()

		shutdown := make(chan error, 1)
		go func() { shutdown <- q.Shutdown(context.Background()) }()
		synctest.Wait()
		assert.ErrorIs(t, <-submitted, ErrShuttingDown, "a stopping queue takes no more work")
		close(release)
		require.NoError(t, <-shutdown)
	})
}

func TestQueueIdleSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		q := NewQueue(func(ctx context.Context, w Batch) error { <-release; return nil }, Options{Workers: 1})
		startQueue(t, q)
		select {
		case <-q.Idle():
		default:
			t.Fatal("a new queue is idle")
		}
		require.NoError(t, q.Submit(t.Context(), Item{Key: key(1)}))
		idle := q.Idle()
		synctest.Wait()
		select {
		case <-idle:
			t.Fatal("not idle while a key runs")
		default:
		}
		close(release)
		synctest.Wait()
		select {
		case <-idle:
		default:
			t.Fatal("idle once the run is over")
		}
		assert.Zero(t, q.Len())
	})
}
