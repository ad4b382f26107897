package jsontree_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/jsontree"
)

func TestParseKeepsWhatEncodingJSONHides(t *testing.T) {
	t.Parallel()
	root, err := jsontree.Parse([]byte(` {"a": 1, "A": "x\u00e9", "a": [true, null, -2.5e3], "o": {}} `))
	require.NoError(t, err)
	require.Equal(t, jsontree.Object, root.Kind)
	assert.Equal(t, []string{"a", "A", "a", "o"}, root.Keys, "duplicates and case kept, in order")
	last := root.Member("a")
	require.Equal(t, jsontree.Array, last.Kind, "Member takes the last match, in any case")
	assert.Equal(t, "[true, null, -2.5e3]", string(last.Raw))
	assert.Equal(t, "true", last.Items[0].Text)
	assert.True(t, last.Items[1].IsNull())
	assert.Equal(t, "-2.5e3", last.Items[2].Text)
	s, ok := root.Items[1].Str()
	assert.True(t, ok)
	assert.Equal(t, "xé", s)
	assert.Nil(t, root.Member("missing"))
	assert.True(t, root.Member("missing").IsNull())
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `{`, `{"a":}`, `{"a":1,}`, `[1 2]`, `{"a":1} {"b":2}`, `01`, `1.`, `-`, `"\x"`, "\"a\x01\"", `"\u12"`, `tru`, `{a:1}`, `nul`} {
		_, err := jsontree.Parse([]byte(body))
		assert.Error(t, err, "%q", body)
	}
}

func TestParseBoundsNesting(t *testing.T) {
	t.Parallel()
	ok := strings.Repeat("[", jsontree.MaxDepth) + strings.Repeat("]", jsontree.MaxDepth)
	_, err := jsontree.Parse([]byte(ok))
	require.NoError(t, err)
	_, err = jsontree.Parse([]byte("[" + ok + "]"))
	require.ErrorIs(t, err, jsontree.ErrTooDeep)
	// A million levels is refused at level 65, without reading the rest.
	_, err = jsontree.Parse([]byte(strings.Repeat(`{"a":`, 1_000_000)))
	require.ErrorIs(t, err, jsontree.ErrTooDeep)
}

func TestParseBoundsValues(t *testing.T) {
	t.Parallel()
	ok := "[" + strings.Repeat("0,", jsontree.MaxValues-2) + "0]" // the array and its items
	_, err := jsontree.Parse([]byte(ok))
	require.NoError(t, err)
	_, err = jsontree.Parse([]byte("[" + strings.Repeat("0,", jsontree.MaxValues) + "0]"))
	require.ErrorIs(t, err, jsontree.ErrTooLarge, "a megabyte of zeros would otherwise cost tens of megabytes of nodes")
}
