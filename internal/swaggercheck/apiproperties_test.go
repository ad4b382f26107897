package swaggercheck_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cspconnector/csp-connector/internal/swaggercheck"
)

const properties = "apiProperties.json"

// Pointers into the apiProperties fixture.
const (
	entraSet  = "/properties/connectionParameterSets/values/0"
	entraAuth = entraSet + "/parameters/token/oAuthSettings"
	keySet    = "/properties/connectionParameterSets/values/1"
)

func TestCheckAPIPropertiesAcceptsFixture(t *testing.T) {
	t.Parallel()
	assert.Empty(t, swaggercheck.CheckAPIProperties(fixture(t, properties), fixture(t, definition)))
}

func TestCheckAPIPropertiesAcceptsSingleConnectionParameters(t *testing.T) {
	t.Parallel()
	props := patched(t, properties, edits(
		remove("/properties/connectionParameterSets"),
		set("/properties/connectionParameters", rawValue(`{"api_key": {"type": "securestring",
			"uiDefinition": {"displayName": "API Key", "description": "Key issued by the mapping service."}}}`)),
	))
	doc := patched(t, definition, remove("/securityDefinitions/oauth2_auth"))
	assert.Empty(t, swaggercheck.CheckAPIProperties(props, doc))
}

func TestCheckAPIPropertiesFindsProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		props patch
		doc   patch
		want  string
	}{
		{"unknown key", set("/properties/scriptOperations", rawValue(`["getCall"]`)), nil, `properties: "scriptOperations" is not an apiProperties key`},
		{"key outside properties", set("/iconBrandColor", "#da3b01"), nil, `apiProperties: has "iconBrandColor" at the top level`},
		{"bad brand colour", set("/properties/iconBrandColor", "orange"), nil, `properties.iconBrandColor: is "orange"; it must be a colour written "#rrggbb"`},
		{"short brand colour", set("/properties/iconBrandColor", "#fff"), nil, `it must be a colour written "#rrggbb"`},
		{"default brand colour", set("/properties/iconBrandColor", "#007EE5"), nil, `is "#007EE5", a default colour certification rejects`},
		{"white brand colour", set("/properties/iconBrandColor", "#ffffff"), nil, "a default colour certification rejects"},
		{"missing brand colour", remove("/properties/iconBrandColor"), nil, "properties.iconBrandColor: is missing"},
		{"no connection parameters", remove("/properties/connectionParameterSets"), nil, "has neither connectionParameters nor connectionParameterSets"},
		{"empty connection parameters", edits(remove("/properties/connectionParameterSets"), set("/properties/connectionParameters", rawValue(`{}`))), nil, "properties.connectionParameters: is empty"},
		{"both forms", set("/properties/connectionParameters", rawValue(`{"api_key": {"type": "securestring", "uiDefinition": {"displayName": "API Key"}}}`)), nil, "has both connectionParameters and connectionParameterSets"},
		{"set without display name", remove(keySet + "/uiDefinition/displayName"), nil, "properties.connectionParameterSets.values[1]: has no uiDefinition.displayName"},
		{"set without parameters", remove(keySet + "/parameters"), nil, "properties.connectionParameterSets.values[1]: has no parameters"},
		{"duplicate set name", set(keySet+"/name", "entra-id"), nil, `is named "entra-id" like an earlier set`},
		{"no sets", set("/properties/connectionParameterSets/values", rawValue(`[]`)), nil, "properties.connectionParameterSets: has no values"},
		{"bad parameter type", set(keySet+"/parameters/api_key/type", "password"), nil, `properties.connectionParameterSets.values[1].parameters.api_key: has type "password"; it must be one of string, securestring, oauthSetting, int, bool`},
		{"securestring without display name", remove(keySet + "/parameters/api_key/uiDefinition/displayName"), nil, "is a securestring without uiDefinition.displayName"},
		{"missing aad resource id", remove(entraAuth + "/properties/AzureActiveDirectoryResourceId"), nil, "signs in with Entra ID but has no properties.AzureActiveDirectoryResourceId"},
		{"missing aad tenant", remove(entraAuth + "/customParameters/tenantId"), nil, "customParameters.tenantId has no value"},
		{"empty aad login uri", set(entraAuth+"/customParameters/loginUri/value", ""), nil, "customParameters.loginUri has no value"},
		{"missing client id", remove(entraAuth + "/clientId"), nil, "has no clientId"},
		{"missing identity provider", remove(entraAuth + "/identityProvider"), nil, "has no identityProvider"},
		{"bad redirect mode", set(entraAuth+"/redirectMode", "PerConnector"), nil, `has redirectMode "PerConnector"; it must be one of Global, GlobalPerConnector, Direct`},
		{"oauthSetting without settings", remove(entraSet + "/parameters/token/oAuthSettings"), nil, "an oauthSetting parameter needs oAuthSettings"},
		{"secret value present", set(entraAuth+"/clientSecret", "s3cr3t"), nil, "properties.connectionParameterSets.values[0].parameters.token.oAuthSettings.clientSecret: holds a secret value"},
		{"secret in a value object", set(entraAuth+"/customParameters/secret", rawValue(`{"value": "s3cr3t"}`)), nil, "customParameters.secret: holds a secret value"},
		{"oauth declared but not offered", remove(entraSet), nil, "definition.securityDefinitions.oauth2_auth: is oauth2, but apiProperties offers no oauthSetting parameter"},
		{"api key declared but not offered", remove(keySet), nil, "definition.securityDefinitions.api_key: is apiKey, but apiProperties offers no securestring parameter"},
		{"oauth offered but not declared", nil, remove("/securityDefinitions/oauth2_auth"), `offers OAuth sign-in ("token"), but the definition declares no oauth2 security definition`},
		{"api key offered but not declared", nil, remove("/securityDefinitions/api_key"), `offers an API key ("api_key"), but the definition declares no apiKey security definition`},
		{"publisher not a string", set("/properties/publisher", 7.0), nil, "properties.publisher: must be a non-empty string"},
		{"policy without template", set("/properties/policyTemplateInstances/0/templateId", ""), nil, "properties.policyTemplateInstances[0]: has no templateId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			problems := swaggercheck.CheckAPIProperties(patched(t, properties, tc.props), patched(t, definition, tc.doc))
			assert.Truef(t, hasProblem(problems, tc.want), "want a problem containing %q, got:\n%s", tc.want, strings.Join(problems, "\n"))
		})
	}
}

func TestCheckAPIPropertiesRejectsNonJSON(t *testing.T) {
	t.Parallel()
	problems := swaggercheck.CheckAPIProperties([]byte("{"), fixture(t, definition))
	assert.True(t, hasProblem(problems, "apiProperties: is not a JSON object"), "got %q", problems)
	problems = swaggercheck.CheckAPIProperties(fixture(t, properties), []byte("nope"))
	assert.True(t, hasProblem(problems, "definition: is not a JSON object"), "got %q", problems)
}
