package work

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/dataverse"
)

// Key names one thing to reconcile: a row of a table, or (for an unbound custom API) the API's name
// with a zero ID.
type Key struct {
	Table string
	ID    dataverse.GUID
}

func (k Key) String() string { return k.Table + "(" + k.ID.String() + ")" }

// Sources of work, for logs and metrics.
const (
	SourceServiceBus = "servicebus"
	SourceWebhook    = "webhook"
	SourceSweep      = "sweep"
	SourceAPI        = "api"
	SourceCLI        = "cli"
	SourceJob        = "job"
)

// Item is one request to reconcile a key. Event is the Dataverse event that asked for it, if any.
type Item struct {
	Key    Key
	Event  *event.Event
	Source string
}

// Batch is what a handler runs on: the key and every event that was collapsed into this run (oldest
// first; at most maxEventsPerRun are kept, the newest). Handlers re-read the row: events only say what
// woke them.
type Batch struct {
	Key     Key
	Events  []event.Event
	Sources []string
}

// Handler reconciles one key. It returns nil when the row is where it should be (including when it wrote
// a message on the row saying why it could not act) and an error only when trying again later may help.
type Handler func(ctx context.Context, w Batch) error

// ErrNoHandler is the outcome of work for a table no handler is registered for: nothing to do.
var ErrNoHandler = errors.New("no handler for this table")

// ErrShuttingDown is the outcome of work that was still waiting when the queue stopped.
var ErrShuttingDown = errors.New("the connector is shutting down")

const maxEventsPerRun = 16

// Options configure a Queue.
type Options struct {
	// Workers is how many keys run at once (default 8).
	Workers int
	// Limit is how many distinct keys may wait or run at once; Submit blocks beyond it (default 1000).
	Limit int
	// Retries is how often work nobody waits for (webhook events, sweeps) is retried after a failure, with
	// exponential backoff from RetryDelay (defaults 5 and 2 s). Batch somebody waits for reports the error
	// to its submitter instead (Service Bus abandons the message and the broker redelivers it).
	Retries    int
	RetryDelay time.Duration
	Logger     *slog.Logger
	Metrics    *metrics.Recorder
}

// Queue is the one work queue: keyed by (table, row), duplicates for a key collapse into one run, one run
// per key at a time, different keys in parallel up to Workers. A submission for a key that is running is
// kept for one more run after it, because the running handler may have read the row before the change.
type Queue struct {
	dispatch Handler
	opts     Options
	log      *slog.Logger
	metrics  *metrics.Recorder

	mu      sync.Mutex
	entries map[Key]*queueEntry
	// idle is closed while entries is empty; a new one opens with the first entry.
	idle       chan struct{}
	idleClosed bool
	stopped    bool
	slots      chan struct{} // one per key present; bounds memory and pushes back on submitters
	ready      chan Key      // keys with a batch waiting and no run in progress (each key at most once)

	// shutdown is closed by Shutdown: no new work is taken. cutoff is closed when Shutdown's context
	// ends first: running handlers are cancelled. Run turns them into the cancellation of the handlers'
	// context, which it owns.
	shutdown, cutoff         chan struct{}
	shutdownOnce, cutoffOnce sync.Once
}

type queueEntry struct {
	next    *pending // submissions for the next run; nil when none
	running bool
}

type pending struct {
	events   []event.Event
	sources  []string
	waiters  []chan error
	attempts int // earlier failed runs of detached work
}

// NewQueue returns a queue that runs dispatch for each batch of work. Call Run to start the workers.
func NewQueue(dispatch Handler, opts Options) *Queue {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Limit <= 0 {
		opts.Limit = 1000
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		dispatch: dispatch,
		opts:     opts,
		log:      opts.Logger,
		metrics:  opts.Metrics,
		entries:  map[Key]*queueEntry{},
		slots:    make(chan struct{}, opts.Limit),
		ready:    make(chan Key, opts.Limit),
		idle:     make(chan struct{}),
		shutdown: make(chan struct{}),
		cutoff:   make(chan struct{}),
	}
	q.depthChangedLocked()
	return q
}

// depthChangedLocked reports the queue's depth and opens or closes its idle signal.
func (q *Queue) depthChangedLocked() {
	q.metrics.QueueDepth(len(q.entries))
	switch {
	case len(q.entries) == 0 && !q.idleClosed:
		close(q.idle)
		q.idleClosed = true
	case len(q.entries) > 0 && q.idleClosed:
		q.idle = make(chan struct{})
		q.idleClosed = false
	}
}

// Idle returns a channel that is closed once no key is waiting or running. Work retried after a delay is
// not counted while it waits.
func (q *Queue) Idle() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idle
}

// Submit hands item to the queue without waiting for it to run. It blocks only while the queue is full,
// until ctx ends or the queue shuts down (ErrShuttingDown): work submitted on behalf of no request (rows a
// run woke) can pass a detached context and still end with the queue.
func (q *Queue) Submit(ctx context.Context, item Item) error {
	_, err := q.submit(ctx, item, false)
	return err
}

// Do hands item to the queue and waits for a run that started after the submission to finish, returning
// that run's error (ErrNoHandler when nothing handles the table, ErrShuttingDown when the queue stopped
// first). Several Do calls for one key share one run.
func (q *Queue) Do(ctx context.Context, item Item) error {
	done, err := q.submit(ctx, item, true)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *Queue) submit(ctx context.Context, item Item, wait bool) (chan error, error) {
	var done chan error
	if wait {
		done = make(chan error, 1)
	}
	if q.merge(item, done) {
		return done, nil
	}
	// A new key needs a slot; wait for one without holding the lock.
	select {
	case q.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-q.shutdown:
		return nil, ErrShuttingDown
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		<-q.slots
		return nil, ErrShuttingDown
	}
	if e, ok := q.entries[item.Key]; ok { // created by someone else meanwhile
		<-q.slots
		q.addLocked(e, item, done)
		return done, nil
	}
	e := &queueEntry{}
	q.entries[item.Key] = e
	q.addLocked(e, item, done)
	q.ready <- item.Key
	q.depthChangedLocked()
	return done, nil
}

// merge adds item to its key's entry if there is one.
func (q *Queue) merge(item Item, done chan error) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		if done != nil {
			done <- ErrShuttingDown
		}
		return done != nil
	}
	e, ok := q.entries[item.Key]
	if !ok {
		return false
	}
	q.addLocked(e, item, done)
	return true
}

func (q *Queue) addLocked(e *queueEntry, item Item, done chan error) {
	if e.next == nil {
		e.next = &pending{}
	}
	b := e.next
	if item.Event != nil {
		b.events = append(b.events, *item.Event)
		if len(b.events) > maxEventsPerRun {
			b.events = b.events[len(b.events)-maxEventsPerRun:]
		}
	}
	if item.Source != "" && !slices.Contains(b.sources, item.Source) {
		b.sources = append(b.sources, item.Source)
	}
	if done != nil {
		b.waiters = append(b.waiters, done)
	}
}

// Run starts the workers and blocks until every worker has stopped: when ctx ends (running handlers are
// cancelled at once) or after Shutdown (running handlers finish, within Shutdown's bound). Handlers run
// under a context Run derives from ctx, so they carry its values. Work still waiting when the queue stops
// is answered at once with ErrShuttingDown, so a Service Bus message behind it goes back to the broker for
// another replica. A queue runs once: Run after Shutdown returns at once.
func (q *Queue) Run(ctx context.Context) {
	handlerCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-q.cutoff:
			cancel()
		case <-handlerCtx.Done():
		}
	}()
	var wg sync.WaitGroup
	for range q.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-q.shutdown:
					return
				case key := <-q.ready:
					q.runKey(handlerCtx, key)
				}
			}
		})
	}
	select {
	case <-ctx.Done():
	case <-q.shutdown:
	}
	q.stop()
	wg.Wait()
}

// Shutdown stops the queue, as http.Server.Shutdown stops a server: it takes no new work, answers the work
// waiting with ErrShuttingDown, and waits for the running handlers to return. When ctx ends first it cancels
// them (the shutdown bound) and returns ctx's error; Run returns once they have.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.shutdownOnce.Do(func() { close(q.shutdown) })
	q.stop() // now, not when Run's workers notice: Do callers waiting behind the running work are answered
	select {
	case <-q.Idle():
		return nil
	case <-ctx.Done():
		q.cutoffOnce.Do(func() { close(q.cutoff) })
		return ctx.Err()
	}
}

func (q *Queue) stop() {
	q.mu.Lock()
	q.stopped = true
	for key, e := range q.entries {
		if e.running {
			continue
		}
		if e.next != nil {
			for _, w := range e.next.waiters {
				w <- ErrShuttingDown
			}
			if len(e.next.waiters) == 0 {
				q.log.Warn("work dropped at shutdown; the next sweep or event will pick the row up again", "key", key.String())
			}
		}
		delete(q.entries, key)
		<-q.slots // each waiting key held a slot
	}
	q.depthChangedLocked()
	q.mu.Unlock()
}

func (q *Queue) runKey(ctx context.Context, key Key) {
	q.mu.Lock()
	e := q.entries[key]
	if e == nil || e.next == nil {
		q.mu.Unlock()
		return
	}
	b := e.next
	e.next = nil
	e.running = true
	q.mu.Unlock()

	started := time.Now()
	err := q.safeDispatch(ctx, Batch{Key: key, Events: b.events, Sources: b.sources})
	result := "ok"
	switch {
	case errors.Is(err, ErrNoHandler):
		result = "nohandler"
	case err != nil:
		result = "error"
	}
	q.metrics.Handled(key.Table, result, time.Since(started))
	if err != nil && !errors.Is(err, ErrNoHandler) {
		q.log.Warn("work failed", "key", key.String(), "sources", b.sources, "attempt", b.attempts+1, "error", err)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	for _, w := range b.waiters {
		w <- err
	}
	retry := err != nil && !errors.Is(err, ErrNoHandler) && len(b.waiters) == 0 && b.attempts < q.opts.Retries && !q.stopped
	if retry {
		b.waiters = nil
		b.attempts++
		delay := q.opts.RetryDelay << (b.attempts - 1)
		go func() { // ends with the delay or with ctx (the end of Run)
			select {
			case <-time.After(delay):
				q.resubmit(key, b)
			case <-ctx.Done():
			}
		}()
	}
	e.running = false
	if e.next != nil && !q.stopped {
		q.ready <- key
		return
	}
	if e.next != nil {
		for _, w := range e.next.waiters {
			w <- ErrShuttingDown
		}
	}
	delete(q.entries, key)
	<-q.slots
	q.depthChangedLocked()
}

// resubmit puts a failed detached batch back, merged with anything that arrived meanwhile.
func (q *Queue) resubmit(key Key, b *pending) {
	select {
	case q.slots <- struct{}{}:
	default:
		q.log.Warn("work not retried: the queue is full; the next sweep will pick the row up", "key", key.String())
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		<-q.slots
		return
	}
	if e, ok := q.entries[key]; ok {
		<-q.slots
		if e.next == nil {
			e.next = b
			return
		}
		// Fresh work arrived meanwhile: the retry joins it (its events first, the newest kept), and the
		// fresh submissions keep their own count of attempts.
		e.next.events = append(b.events, e.next.events...)
		if len(e.next.events) > maxEventsPerRun {
			e.next.events = e.next.events[len(e.next.events)-maxEventsPerRun:]
		}
		for _, src := range b.sources {
			if !slices.Contains(e.next.sources, src) {
				e.next.sources = append(e.next.sources, src)
			}
		}
		return
	}
	q.entries[key] = &queueEntry{next: b}
	q.ready <- key
	q.depthChangedLocked()
}

// safeDispatch turns a handler panic into an error: one bad row must not stop the connector.
func (q *Queue) safeDispatch(ctx context.Context, w Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler for %s panicked: %v", w.Key, r)
		}
	}()
	return q.dispatch(ctx, w)
}

// Len is the number of keys waiting or running.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

// KeyFor is the work key of an event: its row, or for an unbound custom API its message name.
func KeyFor(ev event.Event) Key {
	if ev.Table == "" || ev.Table == "none" {
		return Key{Table: ev.Message}
	}
	return Key{Table: ev.Table, ID: ev.RowID}
}

// Backlog is the number of keys that have work waiting behind a run of their own.
func (q *Queue) Backlog() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, e := range q.entries {
		if e.running && e.next != nil {
			n++
		}
	}
	return n
}
