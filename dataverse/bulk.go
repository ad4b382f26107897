package dataverse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Bulk messages: CreateMultiple, UpdateMultiple and UpsertMultiple write many rows of one table in one
// request, which Dataverse's service protection counts as one request (a $batch counts each of its
// operations). On standard tables a bulk message is one transaction: a row that fails rolls back every
// row of the call. Not every table supports them; sdkmessagefilters says which do.
const (
	msgCreateMultiple = "CreateMultiple"
	msgUpdateMultiple = "UpdateMultiple"
	msgUpsertMultiple = "UpsertMultiple"
)

// DefaultBulkSize is the rows per bulk message: Microsoft suggests starting around 1,000 for small rows
// and no synchronous plug-ins, and shrinking on timeouts.
const DefaultBulkSize = 1000

type bulkKind int

const (
	bulkCreate      bulkKind = iota + 1 // CreateOp
	bulkUpdate                          // UpdateOp with If-Match: *
	bulkCreateByKey                     // UpsertOp, create only
	bulkUpsertByKey                     // UpsertOp whose caller reads its id and whether it created: sent as a create
	bulkUpsert                          // UpsertOp without a primary key: only success or failure
)

// bulkTarget is an operation as a bulk message's target.
type bulkTarget struct {
	set        string
	kind       bulkKind
	row        Row
	id         GUID // bulkUpdate
	key        Key  // by-key kinds
	primaryKey string
}

// bulkTables is what the client knows of the tables it may write in bulk: logical names by entity set
// (from ClientOptions.Tables) and, once asked, which bulk messages each supports.
type bulkTables struct {
	logical map[string]string // entity set → logical name
	primary map[string]string // entity set → primary key column

	// lock serializes the questions to Dataverse and guards what follows. A channel, not a sync.Mutex:
	// the holder waits on the network, and the others wait for it without blocking past their context
	// (and, in a testing/synctest bubble, durably: fake time still moves while they wait).
	lock      chan struct{}
	messages  map[string]GUID            // sdkmessage ids by name, once read
	supported map[string]map[string]bool // logical name → message → supported
}

func newBulkTables(tables []Table) *bulkTables {
	b := &bulkTables{logical: map[string]string{}, primary: map[string]string{}, supported: map[string]map[string]bool{}, lock: make(chan struct{}, 1)}
	for _, t := range tables {
		b.logical[t.EntitySetName] = t.LogicalName
		b.primary[t.EntitySetName] = t.PrimaryKey()
	}
	return b
}

// supports reports whether table supports message, asking Dataverse once per table: the sdkmessage ids
// of the three bulk messages (once per client), then the table's sdkmessagefilters for them. A failed
// read is not remembered (the next write asks again) unless Dataverse refused it for good.
//
// API: GET sdkmessages?$select=sdkmessageid,name&$filter=name eq 'CreateMultiple' or …
// API: GET sdkmessagefilters?$select=_sdkmessageid_value&$filter=primaryobjecttypecode eq '{table}' and (_sdkmessageid_value eq … or …)
func (c *Client) supports(ctx context.Context, table, message string) bool {
	b := c.bulk
	select {
	case b.lock <- struct{}{}:
	case <-ctx.Done():
		return false // the write that asked fails on its own context
	}
	defer func() { <-b.lock }()
	if s, ok := b.supported[table]; ok {
		return s[message]
	}
	known, err := c.readBulkSupport(ctx, table)
	if err != nil {
		c.log.InfoContext(ctx, "dataverse: could not read which bulk messages a table supports; writing it by $batch", "table", table, "error", err)
		if re := asResponseError(err); re != nil && !IsTransient(err) {
			b.supported[table] = map[string]bool{}
		}
		return false
	}
	b.supported[table] = known
	return known[message]
}

func (c *Client) readBulkSupport(ctx context.Context, table string) (map[string]bool, error) {
	b := c.bulk
	if b.messages == nil {
		found := map[string]GUID{}
		q := &Query{Select: []string{"sdkmessageid", "name"}, Filter: Or(Eq("name", msgCreateMultiple), Eq("name", msgUpdateMultiple), Eq("name", msgUpsertMultiple))}
		for row, err := range c.List(ctx, "sdkmessages", q) {
			if err != nil {
				return nil, err
			}
			if id, ok := row.GUID("sdkmessageid"); ok {
				found[row.String("name")] = id
			}
		}
		b.messages = found
	}
	known := map[string]bool{}
	if len(b.messages) == 0 {
		return known, nil
	}
	names := map[GUID]string{}
	var of []Filter
	for _, name := range slices.Sorted(maps.Keys(b.messages)) {
		names[b.messages[name]] = name
		of = append(of, LookupEq("sdkmessageid", b.messages[name]))
	}
	q := &Query{Select: []string{LookupValue("sdkmessageid")}, Filter: And(Eq("primaryobjecttypecode", table), Or(of...))}
	for row, err := range c.List(ctx, "sdkmessagefilters", q) {
		if err != nil {
			return nil, err
		}
		if id, ok := row.GUID(LookupValue("sdkmessageid")); ok {
			known[names[id]] = true
		}
	}
	return known, nil
}

// writeGroup is operations WriteBatch sends together: one bulk kind on one entity set, or (kind 0) the
// ones that go by $batch.
type writeGroup struct {
	set  string
	kind bulkKind
	idx  []int
}

// plan groups ops by entity set and bulk kind, in the order each group first appears; ops that cannot go
// in a bulk message, and groups of one, go by $batch.
func (c *Client) plan(ctx context.Context, ops []Op) []writeGroup {
	var groups []writeGroup
	at := map[[2]string]int{}
	add := func(set string, kind bulkKind, i int) {
		k := [2]string{set, fmt.Sprint(kind)}
		g, ok := at[k]
		if !ok {
			g = len(groups)
			at[k] = g
			groups = append(groups, writeGroup{set: set, kind: kind})
		}
		groups[g].idx = append(groups[g].idx, i)
	}
	for i, op := range ops {
		t := op.target
		if t == nil || !c.bulkable(ctx, t) {
			add("", 0, i)
			continue
		}
		add(t.set, t.kind, i)
	}
	// A lone write gains nothing from a bulk message: it goes with the $batch.
	var out []writeGroup
	batch := -1 // the $batch group's index in out
	for _, g := range groups {
		if g.kind != 0 && len(g.idx) > 1 {
			out = append(out, g)
			continue
		}
		if batch < 0 {
			batch = len(out)
			out = append(out, writeGroup{})
		}
		out[batch].idx = append(out[batch].idx, g.idx...)
	}
	if batch >= 0 {
		slices.Sort(out[batch].idx)
	}
	return out
}

// bulkable reports whether t can go in a bulk message: bulk messages are on, its table is known and
// supports the messages it needs, and a row created by key carries its key's lookups as binds.
func (c *Client) bulkable(ctx context.Context, t *bulkTarget) bool {
	table, ok := c.bulk.logical[t.set]
	if !ok || c.opts.BulkSize < 0 {
		return false
	}
	if t.kind == bulkCreateByKey || t.kind == bulkUpsertByKey {
		for col := range t.key {
			if nav, isLookup := lookupNav(col); isLookup {
				if _, bound := t.row[nav+"@odata.bind"]; !bound {
					return false
				}
			}
		}
	}
	switch t.kind {
	case bulkCreate, bulkCreateByKey, bulkUpsertByKey:
		return c.supports(ctx, table, msgCreateMultiple)
	case bulkUpdate:
		return c.supports(ctx, table, msgUpdateMultiple)
	case bulkUpsert:
		return c.supports(ctx, table, msgUpsertMultiple)
	}
	return false
}

// lookupNav reads a key column written as _name_value: the lookup's navigation property name.
func lookupNav(col string) (string, bool) {
	if !strings.HasPrefix(col, "_") || !strings.HasSuffix(col, "_value") || len(col) <= len("__value") {
		return "", false
	}
	return col[1 : len(col)-len("_value")], true
}

// WriteBatch writes ops, each with its own result, in as few requests as it can. Writes to one table
// that supports them go as bulk messages (CreateMultiple, UpdateMultiple; UpsertMultiple for upserts
// whose caller reads no id), up to ClientOptions.BulkSize rows each, when the table is among
// ClientOptions.Tables and its sdkmessagefilters list the message (read once per table). A bulk message
// is all or nothing, so one that fails is sent again as a $batch that carries on past failures, and each
// op gets its own answer. The rest go as one $batch that carries on past failures, sending again, up to
// three more times, the ones Dataverse did not run or refused for a moment (throttled, transient, not
// executed).
//
// Groups of ops (one table and kind each, and the $batch) are sent one after another, in the order each
// first appears in ops, and ops keep their order within a group: an op that needs an earlier one (an
// add-on bound by key to its parent, created earlier) must be of the same group or a group that starts
// earlier. Only ops that are safe to send twice belong here: upserts, updates, create-only upserts, and
// creates that carry their own id.
//
// An upsert whose caller reads its id and whether it created (UpsertOptions.PrimaryKey) goes as a
// CreateMultiple with its key columns in the row: UpsertMultiple answers neither, and callers upsert the
// rows they did not find, so nearly all are new. CreateMultiple answers their ids; if one of the rows
// exists after all (another writer made it), the CreateMultiple fails as a whole and its upserts go by
// $batch, where each updates or creates and says which. The error is for a call that wrote nothing
// because its requests failed as a whole; otherwise every op has its own result.
//
// API: POST /{set}/Microsoft.Dynamics.CRM.CreateMultiple | UpdateMultiple | UpsertMultiple {"Targets":[…]}
// API: POST /$batch (as ExecuteBatch, with Prefer: odata.continue-on-error)
func (c *Client) WriteBatch(ctx context.Context, ops []Op) ([]OpResult, error) {
	groups := c.plan(ctx, ops)
	if len(groups) == 1 && groups[0].kind == 0 && len(groups[0].idx) <= MaxBatchOperations {
		return c.sendBatch(ctx, ops)
	}
	w := &bulkWrite{c: c, ops: ops, results: make([]OpResult, len(ops))}
	for _, g := range groups {
		if g.kind == 0 {
			for part := range slices.Chunk(g.idx, MaxBatchOperations) {
				w.batch(ctx, part)
			}
			continue
		}
		for part := range slices.Chunk(g.idx, c.bulkSize()) {
			w.bulk(ctx, g.set, g.kind, part)
		}
	}
	if !w.wrote && w.whole != nil {
		return nil, w.whole
	}
	for i, r := range w.results {
		if r.Err == nil && r.StatusCode == 0 { // never an answer for an op that was not sent
			w.results[i].Err = fmt.Errorf("dataverse: operation %d was not sent", i)
		}
	}
	return w.results, nil
}

func (c *Client) bulkSize() int {
	if c.opts.BulkSize > 0 {
		return c.opts.BulkSize
	}
	return DefaultBulkSize
}

// bulkWrite is one WriteBatch call under way.
type bulkWrite struct {
	c       *Client
	ops     []Op
	results []OpResult
	// wrote records that some request was answered op by op or succeeded; whole is the last failure of a
	// request as a whole.
	wrote bool
	whole error
}

// batch sends the ops at idx by $batch.
func (w *bulkWrite) batch(ctx context.Context, idx []int) {
	part := make([]Op, len(idx))
	for j, i := range idx {
		part[j] = w.ops[i]
	}
	res, err := w.c.sendBatch(ctx, part)
	if err != nil {
		w.whole = err
		for _, i := range idx {
			w.results[i] = OpResult{Err: err}
		}
		return
	}
	w.wrote = true
	for j, i := range idx {
		w.results[i] = res[j]
	}
}

// bulk sends the ops at idx (one set, one kind) as bulk messages, falling back to $batch for a message
// that failed.
func (w *bulkWrite) bulk(ctx context.Context, set string, kind bulkKind, idx []int) {
	switch kind {
	case bulkCreate, bulkCreateByKey, bulkUpsertByKey:
		w.send(ctx, set, msgCreateMultiple, idx)
	case bulkUpdate:
		w.send(ctx, set, msgUpdateMultiple, idx)
	case bulkUpsert:
		w.send(ctx, set, msgUpsertMultiple, idx)
	}
}

// send posts one bulk message for the ops at idx; on failure it sends them by $batch.
func (w *bulkWrite) send(ctx context.Context, set, message string, idx []int) {
	if len(idx) == 0 {
		return
	}
	if len(idx) == 1 {
		w.batch(ctx, idx)
		return
	}
	table := w.c.bulk.logical[set]
	pk := w.c.bulk.primary[set]
	targets := make([]Row, len(idx))
	for j, i := range idx {
		t := w.ops[i].target
		row := maps.Clone(t.row)
		if row == nil {
			row = Row{}
		}
		row["@odata.type"] = "Microsoft.Dynamics.CRM." + table
		switch {
		case message == msgUpdateMultiple:
			row[pk] = t.id
		case message == msgUpsertMultiple:
			row["@odata.id"], _ = keyPath(set, t.key)
		case t.kind == bulkCreateByKey || t.kind == bulkUpsertByKey:
			for col, v := range t.key {
				if _, isLookup := lookupNav(col); !isLookup {
					row[col] = v
				}
			}
		}
		targets[j] = row
	}
	body, err := json.Marshal(map[string]any{"Targets": targets})
	if err != nil {
		for _, i := range idx {
			w.results[i] = OpResult{Err: fmt.Errorf("dataverse: encode %s targets: %w", message, err)}
		}
		return
	}
	var out struct {
		IDs []GUID `json:"Ids"`
	}
	// Updates and upserts are absolute values, safe to send twice; a CreateMultiple is not.
	req := request{method: http.MethodPost, path: set + "/Microsoft.Dynamics.CRM." + message, body: body, idempotent: message != msgCreateMultiple,
		header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}}
	resp, err := w.c.doJSON(ctx, req, &out)
	if err == nil && message == msgCreateMultiple && len(out.IDs) != len(idx) {
		err = fmt.Errorf("dataverse: %s answered %d ids for %d rows", message, len(out.IDs), len(idx))
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			w.whole = err
			for _, i := range idx {
				w.results[i] = OpResult{Err: err}
			}
			return
		}
		if asResponseError(err) == nil && message == msgCreateMultiple {
			// No answer: the rows may have been created. Only the creates a second try cannot repeat (by
			// key, or carrying their id) go again; the others keep the error.
			var again []int
			for _, i := range idx {
				if t := w.ops[i].target; t.kind != bulkCreate || t.row[w.c.bulk.primary[set]] != nil {
					again = append(again, i)
				} else {
					w.results[i] = OpResult{Err: err}
					w.whole = err
				}
			}
			idx = again
		}
		// On a standard table the whole message was rolled back: each op goes again on its own, so each
		// gets its own answer.
		w.c.log.InfoContext(ctx, "dataverse: a bulk write failed as a whole; sending its rows by $batch", "message", message, "entity_set", set, "rows", len(idx), "error", err)
		if len(idx) > 0 {
			w.batch(ctx, idx)
		}
		return
	}
	w.wrote = true
	for j, i := range idx {
		op := w.ops[i]
		r := OpResult{StatusCode: resp.StatusCode, Header: resp.Header, primaryKey: op.primaryKey}
		if message == msgCreateMultiple {
			r.id, r.create = out.IDs[j], true
		}
		w.results[i] = r
	}
}
