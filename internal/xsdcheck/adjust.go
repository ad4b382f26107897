package xsdcheck

import (
	"fmt"
	"strings"
)

// adjustment is one change the published schemas need before libxml2 loads them as Microsoft's
// validator does: old must occur exactly once in file, so that an updated schema set that no longer
// needs it (or needs it elsewhere) stops the check instead of passing unnoticed.
type adjustment struct {
	file, old, new string
	why            string
}

// adjustments are every change made to the published schemas, each the smallest that works. The
// schemas' regular expressions are .NET's; XML Schema's (which libxml2 implements) have no anchors,
// no lookahead and no \$ escape, and always match the whole value.
var adjustments = []adjustment{
	{
		file: "FormXml.xsd",
		old:  `<xs:pattern value ="(\$webresource:|/)(.)+"/>`,
		new:  `<xs:pattern value ="($webresource:|/)(.)+"/>`,
		why: "ClientFileIncludeAttributeType: \\$ is not an XML Schema escape (libxml2 refuses the schema); " +
			"$ is an ordinary character there, so the unescaped form means what .NET's does",
	},
	{
		file: "FormXml.xsd",
		old:  `<xs:pattern value="(?![cC][rR][mM]_)([A-Za-z0-9])+([_])+([A-Za-z0-9_])*"/>`,
		new:  `<xs:pattern value="([A-Za-z0-9])+([_])+([A-Za-z0-9_])*"/>`,
		why: "FormQueryStringParameterNameAttributeType: XML Schema has no lookahead (libxml2 refuses the schema); " +
			"without it a form query string parameter named crm_… is accepted here, which Dataverse refuses",
	},
	{
		file: "FormXml.xsd",
		old:  `<xs:pattern value="^(100|[0-9]{1,2})%$" />`,
		new:  `<xs:pattern value="(100|[0-9]{1,2})%" />`,
		why: "FormPercentageType (a tab column's width): ^ and $ are anchors to .NET but literal characters to " +
			"XML Schema, so libxml2 would want width=\"^50%$\"; XML Schema patterns match the whole value anyway",
	},
	{
		file: "Fetch.xsd",
		old:  `<xs:pattern value="^[0-9]+(\.[0-9]+){1,3}$" />`,
		new:  `<xs:pattern value="[0-9]+(\.[0-9]+){1,3}" />`,
		why:  "VersionType (a savedquery's IntroducedVersion): the same .NET anchors as FormPercentageType",
	},
}

// adjust applies the adjustments for file to text.
func adjust(file, text string) (string, error) {
	for _, a := range adjustments {
		if a.file != file {
			continue
		}
		if n := strings.Count(text, a.old); n != 1 {
			return "", fmt.Errorf("xsdcheck: the adjustment of %s expects %q exactly once, found it %d times: the schema set changed, review adjust.go", file, a.old, n)
		}
		text = strings.Replace(text, a.old, a.new, 1)
	}
	return text, nil
}
