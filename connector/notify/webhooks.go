package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// WebhookDeliverer posts notifications to the callback URLs of the webhook subscriptions in Dataverse
// (csp_webhooksubscription rows; Power Automate creates one per flow with the connector's trigger).
//
// Callback URLs are secrets (a Logic Apps URL carries the signature that lets anyone start the flow):
// they are never logged nor put in errors; subscriptions are named by their id.
//
// csp_consecutivefailures counts the notifications in a row a subscription missed. It goes up by one per
// notification, when the connector gives up on delivering it to that subscription (at once for a callback
// URL it will not call or a response retrying cannot fix, after the last attempt otherwise), and back to 0
// on a delivery. Counting per notification rather than per attempt keeps it comparable whatever the retry
// schedule.
type WebhookDeliverer struct {
	DV *dataverse.Client
	// HTTP posts to the callbacks (nil: a client with a 30 s timeout). Redirects are never followed,
	// whatever the client says: a redirect could lead away from https.
	// Its Transport, when nil, is the policy's own, which dials only the addresses Callbacks allows.
	HTTP   *http.Client
	Logger *slog.Logger
	// Callbacks is the rule for callback URLs: https to public addresses, with the partner's own hosts
	// and, in tests and the sandbox, loopback allowed.
	Callbacks CallbackPolicy

	transportOnce sync.Once
	transport     *http.Transport
}

// webhookProgress is one notification's webhook delivery across attempts, so a retry posts only to the
// subscriptions that have not got it yet.
// It is kept in the outbox row as JSON.
type webhookProgress struct {
	Done    map[dataverse.GUID]bool   `json:"done,omitempty"`    // delivered, or found gone
	Refused map[dataverse.GUID]string `json:"refused,omitempty"` // given up on for this notification, with the reason
	// Eligible are the subscriptions there were at the first attempt: a retry goes to them only, not to a
	// flow that subscribed after the event. Nil until the first attempt read them.
	Eligible map[dataverse.GUID]bool `json:"eligible,omitempty"`
}

func newWebhookProgress() *webhookProgress {
	return &webhookProgress{Done: map[dataverse.GUID]bool{}, Refused: map[dataverse.GUID]string{}}
}

// Deliver posts nt once to every active subscription of its type and returns what failed, naming
// subscriptions by id. A callback that answers 404 or 410 belongs to a deleted flow: its subscription is
// deleted. Deliver does not retry; Notifications does, posting again only where it failed. An empty ID
// gets a new UUID and a zero Time the current time, as Publish would give them.
//
// API: GET /csp_webhooksubscriptions?$filter=csp_eventtype eq … and statecode eq 0, then POST {callback}
func (d *WebhookDeliverer) Deliver(ctx context.Context, nt Notification) error {
	if nt.ID == "" {
		nt.ID = uuid.NewString()
	}
	if nt.Time.IsZero() {
		nt.Time = time.Now()
	}
	err := d.deliver(ctx, nt, newWebhookProgress(), true)
	var permanent *permanentError
	if errors.As(err, &permanent) {
		return permanent.err
	}
	return err
}

// deliver makes one attempt. final says no attempt follows, so subscriptions failing now have missed the
// notification. The error is a *permanentError when no subscription is left to retry.
func (d *WebhookDeliverer) deliver(ctx context.Context, nt Notification, progress *webhookProgress, final bool) error {
	eventType := nt.Type.EventType()
	if eventType == 0 {
		return &permanentError{fmt.Errorf("webhooks: notification %s: unknown type %q", nt.ID, nt.Type)}
	}
	body, err := json.Marshal(nt.Payload())
	if err != nil {
		return &permanentError{fmt.Errorf("webhooks: encode notification %s: %w", nt.ID, err)}
	}
	subs, err := d.subscriptions(ctx, eventType)
	if err != nil {
		return fmt.Errorf("webhooks: notification %s: %w", nt.ID, err)
	}
	client := d.client()
	log := d.logger().With("notification", nt.ID, "type", nt.Type)
	var retry []error
	if progress.Done == nil {
		progress.Done = map[dataverse.GUID]bool{}
	}
	if progress.Refused == nil {
		progress.Refused = map[dataverse.GUID]string{}
	}
	if progress.Eligible == nil {
		progress.Eligible = map[dataverse.GUID]bool{}
		for _, s := range subs {
			progress.Eligible[s.ID] = true
		}
	}
	for _, s := range subs {
		if progress.Done[s.ID] || progress.Refused[s.ID] != "" || !progress.Eligible[s.ID] {
			continue
		}
		callback, problem := d.callbackURL(s.CallbackURL)
		if problem != "" {
			log.Warn("webhook subscription has a callback URL the connector will not call; correct or delete the subscription",
				"subscription", s.ID, "problem", "callback URL "+problem)
			progress.Refused[s.ID] = "callback URL " + problem
			d.countMissed(ctx, s)
			continue
		}
		status, failure := post(ctx, client, callback, s.CallbackURL, body, nt)
		switch {
		case failure == errCallbackAddress.Error():
			log.Warn("webhook subscription's callback resolves to an address the connector does not call; correct or delete the subscription",
				"subscription", s.ID)
			progress.Refused[s.ID] = failure
			d.countMissed(ctx, s)
		case failure == "" && status >= 200 && status < 300:
			progress.Done[s.ID] = true
			d.resetFailures(ctx, s)
		case status == http.StatusNotFound || status == http.StatusGone:
			// The flow was deleted or its trigger changed; Power Automate will not call unsubscribe for it.
			progress.Done[s.ID] = true
			d.deleteSubscription(ctx, s, status)
		case failure != "" || retryableStatus(status):
			if failure == "" {
				failure = fmt.Sprintf("HTTP %d", status)
			}
			retry = append(retry, fmt.Errorf("webhook subscription %s: %s", s.ID, failure))
			if final && ctx.Err() == nil { // cut short by shutdown, the attempt is made again by the next Run
				d.countMissed(ctx, s)
			}
		default:
			// 3xx and other 4xx: the flow refuses this notification, and would again.
			progress.Refused[s.ID] = fmt.Sprintf("HTTP %d", status)
			d.countMissed(ctx, s)
		}
	}
	var refused []error
	for id, reason := range progress.Refused {
		refused = append(refused, fmt.Errorf("webhook subscription %s: %s (not retried)", id, reason))
	}
	if len(retry) > 0 {
		return fmt.Errorf("webhooks: notification %s: %w", nt.ID, errors.Join(append(retry, refused...)...))
	}
	if len(refused) > 0 {
		return &permanentError{fmt.Errorf("webhooks: notification %s: %w", nt.ID, errors.Join(refused...))}
	}
	return nil
}

// subscriptions reads the active subscriptions to eventType.
func (d *WebhookDeliverer) subscriptions(ctx context.Context, eventType schema.EventType) ([]schema.WebhookSubscription, error) {
	q := &dataverse.Query{
		Select: []string{"csp_webhooksubscriptionid", "csp_callbackurl", "csp_consecutivefailures"},
		Filter: dataverse.And(dataverse.Eq("csp_eventtype", eventType), dataverse.Eq("statecode", schema.StateActive)),
	}
	var subs []schema.WebhookSubscription
	for row, err := range d.DV.List(ctx, schema.SetWebhookSubscriptions, q) {
		if err != nil {
			return nil, err
		}
		var s schema.WebhookSubscription
		if err := dataverse.Unmarshal(row, &s); err != nil {
			return nil, fmt.Errorf("read webhook subscription: %w", err)
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// callbackURL parses a subscription's callback, and says what stops the connector calling it ("" when
// nothing does). The rule is the same one the API applied when the subscription was made.
func (d *WebhookDeliverer) callbackURL(raw string) (*url.URL, string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, "is not an absolute https URL"
	}
	return u, d.Callbacks.Problem(u)
}

func (d *WebhookDeliverer) client() *http.Client {
	c := http.Client{Timeout: 30 * time.Second}
	if d.HTTP != nil {
		c = *d.HTTP
	}
	if c.Transport == nil {
		d.transportOnce.Do(func() { d.transport = d.Callbacks.Transport() })
		c.Transport = d.transport
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (d *WebhookDeliverer) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger.With("component", "webhooks")
}

// post sends the notification to one callback. It returns the response status, or a failure description
// that does not contain the URL when no response came.
func post(ctx context.Context, client *http.Client, callback *url.URL, raw string, body []byte, nt Notification) (status int, failure string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callback.String(), bytes.NewReader(body))
	if err != nil {
		return 0, "the request could not be built" // err would quote the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Connector-Event-Id", nt.ID)
	req.Header.Set("X-Connector-Event-Type", string(nt.Type))
	resp, err := client.Do(req)
	if errors.Is(err, errCallbackAddress) {
		return 0, errCallbackAddress.Error()
	}
	if err != nil {
		return 0, transportFailure(err, callback, raw)
	}
	// Drain a little so the connection can be reused; the body itself is of no interest.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, ""
}

// transportFailure describes a failed request without the callback URL: net/http's *url.Error quotes it
// in full, and a few inner errors (proxies, redirects) can carry parts of it.
func transportFailure(err error, callback *url.URL, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timed out"
		}
		err = ue.Err
	}
	msg := err.Error()
	for _, secret := range []string{raw, callback.String(), callback.RawQuery, callback.EscapedPath(), callback.Path} {
		if len(secret) > 1 {
			msg = strings.ReplaceAll(msg, secret, "[callback URL]")
		}
	}
	return msg
}

// retryableStatus reports statuses that may succeed later.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}

// resetFailures sets a delivered subscription's failure count back to 0.
//
// API: PATCH /csp_webhooksubscriptions({id})
func (d *WebhookDeliverer) resetFailures(ctx context.Context, s schema.WebhookSubscription) {
	if s.ConsecutiveFailures == 0 {
		return
	}
	_, err := d.DV.Update(ctx, schema.SetWebhookSubscriptions, s.ID, dataverse.Row{"csp_consecutivefailures": 0}, nil)
	if err != nil && !dataverse.IsNotFound(err) {
		d.logger().Warn("could not reset a webhook subscription's failure count", "subscription", s.ID, "error", err)
	}
}

// countMissed adds one to a subscription's failure count, with optimistic concurrency: other
// notifications may be counting on the same row.
//
// API: PATCH /csp_webhooksubscriptions({id}) with If-Match, GET on a conflict
func (d *WebhookDeliverer) countMissed(ctx context.Context, s schema.WebhookSubscription) {
	for range 3 {
		_, err := d.DV.Update(ctx, schema.SetWebhookSubscriptions, s.ID, dataverse.Row{"csp_consecutivefailures": s.ConsecutiveFailures + 1},
			&dataverse.UpdateOptions{IfMatch: s.ETag})
		switch {
		case err == nil || dataverse.IsNotFound(err):
			return
		case !dataverse.IsConflict(err):
			d.logger().Warn("could not count a webhook subscription's failure", "subscription", s.ID, "error", err)
			return
		}
		row, err := d.DV.Get(ctx, schema.SetWebhookSubscriptions, s.ID, &dataverse.GetOptions{Select: []string{"csp_consecutivefailures"}})
		if err == nil {
			err = dataverse.Unmarshal(row, &s)
		}
		if err != nil {
			if !dataverse.IsNotFound(err) {
				d.logger().Warn("could not count a webhook subscription's failure", "subscription", s.ID, "error", err)
			}
			return
		}
	}
	d.logger().Warn("could not count a webhook subscription's failure: the row kept changing", "subscription", s.ID)
}

// deleteSubscription removes the subscription of a flow that is gone. A failure is only logged: the next
// notification finds the callback gone again and retries the delete.
//
// API: DELETE /csp_webhooksubscriptions({id})
func (d *WebhookDeliverer) deleteSubscription(ctx context.Context, s schema.WebhookSubscription, status int) {
	log := d.logger().With("subscription", s.ID, "status", status)
	if err := d.DV.Delete(ctx, schema.SetWebhookSubscriptions, s.ID, nil); err != nil && !dataverse.IsNotFound(err) {
		log.Warn("the subscription's flow is gone, but deleting the subscription failed", "error", err)
		return
	}
	log.Info("the subscription's flow is gone; subscription deleted")
}
