package agreements

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText writes the diagnosis as `connector diagnose agreement` prints it and the row's Diagnosis
// column holds it: the row, what Partner Center says now, and the next step.
func (d Diagnosis) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Agreement %s  %s\n", d.ID, d.Name)
	fmt.Fprintf(w, "  Customer            %s (tenant %s)\n", orDash(d.Customer), orDash(d.TenantID))
	fmt.Fprintf(w, "  Status              %s; attestation %s; path %s\n", d.Status, orDash(d.AttestationStatus), orDash(d.AcceptancePath))
	if d.AttestationID != "" {
		fmt.Fprintf(w, "  Attestation         %s, link expires %s\n", d.AttestationID, stampPtr(d.LinkExpiresOn))
	}
	fmt.Fprintf(w, "  Date agreed         %s (when the customer accepted, as Partner Center reports it)\n", stampPtr(d.DateAgreed))
	fmt.Fprintf(w, "  Verified on         %s (when the connector confirmed it)\n", stampPtr(d.VerifiedOn))
	if d.Message != "" {
		fmt.Fprintf(w, "  Message             %s\n", d.Message)
	}
	fmt.Fprintf(w, "\nPartner Center now:\n")
	switch pc := d.PartnerCenter; {
	case pc.Attestation != nil:
		fmt.Fprintf(w, "  Attestation         %s (expires %s)\n", pc.Attestation.Status, stamp(pc.Attestation.ExpiresAt))
	case pc.AttestationError != "":
		fmt.Fprintf(w, "  Attestation         could not be read: %s\n", pc.AttestationError)
	}
	if d.PartnerCenter.AgreementsError != "" {
		fmt.Fprintf(w, "  MCA agreements      could not be read: %s\n", d.PartnerCenter.AgreementsError)
	} else {
		fmt.Fprintf(w, "  MCA agreements      %d\n", len(d.PartnerCenter.Agreements))
		for _, a := range d.PartnerCenter.Agreements {
			fmt.Fprintf(w, "    %s %s <%s> on %s\n", a.PrimaryContact.FirstName, a.PrimaryContact.LastName, a.PrimaryContact.Email, stamp(a.DateAgreed))
		}
	}
	switch {
	case d.PartnerCenter.DirectSignError != "":
		fmt.Fprintf(w, "  Admin center        could not be read: %s\n", d.PartnerCenter.DirectSignError)
	case d.PartnerCenter.DirectSigned != nil:
		fmt.Fprintf(w, "  Admin center        accepted directly: %t\n", *d.PartnerCenter.DirectSigned)
	}
	if d.Path != "" {
		fmt.Fprintf(w, "  Accepted through    %s\n", d.Path)
	}
	fmt.Fprintf(w, "\nNext: %s\n", d.Next)
}

// Text is WriteText into a string.
func (d Diagnosis) Text() string {
	var b bytes.Buffer
	d.WriteText(&b)
	return b.String()
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func stampPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}
