package dataversetest_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/internal/browsertest"
)

// withWebResources serves /WebResources/<name> from the stored web resources in front of srv, as Dynamics
// does, for the command scripts; the simulator's commands (serveApp) serve them too once they are in this
// branch, and then this is only a second way to the same bytes.
func withWebResources(t *testing.T, srv *dataversetest.Server) string {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/WebResources/")
		if !ok {
			srv.ServeHTTP(w, r)
			return
		}
		for _, row := range srv.Rows("webresource") {
			if row["name"] == name {
				b, _ := base64.StdEncoding.DecodeString(fmt.Sprint(row["content"]))
				w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
				_, _ = w.Write(b)
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// TestPagesInABrowser opens the app in headless Chromium: a list from the sitemap, a row from the grid, an
// edit saved through the Web API, a command button whose script writes the row and refreshes the form
// without reloading the page, and the bell.
func TestPagesInABrowser(t *testing.T) {
	f := newPageFixture(t, time.Now())
	base := withWebResources(t, f.srv)
	tab := browsertest.New(t, 90*time.Second)

	require.NoError(t, chromedp.Do(tab,
		chromedp.Navigate(base+"/main.aspx?appid="+f.app),
		chromedp.WaitVisible(chromedp.CSS(`nav.sitemap`)),
		chromedp.Click(chromedp.CSS(`nav.sitemap a[href*="etn=csp_widget"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.grid`)),
	))
	caption, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`table.grid caption`)))
	require.NoError(t, err)
	assert.Equal(t, "Failed widgets, most seats first (2)", caption)

	// Open the row from the grid, change its seats with the keyboard, save.
	require.NoError(t, chromedp.Do(tab,
		chromedp.Click(chromedp.CSS(`table.grid tbody a[href*="`+f.failed+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#record-form`)),
		chromedp.SetValue(chromedp.CSS(`input[data-column="csp_quantity"]`), ""),
		chromedp.SendKeys(chromedp.CSS(`input[data-column="csp_quantity"]`), "20"),
		chromedp.Click(chromedp.CSS(`#cmd-save`)),
		chromedp.WaitVisible(chromedp.CSS(`input[data-column="csp_quantity"][data-original="20"]`)),
	))
	row, ok := f.srv.Row("csp_widget", f.failed)
	require.True(t, ok)
	assert.EqualValues(t, 20, row["csp_quantity"], "saved through the Web API")

	// A command: the web resource's function gets the form's context, writes the row and refreshes the
	// form; the page is not reloaded (the marker survives).
	_, err = chromedp.Run(tab, chromedp.Evaluate[bool](`window.notReloaded = true`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(tab,
		chromedp.Click(chromedp.CSS(`button.appaction`)),
		chromedp.WaitVisible(chromedp.CSS(`.notification[data-id="bump"]`)),
	))
	message, err := chromedp.Run(tab, chromedp.Poll[string](
		`(document.querySelector('textarea[data-column="csp_message"]').value === "Bumped by the command." && document.querySelector('.notification[data-id="bump"]').textContent === "Bumped") && "ok"`,
		chromedp.WithPollingTimeout(20*time.Second)))
	require.NoError(t, err, "the form shows the command's write-back")
	assert.Equal(t, "ok", message)
	kept, err := chromedp.Run(tab, chromedp.Evaluate[bool](`window.notReloaded === true`))
	require.NoError(t, err)
	assert.True(t, kept, "refreshed without reloading the page")

	// The bell: open it, follow the notification's action into the row.
	require.NoError(t, chromedp.Do(tab,
		chromedp.Click(chromedp.CSS(`#bell`)),
		chromedp.WaitVisible(chromedp.CSS(`#bell-panel`)),
	))
	expanded, err := chromedp.Run(tab, chromedp.AttributeValue(chromedp.CSS(`#bell`), "aria-expanded"))
	require.NoError(t, err)
	assert.Equal(t, "true", expanded.Value)
	focused, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.activeElement.textContent`))
	require.NoError(t, err)
	assert.Equal(t, "Open", focused, "the panel takes the keyboard focus to its first action")
	require.NoError(t, chromedp.Do(tab,
		chromedp.Click(chromedp.CSS(`#bell-panel a.action`)),
		chromedp.WaitVisible(chromedp.CSS(`#record-form`)),
	))
	location, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.href`))
	require.NoError(t, err)
	u, err := url.Parse(location)
	require.NoError(t, err)
	assert.Equal(t, f.failed, u.Query().Get("id"))
	assert.Equal(t, "csp_Widgets", u.Query().Get("appname"))
}
