package request

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cspconnector/csp-connector/connector/event"
)

func TestDiagnoseWoke(t *testing.T) {
	t.Parallel()
	update := func(cols ...string) event.Event {
		return event.Event{Message: "Update", Target: &event.Entity{Columns: append(cols, "modifiedon")}}
	}
	type run struct {
		Events  []event.Event
		Sources []string
	}
	batch := func(sources []string, evs ...event.Event) run { return run{Events: evs, Sources: sources} }
	const webhook, sweep = "webhook", "sweep" // the work package's sources
	hook := []string{webhook}
	triggers := []string{"csp_provisioningstatus", DiagnoseColumn}
	tests := []struct {
		name        string
		w           run
		asked, only bool
	}{
		{"a diagnose request alone", batch(hook, update(DiagnoseColumn)), true, true},
		{"two diagnose requests", batch([]string{webhook, webhook}, update(DiagnoseColumn), update(DiagnoseColumn)), true, true},
		{"a diagnose request and a Retry in one write", batch(hook, update(DiagnoseColumn, "csp_provisioningstatus")), true, false},
		{"a diagnose request and a Retry", batch([]string{webhook, webhook}, update(DiagnoseColumn), update("csp_provisioningstatus")), true, false},
		{"a diagnose request and a sweep", batch([]string{webhook, sweep}, update(DiagnoseColumn)), true, false},
		{"a Retry", batch(hook, update("csp_provisioningstatus")), false, false},
		{"a sweep", batch([]string{sweep}), false, false},
		{"a message cut for size", batch(hook, event.Event{Message: "Update", Truncated: true}), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.asked, DiagnoseAsked(tt.w.Events), "DiagnoseAsked")
			assert.Equal(t, tt.only, OnlyDiagnose(tt.w.Events, tt.w.Sources, triggers), "OnlyDiagnose")
		})
	}
}
