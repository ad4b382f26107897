package dataverse

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Event registration: where Dataverse sends events (a service endpoint: a Service Bus queue or topic, or
// a webhook) and which writes send one (processing steps on a message and table, with entity images).
// PlanRegistration compares the environment with a Registration and ApplyRegistration makes them match,
// like PlanSchema and ApplySchema; running both again finds nothing to do.

// Entity sets of the registration tables.
const (
	setServiceEndpoints = "serviceendpoints"
	setMessages         = "sdkmessages"
	setMessageFilters   = "sdkmessagefilters"
	setSteps            = "sdkmessageprocessingsteps"
	setStepImages       = "sdkmessageprocessingstepimages"
)

// EndpointKind is where a service endpoint delivers: its serviceendpoint.contract.
type EndpointKind int

const (
	// EndpointServiceBusQueue posts to an Azure Service Bus queue: contract 2 ("Queue"). Dataverse also
	// has contract 6, "Queue (Persistent)"; the documented queue contract, and the one registered here,
	// is 2.
	EndpointServiceBusQueue EndpointKind = 2
	// EndpointServiceBusTopic posts to an Azure Service Bus topic: contract 5.
	EndpointServiceBusTopic EndpointKind = 5
	// EndpointWebhook POSTs to an HTTPS URL: contract 8.
	EndpointWebhook EndpointKind = 8
)

// String names the kind for people.
func (k EndpointKind) String() string {
	switch k {
	case EndpointServiceBusQueue:
		return "Service Bus queue"
	case EndpointServiceBusTopic:
		return "Service Bus topic"
	case EndpointWebhook:
		return "webhook"
	}
	return fmt.Sprintf("contract %d", int(k))
}

func (k EndpointKind) serviceBus() bool {
	return k == EndpointServiceBusQueue || k == EndpointServiceBusTopic
}

// serviceendpoint.authtype values used here.
const (
	authSASKey     = 2
	authWebhookKey = 4
	authHTTPHeader = 5
)

// ServiceEndpoint declares the service endpoint events go to. Its secrets (SASKey, WebhookKey,
// HeaderValue) are write-only in Dataverse: they are sent when the endpoint is created, and on later runs
// only with Registration.RotateSecrets, because Dataverse never returns them and a change cannot be seen.
type ServiceEndpoint struct {
	// Name identifies the endpoint; it must be unique in the environment ("CSP Connector").
	Name        string
	Kind        EndpointKind
	Description string

	// NamespaceAddress is the Service Bus namespace, sb://<namespace>.servicebus.windows.net/ (a bare
	// namespace name or host name is accepted). Path is the queue or topic. SASKeyName and SASKey are a
	// shared access policy with the Send right. Messages are Json (messageformat 2), without user claims.
	NamespaceAddress, Path string
	SASKeyName, SASKey     string

	// URL is the webhook's address. Authenticate it with WebhookKey (sent as ?code=, authtype 4) or with a
	// header HeaderName: HeaderValue (authtype 5), not both.
	URL                     string
	WebhookKey              string
	HeaderName, HeaderValue string
}

// String describes the endpoint with its secrets masked, so that printing a ServiceEndpoint never shows
// them.
func (e ServiceEndpoint) String() string {
	switch {
	case e.Kind == EndpointWebhook && e.HeaderName != "":
		return fmt.Sprintf("webhook %s, header %s: %s", maskURL(e.URL), e.HeaderName, mask)
	case e.Kind == EndpointWebhook:
		return fmt.Sprintf("webhook %s, key %s", maskURL(e.URL), mask)
	case e.Kind.serviceBus():
		return fmt.Sprintf("%s %s on %s, SAS policy %s %s", e.Kind, e.Path, e.NamespaceAddress, e.SASKeyName, mask)
	}
	return e.Kind.String()
}

// mask stands for a secret in everything a person reads.
const mask = "********"

// maskURL shows a webhook URL without what may be a secret: user information and query values (an Azure
// Function key can sit in ?code=).
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unreadable URL)"
	}
	u.User = nil
	q := u.Query()
	u.RawQuery = ""
	keys := slices.Sorted(maps.Keys(q))
	for i, k := range keys {
		keys[i] = url.QueryEscape(k) + "=****"
	}
	out := u.String()
	if len(keys) > 0 {
		out += "?" + strings.Join(keys, "&")
	}
	return out
}

// ImageType says which images of the row a step receives (sdkmessageprocessingstepimage.imagetype).
type ImageType int

// Image types.
const (
	PreImage   ImageType = 0 // the row before the operation (Update, Delete)
	PostImage  ImageType = 1 // the row after the operation (Create, Update)
	BothImages ImageType = 2
)

// String names the image type as Dataverse does.
func (t ImageType) String() string {
	switch t {
	case PreImage:
		return "PreImage"
	case PostImage:
		return "PostImage"
	case BothImages:
		return "Both"
	}
	return fmt.Sprintf("image type %d", int(t))
}

// StepImage declares an entity image: a copy of the row's columns sent with the event.
type StepImage struct {
	// Alias is the key of the image in PreEntityImages / PostEntityImages.
	Alias string
	Type  ImageType
	// Attributes are the columns in the image; empty means every column (costly: avoid).
	Attributes []string
}

// Step declares one processing step: on Message of Table, send the event to the endpoint. Steps are
// registered asynchronous (mode 1) and post-operation (stage 40), with rank 1, on the server only, and
// deleted from the system job list when they succeed (asyncautodelete), as Service Bus requires.
type Step struct {
	// Name identifies the step among the endpoint's steps ("CSP Connector: Update of csp_job").
	Name string
	// Message is Create, Update, Delete or a custom API's unique name.
	Message string
	// Table is the primary table's logical name; empty only for an unbound custom API.
	Table string
	// FilteringAttributes limits an Update step to writes that set one of these columns; empty means
	// every update. Only Update steps may have them.
	FilteringAttributes []string
	Images              []StepImage
}

// Registration is the event registration the connector needs: one endpoint and its steps. Steps of the
// endpoint that are not declared are deleted.
type Registration struct {
	Endpoint ServiceEndpoint
	Steps    []Step
	// RotateSecrets sends the endpoint's secret even when the endpoint exists. Without it an existing
	// endpoint keeps the secret it has (Dataverse never returns secrets, so the plan cannot tell whether it
	// changed), except when the authentication type changes or Dataverse reports no secret set.
	RotateSecrets bool
}

// RegistrationPlan is what it takes to make the environment's event registration match a Registration:
// the changes, in order, and what the planner will not change by itself (Problems). It holds no secret:
// print it or encode it as JSON freely.
type RegistrationPlan struct {
	// Endpoint is the service endpoint's name.
	Endpoint string
	Changes  []Change
	Problems []string
}

// Empty reports a plan with nothing to change.
func (p *RegistrationPlan) Empty() bool { return len(p.Changes) == 0 }

// Summaries returns the plan's changes as lines for people.
func (p *RegistrationPlan) Summaries() []string { return summaries(p.Changes) }

// String renders the plan for a person.
func (p *RegistrationPlan) String() string {
	return renderPlan(fmt.Sprintf("Nothing to change: the events of service endpoint %q are registered as declared.", p.Endpoint),
		"the registration", p.Changes, p.Problems)
}

func (p *RegistrationPlan) add(summary string, apply func(ctx context.Context) error) {
	p.Changes = append(p.Changes, Change{Summary: summary, apply: apply})
}

// registrationIDs are the rows the changes work on, filled in as changes create them.
type registrationIDs struct {
	endpoint GUID
	steps    map[string]GUID // by lowercase step name
}

// PlanRegistration compares the environment's service endpoint named r.Endpoint.Name, its steps and
// their images with r, and returns the changes that would make them match. It only reads.
//
// API: GET serviceendpoints, sdkmessages, sdkmessagefilters, sdkmessageprocessingsteps and
// sdkmessageprocessingstepimages with $filter.
func (c *Client) PlanRegistration(ctx context.Context, r Registration) (*RegistrationPlan, error) {
	e, err := r.Endpoint.normalize()
	if err != nil {
		return nil, err
	}
	steps, err := normalizeSteps(r.Steps)
	if err != nil {
		return nil, err
	}
	p := &RegistrationPlan{Endpoint: e.Name}
	ids := &registrationIDs{steps: map[string]GUID{}}

	existing, err := c.findEndpoint(ctx, e.Name, p)
	if err != nil {
		return nil, err
	}
	messages, filters, err := c.resolveMessages(ctx, steps)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		p.add(fmt.Sprintf("create service endpoint %q: %s", e.Name, e), func(ctx context.Context) error {
			id, err := c.Create(ctx, setServiceEndpoints, e.row(true))
			ids.endpoint = id
			return err
		})
	} else {
		ids.endpoint, _ = existing.GUID("serviceendpointid")
		e.planUpdate(c, existing, r.RotateSecrets, ids.endpoint, p)
	}

	var have []Row
	if existing != nil {
		if have, err = c.stepsOf(ctx, ids.endpoint); err != nil {
			return nil, err
		}
	}
	var deletes []Change
	byName := map[string]Row{}
	for _, row := range have {
		name := strings.ToLower(row.String("name"))
		id, _ := row.GUID("sdkmessageprocessingstepid")
		if _, dup := byName[name]; dup || !slices.ContainsFunc(steps, func(s Step) bool { return strings.EqualFold(s.Name, name) }) {
			deletes = append(deletes, Change{Summary: fmt.Sprintf("delete step %q", row.String("name")),
				apply: func(ctx context.Context) error { return c.Delete(ctx, setSteps, id, nil) }})
			continue
		}
		byName[name] = row
	}
	for _, s := range steps {
		msgID, filterID := messages[s.Message], filters[filterKey(s.Message, s.Table)]
		row, ok := byName[strings.ToLower(s.Name)]
		if !ok {
			p.add(fmt.Sprintf("create step %q: %s", s.Name, s.describe()), func(ctx context.Context) error {
				id, err := c.Create(ctx, setSteps, s.row(ids.endpoint, msgID, filterID))
				ids.steps[strings.ToLower(s.Name)] = id
				return err
			})
			for _, im := range s.Images {
				c.planImageCreate(s, im, ids, p)
			}
			continue
		}
		stepID, _ := row.GUID("sdkmessageprocessingstepid")
		ids.steps[strings.ToLower(s.Name)] = stepID
		c.planStepUpdate(s, row, stepID, msgID, filterID, p)
		images, err := c.imagesOf(ctx, stepID)
		if err != nil {
			return nil, err
		}
		deletes = append(deletes, c.planImages(s, images, ids, p)...)
	}
	p.Changes = append(p.Changes, deletes...)
	return p, nil
}

// ApplyRegistration carries out the plan's changes in order, calling progress before each. It stops at
// the first failure; planning and applying again resumes, because the plan is made from what exists.
func (c *Client) ApplyRegistration(ctx context.Context, p *RegistrationPlan, progress func(i int, ch Change)) error {
	for i, ch := range p.Changes {
		if progress != nil {
			progress(i, ch)
		}
		if err := ch.apply(ctx); err != nil {
			return fmt.Errorf("dataverse: registration change %d of %d (%s): %w", i+1, len(p.Changes), ch.Summary, err)
		}
	}
	return nil
}

// normalize checks the declaration and puts it in the form Dataverse stores.
func (e ServiceEndpoint) normalize() (ServiceEndpoint, error) {
	bad := func(format string, args ...any) (ServiceEndpoint, error) {
		return e, fmt.Errorf("dataverse: register: service endpoint %q: %s", e.Name, fmt.Sprintf(format, args...))
	}
	e.Name = strings.TrimSpace(e.Name)
	switch {
	case e.Name == "":
		return bad("the endpoint needs a name")
	case len([]rune(e.Name)) > 256:
		return bad("the name is longer than 256 characters")
	}
	switch {
	case e.Kind == EndpointWebhook:
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return bad("the webhook URL must be an absolute https URL")
		}
		if len(e.URL) > 2000 {
			return bad("the webhook URL is longer than 2000 characters")
		}
		switch {
		case (e.WebhookKey == "") == (e.HeaderName == ""):
			return bad("authenticate the webhook with either a key or a header")
		case e.HeaderName != "" && e.HeaderValue == "":
			return bad("header %s has no value", e.HeaderName)
		case len(e.authValue()) > 2048:
			return bad("the webhook key or header is longer than Dataverse's 2048 characters")
		}
	case e.Kind.serviceBus():
		ns := strings.TrimSpace(e.NamespaceAddress)
		ns = strings.TrimPrefix(strings.TrimPrefix(ns, "sb://"), "https://")
		ns = strings.TrimSuffix(ns, "/")
		if ns == "" || strings.ContainsAny(ns, "/?#@ ") {
			return bad("the namespace address must look like sb://<namespace>.servicebus.windows.net/")
		}
		if !strings.Contains(ns, ".") {
			ns += ".servicebus.windows.net"
		}
		e.NamespaceAddress = "sb://" + strings.ToLower(ns) + "/"
		switch {
		case e.Path == "" || len(e.Path) > 160:
			return bad("the queue or topic (Path) must have 1 to 160 characters")
		case e.SASKeyName == "" || e.SASKey == "":
			return bad("a Service Bus endpoint needs a SAS policy name and key")
		}
	default:
		return bad("unsupported kind %d", int(e.Kind))
	}
	return e, nil
}

// solutionNamespace is the Service Bus namespace name: the first label of the address's host.
func (e ServiceEndpoint) solutionNamespace() string {
	host := strings.TrimSuffix(strings.TrimPrefix(e.NamespaceAddress, "sb://"), "/")
	name, _, _ := strings.Cut(host, ".")
	return name
}

func (e ServiceEndpoint) authType() int {
	switch {
	case e.Kind.serviceBus():
		return authSASKey
	case e.HeaderName != "":
		return authHTTPHeader
	}
	return authWebhookKey
}

// authValue is the webhook secret as Dataverse takes it: the key, or the headers as
// <settings><setting name="…" value="…" /></settings>.
func (e ServiceEndpoint) authValue() string {
	if e.HeaderName == "" {
		return e.WebhookKey
	}
	var b strings.Builder
	b.WriteString(`<settings><setting name="`)
	_ = xml.EscapeText(&b, []byte(e.HeaderName))
	b.WriteString(`" value="`)
	_ = xml.EscapeText(&b, []byte(e.HeaderValue))
	b.WriteString(`" /></settings>`)
	return b.String()
}

// row is the serviceendpoint row to create, with the secret when withSecret.
func (e ServiceEndpoint) row(withSecret bool) Row {
	row := Row{"name": e.Name, "contract": int(e.Kind), "authtype": e.authType()}
	if e.Description != "" {
		row["description"] = e.Description
	}
	if e.Kind == EndpointWebhook {
		row["url"] = e.URL
		if withSecret {
			row["authvalue"] = e.authValue()
		}
		return row
	}
	row["connectionmode"] = 1  // Normal
	row["messageformat"] = 2   // Json
	row["userclaim"] = 1       // None
	row["namespaceformat"] = 2 // Namespace Address
	row["namespaceaddress"] = e.NamespaceAddress
	row["solutionnamespace"] = e.solutionNamespace()
	row["path"] = e.Path
	row["saskeyname"] = e.SASKeyName
	if withSecret {
		row["saskey"] = e.SASKey
	}
	return row
}

// findEndpoint returns the service endpoint with this name, nil when there is none.
func (c *Client) findEndpoint(ctx context.Context, name string, p *RegistrationPlan) (Row, error) {
	q := &Query{Select: []string{"serviceendpointid", "name", "contract", "url", "namespaceaddress", "path", "authtype",
		"saskeyname", "messageformat", "isauthvalueset", "issaskeyset"}, Filter: Eq("name", name)}
	var found []Row
	for row, err := range c.List(ctx, setServiceEndpoints, q) {
		if err != nil {
			return nil, fmt.Errorf("dataverse: register: look up service endpoint %q: %w", name, err)
		}
		found = append(found, row)
	}
	if len(found) > 1 {
		p.Problems = append(p.Problems, fmt.Sprintf("%d service endpoints are named %q: the first is kept up to date, delete the others", len(found), name))
	}
	if len(found) == 0 {
		return nil, nil
	}
	return found[0], nil
}

// planUpdate adds the update that makes an existing endpoint match, if anything differs.
func (e ServiceEndpoint) planUpdate(c *Client, have Row, rotate bool, id GUID, p *RegistrationPlan) {
	update := Row{}
	var diffs []string
	// Service Bus names are case-insensitive; a URL's path is not.
	diff := func(col, label, want string, show func(string) string) {
		got := have.String(col)
		if got == want || (col != "url" && strings.EqualFold(got, want)) {
			return
		}
		update[col] = want
		diffs = append(diffs, fmt.Sprintf("%s %s → %s", label, show(got), show(want)))
	}
	plain := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	diffInt := func(col, label string, want int) {
		if got, ok := have.Int(col); !ok || got != int64(want) {
			update[col] = want
			diffs = append(diffs, fmt.Sprintf("%s %s → %d", label, plain(have.String(col)), want))
		}
	}
	diffInt("contract", "contract", int(e.Kind))
	diffInt("authtype", "authentication type", e.authType())
	authChanged := update["authtype"] != nil
	secretFlag := "isauthvalueset"
	if e.Kind == EndpointWebhook {
		diff("url", "url", e.URL, func(s string) string { return plain(maskURL(s)) })
	} else {
		secretFlag = "issaskeyset"
		diff("namespaceaddress", "namespace", e.NamespaceAddress, plain)
		if update["namespaceaddress"] != nil {
			update["solutionnamespace"] = e.solutionNamespace()
			update["namespaceformat"] = 2
		}
		diff("path", "path", e.Path, plain)
		diff("saskeyname", "SAS policy", e.SASKeyName, plain)
		diffInt("messageformat", "message format", 2)
	}
	unset := false
	if set, ok := have.Bool(secretFlag); ok && !set {
		unset = true
	}
	switch {
	case rotate:
		diffs = append(diffs, "rotate secret "+mask)
	case authChanged:
		diffs = append(diffs, "new secret "+mask+" for the new authentication type")
	case unset:
		diffs = append(diffs, "set missing secret "+mask)
	}
	if rotate || authChanged || unset {
		full := e.row(true)
		for _, col := range []string{"authvalue", "saskey"} {
			if v, ok := full[col]; ok {
				update[col] = v
			}
		}
	}
	if len(update) == 0 {
		return
	}
	p.add(fmt.Sprintf("update service endpoint %q: %s", e.Name, strings.Join(diffs, "; ")), func(ctx context.Context) error {
		_, err := c.Update(ctx, setServiceEndpoints, id, update, nil)
		return err
	})
}

// normalizeSteps checks the declared steps and puts their lists in canonical form (lowercase, sorted,
// without duplicates).
func normalizeSteps(steps []Step) ([]Step, error) {
	out := make([]Step, len(steps))
	seen := map[string]bool{}
	for i, s := range steps {
		bad := func(format string, args ...any) ([]Step, error) {
			return nil, fmt.Errorf("dataverse: register: step %q: %s", s.Name, fmt.Sprintf(format, args...))
		}
		s.Name, s.Message, s.Table = strings.TrimSpace(s.Name), strings.TrimSpace(s.Message), strings.ToLower(strings.TrimSpace(s.Table))
		standard := s.Message == "Create" || s.Message == "Update" || s.Message == "Delete"
		switch {
		case s.Name == "" || len([]rune(s.Name)) > 256:
			return bad("a step needs a name of at most 256 characters")
		case seen[strings.ToLower(s.Name)]:
			return bad("declared twice")
		case s.Message == "":
			return bad("no message")
		case standard && s.Table == "":
			return bad("a %s step needs a table", s.Message)
		case s.Table != "" && checkEntitySet(s.Table) != nil:
			return bad("%q is not a table name", s.Table)
		case len(s.FilteringAttributes) > 0 && s.Message != "Update":
			return bad("only Update steps have filtering attributes")
		}
		seen[strings.ToLower(s.Name)] = true
		var err error
		if s.FilteringAttributes, err = columnList(s.FilteringAttributes); err != nil {
			return bad("filtering attributes: %v", err)
		}
		images := make([]StepImage, len(s.Images))
		aliases := map[string]bool{}
		for j, im := range s.Images {
			switch {
			case im.Alias == "" || aliases[strings.ToLower(im.Alias)]:
				return bad("each image needs an alias of its own")
			case im.Type < PreImage || im.Type > BothImages:
				return bad("image %s: unknown type %d", im.Alias, int(im.Type))
			case !standard:
				return bad("images are only registered on Create, Update and Delete")
			case s.Message == "Create" && im.Type != PostImage:
				return bad("image %s: a Create has no pre-image", im.Alias)
			case s.Message == "Delete" && im.Type != PreImage:
				return bad("image %s: a Delete has no post-image", im.Alias)
			}
			aliases[strings.ToLower(im.Alias)] = true
			if im.Attributes, err = columnList(im.Attributes); err != nil {
				return bad("image %s: %v", im.Alias, err)
			}
			images[j] = im
		}
		s.Images = images
		out[i] = s
	}
	return out, nil
}

// columnList canonicalizes a list of column names: lowercase, sorted, each once.
func columnList(cols []string) ([]string, error) {
	var out []string
	for _, c := range cols {
		c = strings.ToLower(strings.TrimSpace(c))
		if err := checkColumn(c); err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out, nil
}

// splitColumns reads a comma-separated column list as Dataverse stores it.
func splitColumns(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.ToLower(strings.TrimSpace(part)); part != "" && !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	slices.Sort(out)
	return out
}

func showColumns(cols []string) string {
	if len(cols) == 0 {
		return "(all)"
	}
	return strings.Join(cols, ",")
}

// commaList is the column list as a Dataverse column value: null when empty.
func commaList(cols []string) any {
	if len(cols) == 0 {
		return nil
	}
	return strings.Join(cols, ",")
}

func (s Step) describe() string {
	d := "asynchronous, post-operation " + s.Message
	if s.Table != "" {
		d += " of " + s.Table
	}
	if s.Message == "Update" {
		d += ", filtering attributes " + showColumns(s.FilteringAttributes)
	}
	return d
}

func filterKey(message, table string) string { return message + "\x00" + table }

// resolveMessages finds the sdkmessage of every step's message and the sdkmessagefilter of every
// (message, table). The filter is looked up by the message's id: Dataverse also accepts the navigation
// path sdkmessageid/name, but an id comparison is the simpler query.
func (c *Client) resolveMessages(ctx context.Context, steps []Step) (map[string]GUID, map[string]GUID, error) {
	messages, filters := map[string]GUID{}, map[string]GUID{}
	for _, s := range steps {
		if _, ok := messages[s.Message]; !ok {
			found := false
			for row, err := range c.List(ctx, setMessages, &Query{Select: []string{"sdkmessageid", "name"}, Filter: Eq("name", s.Message), Top: 1}) {
				if err != nil {
					return nil, nil, fmt.Errorf("dataverse: register: look up message %s: %w", s.Message, err)
				}
				messages[s.Message], found = mustGUID(row, "sdkmessageid"), true
			}
			if !found {
				return nil, nil, fmt.Errorf("dataverse: register: step %q: Dataverse has no message %q", s.Name, s.Message)
			}
		}
		key := filterKey(s.Message, s.Table)
		if _, ok := filters[key]; ok || s.Table == "" {
			continue
		}
		found := false
		q := &Query{Select: []string{"sdkmessagefilterid"}, Filter: And(LookupEq("sdkmessageid", messages[s.Message]), Eq("primaryobjecttypecode", s.Table)), Top: 1}
		for row, err := range c.List(ctx, setMessageFilters, q) {
			if err != nil {
				return nil, nil, fmt.Errorf("dataverse: register: look up the %s filter of %s: %w", s.Message, s.Table, err)
			}
			filters[key], found = mustGUID(row, "sdkmessagefilterid"), true
		}
		if !found {
			return nil, nil, fmt.Errorf("dataverse: register: step %q: message %s cannot be registered on table %s (no sdkmessagefilter): is the table installed?", s.Name, s.Message, s.Table)
		}
	}
	return messages, filters, nil
}

func mustGUID(row Row, col string) GUID {
	id, _ := row.GUID(col)
	return id
}

// stepsOf lists the steps whose event handler is the endpoint.
func (c *Client) stepsOf(ctx context.Context, endpoint GUID) ([]Row, error) {
	q := &Query{Select: []string{"sdkmessageprocessingstepid", "name", "filteringattributes", "mode", "stage", "statecode",
		LookupValue("sdkmessageid"), LookupValue("sdkmessagefilterid")}, Filter: LookupEq("eventhandler", endpoint)}
	var out []Row
	for row, err := range c.List(ctx, setSteps, q) {
		if err != nil {
			return nil, fmt.Errorf("dataverse: register: list the steps of service endpoint %s: %w", endpoint, err)
		}
		out = append(out, row)
	}
	return out, nil
}

// row is the sdkmessageprocessingstep row to create.
func (s Step) row(endpoint, message, filter GUID) Row {
	row := Row{"name": s.Name, "mode": 1, "stage": 40, "rank": 1, "supporteddeployment": 0, "asyncautodelete": true,
		"filteringattributes": commaList(s.FilteringAttributes)}
	row.SetLookup("eventhandler_serviceendpoint", setServiceEndpoints, endpoint)
	row.SetLookup("sdkmessageid", setMessages, message)
	if filter != (GUID{}) {
		row.SetLookup("sdkmessagefilterid", setMessageFilters, filter)
	}
	return row
}

// planStepUpdate adds the update that makes an existing step match, if anything differs. A step someone
// disabled is reported, not re-enabled.
func (c *Client) planStepUpdate(s Step, have Row, id, message, filter GUID, p *RegistrationPlan) {
	if state, _ := have.Int("statecode"); state != 0 {
		p.Problems = append(p.Problems, fmt.Sprintf("step %q is disabled in the environment: enable it to receive its events", s.Name))
	}
	update := Row{}
	var diffs []string
	if got, _ := have.GUID(LookupValue("sdkmessageid")); got != message {
		update.SetLookup("sdkmessageid", setMessages, message)
		diffs = append(diffs, "message → "+s.Message)
	}
	if got, _ := have.GUID(LookupValue("sdkmessagefilterid")); got != filter {
		update.SetLookup("sdkmessagefilterid", setMessageFilters, filter)
		diffs = append(diffs, "table → "+cmpOr(s.Table, "(none)"))
	}
	if mode, _ := have.Int("mode"); mode != 1 {
		update["mode"] = 1
		diffs = append(diffs, "mode → asynchronous")
	}
	if stage, _ := have.Int("stage"); stage != 40 {
		update["stage"] = 40
		diffs = append(diffs, "stage → post-operation")
	}
	if got := splitColumns(have.String("filteringattributes")); !slices.Equal(got, s.FilteringAttributes) {
		update["filteringattributes"] = commaList(s.FilteringAttributes)
		diffs = append(diffs, fmt.Sprintf("filtering attributes %s → %s", showColumns(got), showColumns(s.FilteringAttributes)))
	}
	if len(update) == 0 {
		return
	}
	p.add(fmt.Sprintf("update step %q: %s", s.Name, strings.Join(diffs, "; ")), func(ctx context.Context) error {
		_, err := c.Update(ctx, setSteps, id, update, nil)
		return err
	})
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// imagesOf lists a step's images.
func (c *Client) imagesOf(ctx context.Context, step GUID) ([]Row, error) {
	q := &Query{Select: []string{"sdkmessageprocessingstepimageid", "name", "entityalias", "imagetype", "attributes", "messagepropertyname"},
		Filter: LookupEq("sdkmessageprocessingstepid", step)}
	var out []Row
	for row, err := range c.List(ctx, setStepImages, q) {
		if err != nil {
			return nil, fmt.Errorf("dataverse: register: list the images of step %s: %w", step, err)
		}
		out = append(out, row)
	}
	return out, nil
}

// messageProperty is the request parameter an image is taken from: the new row's Id for a Create, the
// Target otherwise.
func messageProperty(message string) string {
	if message == "Create" {
		return "Id"
	}
	return "Target"
}

func imageRow(s Step, im StepImage) Row {
	return Row{"name": im.Alias, "entityalias": im.Alias, "imagetype": int(im.Type), "messagepropertyname": messageProperty(s.Message),
		"attributes": commaList(im.Attributes)}
}

func (c *Client) planImageCreate(s Step, im StepImage, ids *registrationIDs, p *RegistrationPlan) {
	p.add(fmt.Sprintf("create image %q of step %q: %s of %s", im.Alias, s.Name, im.Type, showColumns(im.Attributes)), func(ctx context.Context) error {
		row := imageRow(s, im)
		row.SetLookup("sdkmessageprocessingstepid", setSteps, ids.steps[strings.ToLower(s.Name)])
		_, err := c.Create(ctx, setStepImages, row)
		return err
	})
}

// planImages adds the changes that make an existing step's images match; it returns the deletions, which
// go last.
func (c *Client) planImages(s Step, have []Row, ids *registrationIDs, p *RegistrationPlan) []Change {
	var deletes []Change
	matched := map[string]bool{}
	for _, row := range have {
		alias := row.String("entityalias")
		id, _ := row.GUID("sdkmessageprocessingstepimageid")
		i := slices.IndexFunc(s.Images, func(im StepImage) bool { return strings.EqualFold(im.Alias, alias) })
		if i < 0 || matched[strings.ToLower(alias)] {
			deletes = append(deletes, Change{Summary: fmt.Sprintf("delete image %q of step %q", alias, s.Name),
				apply: func(ctx context.Context) error { return c.Delete(ctx, setStepImages, id, nil) }})
			continue
		}
		matched[strings.ToLower(alias)] = true
		im := s.Images[i]
		update := Row{}
		var diffs []string
		if got, _ := row.Int("imagetype"); got != int64(im.Type) {
			update["imagetype"] = int(im.Type)
			diffs = append(diffs, fmt.Sprintf("type %s → %s", ImageType(got), im.Type))
		}
		if got := splitColumns(row.String("attributes")); !slices.Equal(got, im.Attributes) {
			update["attributes"] = commaList(im.Attributes)
			diffs = append(diffs, fmt.Sprintf("attributes %s → %s", showColumns(got), showColumns(im.Attributes)))
		}
		if got, want := row.String("messagepropertyname"), messageProperty(s.Message); got != want {
			update["messagepropertyname"] = want
			diffs = append(diffs, fmt.Sprintf("message property %s → %s", cmpOr(got, "(none)"), want))
		}
		if len(update) > 0 {
			p.add(fmt.Sprintf("update image %q of step %q: %s", alias, s.Name, strings.Join(diffs, "; ")), func(ctx context.Context) error {
				_, err := c.Update(ctx, setStepImages, id, update, nil)
				return err
			})
		}
	}
	for _, im := range s.Images {
		if !matched[strings.ToLower(im.Alias)] {
			c.planImageCreate(s, im, ids, p)
		}
	}
	return deletes
}
