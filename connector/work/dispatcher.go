package work

import (
	"context"
	"fmt"
	"sort"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Dispatcher routes work to the handler registered for its table (or custom API message). Workflows
// register their handlers and the triggers that wake them; the triggers also feed the Gate and the
// Dataverse step registration, so one declaration says what wakes a handler.
type Dispatcher struct {
	handlers map[string]Handler
	triggers []Trigger
}

// NewDispatcher returns an empty dispatcher.
func NewDispatcher() *Dispatcher { return &Dispatcher{handlers: map[string]Handler{}} }

// Handle registers h for work on table (a table logical name, or an unbound custom API's message name)
// and the triggers that wake it.
func (d *Dispatcher) Handle(table string, h Handler, triggers ...Trigger) {
	if _, dup := d.handlers[table]; dup {
		panic(fmt.Sprintf("connector: two handlers for %s", table))
	}
	d.handlers[table] = h
	d.triggers = append(d.triggers, triggers...)
}

// Dispatch runs the handler for w's table; ErrNoHandler when there is none.
// Work only sweeps and jobs asked for is bulk work for Dataverse's service protection budget: it leaves
// the budget's reserve to work someone is waiting on (an event, an API call, a button).
func (d *Dispatcher) Dispatch(ctx context.Context, w Batch) error {
	h, ok := d.handlers[w.Key.Table]
	if !ok {
		return ErrNoHandler
	}
	if w.Bulk() {
		ctx = dataverse.WithPriority(ctx, dataverse.Bulk)
	}
	return h(ctx, w)
}

// Bulk reports work that only sweeps and jobs asked for: nobody is waiting on it.
func (w Batch) Bulk() bool {
	for _, s := range w.Sources {
		if s != SourceSweep && s != SourceJob {
			return false
		}
	}
	return len(w.Sources) > 0
}

// Triggers lists every registered trigger.
func (d *Dispatcher) Triggers() []Trigger { return append([]Trigger(nil), d.triggers...) }

// Tables lists the tables with a handler.
func (d *Dispatcher) Tables() []string {
	out := make([]string, 0, len(d.handlers))
	for t := range d.handlers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Trigger is one kind of Dataverse event that wakes the connector: a message on a table and, for Update,
// the columns whose change matters. The same declaration registers the Dataverse step (its filtering
// attributes are Columns) and drives the loop guard.
type Trigger struct {
	Table   string
	Message string // Create, Update, Delete, or a custom API's unique name
	// Columns are the trigger columns (Update only; empty: any change).
	Columns []string
	// WriteBack are the columns the connector itself writes on this table. A change the connector made to
	// them never wakes it, even if they are trigger columns too.
	WriteBack []string
	// Images are the pre/post images the handler reads from the event.
	Images []dataverse.StepImage
}
