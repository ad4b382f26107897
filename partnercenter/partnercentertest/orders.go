package partnercentertest

import (
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// order is an order created by a checkout. Its subscriptions exist from the checkout on, but the order
// answers "pending" to the checkout and to its first GET by id, and "completed" afterwards, so a client's
// polling is exercised; the list shows the status without counting as a poll.
type order struct {
	id           string
	created      time.Time
	billingCycle string
	lines        []orderLine
	pendingReads int
}

type orderLine struct {
	LineItemNumber       int             `json:"lineItemNumber"`
	OfferID              string          `json:"offerId"`
	SubscriptionID       string          `json:"subscriptionId"`
	ParentSubscriptionID string          `json:"parentSubscriptionId,omitempty"`
	TermDuration         string          `json:"termDuration"`
	TransactionType      string          `json:"transactionType"`
	FriendlyName         string          `json:"friendlyName"`
	Quantity             int             `json:"quantity"`
	PartnerIDOnRecord    string          `json:"partnerIdOnRecord,omitempty"`
	Links                map[string]link `json:"links"`
}

type orderJSON struct {
	ID                  string          `json:"id"`
	AlternateID         string          `json:"alternateId"`
	ReferenceCustomerID string          `json:"referenceCustomerId"`
	BillingCycle        string          `json:"billingCycle"`
	CurrencyCode        string          `json:"currencyCode"`
	CurrencySymbol      string          `json:"currencySymbol"`
	LineItems           []orderLine     `json:"lineItems"`
	CreationDate        string          `json:"creationDate"`
	Status              string          `json:"status"`
	TransactionType     string          `json:"transactionType"`
	Links               map[string]link `json:"links"`
	Client              struct{}        `json:"client"`
	Attributes          attributes      `json:"attributes"`
}

// newOrderID makes an id shaped like Partner Center's (12 hex digits, e.g. "f76c6b7f449d").
func newOrderID() string { return hex.EncodeToString(randomBytes(6)) }

func renderOrder(c *customer, o *order) orderJSON {
	base := "/customers/" + c.tenantID + "/orders/" + o.id
	status := "completed"
	if o.pendingReads > 0 {
		status = "pending"
	}
	lines := make([]orderLine, len(o.lines))
	for i, l := range o.lines {
		l.Links = map[string]link{"subscription": getLink("/customers/" + c.tenantID + "/subscriptions/" + l.SubscriptionID)}
		if parts := strings.Split(l.OfferID, ":"); len(parts) == 3 {
			l.Links["product"] = getLink("/products/" + parts[0] + "?country=US")
			l.Links["sku"] = getLink("/products/" + parts[0] + "/skus/" + parts[1] + "?country=US")
			l.Links["availability"] = getLink("/products/" + parts[0] + "/skus/" + parts[1] + "/availabilities/" + parts[2] + "?country=US")
		}
		lines[i] = l
	}
	return orderJSON{
		ID: o.id, AlternateID: o.id, ReferenceCustomerID: c.tenantID, BillingCycle: o.billingCycle,
		CurrencyCode: "USD", CurrencySymbol: "$", LineItems: lines, CreationDate: formatTime(o.created),
		Status: status, TransactionType: "UserPurchase",
		Links: map[string]link{
			"self":               getLink(base),
			"provisioningStatus": getLink(base + "/provisioningstatus"),
			"patchOperation":     {URI: base, Method: http.MethodPatch, Headers: []linkHeader{}},
		},
		Attributes: objectType("Order"),
	}
}

// listOrders serves GET /v1/customers/{id}/orders.
func (s *Server) listOrders(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	var items []orderJSON
	for _, ord := range c.orderOrder {
		items = append(items, renderOrder(c, ord))
	}
	return ok(http.StatusOK, newCollection(items))
}

// getOrder serves GET /v1/customers/{id}/orders/{orderId}.
func (s *Server) getOrder(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	ord := c.orders[strings.ToLower(o.param(rt, "order"))]
	if ord == nil {
		return newError(http.StatusNotFound, CodeOrderNotFound, "Order ID %s not found", o.param(rt, "order")).result()
	}
	out := renderOrder(c, ord)
	if ord.pendingReads > 0 {
		ord.pendingReads--
	}
	return ok(http.StatusOK, out)
}
