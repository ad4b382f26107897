package dataverse

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// GUID is a Dataverse row id (Edm.Guid).
type GUID = uuid.UUID

// ParseGUID parses a row id in any of the usual forms (with or without braces, any case).
func ParseGUID(s string) (GUID, error) {
	id, err := uuid.Parse(strings.Trim(strings.TrimSpace(s), "{}"))
	if err != nil {
		return GUID{}, fmt.Errorf("dataverse: %q is not a row id: %w", s, err)
	}
	return id, nil
}

// ETag is a row version as Dataverse reports it (W/"81359849"). Never compare ETags for order.
type ETag string

// Row is one row as JSON properties: column values, lookups as _name_value, annotations as
// name@annotation. Numbers are json.Number so that whole numbers stay exact. Writes use the same type:
// column values, and lookups as name@odata.bind (see Bind).
type Row map[string]any

// Annotation keys Dataverse adds when a request asks for them.
const (
	AnnotationETag           = "@odata.etag"
	AnnotationFormattedValue = "@OData.Community.Display.V1.FormattedValue"
	AnnotationLookupTable    = "@Microsoft.Dynamics.CRM.lookuplogicalname"
)

// ETag returns the row's version.
func (r Row) ETag() ETag {
	s, _ := r[AnnotationETag].(string)
	return ETag(s)
}

// String returns a text column, "" when null or absent.
func (r Row) String(col string) string {
	switch v := r[col].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// Int returns a whole-number or choice column and whether it had a value.
func (r Row) Int(col string) (int64, bool) {
	switch v := r[col].(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
		if f, err := v.Float64(); err == nil && f == math.Trunc(f) {
			return int64(f), true
		}
	case int:
		return int64(v), true
	case int64:
		return v, true
	case float64:
		return int64(v), true
	}
	return 0, false
}

// Float returns a decimal, money or float column and whether it had a value.
func (r Row) Float(col string) (float64, bool) {
	switch v := r[col].(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	}
	return 0, false
}

// Bool returns a yes/no column and whether it had a value.
func (r Row) Bool(col string) (bool, bool) {
	b, ok := r[col].(bool)
	return b, ok
}

// Time returns a date-time column and whether it had a value.
func (r Row) Time(col string) (time.Time, bool) {
	switch v := r[col].(type) {
	case string:
		t, err := parseTime(v)
		return t, err == nil
	case time.Time:
		return v, true
	}
	return time.Time{}, false
}

// GUID returns a column holding a row id (a primary key, or the _name_value of a lookup).
func (r Row) GUID(col string) (GUID, bool) {
	s, ok := r[col].(string)
	if !ok {
		return GUID{}, false
	}
	id, err := uuid.Parse(s)
	return id, err == nil
}

// Lookup returns the row a lookup column points at, from its _name_value property and annotations.
func (r Row) Lookup(col string) (Ref, bool) {
	prop := LookupValue(col)
	id, ok := r.GUID(prop)
	if !ok {
		return Ref{}, false
	}
	table, _ := r[prop+AnnotationLookupTable].(string)
	name, _ := r[prop+AnnotationFormattedValue].(string)
	return Ref{Table: table, ID: id, Name: name}, true
}

// Expanded returns the row a lookup's $expand read (Expand): ok is false when the lookup was empty or not
// expanded.
func (r Row) Expanded(nav string) (Row, bool) {
	m, ok := r[nav].(map[string]any)
	return Row(m), ok
}

// ExpandedRows returns the rows a one-to-many relationship's $expand read (Expand).
func (r Row) ExpandedRows(nav string) []Row {
	list, _ := r[nav].([]any)
	out := make([]Row, 0, len(list))
	for _, item := range list {
		if m, ok := item.(map[string]any); ok {
			out = append(out, Row(m))
		}
	}
	return out
}

// FormattedValue returns the label Dataverse shows for a column (choice label, lookup name, localized date),
// present when the request asked for formatted values.
func (r Row) FormattedValue(col string) string {
	s, _ := r[col+AnnotationFormattedValue].(string)
	return s
}

// Ref points at a row of another table.
type Ref struct {
	Table string // logical name of the target table, when known
	ID    GUID
	Name  string // the target's primary name, when Dataverse sent it
}

// IsZero reports an empty reference.
func (r Ref) IsZero() bool { return r.ID == GUID{} }

// Bind returns the value that sets a lookup on write: "/<entity set>(<id>)". Use it as
// row[lookupNavigationProperty+"@odata.bind"], or with SetLookup.
func Bind(entitySet string, id GUID) string { return "/" + entitySet + "(" + id.String() + ")" }

// BindKey returns the value that sets a lookup to the row with an alternate key on write:
// "/<entity set>(<key>)". The row may be written earlier in the same $batch.
func BindKey(entitySet string, key Key) (string, error) {
	p, err := keyPath(entitySet, key)
	if err != nil {
		return "", err
	}
	return "/" + p, nil
}

// SetLookup sets a lookup column in a row being written; a zero id clears it.
func (r Row) SetLookup(navigationProperty, entitySet string, id GUID) {
	if id == (GUID{}) {
		r[navigationProperty+"@odata.bind"] = nil
		return
	}
	r[navigationProperty+"@odata.bind"] = Bind(entitySet, id)
}

// Key is an alternate key: column (or _lookup_value) → value. Values are rendered as typed literals like
// filter values, so nothing in them can change the address.
type Key map[string]any

// segment renders the key as it goes in a URL: (col1=lit1,col2=lit2), columns sorted, each literal
// percent-encoded.
func (k Key) segment() (string, error) {
	if len(k) == 0 {
		return "", fmt.Errorf("dataverse: empty alternate key")
	}
	cols := make([]string, 0, len(k))
	for c := range k {
		if err := checkColumn(c); err != nil {
			return "", err
		}
		cols = append(cols, c)
	}
	sort.Strings(cols)
	parts := make([]string, len(cols))
	for i, c := range cols {
		lit, err := Literal(k[c])
		if err != nil {
			return "", fmt.Errorf("dataverse: key column %s: %w", c, err)
		}
		// Percent-encode what the path needs, but keep the quotes readable as in Microsoft's examples:
		// accounts(accountnumber='ABC123').
		parts[i] = c + "=" + strings.ReplaceAll(url.PathEscape(lit), "%27", "'")
	}
	return "(" + strings.Join(parts, ",") + ")", nil
}

// rowPath is "<set>(<id>)".
func rowPath(entitySet string, id GUID) (string, error) {
	if err := checkEntitySet(entitySet); err != nil {
		return "", err
	}
	return entitySet + "(" + id.String() + ")", nil
}

// keyPath is "<set>(<key>)".
func keyPath(entitySet string, key Key) (string, error) {
	if err := checkEntitySet(entitySet); err != nil {
		return "", err
	}
	seg, err := key.segment()
	if err != nil {
		return "", err
	}
	return entitySet + seg, nil
}

func checkEntitySet(name string) error {
	if !columnName.MatchString(name) {
		return fmt.Errorf("dataverse: %q is not an entity set name", name)
	}
	return nil
}

// idFromEntityID extracts the row id from the OData-EntityId header of a create: …/accounts(<guid>). A
// header naming the row by key values (an upsert by alternate key) has no id, and is refused rather than
// read: a GUID in it may be a lookup's.
func idFromEntityID(v string) (GUID, error) {
	open := strings.LastIndexByte(v, '(')
	end := strings.LastIndexByte(v, ')')
	if open < 0 || end < open || end != len(v)-1 {
		return GUID{}, fmt.Errorf("dataverse: OData-EntityId %q has no row id", v)
	}
	id, err := uuid.Parse(v[open+1 : end])
	if err != nil {
		return GUID{}, fmt.Errorf("dataverse: OData-EntityId %q has no row id: %w", v, err)
	}
	return id, nil
}

// parseTime reads the date-time forms Dataverse returns: RFC 3339 (with or without fraction) and date-only.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("dataverse: %q is not a date-time", s)
}

// formatInt is strconv.FormatInt for int64 values in messages and keys.
func formatInt(i int64) string { return strconv.FormatInt(i, 10) }

// OrNull is s, or null (nil) for the empty string: for optional text columns that should read as empty,
// not as "".
func OrNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}
