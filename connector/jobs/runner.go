package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/request"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// Job is scheduled work. Its csp_job row (created on first start) holds the schedule an admin can change,
// the Run Now request, the lease and the last outcome; each run is recorded in csp_jobrun.
type Job struct {
	// Name is csp_name, the job's unique key.
	Name string
	// Schedule is the default interval written when the row is created; the row's csp_schedule (a Go
	// duration such as 30s, 15m or 1h30m) rules after that.
	Schedule time.Duration
	// Run does the work and reports what it did. An error marks the run Failed (or Partially succeeded when
	// the counts show some success); its text is written on the run for people, so make it plain words.
	Run func(ctx context.Context) (RunCounts, error)
	// Off creates the job's row switched off, with Off as the row's message (why, and how to switch it
	// on); Run Now still runs it. Empty: created on.
	Off string
}

// RunCounts are what a run did.
type RunCounts struct {
	Processed, Created, Updated, Failed int
	// Deactivated, Mapped and Unmapped are the provider account sync's (rows whose customer left, rows
	// mapped automatically, rows that need a person).
	Deactivated, Mapped, Unmapped int
	// Summary is one line for the job row's message ("3 providers verified, 1 not connected").
	Summary string
}

// RunResult is one finished run.
type RunResult struct {
	Job     string
	RunID   dataverse.GUID
	Trigger schema.RunTrigger
	Started time.Time
	Ended   time.Time
	Status  schema.RunStatus
	Counts  RunCounts
	Err     error
}

// ErrLeaseHeld is returned when another replica holds the job's lease.
var ErrLeaseHeld = errors.New("the job is running on another replica")

// Options configure the runner.
type Options struct {
	// Instance names this replica in leases and run history.
	Instance string
	// Lease is how long a lease lasts without renewal (default 5 min); a replica that dies mid-run frees
	// the job after that long.
	Lease time.Duration
	// Tick is how often schedules and Run Now requests are checked (default 30 s).
	Tick    time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *metrics.Recorder
	// Publish announces a run that failed (JobFailed) to the flows that listen; nil: not announced.
	Publish func(notify.Notification)
}

// Runner runs jobs on their schedules under leases held on their csp_job rows, so any number of replicas
// may run the runner while each run happens once.
type Runner struct {
	dv   *dataverse.Client
	jobs map[string]Job
	opts Options
	log  *slog.Logger
	// running keeps one run per job in this replica (the lease keeps one across replicas).
	mu      sync.Mutex
	running map[string]bool
	// runs counts the runs under way, scheduled or started; a run is added under mu only before shutdown,
	// so Shutdown's wait never races a run starting.
	runs sync.WaitGroup
	// shutdown is closed by Shutdown (or when Run's context ends): no new run starts. cutoff is closed
	// when Shutdown's context ends first (or when Run's does): the runs under way are cancelled.
	shutdown, cutoff         chan struct{}
	shutdownOnce, cutoffOnce sync.Once
}

// New returns a runner for jobs.
func New(dv *dataverse.Client, jobs []Job, opts Options) *Runner {
	if opts.Lease <= 0 {
		opts.Lease = 5 * time.Minute
	}
	if opts.Tick <= 0 {
		opts.Tick = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Instance == "" {
		opts.Instance = "connector"
	}
	m := map[string]Job{}
	for _, j := range jobs {
		m[j.Name] = j
	}
	return &Runner{dv: dv, jobs: m, opts: opts, log: opts.Logger.With("component", "jobs"), running: map[string]bool{},
		shutdown: make(chan struct{}), cutoff: make(chan struct{})}
}

// Names lists the jobs.
func (j *Runner) Names() []string {
	out := make([]string, 0, len(j.jobs))
	for n := range j.jobs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Ensure creates the csp_job row of every job that has none (enabled, with its default schedule). Rows
// that exist are left as the admin set them.
func (j *Runner) Ensure(ctx context.Context) error {
	for _, job := range j.jobs {
		row := dataverse.Row{"csp_name": job.Name, "csp_schedule": formatSchedule(job.Schedule), "csp_enabled": job.Off == ""}
		if job.Off != "" {
			row["csp_message"] = schema.Fit(schema.TableJob, "csp_message", job.Off)
		}
		_, err := j.dv.Upsert(ctx, schema.SetJobs, dataverse.Key{"csp_name": job.Name}, row,
			&dataverse.UpsertOptions{Mode: dataverse.UpsertCreateOnly, PrimaryKey: schema.PrimaryKey(schema.TableJob)})
		if err != nil && !dataverse.IsDuplicate(err) && !dataverse.IsConflict(err) {
			return fmt.Errorf("jobs: create the row of %q: %w", job.Name, err)
		}
	}
	return nil
}

// Run checks every Tick and starts the jobs that are due (schedule) or asked for (Run Now), like
// http.Server.Serve, until ctx ends or Shutdown is called. When ctx ends every run under way (Start's too)
// is cancelled; after Shutdown they finish, within Shutdown's bound. Run returns once they have.
func (j *Runner) Run(ctx context.Context) {
	select {
	case <-j.shutdown:
		return
	default:
	}
	t := time.NewTicker(j.opts.Tick)
	defer t.Stop()
	for {
		j.check(ctx)
		select {
		case <-ctx.Done():
			j.stop()
			j.cutOff()
			j.runs.Wait()
			return
		case <-j.shutdown:
			j.runs.Wait()
			return
		case <-t.C:
		}
	}
}

// Shutdown stops the runner, as http.Server.Shutdown stops a server: no run starts any more (Start answers
// work.ErrShuttingDown) and the runs under way — scheduled ones and those Start began — are waited for.
// When ctx ends first they are cancelled (the shutdown bound: each is recorded as cut short) and Shutdown
// returns ctx's error.
func (j *Runner) Shutdown(ctx context.Context) error {
	j.stop()
	done := make(chan struct{})
	go func() { j.runs.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		j.cutOff()
		return ctx.Err()
	}
}

func (j *Runner) stop() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.shutdownOnce.Do(func() { close(j.shutdown) })
}

func (j *Runner) cutOff() { j.cutoffOnce.Do(func() { close(j.cutoff) }) }

// goRun runs fn in a goroutine under a context derived from ctx that the runner cancels at its cutoff,
// unless the runner is shutting down (then it returns work.ErrShuttingDown).
func (j *Runner) goRun(ctx context.Context, fn func(ctx context.Context)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	select {
	case <-j.shutdown:
		return work.ErrShuttingDown
	default:
	}
	j.runs.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-j.cutoff:
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer j.runs.Done()
		defer cancel()
		fn(ctx)
	}()
	return nil
}

// check reads every job's row once: it starts the jobs that are due and answers Run Now requests dated no
// later than the last run.
func (j *Runner) check(ctx context.Context) {
	for name := range j.jobs {
		row, err := j.Read(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				j.log.Warn("reading a job row failed", "job", name, "error", err)
			}
			continue
		}
		if trigger, due := j.due(row); due {
			_ = j.goRun(ctx, func(ctx context.Context) { // a runner shutting down starts no run
				if _, err := j.run(ctx, name, trigger, true, nil); err != nil && !errors.Is(err, ErrLeaseHeld) && !errors.Is(err, errAlreadyRunning) && !errors.Is(err, errNotDue) {
					j.log.Warn("job run failed", "job", name, "error", err)
				}
			})
			continue
		}
		j.answerStaleRequest(ctx, row)
	}
}

// due says whether the job should run now and why. A Run Now request later than the last run is due
// at once, even one dated in the future: a request means now (the run clears it).
func (j *Runner) due(row schema.Job) (schema.RunTrigger, bool) {
	now := j.opts.Now()
	if request.Of(row.RunRequestedOn, row.LastRunOn) == request.Waiting {
		return schema.TriggerRunNow, true
	}
	if row.Enabled && !now.Before(row.NextRunOn) {
		return schema.TriggerSchedule, true
	}
	return 0, false
}

// runRequestedColumn is csp_runrequestedon's display name, for messages.
const runRequestedColumn = "Run requested on"

// answerStaleRequest answers a Run Now request dated no later than the last run: the row says it was
// already carried out and the request is cleared (with If-Match: a replica that answered it first, or an
// admin who set it again meanwhile, wins). A job whose lease is held is left alone: the run's end clears
// what it served, and the next check answers the rest.
func (j *Runner) answerStaleRequest(ctx context.Context, row schema.Job) {
	if request.Of(row.RunRequestedOn, row.LastRunOn) != request.Stale {
		return
	}
	if row.LeaseOwner != "" && row.LeaseExpiresOn.After(j.opts.Now()) {
		return
	}
	note := request.StaleNote(runRequestedColumn, row.RunRequestedOn, row.LastRunOn, "the job ran",
		"To run it again, set Run requested on again (the Run Now button sets it to now).")
	_, err := j.dv.Update(ctx, schema.SetJobs, row.ID, dataverse.Row{"csp_runrequestedon": nil, "csp_message": request.WithNote(note, runRequestedColumn, row.Message)},
		&dataverse.UpdateOptions{IfMatch: row.ETag})
	if err != nil && !dataverse.IsConflict(err) && ctx.Err() == nil {
		j.log.Warn("answering a Run Now request failed", "job", row.Name, "error", err)
	}
}

var (
	errAlreadyRunning = errors.New("the job is already running in this replica")
	errNotDue         = errors.New("the job is no longer due")
)

// HandleJobRow is the work handler for csp_job rows: a changed csp_runrequestedon runs the job now.
func (j *Runner) HandleJobRow(ctx context.Context, w work.Batch) error {
	row, err := j.readByID(ctx, w.Key.ID)
	if dataverse.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, known := j.jobs[row.Name]; !known {
		return nil
	}
	if trigger, due := j.due(row); due && trigger == schema.TriggerRunNow {
		_, err := j.RunNow(ctx, row.Name, trigger)
		if errors.Is(err, ErrLeaseHeld) || errors.Is(err, errAlreadyRunning) {
			return nil // the replica running it will see the request when it finishes
		}
		return err
	}
	j.answerStaleRequest(ctx, row)
	return nil
}

// RowTrigger is the event that wakes HandleJobRow.
func RowTrigger() work.Trigger {
	return work.Trigger{Table: schema.TableJob, Message: "Update", Columns: []string{"csp_runrequestedon"},
		WriteBack: []string{"csp_lastrunon", "csp_nextrunon", "csp_laststatus", "csp_leaseowner", "csp_leaseexpireson", "csp_message", "csp_runrequestedon"}}
}

// RunNow runs the named job at once under its lease and records the run. It returns ErrLeaseHeld when
// another replica holds the lease. The run's own failure is in RunResult.Err (and on the rows); the
// error return is for failures to run at all.
func (j *Runner) RunNow(ctx context.Context, name string, trigger schema.RunTrigger) (RunResult, error) {
	return j.run(ctx, name, trigger, false, nil)
}

// Start runs the named job in the background, as RunNow does, and returns once the run is recorded: its
// csp_jobrun id, and a channel that receives the result. ctx bounds only the start: the run itself is
// the runner's, so it outlives the caller's request and ends with the runner (Shutdown lets it finish
// within its bound). Failures to start (ErrLeaseHeld, already running here, no such job,
// work.ErrShuttingDown, ctx ending first) are returned.
func (j *Runner) Start(ctx context.Context, name string, trigger schema.RunTrigger) (dataverse.GUID, <-chan RunResult, error) {
	started := make(chan dataverse.GUID, 1)
	failed := make(chan error, 1)
	done := make(chan RunResult, 1)
	err := j.goRun(context.WithoutCancel(ctx), func(runCtx context.Context) {
		res, err := j.run(runCtx, name, trigger, false, func(id dataverse.GUID) { started <- id })
		if err != nil {
			failed <- err
			return
		}
		done <- res
	})
	if err != nil {
		return dataverse.GUID{}, nil, err
	}
	select {
	case id := <-started:
		return id, done, nil
	case err := <-failed:
		return dataverse.GUID{}, nil, err
	case <-ctx.Done():
		return dataverse.GUID{}, nil, ctx.Err()
	}
}

// ErrJobRunning reports a job already running (on this replica or, under its lease, on another).
func ErrJobRunning(err error) bool {
	return errors.Is(err, ErrLeaseHeld) || errors.Is(err, errAlreadyRunning)
}

// run runs the job under its lease. With whenDue it runs only if the row, read again when the lease is
// taken, still says the job is due: the row the tick read may be stale (an admin disabled the job or
// another replica ran it since).
func (j *Runner) run(ctx context.Context, name string, trigger schema.RunTrigger, whenDue bool, onStart func(dataverse.GUID)) (RunResult, error) {
	job, ok := j.jobs[name]
	if !ok {
		return RunResult{}, fmt.Errorf("no job named %q (jobs: %s)", name, strings.Join(j.Names(), ", "))
	}
	j.mu.Lock()
	if j.running[name] {
		j.mu.Unlock()
		return RunResult{}, errAlreadyRunning
	}
	j.running[name] = true
	j.mu.Unlock()
	defer func() { j.mu.Lock(); delete(j.running, name); j.mu.Unlock() }()

	row, err := j.acquire(ctx, name, whenDue)
	if err != nil {
		return RunResult{}, err
	}
	res := RunResult{Job: name, Trigger: trigger, Started: j.opts.Now()}
	log := j.log.With("job", name, "trigger", TriggerName(trigger))
	res.RunID, err = j.dv.Create(ctx, schema.SetJobRuns, dataverse.Row{
		"csp_name":           fmt.Sprintf("%s %s", name, res.Started.UTC().Format(time.RFC3339)),
		"csp_job@odata.bind": dataverse.Bind(schema.SetJobs, row.ID),
		"csp_trigger":        int(trigger),
		"csp_startedon":      res.Started.UTC(),
		"csp_status":         int(schema.RunInProgress),
		"csp_instance":       j.opts.Instance,
	})
	if err != nil {
		j.release(context.WithoutCancel(ctx), row.ID, nil, time.Time{})
		return RunResult{}, fmt.Errorf("jobs: record the run of %q: %w", name, err)
	}
	if onStart != nil {
		onStart(res.RunID)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() { defer close(renewed); j.keepLease(runCtx, row.ID, cancel) }()
	res.Counts, res.Err = j.safeRun(runCtx, job)
	cancel(nil)
	<-renewed
	if cause := context.Cause(runCtx); res.Err == nil && errors.Is(cause, ErrLeaseHeld) {
		res.Err = cause
	}
	res.Ended = j.opts.Now()
	res.Status = runStatus(res, ctx)
	log.Info("job run finished", "status", statusName(res.Status), "processed", res.Counts.Processed, "failed", res.Counts.Failed, "error", res.Err)
	j.opts.Metrics.JobRun(name, statusName(res.Status))

	finish := context.WithoutCancel(ctx) // record the outcome even when shutting down
	errMsg := ""
	if res.Err != nil {
		errMsg = res.Err.Error()
	}
	if _, err := j.dv.Update(finish, schema.SetJobRuns, res.RunID, dataverse.Row{
		"csp_finishedon": res.Ended.UTC(), "csp_status": int(res.Status),
		"csp_processed": res.Counts.Processed, "csp_created": res.Counts.Created,
		"csp_updated": res.Counts.Updated, "csp_failed": res.Counts.Failed, "csp_errormessage": dataverse.OrNull(schema.Fit(schema.TableJobRun, "csp_errormessage", errMsg)),
		"csp_deactivated": res.Counts.Deactivated, "csp_mapped": res.Counts.Mapped, "csp_unmapped": res.Counts.Unmapped,
		"csp_summary": dataverse.OrNull(schema.Fit(schema.TableJobRun, "csp_summary", res.Counts.Summary)),
	}, nil); err != nil {
		log.Error("recording the run's outcome failed", "error", err)
	}
	sched, schedProblem := parseSchedule(row.Schedule, job.Schedule)
	msg := runMessage(res)
	if schedProblem != "" {
		msg += " " + schedProblem
	}
	// The run answers the Run Now request the row held when it started, whatever started it.
	served := row.RunRequestedOn
	if request.InFuture(served, res.Started) {
		msg += " " + request.FutureNote(runRequestedColumn, served, res.Started, "the job ran")
	}
	// A job that keeps failing (Verify Connectivity every 15 minutes while Partner Center is down) is
	// announced once, when it starts failing.
	if res.Status == schema.RunFailed && row.LastStatus != schema.RunFailed && j.opts.Publish != nil {
		j.opts.Publish(notify.Notification{Type: notify.JobFailed,
			Notice: notify.Notice{Title: name + " failed", Body: msg, Icon: notify.NoticeFailure, Table: schema.TableJob, RowID: row.ID},
			Data:   map[string]any{"job": name, "runId": res.RunID.String()}})
	}
	j.release(finish, row.ID, dataverse.Row{
		"csp_lastrunon": res.Started.UTC(), "csp_nextrunon": res.Started.Add(sched).UTC(),
		"csp_laststatus": int(res.Status), "csp_message": schema.Fit(schema.TableJob, "csp_message", msg),
	}, served)
	return res, nil
}

func (j *Runner) safeRun(ctx context.Context, job Job) (counts RunCounts, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the job stopped on an internal error (%v); see the connector's logs", r)
		}
	}()
	// A job's calls are bulk work: they leave the Dataverse budget's reserve to interactive work.
	return job.Run(dataverse.WithPriority(ctx, dataverse.Bulk))
}

// acquire takes the job's lease: free or expired (or already ours), written with If-Match so two
// replicas racing for it cannot both win.
func (j *Runner) acquire(ctx context.Context, name string, whenDue bool) (schema.Job, error) {
	for attempt := 0; attempt < 3; attempt++ {
		row, err := j.Read(ctx, name)
		if dataverse.IsNotFound(err) && attempt == 0 {
			// First run against this environment (the CLI before any service started): create the rows.
			if err := j.Ensure(ctx); err != nil {
				return schema.Job{}, err
			}
			continue
		}
		if err != nil {
			return schema.Job{}, err
		}
		if _, due := j.due(row); whenDue && !due {
			return schema.Job{}, errNotDue
		}
		now := j.opts.Now()
		if row.LeaseOwner != "" && row.LeaseOwner != j.opts.Instance && row.LeaseExpiresOn.After(now) {
			return schema.Job{}, fmt.Errorf("%w (%s, lease until %s)", ErrLeaseHeld, row.LeaseOwner, row.LeaseExpiresOn.UTC().Format(time.RFC3339))
		}
		_, err = j.dv.Update(ctx, schema.SetJobs, row.ID, dataverse.Row{
			"csp_leaseowner": j.opts.Instance, "csp_leaseexpireson": now.Add(j.opts.Lease).UTC(),
		}, &dataverse.UpdateOptions{IfMatch: row.ETag})
		if dataverse.IsConflict(err) {
			continue // the row changed under us: look again
		}
		if err != nil {
			return schema.Job{}, fmt.Errorf("jobs: take the lease of %q: %w", name, err)
		}
		return row, nil
	}
	return schema.Job{}, fmt.Errorf("%w (the row kept changing)", ErrLeaseHeld)
}

// keepLease extends the lease at a third of its length while the run goes on; losing it (another
// replica took over after it expired) cancels the run.
func (j *Runner) keepLease(ctx context.Context, id dataverse.GUID, cancel context.CancelCauseFunc) {
	t := time.NewTicker(j.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		row, err := j.readByID(ctx, id)
		if err != nil {
			j.log.Warn("renewing a job lease failed", "error", err)
			continue
		}
		if row.LeaseOwner != j.opts.Instance {
			cancel(fmt.Errorf("%w: %s took the lease over", ErrLeaseHeld, row.LeaseOwner))
			return
		}
		if _, err := j.dv.Update(ctx, schema.SetJobs, id, dataverse.Row{"csp_leaseexpireson": j.opts.Now().Add(j.opts.Lease).UTC()},
			&dataverse.UpdateOptions{IfMatch: row.ETag}); err != nil && !dataverse.IsConflict(err) {
			j.log.Warn("renewing a job lease failed", "error", err)
		}
	}
}

// release clears the lease (if still ours) and writes the outcome columns. served is the Run Now request
// the run answered: it is cleared unless someone set a new one while the job ran.
func (j *Runner) release(ctx context.Context, id dataverse.GUID, outcome dataverse.Row, served time.Time) {
	for attempt := 0; attempt < 3; attempt++ {
		row, err := j.readByID(ctx, id)
		if err != nil {
			j.log.Error("releasing a job lease failed", "error", err)
			return
		}
		changes := dataverse.Row{}
		for k, v := range outcome {
			changes[k] = v
		}
		if row.LeaseOwner == j.opts.Instance {
			changes["csp_leaseowner"] = nil
			changes["csp_leaseexpireson"] = nil
		}
		if !served.IsZero() && row.RunRequestedOn.Equal(served) {
			changes["csp_runrequestedon"] = nil
		}
		if len(changes) == 0 {
			return
		}
		_, err = j.dv.Update(ctx, schema.SetJobs, id, changes, &dataverse.UpdateOptions{IfMatch: row.ETag})
		if dataverse.IsConflict(err) {
			continue
		}
		if err != nil {
			j.log.Error("releasing a job lease failed", "error", err)
		}
		return
	}
}

// Read reads the csp_job row of the job called name.
func (j *Runner) Read(ctx context.Context, name string) (schema.Job, error) {
	r, err := j.dv.GetByKey(ctx, schema.SetJobs, dataverse.Key{"csp_name": name}, &dataverse.GetOptions{Select: dataverse.Columns[schema.Job]()})
	if err != nil {
		return schema.Job{}, err
	}
	var row schema.Job
	return row, dataverse.Unmarshal(r, &row)
}

func (j *Runner) readByID(ctx context.Context, id dataverse.GUID) (schema.Job, error) {
	r, err := j.dv.Get(ctx, schema.SetJobs, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Job]()})
	if err != nil {
		return schema.Job{}, err
	}
	var row schema.Job
	return row, dataverse.Unmarshal(r, &row)
}

func runStatus(res RunResult, ctx context.Context) schema.RunStatus {
	switch {
	case res.Err == nil && res.Counts.Failed == 0:
		return schema.RunSucceeded
	case ctx.Err() != nil || errors.Is(res.Err, ErrLeaseHeld):
		return schema.RunCancelled
	case res.Err == nil || res.Counts.Processed > res.Counts.Failed:
		return schema.RunPartiallySucceeded
	default:
		return schema.RunFailed
	}
}

// TriggerName is a run trigger as the API and the logs write it: schedule, run_now, api.
func TriggerName(t schema.RunTrigger) string {
	switch t {
	case schema.TriggerSchedule:
		return "schedule"
	case schema.TriggerRunNow:
		return "run_now"
	default:
		return "api"
	}
}

// RunStatusWord is a run status in words, for people ("partly succeeded").
func RunStatusWord(s schema.RunStatus) string {
	switch s {
	case schema.RunSucceeded:
		return "succeeded"
	case schema.RunPartiallySucceeded:
		return "partly succeeded"
	case schema.RunCancelled:
		return "cancelled"
	default:
		return "failed"
	}
}

// statusName is a run status as a metric label.
func statusName(s schema.RunStatus) string {
	switch s {
	case schema.RunSucceeded:
		return "succeeded"
	case schema.RunPartiallySucceeded:
		return "partially_succeeded"
	case schema.RunFailed:
		return "failed"
	case schema.RunCancelled:
		return "cancelled"
	default:
		return "in_progress"
	}
}

func runMessage(res RunResult) string {
	when := res.Started.UTC().Format("2006-01-02 15:04 MST")
	var b strings.Builder
	switch res.Status {
	case schema.RunSucceeded:
		fmt.Fprintf(&b, "Last run %s succeeded", when)
	case schema.RunPartiallySucceeded:
		fmt.Fprintf(&b, "Last run %s partly succeeded", when)
	case schema.RunCancelled:
		fmt.Fprintf(&b, "Last run %s was cut short", when)
	default:
		fmt.Fprintf(&b, "Last run %s failed", when)
	}
	if summary := strings.TrimRight(res.Counts.Summary, ".:; "); summary != "" {
		b.WriteString(": " + summary)
	}
	b.WriteString(".")
	if res.Err != nil {
		b.WriteString(" " + res.Err.Error())
	}
	return b.String()
}

// minSchedule is the shortest schedule a job row may hold: the sandbox checks attestations every 30 s,
// and anything shorter would run a job on every check of the runner.
const minSchedule = 30 * time.Second

// parseSchedule reads csp_schedule: a duration such as 30s, 15m, 1h30m or 24h (at least 30s), in the
// shape formatSchedule writes. A value it cannot read falls back to def and says so, for the job row's
// message.
func parseSchedule(raw string, def time.Duration) (time.Duration, string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return def, ""
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < minSchedule {
		return def, fmt.Sprintf("The schedule %q is not an interval such as 30s, 15m, 1h30m or 24h (at least %s); running every %s until it is corrected.",
			raw, formatSchedule(minSchedule), formatSchedule(def))
	}
	return d, ""
}

// formatSchedule writes an interval as csp_schedule holds it: a Go duration without its zero units
// (30s, 10m, 1h30m, 24h), which parseSchedule reads back as the same interval.
func formatSchedule(d time.Duration) string {
	s := d.String() // 30s, 10m0s, 1h30m0s, 24h0m0s, 1h0m30s
	if rest, ok := strings.CutSuffix(s, "m0s"); ok {
		s = rest + "m"
	}
	if rest, ok := strings.CutSuffix(s, "h0m"); ok {
		s = rest + "h"
	}
	return s
}

// PlainDuration writes an interval the way people read it: "24 hours", "7 days", "1 hour 30 minutes",
// "90 seconds" stays "1 minute 30 seconds". Whole days are days from two days up; below a second it
// rounds to the second.
func PlainDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "0 seconds"
	}
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	const day = 24 * time.Hour
	var parts []string
	if d >= 2*day && d%day == 0 {
		return unit(int64(d/day), "day")
	}
	if h := d / time.Hour; h > 0 {
		parts = append(parts, unit(int64(h), "hour"))
	}
	if m := d % time.Hour / time.Minute; m > 0 {
		parts = append(parts, unit(int64(m), "minute"))
	}
	if s := d % time.Minute / time.Second; s > 0 {
		parts = append(parts, unit(int64(s), "second"))
	}
	return strings.Join(parts, " ")
}
