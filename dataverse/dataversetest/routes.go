package dataversetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// op is one Web API operation: a request, or a part of a $batch.
type op struct {
	method string
	path   string // below /api/data/v9.2/, still escaped
	query  url.Values
	header http.Header
	body   []byte
	host   string
	// caller is who the operation acts as (the application user, or the user it impersonates).
	caller caller
	// changes, when non-nil, collects the writes the operation commits, for the events they raise.
	changes *[]change
}

// result is the answer to an op.
type result struct {
	status int
	header http.Header
	body   any // JSON value, or nil
	err    *apiError
}

func (r result) write(w http.ResponseWriter) {
	if r.err != nil {
		for k, v := range r.header {
			w.Header()[k] = v
		}
		r.err.write(w)
		return
	}
	for k, v := range r.header {
		w.Header()[k] = v
	}
	if r.body == nil {
		w.Header().Set("OData-Version", "4.0")
		w.WriteHeader(r.status)
		return
	}
	writeJSON(w, r.status, r.body)
}

func fail(e *apiError) result { return result{status: e.status, err: e} }

// base is the organization's API URL as the client sees it.
func (o op) base() string { return "http://" + o.host + dataverse.APIPath }

var (
	rowAddress = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$`)
	whoAmIPath = regexp.MustCompile(`^WhoAmI(\(\))?$`)
)

// dispatch serves one operation. The caller holds s.mu. undoLog, when non-nil, collects what each write
// replaced so a failed change set can be rolled back.
func (s *Server) dispatch(o op, undoLog *[]undo) result {
	path, err := url.PathUnescape(o.path)
	if err != nil {
		return fail(&apiError{status: 400, message: "Bad request path."})
	}
	var e *apiError
	if o.caller, e = s.callerOf(o.header); e != nil {
		return fail(e)
	}
	if res, ok := s.appModuleOp(&o, path); ok {
		return res
	}
	if res, ok := s.appModuleRolesOp(o, path); ok {
		return res
	}
	if res, handled := s.security(o, path); handled {
		return res
	}
	switch {
	case path == "" && o.method == http.MethodGet:
		return s.serviceDocument(o)
	case whoAmIPath.MatchString(path):
		if o.method != http.MethodGet {
			return fail(&apiError{status: 404, message: fmt.Sprintf("No HTTP resource was found that matches the request URI '%sWhoAmI'.", o.base())})
		}
		return result{status: 200, body: map[string]any{
			"@odata.context": o.base() + "$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
			"BusinessUnitId": s.opts.BusinessUnitID.String(), "UserId": o.caller.userID, "OrganizationId": s.opts.OrganizationID.String(),
		}}
	case isMetadataPath(path):
		return s.metadata(o, path)
	}
	if set, message, ok := bulkAction(path); ok {
		t := s.sets[set]
		if t == nil {
			return fail(segmentNotFound(set))
		}
		return s.bulk(o, t, message, undoLog)
	}
	if m := rowAddress.FindStringSubmatch(path); m != nil {
		t := s.sets[m[1]]
		if t == nil {
			return fail(segmentNotFound(m[1]))
		}
		return s.rowOp(o, t, m[2], undoLog)
	}
	t := s.sets[path]
	if t == nil {
		return fail(segmentNotFound(path))
	}
	switch o.method {
	case http.MethodGet:
		return s.list(o, t)
	case http.MethodPost:
		return s.create(o, t, undoLog)
	}
	return fail(&apiError{status: 405, message: "The requested resource does not support http method '" + o.method + "'."})
}

func (s *Server) serviceDocument(o op) result {
	var sets []any
	for name := range s.sets {
		sets = append(sets, map[string]any{"name": name, "kind": "EntitySet", "url": name})
	}
	sort.Slice(sets, func(i, j int) bool {
		return sets[i].(map[string]any)["name"].(string) < sets[j].(map[string]any)["name"].(string)
	})
	return result{status: 200, body: map[string]any{"@odata.context": o.base() + "$metadata", "value": sets}}
}

// address resolves the inside of set(...) to a row: a GUID, or key=value pairs of an alternate key.
// found is nil when no row matches; keyVals holds the key's values for an upsert that creates.
func (s *Server) address(t *table, inner string) (found *record, id string, keyVals map[string]any, byKey bool, e *apiError) {
	if u, err := uuid.Parse(inner); err == nil {
		id = u.String()
		return t.rows[id], id, nil, false, nil
	}
	parts, err := splitKey(inner)
	if err != nil {
		return nil, "", nil, false, &apiError{status: 400, message: "The key in the request URI is not valid for resource '" + t.def.EntitySetName + "'."}
	}
	keyVals = map[string]any{}
	for name, lit := range parts {
		col := strings.TrimSuffix(strings.TrimPrefix(name, "_"), "_value")
		if name == t.def.PrimaryKey() {
			u, err := uuid.Parse(lit)
			if err != nil {
				return nil, "", nil, false, &apiError{status: 400, message: "The key in the request URI is not valid for resource '" + t.def.EntitySetName + "'."}
			}
			return t.rows[u.String()], u.String(), nil, false, nil
		}
		c, ok := t.cols[col]
		if !ok {
			return nil, "", nil, false, &apiError{status: 400, message: "The key in the request URI is not valid for resource '" + t.def.EntitySetName + "'."}
		}
		v, perr := parseKeyLiteral(c, lit)
		if perr != nil {
			return nil, "", nil, false, &apiError{status: 400, message: "The key in the request URI is not valid for resource '" + t.def.EntitySetName + "'."}
		}
		keyVals[col] = v
	}
	for _, k := range t.keys {
		if !k.active() || len(k.columns) != len(keyVals) {
			continue
		}
		matches := true
		for _, c := range k.columns {
			if _, ok := keyVals[c]; !ok {
				matches = false
			}
		}
		if matches {
			return t.findByKey(k, keyVals), "", keyVals, true, nil
		}
	}
	return nil, "", nil, false, &apiError{status: 400, message: "The key in the request URI is not valid for resource '" + t.def.EntitySetName + "'. Ensure that the names and number of key properties are correct."}
}

// splitKey parses name=literal,name=literal, respecting quoted literals.
func splitKey(s string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("missing =")
		}
		name := s[:eq]
		s = s[eq+1:]
		var lit string
		if strings.HasPrefix(s, "'") {
			i := 1
			for {
				j := strings.IndexByte(s[i:], '\'')
				if j < 0 {
					return nil, fmt.Errorf("unterminated literal")
				}
				i += j + 1
				if i < len(s) && s[i] == '\'' {
					i++
					continue
				}
				break
			}
			lit, s = s[:i], s[i:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			lit, s = s[:end], s[end:]
		}
		out[name] = lit
		if s != "" {
			if s[0] != ',' {
				return nil, fmt.Errorf("expected ,")
			}
			s = s[1:]
		}
	}
	return out, nil
}

func parseKeyLiteral(c dataverse.Column, lit string) (any, error) {
	if strings.HasPrefix(lit, "'") && strings.HasSuffix(lit, "'") && len(lit) >= 2 {
		return strings.ReplaceAll(lit[1:len(lit)-1], "''", "'"), nil
	}
	switch kindOf(c) {
	case KindInt:
		return strconv.ParseInt(lit, 10, 64)
	case KindGUID:
		u, err := uuid.Parse(lit)
		return u.String(), err
	}
	return nil, fmt.Errorf("bad literal")
}

func (s *Server) rowOp(o op, t *table, inner string, undoLog *[]undo) result {
	r, id, keyVals, byKey, e := s.address(t, inner)
	if e != nil {
		return fail(e)
	}
	notFound := func(code string) result {
		if byKey {
			return fail(&apiError{status: 404, code: dataverse.CodeRecordNotFoundByEntityKey, message: fmt.Sprintf("A record with the specified key values does not exist in %s entity", t.def.LogicalName)})
		}
		return fail(&apiError{status: 404, code: code, message: fmt.Sprintf("%s With Id = %s Does Not Exist", t.def.LogicalName, id)})
	}
	switch o.method {
	case http.MethodGet:
		if r == nil {
			return notFound(dataverse.CodeObjectDoesNotExist)
		}
		sel, e := selection(t, o.query.Get("$select"))
		if e != nil {
			return fail(e)
		}
		formatted := wantsAnnotations(o.header)
		if inm := o.header.Get("If-None-Match"); inm != "" && inm != "null" && !formatted && inm == etag(r) {
			return result{status: http.StatusNotModified}
		}
		es, e := s.expandRequested(o, t)
		if e != nil {
			return fail(e)
		}
		body := s.render(t, r, sel, formatted)
		s.expand(t, r, body, es, formatted)
		body["@odata.context"] = o.base() + "$metadata#" + t.def.EntitySetName + "/$entity"
		return result{status: 200, body: body}
	case http.MethodDelete:
		if r == nil {
			return notFound(dataverse.CodeObjectDoesNotExist)
		}
		if im := o.header.Get("If-Match"); im != "" && im != "*" && im != etag(r) {
			return fail(concurrencyMismatch())
		}
		s.remove(t, r, undoLog)
		s.note(o, change{message: "Delete", table: t, id: r.id, pre: r})
		return result{status: http.StatusNoContent}
	case http.MethodPatch:
		ifMatch, ifNoneMatch := o.header.Get("If-Match"), o.header.Get("If-None-Match")
		if ifNoneMatch == "null" {
			ifNoneMatch = ""
		}
		switch {
		case r == nil && ifMatch != "":
			return notFound("")
		case r != nil && ifNoneMatch == "*":
			return fail(&apiError{status: 412, message: "A record with matching key values already exists."})
		case r != nil && ifMatch != "" && ifMatch != "*" && ifMatch != etag(r):
			return fail(concurrencyMismatch())
		}
		values, e := s.decodeBody(t, o.body)
		if e != nil {
			return fail(e)
		}
		created := r == nil
		if created {
			if id == "" {
				id = uuid.NewString()
			}
			for k, v := range keyVals {
				if _, inBody := values[k]; inBody {
					continue
				}
				if c := t.cols[k]; c.Type == dataverse.TypeLookup {
					// A lookup in the key is a reference like @odata.bind: the target must exist, and the
					// row remembers which table it points at.
					target, e := s.keyLookup(c, v)
					if e != nil {
						return fail(e)
					}
					values[k] = target
					continue
				}
				values[k] = v
			}
			if pk, ok := values[t.def.PrimaryKey()]; ok && pk != nil {
				id = pk.(string)
			}
			var err *apiError
			if r, err = s.insert(t, id, values, undoLog); err != nil {
				return fail(err)
			}
			s.note(o, change{message: "Create", table: t, id: r.id, post: r, written: writtenColumns(values)})
		} else {
			for k := range keyVals {
				delete(values, k) // key columns come from the address on update
			}
			pre := r.clone()
			if e := s.update(t, r, values, undoLog); e != nil {
				return fail(e)
			}
			s.note(o, change{message: "Update", table: t, id: r.id, pre: pre, post: r, written: writtenColumns(values)})
		}
		res := s.writeResult(o, t, r, created)
		if byKey && res.header != nil {
			// Dataverse names a row upserted by alternate key by its key values, not its id.
			res.header.Set("Odata-Entityid", o.base()+t.def.EntitySetName+keyAddress(inner))
		}
		return res
	}
	return fail(&apiError{status: 405, message: "The requested resource does not support http method '" + o.method + "'."})
}

// keyLookup resolves the value of a lookup column given in an alternate key to the row it names.
func (s *Server) keyLookup(c dataverse.Column, v any) (lookupValue, *apiError) {
	raw, _ := v.(string)
	id, err := uuid.Parse(raw)
	target := s.tables[c.Target]
	if err != nil || target == nil {
		return lookupValue{}, &apiError{status: 400, message: fmt.Sprintf("The key value %v is not a valid reference to %s.", v, c.Target)}
	}
	if target.rows[id.String()] == nil {
		return lookupValue{}, &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("%s With Id = %s Does Not Exist", c.Target, id)}
	}
	return lookupValue{id: id.String(), table: c.Target}, nil
}

func concurrencyMismatch() *apiError {
	return &apiError{status: 412, message: "The version of the existing record doesn't match the RowVersion property provided."}
}

func (s *Server) create(o op, t *table, undoLog *[]undo) result {
	if e := s.checkSolution(o.header.Get("MSCRM.SolutionUniqueName")); e != nil {
		return fail(e)
	}
	values, e := s.decodeBody(t, o.body)
	if e != nil {
		return fail(e)
	}
	id := uuid.NewString()
	if pk, ok := values[t.def.PrimaryKey()]; ok && pk != nil {
		id = pk.(string)
		if t.rows[id] != nil {
			return fail(&apiError{status: 412, code: dataverse.CodeDuplicateRecord, message: "Cannot insert duplicate key."})
		}
	}
	r, err := s.insert(t, id, values, undoLog)
	if err != nil {
		return fail(err)
	}
	if err := s.addToSolution(o, t, r.id, undoLog); err != nil {
		return fail(err)
	}
	s.note(o, change{message: "Create", table: t, id: r.id, post: r, written: writtenColumns(values)})
	return s.writeResult(o, t, r, true)
}

// writeResult answers a create, update or upsert: 204 with OData-EntityId, or, with return=representation,
// the row (201 when it was created, 200 when updated) and no OData-EntityId.
func (s *Server) writeResult(o op, t *table, r *record, created bool) result {
	if !strings.Contains(o.header.Get("Prefer"), "return=representation") {
		return result{status: http.StatusNoContent, header: http.Header{"Odata-Entityid": {o.base() + t.def.EntitySetName + "(" + r.id + ")"}}}
	}
	sel, e := selection(t, o.query.Get("$select"))
	if e != nil {
		return fail(e)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	body := s.render(t, r, sel, wantsAnnotations(o.header))
	body["@odata.context"] = o.base() + "$metadata#" + t.def.EntitySetName + "/$entity"
	return result{status: status, body: body}
}

// keyAddress renders an alternate-key address as Dataverse names the row in OData-EntityId:
// (name=literal,…), literals percent-encoded but for their quotes, as in
// csp_jobs(csp_name='Provider%20Account%20Sync').
func keyAddress(inner string) string {
	parts, err := splitKey(inner)
	if err != nil {
		return "(" + url.PathEscape(inner) + ")"
	}
	names := slices.Sorted(maps.Keys(parts))
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "=" + strings.ReplaceAll(url.PathEscape(parts[n]), "%27", "'")
	}
	return "(" + strings.Join(out, ",") + ")"
}

// decodeBody converts a JSON row into column values: unknown properties, wrong types, over-long text and
// invalid choices are refused the way Dataverse refuses them. Lookups arrive as name@odata.bind and are
// resolved to the target row, which must exist.
func (s *Server) decodeBody(t *table, body []byte) (map[string]any, *apiError) {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(body, []byte("\ufeff"))))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, payloadError(t, "The request body is not a JSON object.")
	}
	out := map[string]any{}
	for name, v := range raw {
		if strings.HasPrefix(name, "@") {
			continue // @odata.type and other instance annotations
		}
		if nav, ok := strings.CutSuffix(name, "@odata.bind"); ok {
			col, ok := navigationColumn(t, nav)
			c, known := t.cols[col]
			if !ok || !known || c.Type != dataverse.TypeLookup {
				return nil, payloadError(t, fmt.Sprintf("An undeclared property '%s' which only has property annotations in the payload but no property value was found in the payload.", nav))
			}
			if v == nil {
				out[col] = nil
				continue
			}
			ref, ok := v.(string)
			if !ok {
				return nil, payloadError(t, fmt.Sprintf("The value of %s@odata.bind must be a URL.", nav))
			}
			target, e := s.resolveBind(ref)
			if e != nil {
				return nil, e
			}
			if target.table.def.LogicalName != c.Target {
				return nil, payloadError(t, fmt.Sprintf("The navigation property '%s' points at %s, not %s.", nav, c.Target, target.table.def.LogicalName))
			}
			out[col] = lookupValue{id: target.record.id, table: target.table.def.LogicalName}
			continue
		}
		c, ok := t.cols[name]
		if !ok || c.Type == dataverse.TypeLookup {
			if strings.HasPrefix(name, "_") && strings.HasSuffix(name, "_value") {
				return nil, payloadError(t, fmt.Sprintf("The property '%s' is read-only: set the lookup with %s@odata.bind.", name, strings.TrimSuffix(strings.TrimPrefix(name, "_"), "_value")))
			}
			return nil, payloadError(t, fmt.Sprintf("The property '%s' does not exist on type 'Microsoft.Dynamics.CRM.%s'. Make sure to only use property names that are defined by the type or mark the type as open type.", name, t.def.LogicalName))
		}
		if c.LogicalName == "createdon" || c.LogicalName == "modifiedon" || c.LogicalName == "versionnumber" {
			continue // system-maintained
		}
		val, e := convert(t, c, v)
		if e != nil {
			return nil, e
		}
		out[name] = val
	}
	return out, nil
}

type lookupValue struct{ id, table string }

type boundRow struct {
	table  *table
	record *record
}

// resolveBind finds the row a @odata.bind value names: /set(id), set(id), an absolute URL, or set(key=…).
func (s *Server) resolveBind(ref string) (boundRow, *apiError) {
	path := ref
	if i := strings.Index(path, dataverse.APIPath); i >= 0 {
		path = path[i+len(dataverse.APIPath):]
	}
	path = strings.TrimPrefix(path, "/")
	m := rowAddress.FindStringSubmatch(path)
	if m == nil {
		return boundRow{}, &apiError{status: 400, code: dataverse.CodeODataPayload, message: fmt.Sprintf("The URI '%s' is not a valid entity reference.", ref)}
	}
	t := s.sets[m[1]]
	if t == nil {
		return boundRow{}, segmentNotFound(m[1])
	}
	inner, _ := url.PathUnescape(m[2])
	r, id, _, _, e := s.address(t, inner)
	if e != nil {
		return boundRow{}, e
	}
	if r == nil {
		return boundRow{}, &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("%s With Id = %s Does Not Exist", t.def.LogicalName, id)}
	}
	return boundRow{table: t, record: r}, nil
}

// insert creates a row with system columns filled in.
func (s *Server) insert(t *table, id string, values map[string]any, undoLog *[]undo) (*record, *apiError) {
	if t.rows[id] != nil {
		return nil, &apiError{status: 412, code: dataverse.CodeDuplicateRecord, message: "Cannot insert duplicate key."}
	}
	r := &record{id: id, values: map[string]any{t.def.PrimaryKey(): id, "statecode": int64(0), "statuscode": int64(1)}, lookupTables: map[string]string{}}
	now := s.now().UTC().Truncate(time.Second)
	r.values["createdon"] = now
	if e := s.apply(t, r, values); e != nil {
		return nil, e
	}
	if k, dup := t.duplicateKey(r); dup {
		return nil, duplicateKeyError(t, k)
	}
	s.bump(r, now)
	t.rows[id] = r
	t.order = append(t.order, id)
	r.seq = t.nextSeq
	t.nextSeq++
	t.indexRow(r)
	if undoLog != nil {
		*undoLog = append(*undoLog, undo{table: t, id: id})
	}
	return r, nil
}

// update changes a row in place (after copying it for the undo log).
func (s *Server) update(t *table, r *record, values map[string]any, undoLog *[]undo) *apiError {
	before := r.clone()
	t.unindexRow(r)
	if e := s.apply(t, r, values); e != nil {
		*r = *before
		t.indexRow(r)
		return e
	}
	if k, dup := t.duplicateKey(r); dup {
		*r = *before
		t.indexRow(r)
		return duplicateKeyError(t, k)
	}
	t.indexRow(r)
	s.bump(r, s.now().UTC().Truncate(time.Second))
	if undoLog != nil {
		*undoLog = append(*undoLog, undo{table: t, id: r.id, prev: before})
	}
	return nil
}

func (s *Server) remove(t *table, r *record, undoLog *[]undo) {
	t.unindexRow(r)
	delete(t.rows, r.id)
	t.order = slices.DeleteFunc(t.order, func(id string) bool { return id == r.id })
	if undoLog != nil {
		*undoLog = append(*undoLog, undo{table: t, id: r.id, prev: r})
	}
	s.cascadeDelete(t, r.id, undoLog)
}

// duplicateKeyError is Dataverse's DuplicateRecordEntityKey (0x80060892): a write that would give two rows
// the same alternate key values. (DuplicateRecord, 0x80040237, is a duplicate primary key.)
func duplicateKeyError(t *table, k keyDef) *apiError {
	return &apiError{status: 412, code: dataverse.CodeDuplicateRecordEntityKey, message: fmt.Sprintf(
		"Entity Key %s violated. A record with the same value for %s already exists.", k.name, strings.Join(k.columns, ", "))}
}

// bump gives the row a new version: its ETag changes on every write.
func (s *Server) bump(r *record, now time.Time) {
	s.version++
	r.version = s.version
	r.values["versionnumber"] = s.version
	r.values["modifiedon"] = now
}

// apply sets values on r, keeping statecode and statuscode consistent as Dataverse does.
func (s *Server) apply(t *table, r *record, values map[string]any) *apiError {
	for name, v := range values {
		if lv, ok := v.(lookupValue); ok {
			r.values[name] = lv.id
			r.lookupTables[name] = lv.table
			continue
		}
		r.values[name] = v
		if v == nil {
			delete(r.lookupTables, name)
		}
	}
	state, hasState := values["statecode"]
	status, hasStatus := values["statuscode"]
	reasons := t.def.AllStatusReasons()
	switch {
	case hasStatus && status != nil:
		i := slices.IndexFunc(reasons, func(o dataverse.Option) bool { return int64(o.Value) == status.(int64) })
		if hasState && state != nil && int64(reasons[i].State) != state.(int64) {
			return &apiError{status: 400, code: "0x8004431a", message: fmt.Sprintf("%d is not a valid status code for state code %s.State %d.", status, t.def.LogicalName, state)}
		}
		r.values["statecode"] = int64(reasons[i].State)
	case hasState && state != nil:
		i := slices.IndexFunc(reasons, func(o dataverse.Option) bool { return int64(o.State) == state.(int64) })
		r.values["statuscode"] = int64(reasons[i].Value)
	}
	if e := s.checkComponent(t, r); e != nil {
		return e
	}
	return s.checkAppAction(t, r)
}

func etag(r *record) string { return `W/"` + strconv.FormatInt(r.version, 10) + `"` }

// selection resolves $select into property names (nil: every column).
func selection(t *table, sel string) ([]string, *apiError) {
	if sel == "" {
		return nil, nil
	}
	var out []string
	for p := range strings.SplitSeq(sel, ",") {
		p = strings.TrimSpace(p)
		if _, ok := t.property(p); !ok {
			return nil, unknownProperty(t, p)
		}
		out = append(out, p)
	}
	return out, nil
}

func unknownProperty(t *table, p string) *apiError {
	return &apiError{status: 400, code: "0x0", message: fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", p, t.def.LogicalName)}
}

// wantsAnnotations reports Prefer: odata.include-annotations asking for formatted values.
func wantsAnnotations(h http.Header) bool {
	p := h.Get("Prefer")
	return strings.Contains(p, `odata.include-annotations="*"`) || strings.Contains(p, "OData.Community.Display.V1.FormattedValue")
}

// render writes a row as the Web API does: selected properties, lookups as _name_value, the ETag, and
// formatted values when asked.
func (s *Server) render(t *table, r *record, sel []string, formatted bool) map[string]any {
	out := map[string]any{"@odata.etag": etag(r), t.def.PrimaryKey(): r.id}
	props := sel
	if props == nil {
		for name, c := range t.cols {
			if c.Type == dataverse.TypeLookup {
				props = append(props, "_"+name+"_value")
				continue
			}
			props = append(props, name)
		}
	}
	for _, p := range props {
		c, _ := t.property(p)
		v := r.property(p)
		switch x := v.(type) {
		case time.Time:
			out[p] = x.UTC().Format(time.RFC3339)
		default:
			out[p] = x
		}
		if !formatted || v == nil {
			continue
		}
		if c.Type == dataverse.TypeLookup {
			target := r.lookupTables[c.LogicalName]
			out[p+dataverse.AnnotationLookupTable] = target
			out[p+"@Microsoft.Dynamics.CRM.associatednavigationproperty"] = c.LogicalName
			if name := s.primaryName(target, v.(string)); name != "" {
				out[p+dataverse.AnnotationFormattedValue] = name
			}
			continue
		}
		if f := formatValue(c, v); f != "" {
			out[p+dataverse.AnnotationFormattedValue] = f
		}
	}
	hideSecrets(t, r, out)
	return out
}

func (s *Server) primaryName(table, id string) string {
	t := s.tables[table]
	if t == nil {
		return ""
	}
	r := t.rows[id]
	if r == nil {
		return ""
	}
	name, _ := r.values[t.def.PrimaryName.LogicalName].(string)
	return name
}

func formatValue(c dataverse.Column, v any) string {
	switch x := v.(type) {
	case bool:
		if x {
			return "Yes"
		}
		return "No"
	case int64:
		for _, o := range c.Options {
			if int64(o.Value) == x {
				return o.Label
			}
		}
		return groupThousands(x)
	case float64:
		return strconv.FormatFloat(x, 'f', 2, 64)
	case time.Time:
		return x.UTC().Format("1/2/2006 3:04 PM")
	}
	return ""
}

func groupThousands(i int64) string {
	s := strconv.FormatInt(i, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for k, c := range s {
		if k > 0 && (len(s)-k)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// list serves a query: $filter, $orderby, $select, $top, $count, and paging with odata.maxpagesize.
func (s *Server) list(o op, t *table) result {
	sel, e := selection(t, o.query.Get("$select"))
	if e != nil {
		return fail(e)
	}
	var f *Filter
	if text := o.query.Get("$filter"); text != "" {
		if f, e = parseTableFilter(t, text); e != nil {
			return fail(e)
		}
	}
	es, e := s.expandRequested(o, t)
	if e != nil {
		return fail(e)
	}
	order, e := parseOrderBy(t, o.query.Get("$orderby"))
	if e != nil {
		return fail(e)
	}
	rows := t.matching(f)
	if len(order) > 0 {
		sort.SliceStable(rows, func(i, j int) bool { return less(order, rows[i], rows[j]) })
	}
	pageSize := preferredPageSize(o.header)
	top := 0
	if v := o.query.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fail(&apiError{status: 400, message: "Invalid value for $top."})
		}
		top = n
	}
	if top > 0 && pageSize == 0 && len(rows) > top {
		rows = rows[:top]
	}
	total := len(rows)
	offset := 0
	if tok := o.query.Get("$skiptoken"); tok != "" {
		n, err := decodeSkipToken(tok)
		if err != nil {
			return fail(&apiError{status: 400, message: "The $skiptoken is not valid."})
		}
		offset = min(n, len(rows))
	}
	limit := s.opts.MaxPageSize
	if pageSize > 0 {
		limit = min(pageSize, limit)
	}
	page := rows[offset:]
	var next string
	if len(page) > limit {
		page = page[:limit]
		q := url.Values{}
		for k, v := range o.query {
			q[k] = v
		}
		q.Set("$skiptoken", encodeSkipToken(offset+limit))
		next = o.base() + t.def.EntitySetName + "?" + strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	formatted := wantsAnnotations(o.header)
	values := make([]any, len(page))
	for i, r := range page {
		row := s.render(t, r, sel, formatted)
		s.expand(t, r, row, es, formatted)
		values[i] = row
	}
	body := map[string]any{"@odata.context": o.base() + "$metadata#" + t.def.EntitySetName, "value": values}
	if next != "" {
		body["@odata.nextLink"] = next
	}
	if o.query.Get("$count") == "true" {
		body["@odata.count"] = min(total, 5000)
	}
	return result{status: 200, body: body}
}

// parseTableFilter parses a $filter and checks its properties against t.
func parseTableFilter(t *table, text string) (*Filter, *apiError) {
	f, err := ParseFilter(text)
	if err != nil {
		return nil, &apiError{status: 400, code: "0x80060888", message: err.Error()}
	}
	if err := f.Check(func(col string) (Kind, bool) {
		c, ok := t.property(col)
		if !ok {
			return 0, false
		}
		if strings.HasPrefix(col, "_") {
			return KindGUID, true
		}
		return kindOf(c), true
	}); err != nil {
		msg := err.Error()
		if strings.HasPrefix(msg, "Could not find a property named") {
			msg = strings.TrimSuffix(msg, ".") + " on type 'Microsoft.Dynamics.CRM." + t.def.LogicalName + "'."
		}
		return nil, &apiError{status: 400, code: "0x0", message: msg}
	}
	return f, nil
}

// Paging cookies are opaque to clients; here they carry the offset of the next page.
func encodeSkipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(`<cookie page="` + strconv.Itoa(offset) + `"/>`))
}

func decodeSkipToken(tok string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSuffix(strings.TrimPrefix(string(raw), `<cookie page="`), `"/>`)
	return strconv.Atoi(s)
}

func preferredPageSize(h http.Header) int {
	for _, part := range strings.Split(h.Get("Prefer"), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "odata.maxpagesize="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

type orderItem struct {
	prop string
	desc bool
}

func parseOrderBy(t *table, s string) ([]orderItem, *apiError) {
	if s == "" {
		return nil, nil
	}
	var out []orderItem
	for item := range strings.SplitSeq(s, ",") {
		fields := strings.Fields(item)
		if len(fields) == 0 || len(fields) > 2 || (len(fields) == 2 && fields[1] != "asc" && fields[1] != "desc") {
			return nil, &apiError{status: 400, code: "0x0", message: fmt.Sprintf("Syntax error in $orderby: '%s'.", item)}
		}
		if _, ok := t.property(fields[0]); !ok {
			return nil, unknownProperty(t, fields[0])
		}
		out = append(out, orderItem{prop: fields[0], desc: len(fields) == 2 && fields[1] == "desc"})
	}
	return out, nil
}

// less orders rows like SQL Server: nulls first in ascending order, text case-insensitively.
func less(order []orderItem, a, b *record) bool {
	for _, o := range order {
		c := compareValues(a.property(o.prop), b.property(o.prop))
		if c == 0 {
			continue
		}
		if o.desc {
			return c > 0
		}
		return c < 0
	}
	return false
}

func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case string:
		return strings.Compare(strings.ToLower(x), strings.ToLower(b.(string)))
	case int64:
		return cmpOrdered(x, b.(int64))
	case float64:
		return cmpOrdered(x, b.(float64))
	case bool:
		return cmpOrdered(boolInt(x), boolInt(b.(bool)))
	case time.Time:
		return x.Compare(b.(time.Time))
	}
	return 0
}

func cmpOrdered[T int64 | float64 | int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
