package connector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/browsertest"
)

// screenshotEnv names the file the app's screenshot is written to (make screenshots: docs/app.png).
const screenshotEnv = "CSP_APP_SCREENSHOT"

// TestSandboxAppInABrowser is what a newcomer does after `make run`, in headless Chromium on the
// sandbox's Dataverse simulator pages, through the real connector: open the license change health view,
// open the change that failed on the integration sandbox's seat cap, lower its quantity, press Retry and
// see it Provisioned; open the Ambiguous provider account, choose its account with Map to account and see
// it Mapped with its agreement; and the bell shows the notifications.
func TestSandboxAppInABrowser(t *testing.T) {
	sb := testSandbox(t)
	runService(t, sb.Service)
	tab := browsertest.New(t, 3*time.Minute)
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(tab, steps...))
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
		require.NoError(t, err, js)
		return v
	}
	// waitFor polls the page until js is true; a page being replaced (a navigation) is polled again.
	waitFor := func(js string, timeout time.Duration, why string) {
		t.Helper()
		var last error
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](`!!(`+js+`)`))
			if err == nil && ok {
				return
			}
			last = err
		}
		notes, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.title + " | " + [...document.querySelectorAll(".notification, .unsupported")].map(n => n.textContent).join(" | ")`))
		t.Fatalf("%s: still not true after %s (%v): %s\npage: %s", why, timeout, last, js, notes)
	}
	// chooseView picks a view in the view picker by name, with the picker's Show button.
	chooseView := func(name string) {
		t.Helper()
		id := eval(`[...document.querySelectorAll("#viewid option")].find(o => o.textContent === ` + jsString(name) + `)?.value ?? ""`)
		require.NotEmpty(t, id, "the view picker offers %q", name)
		run(chromedp.SetValue(chromedp.CSS(`#viewid`), id), chromedp.Click(chromedp.CSS(`.viewpicker button`)))
		waitFor(`document.querySelector("table.grid caption")?.textContent.startsWith(`+jsString(name+" (")+`)`, 10*time.Second, "the grid shows the view")
	}
	// open follows the grid's link to the row named name.
	open := func(name string) {
		t.Helper()
		link := `[...document.querySelectorAll("table.grid tbody a")].find(a => a.textContent === ` + jsString(name) + `)`
		require.NotEmpty(t, eval(link+`?.getAttribute("href") ?? ""`), "the grid lists %q", name)
		eval(`(` + link + `.click(), "")`)
		waitFor(`document.getElementById("record-name")?.textContent === `+jsString(name), 10*time.Second, "the row opens")
	}
	header := func(column string) string {
		return eval(`document.querySelector('.header-fields dd[data-column="` + column + `"]')?.textContent.trim() ?? ""`)
	}
	button := func(label string) chromedp.Search {
		return chromedp.Search(`//button[normalize-space()="` + label + `"]`)
	}

	// The license change health view, and the change the integration sandbox's seat cap failed.
	run(chromedp.Navigate(sb.AppURL()), chromedp.WaitVisible(chromedp.CSS(`nav.sitemap`)),
		chromedp.Click(chromedp.CSS(`nav.sitemap a[href*="etn=csp_licensechangelog"]`)), chromedp.WaitVisible(chromedp.CSS(`#viewid`)))
	chooseView("Awaiting or Failed, oldest first")
	open(demoChangeSandboxCap)
	require.Equal(t, "Failed Provisioning", header("csp_provisioningstatus"))
	assert.Contains(t, eval(`document.querySelector('textarea[data-column="csp_provisioningmessage"]').value`), "25")

	// Lower the quantity on the form and press Retry: the script saves the form, sets the change back to
	// Awaiting, waits for the connector and refreshes the form.
	run(chromedp.SetValue(chromedp.CSS(`input[data-column="csp_quantity"]`), ""),
		chromedp.SendKeys(chromedp.CSS(`input[data-column="csp_quantity"]`), "20"),
		chromedp.Click(button("Retry")))
	waitFor(`document.querySelector('.header-fields dd[data-column="csp_provisioningstatus"]')?.textContent.trim() === "Provisioned"`, 90*time.Second,
		"the form shows the connector's write-back without a reload")
	assert.Equal(t, "20", eval(`document.querySelector('input[data-column="csp_quantity"]').value`))
	waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Provisioned"))`, 10*time.Second, "Retry says the outcome")
	if path := os.Getenv(screenshotEnv); path != "" {
		png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, png, 0o644))
	}

	// Diagnose: the connector writes its check-by-check walk into the row, and the form shows it.
	run(chromedp.Click(button("Diagnose")))
	waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Diagnosis written"))`, 30*time.Second, "Diagnose says it is done")
	assert.NotEmpty(t, eval(`document.querySelector('textarea[data-column="csp_diagnosis"]')?.value ?? ""`), "the form shows the diagnosis")

	// Verify Connectivity on the provider: the connector checks Partner Center and answers on the row.
	run(chromedp.Click(chromedp.CSS(`nav.sitemap a[href*="etn=csp_provider&"]`)), chromedp.WaitVisible(chromedp.CSS(`#viewid`)))
	open("Microsoft Partner Center")
	run(chromedp.Click(button("Verify Connectivity")))
	waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Verify Connectivity done."))`, 30*time.Second,
		"Verify Connectivity says the connector's answer")

	// The Ambiguous provider account: Map to account, choose its account, see it Mapped with its agreement.
	run(chromedp.Click(chromedp.CSS(`nav.sitemap a[href*="etn=csp_provideraccount"]`)), chromedp.WaitVisible(chromedp.CSS(`#viewid`)))
	chooseView("Needing mapping")
	open("Litware")
	require.Equal(t, "Ambiguous", header("csp_mappingstatus"))
	run(chromedp.Click(button("Map to account")), chromedp.WaitVisible(chromedp.CSS(`#xrm-lookup`)),
		chromedp.Click(chromedp.Search(`//div[@id="xrm-lookup"]//button[normalize-space()="Litware, Inc."]`)))
	waitFor(`document.querySelector('.header-fields dd[data-column="csp_mappingstatus"]')?.textContent.trim() === "Mapped"`, 30*time.Second, "the row shows Mapped")
	// The connector gives it its agreement after the mapping; a person presses Refresh until it shows.
	waitFor(`(() => {
		const g = [...document.querySelectorAll(".subgrid")].find(s => s.querySelector("h3")?.textContent === "Agreements");
		if (g && g.querySelectorAll("tbody tr[data-id]").length === 1) return true;
		document.getElementById("cmd-refresh").click();
		return false;
	})()`, 30*time.Second, "its agreement appears in the Agreements subgrid")

	// The bell.
	run(chromedp.Click(chromedp.CSS(`#bell`)), chromedp.WaitVisible(chromedp.CSS(`#bell-panel`)))
	titles := eval(`[...document.querySelectorAll("#bell-panel .notice-title")].map(n => n.textContent.trim()).join("\n")`)
	assert.Contains(t, titles, "Map Adventure Works Cycles to an account")
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
