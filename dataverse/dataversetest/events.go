package dataversetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Events. After a write through the Web API commits, the simulator looks for the enabled steps registered
// on that message and table whose filtering attributes the write touched, builds for each the
// RemoteExecutionContext Dataverse would post, and hands it to the step's endpoint (delivery.go). Writes
// made with Insert (seeding) raise nothing.

// Impersonation headers: an application user with the privilege to act on behalf of others sends the
// systemuserid (MSCRMCallerID) or the Entra object id (CallerObjectId) of the user to act as.
const (
	CallerIDHeader       = "MSCRMCallerID"
	CallerObjectIDHeader = "CallerObjectId"
)

// caller is who a request acts as.
type caller struct {
	userID string // systemuserid the operation runs as
	// impersonated is set when the application user acts as someone else; modifiedonbehalfby is then the
	// application user.
	impersonated bool
}

// callerOf resolves the impersonation headers to a user, which must exist; without them the request runs
// as the application user.
func (s *Server) callerOf(h http.Header) (caller, *apiError) {
	app := s.opts.UserID.String()
	users := s.tables["systemuser"]
	if v := h.Get(CallerIDHeader); v != "" {
		id, err := uuid.Parse(strings.Trim(strings.TrimSpace(v), "{}"))
		if err != nil {
			return caller{}, &apiError{status: 400, code: "0x80040203", message: fmt.Sprintf("Invalid %s header value '%s': a systemuserid is expected.", CallerIDHeader, v)}
		}
		if users.rows[id.String()] == nil {
			return caller{}, &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("systemuser With Id = %s Does Not Exist", id)}
		}
		return caller{userID: id.String(), impersonated: id.String() != app}, nil
	}
	if v := h.Get(CallerObjectIDHeader); v != "" {
		for _, id := range users.order {
			if oid, _ := users.rows[id].values["azureactivedirectoryobjectid"].(string); oid != "" && strings.EqualFold(oid, strings.TrimSpace(v)) {
				return caller{userID: id, impersonated: id != app}, nil
			}
		}
		return caller{}, &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("No systemuser has the Azure Active Directory object id %s.", v)}
	}
	return caller{userID: app}, nil
}

// change is one committed write, as the event pipeline sees it.
type change struct {
	message   string // Create, Update or Delete
	table     *table
	id        string
	pre, post *record  // copies of the row before and after (nil when it did not exist)
	written   []string // the columns the request set
	caller    caller
	host      string // the organization's host name, as the client addressed it
	at        time.Time
	requestID string
}

// note records a committed write of an operation, when the operation collects them.
func (s *Server) note(o op, c change) {
	if o.changes == nil {
		return
	}
	c.caller, c.host, c.at, c.requestID = o.caller, o.host, s.now().UTC(), uuid.NewString()
	if c.pre != nil {
		c.pre = c.pre.clone()
	}
	if c.post != nil {
		c.post = c.post.clone()
	}
	*o.changes = append(*o.changes, c)
}

func writtenColumns(values map[string]any) []string {
	out := make([]string, 0, len(values))
	for k := range values {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// step is a registered step as delivery needs it.
type step struct {
	id, name    string
	mode, stage int
	endpoint    endpoint
	images      []stepImage
}

type stepImage struct {
	alias string
	kind  int // 0 pre, 1 post, 2 both
	attrs []string
}

// endpoint is a service endpoint, secrets included.
type endpoint struct {
	id, name                          string
	contract, authType, messageFormat int
	url, namespaceAddress, path       string
	sasKeyName, authValue             string
}

// raise delivers the events of committed writes. The caller holds s.mu; nothing here waits on a
// receiver.
func (s *Server) raise(changes []change, correlationID string) {
	if len(changes) == 0 {
		return
	}
	for _, c := range changes {
		for _, st := range s.stepsFor(c) {
			s.events.enqueue(s.newJob(c, st, correlationID))
		}
	}
}

// stepsFor returns the enabled steps registered on the change's message and table whose filtering
// attributes it touched, in rank order.
func (s *Server) stepsFor(c change) []step {
	steps, endpoints, messages, filters := s.tables["sdkmessageprocessingstep"], s.tables["serviceendpoint"], s.tables["sdkmessage"], s.tables["sdkmessagefilter"]
	if steps == nil || len(steps.rows) == 0 {
		return nil
	}
	type ranked struct {
		step
		rank int64
	}
	var out []ranked
	for _, id := range steps.order {
		r := steps.rows[id]
		if state, _ := r.values["statecode"].(int64); state != 0 {
			continue
		}
		msgID, _ := r.values["sdkmessageid"].(string)
		m := messages.rows[msgID]
		if m == nil || !strings.EqualFold(str(m.values["name"]), c.message) {
			continue
		}
		if fid, _ := r.values["sdkmessagefilterid"].(string); fid != "" {
			f := filters.rows[fid]
			if f == nil || !strings.EqualFold(str(f.values["primaryobjecttypecode"]), c.table.def.LogicalName) {
				continue
			}
		}
		if c.message == "Update" {
			if attrs := splitList(str(r.values["filteringattributes"])); len(attrs) > 0 &&
				!slices.ContainsFunc(c.written, func(w string) bool { return slices.Contains(attrs, strings.ToLower(w)) }) {
				continue
			}
		}
		handler, _ := r.values["eventhandler"].(string)
		e := endpoints.rows[handler]
		if e == nil {
			continue // a plug-in step: nothing the simulator runs
		}
		st := step{id: r.id, name: str(r.values["name"]), mode: int(num(r.values["mode"])), stage: int(num(r.values["stage"])), endpoint: endpoint{
			id: e.id, name: str(e.values["name"]), contract: int(num(e.values["contract"])), authType: int(num(e.values["authtype"])),
			messageFormat: int(num(e.values["messageformat"])), url: str(e.values["url"]), namespaceAddress: str(e.values["namespaceaddress"]),
			path: str(e.values["path"]), sasKeyName: str(e.values["saskeyname"]), authValue: str(e.values["authvalue"]),
		}}
		if e.values["messageformat"] == nil {
			st.endpoint.messageFormat = 1 // Dataverse's default, Binary XML
		}
		if images := s.tables["sdkmessageprocessingstepimage"]; images != nil {
			for _, iid := range images.order {
				im := images.rows[iid]
				if im.values["sdkmessageprocessingstepid"] == r.id {
					st.images = append(st.images, stepImage{alias: str(im.values["entityalias"]), kind: int(num(im.values["imagetype"])), attrs: splitList(str(im.values["attributes"]))})
				}
			}
		}
		rank, _ := r.values["rank"].(int64)
		out = append(out, ranked{st, rank})
	}
	slices.SortStableFunc(out, func(a, b ranked) int { return cmpOrdered(a.rank, b.rank) })
	res := make([]step, len(out))
	for i, r := range out {
		res[i] = r.step
	}
	return res
}

func str(v any) string { s, _ := v.(string); return s }
func num(v any) int64  { n, _ := v.(int64); return n }

// Type names of the WCF data contracts in a RemoteExecutionContext.
const (
	contractsNS        = "http://schemas.microsoft.com/xrm/2011/Contracts"
	typeEntity         = "Entity:" + contractsNS
	typeEntityRef      = "EntityReference:" + contractsNS
	typeOptionSetValue = "OptionSetValue:" + contractsNS
	typeMoney          = "Money:" + contractsNS
)

// kv is a WCF key/value pair: the shape of every collection in the context.
type kv struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// executionContext is a RemoteExecutionContext with its members in the order Dataverse writes them.
type executionContext struct {
	BusinessUnitID      string            `json:"BusinessUnitId"`
	CorrelationID       string            `json:"CorrelationId"`
	Depth               int               `json:"Depth"`
	InitiatingUserID    string            `json:"InitiatingUserId"`
	InputParameters     []kv              `json:"InputParameters"`
	IsExecutingOffline  bool              `json:"IsExecutingOffline"`
	IsInTransaction     bool              `json:"IsInTransaction"`
	IsOfflinePlayback   bool              `json:"IsOfflinePlayback"`
	IsolationMode       int               `json:"IsolationMode"`
	MessageName         string            `json:"MessageName"`
	Mode                int               `json:"Mode"`
	OperationCreatedOn  string            `json:"OperationCreatedOn"`
	OperationID         string            `json:"OperationId"`
	OrganizationID      string            `json:"OrganizationId"`
	OrganizationName    string            `json:"OrganizationName"`
	OutputParameters    []kv              `json:"OutputParameters"`
	OwningExtension     entityReference   `json:"OwningExtension"`
	ParentContext       *executionContext `json:"ParentContext"`
	PostEntityImages    []kv              `json:"PostEntityImages"`
	PreEntityImages     []kv              `json:"PreEntityImages"`
	PrimaryEntityID     string            `json:"PrimaryEntityId"`
	PrimaryEntityName   string            `json:"PrimaryEntityName"`
	RequestID           *string           `json:"RequestId"`
	SecondaryEntityName string            `json:"SecondaryEntityName"`
	SharedVariables     []kv              `json:"SharedVariables"`
	Stage               int               `json:"Stage"`
	UserID              string            `json:"UserId"`
}

type entity struct {
	Type            string  `json:"__type,omitempty"`
	Attributes      []kv    `json:"Attributes"`
	EntityState     any     `json:"EntityState"`
	FormattedValues []kv    `json:"FormattedValues"`
	ID              string  `json:"Id"`
	KeyAttributes   []kv    `json:"KeyAttributes"`
	LogicalName     string  `json:"LogicalName"`
	RelatedEntities []kv    `json:"RelatedEntities"`
	RowVersion      *string `json:"RowVersion"`
}

type entityReference struct {
	Type          string  `json:"__type,omitempty"`
	ID            string  `json:"Id"`
	KeyAttributes []kv    `json:"KeyAttributes"`
	LogicalName   string  `json:"LogicalName"`
	Name          *string `json:"Name"`
	RowVersion    *string `json:"RowVersion"`
}

type typedValue struct {
	Type  string `json:"__type"`
	Value any    `json:"Value"`
}

func ref(table, id string) entityReference {
	return entityReference{Type: typeEntityRef, ID: id, KeyAttributes: []kv{}, LogicalName: table}
}

// wcfDate renders a date-time as WCF JSON does: /Date(milliseconds since the epoch)/.
func wcfDate(t time.Time) string { return "/Date(" + strconv.FormatInt(t.UnixMilli(), 10) + ")/" }

// eventValue renders a stored value with the type Dataverse gives it in an event.
func eventValue(c dataverse.Column, r *record, name string) any {
	v := r.values[name]
	if v == nil {
		return nil
	}
	switch c.Type {
	case dataverse.TypeLookup:
		return ref(r.lookupTables[name], v.(string))
	case dataverse.TypeChoice, dataverse.TypeState, dataverse.TypeStatus:
		return typedValue{Type: typeOptionSetValue, Value: v}
	case dataverse.TypeMoney:
		return typedValue{Type: typeMoney, Value: v}
	}
	if t, ok := v.(time.Time); ok {
		return wcfDate(t)
	}
	return v
}

// entityOf renders columns of a row as an Entity: typed values, and the labels of choices as formatted
// values. skipNull leaves out null columns, as a retrieved image does.
func entityOf(t *table, r *record, cols []string, skipNull bool) entity {
	e := entity{Attributes: []kv{}, FormattedValues: []kv{}, ID: r.id, KeyAttributes: []kv{}, LogicalName: t.def.LogicalName, RelatedEntities: []kv{}}
	version := strconv.FormatInt(r.version, 10)
	e.RowVersion = &version
	for _, name := range cols {
		c, ok := t.cols[name]
		if !ok {
			continue
		}
		v := eventValue(c, r, name)
		if v == nil && skipNull {
			continue
		}
		e.Attributes = append(e.Attributes, kv{name, v})
		if n, ok := r.values[name].(int64); ok && len(c.Options) > 0 {
			if label := formatValue(c, n); label != "" {
				e.FormattedValues = append(e.FormattedValues, kv{name, label})
			}
		}
	}
	return e
}

// targetColumns are the columns of a Create or Update Target: those the request set and those the
// platform maintains.
func targetColumns(c change) []string {
	cols := slices.Clone(c.written)
	pk := c.table.def.PrimaryKey()
	add := func(names ...string) {
		for _, n := range names {
			if !slices.Contains(cols, n) {
				cols = append(cols, n)
			}
		}
	}
	if slices.Contains(cols, "statecode") || slices.Contains(cols, "statuscode") {
		add("statecode", "statuscode")
	}
	if c.message == "Create" {
		add(pk, "statecode", "statuscode", "createdon")
	} else {
		add(pk)
	}
	add("modifiedon")
	return cols
}

// userColumns appends the users the platform records on a write: createdby/modifiedby are the caller,
// and the …onbehalfby columns the application user when it impersonates.
func (s *Server) userColumns(e *entity, c change) {
	by := ref("systemuser", c.caller.userID)
	var onBehalf any
	if c.caller.impersonated {
		onBehalf = ref("systemuser", s.opts.UserID.String())
	}
	if c.message == "Create" {
		e.Attributes = append(e.Attributes, kv{"createdby", by}, kv{"createdonbehalfby", onBehalf})
	}
	e.Attributes = append(e.Attributes, kv{"modifiedby", by}, kv{"modifiedonbehalfby", onBehalf})
}

// imageOf renders a row image restricted to attrs (every column when empty), without null values.
func imageOf(t *table, r *record, attrs []string) entity {
	cols := attrs
	if len(cols) == 0 {
		for name := range t.cols {
			cols = append(cols, name)
		}
		slices.Sort(cols)
	}
	e := entityOf(t, r, cols, true)
	return e
}

// context builds the RemoteExecutionContext of one change for one step.
func (s *Server) context(c change, st step, correlationID string) *executionContext {
	t := c.table
	user := c.caller.userID
	ctx := &executionContext{
		BusinessUnitID: s.opts.BusinessUnitID.String(), CorrelationID: correlationID, Depth: 1, InitiatingUserID: user,
		IsolationMode: 1, MessageName: c.message, Mode: st.mode, OperationCreatedOn: wcfDate(c.at), OperationID: uuid.NewString(),
		OrganizationID: s.opts.OrganizationID.String(), OrganizationName: s.opts.OrganizationName,
		OutputParameters: []kv{}, PostEntityImages: []kv{}, PreEntityImages: []kv{},
		OwningExtension: entityReference{ID: st.id, KeyAttributes: []kv{}, LogicalName: "sdkmessageprocessingstep", Name: &st.name},
		PrimaryEntityID: c.id, PrimaryEntityName: t.def.LogicalName, SecondaryEntityName: "none",
		SharedVariables: []kv{}, Stage: st.stage, UserID: user,
	}
	requestID := c.requestID
	ctx.RequestID = &requestID
	var target, submitted any
	switch c.message {
	case "Delete":
		target, submitted = ref(t.def.LogicalName, c.id), ref(t.def.LogicalName, c.id)
	default:
		e := entityOf(t, c.post, targetColumns(c), false)
		s.userColumns(&e, c)
		e.Type = typeEntity
		target = e
		sub := entityOf(t, c.post, append(slices.Clone(c.written), t.def.PrimaryKey()), false)
		sub.Type, sub.RowVersion = typeEntity, nil
		submitted = sub
	}
	if c.message == "Create" {
		ctx.OutputParameters = []kv{{"id", c.id}}
	}
	ctx.InputParameters = []kv{{"Target", target}}
	for _, im := range st.images {
		if (im.kind == stepImagePre || im.kind == stepImageBoth) && c.pre != nil {
			ctx.PreEntityImages = append(ctx.PreEntityImages, kv{im.alias, imageOf(t, c.pre, im.attrs)})
		}
		if (im.kind == stepImagePost || im.kind == stepImageBoth) && c.post != nil {
			ctx.PostEntityImages = append(ctx.PostEntityImages, kv{im.alias, imageOf(t, c.post, im.attrs)})
		}
	}
	if st.mode == stepModeAsync && c.post != nil {
		// Asynchronous steps always receive the row's primary key and name.
		cols := []string{t.def.PrimaryName.LogicalName, t.def.PrimaryKey()}
		ctx.PostEntityImages = append(ctx.PostEntityImages, kv{"AsynchronousStepPrimaryName", imageOf(t, c.post, cols)})
	}
	// The parent is the main operation that ran the request: Stage 30, the submitted values only.
	parent := *ctx
	parent.InputParameters = []kv{{"Target", submitted}}
	parent.ParentContext, parent.PostEntityImages, parent.PreEntityImages, parent.Stage = nil, []kv{}, []kv{}, 30
	ctx.ParentContext = &parent
	return ctx
}

// truncate drops what Dataverse drops from a message over the size limit.
func (c *executionContext) truncate() {
	c.ParentContext, c.InputParameters, c.PreEntityImages, c.PostEntityImages = nil, nil, nil, nil
}

// encodeContext writes the context as Dataverse does, with every '/' escaped as "\/" (WCF's JSON
// serializer does, so /Date(…)/ reads "\/Date(…)\/"). A '/' only occurs inside strings, so the escape
// is safe everywhere.
func encodeContext(c *executionContext) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(c) // every member is a plain value
	return bytes.ReplaceAll(bytes.TrimRight(buf.Bytes(), "\n"), []byte("/"), []byte(`\/`))
}

// Size limits beyond which Dataverse drops ParentContext, InputParameters and the images.
const (
	webhookMaxMessage    = 256 * 1024
	serviceBusMaxMessage = 192 * 1024
)

// newJob builds what one step's endpoint receives for one change.
func (s *Server) newJob(c change, st step, correlationID string) job {
	ctx := s.context(c, st, correlationID)
	j := job{endpoint: st.endpoint, delivery: Delivery{
		Endpoint: st.endpoint.name, EndpointID: uuid.MustParse(st.endpoint.id), Contract: st.endpoint.contract,
		Step: st.name, StepID: uuid.MustParse(st.id), Message: c.message, Table: c.table.def.LogicalName,
		RowID: uuid.MustParse(c.id), Time: c.at,
	}}
	limit := serviceBusMaxMessage
	if st.endpoint.contract == contractWebhook {
		limit = webhookMaxMessage
	}
	body := encodeContext(ctx)
	if len(body) > limit {
		ctx.truncate()
		body = encodeContext(ctx)
		j.delivery.Truncated = true
	}
	j.body, j.tooLarge = body, len(body) > limit
	j.headers = http.Header{
		"Content-Type":                {"application/json"},
		"X-Ms-Dynamics-Organization":  {c.host},
		"X-Ms-Dynamics-Entity-Name":   {c.table.def.LogicalName},
		"X-Ms-Dynamics-Request-Name":  {c.message},
		"X-Ms-Correlation-Request-Id": {correlationID},
	}
	j.properties = map[string]any{
		ClaimOrganization: c.host, ClaimUser: c.caller.userID, ClaimInitiatingUser: c.caller.userID,
		ClaimEntityLogicalName: c.table.def.LogicalName, ClaimRequestName: c.message,
	}
	if j.delivery.Truncated {
		j.headers.Set("X-Ms-Dynamics-Msg-Size-Exceeded", "true")
		j.properties[PropertyMessageMaxSizeExceeded] = true
	}
	return j
}
