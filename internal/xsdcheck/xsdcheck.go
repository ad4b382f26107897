// Package xsdcheck validates the XML documents a model-driven app is made of (FormXml, FetchXml,
// LayoutXml, SiteMap) against Microsoft's published schemas, so that a generator's test fails on
// an element or attribute Dataverse would refuse, before anyone imports it.
//
// The schemas are the Dataverse 9.0.0.2090 "Schemas" set, kept unmodified in schemas/ (its README
// says where each file came from). They are written for .NET's XML Schema validator, whose
// regular expressions are .NET's; libxml2 follows the XML Schema standard, so the package makes a
// handful of one-line adjustments as it writes the set to a temporary folder (the adjustments
// table in adjust.go, each with its reason), then runs
//
//	xmllint --noout --schema <schema> -
//
// from Debian's libxml2-utils, with the document on standard input. Every error line xmllint
// prints comes back, with the line number in the caller's document.
//
// Which schema checks what:
//
//	FormXml    a systemform's formxml, root <form>: FormXml.xsd (which includes RibbonCore.xsd,
//	           RibbonTypes.xsd and RibbonWSS.xsd)
//	FetchXml   a query, root <fetch>: Fetch.xsd
//	LayoutXml  a savedquery's layoutxml, root <grid>: the grid declared inside <savedquery> in
//	           Fetch.xsd, the schema of the savedquery record (see below)
//	SavedQuery a whole savedquery record, root <savedquery>: Fetch.xsd
//	SiteMap    an app's site map, root <SiteMap>: SiteMap.xsd (which includes SiteMapType.xsd)
//
// <grid> is not a global element of any published schema: it is declared anonymously inside
// <savedquery>/<layoutxml>, so no wrapper schema can refer to it. The package therefore puts the
// grid into the smallest savedquery Fetch.xsd accepts (name, savedqueryid, returnedtypecode,
// querytype, layoutxml), on the grid's own first line, so line numbers still point into the
// caller's document. That definition is the savedquery record's (the layoutxml a view created
// through the Web API carries): it requires object, select, preview and icon on <grid>, where the
// solution file's definition in CustomizationsSolution.xsd requires none of them.
//
// Every check also confirms the document's root element is the one the schema is for, because
// each schema declares other global elements too (FormXml.xsd accepts a <RibbonDiffXml>, Fetch.xsd
// a <condition>), which would otherwise validate in the wrong place.
//
// In a test:
//
//	xsdcheck.Validate(t, xsdcheck.FormXml, formXML)
//
// Validate skips the test when xmllint is not installed, except in CI (CI=true), where a missing
// xmllint fails it; .ci/run installs libxml2-utils.
package xsdcheck

import (
	"bytes"
	"context"
	"embed"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Schema names one kind of document and the published schema that validates it.
type Schema int

// The kinds of document the package validates.
const (
	FormXml Schema = iota + 1
	FetchXml
	LayoutXml
	SavedQuery
	SiteMap
)

// schemaSpec is what checking one kind of document takes.
type schemaSpec struct {
	name string // for messages
	file string // the schema xmllint loads, in the adjusted set
	root string // the root element the document must have
}

var specs = map[Schema]schemaSpec{
	FormXml:    {name: "FormXml", file: "FormXml.xsd", root: "form"},
	FetchXml:   {name: "FetchXml", file: "Fetch.xsd", root: "fetch"},
	LayoutXml:  {name: "LayoutXml", file: "Fetch.xsd", root: "grid"},
	SavedQuery: {name: "SavedQuery", file: "Fetch.xsd", root: "savedquery"},
	SiteMap:    {name: "SiteMap", file: "SiteMap.xsd", root: "SiteMap"},
}

// String is the schema's name as the package doc lists it.
func (s Schema) String() string {
	if spec, ok := specs[s]; ok {
		return spec.name
	}
	return "Schema(" + strconv.Itoa(int(s)) + ")"
}

// schemaDir is where the published schemas are kept, unmodified.
const schemaDir = "schemas/9.0.0.2090"

//go:embed schemas/9.0.0.2090/*.xsd
var published embed.FS

// The envelope LayoutXml's <grid> is validated in: the elements Fetch.xsd's savedquery requires,
// then layoutxml. It is one line, so that it takes the place of the document's own first line.
const (
	gridEnvelopeOpen = "<savedquery><name>xsdcheck</name>" +
		"<savedqueryid>{00000000-0000-0000-0000-000000000000}</savedqueryid>" +
		"<returnedtypecode>1</returnedtypecode><querytype>0</querytype><layoutxml>"
	gridEnvelopeClose = "</layoutxml></savedquery>"
)

// xmllint's exit codes that mean "the document has problems" rather than "the check could not run"
// (libxml2's xmllint.c: XMLLINT_ERR_UNCLASS for a document that is not well-formed, XMLLINT_ERR_VALID
// for one that fails validation).
const (
	xmllintNotWellFormed = 1
	xmllintInvalid       = 3
)

// Check validates doc against s's schema and returns every problem found, in xmllint's words ("-:12:
// element grid: Schemas validity error : Element 'grid': The attribute 'object' is required but
// missing."); none means the document is valid. The error is for a check that could not run: no
// xmllint (wrapping exec.ErrNotFound), or a schema that no longer loads.
func Check(ctx context.Context, s Schema, doc []byte) ([]string, error) {
	spec, ok := specs[s]
	if !ok {
		return nil, fmt.Errorf("xsdcheck: unknown schema %v", s)
	}
	if root, ok := rootElement(doc); ok && root != spec.root {
		return []string{fmt.Sprintf("the root element is <%s>; a %s document's root is <%s>", root, spec.name, spec.root)}, nil
	}
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		return nil, fmt.Errorf("xsdcheck: xmllint is not installed (Debian: apt-get install libxml2-utils): %w", err)
	}
	dir, err := os.MkdirTemp("", "xsdcheck-")
	if err != nil {
		return nil, fmt.Errorf("xsdcheck: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := writeAdjusted(dir); err != nil {
		return nil, err
	}
	if s == LayoutXml {
		doc = envelopGrid(doc)
	}

	cmd := exec.CommandContext(ctx, xmllint, "--noout", "--nonet", "--schema", filepath.Join(dir, spec.file), "-")
	cmd.Stdin = bytes.NewReader(doc)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	runErr := cmd.Run()
	lines := errorLines(stderr.String())
	if runErr == nil {
		return nil, nil
	}
	var exit *exec.ExitError
	if errors.As(runErr, &exit) {
		switch exit.ExitCode() {
		case xmllintNotWellFormed, xmllintInvalid:
			if len(lines) == 0 {
				lines = []string{"xmllint rejected the document without saying why (exit status " + strconv.Itoa(exit.ExitCode()) + ")"}
			}
			return lines, nil
		}
	}
	return nil, fmt.Errorf("xsdcheck: xmllint could not check against %s: %w: %s", spec.file, runErr, strings.Join(lines, "; "))
}

// Validate fails t with every problem xmllint finds in doc against s's schema. It skips t when
// xmllint is not installed, unless the CI variable is true: CI must run the check.
func Validate(t testing.TB, s Schema, doc string) {
	t.Helper()
	if _, err := exec.LookPath("xmllint"); err != nil {
		// The one environment read in this package: whether a missing tool may skip the test.
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("xsdcheck: xmllint is not installed, and CI must run the %s check (.ci/run installs libxml2-utils)", s)
		}
		t.Skipf("xsdcheck: xmllint is not installed (Debian: apt-get install libxml2-utils); the %s check runs in CI", s)
	}
	problems, err := Check(t.Context(), s, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("the document is not valid %s (%d problems):\n%s", s, len(problems), strings.Join(problems, "\n"))
	}
}

// writeAdjusted writes the published schemas into dir with the adjustments libxml2 needs.
func writeAdjusted(dir string) error {
	entries, err := fs.ReadDir(published, schemaDir)
	if err != nil {
		return fmt.Errorf("xsdcheck: %w", err)
	}
	for _, e := range entries {
		text, err := fs.ReadFile(published, path.Join(schemaDir, e.Name()))
		if err != nil {
			return fmt.Errorf("xsdcheck: %w", err)
		}
		adjusted, err := adjust(e.Name(), string(text))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(adjusted), 0o600); err != nil {
			return fmt.Errorf("xsdcheck: %w", err)
		}
	}
	return nil
}

// rootElement is the local name of doc's first element, if doc has one before any syntax error
// (xmllint reports those).
func rootElement(doc []byte) (string, bool) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return "", false
		}
		if start, ok := tok.(xml.StartElement); ok {
			return start.Name.Local, true
		}
	}
}

// envelopGrid puts a <grid> document into the smallest savedquery Fetch.xsd accepts. The envelope
// takes the place of the XML declaration, if any, so that the grid keeps its line numbers.
func envelopGrid(doc []byte) []byte {
	doc = bytes.TrimPrefix(doc, []byte("\ufeff"))
	if bytes.HasPrefix(doc, []byte("<?xml")) {
		if end := bytes.Index(doc, []byte("?>")); end >= 0 {
			doc = doc[end+len("?>"):]
		}
	}
	out := make([]byte, 0, len(gridEnvelopeOpen)+len(doc)+len(gridEnvelopeClose))
	out = append(out, gridEnvelopeOpen...)
	out = append(out, doc...)
	return append(out, gridEnvelopeClose...)
}

// errorLines is xmllint's report without its closing verdict ("- fails to validate"), one problem a
// line.
func errorLines(stderr string) []string {
	var lines []string
	for line := range strings.Lines(stderr) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line == "- fails to validate" || line == "- validates" {
			continue
		}
		lines = append(lines, line)
	}
	return lines
}
