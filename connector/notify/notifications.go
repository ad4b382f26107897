package notify

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// Type names an event flows subscribe to. Its string is what flows see.
type Type string

// Notification types.
const (
	ProviderAccountNeedsMapping Type = "ProviderAccountNeedsMapping"
	LicenseChangeFailed         Type = "LicenseChangeFailed"
	AgreementAccepted           Type = "AgreementAccepted"
	JobFailed                   Type = "JobFailed"
	// SubscriptionDrift: a subscription sync found changes made in Partner Center that no license change
	// of ours explains, or that it could not record (a change of ours in flight).
	SubscriptionDrift Type = "SubscriptionDrift"
)

// EventType is the csp_webhooksubscription.csp_eventtype choice a subscription to t carries; zero for a
// type the connector does not know.
func (t Type) EventType() schema.EventType {
	switch t {
	case ProviderAccountNeedsMapping:
		return schema.EventProviderAccountNeedsMapping
	case LicenseChangeFailed:
		return schema.EventLCLFailed
	case AgreementAccepted:
		return schema.EventAgreementAccepted
	case JobFailed:
		return schema.EventJobFailed
	case SubscriptionDrift:
		return schema.EventSubscriptionDrift
	}
	return 0
}

// Types lists every notification type, in the order of their event type choices.
func Types() []Type {
	return []Type{ProviderAccountNeedsMapping, LicenseChangeFailed, AgreementAccepted, JobFailed, SubscriptionDrift}
}

// Notification is one event for people and flows.
type Notification struct {
	// ID is unique (a UUID v4 when empty at Publish); flows de-duplicate on it, since a retried delivery
	// carries the same ID.
	ID   string
	Type Type
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
	// Type is the event: ProviderAccountNeedsMapping, LicenseChangeFailed, AgreementAccepted, JobFailed or
	// SubscriptionDrift.
	Type Type `json:"type"`
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

// Options configure Notifications. A nil channel is switched off.
type Options struct {
	InApp    *InAppNotifier
	Topic    *TopicPublisher
	Webhooks *WebhookDeliverer
	// Outbox is the Dataverse the notifications wait in (csp_notification rows) until every channel is done
	// with them, so one this replica was delivering when it stopped is delivered by another (at least once:
	// the channels de-duplicate on the notification's ID). Nil keeps them in memory only, lost when the
	// process stops.
	Outbox *dataverse.Client
	// Instance names this replica in the outbox rows it claims (csp_claimedby).
	Instance string
	// Lease is how long a replica holds an outbox row it claimed before another may take it over (default
	// 5 min): longer than one delivery attempt, so a live replica keeps what it is delivering.
	Lease time.Duration
	// PollEvery is how often Run looks for outbox rows due for delivery that no replica holds (default 30 s).
	PollEvery time.Duration
	// QueueSize bounds the notifications this replica holds in memory (default 1000). When it is full,
	// Publish leaves a new notification in the outbox for the next poll of any replica; without an outbox
	// it drops it, counts it and warns (at most once a minute): a flood of notices must not grow memory
	// without bound, and the oldest are the ones people need first.
	QueueSize int
	// Attempts is how many times each channel tries one notification before giving up (default 6).
	Attempts int
	// Backoff is the wait after the attempt-th failed attempt (attempt counts from 1). Default: 1 s, 5 s,
	// 30 s, 2 min, then 10 min, each ±20% so replicas and notifications do not retry in step.
	Backoff func(attempt int) time.Duration
	Logger  *slog.Logger
	// Now stamps notifications, the outbox's times (next attempt, lease) and paces the queue-full warning
	// (time.Now when nil). Retries in this replica wait on real timers.
	Now func() time.Time
}

// Stats count notifications since start. A notification counts once per channel.
type Stats struct {
	// Published counts notifications accepted by Publish; Dropped those refused because the queue was full
	// (only without an outbox).
	Published, Dropped int
	// Delivered counts notifications a channel delivered (for webhooks: to every subscription there was,
	// none included; a subscription found gone counts as done; for in-app: to every recipient, a user found
	// gone counting as done).
	Delivered ChannelCounts
	// Failed counts notifications a channel gave up on (for webhooks and in-app: at least one subscription
	// or recipient never got it).
	Failed ChannelCounts
}

// ChannelCounts is a count per delivery channel.
type ChannelCounts struct {
	InApp, Topic, Webhooks int
}

// notificationWorkers is how many deliveries run at once: enough that one slow flow does not hold up the
// rest, few enough not to crowd Dataverse, which the in-app and webhook channels both call.
const notificationWorkers = 4

// notificationNamespace derives the ids of a notification's outbox row (when its ID is not a UUID) and of
// its in-app notifications (UUID v5), so every replica and every retry computes the same ones.
var notificationNamespace = uuid.MustParse("5b0f2d8e-61c4-4f0b-9a57-2c1e0d4c7a13")

// Notifications delivers notifications to every channel that is on, in the background: Publish never
// waits for a delivery. All channels of a notification are tried in one attempt; a retry goes only to the
// channels, in-app recipients and webhook subscriptions that have not got it yet, so a failing flow delays
// nothing else. With an outbox, what a replica has not finished when it stops is taken over by another;
// without one, it is lost (Run logs how many).
type Notifications struct {
	opts Options
	log  *slog.Logger
	work chan *pendingNotification // unbuffered: a notification leaves the ready list only when a worker takes it
	wake chan struct{}

	running            atomic.Bool
	noRecipientsLogged atomic.Bool

	mu       sync.Mutex
	ready    []*pendingNotification // only dispatch removes, from the front; everyone else appends
	retries  retryHeap
	pending  map[string]*pendingNotification // by ID: what this replica holds
	stats    Stats
	lastWarn time.Time // last queue-full warning
}

// pendingNotification is a notification this replica is delivering (it published it, or claimed it from
// the outbox) until every channel is done with it or another replica takes it over. Only the worker
// running it touches its fields, and it runs on one worker at a time.
type pendingNotification struct {
	nt       Notification
	state    deliveryState
	attempts int       // made so far
	due      time.Time // when a retry may run (real clock)
	// row is the outbox row (uuid.Nil: in memory only); etag its version after this replica's last write
	// ("" right after the create: the write that follows uses If-Match: *).
	row  dataverse.GUID
	etag dataverse.ETag
	// reclaim says the claim was released with the last write (the row waits for its next attempt), so the
	// next attempt claims the row again first.
	reclaim bool
	done    chan struct{} // closed when this replica is done with it
}

// deliveryState is what is left to deliver of one notification. It is kept in the outbox row
// (csp_deliverystate) after each failed attempt, so a retry, in this replica or another, sends only to
// those that have not got it yet.
type deliveryState struct {
	// InApp are the recipients (systemuser ids) still to notify; InAppFailed says one was given up on.
	InApp       []dataverse.GUID `json:"inApp,omitempty"`
	InAppFailed bool             `json:"inAppFailed,omitempty"`
	Topic       bool             `json:"topic,omitempty"`
	Webhooks    *webhookProgress `json:"webhooks,omitempty"`
}

func (s deliveryState) finished() bool { return len(s.InApp) == 0 && !s.Topic && s.Webhooks == nil }

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

// New returns the notification channels; Run delivers.
func New(o Options) *Notifications {
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
	if o.Lease <= 0 {
		o.Lease = 5 * time.Minute
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 30 * time.Second
	}
	return &Notifications{opts: o, log: o.Logger.With("component", "notifications"), work: make(chan *pendingNotification),
		wake: make(chan struct{}, 1), pending: map[string]*pendingNotification{}}
}

// defaultNotificationBackoff waits 1 s, 5 s, 30 s, 2 min, then 10 min after the first, second, … failed
// attempt, ±20%.
func defaultNotificationBackoff(attempt int) time.Duration {
	steps := [...]time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}
	d := steps[min(max(attempt, 1), len(steps))-1]
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// outboxWriteTimeout bounds Publish's write of the outbox row: the caller's work waits for it.
const outboxWriteTimeout = 30 * time.Second

// Publish queues nt for every channel that is on and returns its ID. With an outbox it first writes the
// notification there (one request, so what the caller wrote before it is announced even if this replica
// stops); it never waits for a delivery. Without an outbox, when the queue is full the notification is
// dropped and counted (Stats().Dropped).
func (n *Notifications) Publish(nt Notification) string {
	id, _ := n.PublishKept(nt)
	return id
}

// PublishKept is Publish, and also reports whether the notification is kept in the outbox until it is
// delivered (or owes nothing to anyone): false when it could only be queued in memory, or was dropped. A
// caller that records on its rows that a notice went out records it only when it is kept.
func (n *Notifications) PublishKept(nt Notification) (string, bool) {
	if nt.ID == "" {
		nt.ID = uuid.NewString()
	}
	now := n.opts.Now()
	if nt.Time.IsZero() {
		nt.Time = now
	}
	var state deliveryState
	if n.opts.InApp != nil {
		if len(n.opts.InApp.Recipients) == 0 {
			// Nothing to deliver to is a configuration choice, not a failure.
			if n.noRecipientsLogged.CompareAndSwap(false, true) {
				n.log.Info("in-app notifications have no recipients; they are not sent", "error", ErrNoRecipients)
			}
		} else {
			state.InApp = slices.Clone(n.opts.InApp.Recipients)
		}
	}
	state.Topic = n.opts.Topic != nil
	if n.opts.Webhooks != nil {
		state.Webhooks = newWebhookProgress()
	}

	n.mu.Lock()
	full := len(n.pending) >= n.opts.QueueSize
	if full {
		dropped := n.opts.Outbox == nil
		if dropped {
			n.stats.Dropped++
		} else {
			n.stats.Published++
		}
		warn := n.lastWarn.IsZero() || now.Sub(n.lastWarn) >= time.Minute
		if warn {
			n.lastWarn = now
		}
		total := n.stats.Dropped
		n.mu.Unlock()
		if !dropped {
			kept := true
			if !state.finished() {
				// Due at once and held by nobody: the next poll of any replica takes it.
				kept = n.writeOutbox(&pendingNotification{nt: nt, state: state, row: outboxRowID(nt.ID)}, now)
			}
			if warn {
				n.log.Warn("notification queue is full: new notifications wait in Dataverse for the next poll", "notification", nt.ID,
					"type", nt.Type, "queue_size", n.opts.QueueSize)
			}
			return nt.ID, kept
		}
		if warn {
			n.log.Warn("notification queue is full: dropping new notifications until deliveries catch up",
				"notification", nt.ID, "type", nt.Type, "queue_size", n.opts.QueueSize, "dropped_total", total)
		}
		return nt.ID, false
	}
	n.stats.Published++
	n.mu.Unlock()
	if state.finished() {
		return nt.ID, true
	}
	p := &pendingNotification{nt: nt, state: state, done: make(chan struct{})}
	kept := false
	if n.opts.Outbox != nil {
		// Held by this replica for a lease: the others leave it alone while it is delivered here.
		p.row = outboxRowID(nt.ID)
		if kept = n.writeOutbox(p, now.Add(n.opts.Lease)); !kept {
			p.row = uuid.Nil
		}
	}
	n.mu.Lock()
	n.pending[nt.ID] = p
	n.ready = append(n.ready, p)
	n.mu.Unlock()
	n.signal()
	return nt.ID, kept
}

// outboxRowID is the outbox row of the notification with id: the id itself when it is a UUID.
func outboxRowID(id string) dataverse.GUID {
	if u, err := uuid.Parse(id); err == nil {
		return u
	}
	return uuid.NewSHA1(notificationNamespace, []byte(id))
}

// writeOutbox creates p's outbox row, due at next, and reports whether it is there. A notification whose
// row could not be written is delivered from memory only.
//
// API: POST /csp_notifications
func (n *Notifications) writeOutbox(p *pendingNotification, next time.Time) bool {
	payload, err := json.Marshal(p.nt)
	if err == nil && len(payload) > schema.MaxLength(schema.TableNotification, "csp_payload") {
		err = errors.New("the notification is too large for the outbox")
	}
	var state []byte
	if err == nil {
		state, err = json.Marshal(p.state)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), outboxWriteTimeout)
		_, err = n.opts.Outbox.Create(ctx, schema.SetNotifications, dataverse.Row{
			schema.PrimaryKey(schema.TableNotification): p.row.String(),
			"csp_name":          schema.Fit(schema.TableNotification, "csp_name", cmp.Or(p.nt.Title, string(p.nt.Type))),
			"csp_eventid":       schema.Fit(schema.TableNotification, "csp_eventid", p.nt.ID),
			"csp_type":          schema.Fit(schema.TableNotification, "csp_type", string(p.nt.Type)),
			"csp_payload":       string(payload),
			"csp_deliverystate": string(state),
			"csp_attempts":      0,
			"csp_nextattempton": next.UTC(),
			"csp_claimedby":     schema.Fit(schema.TableNotification, "csp_claimedby", n.opts.Instance),
		})
		cancel()
	}
	if err != nil && !dataverse.IsDuplicate(err) { // a duplicate: published again with the same ID, already there
		n.log.Warn("could not write the notification to the outbox; it is delivered from memory and lost if this replica stops first",
			"notification", p.nt.ID, "type", p.nt.Type, "error", err)
		return false
	}
	return true
}

func (n *Notifications) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, with a few workers, and with an outbox polls it for notifications due that
// no replica holds; a delivery cut short by ctx is not an attempt and stays queued for the next Run. Only
// one Run may be active at a time.
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
				case p := <-n.work:
					n.attempt(ctx, p)
				}
			}
		})
	}
	if n.opts.Outbox != nil {
		workers.Go(func() {
			tick := time.NewTicker(n.opts.PollEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if _, err := n.poll(ctx); err != nil && ctx.Err() == nil {
					n.log.Warn("could not read the notification outbox; trying again at the next poll", "error", err)
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
		if n.opts.Outbox != nil {
			n.log.Info("notifications stopped with deliveries pending; another replica delivers them when this one's claim expires", "pending", left)
		} else {
			n.log.Warn("notifications stopped with deliveries pending; they are lost if the process exits", "pending", left)
		}
	}
}

// outboxPollSize is how many due outbox rows one poll reads.
const outboxPollSize = 50

// poll claims the outbox rows that are due (their last attempt's wait is over, or the replica that held
// them stopped before its lease ran out) and queues them, and returns how many it took. A row another
// replica claims first is left to it.
//
// API: GET /csp_notifications?$filter=csp_nextattempton le {now}, then PATCH each with If-Match
func (n *Notifications) poll(ctx context.Context) (int, error) {
	now := n.opts.Now()
	q := &dataverse.Query{Filter: dataverse.Le("csp_nextattempton", now.UTC()), OrderBy: []string{"csp_nextattempton"}, Top: outboxPollSize}
	taken := 0
	for row, err := range n.opts.Outbox.List(ctx, schema.SetNotifications, q) {
		if err != nil {
			return taken, fmt.Errorf("notifications: read the outbox: %w", err)
		}
		var r schema.Notification
		if err := dataverse.Unmarshal(row, &r); err != nil {
			return taken, fmt.Errorf("notifications: read the outbox: %w", err)
		}
		n.mu.Lock()
		_, held := n.pending[r.EventID]
		room := len(n.pending) < n.opts.QueueSize
		n.mu.Unlock()
		if !room {
			break
		}
		if held {
			continue
		}
		p := &pendingNotification{row: r.ID, etag: r.ETag, attempts: r.Attempts, done: make(chan struct{})}
		if err := json.Unmarshal([]byte(r.Payload), &p.nt); err != nil {
			n.log.Error("an outbox notification cannot be read; deleting it", "notification", r.EventID, "row", r.ID, "error", err)
			n.deleteRow(ctx, p)
			continue
		}
		if err := json.Unmarshal([]byte(r.DeliveryState), &p.state); err != nil {
			n.log.Error("an outbox notification's delivery state cannot be read; deleting it", "notification", r.EventID, "row", r.ID, "error", err)
			n.deleteRow(ctx, p)
			continue
		}
		if !n.claim(ctx, p) {
			continue
		}
		n.log.Info("delivering a notification from the outbox", "notification", p.nt.ID, "type", p.nt.Type, "attempts", p.attempts, "held_by", r.ClaimedBy)
		n.mu.Lock()
		if _, held := n.pending[p.nt.ID]; held {
			n.mu.Unlock()
			continue
		}
		n.pending[p.nt.ID] = p
		n.ready = append(n.ready, p)
		n.mu.Unlock()
		n.signal()
		taken++
	}
	return taken, nil
}

// claim takes p's outbox row for this replica for a lease, and reports whether it did: false when the
// row changed since this replica last wrote or read it (another replica claimed it) or is gone
// (delivered). A claim Dataverse could not answer counts as taken: delivering twice is safe, never is not.
//
// API: PATCH /csp_notifications({id}) with If-Match
func (n *Notifications) claim(ctx context.Context, p *pendingNotification) bool {
	row, err := n.opts.Outbox.Update(ctx, schema.SetNotifications, p.row, dataverse.Row{
		"csp_nextattempton": n.opts.Now().Add(n.opts.Lease).UTC(),
		"csp_claimedby":     schema.Fit(schema.TableNotification, "csp_claimedby", n.opts.Instance),
	}, &dataverse.UpdateOptions{IfMatch: p.etag, Select: []string{"csp_notificationid"}})
	switch {
	case err == nil:
		p.etag = row.ETag()
		p.reclaim = false
		return true
	case dataverse.IsConflict(err) || dataverse.IsNotFound(err):
		return false
	}
	n.log.Warn("could not claim an outbox notification; delivering it anyway", "notification", p.nt.ID, "error", err)
	p.reclaim = false
	return true
}

// dispatch hands ready notifications to workers and moves retries whose time has come to the ready list.
func (n *Notifications) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		n.mu.Lock()
		now := time.Now()
		for len(n.retries) > 0 && !n.retries[0].due.After(now) {
			n.ready = append(n.ready, heap.Pop(&n.retries).(*pendingNotification))
		}
		var out chan<- *pendingNotification
		var head *pendingNotification
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

// attempt delivers one notification once to every channel, recipient and subscription that has not got
// it, and decides what comes next: done, retried later (recorded in the outbox first), or handed over.
func (n *Notifications) attempt(ctx context.Context, p *pendingNotification) {
	if p.reclaim && p.row != uuid.Nil && !n.claim(ctx, p) {
		if ctx.Err() != nil {
			n.requeue(p)
			return
		}
		n.log.Debug("another replica took over the notification", "notification", p.nt.ID)
		n.release(p)
		return
	}
	final := p.attempts+1 >= n.opts.Attempts
	var problems []string
	if len(p.state.InApp) > 0 {
		if err := n.deliverInApp(ctx, p, final); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if p.state.Topic {
		if err := n.deliverTopic(ctx, p, final); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if p.state.Webhooks != nil {
		if err := n.deliverWebhooks(ctx, p, final); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if ctx.Err() != nil && !p.state.finished() {
		n.requeue(p) // shutting down: the attempt did not really happen
		return
	}
	p.attempts++
	if p.state.finished() {
		n.deleteRow(ctx, p)
		n.release(p)
		return
	}
	wait := n.opts.Backoff(p.attempts)
	n.log.Debug("notification delivery failed; retrying", "notification", p.nt.ID, "type", p.nt.Type, "attempt", p.attempts,
		"error", strings.Join(problems, "; "), "retry_in", wait)
	if p.row != uuid.Nil && !n.record(ctx, p, n.opts.Now().Add(wait), strings.Join(problems, "\n")) {
		n.release(p)
		return
	}
	n.mu.Lock()
	p.due = time.Now().Add(wait)
	heap.Push(&n.retries, p)
	n.mu.Unlock()
	n.signal()
}

// deliverInApp notifies the recipients still waiting; each created or found already there is done.
func (n *Notifications) deliverInApp(ctx context.Context, p *pendingNotification, final bool) error {
	inApp := n.opts.InApp
	if inApp == nil {
		inApp = &InAppNotifier{DV: n.opts.Outbox}
	}
	log := n.log.With("notification", p.nt.ID, "type", p.nt.Type, "channel", channelInApp.String(), "attempt", p.attempts+1)
	left, refused, err := inApp.deliver(ctx, p.nt.ID, p.nt.Notice, p.state.InApp, log)
	p.state.InApp = left
	p.state.InAppFailed = p.state.InAppFailed || refused
	if err != nil && ctx.Err() == nil && final {
		log.Warn("notification delivery failed; giving up", "error", err, "recipients_missed", len(left))
		p.state.InApp, p.state.InAppFailed = nil, true
	}
	if len(p.state.InApp) == 0 {
		n.count(channelInApp, !p.state.InAppFailed)
	}
	return err
}

func (n *Notifications) deliverTopic(ctx context.Context, p *pendingNotification, final bool) error {
	if n.opts.Topic == nil {
		return n.giveUpIfFinal(p, channelTopic, errors.New("notifications topic: not configured on this replica"), final)
	}
	err := n.opts.Topic.Publish(ctx, p.nt)
	switch {
	case err == nil:
		p.state.Topic = false
		n.count(channelTopic, true)
		return nil
	case ctx.Err() != nil:
		return err
	}
	var permanent *permanentError
	return n.giveUpIfFinal(p, channelTopic, err, final || errors.As(err, &permanent))
}

func (n *Notifications) deliverWebhooks(ctx context.Context, p *pendingNotification, final bool) error {
	if n.opts.Webhooks == nil {
		return n.giveUpIfFinal(p, channelWebhooks, errors.New("webhooks: not configured on this replica"), final)
	}
	err := n.opts.Webhooks.deliver(ctx, p.nt, p.state.Webhooks, final)
	switch {
	case err == nil:
		p.state.Webhooks = nil
		n.count(channelWebhooks, true)
		return nil
	case ctx.Err() != nil:
		return err
	}
	var permanent *permanentError
	return n.giveUpIfFinal(p, channelWebhooks, err, final || errors.As(err, &permanent))
}

// giveUpIfFinal ends a channel that failed when no attempt follows, and returns err.
func (n *Notifications) giveUpIfFinal(p *pendingNotification, c deliveryChannel, err error, giveUp bool) error {
	if !giveUp {
		return err
	}
	n.log.Warn("notification delivery failed; giving up", "notification", p.nt.ID, "type", p.nt.Type, "channel", c.String(),
		"attempt", p.attempts+1, "error", err)
	switch c {
	case channelTopic:
		p.state.Topic = false
	case channelWebhooks:
		p.state.Webhooks = nil
	}
	n.count(c, false)
	return err
}

func (n *Notifications) count(c deliveryChannel, delivered bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if delivered {
		n.stats.Delivered.add(c, 1)
	} else {
		n.stats.Failed.add(c, 1)
	}
}

// record writes what is left to deliver and when to try again, releasing the claim until then, and
// reports whether this replica still holds the notification: false when another replica took it over
// meanwhile (its lease ran out) or it is gone.
//
// API: PATCH /csp_notifications({id}) with If-Match
func (n *Notifications) record(ctx context.Context, p *pendingNotification, next time.Time, problem string) bool {
	state, err := json.Marshal(p.state)
	if err != nil {
		n.log.Error("could not record a notification's delivery state", "notification", p.nt.ID, "error", err)
		return true
	}
	row, err := n.opts.Outbox.Update(ctx, schema.SetNotifications, p.row, dataverse.Row{
		"csp_deliverystate": string(state), "csp_attempts": p.attempts, "csp_nextattempton": next.UTC(),
		"csp_systemmessage": schema.Fit(schema.TableNotification, "csp_systemmessage", problem),
	}, &dataverse.UpdateOptions{IfMatch: p.etag, Select: []string{"csp_notificationid"}})
	switch {
	case err == nil:
		p.etag, p.reclaim = row.ETag(), true
		return true
	case dataverse.IsConflict(err) || dataverse.IsNotFound(err):
		n.log.Info("another replica took over the notification", "notification", p.nt.ID)
		return false
	}
	// The retry here goes ahead; the row keeps the older state, so a replica that takes it over after the
	// lease may deliver again what was delivered (the channels de-duplicate on the ID).
	n.log.Warn("could not record a notification's delivery state", "notification", p.nt.ID, "error", err)
	return true
}

// deleteRow removes a delivered notification from the outbox.
//
// API: DELETE /csp_notifications({id})
func (n *Notifications) deleteRow(ctx context.Context, p *pendingNotification) {
	if p.row == uuid.Nil {
		return
	}
	err := n.opts.Outbox.Delete(context.WithoutCancel(ctx), schema.SetNotifications, p.row, &dataverse.DeleteOptions{IfMatch: p.etag})
	if err != nil && !dataverse.IsNotFound(err) && !dataverse.IsConflict(err) {
		n.log.Warn("could not remove a delivered notification from the outbox; it may be delivered again (with the same ID)",
			"notification", p.nt.ID, "error", err)
	}
}

func (n *Notifications) requeue(p *pendingNotification) {
	n.mu.Lock()
	n.ready = append(n.ready, p)
	n.mu.Unlock()
	n.signal()
}

// release ends this replica's hold of p: delivered, given up on, or taken over.
func (n *Notifications) release(p *pendingNotification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pending[p.nt.ID] == p {
		delete(n.pending, p.nt.ID)
	}
	close(p.done)
}

// Flush waits until every notification this replica holds (published here or taken from the outbox) is
// delivered, given up on or taken over by another replica, or ctx ends (then it returns ctx.Err()). It
// is for CLI commands and tests; it needs Run to be running.
func (n *Notifications) Flush(ctx context.Context) error {
	n.mu.Lock()
	waits := make([]chan struct{}, 0, len(n.pending))
	for _, p := range n.pending {
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
func (n *Notifications) Stats() Stats {
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
type retryHeap []*pendingNotification

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(*pendingNotification)) }
func (h *retryHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}
