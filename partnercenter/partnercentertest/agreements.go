package partnercentertest

import (
	"net/http"
	"strings"
	"time"
)

// Agreement types and templates.
const (
	AgreementMCA   = "MicrosoftCustomerAgreement"
	AgreementCloud = "MicrosoftCloudAgreement"
	// MCATemplateID is the Microsoft Customer Agreement template in every Microsoft sample.
	MCATemplateID = "117a77b0-9360-443b-8795-c6dedc750cf9"
	// CloudAgreementTemplateID is the Microsoft Cloud Agreement template id seen in older samples; its
	// agreement link is the simulator's choice.
	CloudAgreementTemplateID = "998b88de-aa99-4388-a42c-1b3517d49490"
)

type agreementTemplate struct {
	agreementType, templateID, link string
}

func agreementTemplates() []agreementTemplate {
	return []agreementTemplate{
		{agreementType: AgreementCloud, templateID: CloudAgreementTemplateID, link: "https://www.microsoft.com/licensing/docs/view/Microsoft-Cloud-Agreement"},
		{agreementType: AgreementMCA, templateID: MCATemplateID, link: "https://aka.ms/customeragreement"},
	}
}

// templateFor finds the current template of an agreement type, case-insensitively.
func templateFor(typ string) (agreementTemplate, bool) {
	for _, t := range agreementTemplates() {
		if strings.EqualFold(t.agreementType, typ) {
			return t, true
		}
	}
	return agreementTemplate{}, false
}

// agreementTypes resolves the agreementType query parameter. Without it Partner Center answers with the
// Microsoft Cloud Agreement only, for backward compatibility (a documented trap: the MCA is then missing);
// "*" means every type.
func agreementTypes(param string) ([]agreementTemplate, *apiError) {
	switch param {
	case "":
		t, _ := templateFor(AgreementCloud)
		return []agreementTemplate{t}, nil
	case "*":
		return agreementTemplates(), nil
	}
	t, found := templateFor(param)
	if !found {
		return nil, invalidInput("The agreementType %q is not supported; use %s, %s or *.", param, AgreementMCA, AgreementCloud)
	}
	return []agreementTemplate{t}, nil
}

// agreement is a partner-confirmed agreement of a customer.
type agreement struct {
	contact       contact
	templateID    string
	typ           string
	userID        string
	dateAgreed    time.Time
	attestationID string
}

type contact struct {
	FirstName   string `json:"firstName"`
	LastName    string `json:"lastName"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phoneNumber,omitempty"`
}

// same reports the same signatory: Partner Center allows another agreement of a type only when the first
// name, last name, email or phone differs. Case and surrounding spaces are ignored (simulator's choice).
func (c contact) same(o contact) bool {
	eq := func(a, b string) bool { return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b)) }
	return eq(c.FirstName, o.FirstName) && eq(c.LastName, o.LastName) && eq(c.Email, o.Email) && eq(c.PhoneNumber, o.PhoneNumber)
}

type agreementJSON struct {
	UserID         string  `json:"userId,omitempty"`
	PrimaryContact contact `json:"primaryContact"`
	TemplateID     string  `json:"templateId"`
	DateAgreed     string  `json:"dateAgreed"`
	Type           string  `json:"type"`
	AgreementLink  string  `json:"agreementLink,omitempty"`
	// AttestationID is set on agreements created from an enhanced attestation (inferred field).
	AttestationID string `json:"attestationId,omitempty"`
}

func renderAgreement(a *agreement, withLink bool) agreementJSON {
	out := agreementJSON{
		UserID: a.userID, PrimaryContact: a.contact, TemplateID: a.templateID, DateAgreed: formatTime(a.dateAgreed),
		Type: a.typ, AttestationID: a.attestationID,
	}
	if t, found := templateFor(a.typ); found && withLink {
		out.AgreementLink = t.link
	}
	return out
}

// agreementMetadata serves GET /v1/agreements[?agreementType=…].
func (s *Server) agreementMetadata(o *op, _ *route) result {
	ts, e := agreementTypes(o.query.Get("agreementType"))
	if e != nil {
		return e.result()
	}
	type metadata struct {
		TemplateID    string `json:"templateId"`
		AgreementType string `json:"agreementType"`
		AgreementLink string `json:"agreementLink"`
		VersionRank   int    `json:"versionRank"`
	}
	var items []metadata
	for _, t := range ts {
		items = append(items, metadata{TemplateID: t.templateID, AgreementType: t.agreementType, AgreementLink: t.link})
	}
	return ok(http.StatusOK, newCollection(items))
}

// listAgreements serves GET /v1/customers/{id}/agreements[?agreementType=…], with the same default as the
// metadata call.
func (s *Server) listAgreements(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	ts, e := agreementTypes(o.query.Get("agreementType"))
	if e != nil {
		return e.result()
	}
	var items []agreementJSON
	for _, a := range c.agreements {
		for _, t := range ts {
			if t.agreementType == a.typ {
				items = append(items, renderAgreement(a, true))
			}
		}
	}
	return ok(http.StatusOK, newCollection(items))
}

// agreementRequest is the body of POST /v1/customers/{id}/agreements: the documented Agreement resource,
// or (inferred) the enhanced form that names an accepted attestation.
type agreementRequest struct {
	AttestationID  string   `json:"attestationId"`
	PrimaryContact *contact `json:"primaryContact"`
	TemplateID     string   `json:"templateId"`
	DateAgreed     string   `json:"dateAgreed"`
	Type           string   `json:"type"`
}

// agreementTokenKind: the legacy create-agreement call takes app+user only; the enhanced one (a body with
// attestationId) app-only, like the attestation calls. A body that does not parse is judged as legacy and
// refused by the handler.
func agreementTokenKind(o *op) tokenKind {
	var req agreementRequest
	if decodeJSON(o.body, &req) == nil && req.AttestationID != "" {
		return appOnly
	}
	return appUserOnly
}

// createAgreement serves POST /v1/customers/{id}/agreements.
func (s *Server) createAgreement(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	var req agreementRequest
	if err := decodeJSON(o.body, &req); err != nil {
		return invalidInput("The agreement in the request body is not valid JSON: %v", err).result()
	}
	if req.AttestationID != "" {
		return s.finalizeAttestation(c, req)
	}
	typ, found := templateFor(req.Type)
	if !found {
		return invalidInput("The agreement type %q is not supported; use %s or %s.", req.Type, AgreementMCA, AgreementCloud).result()
	}
	if req.PrimaryContact == nil || strings.TrimSpace(req.PrimaryContact.FirstName) == "" ||
		strings.TrimSpace(req.PrimaryContact.LastName) == "" || strings.TrimSpace(req.PrimaryContact.Email) == "" {
		// Partner Center enforces these fields; its error code for them is undocumented (simulator's choice).
		return invalidInput("primaryContact.firstName, primaryContact.lastName and primaryContact.email are required.").result()
	}
	if !strings.EqualFold(req.TemplateID, typ.templateID) {
		return invalidInput("The templateId %q is not the current template of %s; read it from GET /v1/agreements.", req.TemplateID, typ.agreementType).result()
	}
	if req.DateAgreed == "" {
		return invalidInput("dateAgreed is required.").result()
	}
	date, err := parseTime(req.DateAgreed)
	if err != nil {
		return invalidInput("dateAgreed %q is not a date-time.", req.DateAgreed).result()
	}
	if date.After(s.now()) {
		return agreementError(http.StatusBadRequest, CodeOrgRegistrationIDNotSupported, "InvalidDateAgreed",
			"Date of agreement cannot be greater than the current date").result()
	}
	if dup := c.agreementWith(typ.agreementType, *req.PrimaryContact); dup {
		return agreementExists().result()
	}
	a := &agreement{contact: *req.PrimaryContact, templateID: typ.templateID, typ: typ.agreementType, userID: o.who.userID, dateAgreed: date.UTC()}
	c.agreements = append(c.agreements, a)
	return ok(http.StatusCreated, renderAgreement(a, false))
}

func (c *customer) agreementWith(typ string, ct contact) bool {
	for _, a := range c.agreements {
		if a.typ == typ && a.contact.same(ct) {
			return true
		}
	}
	return false
}

func agreementExists() *apiError {
	return agreementError(http.StatusBadRequest, CodeAgreementExists, "PartnerConfirmedAgreementAlreadyExists",
		"A partner confirmed agreement already exists for the customer.")
}

// directSignStatus serves GET /v1/customers/{id}/directSignedMicrosoftCustomerAgreementStatus, which
// needs an active reseller relationship.
func (s *Server) directSignStatus(o *op, rt *route) result {
	c, e := s.customerFor(o.param(rt, "customer"))
	if e != nil {
		return e.result()
	}
	if c.relationship == "none" {
		return noRelationship(s, c).result()
	}
	return ok(http.StatusOK, map[string]any{"isSigned": c.directSigned, "attributes": objectType("DirectSignedCustomerAgreementStatus")})
}

func noRelationship(s *Server, c *customer) *apiError {
	return newError(http.StatusForbidden, CodeNoRelationship, "The partner ID %s has no commerce relationship with the customer ID %s.", s.opts.PartnerTenantID, c.tenantID)
}

// formatTime writes a time as Partner Center does: UTC, RFC 3339.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// parseTime reads the date-times clients send: RFC 3339, or without a zone (taken as UTC), or a date.
func parseTime(v string) (time.Time, error) {
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}
