package partnercentertest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// seedCustomers adds n customers named "Customer 0000" … with domains customer0000.example.
func seedCustomers(t *testing.T, srv *partnercentertest.Server, n int) {
	t.Helper()
	for i := range n {
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{
			TenantID: customerID(i), CompanyName: fmt.Sprintf("Customer %04d", i), Domain: fmt.Sprintf("customer%04d.example", i),
		}))
	}
}

// page is one customers page as a client sees it.
type page struct {
	ids      []string
	next     string
	headers  map[string]string
	token    string
	total    int
	selfLink string
}

func readPage(t *testing.T, res response) page {
	t.Helper()
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	var body struct {
		TotalCount int `json:"totalCount"`
		Items      []struct {
			ID             string `json:"id"`
			CompanyProfile struct {
				TenantID string `json:"tenantId"`
			} `json:"companyProfile"`
			Attributes struct {
				ObjectType string `json:"objectType"`
			} `json:"attributes"`
		} `json:"items"`
		Links struct {
			Self struct{ URI string } `json:"self"`
			Next *struct {
				URI     string `json:"uri"`
				Method  string `json:"method"`
				Headers []struct {
					Key   string `json:"key"`
					Value string `json:"value"`
				} `json:"headers"`
			} `json:"next"`
		} `json:"links"`
		ContinuationToken string `json:"continuationToken"`
		Attributes        struct {
			ObjectType string `json:"objectType"`
		} `json:"attributes"`
	}
	res.decode(t, &body)
	assert.Equal(t, "Collection", body.Attributes.ObjectType)
	p := page{total: body.TotalCount, token: body.ContinuationToken, selfLink: body.Links.Self.URI, headers: map[string]string{}}
	for _, it := range body.Items {
		assert.Equal(t, it.ID, it.CompanyProfile.TenantID)
		assert.Equal(t, "Customer", it.Attributes.ObjectType)
		p.ids = append(p.ids, it.ID)
	}
	if n := body.Links.Next; n != nil {
		assert.Equal(t, http.MethodGet, n.Method)
		p.next = n.URI
		for _, h := range n.Headers {
			p.headers[h.Key] = h.Value
		}
	}
	return p
}

// follow requests links.next the way a client must: the uri is relative and may lack /v1, and its
// headers go along.
func follow(t *testing.T, c client, p page) response {
	t.Helper()
	path := strings.TrimPrefix(p.next, "/")
	path = strings.TrimPrefix(path, "v1/")
	var headers []string
	for k, v := range p.headers {
		headers = append(headers, k, v)
	}
	return c.get(path, headers...)
}

func TestCustomersSeekPaging(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{DisableRateLimit: true})
	const total = 1234
	seedCustomers(t, srv, total)
	app := appClient(t, srv)

	seen := map[string]int{}
	var order []string
	p := readPage(t, app.get("customers?size=100"))
	pages := 1
	for {
		assert.Equal(t, len(p.ids), p.total, "totalCount is the size of the page")
		for _, id := range p.ids {
			seen[id]++
			order = append(order, id)
		}
		if p.next == "" {
			assert.Empty(t, p.token, "no continuation token on the last page")
			break
		}
		require.Len(t, p.ids, 100, "only the last page is short")
		assert.Equal(t, "/customers?size=100&seekOperation=Next", p.next, "links.next is relative and has no /v1")
		assert.Equal(t, p.token, p.headers["MS-ContinuationToken"], "the body repeats the token of links.next")
		p = readPage(t, follow(t, app, p))
		pages++
	}
	assert.Equal(t, 13, pages)
	assert.Len(t, seen, total)
	for id, n := range seen {
		assert.Equal(t, 1, n, "customer %s visited once", id)
	}
	for i, id := range order {
		require.Equal(t, customerID(i), id, "creation order")
	}
}

func TestCustomersPagingErrorsAndCaps(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{MaxPageSize: 50})
	seedCustomers(t, srv, 120)
	app := appClient(t, srv)

	first := readPage(t, app.get("customers"))
	assert.Len(t, first.ids, 50, "no size: the maximum page size")
	capped := readPage(t, app.get("customers?size=500"))
	assert.Len(t, capped.ids, 50, "size is capped at MaxPageSize")
	assert.Equal(t, "/customers?size=50&seekOperation=Next", capped.next)
	assert.Equal(t, "/v1/customers?size=50", capped.selfLink)

	tests := []struct {
		name    string
		path    string
		headers []string
	}{
		{"next without token", "customers?size=50&seekOperation=Next", nil},
		{"forged token", "customers?size=50&seekOperation=Next", []string{"MS-ContinuationToken", "AQAAAA=="}},
		{"altered token", "customers?size=50&seekOperation=Next", []string{"MS-ContinuationToken", strings.Replace(first.token, "e", "f", 1)}},
		{"unknown seek operation", "customers?size=50&seekOperation=Previous", []string{"MS-ContinuationToken", first.token}},
		{"bad size", "customers?size=ten", nil},
		{"negative size", "customers?size=-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := app.withT(t).get(tt.path, tt.headers...)
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			assert.Equal(t, partnercentertest.CodeInvalidInput, res.code(t))
		})
	}
	second := readPage(t, follow(t, app, first))
	assert.Equal(t, customerID(50), second.ids[0])
	again := readPage(t, follow(t, app, first))
	assert.Equal(t, second.ids, again.ids, "a continuation token can be replayed (a retried page)")
}

func TestCustomersFilter(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	for i, name := range []string{"Contoso Ltd", "contoso Pharma", "Fabrikam", "Contour Inc", "Adatum"} {
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: customerID(i), CompanyName: name}))
	}
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: customerID(9), CompanyName: "Northwind", Domain: "CONTOSO-west.example"}))
	app := appClient(t, srv)
	filter := func(field, value, operator string) string {
		data, err := json.Marshal(map[string]string{"Field": field, "Value": value, "Operator": operator})
		require.NoError(t, err)
		return "customers?size=2&filter=" + url.QueryEscape(string(data))
	}
	tests := []struct {
		name   string
		path   string
		status int
		want   []string
	}{
		{"company name, any case, across pages", filter("CompanyName", "CONTO", "starts_with"), 200, []string{customerID(0), customerID(1), customerID(3)}},
		{"domain", filter("Domain", "contoso", "starts_with"), 200, []string{customerID(0), customerID(1), customerID(9)}},
		{"no match", filter("CompanyName", "Zeta", "starts_with"), 200, nil},
		{"field name any case", filter("companyname", "fab", "starts_with"), 200, []string{customerID(2)}},
		{"unsupported field", filter("IndirectReseller", "x", "starts_with"), 400, nil},
		{"unsupported operator", filter("CompanyName", "Contoso", "contains"), 400, nil},
		{"empty value", filter("CompanyName", "", "starts_with"), 400, nil},
		{"not JSON", "customers?filter=" + url.QueryEscape("CompanyName eq 'x'"), 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := app.withT(t)
			res := c.get(tt.path)
			require.Equal(t, tt.status, res.status, "%s", res.body)
			if tt.status != http.StatusOK {
				assert.Equal(t, partnercentertest.CodeInvalidInput, res.code(t))
				return
			}
			var got []string
			for p := readPage(t, res); ; p = readPage(t, follow(t, c, p)) {
				got = append(got, p.ids...)
				if p.next == "" {
					break
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestGetCustomer(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	id := customerID(42)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{
		TenantID: strings.ToUpper(id), CompanyName: "Wingtip Toys", Country: "de", AllowDelegatedAccess: true,
	}))
	app := appClient(t, srv)
	got := app.getOK("customers/" + id)
	assert.Equal(t, id, got["id"], "ids are normalised to lower case")
	assert.NotEmpty(t, got["commerceId"])
	assert.Equal(t, true, got["allowDelegatedAccess"])
	assert.Equal(t, "reseller", got["relationshipToPartner"])
	profile := got["companyProfile"].(map[string]any)
	assert.Equal(t, id, profile["tenantId"])
	assert.Equal(t, "wingtiptoys.onmicrosoft.com", profile["domain"])
	assert.Equal(t, "Wingtip Toys", profile["companyName"])
	billing := got["billingProfile"].(map[string]any)
	assert.Equal(t, "billing@wingtiptoys.onmicrosoft.com", billing["email"])
	assert.Equal(t, "en-US", billing["culture"])
	assert.Equal(t, "en", billing["language"])
	assert.Equal(t, "DE", billing["defaultAddress"].(map[string]any)["country"])
	assert.Equal(t, "Customer", got["attributes"].(map[string]any)["objectType"])

	list := readPage(t, app.get("customers"))
	require.Len(t, list.ids, 1)
	var raw map[string]any
	app.get("customers").decode(t, &raw)
	item := items(t, raw)[0]
	assert.NotContains(t, item, "billingProfile", "the list omits what only the by-id call returns")
	assert.NotContains(t, item, "allowDelegatedAccess")

	res := app.get("customers/" + customerID(43))
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, partnercentertest.CodeTenantNotFound, res.code(t))
	res = app.get("customers/not-a-guid")
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, partnercentertest.CodeInvalidCustomerID, res.code(t))
}

func TestRelationshipRequest(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	got := userClient(t, srv).getOK("customers/relationshiprequests")
	assert.Equal(t, "https://admin.microsoft.com/Adminportal/Home?invType=ResellerRelationship&partnerId="+srv.PartnerTenantID()+
		"&msppId=0&DAP=false#/BillingAccounts/partner-invitation", got["url"])
	assert.Equal(t, "RelationshipRequest", got["attributes"].(map[string]any)["objectType"])
}

func TestSeed(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	doc := `{"customers": [
		{"tenantId": "` + customerID(1) + `", "companyName": "Contoso", "directSigned": true,
		 "subscriptions": [{"id": "sub-1", "offerId": "` + partnercentertest.CatalogBusinessBasic + `", "quantity": 10, "refundWindow": "72h"},
		                   {"id": "sub-2", "offerId": "` + partnercentertest.CatalogExtraStorage + `", "quantity": 1, "parentSubscriptionId": "sub-1", "RefundWindow": 3600000000000}],
		 "agreements": [{"firstName": "Ann", "lastName": "Lee", "email": "ann@contoso.example", "dateAgreed": "2024-01-02T03:04:05Z"}]}
	]}`
	require.NoError(t, srv.Seed(strings.NewReader(bom+doc)))
	assert.Equal(t, 1, srv.Customers())
	sub, found := srv.Subscription(customerID(1), "SUB-1")
	require.True(t, found)
	assert.Equal(t, "Microsoft 365 Business Basic", sub.OfferName, "the offer name comes from the catalog")
	assert.Equal(t, 72*time.Hour, sub.RefundWindow)
	assert.Equal(t, "active", sub.Status)
	assert.Equal(t, "monthly", sub.BillingCycle)
	assert.Equal(t, "P1Y", sub.TermDuration)
	addOn, _ := srv.Subscription(customerID(1), "sub-2")
	assert.Equal(t, time.Hour, addOn.RefundWindow)
	assert.Equal(t, "sub-1", addOn.ParentSubscriptionID)
	assert.Equal(t, []string{"sub-1", "sub-2"}, srv.Subscriptions(customerID(1)))
	agreements := userClient(t, srv).getOK("customers/" + customerID(1) + "/agreements?agreementType=MicrosoftCustomerAgreement")
	require.Len(t, items(t, agreements), 1)
	assert.Equal(t, partnercentertest.MCATemplateID, items(t, agreements)[0]["templateId"])

	assert.ErrorContains(t, srv.Seed(strings.NewReader(`{"customers": [{"companyName": "X", "colour": "red"}]}`)), "colour")
	assert.Error(t, srv.Seed(strings.NewReader(`{"customers": [{"companyName": "X", "subscriptions": [{"offerId": "a", "quantity": 1, "refundWindow": "soon"}]}]}`)))
}

func TestAddCustomerValidation(t *testing.T) {
	t.Parallel()
	basic := partnercentertest.CatalogBusinessBasic
	tests := []struct {
		name     string
		customer partnercentertest.Customer
		sandbox  bool
		err      string
	}{
		{"tenant id not a GUID", partnercentertest.Customer{TenantID: "contoso", CompanyName: "C"}, false, "not a GUID"},
		{"no company name", partnercentertest.Customer{}, false, "CompanyName"},
		{"bad relationship", partnercentertest.Customer{CompanyName: "C", Relationship: "friend"}, false, "Relationship"},
		{"bad country", partnercentertest.Customer{CompanyName: "C", Country: "USA"}, false, "Country"},
		{"subscription without offer", partnercentertest.Customer{CompanyName: "C", Subscriptions: []partnercentertest.Subscription{{Quantity: 1}}}, false, "OfferID"},
		{"zero seats", partnercentertest.Customer{CompanyName: "C", Subscriptions: []partnercentertest.Subscription{{OfferID: basic}}}, false, "Quantity"},
		{"bad status", partnercentertest.Customer{CompanyName: "C", Subscriptions: []partnercentertest.Subscription{{OfferID: basic, Quantity: 1, Status: "paused"}}}, false, "Status"},
		{"unknown parent", partnercentertest.Customer{CompanyName: "C", Subscriptions: []partnercentertest.Subscription{{OfferID: basic, Quantity: 1, ParentSubscriptionID: "nope"}}}, false, "parent"},
		{"agreement without email", partnercentertest.Customer{CompanyName: "C", Agreements: []partnercentertest.Agreement{{FirstName: "A", LastName: "B"}}}, false, "Email"},
		{"sandbox seats", partnercentertest.Customer{CompanyName: "C", Subscriptions: []partnercentertest.Subscription{{OfferID: basic, Quantity: 26}}}, true, "800067"},
		{"sandbox subscriptions", partnercentertest.Customer{CompanyName: "C", Subscriptions: []partnercentertest.Subscription{
			{OfferID: basic, Quantity: 1}, {OfferID: basic, Quantity: 1}, {OfferID: basic, Quantity: 1},
			{OfferID: basic, Quantity: 1}, {OfferID: basic, Quantity: 1}, {OfferID: basic, Quantity: 1},
		}}, true, "800066"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := partnercentertest.New(partnercentertest.Options{SandboxCaps: tt.sandbox})
			assert.ErrorContains(t, srv.AddCustomer(tt.customer), tt.err)
			assert.Zero(t, srv.Customers(), "nothing is added")
		})
	}

	t.Run("duplicate", func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: customerID(1), CompanyName: "A"}))
		assert.ErrorContains(t, srv.AddCustomer(partnercentertest.Customer{TenantID: strings.ToUpper(customerID(1)), CompanyName: "B"}), "already exists")
	})
	t.Run("sandbox customers", func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{SandboxCaps: true})
		seedCustomers(t, srv, 75)
		assert.ErrorContains(t, srv.AddCustomer(partnercentertest.Customer{CompanyName: "One too many"}), "800018")
		assert.Equal(t, 75, srv.Customers())
	})
}
