package mapping_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/mapping"
)

const tenantA = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"

// indexOf indexes accounts, giving each without an id one derived from its position, so that tests can
// name accounts by name and still have distinct ids.
func indexOf(accounts ...mapping.AccountFacts) *mapping.AccountIndex {
	for i := range accounts {
		if accounts[i].ID == uuid.Nil {
			accounts[i].ID = uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "account-%d", i))
		}
	}
	return mapping.NewAccountIndex(accounts)
}

func candidateNames(m mapping.Match) []string {
	var names []string
	for _, c := range m.Candidates {
		names = append(names, c.Name)
	}
	return names
}

func TestNormalizeCompanyName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Contoso", "contoso"},
		{"CONTOSO", "contoso"},
		{"Contoso Pty. Ltd.", "contoso"},
		{"Contoso Pty Ltd", "contoso"},
		{"Fabrikam, Inc.", "fabrikam"},
		{"Müller GmbH & Co. KG", "muller"},
		{"Mueller GmbH", "mueller"},
		{"Tailspin B.V.", "tailspin"},
		{"Tailspin BV", "tailspin"},
		{"Litware S.p.A.", "litware"},
		{"Northwind A/S", "northwind"},
		{"Contoso (UK) Ltd", "contoso uk"},
		{"Contoso (UK) Limited", "contoso uk"},
		{"AT&T", "at and t"},
		{"AT and T", "at and t"},
		{"AT & T Inc.", "at and t"},
		{`"Contoso" Ltd`, "contoso"},
		{"“Contoso” Ltd", "contoso"},
		{"O'Brien's Bakery", "obriens bakery"},
		{"O’Brien’s Bakery LLC", "obriens bakery"},
		{"The Contoso Company", "contoso"},
		{"The Phone House", "phone house"},
		{"Co.", "co"},
		{"Ltd", "ltd"},
		{"The", "the"},
		{"Inc. Ltd.", "inc"},
		{"Smith & Co.", "smith"},
		{"Black and Decker", "black and decker"},
		{"Société Générale S.A.", "societe generale"},
		{"Straße GmbH", "strasse"},
		{"ＣＯＮＴＯＳＯ", "contoso"},
		{"Coca-Cola Company", "coca cola"},
		{"Contoso.com Ltd", "contoso com"},
		{"Contoso Sp. z o.o.", "contoso"},
		{"Contoso Private Limited", "contoso"},
		{"Contoso UG (haftungsbeschränkt)", "contoso"},
		{"  Contoso   Ltd  ", "contoso"},
		{"Contoso, Ltd., Inc.", "contoso"},
		{"!!!", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got := mapping.NormalizeCompanyName(tt.in)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, got, mapping.NormalizeCompanyName(got), "normalizing twice")
		})
	}
}

func TestDomainOf(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"contoso.com", "contoso.com"},
		{"www.contoso.com", "contoso.com"},
		{"https://Contoso.com/en-us", "contoso.com"},
		{"contoso.com:443", "contoso.com"},
		{"HTTPS://WWW.CONTOSO.COM:443/About?x=1#top", "contoso.com"},
		{"https://user:secret@www.contoso.com:8443/x", "contoso.com"},
		{"contoso.com.", "contoso.com"},
		{"eu.contoso.com", "contoso.com"},
		{"someone@Contoso.com", "contoso.com"},
		{"mailto:someone@eu.contoso.com", "contoso.com"},
		{"www.contoso.co.uk", "contoso.co.uk"},
		{"a.co.uk", "a.co.uk"},
		{"co.uk", ""},
		{"com", ""},
		{"localhost", ""},
		{"192.168.1.10", ""},
		{"http://[2001:db8::1]:80/", ""},
		{"not a domain", ""},
		{"", ""},
		{"münchen.de", "xn--mnchen-3ya.de"},
		{"contoso.onmicrosoft.com", "onmicrosoft.com"},
		{"contoso.azurewebsites.net", "contoso.azurewebsites.net"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, mapping.DomainOf(tt.in))
		})
	}
}

func TestIsPublicMailDomain(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"gmail.com", "Gmail.com", "someone@hotmail.co.uk", "outlook.com", "gmx.de", "163.com", "libero.it"} {
		assert.True(t, mapping.IsPublicMailDomain(d), d)
	}
	for _, d := range []string{"contoso.com", "co.uk", "", "mail.contoso.com", "microsoft.com"} {
		assert.False(t, mapping.IsPublicMailDomain(d), d)
	}
}

func TestAccountIndexMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		accounts   []mapping.AccountFacts
		customer   mapping.CustomerFacts
		outcome    mapping.Outcome
		winner     string   // the matched account's name
		candidates []string // names, in order
		message    []string // parts the message has
		not        []string // parts it must not have
	}{
		{
			name:     "tenant alone, compared without case or braces",
			accounts: []mapping.AccountFacts{{Name: "Contoso Ltd", TenantIDs: []string{strings.ToUpper(tenantA)}}, {Name: "Fabrikam"}},
			customer: mapping.CustomerFacts{TenantID: "{" + tenantA + "}", Domain: "fabrikam.onmicrosoft.com", CompanyName: "Something Else"},
			outcome:  mapping.Matched, winner: "Contoso Ltd", candidates: []string{"Contoso Ltd"},
			message: []string{`Mapped automatically to "Contoso Ltd": tenant {` + tenantA + `} is already mapped to it through another provider account.`},
		},
		{
			name:     "website alone",
			accounts: []mapping.AccountFacts{{Name: "Contoso Ltd", Website: "https://www.contoso.com/en-us"}, {Name: "Fabrikam", Website: "fabrikam.com"}},
			customer: mapping.CustomerFacts{Domain: "contoso.com"},
			outcome:  mapping.Matched, winner: "Contoso Ltd", candidates: []string{"Contoso Ltd"},
			message: []string{`Mapped automatically to "Contoso Ltd": website www.contoso.com matches contoso.com.`},
		},
		{
			name:     "account e-mail alone",
			accounts: []mapping.AccountFacts{{Name: "Contoso Ltd", Email: "info@contoso.com"}},
			customer: mapping.CustomerFacts{Domain: "contoso.com"},
			outcome:  mapping.Matched, winner: "Contoso Ltd",
			message: []string{"e-mail info@contoso.com matches contoso.com"},
		},
		{
			name:     "contacts alone, counted once per account",
			accounts: []mapping.AccountFacts{{Name: "Contoso Ltd", ContactEmails: []string{"ann@contoso.com", "bob@Contoso.com", "ANN@contoso.com", "eve@gmail.com"}}},
			customer: mapping.CustomerFacts{Domain: "contoso.com"},
			outcome:  mapping.Matched, winner: "Contoso Ltd",
			message: []string{"e-mail domain of 2 contacts matches contoso.com"},
		},
		{
			name:     "name alone",
			accounts: []mapping.AccountFacts{{Name: "Contoso Pty. Ltd."}, {Name: "Fabrikam"}},
			customer: mapping.CustomerFacts{CompanyName: "CONTOSO PTY LTD"},
			outcome:  mapping.Matched, winner: "Contoso Pty. Ltd.",
			message: []string{`Mapped automatically to "Contoso Pty. Ltd.": company name matches "CONTOSO PTY LTD".`},
		},
		{
			name: "tenant beats every other rule together",
			accounts: []mapping.AccountFacts{
				{Name: "Contoso Ltd", Website: "www.contoso.com", Email: "info@contoso.com", ContactEmails: []string{"ann@contoso.com"}},
				{Name: "Contoso Holdings", TenantIDs: []string{tenantA}},
			},
			customer: mapping.CustomerFacts{TenantID: tenantA, Domain: "contoso.com", CompanyName: "Contoso Ltd"},
			outcome:  mapping.Matched, winner: "Contoso Holdings", candidates: []string{"Contoso Holdings", "Contoso Ltd"},
			message: []string{`Mapped automatically to "Contoso Holdings": tenant`, `Also considered: "Contoso Ltd" (website www.contoso.com, e-mail info@contoso.com, e-mail domain of 1 contact, company name).`},
		},
		{
			name:     "a tenant mapped to two accounts is for a person to settle",
			accounts: []mapping.AccountFacts{{Name: "Contoso Ltd", TenantIDs: []string{tenantA}, Website: "contoso.com"}, {Name: "Contoso EU", TenantIDs: []string{tenantA}}},
			customer: mapping.CustomerFacts{TenantID: tenantA, Domain: "contoso.com"},
			outcome:  mapping.Ambiguous, candidates: []string{"Contoso Ltd", "Contoso EU"},
			message: []string{`2 accounts could be this customer: "Contoso Ltd" (tenant already mapped to it, website contoso.com), "Contoso EU" (tenant already mapped to it). Choose the right one in Account.`},
		},
		{
			name:     "co.uk is a public suffix: www.contoso.co.uk is contoso.co.uk",
			accounts: []mapping.AccountFacts{{Name: "Contoso UK", Website: "www.contoso.co.uk"}},
			customer: mapping.CustomerFacts{Domain: "contoso.co.uk"},
			outcome:  mapping.Matched, winner: "Contoso UK",
		},
		{
			name:     "a.co.uk is not b.co.uk",
			accounts: []mapping.AccountFacts{{Name: "A", Website: "www.a.co.uk", Email: "info@a.co.uk"}},
			customer: mapping.CustomerFacts{Domain: "b.co.uk", CompanyName: "B"},
			outcome:  mapping.NoMatch,
			message:  []string{`No account matches domain b.co.uk or the name "B". Choose the account in Account, or create one.`},
		},
		{
			name:     "a subdomain of the customer matches the website",
			accounts: []mapping.AccountFacts{{Name: "Contoso", Website: "https://contoso.com"}},
			customer: mapping.CustomerFacts{Domain: "eu.contoso.com"},
			outcome:  mapping.Matched, winner: "Contoso",
			message: []string{"website contoso.com matches eu.contoso.com"},
		},
		{
			name: "onmicrosoft.com is ignored on both sides",
			accounts: []mapping.AccountFacts{
				{Name: "Contoso", Website: "contoso.onmicrosoft.com", Email: "admin@contoso.onmicrosoft.com"},
				{Name: "Fabrikam", ContactEmails: []string{"admin@fabrikam.onmicrosoft.com"}},
			},
			customer: mapping.CustomerFacts{TenantID: tenantA, Domain: "Contoso.onmicrosoft.com", CompanyName: "Litware"},
			outcome:  mapping.NoMatch,
			message: []string{
				`No account matches tenant ` + tenantA + ` or the name "Litware".`,
				"contoso.onmicrosoft.com is the tenant's default Microsoft domain, which no website uses",
				"Choose the account in Account, or create one.",
			},
		},
		{
			name: "public mail domains never match, nor tie unrelated accounts",
			accounts: []mapping.AccountFacts{
				{Name: "Contoso", Email: "contoso@gmail.com", ContactEmails: []string{"ann@gmail.com", "bob@gmail.com"}},
				{Name: "Fabrikam", Website: "gmail.com", ContactEmails: []string{"eve@gmail.com"}},
			},
			customer: mapping.CustomerFacts{Domain: "gmail.com", CompanyName: "Litware"},
			outcome:  mapping.NoMatch,
			message:  []string{"gmail.com is a public e-mail service"},
		},
		{
			name:     "a public mail domain on the account side does not hide its real one",
			accounts: []mapping.AccountFacts{{Name: "Contoso", Email: "contoso@gmail.com", ContactEmails: []string{"ann@gmail.com", "bob@contoso.com"}}},
			customer: mapping.CustomerFacts{Domain: "contoso.com"},
			outcome:  mapping.Matched, winner: "Contoso",
			message: []string{"e-mail domain of 1 contact matches contoso.com"},
		},
		{
			name:     "two accounts with the same website are ambiguous",
			accounts: []mapping.AccountFacts{{Name: "Contoso Sales", Website: "www.contoso.com"}, {Name: "Contoso Support", Website: "https://contoso.com"}},
			customer: mapping.CustomerFacts{Domain: "contoso.com"},
			outcome:  mapping.Ambiguous, candidates: []string{"Contoso Sales", "Contoso Support"},
			message: []string{`2 accounts could be this customer: "Contoso Sales" (website www.contoso.com), "Contoso Support" (website contoso.com). Choose the right one in Account.`},
		},
		{
			name:     "a website against an e-mail address is too close to call",
			accounts: []mapping.AccountFacts{{Name: "Contoso", Website: "contoso.com"}, {Name: "Contoso Group", Email: "x@contoso.com"}},
			customer: mapping.CustomerFacts{Domain: "contoso.com"},
			outcome:  mapping.Ambiguous, candidates: []string{"Contoso", "Contoso Group"},
		},
		{
			name:     "two accounts with the same name are ambiguous",
			accounts: []mapping.AccountFacts{{Name: "Contoso Ltd"}, {Name: "Contoso Limited"}, {Name: "Fabrikam"}},
			customer: mapping.CustomerFacts{CompanyName: "Contoso"},
			outcome:  mapping.Ambiguous, candidates: []string{"Contoso Limited", "Contoso Ltd"},
			message: []string{`2 accounts could be this customer: "Contoso Limited" (company name "Contoso"), "Contoso Ltd" (company name "Contoso").`},
		},
		{
			name: "website and name clearly beat a contact",
			accounts: []mapping.AccountFacts{
				{Name: "Fabrikam", ContactEmails: []string{"consultant@contoso.com"}},
				{Name: "Contoso Ltd", Website: "www.contoso.com"},
			},
			customer: mapping.CustomerFacts{Domain: "contoso.com", CompanyName: "Contoso Ltd"},
			outcome:  mapping.Matched, winner: "Contoso Ltd", candidates: []string{"Contoso Ltd", "Fabrikam"},
			message: []string{`Mapped automatically to "Contoso Ltd": website www.contoso.com matches contoso.com, company name matches. Also considered: "Fabrikam" (e-mail domain of 1 contact).`},
		},
		{
			name:     "nothing in common",
			accounts: []mapping.AccountFacts{{Name: "Fabrikam", Website: "fabrikam.com", TenantIDs: []string{uuid.NewString()}}},
			customer: mapping.CustomerFacts{TenantID: tenantA, Domain: "contoso.com", CompanyName: "Contoso"},
			outcome:  mapping.NoMatch,
			message:  []string{`No account matches tenant ` + tenantA + `, domain contoso.com or the name "Contoso". Choose the account in Account, or create one.`},
			not:      []string{"not compared"},
		},
		{
			name:    "no accounts and an empty customer",
			outcome: mapping.NoMatch,
			message: []string{"There is nothing to match this customer by", "Choose the account in Account, or create one."},
		},
		{
			name:     "accounts, but an empty customer",
			accounts: []mapping.AccountFacts{{Name: ""}, {Name: "Contoso", Website: "contoso.com"}},
			customer: mapping.CustomerFacts{Domain: "  ", CompanyName: "  "},
			outcome:  mapping.NoMatch,
			message:  []string{"There is nothing to match this customer by"},
		},
		{
			name:     "a domain that is not one",
			accounts: []mapping.AccountFacts{{Name: "Contoso", Website: "contoso.com"}},
			customer: mapping.CustomerFacts{Domain: "co.uk"},
			outcome:  mapping.NoMatch,
			message:  []string{"There is nothing to match this customer by. Its domain was not compared: co.uk is not a domain name."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x := indexOf(tt.accounts...)
			require.Equal(t, len(tt.accounts), x.Len())
			m := x.Match(tt.customer)
			assert.Equal(t, tt.outcome, m.Outcome, m.Message)
			if tt.outcome == mapping.Matched {
				require.NotEmpty(t, m.Candidates)
				assert.Equal(t, tt.winner, m.Candidates[0].Name, "the winner is first")
				assert.Equal(t, m.Candidates[0].Account, m.Account)
			} else {
				assert.Equal(t, uuid.Nil, m.Account)
			}
			if tt.candidates != nil {
				assert.Equal(t, tt.candidates, candidateNames(m))
			}
			if tt.outcome == mapping.NoMatch {
				assert.Empty(t, m.Candidates)
			}
			for _, part := range tt.message {
				assert.Contains(t, m.Message, part)
			}
			for _, part := range tt.not {
				assert.NotContains(t, m.Message, part)
			}
			for _, c := range m.Candidates {
				assert.GreaterOrEqual(t, c.Score, 50)
				assert.NotEmpty(t, c.Reasons)
			}
		})
	}
}

func TestAccountIndexMatchWebsiteForms(t *testing.T) {
	t.Parallel()
	for _, website := range []string{"www.contoso.com", "https://Contoso.com/en-us", "contoso.com:443", "HTTPS://WWW.CONTOSO.COM:443/About?x=1", "http://contoso.com/", " Contoso.com. "} {
		t.Run(website, func(t *testing.T) {
			t.Parallel()
			m := indexOf(mapping.AccountFacts{Name: "Contoso", Website: website}).Match(mapping.CustomerFacts{Domain: "Contoso.com"})
			assert.Equal(t, mapping.Matched, m.Outcome, m.Message)
			require.Len(t, m.Candidates, 1)
			assert.Equal(t, 80, m.Candidates[0].Score)
		})
	}
}

func TestAccountIndexMatchScores(t *testing.T) {
	t.Parallel()
	x := indexOf(mapping.AccountFacts{Name: "Contoso Ltd", Website: "contoso.com", Email: "a@contoso.com", ContactEmails: []string{"b@contoso.com", "c@contoso.com"}, TenantIDs: []string{tenantA}})
	m := x.Match(mapping.CustomerFacts{TenantID: tenantA, Domain: "contoso.com", CompanyName: "Contoso"})
	require.Len(t, m.Candidates, 1)
	assert.Equal(t, 1000+80+70+60+50, m.Candidates[0].Score)
	assert.Equal(t, []string{"tenant already mapped to it", "website contoso.com", "e-mail a@contoso.com", "e-mail domain of 2 contacts", `company name "Contoso"`}, m.Candidates[0].Reasons)
}

func TestAccountIndexMatchCandidatesOrderAndLimit(t *testing.T) {
	t.Parallel()
	x := indexOf(
		mapping.AccountFacts{Name: "Omega", ContactEmails: []string{"o@contoso.com"}},
		mapping.AccountFacts{Name: "Epsilon", ContactEmails: []string{"e@contoso.com"}},
		mapping.AccountFacts{Name: "Gamma", Email: "g@contoso.com"},
		mapping.AccountFacts{Name: "Beta", Website: "contoso.com"},
		mapping.AccountFacts{Name: "Alpha", Website: "www.contoso.com"},
		mapping.AccountFacts{Name: "Zeta", Website: "contoso.com", Email: "z@contoso.com", ContactEmails: []string{"z@contoso.com"}},
		mapping.AccountFacts{Name: "Contoso"},
	)
	m := x.Match(mapping.CustomerFacts{Domain: "contoso.com", CompanyName: "Contoso Inc."})
	require.Equal(t, mapping.Matched, m.Outcome, m.Message)
	assert.Equal(t, []string{"Zeta", "Alpha", "Beta", "Gamma", "Epsilon"}, candidateNames(m))
	assert.Equal(t, []int{210, 80, 80, 70, 60}, []int{m.Candidates[0].Score, m.Candidates[1].Score, m.Candidates[2].Score, m.Candidates[3].Score, m.Candidates[4].Score})
	assert.True(t, strings.HasSuffix(m.Message, `Also considered: "Alpha" (website www.contoso.com), "Beta" (website contoso.com), "Gamma" (e-mail g@contoso.com), "Epsilon" (e-mail domain of 1 contact) and 2 more.`), m.Message)

	var same []mapping.AccountFacts
	for _, n := range []string{"G", "F", "E", "D", "C", "B", "A"} {
		same = append(same, mapping.AccountFacts{Name: n, Website: "contoso.com"})
	}
	m = indexOf(same...).Match(mapping.CustomerFacts{Domain: "contoso.com"})
	require.Equal(t, mapping.Ambiguous, m.Outcome)
	assert.Equal(t, []string{"A", "B", "C", "D", "E"}, candidateNames(m))
	assert.Equal(t, `7 accounts could be this customer: "A" (website contoso.com), "B" (website contoso.com), "C" (website contoso.com), "D" (website contoso.com), "E" (website contoso.com) and 2 more. Choose the right one in Account.`, m.Message)
}

func TestAccountIndexMatchQuotesNamesVerbatim(t *testing.T) {
	t.Parallel()
	odd := []string{`O'Brien & "Sons" (UK) Ltd`, `100% Fabrikam #1 / R&D`, `Tailspin's "Best" 50%`}
	x := indexOf(
		mapping.AccountFacts{Name: odd[0], Website: "www.obrien.ie"},
		mapping.AccountFacts{Name: odd[1], Website: "fabrikam.com"},
		mapping.AccountFacts{Name: odd[2], Website: "fabrikam.com"},
	)
	m := x.Match(mapping.CustomerFacts{Domain: "obrien.ie", CompanyName: `O'Brien & "Sons" (UK) Ltd`})
	assert.Equal(t, mapping.Matched, m.Outcome)
	assert.Contains(t, m.Message, `"`+odd[0]+`"`)
	assert.Contains(t, m.Message, "company name matches.", "the same name is not repeated")

	m = x.Match(mapping.CustomerFacts{Domain: "fabrikam.com"})
	assert.Equal(t, mapping.Ambiguous, m.Outcome)
	assert.Contains(t, m.Message, `"`+odd[1]+`"`)
	assert.Contains(t, m.Message, `"`+odd[2]+`"`)

	name := `Litware's "R&D" 100% #2 (EU)/Ops`
	m = x.Match(mapping.CustomerFacts{Domain: "litware.com", CompanyName: name})
	assert.Equal(t, mapping.NoMatch, m.Outcome)
	assert.Contains(t, m.Message, `the name "`+name+`"`)
}

func TestAccountIndexMatchMessageFits(t *testing.T) {
	t.Parallel()
	var accounts []mapping.AccountFacts
	for i := range 60 {
		accounts = append(accounts, mapping.AccountFacts{Name: fmt.Sprintf("%03d %s", i, strings.Repeat("Contoso Worldwide Holdings ", 6)), Website: "contoso.com"})
	}
	m := indexOf(accounts...).Match(mapping.CustomerFacts{Domain: "contoso.com", CompanyName: strings.Repeat("Ω", 5000)})
	require.Equal(t, mapping.Ambiguous, m.Outcome)
	assert.LessOrEqual(t, len(m.Message), 2000)
	assert.Contains(t, m.Message, "60 accounts could be this customer")
	assert.Contains(t, m.Message, "more. Choose the right one in Account.")

	m = indexOf().Match(mapping.CustomerFacts{TenantID: strings.Repeat("x", 3000), Domain: strings.Repeat("a.", 1500) + "com", CompanyName: strings.Repeat("Ω", 5000)})
	assert.Equal(t, mapping.NoMatch, m.Outcome)
	assert.LessOrEqual(t, len(m.Message), 2000)
	assert.True(t, utf8.ValidString(m.Message))
}

func TestAccountIndexNil(t *testing.T) {
	t.Parallel()
	var x *mapping.AccountIndex
	assert.Zero(t, x.Len())
	assert.Equal(t, mapping.NoMatch, x.Match(mapping.CustomerFacts{Domain: "contoso.com"}).Outcome)
}

func FuzzNormalizeCompanyName(f *testing.F) {
	for _, s := range []string{"Contoso Pty. Ltd.", "Müller GmbH & Co. KG", "Fabrikam, Inc.", "Co.", "The", "The Co", "AT&T", "B.V.", "Smith & Co and Ltd",
		"Inc Ltd", "Limited Liability Company", "İstanbul A.Ş.", "ǅemal", "℅ Ltd", "ＣＯＮＴＯＳＯ", "Sp. z o.o.", "and & Co", "O'Brien's", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := mapping.NormalizeCompanyName(s)
		if twice := mapping.NormalizeCompanyName(once); twice != once {
			t.Fatalf("NormalizeCompanyName(%q) = %q, but normalizing that gives %q", s, once, twice)
		}
		if once != strings.TrimSpace(once) || strings.Contains(once, "  ") {
			t.Fatalf("NormalizeCompanyName(%q) = %q: stray spaces", s, once)
		}
	})
}

func BenchmarkAccountIndexMatch(b *testing.B) {
	accounts := make([]mapping.AccountFacts, 10_000)
	for i := range accounts {
		accounts[i] = mapping.AccountFacts{
			ID:            uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "account-%d", i)),
			Name:          fmt.Sprintf("Company %d Ltd", i),
			Website:       fmt.Sprintf("https://www.company%d.com/en-us", i),
			Email:         fmt.Sprintf("info@company%d.com", i),
			ContactEmails: []string{fmt.Sprintf("ann@company%d.com", i), fmt.Sprintf("bob@company%d.com", i), fmt.Sprintf("company%d@gmail.com", i)},
			TenantIDs:     []string{uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "tenant-%d", i)).String()},
		}
	}
	x := mapping.NewAccountIndex(accounts)
	customers := make([]mapping.CustomerFacts, 1000)
	for i := range customers {
		n := i * 7
		customers[i] = mapping.CustomerFacts{TenantID: uuid.NewString(), Domain: fmt.Sprintf("company%d.com", n), CompanyName: fmt.Sprintf("Company %d Limited", n)}
		if i%3 == 0 {
			customers[i].TenantID = accounts[n].TenantIDs[0]
		}
		if i%5 == 0 {
			customers[i] = mapping.CustomerFacts{TenantID: uuid.NewString(), Domain: "newco.onmicrosoft.com", CompanyName: "New Co"}
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if m := x.Match(customers[i%len(customers)]); m.Outcome == mapping.Ambiguous {
			b.Fatal(m.Message)
		}
		i++
	}
}
