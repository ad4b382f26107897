// Package swaggercheck is the offline gate for the Power Automate custom connector: it tells,
// without calling Microsoft, whether an apiDefinition.swagger.json and its apiProperties.json
// would import and pass the certification rules we hold ourselves to.
//
// Microsoft's own validators are remote services with unpublished rules, so the gate combines
// three things: the OpenAPI 2.0 validation of github.com/go-openapi/validate, our Go encoding of
// which x-ms-* extensions Power Platform accepts where (and with which values), and hand-written
// rules from the connector certification checklist and our API conventions. Each problem is a
// sentence that starts with the JSON location it is about, so a failing test reads as a to-do
// list.
package swaggercheck

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// maxDocumentBytes is the import limit for a definition ("under 1 MB"), taken as decimal
// megabytes so that a file near the limit fails here rather than at import.
const maxDocumentBytes = 1_000_000

// checker carries one run of the rules over one document.
type checker struct {
	problemList
	root map[string]any
	raw  map[string]json.RawMessage

	// operationIDs holds every operationId in the document, for x-ms-dynamic-* references.
	operationIDs map[string]bool
}

// problemList collects the problems of one run, each a sentence led by its JSON location.
type problemList struct {
	problems []string
}

// report records a problem found at loc.
func (p *problemList) report(loc, format string, args ...any) {
	p.problems = append(p.problems, loc+": "+fmt.Sprintf(format, args...))
}

// sorted returns the problems ordered by location, each once, or nil when there are none.
// The order is stable whatever order the rules and go-openapi found them in, and it puts
// everything about one place in the document together.
func (p *problemList) sorted() []string {
	slices.Sort(p.problems)
	return slices.Compact(p.problems)
}

// Check validates a Swagger 2.0 custom connector definition and returns every problem found (nil when none),
// each a plain sentence naming the JSON location, e.g. `paths./api/v1/jobs.get: operationId "list_jobs" is not PascalCase`.
func Check(doc []byte) []string {
	return check(doc, true)
}

// check runs the rules on doc. Leaving out the OpenAPI 2.0 validation, which costs about half
// a second per document (go-openapi expands its meta-schema every time), lets the tests of the
// hand-written rules run by the dozen; everything else is the same.
func check(doc []byte, withOpenAPI bool) []string {
	c := &checker{}
	if len(doc) >= maxDocumentBytes {
		c.report("document", "is %d bytes; Power Platform imports definitions under 1 MB (%d bytes)", len(doc), maxDocumentBytes)
	}
	if json.Unmarshal(doc, &c.root) != nil || c.root == nil || json.Unmarshal(doc, &c.raw) != nil {
		c.report("document", "is not a JSON object, so it is no Swagger 2.0 definition")
		return c.sorted()
	}
	if !c.checkVersion() {
		// An OpenAPI 3 document fails every rule below for the same reason; one problem says it.
		return c.sorted()
	}
	if withOpenAPI {
		c.problems = append(c.problems, openAPIProblems(doc, c.root)...)
	}

	ops := operations(c.root)
	c.operationIDs = make(map[string]bool, len(ops))
	for _, op := range ops {
		if id, ok := text(op.node["operationId"]); ok {
			c.operationIDs[id] = true
		}
	}

	c.checkRoot()
	c.checkInfo()
	c.checkSecurityDefinitions()
	c.checkPaths(ops)
	c.checkSharedComponents()
	return c.sorted()
}

// checkVersion reports a document that is not Swagger 2.0 and tells whether checking should go on.
func (c *checker) checkVersion() bool {
	if v, ok := c.root["openapi"]; ok {
		c.report("openapi", "the document declares OpenAPI %v; Power Platform imports only Swagger 2.0 (\"swagger\": \"2.0\")", v)
		return false
	}
	v, ok := text(c.root["swagger"])
	if !ok {
		c.report("swagger", "is missing; Power Platform imports only Swagger 2.0 (\"swagger\": \"2.0\")")
		return false
	}
	if v != "2.0" {
		c.report("swagger", "is %q; Power Platform imports only Swagger 2.0 (\"swagger\": \"2.0\")", v)
		return false
	}
	return true
}

// checkRoot applies the rules about the top-level object: its extensions and media types.
func (c *checker) checkRoot() {
	c.checkExtensions("", atRoot, c.root)
	for _, key := range []string{"consumes", "produces"} {
		if _, ok := c.root[key]; !ok {
			c.report(key, "is missing; declare application/json so Power Platform sends and parses JSON")
			continue
		}
		c.checkMediaTypes(key, c.root[key])
	}
	for i, tag := range asArray(c.root["tags"]) {
		loc := element("tags", i)
		c.checkExtensions(loc, atOther, object(tag))
		c.checkExtensions(field(loc, "externalDocs"), atOther, object(object(tag)["externalDocs"]))
	}
	c.checkExtensions("externalDocs", atOther, object(c.root["externalDocs"]))
}

// checkMediaTypes reports a consumes/produces list without application/json.
func (c *checker) checkMediaTypes(loc string, list any) {
	for _, v := range asArray(list) {
		if s, ok := text(v); ok && strings.EqualFold(strings.TrimSpace(strings.Split(s, ";")[0]), "application/json") {
			return
		}
	}
	c.report(loc, "does not include application/json")
}

// checkInfo applies the certification rules on the connector's name and description.
func (c *checker) checkInfo() {
	info := object(c.root["info"])
	if info == nil {
		c.report("info", "is missing")
		return
	}
	c.checkExtensions("info", atInfo, info)
	c.checkExtensions("info.contact", atOther, object(info["contact"]))
	c.checkExtensions("info.license", atOther, object(info["license"]))

	title, _ := text(info["title"])
	title = strings.TrimSpace(title)
	switch {
	case title == "":
		c.report("info.title", "is missing; it is the connector's name")
	default:
		if n := len([]rune(title)); n > 30 {
			c.report("info.title", "%q is %d characters; the connector name must be at most 30", title, n)
		}
		for _, w := range words(title) {
			if strings.EqualFold(w, "API") || strings.EqualFold(w, "Connector") {
				c.report("info.title", "%q contains the word %q, which certification forbids in a connector name", title, w)
			}
		}
		for _, product := range productNames {
			if strings.Contains(strings.ToLower(title), strings.ToLower(product)) {
				c.report("info.title", "%q contains the product name %q, which certification forbids in a connector name", title, product)
			}
		}
		if !endsAlphanumeric(title) {
			c.report("info.title", "%q must end with a letter or a digit", title)
		}
	}

	desc, _ := text(info["description"])
	if n := len([]rune(strings.TrimSpace(desc))); n < 30 || n > 500 {
		c.report("info.description", "is %d characters; the connector description must be 30 to 500", n)
	}
}

// productNames are Power Platform product names a connector's title must not use.
var productNames = []string{"Power Automate", "Power Apps", "PowerApps", "Power Platform", "Power BI", "Power Pages", "Copilot Studio", "Logic Apps"}

// checkSecurityDefinitions applies the rules on authentication. Power Platform reads only the
// first security definition, and cannot create a connector from client-credentials flows.
func (c *checker) checkSecurityDefinitions() {
	defs := object(c.root["securityDefinitions"])
	if len(defs) == 0 {
		c.report("securityDefinitions", "is missing; declare oauth2 (accessCode) or apiKey so the connector can authenticate")
		return
	}
	for _, name := range sortedKeys(defs) {
		loc := field("securityDefinitions", name)
		def := object(defs[name])
		c.checkExtensions(loc, atOther, def)
		if typ, _ := text(def["type"]); typ == "oauth2" {
			if flow, _ := text(def["flow"]); flow != "accessCode" {
				c.report(loc, "uses the OAuth 2.0 %q flow; custom connectors support only accessCode", flow)
			}
		}
	}
	order, err := keysInOrder(c.raw["securityDefinitions"])
	if err != nil || len(order) == 0 {
		return
	}
	first := object(defs[order[0]])
	typ, _ := text(first["type"])
	flow, _ := text(first["flow"])
	if !(typ == "apiKey" || typ == "oauth2" && flow == "accessCode") {
		c.report(field("securityDefinitions", order[0]),
			"is the first security definition, the only one Power Platform uses, and is %q; it must be oauth2 (accessCode) or apiKey", typ)
	}
}

// checkSharedComponents checks the reusable parameters, responses and schemas under the root,
// which operations reach through $ref and so are checked once, here.
func (c *checker) checkSharedComponents() {
	params := object(c.root["parameters"])
	for _, name := range sortedKeys(params) {
		c.checkParameter(field("parameters", name), object(params[name]))
	}
	responses := object(c.root["responses"])
	for _, name := range sortedKeys(responses) {
		c.checkResponseObject(field("responses", name), object(responses[name]))
	}
	defs := object(c.root["definitions"])
	for _, name := range sortedKeys(defs) {
		c.checkSchema(field("definitions", name), object(defs[name]))
	}
}
