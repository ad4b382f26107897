package connector

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// NotificationType names an event flows subscribe to. Its string is what flows see.
type NotificationType string

// Notification types.
const (
	NotifyProviderAccountNeedsMapping NotificationType = "ProviderAccountNeedsMapping"
	NotifyLicenseChangeFailed         NotificationType = "LicenseChangeFailed"
	NotifyAgreementAccepted           NotificationType = "AgreementAccepted"
	NotifyJobFailed                   NotificationType = "JobFailed"
)

// EventType is the csp_webhooksubscription.csp_eventtype choice a subscription to t carries; zero for a
// type the connector does not know.
func (t NotificationType) EventType() schema.EventType {
	switch t {
	case NotifyProviderAccountNeedsMapping:
		return schema.EventProviderAccountNeedsMapping
	case NotifyLicenseChangeFailed:
		return schema.EventLCLFailed
	case NotifyAgreementAccepted:
		return schema.EventAgreementAccepted
	case NotifyJobFailed:
		return schema.EventJobFailed
	}
	return 0
}

// NotificationTypes lists every notification type, in the order of their event type choices.
func NotificationTypes() []NotificationType {
	return []NotificationType{NotifyProviderAccountNeedsMapping, NotifyLicenseChangeFailed, NotifyAgreementAccepted, NotifyJobFailed}
}

// Notification is one event for people and flows.
type Notification struct {
	// ID is unique (a UUID v4 when empty at Publish); flows de-duplicate on it, since a retried delivery
	// carries the same ID.
	ID   string
	Type NotificationType
	// Time is when it happened (the Notifications clock at Publish when zero).
	Time time.Time
	// Notice is what the in-app channel shows: Title, Body, Icon and the row (Table, RowID) it opens.
	Notice
	// Data holds machine-readable fields for flows (providerAccountId, tenantId, companyName, mappingStatus,
	// candidates, …). Values must encode as JSON.
	Data map[string]any
}

// Payload is the JSON body both the topic message and the webhook POST carry. It is the schema of the
// Power Automate trigger: add fields, never rename or remove one.
type Payload struct {
	// ID identifies the notification. A notification may arrive more than once (deliveries are retried,
	// and the topic and the webhooks are separate channels): flows de-duplicate on it.
	ID string `json:"id"`
	// Type is the event: ProviderAccountNeedsMapping, LicenseChangeFailed, AgreementAccepted or JobFailed.
	Type NotificationType `json:"type"`
	// Time is when the event happened, RFC 3339 in UTC ("2026-11-21T10:00:00Z").
	Time string `json:"time"`
	// Title is a one-line summary for people ("Contoso Ltd needs an account").
	Title string `json:"title"`
	// Message says what happened and what to do, in plain words (the in-app notification's body).
	Message string `json:"message"`
	// Table is the logical name of the Dataverse table of the row the event is about
	// ("csp_provideraccount"); empty when the event is about no row.
	Table string `json:"table"`
	// RowID is the id of that row (a GUID); empty when the event is about no row.
	RowID string `json:"rowId"`
	// Data holds the event's machine-readable fields, which depend on Type (for
	// ProviderAccountNeedsMapping: providerAccountId, tenantId, companyName, mappingStatus, candidates).
	// Always an object, empty when the event has none.
	Data map[string]any `json:"data"`
}

// Payload returns what the topic and webhook channels send for n.
func (n Notification) Payload() Payload {
	p := Payload{ID: n.ID, Type: n.Type, Time: n.Time.UTC().Format(time.RFC3339), Title: n.Title, Message: n.Body, Table: n.Table, Data: n.Data}
	if n.RowID != uuid.Nil {
		p.RowID = n.RowID.String()
	}
	if p.Data == nil {
		p.Data = map[string]any{}
	}
	return p
}

// NotificationsOptions configure Notifications. A nil channel is switched off.
type NotificationsOptions struct {
	InApp    *InAppNotifier
	Topic    *TopicPublisher
	Webhooks *WebhookDeliverer
	// QueueSize bounds the notifications waiting for delivery in this replica (default 1000). When it is
	// full Publish drops the new notification, counts it and warns (at most once a minute): a flood of
	// notices must not grow memory without bound, and the oldest are the ones people need first.
	QueueSize int
	// Attempts is how many times each channel tries one notification before giving up (default 6).
	Attempts int
	// Backoff is the wait after the attempt-th failed attempt (attempt counts from 1). Default: 1 s, 5 s,
	// 30 s, 2 min, then 10 min, each ±20% so replicas and notifications do not retry in step.
	Backoff func(attempt int) time.Duration
	Logger  *slog.Logger
	// Now stamps notifications and paces the queue-full warning (time.Now when nil). Retries wait on real
	// timers.
	Now func() time.Time
}

// NotificationStats count notifications since start. A notification counts once per channel.
type NotificationStats struct {
	// Published counts notifications accepted by Publish; Dropped those refused because the queue was full.
	Published, Dropped int
	// Delivered counts notifications a channel delivered (for webhooks: to every subscription there was,
	// none included; a subscription found gone counts as done).
	Delivered ChannelCounts
	// Failed counts notifications a channel gave up on (for webhooks: at least one subscription never got
	// it).
	Failed ChannelCounts
}

// ChannelCounts is a count per delivery channel.
type ChannelCounts struct {
	InApp, Topic, Webhooks int
}

// notificationWorkers is how many deliveries run at once: enough that one slow flow does not hold up the
// rest, few enough not to crowd Dataverse, which the in-app and webhook channels both call.
const notificationWorkers = 4

// Notifications delivers notifications to every channel that is on, in the background: Publish never
// waits for a delivery. Each channel of each notification is delivered and retried on its own, so a
// failing flow delays nothing else. The queue is in memory: what is still pending when the process stops
// is lost (Run logs how many).
type Notifications struct {
	opts NotificationsOptions
	log  *slog.Logger
	work chan *notificationTask // unbuffered: a task leaves the ready list only when a worker takes it
	wake chan struct{}

	running            atomic.Bool
	noRecipientsLogged atomic.Bool

	mu       sync.Mutex
	ready    []*notificationTask // only dispatch removes, from the front; everyone else appends
	retries  retryHeap
	pending  map[*pendingNotification]struct{}
	stats    NotificationStats
	lastWarn time.Time // last queue-full warning
}

// pendingNotification is a published notification until every channel is done with it.
type pendingNotification struct {
	nt        Notification
	remaining int           // channels not done; guarded by Notifications.mu
	done      chan struct{} // closed when remaining reaches 0
	// hooks is the webhook channel's progress across attempts. Only the worker running the webhook task
	// touches it, and a task runs on one worker at a time.
	hooks *webhookProgress
}

type deliveryChannel int

const (
	channelInApp deliveryChannel = iota
	channelTopic
	channelWebhooks
)

func (c deliveryChannel) String() string {
	switch c {
	case channelInApp:
		return "inapp"
	case channelTopic:
		return "topic"
	case channelWebhooks:
		return "webhooks"
	}
	return "unknown"
}

// notificationTask is one channel of one notification: ready, waiting in the retry heap, or with a worker.
type notificationTask struct {
	p        *pendingNotification
	channel  deliveryChannel
	attempts int       // made so far
	due      time.Time // when a retry may run
}

// NewNotifications returns the notification channels; Run delivers.
func NewNotifications(o NotificationsOptions) *Notifications {
	if o.QueueSize <= 0 {
		o.QueueSize = 1000
	}
	if o.Attempts <= 0 {
		o.Attempts = 6
	}
	if o.Backoff == nil {
		o.Backoff = defaultNotificationBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Notifications{opts: o, log: o.Logger.With("component", "notifications"), work: make(chan *notificationTask),
		wake: make(chan struct{}, 1), pending: map[*pendingNotification]struct{}{}}
}

// defaultNotificationBackoff waits 1 s, 5 s, 30 s, 2 min, then 10 min after the first, second, … failed
// attempt, ±20%.
func defaultNotificationBackoff(attempt int) time.Duration {
	steps := [...]time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}
	d := steps[min(max(attempt, 1), len(steps))-1]
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Publish queues nt for every channel that is on and returns its ID. It never blocks: when the queue is
// full the notification is dropped and counted (Stats().Dropped).
func (n *Notifications) Publish(nt Notification) string {
	if nt.ID == "" {
		nt.ID = uuid.NewString()
	}
	now := n.opts.Now()
	if nt.Time.IsZero() {
		nt.Time = now
	}
	var channels []deliveryChannel
	if n.opts.InApp != nil {
		channels = append(channels, channelInApp)
	}
	if n.opts.Topic != nil {
		channels = append(channels, channelTopic)
	}
	if n.opts.Webhooks != nil {
		channels = append(channels, channelWebhooks)
	}

	n.mu.Lock()
	if len(n.pending) >= n.opts.QueueSize {
		n.stats.Dropped++
		dropped := n.stats.Dropped
		warn := n.lastWarn.IsZero() || now.Sub(n.lastWarn) >= time.Minute
		if warn {
			n.lastWarn = now
		}
		n.mu.Unlock()
		if warn {
			n.log.Warn("notification queue is full: dropping new notifications until deliveries catch up",
				"notification", nt.ID, "type", nt.Type, "queue_size", n.opts.QueueSize, "dropped_total", dropped)
		}
		return nt.ID
	}
	n.stats.Published++
	if len(channels) > 0 {
		p := &pendingNotification{nt: nt, remaining: len(channels), done: make(chan struct{}), hooks: newWebhookProgress()}
		n.pending[p] = struct{}{}
		for _, c := range channels {
			n.ready = append(n.ready, &notificationTask{p: p, channel: c})
		}
	}
	n.mu.Unlock()
	n.signal()
	return nt.ID
}

func (n *Notifications) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, with a few workers; a delivery cut short by ctx is not an attempt and stays
// queued for the next Run. Only one Run may be active at a time.
func (n *Notifications) Run(ctx context.Context) {
	if !n.running.CompareAndSwap(false, true) {
		n.log.Error("notifications: Run called while another Run is active; ignored")
		return
	}
	defer n.running.Store(false)
	var workers sync.WaitGroup
	for range notificationWorkers {
		workers.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case t := <-n.work:
					n.attempt(ctx, t)
				}
			}
		})
	}
	n.dispatch(ctx)
	workers.Wait()
	n.mu.Lock()
	left := len(n.pending)
	n.mu.Unlock()
	if left > 0 {
		n.log.Warn("notifications stopped with deliveries pending; they are lost if the process exits", "pending", left)
	}
}

// dispatch hands ready tasks to workers and moves retries whose time has come to the ready list.
func (n *Notifications) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		n.mu.Lock()
		now := time.Now()
		for len(n.retries) > 0 && !n.retries[0].due.After(now) {
			n.ready = append(n.ready, heap.Pop(&n.retries).(*notificationTask))
		}
		var out chan<- *notificationTask
		var head *notificationTask
		if len(n.ready) > 0 {
			out, head = n.work, n.ready[0]
		}
		var retry <-chan time.Time
		if len(n.retries) > 0 {
			timer.Reset(n.retries[0].due.Sub(now))
			retry = timer.C
		}
		n.mu.Unlock()

		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-retry:
		case out <- head:
			n.mu.Lock()
			n.ready[0] = nil
			n.ready = n.ready[1:]
			n.mu.Unlock()
		}
	}
}

// attempt delivers one task once and decides what comes next: done, given up, or retried later.
func (n *Notifications) attempt(ctx context.Context, t *notificationTask) {
	err := n.deliver(ctx, t)
	if err != nil && ctx.Err() != nil {
		n.requeue(t) // shutting down: the attempt did not really happen
		return
	}
	t.attempts++
	log := n.log.With("notification", t.p.nt.ID, "type", t.p.nt.Type, "channel", t.channel.String(), "attempt", t.attempts)
	var permanent *permanentError
	switch {
	case err == nil:
		n.finish(t, outcomeDelivered)
	case t.channel == channelInApp && errors.Is(err, ErrNoRecipients):
		// Nothing to deliver to is a configuration choice, not a failure, and retrying changes nothing.
		if n.noRecipientsLogged.CompareAndSwap(false, true) {
			log.Info("in-app notifications have no recipients; they are not sent", "error", err)
		}
		n.finish(t, outcomeSkipped)
	case errors.As(err, &permanent) || t.attempts >= n.opts.Attempts:
		log.Warn("notification delivery failed; giving up", "error", err)
		n.finish(t, outcomeFailed)
	default:
		wait := n.opts.Backoff(t.attempts)
		log.Debug("notification delivery failed; retrying", "error", err, "retry_in", wait)
		n.mu.Lock()
		t.due = time.Now().Add(wait)
		heap.Push(&n.retries, t)
		n.mu.Unlock()
		n.signal()
	}
}

func (n *Notifications) deliver(ctx context.Context, t *notificationTask) error {
	switch t.channel {
	case channelInApp:
		return n.opts.InApp.Notify(ctx, t.p.nt.Notice)
	case channelTopic:
		return n.opts.Topic.Publish(ctx, t.p.nt)
	case channelWebhooks:
		return n.opts.Webhooks.deliver(ctx, t.p.nt, t.p.hooks, t.attempts+1 >= n.opts.Attempts)
	}
	return nil
}

func (n *Notifications) requeue(t *notificationTask) {
	n.mu.Lock()
	n.ready = append(n.ready, t)
	n.mu.Unlock()
	n.signal()
}

type deliveryOutcome int

const (
	outcomeDelivered deliveryOutcome = iota
	outcomeFailed
	outcomeSkipped // nothing to deliver to: neither delivered nor failed
)

// finish counts a channel's outcome and releases the notification when it was the last channel.
func (n *Notifications) finish(t *notificationTask, o deliveryOutcome) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch o {
	case outcomeDelivered:
		n.stats.Delivered.add(t.channel, 1)
	case outcomeFailed:
		n.stats.Failed.add(t.channel, 1)
	}
	t.p.remaining--
	if t.p.remaining == 0 {
		delete(n.pending, t.p)
		close(t.p.done)
	}
}

// Flush waits until every notification published so far is delivered or given up on, or ctx ends (then
// it returns ctx.Err()). It is for CLI commands and tests; it needs Run to be running.
func (n *Notifications) Flush(ctx context.Context) error {
	n.mu.Lock()
	waits := make([]chan struct{}, 0, len(n.pending))
	for p := range n.pending {
		waits = append(waits, p.done)
	}
	n.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Stats returns the counts so far.
func (n *Notifications) Stats() NotificationStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

func (c *ChannelCounts) add(ch deliveryChannel, d int) {
	switch ch {
	case channelInApp:
		c.InApp += d
	case channelTopic:
		c.Topic += d
	case channelWebhooks:
		c.Webhooks += d
	}
}

// permanentError marks a delivery failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryHeap orders waiting retries by due time.
type retryHeap []*notificationTask

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(*notificationTask)) }
func (h *retryHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
