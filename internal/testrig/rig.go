package testrig

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// Dataverse starts the Dataverse simulator with the connector's schema (no rows) and returns it with a
// client whose retries are short; both end with the test.
func Dataverse(t testing.TB) (*dataversetest.Server, *dataverse.Client) {
	t.Helper()
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables})
	require.NoError(t, err)
	t.Cleanup(dvs.Close)
	dv, err := dataverse.NewClient(dvs.URL, nil, &dataverse.ClientOptions{HTTPClient: dvs.Client(), MaxRetries: 1,
		MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond})
	require.NoError(t, err)
	return dvs, dv
}

// Job reads the csp_job row called name.
func Job(t testing.TB, dv *dataverse.Client, name string) schema.Job {
	t.Helper()
	r, err := dv.GetByKey(context.Background(), schema.SetJobs, dataverse.Key{"csp_name": name}, &dataverse.GetOptions{Select: dataverse.Columns[schema.Job]()})
	require.NoError(t, err)
	var j schema.Job
	require.NoError(t, dataverse.Unmarshal(r, &j))
	return j
}

// JobRuns reads every csp_jobrun row, oldest first.
func JobRuns(t testing.TB, dv *dataverse.Client) []schema.JobRun {
	t.Helper()
	var out []schema.JobRun
	for r, err := range dv.List(context.Background(), schema.SetJobRuns, &dataverse.Query{Select: dataverse.Columns[schema.JobRun](), OrderBy: []string{"csp_startedon"}}) {
		require.NoError(t, err)
		var jr schema.JobRun
		require.NoError(t, dataverse.Unmarshal(r, &jr))
		out = append(out, jr)
	}
	return out
}
