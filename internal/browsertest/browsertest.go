// Package browsertest starts headless Chromium for tests that drive pages in a real browser (chromedp):
// Debian's chromium, a fresh profile per test, no network of its own (no component updates, sync or
// background requests), so a page works only with what the server under test serves.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium is where Debian's chromium package installs the browser.
const Chromium = "/usr/bin/chromium"

// New returns a browser tab's context for the test, closed when the test ends, bounded by timeout. The test
// is skipped when Chromium is missing, except in CI (CI=true), where that fails it: CI installs it.
func New(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	path := Chromium
	if _, err := os.Stat(path); err != nil {
		if p, lookErr := exec.LookPath("chromium"); lookErr == nil {
			path = p
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("browsertest: %s is missing; CI installs Debian's chromium package (.ci/run)", Chromium)
		} else {
			t.Skipf("browsertest: %s is missing (apt-get install chromium); the browser test is skipped outside CI", Chromium)
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 860),
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	return tab
}
