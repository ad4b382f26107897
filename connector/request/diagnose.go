package request

import (
	"context"
	"fmt"
	"slices"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// The Diagnose request: a row of a table that can be diagnosed (license change log, subscription,
// agreement) asks for the check-by-check walk `connector diagnose` prints by setting DiagnoseColumn (the
// form's Diagnose button sets it to the server's time). The connector writes the walk into
// DiagnosisColumn and empties the request in one write; nothing else about the row changes. There is no
// done column: a set request is always one not yet answered.
const (
	DiagnoseColumn  = "csp_diagnoserequestedon"
	DiagnosisColumn = "csp_diagnosis"
)

// DiagnoseAsked reports whether a diagnose request may be among what woke a run, given its events: an
// event set the request column, or an event whose columns are unknown (a message cut for size).
func DiagnoseAsked(events []event.Event) bool {
	return slices.ContainsFunc(events, func(ev event.Event) bool { return ev.Target == nil || ev.Changed(DiagnoseColumn) })
}

// OnlyDiagnose reports whether a diagnose request is all that woke a run, given its events and the
// sources of its work (one per item): it came from events only, every one of them set the request column,
// and none changed any of the workflow's own trigger columns. Such a run answers the request and does
// nothing else (Diagnose never provisions, sends links or syncs).
func OnlyDiagnose(events []event.Event, sources []string, triggers []string) bool {
	if len(events) == 0 || len(events) < len(sources) {
		return false
	}
	for _, ev := range events {
		if ev.Target == nil || !ev.Changed(DiagnoseColumn) {
			return false
		}
		for _, c := range triggers {
			if c != DiagnoseColumn && ev.Changed(c) {
				return false
			}
		}
	}
	return true
}

// AnswerDiagnosis answers a pending diagnose request on one row of the entity set: when the request column
// is set, diagnose renders the walk, and the walk (fitted to the column) is written with the request
// emptied, If-Match the row read, so a request made while diagnosing is answered by a fresh walk. A row
// without a request, or gone, needs nothing.
func AnswerDiagnosis(ctx context.Context, dv *dataverse.Client, table, set string, id dataverse.GUID, diagnose func(context.Context) (string, error)) error {
	for attempt := 0; ; attempt++ {
		row, err := dv.Get(ctx, set, id, &dataverse.GetOptions{Select: []string{DiagnoseColumn}})
		if dataverse.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("diagnose %s %s: %w", table, id, err)
		}
		if at, ok := row.Time(DiagnoseColumn); !ok || at.IsZero() {
			return nil
		}
		text, err := diagnose(ctx)
		if dataverse.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("diagnose %s %s: %w", table, id, err)
		}
		changes := dataverse.Row{DiagnosisColumn: text, DiagnoseColumn: nil}
		schema.FitRow(table, changes)
		_, err = dv.Update(ctx, set, id, changes, &dataverse.UpdateOptions{IfMatch: row.ETag()})
		switch {
		case err == nil, dataverse.IsNotFound(err):
			return nil
		case dataverse.IsConflict(err) && attempt < 2:
			continue // changed while diagnosing: walk it again as it is now
		}
		return fmt.Errorf("diagnose %s %s: write the diagnosis: %w", table, id, err)
	}
}
