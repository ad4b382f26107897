package dataverse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Change is one step of an installation plan.
type Change struct {
	// Summary says what the step does, for people: "create table csp_provider (Provider)".
	Summary string
	apply   func(ctx context.Context) error
}

// Plan is what it takes to make an environment match a Schema: the changes to make, in order, and the
// differences the installer will not resolve by itself (Problems), such as a column whose type differs.
type Plan struct {
	Changes  []Change
	Problems []string
	// tables whose customizations need publishing after the changes.
	publish []string
	// definitions are the declared tables that exist, as the plan read them.
	definitions map[string]*TableDefinition
}

// Empty reports a plan with nothing to change.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// String renders the plan for a person.
func (p *Plan) String() string {
	return renderPlan("Nothing to change: the environment matches the schema.", "the installer", p.Changes, p.Problems)
}

// Summaries returns the plan's changes as lines for people.
func (p *Plan) Summaries() []string { return summaries(p.Changes) }

// renderPlan is how every plan reads: the changes, or nothing says nothing, then the problems left to a
// person.
func renderPlan(nothing, who string, changes []Change, problems []string) string {
	var b strings.Builder
	if len(changes) == 0 {
		b.WriteString(nothing + "\n")
	} else {
		fmt.Fprintf(&b, "%d change(s):\n", len(changes))
		for _, c := range changes {
			fmt.Fprintf(&b, "  + %s\n", c.Summary)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(&b, "%d problem(s) to resolve by hand (%s leaves them alone):\n", len(problems), who)
		for _, pr := range problems {
			fmt.Fprintf(&b, "  ! %s\n", pr)
		}
	}
	return b.String()
}

func summaries(changes []Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.Summary
	}
	return out
}

// PlanSchema compares the environment with s and returns the changes that would make them match. It only
// reads. Tables are created before columns, columns before the lookups and keys that need them.
func (c *Client) PlanSchema(ctx context.Context, s Schema) (*Plan, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{}
	if err := c.planSolution(ctx, s, p); err != nil {
		return nil, err
	}
	existing := map[string]*TableDefinition{}
	for _, t := range s.Tables {
		def, err := c.GetTableDefinition(ctx, t.LogicalName)
		switch {
		case IsNotFound(err):
			if t.Standard {
				p.Problems = append(p.Problems, fmt.Sprintf("standard table %s is missing from the environment", t.LogicalName))
			}
		case err != nil:
			return nil, err
		default:
			existing[t.LogicalName] = def
		}
	}
	p.definitions = existing
	sol := s.SolutionName
	var lookups, keys, values []Change
	for _, t := range s.Tables {
		def := existing[t.LogicalName]
		if def == nil && t.Standard {
			continue
		}
		changed := false
		if def == nil {
			p.add(fmt.Sprintf("create table %s (%s), entity set %s", t.LogicalName, t.DisplayName, t.EntitySetName),
				func(ctx context.Context) error { return c.CreateTable(ctx, t, sol) })
			def = &TableDefinition{LogicalName: t.LogicalName, EntitySetName: t.EntitySetName, Columns: map[string]ColumnDefinition{
				t.PrimaryName.LogicalName: {LogicalName: t.PrimaryName.LogicalName, Type: TypeString},
			}, StatusReasons: Table{}.AllStatusReasons()}
			changed = true
		} else if def.EntitySetName != t.EntitySetName {
			p.Problems = append(p.Problems, fmt.Sprintf("table %s has entity set %s in the environment, the schema expects %s", t.LogicalName, def.EntitySetName, t.EntitySetName))
		}
		for _, col := range t.AllColumns() {
			have, ok := def.Columns[col.LogicalName]
			if ok {
				if have.Type != col.Type && !(col.Type == TypeChoice && have.Type == "Picklist") {
					p.Problems = append(p.Problems, fmt.Sprintf("column %s.%s is %s in the environment, the schema declares %s", t.LogicalName, col.LogicalName, have.Type, col.Type))
					continue
				}
				for _, o := range missingOptions(col.Options, have.Options) {
					values = append(values, Change{Summary: fmt.Sprintf("add option %d %q to %s.%s", o.Value, o.Label, t.LogicalName, col.LogicalName),
						apply: func(ctx context.Context) error {
							return c.InsertOptionValue(ctx, t.LogicalName, col.LogicalName, o, sol)
						}})
					changed = true
				}
				continue
			}
			if t.Standard {
				p.Problems = append(p.Problems, fmt.Sprintf("standard table %s has no column %s", t.LogicalName, col.LogicalName))
				continue
			}
			changed = true
			if col.Type == TypeLookup {
				target, _ := s.Table(col.Target)
				lookups = append(lookups, Change{Summary: fmt.Sprintf("add lookup %s.%s → %s", t.LogicalName, col.LogicalName, col.Target),
					apply: func(ctx context.Context) error { return c.CreateLookup(ctx, t.LogicalName, col, target, sol) }})
				continue
			}
			p.add(fmt.Sprintf("add column %s.%s (%s)", t.LogicalName, col.LogicalName, describeColumn(col)),
				func(ctx context.Context) error { return c.CreateColumn(ctx, t.LogicalName, col, sol) })
		}
		if !t.Standard {
			for _, o := range missingOptions(t.AllStatusReasons(), def.StatusReasons) {
				values = append(values, Change{Summary: fmt.Sprintf("add status reason %d %q to %s (state %d)", o.Value, o.Label, t.LogicalName, o.State),
					apply: func(ctx context.Context) error { return c.InsertStatusValue(ctx, t.LogicalName, o, sol) }})
				changed = true
			}
		}
		for _, k := range t.Keys {
			if i := slices.IndexFunc(def.Keys, func(d KeyDefinition) bool { return strings.EqualFold(d.SchemaName, k.SchemaName) }); i >= 0 {
				if d := def.Keys[i]; d.Status == "Failed" {
					p.Problems = append(p.Problems, fmt.Sprintf("key %s of %s failed to build its index (duplicate values?): fix the data, then reactivate the key", k.SchemaName, t.LogicalName))
				}
				continue
			}
			keys = append(keys, Change{Summary: fmt.Sprintf("add key %s on %s (%s)", k.SchemaName, t.LogicalName, strings.Join(k.Columns, ", ")),
				apply: func(ctx context.Context) error { return c.CreateKey(ctx, t.LogicalName, k, sol) }})
			changed = true
		}
		if changed && !t.Standard {
			p.publish = append(p.publish, t.LogicalName)
		}
	}
	p.Changes = append(p.Changes, lookups...)
	p.Changes = append(p.Changes, values...)
	p.Changes = append(p.Changes, keys...)
	if len(p.publish) > 0 {
		p.add("publish customizations of "+strings.Join(p.publish, ", "), func(ctx context.Context) error { return c.PublishTables(ctx, p.publish) })
	}
	if s.App != nil {
		if err := c.planApp(ctx, s, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Plan) add(summary string, apply func(ctx context.Context) error) {
	p.Changes = append(p.Changes, Change{Summary: summary, apply: apply})
}

// planSolution makes sure the publisher (whose prefix every custom name carries) and the solution exist.
func (c *Client) planSolution(ctx context.Context, s Schema, p *Plan) error {
	if s.SolutionName == "" {
		return nil
	}
	var publisherID GUID
	havePublisher := false
	for row, err := range c.List(ctx, "publishers", &Query{Select: []string{"publisherid", "customizationprefix"}, Filter: Eq("uniquename", s.PublisherName), Top: 1}) {
		if err != nil {
			return err
		}
		publisherID, _ = row.GUID("publisherid")
		havePublisher = true
		if got := row.String("customizationprefix"); got != s.Prefix {
			p.Problems = append(p.Problems, fmt.Sprintf("publisher %s has prefix %q, the schema uses %q", s.PublisherName, got, s.Prefix))
		}
	}
	haveSolution := false
	for _, err := range c.List(ctx, "solutions", &Query{Select: []string{"solutionid"}, Filter: Eq("uniquename", s.SolutionName), Top: 1}) {
		if err != nil {
			return err
		}
		haveSolution = true
	}
	if !havePublisher {
		p.add(fmt.Sprintf("create publisher %s (prefix %s, option value prefix %d)", s.PublisherName, s.Prefix, s.OptionValuePrefix), func(ctx context.Context) error {
			id, err := c.Create(ctx, "publishers", Row{
				"uniquename": s.PublisherName, "friendlyname": s.PublisherDisplayName,
				"customizationprefix": s.Prefix, "customizationoptionvalueprefix": s.OptionValuePrefix,
			})
			publisherID = id
			return err
		})
	}
	if !haveSolution {
		p.add(fmt.Sprintf("create solution %s", s.SolutionName), func(ctx context.Context) error {
			row := Row{"uniquename": s.SolutionName, "friendlyname": s.SolutionDisplayName, "version": "1.0.0.0"}
			row.SetLookup("publisherid", "publishers", publisherID)
			_, err := c.Create(ctx, "solutions", row)
			return err
		})
	}
	return nil
}

func missingOptions(want, have []Option) []Option {
	var out []Option
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h Option) bool { return h.Value == w.Value }) {
			out = append(out, w)
		}
	}
	return out
}

func describeColumn(c Column) string {
	switch c.Type {
	case TypeString, TypeMemo:
		return fmt.Sprintf("%s, %d characters", c.Type, c.MaxLength)
	case TypeChoice:
		labels := make([]string, len(c.Options))
		for i, o := range c.Options {
			labels[i] = o.Label
		}
		return "Choice: " + strings.Join(labels, ", ")
	case TypeDateTime:
		if c.DateOnly {
			return "Date only"
		}
	}
	return string(c.Type)
}

// customizationRetries bounds retries of a metadata change refused because another customization is running.
const customizationRetries = 5

// ApplySchema carries out the plan's changes one at a time (Dataverse serializes metadata changes anyway),
// calling progress before each. A change refused because another customization is in progress is retried
// with a growing pause. It stops at the first failure; running the install again resumes, because the plan
// is made from what exists.
func (c *Client) ApplySchema(ctx context.Context, p *Plan, progress func(i int, ch Change)) error {
	for i, ch := range p.Changes {
		if progress != nil {
			progress(i, ch)
		}
		var err error
		for attempt := 0; ; attempt++ {
			err = ch.apply(ctx)
			var re *ResponseError
			if err == nil || attempt == customizationRetries || !errors.As(err, &re) || re.Code != CodeCustomizationLock {
				break
			}
			select {
			case <-time.After(time.Duration(attempt+1) * 5 * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return fmt.Errorf("dataverse: install step %d of %d (%s): %w", i+1, len(p.Changes), ch.Summary, err)
		}
	}
	return nil
}
