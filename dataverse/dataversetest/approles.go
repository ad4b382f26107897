package dataversetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The security roles that may use a model-driven app: the N:N relationship appmoduleroles_association
// between appmodule and role, kept as Dataverse keeps it, as rows of its intersect table appmoduleroles
// (entity set appmodulerolescollection, which the Web API only reads). A role is associated with an app by
// POST appmodules(<id>)/appmoduleroles_association/$ref {"@odata.id": "<org>/api/data/v9.2/roles(<id>)"},
// and the app's roles are read back by GET appmodules(<id>)/appmoduleroles_association. Associating a role
// the app has already changes nothing.

// appModuleRolesTable is the intersect table of appmoduleroles_association.
func appModuleRolesTable() dataverse.Table {
	id := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeID}
	}
	return dataverse.Table{LogicalName: "appmoduleroles", EntitySetName: "appmodulerolescollection", DisplayName: "App Module Roles", Standard: true,
		OrganizationOwned: true, Columns: []dataverse.Column{id("appmoduleid"), id("roleid")}}
}

var appModuleRolesPath = regexp.MustCompile(`^appmodules\(([^()]+)\)/appmoduleroles_association(/\$ref)?$`)

// appModuleRolesOp serves the association of roles with an app, its reading back, and refuses writes to
// the intersect table. handled is false for anything else. The caller holds s.mu.
func (s *Server) appModuleRolesOp(o op, path string) (res result, handled bool) {
	if path == "appmodulerolescollection" && o.method != http.MethodGet {
		return fail(&apiError{status: 405, message: "The requested resource does not support http method '" + o.method + "'."}), true
	}
	m := appModuleRolesPath.FindStringSubmatch(path)
	if m == nil {
		return result{}, false
	}
	appID, err := uuid.Parse(m[1])
	if err != nil || s.appByID(appID.String()) == nil {
		return fail(appNotFound(m[1])), true
	}
	ref := m[2] != ""
	switch {
	case o.method == http.MethodGet && !ref:
		return s.listAppRoles(o, appID.String()), true
	case o.method == http.MethodPost && ref:
		return s.associateAppRole(o, appID.String()), true
	}
	return fail(&apiError{status: 405, message: "The requested resource does not support http method '" + o.method + "'."}), true
}

func (s *Server) associateAppRole(o op, app string) result {
	var body struct {
		ID string `json:"@odata.id"`
	}
	if json.Unmarshal(o.body, &body) != nil || body.ID == "" {
		return fail(&apiError{status: 400, code: dataverse.CodeODataPayload, message: "The request body must name the row to associate in @odata.id."})
	}
	target, e := s.resolveBind(body.ID)
	if e != nil {
		return fail(e)
	}
	if name := target.table.def.LogicalName; name != "role" {
		return fail(&apiError{status: 400, code: dataverse.CodeODataPayload, message: fmt.Sprintf("appmoduleroles_association associates an appmodule with a role, not a %s.", name)})
	}
	if s.appHasRole(app, target.record.id) {
		return result{status: http.StatusNoContent}
	}
	if _, e := s.insert(s.tables["appmoduleroles"], uuid.NewString(), map[string]any{"appmoduleid": app, "roleid": target.record.id}, nil); e != nil {
		return fail(e)
	}
	return result{status: http.StatusNoContent}
}

func (s *Server) appHasRole(app, role string) bool {
	t := s.tables["appmoduleroles"]
	for _, id := range t.order {
		if r := t.rows[id]; r.values["appmoduleid"] == app && r.values["roleid"] == role {
			return true
		}
	}
	return false
}

// listAppRoles answers GET appmodules(<id>)/appmoduleroles_association: the app's roles, as role rows.
func (s *Server) listAppRoles(o op, app string) result {
	roles := s.tables["role"]
	sel, e := selection(roles, o.query.Get("$select"))
	if e != nil {
		return fail(e)
	}
	t := s.tables["appmoduleroles"]
	values := []any{}
	for _, id := range t.order {
		r := t.rows[id]
		if r.values["appmoduleid"] != app {
			continue
		}
		if role := roles.rows[str(r.values["roleid"])]; role != nil {
			values = append(values, s.render(roles, role, sel, wantsAnnotations(o.header)))
		}
	}
	return result{status: 200, body: map[string]any{"@odata.context": o.base() + "$metadata#roles", "value": values}}
}

// AppRoles returns the names of the security roles associated with an app module, in association order.
func (s *Server) AppRoles(app dataverse.GUID) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables["appmoduleroles"]
	var out []string
	for _, id := range t.order {
		r := t.rows[id]
		if !strings.EqualFold(str(r.values["appmoduleid"]), app.String()) {
			continue
		}
		if role := s.tables["role"].rows[str(r.values["roleid"])]; role != nil {
			out = append(out, str(role.values["name"]))
		}
	}
	return out
}
