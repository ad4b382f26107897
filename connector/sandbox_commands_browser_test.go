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
