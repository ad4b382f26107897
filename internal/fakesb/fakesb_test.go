package fakesb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/fakesb"
)

// These tests drive the real azservicebus SDK against the fake. Tests that depend on lock
// timing do not run in parallel, so a busy machine cannot starve their timers.

const callTimeout = 5 * time.Second

func newClient(t *testing.T, b *fakesb.Broker) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(b.ConnectionString(), &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 2, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond},
	})
	require.NoError(t, err)
	// Registered after fakesb.Start, so it runs first: links close before the peer stops.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		assert.NoError(t, c.Close(ctx))
	})
	return c
}

// timeout is a context for one SDK call, so that no test can hang.
func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newSender(t *testing.T, c *azservicebus.Client, queue string) *azservicebus.Sender {
	t.Helper()
	s, err := c.NewSender(queue, nil)
	require.NoError(t, err)
	return s
}

func newReceiver(t *testing.T, c *azservicebus.Client, queue string, opts *azservicebus.ReceiverOptions) *azservicebus.Receiver {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, opts)
	require.NoError(t, err)
	return r
}

// receive returns exactly n messages, calling ReceiveMessages as often as it takes.
func receive(t *testing.T, r *azservicebus.Receiver, n int) []*azservicebus.ReceivedMessage {
	t.Helper()
	ctx := timeout(t)
	var got []*azservicebus.ReceivedMessage
	for len(got) < n {
		msgs, err := r.ReceiveMessages(ctx, n-len(got), nil)
		require.NoError(t, err, "received %d of %d", len(got), n)
		got = append(got, msgs...)
	}
	require.Len(t, got, n)
	return got
}

func requireCode(t *testing.T, err error, code azservicebus.Code) {
	t.Helper()
	var sbErr *azservicebus.Error
	require.ErrorAs(t, err, &sbErr, "want an *azservicebus.Error with code %s", code)
	assert.Equal(t, code, sbErr.Code, "%v", err)
}

// eventually polls the broker's stats until cond holds.
func eventually(t *testing.T, b *fakesb.Broker, queue string, cond func(fakesb.Stats) bool) fakesb.Stats {
	t.Helper()
	deadline := time.Now().Add(callTimeout)
	for {
		s := b.Stats(t, queue)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats of %s never reached the condition; last: %+v", queue, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSendReceiveComplete(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	s := newSender(t, c, "events")
	r := newReceiver(t, c, "events", nil)

	before := time.Now().Add(-time.Second)
	require.NoError(t, s.SendMessage(timeout(t), &azservicebus.Message{
		Body:                  []byte("hello"),
		MessageID:             to.Ptr("m-1"),
		ContentType:           to.Ptr("application/json"),
		ApplicationProperties: map[string]any{"n": int64(7), "s": "x", "b": true},
	}, nil))

	m := receive(t, r, 1)[0]
	assert.Equal(t, "hello", string(m.Body))
	assert.Equal(t, "m-1", m.MessageID)
	assert.Equal(t, "application/json", *m.ContentType)
	assert.Equal(t, map[string]any{"n": int64(7), "s": "x", "b": true}, m.ApplicationProperties)
	assert.Equal(t, uint32(1), m.DeliveryCount)
	require.NotNil(t, m.SequenceNumber)
	assert.Equal(t, int64(1), *m.SequenceNumber)
	require.NotNil(t, m.EnqueuedTime)
	assert.True(t, m.EnqueuedTime.After(before))
	require.NotNil(t, m.LockedUntil)
	assert.WithinDuration(t, time.Now().Add(30*time.Second), *m.LockedUntil, 5*time.Second)
	assert.NotEqual(t, [16]byte{}, m.LockToken)
	assert.Equal(t, fakesb.Stats{Locked: 1, Delivered: 1, Consumers: 1}, b.Stats(t, "events"))

	require.NoError(t, r.CompleteMessage(timeout(t), m, nil))
	assert.Equal(t, fakesb.Stats{Completed: 1, Delivered: 1, Consumers: 1}, b.Stats(t, "events"))
}

func TestSendBatchAndDirectSend(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{Queues: []string{"a", "b"}})
	c := newClient(t, b)
	s := newSender(t, c, "a")

	batch, err := s.NewMessageBatch(timeout(t), nil)
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, batch.AddMessage(&azservicebus.Message{
			Body:                  fmt.Appendf(nil, "batched-%d", i),
			ApplicationProperties: map[string]any{"i": int32(i)},
		}, nil))
	}
	require.NoError(t, s.SendMessageBatch(timeout(t), batch, nil))
	require.NoError(t, s.SendMessage(timeout(t), &azservicebus.Message{Body: []byte("single")}, nil))

	r := newReceiver(t, c, "a", nil)
	msgs := receive(t, r, 4)
	for i, m := range msgs {
		assert.Equal(t, int64(i+1), *m.SequenceNumber)
		if i < 3 {
			assert.Equal(t, fmt.Sprintf("batched-%d", i), string(m.Body))
			assert.Equal(t, map[string]any{"i": int32(i)}, m.ApplicationProperties, "AMQP types survive the broker")
		} else {
			assert.Equal(t, "single", string(m.Body))
		}
		require.NoError(t, r.CompleteMessage(timeout(t), m, nil))
	}

	// A message posted straight to the broker, as Dataverse would, on the other queue.
	b.Send(t, "b", []byte(`{"MessageName":"Update"}`), map[string]any{"org": "contoso", "depth": 1, "ok": true})
	rb := newReceiver(t, c, "b", nil)
	m := receive(t, rb, 1)[0]
	assert.JSONEq(t, `{"MessageName":"Update"}`, string(m.Body))
	assert.Equal(t, map[string]any{"org": "contoso", "depth": int64(1), "ok": true}, m.ApplicationProperties)
	require.NoError(t, rb.CompleteMessage(timeout(t), m, nil))

	assert.Equal(t, 4, b.Stats(t, "a").Completed)
	assert.Equal(t, 1, b.Stats(t, "b").Completed)
}

func TestAbandonRedelivers(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	b.Send(t, "events", []byte("again"), nil)

	first := receive(t, r, 1)[0]
	assert.Equal(t, uint32(1), first.DeliveryCount)
	require.NoError(t, r.AbandonMessage(timeout(t), first, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"attempt": int64(1)},
	}))

	second := receive(t, r, 1)[0]
	assert.Equal(t, "again", string(second.Body))
	assert.Equal(t, uint32(2), second.DeliveryCount)
	assert.Equal(t, *first.SequenceNumber, *second.SequenceNumber)
	assert.NotEqual(t, first.LockToken, second.LockToken)
	assert.Equal(t, map[string]any{"attempt": int64(1)}, second.ApplicationProperties)
	require.NoError(t, r.CompleteMessage(timeout(t), second, nil))

	st := b.Stats(t, "events")
	assert.Equal(t, 1, st.Abandoned)
	assert.Equal(t, 1, st.Completed)
	assert.Equal(t, 2, st.Delivered)
}

func TestDeadLetterMessage(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	b.Send(t, "events", []byte("poison"), map[string]any{"kind": "test"})

	m := receive(t, r, 1)[0]
	require.NoError(t, r.DeadLetterMessage(timeout(t), m, &azservicebus.DeadLetterOptions{
		Reason:             to.Ptr("BadPayload"),
		ErrorDescription:   to.Ptr("the body is not JSON"),
		PropertiesToModify: map[string]any{"handler": "v2"},
	}))
	st := b.Stats(t, "events")
	assert.Equal(t, 0, st.Active+st.Locked)
	assert.Equal(t, 1, st.DeadLettered)

	dls := b.DeadLetters(t, "events")
	require.Len(t, dls, 1)
	assert.Equal(t, "poison", string(dls[0].Body))
	assert.Equal(t, "BadPayload", dls[0].Reason)
	assert.Equal(t, "the body is not JSON", dls[0].Description)
	assert.Equal(t, 1, dls[0].DeliveryCount)
	assert.Equal(t, "test", dls[0].ApplicationProperties["kind"])
	assert.Equal(t, "v2", dls[0].ApplicationProperties["handler"])

	dlq := newReceiver(t, c, "events", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	d := receive(t, dlq, 1)[0]
	assert.Equal(t, "poison", string(d.Body))
	require.NotNil(t, d.DeadLetterReason)
	assert.Equal(t, "BadPayload", *d.DeadLetterReason)
	require.NotNil(t, d.DeadLetterErrorDescription)
	assert.Equal(t, "the body is not JSON", *d.DeadLetterErrorDescription)
	require.NotNil(t, d.DeadLetterSource)
	assert.Equal(t, "events", *d.DeadLetterSource)
	require.NoError(t, dlq.CompleteMessage(timeout(t), d, nil))
	assert.Equal(t, 0, b.Stats(t, "events").DeadLettered)
	assert.Empty(t, b.DeadLetters(t, "events"))
}

func TestAbandonUpToMaxDeliveryCountDeadLetters(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	b.Configure(t, "events", 30*time.Second, 3)
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	b.Send(t, "events", []byte("never works"), nil)

	for i := 1; i <= 3; i++ {
		m := receive(t, r, 1)[0]
		require.Equal(t, uint32(i), m.DeliveryCount)
		require.NoError(t, r.AbandonMessage(timeout(t), m, nil))
	}
	st := b.Stats(t, "events")
	assert.Equal(t, 0, st.Active+st.Locked)
	assert.Equal(t, 3, st.Abandoned)
	dls := b.DeadLetters(t, "events")
	require.Len(t, dls, 1)
	assert.Equal(t, "MaxDeliveryCountExceeded", dls[0].Reason)
	assert.Equal(t, "Message could not be consumed after 3 delivery attempts.", dls[0].Description)
	assert.Equal(t, 3, dls[0].DeliveryCount)
}

func TestRenewMessageLockKeepsTheLock(t *testing.T) {
	b := fakesb.Start(t, fakesb.Options{LockDuration: time.Second})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	b.Send(t, "events", []byte("slow work"), nil)

	m := receive(t, r, 1)[0]
	last := *m.LockedUntil
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, r.RenewMessageLock(timeout(t), m, nil))
		assert.True(t, m.LockedUntil.After(last), "renewal moves LockedUntil forward")
		last = *m.LockedUntil
	}
	require.NoError(t, r.CompleteMessage(timeout(t), m, nil))
	st := b.Stats(t, "events")
	assert.Equal(t, 0, st.Expired)
	assert.Equal(t, 1, st.Completed)
}

func TestLockExpiry(t *testing.T) {
	tests := []struct {
		name   string
		lock   time.Duration
		expire func(t *testing.T, b *fakesb.Broker)
	}{
		{"ExpireLocks", 30 * time.Second, func(t *testing.T, b *fakesb.Broker) { b.ExpireLocks(t, "events") }},
		{"timer", 300 * time.Millisecond, func(t *testing.T, b *fakesb.Broker) {
			eventually(t, b, "events", func(s fakesb.Stats) bool { return s.Expired == 1 })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fakesb.Start(t, fakesb.Options{LockDuration: tt.lock})
			c := newClient(t, b)
			r := newReceiver(t, c, "events", nil)
			b.Send(t, "events", []byte("too slow"), nil)

			m := receive(t, r, 1)[0]
			tt.expire(t, b)
			requireCode(t, r.CompleteMessage(timeout(t), m, nil), azservicebus.CodeLockLost)
			requireCode(t, r.RenewMessageLock(timeout(t), m, nil), azservicebus.CodeLockLost)
			b.Configure(t, "events", 30*time.Second, 10) // the redelivery must not expire too

			again := receive(t, r, 1)[0]
			assert.Equal(t, "too slow", string(again.Body))
			assert.Equal(t, uint32(2), again.DeliveryCount, "an expired lock counts a delivery")
			require.NoError(t, r.CompleteMessage(timeout(t), again, nil))
		})
	}
}

// TestSettleByLockToken settles with only a lock token, which the SDK sends as
// update-disposition on $management.
func TestSettleByLockToken(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	for i := range 3 {
		b.Send(t, "events", fmt.Appendf(nil, "m%d", i), nil)
	}
	msgs := receive(t, r, 3)
	token := func(m *azservicebus.ReceivedMessage) *azservicebus.ReceivedMessage {
		return &azservicebus.ReceivedMessage{LockToken: m.LockToken}
	}

	require.NoError(t, r.CompleteMessage(timeout(t), token(msgs[0]), nil))
	require.NoError(t, r.AbandonMessage(timeout(t), token(msgs[1]), nil))
	require.NoError(t, r.DeadLetterMessage(timeout(t), token(msgs[2]), &azservicebus.DeadLetterOptions{Reason: to.Ptr("by-token")}))
	requireCode(t, r.CompleteMessage(timeout(t), token(msgs[0]), nil), azservicebus.CodeLockLost)

	st := b.Stats(t, "events")
	assert.Equal(t, 1, st.Completed)
	assert.Equal(t, 1, st.Abandoned)
	assert.Equal(t, 1, st.Active)
	dls := b.DeadLetters(t, "events")
	require.Len(t, dls, 1)
	assert.Equal(t, "by-token", dls[0].Reason)

	// The link still holds the abandoned message's old delivery; settling it there is too late.
	requireCode(t, r.CompleteMessage(timeout(t), msgs[1], nil), azservicebus.CodeLockLost)
}

func TestPeekMessages(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	for i := range 3 {
		b.Send(t, "events", fmt.Appendf(nil, "p%d", i), nil)
	}

	peeked, err := r.PeekMessages(timeout(t), 2, nil)
	require.NoError(t, err)
	require.Len(t, peeked, 2)
	assert.Equal(t, "p0", string(peeked[0].Body))
	assert.Equal(t, "p1", string(peeked[1].Body))
	rest, err := r.PeekMessages(timeout(t), 10, nil)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	assert.Equal(t, int64(3), *rest[0].SequenceNumber)
	none, err := r.PeekMessages(timeout(t), 10, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Equal(t, 3, b.Stats(t, "events").Active, "peeking leaves messages in place")
}

func TestReceiveAndDelete(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	b.Send(t, "events", []byte("once"), nil)

	m := receive(t, r, 1)[0]
	assert.Equal(t, "once", string(m.Body))
	assert.Equal(t, fakesb.Stats{Delivered: 1, Consumers: 1}, b.Stats(t, "events"), "gone from the queue, not locked")
	assert.Error(t, r.CompleteMessage(timeout(t), m, nil), "receive-and-delete messages are not settleable")
}

func TestUnknownQueueIsNotFound(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)

	s := newSender(t, c, "missing")
	requireCode(t, s.SendMessage(timeout(t), &azservicebus.Message{Body: []byte("x")}, nil), azservicebus.CodeNotFound)

	r := newReceiver(t, c, "missing", nil)
	_, err := r.ReceiveMessages(timeout(t), 1, nil)
	requireCode(t, err, azservicebus.CodeNotFound)
}

// TestReleasedPrefetchKeepsDeliveryCount: ReceiveMessages leaves credit on the link; messages
// that arrive later are released by the SDK's background releaser, which is no delivery attempt.
func TestReleasedPrefetchKeepsDeliveryCount(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	b.Send(t, "events", []byte("first"), nil)

	msgs, err := r.ReceiveMessages(timeout(t), 5, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.NoError(t, r.CompleteMessage(timeout(t), msgs[0], nil))

	b.Send(t, "events", []byte("second"), nil)
	eventually(t, b, "events", func(s fakesb.Stats) bool { return s.Released >= 1 })

	m := receive(t, r, 1)[0]
	assert.Equal(t, "second", string(m.Body))
	assert.Equal(t, uint32(1), m.DeliveryCount)
	require.NoError(t, r.CompleteMessage(timeout(t), m, nil))
}

func TestDropConnectionsReconnects(t *testing.T) {
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	s := newSender(t, c, "events")
	r := newReceiver(t, c, "events", nil)
	require.NoError(t, s.SendMessage(timeout(t), &azservicebus.Message{Body: []byte("before")}, nil))
	require.NoError(t, r.CompleteMessage(timeout(t), receive(t, r, 1)[0], nil))

	b.DropConnections(t)
	dropped := time.Now()
	require.NoError(t, s.SendMessage(timeout(t), &azservicebus.Message{Body: []byte("after")}, nil), "the sender reconnects")
	sent := time.Now()
	m := receive(t, r, 1)[0]
	t.Logf("after the drop: SendMessage took %s, ReceiveMessages %s",
		sent.Sub(dropped).Round(time.Millisecond), time.Since(sent).Round(time.Millisecond))
	assert.Equal(t, "after", string(m.Body))
	require.NoError(t, r.CompleteMessage(timeout(t), m, nil))
}

func TestPauseResumeReconnects(t *testing.T) {
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	r := newReceiver(t, c, "events", nil)
	b.Send(t, "events", []byte("before"), nil)
	require.NoError(t, r.CompleteMessage(timeout(t), receive(t, r, 1)[0], nil))

	// A consumer loop like the connector's: keep calling ReceiveMessages through the outage.
	got := make(chan *azservicebus.ReceivedMessage, 1)
	loopCtx, stopLoop := context.WithTimeout(t.Context(), 20*time.Second)
	defer stopLoop()
	errs := 0
	go func() {
		defer close(got)
		for loopCtx.Err() == nil {
			ctx, cancel := context.WithTimeout(loopCtx, 2*time.Second)
			msgs, err := r.ReceiveMessages(ctx, 1, nil)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs++
			}
			if len(msgs) > 0 {
				got <- msgs[0]
				return
			}
		}
	}()

	b.Pause(t)
	time.Sleep(500 * time.Millisecond) // the loop meets a refused port meanwhile
	b.Resume(t)
	resumed := time.Now()
	b.Send(t, "events", []byte("after"), nil)

	m, ok := <-got
	require.True(t, ok, "no message within 20s of Resume")
	t.Logf("received %s after Resume (%d failed ReceiveMessages calls during the outage)", time.Since(resumed).Round(time.Millisecond), errs)
	assert.Equal(t, "after", string(m.Body))
	require.NoError(t, r.CompleteMessage(timeout(t), m, nil))
}

// TestUnimplementedIsReported: operations the fake does not model are refused and recorded, so
// the harness can fail the test instead of letting the SDK retry until a timeout.
func TestUnimplementedIsReported(t *testing.T) {
	t.Parallel()
	b := fakesb.Start(t, fakesb.Options{})
	c := newClient(t, b)
	s := newSender(t, c, "events")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := s.ScheduleMessages(ctx, []*azservicebus.Message{{Body: []byte("later")}}, time.Now().Add(time.Hour), nil)
	require.Error(t, err)

	problems := b.TakeProblems(t)
	require.NotEmpty(t, problems)
	assert.Contains(t, problems[0], "com.microsoft:schedule-message")
	assert.Empty(t, b.TakeProblems(t))
}

// TestRestartKeepsQueuesWithStateFile: with a state file, a kill -9 of the peer loses nothing it
// acknowledged. A completed message stays gone, a locked one comes back with its delivery counted,
// a dead-lettered one stays dead-lettered with its reason, an abandoned one keeps the properties
// it was abandoned with; the SDK reconnects by itself, and sequence numbers go on.
func TestRestartKeepsQueuesWithStateFile(t *testing.T) {
	b := fakesb.Start(t, fakesb.Options{StateFile: t.TempDir() + "/state.jsonl"})
	c := newClient(t, b)
	s := newSender(t, c, "events")
	r := newReceiver(t, c, "events", nil)
	for _, body := range []string{"done", "locked", "dead", "abandoned"} {
		require.NoError(t, s.SendMessage(timeout(t), &azservicebus.Message{Body: []byte(body), ApplicationProperties: map[string]any{"n": int64(7)}}, nil))
	}
	msgs := receive(t, r, 4)
	require.NoError(t, r.CompleteMessage(timeout(t), msgs[0], nil))
	require.NoError(t, r.DeadLetterMessage(timeout(t), msgs[2], &azservicebus.DeadLetterOptions{Reason: to.Ptr("Malformed"), ErrorDescription: to.Ptr("not JSON")}))
	require.NoError(t, r.AbandonMessage(timeout(t), msgs[3], &azservicebus.AbandonMessageOptions{PropertiesToModify: map[string]any{"why": "busy"}}))
	lastSeq := *msgs[3].SequenceNumber

	b.Restart(t)

	s2 := b.Stats(t, "events")
	assert.Equal(t, 2, s2.Active, "the locked and the abandoned message are back: %+v", s2)
	assert.Equal(t, 1, s2.DeadLettered, "%+v", s2)
	dead := b.DeadLetters(t, "events")
	require.Len(t, dead, 1)
	assert.Equal(t, "dead", string(dead[0].Body))
	assert.Equal(t, "Malformed", dead[0].Reason)

	// The same client goes on: its sender and receiver reconnect.
	require.NoError(t, s.SendMessage(timeout(t), &azservicebus.Message{Body: []byte("after")}, nil))
	got := map[string]*azservicebus.ReceivedMessage{}
	for len(got) < 3 {
		for _, m := range receiveSome(t, r) {
			got[string(m.Body)] = m
		}
	}
	require.Contains(t, got, "locked")
	require.Contains(t, got, "abandoned")
	require.Contains(t, got, "after")
	assert.Equal(t, uint32(2), got["locked"].DeliveryCount, "the delivery before the restart counted")
	assert.Equal(t, "busy", got["abandoned"].ApplicationProperties["why"])
	assert.Equal(t, int64(7), got["abandoned"].ApplicationProperties["n"], "property types survive the state file")
	assert.Greater(t, *got["after"].SequenceNumber, lastSeq)
	for _, m := range got {
		require.NoError(t, r.CompleteMessage(timeout(t), m, nil))
	}
	assert.Equal(t, 0, b.Stats(t, "events").Active)
}

// TestRestartWithoutStateFileStartsEmpty: without a state file a restart is a new, empty broker.
func TestRestartWithoutStateFileStartsEmpty(t *testing.T) {
	b := fakesb.Start(t, fakesb.Options{})
	b.Send(t, "events", []byte("lost"), nil)
	b.Restart(t)
	assert.Equal(t, 0, b.Stats(t, "events").Active)
}

// receiveSome waits for at least one message, through reconnects.
func receiveSome(t *testing.T, r *azservicebus.Receiver) []*azservicebus.ReceivedMessage {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		msgs, err := r.ReceiveMessages(ctx, 10, nil)
		cancel()
		if len(msgs) > 0 {
			return msgs
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("receive: %v", err)
		}
	}
	t.Fatal("no message within 20s")
	return nil
}
