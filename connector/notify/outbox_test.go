package notify

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
)

// countingTransport counts the requests sent through it.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// outboxRig is one simulated Dataverse that several replicas' Notifications share, as replicas share one
// environment.
type outboxRig struct {
	srv      *dataversetest.Server
	dv       *dataverse.Client
	requests *countingTransport
	clk      *testrig.Clock
	me       dataverse.GUID
	hooks    *hooks
}

func newOutboxRig(t *testing.T) *outboxRig {
	t.Helper()
	srv, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	base := srv.Client()
	counter := &countingTransport{next: base.Transport}
	hc := *base
	hc.Transport = counter
	dv, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: &hc, MaxRetries: 1,
		MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond})
	require.NoError(t, err)
	me, err := dv.WhoAmI(t.Context())
	require.NoError(t, err)
	return &outboxRig{srv: srv, dv: dv, requests: counter, clk: testrig.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)), me: me.UserID, hooks: newHooks(t)}
}

// user adds a systemuser and returns its id.
func (r *outboxRig) user(t *testing.T, name string) dataverse.GUID {
	t.Helper()
	id, err := r.srv.Insert(schema.TableSystemUser, map[string]any{"fullname": name})
	require.NoError(t, err)
	return uuid.MustParse(id)
}

// replica returns one replica's Notifications on the rig, delivering in-app to recipients and to the
// webhook subscriptions. Its retries wait an hour of real time, so a retry in these tests is always made
// by the replica that takes the notification over.
func (r *outboxRig) replica(name string, recipients ...dataverse.GUID) Options {
	return Options{
		InApp:    &InAppNotifier{DV: r.dv, Recipients: recipients},
		Webhooks: &WebhookDeliverer{DV: r.dv, Callbacks: CallbackPolicy{AllowLoopback: true}},
		Outbox:   r.dv, Instance: name, Now: r.clk.Now,
		Backoff: func(int) time.Duration { return time.Hour },
	}
}

// startReplica runs n until the returned stop is called (or the test ends).
func startReplica(t *testing.T, n *Notifications) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func outboxRows(t *testing.T, dv *dataverse.Client) []schema.Notification {
	t.Helper()
	var rows []schema.Notification
	for row, err := range dv.List(t.Context(), schema.SetNotifications, nil) {
		require.NoError(t, err)
		var r schema.Notification
		require.NoError(t, dataverse.Unmarshal(row, &r))
		rows = append(rows, r)
	}
	return rows
}

// inAppByRecipient counts the in-app notifications each user got.
func inAppByRecipient(t *testing.T, dv *dataverse.Client) map[dataverse.GUID]int {
	t.Helper()
	got := map[dataverse.GUID]int{}
	for _, row := range appNotifications(t, dv) {
		owner, ok := row.Lookup("ownerid")
		require.True(t, ok)
		got[owner.ID]++
	}
	return got
}

// takeOver lets the lease of replica that stopped run out and has n poll the outbox, as its next poll
// would, then waits for the deliveries.
func (r *outboxRig) takeOver(t *testing.T, n *Notifications, after time.Duration) int {
	t.Helper()
	r.clk.Advance(after)
	taken, err := n.poll(t.Context())
	require.NoError(t, err)
	flush(t, n)
	return taken
}

// TestNotificationsOutboxAReplicaThatStopsBeforeDeliveringIsTakenOver: the status was written and the
// notification published, then the replica stopped before delivering it. Another replica delivers it
// once its lease is over, not before, and the outbox is empty after.
func TestNotificationsOutboxAReplicaThatStopsBeforeDeliveringIsTakenOver(t *testing.T) {
	t.Parallel()
	r := newOutboxRig(t)
	subscribe(t, r.dv, r.hooks.URL("/flow"), 0)

	dead := New(r.replica("replica-a", r.me)) // never runs: it stopped right after Publish
	id := dead.Publish(mappingNotice(uuid.New()))
	rows := outboxRows(t, r.dv)
	require.Len(t, rows, 1, "Publish writes the notification to the outbox before any delivery")
	assert.Equal(t, id, rows[0].EventID)
	assert.Equal(t, "replica-a", rows[0].ClaimedBy)

	other := New(r.replica("replica-b", r.me))
	startReplica(t, other)
	assert.Zero(t, r.takeOver(t, other, time.Minute), "the first replica's lease still holds it")
	assert.Empty(t, r.hooks.Requests(""))

	assert.Equal(t, 1, r.takeOver(t, other, 5*time.Minute))
	reqs := r.hooks.Requests("/flow")
	require.Len(t, reqs, 1)
	assert.Equal(t, id, reqs[0].Header.Get("X-Connector-Event-Id"))
	assert.Equal(t, map[dataverse.GUID]int{r.me: 1}, inAppByRecipient(t, r.dv))
	assert.Empty(t, outboxRows(t, r.dv), "delivered: the outbox row is removed")
	assert.Equal(t, Stats{Delivered: ChannelCounts{InApp: 1, Webhooks: 1}}, other.Stats())
}

// TestNotificationsOutboxRetryAfterAStopGoesOnlyWhereItFailed: the first attempt reached one flow and not
// the other and was recorded; the replica stopped before its retry. The replica that takes over posts only
// to the flow that has not got it, and notifies no one in-app a second time.
func TestNotificationsOutboxRetryAfterAStopGoesOnlyWhereItFailed(t *testing.T) {
	t.Parallel()
	r := newOutboxRig(t)
	steady := subscribe(t, r.dv, r.hooks.URL("/steady"), 0)
	subscribe(t, r.dv, r.hooks.URL("/flaky", 500, 202), 0)

	first := New(r.replica("replica-a", r.me))
	stop := startReplica(t, first)
	id := first.Publish(mappingNotice(uuid.New()))
	require.Eventually(t, func() bool {
		rows := outboxRows(t, r.dv)
		return len(rows) == 1 && rows[0].Attempts == 1
	}, flushTimeout, time.Millisecond, "the failed attempt is recorded")
	stop()
	row := outboxRows(t, r.dv)[0]
	assert.Contains(t, row.SystemMessage, "HTTP 500")
	assert.Contains(t, row.DeliveryState, steady.String(), "the flow that got it is recorded as done")

	second := New(r.replica("replica-b", r.me))
	startReplica(t, second)
	assert.Equal(t, 1, r.takeOver(t, second, 2*time.Hour))
	assert.Len(t, r.hooks.Requests("/steady"), 1, "not posted again")
	flaky := r.hooks.Requests("/flaky")
	require.Len(t, flaky, 2, "the failure, then the delivery by the second replica")
	for _, req := range append(flaky, r.hooks.Requests("/steady")...) {
		assert.Equal(t, id, req.Header.Get("X-Connector-Event-Id"))
	}
	assert.Equal(t, map[dataverse.GUID]int{r.me: 1}, inAppByRecipient(t, r.dv))
	assert.Empty(t, outboxRows(t, r.dv))
}

// TestNotificationsOutboxCrashMidDeliverySendsAtMostOnceMore: the replica stopped in the middle of its
// attempt, after the in-app notifications and one flow's post, before it could record any of it. The
// replica that takes over sends each subscription at most once more, with the same event id, and the
// in-app notifications it creates again are refused as duplicates: each user has one.
func TestNotificationsOutboxCrashMidDeliverySendsAtMostOnceMore(t *testing.T) {
	t.Parallel()
	r := newOutboxRig(t)
	ada := r.user(t, "Ada Lovelace")
	subscribe(t, r.dv, r.hooks.URL("/steady"), 0)
	subscribe(t, r.dv, r.hooks.URL("/hanging", 0), 0)

	first := New(r.replica("replica-a", r.me, ada))
	stop := startReplica(t, first)
	id := first.Publish(mappingNotice(uuid.New()))
	require.Eventually(t, func() bool { return len(r.hooks.Requests("/hanging")) == 1 }, flushTimeout, time.Millisecond)
	stop() // the replica dies while a flow holds its post
	require.Len(t, outboxRows(t, r.dv), 1, "nothing recorded: the row waits for the lease to run out")
	assert.Equal(t, map[dataverse.GUID]int{r.me: 1, ada: 1}, inAppByRecipient(t, r.dv))

	r.hooks.Release()
	second := New(r.replica("replica-b", r.me, ada))
	startReplica(t, second)
	assert.Equal(t, 1, r.takeOver(t, second, 6*time.Minute))

	assert.Equal(t, map[dataverse.GUID]int{r.me: 1, ada: 1}, inAppByRecipient(t, r.dv), "the second creates are duplicates, not new notices")
	for _, path := range []string{"/steady", "/hanging"} {
		reqs := r.hooks.Requests(path)
		assert.Len(t, reqs, 2, "%s: at most once more", path)
		for _, req := range reqs {
			assert.Equal(t, id, req.Header.Get("X-Connector-Event-Id"), "%s: flows de-duplicate on the id", path)
		}
	}
	assert.Empty(t, outboxRows(t, r.dv))
	assert.Equal(t, Stats{Delivered: ChannelCounts{InApp: 1, Webhooks: 1}}, second.Stats())
}

// TestNotificationsInAppARecipientGoneDoesNotDuplicateTheOthers: one configured user no longer exists, so
// Dataverse refuses that user's notification; the others get theirs once, not once per retry.
func TestNotificationsInAppARecipientGoneDoesNotDuplicateTheOthers(t *testing.T) {
	t.Parallel()
	r := newOutboxRig(t)
	ada := r.user(t, "Ada Lovelace")
	gone := uuid.New()
	var logs logCapture
	n := runNotifications(t, Options{InApp: &InAppNotifier{DV: r.dv, Recipients: []dataverse.GUID{r.me, gone, ada}}, Attempts: 3,
		Logger: logs.Logger()})
	n.Publish(mappingNotice(uuid.New()))
	flush(t, n)

	assert.Equal(t, map[dataverse.GUID]int{r.me: 1, ada: 1}, inAppByRecipient(t, r.dv))
	assert.Equal(t, Stats{Published: 1, Delivered: ChannelCounts{InApp: 1}}, n.Stats(), "a user found gone counts as done, as a deleted flow does")
	assert.Contains(t, logs.String(), "recipient="+gone.String())
	assert.Contains(t, logs.String(), "CONNECTOR_NOTIFY_USERS")
}

// TestNotificationsOutboxRequestsPerNotification pins what one notification costs in Dataverse requests:
// the outbox row's create and delete, the in-app $batch (one for all recipients) and the webhook
// subscriptions' query.
func TestNotificationsOutboxRequestsPerNotification(t *testing.T) {
	t.Parallel()
	r := newOutboxRig(t)
	ada := r.user(t, "Ada Lovelace")
	subscribe(t, r.dv, r.hooks.URL("/flow-a"), 0)
	subscribe(t, r.dv, r.hooks.URL("/flow-b"), 0)
	n := New(r.replica("replica-a", r.me, ada))
	startReplica(t, n)
	before := r.requests.n.Load()
	for range 10 {
		n.Publish(mappingNotice(uuid.New()))
	}
	flush(t, n)
	assert.Equal(t, int64(10*4), r.requests.n.Load()-before, "create, $batch of in-app notices, subscriptions query, delete")
	assert.Len(t, r.hooks.Requests(""), 20)
	assert.Empty(t, outboxRows(t, r.dv))
}
