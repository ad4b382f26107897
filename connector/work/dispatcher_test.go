package work

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
)

func TestDispatchMarksSweepAndJobWorkAsBulk(t *testing.T) {
	t.Parallel()
	d := NewDispatcher()
	var got dataverse.Priority
	d.Handle("csp_thing", func(ctx context.Context, _ Batch) error {
		got = dataverse.PriorityOf(ctx)
		return nil
	})
	for _, tc := range []struct {
		sources []string
		want    dataverse.Priority
	}{
		{[]string{SourceSweep}, dataverse.Bulk},
		{[]string{SourceJob, SourceSweep}, dataverse.Bulk},
		{[]string{SourceSweep, SourceServiceBus}, dataverse.Interactive}, // an event is waiting on it too
		{[]string{SourceAPI}, dataverse.Interactive},
		{[]string{SourceWebhook}, dataverse.Interactive},
		{nil, dataverse.Interactive},
	} {
		require.NoError(t, d.Dispatch(t.Context(), Batch{Key: Key{Table: "csp_thing"}, Sources: tc.sources}))
		assert.Equal(t, tc.want, got, "%v", tc.sources)
	}
}
