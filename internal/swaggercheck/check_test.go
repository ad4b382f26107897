package swaggercheck_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/internal/swaggercheck"
)

const definition = "apiDefinition.swagger.json"

// Pointers into the fixture, so the table reads as what is being broken.
const (
	subscribe    = "/paths/~1v1~1subscriptions/post"
	unsubscribe  = "/paths/~1v1~1subscriptions~1{subscriptionId}/delete"
	listProvider = "/paths/~1v1~1providers/get"
	listAccounts = "/paths/~1v1~1accounts~1unmapped/get"
	requestMap   = "/paths/~1v1~1accounts~1{accountId}~1mapping/post"
	callbackURL  = subscribe + "/parameters/0/schema/properties/callbackUrl"
)

func TestCheckAcceptsFixture(t *testing.T) {
	t.Parallel()
	assert.Empty(t, swaggercheck.Check(fixture(t, definition)))
}

func TestCheckIgnoresPlainVendorExtensions(t *testing.T) {
	t.Parallel()
	doc := patched(t, definition, edits(
		set("/x-generator", "csp-connector"),
		set("/info/x-logo", rawValue(`{"url": "https://example.com/logo.png"}`)),
		set(listProvider+"/x-internal-note", "dropdown only"),
		set(listAccounts+"/parameters/0/x-example", "p-1"),
		set("/definitions/Account/x-go-type", "mapping.Account"),
		set("/definitions/Account/properties/id/x-nullable", false),
	))
	assert.Empty(t, swaggercheck.Check(doc))
}

// A mutation breaks the fixture in one way and names a problem the break must produce.
type mutation struct {
	name  string
	patch patch
	want  string
}

// openAPIMutations break the document as OpenAPI 2.0; go-openapi/validate reports them.
func openAPIMutations() []mutation {
	return []mutation{
		{
			"path parameter not in the template",
			set(listProvider+"/parameters", rawValue(`[{"name": "tenant", "in": "path", "required": true, "type": "string",
				"x-ms-summary": "Tenant", "description": "Tenant to list for."}]`)),
			`OpenAPI 2.0: path param "tenant" is not present in path "/v1/providers"`,
		},
		{"dangling ref", set("/definitions/ProviderList/properties/value/items/$ref", "#/definitions/Nope"), "OpenAPI 2.0: could not resolve reference"},
		{"external ref", set("/definitions/ProviderList/properties/value/items/$ref", "common.json#/Provider"), "must be self-contained"},
	}
}

// ruleMutations break the rules of this package; they are tested without the OpenAPI 2.0
// validation (see CheckRules), which would add a tenth of a second to each.
func ruleMutations() []mutation {
	return []mutation{
		// Version and size.
		{"swagger 3.0", set("/swagger", "3.0"), `swagger: is "3.0"; Power Platform imports only Swagger 2.0`},
		{"openapi 3", edits(remove("/swagger"), set("/openapi", "3.0.3")), "openapi: the document declares OpenAPI 3.0.3"},
		{"oversized document", set("/x-padding", strings.Repeat("x", 1_000_000)), "document: is 10"},

		// Extensions allowed where they sit, with allowed values.
		{"bogus x-ms-foo", set(listProvider+"/x-ms-foo", true), "paths./v1/providers.get: x-ms-foo is not an extension Power Platform accepts on an operation"},
		{"x-ms-foo at root", set("/x-ms-foo", "bar"), "document: x-ms-foo is not an extension Power Platform accepts on the document root"},
		{"x-ms-summary on a response", set(listProvider+"/responses/200/x-ms-summary", "Providers"), "x-ms-summary is not an extension Power Platform accepts on a response"},
		{"notification content on an operation", set(listProvider+"/x-ms-notification-content", rawValue(`{"description": "d", "schema": {"type": "object"}}`)), "x-ms-notification-content is not an extension Power Platform accepts on an operation"},
		{"trigger multiple", set(subscribe+"/x-ms-trigger", "multiple"), `x-ms-trigger is "multiple"; it must be one of single, batch`},
		{"visibility bogus", set(listProvider+"/x-ms-visibility", "hidden"), `x-ms-visibility is "hidden"; it must be one of important, advanced, internal`},
		{"notification url not true", set(callbackURL+"/x-ms-notification-url", "yes"), `x-ms-notification-url must be the boolean true, got "yes"`},
		{"pageable without nextLinkName", set(listAccounts+"/x-ms-pageable", rawValue(`{"next": "nextLink"}`)), "x-ms-pageable must have a string nextLinkName"},
		{"pageable not an object", set(listAccounts+"/x-ms-pageable", true), "x-ms-pageable must be an object"},
		{"dynamic values missing operation", set(listAccounts+"/parameters/0/x-ms-dynamic-values/operationId", "ListNothing"), `x-ms-dynamic-values names operationId "ListNothing", which no operation in the document has`},
		{"dynamic values without value-title", remove(listAccounts + "/parameters/0/x-ms-dynamic-values/value-title"), "x-ms-dynamic-values must have a string value-title"},
		{"notification content without schema", remove("/paths/~1v1~1subscriptions/x-ms-notification-content/schema"), "x-ms-notification-content has no schema"},
		{"notification content without description", remove("/paths/~1v1~1subscriptions/x-ms-notification-content/description"), "x-ms-notification-content has no description"},
		{"url encoding bogus", set(requestMap+"/parameters/0/x-ms-url-encoding", "triple"), `x-ms-url-encoding is "triple"; it must be one of single, double`},
		{"url encoding on a query parameter", set(listAccounts+"/parameters/1/x-ms-url-encoding", "double"), "x-ms-url-encoding applies only to path parameters"},

		// Root and info.
		{"title with API", set("/info/title", "CSP Mapping API"), `contains the word "API"`},
		{"title with Connector", set("/info/title", "CSP Connector"), `contains the word "Connector"`},
		{"title with product name", set("/info/title", "CSP for Power Automate"), `contains the product name "Power Automate"`},
		{"title too long", set("/info/title", "Cloud Solution Provider Account Mapping"), "the connector name must be at most 30"},
		{"title ends in punctuation", set("/info/title", "CSP Mapping!"), "must end with a letter or a digit"},
		{"description too short", set("/info/description", "Maps accounts."), "info.description: is 14 characters; the connector description must be 30 to 500"},
		{"produces without json", set("/produces", rawValue(`["application/xml"]`)), "produces: does not include application/json"},
		{"consumes missing", remove("/consumes"), "consumes: is missing"},
		{"operation consumes without json", set(requestMap+"/consumes", rawValue(`["text/plain"]`)), "paths./v1/accounts/{accountId}/mapping.post.consumes: does not include application/json"},
		{"no security definitions", edits(remove("/securityDefinitions"), remove("/security")), "securityDefinitions: is missing"},
		{
			// The test re-encodes with sorted keys, so the basic scheme is named to come first.
			"first security definition basic",
			set("/securityDefinitions/aaa_basic", rawValue(`{"type": "basic"}`)),
			`securityDefinitions.aaa_basic: is the first security definition, the only one Power Platform uses, and is "basic"`,
		},
		{
			"client credentials flow",
			set("/securityDefinitions/oauth2_auth", rawValue(`{"type": "oauth2", "flow": "application",
				"tokenUrl": "https://login.windows.net/common/oauth2/token", "scopes": {}}`)),
			`uses the OAuth 2.0 "application" flow; custom connectors support only accessCode`,
		},

		// Operations.
		{"snake case operationId", set(listProvider+"/operationId", "list_providers"), `paths./v1/providers.get: operationId "list_providers" is not PascalCase`},
		{"camel case operationId", set(requestMap+"/operationId", "requestMapping"), `operationId "requestMapping" is not PascalCase`},
		{"missing operationId", remove(requestMap + "/operationId"), "has no operationId"},
		{"duplicate operationId", set(requestMap+"/operationId", "ListProviders"), `operationId "ListProviders" is also used by paths./v1/accounts/{accountId}/mapping.post`},
		{"missing summary", remove(listProvider + "/summary"), "paths./v1/providers.get: has no summary"},
		{"summary with period", set(listProvider+"/summary", "List providers."), `summary "List providers." ends with a period`},
		{"summary too long", set(listProvider+"/summary", strings.Repeat("List providers ", 6)), "keep it to 80"},
		{"missing description", remove(listProvider + "/description"), "paths./v1/providers.get: has no description"},
		{"description without period", set(listProvider+"/description", "Lists the providers"), `description "Lists the providers" does not end with a period`},
		{"description repeats summary", set(listProvider+"/description", "List providers."), "description repeats the summary"},
		{"two body parameters", set(requestMap+"/parameters/-", rawValue(`{"name": "extra", "in": "body", "x-ms-summary": "Extra",
			"description": "More.", "schema": {"type": "object"}}`)), `has 2 body parameters ("body", "extra")`},

		// Parameters and properties.
		{"parameter without x-ms-summary", remove(listAccounts + "/parameters/1/x-ms-summary"), `paths./v1/accounts/unmapped.get.parameters[1]: parameter "top" has no x-ms-summary`},
		{"parameter without description", remove(listAccounts + "/parameters/1/description"), `parameter "top" has no description`},
		{"parameter summary not title case", set(listAccounts+"/parameters/1/x-ms-summary", "Page size"), `has x-ms-summary "Page size", which is not Title Case ("size")`},
		{"internal required parameter without default", set(listAccounts+"/parameters/1", rawValue(`{"name": "top", "in": "query", "required": true,
			"type": "integer", "x-ms-visibility": "internal", "x-ms-summary": "Page Size", "description": "Page size."}`)), `parameter "top" is required and x-ms-visibility internal but has no default`},
		{"property without description", remove("/definitions/Account/properties/id/description"), "definitions.Account.properties.id: property has no description"},
		{"property without x-ms-summary", remove("/definitions/Account/properties/id/x-ms-summary"), "definitions.Account.properties.id: property has no x-ms-summary"},
		{"nested property without description", remove("/definitions/Error/properties/error/properties/code/description"), "definitions.Error.properties.error.properties.code: property has no description"},
		{"inline body property without summary", remove(subscribe + "/parameters/0/schema/properties/providerId/x-ms-summary"), "paths./v1/subscriptions.post.parameters[0].schema.properties.providerId: property has no x-ms-summary"},
		{"ref property whose definition has no summary", remove("/definitions/Account/x-ms-summary"), "definitions.UnmappedAccountEvent.properties.account: property has no x-ms-summary"},
		{"internal required property without default", remove(subscribe + "/parameters/0/schema/properties/eventType/default"), "property is required and x-ms-visibility internal but has no default"},
		{"allOf", set("/definitions/Account/allOf", rawValue(`[{"$ref": "#/definitions/Provider"}]`)), "definitions.Account: uses allOf"},
		{"oneOf in a property", set("/definitions/Account/properties/id/oneOf", rawValue(`[{"type": "string"}]`)), "definitions.Account.properties.id: uses oneOf"},
		{"discriminator", set("/definitions/Account/discriminator", "id"), "definitions.Account: uses discriminator"},

		// Responses.
		{"root array response", set(listProvider+"/responses/200/schema", rawValue(`{"type": "array", "items": {"$ref": "#/definitions/Provider"}}`)), "paths./v1/providers.get.responses.200: returns a top-level array"},
		{"root array through ref", set("/definitions/ProviderList", rawValue(`{"type": "array", "description": "Providers.", "items": {"$ref": "#/definitions/Provider"}}`)), "paths./v1/providers.get.responses.200: returns a top-level array"},
		{"missing 2xx schema", remove(listProvider + "/responses/200/schema"), "paths./v1/providers.get.responses.200: has no schema"},
		{"no 2xx response", remove(unsubscribe + "/responses/204"), "paths./v1/subscriptions/{subscriptionId}.delete.responses: has no 2xx response"},
		{"only default response", set(listProvider+"/responses", rawValue(`{"default": {"description": "Whatever.", "schema": {"$ref": "#/definitions/ProviderList"}}}`)), "has only a default response"},

		// Paging.
		{"pageable without next link property", set(listAccounts+"/x-ms-pageable/nextLinkName", "@odata.nextLink"), `has no "@odata.nextLink" property`},
		{"pageable without value array", set(listAccounts+"/responses/200/schema", rawValue(`{"$ref": "#/definitions/Subscription"}`)), `has no "value" array property`},

		// Webhook trigger.
		{"trigger without 201", edits(remove(subscribe+"/responses/201"), set(subscribe+"/responses/200", rawValue(`{"description": "OK.", "schema": {"$ref": "#/definitions/Subscription"}}`))), "paths./v1/subscriptions.post.responses: has no 201"},
		{"trigger with visible DELETE", remove(unsubscribe + "/x-ms-visibility"), "unsubscribe operation (paths./v1/subscriptions/{subscriptionId}.delete) is not x-ms-visibility internal"},
		{"trigger without DELETE", remove("/paths/~1v1~1subscriptions~1{subscriptionId}"), "no DELETE operation on /v1/subscriptions/{id}"},
		{"trigger without notification content", remove("/paths/~1v1~1subscriptions/x-ms-notification-content"), "holds the webhook trigger OnUnmappedAccount but has no x-ms-notification-content"},
		{"trigger without callback url", remove(callbackURL + "/x-ms-notification-url"), "its body has no property with x-ms-notification-url: true"},
		{"trigger with visible callback url", remove(callbackURL + "/x-ms-visibility"), `callback URL property "callbackUrl" is not x-ms-visibility internal`},
		{"trigger with two callback urls", set(subscribe+"/parameters/0/schema/properties/eventType/x-ms-notification-url", true), "2 properties marked x-ms-notification-url (callbackUrl, eventType)"},
		{"trigger on GET", set(listProvider+"/x-ms-trigger", "single"), "is a webhook trigger (x-ms-trigger \"single\") but not a POST"},
	}
}

func TestCheckFindsProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range ruleMutations() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			problems := swaggercheck.CheckRules(patched(t, definition, tc.patch))
			assert.Truef(t, hasProblem(problems, tc.want), "want a problem containing %q, got:\n%s", tc.want, strings.Join(problems, "\n"))
		})
	}
}

func TestCheckFindsOpenAPIProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range openAPIMutations() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			problems := swaggercheck.Check(patched(t, definition, tc.patch))
			assert.Truef(t, hasProblem(problems, tc.want), "want a problem containing %q, got:\n%s", tc.want, strings.Join(problems, "\n"))
		})
	}
}

// TestCheckRunsTheRules samples the mutations through Check itself, to show that it reports
// the hand-written rules' problems alongside the OpenAPI 2.0 ones.
func TestCheckRunsTheRules(t *testing.T) {
	t.Parallel()
	sample := map[string]bool{"bogus x-ms-foo": true, "root array response": true, "trigger without 201": true}
	for _, tc := range ruleMutations() {
		if !sample[tc.name] {
			continue
		}
		delete(sample, tc.name)
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			problems := swaggercheck.Check(patched(t, definition, tc.patch))
			assert.Truef(t, hasProblem(problems, tc.want), "want a problem containing %q, got:\n%s", tc.want, strings.Join(problems, "\n"))
		})
	}
	assert.Empty(t, sample, "sampled mutations missing from the table")
}

func TestCheckRejectsNonJSON(t *testing.T) {
	t.Parallel()
	problems := swaggercheck.Check([]byte("swagger: '2.0'\n"))
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0], "document: is not a JSON object")
}

func TestCheckIsDeterministic(t *testing.T) {
	t.Parallel()
	doc := patched(t, definition, edits(
		set(listProvider+"/operationId", "list_providers"),
		remove("/definitions/Account/properties/id/description"),
		remove("/definitions/Provider/properties/name/x-ms-summary"),
		set("/x-ms-foo", true),
	))
	first := swaggercheck.CheckRules(doc)
	require.NotEmpty(t, first)
	assert.IsNonDecreasing(t, first, "problems come sorted by location")
	for range 3 {
		assert.Equal(t, first, swaggercheck.CheckRules(doc))
	}
}
