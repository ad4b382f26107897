package partnercentertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// Example starts a simulator with one customer, gets an app-only token from its token endpoint and
// lists the customers.
func Example() {
	srv, err := partnercentertest.NewServer(partnercentertest.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	if err := srv.AddCustomer(partnercentertest.Customer{CompanyName: "Contoso Ltd", Country: "GB"}); err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	tok, err := srv.AppCredential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{partnercentertest.Scope}})
	if err != nil {
		fmt.Println(err)
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/customers?size=100", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	body = bytes.TrimPrefix(body, []byte("\ufeff")) // Partner Center bodies start with a byte-order mark
	var page struct {
		Items []struct {
			CompanyProfile struct {
				CompanyName string `json:"companyName"`
				Domain      string `json:"domain"`
			} `json:"companyProfile"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range page.Items {
		fmt.Println(resp.StatusCode, c.CompanyProfile.CompanyName, c.CompanyProfile.Domain)
	}
	// Output: 200 Contoso Ltd contosoltd.onmicrosoft.com
}
