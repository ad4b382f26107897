package request

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/work"
)

func TestDiagnoseWoke(t *testing.T) {
	t.Parallel()
	update := func(cols ...string) event.Event {
		return event.Event{Message: "Update", Target: &event.Entity{Columns: append(cols, "modifiedon")}}
	}
	batch := func(sources []string, evs ...event.Event) work.Batch {
		return work.Batch{Events: evs, Sources: sources}
	}
	hook := []string{work.SourceWebhook}
	triggers := []string{"csp_provisioningstatus", DiagnoseColumn}
	tests := []struct {
		name        string
		w           work.Batch
		asked, only bool
	}{
		{"a diagnose request alone", batch(hook, update(DiagnoseColumn)), true, true},
		{"two diagnose requests", batch([]string{work.SourceWebhook, work.SourceWebhook}, update(DiagnoseColumn), update(DiagnoseColumn)), true, true},
		{"a diagnose request and a Retry in one write", batch(hook, update(DiagnoseColumn, "csp_provisioningstatus")), true, false},
		{"a diagnose request and a Retry", batch([]string{work.SourceWebhook, work.SourceWebhook}, update(DiagnoseColumn), update("csp_provisioningstatus")), true, false},
		{"a diagnose request and a sweep", batch([]string{work.SourceWebhook, work.SourceSweep}, update(DiagnoseColumn)), true, false},
		{"a Retry", batch(hook, update("csp_provisioningstatus")), false, false},
		{"a sweep", batch([]string{work.SourceSweep}), false, false},
		{"a message cut for size", batch(hook, event.Event{Message: "Update", Truncated: true}), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.asked, DiagnoseAsked(tt.w), "DiagnoseAsked")
			assert.Equal(t, tt.only, OnlyDiagnose(tt.w, triggers), "OnlyDiagnose")
		})
	}
}
