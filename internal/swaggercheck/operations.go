package swaggercheck

import (
	"fmt"
	"strings"
)

// methods are the operation keys of a Swagger 2.0 path item, in the order problems list them.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch"}

// An operation is one method on one path, with the path item it sits in.
type operation struct {
	path   string
	method string
	item   map[string]any
	node   map[string]any
}

// loc names the operation the way problems do: `paths./v1/jobs.get`.
func (op operation) loc() string {
	return field(field("paths", op.path), op.method)
}

// id returns the operation's operationId, or its location when it has none.
func (op operation) id() string {
	if id, ok := text(op.node["operationId"]); ok && id != "" {
		return id
	}
	return op.loc()
}

// operations lists every operation of the document, by path and then by method.
func operations(root map[string]any) []operation {
	var ops []operation
	paths := object(root["paths"])
	for _, path := range sortedKeys(paths) {
		item := object(paths[path])
		for _, method := range methods {
			if node := object(item[method]); node != nil {
				ops = append(ops, operation{path: path, method: method, item: item, node: node})
			}
		}
	}
	return ops
}

// checkPaths applies the path item and operation rules.
func (c *checker) checkPaths(ops []operation) {
	paths := object(c.root["paths"])
	c.checkExtensions("paths", atOther, paths)
	for _, path := range sortedKeys(paths) {
		if strings.HasPrefix(path, "x-") {
			continue
		}
		loc := field("paths", path)
		item := object(paths[path])
		c.checkExtensions(loc, atPathItem, item)
		for i, p := range asArray(item["parameters"]) {
			c.checkParameter(element(field(loc, "parameters"), i), object(p))
		}
	}

	usedBy := make(map[string]string, len(ops))
	for _, op := range ops {
		c.checkOperation(op, usedBy)
		if trigger, _ := text(op.node["x-ms-trigger"]); trigger == "single" {
			c.checkWebhookTrigger(op, ops)
		}
	}
}

// checkOperation applies the certification rules to one operation. usedBy maps each
// operationId seen so far to the operation that has it.
func (c *checker) checkOperation(op operation, usedBy map[string]string) {
	loc := op.loc()
	c.checkExtensions(loc, atOperation, op.node)

	id, _ := text(op.node["operationId"])
	switch {
	case id == "":
		c.report(loc, "has no operationId; Power Platform names actions and triggers by it")
	case !pascalCase.MatchString(id):
		c.report(loc, "operationId %q is not PascalCase (like GetUnmappedAccounts: a capital first, letters and digits only)", id)
	}
	if id != "" {
		if other, dup := usedBy[id]; dup {
			c.report(loc, "operationId %q is also used by %s; operationIds must be unique", id, other)
		} else {
			usedBy[id] = loc
		}
	}

	summary, _ := text(op.node["summary"])
	summary = strings.TrimSpace(summary)
	if summary == "" {
		c.report(loc, "has no summary; it is the action's name in the designer")
	} else {
		if n := len([]rune(summary)); n > 80 {
			c.report(loc, "summary %q is %d characters; keep it to 80", summary, n)
		}
		if strings.HasSuffix(summary, ".") {
			c.report(loc, "summary %q ends with a period; it is a name, not a sentence", summary)
		}
	}
	description, _ := text(op.node["description"])
	description = strings.TrimSpace(description)
	if description == "" {
		c.report(loc, "has no description; the designer shows it as the action's tooltip")
	} else {
		if !strings.HasSuffix(description, ".") {
			c.report(loc, "description %q does not end with a period", description)
		}
		if summary != "" && sameWording(summary, description) {
			c.report(loc, "description repeats the summary %q; it should say more", summary)
		}
	}

	for _, key := range []string{"consumes", "produces"} {
		if list, ok := op.node[key]; ok {
			c.checkMediaTypes(field(loc, key), list)
		}
	}

	for i, p := range asArray(op.node["parameters"]) {
		c.checkParameter(element(field(loc, "parameters"), i), object(p))
	}
	var bodies []string
	for _, p := range c.parameters(op) {
		if in, _ := text(p["in"]); in == "body" {
			name, _ := text(p["name"])
			bodies = append(bodies, fmt.Sprintf("%q", name))
		}
	}
	if len(bodies) > 1 {
		c.report(loc, "has %d body parameters (%s); an operation takes at most one", len(bodies), strings.Join(bodies, ", "))
	}

	c.checkResponses(op)
	if _, ok := op.node["x-ms-pageable"]; ok {
		c.checkPageable(op)
	}
}

// parameters returns the parameters that apply to op, resolved through $ref: those of its path
// item, overridden by its own with the same name and location.
func (c *checker) parameters(op operation) []map[string]any {
	type key struct{ name, in string }
	var order []key
	byKey := map[key]map[string]any{}
	for _, list := range []any{op.item["parameters"], op.node["parameters"]} {
		for _, p := range asArray(list) {
			param := deref(c.root, object(p))
			if param == nil {
				continue
			}
			name, _ := text(param["name"])
			in, _ := text(param["in"])
			k := key{name, in}
			if _, seen := byKey[k]; !seen {
				order = append(order, k)
			}
			byKey[k] = param
		}
	}
	params := make([]map[string]any, 0, len(order))
	for _, k := range order {
		params = append(params, byKey[k])
	}
	return params
}

// checkParameter applies the labelling rules to a parameter defined at loc. A parameter that is
// a $ref is checked where it is defined, under the root's parameters.
func (c *checker) checkParameter(loc string, p map[string]any) {
	if p == nil {
		return
	}
	if _, isRef := p["$ref"]; isRef {
		return
	}
	name, _ := text(p["name"])
	in, _ := text(p["in"])
	what := fmt.Sprintf("parameter %q", name)

	c.checkExtensions(loc, atParameter, p)
	if _, ok := p["x-ms-url-encoding"]; ok && in != "path" {
		c.report(loc, "%s is in %s, but x-ms-url-encoding applies only to path parameters", what, in)
	}
	if !nonEmptyText(p["description"]) {
		c.report(loc, "%s has no description", what)
	}
	c.checkSummaryLabel(loc, what, p["x-ms-summary"])
	if in != "body" && p["required"] == true && isInternal(p) && p["default"] == nil {
		c.report(loc, "%s is required and x-ms-visibility internal but has no default, so nobody could supply it", what)
	}
	c.checkExtensions(field(loc, "items"), atOther, object(p["items"]))
	if in == "body" {
		c.checkSchema(field(loc, "schema"), object(p["schema"]))
	}
}

// checkSummaryLabel checks the x-ms-summary display label of a parameter or property.
func (c *checker) checkSummaryLabel(loc, what string, summary any) {
	label, ok := text(summary)
	if !ok || strings.TrimSpace(label) == "" {
		c.report(loc, "%s has no x-ms-summary", what)
		return
	}
	if word := titleCaseProblem(label); word != "" {
		c.report(loc, "%s has x-ms-summary %q, which is not Title Case (%q)", what, label, word)
	}
}

// isInternal reports whether a parameter or property is hidden from makers.
func isInternal(node map[string]any) bool {
	v, _ := text(node["x-ms-visibility"])
	return v == "internal"
}

// isSuccess reports whether a response key is a 2xx status code.
func isSuccess(code string) bool {
	return len(code) == 3 && code[0] == '2' && code[1] >= '0' && code[1] <= '9' && code[2] >= '0' && code[2] <= '9'
}

// checkResponses applies the rules on an operation's responses: an explicit 2xx, a body schema
// for 200 and 201, and never a top-level array.
func (c *checker) checkResponses(op operation) {
	loc := field(op.loc(), "responses")
	responses := object(op.node["responses"])
	if len(responses) == 0 {
		c.report(op.loc(), "has no responses")
		return
	}
	c.checkExtensions(loc, atOther, responses)

	var success, others bool
	for _, code := range sortedKeys(responses) {
		if strings.HasPrefix(code, "x-") {
			continue
		}
		rloc := field(loc, code)
		r := object(responses[code])
		c.checkResponseObject(rloc, r)
		if code != "default" {
			others = true
		}
		if !isSuccess(code) {
			continue
		}
		success = true
		resolved := deref(c.root, r)
		schema := object(resolved["schema"])
		if schema == nil {
			if code == "200" || code == "201" {
				c.report(rloc, "has no schema; a %s response must describe its body so flows can use the result", code)
			}
			continue
		}
		if typeIs(deref(c.root, schema), "array") {
			c.report(rloc, "returns a top-level array; wrap it in an object such as {\"value\": [...]} because flows cannot use root arrays")
		}
	}
	if !others {
		c.report(loc, "has only a default response; declare the 2xx response explicitly")
	}
	if !success {
		c.report(loc, "has no 2xx response")
	}
}

// checkResponseObject checks a response defined at loc. A response that is a $ref is checked
// where it is defined, under the root's responses.
func (c *checker) checkResponseObject(loc string, r map[string]any) {
	if r == nil {
		return
	}
	if _, isRef := r["$ref"]; isRef {
		return
	}
	c.checkExtensions(loc, atResponse, r)
	c.checkSchema(field(loc, "schema"), object(r["schema"]))
	headers := object(r["headers"])
	for _, name := range sortedKeys(headers) {
		c.checkExtensions(field(field(loc, "headers"), name), atOther, object(headers[name]))
	}
}

// successSchema returns the resolved body schema of op's success response: the 200 one if it
// has a schema, else the first 2xx that does.
func (c *checker) successSchema(op operation) map[string]any {
	responses := object(op.node["responses"])
	codes := sortedKeys(responses)
	for _, code := range append([]string{"200"}, codes...) {
		if !isSuccess(code) {
			continue
		}
		r := deref(c.root, object(responses[code]))
		if schema := deref(c.root, object(r["schema"])); schema != nil {
			return schema
		}
	}
	return nil
}

// checkPageable checks that an x-ms-pageable operation returns what flows page through:
// an object with the items in "value" and the next page's URL in nextLinkName.
func (c *checker) checkPageable(op operation) {
	loc := op.loc()
	next, _ := text(object(op.node["x-ms-pageable"])["nextLinkName"])
	if strings.TrimSpace(next) == "" {
		return // the extension check reported it
	}
	schema := c.successSchema(op)
	if schema == nil {
		c.report(loc, "is x-ms-pageable but has no 2xx response schema to page through")
		return
	}
	props := object(schema["properties"])
	if _, ok := props[next]; !ok {
		c.report(loc, "is x-ms-pageable with nextLinkName %q, but its response schema has no %q property", next, next)
	}
	if value := deref(c.root, object(props["value"])); !typeIs(value, "array") {
		c.report(loc, "is x-ms-pageable, but its response schema has no \"value\" array property holding the page's items")
	}
}
