package mapping_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
)

var (
	agNow      = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	agCreated  = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	agAccepted = time.Date(2026, 11, 3, 14, 5, 0, 0, time.UTC)
	agExpires  = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
)

// signedRow is an agreement whose signatory passes every rule, waiting on a link sent to Ana Bowman.
func signedRow() schema.Agreement {
	return schema.Agreement{
		ID: uuid.New(), Name: "Microsoft Customer Agreement – Contoso", AttestationStatus: schema.AttestationLinkSent,
		SignatoryFirstName: "Ana", SignatoryLastName: "Bowman", SignatoryEmail: "ana@contoso.com", SignatoryCompany: "Contoso Ltd",
		SignatoryCountry: "GB", SignatoryLanguage: "en-GB", AttestationID: "att-1", LinkExpiresOn: agExpires,
		State: schema.StateActive, Status: schema.AgreementPending,
	}
}

func agreementFacts() mapping.AgreementFacts {
	return mapping.AgreementFacts{
		Agreement:       signedRow(),
		ProviderAccount: &schema.ProviderAccount{ID: uuid.New(), Name: "Contoso Ltd", TenantID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", State: schema.StateActive},
		Provider:        &schema.Provider{ID: uuid.New(), Name: "Microsoft Partner Center", Type: schema.ProviderAutomatic, PartnerModel: schema.PartnerDirectBill},
		Template:        &schema.AgreementTemplate{ID: uuid.New(), Name: "Microsoft Customer Agreement", AgreementType: schema.AgreementMicrosoftCustomerAgreement},
	}
}

// assertOneProblem checks there is exactly one problem and that it says each phrase; no phrases: none.
func assertOneProblem(t *testing.T, problems []string, phrases []string) {
	t.Helper()
	if len(phrases) == 0 {
		assert.Empty(t, problems)
		return
	}
	require.Len(t, problems, 1, "problems: %q", problems)
	for _, p := range phrases {
		assert.Contains(t, problems[0], p)
	}
}

func TestSignatoryProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(a *schema.Agreement)
		phrases []string // empty: no problem
	}{
		{name: "complete", change: func(*schema.Agreement) {}},
		{name: "accents", change: func(a *schema.Agreement) { a.SignatoryFirstName, a.SignatoryLastName = "Zoë", "Ñúñez-Łukasiewicz" }},
		{name: "apostrophe and hyphen", change: func(a *schema.Agreement) { a.SignatoryFirstName, a.SignatoryLastName = "Mary-Jane", "O'Brien" }},
		{name: "quotes", change: func(a *schema.Agreement) { a.SignatoryFirstName = `Robert "Bob"` }},
		{name: "CJK", change: func(a *schema.Agreement) { a.SignatoryFirstName, a.SignatoryLastName = "美咲", "佐藤" }},
		{name: "Cyrillic company", change: func(a *schema.Agreement) { a.SignatoryCompany = "ООО «Ромашка»" }},
		{name: "first name missing", change: func(a *schema.Agreement) { a.SignatoryFirstName = "" }, phrases: []string{"Signatory first name is empty"}},
		{name: "first name blank", change: func(a *schema.Agreement) { a.SignatoryFirstName = "  \t" }, phrases: []string{"Signatory first name is empty"}},
		{name: "last name missing", change: func(a *schema.Agreement) { a.SignatoryLastName = " " }, phrases: []string{"Signatory last name is empty"}},
		{name: "email missing", change: func(a *schema.Agreement) { a.SignatoryEmail = "" }, phrases: []string{"Signatory email is empty"}},
		{name: "email without a dot in the domain", change: func(a *schema.Agreement) { a.SignatoryEmail = "a@b" }, phrases: []string{`Signatory email "a@b"`, "no full domain"}},
		{name: "email with a space", change: func(a *schema.Agreement) { a.SignatoryEmail = "a b@c.com" }, phrases: []string{`Signatory email "a b@c.com"`, "contains a space"}},
		{name: "email with a quoted space", change: func(a *schema.Agreement) { a.SignatoryEmail = `"a b"@c.com` }, phrases: []string{"contains a space"}},
		{name: "email with a display name", change: func(a *schema.Agreement) { a.SignatoryEmail = "Ana <ana@x.com>" },
			phrases: []string{"Signatory email", "holds a name", "enter the address alone, ana@x.com"}},
		{name: "email in angle brackets", change: func(a *schema.Agreement) { a.SignatoryEmail = "<ana@x.com>" }, phrases: []string{"holds more than an address", "ana@x.com"}},
		{name: "email with two @", change: func(a *schema.Agreement) { a.SignatoryEmail = "ana@@contoso.com" }, phrases: []string{"exactly one @"}},
		{name: "email without @", change: func(a *schema.Agreement) { a.SignatoryEmail = "ana.contoso.com" }, phrases: []string{"exactly one @"}},
		{name: "email with two dots", change: func(a *schema.Agreement) { a.SignatoryEmail = "ana@contoso..com" }, phrases: []string{"not a well-formed e-mail address"}},
		{name: "email with surrounding spaces", change: func(a *schema.Agreement) { a.SignatoryEmail = " ana@contoso.com " }},
		{name: "email with an apostrophe", change: func(a *schema.Agreement) { a.SignatoryEmail = "o'brien@contoso.com" }},
		{name: "company missing", change: func(a *schema.Agreement) { a.SignatoryCompany = "" }, phrases: []string{"Signatory company is empty"}},
		{name: "country missing", change: func(a *schema.Agreement) { a.SignatoryCountry = "" }, phrases: []string{"Signatory country is empty", "ISO 3166"}},
		{name: "country UK", change: func(a *schema.Agreement) { a.SignatoryCountry = "UK" }, phrases: []string{`"UK"`, "use GB for the United Kingdom"}},
		{name: "country uk", change: func(a *schema.Agreement) { a.SignatoryCountry = "uk" }, phrases: []string{"use GB for the United Kingdom"}},
		{name: "country gb", change: func(a *schema.Agreement) { a.SignatoryCountry = "gb" }},
		{name: "country De", change: func(a *schema.Agreement) { a.SignatoryCountry = "De" }},
		{name: "country name", change: func(a *schema.Agreement) { a.SignatoryCountry = "Germany" }, phrases: []string{`"Germany"`, "not a two-letter ISO 3166 country code"}},
		{name: "country alpha-3", change: func(a *schema.Agreement) { a.SignatoryCountry = "DEU" }, phrases: []string{"not a two-letter ISO 3166 country code"}},
		{name: "country EU", change: func(a *schema.Agreement) { a.SignatoryCountry = "EU" }, phrases: []string{"not a two-letter ISO 3166 country code"}},
		{name: "country unassigned", change: func(a *schema.Agreement) { a.SignatoryCountry = "XX" }, phrases: []string{"not a two-letter ISO 3166 country code"}},
		{name: "language missing", change: func(a *schema.Agreement) { a.SignatoryLanguage = "" }, phrases: []string{"Signatory language is empty"}},
		{name: "language english", change: func(a *schema.Agreement) { a.SignatoryLanguage = "english" }, phrases: []string{`"english"`, "not a language tag", "en-US"}},
		{name: "language undetermined", change: func(a *schema.Agreement) { a.SignatoryLanguage = "und" }, phrases: []string{"not a language tag"}},
		{name: "language with underscore", change: func(a *schema.Agreement) { a.SignatoryLanguage = "en_US" }, phrases: []string{"underscore", "en-US"}},
		{name: "language en", change: func(a *schema.Agreement) { a.SignatoryLanguage = "en" }},
		{name: "language en-US", change: func(a *schema.Agreement) { a.SignatoryLanguage = "en-US" }},
		{name: "language de-DE", change: func(a *schema.Agreement) { a.SignatoryLanguage = "de-DE" }},
		{name: "language zh-Hans-CN", change: func(a *schema.Agreement) { a.SignatoryLanguage = "zh-Hans-CN" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := signedRow()
			tt.change(&a)
			assertOneProblem(t, mapping.SignatoryProblems(a), tt.phrases)
		})
	}
}

func TestSignatoryProblemsListsEveryMissingField(t *testing.T) {
	t.Parallel()
	problems := mapping.SignatoryProblems(schema.Agreement{})
	require.Len(t, problems, 6)
	for i, field := range []string{"Signatory first name", "Signatory last name", "Signatory email", "Signatory company", "Signatory country", "Signatory language"} {
		assert.Contains(t, problems[i], field)
	}
}

// TestSignatoryProblemsAcceptsTheAssignedCountryCodes walks every two-letter code: exactly the 249 assigned
// ones pass, in either case, and reserved ones (UK, EU, XK, AC) do not.
func TestSignatoryProblemsAcceptsTheAssignedCountryCodes(t *testing.T) {
	t.Parallel()
	valid := func(code string) bool {
		a := signedRow()
		a.SignatoryCountry = code
		return len(mapping.SignatoryProblems(a)) == 0
	}
	accepted := 0
	for x := 'A'; x <= 'Z'; x++ {
		for y := 'A'; y <= 'Z'; y++ {
			code := string([]rune{x, y})
			if valid(code) {
				accepted++
				assert.True(t, valid(string([]rune{x + 'a' - 'A', y + 'a' - 'A'})), "lower-case %s", code)
			}
		}
	}
	assert.Equal(t, 249, accepted)
	for _, code := range []string{"US", "GB", "DE", "FR", "JP", "SS", "BQ", "CW", "SX", "AX", "AQ"} {
		assert.True(t, valid(code), code)
	}
	for _, code := range []string{"UK", "EU", "XK", "AC", "AN", "YU", ""} {
		assert.False(t, valid(code), code)
	}
}

func TestLinkRequestProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		change  func(f *mapping.AgreementFacts)
		phrases []string
	}{
		{name: "ready", change: func(*mapping.AgreementFacts) {}},
		{name: "indirect provider may attest", change: func(f *mapping.AgreementFacts) { f.Provider.PartnerModel = schema.PartnerIndirectProvider }},
		{name: "signatory problem", change: func(f *mapping.AgreementFacts) { f.Agreement.SignatoryCountry = "UK" }, phrases: []string{"use GB"}},
		{name: "no provider account", change: func(f *mapping.AgreementFacts) { f.ProviderAccount, f.Provider = nil, nil },
			phrases: []string{"no provider account", "set Provider account"}},
		{name: "unmapped tenant", change: func(f *mapping.AgreementFacts) { f.ProviderAccount.TenantID = "" },
			phrases: []string{"Provider account Contoso Ltd is not mapped to a customer tenant", "Provider specific account ID is empty"}},
		{name: "tenant is a domain", change: func(f *mapping.AgreementFacts) { f.ProviderAccount.TenantID = "contoso.onmicrosoft.com" },
			phrases: []string{"not mapped to a customer tenant", `"contoso.onmicrosoft.com" is not one`}},
		{name: "tenant in braces", change: func(f *mapping.AgreementFacts) { f.ProviderAccount.TenantID = "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}" },
			phrases: []string{"not mapped to a customer tenant"}},
		{name: "inactive provider account", change: func(f *mapping.AgreementFacts) { f.ProviderAccount.State = schema.StateInactive },
			phrases: []string{"Provider account Contoso Ltd is inactive", "Restore the reseller relationship"}},
		{name: "no provider", change: func(f *mapping.AgreementFacts) { f.Provider = nil }, phrases: []string{"has no provider", "set its Provider"}},
		{name: "manual provider", change: func(f *mapping.AgreementFacts) { f.Provider.Type, f.Provider.Name = schema.ProviderManual, "Pax8" },
			phrases: []string{"Pax8 is a Manual provider", "no Partner Center connection", "Acceptance path Manual"}},
		{name: "do-nothing provider", change: func(f *mapping.AgreementFacts) { f.Provider.Type = schema.ProviderDoNothing },
			phrases: []string{"is a Do Nothing provider"}},
		{name: "inactive provider", change: func(f *mapping.AgreementFacts) { f.Provider.State = schema.StateInactive },
			phrases: []string{"Provider Microsoft Partner Center is inactive"}},
		{name: "indirect reseller", change: func(f *mapping.AgreementFacts) { f.Provider.PartnerModel = schema.PartnerIndirectReseller },
			phrases: []string{"Indirect resellers cannot attest for their customers: ask your indirect provider (distributor) to send the acceptance link."}},
		{name: "no template", change: func(f *mapping.AgreementFacts) { f.Template = nil }, phrases: []string{"no agreement template", "Microsoft Customer Agreement template"}},
		{name: "cloud agreement template", change: func(f *mapping.AgreementFacts) {
			f.Template.AgreementType, f.Template.Name = schema.AgreementMicrosoftCloudAgreement, "MCA (old)"
		}, phrases: []string{"Agreement template MCA (old) is a Microsoft Cloud Agreement template", "only for the Microsoft Customer Agreement"}},
		{name: "partner agreement template", change: func(f *mapping.AgreementFacts) { f.Template.AgreementType = schema.AgreementPartner },
			phrases: []string{"is a Partner agreement template"}},
		{name: "template without a type", change: func(f *mapping.AgreementFacts) { f.Template.AgreementType = 0 }, phrases: []string{"has no Agreement type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := agreementFacts()
			tt.change(&f)
			assertOneProblem(t, mapping.LinkRequestProblems(f), tt.phrases)
		})
	}
}

func TestLinkRequestProblemsListsEverything(t *testing.T) {
	t.Parallel()
	f := agreementFacts()
	f.Agreement.SignatoryEmail = "a@b"
	f.ProviderAccount.TenantID = ""
	f.Provider.PartnerModel = schema.PartnerIndirectReseller
	f.Template = nil
	problems := mapping.LinkRequestProblems(f)
	require.Len(t, problems, 4)
	assert.Contains(t, problems[0], "Signatory email")
	assert.Contains(t, problems[1], "not mapped to a customer tenant")
	assert.Contains(t, problems[2], "Indirect resellers")
	assert.Contains(t, problems[3], "no agreement template")
}

func attestation(status partnercenter.Enum, accepted *time.Time) *partnercenter.Attestation {
	return &partnercenter.Attestation{ID: "att-1", Status: status, CreatedAt: agCreated, ExpiresAt: agExpires, AcceptedAt: accepted}
}

func mca(first, last, email string, agreed time.Time) partnercenter.Agreement {
	return partnercenter.Agreement{PrimaryContact: partnercenter.Contact{FirstName: first, LastName: last, Email: email},
		DateAgreed: agreed, Type: partnercenter.MicrosoftCustomerAgreement}
}

func TestDecideCheck(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	accepted := agAccepted
	partnerDate := time.Date(2025, 6, 2, 8, 30, 0, 0, time.UTC)
	byLee := mca("Lee", "Chen", "lee@contoso.com", partnerDate)
	byAna := mca("Ana", "Bowman", "ANA@contoso.com", time.Date(2026, 11, 3, 14, 6, 0, 0, time.UTC))
	tests := []struct {
		name     string
		row      func(a *schema.Agreement)
		in       mapping.CheckInput
		status   schema.AttestationStatus
		path     schema.AcceptancePath
		active   bool
		finalize bool
		agreed   time.Time
		phrases  []string
		absent   []string
	}{
		// 1. Finalized
		{name: "finalized", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationFinalized, &accepted)},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, agreed: agAccepted,
			phrases: []string{"Accepted by Ana Bowman on 3 Nov 2026 14:05 UTC through the acceptance link", "Date agreed, as Partner Center reports it",
				"confirmed by the connector on 21 Nov 2026 10:00 UTC (Verified on)"}},
		{name: "finalized, any case", in: mapping.CheckInput{Attestation: attestation("finalized", &accepted)},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, agreed: agAccepted},
		{name: "finalized without an acceptance time takes the agreement's", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationFinalized, nil),
			Agreements: []partnercenter.Agreement{byLee, byAna}},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, agreed: byAna.DateAgreed, phrases: []string{"on 3 Nov 2026 14:06 UTC"}},
		{name: "finalized, no date anywhere", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationFinalized, nil), Agreements: []partnercenter.Agreement{byLee}},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, phrases: []string{"Partner Center does not say when"}},
		{name: "finalized beats direct-signed", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationFinalized, &accepted), DirectSigned: &yes},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, agreed: agAccepted},
		{name: "finalized beats another agreement", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationFinalized, &accepted), Agreements: []partnercenter.Agreement{byLee}},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, agreed: agAccepted},
		// 2. Accepted
		{name: "accepted", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationAccepted, &accepted)},
			status: schema.AttestationCustomerAccepted, path: schema.AcceptanceLink, finalize: true, agreed: agAccepted,
			phrases: []string{"Ana Bowman accepted the Microsoft Customer Agreement through the acceptance link on 3 Nov 2026 14:05 UTC", "becomes Attested"}},
		{name: "accepted without a time", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationAccepted, nil)},
			status: schema.AttestationCustomerAccepted, path: schema.AcceptanceLink, finalize: true, phrases: []string{"does not say when"}},
		{name: "accepted, row already Customer accepted: finalize again", row: func(a *schema.Agreement) { a.AttestationStatus = schema.AttestationCustomerAccepted },
			in:     mapping.CheckInput{Attestation: attestation(partnercenter.AttestationAccepted, &accepted)},
			status: schema.AttestationCustomerAccepted, path: schema.AcceptanceLink, finalize: true, agreed: agAccepted},
		{name: "accepted beats direct-signed", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationAccepted, &accepted), DirectSigned: &yes},
			status: schema.AttestationCustomerAccepted, path: schema.AcceptanceLink, finalize: true, agreed: agAccepted},
		{name: "no signatory name", row: func(a *schema.Agreement) { a.SignatoryFirstName, a.SignatoryLastName = "", "" },
			in:     mapping.CheckInput{Attestation: attestation(partnercenter.AttestationAccepted, &accepted)},
			status: schema.AttestationCustomerAccepted, path: schema.AcceptanceLink, finalize: true, agreed: agAccepted, phrases: []string{"The signatory accepted"}},
		// 3. An agreement in Partner Center
		{name: "agreement by partner attestation", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationNotStarted, "" },
			in:     mapping.CheckInput{Agreements: []partnercenter.Agreement{byLee}, DirectSigned: &no},
			status: schema.AttestationAttested, path: schema.AcceptancePartnerAttestation, active: true, agreed: partnerDate,
			phrases: []string{"Partner Center already has the Microsoft Customer Agreement", "accepted by Lee Chen on 2 Jun 2025 08:30 UTC", "partner attestation", "Verified on"},
			absent:  []string{"no longer needed"}},
		{name: "the latest of several agreements", row: func(a *schema.Agreement) { a.AttestationID = "" },
			in: mapping.CheckInput{Agreements: []partnercenter.Agreement{
				mca("Old", "One", "old@contoso.com", time.Date(2024, 1, 5, 0, 0, 0, 0, time.UTC)), byLee,
				mca("Mid", "Two", "mid@contoso.com", time.Date(2024, 8, 5, 0, 0, 0, 0, time.UTC)),
			}},
			status: schema.AttestationAttested, path: schema.AcceptancePartnerAttestation, active: true, agreed: partnerDate, phrases: []string{"Lee Chen"}},
		{name: "agreement carrying the row's attestation", in: mapping.CheckInput{Agreements: []partnercenter.Agreement{byLee, byAna}},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, agreed: byAna.DateAgreed,
			phrases: []string{"Accepted by Ana Bowman on 3 Nov 2026 14:06 UTC through the acceptance link"}},
		{name: "agreement naming the attestation in its link", row: func(a *schema.Agreement) { a.SignatoryEmail = "someone@contoso.com" },
			in: mapping.CheckInput{Agreements: []partnercenter.Agreement{{DateAgreed: partnerDate, Type: partnercenter.MicrosoftCustomerAgreement,
				AgreementLink: "https://cdn.partner.microsoft.com/mca/?attestationid=ATT-1"}}},
			status: schema.AttestationAttested, path: schema.AcceptanceLink, active: true, agreed: partnerDate},
		{name: "agreement beats direct-signed", in: mapping.CheckInput{Agreements: []partnercenter.Agreement{byLee}, DirectSigned: &yes},
			status: schema.AttestationAttested, path: schema.AcceptancePartnerAttestation, active: true, agreed: partnerDate},
		{name: "agreement beats a pending link", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationPending, nil), Agreements: []partnercenter.Agreement{byLee}},
			status: schema.AttestationAttested, path: schema.AcceptancePartnerAttestation, active: true, agreed: partnerDate,
			phrases: []string{"acceptance link sent from this agreement is no longer needed"}},
		{name: "agreement beats an expired link", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationExpired, nil), Agreements: []partnercenter.Agreement{byLee}},
			status: schema.AttestationAttested, path: schema.AcceptancePartnerAttestation, active: true, agreed: partnerDate},
		{name: "agreement without a contact", row: func(a *schema.Agreement) { a.AttestationID = "" },
			in:     mapping.CheckInput{Agreements: []partnercenter.Agreement{{DateAgreed: partnerDate}}},
			status: schema.AttestationAttested, path: schema.AcceptancePartnerAttestation, active: true, agreed: partnerDate, phrases: []string{"accepted by the customer on"}},
		{name: "an agreement from before April 2023 does not count", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationNotStarted, "" },
			in:     mapping.CheckInput{Agreements: []partnercenter.Agreement{mca("Old", "One", "old@contoso.com", time.Date(2022, 3, 1, 0, 0, 0, 0, time.UTC))}, DirectSigned: &no},
			status: schema.AttestationNotStarted, phrases: []string{"dates from 1 Mar 2022 00:00 UTC", "accepted before 1 Apr 2023 to accept again", "Link requested"}},
		{name: "a cloud agreement does not count", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationNotStarted, "" },
			in:     mapping.CheckInput{Agreements: []partnercenter.Agreement{{DateAgreed: partnerDate, Type: partnercenter.MicrosoftCloudAgreement}}, DirectSigned: &no},
			status: schema.AttestationNotStarted, phrases: []string{"has not accepted"}},
		// 4. Accepted directly
		{name: "direct-signed", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationNotStarted, "" },
			in:     mapping.CheckInput{Agreements: []partnercenter.Agreement{}, DirectSigned: &yes},
			status: schema.AttestationAcceptedDirectly, path: schema.AcceptanceAdminCenter, active: true,
			phrases: []string{"directly in the Microsoft 365 admin center", "does not say when, so Date agreed stays empty", "confirmed by the connector on 21 Nov 2026 10:00 UTC"},
			absent:  []string{"no longer needed"}},
		{name: "direct-signed beats a pending link", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationPending, nil), DirectSigned: &yes},
			status: schema.AttestationAcceptedDirectly, path: schema.AcceptanceAdminCenter, active: true, phrases: []string{"no longer needed"}},
		{name: "direct-signed beats an expired link", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationExpired, nil), DirectSigned: &yes},
			status: schema.AttestationAcceptedDirectly, path: schema.AcceptanceAdminCenter, active: true},
		// A row never moves back on one read.
		{name: "customer accepted stays when Partner Center says Pending", row: func(a *schema.Agreement) { a.AttestationStatus = schema.AttestationCustomerAccepted },
			in:     mapping.CheckInput{Attestation: attestation(partnercenter.AttestationPending, nil), DirectSigned: &no},
			status: schema.AttestationCustomerAccepted, phrases: []string{"Ana Bowman accepted through the acceptance link earlier", `as "Pending"`, "checks again", "att-1"}},
		{name: "customer accepted stays when Partner Center says Expired", row: func(a *schema.Agreement) { a.AttestationStatus = schema.AttestationCustomerAccepted },
			in:     mapping.CheckInput{Attestation: attestation(partnercenter.AttestationExpired, nil)},
			status: schema.AttestationCustomerAccepted, phrases: []string{`as "Expired"`}},
		// 5. Expired
		{name: "expired", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationExpired, nil), Agreements: []partnercenter.Agreement{}, DirectSigned: &no},
			status: schema.AttestationExpired,
			phrases: []string{"The acceptance link sent to Ana Bowman (ana@contoso.com) on 1 Nov 2026 09:00 UTC expired on 1 Dec 2026 09:00 UTC",
				"set Attestation status to Link requested to send a new one"},
			absent: []string{"does not know"}},
		{name: "pending past its expiry", in: mapping.CheckInput{Attestation: &partnercenter.Attestation{ID: "att-1", Status: partnercenter.AttestationPending,
			CreatedAt: agCreated, ExpiresAt: agNow.Add(-time.Minute)}},
			status: schema.AttestationExpired, phrases: []string{"expired on 21 Nov 2026 09:59 UTC", "Link requested"}},
		{name: "pending expiring this instant is still open", in: mapping.CheckInput{Attestation: &partnercenter.Attestation{ID: "att-1", Status: partnercenter.AttestationPending, ExpiresAt: agNow}},
			status: schema.AttestationLinkSent, phrases: []string{"The link expires on 21 Nov 2026 10:00 UTC"}},
		{name: "pending a second past its expiry", in: mapping.CheckInput{Attestation: &partnercenter.Attestation{ID: "att-1", Status: partnercenter.AttestationPending, ExpiresAt: agNow.Add(-time.Second)}},
			status: schema.AttestationExpired, phrases: []string{"The acceptance link sent to Ana Bowman (ana@contoso.com) expired on 21 Nov 2026 09:59 UTC"}},
		{name: "expired, unknown dates", row: func(a *schema.Agreement) { a.LinkExpiresOn = time.Time{} },
			in:     mapping.CheckInput{Attestation: &partnercenter.Attestation{ID: "att-1", Status: partnercenter.AttestationExpired}},
			status: schema.AttestationExpired, phrases: []string{"(ana@contoso.com) expired without being accepted"}},
		// 6. Pending
		{name: "pending", in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationPending, nil), Agreements: []partnercenter.Agreement{}, DirectSigned: &no},
			status:  schema.AttestationLinkSent,
			phrases: []string{"Waiting for Ana Bowman (ana@contoso.com) to accept", "link sent on 1 Nov 2026 09:00 UTC", "The link expires on 1 Dec 2026 09:00 UTC"},
			absent:  []string{"does not know"}},
		{name: "pending on a Not started row", row: func(a *schema.Agreement) { a.AttestationStatus = schema.AttestationNotStarted },
			in: mapping.CheckInput{Attestation: attestation(partnercenter.AttestationPending, nil)}, status: schema.AttestationLinkSent},
		{name: "pending without an expiry uses the row's", in: mapping.CheckInput{Attestation: &partnercenter.Attestation{ID: "att-1", Status: "pending", CreatedAt: agCreated}},
			status: schema.AttestationLinkSent, phrases: []string{"expires on 1 Dec 2026 09:00 UTC"}},
		{name: "pending, no expiry anywhere", row: func(a *schema.Agreement) { a.LinkExpiresOn = time.Time{} },
			in:     mapping.CheckInput{Attestation: &partnercenter.Attestation{ID: "att-1", Status: partnercenter.AttestationPending}},
			status: schema.AttestationLinkSent, phrases: []string{"did not say when the link expires"}},
		// Unknown statuses are kept, word for word.
		{name: "unknown status", in: mapping.CheckInput{Attestation: attestation("AwaitingSignature", nil)},
			status: schema.AttestationLinkSent, phrases: []string{"Waiting for Ana Bowman", `"AwaitingSignature"`, "does not know", "treats it as Pending"}},
		{name: "unknown status past the expiry", in: mapping.CheckInput{Attestation: &partnercenter.Attestation{ID: "att-1", Status: "Revoked", ExpiresAt: agNow.Add(-time.Hour)}},
			status: schema.AttestationExpired, phrases: []string{"expired on 21 Nov 2026 09:00 UTC", `"Revoked"`}},
		{name: "empty status", in: mapping.CheckInput{Attestation: attestation("", nil)},
			status: schema.AttestationLinkSent, phrases: []string{"status as empty"}},
		// 7. Nothing found
		{name: "nothing found", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationNotStarted, "" },
			in:     mapping.CheckInput{Agreements: []partnercenter.Agreement{}, DirectSigned: &no},
			status: schema.AttestationNotStarted,
			phrases: []string{"The customer has not accepted the Microsoft Customer Agreement yet", "(Partner Center shows no Microsoft Customer Agreement for them and no acceptance in the Microsoft 365 admin center)",
				"Fill in the signatory and set Attestation status to Link requested", "ask the customer to accept it in the Microsoft 365 admin center"}},
		{name: "nothing found, direct-sign not read", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationNotStarted, "" },
			in:     mapping.CheckInput{Agreements: []partnercenter.Agreement{}},
			status: schema.AttestationNotStarted, phrases: []string{"(Partner Center shows no Microsoft Customer Agreement for them)"}, absent: []string{"admin center)"}},
		{name: "nothing read", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationNotStarted, "" },
			status: schema.AttestationNotStarted, phrases: []string{"could not check with Partner Center", "checks again"}, absent: []string{"has not accepted"}},
		{name: "no status counts as Not started", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = 0, "" },
			in: mapping.CheckInput{Agreements: []partnercenter.Agreement{}, DirectSigned: &no}, status: schema.AttestationNotStarted},
		{name: "attestation not read keeps the row", in: mapping.CheckInput{Agreements: []partnercenter.Agreement{}, DirectSigned: &no},
			status: schema.AttestationLinkSent, phrases: []string{"could not read attestation att-1", "unchanged"}},
		{name: "failed keeps its reason", row: func(a *schema.Agreement) {
			a.AttestationStatus, a.AttestationID, a.AttestationMessage = schema.AttestationFailed, "", "Partner Center refused the signatory: fix the e-mail address."
		}, in: mapping.CheckInput{Agreements: []partnercenter.Agreement{}, DirectSigned: &no},
			status: schema.AttestationFailed, phrases: []string{"Partner Center refused the signatory: fix the e-mail address."}},
		{name: "expired keeps its message", row: func(a *schema.Agreement) {
			a.AttestationStatus, a.AttestationMessage = schema.AttestationExpired, "The acceptance link sent to Ana Bowman expired."
		}, in: mapping.CheckInput{DirectSigned: &no},
			status: schema.AttestationExpired, phrases: []string{"The acceptance link sent to Ana Bowman expired."}},
		{name: "failed, found directly", row: func(a *schema.Agreement) { a.AttestationStatus, a.AttestationID = schema.AttestationFailed, "" },
			in: mapping.CheckInput{DirectSigned: &yes}, status: schema.AttestationAcceptedDirectly, path: schema.AcceptanceAdminCenter, active: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := signedRow()
			if tt.row != nil {
				tt.row(&a)
			}
			got := mapping.DecideCheck(a, tt.in, agNow)
			assert.Equal(t, tt.status, got.Status, "status")
			assert.Equal(t, tt.path, got.Path, "path")
			assert.Equal(t, tt.active, got.Active, "active")
			assert.Equal(t, tt.finalize, got.Finalize, "finalize")
			assert.True(t, tt.agreed.Equal(got.DateAgreed), "date agreed %v, want %v", got.DateAgreed, tt.agreed)
			assert.NotEmpty(t, got.Message)
			for _, p := range tt.phrases {
				assert.Contains(t, got.Message, p)
			}
			for _, p := range tt.absent {
				assert.NotContains(t, got.Message, p)
			}
		})
	}
}

func TestFinalizedOutcome(t *testing.T) {
	t.Parallel()
	accepted := agAccepted
	tests := []struct {
		name    string
		att     partnercenter.Attestation
		rowDate time.Time
		existed bool
		agreed  time.Time
		phrases []string
		absent  []string
	}{
		{name: "created", att: *attestation(partnercenter.AttestationFinalized, &accepted), agreed: agAccepted,
			phrases: []string{"Accepted by Ana Bowman on 3 Nov 2026 14:05 UTC through the acceptance link (Date agreed, as Partner Center reports it)",
				"confirmed by the connector on 21 Nov 2026 10:00 UTC (Verified on)"},
			absent: []string{"already had"}},
		{name: "already existed (600061)", att: *attestation(partnercenter.AttestationAccepted, &accepted), existed: true, agreed: agAccepted,
			phrases: []string{"Accepted by Ana Bowman", "already had this agreement recorded, so nothing was created twice"}},
		{name: "no acceptance time: the row's", att: *attestation(partnercenter.AttestationAccepted, nil), rowDate: agAccepted, agreed: agAccepted,
			phrases: []string{"on 3 Nov 2026 14:05 UTC"}},
		{name: "no acceptance time anywhere", att: *attestation(partnercenter.AttestationAccepted, nil),
			phrases: []string{"does not say when, so Date agreed stays empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := signedRow()
			a.AttestationStatus, a.DateAgreed = schema.AttestationCustomerAccepted, tt.rowDate
			got := mapping.FinalizedOutcome(a, tt.att, tt.existed, agNow)
			assert.Equal(t, schema.AttestationAttested, got.Status)
			assert.Equal(t, schema.AcceptanceLink, got.Path)
			assert.True(t, got.Active)
			assert.False(t, got.Finalize)
			assert.True(t, tt.agreed.Equal(got.DateAgreed), "date agreed %v, want %v", got.DateAgreed, tt.agreed)
			for _, p := range tt.phrases {
				assert.Contains(t, got.Message, p)
			}
			for _, p := range tt.absent {
				assert.NotContains(t, got.Message, p)
			}
		})
	}
}

func TestLinkSentMessage(t *testing.T) {
	t.Parallel()
	att := *attestation(partnercenter.AttestationPending, nil)
	tests := []struct {
		name    string
		row     func(a *schema.Agreement)
		att     partnercenter.Attestation
		url     string
		phrases []string
	}{
		{name: "sent", att: att, url: "https://cdn.partner.microsoft.com/mca/?attestationid=att-1",
			phrases: []string{"Acceptance link created on 1 Nov 2026 09:00 UTC for Ana Bowman (ana@contoso.com)", "https://cdn.partner.microsoft.com/mca/?attestationid=att-1",
				"Acceptance link", "It expires on 1 Dec 2026 09:00 UTC", "marks this agreement Attested"}},
		{name: "no URL given: built from the id", att: att, phrases: []string{partnercenter.AcceptanceURL("att-1")}},
		{name: "no expiry", row: func(a *schema.Agreement) { a.LinkExpiresOn = time.Time{} }, att: partnercenter.Attestation{ID: "att-2"}, url: "https://example.test/x",
			phrases: []string{"Acceptance link created for Ana Bowman", "did not say when it expires"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := signedRow()
			if tt.row != nil {
				tt.row(&a)
			}
			msg := mapping.LinkSentMessage(a, tt.att, tt.url)
			for _, p := range tt.phrases {
				assert.Contains(t, msg, p)
			}
		})
	}
}

func TestWaitingForCustomer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		state  int
		status int
		att    schema.AttestationStatus
		want   bool
	}{
		{name: "not started", status: schema.AgreementPending, att: schema.AttestationNotStarted, want: true},
		{name: "no attestation status", status: schema.AgreementPending, want: true},
		{name: "link sent", status: schema.AgreementPending, att: schema.AttestationLinkSent, want: true},
		{name: "customer accepted", status: schema.AgreementPending, att: schema.AttestationCustomerAccepted, want: true},
		{name: "link requested: the request handler's", status: schema.AgreementPending, att: schema.AttestationLinkRequested},
		{name: "expired waits for a person", status: schema.AgreementPending, att: schema.AttestationExpired},
		{name: "failed waits for a person", status: schema.AgreementPending, att: schema.AttestationFailed},
		{name: "attested", status: schema.StatusActive, att: schema.AttestationAttested},
		{name: "accepted directly", status: schema.StatusActive, att: schema.AttestationAcceptedDirectly},
		{name: "active status reason", status: schema.StatusActive, att: schema.AttestationLinkSent},
		{name: "inactive row", state: schema.StateInactive, status: schema.StatusInactive, att: schema.AttestationLinkSent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := schema.Agreement{State: tt.state, Status: tt.status, AttestationStatus: tt.att}
			assert.Equal(t, tt.want, mapping.WaitingForCustomer(a))
		})
	}
}

// Partner Center may not say when a link expires: the expiry the connector recorded on the row (its own
// link lifetime) then decides, and a link past it is Expired, not waited on for ever.
func TestDecideCheckExpiresByTheRowsLinkExpiryWhenPartnerCenterGivesNone(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	a := schema.Agreement{AttestationStatus: schema.AttestationLinkSent, AttestationID: "att-1", SignatoryFirstName: "Ann", SignatoryEmail: "ann@contoso.com",
		LinkExpiresOn: now.Add(-time.Minute)}
	att := &partnercenter.Attestation{ID: "att-1", Status: partnercenter.AttestationPending, CreatedAt: now.Add(-7 * 24 * time.Hour)}
	out := mapping.DecideCheck(a, mapping.CheckInput{Attestation: att}, now)
	assert.Equal(t, schema.AttestationExpired, out.Status, out.Message)
	assert.Contains(t, out.Message, "Link requested")

	a.LinkExpiresOn = now.Add(time.Hour)
	out = mapping.DecideCheck(a, mapping.CheckInput{Attestation: att}, now)
	assert.Equal(t, schema.AttestationLinkSent, out.Status, out.Message)
}
