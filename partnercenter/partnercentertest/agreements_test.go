package partnercentertest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

func TestAgreementMetadata(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	user := userClient(t, srv)

	res := user.get("agreements?agreementType=MicrosoftCustomerAgreement")
	require.Equal(t, http.StatusOK, res.status)
	assert.JSONEq(t, string(vector(t, "get-agreement-metadata-mca.json")), strings.TrimPrefix(string(res.body), bom),
		"the MCA metadata is Microsoft's sample, verbatim")

	tests := []struct {
		query string
		types []string
	}{
		{"", []string{partnercentertest.AgreementCloud}},
		{"?agreementType=*", []string{partnercentertest.AgreementCloud, partnercentertest.AgreementMCA}},
		{"?agreementType=microsoftcustomeragreement", []string{partnercentertest.AgreementMCA}},
		{"?agreementType=MicrosoftCloudAgreement", []string{partnercentertest.AgreementCloud}},
	}
	for _, tt := range tests {
		t.Run("agreementType"+tt.query, func(t *testing.T) {
			var got []string
			for _, it := range items(t, user.withT(t).getOK("agreements"+tt.query)) {
				got = append(got, it["agreementType"].(string))
			}
			assert.Equal(t, tt.types, got, "without agreementType only the Microsoft Cloud Agreement comes back")
		})
	}
	res = user.get("agreements?agreementType=ServiceAgreement")
	assert.Equal(t, http.StatusBadRequest, res.status)
}

func TestCreateAndListAgreements(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	srv := partnercentertest.New(partnercentertest.Options{Now: func() time.Time { return now }})
	cust := customerID(5)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	user := userClient(t, srv)
	path := "customers/" + cust + "/agreements"

	res := user.do(http.MethodPost, path, vector(t, "create-agreement-request.json"))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	var got, want map[string]any
	res.decode(t, &got)
	require.NoError(t, json.Unmarshal(vector(t, "create-agreement-response.json"), &want))
	assert.Equal(t, srv.PartnerUserID(), got["userId"], "userId is the partner user behind the app+user token")
	for _, k := range []string{"primaryContact", "templateId", "type"} {
		assert.Equal(t, want[k], got[k], k)
	}
	assert.Equal(t, "2018-06-14T00:00:00Z", got["dateAgreed"])

	assert.Empty(t, items(t, user.getOK(path)), "the default type is the Microsoft Cloud Agreement")
	mca := items(t, user.getOK(path+"?agreementType=MicrosoftCustomerAgreement"))
	require.Len(t, mca, 1)
	assert.Equal(t, "https://aka.ms/customeragreement", mca[0]["agreementLink"])
	assert.Equal(t, "Tania", mca[0]["primaryContact"].(map[string]any)["firstName"])
	assert.Len(t, items(t, user.getOK(path+"?agreementType=*")), 1)

	body := func(edit func(map[string]any)) map[string]any {
		b := map[string]any{
			"primaryContact": map[string]any{"firstName": "Tania", "lastName": "Carr", "email": "someone@example.com", "phoneNumber": "1234567890"},
			"templateId":     partnercentertest.MCATemplateID, "dateAgreed": "2025-03-01T11:00:00Z", "type": "MicrosoftCustomerAgreement",
		}
		edit(b)
		return b
	}
	contact := func(b map[string]any) map[string]any { return b["primaryContact"].(map[string]any) }
	tests := []struct {
		name   string
		body   any
		status int
		code   int
	}{
		{"same contact again", body(func(map[string]any) {}), 400, partnercentertest.CodeAgreementExists},
		{"same contact in other case", body(func(b map[string]any) { contact(b)["email"] = "SOMEONE@example.com" }), 400, partnercentertest.CodeAgreementExists},
		{"date in the future", body(func(b map[string]any) {
			contact(b)["phoneNumber"] = "555"
			b["dateAgreed"] = "2025-03-01T12:00:01Z"
		}), 400, partnercentertest.CodeOrgRegistrationIDNotSupported},
		{"local time sent as UTC is in the future", body(func(b map[string]any) {
			contact(b)["phoneNumber"] = "555"
			b["dateAgreed"] = "2025-03-01T13:00:00"
		}), 400, partnercentertest.CodeOrgRegistrationIDNotSupported},
		{"missing email", body(func(b map[string]any) { delete(contact(b), "email") }), 400, partnercentertest.CodeInvalidInput},
		{"no contact", body(func(b map[string]any) { delete(b, "primaryContact") }), 400, partnercentertest.CodeInvalidInput},
		{"retired template", body(func(b map[string]any) {
			contact(b)["phoneNumber"] = "555"
			b["templateId"] = "00000000-0000-0000-0000-000000000000"
		}), 400, partnercentertest.CodeInvalidInput},
		{"unknown type", body(func(b map[string]any) { b["type"] = "Handshake" }), 400, partnercentertest.CodeInvalidInput},
		{"no date", body(func(b map[string]any) {
			contact(b)["phoneNumber"] = "555"
			delete(b, "dateAgreed")
		}), 400, partnercentertest.CodeInvalidInput},
		{"not JSON", "{", 400, partnercentertest.CodeInvalidInput},
		{"another phone number", body(func(b map[string]any) { contact(b)["phoneNumber"] = "555" }), 201, 0},
		{"PascalCase, another signatory", map[string]any{
			"PrimaryContact": map[string]any{"FirstName": "Ann", "LastName": "Lee", "Email": "ann@example.com"},
			"TemplateId":     partnercentertest.MCATemplateID, "DateAgreed": "2025-02-01", "Type": "MicrosoftCustomerAgreement",
		}, 201, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := user.withT(t).do(http.MethodPost, path, tt.body)
			require.Equal(t, tt.status, res.status, "%s", res.body)
			if tt.status == http.StatusCreated {
				return
			}
			assert.Equal(t, tt.code, res.code(t))
		})
	}
	assert.Len(t, items(t, user.getOK(path+"?agreementType=MicrosoftCustomerAgreement")), 3)
}

// TestAgreementErrorShape checks the agreements error shape of Microsoft's 600061 sample, field by field.
func TestAgreementErrorShape(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(6)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	user := userClient(t, srv)
	body := vector(t, "create-agreement-request.json")
	require.Equal(t, http.StatusCreated, user.do(http.MethodPost, "customers/"+cust+"/agreements", body).status)
	res := user.do(http.MethodPost, "customers/"+cust+"/agreements", body)
	require.Equal(t, http.StatusBadRequest, res.status)
	assert.JSONEq(t, `{
		"code": 600061,
		"message": "A partner confirmed agreement already exists for the customer.",
		"description": "A partner confirmed agreement already exists for the customer.",
		"errorName": "PartnerConfirmedAgreementAlreadyExists",
		"isRetryable": false,
		"parameters": {},
		"errorMessageExtended": "InternalErrorCode=600061"
	}`, string(bytes.TrimPrefix(res.body, []byte(bom))))
}

func TestDirectSignStatus(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust, none := customerID(1), customerID(2)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: none, CompanyName: "Former", Relationship: "none"}))
	user := userClient(t, srv)
	path := "customers/" + cust + "/directSignedMicrosoftCustomerAgreementStatus"
	assert.Equal(t, false, user.getOK(path)["isSigned"])
	srv.SetDirectSigned(cust, true)
	got := user.getOK(path)
	assert.Equal(t, true, got["isSigned"])
	assert.Equal(t, "DirectSignedCustomerAgreementStatus", got["attributes"].(map[string]any)["objectType"])
	srv.SetDirectSigned(customerID(99), true) // unknown: ignored

	res := user.get("customers/" + none + "/directSignedMicrosoftCustomerAgreementStatus")
	assert.Equal(t, http.StatusForbidden, res.status, "needs an active reseller relationship")
	assert.Equal(t, partnercentertest.CodeNoRelationship, res.code(t))
}
