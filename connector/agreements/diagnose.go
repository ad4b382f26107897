package agreements

import (
	"cmp"
	"context"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// Diagnosis is what `connector diagnose agreement` shows: the row, what Partner Center says now,
// and what the connector would do.
type Diagnosis struct {
	ID                dataverse.GUID `json:"id"`
	Name              string         `json:"name"`
	Customer          string         `json:"customer,omitempty"`
	TenantID          string         `json:"tenantId,omitempty"`
	Status            string         `json:"status"` // Pending, Active, Inactive
	AttestationStatus string         `json:"attestationStatus"`
	AcceptancePath    string         `json:"acceptancePath,omitempty"`
	AttestationID     string         `json:"attestationId,omitempty"`
	AcceptanceURL     string         `json:"acceptanceUrl,omitempty"`
	LinkExpiresOn     *time.Time     `json:"linkExpiresOn,omitempty"`
	DateAgreed        *time.Time     `json:"dateAgreed,omitempty"`
	VerifiedOn        *time.Time     `json:"verifiedOn,omitempty"`
	Message           string         `json:"message,omitempty"`
	// PartnerCenter is what Partner Center says now; a read that failed says why in its Error.
	PartnerCenter PartnerCenterView `json:"partnerCenter"`
	// Problems are what stops a link request (empty when none).
	Problems []string `json:"problems,omitempty"`
	// Path is how the customer accepted, by Partner Center's evidence ("" when not accepted).
	Path string `json:"path,omitempty"`
	// Next is what the connector would do now, and what a person should do.
	Next string `json:"next"`
}

// PartnerCenterView is Partner Center's side of an agreement.
type PartnerCenterView struct {
	Attestation      *partnercenter.Attestation `json:"attestation,omitempty"`
	AttestationError string                     `json:"attestationError,omitempty"`
	Agreements       []partnercenter.Agreement  `json:"agreements"`
	AgreementsError  string                     `json:"agreementsError,omitempty"`
	DirectSigned     *bool                      `json:"directSigned,omitempty"`
	DirectSignError  string                     `json:"directSignError,omitempty"`
}

// Diagnose reads one agreement and everything Partner Center says about its customer, without changing
// anything, and says what the check would decide.
func (g *Workflow) Diagnose(ctx context.Context, id dataverse.GUID) (Diagnosis, error) {
	f, err := g.load(ctx, id)
	if err != nil {
		return Diagnosis{}, err
	}
	if err := g.withProvider(ctx, &f); err != nil {
		return Diagnosis{}, err
	}
	a := f.Agreement
	d := Diagnosis{ID: a.ID, Name: a.Name, AttestationStatus: schema.OptionLabel(schema.TableAgreement, "csp_attestationstatus", int(a.AttestationStatus)),
		AcceptancePath: schema.OptionLabel(schema.TableAgreement, "csp_acceptancepath", int(a.AcceptancePath)), AttestationID: a.AttestationID,
		AcceptanceURL: a.AcceptanceURL, LinkExpiresOn: timePtr(a.LinkExpiresOn), DateAgreed: timePtr(a.DateAgreed), VerifiedOn: timePtr(a.VerifiedOn), Message: a.AttestationMessage}
	switch {
	case a.State != schema.StateActive:
		d.Status = "Inactive"
	case a.Status == schema.StatusActive:
		d.Status = "Active"
	default:
		d.Status = "Pending"
	}
	if f.ProviderAccount != nil {
		d.Customer, d.TenantID = cmp.Or(f.ProviderAccount.CompanyName, f.ProviderAccount.Name), f.ProviderAccount.TenantID
	}
	d.Problems = mapping.LinkRequestProblems(f)
	var in mapping.CheckInput
	if d.TenantID != "" {
		if a.AttestationID != "" {
			if att, err := g.getAttestation(ctx, a.AttestationID); err != nil {
				d.PartnerCenter.AttestationError = connectivity.Explain("Partner Center", err)
			} else {
				d.PartnerCenter.Attestation, in.Attestation = &att, &att
			}
		}
		cctx, cancel := context.WithTimeout(ctx, g.callTimeout)
		if ags, err := g.pc.Agreements(cctx, d.TenantID, partnercenter.MicrosoftCustomerAgreement); err != nil {
			d.PartnerCenter.AgreementsError = connectivity.Explain("Partner Center", err)
		} else {
			d.PartnerCenter.Agreements, in.Agreements = ags, ags
		}
		cancel()
		cctx, cancel = context.WithTimeout(ctx, g.callTimeout)
		if signed, err := g.pc.DirectSignedStatus(cctx, d.TenantID); err != nil {
			d.PartnerCenter.DirectSignError = connectivity.Explain("Partner Center", err)
		} else {
			d.PartnerCenter.DirectSigned, in.DirectSigned = &signed, &signed
		}
		cancel()
	}
	out := mapping.DecideCheck(a, in, g.now())
	if out.Active || out.Finalize {
		d.Path = schema.OptionLabel(schema.TableAgreement, "csp_acceptancepath", int(out.Path))
		if d.Path == "" && out.Finalize {
			d.Path = "Acceptance link"
		}
	}
	d.Next = agreementNextStep(a, d, out)
	return d, nil
}

func agreementNextStep(a schema.Agreement, d Diagnosis, out mapping.CheckOutcome) string {
	switch {
	case a.State != schema.StateActive:
		return "Nothing: the agreement is inactive, and the connector no longer checks it."
	case d.TenantID == "":
		return "Set the agreement's Provider account (mapped to a customer tenant); the connector cannot check it without one."
	case a.Status == schema.StatusActive && (out.Active || out.Finalize):
		return "Nothing: accepted, and Partner Center still confirms it. Each check refreshes Verified on."
	case a.Status == schema.StatusActive:
		return "Nothing: the row is accepted. Partner Center does not show the acceptance in this read (it can lag); the row is never moved back by such a read."
	case a.AttestationStatus == schema.AttestationLinkRequested && mapping.IsLegacyPartnerAttestation(a):
		return mapping.LegacyPartnerAttestationMessage(a)
	case a.AttestationStatus == schema.AttestationLinkRequested && len(d.Problems) > 0:
		return "The link request cannot be sent: " + strings.Join(d.Problems, " ")
	case a.AttestationStatus == schema.AttestationLinkRequested:
		return "The connector sends the acceptance link on its next run of this row."
	case out.Finalize:
		return "The customer accepted the link: the next Attestation Check creates the agreement in Partner Center and marks this row Attested (Active). Run the check now from its job row or `connector agreements check`."
	case out.Active:
		return "The customer has accepted (" + d.Path + "): the next Attestation Check marks this row Active. Run it now from its job row or `connector agreements check`."
	}
	return out.Message
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
