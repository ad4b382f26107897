package connector

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
	Target    *EventEntity
	TargetRef *dataverse.Ref
	// Parameters are the other input parameters (a custom API's), decoded like attribute values.
	Parameters map[string]any
	// PreImages and PostImages are the registered images by alias.
	PreImages, PostImages map[string]EventEntity
	// Truncated is set when Dataverse dropped the parameters and images because the message was too large
	// (MessageMaxSizeExceeded, or the webhook header x-ms-dynamics-msg-size-exceeded): re-read the row.
	Truncated bool
}

// EventEntity is a row inside an event: its attributes, decoded by their __type, and formatted values.
type EventEntity struct {
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

// DecodeEvent reads a RemoteExecutionContext. It is lenient — unknown fields are ignored, values of
// unexpected shape are kept raw — and strict only about what the connector cannot do without: the
// operation, the table and the row.
func DecodeEvent(body []byte) (Event, error) {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\ufeff")))
	switch {
	case len(body) == 0:
		return Event{}, &DecodeError{ReasonMalformed, "the message body is empty"}
	case body[0] == '<':
		return Event{}, &DecodeError{ReasonNotJSON, "the body is XML: set the Dataverse service endpoint's message format to Json (messageformat 2)"}
	case body[0] != '{':
		return Event{}, &DecodeError{ReasonNotJSON, "the body is not JSON (binary .NET XML?): set the Dataverse service endpoint's message format to Json (messageformat 2)"}
	}
	var raw struct {
		MessageName            string          `json:"MessageName"`
		PrimaryEntityName      string          `json:"PrimaryEntityName"`
		PrimaryEntityID        json.RawMessage `json:"PrimaryEntityId"`
		OrganizationID         json.RawMessage `json:"OrganizationId"`
		OrganizationName       string          `json:"OrganizationName"`
		CorrelationID          json.RawMessage `json:"CorrelationId"`
		OperationID            json.RawMessage `json:"OperationId"`
		RequestID              json.RawMessage `json:"RequestId"`
		InitiatingUserID       json.RawMessage `json:"InitiatingUserId"`
		UserID                 json.RawMessage `json:"UserId"`
		Depth                  json.RawMessage `json:"Depth"`
		Mode                   json.RawMessage `json:"Mode"`
		Stage                  json.RawMessage `json:"Stage"`
		OperationCreatedOn     json.RawMessage `json:"OperationCreatedOn"`
		InputParameters        json.RawMessage `json:"InputParameters"`
		PreEntityImages        json.RawMessage `json:"PreEntityImages"`
		PostEntityImages       json.RawMessage `json:"PostEntityImages"`
		MessageMaxSizeExceeded json.RawMessage `json:"MessageMaxSizeExceeded"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return Event{}, &DecodeError{ReasonNotJSON, "the body is not a JSON object: " + err.Error()}
	}
	e := Event{
		Message: raw.MessageName, Table: raw.PrimaryEntityName, OrganizationName: raw.OrganizationName,
		CorrelationID: guidText(raw.CorrelationID), OperationID: guidText(raw.OperationID), RequestID: guidText(raw.RequestID),
		Depth: intOf(raw.Depth), Mode: intOf(raw.Mode), Stage: intOf(raw.Stage),
		Truncated: len(raw.MessageMaxSizeExceeded) > 0 && string(raw.MessageMaxSizeExceeded) != "null" && string(raw.MessageMaxSizeExceeded) != "false",
	}
	e.RowID, _ = guidOf(raw.PrimaryEntityID)
	e.OrganizationID, _ = guidOf(raw.OrganizationID)
	e.InitiatingUserID, _ = guidOf(raw.InitiatingUserID)
	e.UserID, _ = guidOf(raw.UserID)
	if t, ok := dateOf(raw.OperationCreatedOn); ok {
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
	for _, kv := range keyValues(raw.InputParameters) {
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
	e.PreImages = imagesOf(raw.PreEntityImages)
	e.PostImages = imagesOf(raw.PostEntityImages)
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
	value json.RawMessage
}

// keyValues reads a WCF-style [{"key","value"}] list; anything else yields nothing.
func keyValues(raw json.RawMessage) []keyValue {
	var list []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	out := make([]keyValue, 0, len(list))
	for _, kv := range list {
		out = append(out, keyValue{kv.Key, kv.Value})
	}
	return out
}

func imagesOf(raw json.RawMessage) map[string]EventEntity {
	var out map[string]EventEntity
	for _, kv := range keyValues(raw) {
		if ent, ok := entityOf(kv.value); ok {
			if out == nil {
				out = map[string]EventEntity{}
			}
			out[kv.key] = ent
		}
	}
	return out
}

// entityOf reads an Entity: it has Attributes (the doc's image entities carry no __type).
func entityOf(raw json.RawMessage) (EventEntity, bool) {
	var ent struct {
		Type            string          `json:"__type"`
		Attributes      json.RawMessage `json:"Attributes"`
		FormattedValues json.RawMessage `json:"FormattedValues"`
		ID              json.RawMessage `json:"Id"`
		LogicalName     string          `json:"LogicalName"`
		RowVersion      json.RawMessage `json:"RowVersion"`
	}
	if json.Unmarshal(raw, &ent) != nil || ent.Attributes == nil || (ent.Type != "" && !strings.HasPrefix(ent.Type, "Entity:")) {
		return EventEntity{}, false
	}
	out := EventEntity{Table: ent.LogicalName, Attributes: map[string]any{}, RowVersion: strings.Trim(string(ent.RowVersion), `"`)}
	if out.RowVersion == "null" {
		out.RowVersion = ""
	}
	out.ID, _ = guidOf(ent.ID)
	for _, kv := range keyValues(ent.Attributes) {
		if _, dup := out.Attributes[kv.key]; !dup {
			out.Columns = append(out.Columns, kv.key)
		}
		out.Attributes[kv.key] = valueOf(kv.value)
	}
	for _, kv := range keyValues(ent.FormattedValues) {
		var s string
		if json.Unmarshal(kv.value, &s) == nil {
			if out.FormattedValues == nil {
				out.FormattedValues = map[string]string{}
			}
			out.FormattedValues[kv.key] = s
		}
	}
	return out, true
}

// valueOf decodes an attribute value by its __type: EntityReference, OptionSetValue, Money, a list of
// OptionSetValues (multi-select), a /Date(ms)/ date, or a plain JSON value.
func valueOf(raw json.RawMessage) any {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return json.RawMessage(raw)
		}
		if t, ok := parseWCFDate(s); ok {
			return t
		}
		return s
	case '{':
		var typed struct {
			Type        string          `json:"__type"`
			ID          json.RawMessage `json:"Id"`
			LogicalName string          `json:"LogicalName"`
			Name        *string         `json:"Name"`
			Value       json.RawMessage `json:"Value"`
		}
		if json.Unmarshal(raw, &typed) != nil {
			return json.RawMessage(raw)
		}
		kind, _, _ := strings.Cut(typed.Type, ":")
		switch {
		case kind == "EntityReference" || (kind == "" && typed.LogicalName != "" && typed.ID != nil && typed.Value == nil):
			ref := dataverse.Ref{Table: typed.LogicalName}
			ref.ID, _ = guidOf(typed.ID)
			if typed.Name != nil {
				ref.Name = *typed.Name
			}
			return ref
		case kind == "OptionSetValue":
			return Choice(intOf(typed.Value))
		case kind == "Money":
			f, _ := strconv.ParseFloat(string(typed.Value), 64)
			return Money(f)
		case strings.HasPrefix(kind, "Entity") && kind != "EntityReference":
			if ent, ok := entityOf(raw); ok {
				return ent
			}
		}
		return json.RawMessage(raw)
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return json.RawMessage(raw)
		}
		choices := make([]Choice, 0, len(items))
		for _, it := range items {
			c, ok := valueOf(it).(Choice)
			if !ok {
				return json.RawMessage(raw)
			}
			choices = append(choices, c)
		}
		return choices
	case 't', 'f':
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			return b
		}
	}
	n := json.Number(raw)
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return json.RawMessage(raw)
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

func dateOf(raw json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	if t, ok := parseWCFDate(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t.UTC(), err == nil
}

func guidOf(raw json.RawMessage) (dataverse.GUID, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return dataverse.GUID{}, false
	}
	id, err := uuid.Parse(strings.Trim(s, "{}"))
	return id, err == nil
}

func guidText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func intOf(raw json.RawMessage) int {
	n, err := strconv.ParseInt(strings.Trim(string(raw), `"`), 10, 32)
	if err != nil {
		return 0
	}
	return int(n)
}

// String summarizes the event for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s of %s %s", e.Message, e.Table, e.RowID)
}
