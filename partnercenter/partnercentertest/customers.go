package partnercentertest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// link is Partner Center's Link resource.
type link struct {
	URI     string       `json:"uri"`
	Method  string       `json:"method"`
	Headers []linkHeader `json:"headers"`
}

type linkHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func getLink(uri string) link { return link{URI: uri, Method: http.MethodGet, Headers: []linkHeader{}} }

type attributes struct {
	Etag       string `json:"etag,omitempty"`
	ObjectType string `json:"objectType"`
}

func objectType(t string) attributes { return attributes{ObjectType: t} }

// collection is Partner Center's ResourceCollection.
type collection struct {
	TotalCount        int             `json:"totalCount"`
	Items             any             `json:"items"`
	Links             map[string]link `json:"links,omitempty"`
	ContinuationToken string          `json:"continuationToken,omitempty"`
	Attributes        attributes      `json:"attributes"`
}

func newCollection[T any](items []T) collection {
	if items == nil {
		items = []T{}
	}
	return collection{TotalCount: len(items), Items: items, Attributes: objectType("Collection")}
}

type companyProfileJSON struct {
	TenantID    string          `json:"tenantId"`
	Domain      string          `json:"domain"`
	CompanyName string          `json:"companyName"`
	Links       map[string]link `json:"links,omitempty"`
	Attributes  attributes      `json:"attributes"`
}

type addressJSON struct {
	Country string `json:"country"`
}

type billingProfileJSON struct {
	ID             string          `json:"id"`
	Email          string          `json:"email"`
	Culture        string          `json:"culture"`
	Language       string          `json:"language"`
	CompanyName    string          `json:"companyName"`
	DefaultAddress addressJSON     `json:"defaultAddress"`
	Links          map[string]link `json:"links"`
	Attributes     attributes      `json:"attributes"`
}

type customerJSON struct {
	ID                    string              `json:"id"`
	CommerceID            string              `json:"commerceId,omitempty"`
	CompanyProfile        companyProfileJSON  `json:"companyProfile"`
	BillingProfile        *billingProfileJSON `json:"billingProfile,omitempty"`
	RelationshipToPartner string              `json:"relationshipToPartner"`
	AllowDelegatedAccess  *bool               `json:"allowDelegatedAccess,omitempty"`
	Links                 map[string]link     `json:"links"`
	Attributes            attributes          `json:"attributes"`
}

// renderCustomer writes a customer as the list does; full adds what only the by-id call returns
// (billing profile, allowDelegatedAccess, commerceId).
func renderCustomer(c *customer, full bool) customerJSON {
	out := customerJSON{
		ID: c.tenantID,
		CompanyProfile: companyProfileJSON{
			TenantID: c.tenantID, Domain: c.domain, CompanyName: c.companyName, Attributes: objectType("CustomerCompanyProfile"),
		},
		RelationshipToPartner: c.relationship,
		Links:                 map[string]link{"self": getLink("/customers/" + c.tenantID)},
		Attributes:            objectType("Customer"),
	}
	if full {
		out.CommerceID = c.commerceID
		out.CompanyProfile.Links = map[string]link{"self": getLink("/customers/" + c.tenantID + "/profiles/company")}
		allow := c.allowDelegatedAccess
		out.AllowDelegatedAccess = &allow
		out.BillingProfile = &billingProfileJSON{
			ID: c.billingProfileID, Email: c.email, Culture: "en-US", Language: "en", CompanyName: c.companyName,
			DefaultAddress: addressJSON{Country: c.country},
			Links:          map[string]link{"self": getLink("/customers/" + c.tenantID + "/profiles/billing")},
			Attributes:     attributes{Etag: c.billingProfileID[:8], ObjectType: "CustomerBillingProfile"},
		}
	}
	return out
}

// seekState is what a customers continuation token carries: where the next page starts in creation
// order, and the filter of the first request (the next-page request does not repeat it).
type seekState struct {
	Offset int    `json:"o"`
	Field  string `json:"f,omitempty"`
	Value  string `json:"v,omitempty"`
}

// encodeSeek makes an opaque continuation token, signed so that a made-up or altered one is refused.
func (s *Server) encodeSeek(st seekState) string {
	payload, _ := json.Marshal(st) // ints and strings always encode
	mac := hmac.New(sha256.New, s.pagingKey)
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

func (s *Server) decodeSeek(tok string) (seekState, bool) {
	p, m, found := strings.Cut(tok, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	sum, err2 := base64.RawURLEncoding.DecodeString(m)
	if !found || err1 != nil || err2 != nil {
		return seekState{}, false
	}
	mac := hmac.New(sha256.New, s.pagingKey)
	mac.Write(payload)
	if !hmac.Equal(sum, mac.Sum(nil)[:16]) {
		return seekState{}, false
	}
	var st seekState
	if json.Unmarshal(payload, &st) != nil || st.Offset < 0 {
		return seekState{}, false
	}
	return st, true
}

// customerFilter is the filter query parameter: URL-encoded JSON, starts_with on company name or domain.
type customerFilter struct {
	Field    string
	Value    string
	Operator string
}

func (f customerFilter) matches(c *customer) bool {
	var v string
	switch {
	case strings.EqualFold(f.Field, "CompanyName"):
		v = c.companyName
	case strings.EqualFold(f.Field, "Domain"):
		v = c.domain
	}
	return strings.HasPrefix(strings.ToLower(v), strings.ToLower(f.Value))
}

// listCustomers serves GET /v1/customers: seek paging in creation order. When more remain, links.next
// carries a relative uri without /v1 (Partner Center mixes both forms, so clients must cope) and the
// MS-ContinuationToken header to send; the body repeats the token as continuationToken. totalCount is the
// number of items on the page (inferred: the total is not documented for seek-based collections).
func (s *Server) listCustomers(o *op, _ *route) result {
	size := s.opts.MaxPageSize
	if v := o.query.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return invalidInput("The size parameter must be a non-negative integer, not %q.", v).result()
		}
		if n > 0 {
			size = min(n, s.opts.MaxPageSize)
		}
	}
	var st seekState
	switch seek := o.query.Get("seekOperation"); {
	case seek == "":
		if raw := o.query.Get("filter"); raw != "" {
			var f customerFilter
			if err := json.Unmarshal([]byte(raw), &f); err != nil {
				return invalidInput("The filter is not valid JSON: %v", err).result()
			}
			if !strings.EqualFold(f.Field, "CompanyName") && !strings.EqualFold(f.Field, "Domain") {
				return invalidInput("The filter field %q is not supported; use CompanyName or Domain.", f.Field).result()
			}
			if !strings.EqualFold(f.Operator, "starts_with") {
				return invalidInput("The filter operator %q is not supported; use starts_with.", f.Operator).result()
			}
			if f.Value == "" {
				return invalidInput("The filter value is empty.").result()
			}
			st.Field, st.Value = f.Field, f.Value
		}
	case strings.EqualFold(seek, "Next"):
		tok := o.header.Get("MS-ContinuationToken")
		if tok == "" {
			return invalidInput("seekOperation=Next needs the MS-ContinuationToken header from links.next.").result()
		}
		var valid bool
		if st, valid = s.decodeSeek(tok); !valid {
			return invalidInput("The continuation token is not valid.").result()
		}
	default:
		return invalidInput("The seekOperation %q is not supported; use Next.", seek).result()
	}
	f := customerFilter{Field: st.Field, Value: st.Value}
	var items []customerJSON
	i := min(st.Offset, len(s.customerOrder))
	for ; i < len(s.customerOrder) && len(items) < size; i++ {
		if c := s.customerOrder[i]; st.Field == "" || f.matches(c) {
			items = append(items, renderCustomer(c, false))
		}
	}
	more := false
	for j := i; j < len(s.customerOrder); j++ {
		if st.Field == "" || f.matches(s.customerOrder[j]) {
			more = true
			break
		}
	}
	out := newCollection(items)
	sizeText := strconv.Itoa(size)
	self := "/v1/customers?size=" + sizeText
	if st.Offset > 0 {
		self += "&seekOperation=Next"
	}
	out.Links = map[string]link{"self": getLink(self)}
	if more {
		tok := s.encodeSeek(seekState{Offset: i, Field: st.Field, Value: st.Value})
		next := getLink("/customers?size=" + sizeText + "&seekOperation=Next")
		next.Headers = []linkHeader{{Key: "MS-ContinuationToken", Value: tok}}
		out.Links["next"] = next
		out.ContinuationToken = tok
	}
	return ok(http.StatusOK, out)
}

// getCustomer serves GET /v1/customers/{id}.
func (s *Server) getCustomer(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	return ok(http.StatusOK, renderCustomer(c, true))
}

// relationshipRequest serves GET /v1/customers/relationshiprequests: the link a customer's admin opens to
// accept the partner as reseller.
func (s *Server) relationshipRequest(*op, *route) result {
	return ok(http.StatusOK, map[string]any{
		"url": "https://admin.microsoft.com/Adminportal/Home?invType=ResellerRelationship&partnerId=" + s.opts.PartnerTenantID +
			"&msppId=0&DAP=false#/BillingAccounts/partner-invitation",
		"attributes": objectType("RelationshipRequest"),
	})
}
