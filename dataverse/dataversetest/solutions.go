package dataversetest

import (
	"strings"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Solution components: a row of a solution-aware table (a security role, a field security profile, an
// app, its sitemap, a form, a view, a web resource) created with the header MSCRM.SolutionUniqueName
// becomes a component of that solution, a solutioncomponent row (objectid, componenttype, solutionid),
// as in Dataverse; a create naming a solution that does not exist is refused. Tables created through the
// metadata API check their solution in metadata.go.

// componentTypes are the solutioncomponent.componenttype values of the solution-aware tables the
// installer writes rows of (Microsoft's componenttype choices, as public code that reads
// solutioncomponents lists them).
var componentTypes = map[string]int64{
	"role": 20, "savedquery": 26, "systemform": 60, "webresource": 61, "sitemap": 62, "fieldsecurityprofile": 70, "appmodule": 80,
}

// solutionComponentTable is solutioncomponent, with the columns the simulator fills.
func solutionComponentTable() dataverse.Table {
	return dataverse.Table{LogicalName: "solutioncomponent", EntitySetName: "solutioncomponents", DisplayName: "Solution Component", Standard: true,
		OrganizationOwned: true, Columns: []dataverse.Column{
			{LogicalName: "objectid", DisplayName: "Regarding", Type: dataverse.TypeID},
			{LogicalName: "componenttype", DisplayName: "Object Type Code", Type: dataverse.TypeInteger},
			{LogicalName: "solutionid", DisplayName: "Solution", Type: dataverse.TypeLookup, Target: "solution"},
		}}
}

// solutionID returns the id of the solution of that unique name ("" when there is none).
func (s *Server) solutionID(name string) string {
	sol := s.tables["solution"]
	for _, id := range sol.order {
		if n, _ := sol.rows[id].values["uniquename"].(string); strings.EqualFold(n, name) {
			return id
		}
	}
	return ""
}

// addToSolution records a row just created by o as a component of the solution its
// MSCRM.SolutionUniqueName header names, when the row's table is solution-aware. The caller has checked
// the solution exists (checkSolution).
func (s *Server) addToSolution(o op, t *table, id string, undoLog *[]undo) *apiError {
	name := o.header.Get("MSCRM.SolutionUniqueName")
	kind, aware := componentTypes[t.def.LogicalName]
	if name == "" || !aware {
		return nil
	}
	_, e := s.insert(s.tables["solutioncomponent"], uuid.NewString(), map[string]any{
		"objectid": id, "componenttype": kind, "solutionid": lookupValue{id: s.solutionID(name), table: "solution"},
	}, undoLog)
	return e
}
