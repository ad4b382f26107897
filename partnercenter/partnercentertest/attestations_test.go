package partnercentertest_test

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// attestationBody is a complete create-attestation request (inferred field names).
func attestationBody(tenantID string) map[string]any {
	return map[string]any{
		"customerTenantId": tenantID, "country": "US", "language": "en", "companyName": "Contoso",
		"signatoryFirstName": "Ann", "signatoryLastName": "Lee", "signatoryEmail": "ann@contoso.example", "signatoryPhoneNumber": "+1 425 555 0100",
	}
}

func finalizeBody(attestationID string) map[string]any {
	return map[string]any{"attestationId": attestationID, "type": "MicrosoftCustomerAgreement", "templateId": partnercentertest.MCATemplateID}
}

func TestAttestationLifecycle(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		cust := customerID(1)
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
		app, user := appClient(t, srv), userClient(t, srv)
		start := time.Now().UTC()

		res := app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust))
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
		created := res.object(t)
		id := created["attestationId"].(string)
		assert.Equal(t, partnercentertest.AttestationPending, created["status"])
		assert.Equal(t, cust, created["customerTenantId"])
		assert.Equal(t, "Ann", created["signatoryFirstName"])
		assert.Equal(t, "https://cdn.partner.microsoft.com/mca/?attestationid="+id, created["attestationUrl"])
		assert.Equal(t, start.Format(time.RFC3339Nano), created["createdDateTime"])
		assert.Equal(t, start.Add(7*24*time.Hour).Format(time.RFC3339Nano), created["expirationDateTime"], "7 days by default")
		assert.Equal(t, []string{id}, srv.Attestations())

		res = app.do(http.MethodPost, "customers/"+cust+"/agreements", finalizeBody(id))
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeAttestationNotAccepted, res.code(t), "not accepted yet")

		time.Sleep(2 * time.Hour)
		app, user = appClient(t, srv), userClient(t, srv) // access tokens last an hour
		require.NoError(t, srv.AcceptAttestation(id))
		acceptedAt := time.Now().UTC()
		got := app.getOK("attestations/enhanced/" + id)
		assert.Equal(t, partnercentertest.AttestationAccepted, got["status"])
		assert.Equal(t, acceptedAt.Format(time.RFC3339Nano), got["acceptedDateTime"])
		assert.Error(t, srv.AcceptAttestation(id), "only a pending attestation can be accepted")

		time.Sleep(time.Hour)
		app, user = appClient(t, srv), userClient(t, srv)
		res = app.do(http.MethodPost, "customers/"+cust+"/agreements", finalizeBody(id))
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
		ag := res.object(t)
		assert.Equal(t, acceptedAt.Format(time.RFC3339Nano), ag["dateAgreed"], "the agreement is dated when the customer accepted")
		assert.Equal(t, map[string]any{"firstName": "Ann", "lastName": "Lee", "email": "ann@contoso.example", "phoneNumber": "+1 425 555 0100"}, ag["primaryContact"])
		assert.Equal(t, partnercentertest.MCATemplateID, ag["templateId"])
		assert.Equal(t, partnercentertest.AgreementMCA, ag["type"])

		got = app.getOK("attestations/enhanced/" + id)
		assert.Equal(t, partnercentertest.AttestationFinalized, got["status"])
		assert.NotEmpty(t, got["finalizedDateTime"])

		res = app.do(http.MethodPost, "customers/"+cust+"/agreements", finalizeBody(id))
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeAgreementExists, res.code(t), "a second agreement from the same attestation")

		mca := items(t, user.getOK("customers/"+cust+"/agreements?agreementType=MicrosoftCustomerAgreement"))
		require.Len(t, mca, 1)
		assert.Equal(t, id, mca[0]["attestationId"])
	})
}

func TestAttestationExpiry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{AttestationTTL: time.Hour})
		cust := customerID(1)
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
		app := appClient(t, srv)
		create := func() string {
			res := app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust))
			require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
			return res.object(t)["attestationId"].(string)
		}

		byClock := create()
		time.Sleep(59 * time.Minute)
		assert.Equal(t, partnercentertest.AttestationPending, app.getOK("attestations/enhanced/" + byClock)["status"])
		time.Sleep(time.Minute)
		app = appClient(t, srv) // access tokens last an hour
		assert.Equal(t, partnercentertest.AttestationExpired, app.getOK("attestations/enhanced/" + byClock)["status"], "expired when the clock passes expirationDateTime")
		assert.Error(t, srv.AcceptAttestation(byClock), "an expired link cannot be accepted")
		res := app.do(http.MethodPost, "customers/"+cust+"/agreements", finalizeBody(byClock))
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeAttestationExpired, res.code(t))

		byHand := create()
		require.NoError(t, srv.ExpireAttestation(byHand))
		assert.Equal(t, partnercentertest.AttestationExpired, app.getOK("attestations/enhanced/" + byHand)["status"])
		assert.NoError(t, srv.ExpireAttestation(byHand), "expiring twice is harmless")

		accepted := create()
		require.NoError(t, srv.AcceptAttestation(accepted))
		assert.Error(t, srv.ExpireAttestation(accepted), "an accepted attestation cannot expire")
		time.Sleep(2 * time.Hour)
		app = appClient(t, srv)
		assert.Equal(t, partnercentertest.AttestationAccepted, app.getOK("attestations/enhanced/" + accepted)["status"], "nor by the clock")

		assert.Error(t, srv.AcceptAttestation(uuid.NewString()))
		assert.Error(t, srv.ExpireAttestation(uuid.NewString()))
		assert.Equal(t, []string{byClock, byHand, accepted}, srv.Attestations())
	})
}

// The link lifetime is a setting; by default it is seven days, the cap peers put on theirs, and a link not
// accepted by then reads Expired and can be neither accepted nor finalized.
func TestAttestationLinkLifetimeDefaultsToSevenDays(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := partnercentertest.New(partnercentertest.Options{})
		cust := customerID(1)
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
		app := appClient(t, srv)
		start := time.Now().UTC()
		res := app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust))
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
		created := res.object(t)
		id := created["attestationId"].(string)
		assert.Equal(t, start.Add(partnercentertest.DefaultAttestationTTL).Format(time.RFC3339Nano), created["expirationDateTime"])
		assert.Equal(t, 7*24*time.Hour, partnercentertest.DefaultAttestationTTL)

		time.Sleep(7*24*time.Hour - time.Second)
		app = appClient(t, srv) // access tokens last an hour
		assert.Equal(t, partnercentertest.AttestationPending, app.getOK("attestations/enhanced/" + id)["status"], "open until the seventh day ends")
		time.Sleep(time.Second)
		assert.Equal(t, partnercentertest.AttestationExpired, app.getOK("attestations/enhanced/" + id)["status"])
		assert.Error(t, srv.AcceptAttestation(id), "an expired link cannot be accepted")
		res = app.do(http.MethodPost, "customers/"+cust+"/agreements", finalizeBody(id))
		require.Equal(t, http.StatusBadRequest, res.status)
		assert.Equal(t, partnercentertest.CodeAttestationExpired, res.code(t))
	})
}

func TestAttestationPendingDuplicate(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust, other := customerID(1), customerID(2)
	for _, id := range []string{cust, other} {
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: id, CompanyName: "C " + id}))
	}
	app := appClient(t, srv)
	res := app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust))
	require.Equal(t, http.StatusCreated, res.status)
	first := res.object(t)["attestationId"].(string)

	res = app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust))
	require.Equal(t, http.StatusConflict, res.status, "%s", res.body)
	body := res.object(t)
	assert.EqualValues(t, partnercentertest.CodeAttestationAlreadyPending, body["code"])
	assert.Equal(t, []any{first}, body["data"])
	assert.Equal(t, map[string]any{"attestationId": first}, body["parameters"])
	assert.Equal(t, false, body["isRetryable"])

	assert.Equal(t, http.StatusCreated, app.do(http.MethodPost, "attestations/enhanced", attestationBody(other)).status, "another customer is not blocked")
	require.NoError(t, srv.ExpireAttestation(first))
	assert.Equal(t, http.StatusCreated, app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust)).status, "a new link after expiry")
}

func TestAttestationValidation(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust := customerID(1)
	require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: cust, CompanyName: "Contoso"}))
	app := appClient(t, srv)
	with := func(k string, v any) map[string]any {
		b := attestationBody(cust)
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	tests := []struct {
		name   string
		body   any
		status int
		code   int
	}{
		{"three-letter country", with("country", "USA"), 400, partnercentertest.CodeInvalidInput},
		{"numeric country", with("country", "12"), 400, partnercentertest.CodeInvalidInput},
		{"no language", with("language", nil), 400, partnercentertest.CodeInvalidInput},
		{"no signatory email", with("signatoryEmail", nil), 400, partnercentertest.CodeInvalidInput},
		{"email without @", with("signatoryEmail", "ann"), 400, partnercentertest.CodeInvalidInput},
		{"no customer", with("customerTenantId", nil), 400, partnercentertest.CodeInvalidInput},
		{"customer not a GUID", with("customerTenantId", "contoso"), 400, partnercentertest.CodeInvalidCustomerID},
		{"unknown customer", with("customerTenantId", customerID(2)), 404, partnercentertest.CodeTenantNotFound},
		{"not JSON", "[", 400, partnercentertest.CodeInvalidInput},
		{"lower-case country, no phone", func() map[string]any {
			b := with("signatoryPhoneNumber", nil)
			b["country"] = "us"
			return b
		}(), 201, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := app.withT(t).do(http.MethodPost, "attestations/enhanced", tt.body)
			require.Equal(t, tt.status, res.status, "%s", res.body)
			if tt.status != http.StatusCreated {
				assert.Equal(t, tt.code, res.code(t))
			}
		})
	}
	res := app.do(http.MethodPost, "attestations/enhanced", map[string]any{"country": "US"})
	require.Equal(t, http.StatusBadRequest, res.status)
	assert.Equal(t, []any{"customerTenantId", "language", "companyName", "signatoryFirstName", "signatoryLastName", "signatoryEmail"}, res.object(t)["data"],
		"every missing field is named")

	res = app.get("attestations/enhanced/" + uuid.NewString())
	assert.Equal(t, http.StatusNotFound, res.status)
	res = app.do(http.MethodPost, "customers/"+cust+"/agreements", finalizeBody(uuid.NewString()))
	assert.Equal(t, http.StatusNotFound, res.status, "unknown attestation")
}

func TestAttestationBelongsToItsCustomer(t *testing.T) {
	t.Parallel()
	srv := partnercentertest.New(partnercentertest.Options{})
	cust, other := customerID(1), customerID(2)
	for _, id := range []string{cust, other} {
		require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: id, CompanyName: "C " + id}))
	}
	app := appClient(t, srv)
	res := app.do(http.MethodPost, "attestations/enhanced", attestationBody(cust))
	require.Equal(t, http.StatusCreated, res.status)
	id := res.object(t)["attestationId"].(string)
	require.NoError(t, srv.AcceptAttestation(id))
	res = app.do(http.MethodPost, "customers/"+other+"/agreements", finalizeBody(id))
	assert.Equal(t, http.StatusNotFound, res.status, "another customer's attestation")
	res = app.do(http.MethodPost, "customers/"+cust+"/agreements", map[string]any{"attestationId": id, "type": "MicrosoftCloudAgreement"})
	assert.Equal(t, http.StatusBadRequest, res.status, "an attestation confirms the MCA only")
	res = app.do(http.MethodPost, "customers/"+cust+"/agreements", map[string]any{"attestationId": id})
	assert.Equal(t, http.StatusCreated, res.status, "type and templateId may be left out: %s", res.body)
}
