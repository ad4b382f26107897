package testrig

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/work"
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
		MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond, Tables: schema.Schema().Tables})
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

// EventJSON is a Dataverse RemoteExecutionContext for an Update of row in table by user in org, whose
// Target carries cols: what the service endpoint posts.
func EventJSON(org, user dataverse.GUID, table string, row dataverse.GUID, cols ...string) string {
	var attrs []string
	for _, c := range cols {
		attrs = append(attrs, fmt.Sprintf(`{"key":%q,"value":1}`, c))
	}
	return fmt.Sprintf(`{"MessageName":"Update","PrimaryEntityName":%q,"PrimaryEntityId":%q,"OrganizationId":%q,"InitiatingUserId":%q,"UserId":%q,
"CorrelationId":"9a1b2c3d-0000-4000-8000-000000000001","Depth":1,"Mode":1,"Stage":40,"OperationCreatedOn":"\/Date(1763700000000)\/",
"InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","LogicalName":%q,"Id":%q,"Attributes":[%s]}}]}`,
		table, row, org, user, user, table, row, strings.Join(attrs, ","))
}

// RunQueue runs q until the test ends.
func RunQueue(t testing.TB, q *work.Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}
