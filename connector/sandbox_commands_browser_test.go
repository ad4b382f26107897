package connector

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/request"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// chromium finds Debian's Chromium. Outside CI a machine without it skips the browser tests; CI installs
// it (.ci/run), so there a missing browser fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "true" {
		t.Skip("no chromium on this machine (apt-get install chromium); CI runs this test")
	}
	t.Fatal("chromium is not installed: .ci/run installs it")
	return ""
}

// browser starts a headless Chromium with a fresh profile and the flags that keep it off the network
// (this machine has none: without them Chromium waits on its background services).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	_, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	require.NoError(t, err, "start chromium")
	return ctx
}

// columnText is what the sandbox form page shows for a column ("" when the row has no value).
func columnText(ctx context.Context, column string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(function(){ var td = document.querySelector('tr[data-column=%q] td'); return td ? td.textContent : ""; })()`, column)))
}

// notification is the text of the form's notification ("" when there is none).
func notification(ctx context.Context) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('.notification') || {}).textContent || ""`))
}

// openForm opens the sandbox form page of a row and waits until its buttons are ready; the buttons poll
// the row every 100 ms.
func openForm(ctx context.Context, page string) error {
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`))); err != nil {
		return err
	}
	_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`CSPConnector.options.pollIntervalMs = 100`))
	return err
}

// TestSandboxCommandsInBrowser: the installed command buttons run in a real browser. The sandbox's form
// page loads the commands' web resource as Dynamics would, with the simulator's minimal Xrm host; an
// admin fixes the failed sandbox-capped change's quantity (as on the form), clicks Retry, and the real
// connector provisions it: the page shows Provisioned and says so. Diagnose then shows the diagnosis.
func TestSandboxCommandsInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
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

	page := fmt.Sprintf("%s/sandbox/form.html?table=%s&id=%s&user=%s", sb.Dataverse.URL, schema.TableLicenseChangeLog, capped, sb.AdminID)
	require.NoError(t, openForm(ctx, page))
	status, err := columnText(ctx, "csp_provisioningstatus")
	require.NoError(t, err)
	require.Equal(t, "Failed Provisioning", status, "the edit's own run leaves it Failed: only Retry brings it back")
	quantity, err := columnText(ctx, "csp_quantity")
	require.NoError(t, err)
	require.Equal(t, "20", quantity)

	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("csp_licensechangelog_retry"))))
	require.Eventually(t, func() bool {
		s, err := columnText(ctx, "csp_provisioningstatus")
		return err == nil && s == "Provisioned"
	}, 30*time.Second, 50*time.Millisecond, "the page shows the change Provisioned")
	var notice string
	require.Eventually(t, func() bool {
		notice, err = notification(ctx)
		return err == nil && strings.HasPrefix(notice, "Provisioned: ")
	}, 10*time.Second, 50*time.Millisecond, "the outcome is said on the form")
	t.Logf("notification after Retry: %s", notice)
	l := readLCL(t, dv, capped)
	assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus)
	assert.Contains(t, notice, l.ProvisioningMessage)
	sub, ok := sb.PartnerCenter.Subscription(demoContosoTenant, demoContosoBasicSubscription)
	require.True(t, ok)
	assert.Equal(t, 20, sub.Quantity, "Partner Center has the new quantity")

	// Diagnose: the request is answered with the walk, shown on the page.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("csp_licensechangelog_diagnose"))))
	var shown string
	require.Eventually(t, func() bool {
		shown, err = columnText(ctx, request.DiagnosisColumn)
		return err == nil && shown != ""
	}, 30*time.Second, 50*time.Millisecond, "the page shows the diagnosis")
	want, err := sb.Service.Prov.Diagnose(t.Context(), capped)
	require.NoError(t, err)
	assert.Equal(t, strings.TrimRight(want.Text(), "\n"), strings.TrimRight(shown, "\n"))
	require.Eventually(t, func() bool {
		notice, err = notification(ctx)
		return err == nil && strings.HasPrefix(notice, "Diagnosis written")
	}, 10*time.Second, 50*time.Millisecond)
	requested, _ := columnText(ctx, request.DiagnoseColumn)
	assert.Empty(t, requested, "the request was answered and emptied")
}

// skewBrowserClock moves the page's clock (Date.now and new Date()) ten years ahead, as a wrong clock on
// an admin's machine would be: a button that dated its request by it would ask for a run in the future.
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
	ctx := browser(t)
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
	require.NoError(t, openForm(ctx, fmt.Sprintf("%s/sandbox/form.html?table=%s&id=%s&user=%s", sb.Dataverse.URL, schema.TableJob, job.ID, sb.AdminID)))
	_, err = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](skewBrowserClock))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("csp_job_runnow"))))
	var notice string
	require.Eventually(t, func() bool {
		notice, err = notification(ctx)
		return err == nil && strings.HasPrefix(notice, "Run Now done.")
	}, 30*time.Second, 50*time.Millisecond, "the job ran and the form says so")
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
	require.NoError(t, openForm(ctx, fmt.Sprintf("%s/sandbox/form.html?table=%s&id=%s&user=%s", sb.Dataverse.URL, schema.TableLicenseChangeLog, provisioned, sb.AdminID)))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("csp_licensechangelog_retry"))))
	require.Eventually(t, func() bool {
		notice, err = notification(ctx)
		return err == nil && notice != ""
	}, 10*time.Second, 50*time.Millisecond)
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
	require.NoError(t, openForm(ctx, fmt.Sprintf("%s/sandbox/form.html?table=%s&id=%s&user=%s", sb.Dataverse.URL, schema.TableProviderAccount, unmapped.ID, sb.AdminID)))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("csp_provideraccount_maptoaccount")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#xrm-lookup button[data-id=%q]`, account.String()))),
	))
	require.Eventually(t, func() bool {
		notice, err = notification(ctx)
		return err == nil && strings.HasPrefix(notice, "Mapped to Northwind Traders.")
	}, 10*time.Second, 50*time.Millisecond)
	r, err := dv.Get(t.Context(), schema.SetProviderAccounts, unmapped.ID, &dataverse.GetOptions{Select: dataverse.Columns[schema.ProviderAccount]()})
	require.NoError(t, err)
	var pa schema.ProviderAccount
	require.NoError(t, dataverse.Unmarshal(r, &pa))
	assert.Equal(t, account, pa.Account.ID)
	assert.Equal(t, schema.MappingMapped, pa.MappingStatus)
	assert.Regexp(t, `^Mapped by .+ on the form on \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2} UTC\.$`, pa.MappingMessage)
}
