package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/fakesb"
	"github.com/cspconnector/csp-connector/internal/testrig"
)

// notifyTopic is the topic the tests publish to: the fake broker models queues only, and a topic's sender
// uses the same link as a queue's, so it is a queue of that name.
const notifyTopic = "connector-notifications"

// flushTimeout bounds a Flush that is expected to succeed; deliveries in these tests take milliseconds.
const flushTimeout = 15 * time.Second

// notifyDV is a Dataverse client on a fresh simulator with the schema, retrying quickly.
func notifyDV(t *testing.T) *dataverse.Client {
	_, dv := notifySimulator(t)
	return dv
}

// notifySimulator is the Dataverse simulator with the connector's schema and a client on it.
func notifySimulator(t *testing.T) (*dataversetest.Server, *dataverse.Client) {
	t.Helper()
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	t.Cleanup(dvs.Close)
	dv, err := dataverse.NewClient(dvs.URL, nil, &dataverse.ClientOptions{HTTPClient: dvs.Client(), MaxRetries: 1,
		MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond})
	require.NoError(t, err)
	return dvs, dv
}

// logCapture collects every record (Debug and up) as text, safely across goroutines.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logCapture) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// hookRequest is one POST a callback received.
type hookRequest struct {
	Path    string
	Header  http.Header
	Payload map[string]any
}

// hooks is a loopback server standing in for flows' callbacks. Each path answers with its scripted
// statuses in turn (the last one repeats; 202 when none); a status of 0 hangs until release or the
// client gives up; -1 drops the connection.
type hooks struct {
	srv     *httptest.Server
	release chan struct{}

	mu       sync.Mutex
	script   map[string][]int
	requests []hookRequest
}

func newHooks(t *testing.T) *hooks {
	t.Helper()
	h := &hooks{release: make(chan struct{}), script: map[string][]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		h.Release()
		h.srv.Close()
	})
	return h
}

func (h *hooks) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var payload map[string]any
	_ = json.Unmarshal(body, &payload)
	h.mu.Lock()
	h.requests = append(h.requests, hookRequest{Path: r.URL.Path, Header: r.Header.Clone(), Payload: payload})
	status := http.StatusAccepted
	if s := h.script[r.URL.Path]; len(s) > 0 {
		status = s[0]
		if len(s) > 1 {
			h.script[r.URL.Path] = s[1:]
		}
	}
	h.mu.Unlock()
	switch status {
	case 0:
		select {
		case <-h.release:
			w.WriteHeader(http.StatusAccepted)
		case <-r.Context().Done():
		}
	case -1:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	default:
		if status/100 == 3 {
			w.Header().Set("Location", h.srv.URL+r.URL.Path+"/moved?"+r.URL.RawQuery)
		}
		w.WriteHeader(status)
	}
}

// URL is the callback URL of path, with a signature in the query as Logic Apps callbacks have.
func (h *hooks) URL(path string, statuses ...int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.script[path] = statuses
	return h.srv.URL + path + "?api-version=2016-06-01&sig=" + strings.Trim(path, "/")
}

// Release lets hanging callbacks answer 202.
func (h *hooks) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

// Requests returns the requests to path ("" for all).
func (h *hooks) Requests(path string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.requests {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// subscribe registers a webhook subscription for the mapping event, as the subscribe API will.
func subscribe(t *testing.T, dv *dataverse.Client, callback string, failures int) dataverse.GUID {
	t.Helper()
	id, err := dv.Create(t.Context(), schema.SetWebhookSubscriptions, dataverse.Row{"csp_name": "Flow", "csp_owner": "ada@contoso.example",
		"csp_eventtype": int(schema.EventProviderAccountNeedsMapping), "csp_callbackurl": callback, "csp_consecutivefailures": failures})
	require.NoError(t, err)
	return id
}

func readWebhookSubscription(t *testing.T, dv *dataverse.Client, id dataverse.GUID) (schema.WebhookSubscription, error) {
	t.Helper()
	row, err := dv.Get(t.Context(), schema.SetWebhookSubscriptions, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.WebhookSubscription]()})
	if err != nil {
		return schema.WebhookSubscription{}, err
	}
	var s schema.WebhookSubscription
	require.NoError(t, dataverse.Unmarshal(row, &s))
	return s, nil
}

func consecutiveFailures(t *testing.T, dv *dataverse.Client, id dataverse.GUID) int {
	t.Helper()
	s, err := readWebhookSubscription(t, dv, id)
	require.NoError(t, err)
	return s.ConsecutiveFailures
}

// runNotifications starts Run until the test ends, with a tiny backoff unless o sets one.
func runNotifications(t *testing.T, o Options) *Notifications {
	t.Helper()
	if o.Backoff == nil {
		o.Backoff = func(int) time.Duration { return time.Millisecond }
	}
	n := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return n
}

func flush(t *testing.T, n *Notifications) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), flushTimeout)
	defer cancel()
	require.NoError(t, n.Flush(ctx))
}

// mappingNotice is a notification as the provider account sync will publish it.
func mappingNotice(providerAccount dataverse.GUID) Notification {
	return Notification{
		Type: ProviderAccountNeedsMapping,
		Notice: Notice{Title: "Contoso Ltd needs an account", Body: "No account matches the provider account Contoso Ltd. Pick one or create it.",
			Icon: NoticeWarning, Table: schema.TableProviderAccount, RowID: providerAccount},
		Data: map[string]any{"providerAccountId": providerAccount.String(), "tenantId": "6b1a2c3d-0000-4000-8000-000000000001",
			"companyName": "Contoso Ltd", "mappingStatus": "NeedsMapping", "candidates": []any{"Contoso", "Contoso Group"}},
	}
}

func receiveOne(t *testing.T, c *azservicebus.Client, queue string) *azservicebus.ReceivedMessage {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), flushTimeout)
	defer cancel()
	defer func() { _ = r.Close(context.WithoutCancel(ctx)) }()
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.NoError(t, r.CompleteMessage(ctx, msgs[0], nil))
	return msgs[0]
}

func appNotifications(t *testing.T, dv *dataverse.Client) []dataverse.Row {
	t.Helper()
	var rows []dataverse.Row
	for r, err := range dv.List(t.Context(), schema.SetAppNotifications, &dataverse.Query{Select: []string{"title", "body", "icontype", "data", "_ownerid_value"}}) {
		require.NoError(t, err)
		rows = append(rows, r)
	}
	return rows
}

func TestNotificationTypesMapToEventTypes(t *testing.T) {
	t.Parallel()
	want := map[Type]schema.EventType{
		ProviderAccountNeedsMapping: schema.EventProviderAccountNeedsMapping,
		LicenseChangeFailed:         schema.EventLCLFailed,
		AgreementAccepted:           schema.EventAgreementAccepted,
		JobFailed:                   schema.EventJobFailed,
		SubscriptionDrift:           schema.EventSubscriptionDrift,
	}
	assert.Len(t, Types(), len(want))
	for _, typ := range Types() {
		assert.Equal(t, want[typ], typ.EventType(), "%s", typ)
	}
	assert.Zero(t, Type("Unknown").EventType())
}

func TestNotificationDefaultBackoffIsTheScheduleWithJitter(t *testing.T) {
	t.Parallel()
	for attempt, base := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 5 * time.Second, 3: 30 * time.Second,
		4: 2 * time.Minute, 5: 10 * time.Minute, 9: 10 * time.Minute} {
		for range 50 {
			d := defaultNotificationBackoff(attempt)
			assert.GreaterOrEqual(t, d, base*8/10, "attempt %d", attempt)
			assert.LessOrEqual(t, d, base*12/10, "attempt %d", attempt)
		}
	}
}

func TestNotificationPayloadIsRFC3339UTCWithEmptyFieldsPresent(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	p := Notification{ID: "n1", Type: JobFailed, Time: time.Date(2026, 11, 21, 11, 0, 0, 0, paris), Notice: Notice{Title: "Sync failed", Body: "Partner Center refused."}}.Payload()
	body, err := json.Marshal(p)
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":"n1","type":"JobFailed","time":"2026-11-21T10:00:00Z","title":"Sync failed","message":"Partner Center refused.",
		"table":"","rowId":"","data":{}}`, string(body))
}

func TestNotificationsFanOutToEveryChannel(t *testing.T) {
	t.Parallel()
	dv := notifyDV(t)
	me, err := dv.WhoAmI(t.Context())
	require.NoError(t, err)
	broker := fakesb.Start(t, fakesb.Options{Queues: []string{notifyTopic}})
	sb := broker.Client(t)
	topic, err := NewTopicPublisher(sb, notifyTopic)
	require.NoError(t, err)
	t.Cleanup(func() { _ = topic.Close(context.Background()) })
	h := newHooks(t)
	sub := subscribe(t, dv, h.URL("/flow-a"), 0)

	clk := testrig.NewClock(time.Date(2026, 11, 21, 11, 0, 0, 0, time.FixedZone("CET", 3600)))
	n := runNotifications(t, Options{
		InApp:    &InAppNotifier{DV: dv, Recipients: []dataverse.GUID{me.UserID}},
		Topic:    topic,
		Webhooks: &WebhookDeliverer{DV: dv, Callbacks: CallbackPolicy{AllowLoopback: true}},
		Now:      clk.Now,
	})
	account := uuid.New()
	id := n.Publish(mappingNotice(account))
	parsed, err := uuid.Parse(id)
	require.NoError(t, err, "Publish gives a notification without an ID a UUID")
	assert.Equal(t, uuid.Version(4), parsed.Version())
	flush(t, n)

	wantPayload := map[string]any{"id": id, "type": "ProviderAccountNeedsMapping", "time": "2026-11-21T10:00:00Z",
		"title": "Contoso Ltd needs an account", "message": "No account matches the provider account Contoso Ltd. Pick one or create it.",
		"table": "csp_provideraccount", "rowId": account.String(),
		"data": map[string]any{"providerAccountId": account.String(), "tenantId": "6b1a2c3d-0000-4000-8000-000000000001",
			"companyName": "Contoso Ltd", "mappingStatus": "NeedsMapping", "candidates": []any{"Contoso", "Contoso Group"}}}

	t.Run("in-app", func(t *testing.T) {
		rows := appNotifications(t, dv)
		require.Len(t, rows, 1)
		assert.Equal(t, "Contoso Ltd needs an account", rows[0].String("title"))
		assert.Equal(t, wantPayload["message"], rows[0].String("body"))
		icon, _ := rows[0].Int("icontype")
		assert.Equal(t, int64(NoticeWarning), icon)
		owner, _ := rows[0].Lookup("ownerid")
		assert.Equal(t, me.UserID, owner.ID)
		var data struct {
			Actions []struct {
				Data struct{ URL string } `json:"data"`
			} `json:"actions"`
		}
		require.NoError(t, json.Unmarshal([]byte(rows[0].String("data")), &data))
		require.Len(t, data.Actions, 1)
		assert.Equal(t, "?appname=csp_CSPConnector&pagetype=entityrecord&etn=csp_provideraccount&id="+account.String(), data.Actions[0].Data.URL, "the action opens the provider account in the connector's app")
	})
	t.Run("topic", func(t *testing.T) {
		m := receiveOne(t, sb, notifyTopic)
		assert.Equal(t, id, m.MessageID)
		assert.Equal(t, "ProviderAccountNeedsMapping", *m.Subject)
		assert.Equal(t, "application/json", *m.ContentType)
		assert.Equal(t, map[string]any{"type": "ProviderAccountNeedsMapping", "table": "csp_provideraccount", "rowId": account.String()}, m.ApplicationProperties)
		var body map[string]any
		require.NoError(t, json.Unmarshal(m.Body, &body))
		assert.Equal(t, wantPayload, body)
	})
	t.Run("webhook", func(t *testing.T) {
		reqs := h.Requests("")
		require.Len(t, reqs, 1)
		assert.Equal(t, "/flow-a", reqs[0].Path)
		assert.Equal(t, "application/json", reqs[0].Header.Get("Content-Type"))
		assert.Equal(t, id, reqs[0].Header.Get("X-Connector-Event-Id"))
		assert.Equal(t, "ProviderAccountNeedsMapping", reqs[0].Header.Get("X-Connector-Event-Type"))
		assert.Equal(t, wantPayload, reqs[0].Payload)
		assert.Zero(t, consecutiveFailures(t, dv, sub))
	})
	assert.Equal(t, Stats{Published: 1, Delivered: ChannelCounts{InApp: 1, Topic: 1, Webhooks: 1}}, n.Stats())
}

func TestNotificationsChannelSwitchedOffIsNotUsed(t *testing.T) {
	t.Parallel()
	queues := map[string]string{"in-app off": "off-inapp", "topic off": "off-topic", "webhooks off": "off-webhooks"}
	broker := fakesb.Start(t, fakesb.Options{Queues: []string{"off-inapp", "off-topic", "off-webhooks"}})
	sb := broker.Client(t)
	for _, tt := range []struct {
		name                   string
		inApp, topic, webhooks bool
	}{
		{name: "in-app off", topic: true, webhooks: true},
		{name: "topic off", inApp: true, webhooks: true},
		{name: "webhooks off", inApp: true, topic: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dv := notifyDV(t)
			me, err := dv.WhoAmI(t.Context())
			require.NoError(t, err)
			h := newHooks(t)
			subscribe(t, dv, h.URL("/flow"), 0)
			queue := queues[tt.name]
			var o Options
			if tt.inApp {
				o.InApp = &InAppNotifier{DV: dv, Recipients: []dataverse.GUID{me.UserID}}
			}
			if tt.topic {
				o.Topic, err = NewTopicPublisher(sb, queue)
				require.NoError(t, err)
				t.Cleanup(func() { _ = o.Topic.Close(context.Background()) })
			}
			if tt.webhooks {
				o.Webhooks = &WebhookDeliverer{DV: dv, Callbacks: CallbackPolicy{AllowLoopback: true}}
			}
			n := runNotifications(t, o)
			id := n.Publish(mappingNotice(uuid.New()))
			flush(t, n)

			one := func(on bool) int {
				if on {
					return 1
				}
				return 0
			}
			assert.Equal(t, Stats{Published: 1, Delivered: ChannelCounts{InApp: one(tt.inApp), Topic: one(tt.topic), Webhooks: one(tt.webhooks)}}, n.Stats())
			assert.Len(t, appNotifications(t, dv), one(tt.inApp))
			assert.Len(t, h.Requests(""), one(tt.webhooks))
			if tt.topic {
				assert.Equal(t, id, receiveOne(t, sb, queue).MessageID)
			} else {
				assert.Zero(t, broker.Stats(t, queue).Active, "nothing was sent to the topic")
			}
		})
	}
}

func TestNotificationsInAppWithoutRecipientsIsNeitherRetriedNorAFailure(t *testing.T) {
	t.Parallel()
	dv := notifyDV(t)
	var logs logCapture
	n := runNotifications(t, Options{InApp: &InAppNotifier{DV: dv}, Logger: logs.Logger()})
	for range 3 {
		n.Publish(mappingNotice(uuid.New()))
	}
	flush(t, n)
	assert.Equal(t, Stats{Published: 3}, n.Stats())
	assert.Equal(t, 1, strings.Count(logs.String(), "have no recipients"), "logged once, at info:\n%s", logs.String())
	assert.Contains(t, logs.String(), "level=INFO")
	assert.NotContains(t, logs.String(), "retrying")
}

func TestWebhookRetriesOnlyTheSubscriptionsThatFailed(t *testing.T) {
	t.Parallel()
	dv := notifyDV(t)
	h := newHooks(t)
	flaky := subscribe(t, dv, h.URL("/flaky", 500, 503, 202), 2)
	steady := subscribe(t, dv, h.URL("/steady"), 0)
	n := runNotifications(t, Options{Webhooks: &WebhookDeliverer{DV: dv, Callbacks: CallbackPolicy{AllowLoopback: true}}})
	id := n.Publish(mappingNotice(uuid.New()))
	flush(t, n)

	flakyReqs, steadyReqs := h.Requests("/flaky"), h.Requests("/steady")
	assert.Len(t, flakyReqs, 3, "two failures, then the one delivery")
	assert.Len(t, steadyReqs, 1, "not posted again when the other subscription is retried")
	for _, r := range append(flakyReqs, steadyReqs...) {
		assert.Equal(t, id, r.Header.Get("X-Connector-Event-Id"), "a retry carries the same id")
	}
	assert.Equal(t, Stats{Published: 1, Delivered: ChannelCounts{Webhooks: 1}}, n.Stats())
	assert.Zero(t, consecutiveFailures(t, dv, flaky), "a delivery resets the count")
	assert.Zero(t, consecutiveFailures(t, dv, steady))
}

// TestWebhookRetryGoesOnlyToTheSubscriptionsOfTheFirstAttempt: a flow that subscribes while a delivery is
// being retried does not get the event that happened before it subscribed.
func TestWebhookRetryGoesOnlyToTheSubscriptionsOfTheFirstAttempt(t *testing.T) {
	t.Parallel()
	dv := notifyDV(t)
	h := newHooks(t)
	subscribe(t, dv, h.URL("/flaky", 500, 202), 0)
	late := false
	n := runNotifications(t, Options{Webhooks: &WebhookDeliverer{DV: dv, Callbacks: CallbackPolicy{AllowLoopback: true}},
		Backoff: func(int) time.Duration {
			if !late { // between the first attempt and the retry
				subscribe(t, dv, h.URL("/late"), 0)
				late = true
			}
			return time.Millisecond
		}})
	n.Publish(mappingNotice(uuid.New()))
	flush(t, n)
	require.True(t, late)
	assert.Len(t, h.Requests("/flaky"), 2)
	assert.Empty(t, h.Requests("/late"), "the late subscription was not there when the event was first delivered")
}

func TestWebhookGivingUpCountsOneMissedNotification(t *testing.T) {
	t.Parallel()
	dv := notifyDV(t)
	h := newHooks(t)
	broken := subscribe(t, dv, h.URL("/broken", 503), 4)
	rejecting := subscribe(t, dv, h.URL("/rejecting", 400), 0)
	n := runNotifications(t, Options{Webhooks: &WebhookDeliverer{DV: dv, Callbacks: CallbackPolicy{AllowLoopback: true}}, Attempts: 3})
	n.Publish(mappingNotice(uuid.New()))
	flush(t, n)

	assert.Len(t, h.Requests("/broken"), 3, "every attempt")
	assert.Len(t, h.Requests("/rejecting"), 1, "a 4xx other than 404/410/408/429 is not retried")
	assert.Equal(t, 5, consecutiveFailures(t, dv, broken), "one more missed notification, not one per attempt")
	assert.Equal(t, 1, consecutiveFailures(t, dv, rejecting))
	assert.Equal(t, Stats{Published: 1, Failed: ChannelCounts{Webhooks: 1}}, n.Stats())
}

func TestWebhookGoneCallbacksDeleteTheSubscription(t *testing.T) {
	t.Parallel()
	dv := notifyDV(t)
	h := newHooks(t)
	notFound := subscribe(t, dv, h.URL("/deleted-flow", 404), 0)
	gone := subscribe(t, dv, h.URL("/gone-flow", 410), 3)
	live := subscribe(t, dv, h.URL("/live-flow"), 0)
	n := runNotifications(t, Options{Webhooks: &WebhookDeliverer{DV: dv, Callbacks: CallbackPolicy{AllowLoopback: true}}})
	n.Publish(mappingNotice(uuid.New()))
	flush(t, n)

	for _, id := range []dataverse.GUID{notFound, gone} {
		_, err := readWebhookSubscription(t, dv, id)
		assert.True(t, dataverse.IsNotFound(err), "subscription %s deleted: %v", id, err)
	}
	_, err := readWebhookSubscription(t, dv, live)
	assert.NoError(t, err)
	assert.Len(t, h.Requests("/deleted-flow"), 1)
	assert.Len(t, h.Requests("/gone-flow"), 1)
	assert.Equal(t, Stats{Published: 1, Delivered: ChannelCounts{Webhooks: 1}}, n.Stats(), "a gone subscription is done")

	n.Publish(mappingNotice(uuid.New()))
	flush(t, n)
	assert.Len(t, h.Requests("/deleted-flow"), 1, "a deleted subscription gets nothing more")
	assert.Len(t, h.Requests("/live-flow"), 2)
}

// requestRecorder is a transport that records every request it is asked to send, wherever it goes.
type requestRecorder struct {
	mu    sync.Mutex
	hosts []string
}

func (r *requestRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *requestRecorder) Hosts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hosts...)
}

func TestWebhookRefusesCallbacksThatAreNotHTTPS(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		callback      func(h *hooks) string
		allowLoopback bool
	}{
		{name: "http to another host", allowLoopback: true, callback: func(*hooks) string { return "http://192.0.2.10/flow?sig=abc" }},
		{name: "http to loopback without AllowHTTPLoopback", callback: func(h *hooks) string { return h.URL("/flow") }},
		{name: "another scheme", allowLoopback: true, callback: func(h *hooks) string { return "ftp" + strings.TrimPrefix(h.URL("/flow"), "http") }},
		{name: "not a URL", allowLoopback: true, callback: func(*hooks) string { return "https://%zz/flow" }},
		{name: "relative", allowLoopback: true, callback: func(*hooks) string { return "/flow?sig=abc" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dv := notifyDV(t)
			h := newHooks(t)
			var logs logCapture
			rec := &requestRecorder{}
			sub := subscribe(t, dv, tt.callback(h), 0)
			n := runNotifications(t, Options{Logger: logs.Logger(), Webhooks: &WebhookDeliverer{DV: dv, Logger: logs.Logger(),
				HTTP: &http.Client{Transport: rec}, Callbacks: CallbackPolicy{AllowLoopback: tt.allowLoopback}}})
			n.Publish(mappingNotice(uuid.New()))
			flush(t, n)

			assert.Empty(t, rec.Hosts(), "never called")
			assert.Empty(t, h.Requests(""))
			assert.Equal(t, Stats{Published: 1, Failed: ChannelCounts{Webhooks: 1}}, n.Stats())
			assert.Equal(t, 1, consecutiveFailures(t, dv, sub))
			assert.Equal(t, 1, strings.Count(logs.String(), "will not call"), "refused once, not retried:\n%s", logs.String())
			assert.Contains(t, logs.String(), "subscription="+sub.String())
		})
	}
}

func TestNotificationsPublishNeverBlocksAndDropsWhenTheQueueIsFull(t *testing.T) {
	t.Parallel()
	dv := notifyDV(t)
	h := newHooks(t)
	subscribe(t, dv, h.URL("/hanging-flow", 0), 0)
	var logs logCapture
	clk := testrig.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	n := runNotifications(t, Options{Webhooks: &WebhookDeliverer{DV: dv, Callbacks: CallbackPolicy{AllowLoopback: true}}, QueueSize: 10,
		Logger: logs.Logger(), Now: clk.Now})

	published := make(chan struct{})
	go func() {
		defer close(published)
		for range 100 {
			n.Publish(mappingNotice(uuid.New()))
		}
	}()
	select {
	case <-published:
	case <-time.After(flushTimeout):
		require.FailNow(t, "Publish blocked behind a callback that hangs")
	}
	assert.Equal(t, Stats{Published: 10, Dropped: 90}, n.Stats())
	assert.Equal(t, 1, strings.Count(logs.String(), "notification queue is full"), "one warning for the burst")
	require.Eventually(t, func() bool { return len(h.Requests("")) == notificationWorkers }, flushTimeout, time.Millisecond,
		"every worker is held by the hanging callback")

	clk.Advance(time.Minute)
	n.Publish(mappingNotice(uuid.New()))
	assert.Equal(t, 2, strings.Count(logs.String(), "notification queue is full"), "a minute later, another")

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, n.Flush(ctx), context.DeadlineExceeded, "Flush waits for the hanging deliveries")

	h.Release()
	flush(t, n)
	assert.Equal(t, Stats{Published: 10, Dropped: 91, Delivered: ChannelCounts{Webhooks: 10}}, n.Stats())
	assert.Len(t, h.Requests(""), 10)
}

func TestWebhookCallbackURLsNeverAppearInLogsErrorsOrStats(t *testing.T) {
	t.Parallel()
	const secret = "SeCrEt-sig-7f3a9c"
	dv := notifyDV(t)
	h := newHooks(t)
	callbacks := map[string]string{
		"500":      h.URL("/"+secret+"/500", 500),
		"drop":     h.URL("/"+secret+"/drop", -1),
		"timeout":  h.URL("/"+secret+"/timeout", 0),
		"redirect": h.URL("/"+secret+"/redirect", 302),
		"http":     "http://192.0.2.10/" + secret + "?sig=" + secret,
		"bad":      "https://%zz/" + secret,
	}
	subs := map[string]dataverse.GUID{}
	for name, callback := range callbacks {
		require.Contains(t, callback, secret)
		subs[name] = subscribe(t, dv, callback, 0)
	}
	var logs logCapture
	d := &WebhookDeliverer{DV: dv, Logger: logs.Logger(), Callbacks: CallbackPolicy{AllowLoopback: true}, HTTP: &http.Client{Timeout: 500 * time.Millisecond}}
	n := runNotifications(t, Options{Webhooks: d, Attempts: 2, Logger: logs.Logger()})
	n.Publish(mappingNotice(uuid.New()))
	flush(t, n)

	err := d.Deliver(t.Context(), mappingNotice(uuid.New()))
	require.Error(t, err)
	for name, id := range subs {
		assert.Contains(t, err.Error(), id.String(), "the error names subscription %s by id", name)
		assert.Equal(t, 2, consecutiveFailures(t, dv, id), "%s missed both notifications", name)
	}
	assert.Contains(t, err.Error(), "timed out")
	assert.Contains(t, err.Error(), "HTTP 302")
	assert.Len(t, h.Requests("/"+secret+"/redirect"), 2, "a redirect is refused, not retried")
	assert.Empty(t, h.Requests("/"+secret+"/redirect/moved"), "nor followed")
	assert.Len(t, h.Requests("/"+secret+"/500"), 3, "two attempts, then one Deliver")

	stats := n.Stats()
	assert.Equal(t, Stats{Published: 1, Failed: ChannelCounts{Webhooks: 1}}, stats)
	assert.Contains(t, logs.String(), "giving up", "the failure was logged")
	for what, text := range map[string]string{"logs": logs.String(), "Deliver's error": err.Error(), "stats": fmt.Sprintf("%+v", stats)} {
		assert.NotContains(t, text, secret, "%s carry a callback URL:\n%s", what, text)
	}
}

// TestInAppNoticeBodyFitsTheColumn: appnotification.body holds at most 500 characters; the simulator
// refuses more, as Dataverse does, and the notifier fits a longer text (the rest is on the linked row).
func TestInAppNoticeBodyFitsTheColumn(t *testing.T) {
	t.Parallel()
	dvs, dv := notifySimulator(t)
	me, err := dv.WhoAmI(t.Context())
	require.NoError(t, err)

	long := strings.Repeat("The provider account needs a person. ", 40) // 1,480 characters
	_, err = dv.Create(t.Context(), schema.SetAppNotifications, dataverse.Row{
		"title": "too long", "body": long, "ownerid@odata.bind": "/" + schema.SetSystemUsers + "(" + me.UserID.String() + ")",
	})
	require.Error(t, err)
	assert.True(t, dataverse.IsBadRequest(err), "the simulator refuses a body over 500 characters: %v", err)

	row := uuid.New()
	n := &InAppNotifier{DV: dv, Recipients: []dataverse.GUID{me.UserID}}
	require.NoError(t, n.Notify(t.Context(), Notice{Title: "Map Contoso to an account", Body: long, Icon: NoticeWarning, Table: schema.TableProviderAccount, RowID: row}))
	var bodies []string
	for _, r := range dvs.Rows(schema.TableAppNotification) {
		if r["title"] == "Map Contoso to an account" {
			bodies = append(bodies, r["body"].(string))
		}
	}
	require.Len(t, bodies, 1)
	assert.Equal(t, 500, dataverse.TextLength(bodies[0]))
	assert.True(t, strings.HasSuffix(bodies[0], "…"), "a shortened body says so")
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(bodies[0], "…")))
}

// TestInAppNoticeOpensTheRowInTheConnectorApp: the notice's Open action names the connector's app by its
// unique name (the app's id differs in every environment), so the row opens in the app whose sitemap and
// forms the installer made, whichever app the person clicked the bell in.
func TestInAppNoticeOpensTheRowInTheConnectorApp(t *testing.T) {
	t.Parallel()
	dvs, dv := notifySimulator(t)
	me, err := dv.WhoAmI(t.Context())
	require.NoError(t, err)
	row := uuid.New()
	n := &InAppNotifier{DV: dv, Recipients: []dataverse.GUID{me.UserID}}
	require.NoError(t, n.Notify(t.Context(), Notice{Title: "Agreement waiting", Body: "Contoso has not accepted.", Icon: NoticeWarning, Table: schema.TableAgreement, RowID: row}))

	rows := dvs.Rows(schema.TableAppNotification)
	require.Len(t, rows, 1)
	var data struct {
		Actions []struct {
			Title string `json:"title"`
			Data  struct {
				URL, NavigationTarget string
			} `json:"data"`
		} `json:"actions"`
	}
	require.NoError(t, json.Unmarshal([]byte(rows[0]["data"].(string)), &data))
	require.Len(t, data.Actions, 1)
	open, err := url.Parse(data.Actions[0].Data.URL)
	require.NoError(t, err)
	assert.Empty(t, open.Host, "relative: it opens in the environment the notice came from")
	q := open.Query()
	assert.Equal(t, schema.Schema().App.UniqueName, q.Get("appname"), "the app the installer makes")
	assert.False(t, q.Has("appid"), "appname and appid cannot be used together")
	assert.Equal(t, "entityrecord", q.Get("pagetype"))
	assert.Equal(t, schema.TableAgreement, q.Get("etn"))
	assert.Equal(t, row.String(), q.Get("id"))
}
