package event

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/dataverse"
)

// InspectJSON is the machine-readable form of a decoded event that `connector inspect --output json`
// prints: lookups as {"table","id","name"}, choices as integers, money as numbers, dates in RFC 3339.
type InspectJSON struct {
	Message            string                    `json:"message"`
	Table              string                    `json:"table"`
	ID                 string                    `json:"id"`
	OrganizationID     string                    `json:"organizationId"`
	OrganizationName   string                    `json:"organizationName,omitempty"`
	CorrelationID      string                    `json:"correlationId"`
	InitiatingUserID   string                    `json:"initiatingUserId"`
	UserID             string                    `json:"userId"`
	Depth              int                       `json:"depth"`
	OperationCreatedOn *string                   `json:"operationCreatedOn"` // null when the message had none
	Truncated          bool                      `json:"truncated"`
	Changed            []string                  `json:"changed"`
	Attributes         map[string]any            `json:"attributes"`
	FormattedValues    map[string]string         `json:"formattedValues,omitempty"`
	Target             *InspectRef               `json:"target,omitempty"`
	Parameters         map[string]any            `json:"parameters,omitempty"`
	PreImage           map[string]any            `json:"preImage"`
	PostImage          map[string]any            `json:"postImage"`
	PreImages          map[string]map[string]any `json:"preImages,omitempty"`
	PostImages         map[string]map[string]any `json:"postImages,omitempty"`
}

// InspectRef is a lookup in inspect's JSON.
type InspectRef struct {
	Table string `json:"table"`
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
}

// Inspect turns an event into its JSON form.
func Inspect(e Event) InspectJSON {
	out := InspectJSON{
		Message: e.Message, Table: e.Table, ID: e.RowID.String(), OrganizationID: e.OrganizationID.String(),
		OrganizationName: e.OrganizationName, CorrelationID: e.CorrelationID, InitiatingUserID: e.InitiatingUserID.String(),
		UserID: e.UserID.String(), Depth: e.Depth, Truncated: e.Truncated,
		Changed: append([]string{}, e.ChangedColumns()...), Attributes: map[string]any{},
	}
	if !e.OperationCreatedOn.IsZero() {
		when := e.OperationCreatedOn.Format(time.RFC3339)
		out.OperationCreatedOn = &when
	}
	if e.Target != nil {
		out.Attributes = jsonAttributes(e.Target.Attributes)
		out.FormattedValues = e.Target.FormattedValues
	}
	if e.TargetRef != nil {
		out.Target = &InspectRef{Table: e.TargetRef.Table, ID: e.TargetRef.ID.String(), Name: e.TargetRef.Name}
	}
	if len(e.Parameters) > 0 {
		out.Parameters = jsonAttributes(e.Parameters)
	}
	out.PreImages, out.PreImage = jsonImages(e.PreImages)
	out.PostImages, out.PostImage = jsonImages(e.PostImages)
	return out
}

// jsonImages renders every image and picks the one for preImage/postImage: the only one, or the first by
// alias when there are several.
func jsonImages(images map[string]Entity) (map[string]map[string]any, map[string]any) {
	if len(images) == 0 {
		return nil, map[string]any{}
	}
	all := map[string]map[string]any{}
	for alias, ent := range images {
		all[alias] = jsonAttributes(ent.Attributes)
	}
	first := slices.Sorted(maps.Keys(all))[0]
	if len(all) == 1 {
		return nil, all[first]
	}
	return all, all[first]
}

func jsonAttributes(attrs map[string]any) map[string]any {
	out := make(map[string]any, len(attrs))
	for k, v := range attrs {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case dataverse.Ref:
		return InspectRef{Table: x.Table, ID: x.ID.String(), Name: x.Name}
	case time.Time:
		return x.Format(time.RFC3339)
	case Choice:
		return int(x)
	case Money:
		return float64(x)
	case []Choice:
		out := make([]int, len(x))
		for i, c := range x {
			out[i] = int(c)
		}
		return out
	case Entity:
		return map[string]any{"table": x.Table, "id": x.ID.String(), "attributes": jsonAttributes(x.Attributes)}
	}
	return v
}

// WriteInspect writes an event for a person: what happened to which row, who did it, and every value.
func WriteInspect(w io.Writer, e Event) {
	fmt.Fprintf(w, "%s of %s %s\n", e.Message, e.Table, e.RowID)
	org := e.OrganizationID.String()
	if e.OrganizationName != "" {
		org = e.OrganizationName + " (" + org + ")"
	}
	fmt.Fprintf(w, "  organization  %s\n", org)
	if !e.OperationCreatedOn.IsZero() {
		fmt.Fprintf(w, "  when          %s\n", e.OperationCreatedOn.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  initiated by  user %s (running as %s), depth %d\n", e.InitiatingUserID, e.UserID, e.Depth)
	fmt.Fprintf(w, "  correlation   %s\n", e.CorrelationID)
	if e.Truncated {
		fmt.Fprintln(w, "  TRUNCATED     Dataverse dropped the values and images because the message was too large; the connector re-reads the row.")
	}
	if e.TargetRef != nil {
		fmt.Fprintf(w, "  target        %s\n", refText(*e.TargetRef))
	}
	if e.Target != nil {
		fmt.Fprintf(w, "Changed columns: %s\n", strings.Join(e.Target.Columns, ", "))
		writeEntity(w, "Values", *e.Target)
	}
	if len(e.Parameters) > 0 {
		fmt.Fprintln(w, "Parameters:")
		for _, k := range slices.Sorted(maps.Keys(e.Parameters)) {
			fmt.Fprintf(w, "  %s = %s\n", k, valueText(e.Parameters[k]))
		}
	}
	for _, alias := range slices.Sorted(maps.Keys(e.PreImages)) {
		writeEntity(w, "Pre image "+alias, e.PreImages[alias])
	}
	for _, alias := range slices.Sorted(maps.Keys(e.PostImages)) {
		writeEntity(w, "Post image "+alias, e.PostImages[alias])
	}
}

func writeEntity(w io.Writer, title string, ent Entity) {
	fmt.Fprintf(w, "%s:\n", title)
	for _, col := range ent.Columns {
		line := fmt.Sprintf("  %s = %s", col, valueText(ent.Attributes[col]))
		if f, ok := ent.FormattedValues[col]; ok {
			line += fmt.Sprintf(" (%q)", f)
		}
		fmt.Fprintln(w, line)
	}
}

func refText(r dataverse.Ref) string {
	s := r.Table + " " + r.ID.String()
	if r.Name != "" {
		s += fmt.Sprintf(" (%q)", r.Name)
	}
	return s
}

func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", x)
	case dataverse.Ref:
		return refText(x)
	case time.Time:
		return x.Format(time.RFC3339)
	case Choice:
		return fmt.Sprintf("option %d", int(x))
	case Money:
		return fmt.Sprintf("money %v", float64(x))
	case json.RawMessage:
		return string(x)
	}
	return fmt.Sprint(v)
}
