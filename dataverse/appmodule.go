package dataverse

import "context"

// SiteMap is an app's navigation: areas of groups of subareas, each opening a table.
type SiteMap struct{}

func (a *App) siteMapProblems(s Schema) []string { return nil }

func (c *Client) planAppModule(ctx context.Context, s Schema, a *App, p *Plan) error { return nil }
