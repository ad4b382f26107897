package dataversetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Security: the root business unit, security roles and the privileges they hold (AddPrivilegesRole,
// ReplacePrivilegesRole, RemovePrivilegeRole, RetrieveRolePrivilegesRole), the privileges of every table
// (prvCreate<table> … prvShare<table>, generated as Dataverse generates them when a table is created),
// field security profiles and their field permissions. The simulator does not enforce roles or field
// security; it records, per user, the table privilege each Web API operation needs (PrivilegesUsed), so a
// test can derive the role a caller needs from what it actually calls.

// securityState is the part of the store that is not a table: what each role holds, and the record of
// privileges used.
type securityState struct {
	// rolePrivileges maps a role id to privilege id → depth.
	rolePrivileges map[string]map[string]dataverse.Depth
	// used maps a user id to the privileges its operations needed.
	used map[string]map[PrivilegeUse]bool
	// fieldsUsed maps a user id to its reads and writes of secured columns.
	fieldsUsed map[string]map[FieldUse]bool
	// roleMembers and profileMembers map a user id to the roles and field security profiles it is in.
	roleMembers, profileMembers map[string]map[string]bool
	// enforce refuses a role holder's operation its roles do not grant; denied lists the refusals.
	enforce bool
	denied  []string
}

// PrivilegeUse is a privilege a Web API operation needed: a table privilege (Table and Access set), or,
// for the metadata calls of the installer, Customization naming the call.
type PrivilegeUse struct {
	Table         string
	Access        dataverse.Access
	Customization string
}

// String names the privilege as Dataverse does (prvReadcsp_provider), or the customization call.
func (u PrivilegeUse) String() string {
	if u.Customization != "" {
		return "customization: " + u.Customization
	}
	return dataverse.PrivilegeName(u.Access, u.Table)
}

// FieldUse is a read or write of a secured column, which a field security profile must allow.
type FieldUse struct {
	Table, Column string
	Access        FieldAccess
}

// FieldAccess is what a field permission allows: read, create, update.
type FieldAccess string

// Field accesses (fieldpermission.canread, cancreate, canupdate).
const (
	FieldRead   FieldAccess = "read"
	FieldCreate FieldAccess = "create"
	FieldUpdate FieldAccess = "update"
)

// String reads "csp_webhooksubscription.csp_callbackurl: read".
func (f FieldUse) String() string { return f.Table + "." + f.Column + ": " + string(f.Access) }

// SecuredColumnsUsed returns the user's reads and writes of secured columns since the simulator started
// or ResetPrivilegesUsed, sorted. A query or retrieve without $select reads every secured column.
func (s *Server) SecuredColumnsUsed(user dataverse.GUID) []FieldUse {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FieldUse, 0, len(s.sec.fieldsUsed[user.String()]))
	for f := range s.sec.fieldsUsed[user.String()] {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b FieldUse) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// securityTables are the system tables of security, with the columns the Web API reads and writes.
func securityTables() []dataverse.Table {
	str := func(name string, max int) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeString, MaxLength: max}
	}
	yesNo := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeBoolean}
	}
	whole := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeInteger}
	}
	lookup := func(name, target string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeLookup, Target: target}
	}
	fieldValue := func(name string) dataverse.Column {
		return dataverse.Column{LogicalName: name, DisplayName: name, Type: dataverse.TypeChoice,
			Options: []dataverse.Option{{Value: 0, Label: "Not Allowed"}, {Value: 4, Label: "Allowed"}}}
	}
	return []dataverse.Table{
		{LogicalName: "businessunit", EntitySetName: "businessunits", DisplayName: "Business Unit", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 160), Columns: []dataverse.Column{lookup("parentbusinessunitid", "businessunit")}},
		{LogicalName: "role", EntitySetName: "roles", DisplayName: "Security Role", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 100), Columns: []dataverse.Column{
				{LogicalName: "description", DisplayName: "description", Type: dataverse.TypeMemo, MaxLength: 2000},
				lookup("businessunitid", "businessunit"),
			}},
		{LogicalName: "privilege", EntitySetName: "privileges", DisplayName: "Privilege", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 100), Columns: []dataverse.Column{
				whole("accessright"), yesNo("canbebasic"), yesNo("canbelocal"), yesNo("canbedeep"), yesNo("canbeglobal"),
			}},
		{LogicalName: "fieldsecurityprofile", EntitySetName: "fieldsecurityprofiles", DisplayName: "Field Security Profile", Standard: true, OrganizationOwned: true,
			PrimaryName: str("name", 256), Columns: []dataverse.Column{
				{LogicalName: "description", DisplayName: "description", Type: dataverse.TypeMemo, MaxLength: 2000},
			}},
		{LogicalName: "fieldpermission", EntitySetName: "fieldpermissions", DisplayName: "Field Permission", Standard: true, OrganizationOwned: true,
			PrimaryName: str("entityname", 128), Columns: []dataverse.Column{
				str("attributelogicalname", 128), fieldValue("canread"), fieldValue("cancreate"), fieldValue("canupdate"),
				lookup("fieldsecurityprofileid", "fieldsecurityprofile"),
			}},
	}
}

// accessRights are the privilege.accessright values of each access (the AccessRights flags).
var accessRights = map[dataverse.Access]int64{
	dataverse.AccessRead: 1, dataverse.AccessWrite: 2, dataverse.AccessAppend: 4, dataverse.AccessAppendTo: 16,
	dataverse.AccessCreate: 32, dataverse.AccessDelete: 65536, dataverse.AccessShare: 262144, dataverse.AccessAssign: 524288,
}

// seedSecurity creates the root business unit (WhoAmI's) and the security state.
func (s *Server) seedSecurity() {
	s.sec = securityState{rolePrivileges: map[string]map[string]dataverse.Depth{}, used: map[string]map[PrivilegeUse]bool{},
		fieldsUsed: map[string]map[FieldUse]bool{}, roleMembers: map[string]map[string]bool{}, profileMembers: map[string]map[string]bool{}}
	s.mustInsert("businessunit", map[string]any{"businessunitid": s.opts.BusinessUnitID.String(), "name": s.opts.OrganizationName})
}

// syncPrivileges gives every table its privileges, as Dataverse does when a table is created: tables
// without owners get Global-only privileges and no Assign or Share. The caller holds s.mu.
func (s *Server) syncPrivileges() {
	privs := s.tables["privilege"]
	have := map[string]bool{}
	for _, r := range privs.rows {
		name, _ := r.values["name"].(string)
		have[strings.ToLower(name)] = true
	}
	names := make([]string, 0, len(s.tables))
	for name := range s.tables {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := s.tables[name]
		for _, a := range dataverse.Accesses() {
			orgOwned := t.def.OrganizationOwned
			if orgOwned && (a == dataverse.AccessAssign || a == dataverse.AccessShare) {
				continue
			}
			pn := dataverse.PrivilegeName(a, name)
			if have[strings.ToLower(pn)] {
				continue
			}
			id := uuid.NewString()
			if _, e := s.insert(privs, id, map[string]any{"privilegeid": id, "name": pn, "accessright": accessRights[a],
				"canbebasic": !orgOwned, "canbelocal": !orgOwned, "canbedeep": !orgOwned, "canbeglobal": true}, nil); e != nil {
				panic(e.message) // the simulator's own row: a failure is a bug here
			}
		}
	}
}

var roleAction = regexp.MustCompile(`^roles\(([^()]+)\)/Microsoft\.Dynamics\.CRM\.(AddPrivilegesRole|ReplacePrivilegesRole|RemovePrivilegeRole|RetrieveRolePrivilegesRole(?:\(\))?)$`)

// security serves the security operations that are not plain table operations, checks what Dataverse
// checks on the security tables, and records the privilege the operation needs. It returns false for an
// operation the table routes serve. The caller holds s.mu.
func (s *Server) security(o op, path string) (result, bool) {
	if m := membership.FindStringSubmatch(path); m != nil {
		return s.addMember(o, m[1], m[2]), true
	}
	needs, fields := s.privilegesNeeded(o, path)
	user := o.caller.userID
	if s.sec.used[user] == nil {
		s.sec.used[user], s.sec.fieldsUsed[user] = map[PrivilegeUse]bool{}, map[FieldUse]bool{}
	}
	for _, u := range needs {
		s.sec.used[user][u] = true
	}
	for _, f := range fields {
		s.sec.fieldsUsed[user][f] = true
	}
	if e := s.checkPrivileges(user, needs); e != nil {
		return fail(e), true
	}
	switch {
	case path == "privileges" || strings.HasPrefix(path, "privileges("):
		s.syncPrivileges()
	case path == "roles" && o.method == http.MethodPost && !bytes.Contains(o.body, []byte(`"businessunitid@odata.bind"`)):
		return fail(&apiError{status: 400, code: "0x80040200", message: "A security role needs its business unit: set businessunitid@odata.bind."}), true
	case path == "fieldpermissions" && o.method == http.MethodPost:
		if e := s.checkFieldPermission(o.body); e != nil {
			return fail(e), true
		}
	}
	m := roleAction.FindStringSubmatch(path)
	if m == nil {
		return result{}, false
	}
	roleID, err := uuid.Parse(m[1])
	if err != nil || s.tables["role"].rows[roleID.String()] == nil {
		return fail(&apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("role With Id = %s Does Not Exist", m[1])}), true
	}
	id := roleID.String()
	action := strings.TrimSuffix(m[2], "()")
	wantMethod := http.MethodPost
	if action == "RetrieveRolePrivilegesRole" {
		wantMethod = http.MethodGet
	}
	if o.method != wantMethod {
		return fail(&apiError{status: 405, message: "The requested resource does not support http method '" + o.method + "'."}), true
	}
	s.syncPrivileges()
	switch action {
	case "RetrieveRolePrivilegesRole":
		return s.retrieveRolePrivileges(o, id), true
	case "RemovePrivilegeRole":
		var body struct {
			Privilege struct {
				ID string `json:"privilegeid"`
			} `json:"Privilege"`
		}
		if err := json.Unmarshal(o.body, &body); err != nil || body.Privilege.ID == "" {
			return fail(&apiError{status: 400, code: dataverse.CodeODataPayload, message: "RemovePrivilegeRole needs Privilege with its privilegeid."}), true
		}
		pid, _ := uuid.Parse(body.Privilege.ID)
		delete(s.sec.rolePrivileges[id], pid.String())
		return result{status: http.StatusNoContent}, true
	}
	var body struct {
		Privileges []struct {
			Depth          json.RawMessage `json:"Depth"`
			PrivilegeID    string          `json:"PrivilegeId"`
			BusinessUnitID string          `json:"BusinessUnitId"`
		} `json:"Privileges"`
	}
	if err := json.Unmarshal(o.body, &body); err != nil || body.Privileges == nil {
		return fail(&apiError{status: 400, code: dataverse.CodeODataPayload, message: action + " needs Privileges, a collection of RolePrivilege."}), true
	}
	set := map[string]dataverse.Depth{}
	for _, p := range body.Privileges {
		d, e := s.checkRolePrivilege(p.PrivilegeID, p.Depth)
		if e != nil {
			return fail(e), true
		}
		pid, _ := uuid.Parse(p.PrivilegeID)
		set[pid.String()] = d
	}
	if action == "ReplacePrivilegesRole" || s.sec.rolePrivileges[id] == nil {
		s.sec.rolePrivileges[id] = map[string]dataverse.Depth{}
	}
	for pid, d := range set {
		s.sec.rolePrivileges[id][pid] = d
	}
	return result{status: http.StatusNoContent}, true
}

// checkRolePrivilege refuses a privilege that does not exist or a depth it cannot have.
func (s *Server) checkRolePrivilege(id string, rawDepth json.RawMessage) (dataverse.Depth, *apiError) {
	pid, err := uuid.Parse(id)
	r := s.tables["privilege"].rows[pid.String()]
	if err != nil || r == nil {
		return "", &apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("privilege With Id = %s Does Not Exist", id)}
	}
	var name string
	if json.Unmarshal(rawDepth, &name) != nil {
		return "", &apiError{status: 400, code: dataverse.CodeODataPayload, message: fmt.Sprintf("Depth %s is not a member of Microsoft.Dynamics.CRM.PrivilegeDepth.", rawDepth)}
	}
	col := map[string]string{"Basic": "canbebasic", "Local": "canbelocal", "Deep": "canbedeep", "Global": "canbeglobal"}[name]
	if col == "" {
		return "", &apiError{status: 400, code: dataverse.CodeODataPayload, message: fmt.Sprintf("Depth '%s' is not a member of Microsoft.Dynamics.CRM.PrivilegeDepth.", name)}
	}
	if ok, _ := r.values[col].(bool); !ok {
		pn, _ := r.values["name"].(string)
		return "", &apiError{status: 400, code: "0x80040203", message: fmt.Sprintf("Privilege %s cannot be given at depth %s.", pn, name)}
	}
	return dataverse.Depth(name), nil
}

func (s *Server) retrieveRolePrivileges(o op, role string) result {
	held := s.sec.rolePrivileges[role]
	ids := make([]string, 0, len(held))
	for pid := range held {
		ids = append(ids, pid)
	}
	sort.Strings(ids)
	bu, _ := s.tables["role"].rows[role].values["businessunitid"].(string)
	list := make([]any, 0, len(ids))
	for _, pid := range ids {
		name, _ := s.tables["privilege"].rows[pid].values["name"].(string)
		list = append(list, map[string]any{"Depth": string(held[pid]), "PrivilegeId": pid, "BusinessUnitId": bu, "PrivilegeName": name})
	}
	return result{status: 200, body: map[string]any{
		"@odata.context": o.base() + "$metadata#Microsoft.Dynamics.CRM.RetrieveRolePrivilegesRoleResponse",
		"RolePrivileges": list,
	}}
}

// checkFieldPermission refuses a field permission on a column that is not secured, as Dataverse does.
func (s *Server) checkFieldPermission(body []byte) *apiError {
	var fp struct {
		Entity    string `json:"entityname"`
		Attribute string `json:"attributelogicalname"`
	}
	if err := json.Unmarshal(body, &fp); err != nil {
		return nil // the table route reports the payload
	}
	t := s.tables[fp.Entity]
	if t == nil {
		return &apiError{status: 400, code: "0x80040203", message: fmt.Sprintf("Entity %s does not exist.", fp.Entity)}
	}
	c, ok := t.cols[fp.Attribute]
	if !ok {
		return &apiError{status: 400, code: "0x80040203", message: fmt.Sprintf("Attribute %s does not exist on entity %s.", fp.Attribute, fp.Entity)}
	}
	if !c.Secured {
		return &apiError{status: 400, code: "0x80040203", message: fmt.Sprintf("Attribute %s of entity %s is not secured: enable column security before giving field permissions on it.", fp.Attribute, fp.Entity)}
	}
	return nil
}

// privilegesNeeded returns the privileges an operation needs: Read for a query or a retrieve, Create or
// Write for a create, update or upsert (Create when an upsert creates), Delete, and Append on the row's
// table plus AppendTo on the target's for every lookup it sets. The installer's metadata calls are
// customizations.
func (s *Server) privilegesNeeded(o op, path string) ([]PrivilegeUse, []FieldUse) {
	var needs []PrivilegeUse
	var fields []FieldUse
	use := func(u PrivilegeUse) { needs = append(needs, u) }
	if isMetadataPath(path) {
		head, _, _ := strings.Cut(path, "(")
		head, _, _ = strings.Cut(head, "/")
		use(PrivilegeUse{Customization: o.method + " " + head})
		return needs, fields
	}
	if path == "" || whoAmIPath.MatchString(path) {
		return needs, fields
	}
	if m := roleAction.FindStringSubmatch(path); m != nil {
		access := dataverse.AccessWrite
		if strings.HasPrefix(m[2], "Retrieve") {
			access = dataverse.AccessRead
		}
		use(PrivilegeUse{Table: "role", Access: access})
		return needs, fields
	}
	var t *table
	var r *record
	if m := rowAddress.FindStringSubmatch(path); m != nil {
		if t = s.sets[m[1]]; t != nil {
			r, _, _, _, _ = s.address(t, m[2])
		}
	} else {
		t = s.sets[path]
	}
	if t == nil {
		return needs, fields
	}
	name := t.def.LogicalName
	switch o.method {
	case http.MethodGet:
		use(PrivilegeUse{Table: name, Access: dataverse.AccessRead})
		sel := strings.Split(o.query.Get("$select"), ",")
		for _, c := range t.def.AllColumns() {
			if c.Secured && (o.query.Get("$select") == "" || slices.Contains(sel, c.LogicalName)) {
				fields = append(fields, FieldUse{Table: name, Column: c.LogicalName, Access: FieldRead})
			}
		}
		return needs, fields
	case http.MethodDelete:
		use(PrivilegeUse{Table: name, Access: dataverse.AccessDelete})
		return needs, fields
	case http.MethodPost:
		use(PrivilegeUse{Table: name, Access: dataverse.AccessCreate})
	case http.MethodPatch:
		if r == nil {
			use(PrivilegeUse{Table: name, Access: dataverse.AccessCreate})
		} else {
			use(PrivilegeUse{Table: name, Access: dataverse.AccessWrite})
		}
	default:
		return needs, fields
	}
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(o.body))
	if dec.Decode(&raw) != nil {
		return needs, fields
	}
	for k, v := range raw {
		if c, ok := t.cols[k]; ok && c.Secured {
			access := FieldCreate
			if o.method == http.MethodPatch && r != nil {
				access = FieldUpdate
			}
			fields = append(fields, FieldUse{Table: name, Column: k, Access: access})
		}
		ref, ok := v.(string)
		if !strings.HasSuffix(k, "@odata.bind") || !ok {
			continue
		}
		if i := strings.Index(ref, dataverse.APIPath); i >= 0 {
			ref = ref[i+len(dataverse.APIPath):]
		}
		ref = strings.TrimPrefix(ref, "/")
		if m := rowAddress.FindStringSubmatch(ref); m != nil {
			if target := s.sets[m[1]]; target != nil {
				use(PrivilegeUse{Table: name, Access: dataverse.AccessAppend})
				use(PrivilegeUse{Table: target.def.LogicalName, Access: dataverse.AccessAppendTo})
			}
		}
	}
	return needs, fields
}

// PrivilegesUsed returns the privileges the user's Web API operations have needed since the simulator
// started or ResetPrivilegesUsed, sorted by name.
func (s *Server) PrivilegesUsed(user dataverse.GUID) []PrivilegeUse {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PrivilegeUse, 0, len(s.sec.used[user.String()]))
	for u := range s.sec.used[user.String()] {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b PrivilegeUse) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// ResetPrivilegesUsed forgets the privileges recorded so far, for every user.
func (s *Server) ResetPrivilegesUsed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sec.used, s.sec.fieldsUsed = map[string]map[PrivilegeUse]bool{}, map[string]map[FieldUse]bool{}
}

// RolePrivileges returns the privileges a role holds, by name (prvReadcsp_provider → Global).
func (s *Server) RolePrivileges(role dataverse.GUID) map[string]dataverse.Depth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]dataverse.Depth{}
	for pid, d := range s.sec.rolePrivileges[role.String()] {
		name, _ := s.tables["privilege"].rows[pid].values["name"].(string)
		out[name] = d
	}
	return out
}

var membership = regexp.MustCompile(`^systemusers\(([^()]+)\)/(systemuserroles_association|systemuserprofiles_association)/\$ref$`)

// addMember serves the association of a user with a role or a field security profile.
func (s *Server) addMember(o op, userRef, relationship string) result {
	if o.method != http.MethodPost {
		return fail(&apiError{status: 405, message: "The requested resource does not support http method '" + o.method + "'."})
	}
	uid, err := uuid.Parse(userRef)
	if err != nil || s.tables["systemuser"].rows[uid.String()] == nil {
		return fail(&apiError{status: 404, code: dataverse.CodeObjectDoesNotExist, message: fmt.Sprintf("systemuser With Id = %s Does Not Exist", userRef)})
	}
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
	want, members := "role", s.sec.roleMembers
	if relationship == "systemuserprofiles_association" {
		want, members = "fieldsecurityprofile", s.sec.profileMembers
	}
	if target.table.def.LogicalName != want {
		return fail(&apiError{status: 400, code: dataverse.CodeODataPayload, message: fmt.Sprintf("%s associates a systemuser with a %s, not a %s.", relationship, want, target.table.def.LogicalName)})
	}
	if members[uid.String()] == nil {
		members[uid.String()] = map[string]bool{}
	}
	members[uid.String()][target.record.id] = true
	return result{status: http.StatusNoContent}
}

// checkPrivileges refuses an operation when enforcement is on, the user holds at least one role, and its
// roles do not grant a privilege the operation needs (depth is not checked: every privilege held counts
// for every row). Users without roles are not checked, so the simulator's application user can do
// anything until a test gives it a role.
func (s *Server) checkPrivileges(user string, needs []PrivilegeUse) *apiError {
	roles := s.sec.roleMembers[user]
	if !s.sec.enforce || len(roles) == 0 {
		return nil
	}
	held := map[string]bool{}
	for role := range roles {
		for pid := range s.sec.rolePrivileges[role] {
			name, _ := s.tables["privilege"].rows[pid].values["name"].(string)
			held[strings.ToLower(name)] = true
		}
	}
	for _, u := range needs {
		if held[strings.ToLower(u.String())] {
			continue
		}
		var msg string
		if u.Customization != "" {
			msg = fmt.Sprintf("Principal user (Id=%s, type=8, roleCount=%d, privilegeCount=%d) does not hold the privileges to customize the system (%s).", user, len(roles), len(held), u.Customization)
		} else {
			s.syncPrivileges()
			pid := ""
			for id, r := range s.tables["privilege"].rows {
				if name, _ := r.values["name"].(string); strings.EqualFold(name, u.String()) {
					pid = id
				}
			}
			msg = fmt.Sprintf("Principal user (Id=%s, type=8, roleCount=%d, privilegeCount=%d) is missing %s privilege (Id=%s) for entity '%s'.", user, len(roles), len(held), u, pid, u.Table)
		}
		s.sec.denied = append(s.sec.denied, msg)
		return &apiError{status: http.StatusForbidden, code: dataverse.CodePrivilegeDenied, message: msg}
	}
	return nil
}

// EnforcePrivileges switches enforcement of security roles on or off (off at start): when on, a user who
// holds at least one security role (systemuserroles_association) is refused, with 403 and Dataverse's
// PrivilegeDenied error, any operation that needs a table privilege none of its roles grants, and any
// customization. Depth and field security are not enforced.
func (s *Server) EnforcePrivileges(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sec.enforce = on
}

// PrivilegesDenied returns the messages of the operations enforcement refused.
func (s *Server) PrivilegesDenied() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sec.denied)
}

// RolesOf returns the ids of the roles a user holds.
func (s *Server) RolesOf(user dataverse.GUID) []string { return s.membersOf(s.sec.roleMembers, user) }

// FieldSecurityProfilesOf returns the ids of the field security profiles a user is in.
func (s *Server) FieldSecurityProfilesOf(user dataverse.GUID) []string {
	return s.membersOf(s.sec.profileMembers, user)
}

func (s *Server) membersOf(m map[string]map[string]bool, user dataverse.GUID) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(m[user.String()]))
	for id := range m[user.String()] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
