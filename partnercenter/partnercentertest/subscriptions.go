package partnercentertest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// seatLot is a number of seats added at one time: they may be removed again until the refund window
// that started with their purchase closes.
type seatLot struct {
	quantity int
	until    time.Time
}

// subscription is the simulator's state for one subscription.
type subscription struct {
	customer     *customer
	id           string
	offerID      string
	offerName    string
	friendlyName string
	parentID     string // set on an add-on
	status       string // active, suspended, deleted, expired, pending, disabled
	billingCycle string
	termDuration string
	quantity     int
	autoRenew    bool
	created      time.Time
	refundWindow time.Duration
	lots         []seatLot // seat additions, oldest first
	etag         string
	orderID      string
	// stale is the view from before an update answered 202; the next GET shows it, once.
	stale *subscriptionJSON
}

// refundable counts the seats that may still be removed.
func (sub *subscription) refundable(now time.Time) int {
	n := 0
	for _, l := range sub.lots {
		if now.Before(l.until) {
			n += l.quantity
		}
	}
	return n
}

// cancellableUntil is the end of the cancellation window: purchase time plus the refund window.
func (sub *subscription) cancellableUntil() time.Time { return sub.created.Add(sub.refundWindow) }

func (sub *subscription) windowDays() int {
	return max(int((sub.refundWindow+24*time.Hour-1)/(24*time.Hour)), 1)
}

func newETag() string { return randomToken(12) }

// normalizeETag accepts an ETag quoted, weak (W/"…") or bare, as clients send it.
func normalizeETag(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	return strings.Trim(v, `"`)
}

// termLength is the length of a term duration in months.
func termLength(d string) (months int, ok bool) {
	switch strings.ToUpper(d) {
	case "P1M":
		return 1, true
	case "P1Y":
		return 12, true
	case "P3Y":
		return 36, true
	}
	return 0, false
}

type productTypeJSON struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

type refundOptionJSON struct {
	Type      string `json:"type"`
	ExpiresAt string `json:"expiresAt"`
}

type refundableDetailJSON struct {
	Quantity             int    `json:"quantity"`
	AllowedUntilDateTime string `json:"allowedUntilDateTime"`
}

type refundableQuantityJSON struct {
	TotalQuantity int                    `json:"totalQuantity"`
	Details       []refundableDetailJSON `json:"details"`
}

type subscriptionJSON struct {
	ID                           string                 `json:"id"`
	OfferID                      string                 `json:"offerId"`
	OfferName                    string                 `json:"offerName"`
	FriendlyName                 string                 `json:"friendlyName"`
	ProductType                  productTypeJSON        `json:"productType"`
	Quantity                     int                    `json:"quantity"`
	UnitType                     string                 `json:"unitType"`
	ParentSubscriptionID         string                 `json:"parentSubscriptionId,omitempty"`
	HasPurchasableAddons         bool                   `json:"hasPurchasableAddons"`
	CreationDate                 string                 `json:"creationDate"`
	EffectiveStartDate           string                 `json:"effectiveStartDate"`
	CommitmentEndDate            string                 `json:"commitmentEndDate"`
	CancellationAllowedUntilDate string                 `json:"cancellationAllowedUntilDate"`
	Status                       string                 `json:"status"`
	AutoRenewEnabled             bool                   `json:"autoRenewEnabled"`
	IsTrial                      bool                   `json:"isTrial"`
	BillingType                  string                 `json:"billingType"`
	BillingCycle                 string                 `json:"billingCycle"`
	TermDuration                 string                 `json:"termDuration"`
	RenewalTermDuration          string                 `json:"renewalTermDuration"`
	RefundOptions                []refundOptionJSON     `json:"refundOptions"`
	RefundableQuantity           refundableQuantityJSON `json:"refundableQuantity"`
	IsMicrosoftProduct           bool                   `json:"isMicrosoftProduct"`
	PartnerID                    string                 `json:"partnerId"`
	AttentionNeeded              bool                   `json:"attentionNeeded"`
	ActionTaken                  bool                   `json:"actionTaken"`
	ContractType                 string                 `json:"contractType"`
	Links                        map[string]link        `json:"links"`
	PublisherName                string                 `json:"publisherName"`
	OrderID                      string                 `json:"orderId"`
	Attributes                   attributes             `json:"attributes"`
}

// renderSubscription writes a new-commerce subscription like Microsoft's sample, plus what the SDK models
// add: parentSubscriptionId, refundableQuantity, cancellationAllowedUntilDate and the ETag.
func renderSubscription(sub *subscription, now time.Time) subscriptionJSON {
	start := sub.created.UTC().Truncate(24 * time.Hour)
	months, _ := termLength(sub.termDuration)
	// New-commerce end dates are inclusive: the term ends at the end of that day.
	end := start.AddDate(0, months, -1)
	rq := refundableQuantityJSON{Details: []refundableDetailJSON{}}
	for _, l := range sub.lots {
		if now.Before(l.until) && l.quantity > 0 {
			rq.TotalQuantity += l.quantity
			rq.Details = append(rq.Details, refundableDetailJSON{Quantity: l.quantity, AllowedUntilDateTime: formatTime(l.until)})
		}
	}
	out := subscriptionJSON{
		ID: sub.id, OfferID: sub.offerID, OfferName: sub.offerName, FriendlyName: sub.friendlyName,
		ProductType: productTypeJSON{ID: "OnlineServicesNCE", DisplayName: "OnlineServicesNCE"},
		Quantity:    sub.quantity, UnitType: "Licenses", ParentSubscriptionID: sub.parentID,
		HasPurchasableAddons: sub.parentID == "" && hasAddOns(sub.offerID),
		CreationDate:         formatTime(sub.created), EffectiveStartDate: formatTime(sub.created), CommitmentEndDate: formatTime(end),
		CancellationAllowedUntilDate: formatTime(sub.cancellableUntil()),
		Status:                       sub.status, AutoRenewEnabled: sub.autoRenew, BillingType: "license",
		BillingCycle: sub.billingCycle, TermDuration: sub.termDuration, RenewalTermDuration: sub.termDuration,
		RefundOptions:      []refundOptionJSON{{Type: "Full", ExpiresAt: formatTime(sub.cancellableUntil())}},
		RefundableQuantity: rq, IsMicrosoftProduct: true, ContractType: "subscription",
		Links:         map[string]link{"self": getLink("/customers/" + sub.customer.tenantID + "/subscriptions/" + sub.id)},
		PublisherName: "Microsoft Corporation", OrderID: sub.orderID,
		Attributes: attributes{Etag: sub.etag, ObjectType: "Subscription"},
	}
	if parts := strings.Split(sub.offerID, ":"); len(parts) == 3 {
		out.Links["product"] = getLink("/products/" + parts[0] + "?country=US")
		out.Links["sku"] = getLink("/products/" + parts[0] + "/skus/" + parts[1] + "?country=US")
		out.Links["availability"] = getLink("/products/" + parts[0] + "/skus/" + parts[1] + "/availabilities/" + parts[2] + "?country=US")
	} else {
		out.Links["offer"] = getLink("/offers/" + sub.offerID + "?country=US")
	}
	if sub.parentID != "" {
		out.Links["parentSubscription"] = getLink("/customers/" + sub.customer.tenantID + "/subscriptions/" + sub.parentID)
	}
	return out
}

// subscriptionFor resolves the subscription in a request path (404 / 20003).
func (c *customer) subscriptionFor(id string) (*subscription, *apiError) {
	sub := c.subs[strings.ToLower(id)]
	if sub == nil {
		return nil, newError(http.StatusNotFound, CodeSubscriptionNotFound, "Subscription with ID %s not found.", id)
	}
	return sub, nil
}

// listSubscriptions serves GET /v1/customers/{id}/subscriptions[?order_id=…].
func (s *Server) listSubscriptions(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	orderID := o.query.Get("order_id")
	now := s.now()
	var items []subscriptionJSON
	for _, sub := range c.subOrder {
		if orderID == "" || strings.EqualFold(sub.orderID, orderID) {
			items = append(items, renderSubscription(sub, now))
		}
	}
	return ok(http.StatusOK, newCollection(items))
}

// getSubscription serves GET /v1/customers/{id}/subscriptions/{subId}. The first GET after an update
// answered 202 still shows the old state.
func (s *Server) getSubscription(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	sub, e := c.subscriptionFor(o.param(rt, "subscription"))
	if e != nil {
		return e.result()
	}
	if sub.stale != nil {
		view := *sub.stale
		sub.stale = nil
		return ok(http.StatusOK, view)
	}
	return ok(http.StatusOK, renderSubscription(sub, s.now()))
}

// listAddOns serves GET /v1/customers/{id}/subscriptions/{subId}/addons.
func (s *Server) listAddOns(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	parent, e := c.subscriptionFor(o.param(rt, "subscription"))
	if e != nil {
		return e.result()
	}
	now := s.now()
	var items []subscriptionJSON
	for _, sub := range c.subOrder {
		if sub.parentID == parent.id {
			items = append(items, renderSubscription(sub, now))
		}
	}
	return ok(http.StatusOK, newCollection(items))
}

// subscriptionPatch is the part of the full Subscription resource an update can change; absent fields
// keep their value.
type subscriptionPatch struct {
	Quantity         *int    `json:"quantity"`
	Status           *string `json:"status"`
	AutoRenewEnabled *bool   `json:"autoRenewEnabled"`
	FriendlyName     *string `json:"friendlyName"`
	BillingCycle     *string `json:"billingCycle"`
	Attributes       *struct {
		Etag string `json:"etag"`
	} `json:"attributes"`
}

// updateSubscription serves PATCH /v1/customers/{id}/subscriptions/{subId} with the new-commerce rules:
// the ETag must be current; seats can be added any time and removed only while they are refundable;
// cancellation (status deleted) only within the cancellation window; a suspended subscription only
// reactivated; an add-on only activated under an active parent.
func (s *Server) updateSubscription(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	sub, e := c.subscriptionFor(o.param(rt, "subscription"))
	if e != nil {
		return e.result()
	}
	if sub.stale != nil {
		return newError(http.StatusConflict, CodeNotReadyToUpdate, "Subscription is not ready to be updated. Try again after sometime").result()
	}
	var p subscriptionPatch
	if err := decodeJSON(o.body, &p); err != nil {
		return invalidInput("The subscription in the request body is not valid: %v", err).result()
	}
	tag := o.header.Get("If-Match")
	if tag == "" && p.Attributes != nil {
		tag = p.Attributes.Etag
	}
	if tag != "" && tag != "*" && normalizeETag(tag) != sub.etag {
		return newError(http.StatusBadRequest, CodeETagInvalid, "Etag is no longer valid").result()
	}
	if sub.status == "deleted" || sub.status == "expired" {
		return newError(http.StatusBadRequest, CodeDeletedNotUpdatable, "Subscription with ID %s and %s status can't be updated.", sub.id, sub.status).result()
	}
	target := sub.status
	if p.Status != nil {
		target = strings.ToLower(strings.TrimSpace(*p.Status))
	}
	if target != "active" && target != "suspended" && target != "deleted" && target != sub.status {
		return newError(http.StatusBadRequest, CodeStatusNotUpdatable, "Can't update the status for this subscription to %q.", target).result()
	}
	if p.BillingCycle != nil && !strings.EqualFold(*p.BillingCycle, sub.billingCycle) {
		return newError(http.StatusBadRequest, CodeBillingCycleImmutable, "The billing cycle for an existing subscription can't be updated using update-subscription operation. Use update-Order operation").result()
	}
	quantity, autoRenew, friendly := sub.quantity, sub.autoRenew, sub.friendlyName
	if p.Quantity != nil {
		quantity = *p.Quantity
	}
	if p.AutoRenewEnabled != nil {
		autoRenew = *p.AutoRenewEnabled
	}
	if p.FriendlyName != nil && *p.FriendlyName != "" {
		friendly = *p.FriendlyName
	}
	otherChange := quantity != sub.quantity || autoRenew != sub.autoRenew || friendly != sub.friendlyName
	now := s.now()
	before := renderSubscription(sub, now)
	changed := otherChange || target != sub.status

	switch {
	case sub.status != "active":
		// Suspended (or pending, disabled): the only change allowed is reactivation, alone.
		if !changed {
			break
		}
		if otherChange || target != "active" {
			return newError(http.StatusBadRequest, CodeSuspendedNotUpdatable, "Can't update a subscription with %s status", sub.status).result()
		}
		if parent := c.subs[sub.parentID]; parent != nil && parent.status != "active" {
			return newError(http.StatusConflict, CodeAddOnParentInactive, "can't enable a child subscription, when the parent subscription isn't Active").result()
		}
		sub.status = "active"
	case target == "suspended":
		if quantity != sub.quantity {
			return newError(http.StatusBadRequest, CodeQuantityWhileSuspend, "Subscription quantity can't be increased or decreased while subscription is being suspended").result()
		}
		sub.status, sub.autoRenew, sub.friendlyName = "suspended", autoRenew, friendly
	case target == "deleted":
		if !now.Before(sub.cancellableUntil()) {
			return newError(http.StatusBadRequest, CodeCancellationWindow, "You have passed your %d-day cancellation window. We are unable to cancel your purchase", sub.windowDays()).result()
		}
		sub.status, sub.lots = "deleted", nil
	default:
		if quantity != sub.quantity {
			if e := s.changeQuantity(sub, quantity, now); e != nil {
				return e.result()
			}
		}
		sub.autoRenew, sub.friendlyName = autoRenew, friendly
	}
	if changed {
		sub.etag = newETag()
	}
	if s.asyncUpdates > 0 {
		s.asyncUpdates--
		sub.stale = &before
		// Microsoft's sample Location has no /v1, like many of its relative links.
		return result{status: http.StatusAccepted, header: http.Header{"Location": {"/customers/" + c.tenantID + "/subscriptions/" + sub.id}}}
	}
	return ok(http.StatusOK, renderSubscription(sub, now))
}

// changeQuantity applies a seat change. An increase adds a refundable lot; a decrease removes seats from
// the refundable lots, newest first (simulator's choice: the latest addition is undone first). With no
// refundable seat left the answer is 900257 ("passed your n-day window for reducing seats"); with some,
// but fewer than asked, 800090, naming the refundable quantity.
func (s *Server) changeQuantity(sub *subscription, quantity int, now time.Time) *apiError {
	lo, hi := 1, 10000
	if item, known := catalogItem(sub.offerID); known {
		lo, hi = item.minQuantity, item.maxQuantity
	}
	if quantity < lo || quantity > hi {
		return newError(http.StatusBadRequest, CodeQuantityOutOfRange, "Subscription quantity isn't within minimum and maximum allowed quantity (%d to %d).", lo, hi)
	}
	if s.opts.SandboxCaps && quantity > sandboxMaxSeats {
		return newError(http.StatusForbidden, CodeSandboxSeats, "The desired seat count exceeded the maximum seat count allowed per subscription (%d).", sandboxMaxSeats)
	}
	if quantity > sub.quantity {
		sub.lots = append(sub.lots, seatLot{quantity: quantity - sub.quantity, until: now.Add(sub.refundWindow)})
		sub.quantity = quantity
		return nil
	}
	remove := sub.quantity - quantity
	refundable := sub.refundable(now)
	switch {
	case refundable == 0:
		e := newError(http.StatusBadRequest, CodeReductionWindow, "You have passed your %d-day window for reducing seats for this subscription.", sub.windowDays())
		e.data = []string{"refundableQuantity=0"}
		return e
	case remove > refundable:
		e := newError(http.StatusBadRequest, CodeQuantityNotDecreased, "Subscription quantity can't be decreased by %d: only %d seat(s) are still within their refund window.", remove, refundable)
		e.data = []string{"refundableQuantity=" + strconv.Itoa(refundable)}
		return e
	}
	for i := len(sub.lots) - 1; i >= 0 && remove > 0; i-- {
		if !now.Before(sub.lots[i].until) {
			continue
		}
		take := min(remove, sub.lots[i].quantity)
		sub.lots[i].quantity -= take
		remove -= take
	}
	kept := sub.lots[:0]
	for _, l := range sub.lots {
		if l.quantity > 0 && now.Before(l.until) {
			kept = append(kept, l)
		}
	}
	sub.lots = kept
	sub.quantity = quantity
	return nil
}
