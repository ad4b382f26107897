package dataversetest

import (
	"fmt"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
)

// $expand, as the Web API serves it ("Join tables using OData"): a single-valued navigation property (a
// lookup, named by its column as the connector installs it) returns the related row as an object, null
// when the lookup is empty; a collection-valued one (the one-to-many relationship, named by its
// ReferencedEntityNavigationPropertyName, which the connector's install sets to the relationship's name)
// returns the related rows as an array. Inside the parentheses, options are separated by semicolons:
// $select, $filter (collection-valued only) and a nested $expand. $orderby and $top are refused here: the
// simulator does not model them inside $expand. Dataverse allows at most 15 $expand options in a query.

// expansion is one parsed $expand item.
type expansion struct {
	nav    string
	sel    string
	filter string
	nested []expansion
}

const maxExpands = 15

// parseExpand parses the text of a $expand option.
func parseExpand(text string) ([]expansion, *apiError) {
	var out []expansion
	for _, item := range splitTop(text, ',') {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, expandError("an empty $expand item")
		}
		e := expansion{nav: item}
		if i := strings.IndexByte(item, '('); i >= 0 {
			if !strings.HasSuffix(item, ")") {
				return nil, expandError("unbalanced parentheses in " + item)
			}
			e.nav = strings.TrimSpace(item[:i])
			for _, o := range splitTop(item[i+1:len(item)-1], ';') {
				name, value, ok := strings.Cut(strings.TrimSpace(o), "=")
				if !ok {
					return nil, expandError("the option " + o + " has no value")
				}
				switch name {
				case "$select":
					e.sel = value
				case "$filter":
					e.filter = value
				case "$expand":
					nested, err := parseExpand(value)
					if err != nil {
						return nil, err
					}
					e.nested = nested
				default:
					return nil, expandError("the option " + name + " inside $expand is not supported by the simulator")
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func expandError(why string) *apiError {
	return &apiError{status: 400, code: "0x80060888", message: "Syntax error in $expand: " + why + "."}
}

// countExpands is the number of $expand options, nested ones included.
func countExpands(es []expansion) int {
	n := len(es)
	for _, e := range es {
		n += countExpands(e.nested)
	}
	return n
}

// splitTop splits s at sep outside parentheses and quoted literals.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// expandRequested parses o's $expand (nil when there is none) and checks it against t.
func (s *Server) expandRequested(o op, t *table) ([]expansion, *apiError) {
	text := o.query.Get("$expand")
	if text == "" {
		return nil, nil
	}
	es, e := parseExpand(text)
	if e != nil {
		return nil, e
	}
	if countExpands(es) > maxExpands {
		return nil, &apiError{status: 400, code: "0x0", message: fmt.Sprintf("The query has more than %d $expand options.", maxExpands)}
	}
	return es, s.checkExpand(t, es)
}

// checkExpand resolves every navigation property and option of es on t before any row is read.
func (s *Server) checkExpand(t *table, es []expansion) *apiError {
	for _, e := range es {
		target, _, many := s.navigation(t, e.nav)
		if target == nil {
			return unknownProperty(t, e.nav)
		}
		if _, err := selection(target, e.sel); err != nil {
			return err
		}
		if e.filter != "" {
			if !many {
				return expandError("$filter applies to collection-valued navigation properties only, not " + e.nav)
			}
			if _, err := parseTableFilter(target, e.filter); err != nil {
				return err
			}
		}
		if err := s.checkExpand(target, e.nested); err != nil {
			return err
		}
	}
	return nil
}

// navigation resolves a navigation property of t: a lookup column of t (single-valued: the table it points
// at), or a one-to-many relationship from t (collection-valued: the referencing table and its lookup
// column). It returns a nil table when t has no such property.
func (s *Server) navigation(t *table, nav string) (target *table, column string, many bool) {
	if c, ok := t.cols[nav]; ok && c.Type == dataverse.TypeLookup {
		return s.tables[c.Target], "", false
	}
	for _, other := range s.tables {
		for _, c := range other.cols {
			if c.Type == dataverse.TypeLookup && c.Target == t.def.LogicalName && dataverse.RelationshipName(t.def.LogicalName, other.def.LogicalName, c.LogicalName) == nav {
				return other, c.LogicalName, true
			}
		}
	}
	return nil, "", false
}

// expand adds the expanded navigation properties of r (a row of t) to its rendering out. The request was
// checked (checkExpand), so the properties resolve.
func (s *Server) expand(t *table, r *record, out map[string]any, es []expansion, formatted bool) {
	for _, e := range es {
		target, column, many := s.navigation(t, e.nav)
		sel, _ := selection(target, e.sel)
		if !many {
			id, _ := r.values[e.nav].(string)
			related := target.rows[strings.ToLower(id)]
			if related == nil || r.lookupTables[e.nav] != target.def.LogicalName {
				out[e.nav] = nil
				continue
			}
			row := s.render(target, related, sel, formatted)
			s.expand(target, related, row, e.nested, formatted)
			out[e.nav] = row
			continue
		}
		var f *Filter
		if e.filter != "" {
			f, _ = parseTableFilter(target, e.filter)
		}
		rows := []any{}
		for _, id := range target.order {
			other := target.rows[id]
			if ref, _ := other.values[column].(string); !strings.EqualFold(ref, r.id) || (f != nil && !f.Match(other.property)) {
				continue
			}
			row := s.render(target, other, sel, formatted)
			s.expand(target, other, row, e.nested, formatted)
			rows = append(rows, row)
		}
		out[e.nav] = rows
	}
}

// expandedRows is the number of rows a rendered body holds besides its own: the rows its $expand added,
// for the execution time the cost model gives it.
func expandedRows(body map[string]any) int {
	n := 0
	for _, v := range body {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["@odata.etag"]; ok {
				n += 1 + expandedRows(x)
			}
		case []any:
			for _, item := range x {
				if m, ok := item.(map[string]any); ok {
					if _, ok := m["@odata.etag"]; ok {
						n += 1 + expandedRows(m)
					}
				}
			}
		}
	}
	return n
}
