package dataverse

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// WebResource is a file the app serves: the commands' script, an icon. It is a webresource row
// (webresourceset), found by its unique Name and published after it is created or changed.
type WebResource struct {
	// Name carries the publisher's prefix and reads like a path: csp_/scripts/commands.js.
	Name, DisplayName, Description string
	Type                           WebResourceType
	// Content is the file itself (sent base64-encoded, as the Web API stores it).
	Content []byte
}

// WebResourceType is webresource.webresourcetype.
type WebResourceType int

// Web resource types the app uses (webresourcetype choices).
const (
	WebResourceHTML   WebResourceType = 1
	WebResourceCSS    WebResourceType = 2
	WebResourceScript WebResourceType = 3
	WebResourceSVG    WebResourceType = 11
)

// CommandLocation is appaction.location: where the button shows.
type CommandLocation int

// Command locations (appaction location choices).
const (
	CommandOnForm     CommandLocation = 0
	CommandOnMainGrid CommandLocation = 1
)

// Command is a button on the modern command bar of a table's form or grid: an appaction row that calls
// Function of the WebResource script with the form's context (PrimaryControl). A button only writes
// columns of the row (Columns) and lets the connector do the work.
type Command struct {
	// UniqueName carries the publisher's prefix (csp_licensechangelog_retry).
	UniqueName, Label, Table string
	// Tooltip is the button's tooltip description.
	Tooltip string
	// Location is where the button shows (CommandOnForm by default).
	Location CommandLocation
	// Icon is a Fluent UI font icon name (appaction.fonticon).
	Icon string
	// WebResource names the script (a WebResource of the app); Function is the function it calls, with
	// the namespace (CSPConnector.retry).
	WebResource, Function string
	// Sequence orders the app's buttons on a command bar (lower is further left).
	Sequence int
	// Columns are the columns of Table the button writes; each must be declared.
	Columns []string
}

// appActionParameters passes the form's (or grid's) context as the function's one argument: a
// CrmParameter of type PrimaryControl (5; inferred from public installers, see the report of issue 16).
const appActionParameters = `[{"type":5}]`

// Choice values of appaction the installer writes.
const (
	appActionContextEntity     = 1 // context: Entity (the button shows for one table, named in contextvalue)
	appActionTypeButton        = 0 // type: Standard Button
	appActionOnClickJavaScript = 2 // onclickeventtype: JavaScript
)

func (a *App) commandProblems(s Schema) []string {
	var out []string
	scripts := map[string]WebResource{}
	for _, w := range a.WebResources {
		switch {
		case w.Name == "":
			out = append(out, "a web resource has no name")
			continue
		case s.Prefix != "" && !strings.HasPrefix(w.Name, s.Prefix+"_"):
			out = append(out, fmt.Sprintf("web resource %s does not carry the publisher's prefix %s_", w.Name, s.Prefix))
		case len(w.Content) == 0:
			out = append(out, fmt.Sprintf("web resource %s is empty", w.Name))
		}
		if _, dup := scripts[w.Name]; dup {
			out = append(out, fmt.Sprintf("web resource %s is declared twice", w.Name))
		}
		scripts[w.Name] = w
	}
	seen := map[string]bool{}
	for _, c := range a.Commands {
		name := cmp.Or(c.UniqueName, c.Label)
		if c.UniqueName == "" {
			out = append(out, fmt.Sprintf("command %q has no unique name", c.Label))
		} else if seen[strings.ToLower(c.UniqueName)] {
			out = append(out, fmt.Sprintf("command %s is declared twice", c.UniqueName))
		}
		seen[strings.ToLower(c.UniqueName)] = true
		t, ok := s.Table(c.Table)
		if !ok {
			out = append(out, fmt.Sprintf("command %s is on table %s, which the schema does not declare", name, c.Table))
		}
		for _, col := range c.Columns {
			if _, known := t.Column(col); ok && !known {
				out = append(out, fmt.Sprintf("command %s writes %s.%s, which the schema does not declare", name, c.Table, col))
			}
		}
		w, ok := scripts[c.WebResource]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("command %s calls web resource %q, which the app does not declare", name, c.WebResource))
		case w.Type != WebResourceScript:
			out = append(out, fmt.Sprintf("command %s calls web resource %s, which is not a script", name, c.WebResource))
		case !definesFunction(w.Content, c.Function):
			out = append(out, fmt.Sprintf("command %s calls %s, which script %s does not define", name, c.Function, c.WebResource))
		}
	}
	return out
}

// definesFunction reports whether a script assigns the function: "Namespace.name = function" or
// "ns.name = async function" inside the namespace's closure (the script's convention).
func definesFunction(script []byte, function string) bool {
	ns, name, ok := strings.Cut(function, ".")
	if !ok || ns == "" || name == "" || strings.Contains(name, ".") {
		return false
	}
	if !bytes.Contains(script, []byte("var "+ns+" = ")) {
		return false
	}
	re := regexp.MustCompile(`(?m)^\s*(?:ns|` + regexp.QuoteMeta(ns) + `)\.` + regexp.QuoteMeta(name) + `\s*=\s*(?:async\s+)?function\b`)
	return re.Match(script)
}

// planCommands plans the web resources (created, or updated when their content or names differ, then
// published) and the command buttons (appactions: created, updated where Dataverse lets them change,
// recreated where it does not: location, table and app are fixed at creation). Each kind is read once.
//
// A button belongs to the app (appmoduleid, which Dataverse takes only at creation), so it is planned
// after the app module: app is the app as the plan knows it, its id read when the change is applied.
func (c *Client) planCommands(ctx context.Context, s Schema, a *App, app *appModule, p *Plan) error {
	if len(a.WebResources) == 0 && len(a.Commands) == 0 {
		return nil
	}
	ids := map[string]GUID{} // web resource name → id, filled as they are read or created
	have := map[string]Row{}
	if len(a.WebResources) > 0 {
		names := make([]any, len(a.WebResources))
		for i, w := range a.WebResources {
			names[i] = w.Name
		}
		for row, err := range c.List(ctx, "webresourceset", &Query{Select: []string{"webresourceid", "name", "displayname", "description", "webresourcetype", "content"},
			Filter: In("name", names...)}) {
			if err != nil {
				return fmt.Errorf("dataverse: read web resources: %w", err)
			}
			have[row.String("name")] = row
			ids[row.String("name")], _ = row.GUID("webresourceid")
		}
	}
	var publish []string
	for _, w := range a.WebResources {
		content := base64.StdEncoding.EncodeToString(w.Content)
		row, ok := have[w.Name]
		if !ok {
			p.add(fmt.Sprintf("create web resource %s (%s, %d bytes)", w.Name, w.DisplayName, len(w.Content)), func(ctx context.Context) error {
				id, err := c.Create(ctx, "webresourceset", Row{"name": w.Name, "displayname": w.DisplayName, "description": w.Description,
					"webresourcetype": int(w.Type), "content": content})
				ids[w.Name] = id
				return err
			})
			publish = append(publish, w.Name)
			continue
		}
		changes := Row{}
		if row.String("content") != content {
			changes["content"] = content
		}
		if row.String("displayname") != w.DisplayName {
			changes["displayname"] = w.DisplayName
		}
		if row.String("description") != w.Description {
			changes["description"] = w.Description
		}
		if len(changes) == 0 {
			continue
		}
		if t := intOf(row, "webresourcetype"); t != int(w.Type) {
			p.Problems = append(p.Problems, fmt.Sprintf("web resource %s has type %d in the environment, the app declares %d: delete it, then install again", w.Name, t, w.Type))
			continue
		}
		id := ids[w.Name]
		p.add(fmt.Sprintf("update web resource %s: %s changed", w.Name, strings.Join(slices.Sorted(maps.Keys(changes)), ", ")), func(ctx context.Context) error {
			_, err := c.Update(ctx, "webresourceset", id, changes, &UpdateOptions{IfMatch: "*"})
			return err
		})
		publish = append(publish, w.Name)
	}
	if len(publish) > 0 {
		p.add("publish web resources "+strings.Join(publish, ", "), func(ctx context.Context) error {
			var b strings.Builder
			b.WriteString("<importexportxml><webresources>")
			for _, name := range publish {
				b.WriteString("<webresource>{" + ids[name].String() + "}</webresource>")
			}
			b.WriteString("</webresources></importexportxml>")
			if err := c.postMetadata(ctx, "PublishXml", map[string]any{"ParameterXml": b.String()}, ""); err != nil {
				return fmt.Errorf("dataverse: publish web resources: %w", err)
			}
			return nil
		})
	}
	return c.planAppActions(ctx, a, app, ids, p)
}

// appActionColumns are the appaction columns the installer writes and compares.
func appActionColumns() []string {
	return []string{"appactionid", "uniquename", "name", "buttonlabeltext", "buttontooltiptitle", "buttontooltipdescription", "context", "contextvalue",
		"location", "type", "fonticon", "sequence", "onclickeventtype", "onclickeventjavascriptfunctionname", "onclickeventjavascriptparameters",
		"_onclickeventjavascriptwebresourceid_value", "_appmoduleid_value"}
}

func (c *Client) planAppActions(ctx context.Context, a *App, app *appModule, ids map[string]GUID, p *Plan) error {
	if len(a.Commands) == 0 {
		return nil
	}
	names := make([]any, len(a.Commands))
	for i, cmd := range a.Commands {
		names[i] = cmd.UniqueName
	}
	have := map[string]Row{}
	for row, err := range c.List(ctx, "appactions", &Query{Select: appActionColumns(), Filter: In("uniquename", names...)}) {
		if err != nil {
			return fmt.Errorf("dataverse: read command buttons (appactions): %w", err)
		}
		have[strings.ToLower(row.String("uniquename"))] = row
	}
	for _, cmd := range a.Commands {
		create := func(ctx context.Context) error {
			row := Row{"uniquename": cmd.UniqueName, "name": cmd.UniqueName, "context": appActionContextEntity, "contextvalue": cmd.Table,
				"location": int(cmd.Location), "type": appActionTypeButton}
			for k, v := range cmd.updatable() {
				row[k] = v
			}
			id, ok := ids[cmd.WebResource]
			if !ok {
				return fmt.Errorf("dataverse: command %s: web resource %s was not created", cmd.UniqueName, cmd.WebResource)
			}
			row.SetLookup("OnClickEventJavaScriptWebResourceId", "webresourceset", id)
			if app.id == (GUID{}) {
				return fmt.Errorf("dataverse: command %s: app %s was not created", cmd.UniqueName, a.UniqueName)
			}
			row.SetLookup("AppModuleId", "appmodules", app.id)
			_, err := c.Create(ctx, "appactions", row)
			return err
		}
		what := fmt.Sprintf("command %s: %q on the %s of %s, calls %s", cmd.UniqueName, cmd.Label, cmd.Location, cmd.Table, cmd.Function)
		row, ok := have[strings.ToLower(cmd.UniqueName)]
		if !ok {
			p.add("create "+what, create)
			continue
		}
		id, _ := row.GUID("appactionid")
		var why string
		switch inApp, _ := row.GUID("_appmoduleid_value"); {
		case row.String("contextvalue") != cmd.Table || intOf(row, "location") != int(cmd.Location) || intOf(row, "context") != appActionContextEntity:
			why = "its table or location changed"
		case inApp == (GUID{}):
			why = "it belongs to no app"
		case !app.exists || inApp != app.id:
			why = "it belongs to another app"
		}
		if why != "" {
			// Dataverse does not let these change once the button exists.
			p.add("recreate "+what+" ("+why+")", func(ctx context.Context) error {
				if err := c.Delete(ctx, "appactions", id, nil); err != nil && !IsNotFound(err) {
					return err
				}
				return create(ctx)
			})
			continue
		}
		changes := Row{}
		for k, v := range cmd.updatable() {
			if !sameCommandValue(row[k], v) {
				changes[k] = v
			}
		}
		wr, known := ids[cmd.WebResource]
		if current, _ := row.GUID("_onclickeventjavascriptwebresourceid_value"); !known || current != wr {
			changes["OnClickEventJavaScriptWebResourceId@odata.bind"] = nil // resolved when applied: the web resource may be created by this plan
		}
		if len(changes) == 0 {
			continue
		}
		p.add(fmt.Sprintf("update command %s: %s changed", cmd.UniqueName, strings.Join(slices.Sorted(maps.Keys(changes)), ", ")), func(ctx context.Context) error {
			if _, bind := changes["OnClickEventJavaScriptWebResourceId@odata.bind"]; bind {
				id, ok := ids[cmd.WebResource]
				if !ok {
					return fmt.Errorf("dataverse: command %s: web resource %s was not created", cmd.UniqueName, cmd.WebResource)
				}
				changes.SetLookup("OnClickEventJavaScriptWebResourceId", "webresourceset", id)
			}
			_, err := c.Update(ctx, "appactions", id, changes, &UpdateOptions{IfMatch: "*"})
			return err
		})
	}
	return nil
}

// updatable are the appaction columns Dataverse lets change after creation, as the command declares them.
func (cmd Command) updatable() Row {
	return Row{"buttonlabeltext": cmd.Label, "buttontooltiptitle": cmd.Label, "buttontooltipdescription": cmd.Tooltip, "fonticon": cmd.Icon,
		"sequence": cmd.Sequence, "onclickeventtype": appActionOnClickJavaScript, "onclickeventjavascriptfunctionname": cmd.Function,
		"onclickeventjavascriptparameters": appActionParameters}
}

func (l CommandLocation) String() string {
	switch l {
	case CommandOnForm:
		return "form"
	case CommandOnMainGrid:
		return "main grid"
	}
	return fmt.Sprintf("location %d", int(l))
}

func intOf(r Row, col string) int {
	n, _ := r.Int(col)
	return int(n)
}

// sameCommandValue compares a value read back with the one declared: numbers arrive as JSON numbers, a
// text left empty arrives as null.
func sameCommandValue(have, want any) bool {
	switch w := want.(type) {
	case string:
		h, _ := have.(string)
		return h == w
	case int:
		h, err := strconv.ParseFloat(fmt.Sprint(have), 64)
		return err == nil && h == float64(w)
	}
	return fmt.Sprint(have) == fmt.Sprint(want)
}
