package jobs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
)

func TestJobRunRecordsHistoryAndReleasesTheLease(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	calls := 0
	jobs := New(dv, []Job{{Name: "Count Things", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		calls++
		return RunCounts{Processed: 7, Updated: 2, Summary: "7 things counted"}, nil
	}}, {Name: "Break", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		return RunCounts{Processed: 3, Failed: 3}, errors.New("Partner Center refused every request")
	}}}, Options{Instance: "replica-a"})
	require.NoError(t, jobs.Ensure(t.Context()))
	created := testrig.Job(t, dv, "Count Things")
	assert.True(t, created.Enabled)
	assert.Equal(t, "1h", created.Schedule)

	res, err := jobs.RunNow(t.Context(), "Count Things", schema.TriggerRunNow)
	require.NoError(t, err)
	require.NoError(t, res.Err)
	assert.Equal(t, 1, calls)
	assert.Equal(t, schema.RunSucceeded, res.Status)

	row := testrig.Job(t, dv, "Count Things")
	assert.Empty(t, row.LeaseOwner, "the lease is released")
	assert.True(t, row.LeaseExpiresOn.IsZero())
	assert.Equal(t, schema.RunSucceeded, row.LastStatus)
	assert.WithinDuration(t, res.Started, row.LastRunOn, time.Second)
	assert.WithinDuration(t, res.Started.Add(time.Hour), row.NextRunOn, time.Second)
	assert.Contains(t, row.Message, "succeeded: 7 things counted")

	res, err = jobs.RunNow(t.Context(), "Break", schema.TriggerSchedule)
	require.NoError(t, err)
	assert.Equal(t, schema.RunFailed, res.Status)
	assert.Contains(t, testrig.Job(t, dv, "Break").Message, "Partner Center refused every request")

	runs := testrig.JobRuns(t, dv)
	require.Len(t, runs, 2)
	assert.Equal(t, schema.RunSucceeded, runs[0].Status)
	assert.Equal(t, schema.TriggerRunNow, runs[0].Trigger)
	assert.Equal(t, 7, runs[0].Processed)
	assert.Equal(t, 2, runs[0].Updated)
	assert.Equal(t, "7 things counted", runs[0].Summary, "the run's summary has a column of its own")
	assert.Equal(t, "replica-a", runs[0].Instance)
	assert.False(t, runs[0].FinishedOn.IsZero())
	assert.Equal(t, row.ID, runs[0].Job.ID)
	assert.Equal(t, schema.RunFailed, runs[1].Status)
	assert.Equal(t, 3, runs[1].Failed)
	assert.Equal(t, "Partner Center refused every request", runs[1].ErrorMessage)
	assert.Empty(t, runs[1].Summary)

	_, err = jobs.RunNow(t.Context(), "No Such Job", schema.TriggerRunNow)
	assert.ErrorContains(t, err, `no job named "No Such Job"`)
}

func TestJobLeaseKeepsOneRunAcrossReplicas(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	var running, maxRunning, total atomic.Int32
	job := Job{Name: "Sync", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		n := running.Add(1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		total.Add(1)
		time.Sleep(100 * time.Millisecond)
		running.Add(-1)
		return RunCounts{}, nil
	}}
	var wg sync.WaitGroup
	var held atomic.Int32
	for i := range 4 {
		r := New(dv, []Job{job}, Options{Instance: "replica-" + string(rune('a'+i))})
		require.NoError(t, r.Ensure(t.Context()))
		wg.Go(func() {
			_, err := r.RunNow(t.Context(), "Sync", schema.TriggerSchedule)
			if errors.Is(err, ErrLeaseHeld) {
				held.Add(1)
				return
			}
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), maxRunning.Load(), "never two runs at once")
	assert.Equal(t, int32(4), total.Load()+held.Load())
	assert.GreaterOrEqual(t, held.Load(), int32(1), "four replicas racing: at least one finds the lease held")
	assert.Len(t, testrig.JobRuns(t, dv), int(total.Load()))
}

func TestJobExpiredLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	clock := testrig.NewClock(time.Now())
	now := clock.Now()
	jobs := New(dv, []Job{{Name: "Sync", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) { return RunCounts{}, nil }}},
		Options{Instance: "replica-b", Now: clock.Now})
	require.NoError(t, jobs.Ensure(t.Context()))
	row := testrig.Job(t, dv, "Sync")
	_, err := dv.Update(t.Context(), schema.SetJobs, row.ID, dataverse.Row{"csp_leaseowner": "replica-a", "csp_leaseexpireson": now.Add(time.Minute)}, nil)
	require.NoError(t, err)

	_, err = jobs.RunNow(t.Context(), "Sync", schema.TriggerSchedule)
	require.ErrorIs(t, err, ErrLeaseHeld)
	assert.ErrorContains(t, err, "replica-a")

	clock.Advance(2 * time.Minute) // replica-a died; its lease ran out
	res, err := jobs.RunNow(t.Context(), "Sync", schema.TriggerSchedule)
	require.NoError(t, err)
	assert.Equal(t, schema.RunSucceeded, res.Status)
}

// TestJobDueAndRunNowRequests runs the runner in fake time (testing/synctest, the Dataverse simulator
// in memory), so "nothing ran" is proved by time passing, not by sleeping on the real clock.
func TestJobDueAndRunNowRequests(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		dvs := dataversetest.New(dataversetest.Options{Tables: schema.Schema().Tables})
		dv, err := dataverse.NewClient("http://dataverse.test", nil, &dataverse.ClientOptions{HTTPClient: dvs.InMemoryClient(), MaxRetries: 1,
			MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond})
		require.NoError(t, err)
		var runs atomic.Int32
		jobs := New(dv, []Job{{Name: "Sync", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) { runs.Add(1); return RunCounts{}, nil }}},
			Options{Instance: "a", Tick: time.Minute})
		require.NoError(t, jobs.Ensure(t.Context()))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { jobs.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		time.Sleep(59 * time.Minute) // a tick a minute
		synctest.Wait()
		assert.Equal(t, int32(1), runs.Load(), "a new job is due at once, and not again before its schedule")

		row := testrig.Job(t, dv, "Sync")
		_, err = dv.Update(t.Context(), schema.SetJobs, row.ID, dataverse.Row{"csp_runrequestedon": time.Now(), "csp_schedule": "every hour"}, nil)
		require.NoError(t, err)
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		assert.Equal(t, int32(2), runs.Load(), "Run Now runs it, once")
		assert.Contains(t, testrig.Job(t, dv, "Sync").Message, `The schedule "every hour" is not an interval such as 30s, 15m`, "a bad admin entry is explained on the row")
		last := testrig.JobRuns(t, dv)
		assert.Equal(t, schema.TriggerRunNow, last[len(last)-1].Trigger)

		_, err = dv.Update(t.Context(), schema.SetJobs, row.ID, dataverse.Row{"csp_schedule": "1h", "csp_enabled": false}, nil)
		require.NoError(t, err)
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		assert.Equal(t, int32(2), runs.Load(), "a disabled job does not run on schedule")
	})
}

// TestJobFailedIsAnnouncedOnceWhenItStartsFailing: a job that fails run after run (Verify Connectivity
// while Partner Center is down) raises JobFailed once; after a success, the next failure raises it again.
func TestJobFailedIsAnnouncedOnceWhenItStartsFailing(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	fail := true
	var published []notify.Notification
	jobs := New(dv, []Job{{Name: "Flaky", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		if fail {
			return RunCounts{Processed: 1, Failed: 1}, errors.New("Partner Center is down")
		}
		return RunCounts{Processed: 1}, nil
	}}}, Options{Instance: "replica-a", Publish: func(n notify.Notification) { published = append(published, n) }})
	require.NoError(t, jobs.Ensure(t.Context()))
	run := func() {
		_, err := jobs.RunNow(t.Context(), "Flaky", schema.TriggerRunNow)
		require.NoError(t, err)
	}
	run()
	run()
	require.Len(t, published, 1, "two failures in a row: one announcement")
	assert.Equal(t, notify.JobFailed, published[0].Type)
	assert.Equal(t, "Flaky", published[0].Data["job"])
	assert.Contains(t, published[0].Body, "Partner Center is down")
	fail = false
	run()
	fail = true
	run()
	assert.Len(t, published, 2, "failing again after a success is announced")
}

// TestEnsureCreatesJobRowsOnFirstStart: Dataverse answers an upsert by alternate key with the key values
// in OData-EntityId (csp_jobs(csp_name='…')), not the row's id; creating the job rows on first start must
// not depend on reading an id from it.
func TestEnsureCreatesJobRowsOnFirstStart(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	jobs := New(dv, []Job{{Name: "Provider Account Sync Twin", Schedule: 4 * time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		return RunCounts{}, nil
	}}}, Options{Instance: "replica-a"})
	require.NoError(t, jobs.Ensure(t.Context()))
	created := testrig.Job(t, dv, "Provider Account Sync Twin")
	assert.True(t, created.Enabled)
	assert.Equal(t, "4h", created.Schedule)

	// A second start leaves the row as the admin set it.
	_, err := dv.Update(t.Context(), schema.SetJobs, created.ID, dataverse.Row{"csp_enabled": false}, nil)
	require.NoError(t, err)
	require.NoError(t, jobs.Ensure(t.Context()))
	assert.False(t, testrig.Job(t, dv, "Provider Account Sync Twin").Enabled)
}

// TestScheduleFormatAndParse: the schedule written on a job row is the interval itself, in the shape an
// admin types (30s, 10m, 1h30m), and reading it back gives the same interval.
func TestScheduleFormatAndParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		every time.Duration
		want  string
	}{
		{30 * time.Second, "30s"},
		{45 * time.Second, "45s"},
		{90 * time.Second, "1m30s"},
		{time.Minute, "1m"},
		{2 * time.Minute, "2m"},
		{10 * time.Minute, "10m"},
		{15 * time.Minute, "15m"},
		{30 * time.Minute, "30m"},
		{time.Hour, "1h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{6 * time.Hour, "6h"},
		{10 * time.Hour, "10h"},
		{24 * time.Hour, "24h"},
		{7 * 24 * time.Hour, "168h"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, formatSchedule(tc.every))
			got, problem := parseSchedule(formatSchedule(tc.every), 5*time.Minute)
			assert.Empty(t, problem)
			assert.Equal(t, tc.every, got, "what is written reads back as the same interval")
		})
	}
}

func TestParseScheduleRefusesWhatIsNotAnInterval(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"every hour", "3", "10", "-5m", "0s", "5s", "1d"} {
		got, problem := parseSchedule(raw, 30*time.Second)
		assert.Equal(t, 30*time.Second, got, raw)
		assert.Contains(t, problem, "running every 30s until it is corrected", raw)
		assert.NotContains(t, problem, "every 3 ", raw)
	}
	got, problem := parseSchedule("  2h ", time.Minute)
	assert.Equal(t, 2*time.Hour, got)
	assert.Empty(t, problem)
	got, problem = parseSchedule("", 15*time.Minute)
	assert.Equal(t, 15*time.Minute, got)
	assert.Empty(t, problem)
}

// TestRunNowDatedInTheFutureRunsOnce: Run requested on set three hours ahead runs the job once, now, on
// one of two replicas, and the row says so; it does not run again on every check.
func TestRunNowDatedInTheFutureRunsOnce(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	var runs atomic.Int32
	clock := testrig.NewClock(time.Now().UTC().Truncate(time.Second))
	job := Job{Name: "Provisioning Sweep", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		runs.Add(1)
		return RunCounts{Summary: "0 license change(s) submitted for provisioning"}, nil
	}}
	replicas := []*Runner{
		New(dv, []Job{job}, Options{Instance: "replica-a", Now: clock.Now}),
		New(dv, []Job{job}, Options{Instance: "replica-b", Now: clock.Now}),
	}
	require.NoError(t, replicas[0].Ensure(t.Context()))
	check := func() {
		var wg sync.WaitGroup
		for _, r := range replicas {
			wg.Go(func() { r.check(t.Context()); r.runs.Wait() })
		}
		wg.Wait()
	}
	check()
	require.Equal(t, int32(1), runs.Load(), "a new job is due at once")

	clock.Advance(time.Minute)
	requested := clock.Now().Add(3 * time.Hour)
	row := testrig.Job(t, dv, job.Name)
	_, err := dv.Update(t.Context(), schema.SetJobs, row.ID, dataverse.Row{"csp_runrequestedon": requested}, nil)
	require.NoError(t, err)
	for range 8 {
		check()
		clock.Advance(5 * time.Second)
	}
	assert.Equal(t, int32(2), runs.Load(), "the request ran the job once")
	row = testrig.Job(t, dv, job.Name)
	assert.True(t, row.RunRequestedOn.IsZero(), "the request is cleared once carried out")
	assert.Equal(t, clock.Now().Add(-8*5*time.Second), row.LastRunOn)
	assert.Contains(t, row.Message, "Last run ")
	assert.Contains(t, row.Message, "Run requested on was set to "+requested.Format("2 Jan 2006 15:04 UTC")+", a time still to come; a request means now, so the job ran at")
	runsRecorded := testrig.JobRuns(t, dv)
	require.Len(t, runsRecorded, 2)
	assert.Equal(t, schema.TriggerRunNow, runsRecorded[1].Trigger)
}

// TestRunNowDatedBeforeTheLastRunIsAnswered: a request dated no later than the last run does not run
// the job; the row says it was already done and how to ask again, once.
func TestRunNowDatedBeforeTheLastRunIsAnswered(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	var runs atomic.Int32
	clock := testrig.NewClock(time.Now().UTC().Truncate(time.Second))
	jobs := New(dv, []Job{{Name: "Sync", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		runs.Add(1)
		return RunCounts{Summary: "3 things synced"}, nil
	}}}, Options{Instance: "a", Now: clock.Now})
	require.NoError(t, jobs.Ensure(t.Context()))
	_, err := jobs.RunNow(t.Context(), "Sync", schema.TriggerSchedule)
	require.NoError(t, err)
	lastRun := clock.Now()
	clock.Advance(10 * time.Minute)

	for _, wake := range []func(){
		func() { jobs.check(t.Context()); jobs.runs.Wait() },
		func() {
			require.NoError(t, jobs.HandleJobRow(t.Context(), work.Batch{Key: work.Key{Table: schema.TableJob, ID: testrig.Job(t, dv, "Sync").ID}}))
		},
	} {
		row := testrig.Job(t, dv, "Sync")
		_, err = dv.Update(t.Context(), schema.SetJobs, row.ID, dataverse.Row{"csp_runrequestedon": lastRun.Add(-time.Hour)}, nil)
		require.NoError(t, err)
		wake()
		wake()
		assert.Equal(t, int32(1), runs.Load(), "nothing runs again")
		row = testrig.Job(t, dv, "Sync")
		assert.True(t, row.RunRequestedOn.IsZero(), "the request is answered and cleared")
		assert.Equal(t, lastRun, row.LastRunOn)
		want := "Run requested on was set to " + lastRun.Add(-time.Hour).Format("2 Jan 2006 15:04 UTC") +
			", which is not after the last time the job ran (" + lastRun.Format("2 Jan 2006 15:04 UTC") + "): that was already done"
		assert.True(t, strings.HasPrefix(row.Message, want), row.Message)
		assert.Contains(t, row.Message, "To run it again, set Run requested on again (the Run Now button sets it to now).\nLast run ")
		assert.Contains(t, row.Message, "succeeded: 3 things synced.", "the last run's message stays below the note")
		assert.Equal(t, 1, strings.Count(row.Message, "Run requested on was set to"), "one note, not one per answer")
	}

	// A request later than the last run runs it.
	row := testrig.Job(t, dv, "Sync")
	_, err = dv.Update(t.Context(), schema.SetJobs, row.ID, dataverse.Row{"csp_runrequestedon": clock.Now()}, nil)
	require.NoError(t, err)
	require.NoError(t, jobs.HandleJobRow(t.Context(), work.Batch{Key: work.Key{Table: schema.TableJob, ID: row.ID}}))
	assert.Equal(t, int32(2), runs.Load())
	row = testrig.Job(t, dv, "Sync")
	assert.True(t, row.RunRequestedOn.IsZero())
	assert.NotContains(t, row.Message, "Run requested on", "a request carried out as asked needs no note")
}

func TestPlainDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		24 * time.Hour:                "24 hours",
		time.Hour:                     "1 hour",
		30 * time.Minute:              "30 minutes",
		time.Hour + 30*time.Minute:    "1 hour 30 minutes",
		90 * time.Second:              "1 minute 30 seconds",
		30 * time.Second:              "30 seconds",
		36 * time.Hour:                "36 hours",
		48 * time.Hour:                "2 days",
		7 * 24 * time.Hour:            "7 days",
		49 * time.Hour:                "49 hours",
		time.Minute:                   "1 minute",
		1500 * time.Millisecond:       "2 seconds",
		0:                             "0 seconds",
		2*time.Hour + 1*time.Second:   "2 hours 1 second",
		26*time.Hour + 15*time.Minute: "26 hours 15 minutes",
	} {
		assert.Equal(t, want, PlainDuration(d), d.String())
	}
}

func TestStartedRunOutlivesItsRequestAndEndsWithShutdown(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	release := make(chan struct{})
	jobs := New(dv, []Job{
		{Name: "Quick", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
			select {
			case <-release:
				return RunCounts{Summary: "done"}, nil
			case <-ctx.Done():
				return RunCounts{}, ctx.Err()
			}
		}},
		{Name: "Stuck", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) { <-ctx.Done(); return RunCounts{}, ctx.Err() }},
	}, Options{Instance: "a"})
	require.NoError(t, jobs.Ensure(t.Context()))

	request, endRequest := context.WithCancel(t.Context())
	_, quick, err := jobs.Start(request, "Quick", schema.TriggerAPI)
	require.NoError(t, err)
	_, stuck, err := jobs.Start(request, "Stuck", schema.TriggerAPI)
	require.NoError(t, err)
	endRequest() // the API answered 202: the runs are the runner's now

	bound, endBound := context.WithCancel(t.Context())
	shutdown := make(chan error, 1)
	go func() { shutdown <- jobs.Shutdown(bound) }()
	require.Eventually(t, func() bool {
		_, _, err := jobs.Start(t.Context(), "Quick", schema.TriggerAPI)
		return errors.Is(err, work.ErrShuttingDown)
	}, 5*time.Second, time.Millisecond, "a runner shutting down starts no run")

	close(release)
	res := <-quick
	assert.Equal(t, schema.RunSucceeded, res.Status, "a run that finishes within the bound is not cut short: %v", res.Err)
	endBound() // the bound runs out with Stuck still running
	require.ErrorIs(t, <-shutdown, context.Canceled)
	res = <-stuck
	assert.Equal(t, schema.RunCancelled, res.Status, "the run is cut off when the bound ends")
}

// TestJobCreatedOffSaysWhy: a job created switched off has its row disabled with its reason, is not run on
// its schedule, and runs when asked.
func TestJobCreatedOffSaysWhy(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	var runs atomic.Int32
	r := New(dv, []Job{{Name: "Careful", Schedule: time.Hour, Off: "Off until switched on: read the README first.",
		Run: func(ctx context.Context) (RunCounts, error) { runs.Add(1); return RunCounts{}, nil }}}, Options{Instance: "a"})
	require.NoError(t, r.Ensure(t.Context()))
	row := testrig.Job(t, dv, "Careful")
	assert.False(t, row.Enabled)
	assert.Equal(t, "Off until switched on: read the README first.", row.Message)
	_, due := r.due(row)
	assert.False(t, due, "not due on its schedule")
	_, err := r.RunNow(t.Context(), "Careful", schema.TriggerRunNow)
	require.NoError(t, err)
	assert.Equal(t, int32(1), runs.Load(), "Run Now runs it")
}

func TestJobCallsAreBulkWork(t *testing.T) {
	t.Parallel()
	_, dv := testrig.Dataverse(t)
	var got dataverse.Priority = -1
	jobs := New(dv, []Job{{Name: "Sweep Things", Schedule: time.Hour, Run: func(ctx context.Context) (RunCounts, error) {
		got = dataverse.PriorityOf(ctx)
		return RunCounts{}, nil
	}}}, Options{Instance: "replica-a"})
	require.NoError(t, jobs.Ensure(t.Context()))
	_, err := jobs.RunNow(t.Context(), "Sweep Things", schema.TriggerRunNow)
	require.NoError(t, err)
	assert.Equal(t, dataverse.Bulk, got, "a job's calls leave the Dataverse budget's reserve to interactive work")
}
