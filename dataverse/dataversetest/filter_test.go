package dataversetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFilterCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"eq string", "name eq 'Contoso'", "eq(name,'Contoso')"},
		{"escaped quote", "lastname eq 'O''Bryan'", "eq(lastname,'O''Bryan')"},
		{"only quotes", "name eq ''''''", "eq(name,'''''')"},
		{"empty string", "name eq ''", "eq(name,'')"},
		{"ne", "name ne 'x'", "ne(name,'x')"},
		{"gt", "csp_quantity gt 5", "gt(csp_quantity,5)"},
		{"ge", "csp_quantity ge 5", "ge(csp_quantity,5)"},
		{"lt", "csp_quantity lt 5", "lt(csp_quantity,5)"},
		{"le", "csp_quantity le 5", "le(csp_quantity,5)"},
		{"flipped lt", "5 lt csp_quantity", "gt(csp_quantity,5)"},
		{"flipped le", "5 le csp_quantity", "ge(csp_quantity,5)"},
		{"flipped gt", "5 gt csp_quantity", "lt(csp_quantity,5)"},
		{"flipped ge", "5 ge csp_quantity", "le(csp_quantity,5)"},
		{"flipped eq", "'x' eq name", "eq(name,'x')"},
		{"flipped ne null", "null ne name", "ne(name,null)"},
		{"negative int", "csp_q gt -12", "gt(csp_q,-12)"},
		{"int64", "csp_q eq 9223372036854775807", "eq(csp_q,9223372036854775807)"},
		{"int overflow becomes float", "csp_q eq 9223372036854775808", "eq(csp_q,9.223372036854776e+18)"},
		{"decimal", "csp_f lt 1.5", "lt(csp_f,1.5)"},
		{"negative decimal", "csp_f gt -2.25", "gt(csp_f,-2.25)"},
		{"decimal suffix M", "csp_f eq 1.5M", "eq(csp_f,1.5)"},
		{"decimal suffix m", "csp_f eq 2m", "eq(csp_f,2.0)"},
		{"double suffix d", "csp_f eq 2.5d", "eq(csp_f,2.5)"},
		{"long suffix", "csp_q eq 7L", "eq(csp_q,7)"},
		{"exponent", "csp_f eq 1e3", "eq(csp_f,1000.0)"},
		{"true", "csp_b eq true", "eq(csp_b,true)"},
		{"false", "csp_b ne false", "ne(csp_b,false)"},
		{"null", "csp_x eq null", "eq(csp_x,null)"},
		{"guid lowercased", "_csp_provider_value eq 0F8FAD5B-D9CB-469F-A165-70867728950E", "eq(_csp_provider_value,guid(0f8fad5b-d9cb-469f-a165-70867728950e))"},
		{"guid starting with letter", "_x_value eq ab8fad5b-d9cb-469f-a165-70867728950e", "eq(_x_value,guid(ab8fad5b-d9cb-469f-a165-70867728950e))"},
		{"datetime Z", "csp_t eq 2026-01-02T03:04:05Z", "eq(csp_t,time(2026-01-02T03:04:05Z))"},
		{"datetime offset", "csp_t eq 2026-01-02T05:04:05+02:00", "eq(csp_t,time(2026-01-02T03:04:05Z))"},
		{"datetime negative offset", "csp_t eq 2026-01-01T22:04:05-05:00", "eq(csp_t,time(2026-01-02T03:04:05Z))"},
		{"datetime fraction", "csp_t gt 2026-01-02T03:04:05.123Z", "gt(csp_t,time(2026-01-02T03:04:05.123Z))"},
		{"datetime without seconds", "csp_t gt 2026-01-02T03:04Z", "gt(csp_t,time(2026-01-02T03:04:00Z))"},
		{"date", "csp_t ge 2026-01-02", "ge(csp_t,time(2026-01-02T00:00:00Z))"},
		{"contains", "contains(csp_domain,'a%')", "contains(csp_domain,'a%')"},
		{"startswith spaced", "startswith( name , 'Con' )", "startswith(name,'Con')"},
		{"endswith", "endswith(name,'.com')", "endswith(name,'.com')"},
		{"In", `Microsoft.Dynamics.CRM.In(PropertyName='csp_tenantid',PropertyValues=["x","y"])`, "in(csp_tenantid,['x','y'])"},
		{"In spaced and reordered", `Microsoft.Dynamics.CRM.In( PropertyValues = [ "a" , "b" ] , PropertyName = 'name' )`, "in(name,['a','b'])"},
		{"In JSON escapes", `Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=["a\"b","O'Bryan","\u00e9"])`, `in(name,['a"b','O''Bryan','é'])`},
		{"In numbers", `Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=[1,-2,2.5])`, "in(statuscode,[1,-2,2.5])"},
		{"In single quoted", `Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=['a','b'])`, "in(name,['a','b'])"},
		{"NotIn", `Microsoft.Dynamics.CRM.NotIn(PropertyName='name',PropertyValues=["a"])`, "notin(name,['a'])"},
		{"not", "not name eq 'x'", "not(eq(name,'x'))"},
		{"not function", "not contains(name,'x')", "not(contains(name,'x'))"},
		{"not not", "not not name eq 'x'", "not(not(eq(name,'x')))"},
		{"not parenthesised", "not(name eq 'x')", "not(eq(name,'x'))"},
		{"and", "a eq 1 and b eq 2", "and(eq(a,1),eq(b,2))"},
		{"or", "a eq 1 or b eq 2", "or(eq(a,1),eq(b,2))"},
		{"and chain left-nested", "a eq 1 and b eq 2 and c eq 3", "and(and(eq(a,1),eq(b,2)),eq(c,3))"},
		{"or chain left-nested", "a eq 1 or b eq 2 or c eq 3 or d eq 4", "or(or(or(eq(a,1),eq(b,2)),eq(c,3)),eq(d,4))"},
		{"explicit right nesting kept", "a eq 1 and (b eq 2 and c eq 3)", "and(eq(a,1),and(eq(b,2),eq(c,3)))"},
		{"explicit left nesting", "(a eq 1 and b eq 2) and c eq 3", "and(and(eq(a,1),eq(b,2)),eq(c,3))"},
		{"and binds tighter than or", "a eq 1 or b eq 2 and c eq 3", "or(eq(a,1),and(eq(b,2),eq(c,3)))"},
		{"and binds tighter than or left", "a eq 1 and b eq 2 or c eq 3", "or(and(eq(a,1),eq(b,2)),eq(c,3))"},
		{"not binds tighter than and", "not a eq 1 and b eq 2", "and(not(eq(a,1)),eq(b,2))"},
		{"not binds tighter than or", "not a eq 1 or b eq 2", "or(not(eq(a,1)),eq(b,2))"},
		{"parens override", "(a eq 1 or b eq 2) and c eq 3", "and(or(eq(a,1),eq(b,2)),eq(c,3))"},
		{"not of group", "not (a eq 1 or b eq 2)", "not(or(eq(a,1),eq(b,2)))"},
		{"redundant parens", "((a eq 1))", "eq(a,1)"},
		{"no space around parens", "(a eq 1)and(b eq 2)", "and(eq(a,1),eq(b,2))"},
		{"string then keyword", "a eq 'x'and b eq 'y'", "and(eq(a,'x'),eq(b,'y'))"},
		{"tabs and newlines", "a\teq\n1\r\nand  b eq 2", "and(eq(a,1),eq(b,2))"},
		{"leading and trailing space", "  a eq 1  ", "eq(a,1)"},
		{"unicode string", "name eq 'Zürich ✓'", "eq(name,'Zürich ✓')"},
		{"keyword-like column", "android eq 1 and order eq 2 and nothing eq 3", "and(and(eq(android,1),eq(order,2)),eq(nothing,3))"},
		{
			"everything",
			`name eq 'O''Bryan' and not contains(csp_domain,'a%') and Microsoft.Dynamics.CRM.In(PropertyName='csp_tenantid',PropertyValues=["x","y"]) and csp_quantity gt 5 and _csp_provider_value eq 0f8fad5b-d9cb-469f-a165-70867728950e and csp_lastsyncedon eq 2026-01-02T03:04:05Z and csp_x eq null and csp_b eq true and csp_f lt 1.5`,
			"and(and(and(and(and(and(and(and(eq(name,'O''Bryan'),not(contains(csp_domain,'a%'))),in(csp_tenantid,['x','y'])),gt(csp_quantity,5)),eq(_csp_provider_value,guid(0f8fad5b-d9cb-469f-a165-70867728950e))),eq(csp_lastsyncedon,time(2026-01-02T03:04:05Z))),eq(csp_x,null)),eq(csp_b,true)),lt(csp_f,1.5))",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseFilter(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, f.Canonical())
		})
	}
}

func TestParseFilterLongChainIsNotRecursive(t *testing.T) {
	t.Parallel()
	// A flat chain far longer than the nesting cap must still parse and evaluate.
	terms := make([]string, 5000)
	for i := range terms {
		terms[i] = "a eq 1"
	}
	f, err := ParseFilter(strings.Join(terms, " or "))
	require.NoError(t, err)
	assert.True(t, f.Match(filterRow{"a": int64(1)}.value))
	assert.False(t, f.Match(filterRow{"a": int64(2)}.value))
}

func TestParseFilterNestingLimit(t *testing.T) {
	t.Parallel()
	nest := func(n int) string {
		return strings.Repeat("(", n) + "a eq 1" + strings.Repeat(")", n)
	}
	_, err := ParseFilter(nest(maxFilterDepth))
	require.NoError(t, err)

	for name, in := range map[string]string{
		"parens": nest(maxFilterDepth + 1),
		"not":    strings.Repeat("not ", maxFilterDepth+1) + "a eq 1",
		"huge":   nest(1_000_000),
	} {
		_, err := ParseFilter(in)
		var fe *FilterError
		require.ErrorAs(t, err, &fe, name)
		assert.Contains(t, fe.Message, "nested more than 100 levels", name)
	}
}

func TestFilterColumns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"a eq 1", []string{"a"}},
		{"b eq 1 and a eq 2 or b eq 3 and not contains(c,'x')", []string{"b", "a", "c"}},
		{"5 lt q and q gt 1", []string{"q"}},
		{`Microsoft.Dynamics.CRM.NotIn(PropertyName='z',PropertyValues=["1"]) or startswith(y,'a') or endswith(z,'b')`, []string{"z", "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			f, err := ParseFilter(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, f.Columns())
		})
	}
}

// filterRow is a test row; missing columns read as null.
type filterRow map[string]any

func (r filterRow) value(col string) any { return r[col] }

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	synced := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := filterRow{
		"name":      "Contoso Ltd",
		"lastname":  "O'Bryan",
		"city":      "ZÜRICH",
		"code":      "50%_off[1]",
		"qty":       int64(5),
		"price":     1.5,
		"active":    true,
		"synced":    synced,
		"_prov":     "0f8fad5b-d9cb-469f-a165-70867728950e",
		"_provup":   "0F8FAD5B-D9CB-469F-A165-70867728950E",
		"small":     int32(3), // other Go integer types are tolerated
		"missing":   nil,
		"emptytext": "",
	}
	tests := []struct {
		in   string
		want bool
	}{
		// Strings: case-insensitive, Unicode aware.
		{"name eq 'Contoso Ltd'", true},
		{"name eq 'CONTOSO LTD'", true},
		{"name eq 'Contoso'", false},
		{"name ne 'contoso ltd'", false},
		{"name ne 'Fabrikam'", true},
		{"name gt 'contoso'", true},
		{"name gt 'D'", false},
		{"name lt 'd'", true},
		{"name ge 'CONTOSO LTD'", true},
		{"name le 'contoso ltd'", true},
		{"'D' gt name", true},
		{"lastname eq 'o''bryan'", true},
		{"city eq 'zürich'", true},
		{"emptytext eq ''", true},
		{"emptytext eq null", false},
		// Numbers: int64 and float64 compare with each other.
		{"qty eq 5", true},
		{"qty eq 5.0", true},
		{"qty ne 5", false},
		{"qty gt 4", true},
		{"qty gt 4.99", true},
		{"qty gt 5", false},
		{"qty ge 5", true},
		{"qty lt 5.01", true},
		{"qty le 4", false},
		{"qty gt -1", true},
		{"6 gt qty", true},
		{"6 lt qty", false},
		{"price eq 1.5", true},
		{"price gt 1", true},
		{"price lt 2", true},
		{"price eq 1.5M", true},
		{"small eq 3", true},
		// Booleans.
		{"active eq true", true},
		{"active eq false", false},
		{"active ne false", true},
		{"active gt false", true},
		// Times compare instants, whatever offset the literal uses.
		{"synced eq 2026-01-02T03:04:05Z", true},
		{"synced eq 2026-01-02T04:04:05+01:00", true},
		{"synced eq 2026-01-02T03:04:05.000Z", true},
		{"synced gt 2026-01-02T03:04:05Z", false},
		{"synced gt 2026-01-02", true},
		{"synced lt 2026-01-03", true},
		{"synced ge 2026-01-02T03:04:05.001Z", false},
		// GUIDs: case-insensitive, literal or (leniently) quoted.
		{"_prov eq 0F8FAD5B-D9CB-469F-A165-70867728950E", true},
		{"_provup eq 0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"_prov eq '0F8FAD5B-D9CB-469F-A165-70867728950E'", true},
		{"_prov ne 0f8fad5b-d9cb-469f-a165-70867728950f", true},
		// Null and three-valued logic.
		{"missing eq null", true},
		{"missing ne null", false},
		{"name eq null", false},
		{"name ne null", true},
		{"null eq missing", true},
		{"absent eq null", true},
		{"missing eq 'x'", false},
		{"missing ne 'x'", false},
		{"not missing eq 'x'", false},
		{"not missing ne 'x'", false},
		{"missing gt null", false},
		{"not missing gt null", false},
		{"missing eq 'x' or name eq 'contoso ltd'", true},
		{"missing eq 'x' or name eq 'nope'", false},
		{"not (missing eq 'x' or name eq 'nope')", false},
		{"missing eq 'x' and name eq 'nope'", false},
		{"not (missing eq 'x' and name eq 'nope')", true},
		{"not (missing eq 'x' and name eq 'contoso ltd')", false},
		{"not not missing eq 'x'", false},
		{"not (missing eq null)", false},
		{"contains(missing,'a')", false},
		{"not contains(missing,'a')", false},
		{"qty eq 5 and missing eq null", true},
		// Incompatible kinds (which Check rejects) never match.
		{"qty eq '5'", false},
		{"not (qty eq '5')", false},
		{"name eq 5", false},
		{"contains(qty,'5')", false},
		// LIKE semantics in string functions.
		{"contains(name,'toso')", true},
		{"contains(name,'TOSO')", true},
		{"contains(name,'xyz')", false},
		{"contains(name,'')", true},
		{"contains(emptytext,'')", true},
		{"startswith(name,'con')", true},
		{"startswith(name,'ltd')", false},
		{"endswith(name,'LTD')", true},
		{"endswith(name,'con')", false},
		{"contains(name,'C%L')", true},
		{"contains(name,'L%C')", false},
		{"startswith(name,'%ltd')", true},
		{"startswith(name,'c_ntoso')", true},
		{"startswith(name,'c__toso')", true},
		{"startswith(name,'c_toso')", false},
		{"startswith(name,'[abc]ontoso')", true},
		{"startswith(name,'[xyz]ontoso')", false},
		{"startswith(name,'[a-d]ontoso')", true},
		{"startswith(name,'[A-D]ontoso')", true},
		{"startswith(name,'[d-z]ontoso')", false},
		{"startswith(name,'[^abc]ontoso')", false},
		{"startswith(name,'[^xyz]ontoso')", true},
		{"startswith(name,'[-c]ontoso')", true},
		{"startswith(name,'[]ontoso')", false},
		{"endswith(name,'%')", true},
		{"contains(code,'[%]')", true},
		{"contains(name,'[%]')", false},
		{"contains(code,'[_]')", true},
		{"contains(name,'[_]')", false},
		{"contains(code,'[[]1]')", true},
		{"contains(code,'[[]2]')", false},
		{"endswith(code,'[1')", false},
		{"contains(code,'off[1')", true}, // unclosed [ is a literal [
		{"startswith(code,'50[%][_]')", true},
		{"startswith(code,'50%_')", true},
		{"contains(city,'ürı')", false},
		{"contains(city,'üri')", true},
		// In / NotIn.
		{`Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=["x","CONTOSO LTD"])`, true},
		{`Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=["x","y"])`, false},
		{`Microsoft.Dynamics.CRM.NotIn(PropertyName='name',PropertyValues=["x","y"])`, true},
		{`Microsoft.Dynamics.CRM.NotIn(PropertyName='name',PropertyValues=["contoso ltd"])`, false},
		{`Microsoft.Dynamics.CRM.In(PropertyName='qty',PropertyValues=[4,5])`, true},
		{`Microsoft.Dynamics.CRM.In(PropertyName='qty',PropertyValues=["4","5"])`, true},
		{`Microsoft.Dynamics.CRM.In(PropertyName='qty',PropertyValues=["4","6"])`, false},
		{`Microsoft.Dynamics.CRM.In(PropertyName='price',PropertyValues=[1.5])`, true},
		{`Microsoft.Dynamics.CRM.In(PropertyName='_prov',PropertyValues=["0F8FAD5B-D9CB-469F-A165-70867728950E"])`, true},
		{`Microsoft.Dynamics.CRM.In(PropertyName='active',PropertyValues=["true"])`, true},
		{`Microsoft.Dynamics.CRM.In(PropertyName='synced',PropertyValues=["2026-01-02T03:04:05Z"])`, true},
		{`Microsoft.Dynamics.CRM.In(PropertyName='missing',PropertyValues=["x"])`, false},
		{`Microsoft.Dynamics.CRM.NotIn(PropertyName='missing',PropertyValues=["x"])`, false},
		{`Microsoft.Dynamics.CRM.In(PropertyName='qty',PropertyValues=["nope",5])`, true},
		{`Microsoft.Dynamics.CRM.NotIn(PropertyName='qty',PropertyValues=["nope",4])`, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			f, err := ParseFilter(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, f.Match(r.value))
		})
	}
}

func TestFilterMatchUnicodeFolding(t *testing.T) {
	t.Parallel()
	f, err := ParseFilter("name eq 'kelvin'")
	require.NoError(t, err)
	// U+212A KELVIN SIGN folds to k, which strings.ToLower alone gets right but
	// strings.EqualFold-style orbits are what make 'ſ' (long s) equal 's'.
	assert.True(t, f.Match(filterRow{"name": "\u212Aelvin"}.value))

	f, err = ParseFilter("name eq 'sun'")
	require.NoError(t, err)
	assert.True(t, f.Match(filterRow{"name": "ſun"}.value))
}

func TestLikeMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"%", "", true},
		{"%%%", "abc", true},
		{"a%b%c", "aXbYc", true},
		{"a%b%c", "aXcYb", false},
		{"%a%a%a%a%b", strings.Repeat("a", 200), false},
		{"_", "", false},
		{"_", "é", true},
		{"[a-c][^a-c]", "bz", true},
		{"[a-c][^a-c]", "bb", false},
		{"[a-]", "-", true},
		{"[^]", "x", true},
		{"[", "[", true},
		{"a[", "a[", true},
		{"[%]%", "%x", true},
		{"ABC", "abc", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.s, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, filterLikeMatch(filterCompileLike(tt.pattern), foldFilterString(tt.s)))
		})
	}
}

func TestFilterCheck(t *testing.T) {
	t.Parallel()
	kinds := map[string]Kind{
		"name":   KindString,
		"qty":    KindInt,
		"price":  KindFloat,
		"active": KindBool,
		"synced": KindTime,
		"_prov":  KindGUID,
	}
	kindOf := func(col string) (Kind, bool) {
		k, ok := kinds[col]
		return k, ok
	}
	tests := []struct {
		in      string
		wantErr string // empty: valid
	}{
		{"name eq 'x' and qty gt 1 and price lt 2.5 and active eq true", ""},
		{"qty eq 1.5 and price eq 2", ""},
		{"synced gt 2026-01-02T03:04:05Z and synced lt 2026-02-01", ""},
		{"_prov eq 0f8fad5b-d9cb-469f-a165-70867728950e", ""},
		{"_prov eq '0f8fad5b-d9cb-469f-a165-70867728950e'", "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and 'Edm.String' for operator kind 'Equal'."},
		{"name eq null and qty ne null and active eq null and synced eq null and _prov eq null and price eq null", ""},
		{"contains(name,'x') or startswith(name,'y') or endswith(name,'z')", ""},
		{`Microsoft.Dynamics.CRM.In(PropertyName='qty',PropertyValues=["1",2])`, ""},
		{`Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=["1",2])`, ""},
		{`Microsoft.Dynamics.CRM.NotIn(PropertyName='_prov',PropertyValues=["0f8fad5b-d9cb-469f-a165-70867728950e"])`, ""},
		{`Microsoft.Dynamics.CRM.In(PropertyName='synced',PropertyValues=["2026-01-02"])`, ""},
		{`Microsoft.Dynamics.CRM.In(PropertyName='active',PropertyValues=["false"])`, ""},
		{"nope eq 1", "Could not find a property named 'nope'."},
		{"name eq 'x' and not contains(nope,'x')", "Could not find a property named 'nope'."},
		{`Microsoft.Dynamics.CRM.In(PropertyName='nope',PropertyValues=["1"])`, "Could not find a property named 'nope'."},
		{"qty eq 'x'", "A binary operator with incompatible types was detected. Found operand types 'Edm.Int32' and 'Edm.String' for operator kind 'Equal'."},
		{"'x' lt qty", "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and 'Edm.Int32' for operator kind 'LessThan'."},
		{"price ge 'x'", "A binary operator with incompatible types was detected. Found operand types 'Edm.Decimal' and 'Edm.String' for operator kind 'GreaterThanOrEqual'."},
		{"name ne 5", "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and 'Edm.Int32' for operator kind 'NotEqual'."},
		{"name eq 5000000000", "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and 'Edm.Int64' for operator kind 'Equal'."},
		{"name eq true", "Found operand types 'Edm.String' and 'Edm.Boolean'"},
		{"name eq 0f8fad5b-d9cb-469f-a165-70867728950e", "Found operand types 'Edm.String' and 'Edm.Guid'"},
		{"active eq 1", "Found operand types 'Edm.Boolean' and 'Edm.Int32' for operator kind 'Equal'."},
		{"active eq 'true'", "Found operand types 'Edm.Boolean' and 'Edm.String'"},
		{"synced gt '2026-01-02T03:04:05Z'", "Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind 'GreaterThan'."},
		{"synced gt 5", "Found operand types 'Edm.DateTimeOffset' and 'Edm.Int32'"},
		{"qty le 2026-01-02", "Found operand types 'Edm.Int32' and 'Edm.Date' for operator kind 'LessThanOrEqual'."},
		{"_prov eq 'abc'", "Found operand types 'Edm.Guid' and 'Edm.String'"},
		{"_prov eq 1", "Found operand types 'Edm.Guid' and 'Edm.Int32'"},
		{"contains(qty,'1')", "No function signature for the function with name 'contains' matches the specified arguments. The function signatures considered are: contains(Edm.String Nullable=true, Edm.String Nullable=true)."},
		{"startswith(_prov,'0f')", "No function signature for the function with name 'startswith'"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='qty',PropertyValues=["one"])`, "The value 'one' in PropertyValues cannot be converted to type 'Edm.Int32' of property 'qty'."},
		{`Microsoft.Dynamics.CRM.In(PropertyName='_prov',PropertyValues=["x"])`, "cannot be converted to type 'Edm.Guid'"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='active',PropertyValues=[1])`, "cannot be converted to type 'Edm.Boolean'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			f, err := ParseFilter(tt.in)
			require.NoError(t, err)
			err = f.Check(kindOf)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			var fe *FilterError
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, fe.Message, tt.wantErr)
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr string
	}{
		// The exact text Dataverse documents for a missing doubled quote.
		{"lastname eq 'O'Bryan'", "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''."},
		{"name eq 'abc", "There is an unterminated literal at position 12 in 'name eq 'abc'."},
		{"name eq 'it''", "There is an unterminated literal at position 13"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=["x])`, "There is an unterminated literal"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=["x\`, "There is an unterminated literal"},
		{"", "expression expected but found end of input at position 0 in ''."},
		{"   ", "expression expected but found end of input"},
		{"name eq 'x' and", "expression expected but found end of input at position 15"},
		{"and name eq 'x'", "expression expected but found 'and' at position 0"},
		{"name eq 'x' or or name eq 'y'", "expression expected but found 'or' at position 15"},
		{"not", "expression expected but found end of input"},
		{"(name eq 'x'", "')' or operator expected but found end of input at position 12"},
		{"((name eq 'x')", "')' or operator expected"},
		{"name eq 'x')", "unexpected ')' at position 11"},
		{"()", "expression expected but found ')'"},
		{"name eq 'x' name eq 'y'", "unexpected 'name' at position 12"},
		{"name eq 'x' garbage", "unexpected 'garbage'"},
		{"name", "comparison operator expected but found end of input"},
		{"name eq", "expression expected but found end of input at position 7"},
		{"name EQ 'x'", "comparison operator expected but found 'EQ'"},
		{"name eq 'x' AND qty eq 1", "unexpected 'AND'"},
		{"name eq'x'and qty eq 1", ""}, // quotes delimit; this one parses
		{"qty eq1", "comparison operator expected"},
		{"name has 'x'", "operator 'has' is not supported"},
		{"qty in (1,2)", "operator 'in' is not supported"},
		{"qty add 1 eq 2", "operator 'add' is not supported"},
		{"a eq b", "comparing column 'a' with column 'b' is not supported"},
		{"1 eq 1", "a comparison needs a column on one side"},
		{"qty eq and", "expression expected but found 'and'"},
		{"primarycontactid/fullname eq 'x'", "navigation paths ('/') are not supported at position 16"},
		{"contacts/any(c:c/name eq 'x')", "navigation paths"},
		{"a.b eq 1", "'a.b' is not a valid property name"},
		{"tolower(name) eq 'x'", "An unknown function with name 'tolower' was found at position 0"},
		{"Microsoft.Dynamics.CRM.Between(PropertyName='a',PropertyValues=[\"1\",\"2\"])", "unknown function with name 'Microsoft.Dynamics.CRM.Between'"},
		{"contains(name)", "',' expected but found ')'"},
		{"contains(name,5)", "expects a string literal as its second argument but found '5'"},
		{"contains('x',name)", "expects a property name as its first argument"},
		{"contains(name,'x'", "')' expected but found end of input"},
		{"contains(name,'x') eq true", "unexpected 'eq'"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a')`, "requires both PropertyName and PropertyValues"},
		{`Microsoft.Dynamics.CRM.In(PropertyValues=["x"])`, "requires both PropertyName and PropertyValues"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyName='b',PropertyValues=["x"])`, "unexpected or repeated parameter 'PropertyName'"},
		{`Microsoft.Dynamics.CRM.In(Name='a',PropertyValues=["x"])`, "unexpected or repeated parameter 'Name'"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a b',PropertyValues=["x"])`, "PropertyName of 'Microsoft.Dynamics.CRM.In' must be a quoted property name"},
		{`Microsoft.Dynamics.CRM.In(PropertyName=a,PropertyValues=["x"])`, "must be a quoted property name"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=[])`, "PropertyValues must not be empty"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=["x",])`, "may only contain strings and numbers but found ']'"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=[true])`, "may only contain strings and numbers but found 'true'"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=["x" "y"])`, "',' or ']' expected"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues="x")`, "'[' expected"},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a',PropertyValues=["\q"])`, `"\q" is not a valid JSON string`},
		{`Microsoft.Dynamics.CRM.In(PropertyName='a' PropertyValues=["x"])`, "',' or ')' expected"},
		{`name eq "x"`, `expression expected but found '"x"'`},
		{"qty eq 5abc", "'5abc' is not a valid number at position 7"},
		{"qty eq 1.", "'1.' is not a valid number"},
		{"qty eq 1.2.3", "is not a valid number"},
		{"qty eq 5-3", "is not a valid number"},
		{"qty eq -", "character '-' is not valid at position 7"},
		{"qty eq 1e999", "'1e999' is not a valid number"},
		{"t eq 2026-13-01", "'2026-13-01' is not a valid date or date-time at position 5"},
		{"t eq 2026-01-02T03:04:05", "is not a valid date or date-time"},
		{"t eq 2026-01-02T25:00:00Z", "is not a valid date or date-time"},
		{"_x eq 0f8fad5b-d9cb-469f-a165-70867728950", "is not a valid number"},
		{"_x eq 0f8fad5b-d9cb-469f-a165-70867728950ex", "is not a valid number"},
		{"name eq 'x' ; drop", "character ';' is not valid at position 12"},
		{"name eq 'x' & qty eq 1", "character '&' is not valid"},
		{"näme eq 'x'", "character 'ä' is not valid at position 1"},
		{"name eq 'x' = ", "unexpected '='"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			f, err := ParseFilter(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Nil(t, f)
			var fe *FilterError
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, fe.Message, tt.wantErr)
			assert.Equal(t, fe.Message, err.Error())
		})
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		"",
		"name eq 'O''Bryan'",
		"lastname eq 'O'Bryan'",
		"a eq 1 and (b eq 2 or not c eq 3)",
		"5 lt csp_quantity",
		"_csp_provider_value eq 0f8fad5b-d9cb-469f-a165-70867728950e",
		"csp_lastsyncedon ge 2026-01-02T03:04:05.5+02:00 and csp_d lt 2026-01-02",
		"csp_f lt -1.5M or csp_q eq 9223372036854775808",
		"contains(csp_domain,'a[%]_[^x-z]%[') or startswith(n,'[') or endswith(n,'')",
		`Microsoft.Dynamics.CRM.In(PropertyName='csp_tenantid',PropertyValues=["x","\u00e9",1,2.5])`,
		`Microsoft.Dynamics.CRM.NotIn(PropertyName='a',PropertyValues=['x'])`,
		"not not (x eq null) or y ne null",
		strings.Repeat("(", 120) + "a eq 1" + strings.Repeat(")", 120),
		"primarycontactid/fullname eq 'x'",
		"\"\\",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseFilter(%q) returned %T, want *FilterError", s, err)
			}
			return
		}
		// Canonical is not OData, so it need not re-parse; everything else
		// must simply not panic on any parsed filter.
		_ = flt.Canonical()
		cols := flt.Columns()
		if len(cols) == 0 {
			t.Fatalf("ParseFilter(%q) parsed a filter without columns", s)
		}
		_ = flt.Match(filterRow{}.value)
		_ = flt.Match(func(string) any { return "x" })
		_ = flt.Match(func(string) any { return int64(1) })
		_ = flt.Check(func(string) (Kind, bool) { return KindString, true })
		_ = flt.Check(func(string) (Kind, bool) { return 0, false })
	})
}
