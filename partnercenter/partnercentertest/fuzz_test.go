package partnercentertest_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// FuzzServeHTTP sends arbitrary paths, queries, headers and bodies: the simulator answers every one of
// them without panicking and without a server error.
func FuzzServeHTTP(f *testing.F) {
	cust := customerID(1)
	for _, seed := range []struct {
		method uint8
		path   string
		header string
		body   []byte
	}{
		{0, "/v1/customers?size=2&filter=%7B%22Field%22%3A%22Domain%22%7D", "", nil},
		{0, "/v1/customers?seekOperation=Next", "AAAA.BBBB", nil},
		{1, "/v1/customers/" + cust + "/carts", "", []byte(`{"lineItems":[{"catalogItemId":"CFQ7TTC0LH18:0001:CFQ7TTC0K971","quantity":1,"billingCycle":"monthly","addonItems":[null,{}]}]}`)},
		{1, "/v1/customers/" + cust + "/agreements", "", []byte(`{"primaryContact":null,"dateAgreed":"tomorrow"}`)},
		{1, "/v1/customers/" + cust + "/agreements", "", []byte(`{"attestationId":"x"}`)},
		{1, "/v1/attestations/enhanced", "", []byte(`{"customerTenantId":"` + cust + `","country":"U"}`)},
		{2, "/v1/customers/" + cust + "/subscriptions/base", `W/"x"`, []byte(`{"quantity":-1,"status":null}`)},
		{2, "/v1/customers/" + cust + "/subscriptions/base", "", []byte(`null`)},
		{1, "/" + "tenant" + "/oauth2/v2.0/token", "", []byte("grant_type=refresh_token&refresh_token=%zz")},
		{0, "/v1/customers/" + cust + "/orders/%00", "", nil},
	} {
		f.Add(seed.method, seed.path, seed.header, seed.body)
	}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete}
	f.Fuzz(func(t *testing.T, method uint8, path, header string, body []byte) {
		srv := partnercentertest.New(partnercentertest.Options{AuthOptional: true, SandboxCaps: true})
		if err := srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso", DirectSigned: true,
			Subscriptions: []partnercentertest.Subscription{{ID: "base", OfferID: partnercentertest.CatalogBusinessBasic, Quantity: 3}}}); err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(methods[int(method)%len(methods)], "http://partnercenter.test", bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.URL.Path = path
		req.Header.Set("If-Match", header)
		req.Header.Set("MS-ContinuationToken", header)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", req.Method, path, rec.Code, rec.Body)
		}
	})
}
