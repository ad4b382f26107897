package api

import (
	"bytes"
	"cmp"
	"encoding"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The OpenAPI 2.0 document of the API is generated from the route table (apiRoutes) and the Go types of
// the bodies, so the document cannot drift from what is served. Power Automate custom connectors accept
// OpenAPI 2.0 only; the x-ms-* extensions are the ones ../shared/reference/powerplatform.md §1.2 lists.
//
// Types document themselves through struct tags: `json` names the property, `desc` is its description
// (a sentence), `summary` overrides the label derived from the name ("tenantId" → "Tenant ID"), and
// `enum` lists a string's values separated by commas.

// DocumentHost is the host of the checked-in custom connector definition: replace it with the
// connector's host name when importing (or set CONNECTOR_PUBLIC_URL, and the served document carries it).
const DocumentHost = "csp-connector.example.com"

// Definition returns the OpenAPI 2.0 document of the API, indented with 4 spaces as Power Platform's
// connector repository asks. publicURL (optional) sets host and scheme; without it the placeholder host is
// used, and the document equals infra/powerplatform/apiDefinition.swagger.json.
func Definition(publicURL string) ([]byte, error) {
	host, scheme := DocumentHost, "https"
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("api: public URL %q is not an absolute URL", publicURL)
		}
		host, scheme = u.Host, u.Scheme
	}
	g := &docGen{defs: map[string]any{}, types: map[reflect.Type]string{}}
	paths := map[string]map[string]any{}
	for _, rt := range apiRoutes() {
		item := paths[rt.Path]
		if item == nil {
			item = map[string]any{}
			paths[rt.Path] = item
		}
		op, err := g.operation(rt)
		if err != nil {
			return nil, fmt.Errorf("api: %s %s: %w", rt.Method, rt.Path, err)
		}
		item[strings.ToLower(rt.Method)] = op
		if rt.Notification != nil {
			item["x-ms-notification-content"] = map[string]any{"description": rt.NotificationDescription, "schema": g.ref(reflect.TypeOf(rt.Notification))}
		}
	}
	if g.err != nil {
		return nil, g.err
	}
	doc := orderedDoc{
		{"swagger", "2.0"},
		{"info", map[string]any{
			"title":   "CSP Partner Center Sync",
			"version": "1.0",
			"description": "Works with the CSP Connector that keeps Dynamics 365 and Microsoft Partner Center in step: map new customers, " +
				"send Microsoft Customer Agreement links, push license changes, run and follow jobs, and start flows when something needs a person.",
			"contact": map[string]any{"name": "CSP Connector"},
		}},
		{"host", host},
		{"basePath", "/"},
		{"schemes", []string{scheme}},
		{"consumes", []string{"application/json"}},
		{"produces", []string{"application/json"}},
		{"paths", paths},
		{"definitions", g.defs},
		{"securityDefinitions", orderedDoc{
			{"oauth2_auth", map[string]any{"type": "oauth2", "flow": "accessCode",
				"authorizationUrl": "https://login.microsoftonline.com/common/oauth2/authorize",
				"tokenUrl":         "https://login.microsoftonline.com/common/oauth2/authorize", "scopes": map[string]any{}}},
			{"api_key", map[string]any{"type": "apiKey", "in": "header", "name": KeyHeader}},
		}},
		{"security", []any{map[string]any{"oauth2_auth": []string{}}, map[string]any{"api_key": []string{}}}},
		{"tags", []any{}},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// orderedDoc is a JSON object that keeps its keys in order (the top level of the document, in the order the
// connector repository's guide lists).
type orderedDoc []struct {
	k string
	v any
}

func (o orderedDoc) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, kv := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(kv.k)
		buf.Write(k)
		buf.WriteByte(':')
		var vb bytes.Buffer
		enc := json.NewEncoder(&vb)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(kv.v); err != nil {
			return nil, err
		}
		buf.Write(bytes.TrimRight(vb.Bytes(), "\n"))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

type docGen struct {
	defs  map[string]any
	types map[reflect.Type]string
	err   error
}

func (g *docGen) operation(rt apiRoute) (map[string]any, error) {
	op := map[string]any{"operationId": rt.ID, "summary": rt.Summary, "description": rt.Description}
	if rt.Visibility != "" {
		op["x-ms-visibility"] = rt.Visibility
	}
	var params []any
	for _, p := range rt.Params {
		m := map[string]any{"name": p.Name, "in": p.In, "required": p.Required || p.In == "path", "type": cmp.Or(p.Type, "string"),
			"description": p.Description, "x-ms-summary": p.Summary}
		if len(p.Enum) > 0 {
			m["enum"] = p.Enum
		}
		if p.Default != nil {
			m["default"] = p.Default
		}
		if p.Format != "" {
			m["format"] = p.Format
		}
		if p.Visibility != "" {
			m["x-ms-visibility"] = p.Visibility
		}
		if p.In == "path" {
			m["x-ms-url-encoding"] = "single"
		}
		if p.Dynamic != nil {
			m["x-ms-dynamic-values"] = p.Dynamic
		}
		params = append(params, m)
	}
	if rt.Body != nil {
		params = append(params, map[string]any{"name": "body", "in": "body", "required": true, "description": rt.BodyDescription,
			"x-ms-summary": "Body", "schema": g.ref(reflect.TypeOf(rt.Body))})
	}
	if params != nil {
		op["parameters"] = params
	}
	responses := map[string]any{}
	for _, r := range rt.Responses {
		m := map[string]any{"description": r.Description}
		if r.Body != nil {
			m["schema"] = g.ref(reflect.TypeOf(r.Body))
		}
		if len(r.Headers) > 0 {
			hs := map[string]any{}
			for _, h := range r.Headers {
				hs[h] = map[string]any{"type": "string", "description": headerDocs[h]}
			}
			m["headers"] = hs
		}
		responses[fmt.Sprint(r.Status)] = m
	}
	for _, p := range commonProblems(rt) {
		responses[fmt.Sprint(p)] = map[string]any{"description": problemDocs[p], "schema": g.ref(reflect.TypeOf(Problem{}))}
	}
	op["responses"] = responses
	if rt.Pageable {
		op["x-ms-pageable"] = map[string]any{"nextLinkName": "nextLink"}
	}
	if rt.Trigger {
		op["x-ms-trigger"] = "single"
		if rt.TriggerHint != "" {
			op["x-ms-trigger-hint"] = rt.TriggerHint
		}
	}
	return op, nil
}

// typeNameOverrides name the definitions of types whose Go names collide across packages.
// The definitions keep the names they had before the connector was split into packages: a flow built on
// the custom connector refers to them.
var typeNameOverrides = map[string]string{
	"mapping.Check": "DecisionCheck", "connectivity.Check": "ConnectivityCheck", "connectivity.Report": "ConnectivityReport",
	"agreements.Diagnosis": "AgreementDiagnosis", "agreements.PartnerCenterView": "AgreementPCView",
}

var headerDocs = map[string]string{
	"Location":    "Where the new or running resource is: poll it (202) or use it to delete the subscription (201).",
	"Retry-After": "Seconds to wait before asking again.",
}

var problemDocs = map[int]string{
	400: "The request is not valid: detail and errors say which field and why.",
	401: "No valid credentials: a Microsoft Entra ID token or an API key is needed.",
	403: "The caller lacks the app role this operation needs.",
	404: "No such row.",
	409: "The row is not in a state that allows this.",
	422: "The Idempotency-Key was used before with a different request.",
	429: "Too many requests from this caller: wait Retry-After seconds.",
	413: "The request body is larger than 64 KiB.",
	500: "The connector failed; detail says what to do.",
	502: "Dataverse or Partner Center failed; try again later.",
	503: "The connector is starting, or cannot reach Microsoft Entra ID's signing keys: try again after Retry-After.",
	504: "The operation took longer than 60 seconds; it may still finish. Read the row before retrying.",
}

// commonProblems are the error statuses every operation of its kind may answer.
func commonProblems(rt apiRoute) []int {
	out := []int{400, 401, 403, 429, 500, 502, 503, 504}
	if strings.Contains(rt.Path, "{") {
		out = append(out, 404)
	}
	if rt.Method == "POST" {
		out = append(out, 409, 413, 422)
	}
	slices.Sort(out)
	return out
}

var (
	timeType = reflect.TypeOf(time.Time{})
	guidType = reflect.TypeOf(dataverse.GUID{})
)

// ref returns the schema of t: a $ref to a definition for structs (added on first use), inline otherwise.
func (g *docGen) ref(t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t != timeType {
		name, ok := g.types[t]
		if !ok {
			name = cmp.Or(typeNameOverrides[t.String()], t.Name())
			for _, other := range g.types {
				if other == name {
					g.fail(fmt.Errorf("two types named %s", name))
				}
			}
			g.types[t] = name
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/definitions/" + name}
	}
	return g.inline(t, reflect.StructField{})
}

func (g *docGen) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// inline is the schema of a non-struct type; f is the field it belongs to (for its tags).
func (g *docGen) inline(t reflect.Type, f reflect.StructField) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	m := map[string]any{}
	switch {
	case t == timeType:
		m["type"], m["format"] = "string", "date-time"
	case t == guidType:
		m["type"], m["format"] = "string", "uuid"
	case t.Implements(reflect.TypeOf((*json.Marshaler)(nil)).Elem()) || t.Implements(reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()) || t.Kind() == reflect.String:
		m["type"] = "string" // enums with their own JSON form are strings
	case t.Kind() == reflect.Bool:
		m["type"] = "boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		m["type"], m["format"] = "integer", "int64"
		if t.Kind() == reflect.Int32 || t.Kind() == reflect.Int {
			m["format"] = "int32"
		}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		m["type"], m["format"] = "number", "double"
	case t.Kind() == reflect.Slice:
		m["type"] = "array"
		m["items"] = g.ref(t.Elem())
	case t.Kind() == reflect.Struct:
		return g.ref(t).(map[string]any)
	default:
		g.fail(fmt.Errorf("type %s of field %s cannot be documented", t, f.Name))
	}
	if e := f.Tag.Get("enum"); e != "" {
		m["enum"] = strings.Split(e, ",")
	}
	return m
}

// object is the schema of a struct: its JSON fields (embedded structs' fields inline), each with its
// description and label.
func (g *docGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if f.Anonymous && name == "" {
				ft := f.Type
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				walk(ft)
				continue
			}
			if name == "" {
				name = f.Name
			}
			desc := f.Tag.Get("desc")
			if desc == "" {
				g.fail(fmt.Errorf("%s.%s has no desc tag", t.Name(), f.Name))
			}
			var p map[string]any
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != timeType && ft != guidType {
				// A $ref cannot carry siblings in OpenAPI 2.0: the label and description live on the definition.
				p = map[string]any{"$ref": g.ref(ft).(map[string]any)["$ref"]}
			} else {
				p = g.inline(f.Type, f)
				p["description"] = desc
				p["x-ms-summary"] = cmp.Or(f.Tag.Get("summary"), label(name))
				if f.Tag.Get("visibility") != "" {
					p["x-ms-visibility"] = f.Tag.Get("visibility")
				}
				if f.Tag.Get("notificationurl") == "true" {
					p["x-ms-notification-url"] = true
				}
				if d := f.Tag.Get("default"); d != "" {
					p["default"] = d
				}
			}
			props[name] = p
			if f.Tag.Get("required") == "true" || (!strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer && f.Tag.Get("required") != "false") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	name := cmp.Or(typeNameOverrides[t.String()], t.Name())
	m := map[string]any{"type": "object", "properties": props, "description": typeDocs[name], "x-ms-summary": label(name)}
	if typeDocs[name] == "" {
		g.fail(fmt.Errorf("type %s has no entry in typeDocs", name))
	}
	if len(required) > 0 {
		slices.Sort(required)
		m["required"] = required
	}
	return m
}

// label turns a JSON or type name into Title Case words: "tenantId" → "Tenant ID", "acceptanceUrl" →
// "Acceptance URL", "LCLState" → "LCL State".
func label(name string) string {
	words := splitWords(name)
	for i, w := range words {
		switch strings.ToLower(w) {
		case "id", "url", "uri", "pc", "lcl", "ms", "mca", "api":
			words[i] = strings.ToUpper(w)
			if strings.EqualFold(w, "ms") {
				words[i] = "Milliseconds"
			}
		default:
			r := []rune(w)
			r[0] = unicode.ToUpper(r[0])
			words[i] = string(r)
		}
	}
	return strings.Join(words, " ")
}

// splitWords splits a camelCase or PascalCase name into words, keeping acronyms whole ("LCLState" →
// LCL, State).
func splitWords(name string) []string {
	r := []rune(name)
	var words []string
	start := 0
	for i := 1; i < len(r); i++ {
		lowerToUpper := unicode.IsUpper(r[i]) && !unicode.IsUpper(r[i-1])
		acronymEnd := unicode.IsUpper(r[i]) && unicode.IsUpper(r[i-1]) && i+1 < len(r) && unicode.IsLower(r[i+1])
		if lowerToUpper || acronymEnd {
			words = append(words, string(r[start:i]))
			start = i
		}
	}
	if start < len(r) {
		words = append(words, string(r[start:]))
	}
	return words
}

// Operations lists the route table as "METHOD path", for holding a served document against it.
func Operations() []string {
	var out []string
	for _, rt := range apiRoutes() {
		out = append(out, rt.Method+" "+rt.Path)
	}
	return out
}
