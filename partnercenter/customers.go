package partnercenter

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// Customer is a customer tenant of the partner. ID is the customer's Microsoft Entra tenant id.
type Customer struct {
	ID                    string          `json:"id"`
	CommerceID            string          `json:"commerceId,omitempty"`
	CompanyProfile        CompanyProfile  `json:"companyProfile"`
	BillingProfile        *BillingProfile `json:"billingProfile,omitempty"`
	RelationshipToPartner Enum            `json:"relationshipToPartner"`
	// AllowDelegatedAccess is only present when the customer was read by id.
	AllowDelegatedAccess *bool      `json:"allowDelegatedAccess,omitempty"`
	AssociatedPartnerID  string     `json:"associatedPartnerId,omitempty"`
	Attributes           Attributes `json:"attributes"`
}

// CompanyProfile is the customer's company as Partner Center knows it.
type CompanyProfile struct {
	TenantID    string `json:"tenantId"`
	Domain      string `json:"domain"`
	CompanyName string `json:"companyName"`
	Email       string `json:"email,omitempty"`
}

// BillingProfile is present when a customer is read by id.
type BillingProfile struct {
	ID             string   `json:"id,omitempty"`
	FirstName      string   `json:"firstName,omitempty"`
	LastName       string   `json:"lastName,omitempty"`
	Email          string   `json:"email,omitempty"`
	Culture        string   `json:"culture,omitempty"`
	Language       string   `json:"language,omitempty"`
	CompanyName    string   `json:"companyName,omitempty"`
	DefaultAddress *Address `json:"defaultAddress,omitempty"`
}

// Address is a postal address.
type Address struct {
	Country      string `json:"country,omitempty"`
	Region       string `json:"region,omitempty"`
	City         string `json:"city,omitempty"`
	State        string `json:"state,omitempty"`
	AddressLine1 string `json:"addressLine1,omitempty"`
	PostalCode   string `json:"postalCode,omitempty"`
	PhoneNumber  string `json:"phoneNumber,omitempty"`
}

// CustomerFilter narrows a customer list to company names or domains starting with Value (the only
// search Partner Center offers; case-insensitive).
type CustomerFilter struct {
	Field string // "CompanyName" or "Domain"
	Value string
}

// Filter fields.
const (
	FilterCompanyName = "CompanyName"
	FilterDomain      = "Domain"
)

// ListCustomersOptions shapes a customer list.
type ListCustomersOptions struct {
	// PageSize overrides the client's page size.
	PageSize int
	Filter   *CustomerFilter
}

// Customers lists every customer of the partner, one page at a time as the caller ranges: seek paging
// that follows links.next with its headers (MS-ContinuationToken). Only one page is held in memory. A
// failure is yielded once, as the last element.
//
// API: GET /v1/customers?size={size}[&filter={filter}], then links.next
func (c *Client) Customers(ctx context.Context, opts *ListCustomersOptions) iter.Seq2[Customer, error] {
	return func(yield func(Customer, error) bool) {
		size := c.opts.PageSize
		q := url.Values{}
		if opts != nil {
			if opts.PageSize > 0 {
				size = opts.PageSize
			}
			if f := opts.Filter; f != nil {
				if f.Field != FilterCompanyName && f.Field != FilterDomain {
					yield(Customer{}, fmt.Errorf("partnercenter: customers can be filtered by %s or %s, not %q", FilterCompanyName, FilterDomain, f.Field))
					return
				}
				filter, _ := json.Marshal(map[string]string{"Field": f.Field, "Value": f.Value, "Operator": "starts_with"})
				q.Set("filter", string(filter))
			}
		}
		q.Set("size", strconv.Itoa(size))
		for cust, err := range pages[Customer](ctx, c, call{method: http.MethodGet, path: "customers", query: q, op: "list customers"}) {
			if !yield(cust, err) {
				return
			}
		}
	}
}

// Customer reads one customer by tenant id, with its billing profile and delegated-access flag.
//
// API: GET /v1/customers/{customer-tenant-id}
func (c *Client) Customer(ctx context.Context, tenantID string) (Customer, error) {
	var cust Customer
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: "customers/" + url.PathEscape(tenantID), tenant: tenantID, op: "get customer " + tenantID}, &cust)
	return cust, err
}

// RelationshipRequestURL returns the link a customer's admin opens to accept the partner as reseller.
// Needs app+user authentication.
//
// API: GET /v1/customers/relationshiprequests
func (c *Client) RelationshipRequestURL(ctx context.Context) (string, error) {
	var r struct {
		URL string `json:"url"`
	}
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: "customers/relationshiprequests", auth: authAppUser, op: "get reseller relationship link"}, &r)
	return r.URL, err
}
