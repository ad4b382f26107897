package swaggercheck

import (
	"fmt"
	"slices"
	"strings"
)

// A place is the kind of object an x-ms-* extension sits on. Power Platform accepts each
// extension only on some kinds of object and rejects any other x-ms-* key outright; plain
// vendor keys (x-foo) are free everywhere.
type place int

const (
	atRoot place = iota
	atInfo
	atPathItem
	atOperation
	atParameter
	atSchema
	atResponse
	atOther // contact, license, tags, headers, security definitions, the paths and responses maps
)

func (p place) String() string {
	switch p {
	case atRoot:
		return "the document root"
	case atInfo:
		return "info"
	case atPathItem:
		return "a path item"
	case atOperation:
		return "an operation"
	case atParameter:
		return "a parameter"
	case atSchema:
		return "a schema or property"
	case atResponse:
		return "a response"
	default:
		return "this object"
	}
}

// allowedExtensions is our reading of which x-ms-* keys the Power Platform definition schema
// and the openapi-extensions page accept on each kind of object. Anything else under x-ms- is
// rejected at import. Extensions newer than that schema (x-ms-openai-data, x-ms-editor, ...) are
// deliberately absent: the gate errs towards what is known to import.
var allowedExtensions = map[place][]string{
	atRoot:      {"x-ms-capabilities", "x-ms-connector-metadata"},
	atInfo:      {"x-ms-api-annotation", "x-ms-deployment-version"},
	atPathItem:  {"x-ms-notification-content"},
	atOperation: {"x-ms-api-annotation", "x-ms-capabilities", "x-ms-no-generic-test", "x-ms-pageable", "x-ms-trigger", "x-ms-trigger-hint", "x-ms-visibility"},
	atParameter: {"x-ms-dynamic-list", "x-ms-dynamic-values", "x-ms-notification-url", "x-ms-summary", "x-ms-test-value", "x-ms-url-encoding", "x-ms-visibility"},
	atSchema: {
		"x-ms-dynamic-list", "x-ms-dynamic-properties", "x-ms-dynamic-schema", "x-ms-dynamic-values", "x-ms-enum-values",
		"x-ms-notification-url", "x-ms-summary", "x-ms-test-value", "x-ms-visibility",
	},
}

// checkExtensions reports x-ms-* keys of obj that are not accepted where obj sits, and checks
// the value of those that are.
func (c *checker) checkExtensions(loc string, at place, obj map[string]any) {
	for _, key := range sortedKeys(obj) {
		if !strings.HasPrefix(key, "x-ms-") {
			continue
		}
		if !slices.Contains(allowedExtensions[at], key) {
			c.report(orDocument(loc), "%s is not an extension Power Platform accepts on %s", key, at)
			continue
		}
		c.checkExtensionValue(orDocument(loc), key, obj[key])
	}
}

// orDocument names the root object, whose location is otherwise empty.
func orDocument(loc string) string {
	if loc == "" {
		return "document"
	}
	return loc
}

// checkExtensionValue checks the shape of one accepted extension found on the object at loc.
func (c *checker) checkExtensionValue(loc, key string, v any) {
	switch key {
	case "x-ms-visibility":
		c.checkEnum(loc, key, v, "important", "advanced", "internal")
	case "x-ms-trigger":
		c.checkEnum(loc, key, v, "single", "batch")
	case "x-ms-url-encoding":
		c.checkEnum(loc, key, v, "single", "double")
	case "x-ms-summary", "x-ms-trigger-hint", "x-ms-deployment-version":
		if !nonEmptyText(v) {
			c.report(loc, "%s must be a non-empty string", key)
		}
	case "x-ms-notification-url":
		if v != true {
			c.report(loc, "x-ms-notification-url must be the boolean true, got %s", describe(v))
		}
	case "x-ms-no-generic-test":
		if _, ok := v.(bool); !ok {
			c.report(loc, "x-ms-no-generic-test must be a boolean, got %s", describe(v))
		}
	case "x-ms-pageable":
		c.checkPageableValue(loc, v)
	case "x-ms-dynamic-values":
		c.checkDynamicValues(loc, v)
	case "x-ms-dynamic-list", "x-ms-dynamic-schema", "x-ms-dynamic-properties":
		c.checkDynamicCall(loc, key, v)
	case "x-ms-notification-content":
		c.checkNotificationContent(loc, v)
	case "x-ms-api-annotation":
		ann := object(v)
		if ann == nil {
			c.report(loc, "x-ms-api-annotation must be an object, got %s", describe(v))
			return
		}
		if status, ok := ann["status"]; ok {
			c.checkEnum(loc, "x-ms-api-annotation.status", status, "Preview", "Production")
		}
	case "x-ms-connector-metadata":
		c.checkConnectorMetadata(loc, v)
	case "x-ms-capabilities":
		if object(v) == nil {
			c.report(loc, "x-ms-capabilities must be an object, got %s", describe(v))
		}
	case "x-ms-enum-values":
		for i, item := range asArray(v) {
			entry := object(item)
			if _, hasValue := entry["value"]; !hasValue || !nonEmptyText(entry["displayName"]) {
				c.report(loc, "x-ms-enum-values[%d] must have a value and a displayName", i)
			}
		}
		if asArray(v) == nil {
			c.report(loc, "x-ms-enum-values must be an array, got %s", describe(v))
		}
	}
}

// checkEnum reports v unless it is one of the allowed strings.
func (c *checker) checkEnum(loc, key string, v any, allowed ...string) {
	if s, ok := text(v); ok && slices.Contains(allowed, s) {
		return
	}
	c.report(loc, "%s is %s; it must be one of %s", key, describe(v), strings.Join(allowed, ", "))
}

// checkPageableValue checks `{"nextLinkName": "nextLink"}`; what the response must then hold is
// checkPageable's business.
func (c *checker) checkPageableValue(loc string, v any) {
	pageable := object(v)
	if pageable == nil {
		c.report(loc, "x-ms-pageable must be an object with a nextLinkName, got %s", describe(v))
		return
	}
	if !nonEmptyText(pageable["nextLinkName"]) {
		c.report(loc, "x-ms-pageable must have a string nextLinkName naming the response property with the next page's URL")
	}
	for _, key := range sortedKeys(pageable) {
		if key != "nextLinkName" {
			c.report(loc, "x-ms-pageable has %q; only nextLinkName is allowed", key)
		}
	}
}

// checkDynamicValues checks a dropdown filled from another operation of this connector.
func (c *checker) checkDynamicValues(loc string, v any) {
	dyn := object(v)
	if dyn == nil {
		c.report(loc, "x-ms-dynamic-values must be an object, got %s", describe(v))
		return
	}
	_, builtIn := dyn["builtInOperation"]
	_, capability := dyn["capability"]
	if !builtIn && !capability {
		c.checkOperationReference(loc, "x-ms-dynamic-values", dyn["operationId"])
	}
	// value-collection is optional in the extension's own terms (the response is then the
	// array), but responses are never root arrays here, so the list always needs its path.
	for _, key := range []string{"value-collection", "value-path", "value-title"} {
		if !nonEmptyText(dyn[key]) {
			c.report(loc, "x-ms-dynamic-values must have a string %s", key)
		}
	}
	if params, ok := dyn["parameters"]; ok && object(params) == nil {
		c.report(loc, "x-ms-dynamic-values.parameters must be an object, got %s", describe(params))
	}
}

// checkDynamicCall checks the other extensions that call an operation at design time.
func (c *checker) checkDynamicCall(loc, key string, v any) {
	dyn := object(v)
	if dyn == nil {
		c.report(loc, "%s must be an object, got %s", key, describe(v))
		return
	}
	c.checkOperationReference(loc, key, dyn["operationId"])
	if params, ok := dyn["parameters"]; ok && object(params) == nil {
		c.report(loc, "%s.parameters must be an object, got %s", key, describe(params))
	}
}

// checkOperationReference reports an operationId that no operation in the document has.
func (c *checker) checkOperationReference(loc, key string, v any) {
	id, ok := text(v)
	switch {
	case !ok || id == "":
		c.report(loc, "%s must name the operationId it calls", key)
	case !c.operationIDs[id]:
		c.report(loc, "%s names operationId %q, which no operation in the document has", key, id)
	}
}

// checkNotificationContent checks the description of the events a webhook trigger delivers.
func (c *checker) checkNotificationContent(loc string, v any) {
	content := object(v)
	if content == nil {
		c.report(loc, "x-ms-notification-content must be an object with a description and a schema, got %s", describe(v))
		return
	}
	if !nonEmptyText(content["description"]) {
		c.report(loc, "x-ms-notification-content has no description")
	}
	schema := object(content["schema"])
	if schema == nil {
		c.report(loc, "x-ms-notification-content has no schema for the event payload")
		return
	}
	schemaLoc := field(field(loc, "x-ms-notification-content"), "schema")
	c.checkSchema(schemaLoc, schema)
	if typeIs(deref(c.root, schema), "array") {
		c.report(schemaLoc, "is a top-level array; a single-event trigger receives one object per event")
	}
}

// checkConnectorMetadata checks the `[{propertyName, propertyValue}]` list certification reads
// the website, privacy policy and categories from.
func (c *checker) checkConnectorMetadata(loc string, v any) {
	list, ok := v.([]any)
	if !ok {
		c.report(loc, "x-ms-connector-metadata must be an array of {propertyName, propertyValue}, got %s", describe(v))
		return
	}
	for i, item := range list {
		entry := object(item)
		if !nonEmptyText(entry["propertyName"]) || !nonEmptyText(entry["propertyValue"]) {
			c.report(loc, "x-ms-connector-metadata[%d] must have string propertyName and propertyValue", i)
		}
	}
}

// describe renders a JSON value for a problem sentence.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", v)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprint(v)
	}
}

// typeIs reports whether schema declares the given JSON type.
func typeIs(schema map[string]any, typ string) bool {
	s, _ := text(schema["type"])
	return s == typ
}
