package dataversetest_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAppActionsAndWebResources: web resources and modern commands are stored with Dataverse's shapes;
// a command on a table that does not exist, a JavaScript command without its script, a duplicate unique
// name, and the lookup's column name used as a navigation property are refused; web resources are served
// at /WebResources/<name>, and the sandbox's Xrm host and page under /sandbox/.
func TestAppActionsAndWebResources(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	defer srv.Close()
	c := newWebAPI(t, srv)

	script := "var CSPConnector = {};"
	wr := c.create("webresourceset", map[string]any{"name": "csp_/scripts/x.js", "displayname": "X", "webresourcetype": 3,
		"content": base64.StdEncoding.EncodeToString([]byte(script))})
	res := c.do(http.MethodPost, "webresourceset", map[string]any{"name": "csp_/scripts/x.js", "displayname": "again", "webresourcetype": 3, "content": ""})
	assert.Equal(t, http.StatusPreconditionFailed, res.status, "a second web resource of that name: %s", res.body)

	action := map[string]any{"uniquename": "csp_job_runnow", "name": "csp_job_runnow", "buttonlabeltext": "Run Now", "context": 1, "contextvalue": "csp_job",
		"location": 0, "type": 0, "onclickeventtype": 2, "onclickeventjavascriptfunctionname": "CSPConnector.runNow", "onclickeventjavascriptparameters": `[{"type":5}]`,
		"sequence": 10, "OnClickEventJavaScriptWebResourceId@odata.bind": "/webresourceset(" + wr + ")"}
	id := c.create("appactions", action)
	row := c.get("appactions(" + id + ")")
	assert.Equal(t, wr, row["_onclickeventjavascriptwebresourceid_value"])
	assert.Equal(t, "csp_job", row["contextvalue"])

	res = c.do(http.MethodPost, "appactions", action)
	assert.Equal(t, http.StatusPreconditionFailed, res.status, "a duplicate unique name: %s", res.body)

	unknown := clone(action)
	unknown["uniquename"], unknown["contextvalue"] = "csp_nosuch_go", "csp_nosuch"
	res = c.do(http.MethodPost, "appactions", unknown)
	assert.Equal(t, http.StatusBadRequest, res.status)
	assert.Contains(t, string(res.body), "Could not find entity with name 'csp_nosuch'.")

	noScript := clone(action)
	noScript["uniquename"] = "csp_job_noscript"
	delete(noScript, "OnClickEventJavaScriptWebResourceId@odata.bind")
	res = c.do(http.MethodPost, "appactions", noScript)
	assert.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)

	lowercase := clone(action)
	lowercase["uniquename"] = "csp_job_lowercase"
	delete(lowercase, "OnClickEventJavaScriptWebResourceId@odata.bind")
	lowercase["onclickeventjavascriptwebresourceid@odata.bind"] = "/webresourceset(" + wr + ")"
	res = c.do(http.MethodPost, "appactions", lowercase)
	assert.Equal(t, http.StatusBadRequest, res.status, "the navigation property is OnClickEventJavaScriptWebResourceId: %s", res.body)

	for path, want := range map[string]string{"/WebResources/csp_/scripts/x.js": script, "/sandbox/xrm.js": "global.Xrm = {"} {
		r, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		assert.Equal(t, http.StatusOK, r.StatusCode, path)
		assert.True(t, strings.Contains(string(body), want), "%s serves %q", path, want)
	}
	for _, path := range []string{"/WebResources/csp_/scripts/nosuch.js", "/sandbox/nosuch.js", "/sandbox/form.html", "/sandbox/../api/data/v9.2/"} {
		r, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		r.Body.Close()
		assert.Equal(t, http.StatusNotFound, r.StatusCode, path)
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
