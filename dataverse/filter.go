package dataverse

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Filter is a $filter expression built from typed parts. Callers never write filter text: column names are
// checked, and every value becomes a literal of its own type with quotes escaped, so no input can change
// the structure of the expression. A Filter that was built from an invalid part carries the error and
// makes the request that uses it fail before anything is sent.
type Filter struct {
	text string
	err  error
}

// String returns the filter text (unencoded; the client URL-encodes the whole query).
func (f Filter) String() string { return f.text }

// Err returns the first problem found while building the filter.
func (f Filter) Err() error { return f.err }

// IsZero reports an empty filter.
func (f Filter) IsZero() bool { return f.text == "" && f.err == nil }

// Date is a calendar date, rendered as an unquoted OData date literal (2026-01-31).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the date part of t in t's location.
func DateOf(t time.Time) Date { y, m, d := t.Date(); return Date{y, m, d} }

func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

var columnName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkColumn rejects anything that is not a plain column (or _lookup_value) name.
func checkColumn(name string) error {
	if !columnName.MatchString(name) {
		return fmt.Errorf("dataverse: filter: %q is not a column name", name)
	}
	return nil
}

// Literal renders v as an OData literal: strings quoted with single quotes doubled, GUIDs and date-times
// unquoted and typed, numbers and booleans as themselves, nil as null. A value of any other type is an error,
// so a caller cannot slip raw text into a filter by accident.
func Literal(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "null", nil
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'", nil
	case uuid.UUID:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", fmt.Errorf("dataverse: filter: %v has no OData literal", v)
		}
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case time.Time:
		return v.UTC().Format(time.RFC3339), nil
	case Date:
		return v.String(), nil
	}
	if o, ok := v.(interface{ OptionValue() int }); ok {
		return strconv.Itoa(o.OptionValue()), nil
	}
	return "", fmt.Errorf("dataverse: filter: unsupported literal type %T", v)
}

func compare(op, column string, v any) Filter {
	if err := checkColumn(column); err != nil {
		return Filter{err: err}
	}
	lit, err := Literal(v)
	if err != nil {
		return Filter{err: fmt.Errorf("%w (column %s)", err, column)}
	}
	return Filter{text: column + " " + op + " " + lit}
}

// Eq is column eq value.
func Eq(column string, v any) Filter { return compare("eq", column, v) }

// Ne is column ne value.
func Ne(column string, v any) Filter { return compare("ne", column, v) }

// Gt is column gt value.
func Gt(column string, v any) Filter { return compare("gt", column, v) }

// Ge is column ge value.
func Ge(column string, v any) Filter { return compare("ge", column, v) }

// Lt is column lt value.
func Lt(column string, v any) Filter { return compare("lt", column, v) }

// Le is column le value.
func Le(column string, v any) Filter { return compare("le", column, v) }

// IsNull is column eq null.
func IsNull(column string) Filter { return compare("eq", column, nil) }

// NotNull is column ne null.
func NotNull(column string) Filter { return compare("ne", column, nil) }

// LookupEq compares a lookup column (its _name_value property) with a row id.
func LookupEq(lookupColumn string, id GUID) Filter {
	return compare("eq", LookupValue(lookupColumn), id)
}

// LookupValue is the read-side property of a lookup column: _name_value.
func LookupValue(lookupColumn string) string { return "_" + lookupColumn + "_value" }

// escapeLike makes the LIKE wildcards Dataverse honours inside contains/startswith/endswith (%, _, [)
// match themselves, by enclosing each in brackets.
func escapeLike(s string) string {
	if !strings.ContainsAny(s, "%_[") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '%', '_', '[':
			b.WriteByte('[')
			b.WriteRune(r)
			b.WriteByte(']')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func stringFunc(fn, column, s string) Filter {
	if err := checkColumn(column); err != nil {
		return Filter{err: err}
	}
	lit, _ := Literal(escapeLike(s))
	return Filter{text: fn + "(" + column + "," + lit + ")"}
}

// Contains matches rows whose column contains s literally (wildcard characters in s are escaped).
func Contains(column, s string) Filter { return stringFunc("contains", column, s) }

// StartsWith matches rows whose column starts with s literally.
func StartsWith(column, s string) Filter { return stringFunc("startswith", column, s) }

// EndsWith matches rows whose column ends with s literally.
func EndsWith(column, s string) Filter { return stringFunc("endswith", column, s) }

// In matches rows whose column equals one of values, with Dataverse's In query function (one condition
// however many values, unlike a chain of or). Values are strings or numbers.
func In(column string, values ...any) Filter {
	if err := checkColumn(column); err != nil {
		return Filter{err: err}
	}
	if len(values) == 0 {
		return Filter{err: fmt.Errorf("dataverse: filter: In(%s) needs at least one value", column)}
	}
	parts := make([]string, len(values))
	for i, v := range values {
		switch v := v.(type) {
		case string:
			parts[i] = jsonString(v)
		case uuid.UUID:
			parts[i] = jsonString(v.String())
		case int, int32, int64:
			parts[i] = fmt.Sprint(v)
		default:
			if o, ok := v.(interface{ OptionValue() int }); ok {
				parts[i] = strconv.Itoa(o.OptionValue())
				continue
			}
			return Filter{err: fmt.Errorf("dataverse: filter: In(%s): unsupported value type %T", column, v)}
		}
	}
	return Filter{text: "Microsoft.Dynamics.CRM.In(PropertyName='" + column + "',PropertyValues=[" + strings.Join(parts, ",") + "])"}
}

// jsonString renders s as a JSON string; PropertyValues arrays use JSON strings, not OData literals.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func join(op string, fs []Filter) Filter {
	var parts []string
	for _, f := range fs {
		if f.err != nil {
			return f
		}
		if f.text == "" {
			continue
		}
		parts = append(parts, "("+f.text+")")
	}
	switch len(parts) {
	case 0:
		return Filter{}
	case 1:
		return Filter{text: strings.TrimSuffix(strings.TrimPrefix(parts[0], "("), ")")}
	}
	return Filter{text: strings.Join(parts, " "+op+" ")}
}

// And matches rows matching every filter; empty filters are skipped.
func And(fs ...Filter) Filter { return join("and", fs) }

// Or matches rows matching any filter; empty filters are skipped.
func Or(fs ...Filter) Filter { return join("or", fs) }

// Not negates f.
func Not(f Filter) Filter {
	if f.err != nil || f.text == "" {
		return f
	}
	return Filter{text: "not (" + f.text + ")"}
}
