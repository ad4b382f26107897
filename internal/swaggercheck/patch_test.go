package swaggercheck_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The mutation tests take a fixture that passes, change one thing with a JSON-Patch-like edit
// addressed by an RFC 6901 pointer, and expect the matching problem.

// A patch edits a decoded JSON document in place.
type patch func(t *testing.T, doc map[string]any)

// set adds or replaces the value at pointer ("-" as the last segment appends to an array).
func set(pointer string, value any) patch {
	return func(t *testing.T, doc map[string]any) {
		t.Helper()
		parent, last := parentOf(t, doc, pointer)
		switch p := parent.(type) {
		case map[string]any:
			p[last] = value
		case []any:
			if last == "-" {
				grandparent, key := parentOf(t, doc, strings.TrimSuffix(pointer, "/-"))
				assign(t, grandparent, key, append(p, value))
				return
			}
			assign(t, p, last, value)
		default:
			t.Fatalf("set %s: parent is %T", pointer, parent)
		}
	}
}

// remove deletes the value at pointer.
func remove(pointer string) patch {
	return func(t *testing.T, doc map[string]any) {
		t.Helper()
		parent, last := parentOf(t, doc, pointer)
		switch p := parent.(type) {
		case map[string]any:
			require.Contains(t, p, last, "remove %s", pointer)
			delete(p, last)
		case []any:
			i, err := strconv.Atoi(last)
			require.NoError(t, err, "remove %s", pointer)
			grandparent, key := parentOf(t, doc, pointer[:strings.LastIndex(pointer, "/")])
			assign(t, grandparent, key, append(p[:i:i], p[i+1:]...))
		default:
			t.Fatalf("remove %s: parent is %T", pointer, parent)
		}
	}
}

// edits applies several patches in order.
func edits(patches ...patch) patch {
	return func(t *testing.T, doc map[string]any) {
		t.Helper()
		for _, p := range patches {
			p(t, doc)
		}
	}
}

// rawValue decodes a JSON literal, for values too big to write as Go maps.
func rawValue(literal string) any {
	var v any
	if err := json.Unmarshal([]byte(literal), &v); err != nil {
		panic("bad JSON literal in test table: " + literal)
	}
	return v
}

// parentOf returns the container that holds the value at pointer, and that value's key.
func parentOf(t *testing.T, doc map[string]any, pointer string) (any, string) {
	t.Helper()
	require.True(t, strings.HasPrefix(pointer, "/"), "pointer %q", pointer)
	segs := strings.Split(pointer[1:], "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	var node any = doc
	for _, seg := range segs[:len(segs)-1] {
		node = child(t, node, seg, pointer)
	}
	return node, segs[len(segs)-1]
}

func child(t *testing.T, node any, seg, pointer string) any {
	t.Helper()
	switch n := node.(type) {
	case map[string]any:
		next, ok := n[seg]
		require.True(t, ok, "%s: no %q", pointer, seg)
		return next
	case []any:
		i, err := strconv.Atoi(seg)
		require.NoError(t, err, "%s: %q is not an index", pointer, seg)
		require.Less(t, i, len(n), "%s: index %d out of range", pointer, i)
		return n[i]
	default:
		t.Fatalf("%s: cannot descend into %T at %q", pointer, node, seg)
		return nil
	}
}

// assign stores v under key in container, which is an object or an array.
func assign(t *testing.T, container any, key string, v any) {
	t.Helper()
	switch c := container.(type) {
	case map[string]any:
		c[key] = v
	case []any:
		i, err := strconv.Atoi(key)
		require.NoError(t, err)
		c[i] = v
	default:
		t.Fatalf("cannot assign into %T", container)
	}
}

// fixture reads a testdata file.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// patched returns the testdata file name with p applied, re-encoded.
func patched(t *testing.T, name string, p patch) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(fixture(t, name), &doc))
	if p != nil {
		p(t, doc)
	}
	b, err := json.MarshalIndent(doc, "", "    ")
	require.NoError(t, err)
	return b
}

// hasProblem reports whether any problem contains want.
func hasProblem(problems []string, want string) bool {
	for _, p := range problems {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}
