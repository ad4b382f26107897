package dataverse

import "context"

// WebResource is a file the app serves: the commands' script, an icon.
type WebResource struct {
	Name string
}

// Command is a button on the modern command bar of a table's form or grid (an appaction).
type Command struct {
	UniqueName, Label, Table string
}

func (a *App) commandProblems(s Schema) []string { return nil }

func (c *Client) planCommands(ctx context.Context, s Schema, a *App, p *Plan) error { return nil }
