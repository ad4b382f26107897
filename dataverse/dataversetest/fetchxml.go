package dataversetest

import (
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The subset of FetchXml the simulator's pages run (pages.go): the entity, its filters (and/or, nested)
// of conditions on the entity's own columns, and its orders. A condition or a link-entity it cannot
// evaluate is reported in words (query.unsupported) and leaves the rows unfiltered by it, so a page says
// what it does not do instead of showing a different answer silently.

type fetchDoc struct {
	XMLName xml.Name    `xml:"fetch"`
	Top     string      `xml:"top,attr"`
	Count   string      `xml:"count,attr"`
	Entity  fetchEntity `xml:"entity"`
}

type fetchEntity struct {
	Name    string        `xml:"name,attr"`
	Orders  []fetchOrder  `xml:"order"`
	Filters []fetchFilter `xml:"filter"`
	Links   []fetchLink   `xml:"link-entity"`
}

type fetchOrder struct {
	Attribute  string `xml:"attribute,attr"`
	Alias      string `xml:"alias,attr"`
	Descending string `xml:"descending,attr"`
}

type fetchFilter struct {
	Type       string           `xml:"type,attr"`
	Conditions []fetchCondition `xml:"condition"`
	Filters    []fetchFilter    `xml:"filter"`
}

type fetchCondition struct {
	Attribute  string   `xml:"attribute,attr"`
	EntityName string   `xml:"entityname,attr"`
	Operator   string   `xml:"operator,attr"`
	Value      *string  `xml:"value,attr"`
	Values     []string `xml:"value"`
}

type fetchLink struct {
	Name  string `xml:"name,attr"`
	Alias string `xml:"alias,attr"`
}

// query is a FetchXml query made ready to run against one table of the store.
type query struct {
	t           *table
	match       func(*record) bool
	less        func(a, b *record) bool
	top         int
	unsupported []string
}

// compileFetch reads fetchXML for the store. The caller holds s.mu.
func (s *Server) compileFetch(fetchXML string) (*query, error) {
	var doc fetchDoc
	if err := xml.Unmarshal([]byte(fetchXML), &doc); err != nil {
		return nil, fmt.Errorf("the view's FetchXml could not be read: %v", err)
	}
	t := s.tables[doc.Entity.Name]
	if t == nil {
		return nil, fmt.Errorf("the view queries table %q, which does not exist", doc.Entity.Name)
	}
	q := &query{t: t}
	for _, l := range doc.Entity.Links {
		q.unsupported = append(q.unsupported, fmt.Sprintf("a link to %s (link-entity %s): its conditions are not applied and its columns are empty", l.Name, l.Alias))
	}
	var parts []func(*record) bool
	for _, f := range doc.Entity.Filters {
		parts = append(parts, s.compileFilter(q, f))
	}
	q.match = func(r *record) bool {
		for _, p := range parts {
			if !p(r) {
				return false
			}
		}
		return true
	}
	var orders []orderItem
	for _, o := range doc.Entity.Orders {
		if _, ok := t.cols[o.Attribute]; !ok || o.Alias != "" {
			q.unsupported = append(q.unsupported, fmt.Sprintf("an order on %q, which the sandbox does not sort by", o.Attribute+o.Alias))
			continue
		}
		orders = append(orders, orderItem{prop: o.Attribute, desc: o.Descending == "true" || o.Descending == "1"})
	}
	q.less = func(a, b *record) bool { return lessFetch(orders, a, b) }
	for _, n := range []string{doc.Top, doc.Count} {
		if v, err := strconv.Atoi(n); err == nil && v > 0 && (q.top == 0 || v < q.top) {
			q.top = v
		}
	}
	return q, nil
}

// run returns the rows the query selects, in its order. The caller holds s.mu.
func (q *query) run(extra func(*record) bool) []*record {
	var rows []*record
	for _, id := range q.t.order {
		r := q.t.rows[id]
		if r != nil && q.match(r) && (extra == nil || extra(r)) {
			rows = append(rows, r)
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return q.less(rows[i], rows[j]) })
	if q.top > 0 && len(rows) > q.top {
		rows = rows[:q.top]
	}
	return rows
}

func lessFetch(orders []orderItem, a, b *record) bool {
	for _, o := range orders {
		c := compareValues(a.values[o.prop], b.values[o.prop])
		if c == 0 {
			continue
		}
		if o.desc {
			return c > 0
		}
		return c < 0
	}
	return false
}

func (s *Server) compileFilter(q *query, f fetchFilter) func(*record) bool {
	var parts []func(*record) bool
	for _, c := range f.Conditions {
		if p := s.compileCondition(q, c); p != nil {
			parts = append(parts, p)
		}
	}
	for _, sub := range f.Filters {
		parts = append(parts, s.compileFilter(q, sub))
	}
	or := strings.EqualFold(f.Type, "or")
	return func(r *record) bool {
		if len(parts) == 0 {
			return true
		}
		for _, p := range parts {
			if p(r) == or {
				return or
			}
		}
		return !or
	}
}

// compileCondition returns the condition's test, or nil (and a note in q) when the sandbox cannot
// evaluate it.
func (s *Server) compileCondition(q *query, c fetchCondition) func(*record) bool {
	skip := func(why string) func(*record) bool {
		q.unsupported = append(q.unsupported, fmt.Sprintf("the condition %s %s (%s): rows are not filtered by it", c.Attribute, c.Operator, why))
		return nil
	}
	if c.EntityName != "" {
		return skip("on a linked table")
	}
	col, ok := q.t.cols[c.Attribute]
	if !ok {
		return skip("no such column")
	}
	name := c.Attribute
	raw := c.Values
	if c.Value != nil {
		raw = append([]string{*c.Value}, raw...)
	}
	values := make([]any, 0, len(raw))
	for _, v := range raw {
		if strings.Contains(c.Operator, "-x-") {
			break // the value is a count (next-x-days), not a value of the column
		}
		x, err := fetchValue(col, v)
		if err != nil {
			return skip(err.Error())
		}
		values = append(values, x)
	}
	one := func() (any, bool) {
		if len(values) == 0 {
			return nil, false
		}
		return values[0], true
	}
	cmp := func(test func(int) bool) func(*record) bool {
		want, ok := one()
		if !ok {
			return nil
		}
		return func(r *record) bool {
			v := r.values[name]
			return v != nil && test(compareValues(v, want))
		}
	}
	now := s.now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	count := func() (int, bool) {
		if len(raw) == 0 {
			return 0, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(raw[0]))
		return n, err == nil
	}
	between := func(from, to time.Time) func(*record) bool {
		return func(r *record) bool {
			v, ok := r.values[name].(time.Time)
			return ok && !v.Before(from) && v.Before(to)
		}
	}
	var test func(*record) bool
	switch c.Operator {
	case "eq":
		test = cmp(func(x int) bool { return x == 0 })
	case "ne", "neq":
		test = cmp(func(x int) bool { return x != 0 })
	case "lt":
		test = cmp(func(x int) bool { return x < 0 })
	case "le":
		test = cmp(func(x int) bool { return x <= 0 })
	case "gt":
		test = cmp(func(x int) bool { return x > 0 })
	case "ge":
		test = cmp(func(x int) bool { return x >= 0 })
	case "null":
		return func(r *record) bool { return r.values[name] == nil }
	case "not-null":
		return func(r *record) bool { return r.values[name] != nil }
	case "in", "not-in":
		in := c.Operator == "in"
		return func(r *record) bool {
			v := r.values[name]
			if v == nil {
				return false
			}
			for _, w := range values {
				if compareValues(v, w) == 0 {
					return in
				}
			}
			return !in
		}
	case "like", "not-like", "begins-with", "not-begin-with", "ends-with", "not-end-with":
		if len(raw) == 0 || kindOf(col) != KindString {
			return skip("a text pattern on a column that is not text")
		}
		pattern := strings.ToLower(raw[0])
		switch c.Operator {
		case "begins-with", "not-begin-with":
			pattern += "%"
		case "ends-with", "not-end-with":
			pattern = "%" + pattern
		}
		negate := strings.HasPrefix(c.Operator, "not-")
		return func(r *record) bool {
			v, ok := r.values[name].(string)
			return ok && likeMatch(strings.ToLower(v), pattern) != negate
		}
	case "eq-userid", "ne-userid":
		user := s.opts.UserID.String()
		eq := c.Operator == "eq-userid"
		return func(r *record) bool {
			v, ok := r.values[name].(string)
			return ok && strings.EqualFold(v, user) == eq
		}
	case "today":
		test = between(day, day.AddDate(0, 0, 1))
	case "yesterday":
		test = between(day.AddDate(0, 0, -1), day)
	case "tomorrow":
		test = between(day.AddDate(0, 0, 1), day.AddDate(0, 0, 2))
	case "on-or-before", "on-or-after":
		want, ok := one()
		at, isTime := want.(time.Time)
		if !ok || !isTime {
			return skip("a date is expected")
		}
		d := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
		if c.Operator == "on-or-before" {
			test = between(time.Time{}, d.AddDate(0, 0, 1))
		} else {
			test = between(d, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		}
	case "next-x-days", "last-x-days", "next-x-hours", "last-x-hours", "olderthan-x-days", "olderthan-x-hours", "olderthan-x-minutes":
		n, ok := count()
		if !ok {
			return skip("a whole number is expected")
		}
		switch c.Operator {
		case "next-x-days":
			test = between(now, day.AddDate(0, 0, n+1))
		case "last-x-days":
			test = between(day.AddDate(0, 0, -n), now.Add(time.Nanosecond))
		case "next-x-hours":
			test = between(now, now.Add(time.Duration(n)*time.Hour))
		case "last-x-hours":
			test = between(now.Add(-time.Duration(n)*time.Hour), now.Add(time.Nanosecond))
		case "olderthan-x-days":
			test = between(time.Time{}, now.AddDate(0, 0, -n))
		case "olderthan-x-hours":
			test = between(time.Time{}, now.Add(-time.Duration(n)*time.Hour))
		case "olderthan-x-minutes":
			test = between(time.Time{}, now.Add(-time.Duration(n)*time.Minute))
		}
	default:
		return skip("an operator the sandbox does not evaluate")
	}
	if test == nil {
		return skip("a value is expected")
	}
	return test
}

// fetchValue reads a condition's value as the column stores it.
func fetchValue(c dataverse.Column, v string) (any, error) {
	v = strings.TrimSpace(v)
	switch kindOf(c) {
	case KindString:
		return v, nil
	case KindInt:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", v)
		}
		return n, nil
	case KindFloat:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", v)
		}
		return f, nil
	case KindBool:
		switch strings.ToLower(v) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a yes or no", v)
	case KindTime:
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, v); err == nil {
				return t.UTC(), nil
			}
		}
		return nil, fmt.Errorf("%q is not a date", v)
	}
	id, err := uuid.Parse(strings.Trim(v, "{}"))
	if err != nil {
		return nil, fmt.Errorf("%q is not an id", v)
	}
	return id.String(), nil
}

// likeMatch matches s against a SQL LIKE pattern with % wildcards (both already lower case).
func likeMatch(s, pattern string) bool {
	parts := strings.Split(pattern, "%")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}
