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

// Sources of the joins between the app's parts. Confirmed in Microsoft's documentation: associating
// security roles with an app is the last step of making one by code (create-manage-model-driven-apps-using-code),
// through the intersect table appmoduleroles (entity set appmodulerolescollection, read only). Confirmed in
// public code that calls the Web API: appaction's navigation property AppModuleId
// ("AppModuleId@odata.bind": "/appmodules(<id>)"); the N:N relationship appmoduleroles_association of
// appmodule and role, written with $ref and read back through the relationship (PowerDataOps'
// Add-XrmAppModuleRoles, Get-XrmAppModuleRoles); solutioncomponent.componenttype of roles (20), field
// security profiles (70), apps (80). Inferred: that Dataverse takes appmoduleid only at creation (one
// public note sets it by PATCH after creating the button; recreating the button is right either way), and
// that a button shows without publishing its app again (appaction has no unpublished layer).

// planApp adds the app's changes to p, after the tables' changes. The app module comes before what
// belongs to it: a command button is created in its app (appmoduleid is taken only at creation), a role is
// given the app once both exist; validating and publishing the app come last.
func (c *Client) planApp(ctx context.Context, s Schema, p *Plan) error {
	a := s.App
	if err := c.planForms(ctx, s, a, p); err != nil { // systemforms, savedqueries
		return err
	}
	// sitemaps, appmodules and their components, in-app notifications
	app, err := c.planAppModule(ctx, s, a, p)
	if err != nil {
		return err
	}
	if err := c.planCommands(ctx, s, a, app, p); err != nil { // webresourceset, appactions (in the app)
		return err
	}
	if err := c.planSecurity(ctx, s, a, app, p); err != nil { // roles, fieldsecurityprofiles, the roles' use of the app
		return err
	}
	c.planAppPublish(a, app, p) // ValidateApp, PublishXml
	return nil
}

// appModule is the app module as a plan knows it: found in the environment, or created by the plan, in
// which case its id is known only once the plan has created it (the changes that need it read id when they
// are applied, never when they are planned).
type appModule struct {
	// id is the app's appmoduleid: set when planning if the app exists, when applying if the plan creates it.
	id GUID
	// exists is whether the app was found when planning.
	exists bool
	// siteMapID is the app's sitemap, likewise.
	siteMapID GUID
	// publish is whether the app must be validated and published: something of it changed, or what users
	// see (the published layer) is not the declaration.
	publish bool
}
