package dataverse_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func TestFilterBuilder(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("0f8fad5b-d9cb-469f-a165-70867728950e")
	tests := []struct {
		name string
		f    dataverse.Filter
		want string
	}{
		{"quote doubled", dataverse.Eq("lastname", "O'Bryan"), "lastname eq 'O''Bryan'"},
		{"guid unquoted", dataverse.LookupEq("csp_provider", id), "_csp_provider_value eq 0f8fad5b-d9cb-469f-a165-70867728950e"},
		{"date-time in UTC", dataverse.Lt("csp_effectivedate", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))), "csp_effectivedate lt 2026-01-02T02:04:05Z"},
		{"date", dataverse.Ge("csp_effectivedate", dataverse.Date{Year: 2026, Month: 2, Day: 3}), "csp_effectivedate ge 2026-02-03"},
		{"choice", dataverse.Eq("csp_provisioningstatus", schema.ProvisioningAwaiting), "csp_provisioningstatus eq 418700000"},
		{"null", dataverse.IsNull("csp_account"), "csp_account eq null"},
		{"bool and float", dataverse.And(dataverse.Eq("csp_automatch", true), dataverse.Gt("x", 1.5)), "(csp_automatch eq true) and (x gt 1.5)"},
		{"wildcards escaped", dataverse.Contains("name", "100%_[a]"), "contains(name,'100[%][_][[]a]')"},
		{"startswith", dataverse.StartsWith("name", "Con'"), "startswith(name,'Con''')"},
		{"in", dataverse.In("csp_tenantid", "a", `b"c`), `Microsoft.Dynamics.CRM.In(PropertyName='csp_tenantid',PropertyValues=["a","b\"c"])`},
		{"or and not", dataverse.Or(dataverse.Eq("a", 1), dataverse.Not(dataverse.Eq("b", 2))), "(a eq 1) or (not (b eq 2))"},
		{"empty parts skipped", dataverse.And(dataverse.Filter{}, dataverse.Eq("a", 1)), "a eq 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tt.f.Err())
			assert.Equal(t, tt.want, tt.f.String())
			_, err := dataversetest.ParseFilter(tt.f.String())
			assert.NoError(t, err, "the simulator's parser accepts what the builder writes")
		})
	}
}

func TestFilterBuilderRejectsWhatIsNotAValue(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]dataverse.Filter{
		"column with spaces":   dataverse.Eq("name eq 'x' or name", "y"),
		"column with slash":    dataverse.Eq("primarycontactid/fullname", "x"),
		"struct value":         dataverse.Eq("name", struct{}{}),
		"NaN":                  dataverse.Eq("x", nan()),
		"empty In":             dataverse.In("x"),
		"error survives And":   dataverse.And(dataverse.Eq("a", 1), dataverse.Eq("b c", 1)),
		"error survives Not":   dataverse.Not(dataverse.Eq("b c", 1)),
		"In with a float":      dataverse.In("x", 1.5),
		"function bad column":  dataverse.Contains("a)", "x"),
		"lookup column quoted": dataverse.LookupEq("a b", uuid.New()),
	} {
		assert.Error(t, f.Err(), name)
	}
}

func nan() float64 { z := 0.0; return z / z }

// expectedCanonical is what the simulator's parser must read back from the builder's output for the
// fuzzed values: the same structure, and the values unchanged.
func expectedCanonical(s string, n int64) string {
	quote := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	like := strings.NewReplacer("%", "[%]", "_", "[_]", "[", "[[]").Replace(s)
	return "or(and(eq(csp_name," + quote(s) + "),contains(csp_domain," + quote(like) + ")),not(eq(csp_quantity," + strconv.FormatInt(n, 10) + ")))"
}

// FuzzFilterLiteralEscaping: whatever text a customer's data holds (company names, domains), a filter built
// from it, URL-encoded as the client sends it and decoded as a server reads it, has exactly the intended
// structure, and its string conditions match that text literally.
func FuzzFilterLiteralEscaping(f *testing.F) {
	for _, s := range []string{"", "O'Bryan", "' or 1 eq 1 or 'a' eq '", "100%", "a_b", "[x]", "&$filter=", "+ / ? # = ;", "'')", "\u00e9\u4e16\U0001F600", "%27", "not (", "x eq y"} {
		f.Add(s, int64(5))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		if !utf8.ValidString(s) {
			t.Skip("Dataverse text is Unicode")
		}
		filter := dataverse.Or(
			dataverse.And(dataverse.Eq("csp_name", s), dataverse.Contains("csp_domain", s)),
			dataverse.Not(dataverse.Eq("csp_quantity", n)),
		)
		require.NoError(t, filter.Err())
		query := strings.ReplaceAll(url.Values{"$filter": {filter.String()}, "$top": {"1"}}.Encode(), "+", "%20")
		decoded, err := url.ParseQuery(query)
		require.NoError(t, err)
		require.Equal(t, []string{"1"}, decoded["$top"], "the filter must not leak into other options")
		parsed, err := dataversetest.ParseFilter(decoded.Get("$filter"))
		require.NoError(t, err, "filter %q", decoded.Get("$filter"))
		require.Equal(t, expectedCanonical(s, n), parsed.Canonical())

		row := map[string]any{"csp_name": s, "csp_domain": "<" + s + ">", "csp_quantity": n}
		assert.True(t, parsed.Match(func(col string) any { return row[col] }), "the row holding the text must match")
		if s != "" {
			row = map[string]any{"csp_name": s + "x", "csp_domain": "", "csp_quantity": n}
			assert.False(t, parsed.Match(func(col string) any { return row[col] }), "other text must not match")
		}
	})
}
