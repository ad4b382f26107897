package dataverse

import "context"

// App is the model-driven app the installer puts into an environment beside the tables, and everything an
// admin sees and uses in it: forms, views, the sitemap, the command buttons and their script, the security
// roles and the field security profiles. A Schema with an App plans and installs it with the tables
// (PlanSchema, ApplySchema): what is missing is created, what differs from the declaration is updated, and
// installing twice finds nothing to do.
type App struct {
	// UniqueName carries the publisher's prefix (csp_CSPConnector); DisplayName is what the app picker shows.
	UniqueName, DisplayName, Description string
	// SiteMap is the app's navigation: areas, groups and the tables they open.
	SiteMap SiteMap
	// Notifications switches in-app notifications on for the app, so the notices the connector sends show
	// in its bell and their actions open rows in it.
	Notifications bool
	// Forms are main forms (systemforms of type Main), one per custom table.
	Forms []Form
	// Views are public views (savedqueries of query type 0).
	Views []View
	// WebResources are the scripts (and icons) the commands use.
	WebResources []WebResource
	// Commands are the buttons of the modern command bar (appactions).
	Commands []Command
	// Roles are security roles with the privileges they grant.
	Roles []Role
	// FieldSecurityProfiles say who reads and writes the secured columns.
	FieldSecurityProfiles []FieldSecurityProfile
}

// problems checks the app against the schema it is installed with: every table and column it names is
// declared. Schema.Validate reports them with the schema's own problems.
func (a *App) problems(s Schema) []string {
	var out []string
	out = append(out, a.formProblems(s)...)
	out = append(out, a.siteMapProblems(s)...)
	out = append(out, a.commandProblems(s)...)
	out = append(out, a.securityProblems(s)...)
	return out
}

// planApp adds the app's changes to p, after the tables' changes: forms and views need their columns
// published, the app module needs its forms, views and sitemap.
func (c *Client) planApp(ctx context.Context, s Schema, p *Plan) error {
	a := s.App
	for _, plan := range []func(context.Context, Schema, *App, *Plan) error{
		c.planForms,     // systemforms, savedqueries
		c.planCommands,  // webresourceset, appactions
		c.planSecurity,  // roles, fieldsecurityprofiles
		c.planAppModule, // sitemaps, appmodules and their components, in-app notifications; publishes the app
	} {
		if err := plan(ctx, s, a, p); err != nil {
			return err
		}
	}
	return nil
}
