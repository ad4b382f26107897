package dataversetest

import (
	"slices"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The lookup index: a query filtering on a lookup column (_x_value eq id, an or of them, In) or on the
// primary key reads only the rows the index names instead of evaluating the filter over every row of the
// table, as Dataverse's own indexes on lookup columns do. It only narrows: every candidate is still
// matched against the whole filter, and the candidates are returned in the table's row order, so a query
// answers exactly what the scan would (lookupindex_test.go checks this against the scan).

// lookupIndex maps a lookup column's logical name to its values (lowercase row ids) and, for each, the ids
// of the rows that hold it.
type lookupIndex map[string]map[string]map[string]struct{}

// indexLookups and unindexLookups keep the lookup index in step with a row; they run wherever the
// alternate-key indexes are kept (indexRow, unindexRow).
func (t *table) indexLookups(r *record) {
	for name, v := range r.values {
		s, ok := v.(string)
		if !ok || s == "" || t.cols[name].Type != dataverse.TypeLookup {
			continue
		}
		byValue := t.lookups[name]
		if byValue == nil {
			byValue = map[string]map[string]struct{}{}
			t.lookups[name] = byValue
		}
		key := strings.ToLower(s)
		ids := byValue[key]
		if ids == nil {
			ids = map[string]struct{}{}
			byValue[key] = ids
		}
		ids[r.id] = struct{}{}
	}
}

func (t *table) unindexLookups(r *record) {
	for name, v := range r.values {
		s, ok := v.(string)
		if !ok || s == "" {
			continue
		}
		key := strings.ToLower(s)
		if ids := t.lookups[name][key]; ids != nil {
			delete(ids, r.id)
			if len(ids) == 0 {
				delete(t.lookups[name], key)
			}
		}
	}
}

// candidates returns the rows that can match f, in the table's row order, when the filter narrows them
// through the lookup index or the primary key (ok false: every row must be scanned). The rows still have
// to be matched against f.
func (t *table) candidates(f *Filter) ([]*record, bool) {
	ids, ok := t.narrow(f.root)
	if !ok {
		return nil, false
	}
	rows := make([]*record, 0, len(ids))
	for id := range ids {
		if r := t.rows[id]; r != nil {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *record) int { return compareSeq(a.seq, b.seq) })
	return rows, true
}

func compareSeq(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// narrow returns the ids of the rows a filter node can be true for, when the index knows them: an equality
// on a lookup column or the primary key, an In on one, an and with such an operand (its smallest), an or
// whose every operand is such.
func (t *table) narrow(n filterNode) (map[string]struct{}, bool) {
	switch n := n.(type) {
	case *filterCompare:
		if n.op != fopEq {
			return nil, false
		}
		key, ok := indexKey(n.lit)
		if !ok {
			return nil, false
		}
		return t.lookupIDs(n.col, []string{key})
	case *filterIn:
		if n.negate {
			return nil, false
		}
		keys := make([]string, 0, len(n.values))
		for _, lit := range n.values {
			key, ok := indexKey(lit)
			if !ok {
				return nil, false
			}
			keys = append(keys, key)
		}
		return t.lookupIDs(n.col, keys)
	case *filterLogical:
		var best map[string]struct{}
		found := false
		for _, x := range n.operands {
			ids, ok := t.narrow(x)
			switch {
			case n.or && !ok:
				return nil, false
			case n.or:
				if best == nil {
					best = map[string]struct{}{}
				}
				for id := range ids {
					best[id] = struct{}{}
				}
				found = true
			case ok && (!found || len(ids) < len(best)):
				best, found = ids, true
			}
		}
		return best, found
	}
	return nil, false
}

// indexKey is the index's key for a literal an indexed column is compared with: a GUID, or a text the
// column's values (canonical lowercase GUIDs) can equal only if it is their lowercase (ASCII: the
// comparison folds case, and no other character folds to a hexadecimal digit).
func indexKey(lit filterLiteral) (string, bool) {
	switch lit.kind {
	case flitGUID:
		return strings.ToLower(lit.s), true
	case flitString:
		for i := 0; i < len(lit.s); i++ {
			if lit.s[i] >= 0x80 {
				return "", false
			}
		}
		return strings.ToLower(lit.s), true
	}
	return "", false
}

// lookupIDs returns the ids of the rows whose property (a lookup's _name_value, or the primary key) holds
// one of keys; ok is false for any other property.
func (t *table) lookupIDs(property string, keys []string) (map[string]struct{}, bool) {
	ids := map[string]struct{}{}
	if property == t.def.PrimaryKey() {
		for _, k := range keys {
			if t.rows[k] != nil {
				ids[k] = struct{}{}
			}
		}
		return ids, true
	}
	name, ok := strings.CutPrefix(property, "_")
	if name, ok = strings.CutSuffix(name, "_value"); !ok || t.cols[name].Type != dataverse.TypeLookup {
		return nil, false
	}
	for _, k := range keys {
		for id := range t.lookups[name][k] {
			ids[id] = struct{}{}
		}
	}
	return ids, true
}

// matching returns the rows f matches (every row for nil), in the table's row order: through the index
// when f narrows them, else by a scan.
func (t *table) matching(f *Filter) []*record {
	if f != nil {
		if cand, ok := t.candidates(f); ok {
			rows := cand[:0]
			for _, r := range cand {
				if f.Match(r.property) {
					rows = append(rows, r)
				}
			}
			return rows
		}
	}
	return t.scan(f)
}

// scan matches f against every row.
func (t *table) scan(f *Filter) []*record {
	var rows []*record
	for _, id := range t.order {
		r := t.rows[id]
		if f == nil || f.Match(r.property) {
			rows = append(rows, r)
		}
	}
	return rows
}
