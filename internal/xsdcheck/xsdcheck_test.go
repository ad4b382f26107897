package xsdcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needXmllint skips a test of the harness where xmllint is missing, outside CI, as Validate does.
func needXmllint(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("xmllint is not installed, and CI must run these tests (.ci/run installs libxml2-utils)")
		}
		t.Skip("xmllint is not installed (Debian: apt-get install libxml2-utils)")
	}
}

func sample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// The samples are shaped as Dataverse writes these documents (a form's tabs, columns, sections and
// cells with their control class ids, a view's fetch and grid, an app's site map), for tables like
// the connector's.
var samples = []struct {
	schema Schema
	file   string
}{
	{FormXml, "form.xml"},
	{FetchXml, "fetch.xml"},
	{LayoutXml, "layout.xml"},
	{SavedQuery, "savedquery.xml"},
	{SiteMap, "sitemap.xml"},
}

func TestValidSamplesPass(t *testing.T) {
	needXmllint(t)
	for _, s := range samples {
		t.Run(s.schema.String(), func(t *testing.T) {
			t.Parallel()
			problems, err := Check(t.Context(), s.schema, []byte(sample(t, s.file)))
			require.NoError(t, err)
			assert.Empty(t, problems)
			Validate(t, s.schema, sample(t, s.file))
		})
	}
}

// Each broken document is a valid sample with one edit, and fails with xmllint's words for it, at
// the line of the edit.
func TestBrokenDocumentsFail(t *testing.T) {
	needXmllint(t)
	tests := []struct {
		name     string
		schema   Schema
		file     string
		old, new string
		want     string
	}{
		{
			name: "form: unknown element", schema: FormXml, file: "form.xml",
			old:  `<control id="csp_name"`,
			new:  `<widget /><control id="csp_name"`,
			want: "-:20: element widget: Schemas validity error : Element 'widget': This element is not expected.",
		},
		{
			name: "form: column without its required width", schema: FormXml, file: "form.xml",
			old:  `<column width="100%">`,
			new:  `<column>`,
			want: "-:8: element column: Schemas validity error : Element 'column': The attribute 'width' is required but missing.",
		},
		{
			// FormPercentageType's pattern is one of the adjusted ones: a width must still be a percentage.
			name: "form: column width not a percentage", schema: FormXml, file: "form.xml",
			old:  `<column width="100%">`,
			new:  `<column width="100">`,
			want: "-:8: element column: Schemas validity error : Element 'column', attribute 'width': [facet 'pattern'] The value '100' is not accepted by the pattern '(100|[0-9]{1,2})%'.",
		},
		{
			name: "fetch: unknown element", schema: FetchXml, file: "fetch.xml",
			old:  `<attribute name="csp_quantity" />`,
			new:  `<column name="csp_quantity" />`,
			want: "-:5: element column: Schemas validity error : Element 'column': This element is not expected.",
		},
		{
			name: "fetch: condition without its required operator", schema: FetchXml, file: "fetch.xml",
			old:  `operator="eq" `,
			new:  ``,
			want: "-:10: element condition: Schemas validity error : Element 'condition': The attribute 'operator' is required but missing.",
		},
		{
			name: "layout: grid without its required object", schema: LayoutXml, file: "layout.xml",
			old:  ` object="10001"`,
			new:  ``,
			want: "-:1: element grid: Schemas validity error : Element 'grid': The attribute 'object' is required but missing.",
		},
		{
			name: "layout: unknown element", schema: LayoutXml, file: "layout.xml",
			old:  `<cell name="csp_quantity" width="100" />`,
			new:  `<column name="csp_quantity" width="100" />`,
			want: "-:5: element column: Schemas validity error : Element 'column': This element is not expected. Expected is ( cell ).",
		},
		{
			name: "layout: cell width not a number", schema: LayoutXml, file: "layout.xml",
			old:  `<cell name="csp_name" width="300" />`,
			new:  `<cell name="csp_name" width="300px" />`,
			want: "-:3: element cell: Schemas validity error : Element 'cell', attribute 'width': '300px' is not a valid value of the atomic type 'xs:integer'.",
		},
		{
			name: "saved query: without its required savedqueryid", schema: SavedQuery, file: "savedquery.xml",
			old:  "<savedqueryid>{8f3c2a1b-4d5e-4f60-9a7b-1c2d3e4f5a6b}</savedqueryid>",
			new:  "",
			want: "-:1: element savedquery: Schemas validity error : Element 'savedquery': Missing child element(s).",
		},
		{
			name: "site map: unknown element", schema: SiteMap, file: "sitemap.xml",
			old:  `<SubArea Id="jobs"`,
			new:  `<Page /><SubArea Id="jobs"`,
			want: "-:15: element Page: Schemas validity error : Element 'Page': This element is not expected.",
		},
		{
			name: "site map: sub-area without its required Id", schema: SiteMap, file: "sitemap.xml",
			old:  `<SubArea Id="jobs" `,
			new:  `<SubArea `,
			want: "-:15: element SubArea: Schemas validity error : Element 'SubArea': The attribute 'Id' is required but missing.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			valid := sample(t, tt.file)
			require.Equal(t, 1, strings.Count(valid, tt.old), "the edit must apply once")
			broken := strings.Replace(valid, tt.old, tt.new, 1)

			problems, err := Check(t.Context(), tt.schema, []byte(broken))
			require.NoError(t, err)
			require.NotEmpty(t, problems)
			assert.Contains(t, problems[0], tt.want)

			rec := validateRecorded(t, tt.schema, broken)
			assert.True(t, rec.failed, "Validate fails the test")
			assert.Contains(t, rec.logs, tt.want)
		})
	}
}

func TestSaysWhenNotWellFormed(t *testing.T) {
	needXmllint(t)
	problems, err := Check(t.Context(), FetchXml, []byte("<fetch>\n  <entity name=\"csp_job\">\n</fetch>\n"))
	require.NoError(t, err)
	require.NotEmpty(t, problems)
	assert.Contains(t, problems[0], "-:3: parser error : Opening and ending tag mismatch: entity line 2 and fetch")
}

// Each schema declares more global elements than the one it is used for; the root must be the right
// one even where the schema would accept the document.
func TestRootMustBeTheSchemasOwn(t *testing.T) {
	needXmllint(t)
	tests := []struct {
		schema Schema
		doc    string
		want   string
	}{
		{FormXml, `<RibbonDiffXml><CustomActions /><Templates /><CommandDefinitions /><RuleDefinitions /><LocLabels /></RibbonDiffXml>`,
			"the root element is <RibbonDiffXml>; a FormXml document's root is <form>"},
		{FetchXml, `<condition attribute="statecode" operator="eq" value="0" />`,
			"the root element is <condition>; a FetchXml document's root is <fetch>"},
		{LayoutXml, sample(t, "savedquery.xml"),
			"the root element is <savedquery>; a LayoutXml document's root is <grid>"},
		{SiteMap, sample(t, "form.xml"),
			"the root element is <form>; a SiteMap document's root is <SiteMap>"},
	}
	for _, tt := range tests {
		problems, err := Check(t.Context(), tt.schema, []byte(tt.doc))
		require.NoError(t, err)
		assert.Equal(t, []string{tt.want}, problems)
	}
}

// The grid keeps its own line numbers inside the envelope, with or without an XML declaration.
func TestLayoutXmlKeepsLineNumbers(t *testing.T) {
	needXmllint(t)
	for _, prolog := range []string{"", `<?xml version="1.0" encoding="utf-8"?>`, "\ufeff" + `<?xml version="1.0"?>`} {
		doc := prolog + "<grid name=\"resultset\" object=\"1\" jump=\"name\" select=\"1\" icon=\"1\" preview=\"1\">\n" +
			"<row name=\"result\" id=\"accountid\">\n<cell width=\"300\" />\n</row>\n</grid>\n"
		if prolog != "" {
			// A declaration on a line of its own moves the grid to line 2.
			doc = strings.Replace(doc, "?><grid", "?>\n<grid", 1)
		}
		want := "-:3: element cell:"
		if prolog != "" {
			want = "-:4: element cell:"
		}
		problems, err := Check(t.Context(), LayoutXml, []byte(doc))
		require.NoError(t, err)
		require.Len(t, problems, 1, "prolog %q", prolog)
		assert.Contains(t, problems[0], want+" Schemas validity error : Element 'cell': The attribute 'name' is required but missing.")
	}
}

// Without the adjustments, libxml2 cannot load the published FormXml.xsd at all.
func TestPublishedFormXmlNeedsTheAdjustments(t *testing.T) {
	needXmllint(t)
	dir := t.TempDir()
	entries, err := fs.ReadDir(published, schemaDir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := fs.ReadFile(published, path.Join(schemaDir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600))
	}
	cmd := exec.CommandContext(t.Context(), "xmllint", "--noout", "--nonet", "--schema", filepath.Join(dir, "FormXml.xsd"), "-")
	cmd.Stdin = strings.NewReader(sample(t, "form.xml"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.NotEqual(t, xmllintInvalid, exit.ExitCode(), "the schema does not even load: %s", out)
	assert.Contains(t, string(out), "is not a valid regular expression")
	assert.Contains(t, string(out), `(\$webresource:|/)(.)+`)
	assert.Contains(t, string(out), `(?![cC][rR][mM]_)`)
}

func TestAdjustmentsApplyExactlyOnce(t *testing.T) {
	for _, a := range adjustments {
		b, err := fs.ReadFile(published, path.Join(schemaDir, a.file))
		require.NoError(t, err, a.file)
		text := string(b)
		assert.Equal(t, 1, strings.Count(text, a.old), "%s: %s", a.file, a.old)

		adjusted, err := adjust(a.file, text)
		require.NoError(t, err)
		assert.Contains(t, adjusted, a.new)
		assert.NotContains(t, adjusted, a.old)

		// A schema set where the text is gone (or doubled) stops the check instead of passing unadjusted.
		_, err = adjust(a.file, strings.Replace(text, a.old, "", 1))
		assert.ErrorContains(t, err, "found it 0 times")
		_, err = adjust(a.file, text+a.old)
		assert.ErrorContains(t, err, "found it 2 times")
	}
}

// Validate may skip for a missing xmllint only outside CI.
func TestValidateWithoutXmllint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())

	t.Setenv("CI", "true")
	rec := validateRecorded(t, FormXml, "<form />")
	assert.True(t, rec.failed)
	assert.False(t, rec.skipped)
	assert.Contains(t, rec.logs, "xmllint is not installed, and CI must run the FormXml check")

	t.Setenv("CI", "")
	rec = validateRecorded(t, FormXml, "<form />")
	assert.False(t, rec.failed)
	assert.True(t, rec.skipped)
	assert.Contains(t, rec.logs, "xmllint is not installed (Debian: apt-get install libxml2-utils)")

	_, err := Check(t.Context(), FormXml, []byte("<form />"))
	assert.ErrorIs(t, err, exec.ErrNotFound)
}

func TestSchemaString(t *testing.T) {
	assert.Equal(t, "LayoutXml", LayoutXml.String())
	assert.Equal(t, "Schema(0)", Schema(0).String())
	_, err := Check(t.Context(), Schema(0), []byte("<form />"))
	assert.Error(t, err)
}

// recordingTB stands in for a test so that Validate's verdict can be checked: it records instead of
// failing or skipping, and stops the calling function as the real ones do.
type recordingTB struct {
	testing.TB
	failed, skipped bool
	logs            string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failed = true
	r.logs += fmt.Sprintf(format, args...) + "\n"
}

func (r *recordingTB) Fatal(args ...any) {
	r.failed = true
	r.logs += fmt.Sprintln(args...)
	panic(errStop)
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = true
	r.logs += fmt.Sprintf(format, args...) + "\n"
	panic(errStop)
}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped = true
	r.logs += fmt.Sprintf(format, args...) + "\n"
	panic(errStop)
}

// errStop ends a Validate call on a recordingTB where the real test would stop (runtime.Goexit).
var errStop = errors.New("stopped")

// validateRecorded runs Validate on a recordingTB.
func validateRecorded(t *testing.T, s Schema, doc string) (rec *recordingTB) {
	rec = &recordingTB{TB: t}
	defer func() {
		if r := recover(); r != nil && r != errStop {
			panic(r)
		}
	}()
	Validate(rec, s, doc)
	return rec
}
