package schema

import "github.com/cspconnector/csp-connector/dataverse"

// App names.
const (
	AppUniqueName  = "csp_CSPConnector"
	AppDisplayName = "CSP Connector"
)

// app returns the CSP Connector model-driven app (Schema().App): what admins work in. Its forms and views
// are generated from the tables of s, so a column declared there shows on its form.
func app(s dataverse.Schema) *dataverse.App {
	return &dataverse.App{
		UniqueName:            AppUniqueName,
		DisplayName:           AppDisplayName,
		Description:           "Provision license changes, map customers, drive Microsoft Customer Agreement acceptance and run the connector's jobs.",
		Notifications:         true,
		SiteMap:               siteMap(s),
		Forms:                 forms(s),
		Views:                 views(s),
		WebResources:          webResources(s),
		Commands:              commands(s),
		Roles:                 roles(s),
		FieldSecurityProfiles: fieldSecurityProfiles(s),
	}
}
