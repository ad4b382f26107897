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

	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
)

// The service protection benchmarks (BenchmarkServiceProtection in each workflow's package) run a
// workload in fake time (testing/synctest) against the Dataverse simulator enforcing Dataverse's
// documented per-user limits, with BenchCost as the server's execution time, and measure it against what
// that budget allows. testing/synctest bubbles only a *testing.T, so the benchmark runs its workload as a
// test in a child process (this test binary) and reads the figures it prints.

// Dataverse's budget per second: 6,000 requests and 1,200 s of execution time per 300 s.
const (
	BudgetRequestsPerSecond = 6000.0 / 300
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

// FiguresOf reads the simulator's request log for a workload of units that took elapsed.
func FiguresOf(dvs *dataversetest.Server, workload string, units int, elapsed time.Duration) BudgetFigures {
	f := BudgetFigures{Workload: workload, Units: units, Elapsed: elapsed}
	for _, r := range dvs.Requests() {
		if r.InBatch {
			continue
		}
		f.Requests++
		f.ExecutionTime += r.ExecutionTime
		if r.Status == http.StatusTooManyRequests {
			f.Throttled++
		}
	}
	return f
}

// RequestsPerUnit is the workload's requests per unit of work.
func (f BudgetFigures) RequestsPerUnit() float64 { return float64(f.Requests) / float64(f.Units) }

// Ceiling is the units a second the budget allows at the workload's cost per unit: the lesser of the
// request budget (20 a second) over requests per unit and the execution time budget (4 s a second) over
// execution time per unit.
func (f BudgetFigures) Ceiling() float64 {
	byRequests := BudgetRequestsPerSecond / f.RequestsPerUnit()
	byExecution := BudgetExecutionPerSec / (f.ExecutionTime.Seconds() / float64(f.Units))
	return min(byRequests, byExecution)
}

// PctOfCeiling is the throughput as a share of Ceiling, in percent.
func (f BudgetFigures) PctOfCeiling() float64 {
	return 100 * (float64(f.Units) / f.Elapsed.Seconds()) / f.Ceiling()
}

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
// missed: no 429, and a throughput of at least 90% of what the budget allows.
func ReportBudget(b *testing.B, f BudgetFigures) {
	b.Helper()
	rate := float64(f.Units) / f.Elapsed.Seconds()
	b.ReportMetric(float64(f.Throttled), "429s")
	b.ReportMetric(f.RequestsPerUnit(), "requests/unit")
	b.ReportMetric(f.Floor, "floor-requests/unit")
	b.ReportMetric(f.PctOfCeiling(), "pct-of-budget-ceiling")
	b.ReportMetric(rate, "units/s")
	b.ReportMetric(f.Ceiling(), "ceiling-units/s")
	b.ReportMetric(float64(f.ExecutionTime.Milliseconds())/float64(f.Units), "exec-ms/unit")
	b.Logf("%s: %d units in %s of fake time (%.2f/s); %d requests (%.4f a unit; the floor is %.4f: %s), %s of execution time (%.1f ms a unit); budget ceiling %.2f units/s (%.0f%%); %d 429(s)",
		f.Workload, f.Units, f.Elapsed.Round(time.Millisecond), rate, f.Requests, f.RequestsPerUnit(), f.Floor, f.FloorWhy,
		f.ExecutionTime.Round(time.Second), float64(f.ExecutionTime.Milliseconds())/float64(f.Units), f.Ceiling(), f.PctOfCeiling(), f.Throttled)
	if f.Throttled > 0 {
		b.Fatalf("%s: Dataverse answered %d request(s) with 429; the goal is none", f.Workload, f.Throttled)
	}
	if pct := f.PctOfCeiling(); pct < 90 {
		b.Fatalf("%s: %.1f%% of what the budget allows; the goal is at least 90%%", f.Workload, pct)
	}
}
