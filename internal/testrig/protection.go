package testrig

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
)

// The service protection benchmarks (BenchmarkServiceProtection in each workflow's package) run a
// workload in fake time (testing/synctest) against the Dataverse simulator enforcing Dataverse's
// documented per-user limits, with BenchCost as the server's execution time, and measure it against what
// that budget allows. testing/synctest bubbles only a *testing.T, so the benchmark runs its workload as a
// test in a child process (this test binary) and reads the figures it prints.
//
// What the budget allows. Dataverse admits, per user, 6,000 requests and 1,200 s of execution time in any
// 300 s window. A run starts with an empty window, and a client that paces itself with a sliding window
// (the Dataverse client does) sends a window's worth as fast as the work allows, then the next when the
// first leave the window: so a throughput averaged over a run shorter than a few windows is not a rate the
// budget sustains (the first window's allowance arrives at once), and a figure like "units a second ÷ 20
// requests a second" then exceeds 100%. The figure here counts whole windows instead: from the run's first
// request, each 300 s window that ended before the run did (work was waiting all through it) admitted
// some requests and execution time, and the budget allowed 6,000 and 1,200 s in it. The share of the
// binding one, summed over those windows, is the throughput as a share of what the budget allows: the
// work a unit needs is what it is (requests/unit, beside its floor), so units done in a window are in
// proportion to the budget used in it. The partial window at the end, where the work ran out, says
// nothing about pacing and is left out. A run that ends within its first window is measured against that
// one window.
//
// Bulk work (jobs, sweeps, and the changes a success wakes) may use only its share of the budget: the
// client leaves a reserve to interactive work (dataverse.DefaultBulkReserve, 10%), so against the whole
// documented budget it tops out at 90% by design. Both figures are reported; the goal is judged against
// the share the workload's work may use (PctOfShare): the whole budget for interactive work, 90% for a
// workload with bulk work in it.
//
// A workload the budget never held back (the client's pacing never waited: BudgetWaited) is not bound by
// the budget: its throughput is what its own work allows (the benchmarks without service protection
// measure that), and its share of the budget is reported for what it is, without the goal. The goal
// applies to workloads the budget bounds; they are sized to span several windows.

// Dataverse's budget per user: 6,000 requests and 1,200 s of execution time per 300 s.
const (
	BudgetRequests      = 6000
	BudgetExecutionTime = 1200 * time.Second
	BudgetWindow        = 300 * time.Second

	BudgetRequestsPerSecond = float64(BudgetRequests) / 300
	BudgetExecutionPerSec   = 1200.0 / 300
)

// BudgetFigures are what a workload cost and how long it took in fake time.
type BudgetFigures struct {
	Workload string
	Units    int
	// Elapsed is the fake time from the first request to the last answer.
	Elapsed time.Duration
	// Requests are what service protection counts: a $batch is one; Throttled are 429s among them.
	Requests, Throttled int
	// ExecutionTime is the server's execution time summed over the requests.
	ExecutionTime time.Duration
	// Windows are the whole budget windows of the run (at least 1), and WindowRequests and
	// WindowExecution what the server admitted in them.
	Windows         int
	WindowRequests  int
	WindowExecution time.Duration
	// Waited is how long the client's budget held requests back (dataverse.Client.BudgetWaited): zero when
	// the budget did not bound the workload.
	Waited time.Duration
	// Bulk marks a workload of bulk work, whose share of the budget leaves the client's reserve to
	// interactive work (dataverse.DefaultBulkReserve).
	Bulk bool
	// Floor is the fewest requests a unit of the workload needs, and FloorWhy what makes it the floor.
	Floor    float64
	FloorWhy string
}

// ProtectedDataverse is the simulator's service protection as the benchmarks run it: Dataverse's
// documented limits and BenchCost.
func ProtectedDataverse() dataversetest.Limits {
	l := dataversetest.DataverseLimits()
	l.Cost = dataversetest.BenchCost()
	return l
}

// FiguresOf reads the simulator's request log for a workload of units that took elapsed; dv is the
// client it ran with (for how long its budget held requests back).
func FiguresOf(dvs *dataversetest.Server, dv *dataverse.Client, workload string, units int, elapsed time.Duration) BudgetFigures {
	f := BudgetFigures{Workload: workload, Units: units, Elapsed: elapsed, Waited: dv.BudgetWaited()}
	var start time.Time
	var log []dataversetest.Request
	for _, r := range dvs.Requests() {
		if r.InBatch {
			continue
		}
		log = append(log, r)
		if start.IsZero() || r.At.Before(start) {
			start = r.At
		}
		f.Requests++
		f.ExecutionTime += r.ExecutionTime
		if r.Status == http.StatusTooManyRequests {
			f.Throttled++
		}
	}
	f.Windows = max(1, int(elapsed/BudgetWindow))
	end := start.Add(time.Duration(f.Windows) * BudgetWindow)
	for _, r := range log {
		if r.At.Before(end) && r.Status != http.StatusTooManyRequests {
			f.WindowRequests++
			f.WindowExecution += r.ExecutionTime
		}
	}
	return f
}

// RequestsPerUnit is the workload's requests per unit of work.
func (f BudgetFigures) RequestsPerUnit() float64 { return float64(f.Requests) / float64(f.Units) }

// Ceiling is the units a second the budget sustains at the workload's cost per unit: the lesser of the
// request budget (20 a second) over requests per unit and the execution time budget (4 s a second) over
// execution time per unit.
func (f BudgetFigures) Ceiling() float64 {
	byRequests := BudgetRequestsPerSecond / f.RequestsPerUnit()
	byExecution := BudgetExecutionPerSec / (f.ExecutionTime.Seconds() / float64(f.Units))
	return min(byRequests, byExecution)
}

// PctOfCeiling is the throughput as a share of what the budget allows, in percent: the share of the
// binding budget (requests or execution time) used in the run's whole windows.
func (f BudgetFigures) PctOfCeiling() float64 {
	w := float64(f.Windows)
	byRequests := float64(f.WindowRequests) / (w * BudgetRequests)
	byExecution := f.WindowExecution.Seconds() / (w * BudgetExecutionTime.Seconds())
	return 100 * max(byRequests, byExecution)
}

// Share is the part of the budget the workload's work may use: 1, or for bulk work what the client's
// reserve leaves it.
func (f BudgetFigures) Share() float64 {
	if f.Bulk {
		return float64(100-dataverse.DefaultBulkReserve) / 100
	}
	return 1
}

// PctOfShare is PctOfCeiling against the share of the budget the workload may use (Share), in percent.
func (f BudgetFigures) PctOfShare() float64 { return f.PctOfCeiling() / f.Share() }

// BudgetBound reports a workload the budget held back: the goal on PctOfCeiling applies to it.
func (f BudgetFigures) BudgetBound() bool { return f.Waited > 0 || f.Throttled > 0 }

// Print writes the figures for the parent benchmark to read.
func (f BudgetFigures) Print(w io.Writer) {
	data, _ := json.Marshal(f)
	fmt.Fprintf(w, "\nBUDGET-FIGURES %s\n", data)
}

// RunWorkload runs the test named test of this binary in a child process with env=value and returns
// the figures it printed.
func RunWorkload(b *testing.B, test, env, value string) BudgetFigures {
	b.Helper()
	child := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	child.Env = append(os.Environ(), env+"="+value)
	out, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	var f *BudgetFigures
	var tail []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if raw, ok := strings.CutPrefix(line, "BUDGET-FIGURES "); ok {
			f = &BudgetFigures{}
			if err := json.Unmarshal([]byte(raw), f); err != nil {
				b.Fatal(err)
			}
			continue
		}
		tail = append(tail, line)
	}
	if err := child.Wait(); err != nil || f == nil {
		b.Fatalf("the workload %s failed (%v):\n%s", test, err, strings.Join(tail, "\n"))
	}
	return *f
}

// ReportBudget reports the figures as the benchmark's metrics and fails the benchmark when a goal is
// missed: no 429, and, for a workload the budget bounds, a throughput of at least 90% of what the budget
// allows its work (PctOfShare).
func ReportBudget(b *testing.B, f BudgetFigures) {
	b.Helper()
	rate := float64(f.Units) / f.Elapsed.Seconds()
	b.ReportMetric(float64(f.Throttled), "429s")
	b.ReportMetric(f.RequestsPerUnit(), "requests/unit")
	b.ReportMetric(f.Floor, "floor-requests/unit")
	b.ReportMetric(f.PctOfCeiling(), "pct-of-budget-ceiling")
	b.ReportMetric(f.PctOfShare(), "pct-of-priority-share")
	b.ReportMetric(rate, "units/s")
	b.ReportMetric(f.Ceiling(), "ceiling-units/s")
	b.ReportMetric(float64(f.ExecutionTime.Milliseconds())/float64(f.Units), "exec-ms/unit")
	b.ReportMetric(f.Waited.Seconds(), "budget-wait-s")
	bound := "bound by the budget"
	if !f.BudgetBound() {
		bound = "not bound by the budget (the client never waited for it): the goal on the share does not apply"
	}
	b.Logf("%s: %d units in %s of fake time (%.2f/s); %d requests (%.4f a unit; the floor is %.4f: %s), %s of execution time (%.1f ms a unit); "+
		"%.2f%% of what the budget allows over %d whole window(s) (%d requests, %s of execution time), %.2f%% of the %.0f%% its work may use; the budget sustains %.2f units/s; %s; %d 429(s)",
		f.Workload, f.Units, f.Elapsed.Round(time.Millisecond), rate, f.Requests, f.RequestsPerUnit(), f.Floor, f.FloorWhy,
		f.ExecutionTime.Round(time.Second), float64(f.ExecutionTime.Milliseconds())/float64(f.Units),
		f.PctOfCeiling(), f.Windows, f.WindowRequests, f.WindowExecution.Round(time.Second), f.PctOfShare(), 100*f.Share(), f.Ceiling(), bound, f.Throttled)
	if f.Throttled > 0 {
		b.Fatalf("%s: Dataverse answered %d request(s) with 429; the goal is none", f.Workload, f.Throttled)
	}
	if pct := f.PctOfShare(); f.BudgetBound() && pct < 90 {
		b.Fatalf("%s: %.1f%% of what the budget allows its work (%.1f%% of the whole budget); the goal is at least 90%%", f.Workload, pct, f.PctOfCeiling())
	}
}
