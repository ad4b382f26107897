package partnercentertest

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ---------------------------------------------------------------------------------------------------
// Enhanced MCA attestation: INFERRED WIRE SHAPE.
//
// Microsoft's page for POST /v1/attestations/enhanced could only be read up to the fifth request field
// (country, language, companyName, signatoryFirstName, signatoryLastName). Everything else here is the
// simulator's inference, kept in this one place so it is easy to correct once the real shape is known:
//   - request fields customerTenantId, signatoryEmail, signatoryPhoneNumber (optional);
//   - the response: the request echoed plus attestationId, status, attestationUrl, createdDateTime,
//     expirationDateTime, acceptedDateTime, finalizedDateTime and attributes.objectType;
//   - the read endpoint GET /v1/attestations/enhanced/{attestationId};
//   - the status values Pending, Accepted, Expired, Finalized;
//   - the link format https://cdn.partner.microsoft.com/mca/?attestationid={id} (seen in two distributors'
//     integrations, not in Microsoft's text);
//   - the create-agreement body {"attestationId", "type", "templateId"} and its errors 600030 (not accepted
//     yet), 600031 (expired), 600062 (an attestation already pending for the customer, 409).
// ---------------------------------------------------------------------------------------------------

type attestationRequest struct {
	CustomerTenantID     string `json:"customerTenantId"`
	Country              string `json:"country"`
	Language             string `json:"language"`
	CompanyName          string `json:"companyName"`
	SignatoryFirstName   string `json:"signatoryFirstName"`
	SignatoryLastName    string `json:"signatoryLastName"`
	SignatoryEmail       string `json:"signatoryEmail"`
	SignatoryPhoneNumber string `json:"signatoryPhoneNumber"`
}

type attestationJSON struct {
	AttestationID        string     `json:"attestationId"`
	CustomerTenantID     string     `json:"customerTenantId"`
	Country              string     `json:"country"`
	Language             string     `json:"language"`
	CompanyName          string     `json:"companyName"`
	SignatoryFirstName   string     `json:"signatoryFirstName"`
	SignatoryLastName    string     `json:"signatoryLastName"`
	SignatoryEmail       string     `json:"signatoryEmail"`
	SignatoryPhoneNumber string     `json:"signatoryPhoneNumber,omitempty"`
	Status               string     `json:"status"`
	AttestationURL       string     `json:"attestationUrl"`
	CreatedDateTime      string     `json:"createdDateTime"`
	ExpirationDateTime   string     `json:"expirationDateTime"`
	AcceptedDateTime     string     `json:"acceptedDateTime,omitempty"`
	FinalizedDateTime    string     `json:"finalizedDateTime,omitempty"`
	Attributes           attributes `json:"attributes"`
}

// Attestation statuses (inferred values).
const (
	AttestationPending   = "Pending"
	AttestationAccepted  = "Accepted"
	AttestationExpired   = "Expired"
	AttestationFinalized = "Finalized"
)

// AttestationURL is the customer-facing acceptance link of an attestation.
func AttestationURL(attestationID string) string {
	return "https://cdn.partner.microsoft.com/mca/?attestationid=" + attestationID
}

type attestation struct {
	id         string
	customerID string
	req        attestationRequest
	status     string
	created    time.Time
	expires    time.Time
	accepted   time.Time
	finalized  time.Time
}

// refresh expires a pending attestation whose link has lapsed. Once accepted, an attestation no longer
// expires (inferred: the lifetime is the link's, and the customer has used it).
func (a *attestation) refresh(now time.Time) {
	if a.status == AttestationPending && !now.Before(a.expires) {
		a.status = AttestationExpired
	}
}

func (a *attestation) signatory() contact {
	return contact{FirstName: a.req.SignatoryFirstName, LastName: a.req.SignatoryLastName, Email: a.req.SignatoryEmail, PhoneNumber: a.req.SignatoryPhoneNumber}
}

func renderAttestation(a *attestation) attestationJSON {
	out := attestationJSON{
		AttestationID: a.id, CustomerTenantID: a.customerID, Country: a.req.Country, Language: a.req.Language,
		CompanyName: a.req.CompanyName, SignatoryFirstName: a.req.SignatoryFirstName, SignatoryLastName: a.req.SignatoryLastName,
		SignatoryEmail: a.req.SignatoryEmail, SignatoryPhoneNumber: a.req.SignatoryPhoneNumber,
		Status: a.status, AttestationURL: AttestationURL(a.id),
		CreatedDateTime: formatTime(a.created), ExpirationDateTime: formatTime(a.expires),
		Attributes: objectType("EnhancedAttestation"),
	}
	if !a.accepted.IsZero() {
		out.AcceptedDateTime = formatTime(a.accepted)
	}
	if !a.finalized.IsZero() {
		out.FinalizedDateTime = formatTime(a.finalized)
	}
	return out
}

// createAttestation serves POST /v1/attestations/enhanced (app-only).
func (s *Server) createAttestation(o *op, _ *route) result {
	var req attestationRequest
	if err := decodeJSON(o.body, &req); err != nil {
		return invalidInput("The attestation in the request body is not valid JSON: %v", err).result()
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"customerTenantId", req.CustomerTenantID}, {"country", req.Country}, {"language", req.Language},
		{"companyName", req.CompanyName}, {"signatoryFirstName", req.SignatoryFirstName},
		{"signatoryLastName", req.SignatoryLastName}, {"signatoryEmail", req.SignatoryEmail},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		e := invalidInput("Required fields are missing: %s.", strings.Join(missing, ", "))
		e.data = missing
		return e.result()
	}
	if !countryCode.MatchString(req.Country) {
		return invalidInput("country %q must be an ISO 3166-1 alpha-2 code, such as US.", req.Country).result()
	}
	req.Country = strings.ToUpper(req.Country)
	if !strings.Contains(req.SignatoryEmail, "@") {
		return invalidInput("signatoryEmail %q is not an email address.", req.SignatoryEmail).result()
	}
	c, e := s.customerFor(req.CustomerTenantID)
	if e != nil {
		return e.result()
	}
	req.CustomerTenantID = c.tenantID
	now := s.now().UTC()
	for _, a := range s.attestOrder {
		a.refresh(now)
		if a.customerID == c.tenantID && a.status == AttestationPending {
			e := agreementError(http.StatusConflict, CodeAttestationAlreadyPending, "AttestationAlreadyPending",
				"An attestation is already pending for this customer.")
			e.parameters = map[string]string{"attestationId": a.id}
			e.data = []string{a.id}
			return e.result()
		}
	}
	a := &attestation{
		id: uuid.NewString(), customerID: c.tenantID, req: req, status: AttestationPending,
		created: now, expires: now.Add(s.opts.AttestationTTL),
	}
	s.attestations[a.id] = a
	s.attestOrder = append(s.attestOrder, a)
	if play := s.opts.OnAttestation; play != nil {
		go play(a.id, req.SignatoryEmail) // outside the request: it may call AcceptAttestation
	}
	return ok(http.StatusCreated, renderAttestation(a))
}

// getAttestation serves GET /v1/attestations/enhanced/{id} (app-only).
func (s *Server) getAttestation(o *op, rt *route) result {
	a := s.attestations[strings.ToLower(o.param(rt, "attestation"))]
	if a == nil {
		return attestationNotFound(o.param(rt, "attestation")).result()
	}
	a.refresh(s.now())
	return ok(http.StatusOK, renderAttestation(a))
}

func attestationNotFound(id string) *apiError {
	return newError(http.StatusNotFound, CodeNotFound, "Attestation %s not found.", id)
}

// finalizeAttestation creates the MCA from an accepted attestation (the enhanced create-agreement call).
// The caller holds s.mu.
func (s *Server) finalizeAttestation(c *customer, req agreementRequest) result {
	a := s.attestations[strings.ToLower(req.AttestationID)]
	if a == nil || a.customerID != c.tenantID {
		return attestationNotFound(req.AttestationID).result()
	}
	a.refresh(s.now())
	switch a.status {
	case AttestationPending:
		return agreementError(http.StatusBadRequest, CodeAttestationNotAccepted, "AttestationNotAccepted",
			"The customer has not accepted the agreement yet.").result()
	case AttestationExpired:
		return agreementError(http.StatusBadRequest, CodeAttestationExpired, "AttestationExpired",
			"The attestation has expired; create a new one.").result()
	case AttestationFinalized:
		return agreementExists().result()
	}
	if req.Type != "" && !strings.EqualFold(req.Type, AgreementMCA) {
		return invalidInput("An attestation confirms the %s, not %q.", AgreementMCA, req.Type).result()
	}
	if req.TemplateID != "" && !strings.EqualFold(req.TemplateID, MCATemplateID) {
		return invalidInput("The templateId %q is not the current template of %s.", req.TemplateID, AgreementMCA).result()
	}
	if c.agreementWith(AgreementMCA, a.signatory()) {
		return agreementExists().result()
	}
	ag := &agreement{contact: a.signatory(), templateID: MCATemplateID, typ: AgreementMCA, dateAgreed: a.accepted, attestationID: a.id}
	c.agreements = append(c.agreements, ag)
	a.status = AttestationFinalized
	a.finalized = s.now().UTC()
	return ok(http.StatusCreated, renderAgreement(ag, false))
}

// AcceptAttestation plays the customer who opened the link and accepted the agreement. Only a pending
// attestation can be accepted.
func (s *Server) AcceptAttestation(attestationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.attestations[strings.ToLower(attestationID)]
	if a == nil {
		return fmt.Errorf("partnercentertest: attestation %s not found", attestationID)
	}
	now := s.now().UTC()
	a.refresh(now)
	if a.status != AttestationPending {
		return fmt.Errorf("partnercentertest: attestation %s is %s, not %s", attestationID, a.status, AttestationPending)
	}
	a.status = AttestationAccepted
	a.accepted = now
	return nil
}

// ExpireAttestation makes a pending attestation's link expire unused, as if its lifetime had passed. An
// attestation already expired stays so; an accepted or finalized one cannot expire.
func (s *Server) ExpireAttestation(attestationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.attestations[strings.ToLower(attestationID)]
	if a == nil {
		return fmt.Errorf("partnercentertest: attestation %s not found", attestationID)
	}
	now := s.now().UTC()
	a.refresh(now)
	switch a.status {
	case AttestationPending:
		a.status = AttestationExpired
		a.expires = now
	case AttestationExpired:
	default:
		return fmt.Errorf("partnercentertest: attestation %s is %s and can no longer expire", attestationID, a.status)
	}
	return nil
}

// Attestations returns the ids of every attestation, in creation order.
func (s *Server) Attestations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.attestOrder))
	for i, a := range s.attestOrder {
		ids[i] = a.id
	}
	return ids
}
