package partnercenter

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// AgreementMetadata describes an agreement template; read the template id from here, never hard-code it.
type AgreementMetadata struct {
	TemplateID    string `json:"templateId"`
	AgreementType string `json:"agreementType"`
	AgreementLink string `json:"agreementLink"`
	VersionRank   int    `json:"versionRank"`
}

// Contact is the person at the customer who accepted an agreement.
type Contact struct {
	FirstName   string `json:"firstName"`
	LastName    string `json:"lastName"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phoneNumber,omitempty"`
}

// Agreement is a customer's acceptance of an agreement, as Partner Center records it.
type Agreement struct {
	PrimaryContact Contact `json:"primaryContact"`
	TemplateID     string  `json:"templateId"`
	// DateAgreed is when the customer accepted, as the partner (or the attestation) reported it.
	DateAgreed    time.Time `json:"dateAgreed"`
	Type          string    `json:"type"`
	AgreementLink string    `json:"agreementLink,omitempty"`
	// UserID is the partner user who recorded it (derived by Partner Center from the token).
	UserID string `json:"userId,omitempty"`
}

// AgreementMetadata lists the templates of an agreement type (MicrosoftCustomerAgreement). Needs app+user
// authentication.
//
// API: GET /v1/agreements?agreementType={type}
func (c *Client) AgreementMetadata(ctx context.Context, agreementType string) ([]AgreementMetadata, error) {
	if agreementType == "" {
		return nil, fmt.Errorf("partnercenter: agreement metadata: pass an agreement type (Partner Center's default is the retired %s)", MicrosoftCloudAgreement)
	}
	var p collection[AgreementMetadata]
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: "agreements", query: url.Values{"agreementType": {agreementType}}, auth: authAppUser, op: "get agreement metadata"}, &p)
	return p.Items, err
}

// Agreements lists a customer's agreements of a type. Needs app+user authentication.
//
// API: GET /v1/customers/{customer-tenant-id}/agreements?agreementType={type}
func (c *Client) Agreements(ctx context.Context, tenantID, agreementType string) ([]Agreement, error) {
	if agreementType == "" {
		return nil, fmt.Errorf("partnercenter: agreements of %s: pass an agreement type (Partner Center's default is the retired %s)", tenantID, MicrosoftCloudAgreement)
	}
	var p collection[Agreement]
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: "customers/" + url.PathEscape(tenantID) + "/agreements",
		query: url.Values{"agreementType": {agreementType}}, auth: authAppUser, tenant: tenantID, op: "get agreements of " + tenantID}, &p)
	return p.Items, err
}

// CreateAgreement records a partner attestation of an agreement in the legacy form: contact and date, no
// attestation. DateAgreed is sent in UTC; a date in the future was refused by Partner Center (seen as
// 600002, see CodeOrgRegistrationIDNotSupported). An identical existing agreement is refused with 600061
// (IsAlreadyExists). Needs app+user authentication.
//
// Deprecated: Microsoft retired the legacy partner attestation on 5 January 2026: the Microsoft Customer
// Agreement is now confirmed through the enhanced attestation (CreateAttestation, the customer's acceptance
// on Microsoft's page, then CreateAgreementFromAttestation). The connector no longer calls this.
//
// API: POST /v1/customers/{customer-tenant-id}/agreements
func (c *Client) CreateAgreement(ctx context.Context, tenantID string, a Agreement) (Agreement, error) {
	a.DateAgreed = a.DateAgreed.UTC()
	if a.Type == "" {
		a.Type = MicrosoftCustomerAgreement
	}
	var out Agreement
	_, err := c.doJSON(ctx, call{method: http.MethodPost, path: "customers/" + url.PathEscape(tenantID) + "/agreements",
		body: a, auth: authAppUser, tenant: tenantID, op: "create agreement for " + tenantID}, &out)
	return out, err
}

// DirectSignedStatus reports whether the customer accepted the Microsoft Customer Agreement directly, in
// the Microsoft 365 admin center. Needs app+user authentication.
//
// API: GET /v1/customers/{customer-tenant-id}/directSignedMicrosoftCustomerAgreementStatus
func (c *Client) DirectSignedStatus(ctx context.Context, tenantID string) (bool, error) {
	var r struct {
		IsSigned bool `json:"isSigned"`
	}
	_, err := c.doJSON(ctx, call{method: http.MethodGet, path: "customers/" + url.PathEscape(tenantID) + "/directSignedMicrosoftCustomerAgreementStatus",
		auth: authAppUser, tenant: tenantID, op: "get direct-sign status of " + tenantID}, &r)
	return r.IsSigned, err
}
