package testrig

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// sendAll sends n requests one after another through a client pacing itself within the documented budget,
// against the simulator enforcing it, and returns the figures.
func sendAll(t *testing.T, n int) BudgetFigures {
	dvs := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
	dvs.SetLimits(dataversetest.DataverseLimits())
	dv, err := dataverse.NewClient("http://dataverse.test", nil, &dataverse.ClientOptions{HTTPClient: dvs.InMemoryClient()})
	require.NoError(t, err)
	start := time.Now()
	for i := range n {
		_, err := dv.WhoAmI(t.Context())
		require.NoError(t, err, "request %d", i+1)
	}
	return FiguresOf(dvs, dv, "whoami", n, time.Since(start))
}

// A client that keeps the server's window full scores 100% of what the budget allows: its bursts at the
// start of each window (an empty window admits 6,000 at once) count against whole windows, not against the
// steady rate, which they would beat (15,000 in 602 s is 125% of 20 a second). The partial window at the
// end, where the work ran out, is left out.
func TestBudgetShareCountsWholeWindows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := sendAll(t, 15000)
		assert.Equal(t, 602*time.Second, f.Elapsed, "6,000 at once, 6,000 when they leave the client's window (301 s), 3,000 at 602 s")
		assert.Equal(t, 2, f.Windows)
		assert.Equal(t, 12000, f.WindowRequests)
		assert.InDelta(t, 100, f.PctOfCeiling(), 0.001)
		assert.True(t, f.BudgetBound(), "the client waited for the budget")
		assert.Zero(t, f.Throttled)
	})
}

// A workload that ends inside its first window is measured against that window, and is not bound by the
// budget: the goal does not apply to it.
func TestBudgetShareOfAShortRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := sendAll(t, 3000)
		assert.Equal(t, 1, f.Windows)
		assert.InDelta(t, 50, f.PctOfCeiling(), 0.001)
		assert.False(t, f.BudgetBound())
		f.Bulk = true
		assert.InDelta(t, 50/0.9, f.PctOfShare(), 0.001, "bulk work is measured against the share the client's reserve leaves it")
	})
}
