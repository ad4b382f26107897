package connector

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxEventDepth bounds how deeply a message's JSON may nest. Dataverse's own messages nest about ten
// levels (context → InputParameters → Target → Attributes → value → an entity's Attributes…); a body
// nested deeper was not written by Dataverse.
const maxEventDepth = 64

// jsonKind is the kind of one JSON value.
type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonObject
	jsonArray
)

// jsonNode is one value of a message, parsed once. The event decoder walks this tree instead of calling
// json.Unmarshal at every level: json.Unmarshal scans the whole of its input, so decoding level by level
// re-read every nested entity once per level above it (quadratic in the depth — an attacker's deeply
// nested message cost seconds and hundreds of megabytes before anything checked it).
type jsonNode struct {
	kind jsonKind
	// raw is the value as sent: a sub-slice of the decoder's own copy of the body.
	raw []byte
	// text is a string's decoded text, a number's digits, or "true"/"false".
	text string
	// keys and items are an object's member names and values in the order sent, or an array's items.
	keys  []string
	items []*jsonNode
}

// member returns the object member called name: the last one sent, matched exactly or, as
// encoding/json does, case-insensitively; nil when there is none or v is not an object.
func (v *jsonNode) member(name string) *jsonNode {
	if v == nil || v.kind != jsonObject {
		return nil
	}
	var found *jsonNode
	for i, k := range v.keys {
		if k == name || strings.EqualFold(k, name) {
			found = v.items[i]
		}
	}
	return found
}

// str returns a string value's text; ok is false for any other kind (a missing member included).
func (v *jsonNode) str() (string, bool) {
	if v == nil || v.kind != jsonString {
		return "", false
	}
	return v.text, true
}

// isNull reports a member that is absent or null.
func (v *jsonNode) isNull() bool { return v == nil || v.kind == jsonNull }

// errTooDeep is returned for a body nested deeper than maxEventDepth.
var errTooDeep = fmt.Errorf("it nests deeper than %d levels", maxEventDepth)

// parseJSON parses body in one pass into a tree, refusing anything that is not exactly one JSON value
// (surrounding white space aside) or that nests deeper than maxEventDepth.
func parseJSON(body []byte) (*jsonNode, error) {
	p := jsonParser{b: body}
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

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*jsonNode, error) {
	p.space()
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end of the body")
	}
	start := p.i
	switch c := p.b[p.i]; {
	case c == '{' || c == '[':
		if depth >= maxEventDepth {
			return nil, errTooDeep
		}
		var v *jsonNode
		var err error
		if c == '{' {
			v, err = p.object(depth + 1)
		} else {
			v, err = p.array(depth + 1)
		}
		if err != nil {
			return nil, err
		}
		v.raw = p.b[start:p.i]
		return v, nil
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &jsonNode{kind: jsonString, raw: p.b[start:p.i], text: s}, nil
	case c == 't':
		return p.literal("true", jsonBool)
	case c == 'f':
		return p.literal("false", jsonBool)
	case c == 'n':
		return p.literal("null", jsonNull)
	case c == '-' || (c >= '0' && c <= '9'):
		if err := p.number(); err != nil {
			return nil, err
		}
		raw := p.b[start:p.i]
		return &jsonNode{kind: jsonNumber, raw: raw, text: string(raw)}, nil
	default:
		return nil, p.errorf("unexpected %q", c)
	}
}

func (p *jsonParser) literal(word string, kind jsonKind) (*jsonNode, error) {
	if !strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(word))]), word) {
		return nil, p.errorf("invalid literal")
	}
	raw := p.b[p.i : p.i+len(word)]
	p.i += len(word)
	v := &jsonNode{kind: kind, raw: raw}
	if kind == jsonBool {
		v.text = word
	}
	return v, nil
}

// number checks JSON's number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func (p *jsonParser) number() error {
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
func (p *jsonParser) string() (string, error) {
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

func (p *jsonParser) object(depth int) (*jsonNode, error) {
	v := &jsonNode{kind: jsonObject}
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
		v.keys = append(v.keys, key)
		v.items = append(v.items, item)
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

func (p *jsonParser) array(depth int) (*jsonNode, error) {
	v := &jsonNode{kind: jsonArray}
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
		v.items = append(v.items, item)
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
