package api

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/internal/swaggercheck"
)

const (
	definitionFile = "../../infra/powerplatform/apiDefinition.swagger.json"
	propertiesFile = "../../infra/powerplatform/apiProperties.json"
)

// TestAPIDefinitionIsCheckedIn: the document /api/v1/swagger.json serves is the checked-in custom
// connector definition, byte for byte (regenerate with `make powerplatform`).
func TestAPIDefinitionIsCheckedIn(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(New(Deps{}, Options{}))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + Prefix + "/swagger.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	served, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	checkedIn, err := os.ReadFile(definitionFile)
	require.NoError(t, err)
	require.Equal(t, string(checkedIn), string(served), "infra/powerplatform/apiDefinition.swagger.json is stale: run make powerplatform")
}

// TestAPIDefinitionImportsIntoPowerPlatform validates the definition as OpenAPI 2.0 and against the custom
// connector rules (allowed x-ms-* extensions, PascalCase operation ids, summaries, descriptions, labels,
// response schemas, the webhook trigger's shape), and apiProperties.json against it.
func TestAPIDefinitionImportsIntoPowerPlatform(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(definitionFile)
	require.NoError(t, err)
	assert.Empty(t, swaggercheck.Check(doc))
	props, err := os.ReadFile(propertiesFile)
	require.NoError(t, err)
	assert.Empty(t, swaggercheck.CheckAPIProperties(props, doc))
}

// TestAPIDefinitionHostFollowsThePublicURL: a connector with a public URL serves a document that imports
// as it is.
func TestAPIDefinitionHostFollowsThePublicURL(t *testing.T) {
	t.Parallel()
	doc, err := Definition("https://csp.contoso.com")
	require.NoError(t, err)
	assert.Contains(t, string(doc), `"host": "csp.contoso.com"`)
	assert.NotContains(t, string(doc), DocumentHost)
	_, err = Definition("not a url")
	assert.Error(t, err)
}

// TestConnectorEventDocumentsThePayload: the trigger's schema (ConnectorEvent) has every field Payload
// sends, and EventData every key the notifications put in Data.
func TestConnectorEventDocumentsThePayload(t *testing.T) {
	t.Parallel()
	assert.Equal(t, jsonNames(reflect.TypeOf(notify.Payload{})), jsonNames(reflect.TypeOf(ConnectorEvent{})))
	documented := map[string]bool{}
	for _, n := range jsonNames(reflect.TypeOf(EventData{})) {
		documented[n] = true
	}
	src := ""
	// Every non-test Go file of the connector, wherever the split put it.
	require.NoError(t, filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		src += string(b)
		return err
	}))
	// Every Data: map[string]any{...} literal's keys.
	keyRE := regexp.MustCompile(`"(\w+)":`)
	var keys int
	for _, lit := range strings.Split(src, "Data: map[string]any{")[1:] {
		for _, m := range keyRE.FindAllStringSubmatch(lit[:strings.Index(lit, "}")], -1) {
			keys++
			assert.True(t, documented[m[1]], "EventData does not document the key %q", m[1])
		}
	}
	assert.GreaterOrEqual(t, keys, 8, "the notifications' Data keys were found")
}

func jsonNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
