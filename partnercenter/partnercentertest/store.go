package partnercentertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Customer is a customer of the partner, as seeded with AddCustomer or Seed.
type Customer struct {
	// TenantID is the customer's Entra tenant id, which Partner Center uses as the customer id; empty
	// means generated.
	TenantID string
	// CompanyName is required.
	CompanyName string
	// Domain is the customer's default domain; empty means derived from CompanyName
	// ("contosoltd.onmicrosoft.com").
	Domain string
	// Relationship is relationshipToPartner: none, reseller (the default), advisor, syndication or
	// microsoft_support.
	Relationship string
	// Country is the ISO 3166-1 alpha-2 code of the billing address; empty means US.
	Country string
	// Email is the billing profile's email; empty means derived from Domain.
	Email string
	// AllowDelegatedAccess is what the customer-by-id call reports.
	AllowDelegatedAccess bool
	// DirectSigned reports that the customer accepted the Microsoft Customer Agreement in the Microsoft 365
	// admin center (directSignedMicrosoftCustomerAgreementStatus).
	DirectSigned  bool
	Subscriptions []Subscription `json:",omitempty"`
	Agreements    []Agreement    `json:",omitempty"`
}

// Subscription is a customer's subscription. In a seed file RefundWindow is a Go duration string
// ("168h") or nanoseconds.
type Subscription struct {
	// ID is empty for a generated one.
	ID string
	// OfferID is the new-commerce catalog item (product:sku:availability); OfferName defaults to the
	// catalog's name for it.
	OfferID, OfferName, FriendlyName string
	// ParentSubscriptionID makes this an add-on of another subscription of the same customer.
	ParentSubscriptionID string
	// Status is active (the default), suspended, deleted, expired, pending or disabled.
	Status string
	// BillingCycle defaults to monthly, TermDuration to P1Y.
	BillingCycle, TermDuration string
	Quantity                   int
	AutoRenew                  bool
	// CreatedOn is the purchase time; zero means now.
	CreatedOn time.Time
	// RefundWindow is how long after a purchase or seat addition seats may be removed and the subscription
	// cancelled; 0 means 7 days (168 hours), the new-commerce policy.
	RefundWindow time.Duration
}

// UnmarshalJSON reads a Subscription, taking RefundWindow as a duration string or nanoseconds.
func (sub *Subscription) UnmarshalJSON(data []byte) error {
	type plain Subscription
	var aux struct {
		plain
		RefundWindow json.RawMessage
	}
	// Strict like Seed: a misspelt field in a seed file is an error, not a silent default.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	*sub = Subscription(aux.plain)
	sub.RefundWindow = 0
	raw := bytes.TrimSpace(aux.RefundWindow)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return err
		}
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("RefundWindow: %w", err)
		}
		sub.RefundWindow = d
	default:
		var ns int64
		if err := json.Unmarshal(raw, &ns); err != nil {
			return fmt.Errorf("RefundWindow: %w", err)
		}
		sub.RefundWindow = time.Duration(ns)
	}
	return nil
}

// Agreement is an agreement the partner confirmed for a customer (a partner attestation).
type Agreement struct {
	// TemplateID defaults to the current template of Type; Type defaults to MicrosoftCustomerAgreement.
	TemplateID, Type string
	// FirstName, LastName and Email of the customer's signatory are required; Phone is optional.
	FirstName, LastName, Email, Phone string
	// DateAgreed defaults to now.
	DateAgreed time.Time
}

// customer is the simulator's state for one customer.
type customer struct {
	tenantID, companyName, domain, relationship, country, email string
	allowDelegatedAccess, directSigned                          bool
	commerceID, billingProfileID                                string

	agreements []*agreement
	subs       map[string]*subscription
	subOrder   []*subscription
	carts      map[string]*cart
	orders     map[string]*order
	orderOrder []*order
}

// activeSubscriptions counts subscriptions that hold a slot in the sandbox's per-customer limit.
func (c *customer) activeSubscriptions() int {
	n := 0
	for _, sub := range c.subOrder {
		if sub.status != "deleted" && sub.status != "expired" {
			n++
		}
	}
	return n
}

// hasMCA reports whether purchases are allowed: a partner-attested Microsoft Customer Agreement or the
// customer's own acceptance in the admin center.
func (c *customer) hasMCA() bool {
	if c.directSigned {
		return true
	}
	for _, a := range c.agreements {
		if a.typ == AgreementMCA {
			return true
		}
	}
	return false
}

var (
	countryCode = regexp.MustCompile(`^[A-Za-z]{2}$`)
	notDomain   = regexp.MustCompile(`[^a-z0-9]+`)
)

// relationships and subscriptionStatuses are the enum values a seed may use.
func relationships() []string {
	return []string{"none", "reseller", "advisor", "syndication", "microsoft_support"}
}

func subscriptionStatuses() []string {
	return []string{"active", "suspended", "deleted", "expired", "pending", "disabled"}
}

// AddCustomer adds a customer with its subscriptions and agreements. Everything is checked before
// anything is added: a customer id that is not a GUID or is taken, missing names, unknown enums, and, with
// SandboxCaps, the sandbox's limits (75 customers: Partner Center's 800018; 5 subscriptions: 800066; 25
// seats: 800067).
func (s *Server) AddCustomer(c Customer) error {
	now := s.now()
	cu, err := s.buildCustomer(c, now)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.customers[cu.tenantID] != nil {
		return fmt.Errorf("partnercentertest: customer %s already exists", cu.tenantID)
	}
	if s.opts.SandboxCaps && len(s.customerOrder) >= sandboxMaxCustomers {
		return fmt.Errorf("partnercentertest: customer %s: the sandbox limit of %d customers has been met (Partner Center code %d)", cu.tenantID, sandboxMaxCustomers, CodeSandboxLimit)
	}
	s.customers[cu.tenantID] = cu
	s.customerOrder = append(s.customerOrder, cu)
	return nil
}

// AddSubscription adds a subscription to an existing customer, as if it had been bought at sub.CreatedOn.
func (s *Server) AddSubscription(tenantID string, sc Subscription) error {
	sub, err := s.seedSubscription(sc, s.now())
	if err != nil {
		return fmt.Errorf("partnercentertest: subscription: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[normalizeID(tenantID)]
	switch {
	case c == nil:
		return fmt.Errorf("partnercentertest: no customer %s", tenantID)
	case c.subs[sub.id] != nil:
		return fmt.Errorf("partnercentertest: subscription %s already exists", sub.id)
	case sub.parentID != "" && c.subs[sub.parentID] == nil:
		return fmt.Errorf("partnercentertest: subscription %s: parent subscription %s is not one of the customer's", sub.id, sub.parentID)
	case s.opts.SandboxCaps && c.activeSubscriptions() >= sandboxMaxSubs:
		return fmt.Errorf("partnercentertest: subscription %s: the sandbox limit of %d subscriptions per customer has been met (Partner Center code %d)", sub.id, sandboxMaxSubs, CodeSandboxSubscriptions)
	}
	sub.customer = c
	c.subs[sub.id] = sub
	c.subOrder = append(c.subOrder, sub)
	return nil
}

func (s *Server) buildCustomer(c Customer, now time.Time) (*customer, error) {
	id := c.TenantID
	if id == "" {
		id = uuid.NewString()
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("partnercentertest: customer tenant id %q is not a GUID", c.TenantID)
	}
	id = u.String()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("partnercentertest: customer %s: "+format, append([]any{id}, args...)...)
	}
	if strings.TrimSpace(c.CompanyName) == "" {
		return nil, bad("CompanyName is required")
	}
	cu := &customer{
		tenantID: id, companyName: c.CompanyName, domain: strings.ToLower(c.Domain), relationship: strings.ToLower(c.Relationship),
		country: strings.ToUpper(c.Country), email: c.Email, allowDelegatedAccess: c.AllowDelegatedAccess, directSigned: c.DirectSigned,
		commerceID: uuid.NewString(), billingProfileID: uuid.NewString(),
		subs: map[string]*subscription{}, carts: map[string]*cart{}, orders: map[string]*order{},
	}
	if cu.domain == "" {
		cu.domain = strings.Trim(notDomain.ReplaceAllString(strings.ToLower(c.CompanyName), ""), "-") + ".onmicrosoft.com"
	}
	if cu.relationship == "" {
		cu.relationship = "reseller"
	}
	if !slices.Contains(relationships(), cu.relationship) {
		return nil, bad("Relationship %q is not one of %s", c.Relationship, strings.Join(relationships(), ", "))
	}
	if cu.country == "" {
		cu.country = "US"
	}
	if !countryCode.MatchString(cu.country) {
		return nil, bad("Country %q is not an ISO 3166-1 alpha-2 code", c.Country)
	}
	if cu.email == "" {
		cu.email = "billing@" + cu.domain
	}
	for i, a := range c.Agreements {
		ag, err := seedAgreement(a, now)
		if err != nil {
			return nil, bad("agreement %d: %v", i, err)
		}
		cu.agreements = append(cu.agreements, ag)
	}
	for i, sc := range c.Subscriptions {
		sub, err := s.seedSubscription(sc, now)
		if err != nil {
			return nil, bad("subscription %d: %v", i, err)
		}
		if cu.subs[sub.id] != nil {
			return nil, bad("subscription %s appears twice", sub.id)
		}
		sub.customer = cu
		cu.subs[sub.id] = sub
		cu.subOrder = append(cu.subOrder, sub)
	}
	for _, sub := range cu.subOrder {
		if sub.parentID != "" && (cu.subs[sub.parentID] == nil || sub.parentID == sub.id) {
			return nil, bad("subscription %s: parent subscription %s is not one of the customer's", sub.id, sub.parentID)
		}
	}
	if s.opts.SandboxCaps && cu.activeSubscriptions() > sandboxMaxSubs {
		return nil, bad("%d subscriptions exceed the sandbox limit of %d per customer (Partner Center code %d)", cu.activeSubscriptions(), sandboxMaxSubs, CodeSandboxSubscriptions)
	}
	return cu, nil
}

func seedAgreement(a Agreement, now time.Time) (*agreement, error) {
	typ := a.Type
	if typ == "" {
		typ = AgreementMCA
	}
	tmpl, ok := templateFor(typ)
	if !ok {
		return nil, fmt.Errorf("type %q is not %s or %s", a.Type, AgreementMCA, AgreementCloud)
	}
	if a.FirstName == "" || a.LastName == "" || a.Email == "" {
		return nil, errors.New("FirstName, LastName and Email are required")
	}
	ag := &agreement{
		contact:    contact{FirstName: a.FirstName, LastName: a.LastName, Email: a.Email, PhoneNumber: a.Phone},
		templateID: a.TemplateID, typ: tmpl.agreementType, dateAgreed: a.DateAgreed.UTC(),
	}
	if ag.templateID == "" {
		ag.templateID = tmpl.templateID
	}
	if ag.dateAgreed.IsZero() {
		ag.dateAgreed = now.UTC()
	}
	return ag, nil
}

func (s *Server) seedSubscription(sc Subscription, now time.Time) (*subscription, error) {
	id := sc.ID
	if id == "" {
		id = uuid.NewString()
	}
	sub := &subscription{
		id: strings.ToLower(id), offerID: sc.OfferID, offerName: sc.OfferName, friendlyName: sc.FriendlyName,
		parentID: strings.ToLower(sc.ParentSubscriptionID), status: strings.ToLower(sc.Status),
		billingCycle: strings.ToLower(sc.BillingCycle), termDuration: strings.ToUpper(sc.TermDuration),
		quantity: sc.Quantity, autoRenew: sc.AutoRenew, created: sc.CreatedOn.UTC(), refundWindow: sc.RefundWindow,
		orderID: newOrderID(),
	}
	if sub.offerID == "" {
		return nil, errors.New("OfferID is required")
	}
	if item, ok := catalogItem(sub.offerID); ok {
		sub.offerID = item.id
		if sub.offerName == "" {
			sub.offerName = item.name
		}
	}
	if sub.offerName == "" {
		sub.offerName = sub.offerID
	}
	if sub.friendlyName == "" {
		sub.friendlyName = sub.offerName
	}
	if sub.status == "" {
		sub.status = "active"
	}
	if !slices.Contains(subscriptionStatuses(), sub.status) {
		return nil, fmt.Errorf("Status %q is not one of %s", sc.Status, strings.Join(subscriptionStatuses(), ", "))
	}
	if sub.billingCycle == "" {
		sub.billingCycle = "monthly"
	}
	if sub.termDuration == "" {
		sub.termDuration = "P1Y"
	}
	if _, ok := termLength(sub.termDuration); !ok {
		return nil, fmt.Errorf("TermDuration %q is not P1M, P1Y or P3Y", sc.TermDuration)
	}
	if sub.quantity < 1 {
		return nil, fmt.Errorf("Quantity %d is below 1", sc.Quantity)
	}
	if s.opts.SandboxCaps && sub.quantity > sandboxMaxSeats {
		return nil, fmt.Errorf("Quantity %d exceeds the sandbox limit of %d seats per subscription (Partner Center code %d)", sub.quantity, sandboxMaxSeats, CodeSandboxSeats)
	}
	if sub.created.IsZero() {
		sub.created = now.UTC()
	}
	if sub.refundWindow <= 0 {
		sub.refundWindow = defaultRefundWindow
	}
	if until := sub.created.Add(sub.refundWindow); until.After(now) {
		sub.lots = []seatLot{{quantity: sub.quantity, until: until}}
	}
	sub.etag = newETag()
	return sub, nil
}

// Seed adds the customers of a JSON document {"customers": [Customer, …]} (field names as in Customer,
// any case). Unknown fields are refused, to catch typos. Customers before a failing one stay added.
func (s *Server) Seed(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("partnercentertest: seed: %w", err)
	}
	var doc struct {
		Customers []Customer `json:"customers"`
	}
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte(bom))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("partnercentertest: seed: %w", err)
	}
	for i, c := range doc.Customers {
		if err := s.AddCustomer(c); err != nil {
			return fmt.Errorf("partnercentertest: seed: customer %d: %w", i, err)
		}
	}
	return nil
}

// Customers counts the partner's customers.
func (s *Server) Customers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.customerOrder)
}

// RemoveCustomer ends the partner's relationship with a customer: it is no longer listed or readable, as
// when the customer removes the reseller relationship in the Microsoft 365 admin center.
func (s *Server) RemoveCustomer(tenantID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := normalizeID(tenantID)
	c := s.customers[id]
	if c == nil {
		return fmt.Errorf("partnercentertest: no customer %s", tenantID)
	}
	delete(s.customers, id)
	s.customerOrder = slices.DeleteFunc(s.customerOrder, func(o *customer) bool { return o == c })
	return nil
}

// Subscription returns the current state of a subscription (after any 202 update, even one no GET has
// observed yet).
func (s *Server) Subscription(tenantID, subscriptionID string) (Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[normalizeID(tenantID)]
	if c == nil {
		return Subscription{}, false
	}
	sub := c.subs[strings.ToLower(subscriptionID)]
	if sub == nil {
		return Subscription{}, false
	}
	return Subscription{
		ID: sub.id, OfferID: sub.offerID, OfferName: sub.offerName, FriendlyName: sub.friendlyName,
		ParentSubscriptionID: sub.parentID, Status: sub.status, BillingCycle: sub.billingCycle, TermDuration: sub.termDuration,
		Quantity: sub.quantity, AutoRenew: sub.autoRenew, CreatedOn: sub.created, RefundWindow: sub.refundWindow,
	}, true
}

// ChangeSubscription changes a subscription as Partner Center does on its own or as a person does in its
// portal (a seat change, a suspension, a renewal setting, a new term): the quantity when not zero, the
// status, billing cycle and term when not empty, and auto-renew. It gets a new ETag.
func (s *Server) ChangeSubscription(tenantID string, sc Subscription) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[normalizeID(tenantID)]
	if c == nil {
		return fmt.Errorf("partnercentertest: no customer %s", tenantID)
	}
	sub := c.subs[strings.ToLower(sc.ID)]
	if sub == nil {
		return fmt.Errorf("partnercentertest: customer %s has no subscription %s", tenantID, sc.ID)
	}
	if sc.Quantity > 0 {
		if sc.Quantity > sub.quantity {
			sub.lots = append(sub.lots, seatLot{quantity: sc.Quantity - sub.quantity, until: s.now().Add(sub.refundWindow)})
		}
		sub.quantity = sc.Quantity
	}
	if sc.Status != "" {
		sub.status = strings.ToLower(sc.Status)
	}
	if sc.BillingCycle != "" {
		sub.billingCycle = sc.BillingCycle
	}
	if sc.TermDuration != "" {
		sub.termDuration = sc.TermDuration
	}
	sub.autoRenew = sc.AutoRenew
	sub.etag = newETag()
	sub.stale = nil
	return nil
}

// Subscriptions returns the ids of a customer's subscriptions, in creation order.
func (s *Server) Subscriptions(tenantID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[normalizeID(tenantID)]
	if c == nil {
		return nil
	}
	ids := make([]string, len(c.subOrder))
	for i, sub := range c.subOrder {
		ids[i] = sub.id
	}
	return ids
}

// Orders counts a customer's orders.
func (s *Server) Orders(tenantID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[normalizeID(tenantID)]
	if c == nil {
		return 0
	}
	return len(c.orderOrder)
}

// SetDirectSigned records that the customer accepted (or, with false, never accepted) the Microsoft
// Customer Agreement in the Microsoft 365 admin center. An unknown tenant is ignored.
func (s *Server) SetDirectSigned(tenantID string, signed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.customers[normalizeID(tenantID)]; c != nil {
		c.directSigned = signed
	}
}

// normalizeID is the canonical form of a GUID (lower case, hyphenated), or the input when it is not one.
func normalizeID(id string) string {
	if u, err := uuid.Parse(id); err == nil {
		return u.String()
	}
	return id
}

// customerFor resolves the customer in a request path: 400 / 900118 for an id that is not a GUID, 404 /
// 60003 for an unknown one. The caller holds s.mu.
func (s *Server) customerFor(id string) (*customer, *apiError) {
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, newError(http.StatusBadRequest, CodeInvalidCustomerID, "Invalid Customer ID: %s", id)
	}
	c := s.customers[u.String()]
	if c == nil {
		return nil, newError(http.StatusNotFound, CodeTenantNotFound, "Tenant not found: %s", u.String())
	}
	return c, nil
}
