package agreements

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// What people ask of the agreements through the API: a template's Create Agreements, a link for one
// agreement. Each records the request on the row, as the form's button does, by the row's rules.

// Reasons a request is refused as the row stands; nothing was written.
var (
	ErrTemplateInactive   = errors.New("agreements: the template is inactive")
	ErrTemplateNoProvider = errors.New("agreements: the template has no provider")
	ErrAgreementInactive  = errors.New("agreements: the agreement is inactive")
	ErrAlreadyAccepted    = errors.New("agreements: the agreement is already accepted")
)

// RequestCreate asks for Create Agreements on a template, as its button does: it sets Create agreements
// requested on, unless a request is waiting already (then this one is the same). It returns the template
// as it now stands; the caller hands it to the work queue (the connector's own write raises no event it
// acts on). An inactive template, or one without a provider, is refused (ErrTemplateInactive,
// ErrTemplateNoProvider); a missing one is Dataverse's not-found error.
func (g *Workflow) RequestCreate(ctx context.Context, id dataverse.GUID) (schema.AgreementTemplate, error) {
	t, err := getRow[schema.AgreementTemplate](ctx, g.dv, schema.SetAgreementTemplates, id)
	if err != nil {
		return t, err
	}
	switch {
	case t.State != schema.StateActive:
		return t, ErrTemplateInactive
	case t.Provider.IsZero():
		return t, ErrTemplateNoProvider
	case CreationPending(t):
		return t, nil
	}
	now := g.now().UTC().Truncate(time.Second)
	if !now.After(t.CreateDoneOn) {
		now = t.CreateDoneOn.UTC().Truncate(time.Second).Add(time.Second) // Dataverse keeps seconds: after the last run
	}
	if _, err := g.dv.Update(ctx, schema.SetAgreementTemplates, id, dataverse.Row{"csp_createrequestedon": now}, &dataverse.UpdateOptions{IfMatch: t.ETag}); err != nil {
		return t, err
	}
	t.CreateRequestedOn = now
	return t, nil
}

// Signatory is the customer's signatory a link request gives; empty fields keep the agreement's.
type Signatory struct {
	FirstName, LastName, Email, Phone, Company, Country, Language string
}

// LinkProblem is one reason a link cannot be requested.
type LinkProblem struct {
	// Field is the Signatory field it is about ("Email"), or "" when it is about the agreement as a whole.
	Field string
	// Message says what is wrong: for a value too long for its column the end of a sentence that starts
	// with the field's name ("is 120 characters long; at most 100 fit"), else a whole sentence that starts
	// with the form's label.
	Message string
	// TooLong marks a value longer than its column holds: refused, never cut, since a shortened name or
	// address would be sent to Microsoft as if it were right.
	TooLong bool
}

// LinkProblems is RequestLink's error when the request is not valid; nothing was written.
type LinkProblems []LinkProblem

func (p LinkProblems) Error() string {
	msgs := make([]string, len(p))
	for i, lp := range p {
		msgs[i] = strings.TrimSpace(lp.Field + " " + lp.Message)
	}
	return "agreements: the link cannot be requested: " + strings.Join(msgs, "; ")
}

// LinkRunError is RequestLink's error when the request is recorded on the row (Link requested) but
// carrying it out failed: the row keeps the request, for a retry.
type LinkRunError struct{ Err error }

func (e *LinkRunError) Error() string { return e.Err.Error() }

func (e *LinkRunError) Unwrap() error { return e.Err }

// RequestLink asks Partner Center for the acceptance link of an agreement, as the form's Request link
// does: the signatory's given fields are saved on the row with Link requested, then the request is carried
// out at once. It returns the agreement as it then stands: Link sent, or Failed or still Link requested
// (held) with the row's message saying why. An open link is never replaced: the agreement is returned as
// it is. Refusals, with nothing written: ErrAgreementInactive, ErrAlreadyAccepted (with the agreement),
// LinkProblems; a missing agreement is Dataverse's not-found error.
func (g *Workflow) RequestLink(ctx context.Context, id dataverse.GUID, s Signatory) (schema.Agreement, error) {
	f, err := g.Facts(ctx, id)
	if err != nil {
		return schema.Agreement{}, err
	}
	a := f.Agreement
	switch {
	case a.State != schema.StateActive:
		return a, ErrAgreementInactive
	case a.Status == schema.StatusActive:
		return a, ErrAlreadyAccepted
	case a.AttestationStatus == schema.AttestationLinkSent && a.LinkExpiresOn.After(g.now()):
		return a, nil // the open link: a repeated request gets the same
	}
	problems := s.tooLong()
	named := map[string]bool{}
	for _, p := range problems {
		named[p.Field] = true
	}
	changes := s.apply(&f.Agreement)
	for _, msg := range mapping.LinkRequestProblems(f) {
		if field := signatoryField(msg); field == "" || !named[field] {
			problems = append(problems, LinkProblem{Field: field, Message: msg})
		}
	}
	if len(problems) > 0 {
		return a, problems
	}
	changes["csp_attestationstatus"] = int(schema.AttestationLinkRequested)
	if mapping.IsLegacyPartnerAttestation(f.Agreement) {
		// A partner attestation goes through the enhanced flow since Microsoft retired the legacy one
		// (5 January 2026); asking for a link is what the row's message tells a person to do, and the date
		// typed in for the retired call has nowhere to go: Partner Center records when the customer accepts.
		changes["csp_dateagreed"] = nil
	}
	if _, err := g.dv.Update(ctx, schema.SetAgreements, id, changes, &dataverse.UpdateOptions{IfMatch: a.ETag}); err != nil {
		return a, err
	}
	if err := g.Handle(ctx, work.Batch{Key: work.Key{Table: schema.TableAgreement, ID: id}}); err != nil {
		return a, &LinkRunError{Err: err}
	}
	return getRow[schema.Agreement](ctx, g.dv, schema.SetAgreements, id)
}

// signatoryColumns are the Signatory's fields: their columns, and the form's labels that start the
// messages about them.
var signatoryColumns = []struct {
	field, column string
	labels        []string
	value         func(Signatory) string
}{
	{"FirstName", "csp_signatoryfirstname", []string{"Signatory first name"}, func(s Signatory) string { return s.FirstName }},
	{"LastName", "csp_signatorylastname", []string{"Signatory last name"}, func(s Signatory) string { return s.LastName }},
	{"Email", "csp_signatoryemail", []string{"Signatory e-mail", "Signatory email"}, func(s Signatory) string { return s.Email }},
	{"Phone", "csp_signatoryphone", nil, func(s Signatory) string { return s.Phone }},
	{"Company", "csp_signatorycompany", []string{"Signatory company"}, func(s Signatory) string { return s.Company }},
	{"Country", "csp_signatorycountry", []string{"Signatory country"}, func(s Signatory) string { return s.Country }},
	{"Language", "csp_signatorylanguage", []string{"Signatory language"}, func(s Signatory) string { return s.Language }},
}

// signatoryField is the Signatory field a validation message is about, by the label it starts with; ""
// for the agreement as a whole.
func signatoryField(msg string) string {
	for _, c := range signatoryColumns {
		for _, label := range c.labels {
			if strings.HasPrefix(msg, label) {
				return c.field
			}
		}
	}
	return ""
}

// tooLong names the fields longer than the agreement's columns hold, counted as Dataverse counts.
func (s Signatory) tooLong() LinkProblems {
	var out LinkProblems
	for _, c := range signatoryColumns {
		if n, limit := dataverse.TextLength(c.value(s)), schema.MaxLength(schema.TableAgreement, c.column); limit > 0 && n > limit {
			out = append(out, LinkProblem{Field: c.field, Message: fmt.Sprintf("is %d characters long; at most %d fit", n, limit), TooLong: true})
		}
	}
	return out
}

// apply copies the given fields onto a and returns them as the row's changes.
func (s Signatory) apply(a *schema.Agreement) dataverse.Row {
	changes := dataverse.Row{}
	set := func(col, v string, field *string) {
		if v != "" {
			*field = v
			changes[col] = v
		}
	}
	set("csp_signatoryfirstname", s.FirstName, &a.SignatoryFirstName)
	set("csp_signatorylastname", s.LastName, &a.SignatoryLastName)
	set("csp_signatoryemail", s.Email, &a.SignatoryEmail)
	set("csp_signatoryphone", s.Phone, &a.SignatoryPhone)
	set("csp_signatorycompany", s.Company, &a.SignatoryCompany)
	set("csp_signatorycountry", s.Country, &a.SignatoryCountry)
	set("csp_signatorylanguage", s.Language, &a.SignatoryLanguage)
	return changes
}

// getRow reads one row by id with the columns of T.
func getRow[T any](ctx context.Context, dv *dataverse.Client, entitySet string, id dataverse.GUID) (T, error) {
	var row T
	raw, err := dv.Get(ctx, entitySet, id, &dataverse.GetOptions{Select: dataverse.Columns[T]()})
	if err != nil {
		return row, err
	}
	return row, dataverse.Unmarshal(raw, &row)
}
