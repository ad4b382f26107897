package connector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

func providers(t *testing.T, dv *dataverse.Client) map[string]schema.Provider {
	t.Helper()
	out := map[string]schema.Provider{}
	for r, err := range dv.List(context.Background(), schema.SetProviders, &dataverse.Query{Select: dataverse.Columns[schema.Provider]()}) {
		require.NoError(t, err)
		var p schema.Provider
		require.NoError(t, dataverse.Unmarshal(r, &p))
		out[p.Name] = p
	}
	return out
}

func TestVerifyConnectivityJobWritesTheOutcomeOnProviders(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	health := NewHealth()
	conn := connectivity.New(sb.DataverseClient, sb.PartnerCenterClient, &connectivity.Options{Queue: DefaultQueue, SetHealth: health.Set})
	runner := jobs.New(sb.DataverseClient, []jobs.Job{conn.Job(15 * time.Minute)}, jobs.Options{Instance: "a"})

	res, err := runner.RunNow(t.Context(), connectivity.VerifyJobName, schema.TriggerRunNow)
	require.NoError(t, err)
	require.NoError(t, res.Err)
	rep := conn.Last()
	require.True(t, rep.OK, "%+v", rep)
	names := map[string]connectivity.Check{}
	for _, c := range rep.Checks {
		names[c.Name] = c
	}
	assert.True(t, names["Dataverse"].OK)
	assert.True(t, names["Partner Center"].OK)
	assert.True(t, names["Partner Center app+user"].OK, "the sandbox runs without credentials (PARTNERCENTER_AUTH=none)")
	assert.True(t, names["Service Bus"].Skipped, "no Service Bus configured")
	_, ready := health.Status()
	assert.True(t, ready)

	ps := providers(t, sb.DataverseClient)
	pc := ps["Microsoft Partner Center"]
	assert.Equal(t, schema.ConnectivityConnected, pc.ConnectivityStatus)
	assert.Contains(t, pc.ConnectivityMessage, "Connected: Dataverse, Partner Center, Partner Center app+user answered.")
	assert.WithinDuration(t, rep.At, pc.LastVerifiedOn, time.Second)
	manual := ps["Distributor portal (manual)"]
	assert.Equal(t, schema.ConnectivityNotVerified, manual.ConnectivityStatus, "the job touches Partner Center providers only")
	assert.True(t, manual.LastVerifiedOn.IsZero())

	// Partner Center starts refusing the app's token.
	sb.PartnerCenter.Inject(partnercentertest.Fault{Status: 401})
	res, err = runner.RunNow(t.Context(), connectivity.VerifyJobName, schema.TriggerRunNow)
	require.NoError(t, err)
	assert.Equal(t, schema.RunFailed, res.Status)
	pc = providers(t, sb.DataverseClient)["Microsoft Partner Center"]
	assert.Equal(t, schema.ConnectivityNotConnected, pc.ConnectivityStatus)
	assert.Contains(t, pc.ConnectivityMessage, "Partner Center refused the credentials (401): check PARTNERCENTER_TENANT_ID")
	status, ready := health.Status()
	assert.False(t, ready)
	assert.Contains(t, status["partnercenter"], "refused the credentials")
	assert.Equal(t, "ok", status["dataverse"])
}

func TestVerifyRequestedOnOneProvider(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	conn := connectivity.New(dv, sb.PartnerCenterClient, &connectivity.Options{Queue: DefaultQueue})
	ps := providers(t, dv)
	pc, manual := ps["Microsoft Partner Center"], ps["Distributor portal (manual)"]

	// Nothing requested: nothing done.
	require.NoError(t, conn.HandleProviderRow(t.Context(), work.Batch{Key: work.Key{Table: schema.TableProvider, ID: pc.ID}}))
	assert.True(t, providers(t, dv)["Microsoft Partner Center"].LastVerifiedOn.IsZero())

	for _, id := range []dataverse.GUID{pc.ID, manual.ID} {
		_, err := dv.Update(t.Context(), schema.SetProviders, id, dataverse.Row{"csp_verifyrequestedon": time.Now().Add(-time.Second)}, nil)
		require.NoError(t, err)
		require.NoError(t, conn.HandleProviderRow(t.Context(), work.Batch{Key: work.Key{Table: schema.TableProvider, ID: id}}))
	}
	ps = providers(t, dv)
	assert.Equal(t, schema.ConnectivityConnected, ps["Microsoft Partner Center"].ConnectivityStatus)
	assert.False(t, ps["Microsoft Partner Center"].LastVerifiedOn.IsZero())
	assert.Equal(t, schema.ConnectivityNotVerified, ps["Distributor portal (manual)"].ConnectivityStatus)
	assert.Contains(t, ps["Distributor portal (manual)"].ConnectivityMessage, "not Automatic")

	// Answered: a second wake-up (a duplicate event) does not verify again.
	before := len(sb.PartnerCenter.Requests())
	require.NoError(t, conn.HandleProviderRow(t.Context(), work.Batch{Key: work.Key{Table: schema.TableProvider, ID: pc.ID}}))
	assert.Equal(t, before, len(sb.PartnerCenter.Requests()))
}

// TestUnreachablePartnerCenterIsSaidInPlainWords: when the retries run out on a network error, the
// provider row says so in words; the Go error (dial tcp, the request URL) goes to its system message.
func TestUnreachablePartnerCenterIsSaidInPlainWords(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dead := "127.0.0.1:1" // port 1 (tcpmux): nothing serves it; a port just closed may be another test's at once
	pc, err := partnercenter.NewClient("http://"+dead, partnercenter.Credentials{}, &partnercenter.ClientOptions{MaxRetries: 1, MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond})
	require.NoError(t, err)
	conn := connectivity.New(sb.DataverseClient, pc, &connectivity.Options{Queue: DefaultQueue})
	runner := jobs.New(sb.DataverseClient, []jobs.Job{conn.Job(15 * time.Minute)}, jobs.Options{Instance: "a"})

	res, err := runner.RunNow(t.Context(), connectivity.VerifyJobName, schema.TriggerRunNow)
	require.NoError(t, err)
	assert.Equal(t, schema.RunFailed, res.Status)
	p := providers(t, sb.DataverseClient)["Microsoft Partner Center"]
	assert.Equal(t, schema.ConnectivityNotConnected, p.ConnectivityStatus)
	assert.Equal(t, "Not connected. The connector could not reach Partner Center (network error): check its address (PARTNERCENTER_ENDPOINT) and the network.", p.ConnectivityMessage)
	for _, raw := range []string{"dial tcp", "connection refused", dead, "http://", "%2F"} {
		assert.NotContains(t, p.ConnectivityMessage, raw)
	}
	assert.Contains(t, p.SystemMessage, "dial tcp "+dead, "the error is kept for whoever investigates")

	// Once it answers again, the system message is cleared with the status.
	conn = connectivity.New(sb.DataverseClient, sb.PartnerCenterClient, &connectivity.Options{Queue: DefaultQueue})
	runner = jobs.New(sb.DataverseClient, []jobs.Job{conn.Job(15 * time.Minute)}, jobs.Options{Instance: "a"})
	_, err = runner.RunNow(t.Context(), connectivity.VerifyJobName, schema.TriggerRunNow)
	require.NoError(t, err)
	p = providers(t, sb.DataverseClient)["Microsoft Partner Center"]
	assert.Equal(t, schema.ConnectivityConnected, p.ConnectivityStatus)
	assert.Empty(t, p.SystemMessage)
}

// TestVerifyRequestedInTheFutureOrThePast: a Verify requested on dated hours ahead verifies once, now, and
// says so; one dated before the last verification verifies nothing and says it was already done.
func TestVerifyRequestedInTheFutureOrThePast(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	clock := testrig.NewClock(time.Now().UTC().Truncate(time.Second))
	conn := connectivity.New(dv, sb.PartnerCenterClient, &connectivity.Options{Queue: DefaultQueue, Now: clock.Now})
	pc := providers(t, dv)["Microsoft Partner Center"]
	handle := func() {
		require.NoError(t, conn.HandleProviderRow(t.Context(), work.Batch{Key: work.Key{Table: schema.TableProvider, ID: pc.ID}}))
	}

	requested := clock.Now().Add(3 * time.Hour)
	_, err := dv.Update(t.Context(), schema.SetProviders, pc.ID, dataverse.Row{"csp_verifyrequestedon": requested}, nil)
	require.NoError(t, err)
	handle()
	verifiedAt := clock.Now()
	p := providers(t, dv)["Microsoft Partner Center"]
	assert.Equal(t, verifiedAt, p.LastVerifiedOn)
	assert.True(t, p.VerifyRequestedOn.IsZero(), "the request is cleared once carried out")
	assert.Equal(t, schema.ConnectivityConnected, p.ConnectivityStatus)
	assert.Contains(t, p.ConnectivityMessage, "Connected: ")
	assert.Contains(t, p.ConnectivityMessage, "Verify requested on was set to "+requested.Format("2 Jan 2006 15:04 UTC")+
		", a time still to come; a request means now, so connectivity was verified at "+verifiedAt.Format("2 Jan 2006 15:04 UTC"))

	calls := len(sb.PartnerCenter.Requests())
	for range 5 { // more wake-ups (duplicate events, the sweep) do nothing
		clock.Advance(10 * time.Second)
		handle()
	}
	assert.Equal(t, calls, len(sb.PartnerCenter.Requests()), "verified once")

	// Dated before the last verification: answered, not verified again.
	clock.Advance(time.Hour)
	_, err = dv.Update(t.Context(), schema.SetProviders, pc.ID, dataverse.Row{"csp_verifyrequestedon": verifiedAt.Add(-time.Hour)}, nil)
	require.NoError(t, err)
	handle()
	handle()
	assert.Equal(t, calls, len(sb.PartnerCenter.Requests()), "not verified again")
	p = providers(t, dv)["Microsoft Partner Center"]
	assert.Equal(t, verifiedAt, p.LastVerifiedOn)
	assert.True(t, p.VerifyRequestedOn.IsZero(), "the request is answered and cleared")
	assert.True(t, strings.HasPrefix(p.ConnectivityMessage, "Verify requested on was set to "+verifiedAt.Add(-time.Hour).Format("2 Jan 2006 15:04 UTC")+
		", which is not after the last time connectivity was verified ("+verifiedAt.Format("2 Jan 2006 15:04 UTC")+"): that was already done"), p.ConnectivityMessage)
	assert.Contains(t, p.ConnectivityMessage, "the Verify Connectivity button sets it to now).\nConnected: ", "the last verification's outcome stays below the note")
	assert.Equal(t, 1, strings.Count(p.ConnectivityMessage, "which is not after the last time"), "one note, not one per answer")
}

// TestVerifyConnectivityJobAnswersAWaitingRequest: the scheduled verification answers a request made
// before it started, so the request's own event finds nothing left to do.
func TestVerifyConnectivityJobAnswersAWaitingRequest(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	dv := sb.DataverseClient
	conn := connectivity.New(dv, sb.PartnerCenterClient, &connectivity.Options{Queue: DefaultQueue})
	pc := providers(t, dv)["Microsoft Partner Center"]
	_, err := dv.Update(t.Context(), schema.SetProviders, pc.ID, dataverse.Row{"csp_verifyrequestedon": time.Now().Add(-time.Minute)}, nil)
	require.NoError(t, err)
	runner := jobs.New(dv, []jobs.Job{conn.Job(15 * time.Minute)}, jobs.Options{Instance: "a"})
	_, err = runner.RunNow(t.Context(), connectivity.VerifyJobName, schema.TriggerSchedule)
	require.NoError(t, err)
	p := providers(t, dv)["Microsoft Partner Center"]
	assert.True(t, p.VerifyRequestedOn.IsZero())
	assert.NotContains(t, p.ConnectivityMessage, "Verify requested on")
	calls := len(sb.PartnerCenter.Requests())
	require.NoError(t, conn.HandleProviderRow(t.Context(), work.Batch{Key: work.Key{Table: schema.TableProvider, ID: pc.ID}}))
	assert.Equal(t, calls, len(sb.PartnerCenter.Requests()))
}
