package mapping

// Mapping a Partner Center customer to a Dynamics Account.
//
// Every customer the connector syncs becomes a Provider Account row, and someone has to say which
// Dynamics Account it belongs to. Admins do that by hand when the connector cannot, so the connector maps
// by itself only where the evidence leaves no real doubt, and says in plain words what it saw either way.
//
// The rules, each giving points to an account (the numbers are the constants below):
//
//  1. Tenant (tenantScore, 1000). The account already has the customer's tenant through another provider
//     account: someone has mapped this very tenant to it before. When exactly one account has the tenant it
//     wins whatever the other rules say; when several have it, people disagreed before, and a person
//     chooses (Ambiguous).
//  2. Domain. The registrable domain (eTLD+1, so www.contoso.com, eu.contoso.com and contoso.com are one
//     and contoso.co.uk is not co.uk) of the customer's default domain against the account's website
//     (websiteScore, 80), its e-mail address (emailScore, 70) and its contacts' e-mail addresses
//     (contactScore, 60, once per account however many contacts share the domain). The kinds add up, so an
//     account whose website and contacts both have the domain scores 140: each kind is a separate person
//     having typed the domain, and a sum is easy to explain. Two kinds of domain never count, on either
//     side: a tenant's Microsoft domains (contoso.onmicrosoft.com: every tenant has one and no website uses
//     it) and public mail services (gmail.com: thousands of unrelated people share them, so they would
//     tie unrelated accounts together).
//  3. Name (nameScore, 50). NormalizeCompanyName of the customer's company name equals that of the
//     account's name.
//
// Every account with any evidence scores at least minScore and is a candidate. The best candidate is
// mapped when it leads the next by at least leadMargin points, which means one more kind of evidence than
// any rival; otherwise the candidates within the margin are Ambiguous and a person chooses. A name alone
// maps when no other account shares it; a website and a name beat a contact; a website against an e-mail
// address (80 against 70) is too close to call. Several customers may map to one account: a company with
// several tenants is common, so nothing is exclusive.

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The scores and thresholds of the rules above.
const (
	tenantScore  = 1000 // the tenant is already mapped to the account
	websiteScore = 80   // the account's website has the customer's domain
	emailScore   = 70   // the account's own e-mail address has it
	contactScore = 60   // one or more of the account's contacts have it
	nameScore    = 50   // the normalized company names are equal

	// minScore is the least an account needs to be a candidate at all.
	minScore = 50
	// leadMargin is how far the best candidate must lead the next to be mapped without a person.
	leadMargin = 30
	// maxCandidates bounds Match.Candidates: a person reads them, and beyond five the list is noise.
	maxCandidates = 5
	// maxMessage is the length of csp_mappingmessage.
	maxMessage = 2000
	// maxShown clips one name, host or address quoted in a message, so that a single absurd value cannot
	// crowd out the rest. Real ones are shorter (an account name holds 160 characters).
	maxShown = 200
)

// AccountFacts is one Dynamics Account as the matching rules see it (loaded in bulk by the caller).
type AccountFacts struct {
	ID            dataverse.GUID
	Name          string
	Website       string   // account.websiteurl, any form: "www.contoso.com", "https://Contoso.com/en-us", "contoso.com:443"
	Email         string   // account.emailaddress1
	ContactEmails []string // emailaddress1 of the account's contacts
	TenantIDs     []string // customer tenant ids already mapped to this account through other provider accounts
}

// CustomerFacts is what Partner Center says about one customer.
type CustomerFacts struct {
	TenantID    string
	Domain      string // the customer's default domain, e.g. "contoso.com" or "contoso.onmicrosoft.com"
	CompanyName string
}

// Outcome is what matching decided for one customer.
type Outcome int

// Outcomes.
const (
	NoMatch   Outcome = iota // no account has any evidence: a person maps or creates one
	Matched                  // one account is clearly the customer: mapped without a person
	Ambiguous                // several accounts are about equally likely: a person chooses
)

func (o Outcome) String() string {
	switch o {
	case NoMatch:
		return "no match"
	case Matched:
		return "matched"
	case Ambiguous:
		return "ambiguous"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Candidate is one account the rules found evidence for, with the evidence in words, so that whoever
// checks the mapping sees why without opening the account.
type Candidate struct {
	Account dataverse.GUID
	Name    string
	Score   int
	// Reasons are short, for lists: `website www.contoso.com`, `e-mail domain of 2 contacts`,
	// `tenant already mapped to it`, `company name "Contoso Ltd"`.
	Reasons []string
}

// Match is the answer for one customer.
type Match struct {
	Outcome Outcome
	// Account is the winner when Matched; zero otherwise.
	Account dataverse.GUID
	// Candidates are best first, ties by name; for Matched the winner first; at most 5.
	Candidates []Candidate
	// Message is for csp_mappingmessage: what was decided and why, in plain words.
	Message string
}

// AccountIndex answers matches for many customers from one bulk load of accounts: a sync matches every
// new customer against the same accounts, so the lookups are built once and each Match reads only the
// accounts that share something with the customer. It is not changed by Match and is safe for concurrent
// use.
type AccountIndex struct {
	accounts []indexedAccount
	byTenant map[string][]int            // canonical tenant id → accounts
	byDomain map[string][]domainEvidence // registrable domain → accounts with what has it
	byName   map[string][]int            // NormalizeCompanyName → accounts
}

type indexedAccount struct {
	id   dataverse.GUID
	name string
}

// domainEvidence is where one account has one registrable domain.
type domainEvidence struct {
	account  int
	website  string // the website's host, "" when the website does not have the domain
	email    string // the account's e-mail address, "" when it does not have the domain
	contacts int    // how many distinct contact addresses have it
}

// NewAccountIndex indexes accounts for Match. The slice is not kept.
func NewAccountIndex(accounts []AccountFacts) *AccountIndex {
	x := &AccountIndex{
		accounts: make([]indexedAccount, len(accounts)),
		byTenant: make(map[string][]int),
		byDomain: make(map[string][]domainEvidence, len(accounts)),
		byName:   make(map[string][]int, len(accounts)),
	}
	var b accountDomains
	for i, a := range accounts {
		x.accounts[i] = indexedAccount{id: a.ID, name: a.Name}
		for _, t := range a.TenantIDs {
			if k := tenantKey(t); k != "" && !slices.Contains(x.byTenant[k], i) {
				x.byTenant[k] = append(x.byTenant[k], i)
			}
		}
		if k := NormalizeCompanyName(a.Name); k != "" {
			x.byName[k] = append(x.byName[k], i)
		}
		b.reset(i)
		if d, _ := usableDomain(a.Website); d != "" {
			b.at(d).website = displayHost(a.Website)
		}
		if d, _ := usableDomain(a.Email); d != "" {
			b.at(d).email = strings.TrimSpace(a.Email)
		}
		for _, e := range a.ContactEmails {
			if d, _ := usableDomain(e); d != "" && b.firstContact(e) {
				b.at(d).contacts++
			}
		}
		for j, d := range b.domains {
			x.byDomain[d] = append(x.byDomain[d], b.evidence[j])
		}
	}
	return x
}

// accountDomains gathers one account's domains; reused from account to account.
type accountDomains struct {
	account  int
	domains  []string
	evidence []domainEvidence
	seen     []string // contact addresses counted, lower case
}

func (b *accountDomains) reset(account int) {
	b.account, b.domains, b.evidence, b.seen = account, b.domains[:0], b.evidence[:0], b.seen[:0]
}

func (b *accountDomains) at(domain string) *domainEvidence {
	if i := slices.Index(b.domains, domain); i >= 0 {
		return &b.evidence[i]
	}
	b.domains = append(b.domains, domain)
	b.evidence = append(b.evidence, domainEvidence{account: b.account})
	return &b.evidence[len(b.evidence)-1]
}

// firstContact reports whether the address is new for this account: one person listed twice is one
// contact.
func (b *accountDomains) firstContact(address string) bool {
	a := strings.ToLower(strings.TrimSpace(address))
	if slices.Contains(b.seen, a) {
		return false
	}
	b.seen = append(b.seen, a)
	return true
}

// Len is the number of accounts indexed.
func (x *AccountIndex) Len() int {
	if x == nil {
		return 0
	}
	return len(x.accounts)
}

// evidence is everything one account has for one customer.
type evidence struct {
	account  int
	tenant   bool
	website  string
	email    string
	contacts int
	name     bool
	score    int
}

func (e *evidence) add(o evidence) {
	e.tenant = e.tenant || o.tenant
	e.name = e.name || o.name
	e.website = cmp.Or(e.website, o.website)
	e.email = cmp.Or(e.email, o.email)
	e.contacts += o.contacts
}

func (e *evidence) total() int {
	s := 0
	if e.tenant {
		s += tenantScore
	}
	if e.website != "" {
		s += websiteScore
	}
	if e.email != "" {
		s += emailScore
	}
	if e.contacts > 0 {
		s += contactScore
	}
	if e.name {
		s += nameScore
	}
	return s
}

// customer is a customer's facts in the forms the rules compare.
type customer struct {
	facts   CustomerFacts
	tenant  string // canonical tenant id
	domain  string // registrable domain, "" when none or not usable
	shown   string // the domain as Partner Center gives it, for messages
	ignored string // why the domain was not compared, in words
	name    string // NormalizeCompanyName
}

// Match applies the rules to one customer. It reads only the accounts that share the customer's tenant,
// domain or name.
func (x *AccountIndex) Match(c CustomerFacts) Match {
	q := customer{facts: c, tenant: tenantKey(c.TenantID), shown: strings.ToLower(strings.TrimSpace(c.Domain)), name: NormalizeCompanyName(c.CompanyName)}
	q.domain, q.ignored = usableDomain(c.Domain)
	if x == nil {
		x = &AccountIndex{}
	}

	var found []evidence
	if q.tenant != "" {
		for _, i := range x.byTenant[q.tenant] {
			found = append(found, evidence{account: i, tenant: true})
		}
	}
	if q.domain != "" {
		for _, d := range x.byDomain[q.domain] {
			found = append(found, evidence{account: d.account, website: d.website, email: d.email, contacts: d.contacts})
		}
	}
	if q.name != "" {
		for _, i := range x.byName[q.name] {
			found = append(found, evidence{account: i, name: true})
		}
	}
	found = merge(found)
	for i := range found {
		found[i].score = found[i].total()
	}
	found = slices.DeleteFunc(found, func(e evidence) bool { return e.score < minScore })
	slices.SortFunc(found, func(a, b evidence) int {
		return cmp.Or(cmp.Compare(b.score, a.score), strings.Compare(x.accounts[a.account].name, x.accounts[b.account].name),
			strings.Compare(x.accounts[a.account].id.String(), x.accounts[b.account].id.String()))
	})

	m := Match{}
	for _, e := range found[:min(len(found), maxCandidates)] {
		a := x.accounts[e.account]
		m.Candidates = append(m.Candidates, Candidate{Account: a.id, Name: a.name, Score: e.score, Reasons: shortReasons(e, q, a)})
	}
	tenants := 0
	for _, e := range found {
		if e.tenant {
			tenants++
		}
	}
	switch {
	case len(found) == 0:
		m.Outcome, m.Message = NoMatch, noMatchMessage(q)
	case tenants == 1, tenants == 0 && found[0].score >= minScore && (len(found) == 1 || found[0].score-found[1].score >= leadMargin):
		// With one tenant match, it is first: no other rule adds up to tenantScore.
		m.Outcome, m.Account = Matched, x.accounts[found[0].account].id
		m.Message = x.matchedMessage(found, q)
	default:
		// The tied are the accounts that have the tenant, or else those within the margin of the best.
		tied := tenants
		if tied == 0 {
			for tied < len(found) && found[0].score-found[tied].score < leadMargin {
				tied++
			}
		}
		m.Outcome, m.Message = Ambiguous, ambiguousMessage(m.Candidates, tied)
	}
	return m
}

// merge folds the evidence found by each rule into one entry per account.
func merge(found []evidence) []evidence {
	if len(found) < 2 {
		return found
	}
	slices.SortFunc(found, func(a, b evidence) int { return cmp.Compare(a.account, b.account) })
	out := found[:1]
	for _, e := range found[1:] {
		if last := &out[len(out)-1]; last.account == e.account {
			last.add(e)
		} else {
			out = append(out, e)
		}
	}
	return out
}

// shortReasons are a candidate's evidence for lists of candidates.
func shortReasons(e evidence, q customer, a indexedAccount) []string {
	var r []string
	if e.tenant {
		r = append(r, "tenant already mapped to it")
	}
	if e.website != "" {
		r = append(r, "website "+clip(e.website))
	}
	if e.email != "" {
		r = append(r, "e-mail "+clip(e.email))
	}
	if e.contacts > 0 {
		r = append(r, "e-mail domain of "+contacts(e.contacts))
	}
	if e.name {
		r = append(r, nameReason("company name", q, a))
	}
	return r
}

// longReasons are the winner's evidence, saying what each piece matched.
func longReasons(e evidence, q customer, a indexedAccount) []string {
	var r []string
	if e.tenant {
		r = append(r, "tenant "+clip(strings.TrimSpace(q.facts.TenantID))+" is already mapped to it through another provider account")
	}
	if e.website != "" {
		r = append(r, "website "+clip(e.website)+" matches "+clip(q.shown))
	}
	if e.email != "" {
		r = append(r, "e-mail "+clip(e.email)+" matches "+clip(q.shown))
	}
	if e.contacts > 0 {
		r = append(r, "e-mail domain of "+contacts(e.contacts)+" matches "+clip(q.shown))
	}
	if e.name {
		r = append(r, nameReason("company name matches", q, a))
	}
	return r
}

// nameReason quotes the customer's name only when it is not written exactly as the account's: repeating
// the account's own name says nothing.
func nameReason(prefix string, q customer, a indexedAccount) string {
	if n := strings.TrimSpace(q.facts.CompanyName); n != strings.TrimSpace(a.name) {
		return prefix + " " + quote(n)
	}
	return prefix
}

func contacts(n int) string {
	if n == 1 {
		return "1 contact"
	}
	return strconv.Itoa(n) + " contacts"
}

func (x *AccountIndex) matchedMessage(found []evidence, q customer) string {
	w := x.accounts[found[0].account]
	head := "Mapped automatically to " + accountName(w) + ": " + strings.Join(longReasons(found[0], q, w), ", ") + "."
	if len(found) == 1 {
		return clipMessage(head)
	}
	var others []string
	for _, e := range found[1:min(len(found), maxCandidates)] {
		a := x.accounts[e.account]
		others = append(others, accountName(a)+" ("+strings.Join(shortReasons(e, q, a), ", ")+")")
	}
	return clipMessage(list(head+" Also considered: ", others, len(found)-1, "."))
}

func ambiguousMessage(candidates []Candidate, tied int) string {
	var items []string
	for _, c := range candidates[:min(len(candidates), tied)] {
		items = append(items, accountName(indexedAccount{id: c.Account, name: c.Name})+" ("+strings.Join(c.Reasons, ", ")+")")
	}
	return clipMessage(list(strconv.Itoa(tied)+" accounts could be this customer: ", items, tied, ". Choose the right one in Account."))
}

func noMatchMessage(q customer) string {
	var tried []string
	if q.tenant != "" {
		tried = append(tried, "tenant "+clip(strings.TrimSpace(q.facts.TenantID)))
	}
	if q.domain != "" {
		tried = append(tried, "domain "+clip(q.shown))
	}
	if q.name != "" {
		tried = append(tried, "the name "+quote(strings.TrimSpace(q.facts.CompanyName)))
	}
	var b strings.Builder
	switch len(tried) {
	case 0:
		if q.ignored != "" {
			b.WriteString("There is nothing to match this customer by.")
		} else {
			b.WriteString("There is nothing to match this customer by: Partner Center gives no tenant, domain or company name.")
		}
	case 1:
		b.WriteString("No account matches " + tried[0] + ".")
	default:
		b.WriteString("No account matches " + strings.Join(tried[:len(tried)-1], ", ") + " or " + tried[len(tried)-1] + ".")
	}
	if q.ignored != "" {
		b.WriteString(" Its domain was not compared: " + q.ignored + ".")
	}
	b.WriteString(" Choose the account in Account, or create one.")
	return clipMessage(b.String())
}

// list writes head, then as many items as fit in a message, then "and N more" for the rest of total,
// then tail.
func list(head string, items []string, total int, tail string) string {
	var b strings.Builder
	b.WriteString(head)
	shown := 0
	for i, item := range items {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		more := ""
		if rest := total - i - 1; rest > 0 {
			more = " and " + strconv.Itoa(rest) + " more"
		}
		if i > 0 && b.Len()+len(sep)+len(item)+len(more)+len(tail) > maxMessage {
			break
		}
		b.WriteString(sep + item)
		shown++
	}
	if rest := total - shown; rest > 0 {
		b.WriteString(" and " + strconv.Itoa(rest) + " more")
	}
	b.WriteString(tail)
	return b.String()
}

// accountName is how messages name an account: its name exactly as written, in quotes.
func accountName(a indexedAccount) string {
	if strings.TrimSpace(a.name) == "" {
		return "an unnamed account (" + a.id.String() + ")"
	}
	return quote(a.name)
}

// quote puts a name in double quotes as it is, without escaping: people read it, and a name with a quote,
// an apostrophe or an ampersand is still that name.
func quote(s string) string { return `"` + clip(s) + `"` }

func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	return string([]rune(s)[:maxShown-1]) + "…"
}

func clipMessage(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	// len counts bytes, the column counts characters: cutting bytes keeps under both.
	cut := maxMessage - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// tenantKey is a tenant id in one form, so that case and braces do not hide a match.
func tenantKey(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if id, err := uuid.Parse(s); err == nil {
		return id.String()
	}
	return strings.ToLower(s)
}

// usableDomain is DomainOf(s) when the rules may compare it, or why not.
func usableDomain(s string) (domain, why string) {
	d := DomainOf(s)
	shown := strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.TrimSpace(s) == "":
		return "", ""
	case d == "":
		return "", clip(shown) + " is not a domain name"
	case isMicrosoftTenantDomain(d):
		return "", clip(shown) + " is the tenant's default Microsoft domain, which no website uses"
	case d == "sharepoint.com":
		return "", clip(shown) + " is a SharePoint address, which every tenant has"
	case IsPublicMailDomain(d):
		return "", clip(shown) + " is a public e-mail service, which many unrelated people share"
	}
	return d, ""
}

// isMicrosoftTenantDomain reports the domains Microsoft gives every tenant, in the public cloud and the
// national ones. They are not in the public suffix list, so DomainOf gives the shared parent.
func isMicrosoftTenantDomain(d string) bool {
	switch d {
	case "onmicrosoft.com", "onmicrosoft.us", "onmicrosoft.de", "onmschina.cn":
		return true
	}
	return false
}

// DomainOf is the registrable domain (eTLD+1, lower case) of a URL, host, domain or e-mail address:
// "https://www.Contoso.co.uk:443/en" and "someone@eu.contoso.co.uk" both give "contoso.co.uk". It is ""
// when there is none: an IP address, a bare public suffix such as co.uk, or something that is not a
// host name. Matching compares these, not hosts, because an account's website is usually www.x while the
// tenant's domain is x or a subdomain of it.
func DomainOf(s string) string {
	h := hostOf(s)
	if h == "" {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(h)
	if err != nil {
		return ""
	}
	return d
}

// hostOf is the host of a URL, host or e-mail address, lower case and in ASCII (punycode), or "".
func hostOf(s string) string {
	h := displayHost(s)
	if h == "" {
		return ""
	}
	if !isASCII(h) {
		a, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return ""
		}
		h = a
	}
	if net.ParseIP(h) != nil || !strings.Contains(h, ".") {
		return ""
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return ""
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return ""
			}
		}
	}
	return h
}

// displayHost cuts the host out of whatever people type into a website or e-mail field: a scheme, user,
// port, path, query and trailing dot go; case is lowered. It does not check the host.
func displayHost(s string) string {
	h := strings.ToLower(strings.TrimSpace(s))
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	} else {
		h = strings.TrimPrefix(h, "mailto:")
	}
	if i := strings.IndexAny(h, "/?#\\ \t,;"); i >= 0 {
		h = h[:i]
	}
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		h = h[i+1:]
	}
	if strings.HasPrefix(h, "[") { // an IPv6 address
		return ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if _, err := strconv.ParseUint(h[i+1:], 10, 16); err == nil || i == len(h)-1 {
			h = h[:i]
		}
	}
	return strings.Trim(h, ".")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// IsPublicMailDomain reports whether domain (or the registrable domain of a host or address) belongs to a
// public mail service. Such a domain says nothing about which company someone works for, so it never
// matches: two unrelated accounts with gmail.com contacts must not look like the same customer.
func IsPublicMailDomain(domain string) bool {
	switch DomainOf(domain) {
	case "gmail.com", "googlemail.com",
		"outlook.com", "outlook.de", "outlook.fr", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it",
		"live.com", "live.co.uk", "live.fr", "live.de", "msn.com", "passport.com",
		"yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.co.jp", "ymail.com", "rocketmail.com",
		"icloud.com", "me.com", "mac.com",
		"aol.com", "aim.com",
		"gmx.de", "gmx.net", "gmx.com", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de",
		"mail.com", "email.com", "proton.me", "protonmail.com", "pm.me", "tutanota.com", "tuta.io", "fastmail.com",
		"zoho.com", "zohomail.com", "yandex.ru", "yandex.com", "mail.ru",
		"qq.com", "163.com", "126.com", "sina.com", "naver.com", "rediffmail.com",
		"comcast.net", "att.net", "sbcglobal.net", "verizon.net", "cox.net", "charter.net", "earthlink.net",
		"btinternet.com", "sky.com", "virginmedia.com", "talktalk.net",
		"orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr",
		"libero.it", "virgilio.it", "tiscali.it", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "bigpond.com":
		return true
	}
	return false
}

// NormalizeCompanyName is a company name in the form the name rule compares: "Contoso Pty. Ltd.",
// "CONTOSO" and "Contoso, Inc." are all "contoso"; "Müller GmbH & Co. KG" is "muller". Case is folded,
// diacritics go, "&" reads "and", punctuation separates words (but "B.V." and "A/S" are one word, "bv"
// and "as", and apostrophes vanish), a leading "the" goes and trailing legal forms go one after the
// other. A name is never normalized to nothing: "Co." stays "co". The result is "" only when the name has
// no letters or digits at all. Normalizing twice gives the same as once.
func NormalizeCompanyName(s string) string {
	if !isASCII(s) {
		// Bytes that are not UTF-8 would stop the folding part-way; they separate words like any symbol.
		s = foldUnicode(strings.ToValidUTF8(s, " "))
	}
	words := companyWords(s)
	for len(words) > 1 && words[0] == "the" {
		words = words[1:]
	}
	for len(words) > 1 {
		n := legalFormWords(words)
		if n == 0 {
			break
		}
		words = words[:len(words)-n]
		// "Smith & Co." leaves "smith and": the "and" belonged to the legal form.
		if len(words) > 1 && words[len(words)-1] == "and" {
			words = words[:len(words)-1]
		}
	}
	return strings.Join(words, " ")
}

// foldUnicode folds case and strips diacritics: compatibility decomposition turns ligatures, full-width and
// superscript forms into plain letters, and the non-spacing marks it splits off are the diacritics.
func foldUnicode(s string) string {
	t := transform.Chain(norm.NFKD, cases.Fold(), norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		return s
	}
	// cases.Fold folds Cherokee to upper case and back again (Ꮹ → ꮹ → Ꮹ), so folding twice would not give
	// the same name; lower case after it settles such letters on one form.
	return strings.ToLower(out)
}

// companyWords splits a folded name into lower-case words of letters and digits.
func companyWords(s string) []string {
	var (
		words []string
		word  strings.Builder
		run   int // letters since the last separator, to tell "B.V." from "Contoso.com"
	)
	flush := func() {
		if word.Len() > 0 {
			words = append(words, word.String())
			word.Reset()
		}
		run = 0
	}
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9'):
			word.WriteRune(r)
			run++
		case r >= 'A' && r <= 'Z':
			word.WriteRune(r + ('a' - 'A'))
			run++
		case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)):
			word.WriteRune(r)
			run++
		case r == '\'' || r == '’' || r == 'ʼ' || r == '‘' || r == '`' || r == '´':
			// O'Brien's is one word.
		case (r == '.' || r == '/') && run == 1:
			// A single letter before a dot or slash is an abbreviation: B.V., S.p.A., A/S.
			run = 0
		case r == '&':
			flush()
			words = append(words, "and")
		default:
			flush()
		}
	}
	flush()
	return words
}

// legalFormWords is how many of the last words are a legal form ("ltd", "pty", "gmbh", "sp z oo"), the
// longest that leaves a name; 0 when they are none.
func legalFormWords(words []string) int {
	n := len(words)
	if n > 3 {
		switch strings.Join(words[n-3:], " ") {
		case "limited liability company", "limited liability partnership", "public limited company", "sp z oo":
			return 3
		}
	}
	if n > 2 {
		switch words[n-2] + " " + words[n-1] {
		case "private limited", "kabushiki kaisha", "de cv":
			return 2
		}
	}
	switch words[n-1] {
	case "inc", "incorporated", "corp", "corporation", "co", "company", "cos",
		"ltd", "limited", "llc", "llp", "plc", "pllc", "lp",
		"gmbh", "mbh", "ag", "kg", "kgaa", "ohg", "ug", "haftungsbeschrankt", "ek",
		"bv", "bvba", "nv", "vof", "sa", "sas", "sasu", "sarl", "eurl", "sca", "snc", "se",
		"srl", "spa", "sl", "slu", "sro", "as", "asa", "aps", "ab", "oy", "oyj", "ehf", "hf",
		"pty", "pte", "pvt", "kk", "ltda", "lda", "bhd", "sdn", "kft", "zrt", "doo":
		return 1
	}
	return 0
}
