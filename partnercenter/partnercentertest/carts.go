package partnercentertest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// cartLifetime is how long a new-commerce cart can be checked out (seven days in Microsoft's sample).
const cartLifetime = 7 * 24 * time.Hour

type keyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type lineError struct {
	ErrorCode        int    `json:"errorCode"`
	ErrorDescription string `json:"errorDescription"`
}

// cartLineRequest is a CartLineItem as clients send it (camelCase or PascalCase).
type cartLineRequest struct {
	ID                  *int              `json:"id"`
	CatalogItemID       string            `json:"catalogItemId"`
	FriendlyName        string            `json:"friendlyName"`
	Quantity            int               `json:"quantity"`
	BillingCycle        string            `json:"billingCycle"`
	TermDuration        string            `json:"termDuration"`
	Participants        []keyValue        `json:"participants"`
	ProvisioningContext map[string]any    `json:"provisioningContext"`
	AddonItems          []cartLineRequest `json:"addonItems"`
}

// cartLine is a CartLineItem as the simulator keeps and answers it.
type cartLine struct {
	ID                  int               `json:"id"`
	CatalogItemID       string            `json:"catalogItemId"`
	FriendlyName        string            `json:"friendlyName,omitempty"`
	Quantity            int               `json:"quantity"`
	CurrencyCode        string            `json:"currencyCode"`
	BillingCycle        string            `json:"billingCycle"`
	TermDuration        string            `json:"termDuration,omitempty"`
	Participants        []keyValue        `json:"participants,omitempty"`
	ProvisioningContext map[string]string `json:"provisioningContext"`
	OrderGroup          string            `json:"orderGroup"`
	AddonItems          []cartLine        `json:"addonItems,omitempty"`
	Error               *lineError        `json:"error,omitempty"`
	// parentID is the existing subscription an add-on line attaches to.
	parentID string
}

type cart struct {
	id                         string
	created, modified, expires time.Time
	modifiedBy                 string
	status                     string // Active, then Ordered
	lines                      []cartLine
	processing                 bool
}

type cartJSON struct {
	ID                    string          `json:"id"`
	CreationTimestamp     string          `json:"creationTimestamp"`
	LastModifiedTimestamp string          `json:"lastModifiedTimestamp"`
	ExpirationTimestamp   string          `json:"expirationTimestamp"`
	LastModifiedUser      string          `json:"lastModifiedUser"`
	Status                string          `json:"status"`
	LineItems             []cartLine      `json:"lineItems"`
	Links                 map[string]link `json:"links"`
	Attributes            attributes      `json:"attributes"`
}

func renderCart(c *customer, ct *cart) cartJSON {
	return cartJSON{
		ID: ct.id, CreationTimestamp: formatTime(ct.created), LastModifiedTimestamp: formatTime(ct.modified),
		ExpirationTimestamp: formatTime(ct.expires), LastModifiedUser: ct.modifiedBy, Status: ct.status, LineItems: ct.lines,
		Links:      map[string]link{"self": getLink("/customers/" + c.tenantID + "/carts/" + ct.id)},
		Attributes: objectType("Cart"),
	}
}

// createCart serves POST /v1/customers/{id}/carts. Lines that cannot be bought still make a cart, each
// carrying its error, as Partner Center does; the checkout is then refused with 800009.
func (s *Server) createCart(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	var req struct {
		LineItems []cartLineRequest `json:"lineItems"`
	}
	if err := decodeJSON(o.body, &req); err != nil {
		return invalidInput("The cart in the request body is not valid: %v", err).result()
	}
	if len(req.LineItems) == 0 {
		return invalidInput("A cart needs at least one line item.").result()
	}
	now := s.now().UTC()
	ct := &cart{id: uuid.NewString(), created: now, modified: now, expires: now.Add(cartLifetime), modifiedBy: s.actor(o), status: "Active"}
	for i, l := range req.LineItems {
		line := s.cartLine(c, l, i, "")
		for j, a := range l.AddonItems {
			line.AddonItems = append(line.AddonItems, s.cartLine(c, a, j, line.CatalogItemID))
		}
		ct.lines = append(ct.lines, line)
	}
	c.carts[ct.id] = ct
	return ok(http.StatusCreated, renderCart(c, ct))
}

// actor is who a change is attributed to: the partner user of an app+user token, else the app.
func (s *Server) actor(o *op) string {
	if o.who.userID != "" {
		return o.who.userID
	}
	return s.opts.ClientID
}

// cartLine checks one requested line against the catalog. parentItem is set for an entry of a base
// line's addonItems.
func (s *Server) cartLine(c *customer, l cartLineRequest, index int, parentItem string) cartLine {
	line := cartLine{
		ID: index, CatalogItemID: l.CatalogItemID, FriendlyName: l.FriendlyName, Quantity: l.Quantity, CurrencyCode: "USD",
		BillingCycle: strings.ToLower(l.BillingCycle), TermDuration: strings.ToUpper(l.TermDuration), Participants: l.Participants,
		ProvisioningContext: map[string]string{}, OrderGroup: "0",
	}
	if l.ID != nil {
		line.ID = *l.ID
	}
	for k, v := range l.ProvisioningContext {
		if text, isText := v.(string); isText {
			line.ProvisioningContext[k] = text
		}
	}
	fail := func(code int, name string) cartLine {
		line.Error = &lineError{ErrorCode: code, ErrorDescription: name}
		return line
	}
	item, known := catalogItem(l.CatalogItemID)
	if !known {
		return fail(LineErrorCatalogItemNotValid, "CatalogItemIdIsNotValid")
	}
	line.CatalogItemID = item.id
	if line.TermDuration == "" {
		line.TermDuration = "P1Y"
	}
	cycles, termOK := item.terms[line.TermDuration]
	if !termOK || !slices.Contains(cycles, line.BillingCycle) || l.Quantity < item.minQuantity || l.Quantity > item.maxQuantity {
		return fail(LineErrorInvalidInput, "InvalidInput")
	}
	if len(item.parentProducts) == 0 {
		return line
	}
	if parentItem != "" {
		if !slices.Contains(item.parentProducts, productOf(parentItem)) {
			return fail(LineErrorInvalidInput, "InvalidInput")
		}
		return line
	}
	var parentID string
	for k, v := range line.ProvisioningContext {
		if strings.EqualFold(k, "parentSubscriptionId") {
			parentID = strings.ToLower(v)
		}
	}
	if parentID == "" {
		return fail(LineErrorInvalidInput, "InvalidInput") // an add-on needs its parent
	}
	parent := c.subs[parentID]
	if parent == nil || parent.status != "active" || !slices.Contains(item.parentProducts, productOf(parent.offerID)) {
		return fail(LineErrorSubscriptionInvalid, "SubscriptionIsNotValid")
	}
	line.parentID = parent.id
	return line
}

// getCart serves GET /v1/customers/{id}/carts/{cartId}.
func (s *Server) getCart(o *op, rt *route) result {
	c, ct, e := s.cartFor(o, rt)
	if e != nil {
		return e.result()
	}
	return ok(http.StatusOK, renderCart(c, ct))
}

func (s *Server) cartFor(o *op, rt *route) (*customer, *cart, *apiError) {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return nil, nil, e
	}
	ct := c.carts[strings.ToLower(o.param(rt, "cart"))]
	if ct == nil {
		return nil, nil, newError(http.StatusNotFound, CodeCartNotFound, "Unable to retrieve cart ID %s", o.param(rt, "cart"))
	}
	return c, ct, nil
}

// beginCheckout is the first step of POST …/carts/{cartId}/checkout, run before the latency: a cart
// already ordered answers 800065, one being checked out by another request 800064; otherwise the cart is
// marked busy until finishCheckout.
func (s *Server) beginCheckout(o *op, rt *route) *result {
	_, ct, e := s.cartFor(o, rt)
	fail := func(e *apiError) *result { res := e.result(); return &res }
	switch {
	case e != nil:
		return fail(e)
	case ct.status == "Ordered":
		return fail(newError(http.StatusBadRequest, CodeCartAlreadySubmitted, "can't check out an already submitted cart %s.", ct.id))
	case ct.processing:
		return fail(newError(http.StatusConflict, CodeCartBeingProcessed, "Cart %s is being processed by another request", ct.id))
	case !s.now().Before(ct.expires):
		return fail(invalidInput("Cart %s expired at %s; create a new one.", ct.id, formatTime(ct.expires)))
	}
	ct.processing = true
	return nil
}

// finishCheckout creates the order and subscriptions of a cart: 403 / 13605 without a Microsoft Customer
// Agreement, 400 / 800009 ("Error in Cart item(s)") when a line carries an error, the sandbox caps (800066,
// 800067).
func (s *Server) finishCheckout(o *op, rt *route) result {
	c, ct, e := s.cartFor(o, rt)
	if e != nil {
		return e.result()
	}
	defer func() { ct.processing = false }()
	if c.relationship == "none" {
		return noRelationship(s, c).result()
	}
	if !c.hasMCA() {
		return newError(http.StatusForbidden, CodeMCARequired, "Either a partner confirmation of the customer acceptance of the Microsoft Customer Agreement must be provided or the customer must accept the Microsoft Customer Agreement in the Microsoft Admin Center before you can complete this purchase").result()
	}
	var all []cartLine
	var lineErrors []string
	for _, l := range ct.lines {
		for _, line := range append([]cartLine{l}, l.AddonItems...) {
			all = append(all, line)
			if line.Error != nil {
				lineErrors = append(lineErrors, fmt.Sprintf("Line item %d (%s): %d %s", line.ID, line.CatalogItemID, line.Error.ErrorCode, line.Error.ErrorDescription))
			}
		}
	}
	if len(lineErrors) > 0 {
		e := newError(http.StatusBadRequest, CodeCartItemErrors, "Error in Cart item(s)")
		e.data = lineErrors
		return e.result()
	}
	for _, l := range ct.lines {
		// The parent was active when the cart was made; it may have been suspended or cancelled since.
		if parent := c.subs[l.parentID]; l.parentID != "" && (parent == nil || parent.status != "active") {
			return newError(http.StatusConflict, CodeAddOnParentInactive, "can't enable a child subscription, when the parent subscription isn't Active").result()
		}
	}
	if s.opts.SandboxCaps {
		if c.activeSubscriptions()+len(all) > sandboxMaxSubs {
			return newError(http.StatusForbidden, CodeSandboxSubscriptions, "The desired number of subscriptions exceeded the maximum number of subscriptions allowed per customer (%d).", sandboxMaxSubs).result()
		}
		for _, l := range all {
			if l.Quantity > sandboxMaxSeats {
				return newError(http.StatusForbidden, CodeSandboxSeats, "The desired seat count exceeded the maximum seat count allowed per subscription (%d).", sandboxMaxSeats).result()
			}
		}
	}
	now := s.now().UTC()
	ord := &order{id: newOrderID(), created: now, billingCycle: ct.lines[0].BillingCycle, pendingReads: 1}
	for _, l := range ct.lines {
		base := s.subscribe(c, l, l.parentID, ord, now)
		for _, a := range l.AddonItems {
			s.subscribe(c, a, base.id, ord, now)
		}
	}
	c.orders[ord.id] = ord
	c.orderOrder = append(c.orderOrder, ord)
	ct.status, ct.modified = "Ordered", now
	// orderErrors stays empty: the simulator has no partial failures (a cart is ordered whole or refused).
	return ok(http.StatusCreated, map[string]any{
		"orders": []orderJSON{renderOrder(c, ord)}, "orderErrors": []any{}, "attributes": objectType("CartCheckoutResult"),
	})
}

// subscribe creates the subscription for a cart line and adds it to the order.
func (s *Server) subscribe(c *customer, l cartLine, parentID string, ord *order, now time.Time) *subscription {
	item, _ := catalogItem(l.CatalogItemID)
	sub := &subscription{
		customer: c, id: uuid.NewString(), offerID: item.id, offerName: item.name, friendlyName: l.FriendlyName,
		parentID: parentID, status: "active", billingCycle: l.BillingCycle, termDuration: l.TermDuration,
		quantity: l.Quantity, autoRenew: true, created: now, refundWindow: defaultRefundWindow, etag: newETag(), orderID: ord.id,
	}
	if sub.friendlyName == "" {
		sub.friendlyName = item.name
	}
	sub.lots = []seatLot{{quantity: sub.quantity, until: now.Add(sub.refundWindow)}}
	c.subs[sub.id] = sub
	c.subOrder = append(c.subOrder, sub)
	ol := orderLine{
		LineItemNumber: len(ord.lines), OfferID: item.id, SubscriptionID: sub.id, ParentSubscriptionID: parentID,
		TermDuration: l.TermDuration, TransactionType: "New", FriendlyName: sub.friendlyName, Quantity: l.Quantity,
	}
	for _, p := range l.Participants {
		if strings.EqualFold(p.Key, "transaction_reseller") {
			ol.PartnerIDOnRecord = p.Value
		}
	}
	ord.lines = append(ord.lines, ol)
	return sub
}
