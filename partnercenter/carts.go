package partnercenter

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Cart is a purchase being prepared. Check it out once: a second checkout is refused (800065), and a
// checkout retried with the same MS-RequestId (WithRequestID) is the same checkout.
type Cart struct {
	ID                    string         `json:"id,omitempty"`
	CreationTimestamp     *time.Time     `json:"creationTimestamp,omitempty"`
	LastModifiedTimestamp *time.Time     `json:"lastModifiedTimestamp,omitempty"`
	ExpirationTimestamp   *time.Time     `json:"expirationTimestamp,omitempty"`
	Status                Enum           `json:"status,omitempty"`
	LineItems             []CartLineItem `json:"lineItems"`
	// PartnerOnRecordAttestationAccepted confirms the partner-of-record attestation (new commerce).
	PartnerOnRecordAttestationAccepted bool       `json:"PartnerOnRecordAttestationAccepted,omitempty"`
	Attributes                         Attributes `json:"attributes"`
}

// CartLineItem is one product in a cart. CatalogItemID is product:sku:availability.
type CartLineItem struct {
	ID                  int               `json:"id"`
	CatalogItemID       string            `json:"catalogItemId"`
	FriendlyName        string            `json:"friendlyName,omitempty"`
	Quantity            int               `json:"quantity"`
	CurrencyCode        string            `json:"currencyCode,omitempty"`
	BillingCycle        string            `json:"billingCycle,omitempty"`
	TermDuration        string            `json:"termDuration,omitempty"`
	Participants        []KeyValue        `json:"participants,omitempty"`
	ProvisioningContext map[string]string `json:"provisioningContext,omitempty"`
	OrderGroup          string            `json:"orderGroup,omitempty"`
	// Error is set on a line Partner Center could not accept (10001 CatalogItemIdIsNotValid, 10009
	// SandboxLimitExceeded, …).
	Error *CartLineItemError `json:"error,omitempty"`
}

// CartLineItemError is a line item's problem.
type CartLineItemError struct {
	ErrorCode        int    `json:"errorCode"`
	ErrorDescription string `json:"errorDescription"`
}

// CheckoutResult is what a checkout created: orders, and errors per order group (partial success is
// possible).
type CheckoutResult struct {
	Orders      []Order      `json:"orders"`
	OrderErrors []OrderError `json:"orderErrors"`
}

// OrderError is one order group that could not be ordered.
type OrderError struct {
	OrderGroupID string `json:"orderGroupId"`
	Code         int    `json:"code"`
	Description  string `json:"description"`
}

// Order is a purchase. Each line item names the subscription it created or changed.
type Order struct {
	ID                  string          `json:"id"`
	AlternateID         string          `json:"alternateId,omitempty"`
	ReferenceCustomerID string          `json:"referenceCustomerId,omitempty"`
	BillingCycle        string          `json:"billingCycle,omitempty"`
	CurrencyCode        string          `json:"currencyCode,omitempty"`
	LineItems           []OrderLineItem `json:"lineItems"`
	CreationDate        *time.Time      `json:"creationDate,omitempty"`
	Status              Enum            `json:"status"`
	Attributes          Attributes      `json:"attributes"`
}

// OrderLineItem is one line of an order.
type OrderLineItem struct {
	LineItemNumber       int    `json:"lineItemNumber"`
	OfferID              string `json:"offerId"`
	SubscriptionID       string `json:"subscriptionId,omitempty"`
	ParentSubscriptionID string `json:"parentSubscriptionId,omitempty"`
	TermDuration         string `json:"termDuration,omitempty"`
	TransactionType      string `json:"transactionType,omitempty"`
	FriendlyName         string `json:"friendlyName,omitempty"`
	Quantity             int    `json:"quantity"`
	PartnerIDOnRecord    string `json:"partnerIdOnRecord,omitempty"`
}

func customerPath(tenantID, rest string) string {
	return "customers/" + url.PathEscape(tenantID) + "/" + rest
}

// CreateCart creates a cart for a customer.
//
// API: POST /v1/customers/{customer-tenant-id}/carts
func (c *Client) CreateCart(ctx context.Context, tenantID string, cart Cart) (Cart, error) {
	var out Cart
	_, err := c.doJSON(ctx, call{method: http.MethodPost, path: customerPath(tenantID, "carts"), body: cart, tenant: tenantID, op: "create cart for " + tenantID}, &out)
	return out, err
}

// Cart reads a cart.
//
// API: GET /v1/customers/{customer-tenant-id}/carts/{cart-id}
func (c *Client) Cart(ctx context.Context, tenantID, cartID string) (Cart, error) {
	var out Cart
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: customerPath(tenantID, "carts/"+url.PathEscape(cartID)), tenant: tenantID, op: "get cart " + cartID}, &out)
	return out, err
}

// Checkout buys what a cart holds. It fails with 13605 (IsMCANotAccepted) when the customer has no
// accepted Microsoft Customer Agreement, and with 800065 for a cart already checked out.
//
// API: POST /v1/customers/{customer-tenant-id}/carts/{cart-id}/checkout
func (c *Client) Checkout(ctx context.Context, tenantID, cartID string) (CheckoutResult, error) {
	var out CheckoutResult
	_, err := c.doJSON(ctx, call{method: http.MethodPost, path: customerPath(tenantID, "carts/"+url.PathEscape(cartID)+"/checkout"), tenant: tenantID, op: "check out cart " + cartID}, &out)
	return out, err
}

// Order reads one order.
//
// API: GET /v1/customers/{customer-tenant-id}/orders/{order-id}
func (c *Client) Order(ctx context.Context, tenantID, orderID string) (Order, error) {
	var out Order
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: customerPath(tenantID, "orders/"+url.PathEscape(orderID)), tenant: tenantID, op: "get order " + orderID}, &out)
	return out, err
}

// Orders lists a customer's orders (newly created ones may take minutes to appear here; read them by id).
//
// API: GET /v1/customers/{customer-tenant-id}/orders
func (c *Client) Orders(ctx context.Context, tenantID string) ([]Order, error) {
	var p collection[Order]
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: customerPath(tenantID, "orders"), tenant: tenantID, op: "list orders of " + tenantID}, &p)
	return p.Items, err
}
