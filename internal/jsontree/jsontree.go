// Package jsontree parses a JSON document once into a tree that callers walk, with a limit on nesting.
// It serves decoders that would otherwise call json.Unmarshal level by level — which scans each level's
// whole input again, so a deeply nested document costs time and memory quadratic in its depth — and
// readers that must see what encoding/json hides (duplicate members, member names in another case, a
// second value after the first).
package jsontree

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxDepth bounds how deeply a document may nest, and MaxValues how many values it may hold: every value
// is a Node of about a hundred bytes, so a megabyte of "[0,0,0,…]" would otherwise take tens of
// megabytes. A Dataverse message of 256 KB holds a few thousand.
const (
	MaxDepth  = 64
	MaxValues = 100_000
)

// Kind is what one JSON value is.
type Kind uint8

// The kinds of value.
const (
	Null Kind = iota
	Bool
	Number
	String
	Object
	Array
)

// Node is one value of a document, parsed once.
type Node struct {
	Kind Kind
	// Raw is the value as sent: a sub-slice of the decoder's own copy of the body.
	Raw []byte
	// Text is a string's decoded text, a number's digits, or "true"/"false".
	Text string
	// Keys and Items are an object's member names and values in the order sent, or an array's items.
	Keys  []string
	Items []*Node
}

// Member returns the object member called name: the last one sent, matched exactly or, as
// encoding/json does, case-insensitively; nil when there is none or v is not an object.
func (v *Node) Member(name string) *Node {
	if v == nil || v.Kind != Object {
		return nil
	}
	var found *Node
	for i, k := range v.Keys {
		if k == name || strings.EqualFold(k, name) {
			found = v.Items[i]
		}
	}
	return found
}

// Str returns a string value's text; ok is false for any other Kind (a missing member included).
func (v *Node) Str() (string, bool) {
	if v == nil || v.Kind != String {
		return "", false
	}
	return v.Text, true
}

// IsNull reports a member that is absent or null.
func (v *Node) IsNull() bool { return v == nil || v.Kind == Null }

// ErrTooDeep is returned for a document nested deeper than MaxDepth, ErrTooLarge for one of more than
// MaxValues values.
var (
	ErrTooDeep  = fmt.Errorf("it nests deeper than %d levels", MaxDepth)
	ErrTooLarge = fmt.Errorf("it holds more than %d values", MaxValues)
)

// Parse parses body in one pass into a tree, refusing anything that is not exactly one JSON value
// (surrounding white space aside) or that nests deeper than MaxDepth.
func Parse(body []byte) (*Node, error) {
	p := parser{b: body}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.errorf("unexpected %q after the JSON value", p.b[p.i])
	}
	return v, nil
}

type parser struct {
	b      []byte
	i      int
	values int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (*Node, error) {
	if p.values++; p.values > MaxValues {
		return nil, ErrTooLarge
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end of the body")
	}
	start := p.i
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return nil, ErrTooDeep
		}
		var v *Node
		var err error
		if c == '{' {
			v, err = p.object(depth + 1)
		} else {
			v, err = p.array(depth + 1)
		}
		if err != nil {
			return nil, err
		}
		v.Raw = p.b[start:p.i]
		return v, nil
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &Node{Kind: String, Raw: p.b[start:p.i], Text: s}, nil
	case c == 't':
		return p.literal("true", Bool)
	case c == 'f':
		return p.literal("false", Bool)
	case c == 'n':
		return p.literal("null", Null)
	case c == '-' || (c >= '0' && c <= '9'):
		if err := p.number(); err != nil {
			return nil, err
		}
		raw := p.b[start:p.i]
		return &Node{Kind: Number, Raw: raw, Text: string(raw)}, nil
	default:
		return nil, p.errorf("unexpected %q", c)
	}
}

func (p *parser) literal(word string, kind Kind) (*Node, error) {
	if !strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(word))]), word) {
		return nil, p.errorf("invalid literal")
	}
	raw := p.b[p.i : p.i+len(word)]
	p.i += len(word)
	v := &Node{Kind: kind, Raw: raw}
	if kind == Bool {
		v.Text = word
	}
	return v, nil
}

// number checks JSON's number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func (p *parser) number() error {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case digits() == 0:
		return p.errorf("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return p.errorf("invalid number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return p.errorf("invalid number")
		}
	}
	return nil
}

// string reads a quoted string at p.i. A string without escapes is taken as it is (invalid UTF-8
// replaced, as encoding/json does); one with escapes is decoded by encoding/json, which reads only it.
func (p *parser) string() (string, error) {
	start := p.i
	p.i++
	escaped := false
	for {
		if p.i >= len(p.b) {
			return "", p.errorf("unterminated string")
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			quoted := p.b[start:p.i]
			if !escaped {
				inner := quoted[1 : len(quoted)-1]
				if utf8.Valid(inner) {
					return string(inner), nil
				}
			}
			var s string
			if err := json.Unmarshal(quoted, &s); err != nil {
				return "", errors.New("invalid string: " + err.Error())
			}
			return s, nil
		case c == '\\':
			escaped = true
			p.i++
			if p.i >= len(p.b) {
				return "", p.errorf("unterminated string")
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if p.i+4 >= len(p.b) {
					return "", p.errorf("unterminated string")
				}
				for _, h := range p.b[p.i+1 : p.i+5] {
					if !isHex(h) {
						return "", p.errorf("invalid \\u escape")
					}
				}
				p.i += 5
			default:
				return "", p.errorf("invalid escape")
			}
		case c < 0x20:
			return "", p.errorf("control character in a string")
		default:
			p.i++
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (p *parser) object(depth int) (*Node, error) {
	v := &Node{Kind: Object}
	p.i++ // {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errorf("expected a member name")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errorf("expected ':' after a member name")
		}
		p.i++
		item, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.Keys = append(v.Keys, key)
		v.Items = append(v.Items, item)
		p.space()
		if p.i >= len(p.b) {
			return nil, p.errorf("unexpected end of the body")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return v, nil
		default:
			return nil, p.errorf("expected ',' or '}'")
		}
	}
}

func (p *parser) array(depth int) (*Node, error) {
	v := &Node{Kind: Array}
	p.i++ // [
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		item, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.Items = append(v.Items, item)
		p.space()
		if p.i >= len(p.b) {
			return nil, p.errorf("unexpected end of the body")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return v, nil
		default:
			return nil, p.errorf("expected ',' or ']'")
		}
	}
}
