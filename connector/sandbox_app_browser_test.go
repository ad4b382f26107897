package connector

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
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
	app := openAppPage(t, 5*time.Minute)

	// The license change health view, and the change the integration sandbox's seat cap failed.
	app.run(chromedp.Navigate(sb.AppURL()))
	app.waitFor(`document.querySelector("nav.sitemap")`, 10*time.Second, "the app opens with its sitemap")
	app.navigate("csp_licensechangelog")
	app.chooseView("Awaiting or Failed, oldest first")
	app.open(demoChangeSandboxCap)
	require.Equal(t, "Failed Provisioning", app.header("csp_provisioningstatus"))
	assert.Contains(t, app.eval(`document.querySelector('textarea[data-column="csp_provisioningmessage"]').value`), "25")

	// Lower the quantity on the form and press Retry: the script saves the form, sets the change back to
	// Awaiting, waits for the connector and refreshes the form.
	app.typeInto("csp_quantity", "20")
	app.press("Retry")
	app.waitFor(`document.querySelector('.header-fields dd[data-column="csp_provisioningstatus"]')?.textContent.trim() === "Provisioned"`, 90*time.Second,
		"the form shows the connector's write-back without a reload")
	assert.Equal(t, "20", app.eval(`document.querySelector('input[data-column="csp_quantity"]').value`))
	app.waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Provisioned"))`, 10*time.Second, "Retry says the outcome")
	if path := os.Getenv(screenshotEnv); path != "" {
		png, err := chromedp.Run(app.tab, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, png, 0o644))
	}

	// Diagnose: the connector writes its check-by-check walk into the row, and the form shows it.
	app.press("Diagnose")
	app.waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Diagnosis written"))`, 60*time.Second, "Diagnose says it is done")
	assert.NotEmpty(t, app.eval(`document.querySelector('textarea[data-column="csp_diagnosis"]')?.value ?? ""`), "the form shows the diagnosis")

	// Verify Connectivity on the provider: the connector checks Partner Center and answers on the row.
	app.navigate("csp_provider")
	app.open("Microsoft Partner Center")
	app.press("Verify Connectivity")
	app.waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Verify Connectivity done."))`, 60*time.Second,
		"Verify Connectivity says the connector's answer")

	// Run Now on a job: it runs once, now, and the form says how it went.
	app.navigate("csp_job")
	app.open("Provider Account Sync")
	app.press("Run Now")
	app.waitFor(`[...document.querySelectorAll(".notification")].some(n => n.textContent.startsWith("Run Now done."))`, 60*time.Second, "Run Now says the run's outcome")

	// Request acceptance link on Contoso's agreement: the signatory typed on the form goes with the request
	// (the script saves the form first), and the connector answers with Partner Center's link.
	app.navigate("csp_agreement")
	app.open("Contoso Ltd — Microsoft Customer Agreement")
	for column, value := range map[string]string{"csp_signatoryfirstname": "Ada", "csp_signatorylastname": "Lovelace", "csp_signatoryemail": "ada@contoso.com",
		"csp_signatorycompany": "Contoso Ltd", "csp_signatorycountry": "GB", "csp_signatorylanguage": "en-GB"} {
		app.typeInto(column, value)
	}
	app.press("Request acceptance link")
	app.waitFor(`[...document.querySelectorAll(".notification")].some(n => !n.textContent.startsWith("Request acceptance link requested") && n.dataset.id === "csp_command")`,
		60*time.Second, "Request acceptance link says the connector's answer")
	assert.Contains(t, app.eval(`document.querySelector('.notification[data-id="csp_command"]').textContent`), "Acceptance link created")
	assert.Contains(t, app.eval(`document.querySelector('textarea[data-column="csp_attestationmessage"]')?.value ?? document.querySelector('[data-column="csp_attestationmessage"]')?.value ?? ""`),
		"Ada Lovelace", "the form shows the connector's write-back")

	// The Ambiguous provider account: Map to account, choose its account, see it Mapped with its agreement.
	app.navigate("csp_provideraccount")
	app.chooseView("Needing mapping")
	app.open("Litware")
	require.Equal(t, "Ambiguous", app.header("csp_mappingstatus"))
	app.press("Map to account")
	app.click(`[...document.querySelectorAll("#xrm-lookup button")].find(b => b.textContent.trim() === "Litware, Inc.")`, "the account picker")
	app.waitFor(`document.querySelector('.header-fields dd[data-column="csp_mappingstatus"]')?.textContent.trim() === "Mapped"`, 60*time.Second, "the row shows Mapped")
	// The connector gives it its agreement after the mapping; a person presses Refresh until it shows.
	app.waitFor(`(() => {
		const g = [...document.querySelectorAll(".subgrid")].find(s => s.querySelector("h3")?.textContent === "Agreements");
		if (g && g.querySelectorAll("tbody tr[data-id]").length === 1) return true;
		document.getElementById("cmd-refresh").click();
		return false;
	})()`, 60*time.Second, "its agreement appears in the Agreements subgrid")

	// The bell.
	app.click(`document.getElementById("bell")`, "the bell")
	app.waitFor(`!document.getElementById("bell-panel").hidden`, 5*time.Second, "the bell opens its panel")
	titles := app.eval(`[...document.querySelectorAll("#bell-panel .notice-title")].map(n => n.textContent.trim()).join("\n")`)
	assert.Contains(t, titles, "Map Adventure Works Cycles to an account")
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// appPage drives the sandbox app's pages (the Dataverse simulator's /main.aspx) in headless Chromium, as a
// person would: it waits for the page's script before pressing a button, and finds elements afresh each
// time, since a navigation or a form refresh replaces them.
type appPage struct {
	t   *testing.T
	tab context.Context
}

// openAppPage starts a browser tab for the test, closed when it ends, bounded by timeout.
func openAppPage(t *testing.T, timeout time.Duration) *appPage {
	return &appPage{t: t, tab: browsertest.New(t, timeout)}
}

// recordURL is the address of a row's form in the sandbox app, acting as the user named.
func recordURL(sb *Sandbox, table string, id, user dataverse.GUID) string {
	v := url.Values{"pagetype": {"entityrecord"}, "etn": {table}, "id": {id.String()}, "user": {user.String()}}
	return sb.AppURL() + "&" + v.Encode()
}

func (p *appPage) run(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	require.NoError(p.t, chromedp.Do(p.tab, steps...))
}

func (p *appPage) eval(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.tab, chromedp.Evaluate[string](js))
	require.NoError(p.t, err, js)
	return v
}

// onNewDocument runs js in every page the tab opens from now on, before the page's own scripts.
func (p *appPage) onNewDocument(js string) {
	p.t.Helper()
	p.run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
		return err
	}))
}

// waitFor polls the page until js is true; a page being replaced (a navigation) is polled again.
func (p *appPage) waitFor(js string, timeout time.Duration, why string) {
	p.t.Helper()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		ok, err := chromedp.Run(p.tab, chromedp.Evaluate[bool](`!!(`+js+`)`))
		if err == nil && ok {
			return
		}
		last = err
	}
	notes, _ := chromedp.Run(p.tab, chromedp.Evaluate[string](`document.title + " | " + [...document.querySelectorAll(".notification, .unsupported")].map(n => n.textContent).join(" | ")`))
	p.t.Fatalf("%s: still not true after %s (%v): %s\npage: %s", why, timeout, last, js, notes)
}

// click clicks the element a script finds, once it is there and the page is ready: the DOM of a page
// just navigated to is read afresh, which chromedp's node queries do not always do.
func (p *appPage) click(find, what string) {
	p.t.Helper()
	// The page's scripts load last: a button pressed before they have run does nothing.
	p.waitFor(`document.readyState === "complete" && window.SimPage && (`+find+`)`, 10*time.Second, what+" is on the page")
	p.eval(`(` + find + `.click(), "")`)
}

// press presses the command bar's button labelled label, once the page's script has enabled it.
func (p *appPage) press(label string) {
	p.t.Helper()
	p.click(`[...document.querySelectorAll("button")].find(b => b.textContent.trim() === `+jsString(label)+` && !b.disabled)`, "the button "+label)
}

// navigate follows the sitemap's link to the list of table.
func (p *appPage) navigate(table string) {
	p.t.Helper()
	p.click(`document.querySelector('nav.sitemap a[href*="etn=`+table+`&"]')`, "the sitemap's link to "+table)
	p.waitFor(`document.querySelector("#viewid") && new URLSearchParams(location.search).get("etn") === `+jsString(table), 10*time.Second, "the list of "+table)
}

// chooseView picks a view in the view picker by name, with the picker's Show button.
func (p *appPage) chooseView(name string) {
	p.t.Helper()
	id := p.eval(`[...document.querySelectorAll("#viewid option")].find(o => o.textContent === ` + jsString(name) + `)?.value ?? ""`)
	require.NotEmpty(p.t, id, "the view picker offers %q", name)
	p.eval(`(document.getElementById("viewid").value = ` + jsString(id) + `, "")`)
	p.click(`document.querySelector(".viewpicker button")`, "the view picker's Show button")
	p.waitFor(`document.querySelector("table.grid caption")?.textContent.startsWith(`+jsString(name+" (")+`)`, 10*time.Second, "the grid shows the view")
}

// open follows the grid's link to the row named name.
func (p *appPage) open(name string) {
	p.t.Helper()
	link := `[...document.querySelectorAll("table.grid tbody a")].find(a => a.textContent === ` + jsString(name) + `)`
	require.NotEmpty(p.t, p.eval(link+`?.getAttribute("href") ?? ""`), "the grid lists %q", name)
	p.eval(`(` + link + `.click(), "")`)
	p.waitFor(`document.getElementById("record-name")?.textContent === `+jsString(name), 10*time.Second, "the row opens")
}

// openRecord opens a row's form by its address and waits until its buttons work.
func (p *appPage) openRecord(address string) {
	p.t.Helper()
	p.run(chromedp.Navigate(address))
	p.waitFor(`document.readyState === "complete" && window.SimPage && document.getElementById("record-form")`, 10*time.Second, "the form opens")
}

// header is what the form's header shows for a column.
func (p *appPage) header(column string) string {
	p.t.Helper()
	return p.eval(`document.querySelector('.header-fields dd[data-column="` + column + `"]')?.textContent.trim() ?? ""`)
}

// field is what the form's field of a column holds ("" when the form has no such field).
func (p *appPage) field(column string) string {
	p.t.Helper()
	return p.eval(`document.querySelector('#record-form [data-column="` + column + `"]')?.value ?? ""`)
}

// typeInto types text into a field with the keyboard, replacing what it holds.
func (p *appPage) typeInto(column, text string) {
	p.t.Helper()
	field := `document.querySelector('[data-column="` + column + `"][data-kind]')`
	p.waitFor(field, 10*time.Second, "the field "+column)
	p.eval(`(` + field + `.focus(), ` + field + `.select(), "")`)
	p.run(chromedp.KeyEvent(text))
	require.Equal(p.t, text, p.eval(field+`.value`), "typed into %s", column)
}

// commandNotice waits until the form's notification from the command buttons (csp_commands.js) is one
// that done accepts (a JavaScript function of its text), and returns its text.
func (p *appPage) commandNotice(done string, timeout time.Duration, why string) string {
	p.t.Helper()
	notice := `document.querySelector('.notification[data-id="csp_command"]')?.textContent ?? ""`
	p.waitFor(`(`+done+`)(`+notice+`)`, timeout, why)
	return p.eval(notice)
}
