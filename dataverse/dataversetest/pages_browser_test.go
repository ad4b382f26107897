package dataversetest_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/browsertest"
)

// TestPagesInABrowser opens the app in headless Chromium: a list from the sitemap, a row from the grid, an
// edit saved through the Web API, a command button whose script writes the row and refreshes the form
// without reloading the page, and the bell.
func TestPagesInABrowser(t *testing.T) {
	f := newPageFixture(t, time.Now())
	base := f.srv.URL
	tab := browsertest.New(t, 90*time.Second)

	// ready waits for the page's scripts, which load last: a button pressed before they ran does nothing.
	ready := chromedp.Poll[chromedp.Void](`document.readyState === "complete" && window.SimPage`, chromedp.WithPollingTimeout(10*time.Second))
	require.NoError(t, chromedp.Do(tab,
		chromedp.Navigate(base+"/main.aspx?appid="+f.app),
		chromedp.WaitVisible(chromedp.CSS(`nav.sitemap`)),
		ready,
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
		ready,
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
