package agreements

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// TestRequestCreate: a request sets Create agreements requested on to now (in seconds); a second while
// the first waits is the same request; an inactive template is refused with nothing written.
func TestRequestCreate(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)
	ctx := t.Context()

	tpl, err := r.G.RequestCreate(ctx, r.Template)
	require.NoError(t, err)
	want := r.Clock.Now().UTC().Truncate(time.Second)
	assert.True(t, tpl.CreateRequestedOn.Equal(want), "requested on %s, want %s", tpl.CreateRequestedOn, want)
	assert.True(t, CreationPending(tpl))

	r.Clock.Advance(time.Minute)
	again, err := r.G.RequestCreate(ctx, r.Template)
	require.NoError(t, err)
	assert.True(t, again.CreateRequestedOn.Equal(want), "the waiting request is kept, not moved")

	_, err = r.DV.Update(ctx, schema.SetAgreementTemplates, r.Template, dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.StatusInactive}, nil)
	require.NoError(t, err)
	_, err = r.G.RequestCreate(ctx, r.Template)
	assert.ErrorIs(t, err, ErrTemplateInactive)
}

// TestRequestLinkProblems: a value longer than its column and what the row lacks are refused together,
// each naming its field, and nothing is written.
func TestRequestLinkProblems(t *testing.T) {
	t.Parallel()
	r := newAgRig(t, schema.PartnerDirectBill)

	_, err := r.G.RequestLink(t.Context(), r.Row, Signatory{FirstName: strings.Repeat("a", 500), LastName: "O'Brien"})
	var problems LinkProblems
	require.ErrorAs(t, err, &problems)
	require.NotEmpty(t, problems)
	assert.Equal(t, LinkProblem{Field: "FirstName", Message: problems[0].Message, TooLong: true}, problems[0])
	assert.Contains(t, problems[0].Message, "is 500 characters long")
	fields := map[string]bool{}
	for _, p := range problems[1:] {
		assert.False(t, p.TooLong)
		assert.NotEqual(t, "FirstName", p.Field, "the too-long field is not also reported as missing")
		fields[p.Field] = true
	}
	assert.True(t, fields["Email"], "the missing e-mail is named: %v", problems)

	a := r.Read(t)
	assert.Equal(t, schema.AttestationNotStarted, a.AttestationStatus)
	assert.Empty(t, a.SignatoryLastName, "nothing was saved")
}
