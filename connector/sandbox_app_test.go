package connector

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSandboxPrintsTheAppAddressFirst: the first thing the sandbox prints is where to open the app, and
// that address answers with the simulator's pages.
func TestSandboxPrintsTheAppAddressFirst(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	var desc bytes.Buffer
	sb.Describe(&desc)
	first, _, _ := strings.Cut(desc.String(), "\n")
	assert.Equal(t, "Open the CSP Connector app in a browser: "+sb.Dataverse.URL+"/main.aspx?appname=csp_CSPConnector", first)

	res, err := http.Get(sb.AppURL())
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	assert.Contains(t, string(body), "a simulator of Dynamics 365's pages for the sandbox and tests")
}
