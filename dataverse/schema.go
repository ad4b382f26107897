package dataverse

import (
	"fmt"
	"strings"
	"unicode/utf16"
)

// ColumnType is the kind of a Dataverse column (its AttributeType).
type ColumnType string

// Column types the client can declare and install.
const (
	TypeString   ColumnType = "String"
	TypeMemo     ColumnType = "Memo"
	TypeInteger  ColumnType = "Integer"
	TypeDecimal  ColumnType = "Decimal"
	TypeMoney    ColumnType = "Money"
	TypeBoolean  ColumnType = "Boolean"
	TypeDateTime ColumnType = "DateTime"
	TypeChoice   ColumnType = "Picklist"
	TypeLookup   ColumnType = "Lookup"
	TypeState    ColumnType = "State"
	TypeStatus   ColumnType = "Status"
	TypeID       ColumnType = "Uniqueidentifier"
)

// Option is one value of a choice (or status reason) column.
type Option struct {
	Value int
	Label string
	// State is the statecode a status reason belongs to (status reasons only).
	State int
}

// Column declares one column of a table.
type Column struct {
	// LogicalName is the lowercase name used in the Web API (csp_tenantid). It is also the schema name and,
	// for lookups, the navigation property name, so that @odata.bind never depends on letter case.
	LogicalName string
	DisplayName string
	Description string
	Type        ColumnType
	// MaxLength bounds String and Memo columns.
	MaxLength int
	// MinValue and MaxValue bound Integer and Decimal columns (both zero: Dataverse's full range).
	MinValue, MaxValue int64
	// Precision is the number of decimals of Decimal columns.
	Precision int
	// DateOnly makes a DateTime column a calendar date without time.
	DateOnly bool
	// Options are the values of a Choice column.
	Options []Option
	// Target is the logical name of the table a Lookup points at.
	Target string
	// Required makes the column application-required (ApplicationRequired).
	Required bool
	// Secured puts the column under field-level security (for secrets such as callback URLs).
	Secured bool
	// Format is the text format of a String column: Text (default), Email, Url, Phone.
	Format string
	// ConnectorOwned marks a column only the connector writes (statuses, messages, claims, Partner Center
	// ids): forms show it read-only, in the section that belongs to the connector.
	ConnectorOwned bool
}

// AlternateKey declares a unique key other than the primary id, used to upsert by natural identity.
type AlternateKey struct {
	SchemaName string
	Columns    []string // logical names; lookups by their column name, not _x_value
}

// Table declares one table: its names, columns, keys and status reasons.
type Table struct {
	LogicalName   string
	EntitySetName string
	DisplayName   string
	PluralName    string
	Description   string
	// PrimaryName is the table's primary name column (a String).
	PrimaryName Column
	// OrganizationOwned tables have no owner; the default is user-owned.
	OrganizationOwned bool
	Columns           []Column
	Keys              []AlternateKey
	// StatusReasons are statuscode values beyond the two every custom table has (1 Active in state 0,
	// 2 Inactive in state 1).
	StatusReasons []Option
	// Standard tables exist in every environment: the installer checks them and never creates them.
	Standard bool
	// PrimaryID names the primary id column of a system table whose name is not <logicalname>id
	// (systemform: formid); empty for every other table.
	PrimaryID string
}

// PrimaryKey is the table's primary id column: <logicalname>id, unless PrimaryID says otherwise.
func (t Table) PrimaryKey() string {
	if t.PrimaryID != "" {
		return t.PrimaryID
	}
	return t.LogicalName + "id"
}

// Column returns the declared column with this logical name, including the primary name, the primary key
// and the state and status columns every table has.
func (t Table) Column(name string) (Column, bool) {
	if name == t.PrimaryName.LogicalName && name != "" {
		return t.PrimaryName, true
	}
	for _, c := range t.Columns {
		if c.LogicalName == name {
			return c, true
		}
	}
	for _, c := range t.SystemColumns() {
		if c.LogicalName == name {
			return c, true
		}
	}
	return Column{}, false
}

// SystemColumns are the columns Dataverse adds to every table the connector uses.
func (t Table) SystemColumns() []Column {
	return []Column{
		{LogicalName: t.PrimaryKey(), DisplayName: t.DisplayName, Type: TypeID},
		{LogicalName: "statecode", DisplayName: "Status", Type: TypeState, Options: []Option{{Value: 0, Label: "Active"}, {Value: 1, Label: "Inactive"}}},
		{LogicalName: "statuscode", DisplayName: "Status Reason", Type: TypeStatus, Options: t.AllStatusReasons()},
		{LogicalName: "createdon", DisplayName: "Created On", Type: TypeDateTime},
		{LogicalName: "modifiedon", DisplayName: "Modified On", Type: TypeDateTime},
		{LogicalName: "versionnumber", DisplayName: "Version Number", Type: TypeInteger},
	}
}

// AllStatusReasons returns the default status reasons plus the declared ones.
func (t Table) AllStatusReasons() []Option {
	out := []Option{{Value: 1, Label: "Active", State: 0}, {Value: 2, Label: "Inactive", State: 1}}
	for _, s := range t.StatusReasons {
		if s.Value == 1 || s.Value == 2 {
			continue
		}
		out = append(out, s)
	}
	return out
}

// AllColumns returns the primary name and the declared columns (not the system ones).
func (t Table) AllColumns() []Column {
	out := make([]Column, 0, len(t.Columns)+1)
	if t.PrimaryName.LogicalName != "" {
		out = append(out, t.PrimaryName)
	}
	return append(out, t.Columns...)
}

// Schema is a set of tables that refer to each other.
type Schema struct {
	// Prefix is the publisher's customization prefix (csp): every custom table and column starts with it
	// and an underscore.
	Prefix string
	// OptionValuePrefix is the publisher's choice value prefix: custom option values are
	// OptionValuePrefix*10000 + n.
	OptionValuePrefix int
	// Publisher and Solution name the solution the installer puts the tables in.
	PublisherName, PublisherDisplayName string
	SolutionName, SolutionDisplayName   string
	Tables                              []Table
	// App is the model-driven app installed with the tables (nil: tables only).
	App *App
}

// Table returns the table with this logical name.
func (s Schema) Table(logicalName string) (Table, bool) {
	for _, t := range s.Tables {
		if t.LogicalName == logicalName {
			return t, true
		}
	}
	return Table{}, false
}

// TableBySet returns the table with this entity set name.
func (s Schema) TableBySet(entitySet string) (Table, bool) {
	for _, t := range s.Tables {
		if t.EntitySetName == entitySet {
			return t, true
		}
	}
	return Table{}, false
}

// Validate checks the declaration itself: names carry the prefix, choices use the option value prefix,
// lookups point at declared tables, keys name declared columns. It reports every problem at once.
func (s Schema) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	prefix := s.Prefix + "_"
	low, high := s.OptionValuePrefix*10000, s.OptionValuePrefix*10000+9999
	sets := map[string]bool{}
	for _, t := range s.Tables {
		if sets[t.EntitySetName] {
			add("entity set %s declared twice", t.EntitySetName)
		}
		sets[t.EntitySetName] = true
		if t.EntitySetName == "" {
			add("table %s has no entity set name", t.LogicalName)
		}
		custom := !t.Standard
		if custom && !strings.HasPrefix(t.LogicalName, prefix) {
			add("table %s does not start with %s", t.LogicalName, prefix)
		}
		if custom && (t.PrimaryName.LogicalName == "" || t.PrimaryName.Type != TypeString) {
			add("table %s needs a String primary name column", t.LogicalName)
		}
		seen := map[string]bool{}
		for _, c := range t.AllColumns() {
			if seen[c.LogicalName] {
				add("column %s.%s declared twice", t.LogicalName, c.LogicalName)
			}
			seen[c.LogicalName] = true
			if !columnName.MatchString(c.LogicalName) || strings.ToLower(c.LogicalName) != c.LogicalName {
				add("column %s.%s: logical names are lowercase letters, digits and underscores", t.LogicalName, c.LogicalName)
			}
			if custom && !strings.HasPrefix(c.LogicalName, prefix) {
				add("column %s.%s does not start with %s", t.LogicalName, c.LogicalName, prefix)
			}
			switch c.Type {
			case TypeString, TypeMemo:
				if c.MaxLength <= 0 {
					add("column %s.%s needs a MaxLength", t.LogicalName, c.LogicalName)
				}
			case TypeChoice:
				if len(c.Options) == 0 {
					add("choice %s.%s has no options", t.LogicalName, c.LogicalName)
				}
				for _, o := range c.Options {
					if custom && (o.Value < low || o.Value > high) {
						add("choice %s.%s option %d (%s) is outside the publisher's range %d–%d", t.LogicalName, c.LogicalName, o.Value, o.Label, low, high)
					}
				}
			case TypeLookup:
				if _, ok := s.Table(c.Target); !ok {
					add("lookup %s.%s points at undeclared table %s", t.LogicalName, c.LogicalName, c.Target)
				}
			case TypeInteger, TypeDecimal, TypeMoney, TypeBoolean, TypeDateTime, TypeID, TypeState, TypeStatus:
			default:
				add("column %s.%s has unknown type %q", t.LogicalName, c.LogicalName, c.Type)
			}
		}
		for _, k := range t.Keys {
			for _, col := range k.Columns {
				if _, ok := t.Column(col); !ok {
					add("key %s of %s names undeclared column %s", k.SchemaName, t.LogicalName, col)
				}
			}
		}
		for _, sr := range t.StatusReasons {
			if custom && sr.Value > 2 && (sr.Value < low || sr.Value > high) {
				add("status reason %s.%d (%s) is outside the publisher's range", t.LogicalName, sr.Value, sr.Label)
			}
		}
	}
	if s.App != nil {
		problems = append(problems, s.App.problems(s)...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("dataverse: schema: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Ellipsis ends a text that FitText shortened.
const Ellipsis = "…"

// TextLength is the length of s as Dataverse measures a String or Memo column against its MaxLength: in
// UTF-16 code units (.NET string length), so a character outside the Basic Multilingual Plane, such as
// most emoji, counts 2.
func TextLength(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// FitText returns s unchanged when it fits in maxLength UTF-16 code units (see TextLength), else its
// longest prefix of whole characters that fits together with a closing Ellipsis. A character is never
// split, so no lone surrogate reaches Dataverse. maxLength <= 0 means no limit.
func FitText(s string, maxLength int) string {
	if maxLength <= 0 || len(s) <= maxLength || TextLength(s) <= maxLength {
		return s // len(s) bytes is never fewer than its UTF-16 units
	}
	budget := maxLength - TextLength(Ellipsis)
	if budget < 0 {
		return ""
	}
	n, end := 0, len(s)
	for i, r := range s {
		if n+utf16.RuneLen(r) > budget {
			end = i
			break
		}
		n += utf16.RuneLen(r)
	}
	return s[:end] + Ellipsis
}

// Fit shortens every text value of row written to a String or Memo column of t to the column's MaxLength
// (FitText). Other values, and properties that are not declared columns, are left as they are.
func (t Table) Fit(row Row) {
	for name, v := range row {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if c, ok := t.Column(name); ok && (c.Type == TypeString || c.Type == TypeMemo) {
			row[name] = FitText(s, c.MaxLength)
		}
	}
}
