package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/internal/jsontree"
)

// Event is one Dataverse event — a RemoteExecutionContext posted to Service Bus (message format Json) or
// to a webhook — reduced to what the connector decides on. Handlers treat it as a wake-up and re-read the
// row: the event says which row and what changed, Dataverse holds the truth.
type Event struct {
	// Message is the operation: Create, Update, Delete, … or a custom API's unique name.
	Message string
	// Table and RowID are the row the operation was on (PrimaryEntityName, PrimaryEntityId).
	Table string
	RowID dataverse.GUID
	// OrganizationID and OrganizationName identify the environment that sent it.
	OrganizationID   dataverse.GUID
	OrganizationName string
	CorrelationID    string
	OperationID      string
	RequestID        string
	// InitiatingUserID is the user whose action started the pipeline; UserID the one it ran as. An event
	// whose InitiatingUserID is the connector's own application user was caused by the connector.
	InitiatingUserID dataverse.GUID
	UserID           dataverse.GUID
	// Depth is the pipeline depth: 1 for a person's action.
	Depth              int
	Mode               int // 0 synchronous, 1 asynchronous
	Stage              int // 40 post-operation
	OperationCreatedOn time.Time
	// Target is the written row for Create and Update: only the submitted columns and the ones Dataverse
	// maintains. TargetRef is the row for Delete and for bound custom APIs.
	Target    *Entity
	TargetRef *dataverse.Ref
	// Parameters are the other input parameters (a custom API's), decoded like attribute values.
	Parameters map[string]any
	// PreImages and PostImages are the registered images by alias.
	PreImages, PostImages map[string]Entity
	// Truncated is set when Dataverse dropped the parameters and images because the message was too large
	// (MessageMaxSizeExceeded, or the webhook header x-ms-dynamics-msg-size-exceeded): re-read the row.
	Truncated bool
}

// Entity is a row inside an event: its attributes, decoded by their __type, and formatted values.
type Entity struct {
	Table string
	ID    dataverse.GUID
	// Attributes maps column → value: string, bool, int64, float64, time.Time (UTC), dataverse.Ref
	// (lookups), Choice, Money, []Choice (multi-select), nil, or json.RawMessage for shapes not recognised.
	Attributes map[string]any
	// Columns lists the attribute names in the order Dataverse sent them.
	Columns         []string
	FormattedValues map[string]string
	RowVersion      string
}

// Choice is an option set value.
type Choice int

// Money is a currency amount.
type Money float64

// ChangedColumns returns the columns the event's Target carries: for an Update, the submitted ones plus
// those Dataverse maintains (modifiedon, modifiedby, …).
func (e Event) ChangedColumns() []string {
	if e.Target == nil {
		return nil
	}
	return e.Target.Columns
}

// Changed reports whether the Target carries column.
func (e Event) Changed(column string) bool { return slices.Contains(e.ChangedColumns(), column) }

// DecodeError is a message that can never be processed; its Reason is fit for a dead-letter reason and
// its Detail for the description an admin reads.
type DecodeError struct {
	Reason string
	Detail string
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Detail }

// Dead-letter reasons for messages that can never succeed.
const (
	ReasonNotJSON   = "NotJson"
	ReasonMalformed = "MalformedMessage"
)

// IsDecodeError reports a message that will never decode (dead-letter it, do not retry).
func IsDecodeError(err error) bool {
	var de *DecodeError
	return errors.As(err, &de)
}

// Decode reads a RemoteExecutionContext. It is lenient — unknown fields are ignored, values of
// unexpected shape are kept raw — and strict only about what the connector cannot do without: the
// operation, the table and the row.
func Decode(body []byte) (Event, error) {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\ufeff")))
	switch {
	case len(body) == 0:
		return Event{}, &DecodeError{ReasonMalformed, "the message body is empty"}
	case body[0] == '<':
		return Event{}, &DecodeError{ReasonNotJSON, "the body is XML: set the Dataverse service endpoint's message format to Json (messageformat 2)"}
	case body[0] == '[' || body[0] == '"' || body[0] == '-' || (body[0] >= '0' && body[0] <= '9') ||
		bytes.Equal(body, []byte("null")) || bytes.Equal(body, []byte("true")) || bytes.Equal(body, []byte("false")):
		return Event{}, &DecodeError{ReasonNotJSON, "the body is JSON but not a JSON object: a Dataverse message is one RemoteExecutionContext object"}
	case body[0] != '{':
		return Event{}, &DecodeError{ReasonNotJSON, "the body is not JSON (binary .NET XML?): set the Dataverse service endpoint's message format to Json (messageformat 2)"}
	}
	// One copy of the body, parsed once: values kept raw are slices of it, so the caller's buffer can be
	// reused and nothing is copied per level.
	root, err := jsontree.Parse(bytes.Clone(body))
	switch {
	case errors.Is(err, jsontree.ErrTooDeep):
		return Event{}, &DecodeError{ReasonMalformed, "the message nests deeper than " + strconv.Itoa(jsontree.MaxDepth) + " levels; Dataverse's own messages nest about ten"}
	case errors.Is(err, jsontree.ErrTooLarge):
		return Event{}, &DecodeError{ReasonMalformed, "the message holds more than " + strconv.Itoa(jsontree.MaxValues) + " values; Dataverse's own hold a few thousand at most"}
	}
	if err != nil {
		return Event{}, &DecodeError{ReasonNotJSON, "the body is not a JSON object: " + err.Error()}
	}
	if root.Kind != jsontree.Object {
		return Event{}, &DecodeError{ReasonNotJSON, "the body is not a JSON object"}
	}
	m := root.Member
	e := Event{
		CorrelationID: guidText(m("CorrelationId")), OperationID: guidText(m("OperationId")), RequestID: guidText(m("RequestId")),
		Depth: intOf(m("Depth")), Mode: intOf(m("Mode")), Stage: intOf(m("Stage")),
	}
	e.Message, _ = m("MessageName").Str()
	e.Table, _ = m("PrimaryEntityName").Str()
	e.OrganizationName, _ = m("OrganizationName").Str()
	if exceeded := m("MessageMaxSizeExceeded"); !exceeded.IsNull() && !(exceeded.Kind == jsontree.Bool && exceeded.Text == "false") {
		e.Truncated = true
	}
	e.RowID, _ = guidOf(m("PrimaryEntityId"))
	e.OrganizationID, _ = guidOf(m("OrganizationId"))
	e.InitiatingUserID, _ = guidOf(m("InitiatingUserId"))
	e.UserID, _ = guidOf(m("UserId"))
	if t, ok := dateOf(m("OperationCreatedOn")); ok {
		e.OperationCreatedOn = t
	}
	var problems []string
	if e.Message == "" {
		problems = append(problems, "no MessageName")
	}
	if e.Table == "" {
		problems = append(problems, "no PrimaryEntityName")
	}
	if e.RowID == (dataverse.GUID{}) && e.Message != "" && !isUnboundMessage(e.Message) {
		problems = append(problems, "no PrimaryEntityId")
	}
	if len(problems) > 0 {
		return Event{}, &DecodeError{ReasonMalformed, "not a Dataverse RemoteExecutionContext: " + strings.Join(problems, ", ")}
	}
	for _, kv := range keyValues(m("InputParameters")) {
		if kv.key == "Target" {
			if ent, ok := entityOf(kv.value); ok {
				e.Target = &ent
				continue
			}
			if v, ok := valueOf(kv.value).(dataverse.Ref); ok {
				e.TargetRef = &v
				continue
			}
		}
		if e.Parameters == nil {
			e.Parameters = map[string]any{}
		}
		e.Parameters[kv.key] = valueOf(kv.value)
	}
	e.PreImages = imagesOf(m("PreEntityImages"))
	e.PostImages = imagesOf(m("PostEntityImages"))
	return e, nil
}

// isUnboundMessage reports messages that may not name a row (an unbound custom API).
func isUnboundMessage(m string) bool {
	switch m {
	case "Create", "Update", "Delete", "Assign", "SetState", "SetStateDynamicEntity":
		return false
	}
	return true
}

type keyValue struct {
	key   string
	value *jsontree.Node
}

// keyValues reads a WCF-style [{"key","value"}] list; anything else yields nothing.
func keyValues(list *jsontree.Node) []keyValue {
	if list == nil || list.Kind != jsontree.Array {
		return nil
	}
	out := make([]keyValue, 0, len(list.Items))
	for _, item := range list.Items {
		if item.Kind != jsontree.Object {
			return nil
		}
		key := item.Member("key")
		k, ok := key.Str()
		if !ok && !key.IsNull() {
			return nil
		}
		out = append(out, keyValue{k, item.Member("value")})
	}
	return out
}

func imagesOf(list *jsontree.Node) map[string]Entity {
	var out map[string]Entity
	for _, kv := range keyValues(list) {
		if ent, ok := entityOf(kv.value); ok {
			if out == nil {
				out = map[string]Entity{}
			}
			out[kv.key] = ent
		}
	}
	return out
}

// optionalString reads a member that must be a string when present.
func optionalString(v *jsontree.Node) (string, bool) {
	if v.IsNull() {
		return "", true
	}
	return v.Str()
}

// entityOf reads an Entity: it has Attributes (the doc's image entities carry no __type).
func entityOf(v *jsontree.Node) (Entity, bool) {
	if v == nil || v.Kind != jsontree.Object || v.Member("Attributes") == nil {
		return Entity{}, false
	}
	typ, ok1 := optionalString(v.Member("__type"))
	table, ok2 := optionalString(v.Member("LogicalName"))
	if !ok1 || !ok2 || (typ != "" && !strings.HasPrefix(typ, "Entity:")) {
		return Entity{}, false
	}
	out := Entity{Table: table, Attributes: map[string]any{}}
	if rv := v.Member("RowVersion"); !rv.IsNull() {
		out.RowVersion = strings.Trim(string(rv.Raw), `"`)
	}
	out.ID, _ = guidOf(v.Member("Id"))
	for _, kv := range keyValues(v.Member("Attributes")) {
		if _, dup := out.Attributes[kv.key]; !dup {
			out.Columns = append(out.Columns, kv.key)
		}
		out.Attributes[kv.key] = valueOf(kv.value)
	}
	for _, kv := range keyValues(v.Member("FormattedValues")) {
		if s, ok := kv.value.Str(); ok {
			if out.FormattedValues == nil {
				out.FormattedValues = map[string]string{}
			}
			out.FormattedValues[kv.key] = s
		}
	}
	return out, true
}

// valueOf decodes an attribute value by its __type: EntityReference, OptionSetValue, Money, a list of
// OptionSetValues (multi-select), a /Date(ms)/ date, or a plain JSON value. A value of any other shape is
// kept raw without being looked into, so no part of a message is decoded twice.
func valueOf(v *jsontree.Node) any {
	if v.IsNull() {
		return nil
	}
	switch v.Kind {
	case jsontree.String:
		if t, ok := parseWCFDate(v.Text); ok {
			return t
		}
		return v.Text
	case jsontree.Object:
		typ, ok1 := optionalString(v.Member("__type"))
		table, ok2 := optionalString(v.Member("LogicalName"))
		name, ok3 := optionalString(v.Member("Name"))
		if !ok1 || !ok2 || !ok3 {
			return json.RawMessage(v.Raw)
		}
		id, value := v.Member("Id"), v.Member("Value")
		kind, _, _ := strings.Cut(typ, ":")
		switch {
		case kind == "EntityReference" || (kind == "" && table != "" && id != nil && value == nil):
			ref := dataverse.Ref{Table: table, Name: name}
			ref.ID, _ = guidOf(id)
			return ref
		case kind == "OptionSetValue":
			return Choice(intOf(value))
		case kind == "Money":
			var f float64
			if value != nil {
				f, _ = strconv.ParseFloat(string(value.Raw), 64)
			}
			return Money(f)
		case strings.HasPrefix(kind, "Entity") && kind != "EntityReference":
			if ent, ok := entityOf(v); ok {
				return ent
			}
		}
		return json.RawMessage(v.Raw)
	case jsontree.Array:
		choices := make([]Choice, 0, len(v.Items))
		for _, it := range v.Items {
			typ, _ := it.Member("__type").Str()
			if kind, _, _ := strings.Cut(typ, ":"); kind != "OptionSetValue" {
				return json.RawMessage(v.Raw)
			}
			choices = append(choices, Choice(intOf(it.Member("Value"))))
		}
		return choices
	case jsontree.Bool:
		return v.Text == "true"
	}
	n := json.Number(v.Text)
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return json.RawMessage(v.Raw)
}

// parseWCFDate reads "/Date(1506384247000)/" and "/Date(1506409448000-0700)/": milliseconds since the
// epoch in UTC; the offset, when present, is the sender's zone and does not move the instant.
func parseWCFDate(s string) (time.Time, bool) {
	inner, ok := strings.CutPrefix(s, "/Date(")
	if !ok {
		return time.Time{}, false
	}
	inner, ok = strings.CutSuffix(inner, ")/")
	if !ok || inner == "" {
		return time.Time{}, false
	}
	end := len(inner)
	if i := strings.IndexAny(inner[1:], "+-"); i >= 0 {
		end = i + 1
	}
	ms, err := strconv.ParseInt(inner[:end], 10, 64)
	if err != nil || ms < -62135596800000 || ms > 253402300799999 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

func dateOf(v *jsontree.Node) (time.Time, bool) {
	s, ok := v.Str()
	if !ok {
		return time.Time{}, false
	}
	if t, ok := parseWCFDate(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t.UTC(), err == nil
}

func guidOf(v *jsontree.Node) (dataverse.GUID, bool) {
	s, ok := v.Str()
	if !ok {
		return dataverse.GUID{}, false
	}
	id, err := uuid.Parse(strings.Trim(s, "{}"))
	return id, err == nil
}

func guidText(v *jsontree.Node) string {
	s, _ := v.Str()
	return s
}

// intOf reads an integer sent as a number or as a string of digits.
func intOf(v *jsontree.Node) int {
	if v == nil || (v.Kind != jsontree.Number && v.Kind != jsontree.String) {
		return 0
	}
	n, err := strconv.ParseInt(v.Text, 10, 32)
	if err != nil {
		return 0
	}
	return int(n)
}

// String summarizes the event for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s of %s %s", e.Message, e.Table, e.RowID)
}
