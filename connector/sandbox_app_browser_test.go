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
	tab := browsertest.New(t, 5*time.Minute)
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
	// click clicks the element a script finds, once it is there and the page is ready: the DOM of a page
	// just navigated to is read afresh, which chromedp's node queries do not always do.
	click := func(find, what string) {
		t.Helper()
		// The page's scripts load last: a button pressed before they have run does nothing.
		waitFor(`document.readyState === "complete" && window.SimPage && (`+find+`)`, 10*time.Second, what+" is on the page")
		eval(`(` + find + `.click(), "")`)
	}
	press := func(label string) {
		t.Helper()
		click(`[...document.querySelectorAll("button")].find(b => b.textContent.trim() === `+jsString(label)+`)`, "the button "+label)
	}
	// chooseView picks a view in the view picker by name, with the picker's Show button.
	chooseView := func(name string) {
		t.Helper()
		id := eval(`[...document.querySelectorAll("#viewid option")].find(o => o.textContent === ` + jsString(name) + `)?.value ?? ""`)
		require.NotEmpty(t, id, "the view picker offers %q", name)
		eval(`(document.getElementById("viewid").value = ` + jsString(id) + `, "")`)
		click(`document.querySelector(".viewpicker button")`, "the view picker's Show button")
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
	// typeInto types text into a field with the keyboard, replacing what it holds.
	typeInto := func(column, text string) {
		t.Helper()
		field := `document.querySelector('[data-column="` + column + `"][data-kind]')`
		waitFor(field, 10*time.Second, "the field "+column)
		eval(`(` + field + `.focus(), ` + field + `.select(), "")`)
		run(chromedp.KeyEvent(text))
		require.Equal(t, text, eval(field+`.value`), "typed into %s", column)
	}
	navigate := func(table string) {
		t.Helper()
		click(`document.querySelector('nav.sitemap a[href*="etn=`+table+`&"]')`, "the sitemap's link to "+table)
		waitFor(`document.querySelector("#viewid") && new URLSearchParams(location.search).get("etn") === `+jsString(table), 10*time.Second, "the list of "+table)
	}

	// The license change health view, and the change the integration sandbox's seat cap failed.
	run(chromedp.Navigate(sb.AppURL()))
	waitFor(`document.querySelector("nav.sitemap")`, 10*time.Second, "the app opens with its sitemap")
	navigate("csp_licensechangelog")
	chooseView("Awaiting or Failed, oldest first")
	open(demoChangeSandboxCap)
	require.Equal(t, "Failed Provisioning", header("csp_provisioningstatus"))
	assert.Contains(t, eval(`document.querySelector('textarea[data-column="csp_provisioningmessage"]').value`), "25")

	// Lower the quantity on the form and press Retry: the script saves the form, sets the change back to
	// Awaiting, waits for the connector and refreshes the form.
	typeInto("csp_quantity", "20")
	press("Retry")
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
	press("Diagnose")
	waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Diagnosis written"))`, 60*time.Second, "Diagnose says it is done")
	assert.NotEmpty(t, eval(`document.querySelector('textarea[data-column="csp_diagnosis"]')?.value ?? ""`), "the form shows the diagnosis")

	// Verify Connectivity on the provider: the connector checks Partner Center and answers on the row.
	navigate("csp_provider")
	open("Microsoft Partner Center")
	press("Verify Connectivity")
	waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Verify Connectivity done."))`, 60*time.Second,
		"Verify Connectivity says the connector's answer")

	// Run Now on a job: it runs once, now, and the form says how it went.
	navigate("csp_job")
	open("Provider Account Sync")
	press("Run Now")
	waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Run Now done."))`, 60*time.Second, "Run Now says the run's outcome")

	// Request acceptance link on Contoso's agreement: the signatory typed on the form goes with the request
	// (the script saves the form first), and the connector answers with Partner Center's link.
	navigate("csp_agreement")
	open("Contoso Ltd — Microsoft Customer Agreement")
	for column, value := range map[string]string{"csp_signatoryfirstname": "Ada", "csp_signatorylastname": "Lovelace", "csp_signatoryemail": "ada@contoso.com",
		"csp_signatorycompany": "Contoso Ltd", "csp_signatorycountry": "GB", "csp_signatorylanguage": "en-GB"} {
		typeInto(column, value)
	}
	press("Request acceptance link")
	waitFor(`[...document.querySelectorAll(".notification")].some(n => !n.textContent.startsWith("Request acceptance link requested") && n.dataset.id === "csp_command")`,
		60*time.Second, "Request acceptance link says the connector's answer")
	assert.Contains(t, eval(`document.querySelector('.notification[data-id="csp_command"]').textContent`), "Acceptance link created")
	assert.Contains(t, eval(`document.querySelector('textarea[data-column="csp_attestationmessage"]')?.value ?? document.querySelector('[data-column="csp_attestationmessage"]')?.value ?? ""`),
		"Ada Lovelace", "the form shows the connector's write-back")

	// The Ambiguous provider account: Map to account, choose its account, see it Mapped with its agreement.
	navigate("csp_provideraccount")
	chooseView("Needing mapping")
	open("Litware")
	require.Equal(t, "Ambiguous", header("csp_mappingstatus"))
	press("Map to account")
	click(`[...document.querySelectorAll("#xrm-lookup button")].find(b => b.textContent.trim() === "Litware, Inc.")`, "the account picker")
	waitFor(`document.querySelector('.header-fields dd[data-column="csp_mappingstatus"]')?.textContent.trim() === "Mapped"`, 60*time.Second, "the row shows Mapped")
	// The connector gives it its agreement after the mapping; a person presses Refresh until it shows.
	waitFor(`(() => {
		const g = [...document.querySelectorAll(".subgrid")].find(s => s.querySelector("h3")?.textContent === "Agreements");
		if (g && g.querySelectorAll("tbody tr[data-id]").length === 1) return true;
		document.getElementById("cmd-refresh").click();
		return false;
	})()`, 60*time.Second, "its agreement appears in the Agreements subgrid")

	// The bell.
	click(`document.getElementById("bell")`, "the bell")
	waitFor(`!document.getElementById("bell-panel").hidden`, 5*time.Second, "the bell opens its panel")
	titles := eval(`[...document.querySelectorAll("#bell-panel .notice-title")].map(n => n.textContent.trim()).join("\n")`)
	assert.Contains(t, titles, "Map Adventure Works Cycles to an account")
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
