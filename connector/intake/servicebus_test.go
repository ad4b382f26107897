package intake

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/internal/fakesb"
	"github.com/cspconnector/csp-connector/internal/testrig"
)

// listenerRig is a listener on the fake broker feeding a queue whose handler the test controls.
type listenerRig struct {
	broker     *fakesb.Broker
	listener   *Listener
	metrics    *metrics.Recorder
	stop       func()             // begins shutting down (SIGTERM): stops receiving
	stopWork   context.CancelFunc // ends the shutdown bound
	done       chan struct{}
	handlerRun atomic.Int32
	queue      *work.Queue
}

// queuePending counts the keys that have work waiting behind a run of theirs.
func (r *listenerRig) queuePending() int { return r.queue.Backlog() }

type rigOptions struct {
	handler   work.Handler
	broker    fakesb.Options
	listener  ListenerOptions
	workers   int
	queueSize int
}

func startRig(t *testing.T, o rigOptions) *listenerRig {
	t.Helper()
	if o.broker.Queues == nil {
		o.broker.Queues = []string{"events"}
	}
	b := fakesb.Start(t, o.broker)
	r := &listenerRig{broker: b, metrics: metrics.New(), done: make(chan struct{})}
	d := work.NewDispatcher()
	d.Handle("csp_licensechangelog", func(ctx context.Context, w work.Batch) error {
		r.handlerRun.Add(1)
		if o.handler == nil {
			return nil
		}
		return o.handler(ctx, w)
	}, work.Trigger{Table: "csp_licensechangelog", Message: "Update", Columns: []string{"csp_quantity"}, WriteBack: []string{"csp_provisioningmessage"}})
	if o.workers == 0 {
		o.workers = 4
	}
	q := work.NewQueue(d.Dispatch, work.Options{Workers: o.workers, Limit: max(o.queueSize, 100)})
	gate := &Gate{OrganizationID: testOrg, SelfUserID: testSelf, Triggers: d.Triggers()}
	in := &Intake{Gate: gate, Queue: q, Metrics: r.metrics}
	lo := o.listener
	lo.Queue = "events"
	if lo.AbandonDelay == nil {
		lo.AbandonDelay = func(uint32) time.Duration { return 10 * time.Millisecond }
	}
	if lo.ReconnectDelay == 0 {
		lo.ReconnectDelay = 50 * time.Millisecond
	}
	lo.Metrics = r.metrics
	lo.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	r.listener = NewListener(b.Client(t), in, lo)
	r.queue = q

	// stop begins a shutdown (SIGTERM) bounded by bound, which stopWork ends.
	bound, stopWork := context.WithCancel(context.Background())
	var stopOnce sync.Once
	r.stop = func() {
		stopOnce.Do(func() {
			go func() { _ = q.Shutdown(bound) }()
			go func() { _ = r.listener.Shutdown(bound) }()
		})
	}
	r.stopWork = stopWork
	var wg sync.WaitGroup
	wg.Go(func() { q.Run(context.Background()) })
	wg.Go(func() { _ = r.listener.Run(context.Background()) })
	go func() { wg.Wait(); close(r.done) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *listenerRig) shutdown(t *testing.T) {
	r.stop()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.stopWork()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("the listener did not stop")
		}
	}
	r.stopWork()
}

func (r *listenerRig) send(t *testing.T, body string) {
	r.broker.Send(t, "events", []byte(body), map[string]any{"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName": "csp_licensechangelog"})
}

func (r *listenerRig) waitStats(t *testing.T, what string, ok func(fakesb.Stats) bool) fakesb.Stats {
	t.Helper()
	var s fakesb.Stats
	require.Eventually(t, func() bool { s = r.broker.Stats(t, "events"); return ok(s) }, 15*time.Second, 20*time.Millisecond, "%s; last stats %+v", what, s)
	return s
}

func lclEvent(user uuid.UUID, cols ...string) string {
	return testrig.EventJSON(testOrg, user, "csp_licensechangelog", uuid.New(), cols...)
}

func TestServiceBusCompletesWorkAndIgnoredEvents(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOptions{})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	r.send(t, lclEvent(testSelf, "csp_provisioningmessage")) // the connector's own write-back
	s := r.waitStats(t, "both completed", func(s fakesb.Stats) bool { return s.Completed == 2 })
	assert.Equal(t, 0, s.DeadLettered)
	assert.Equal(t, 0, s.Abandoned)
	assert.Equal(t, int32(1), r.handlerRun.Load(), "only the person's change is work")
	assert.True(t, r.listener.Connected())
}

func TestServiceBusDeadLettersWhatCanNeverSucceed(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOptions{})
	r.send(t, "<Entity><LogicalName>account</LogicalName></Entity>")
	r.send(t, testrig.EventJSON(uuid.New(), testUser, "csp_licensechangelog", uuid.New(), "csp_quantity"))
	r.send(t, `{"MessageName":"Update"}`)
	r.send(t, "\x00\x01binary")
	r.waitStats(t, "four dead-lettered", func(s fakesb.Stats) bool { return s.DeadLettered == 4 })
	reasons := map[string]string{}
	for _, dl := range r.broker.DeadLetters(t, "events") {
		assert.Equal(t, 1, dl.DeliveryCount, "dead-lettered on first delivery, not after retries")
		reasons[string(dl.Body)] = dl.Reason + ": " + dl.Description
	}
	assert.Contains(t, reasons["<Entity><LogicalName>account</LogicalName></Entity>"], "NotJson: the body is XML: set the Dataverse service endpoint's message format to Json")
	assert.Contains(t, reasons["\x00\x01binary"], "NotJson")
	assert.Contains(t, reasons[`{"MessageName":"Update"}`], event.ReasonMalformed)
	var foreign string
	for body, reason := range reasons {
		if len(body) > 0 && body[0] == '{' && body != `{"MessageName":"Update"}` {
			foreign = reason
		}
	}
	assert.Contains(t, foreign, ReasonForeignOrganization+": the event comes from organization")
	assert.Equal(t, int32(0), r.handlerRun.Load())
}

func TestServiceBusAbandonsOnFailureAndTheBrokerRedelivers(t *testing.T) {
	t.Parallel()
	var failures atomic.Int32
	r := startRig(t, rigOptions{handler: func(ctx context.Context, w work.Batch) error {
		if failures.Add(1) <= 2 {
			return errors.New("partner center answered 503")
		}
		return nil
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	s := r.waitStats(t, "completed on the third delivery", func(s fakesb.Stats) bool { return s.Completed == 1 })
	assert.Equal(t, 2, s.Abandoned)
	assert.Equal(t, 3, s.Delivered)
	assert.Equal(t, 0, s.DeadLettered)
}

func TestServiceBusMaxDeliveryCountDeadLetters(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOptions{broker: fakesb.Options{MaxDeliveryCount: 3}, handler: func(ctx context.Context, w work.Batch) error {
		return errors.New("always failing")
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	r.waitStats(t, "dead-lettered by the broker", func(s fakesb.Stats) bool { return s.DeadLettered == 1 })
	dls := r.broker.DeadLetters(t, "events")
	require.Len(t, dls, 1)
	assert.Equal(t, "MaxDeliveryCountExceeded", dls[0].Reason)
	assert.Equal(t, int32(3), r.handlerRun.Load())
}

func TestServiceBusLockRenewalKeepsALongHandlerAlive(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOptions{broker: fakesb.Options{LockDuration: time.Second}, handler: func(ctx context.Context, w work.Batch) error {
		time.Sleep(2500 * time.Millisecond) // 2.5 lock durations
		return nil
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	s := r.waitStats(t, "completed", func(s fakesb.Stats) bool { return s.Completed == 1 })
	assert.Equal(t, 0, s.Expired, "the lock never ran out")
	assert.Equal(t, 1, s.Delivered, "no redelivery")
	assert.Equal(t, int32(1), r.handlerRun.Load())
}

func TestServiceBusLockLostIsRedeliveredAndDoneOnce(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	var runs, running, overlapped atomic.Int32
	r := startRig(t, rigOptions{handler: func(ctx context.Context, w work.Batch) error {
		if running.Add(1) > 1 {
			overlapped.Add(1) // the same row running twice at once
		}
		defer running.Add(-1)
		if runs.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	<-started
	r.broker.ExpireLocks(t, "events") // as if renewal had failed for a whole lock duration
	r.waitStats(t, "redelivered", func(s fakesb.Stats) bool { return s.Delivered == 2 })
	// The redelivery has reached the connector while the first run still holds the row. Wait until the
	// queue has it (collapsed into the running key's follow-up) before releasing the first run, so a queue
	// that ran it beside the first would be caught running it now.
	require.Eventually(t, func() bool { return r.queuePending() > 0 || runs.Load() > 1 }, 10*time.Second, 5*time.Millisecond,
		"the redelivered event reaches the work queue")
	assert.Equal(t, int32(1), runs.Load(), "the redelivery waits for the first run of its row")
	close(release)
	s := r.waitStats(t, "completed once", func(s fakesb.Stats) bool { return s.Completed == 1 && s.Locked == 0 })
	assert.Equal(t, 0, s.DeadLettered)
	assert.Equal(t, 0, s.Active)
	assert.Equal(t, int32(2), runs.Load(), "the redelivery runs after the first run for the same row; %+v", s)
	assert.Zero(t, overlapped.Load(), "never beside it")
}

func TestServiceBusReconnectsAfterTheBrokerGoesAway(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigOptions{})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	r.waitStats(t, "first completed", func(s fakesb.Stats) bool { return s.Completed == 1 })

	r.broker.Pause(t)
	require.Eventually(t, func() bool { return !r.listener.Connected() }, 20*time.Second, 20*time.Millisecond, "readiness notices the broker is gone")
	r.send(t, lclEvent(testUser, "csp_quantity"))
	time.Sleep(300 * time.Millisecond)
	r.broker.Resume(t)
	r.waitStats(t, "second completed after reconnecting", func(s fakesb.Stats) bool { return s.Completed == 2 })
	assert.True(t, r.listener.Connected())

	r.broker.DropConnections(t)
	r.send(t, lclEvent(testUser, "csp_quantity"))
	r.waitStats(t, "third completed after a dropped connection", func(s fakesb.Stats) bool { return s.Completed == 3 })
}

func TestServiceBusShutdownFinishesRunningWorkAndReturnsTheRest(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	r := startRig(t, rigOptions{workers: 1, handler: func(ctx context.Context, w work.Batch) error {
		started <- struct{}{}
		<-release
		return nil
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	r.send(t, lclEvent(testUser, "csp_quantity"))
	<-started
	r.waitStats(t, "both held", func(s fakesb.Stats) bool { return s.Locked == 2 })

	r.stop() // SIGTERM: the running handler may finish, the waiting message goes back at once
	s := r.waitStats(t, "the waiting message abandoned", func(s fakesb.Stats) bool { return s.Abandoned == 1 })
	assert.Equal(t, 0, s.Completed)
	close(release)
	<-r.done
	s = r.broker.Stats(t, "events")
	assert.Equal(t, 1, s.Completed, "the running handler's message was settled after shutdown began")
	// The other is back with the broker: available to another replica, or — when the broker handed it
	// straight back to the closing receiver's outstanding credit — locked until its lock runs out.
	assert.Equal(t, 1, s.Active+s.Locked, "%+v", s)
}

func TestServiceBusShutdownBoundAbandonsWorkThatDoesNotFinish(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	r := startRig(t, rigOptions{handler: func(ctx context.Context, w work.Batch) error {
		close(started)
		<-ctx.Done() // a handler stuck on a slow call, honouring its context
		return ctx.Err()
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	<-started
	r.stop()
	time.Sleep(100 * time.Millisecond)
	r.stopWork() // the shutdown bound ran out
	<-r.done
	s := r.broker.Stats(t, "events")
	assert.Equal(t, 1, s.Abandoned, "%+v", s)
	assert.Equal(t, 0, s.Completed)
	// Back with the broker: available, or (when it went straight back to the closing link's credit)
	// locked until the lock runs out — never lost, never completed.
	assert.Equal(t, 1, s.Active+s.Locked, "%+v", s)
}

func TestServiceBusShutdownReturnsOnceHeldMessagesAreSettled(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	r := startRig(t, rigOptions{handler: func(ctx context.Context, w work.Batch) error {
		started <- struct{}{}
		<-release
		return nil
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	<-started
	shutdown := make(chan error, 1)
	go func() { shutdown <- r.listener.Shutdown(t.Context()) }()
	close(release)
	require.NoError(t, <-shutdown)
	assert.Equal(t, 1, r.broker.Stats(t, "events").Completed, "Shutdown returned once the message it held was settled")
	r.stop() // the queue's shutdown
	<-r.done
	assert.NoError(t, r.listener.Run(t.Context()), "a listener shut down does not start again")
}

func TestServiceBusShutdownBoundEndsShutdown(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	r := startRig(t, rigOptions{handler: func(ctx context.Context, w work.Batch) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}})
	r.send(t, lclEvent(testUser, "csp_quantity"))
	<-started
	bound, cancel := context.WithCancel(t.Context())
	cancel() // the bound has already run out
	assert.ErrorIs(t, r.listener.Shutdown(bound), context.Canceled)
	r.stop() // the queue's shutdown
	r.stopWork()
	<-r.done
	assert.Equal(t, 1, r.broker.Stats(t, "events").Abandoned, "the message cut off goes back to the broker")
}

func TestServiceBusAsksOnlyForFreeSlots(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	r := startRig(t, rigOptions{workers: 8, listener: ListenerOptions{MaxConcurrent: 3}, handler: func(ctx context.Context, w work.Batch) error {
		<-release
		return nil
	}})
	for range 10 {
		r.send(t, lclEvent(testUser, "csp_quantity"))
	}
	r.waitStats(t, "three held", func(s fakesb.Stats) bool { return s.Locked == 3 })
	time.Sleep(300 * time.Millisecond)
	s := r.broker.Stats(t, "events")
	assert.Equal(t, 3, s.Locked, "never more messages locked than slots")
	assert.Equal(t, 7, s.Active)
	close(release)
	r.waitStats(t, "all completed", func(s fakesb.Stats) bool { return s.Completed == 10 })
}

// BenchmarkServiceBusIntake measures end-to-end events per second through the fake broker: the real
// SDK receiving in peek-lock mode, decode, gate, work queue, a no-op handler, and completion. The
// target is ≥ 500 events/s on a 2-core machine.
func BenchmarkServiceBusIntake(b *testing.B) {
	const concurrency = 32
	broker := fakesb.Start(b, fakesb.Options{})
	client := broker.Client(b)
	sender, err := client.NewSender("events", nil)
	require.NoError(b, err)
	defer sender.Close(context.Background())

	var handled atomic.Int64
	d := work.NewDispatcher()
	d.Handle("csp_licensechangelog", func(ctx context.Context, w work.Batch) error { handled.Add(int64(len(w.Events))); return nil },
		work.Trigger{Table: "csp_licensechangelog", Message: "Update", Columns: []string{"csp_quantity"}})
	q := work.NewQueue(d.Dispatch, work.Options{Workers: concurrency, Limit: 1000})
	in := &Intake{Gate: &Gate{OrganizationID: testOrg, Triggers: d.Triggers()}, Queue: q}
	l := NewListener(client, in, ListenerOptions{Queue: "events", MaxConcurrent: concurrency})

	// Fill the queue first, so the measurement is receive-and-settle, not the sender.
	batch, err := sender.NewMessageBatch(context.Background(), nil)
	require.NoError(b, err)
	flush := func() {
		if batch.NumMessages() > 0 {
			require.NoError(b, sender.SendMessageBatch(context.Background(), batch, nil))
		}
		batch, err = sender.NewMessageBatch(context.Background(), nil)
		require.NoError(b, err)
	}
	ct := "application/json"
	for range b.N {
		m := &azservicebus.Message{Body: []byte(lclEvent(testUser, "csp_quantity")), ContentType: &ct}
		if err := batch.AddMessage(m, nil); err != nil {
			flush()
			require.NoError(b, batch.AddMessage(m, nil))
		}
	}
	flush()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	wg.Go(func() { q.Run(ctx) })
	wg.Go(func() { _ = l.Run(ctx) })
	for broker.Stats(b, "events").Completed < b.N {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(concurrency, "concurrency")
	require.EqualValues(b, b.N, handled.Load())
}
