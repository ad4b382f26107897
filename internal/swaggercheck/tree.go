package swaggercheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The rules walk the document as decoded by encoding/json (maps, slices, strings, float64s,
// bools) rather than as typed structs, so that a wrongly typed value is a problem to report
// instead of an error that stops the walk, and so that every x-ms-* key stays visible.

// object returns v as a JSON object, or nil when it is something else.
func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// text returns v as a JSON string and whether it was one.
func text(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

// asArray returns v as a JSON array, or nil when it is something else.
func asArray(v any) []any {
	a, _ := v.([]any)
	return a
}

// nonEmptyText reports whether v is a string with something other than blanks in it.
func nonEmptyText(v any) bool {
	s, ok := v.(string)
	return ok && strings.TrimSpace(s) != ""
}

// sortedKeys returns the keys of m in byte order, so problems come out in a stable order.
func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// field names a member of the object at loc, in the dotted form problems use
// (`paths./v1/jobs.get`).
func field(loc, key string) string {
	if loc == "" {
		return key
	}
	return loc + "." + key
}

// element names an item of the array at loc (`parameters[0]`).
func element(loc string, i int) string {
	return loc + "[" + strconv.Itoa(i) + "]"
}

// pointerLocation turns an RFC 6901 pointer (`/paths/~1v1~1jobs/get/parameters/0`) into the
// dotted location problems use (`paths./v1/jobs.get.parameters[0]`), reading root to tell array
// indexes from object keys.
func pointerLocation(root map[string]any, pointer string) string {
	if pointer == "" || pointer == "/" {
		return "document"
	}
	var loc string
	var node any = root
	for _, seg := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		seg = unescapePointer(seg)
		switch n := node.(type) {
		case []any:
			i, err := strconv.Atoi(seg)
			if err == nil && i >= 0 && i < len(n) {
				loc, node = element(loc, i), n[i]
				continue
			}
			node = nil
		case map[string]any:
			node = n[seg]
		default:
			node = nil
		}
		loc = field(loc, seg)
	}
	return loc
}

func unescapePointer(seg string) string {
	return strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
}

// lookup resolves a local JSON reference (`#/definitions/Job`) against root. It reports false
// for references that leave the document or name nothing.
func lookup(root map[string]any, ref string) (any, bool) {
	if ref == "#" {
		return root, true
	}
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var node any = root
	for _, seg := range strings.Split(rest, "/") {
		seg = unescapePointer(seg)
		switch n := node.(type) {
		case map[string]any:
			node, ok = n[seg]
			if !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			node = n[i]
		default:
			return nil, false
		}
	}
	return node, true
}

// maxRefHops bounds how many $ref a single resolution follows, so a reference cycle ends.
const maxRefHops = 32

// deref follows $ref from node until it reaches an object without one. It returns nil when a
// reference is external, dangling or cyclic; the OpenAPI validation reports those.
func deref(root, node map[string]any) map[string]any {
	for range maxRefHops {
		if node == nil {
			return nil
		}
		ref, ok := text(node["$ref"])
		if !ok {
			return node
		}
		target, ok := lookup(root, ref)
		if !ok {
			return nil
		}
		node = object(target)
	}
	return nil
}

// keysInOrder returns the member names of the JSON object raw in the order the document
// lists them. Go maps forget that order, and Power Platform honours only the first security
// definition.
func keysInOrder(raw json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return nil, errors.New("not a JSON object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		keys = append(keys, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
