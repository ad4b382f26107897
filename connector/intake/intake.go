package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
)

// DefaultQueue is the Service Bus queue name the infrastructure creates.
const DefaultQueue = "dataverse-events"

// Dead-letter reasons the intake adds to the decoder's.
const (
	ReasonForeignOrganization = "ForeignOrganization"
	ReasonUnknownTrigger      = "NotRegistered"
)

// Verdict is what the intake makes of one event before any work: process it, ignore it (nothing to do:
// settle as done), or reject it (it can never succeed: dead-letter with Reason and Detail).
type Verdict struct {
	Action Action
	Reason string
	Detail string
}

// Action is a verdict's or a settlement's kind.
type Action int

// Actions.
const (
	ActionProcess Action = iota
	ActionIgnore
	ActionReject
)

// Gate decides on events: it knows the organization the connector serves, the connector's own user (from
// WhoAmI) and the triggers.
type Gate struct {
	OrganizationID dataverse.GUID // zero: not checked
	SelfUserID     dataverse.GUID // zero: no loop guard
	Triggers       []work.Trigger
}

// Judge decides on ev.
func (g *Gate) Judge(ev event.Event) Verdict {
	if g.OrganizationID != (dataverse.GUID{}) && ev.OrganizationID != g.OrganizationID {
		return Verdict{ActionReject, ReasonForeignOrganization, fmt.Sprintf(
			"the event comes from organization %s (%s) but this connector serves %s: check which environment's service endpoint posts to this queue",
			ev.OrganizationID, ev.OrganizationName, g.OrganizationID)}
	}
	trs := g.triggersFor(ev)
	if len(trs) == 0 {
		return Verdict{ActionIgnore, "NoTrigger", fmt.Sprintf("no trigger is declared for %s of %s (a step registered by hand or by an older version?)", ev.Message, ev.Table)}
	}
	self := g.caused(ev)
	if ev.Target == nil || ev.Truncated {
		// Delete, a custom API, or a message cut for size: the columns are unknown. The connector's own
		// deletes and API calls are its own business; anyone else's are work.
		if self {
			return Verdict{ActionIgnore, "OwnAction", "the connector did this itself"}
		}
		return Verdict{Action: ActionProcess}
	}
	changed := ev.ChangedColumns()
	for _, tr := range trs {
		if len(tr.Columns) == 0 {
			if !self {
				return Verdict{Action: ActionProcess}
			}
			continue // with no trigger columns declared, everything the connector writes is a write-back
		}
		for _, c := range tr.Columns {
			if slices.Contains(changed, c) && !(self && slices.Contains(tr.WriteBack, c)) {
				return Verdict{Action: ActionProcess}
			}
		}
	}
	if self {
		return Verdict{ActionIgnore, "OwnWrite", "the connector's own write: " + strings.Join(changed, ", ")}
	}
	return Verdict{ActionIgnore, "NoTriggerColumn", "no trigger column changed: " + strings.Join(changed, ", ")}
}

func (g *Gate) caused(ev event.Event) bool {
	return g.SelfUserID != (dataverse.GUID{}) && ev.InitiatingUserID == g.SelfUserID
}

func (g *Gate) triggersFor(ev event.Event) []work.Trigger {
	var out []work.Trigger
	for _, tr := range g.Triggers {
		if strings.EqualFold(tr.Message, ev.Message) && (tr.Table == ev.Table || tr.Table == "") {
			out = append(out, tr)
		}
	}
	return out
}

// Settlement is what becomes of one delivered message. The Service Bus intake turns it into complete,
// abandon or dead-letter; the webhook into a status code.
type Settlement struct {
	Action      SettleAction
	Reason      string // dead-letter reason (a short code)
	Description string // dead-letter description (for the admin reading the dead-letter queue)
	Err         error  // the failure behind an abandon
}

// SettleAction is what to do with a delivered message.
type SettleAction int

// Settle actions.
const (
	SettleComplete   SettleAction = iota // done, or nothing to do
	SettleAbandon                        // failed for now: deliver again later
	SettleDeadLetter                     // can never succeed
)

func (a SettleAction) String() string {
	switch a {
	case SettleComplete:
		return "completed"
	case SettleAbandon:
		return "abandoned"
	default:
		return "deadlettered"
	}
}

// Intake turns delivered message bodies into work: decode, judge, queue. It is shared by the Service Bus
// listener and the webhook so both decide the same way.
type Intake struct {
	Gate    *Gate
	Queue   *work.Queue
	Logger  *slog.Logger
	Metrics *metrics.Recorder
}

// Receive decodes and judges body. It returns the event (when it decoded) and, unless the event is to be
// processed, the settlement to apply at once.
func (in *Intake) Receive(body []byte, source string, truncatedHint bool) (event.Event, *Settlement) {
	in.Metrics.Received(source)
	ev, err := event.Decode(body)
	if err != nil {
		var de *event.DecodeError
		if errors.As(err, &de) {
			return event.Event{}, &Settlement{Action: SettleDeadLetter, Reason: de.Reason, Description: de.Detail}
		}
		return event.Event{}, &Settlement{Action: SettleDeadLetter, Reason: event.ReasonMalformed, Description: err.Error()}
	}
	if truncatedHint {
		ev.Truncated = true
	}
	v := in.Gate.Judge(ev)
	log := in.logger().With("source", source, "message", ev.Message, "table", ev.Table, "id", ev.RowID, "correlation_id", ev.CorrelationID)
	switch v.Action {
	case ActionReject:
		log.Warn("event rejected", "reason", v.Reason, "detail", v.Detail)
		return ev, &Settlement{Action: SettleDeadLetter, Reason: v.Reason, Description: v.Detail}
	case ActionIgnore:
		log.Debug("event ignored", "reason", v.Reason, "detail", v.Detail)
		return ev, &Settlement{Action: SettleComplete, Reason: v.Reason}
	}
	return ev, nil
}

// Process runs the event's work and waits for it: complete on success or when no handler wants it,
// abandon on failure.
func (in *Intake) Process(ctx context.Context, ev event.Event, source string) Settlement {
	err := in.Queue.Do(ctx, work.Item{Key: work.KeyFor(ev), Event: &ev, Source: source})
	switch {
	case err == nil, errors.Is(err, work.ErrNoHandler):
		return Settlement{Action: SettleComplete}
	default:
		return Settlement{Action: SettleAbandon, Err: err}
	}
}

func (in *Intake) logger() *slog.Logger {
	if in.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return in.Logger
}
