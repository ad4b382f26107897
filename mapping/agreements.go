package mapping

// The agreements workflow (DESIGN §6): what an admin must fill in before an acceptance link is requested,
// and where a waiting agreement stands after the connector asked Partner Center.
//
//	Not started → (Link requested) → Link sent → Customer accepted → Attested (Active)
//
// plus Accepted directly (the customer accepted in the Microsoft 365 admin center), Expired (the link was
// not used in time; a person requests a new one) and Failed. Partner Center's acceptance date (Date agreed)
// and the connector's confirmation (Verified on) are different moments, and the messages say which is
// which: an admin comparing them with their own notes must be able to tell why they differ.

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"golang.org/x/text/language"

	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// AgreementFacts is what the workflow read about one csp_agreement row.
type AgreementFacts struct {
	Agreement       schema.Agreement
	ProviderAccount *schema.ProviderAccount // nil: the row names none, or it was not found
	Provider        *schema.Provider
	Template        *schema.AgreementTemplate
}

// CheckInput is what Partner Center said now about one waiting agreement. Nil pointers mean "not read".
type CheckInput struct {
	Attestation  *partnercenter.Attestation // the row's attestation, when it has an id
	Agreements   []partnercenter.Agreement  // the customer's MCA agreements (nil: not read)
	DirectSigned *bool
}

// CheckOutcome is what to write on the row after a check.
type CheckOutcome struct {
	Status     schema.AttestationStatus
	Path       schema.AcceptancePath // 0: leave as is
	Active     bool                  // statuscode Active (accepted): the row is done
	DateAgreed time.Time             // when the customer accepted, as Partner Center reports it (zero: unknown)
	Finalize   bool                  // the customer accepted the link: create the agreement from the attestation, then Active
	Message    string                // csp_attestationmessage, in words
}

// mcaValidFrom is the oldest acceptance that still counts: Microsoft asks customers who accepted the
// Microsoft Customer Agreement before 1 April 2023 to accept it again (reference/attestation.md §6, §8),
// so an older agreement in Partner Center does not make the row Attested.
func mcaValidFrom() time.Time { return time.Date(2023, 4, 1, 0, 0, 0, 0, time.UTC) }

// isoCountryCodes are the 249 officially assigned ISO 3166-1 alpha-2 codes. Reserved codes (UK, EU, AC,
// XK, …) are not among them: Partner Center asks for a country code proper.
const isoCountryCodes = `
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW
`

// SignatoryProblems validates what an admin filled in before a link is requested, returning each problem as
// one plain sentence naming the form field (empty: fine). Names may hold any letters, accents, apostrophes,
// hyphens or quotes; the e-mail address must be a bare address; the country an ISO 3166-1 alpha-2 code (any
// case); the language a language tag such as en-US. The company is validated as passed: falling back to
// the provider account's company name is the caller's job.
func SignatoryProblems(a schema.Agreement) []string {
	return signatoryProblems(a, true)
}

func signatoryProblems(a schema.Agreement, locale bool) []string {
	var p []string
	if strings.TrimSpace(a.SignatoryFirstName) == "" {
		p = append(p, "Signatory first name is empty: enter the first name of the person at the customer who accepts the agreement.")
	}
	if strings.TrimSpace(a.SignatoryLastName) == "" {
		p = append(p, "Signatory last name is empty: enter the last name of the person at the customer who accepts the agreement.")
	}
	if msg := emailProblem(a.SignatoryEmail); msg != "" {
		p = append(p, msg)
	}
	if strings.TrimSpace(a.SignatoryCompany) == "" {
		p = append(p, "Signatory company is empty: enter the name of the customer's company as the agreement should show it.")
	}
	if !locale {
		return p
	}
	if msg := countryProblem(a.SignatoryCountry); msg != "" {
		p = append(p, msg)
	}
	if msg := languageProblem(a.SignatoryLanguage); msg != "" {
		p = append(p, msg)
	}
	return p
}

// emailProblem checks for a bare address: what Partner Center sends the agreement to, so a display name,
// a space or a domain without a dot would only fail later, further from the person who typed it.
func emailProblem(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "Signatory email is empty: enter the e-mail address of the person who accepts the agreement."
	}
	addr, err := mail.ParseAddress(s)
	switch {
	case err == nil && addr.Name != "":
		return fmt.Sprintf("Signatory email %s holds a name as well as the address: enter the address alone, %s.", quote(s), addr.Address)
	case strings.ContainsFunc(s, unicode.IsSpace):
		return fmt.Sprintf("Signatory email %s contains a space: an e-mail address has none. Check it and enter it again.", quote(s))
	case strings.Count(s, "@") != 1:
		return fmt.Sprintf("Signatory email %s is not an e-mail address: it needs exactly one @, as in ana@contoso.com.", quote(s))
	case err != nil:
		return fmt.Sprintf("Signatory email %s is not a well-formed e-mail address: check it for stray characters, such as two dots in a row or a missing part before or after the @.", quote(s))
	case addr.Address != s:
		return fmt.Sprintf("Signatory email %s holds more than an address: enter the address alone, %s.", quote(s), addr.Address)
	case !strings.Contains(s[strings.IndexByte(s, '@')+1:], "."):
		return fmt.Sprintf("Signatory email %s has no full domain after the @ (such as contoso.com): check the part after the @.", quote(s))
	}
	return ""
}

func countryProblem(s string) string {
	code := strings.ToUpper(strings.TrimSpace(s))
	switch {
	case code == "":
		return "Signatory country is empty: enter the customer's two-letter ISO 3166 country code, such as US, GB or DE."
	case code == "UK":
		return fmt.Sprintf("Signatory country %s is not an ISO 3166 country code: use GB for the United Kingdom.", quote(s))
	case !isCountryCode(code):
		return fmt.Sprintf("Signatory country %s is not a two-letter ISO 3166 country code: enter one such as US, GB or DE.", quote(s))
	}
	return ""
}

func isCountryCode(code string) bool {
	if len(code) != 2 {
		return false
	}
	for c := range strings.FieldsSeq(isoCountryCodes) {
		if c == code {
			return true
		}
	}
	return false
}

func languageProblem(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "Signatory language is empty: enter the language the agreement is shown in, as a language tag such as en, en-US or de-DE."
	}
	if strings.Contains(s, "_") {
		// language.Parse accepts en_US, but Partner Center is sent the value as typed.
		return fmt.Sprintf("Signatory language %s uses an underscore: write it with a hyphen, such as %s.", quote(s), strings.ReplaceAll(s, "_", "-"))
	}
	if tag, err := language.Parse(s); err != nil || tag == language.Und {
		return fmt.Sprintf("Signatory language %s is not a language tag: enter one such as en, en-US or de-DE.", quote(s))
	}
	return ""
}

// LinkRequestProblems adds to SignatoryProblems what stops a link request beyond the form: the provider
// account (present, mapped to a tenant, active), the provider (Automatic, active, not an Indirect
// reseller) and the template (a Microsoft Customer Agreement template). Empty: request the link.
func LinkRequestProblems(f AgreementFacts) []string {
	p := SignatoryProblems(f.Agreement)
	pa := f.ProviderAccount
	if pa == nil {
		p = append(p, "The agreement has no provider account, or it no longer exists: set Provider account to the customer's (Provider Accounts lists every Partner Center customer).")
	} else {
		if !isTenantID(pa.TenantID) {
			id := "is empty"
			if strings.TrimSpace(pa.TenantID) != "" {
				id = quote(pa.TenantID) + " is not one"
			}
			p = append(p, fmt.Sprintf("Provider account %s is not mapped to a customer tenant: its Provider specific account ID %s (a Microsoft tenant id looks like 3f2504e0-4f89-11d3-9a0c-0305e82c3301). Sync provider accounts, or enter the customer's tenant id.",
				name(pa.Name, pa.ID.String()), id))
		}
		if pa.State != schema.StateActive {
			p = append(p, fmt.Sprintf("Provider account %s is inactive: the customer's relationship with the partner was removed in Partner Center. Restore the reseller relationship and sync provider accounts before requesting a link.",
				name(pa.Name, pa.ID.String())))
		}
	}
	switch pr := f.Provider; {
	case pr == nil && pa != nil:
		p = append(p, fmt.Sprintf("Provider account %s has no provider, or it no longer exists: set its Provider.", name(pa.Name, pa.ID.String())))
	case pr != nil:
		if pr.Type != schema.ProviderAutomatic {
			p = append(p, fmt.Sprintf("%s is a %s provider: it has no Partner Center connection to send an acceptance link through. Have the customer accept the Microsoft Customer Agreement through the provider, then record it here with Acceptance path Manual.",
				name(pr.Name, "The provider"), providerTypeLabel(pr.Type)))
		} else if pr.State != schema.StateActive {
			p = append(p, fmt.Sprintf("Provider %s is inactive: activate it before requesting a link.", name(pr.Name, "")))
		}
		if pr.PartnerModel == schema.PartnerIndirectReseller {
			p = append(p, "Indirect resellers cannot attest for their customers: ask your indirect provider (distributor) to send the acceptance link.")
		}
	}
	switch t := f.Template; {
	case t == nil:
		p = append(p, "The agreement has no agreement template, or it no longer exists: set Agreement template to the Microsoft Customer Agreement template.")
	case t.AgreementType == 0:
		p = append(p, fmt.Sprintf("Agreement template %s has no Agreement type: acceptance links exist only for the Microsoft Customer Agreement. Set its type, or point this agreement at the Microsoft Customer Agreement template.",
			name(t.Name, t.ID.String())))
	case t.AgreementType != schema.AgreementMicrosoftCustomerAgreement:
		p = append(p, fmt.Sprintf("Agreement template %s is a %s template: acceptance links exist only for the Microsoft Customer Agreement. Point this agreement at the Microsoft Customer Agreement template.",
			name(t.Name, t.ID.String()), agreementTypeLabel(t.AgreementType)))
	}
	return p
}

// isTenantID accepts a tenant id in its usual form only: uuid.Parse alone would also take braces, urn:uuid:
// and 32 bare hex digits, which Partner Center does not.
func isTenantID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// LegacyAttestationRetired is when Microsoft retired the legacy partner attestation: the API that recorded
// a signatory and a date without the customer's own acceptance, the Partner Center attestation page and the
// bulk tool (reference/attestation.md §6).
func LegacyAttestationRetired() time.Time { return time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) }

// IsLegacyPartnerAttestation reports a link request set up for the retired partner attestation: Acceptance
// path Partner attestation with a Date agreed entered to be recorded. A partner attestation now goes
// through the enhanced flow, where Microsoft records when the customer accepted, so a date typed in has
// nowhere to go.
func IsLegacyPartnerAttestation(a schema.Agreement) bool {
	return a.AcceptancePath == schema.AcceptancePartnerAttestation && !a.DateAgreed.IsZero()
}

// LegacyPartnerAttestationMessage is the row's message for IsLegacyPartnerAttestation: nothing was sent,
// why, and the two ways on.
func LegacyPartnerAttestationMessage(a schema.Agreement) string {
	return fmt.Sprintf("Nothing was sent to Partner Center: this agreement asks to record a partner attestation with the date you entered (%s), and Microsoft retired that on %s. Since then Partner Center records the Microsoft Customer Agreement only when the customer accepts it on Microsoft's acceptance page or in the Microsoft 365 admin center. To go on, clear Date agreed, check the signatory's country and language, and set Attestation status to Link requested: the connector creates the attestation through Microsoft's enhanced flow and puts the acceptance link on this agreement for %s to accept (the acceptance path stays Partner attestation). Or ask the customer to accept in the Microsoft 365 admin center, then set Attestation status to Not started so the connector checks for it.",
		FormatTime(a.DateAgreed), LegacyAttestationRetired().Format("2 January 2006"), signatoryContact(a))
}

// LinkPath is the acceptance path a row's link records: Partner attestation when the partner asked for one
// (it goes through the same enhanced flow), else Acceptance link.
func LinkPath(a schema.Agreement) schema.AcceptancePath {
	if a.AcceptancePath == schema.AcceptancePartnerAttestation {
		return schema.AcceptancePartnerAttestation
	}
	return schema.AcceptanceLink
}

// WaitingForCustomer reports whether a check job should look at the row: active, not yet accepted
// (statuscode not Active), and Not started, Link sent or Customer accepted (which needs finalizing). Expired
// and Failed rows wait for a person; Link requested rows belong to the request handler. A row without an
// attestation status counts as Not started.
func WaitingForCustomer(a schema.Agreement) bool {
	if a.State != schema.StateActive || a.Status == schema.StatusActive {
		return false
	}
	switch a.AttestationStatus {
	case 0, schema.AttestationNotStarted, schema.AttestationLinkSent, schema.AttestationCustomerAccepted:
		return true
	}
	return false
}

// DecideCheck moves a waiting agreement (Not started, Link sent, Customer accepted, Expired, Failed) by what
// Partner Center says. The first of these that holds decides:
//
//  1. the attestation is Finalized: Attested through the acceptance link;
//  2. the attestation is Accepted: Customer accepted, and the caller finalizes (then FinalizedOutcome);
//  3. Partner Center has a Microsoft Customer Agreement accepted since 1 April 2023: Attested, by partner
//     attestation unless it is the one made from this row's attestation (then the acceptance link);
//  4. the customer accepted directly in the Microsoft 365 admin center: Accepted directly;
//  5. the row was Customer accepted but Partner Center's answer now says otherwise: kept as it is (a row
//     never moves back on one stale read);
//  6. the attestation expired (by its status, or Pending past its expiry): Expired;
//  7. the attestation is Pending, or a status the connector does not know: Link sent;
//  8. nothing found: the row's status is kept, with what to do next.
func DecideCheck(a schema.Agreement, in CheckInput, now time.Time) CheckOutcome {
	att := in.Attestation
	current, old := splitAgreements(in.Agreements)
	switch {
	case att != nil && att.Status.Is(partnercenter.AttestationFinalized):
		date := acceptedAt(att)
		if date.IsZero() {
			if i := slices.IndexFunc(current, func(g partnercenter.Agreement) bool { return carriesAttestation(g, a, att) }); i >= 0 {
				date = current[i].DateAgreed
			}
		}
		return CheckOutcome{Status: schema.AttestationAttested, Path: LinkPath(a), Active: true, DateAgreed: date,
			Message: attestedMessage(signatoryName(a, "the signatory"), schema.AcceptanceLink, date, now)}

	case att != nil && att.Status.Is(partnercenter.AttestationAccepted):
		date := acceptedAt(att)
		when := " (Partner Center does not say when)"
		if !date.IsZero() {
			when = " on " + FormatTime(date) + " (as Partner Center reports it)"
		}
		return CheckOutcome{Status: schema.AttestationCustomerAccepted, Path: LinkPath(a), DateAgreed: date, Finalize: true,
			Message: fmt.Sprintf("%s accepted the Microsoft Customer Agreement through the acceptance link%s. The connector is now recording the agreement in Partner Center; this agreement becomes Attested when that is done.",
				signatoryName(a, "The signatory"), when)}

	case len(current) > 0:
		g, how := current[0], schema.AcceptancePartnerAttestation
		for _, c := range current {
			if carriesAttestation(c, a, att) {
				g, how = c, schema.AcceptanceLink
				break
			}
			if c.DateAgreed.After(g.DateAgreed) {
				g = c
			}
		}
		who := strings.TrimSpace(g.PrimaryContact.FirstName + " " + g.PrimaryContact.LastName)
		if who == "" {
			who = "the customer"
		}
		msg := attestedMessage(who, how, g.DateAgreed, now)
		path := how
		if how == schema.AcceptanceLink {
			path = LinkPath(a) // made from this row's attestation: the path the row asked for
		} else if att != nil {
			msg += " The acceptance link sent from this agreement is no longer needed."
		}
		return CheckOutcome{Status: schema.AttestationAttested, Path: path, Active: true, DateAgreed: g.DateAgreed, Message: msg}

	case in.DirectSigned != nil && *in.DirectSigned:
		msg := attestedMessage("the customer", schema.AcceptanceAdminCenter, time.Time{}, now)
		if att != nil {
			msg += " The acceptance link sent from this agreement is no longer needed."
		}
		return CheckOutcome{Status: schema.AttestationAcceptedDirectly, Path: schema.AcceptanceAdminCenter, Active: true, Message: msg}

	case att != nil && a.AttestationStatus == schema.AttestationCustomerAccepted:
		return CheckOutcome{Status: schema.AttestationCustomerAccepted,
			Message: fmt.Sprintf("%s accepted through the acceptance link earlier, but Partner Center now reports the attestation as %s. The connector keeps this agreement as Customer accepted and checks again at its next run; if it stays so, open a support request with Microsoft quoting attestation %s.",
				signatoryName(a, "The signatory"), statusText(att.Status), orNone(att.ID))}

	case att != nil && expired(a, att, now):
		sent := ""
		if !att.CreatedAt.IsZero() {
			sent = " on " + FormatTime(att.CreatedAt)
		}
		until := ""
		if e := expiry(a, att); !e.IsZero() {
			until = " on " + FormatTime(e)
		}
		return CheckOutcome{Status: schema.AttestationExpired,
			Message: fmt.Sprintf("The acceptance link sent to %s%s expired%s without being accepted. Check the signatory's details, then set Attestation status to Link requested to send a new one.%s",
				signatoryContact(a), sent, until, unknownStatusNote(att))}

	case att != nil:
		sent := ""
		if !att.CreatedAt.IsZero() {
			sent = " sent on " + FormatTime(att.CreatedAt)
		}
		until := " Partner Center did not say when the link expires."
		if e := expiry(a, att); !e.IsZero() {
			until = " The link expires on " + FormatTime(e) + "; if it does, set Attestation status to Link requested to send a new one."
		}
		return CheckOutcome{Status: schema.AttestationLinkSent,
			Message: fmt.Sprintf("Waiting for %s to accept the Microsoft Customer Agreement through the acceptance link%s.%s%s",
				signatoryContact(a), sent, until, unknownStatusNote(att))}
	}
	return notFound(a, in, old)
}

// notFound is rule 8: Partner Center shows no acceptance. The row keeps its status; a Failed or Expired
// row keeps its message too, since it says what a person has to do.
func notFound(a schema.Agreement, in CheckInput, old []partnercenter.Agreement) CheckOutcome {
	out := CheckOutcome{Status: a.AttestationStatus}
	if out.Status == 0 {
		out.Status = schema.AttestationNotStarted
	}
	if (out.Status == schema.AttestationFailed || out.Status == schema.AttestationExpired) && strings.TrimSpace(a.AttestationMessage) != "" {
		out.Message = a.AttestationMessage
		return out
	}
	if strings.TrimSpace(a.AttestationID) != "" {
		out.Message = fmt.Sprintf("The connector could not read attestation %s from Partner Center this time: the status is unchanged, and it checks again at its next run.", a.AttestationID)
		return out
	}
	var checked []string
	if in.Agreements != nil {
		checked = append(checked, "no Microsoft Customer Agreement for them")
	}
	if in.DirectSigned != nil {
		checked = append(checked, "no acceptance in the Microsoft 365 admin center")
	}
	if len(checked) == 0 {
		out.Message = "The connector could not check with Partner Center this time whether the customer accepted the Microsoft Customer Agreement: the status is unchanged, and it checks again at its next run."
		return out
	}
	msg := "The customer has not accepted the Microsoft Customer Agreement yet (Partner Center shows " + strings.Join(checked, " and ") + ")."
	if len(old) > 0 {
		g := old[0]
		for _, o := range old[1:] {
			if o.DateAgreed.After(g.DateAgreed) {
				g = o
			}
		}
		msg = fmt.Sprintf("The customer's acceptance of the Microsoft Customer Agreement in Partner Center dates from %s, and Microsoft asks customers who accepted before 1 Apr 2023 to accept again.", FormatTime(g.DateAgreed))
	}
	out.Message = msg + " Fill in the signatory and set Attestation status to Link requested to send them an acceptance link, or ask the customer to accept it in the Microsoft 365 admin center."
	return out
}

// FinalizedOutcome is the outcome after the agreement was created from the accepted attestation (or
// Partner Center said it already exists: 600061).
func FinalizedOutcome(a schema.Agreement, att partnercenter.Attestation, alreadyExisted bool, now time.Time) CheckOutcome {
	date := acceptedAt(&att)
	if date.IsZero() {
		date = a.DateAgreed // recorded when the row became Customer accepted
	}
	msg := attestedMessage(signatoryName(a, "the signatory"), schema.AcceptanceLink, date, now)
	if alreadyExisted {
		msg += " Partner Center already had this agreement recorded, so nothing was created twice."
	}
	return CheckOutcome{Status: schema.AttestationAttested, Path: LinkPath(a), Active: true, DateAgreed: date, Message: msg}
}

// LinkSentMessage is the row's message after an attestation was created.
func LinkSentMessage(a schema.Agreement, att partnercenter.Attestation, url string) string {
	if url == "" {
		url = partnercenter.AcceptanceURL(att.ID)
	}
	created := ""
	if !att.CreatedAt.IsZero() {
		created = " on " + FormatTime(att.CreatedAt)
	}
	until := "Partner Center did not say when it expires."
	if e := expiry(a, &att); !e.IsZero() {
		until = "It expires on " + FormatTime(e) + "."
	}
	return fmt.Sprintf("Acceptance link created%s for %s: send them this link to read and accept the Microsoft Customer Agreement: %s (it is also in Acceptance link). %s The connector notices when they accept and marks this agreement Attested.",
		created, signatoryContact(a), url, until)
}

// AgreementRefusal says in words what Partner Center refused about an agreement (a link request, a
// partner attestation, finalizing an accepted link), and what to do. err is the call's error; re may be
// nil when it is not a Partner Center answer.
func AgreementRefusal(re *partnercenter.ResponseError, err error) string {
	if re == nil {
		return fmt.Sprintf("Partner Center refused it: %v. Correct what it names, then set Attestation status to Link requested again.", err)
	}
	what := strings.TrimSuffix(strings.TrimSpace(re.Description), ".")
	switch re.Code {
	case partnercenter.CodeOrgRegistrationIDNotSupported:
		// The table's meaning; the description is kept because the same number has been seen for other
		// agreement refusals.
		return fmt.Sprintf("Partner Center does not accept the customer's organization registration ID (Partner Center error %s: %s). Check the customer's company details in Partner Center (its organization registration number), then set Attestation status to Link requested again.",
			re.Code, what)
	}
	if re.Code != "" {
		what += " (Partner Center error " + re.Code + ")"
	}
	return "Partner Center refused it: " + what + ". Correct what it names (the signatory, the template's Template ID, the provider account's tenant), then set Attestation status to Link requested again."
}

// attestedMessage says who accepted, how, and when (Date agreed, as Partner Center reports it), and when the
// connector confirmed it (Verified on): two moments that are easy to mistake for one another.
func attestedMessage(who string, path schema.AcceptancePath, date, now time.Time) string {
	confirmed := fmt.Sprintf("confirmed by the connector on %s (Verified on).", FormatTime(now))
	switch path {
	case schema.AcceptanceAdminCenter:
		return "The customer accepted the Microsoft Customer Agreement directly in the Microsoft 365 admin center. Partner Center confirms it but does not say when, so Date agreed stays empty; " + confirmed
	case schema.AcceptancePartnerAttestation:
		when := " (Partner Center does not say when)"
		if !date.IsZero() {
			when = " on " + FormatTime(date) + " (Date agreed, as Partner Center reports it)"
		}
		return fmt.Sprintf("Partner Center already has the Microsoft Customer Agreement for this customer, accepted by %s%s and recorded by partner attestation rather than through this agreement's link; %s",
			who, when, confirmed)
	}
	if date.IsZero() {
		return fmt.Sprintf("Accepted by %s through the acceptance link (Partner Center does not say when, so Date agreed stays empty); %s", who, confirmed)
	}
	return fmt.Sprintf("Accepted by %s on %s through the acceptance link (Date agreed, as Partner Center reports it); %s", who, FormatTime(date), confirmed)
}

// splitAgreements keeps the Microsoft Customer Agreements, those accepted since mcaValidFrom (or on an
// unknown date) apart from the older ones.
func splitAgreements(all []partnercenter.Agreement) (current, old []partnercenter.Agreement) {
	for _, g := range all {
		if g.Type != "" && !strings.EqualFold(g.Type, partnercenter.MicrosoftCustomerAgreement) {
			continue
		}
		if !g.DateAgreed.IsZero() && g.DateAgreed.Before(mcaValidFrom()) {
			old = append(old, g)
			continue
		}
		current = append(current, g)
	}
	return current, old
}

// carriesAttestation reports whether Partner Center's agreement is the one made from the row's
// attestation. partnercenter.Agreement does not carry the attestation id, so the evidence is its link
// naming the attestation, or its contact being the row's signatory (the attestation was made for them).
func carriesAttestation(g partnercenter.Agreement, a schema.Agreement, att *partnercenter.Attestation) bool {
	id := strings.TrimSpace(a.AttestationID)
	if id == "" && att != nil {
		id = att.ID
	}
	if id == "" {
		return false
	}
	if strings.Contains(strings.ToLower(g.AgreementLink), strings.ToLower(id)) {
		return true
	}
	email := strings.TrimSpace(a.SignatoryEmail)
	return email != "" && strings.EqualFold(strings.TrimSpace(g.PrimaryContact.Email), email)
}

func acceptedAt(att *partnercenter.Attestation) time.Time {
	if att.AcceptedAt == nil {
		return time.Time{}
	}
	return *att.AcceptedAt
}

// expired: Partner Center says so, or a link it still calls Pending (or something unknown) is past its
// expiry: Partner Center's, or the one the connector recorded when Partner Center gave none. Finalized and
// Accepted never get here.
func expired(a schema.Agreement, att *partnercenter.Attestation, now time.Time) bool {
	e := expiry(a, att)
	return att.Status.Is(partnercenter.AttestationExpired) || (!e.IsZero() && e.Before(now))
}

// expiry is the link's expiry as Partner Center says it now, or as the row recorded it when it was sent.
func expiry(a schema.Agreement, att *partnercenter.Attestation) time.Time {
	if !att.ExpiresAt.IsZero() {
		return att.ExpiresAt
	}
	return a.LinkExpiresOn
}

// unknownStatusNote keeps a status the connector does not know in the message, word for word.
func unknownStatusNote(att *partnercenter.Attestation) string {
	for _, s := range []partnercenter.Enum{partnercenter.AttestationPending, partnercenter.AttestationExpired} {
		if att.Status.Is(s) {
			return ""
		}
	}
	return fmt.Sprintf(" (Partner Center reports the attestation's status as %s, which the connector does not know; it treats it as Pending.)", statusText(att.Status))
}

func statusText(s partnercenter.Enum) string {
	if strings.TrimSpace(string(s)) == "" {
		return "empty"
	}
	return quote(string(s))
}

// signatoryName is the signatory's name as typed, or fallback when there is none.
func signatoryName(a schema.Agreement, fallback string) string {
	if n := strings.TrimSpace(strings.TrimSpace(a.SignatoryFirstName) + " " + strings.TrimSpace(a.SignatoryLastName)); n != "" {
		return n
	}
	return fallback
}

// signatoryContact is the signatory's name and address: "Ana Bowman (ana@contoso.com)".
func signatoryContact(a schema.Agreement) string {
	n := signatoryName(a, "the signatory")
	if e := strings.TrimSpace(a.SignatoryEmail); e != "" {
		n += " (" + e + ")"
	}
	return n
}

func providerTypeLabel(t schema.ProviderType) string {
	if l := schema.OptionLabel(schema.TableProvider, "csp_type", int(t)); l != "" {
		return l
	}
	return "non-Automatic"
}

func agreementTypeLabel(t schema.AgreementType) string {
	if l := schema.OptionLabel(schema.TableAgreementTemplate, "csp_agreementtype", int(t)); l != "" {
		return l
	}
	return "different"
}
