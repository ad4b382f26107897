package dataversetest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kind is the type of a column value as the filter sees it.
type Kind int

// Column kinds and the Go type a row value of that kind has.
const (
	KindString Kind = iota + 1 // Go value: string
	KindInt                    // Go value: int64
	KindFloat                  // Go value: float64
	KindBool                   // Go value: bool
	KindTime                   // Go value: time.Time (UTC)
	KindGUID                   // Go value: string, lowercase canonical 8-4-4-4-12
)

// maxFilterDepth bounds the nesting of parentheses and "not" so that hostile
// input cannot drive the recursive-descent parser (or the recursive
// evaluator) arbitrarily deep.
const maxFilterDepth = 100

// FilterError is a $filter problem; Message is the text Dataverse would put in
// the error body.
type FilterError struct{ Message string }

// Error returns the message.
func (e *FilterError) Error() string { return e.Message }

// Filter is a parsed $filter expression.
type Filter struct {
	root filterNode
}

// ParseFilter parses the text of a $filter query option (already URL-decoded).
// Every error it returns is a *FilterError.
func ParseFilter(s string) (*Filter, error) {
	p := &filterParser{src: s, lx: &filterLexer{src: s, r: []rune(s)}}
	root, err := p.parseOr()
	if err == nil {
		if t := p.peek(); t.kind != ftokEOF {
			err = p.errAt(t, "Syntax error: unexpected %s", t.describe())
		}
	}
	// Lexical errors anywhere in the input win over syntax errors, as in
	// ODataLib: Dataverse reports "lastname eq 'O'Bryan'" as an unterminated
	// literal, not as an unexpected 'Bryan'. A lexical error also reaches the
	// parser as a premature end of input, so its complaint is meaningless then.
	if err != nil && p.lexErr == nil {
		p.lexErr = p.lx.drain()
	}
	if p.lexErr != nil {
		return nil, p.lexErr
	}
	if err != nil {
		return nil, err
	}
	return &Filter{root: root}, nil
}

// Columns returns every column name the filter refers to, in order of first
// appearance, without duplicates.
func (f *Filter) Columns() []string {
	var cols []string
	seen := map[string]bool{}
	f.root.columns(func(c string) {
		if !seen[c] {
			seen[c] = true
			cols = append(cols, c)
		}
	})
	return cols
}

// Check validates the filter against a table: every column must exist (kindOf
// returns ok=false for unknown columns) and every comparison must compare
// compatible kinds. Errors are *FilterError.
func (f *Filter) Check(kindOf func(column string) (Kind, bool)) error {
	return f.root.check(kindOf)
}

// Match reports whether a row matches. value returns a column's current value
// (nil for null) using the Go types listed on Kind. Comparisons involving null
// are unknown (SQL three-valued logic) and a row only matches when the whole
// expression is true.
func (f *Filter) Match(value func(column string) any) bool {
	return f.root.eval(value) == ftriTrue
}

// Canonical returns a normalised, fully parenthesised prefix rendering of the
// AST, used by tests to compare structure, e.g.
//
//	and(and(eq(name,'O''Bryan'),not(contains(csp_domain,'a%'))),gt(csp_quantity,5))
//
// Strings are rendered single-quoted with embedded single quotes doubled;
// and/or with more than two operands stay binary and left-nested. GUIDs render
// as guid(...), date-times as time(...) in UTC, In/NotIn as in(col,[...]) and
// notin(col,[...]).
func (f *Filter) Canonical() string {
	var b strings.Builder
	f.root.canonical(&b)
	return b.String()
}

// ---------------------------------------------------------------------------
// Three-valued logic

type filterTri int8

const (
	ftriFalse filterTri = iota
	ftriUnknown
	ftriTrue
)

func ftriOf(b bool) filterTri {
	if b {
		return ftriTrue
	}
	return ftriFalse
}

func (t filterTri) not() filterTri {
	switch t {
	case ftriTrue:
		return ftriFalse
	case ftriFalse:
		return ftriTrue
	}
	return ftriUnknown
}

// ---------------------------------------------------------------------------
// Literals

type filterLitKind int

const (
	flitNull filterLitKind = iota + 1
	flitString
	flitInt
	flitFloat
	flitBool
	flitGUID
	flitTime
	flitDate // a date-only literal; evaluates like flitTime at midnight UTC
)

type filterLiteral struct {
	kind filterLitKind
	s    string // flitString, flitGUID (lowercase)
	i    int64
	f    float64
	b    bool
	t    time.Time // flitTime, flitDate (UTC)
}

// edm names the literal's type the way ODataLib does in its error messages.
func (l filterLiteral) edm() string {
	switch l.kind {
	case flitString:
		return "Edm.String"
	case flitInt:
		if l.i < -1<<31 || l.i > 1<<31-1 {
			return "Edm.Int64"
		}
		return "Edm.Int32"
	case flitFloat:
		return "Edm.Decimal"
	case flitBool:
		return "Edm.Boolean"
	case flitGUID:
		return "Edm.Guid"
	case flitTime:
		return "Edm.DateTimeOffset"
	case flitDate:
		return "Edm.Date"
	default:
		return "null"
	}
}

func (l filterLiteral) render(b *strings.Builder) {
	switch l.kind {
	case flitNull:
		b.WriteString("null")
	case flitString:
		writeFilterQuoted(b, l.s)
	case flitInt:
		b.WriteString(strconv.FormatInt(l.i, 10))
	case flitFloat:
		s := strconv.FormatFloat(l.f, 'g', -1, 64)
		// Keep floats visibly distinct from integers in Canonical.
		if !strings.ContainsAny(s, ".eEIN") {
			s += ".0"
		}
		b.WriteString(s)
	case flitBool:
		b.WriteString(strconv.FormatBool(l.b))
	case flitGUID:
		b.WriteString("guid(" + l.s + ")")
	case flitTime, flitDate:
		b.WriteString("time(" + l.t.Format(time.RFC3339Nano) + ")")
	}
}

func writeFilterQuoted(b *strings.Builder, s string) {
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", "''"))
	b.WriteByte('\'')
}

func filterEdmName(k Kind) string {
	switch k {
	case KindString:
		return "Edm.String"
	case KindInt:
		return "Edm.Int32"
	case KindFloat:
		return "Edm.Decimal"
	case KindBool:
		return "Edm.Boolean"
	case KindTime:
		return "Edm.DateTimeOffset"
	case KindGUID:
		return "Edm.Guid"
	default:
		return "Edm.Untyped"
	}
}

// ---------------------------------------------------------------------------
// AST

type filterNode interface {
	eval(value func(string) any) filterTri
	check(kindOf func(string) (Kind, bool)) error
	columns(add func(string))
	canonical(b *strings.Builder)
}

// filterLogical holds a whole chain of and/or operands rather than a binary
// tree so that long flat chains (a eq 1 or a eq 2 or ...) cost no recursion
// depth; Canonical still renders them left-nested.
type filterLogical struct {
	or       bool
	operands []filterNode
}

func (n *filterLogical) eval(value func(string) any) filterTri {
	// and: any false wins, otherwise any unknown; or: any true wins, otherwise any unknown.
	decisive, acc := ftriFalse, ftriTrue
	if n.or {
		decisive, acc = ftriTrue, ftriFalse
	}
	for _, x := range n.operands {
		switch v := x.eval(value); v {
		case decisive:
			return decisive
		case ftriUnknown:
			acc = ftriUnknown
		}
	}
	return acc
}

func (n *filterLogical) check(kindOf func(string) (Kind, bool)) error {
	for _, x := range n.operands {
		if err := x.check(kindOf); err != nil {
			return err
		}
	}
	return nil
}

func (n *filterLogical) columns(add func(string)) {
	for _, x := range n.operands {
		x.columns(add)
	}
}

func (n *filterLogical) canonical(b *strings.Builder) {
	name := "and("
	if n.or {
		name = "or("
	}
	for range len(n.operands) - 1 {
		b.WriteString(name)
	}
	n.operands[0].canonical(b)
	for _, x := range n.operands[1:] {
		b.WriteByte(',')
		x.canonical(b)
		b.WriteByte(')')
	}
}

type filterNot struct{ x filterNode }

func (n *filterNot) eval(value func(string) any) filterTri { return n.x.eval(value).not() }

func (n *filterNot) check(kindOf func(string) (Kind, bool)) error { return n.x.check(kindOf) }
func (n *filterNot) columns(add func(string))                     { n.x.columns(add) }
func (n *filterNot) canonical(b *strings.Builder) {
	b.WriteString("not(")
	n.x.canonical(b)
	b.WriteByte(')')
}

type filterOp int

const (
	fopEq filterOp = iota + 1
	fopNe
	fopGt
	fopGe
	fopLt
	fopLe
)

func parseFilterOp(s string) (filterOp, bool) {
	switch s {
	case "eq":
		return fopEq, true
	case "ne":
		return fopNe, true
	case "gt":
		return fopGt, true
	case "ge":
		return fopGe, true
	case "lt":
		return fopLt, true
	case "le":
		return fopLe, true
	}
	return 0, false
}

func (o filterOp) String() string {
	return [...]string{fopEq: "eq", fopNe: "ne", fopGt: "gt", fopGe: "ge", fopLt: "lt", fopLe: "le"}[o]
}

// kindName is ODataLib's BinaryOperatorKind name, used in error messages.
func (o filterOp) kindName() string {
	return [...]string{
		fopEq: "Equal", fopNe: "NotEqual", fopGt: "GreaterThan",
		fopGe: "GreaterThanOrEqual", fopLt: "LessThan", fopLe: "LessThanOrEqual",
	}[o]
}

// flip turns "lit op col" into the equivalent "col op' lit".
func (o filterOp) flip() filterOp {
	switch o {
	case fopGt:
		return fopLt
	case fopGe:
		return fopLe
	case fopLt:
		return fopGt
	case fopLe:
		return fopGe
	}
	return o
}

func (o filterOp) holds(cmp int) bool {
	switch o {
	case fopEq:
		return cmp == 0
	case fopNe:
		return cmp != 0
	case fopGt:
		return cmp > 0
	case fopGe:
		return cmp >= 0
	case fopLt:
		return cmp < 0
	default:
		return cmp <= 0
	}
}

type filterCompare struct {
	op  filterOp // normalised so the column is on the left
	col string
	lit filterLiteral
	// litFirst records that the literal was written on the left, only so
	// that type errors name the operands in the order the caller wrote them.
	litFirst bool
}

func (n *filterCompare) eval(value func(string) any) filterTri {
	v := normaliseFilterValue(value(n.col))
	if n.lit.kind == flitNull {
		switch n.op {
		case fopEq:
			return ftriOf(v == nil)
		case fopNe:
			return ftriOf(v != nil)
		default:
			return ftriUnknown
		}
	}
	if v == nil {
		return ftriUnknown
	}
	cmp, ok := compareFilterValue(v, n.lit)
	if !ok {
		return ftriUnknown
	}
	return ftriOf(n.op.holds(cmp))
}

func (n *filterCompare) check(kindOf func(string) (Kind, bool)) error {
	k, ok := kindOf(n.col)
	if !ok {
		return filterUnknownColumn(n.col)
	}
	if filterCompatible(k, n.lit) {
		return nil
	}
	a, b := filterEdmName(k), n.lit.edm()
	if n.litFirst {
		a, b = b, a
	}
	written := n.op
	if n.litFirst {
		written = written.flip()
	}
	return &FilterError{Message: fmt.Sprintf(
		"A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.",
		a, b, written.kindName())}
}

func (n *filterCompare) columns(add func(string)) { add(n.col) }

func (n *filterCompare) canonical(b *strings.Builder) {
	b.WriteString(n.op.String())
	b.WriteByte('(')
	b.WriteString(n.col)
	b.WriteByte(',')
	n.lit.render(b)
	b.WriteByte(')')
}

func filterUnknownColumn(col string) *FilterError {
	return &FilterError{Message: fmt.Sprintf("Could not find a property named '%s'.", col)}
}

// filterCompatible mirrors the type checks ODataLib applies before Dataverse
// ever sees the query.
func filterCompatible(k Kind, lit filterLiteral) bool {
	switch lit.kind {
	case flitNull:
		return true
	case flitString:
		// Dataverse rejects a quoted GUID compared with a Guid property
		// ("Found operand types 'Edm.Guid' and 'Edm.String'"), and so does the
		// simulator, so a client that quotes ids fails here and not in production.
		return k == KindString
	case flitInt, flitFloat:
		return k == KindInt || k == KindFloat
	case flitBool:
		return k == KindBool
	case flitGUID:
		return k == KindGUID
	case flitTime, flitDate:
		return k == KindTime
	}
	return false
}

// filterLikeCall is contains/startswith/endswith, which Dataverse turns into SQL
// LIKE without escaping the argument, so wildcards in it are live.
type filterLikeCall struct {
	fn      string
	col     string
	pattern string
	elems   []filterLikeElem
}

func (n *filterLikeCall) eval(value func(string) any) filterTri {
	s, ok := normaliseFilterValue(value(n.col)).(string)
	if !ok {
		// null, or a non-string value that Check would have rejected.
		return ftriUnknown
	}
	return ftriOf(filterLikeMatch(n.elems, foldFilterString(s)))
}

func (n *filterLikeCall) check(kindOf func(string) (Kind, bool)) error {
	k, ok := kindOf(n.col)
	if !ok {
		return filterUnknownColumn(n.col)
	}
	if k != KindString {
		return &FilterError{Message: fmt.Sprintf(
			"No function signature for the function with name '%s' matches the specified arguments. The function signatures considered are: %s(Edm.String Nullable=true, Edm.String Nullable=true).",
			n.fn, n.fn)}
	}
	return nil
}

func (n *filterLikeCall) columns(add func(string)) { add(n.col) }

func (n *filterLikeCall) canonical(b *strings.Builder) {
	b.WriteString(n.fn + "(" + n.col + ",")
	writeFilterQuoted(b, n.pattern)
	b.WriteByte(')')
}

// filterIn is Microsoft.Dynamics.CRM.In / NotIn.
type filterIn struct {
	negate bool
	col    string
	values []filterLiteral // flitString, flitInt or flitFloat
}

func (n *filterIn) eval(value func(string) any) filterTri {
	v := normaliseFilterValue(value(n.col))
	if v == nil {
		return ftriUnknown
	}
	// x IN (a, b) is x = a OR x = b.
	acc := ftriFalse
	for _, lit := range n.values {
		cmp, ok := compareFilterValue(v, filterCoerceInValue(v, lit))
		if !ok {
			acc = ftriUnknown
			continue
		}
		if cmp == 0 {
			acc = ftriTrue
			break
		}
	}
	if n.negate {
		return acc.not()
	}
	return acc
}

func (n *filterIn) check(kindOf func(string) (Kind, bool)) error {
	k, ok := kindOf(n.col)
	if !ok {
		return filterUnknownColumn(n.col)
	}
	for _, lit := range n.values {
		if !filterCompatible(k, filterCoerceInLiteral(k, lit)) {
			var b strings.Builder
			lit.render(&b)
			return &FilterError{Message: fmt.Sprintf(
				"The value %s in PropertyValues cannot be converted to type '%s' of property '%s'.",
				b.String(), filterEdmName(k), n.col)}
		}
	}
	return nil
}

func (n *filterIn) columns(add func(string)) { add(n.col) }

func (n *filterIn) canonical(b *strings.Builder) {
	if n.negate {
		b.WriteString("notin(")
	} else {
		b.WriteString("in(")
	}
	b.WriteString(n.col + ",[")
	for i, v := range n.values {
		if i > 0 {
			b.WriteByte(',')
		}
		v.render(b)
	}
	b.WriteString("])")
}

// filterCoerceInLiteral converts an In value to the column's kind, because
// PropertyValues are usually all strings ("1", "true", dates) whatever the
// column type. An unconvertible value is returned unchanged so that the
// compatibility check rejects it.
func filterCoerceInLiteral(k Kind, lit filterLiteral) filterLiteral {
	if lit.kind != flitString {
		if k == KindString || k == KindGUID {
			// A JSON number given for a text column still compares as text.
			var b strings.Builder
			lit.render(&b)
			return filterLiteral{kind: flitString, s: b.String()}
		}
		return lit
	}
	s := strings.TrimSpace(lit.s)
	switch k {
	case KindInt, KindFloat:
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return filterLiteral{kind: flitInt, i: i}
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return filterLiteral{kind: flitFloat, f: f}
		}
	case KindBool:
		// Only the OData spellings: strconv.ParseBool would also take "1" and "T".
		if s == "true" || s == "false" {
			return filterLiteral{kind: flitBool, b: s == "true"}
		}
	case KindTime:
		if t, ok := parseFilterTime(s); ok {
			return filterLiteral{kind: flitTime, t: t}
		}
	case KindGUID:
		// PropertyValues are JSON strings, so ids arrive quoted here, unlike in a comparison.
		if isFilterGUID(s) {
			return filterLiteral{kind: flitGUID, s: strings.ToLower(s)}
		}
	}
	return lit
}

// filterCoerceInValue is filterCoerceInLiteral driven by a row value instead of a Kind.
func filterCoerceInValue(v any, lit filterLiteral) filterLiteral {
	switch v.(type) {
	case string:
		return filterCoerceInLiteral(KindString, lit)
	case int64:
		return filterCoerceInLiteral(KindInt, lit)
	case float64:
		return filterCoerceInLiteral(KindFloat, lit)
	case bool:
		return filterCoerceInLiteral(KindBool, lit)
	case time.Time:
		return filterCoerceInLiteral(KindTime, lit)
	}
	return lit
}

// ---------------------------------------------------------------------------
// Evaluation helpers

// normaliseFilterValue maps the Go types a caller plausibly hands over onto
// the canonical ones listed on Kind so that comparisons need fewer cases.
func normaliseFilterValue(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	}
	return v
}

// compareFilterValue orders a non-nil row value against a literal. ok is false
// when the two cannot be compared, which the caller treats as unknown.
func compareFilterValue(v any, lit filterLiteral) (cmp int, ok bool) {
	switch x := v.(type) {
	case string:
		if lit.kind == flitString || lit.kind == flitGUID {
			return filterCmpFold(x, lit.s), true
		}
	case int64:
		switch lit.kind {
		case flitInt:
			return filterCmp(x, lit.i), true
		case flitFloat:
			return filterCmpFloat(float64(x), lit.f)
		}
	case float64:
		switch lit.kind {
		case flitInt:
			return filterCmpFloat(x, float64(lit.i))
		case flitFloat:
			return filterCmpFloat(x, lit.f)
		}
	case bool:
		if lit.kind == flitBool {
			return filterCmp(filterBoolRank(x), filterBoolRank(lit.b)), true
		}
	case time.Time:
		switch lit.kind {
		case flitTime, flitDate:
			return x.Compare(lit.t), true
		case flitString:
			if t, ok := parseFilterTime(lit.s); ok {
				return x.Compare(t), true
			}
		}
	}
	return 0, false
}

func filterCmp[T int64 | int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func filterCmpFloat(a, b float64) (int, bool) {
	switch {
	case a < b:
		return -1, true
	case a > b:
		return 1, true
	case a == b:
		return 0, true
	}
	return 0, false // NaN
}

func filterBoolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// foldFilterRune maps every member of a Unicode case-folding orbit (k, K and
// the Kelvin sign, say) to one representative, so comparisons are
// case-insensitive beyond ASCII; lower-casing the smallest member keeps
// ordering close to a case-insensitive SQL collation.
func foldFilterRune(r rune) rune {
	lowest := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		lowest = min(lowest, f)
	}
	return unicode.ToLower(lowest)
}

func foldFilterString(s string) []rune {
	rs := []rune(s)
	for i, r := range rs {
		rs[i] = foldFilterRune(r)
	}
	return rs
}

func filterCmpFold(a, b string) int {
	ar, br := foldFilterString(a), foldFilterString(b)
	for i := 0; i < len(ar) && i < len(br); i++ {
		if ar[i] != br[i] {
			return filterCmp(int(ar[i]), int(br[i]))
		}
	}
	return filterCmp(len(ar), len(br))
}

// ---------------------------------------------------------------------------
// SQL LIKE

type filterLikeKind int

const (
	flikeLiteral filterLikeKind = iota
	flikeAnyOne                 // _
	flikeAnySeq                 // %
	flikeSet                    // [...] or [^...]
)

type filterLikeElem struct {
	kind   filterLikeKind
	r      rune      // flikeLiteral, folded
	negate bool      // flikeSet
	ranges [][2]rune // flikeSet, folded inclusive ranges; single characters are lo == hi
}

func (e filterLikeElem) matches(r rune) bool {
	switch e.kind {
	case flikeLiteral:
		return e.r == r
	case flikeAnyOne:
		return true
	case flikeSet:
		in := false
		for _, rg := range e.ranges {
			if rg[0] <= r && r <= rg[1] {
				in = true
				break
			}
		}
		return in != e.negate
	}
	return false
}

// filterCompileLike parses a T-SQL LIKE pattern, folded for case-insensitive
// matching. A '[' without a closing ']' is taken as a literal '[' rather than
// an error, since contains() arguments are user text; an empty set "[]"
// matches no character and "[^]" any character.
func filterCompileLike(pattern string) []filterLikeElem {
	p := foldFilterString(pattern)
	var elems []filterLikeElem
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			// Consecutive %s are equivalent to one and would only slow matching.
			if len(elems) == 0 || elems[len(elems)-1].kind != flikeAnySeq {
				elems = append(elems, filterLikeElem{kind: flikeAnySeq})
			}
		case '_':
			elems = append(elems, filterLikeElem{kind: flikeAnyOne})
		case '[':
			end := -1
			for j := i + 1; j < len(p); j++ {
				if p[j] == ']' {
					end = j
					break
				}
			}
			if end < 0 {
				elems = append(elems, filterLikeElem{kind: flikeLiteral, r: '['})
				continue
			}
			elems = append(elems, filterCompileLikeSet(p[i+1:end]))
			i = end
		default:
			elems = append(elems, filterLikeElem{kind: flikeLiteral, r: p[i]})
		}
	}
	return elems
}

func filterCompileLikeSet(body []rune) filterLikeElem {
	e := filterLikeElem{kind: flikeSet}
	if len(body) > 0 && body[0] == '^' {
		e.negate = true
		body = body[1:]
	}
	for i := 0; i < len(body); i++ {
		lo, hi := body[i], body[i]
		// "a-c" is a range; a '-' first or last is itself a member.
		if i+2 < len(body) && body[i+1] == '-' {
			hi = body[i+2]
			i += 2
		}
		e.ranges = append(e.ranges, [2]rune{lo, hi})
	}
	return e
}

// filterLikeMatch is the classic single-star backtracking wildcard matcher: every
// element except % consumes exactly one rune, so remembering only the last %
// is enough and the worst case stays O(len(s)*len(elems)).
func filterLikeMatch(elems []filterLikeElem, s []rune) bool {
	si, ei := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case ei < len(elems) && elems[ei].kind == flikeAnySeq:
			star, mark = ei, si
			ei++
		case ei < len(elems) && elems[ei].matches(s[si]):
			si++
			ei++
		case star >= 0:
			mark++
			si, ei = mark, star+1
		default:
			return false
		}
	}
	for ei < len(elems) && elems[ei].kind == flikeAnySeq {
		ei++
	}
	return ei == len(elems)
}

// ---------------------------------------------------------------------------
// Lexer

type filterTokKind int

const (
	ftokEOF filterTokKind = iota
	ftokIdent
	ftokLiteral
	ftokJSONString // a double-quoted string, only meaningful inside PropertyValues
	ftokLParen
	ftokRParen
	ftokLBracket
	ftokRBracket
	ftokComma
	ftokEquals
)

type filterToken struct {
	kind filterTokKind
	pos  int    // offset in runes, as ODataLib reports positions in characters
	text string // source text
	lit  filterLiteral
}

func (t filterToken) describe() string {
	if t.kind == ftokEOF {
		return "end of input"
	}
	return "'" + t.text + "'"
}

func isFilterIdentStart(r rune) bool {
	return r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
}

func isFilterIdentPart(r rune) bool {
	return isFilterIdentStart(r) || ('0' <= r && r <= '9')
}

func isFilterDigit(r rune) bool { return '0' <= r && r <= '9' }

func isFilterHex(r rune) bool {
	return isFilterDigit(r) || ('a' <= r && r <= 'f') || ('A' <= r && r <= 'F')
}

func isFilterGUID(s string) bool {
	r := []rune(s)
	return len(r) == 36 && filterGUIDAt(r, 0)
}

func filterGUIDAt(r []rune, i int) bool {
	if i+36 > len(r) {
		return false
	}
	for j := range 36 {
		c := r[i+j]
		switch j {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isFilterHex(c) {
				return false
			}
		}
	}
	return true
}

func isFilterColumnName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !isFilterIdentPart(r) || (i == 0 && !isFilterIdentStart(r)) {
			return false
		}
	}
	return true
}

// parseFilterTime accepts the date-time forms OData allows in $filter: RFC 3339
// with optional seconds and fractional seconds, and bare dates (midnight UTC).
func parseFilterTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// filterLexer produces tokens on demand rather than up front, so that a
// parser that gives up early (say at the nesting cap) never tokenises the rest
// of a huge input.
type filterLexer struct {
	src string
	r   []rune
	i   int
	tok filterToken // the token most recently emitted
}

// next returns the next token, or an EOF token at the end of the input.
func (lx *filterLexer) next() (filterToken, error) {
	for lx.i < len(lx.r) && unicode.IsSpace(lx.r[lx.i]) {
		lx.i++
	}
	if lx.i >= len(lx.r) {
		return filterToken{kind: ftokEOF, pos: lx.i}, nil
	}
	if err := lx.lexOne(); err != nil {
		return filterToken{}, err
	}
	return lx.tok, nil
}

// drain lexes the rest of the input, discarding tokens, and returns the first
// lexical error, if any.
func (lx *filterLexer) drain() error {
	for {
		t, err := lx.next()
		if err != nil || t.kind == ftokEOF {
			return err
		}
	}
}

func (lx *filterLexer) errAt(pos int, format string, args ...any) *FilterError {
	return &FilterError{Message: fmt.Sprintf("%s at position %d in '%s'.", fmt.Sprintf(format, args...), pos, lx.src)}
}

func (lx *filterLexer) emit(kind filterTokKind, start int, lit filterLiteral) {
	lx.tok = filterToken{kind: kind, pos: start, text: string(lx.r[start:lx.i]), lit: lit}
}

func (lx *filterLexer) lexOne() error {
	start := lx.i
	c := lx.r[lx.i]
	if kind, ok := filterPunct(c); ok {
		lx.i++
		lx.emit(kind, start, filterLiteral{})
		return nil
	}
	switch c {
	case '\'':
		return lx.lexQuoted()
	case '"':
		return lx.lexJSONString()
	case '/':
		return lx.errAt(start, "Syntax error: navigation paths ('/') are not supported")
	}
	switch {
	// A GUID may start with a letter, so it must be tried before identifiers.
	case filterGUIDAt(lx.r, lx.i) && !lx.identContinuesAt(lx.i+36):
		lx.i += 36
		lx.emit(ftokLiteral, start, filterLiteral{kind: flitGUID, s: strings.ToLower(string(lx.r[start:lx.i]))})
		return nil
	case lx.dateAhead():
		return lx.lexDateTime()
	case isFilterDigit(c) || (c == '-' && lx.i+1 < len(lx.r) && isFilterDigit(lx.r[lx.i+1])):
		return lx.lexNumber()
	case isFilterIdentStart(c):
		return lx.lexIdent()
	}
	return lx.errAt(start, "Syntax error: character '%c' is not valid", c)
}

func filterPunct(c rune) (filterTokKind, bool) {
	switch c {
	case '(':
		return ftokLParen, true
	case ')':
		return ftokRParen, true
	case '[':
		return ftokLBracket, true
	case ']':
		return ftokRBracket, true
	case ',':
		return ftokComma, true
	case '=':
		return ftokEquals, true
	}
	return 0, false
}

// identContinuesAt reports whether the rune at i would glue onto the token
// just scanned, making it something other than a GUID or number.
func (lx *filterLexer) identContinuesAt(i int) bool {
	return i < len(lx.r) && (isFilterIdentPart(lx.r[i]) || lx.r[i] == '-' || lx.r[i] == '.')
}

func (lx *filterLexer) lexQuoted() error {
	var b strings.Builder
	start := lx.i
	lx.i++ // opening quote
	for {
		if lx.i >= len(lx.r) {
			// ODataLib reports where it ran out of input, not where the literal began.
			return &FilterError{Message: fmt.Sprintf("There is an unterminated literal at position %d in '%s'.", len(lx.r), lx.src)}
		}
		c := lx.r[lx.i]
		lx.i++
		if c != '\'' {
			b.WriteRune(c)
			continue
		}
		if lx.i < len(lx.r) && lx.r[lx.i] == '\'' {
			b.WriteRune('\'')
			lx.i++
			continue
		}
		lx.emit(ftokLiteral, start, filterLiteral{kind: flitString, s: b.String()})
		return nil
	}
}

func (lx *filterLexer) lexJSONString() error {
	start := lx.i
	lx.i++
	for {
		if lx.i >= len(lx.r) {
			return &FilterError{Message: fmt.Sprintf("There is an unterminated literal at position %d in '%s'.", len(lx.r), lx.src)}
		}
		c := lx.r[lx.i]
		lx.i++
		if c == '\\' {
			lx.i++ // whatever is escaped cannot end the string; json.Unmarshal validates it
			continue
		}
		if c == '"' {
			break
		}
	}
	raw := string(lx.r[start:lx.i])
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return lx.errAt(start, "Syntax error: %s is not a valid JSON string", raw)
	}
	lx.emit(ftokJSONString, start, filterLiteral{kind: flitString, s: s})
	return nil
}

// dateAhead reports whether the input continues with something shaped like
// yyyy-mm..., which must not be lexed as the number yyyy.
func (lx *filterLexer) dateAhead() bool {
	r, i := lx.r, lx.i
	return i+5 < len(r) && isFilterDigit(r[i]) && isFilterDigit(r[i+1]) && isFilterDigit(r[i+2]) &&
		isFilterDigit(r[i+3]) && r[i+4] == '-' && isFilterDigit(r[i+5])
}

func (lx *filterLexer) lexDateTime() error {
	start := lx.i
	for lx.i < len(lx.r) {
		c := lx.r[lx.i]
		if !isFilterIdentPart(c) && c != ':' && c != '.' && c != '+' && c != '-' {
			break
		}
		lx.i++
	}
	text := string(lx.r[start:lx.i])
	t, ok := parseFilterTime(text)
	if !ok {
		return lx.errAt(start, "Syntax error: '%s' is not a valid date or date-time", text)
	}
	kind := flitTime
	if !strings.ContainsAny(text, "Tt") {
		kind = flitDate
	}
	lx.emit(ftokLiteral, start, filterLiteral{kind: kind, t: t})
	return nil
}

func (lx *filterLexer) lexNumber() error {
	start := lx.i
	r := lx.r
	digits := func() {
		for lx.i < len(r) && isFilterDigit(r[lx.i]) {
			lx.i++
		}
	}
	if r[lx.i] == '-' {
		lx.i++
	}
	digits()
	isFloat := false
	if lx.i+1 < len(r) && r[lx.i] == '.' && isFilterDigit(r[lx.i+1]) {
		isFloat = true
		lx.i++
		digits()
	}
	if lx.i < len(r) && (r[lx.i] == 'e' || r[lx.i] == 'E') {
		j := lx.i + 1
		if j < len(r) && (r[j] == '+' || r[j] == '-') {
			j++
		}
		if j < len(r) && isFilterDigit(r[j]) {
			isFloat = true
			lx.i = j
			digits()
		}
	}
	end := lx.i
	// OData type suffixes (1.5M, 2d, 3L) carry no meaning here beyond "float".
	if lx.i < len(r) {
		switch r[lx.i] {
		case 'm', 'M', 'd', 'D', 'f', 'F':
			isFloat = true
			lx.i++
		case 'l', 'L':
			if !isFloat {
				lx.i++
			}
		}
	}
	if lx.identContinuesAt(lx.i) {
		for lx.identContinuesAt(lx.i) {
			lx.i++
		}
		return lx.errAt(start, "Syntax error: '%s' is not a valid number", string(r[start:lx.i]))
	}
	text := string(r[start:end])
	if !isFloat {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			lx.emit(ftokLiteral, start, filterLiteral{kind: flitInt, i: i})
			return nil
		}
		// Too big for int64: ODataLib would promote it to a decimal.
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return lx.errAt(start, "Syntax error: '%s' is not a valid number", string(r[start:lx.i]))
	}
	lx.emit(ftokLiteral, start, filterLiteral{kind: flitFloat, f: f})
	return nil
}

func (lx *filterLexer) lexIdent() error {
	start := lx.i
	for {
		for lx.i < len(lx.r) && isFilterIdentPart(lx.r[lx.i]) {
			lx.i++
		}
		// Dots only join the segments of a namespace-qualified function name.
		if lx.i+1 < len(lx.r) && lx.r[lx.i] == '.' && isFilterIdentStart(lx.r[lx.i+1]) {
			lx.i++
			continue
		}
		break
	}
	if lx.i < len(lx.r) && lx.r[lx.i] == '/' {
		return lx.errAt(lx.i, "Syntax error: navigation paths ('/') are not supported")
	}
	switch text := string(lx.r[start:lx.i]); text {
	case "true", "false":
		lx.emit(ftokLiteral, start, filterLiteral{kind: flitBool, b: text == "true"})
	case "null":
		lx.emit(ftokLiteral, start, filterLiteral{kind: flitNull})
	default:
		lx.emit(ftokIdent, start, filterLiteral{})
	}
	return nil
}

// ---------------------------------------------------------------------------
// Parser

type filterParser struct {
	src    string
	lx     *filterLexer
	ahead  []filterToken // lexed but not yet consumed; the parser needs two
	lexErr error         // the first lexical error; the lexer stops there
	depth  int
}

func (p *filterParser) peek() filterToken { return p.peekAt(0) }

// peekAt returns the token n places ahead without consuming anything. Past
// the end of the input, or past a lexical error, it returns EOF tokens.
func (p *filterParser) peekAt(n int) filterToken {
	for len(p.ahead) <= n {
		if last := len(p.ahead) - 1; last >= 0 && p.ahead[last].kind == ftokEOF {
			return p.ahead[last]
		}
		t, err := p.lx.next()
		if err != nil {
			p.lexErr = err
			t = filterToken{kind: ftokEOF, pos: p.lx.i}
		}
		p.ahead = append(p.ahead, t)
	}
	return p.ahead[n]
}

// next consumes a token; it never moves past the final EOF token.
func (p *filterParser) next() filterToken {
	t := p.peek()
	if t.kind != ftokEOF {
		p.ahead = p.ahead[1:]
	}
	return t
}

func (p *filterParser) errAt(t filterToken, format string, args ...any) *FilterError {
	return &FilterError{Message: fmt.Sprintf("%s at position %d in '%s'.", fmt.Sprintf(format, args...), t.pos, p.src)}
}

func (p *filterParser) isKeyword(word string) bool {
	t := p.peek()
	return t.kind == ftokIdent && t.text == word
}

func (p *filterParser) expect(kind filterTokKind, what string) (filterToken, error) {
	t := p.next()
	if t.kind != kind {
		return t, p.errAt(t, "Syntax error: %s expected but found %s", what, t.describe())
	}
	return t, nil
}

func (p *filterParser) enter(t filterToken) error {
	p.depth++
	if p.depth > maxFilterDepth {
		return p.errAt(t, "The $filter expression is nested more than %d levels deep", maxFilterDepth)
	}
	return nil
}

func (p *filterParser) leave() { p.depth-- }

// isFilterReserved reports words that can never be a column, so that
// "a eq and" is a syntax error rather than a comparison with column "and".
func isFilterReserved(word string) bool {
	switch word {
	case "and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "has", "in", "add", "sub", "mul", "div", "mod":
		return true
	}
	return false
}

func (p *filterParser) parseOr() (filterNode, error) {
	return p.parseChain("or", p.parseAnd)
}

func (p *filterParser) parseAnd() (filterNode, error) {
	return p.parseChain("and", p.parseUnary)
}

func (p *filterParser) parseChain(keyword string, operand func() (filterNode, error)) (filterNode, error) {
	first, err := operand()
	if err != nil {
		return nil, err
	}
	operands := []filterNode{first}
	for p.isKeyword(keyword) {
		p.next()
		x, err := operand()
		if err != nil {
			return nil, err
		}
		operands = append(operands, x)
	}
	if len(operands) == 1 {
		return first, nil
	}
	return &filterLogical{or: keyword == "or", operands: operands}, nil
}

func (p *filterParser) parseUnary() (filterNode, error) {
	if !p.isKeyword("not") {
		return p.parsePrimary()
	}
	if err := p.enter(p.next()); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	return &filterNot{x: x}, nil
}

func (p *filterParser) parsePrimary() (filterNode, error) {
	t := p.peek()
	switch {
	case t.kind == ftokLParen:
		p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if closing := p.next(); closing.kind != ftokRParen {
			return nil, p.errAt(closing, "Syntax error: ')' or operator expected but found %s", closing.describe())
		}
		return x, nil
	case t.kind == ftokIdent && !isFilterReserved(t.text) && p.peekAt(1).kind == ftokLParen:
		return p.parseCall()
	default:
		return p.parseComparison()
	}
}

// filterOperand is one side of a comparison: a column or a literal.
type filterOperand struct {
	isColumn bool
	col      string
	lit      filterLiteral
}

func (p *filterParser) parseOperand() (filterOperand, error) {
	t := p.next()
	switch {
	case t.kind == ftokLiteral:
		return filterOperand{lit: t.lit}, nil
	case t.kind == ftokIdent && !isFilterReserved(t.text):
		if !isFilterColumnName(t.text) {
			return filterOperand{}, p.errAt(t, "Syntax error: '%s' is not a valid property name", t.text)
		}
		return filterOperand{isColumn: true, col: t.text}, nil
	}
	return filterOperand{}, p.errAt(t, "Syntax error: expression expected but found %s", t.describe())
}

func (p *filterParser) parseComparison() (filterNode, error) {
	start := p.peek()
	left, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	opTok := p.next()
	cmpOp, ok := parseFilterOp(opTok.text)
	if opTok.kind != ftokIdent || !ok {
		if opTok.kind == ftokIdent && isFilterReserved(opTok.text) && opTok.text != "and" && opTok.text != "or" && opTok.text != "not" {
			return nil, p.errAt(opTok, "Syntax error: operator '%s' is not supported", opTok.text)
		}
		return nil, p.errAt(opTok, "Syntax error: comparison operator expected but found %s", opTok.describe())
	}
	right, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	switch {
	case left.isColumn && right.isColumn:
		return nil, p.errAt(start, "Syntax error: comparing column '%s' with column '%s' is not supported", left.col, right.col)
	case !left.isColumn && !right.isColumn:
		return nil, p.errAt(start, "Syntax error: a comparison needs a column on one side")
	case left.isColumn:
		return &filterCompare{op: cmpOp, col: left.col, lit: right.lit}, nil
	default:
		return &filterCompare{op: cmpOp.flip(), col: right.col, lit: left.lit, litFirst: true}, nil
	}
}

func (p *filterParser) parseCall() (filterNode, error) {
	name := p.next()
	switch name.text {
	case "contains", "startswith", "endswith":
		return p.parseLike(name)
	case "Microsoft.Dynamics.CRM.In":
		return p.parseIn(name, false)
	case "Microsoft.Dynamics.CRM.NotIn":
		return p.parseIn(name, true)
	}
	return nil, p.errAt(name, "An unknown function with name '%s' was found", name.text)
}

func (p *filterParser) parseLike(name filterToken) (filterNode, error) {
	if _, err := p.expect(ftokLParen, "'('"); err != nil {
		return nil, err
	}
	colTok := p.next()
	if colTok.kind != ftokIdent || isFilterReserved(colTok.text) || !isFilterColumnName(colTok.text) {
		return nil, p.errAt(colTok, "Syntax error: function '%s' expects a property name as its first argument but found %s", name.text, colTok.describe())
	}
	if _, err := p.expect(ftokComma, "','"); err != nil {
		return nil, err
	}
	patTok := p.next()
	if patTok.kind != ftokLiteral || patTok.lit.kind != flitString {
		return nil, p.errAt(patTok, "Syntax error: function '%s' expects a string literal as its second argument but found %s", name.text, patTok.describe())
	}
	if _, err := p.expect(ftokRParen, "')'"); err != nil {
		return nil, err
	}
	elems := filterCompileLike(patTok.lit.s)
	anySeq := filterLikeElem{kind: flikeAnySeq}
	switch name.text {
	case "contains":
		elems = append(append([]filterLikeElem{anySeq}, elems...), anySeq)
	case "startswith":
		elems = append(elems, anySeq)
	case "endswith":
		elems = append([]filterLikeElem{anySeq}, elems...)
	}
	return &filterLikeCall{fn: name.text, col: colTok.text, pattern: patTok.lit.s, elems: elems}, nil
}

func (p *filterParser) parseIn(name filterToken, negate bool) (filterNode, error) {
	if _, err := p.expect(ftokLParen, "'('"); err != nil {
		return nil, err
	}
	n := &filterIn{negate: negate}
	var haveName, haveValues bool
	for {
		param, err := p.expect(ftokIdent, "parameter name")
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(ftokEquals, "'='"); err != nil {
			return nil, err
		}
		switch {
		case param.text == "PropertyName" && !haveName:
			haveName = true
			v := p.next()
			if v.kind != ftokLiteral || v.lit.kind != flitString || !isFilterColumnName(v.lit.s) {
				return nil, p.errAt(v, "Syntax error: PropertyName of '%s' must be a quoted property name but found %s", name.text, v.describe())
			}
			n.col = v.lit.s
		case param.text == "PropertyValues" && !haveValues:
			haveValues = true
			if n.values, err = p.parseInValues(); err != nil {
				return nil, err
			}
		default:
			return nil, p.errAt(param, "Syntax error: unexpected or repeated parameter '%s' for function '%s'", param.text, name.text)
		}
		if sep := p.next(); sep.kind == ftokRParen {
			break
		} else if sep.kind != ftokComma {
			return nil, p.errAt(sep, "Syntax error: ',' or ')' expected but found %s", sep.describe())
		}
	}
	if !haveName || !haveValues {
		return nil, p.errAt(name, "Syntax error: function '%s' requires both PropertyName and PropertyValues", name.text)
	}
	return n, nil
}

func (p *filterParser) parseInValues() ([]filterLiteral, error) {
	open, err := p.expect(ftokLBracket, "'['")
	if err != nil {
		return nil, err
	}
	var values []filterLiteral
	if p.peek().kind == ftokRBracket {
		return nil, p.errAt(open, "Syntax error: PropertyValues must not be empty")
	}
	for {
		v := p.next()
		switch {
		case v.kind == ftokJSONString,
			v.kind == ftokLiteral && (v.lit.kind == flitString || v.lit.kind == flitInt || v.lit.kind == flitFloat):
			values = append(values, v.lit)
		default:
			return nil, p.errAt(v, "Syntax error: PropertyValues may only contain strings and numbers but found %s", v.describe())
		}
		sep := p.next()
		if sep.kind == ftokRBracket {
			return values, nil
		}
		if sep.kind != ftokComma {
			return nil, p.errAt(sep, "Syntax error: ',' or ']' expected but found %s", sep.describe())
		}
	}
}
