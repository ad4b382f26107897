package connector

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/request"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// fastCommands makes the command buttons (csp_commands.js) look for the connector's answer every 100 ms
// rather than every 2 s: the installed script keeps the options it finds (CSPConnector.options).
const fastCommands = `window.CSPConnector = { options: { pollIntervalMs: 100, pollLimitMs: 120000 } };`

// TestSandboxCommandsInBrowser: the installed command buttons run in a real browser, on the app's form as
// Dynamics shows it. An admin fixes the failed sandbox-capped change's quantity, opens the change, clicks
// Retry, and the real connector provisions it: the form shows Provisioned and says so. Diagnose then shows
// the diagnosis.
func TestSandboxCommandsInBrowser(t *testing.T) {
	t.Parallel()
	app := openAppPage(t, 3*time.Minute)
	app.onNewDocument(fastCommands)
	sb := testSandbox(t)
	dv := sb.DataverseClient
	runService(t, sb.Service)

	capped := sb.DemoChanges[demoChangeSandboxCap]
	require.Eventually(t, func() bool { return readLCL(t, dv, capped).ProvisioningStatus == schema.ProvisioningFailed },
		15*time.Second, 20*time.Millisecond, "the first sweep fails the capped change")
	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	_, err = admin.Update(t.Context(), schema.SetLicenseChangeLogs, capped, dataverse.Row{"csp_quantity": 20}, nil)
	require.NoError(t, err)

	app.openRecord(recordURL(sb, schema.TableLicenseChangeLog, capped, sb.AdminID))
	require.Equal(t, "Failed Provisioning", app.header("csp_provisioningstatus"), "the edit's own run leaves it Failed: only Retry brings it back")
	require.Equal(t, "20", app.field("csp_quantity"))

	app.press("Retry")
	app.waitFor(`document.querySelector('.header-fields dd[data-column="csp_provisioningstatus"]')?.textContent.trim() === "Provisioned"`, 30*time.Second,
		"the form shows the change Provisioned")
	notice := app.commandNotice(`n => n.startsWith("Provisioned: ")`, 10*time.Second, "the outcome is said on the form")
	t.Logf("notification after Retry: %s", notice)
	l := readLCL(t, dv, capped)
	assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus)
	assert.Contains(t, notice, l.ProvisioningMessage)
	sub, ok := sb.PartnerCenter.Subscription(demoContosoTenant, demoContosoBasicSubscription)
	require.True(t, ok)
	assert.Equal(t, 20, sub.Quantity, "Partner Center has the new quantity")

	// Diagnose: the request is answered with the walk, shown on the form.
	app.press("Diagnose")
	notice = app.commandNotice(`n => n.startsWith("Diagnosis written")`, 30*time.Second, "Diagnose says it is done")
	t.Logf("notification after Diagnose: %s", notice)
	want, err := sb.Service.Prov.Diagnose(t.Context(), capped)
	require.NoError(t, err)
	assert.Equal(t, strings.TrimRight(want.Text(), "\n"), strings.TrimRight(app.field(request.DiagnosisColumn), "\n"), "the form shows the diagnosis")
	assert.Equal(t, "---", app.field(request.DiagnoseColumn), "the request was answered and emptied (the form shows --- for no value)")
}

// skewBrowserClock moves the page's clock (Date.now and new Date()) ten years ahead, as a wrong clock on
// an admin's machine would be: a button that dated its request by it would ask for a run in the future.
// It runs before each page's own scripts (onNewDocument), so the whole page lives by the wrong clock.
const skewBrowserClock = `(function(){
  var skew = 10 * 365 * 24 * 3600 * 1000, RealDate = Date, realNow = Date.now;
  function Skewed() { return arguments.length ? new (Function.prototype.bind.apply(RealDate, [null].concat([].slice.call(arguments))))() : new RealDate(realNow() + skew); }
  Skewed.prototype = RealDate.prototype; Skewed.now = function () { return realNow() + skew; };
  Skewed.parse = RealDate.parse; Skewed.UTC = RealDate.UTC;
  window.Date = Skewed;
})()`

// TestSandboxCommandsInBrowserAskWithTheServersClock: a button dates its request by Dataverse's clock,
// whatever the browser's says (Run Now with the page's clock ten years ahead runs the job now and the
// row says nothing of a time still to come); Retry on a change that has not failed changes nothing and
// says why; Map to account writes what mapping by hand writes.
func TestSandboxCommandsInBrowserAskWithTheServersClock(t *testing.T) {
	t.Parallel()
	app := openAppPage(t, 3*time.Minute)
	app.onNewDocument(fastCommands)
	app.onNewDocument(skewBrowserClock)
	sb := testSandbox(t)
	dv := sb.DataverseClient
	runService(t, sb.Service)

	var job schema.Job
	var err error
	require.Eventually(t, func() bool {
		job, err = jobRow(t.Context(), dv, provisioning.ReportJobName)
		return err == nil
	}, 15*time.Second, 20*time.Millisecond, "the service creates its job rows")
	before := time.Now()
	app.openRecord(recordURL(sb, schema.TableJob, job.ID, sb.AdminID))
	pageNow, err := time.Parse(time.RFC3339Nano, app.eval(`new Date().toISOString()`))
	require.NoError(t, err)
	require.WithinDuration(t, before.AddDate(10, 0, 0), pageNow, 30*24*time.Hour, "the page's clock is ten years ahead")
	app.press("Run Now")
	notice := app.commandNotice(`n => n.startsWith("Run Now done.")`, 30*time.Second, "the job ran and the form says so")
	t.Logf("notification after Run Now: %s", notice)
	job, err = jobRow(t.Context(), dv, provisioning.ReportJobName)
	require.NoError(t, err)
	assert.True(t, job.RunRequestedOn.IsZero(), "the request was answered")
	assert.WithinDuration(t, time.Now(), job.LastRunOn, time.Since(before)+2*time.Second, "it ran now")
	assert.NotContains(t, job.Message, "a time still to come", "the request was dated by the server, not the browser")

	// Retry on a change that did not fail: nothing is written, and the form says why.
	provisioned := sb.DemoChanges[demoChangeProvisioned]
	require.Eventually(t, func() bool { return readLCL(t, dv, provisioned).ProvisioningStatus == schema.ProvisioningProvisioned },
		15*time.Second, 20*time.Millisecond)
	l := readLCL(t, dv, provisioned)
	app.openRecord(recordURL(sb, schema.TableLicenseChangeLog, provisioned, sb.AdminID))
	app.press("Retry")
	notice = app.commandNotice(`n => n !== ""`, 10*time.Second, "Retry says why it did nothing")
	assert.Equal(t, "Retry is for a change that failed; this one is Provisioned, so nothing was changed.", notice)
	assert.Equal(t, l.ETag, readLCL(t, dv, provisioned).ETag, "the row was not written")

	// Map to account: the lookup offers the accounts; the choice is written as a mapping by hand.
	var unmapped schema.ProviderAccount
	for r, err := range dv.List(t.Context(), schema.SetProviderAccounts, &dataverse.Query{Select: dataverse.Columns[schema.ProviderAccount]()}) {
		require.NoError(t, err)
		var pa schema.ProviderAccount
		require.NoError(t, dataverse.Unmarshal(r, &pa))
		if pa.State == schema.StateActive && pa.MappingStatus != schema.MappingMapped {
			unmapped = pa
		}
	}
	require.NotZero(t, unmapped.ID, "the sandbox has a provider account to map")
	var account dataverse.GUID
	for r, err := range dv.List(t.Context(), schema.SetAccounts, &dataverse.Query{Select: []string{"accountid"}, Filter: dataverse.Eq("name", "Northwind Traders")}) {
		require.NoError(t, err)
		account, _ = r.GUID("accountid")
	}
	require.NotZero(t, account)
	app.openRecord(recordURL(sb, schema.TableProviderAccount, unmapped.ID, sb.AdminID))
	app.press("Map to account")
	app.click(fmt.Sprintf(`document.querySelector('#xrm-lookup button[data-id=%q]')`, account.String()), "the account picker's Northwind Traders")
	notice = app.commandNotice(`n => n.startsWith("Mapped to Northwind Traders.")`, 10*time.Second, "Map to account says it is done")
	t.Logf("notification after Map to account: %s", notice)
	r, err := dv.Get(t.Context(), schema.SetProviderAccounts, unmapped.ID, &dataverse.GetOptions{Select: dataverse.Columns[schema.ProviderAccount]()})
	require.NoError(t, err)
	var pa schema.ProviderAccount
	require.NoError(t, dataverse.Unmarshal(r, &pa))
	assert.Equal(t, account, pa.Account.ID)
	assert.Equal(t, schema.MappingMapped, pa.MappingStatus)
	assert.Regexp(t, `^Mapped by .+ on the form on \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2} UTC\.$`, pa.MappingMessage)
	if m := regexp.MustCompile(`on (\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}) UTC\.$`).FindStringSubmatch(pa.MappingMessage); assert.NotNil(t, m) {
		at, err := time.Parse("2 Jan 2006 15:04", m[1])
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now(), at, 5*time.Minute, "the mapping is dated by the server's clock, not the page's")
	}
}
