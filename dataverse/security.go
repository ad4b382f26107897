package dataverse

import "context"

// Role is a security role and the privileges it grants.
type Role struct {
	Name, Description string
}

// FieldSecurityProfile grants read, create and update of secured columns to the users and teams in it.
type FieldSecurityProfile struct {
	Name, Description string
}

func (a *App) securityProblems(s Schema) []string { return nil }

func (c *Client) planSecurity(ctx context.Context, s Schema, a *App, p *Plan) error { return nil }
