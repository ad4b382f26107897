package swaggercheck

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// apiPropertiesKeys are the members paconn and pac accept under apiProperties.json's "properties".
var apiPropertiesKeys = []string{
	"iconBrandColor", "capabilities", "connectionParameters", "connectionParameterSets",
	"policyTemplateInstances", "publisher", "stackOwner",
}

// connectionParameterTypes are the types a connection parameter may have.
var connectionParameterTypes = []string{"string", "securestring", "oauthSetting", "int", "bool"}

// redirectModes are the OAuth redirect modes; GlobalPerConnector is what new connectors must use,
// even though the 2020 apiProperties schema does not list it.
var redirectModes = []string{"Global", "GlobalPerConnector", "Direct"}

// aadCustomParameters must each carry a value for an Entra ID (identityProvider "aad") sign-in.
var aadCustomParameters = []string{"loginUri", "tenantId", "resourceUri"}

// brandColor is the form of iconBrandColor.
var brandColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// reservedBrandColors are the default colours certification rejects.
var reservedBrandColors = []string{"#007ee5", "#ffffff"}

// A connectionParameter is one parameter a connection asks for, wherever it is declared.
type connectionParameter struct {
	name  string
	inSet bool // declared in a connectionParameterSets value rather than in connectionParameters
	typ   string
}

// propertiesChecker carries one run of the apiProperties rules.
type propertiesChecker struct {
	problemList
	offered []connectionParameter
}

// CheckAPIProperties validates an apiProperties.json against what the definition declares.
func CheckAPIProperties(props, doc []byte) []string {
	c := &propertiesChecker{}
	var top map[string]any
	if json.Unmarshal(props, &top) != nil || top == nil {
		c.report("apiProperties", "is not a JSON object")
		return c.sorted()
	}
	for _, key := range sortedKeys(top) {
		if key != "properties" {
			c.report("apiProperties", "has %q at the top level; everything belongs under \"properties\"", key)
		}
	}
	properties := object(top["properties"])
	if properties == nil {
		c.report("properties", "is missing")
		return c.sorted()
	}
	for _, key := range sortedKeys(properties) {
		if !slices.Contains(apiPropertiesKeys, key) {
			c.report("properties", "%q is not an apiProperties key; allowed are %s", key, strings.Join(apiPropertiesKeys, ", "))
		}
	}
	c.checkBrandColor(properties["iconBrandColor"])
	c.checkListings(properties)
	c.checkConnectionParameters(properties)
	c.checkNoSecrets("properties", properties)
	c.checkAuthMatches(doc)
	return c.sorted()
}

// checkBrandColor checks the connector icon's background colour.
func (c *propertiesChecker) checkBrandColor(v any) {
	const loc = "properties.iconBrandColor"
	colour, ok := text(v)
	switch {
	case v == nil:
		c.report(loc, "is missing; give the icon a background colour as \"#rrggbb\"")
	case !ok || !brandColor.MatchString(colour):
		c.report(loc, "is %s; it must be a colour written \"#rrggbb\"", describe(v))
	case slices.Contains(reservedBrandColors, strings.ToLower(colour)):
		c.report(loc, "is %q, a default colour certification rejects; pick the brand's own", colour)
	}
}

// checkListings checks the shape of the members that describe the connector rather than the
// connection.
func (c *propertiesChecker) checkListings(properties map[string]any) {
	if v, ok := properties["capabilities"]; ok {
		if _, isArray := v.([]any); !isArray {
			c.report("properties.capabilities", "must be an array, got %s", describe(v))
		}
	}
	for _, key := range []string{"publisher", "stackOwner"} {
		if v, ok := properties[key]; ok && !nonEmptyText(v) {
			c.report(field("properties", key), "must be a non-empty string, got %s", describe(v))
		}
	}
	if v, ok := properties["policyTemplateInstances"]; ok {
		list, isArray := v.([]any)
		if !isArray {
			c.report("properties.policyTemplateInstances", "must be an array, got %s", describe(v))
		}
		for i, item := range list {
			if !nonEmptyText(object(item)["templateId"]) {
				c.report(element("properties.policyTemplateInstances", i), "has no templateId")
			}
		}
	}
}

// checkConnectionParameters checks what a maker is asked when creating a connection, declared
// either as one connectionParameters map or as connectionParameterSets to offer alternatives.
func (c *propertiesChecker) checkConnectionParameters(properties map[string]any) {
	params, hasParams := properties["connectionParameters"]
	sets, hasSets := properties["connectionParameterSets"]
	switch {
	case hasParams && hasSets:
		c.report("properties", "has both connectionParameters and connectionParameterSets; use one: the sets replace the single map")
	case !hasParams && !hasSets:
		c.report("properties", "has neither connectionParameters nor connectionParameterSets, so a connection could not authenticate")
	}
	if hasParams {
		loc := "properties.connectionParameters"
		if len(object(params)) == 0 {
			c.report(loc, "is empty; declare the parameters a connection needs, or use connectionParameterSets")
		}
		c.checkParameterMap(loc, object(params), false)
	}
	if hasSets {
		c.checkParameterSets("properties.connectionParameterSets", sets)
	}
}

// checkParameterSets checks the alternatives a maker chooses between (multi-auth).
func (c *propertiesChecker) checkParameterSets(loc string, v any) {
	sets := object(v)
	if sets == nil {
		c.report(loc, "must be an object with uiDefinition and values, got %s", describe(v))
		return
	}
	if !nonEmptyText(uiDisplayName(sets)) {
		c.report(loc, "has no uiDefinition.displayName for the choice of authentication type")
	}
	values := asArray(sets["values"])
	if len(values) == 0 {
		c.report(loc, "has no values; each value is one way to create a connection")
		return
	}
	names := map[string]bool{}
	for i, item := range values {
		setLoc := element(field(loc, "values"), i)
		set := object(item)
		if set == nil {
			c.report(setLoc, "must be an object, got %s", describe(item))
			continue
		}
		name, _ := text(set["name"])
		switch {
		case strings.TrimSpace(name) == "":
			c.report(setLoc, "has no name")
		case names[name]:
			c.report(setLoc, "is named %q like an earlier set; set names must be unique", name)
		}
		names[name] = true
		if !nonEmptyText(uiDisplayName(set)) {
			c.report(setLoc, "has no uiDefinition.displayName, which is what the maker picks from")
		}
		params := object(set["parameters"])
		if len(params) == 0 {
			c.report(setLoc, "has no parameters")
		}
		c.checkParameterMap(field(setLoc, "parameters"), params, true)
	}
}

// checkParameterMap checks each connection parameter of one map and records what it offers.
func (c *propertiesChecker) checkParameterMap(loc string, params map[string]any, inSet bool) {
	for _, name := range sortedKeys(params) {
		ploc := field(loc, name)
		param := object(params[name])
		if param == nil {
			c.report(ploc, "must be an object, got %s", describe(params[name]))
			continue
		}
		typ, _ := text(param["type"])
		if !slices.Contains(connectionParameterTypes, typ) {
			c.report(ploc, "has type %s; it must be one of %s", describe(param["type"]), strings.Join(connectionParameterTypes, ", "))
		}
		switch typ {
		case "securestring":
			if !nonEmptyText(uiDisplayName(param)) {
				c.report(ploc, "is a securestring without uiDefinition.displayName, so makers would see an unlabelled box")
			}
		case "oauthSetting":
			c.checkOAuthSettings(field(ploc, "oAuthSettings"), param["oAuthSettings"])
		}
		c.offered = append(c.offered, connectionParameter{name: name, inSet: inSet, typ: typ})
	}
}

// checkOAuthSettings checks an OAuth sign-in, with the extra settings Entra ID needs to issue a
// token for our API.
func (c *propertiesChecker) checkOAuthSettings(loc string, v any) {
	settings := object(v)
	if settings == nil {
		c.report(loc, "is missing; an oauthSetting parameter needs oAuthSettings")
		return
	}
	provider, _ := text(settings["identityProvider"])
	if strings.TrimSpace(provider) == "" {
		c.report(loc, "has no identityProvider")
	}
	if !nonEmptyText(settings["clientId"]) {
		c.report(loc, "has no clientId")
	}
	if mode, ok := text(settings["redirectMode"]); !ok || !slices.Contains(redirectModes, mode) {
		c.report(loc, "has redirectMode %s; it must be one of %s", describe(settings["redirectMode"]), strings.Join(redirectModes, ", "))
	}
	if provider != "aad" {
		return
	}
	if !nonEmptyText(object(settings["properties"])["AzureActiveDirectoryResourceId"]) {
		c.report(loc, "signs in with Entra ID but has no properties.AzureActiveDirectoryResourceId naming the API the token is for")
	}
	custom := object(settings["customParameters"])
	for _, name := range aadCustomParameters {
		if !nonEmptyText(object(custom[name])["value"]) {
			c.report(loc, "signs in with Entra ID but customParameters.%s has no value", name)
		}
	}
}

// checkNoSecrets reports secret values written into the file. Secrets are supplied when the
// connector is created (paconn create --secret, pac connector create), never committed.
func (c *propertiesChecker) checkNoSecrets(loc string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, key := range sortedKeys(v) {
			kloc := field(loc, key)
			if isSecretKey(key) && (nonEmptyText(v[key]) || nonEmptyText(object(v[key])["value"])) {
				c.report(kloc, "holds a secret value; supply it when creating the connector (paconn create --secret), never in the file")
			}
			c.checkNoSecrets(kloc, v[key])
		}
	case []any:
		for i, item := range v {
			c.checkNoSecrets(element(loc, i), item)
		}
	}
}

// isSecretKey reports whether a member name holds a secret.
func isSecretKey(key string) bool {
	return strings.EqualFold(key, "clientSecret") || strings.EqualFold(key, "client_secret") || strings.EqualFold(key, "secret")
}

// checkAuthMatches checks that the ways to sign in offered here are the ones the definition
// declares: oauth2 with an oauthSetting parameter, apiKey with a securestring one.
func (c *propertiesChecker) checkAuthMatches(doc []byte) {
	var def struct {
		SecurityDefinitions map[string]struct {
			Type string `json:"type"`
		} `json:"securityDefinitions"`
	}
	if json.Unmarshal(doc, &def) != nil {
		c.report("definition", "is not a JSON object, so the connection parameters cannot be matched to its securityDefinitions")
		return
	}
	declared := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(def.SecurityDefinitions)) {
		typ := def.SecurityDefinitions[name].Type
		declared[typ] = true
		loc := field("definition.securityDefinitions", name)
		switch typ {
		case "oauth2":
			if !c.offers(func(p connectionParameter) bool { return p.typ == "oauthSetting" }) {
				c.report(loc, "is oauth2, but apiProperties offers no oauthSetting parameter to sign in with")
			}
		case "apiKey":
			if !c.offers(func(p connectionParameter) bool {
				return p.typ == "securestring" && (p.inSet || p.name == "api_key" || p.name == name)
			}) {
				c.report(loc, "is apiKey, but apiProperties offers no securestring parameter (api_key, or one in a connectionParameterSets value) to hold the key")
			}
		}
	}
	for _, p := range c.offered {
		switch {
		case p.typ == "oauthSetting" && !declared["oauth2"]:
			c.report("properties", "offers OAuth sign-in (%q), but the definition declares no oauth2 security definition", p.name)
		case p.typ == "securestring" && p.name == "api_key" && !declared["apiKey"]:
			c.report("properties", "offers an API key (%q), but the definition declares no apiKey security definition", p.name)
		}
	}
}

// offers reports whether any offered connection parameter satisfies match.
func (c *propertiesChecker) offers(match func(connectionParameter) bool) bool {
	return slices.ContainsFunc(c.offered, match)
}

// uiDisplayName returns uiDefinition.displayName of node; Microsoft's own samples also spell it
// displayname.
func uiDisplayName(node map[string]any) any {
	ui := object(node["uiDefinition"])
	for _, key := range sortedKeys(ui) {
		if strings.EqualFold(key, "displayName") {
			return ui[key]
		}
	}
	return nil
}
