// Package request holds the rule for request columns.
//
// A request column (a job's Run requested on, a provider's Verify requested on, a template's Create
// agreements requested on) asks for something to be done now; the button that sets it writes the
// server's time. The connector carries a request out once: it records when in the row's done column
// (Last run on, Last verified on, Create agreements done on) and empties the request column, so a row
// whose request column is set always holds a request not yet answered, whatever replica reads it and
// however often. A date still to come is carried out now (a request cannot wait: the schedule is for
// that) and the row says so; a date not after the last time the work was done is answered on the row and
// emptied, without doing the work again.
package request

import (
	"fmt"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/mapping"
)

// State is what a request column asks for, given when the work was last done.
type State int

const (
	None    State = iota // empty: nothing asked
	Waiting              // later than the last time it was done: do it now
	Stale                // not later than the last time it was done: answer, do nothing
)

// Of reads a request column against the done column. Dataverse keeps seconds, so both are
// compared to the second.
func Of(requested, lastDone time.Time) State {
	switch {
	case requested.IsZero():
		return None
	case requested.Truncate(time.Second).After(lastDone.Truncate(time.Second)):
		return Waiting
	default:
		return Stale
	}
}

// Served says whether work that started at started, and is being recorded at now, answers a request
// read as requested: one made before the work started, or one dated still to come (which means now). A
// request made while the work ran is left for the next run. A button dates its request by Dataverse's
// clock rounded up to the next whole second, so one made before the work started is dated no later than
// the second after the one the work started in; a request made within that same second after the start
// cannot be told apart, and counts as served.
func Served(requested, started, now time.Time) bool {
	if requested.IsZero() {
		return false
	}
	r := requested.Truncate(time.Second)
	return !r.After(started.Truncate(time.Second).Add(time.Second)) || InFuture(r, now)
}

// Skew is how far ahead of the connector's clock a request may be dated without being called a
// date still to come: the button writes Dataverse's time, which may run a little ahead.
const Skew = time.Minute

// InFuture says whether a request was dated later than the work that answered it (beyond clock skew).
func InFuture(requested, doneAt time.Time) bool {
	return requested.After(doneAt.Add(Skew))
}

// FutureNote explains on the row that a request dated in the future was carried out at once.
// column is the request column's display name; done says what was done ("the job ran").
func FutureNote(column string, requested, doneAt time.Time, done string) string {
	return fmt.Sprintf("%s was set to %s, a time still to come; a request means now, so %s at %s and the request was cleared.",
		column, mapping.FormatTime(requested), done, mapping.FormatTime(doneAt))
}

// StaleNote explains on the row that a request dated no later than the last time the work was done
// was not carried out again. again says how to ask again.
func StaleNote(column string, requested, lastDone time.Time, what, again string) string {
	return fmt.Sprintf("%s was set to %s, which is not after the last time %s (%s): that was already done, so nothing was done again and the request was cleared. %s",
		column, mapping.FormatTime(requested), what, mapping.FormatTime(lastDone), again)
}

// WithNote puts a note about a request in front of a row's message, replacing an earlier note of the
// same column (notes start with the column's name and end the first line).
func WithNote(note, column, message string) string {
	if strings.HasPrefix(message, column+" was set to ") {
		_, message, _ = strings.Cut(message, "\n")
	}
	if message == "" {
		return note
	}
	return note + "\n" + message
}
