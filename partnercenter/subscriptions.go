package partnercenter

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/internal/retry"
)

// Subscription is a customer's subscription. Update sends it back whole, so the properties this type does
// not model travel unchanged.
type Subscription struct {
	ID                   string     `json:"id"`
	OfferID              string     `json:"offerId"`
	OfferName            string     `json:"offerName,omitempty"`
	FriendlyName         string     `json:"friendlyName,omitempty"`
	Quantity             int        `json:"quantity"`
	UnitType             string     `json:"unitType,omitempty"`
	Status               Enum       `json:"status"`
	AutoRenewEnabled     bool       `json:"autoRenewEnabled"`
	BillingCycle         Enum       `json:"billingCycle,omitempty"`
	TermDuration         string     `json:"termDuration,omitempty"`
	CreationDate         *time.Time `json:"creationDate,omitempty"`
	EffectiveStartDate   *time.Time `json:"effectiveStartDate,omitempty"`
	CommitmentEndDate    *time.Time `json:"commitmentEndDate,omitempty"`
	ParentSubscriptionID string     `json:"parentSubscriptionId,omitempty"`
	OrderID              string     `json:"orderId,omitempty"`
	// RefundableQuantity says how many seats may be removed now, and until when.
	RefundableQuantity *RefundableQuantity `json:"refundableQuantity,omitempty"`
	// CancellationAllowedUntilDate is the last moment the subscription may be cancelled; nil if never.
	CancellationAllowedUntilDate *time.Time `json:"cancellationAllowedUntilDate,omitempty"`
	Attributes                   Attributes `json:"attributes"`

	raw rawObject
}

// RefundableQuantity is the seats that may still be removed for a refund, in lots with their deadlines.
type RefundableQuantity struct {
	TotalQuantity int                        `json:"totalQuantity"`
	Details       []RefundableQuantityDetail `json:"details"`
}

// RefundableQuantityDetail is one lot of refundable seats.
type RefundableQuantityDetail struct {
	Quantity     int       `json:"quantity"`
	AllowedUntil time.Time `json:"allowedUntilDateTime"`
}

// Refundable returns how many seats may be removed at t (the lots whose deadline has not passed).
func (s Subscription) Refundable(t time.Time) int {
	if s.RefundableQuantity == nil {
		return 0
	}
	if len(s.RefundableQuantity.Details) == 0 {
		return s.RefundableQuantity.TotalQuantity
	}
	n := 0
	for _, d := range s.RefundableQuantity.Details {
		if d.AllowedUntil.IsZero() || t.Before(d.AllowedUntil) {
			n += d.Quantity
		}
	}
	return n
}

// subscriptionFields breaks the recursion of the JSON methods.
type subscriptionFields Subscription

// UnmarshalJSON keeps every property for the round trip.
func (s *Subscription) UnmarshalJSON(b []byte) error {
	var raw rawObject
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var f subscriptionFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = Subscription(f)
	s.raw = raw
	return nil
}

// MarshalJSON writes the received properties with the modelled ones on top.
func (s Subscription) MarshalJSON() ([]byte, error) {
	return s.raw.merge(subscriptionFields(s))
}

func subscriptionPath(tenantID, subscriptionID string) string {
	return "customers/" + url.PathEscape(tenantID) + "/subscriptions/" + url.PathEscape(subscriptionID)
}

// Subscriptions lists a customer's subscriptions.
//
// API: GET /v1/customers/{customer-tenant-id}/subscriptions
func (c *Client) Subscriptions(ctx context.Context, tenantID string) ([]Subscription, error) {
	var p collection[Subscription]
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: "customers/" + url.PathEscape(tenantID) + "/subscriptions",
		tenant: tenantID, op: "list subscriptions of " + tenantID}, &p)
	return p.Items, err
}

// ListSubscriptions lists a customer's subscriptions one page at a time as the caller ranges: the list
// Partner Center documents comes whole, and a links.next it adds is followed with its headers
// (MS-ContinuationToken), as the SDK's enumerators do. Only one page is held in memory. A failure is
// yielded once, as the last element.
//
// API: GET /v1/customers/{customer-tenant-id}/subscriptions, then links.next
func (c *Client) ListSubscriptions(ctx context.Context, tenantID string) iter.Seq2[Subscription, error] {
	return pages[Subscription](ctx, c, call{method: http.MethodGet, path: "customers/" + url.PathEscape(tenantID) + "/subscriptions",
		tenant: tenantID, op: "list subscriptions of " + tenantID})
}

// Subscription reads one subscription, with its ETag, refundable seats and cancellation deadline.
//
// API: GET /v1/customers/{customer-tenant-id}/subscriptions/{subscription-id}
func (c *Client) Subscription(ctx context.Context, tenantID, subscriptionID string) (Subscription, error) {
	var s Subscription
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: subscriptionPath(tenantID, subscriptionID), tenant: tenantID,
		op: "get subscription " + subscriptionID}, &s)
	return s, err
}

// AddOns lists the add-on subscriptions of a subscription.
//
// API: GET /v1/customers/{customer-tenant-id}/subscriptions/{subscription-id}/addons
func (c *Client) AddOns(ctx context.Context, tenantID, subscriptionID string) ([]Subscription, error) {
	var p collection[Subscription]
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: subscriptionPath(tenantID, subscriptionID) + "/addons", tenant: tenantID,
		op: "list add-ons of " + subscriptionID}, &p)
	return p.Items, err
}

// UpdateSubscription sends the whole subscription back with its changes (quantity, status, auto-renew),
// guarded by its ETag when Partner Center gave one. Read it first, change it, update it: the values are
// absolute, so repeating an update is harmless. When Partner Center answers 202 Accepted the change is
// followed (GET of the Location) until the subscription shows it or ctx ends.
//
// API: PATCH /v1/customers/{customer-tenant-id}/subscriptions/{subscription-id}
func (c *Client) UpdateSubscription(ctx context.Context, tenantID string, s Subscription) (Subscription, error) {
	op := "update subscription " + s.ID
	var h http.Header
	if s.Attributes.ETag != "" {
		h = http.Header{"If-Match": {quoteETag(s.Attributes.ETag)}}
	}
	resp, err := c.do(ctx, call{method: http.MethodPatch, path: subscriptionPath(tenantID, s.ID), header: h, body: s, tenant: tenantID, op: op})
	if err != nil {
		return Subscription{}, err
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		var out Subscription
		if err := json.NewDecoder(bomReader(resp.Body)).Decode(&out); err != nil {
			return Subscription{}, fmt.Errorf("partnercenter: %s: decode response: %w", op, err)
		}
		return out, nil
	}
	location := resp.Header.Get("Location")
	if location == "" {
		location = subscriptionPath(tenantID, s.ID)
	}
	return c.followUpdate(ctx, tenantID, location, s, retry.After(resp.Header.Get("Retry-After"), time.Now()))
}

// followUpdate polls an accepted update until the subscription shows the requested quantity and status.
func (c *Client) followUpdate(ctx context.Context, tenantID, location string, want Subscription, firstWait time.Duration) (Subscription, error) {
	wait := max(firstWait, c.opts.PollInterval)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Subscription{}, fmt.Errorf("partnercenter: update subscription %s: still in progress when the caller stopped waiting: %w", want.ID, ctx.Err())
		case <-t.C:
		}
		var cur Subscription
		if _, err := c.doJSON(ctx, call{method: http.MethodGet, path: location, tenant: tenantID, op: "follow update of subscription " + want.ID}, &cur); err != nil {
			return Subscription{}, err
		}
		if cur.Quantity == want.Quantity && cur.Status.Is(want.Status) && cur.AutoRenewEnabled == want.AutoRenewEnabled {
			return cur, nil
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// quoteETag sends the ETag quoted, as Partner Center documents it.
func quoteETag(etag string) string {
	if strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}
