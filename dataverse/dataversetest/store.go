package dataversetest

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// table is one table of the simulated environment: its declaration and its rows.
type table struct {
	def   dataverse.Table
	cols  map[string]dataverse.Column // every column by logical name, system columns included
	rows  map[string]*record          // by lowercase id
	order []string                    // ids in creation order, so unordered queries are stable
	keys  []keyDef
	index map[string]map[string]string // key name → encoded key values → row id
	// lookups indexes the lookup columns' values (lookupindex.go).
	lookups lookupIndex
	// nextSeq numbers the rows in the order of order: a row appended to order takes the next number.
	nextSeq int64
	// metadataID is the table's MetadataId, the id in its EntityDefinitions URI.
	metadataID string
	// objectTypeCode is the table's ObjectTypeCode (forms.go).
	objectTypeCode int
}

type keyDef struct {
	name    string
	columns []string // logical names (lookups by column name)
	status  string   // EntityKeyIndexStatus: Active, or Failed when existing rows had duplicates
}

func (k keyDef) active() bool { return k.status == "Active" }

// record is one row. Values are normalised: string, int64, float64, bool, time.Time or nil. A lookup is
// stored under its column name as the target row's id (string) with the target table in lookupTables.
type record struct {
	id           string
	values       map[string]any
	lookupTables map[string]string
	version      int64
	seq          int64 // its place in the table's order (table.nextSeq)
}

func (r *record) clone() *record {
	c := &record{id: r.id, version: r.version, seq: r.seq, values: make(map[string]any, len(r.values)), lookupTables: make(map[string]string, len(r.lookupTables))}
	for k, v := range r.values {
		c.values[k] = v
	}
	for k, v := range r.lookupTables {
		c.lookupTables[k] = v
	}
	return c
}

func newTable(def dataverse.Table) *table {
	t := &table{def: def, cols: map[string]dataverse.Column{}, rows: map[string]*record{}, index: map[string]map[string]string{}, lookups: lookupIndex{}, metadataID: uuid.NewString()}
	for _, c := range def.SystemColumns() {
		t.cols[c.LogicalName] = c
	}
	for _, c := range def.AllColumns() {
		t.cols[c.LogicalName] = c
	}
	for _, k := range def.Keys {
		t.addKey(keyDef{name: k.SchemaName, columns: k.Columns})
	}
	return t
}

// refreshStatus rebuilds the statuscode column after status reasons change.
func (t *table) refreshStatus() {
	c := t.cols["statuscode"]
	c.Options = t.def.AllStatusReasons()
	t.cols["statuscode"] = c
}

// property resolves a Web API property name to a column: plain columns by name, lookups by _name_value.
func (t *table) property(name string) (dataverse.Column, bool) {
	if strings.HasPrefix(name, "_") && strings.HasSuffix(name, "_value") {
		c, ok := t.cols[strings.TrimSuffix(strings.TrimPrefix(name, "_"), "_value")]
		return c, ok && c.Type == dataverse.TypeLookup
	}
	c, ok := t.cols[name]
	return c, ok && c.Type != dataverse.TypeLookup
}

// value returns a property's value for filtering and sorting.
func (r *record) property(name string) any {
	if strings.HasPrefix(name, "_") && strings.HasSuffix(name, "_value") {
		return r.values[strings.TrimSuffix(strings.TrimPrefix(name, "_"), "_value")]
	}
	return r.values[name]
}

func kindOf(c dataverse.Column) Kind {
	switch c.Type {
	case dataverse.TypeString, dataverse.TypeMemo:
		return KindString
	case dataverse.TypeInteger, dataverse.TypeChoice, dataverse.TypeState, dataverse.TypeStatus:
		return KindInt
	case dataverse.TypeDecimal, dataverse.TypeMoney:
		return KindFloat
	case dataverse.TypeBoolean:
		return KindBool
	case dataverse.TypeDateTime:
		return KindTime
	}
	return KindGUID
}

func edmType(c dataverse.Column) string {
	switch kindOf(c) {
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
	}
	return "Edm.Guid"
}

// convert turns a JSON value written by a client into the column's normalised value, or explains why it
// cannot, in the words of Dataverse's payload errors.
func convert(t *table, c dataverse.Column, raw any) (any, *apiError) {
	if raw == nil {
		return nil, nil
	}
	bad := func() *apiError {
		return payloadError(t, fmt.Sprintf("Cannot convert the literal '%v' to the expected type '%s'.", raw, edmType(c)))
	}
	switch kindOf(c) {
	case KindString:
		s, ok := raw.(string)
		if !ok {
			return nil, bad()
		}
		if c.MaxLength > 0 && dataverse.TextLength(s) > c.MaxLength { // UTF-16 code units, as Dataverse counts
			return nil, &apiError{status: 400, code: dataverse.CodeValidation, message: fmt.Sprintf(
				"A validation error occurred.  The length of the '%s' attribute of the '%s' entity exceeded the maximum allowed length of '%d'.",
				c.LogicalName, t.def.LogicalName, c.MaxLength)}
		}
		if s == "" {
			return nil, nil // Dataverse stores empty text as null
		}
		return s, nil
	case KindInt:
		n, ok := raw.(json.Number)
		if !ok {
			return nil, bad()
		}
		i, err := n.Int64()
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			return nil, bad()
		}
		if c.Type == dataverse.TypeInteger && (c.MinValue != 0 || c.MaxValue != 0) && (i < c.MinValue || i > c.MaxValue) {
			return nil, &apiError{status: 400, code: dataverse.CodeValidation, message: fmt.Sprintf(
				"A validation error occurred.  The value %d of '%s' on record of type '%s' is outside the valid range.", i, c.LogicalName, t.def.LogicalName)}
		}
		if len(c.Options) > 0 && !slices.ContainsFunc(c.Options, func(o dataverse.Option) bool { return int64(o.Value) == i }) {
			vals := make([]string, len(c.Options))
			for k, o := range c.Options {
				vals[k] = fmt.Sprint(o.Value)
			}
			return nil, &apiError{status: 400, code: "0x8004431a", message: fmt.Sprintf(
				"A validation error occurred.  The value %d of '%s' on record of type '%s' is outside the valid range. Accepted Values: %s",
				i, c.LogicalName, t.def.LogicalName, strings.Join(vals, ","))}
		}
		return i, nil
	case KindFloat:
		n, ok := raw.(json.Number)
		if !ok {
			return nil, bad()
		}
		f, err := n.Float64()
		if err != nil {
			return nil, bad()
		}
		return f, nil
	case KindBool:
		b, ok := raw.(bool)
		if !ok {
			return nil, bad()
		}
		return b, nil
	case KindTime:
		s, ok := raw.(string)
		if !ok {
			return nil, bad()
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			if tm, err = time.Parse("2006-01-02", s); err != nil {
				return nil, bad()
			}
		}
		return tm.UTC().Truncate(time.Second), nil
	}
	s, ok := raw.(string)
	if !ok {
		return nil, bad()
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return nil, bad()
	}
	return id.String(), nil
}

func payloadError(t *table, detail string) *apiError {
	return &apiError{status: 400, code: dataverse.CodeODataPayload, message: fmt.Sprintf(
		"Error identified in Payload provided by the user for Entity :'%s', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : Microsoft.OData.ODataException: %s",
		t.def.EntitySetName, detail)}
}

// encode renders a key's values (from a row, or from an address) as one index entry; ok is false when a
// key column is null (such rows are not in the key's index, as in Dataverse).
func (k keyDef) encode(values map[string]any) (string, bool) {
	var b strings.Builder
	for _, c := range k.columns {
		switch v := values[c].(type) {
		case nil:
			return "", false
		case string:
			b.WriteString("s:" + strings.ToLower(v)) // key uniqueness follows the collation: case-insensitive
		default:
			fmt.Fprintf(&b, "%T:%v", v, v)
		}
		b.WriteByte(0)
	}
	return b.String(), true
}

// indexRow and unindexRow keep the alternate-key indexes and the lookup index in step with the rows.
func (t *table) indexRow(r *record) {
	for _, k := range t.keys {
		if enc, ok := k.encode(r.values); ok && k.active() {
			t.index[k.name][enc] = r.id
		}
	}
	t.indexLookups(r)
}

func (t *table) unindexRow(r *record) {
	for _, k := range t.keys {
		if enc, ok := k.encode(r.values); ok && t.index[k.name][enc] == r.id {
			delete(t.index[k.name], enc)
		}
	}
	t.unindexLookups(r)
}

// addKey indexes a new alternate key over the existing rows. Duplicates make it Failed, as Dataverse
// cannot build a unique index over duplicate data.
func (t *table) addKey(k keyDef) keyDef {
	idx := map[string]string{}
	k.status = "Active"
	for _, id := range t.order {
		if enc, ok := k.encode(t.rows[id].values); ok {
			if _, dup := idx[enc]; dup {
				k.status = "Failed"
			}
			idx[enc] = id
		}
	}
	t.index[k.name] = idx
	t.keys = append(t.keys, k)
	return k
}

// findByKey returns the row whose key columns equal vals.
func (t *table) findByKey(k keyDef, vals map[string]any) *record {
	enc, ok := k.encode(vals)
	if !ok {
		return nil
	}
	return t.rows[t.index[k.name][enc]]
}

// duplicateKey reports another row with the same values for one of the table's keys.
func (t *table) duplicateKey(r *record) (keyDef, bool) {
	for _, k := range t.keys {
		if !k.active() {
			continue
		}
		if enc, ok := k.encode(r.values); ok {
			if id, taken := t.index[k.name][enc]; taken && id != r.id {
				return k, true
			}
		}
	}
	return keyDef{}, false
}

// undo restores the store after a failed change set: each entry puts back a row as it was (nil: remove it).
type undo struct {
	table *table
	id    string
	prev  *record
}

func (u undo) apply() {
	t := u.table
	cur, exists := t.rows[u.id]
	if exists {
		t.unindexRow(cur)
	}
	if u.prev == nil {
		delete(t.rows, u.id)
		t.order = slices.DeleteFunc(t.order, func(id string) bool { return id == u.id })
		return
	}
	if !exists {
		t.order = append(t.order, u.id)
		u.prev.seq = t.nextSeq
		t.nextSeq++
	}
	t.rows[u.id] = u.prev
	t.indexRow(u.prev)
}
