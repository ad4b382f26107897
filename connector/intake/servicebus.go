package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
)

// ListenerOptions configure a Listener.
type ListenerOptions struct {
	Queue string
	// MaxConcurrent is how many messages are held (received and not yet settled) at once (default 16).
	// The listener asks the broker only for as many as it has free slots, so nothing waits locked in memory.
	MaxConcurrent int
	// SettleTimeout bounds one settlement; it runs on a fresh context so shutdown does not lose it (10 s).
	SettleTimeout time.Duration
	// AbandonDelay is how long a failed message is held (its lock renewed) before it is abandoned, by
	// delivery count: a backoff so a failing row does not hot-loop (default 2^(n-1) s, at most 60 s).
	AbandonDelay func(deliveryCount uint32) time.Duration
	// ReconnectDelay is the first wait before opening a new receiver after the old one failed; it doubles
	// up to a minute (default 1 s).
	ReconnectDelay time.Duration
	Logger         *slog.Logger
	Metrics        *metrics.Recorder
}

// Listener receives Dataverse events from a Service Bus queue in peek-lock mode and settles
// each one exactly once, in one place (settle).
type Listener struct {
	client    *azservicebus.Client
	intake    *Intake
	opts      ListenerOptions
	log       *slog.Logger
	connected atomic.Bool
	lastErr   atomic.Pointer[string]

	// shutdown is closed by Shutdown: no more messages are received. cutoff is closed when Shutdown's
	// context ends first: the messages still being handled are cut off (and abandoned). runs counts the
	// Runs under way, for Shutdown to wait on; mu orders a Run starting against Shutdown.
	mu                       sync.Mutex
	runs                     sync.WaitGroup
	shutdown, cutoff         chan struct{}
	shutdownOnce, cutoffOnce sync.Once
}

// NewListener returns a listener; Run starts it.
func NewListener(client *azservicebus.Client, intake *Intake, opts ListenerOptions) *Listener {
	if opts.Queue == "" {
		opts.Queue = DefaultQueue
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 16
	}
	if opts.SettleTimeout <= 0 {
		opts.SettleTimeout = 10 * time.Second
	}
	if opts.AbandonDelay == nil {
		opts.AbandonDelay = func(n uint32) time.Duration {
			if n < 1 {
				n = 1
			}
			return min(time.Second<<min(n-1, 6), time.Minute)
		}
	}
	if opts.ReconnectDelay <= 0 {
		opts.ReconnectDelay = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{client: client, intake: intake, opts: opts, log: opts.Logger.With("component", "servicebus", "queue", opts.Queue),
		shutdown: make(chan struct{}), cutoff: make(chan struct{})}
}

// Connected reports whether the last receive worked; Err says why not.
func (l *Listener) Connected() bool { return l.connected.Load() }

// Err is the last receive error ("" when connected).
func (l *Listener) Err() string {
	if p := l.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run receives until ctx ends or Shutdown is called, like http.Server.Serve. A failing receiver is closed
// and a new one opened, with backoff. Messages are handled (and their locks renewed) under a context Run
// derives from ctx: when ctx ends they are cut off and abandoned at once; after Shutdown they are finished
// and settled, within Shutdown's bound. Run returns once every message it received is settled. A listener
// runs until it is shut down: Run after Shutdown returns at once.
func (l *Listener) Run(ctx context.Context) error {
	l.mu.Lock()
	select {
	case <-l.shutdown:
		l.mu.Unlock()
		return nil
	default:
	}
	l.runs.Add(1)
	l.mu.Unlock()
	defer l.runs.Done()
	ctx, cutOff := context.WithCancel(ctx)
	defer cutOff()
	go func() {
		select {
		case <-l.cutoff:
			cutOff()
		case <-ctx.Done():
		}
	}()

	delay := l.opts.ReconnectDelay
	for ctx.Err() == nil && !l.stopping() {
		rcv, err := l.client.NewReceiverForQueue(l.opts.Queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock})
		if err == nil {
			var received bool
			received, err = l.receive(ctx, rcv)
			if received {
				delay = l.opts.ReconnectDelay
			}
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.SettleTimeout)
			_ = rcv.Close(closeCtx)
			cancel()
		}
		if ctx.Err() != nil || l.stopping() {
			break
		}
		l.setDisconnected(err)
		l.log.Warn("service bus receiver failed; reconnecting", "error", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		case <-l.shutdown:
		}
		delay = min(delay*2, time.Minute)
	}
	l.connected.Store(false)
	return nil
}

// Shutdown stops the listener, as http.Server.Shutdown stops a server: it receives no more messages and
// waits for the ones held to be handled and settled. When ctx ends first it cuts their handling off (the
// shutdown bound: they are abandoned to another replica) and returns ctx's error.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.shutdownOnce.Do(func() { close(l.shutdown) })
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.runs.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		l.cutoffOnce.Do(func() { close(l.cutoff) })
		return ctx.Err()
	}
}

// stopping reports whether Shutdown was called.
func (l *Listener) stopping() bool {
	select {
	case <-l.shutdown:
		return true
	default:
		return false
	}
}

func (l *Listener) setDisconnected(err error) {
	l.connected.Store(false)
	msg := "not connected"
	if err != nil {
		msg = err.Error()
	}
	l.lastErr.Store(&msg)
}

// receive runs one receiver until it fails, ctx ends or the listener shuts down, then waits for its
// messages, handled under ctx, to be settled.
func (l *Listener) receive(ctx context.Context, rcv *azservicebus.Receiver) (received bool, err error) {
	// Receiving stops at shutdown too; the messages already received are handled on.
	recvCtx, stopReceiving := context.WithCancel(ctx)
	defer stopReceiving()
	go func() {
		select {
		case <-l.shutdown:
			stopReceiving()
		case <-recvCtx.Done():
		}
	}()
	slots := make(chan struct{}, l.opts.MaxConcurrent)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		// Ask only for free slots: a message received is a lock held, and a lock held by a busy replica is a
		// message another replica could be working on.
		select {
		case slots <- struct{}{}:
		case <-recvCtx.Done():
			return received, nil
		}
		free := 1
	fill:
		for free < l.opts.MaxConcurrent {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break fill
			}
		}
		msgs, err := rcv.ReceiveMessages(recvCtx, free, nil)
		for range free - len(msgs) {
			<-slots
		}
		if err != nil {
			if recvCtx.Err() != nil {
				err = nil
			}
			for _, m := range msgs { // received as the context ended: give them back at once
				inflight.Go(func() { l.settle(rcv, m, Settlement{Action: SettleAbandon, Err: work.ErrShuttingDown}, nil); <-slots })
			}
			return received, err
		}
		received = true
		l.connected.Store(true)
		l.lastErr.Store(nil)
		for _, m := range msgs {
			inflight.Go(func() {
				defer func() { <-slots }()
				l.handle(ctx, rcv, m)
			})
		}
	}
}

// handle decodes and processes one message under ctx while keeping its lock, then settles it.
func (l *Listener) handle(ctx context.Context, rcv *azservicebus.Receiver, m *azservicebus.ReceivedMessage) {
	renewCtx, stopRenewing := context.WithCancel(ctx)
	lost := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		l.keepLock(renewCtx, rcv, m, lost)
	}()
	defer func() { stopRenewing(); <-renewed }()

	var s Settlement
	body := m.Body
	if ct := derefString(m.ContentType); ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		s = Settlement{Action: SettleDeadLetter, Reason: event.ReasonNotJSON, Description: fmt.Sprintf(
			"the message's content type is %q: set the Dataverse service endpoint's message format to Json (messageformat 2)", ct)}
	} else if ev, early := l.intake.Receive(body, work.SourceServiceBus, truncatedMessage(m)); early != nil {
		s = *early
	} else {
		s = l.intake.Process(ctx, ev, work.SourceServiceBus)
	}
	l.settle(rcv, m, s, &holdUntil{stop: l.shutdown, done: ctx.Done(), lost: lost})
}

// holdUntil lets settle wait out an abandon delay, cut short by shutdown (stop), the end of the handling
// context (done) or a lost lock.
type holdUntil struct {
	stop, done, lost <-chan struct{}
}

// settle is the one place a message's fate is carried out: complete, abandon (after the backoff delay,
// unless shutting down) or dead-letter with a reason. It runs on a fresh context with a timeout so a
// cancelled run context does not lose the settlement.
func (l *Listener) settle(rcv *azservicebus.Receiver, m *azservicebus.ReceivedMessage, s Settlement, hold *holdUntil) {
	log := l.log.With("message_id", m.MessageID, "delivery_count", m.DeliveryCount)
	if s.Action == SettleAbandon && hold != nil {
		if d := l.opts.AbandonDelay(m.DeliveryCount); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-hold.stop:
			case <-hold.done:
			case <-hold.lost:
			}
			t.Stop()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.SettleTimeout)
	defer cancel()
	var err error
	switch s.Action {
	case SettleComplete:
		err = rcv.CompleteMessage(ctx, m, nil)
	case SettleAbandon:
		log.Warn("message abandoned; the broker will deliver it again", "error", s.Err)
		err = rcv.AbandonMessage(ctx, m, nil)
	case SettleDeadLetter:
		reason, desc := s.Reason, dataverse.FitText(s.Description, 4000) // the broker's dead-letter description, kept short
		log.Warn("message dead-lettered", "reason", reason, "description", desc)
		err = rcv.DeadLetterMessage(ctx, m, &azservicebus.DeadLetterOptions{Reason: &reason, ErrorDescription: &desc})
	}
	outcome := s.Action.String()
	if s.Action == SettleComplete && s.Reason != "" {
		outcome = "ignored"
	}
	if err != nil {
		var sbErr *azservicebus.Error
		if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost {
			log.Info("lock lost before settlement; the broker will deliver the message again (handlers are idempotent)", "action", outcome)
			outcome = "locklost"
		} else {
			log.Error("settlement failed; the broker will deliver the message again when its lock expires", "action", outcome, "error", err)
			outcome = "settlefailed"
		}
	}
	l.intake.Metrics.Settled(work.SourceServiceBus, outcome)
}

// keepLock renews m's lock at half its remaining time until ctx ends; it closes lost when the lock is
// gone for good.
func (l *Listener) keepLock(ctx context.Context, rcv *azservicebus.Receiver, m *azservicebus.ReceivedMessage, lost chan<- struct{}) {
	failures := 0
	for {
		wait := 10 * time.Second
		if m.LockedUntil != nil {
			wait = max(time.Until(*m.LockedUntil)/2, 50*time.Millisecond)
		}
		if failures > 0 {
			wait = min(wait, 500*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := rcv.RenewMessageLock(ctx, m, nil)
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		var sbErr *azservicebus.Error
		if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost {
			l.log.Warn("message lock lost while its work runs; the broker will deliver it again", "message_id", m.MessageID)
			close(lost)
			return
		}
		failures++
		l.log.Warn("renewing a message lock failed; trying again", "message_id", m.MessageID, "error", err)
	}
}

// truncatedMessage reports a message Dataverse cut for size (it adds MessageMaxSizeExceeded).
func truncatedMessage(m *azservicebus.ReceivedMessage) bool {
	for k := range m.ApplicationProperties {
		if strings.EqualFold(k, "MessageMaxSizeExceeded") {
			return true
		}
	}
	return false
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
