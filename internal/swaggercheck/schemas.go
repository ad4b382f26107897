package swaggercheck

// compositionKeywords make a schema the designer cannot render as a flat list of fields. Swagger
// 2.0 has allOf and discriminator; oneOf and anyOf creep in from OpenAPI 3 habits.
var compositionKeywords = []string{"allOf", "anyOf", "oneOf", "discriminator"}

// checkSchema applies the schema rules to the schema at loc and everything nested in it. A
// schema that is a $ref is checked where it is defined, under the root's definitions, so each
// definition is checked once however many places use it.
func (c *checker) checkSchema(loc string, s map[string]any) {
	if s == nil {
		return
	}
	c.checkExtensions(loc, atSchema, s)
	if _, isRef := s["$ref"]; isRef {
		return
	}
	for _, key := range compositionKeywords {
		if _, ok := s[key]; ok {
			c.report(loc, "uses %s; Power Platform needs flat schemas without composition", key)
		}
	}

	required := map[string]bool{}
	for _, name := range asArray(s["required"]) {
		if name, ok := text(name); ok {
			required[name] = true
		}
	}
	props := object(s["properties"])
	for _, name := range sortedKeys(props) {
		ploc := field(field(loc, "properties"), name)
		p := object(props[name])
		if p == nil {
			continue
		}
		c.checkPropertyLabels(ploc, p)
		// The platform itself fills the callback URL, so that one needs no default.
		_, isCallback := p["x-ms-notification-url"]
		if required[name] && isInternal(p) && p["default"] == nil && !isCallback {
			c.report(ploc, "property is required and x-ms-visibility internal but has no default, so nobody could supply it")
		}
		c.checkSchema(ploc, p)
	}

	switch items := s["items"].(type) {
	case map[string]any:
		c.checkSchema(field(loc, "items"), items)
	case []any:
		for i, item := range items {
			c.checkSchema(element(field(loc, "items"), i), object(item))
		}
	}
	c.checkSchema(field(loc, "additionalProperties"), object(s["additionalProperties"]))
}

// checkPropertyLabels checks that a property carries the description and x-ms-summary the
// designer shows. A property that is a $ref may take them from the definition it points to.
func (c *checker) checkPropertyLabels(loc string, p map[string]any) {
	target := p
	if _, isRef := p["$ref"]; isRef {
		if t := deref(c.root, p); t != nil {
			target = t
		}
	}
	if !nonEmptyText(p["description"]) && !nonEmptyText(target["description"]) {
		c.report(loc, "property has no description")
	}
	summary := p["x-ms-summary"]
	if summary == nil {
		summary = target["x-ms-summary"]
	}
	c.checkSummaryLabel(loc, "property", summary)
}
