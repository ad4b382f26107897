package dataversetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The bulk messages: CreateMultiple, UpdateMultiple and UpsertMultiple, bound to a table's entity set
// (POST /{set}/Microsoft.Dynamics.CRM.CreateMultiple with {"Targets":[…]}). Each target is written as the
// single write would write it (same validation, same Create or Update event per row), in one transaction:
// a target that fails rolls back every target of the call, as on Dataverse's standard tables. The call is
// one request for service protection, however many targets it carries.
const (
	MessageCreateMultiple = "CreateMultiple"
	MessageUpdateMultiple = "UpdateMultiple"
	MessageUpsertMultiple = "UpsertMultiple"
)

var bulkMessages = []string{MessageCreateMultiple, MessageUpdateMultiple, MessageUpsertMultiple}

// bulkActionPrefix is how a bound action is named in a URL.
const bulkActionPrefix = "Microsoft.Dynamics.CRM."

// standardTablesWithBulk are the standard tables of the simulator that support the bulk messages. Custom
// tables all do. Which standard tables do is read from sdkmessagefilters on a real environment; this
// choice is the simulator's (inferred: account and contact are the standard tables Microsoft's bulk
// samples and announcements name; the system and registration tables the simulator carries do not get
// the messages, so a client sees both answers).
var standardTablesWithBulk = map[string]bool{"account": true, "contact": true}

// supportsBulk reports whether the simulator gives a table the bulk messages' sdkmessagefilter rows.
func supportsBulk(def dataverse.Table) bool {
	return !def.Standard || standardTablesWithBulk[def.LogicalName]
}

// bulkAction splits "set/Microsoft.Dynamics.CRM.Message" into the set and the message.
func bulkAction(path string) (set, message string, ok bool) {
	set, action, ok := strings.Cut(path, "/")
	if !ok {
		return "", "", false
	}
	message, ok = strings.CutPrefix(action, bulkActionPrefix)
	return set, message, ok && !strings.Contains(message, "/")
}

// messageFilter reports whether the table has an sdkmessagefilter for the message (the caller holds s.mu).
func (s *Server) messageFilter(t *table, message string) bool {
	messages, filters := s.tables["sdkmessage"], s.tables["sdkmessagefilter"]
	if messages == nil || filters == nil {
		return false
	}
	for _, mid := range messages.order {
		if m := messages.rows[mid]; m.values["name"] != message {
			continue
		}
		for _, fid := range filters.order {
			f := filters.rows[fid]
			if f.values["sdkmessageid"] == mid && f.values["primaryobjecttypecode"] == t.def.LogicalName {
				return true
			}
		}
	}
	return false
}

// bulk serves a bulk message on table t. undoLog, when non-nil (a change set), receives what the call
// wrote so the enclosing change set can roll it back too.
func (s *Server) bulk(o op, t *table, message string, undoLog *[]undo) result {
	if o.method != http.MethodPost {
		return fail(&apiError{status: 405, message: "The requested resource does not support http method '" + o.method + "'."})
	}
	known := false
	for _, m := range bulkMessages {
		known = known || m == message
	}
	if !known {
		return fail(segmentNotFound(bulkActionPrefix + message))
	}
	if !s.messageFilter(t, message) {
		// Inferred: the text of Dataverse's refusal of a bulk message on a table without it is not
		// documented; clients are told to look in sdkmessagefilters first.
		return fail(&apiError{status: 400, message: fmt.Sprintf("The message %s is not supported on the entity %s.", message, t.def.LogicalName)})
	}
	var body struct {
		Targets []json.RawMessage `json:"Targets"`
	}
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(o.body, []byte("\ufeff"))))
	if err := dec.Decode(&body); err != nil {
		return fail(payloadError(t, "The request body is not a JSON object with Targets."))
	}
	if len(body.Targets) == 0 {
		return fail(payloadError(t, "Targets must contain at least one record."))
	}
	var own []undo
	var changes []change
	ids := make([]string, 0, len(body.Targets))
	rollback := func(i int, e *apiError) result {
		for j := len(own) - 1; j >= 0; j-- {
			own[j].apply()
		}
		// Inferred: Dataverse answers a failed bulk call with the failing record's error; the simulator
		// adds which target it was so a log says which row to look at.
		return fail(&apiError{status: e.status, code: e.code, retryAfter: e.retryAfter,
			message: fmt.Sprintf("%s failed at Targets[%d]: %s", message, i, e.message)})
	}
	for i, raw := range body.Targets {
		target, e := s.bulkTarget(o, t, message, raw)
		if e != nil {
			return rollback(i, e)
		}
		target.changes = &changes
		var res result
		switch message {
		case MessageCreateMultiple:
			res = s.create(target, t, &own)
		default:
			res = s.dispatch(target, &own)
		}
		if res.err != nil {
			return rollback(i, res.err)
		}
		if message == MessageCreateMultiple {
			loc := res.header.Get("Odata-Entityid")
			ids = append(ids, loc[strings.LastIndexByte(loc, '(')+1:len(loc)-1])
		}
	}
	if undoLog != nil {
		*undoLog = append(*undoLog, own...)
	}
	if o.changes != nil {
		*o.changes = append(*o.changes, changes...)
	}
	if message == MessageCreateMultiple {
		return result{status: http.StatusOK, body: map[string]any{
			"@odata.context": o.base() + "$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse", "Ids": ids}}
	}
	return result{status: http.StatusNoContent}
}

// bulkTarget turns one target of a bulk message into the single write it stands for: a create, an update
// by primary key (If-Match: *, so a missing row fails as Update does) or an upsert by the address in
// @odata.id (by key or id) or by primary key.
func (s *Server) bulkTarget(o op, t *table, message string, raw json.RawMessage) (op, *apiError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return op{}, payloadError(t, "Each target must be a JSON object.")
	}
	var typ string
	_ = json.Unmarshal(fields["@odata.type"], &typ)
	if strings.TrimPrefix(typ, "#") != bulkActionPrefix+t.def.LogicalName {
		if typ == "" {
			return op{}, payloadError(t, "Each target must carry @odata.type naming its table: Microsoft.Dynamics.CRM."+t.def.LogicalName+".")
		}
		return op{}, payloadError(t, fmt.Sprintf("The target's @odata.type %s is not the table of the entity set, Microsoft.Dynamics.CRM.%s.", typ, t.def.LogicalName))
	}
	target := op{method: http.MethodPost, path: t.def.EntitySetName, header: http.Header{}, host: o.host, caller: o.caller, query: url.Values{}}
	for _, h := range []string{CallerIDHeader, CallerObjectIDHeader} {
		if v := o.header.Get(h); v != "" {
			target.header.Set(h, v)
		}
	}
	pk := t.def.PrimaryKey()
	var id string
	if rawID, ok := fields[pk]; ok {
		_ = json.Unmarshal(rawID, &id)
	}
	switch message {
	case MessageUpdateMultiple:
		if id == "" {
			return op{}, payloadError(t, fmt.Sprintf("Each target of UpdateMultiple must carry its primary key %s.", pk))
		}
		delete(fields, pk)
		target.method, target.path = http.MethodPatch, t.def.EntitySetName+"("+id+")"
		target.header.Set("If-Match", "*")
	case MessageUpsertMultiple:
		var addr string
		if rawAddr, ok := fields["@odata.id"]; ok {
			_ = json.Unmarshal(rawAddr, &addr)
			delete(fields, "@odata.id")
		}
		switch {
		case addr != "":
			path := strings.TrimPrefix(addr, "/")
			if i := strings.Index(path, dataverse.APIPath); i >= 0 {
				path = path[i+len(dataverse.APIPath):]
			}
			m := rowAddress.FindStringSubmatch(path)
			if m == nil || m[1] != t.def.EntitySetName {
				return op{}, payloadError(t, fmt.Sprintf("The @odata.id %q does not name a row of %s.", addr, t.def.EntitySetName))
			}
			target.path = path
		case id != "":
			delete(fields, pk)
			target.path = t.def.EntitySetName + "(" + id + ")"
		default:
			return op{}, payloadError(t, "Each target of UpsertMultiple must name its row with @odata.id or its primary key.")
		}
		target.method = http.MethodPatch
	}
	body, _ := json.Marshal(fields)
	target.body = body
	return target, nil
}
