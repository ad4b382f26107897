package dataverse

import "context"

// Form is a table's main form (systemform of type Main).
type Form struct {
	Table, Name, Description string
}

// View is a public view of a table (savedquery of query type 0).
type View struct {
	Table, Name, Description string
}

func (a *App) formProblems(s Schema) []string { return nil }

func (c *Client) planForms(ctx context.Context, s Schema, a *App, p *Plan) error { return nil }
