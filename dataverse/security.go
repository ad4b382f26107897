package dataverse

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// Sources. Confirmed in Microsoft's documentation: the RolePrivilege complex type (Depth, PrivilegeId,
// BusinessUnitId) of AddPrivilegesRole, ReplacePrivilegesRole and RetrieveRolePrivilegesRole (bound to
// role); RemovePrivilegeRole; the PrivilegeDepth members Basic, Local, Deep, Global (0–3); the privilege
// table's canbebasic … canbeglobal and AccessRights values; fieldpermission's canread, cancreate and
// canupdate (0 Not Allowed, 4 Allowed) and the fieldsecurityprofiles and fieldpermissions entity sets;
// Append and AppendTo as the two sides of setting a lookup (SetRelated's privileges); System
// Administrators reading every secured column. Confirmed in public code that calls the Web API: privilege
// names are prv + access + the table's schema name (prvReadnew_Widget), systemuser's stem is User
// (prvReadUser), RetrieveRolePrivilegesRole answers RolePrivileges with PrivilegeName, the relationships
// systemuserroles_association and systemuserprofiles_association. Inferred: appnotification's stem
// AppNotification for Create and Append (Microsoft's pages name prvReadAppNotification only); that a role
// is created with businessunitid@odata.bind and fieldpermission with fieldsecurityprofileid@odata.bind;
// the root business unit found by _parentbusinessunitid_value eq null; the wording of the simulator's
// PrivilegeDenied message and of its refusal of a field permission on a column that is not secured.

// Access is what a table privilege allows on the table's rows (the privilege's access right).
type Access string

// The access rights of table privileges. Append is the right to point a row's lookup at another row,
// AppendTo the right to be pointed at: setting csp_provideraccount.csp_account needs Append on
// csp_provideraccount and AppendTo on account.
const (
	AccessCreate   Access = "Create"
	AccessRead     Access = "Read"
	AccessWrite    Access = "Write"
	AccessDelete   Access = "Delete"
	AccessAppend   Access = "Append"
	AccessAppendTo Access = "AppendTo"
	AccessAssign   Access = "Assign"
	AccessShare    Access = "Share"
)

// Accesses returns the access rights in the order Dataverse lists them.
func Accesses() []Access {
	return []Access{AccessCreate, AccessRead, AccessWrite, AccessDelete, AccessAppend, AccessAppendTo, AccessAssign, AccessShare}
}

// Depth is how far a privilege reaches (the PrivilegeDepth enum type of the Web API).
type Depth string

// Privilege depths: the user's own rows, their business unit's, theirs and the units below, every row.
// A table without owners (organization-owned) has Global privileges only.
const (
	DepthBasic  Depth = "Basic"
	DepthLocal  Depth = "Local"
	DepthDeep   Depth = "Deep"
	DepthGlobal Depth = "Global"
)

// Privilege is one table privilege a role grants: the access on the table, to the depth.
type Privilege struct {
	Table  string
	Access Access
	Depth  Depth
}

// Name is the privilege's name in the environment: prv + access + the table's schema name
// (prvReadcsp_provider, prvReadAccount, prvReadUser for systemuser).
func (p Privilege) Name() string { return PrivilegeName(p.Access, p.Table) }

// PrivilegeName names the privilege of access on a table. Custom tables' schema names are their logical
// names (the installer creates them so); standard tables keep Microsoft's schema names, and systemuser
// keeps its legacy stem User.
func PrivilegeName(a Access, table string) string {
	stem, ok := privilegeStems[table]
	if !ok {
		stem = table
	}
	return "prv" + string(a) + stem
}

// privilegeStems are the schema names of the system tables whose privileges the installer or the
// simulator names.
var privilegeStems = map[string]string{
	"account": "Account", "contact": "Contact", "systemuser": "User", "team": "Team",
	"appnotification": "AppNotification", "businessunit": "BusinessUnit", "role": "Role", "privilege": "Privilege",
	"fieldsecurityprofile": "FieldSecurityProfile", "fieldpermission": "FieldPermission",
	"publisher": "Publisher", "solution": "Solution", "serviceendpoint": "ServiceEndpoint",
	"sdkmessage": "SdkMessage", "sdkmessagefilter": "SdkMessageFilter",
	"sdkmessageprocessingstep": "SdkMessageProcessingStep", "sdkmessageprocessingstepimage": "SdkMessageProcessingStepImage",
}

// systemTables are the organization-owned system tables the connector reads without declaring them in its
// schema: the bulk message support check reads sdkmessages (dataverse/bulk.go).
var systemTables = map[string]bool{"sdkmessage": true, "sdkmessagefilter": true}

// Role is a security role and the table privileges it grants, created under the environment's root
// business unit. The installer makes the role's privileges exactly these: one granted by hand in the
// environment is taken away on the next install.
type Role struct {
	Name, Description string
	Privileges        []Privilege
}

// FieldPermission is what a field security profile allows on one secured column.
type FieldPermission struct {
	Table, Column        string
	Read, Create, Update bool
}

// FieldSecurityProfile grants read, create and update of secured columns to the users and teams in it.
// Nobody else reads or writes a secured column, whatever their roles.
type FieldSecurityProfile struct {
	Name, Description string
	Permissions       []FieldPermission
}

// securityProblems checks the roles and profiles against the schema: every privilege names a declared
// table, at a depth the table has; every profile names secured columns; every secured column is covered.
func (a *App) securityProblems(s Schema) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	roles := map[string]bool{}
	for _, r := range a.Roles {
		if roles[r.Name] {
			add("role %q is declared twice", r.Name)
		}
		roles[r.Name] = true
		seen := map[string]bool{}
		for _, p := range r.Privileges {
			t, ok := s.Table(p.Table)
			if _, system := systemTables[p.Table]; !ok && system {
				t, ok = Table{LogicalName: p.Table, Standard: true, OrganizationOwned: true}, true
			}
			switch {
			case !ok:
				add("role %q grants %s on table %s, which the schema does not declare", r.Name, p.Access, p.Table)
				continue
			case !slices.Contains(Accesses(), p.Access):
				add("role %q grants unknown access %q on %s", r.Name, p.Access, p.Table)
			case !slices.Contains([]Depth{DepthBasic, DepthLocal, DepthDeep, DepthGlobal}, p.Depth):
				add("role %q grants %s on %s at unknown depth %q", r.Name, p.Access, p.Table, p.Depth)
			case t.OrganizationOwned && p.Depth != DepthGlobal:
				add("role %q grants %s on %s at depth %s, but the table has no owners: only Global applies", r.Name, p.Access, p.Table, p.Depth)
			case t.OrganizationOwned && (p.Access == AccessAssign || p.Access == AccessShare):
				add("role %q grants %s on %s, which has no owners to assign or share", r.Name, p.Access, p.Table)
			}
			if seen[p.Name()] {
				add("role %q grants %s twice", r.Name, p.Name())
			}
			seen[p.Name()] = true
		}
	}
	covered := map[string]bool{}
	for _, f := range a.FieldSecurityProfiles {
		for _, fp := range f.Permissions {
			t, ok := s.Table(fp.Table)
			if !ok {
				add("field security profile %q names table %s, which the schema does not declare", f.Name, fp.Table)
				continue
			}
			col, ok := t.Column(fp.Column)
			switch {
			case !ok:
				add("field security profile %q names column %s.%s, which the schema does not declare", f.Name, fp.Table, fp.Column)
			case !col.Secured:
				add("field security profile %q names column %s.%s, which is not Secured", f.Name, fp.Table, fp.Column)
			}
			covered[fp.Table+"."+fp.Column] = true
		}
	}
	for _, t := range s.Tables {
		for _, c := range t.AllColumns() {
			if c.Secured && !covered[t.LogicalName+"."+c.LogicalName] {
				add("secured column %s.%s is in no field security profile: nobody could read it", t.LogicalName, c.LogicalName)
			}
		}
	}
	return out
}

// Field permission values (fieldpermission.canread, cancreate, canupdate).
const (
	fieldNotAllowed = 0
	fieldAllowed    = 4
)

func fieldValue(allowed bool) int {
	if allowed {
		return fieldAllowed
	}
	return fieldNotAllowed
}

// RolePrivilege is a privilege as a role holds it (the RolePrivilege complex type).
type RolePrivilege struct {
	PrivilegeID    GUID   `json:"PrivilegeId"`
	PrivilegeName  string `json:"PrivilegeName,omitempty"`
	BusinessUnitID GUID   `json:"BusinessUnitId"`
	Depth          Depth  `json:"Depth"`
}

// RolePrivileges returns the privileges a role holds.
//
// API: GET /roles({id})/Microsoft.Dynamics.CRM.RetrieveRolePrivilegesRole()
func (c *Client) RolePrivileges(ctx context.Context, role GUID) ([]RolePrivilege, error) {
	var out struct {
		RolePrivileges []struct {
			PrivilegeID    GUID            `json:"PrivilegeId"`
			PrivilegeName  string          `json:"PrivilegeName"`
			BusinessUnitID GUID            `json:"BusinessUnitId"`
			Depth          json.RawMessage `json:"Depth"`
		} `json:"RolePrivileges"`
	}
	path := "roles(" + role.String() + ")/Microsoft.Dynamics.CRM.RetrieveRolePrivilegesRole()"
	if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: path, idempotent: true}, &out); err != nil {
		return nil, fmt.Errorf("dataverse: privileges of role %s: %w", role, err)
	}
	privs := make([]RolePrivilege, len(out.RolePrivileges))
	for i, p := range out.RolePrivileges {
		d, err := decodeDepth(p.Depth)
		if err != nil {
			return nil, fmt.Errorf("dataverse: privileges of role %s: %s: %w", role, p.PrivilegeName, err)
		}
		privs[i] = RolePrivilege{PrivilegeID: p.PrivilegeID, PrivilegeName: p.PrivilegeName, BusinessUnitID: p.BusinessUnitID, Depth: d}
	}
	return privs, nil
}

// decodeDepth reads a PrivilegeDepth as the Web API writes it (the member's name), or as its number.
func decodeDepth(raw json.RawMessage) (Depth, error) {
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		for _, d := range []Depth{DepthBasic, DepthLocal, DepthDeep, DepthGlobal} {
			if strings.EqualFold(name, string(d)) {
				return d, nil
			}
		}
		return "", fmt.Errorf("unknown privilege depth %q", name)
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 || n > 3 {
		return "", fmt.Errorf("unknown privilege depth %s", raw)
	}
	return []Depth{DepthBasic, DepthLocal, DepthDeep, DepthGlobal}[n], nil
}

// AddRolePrivileges adds privileges to a role (a privilege it holds already takes the new depth).
//
// API: POST /roles({id})/Microsoft.Dynamics.CRM.AddPrivilegesRole
func (c *Client) AddRolePrivileges(ctx context.Context, role GUID, privs []RolePrivilege) error {
	return c.rolePrivilegesAction(ctx, role, "AddPrivilegesRole", privs)
}

// ReplaceRolePrivileges makes privs the role's whole privilege set.
//
// API: POST /roles({id})/Microsoft.Dynamics.CRM.ReplacePrivilegesRole
func (c *Client) ReplaceRolePrivileges(ctx context.Context, role GUID, privs []RolePrivilege) error {
	return c.rolePrivilegesAction(ctx, role, "ReplacePrivilegesRole", privs)
}

func (c *Client) rolePrivilegesAction(ctx context.Context, role GUID, action string, privs []RolePrivilege) error {
	type wire struct {
		Depth          Depth  `json:"Depth"`
		PrivilegeID    string `json:"PrivilegeId"`
		BusinessUnitID string `json:"BusinessUnitId"`
	}
	list := make([]wire, len(privs))
	for i, p := range privs {
		list[i] = wire{Depth: p.Depth, PrivilegeID: p.PrivilegeID.String(), BusinessUnitID: p.BusinessUnitID.String()}
	}
	body, err := json.Marshal(map[string]any{"Privileges": list})
	if err != nil {
		return err
	}
	path := "roles(" + role.String() + ")/Microsoft.Dynamics.CRM." + action
	if _, err := c.doJSON(ctx, request{method: http.MethodPost, path: path, body: body, idempotent: true}, nil); err != nil {
		return fmt.Errorf("dataverse: %s on role %s: %w", action, role, err)
	}
	return nil
}

// privilegeIDs resolves privilege names to their rows, once per plan: the privileges of tables the plan
// creates exist only after it has created them, so they are looked up when the first role is written.
type privilegeIDs struct {
	c     *Client
	ids   map[string]GUID
	depth map[string][]Depth // the depths each privilege allows
}

func (r *privilegeIDs) resolve(ctx context.Context, names []string) error {
	if r.ids == nil {
		r.ids, r.depth = map[string]GUID{}, map[string][]Depth{}
	}
	var want []any
	for _, n := range names {
		if _, ok := r.ids[strings.ToLower(n)]; !ok {
			want = append(want, n)
		}
	}
	// In keeps the filter one condition; chunks keep the URL short.
	for chunk := range slices.Chunk(want, 50) {
		q := &Query{Select: []string{"privilegeid", "name", "canbebasic", "canbelocal", "canbedeep", "canbeglobal"}, Filter: In("name", chunk...)}
		for row, err := range r.c.List(ctx, "privileges", q) {
			if err != nil {
				return fmt.Errorf("dataverse: read privileges: %w", err)
			}
			id, _ := row.GUID("privilegeid")
			name := strings.ToLower(row.String("name"))
			r.ids[name] = id
			var depths []Depth
			for col, d := range map[string]Depth{"canbebasic": DepthBasic, "canbelocal": DepthLocal, "canbedeep": DepthDeep, "canbeglobal": DepthGlobal} {
				if ok, _ := row.Bool(col); ok {
					depths = append(depths, d)
				}
			}
			r.depth[name] = depths
		}
	}
	var missing []string
	for _, n := range names {
		if _, ok := r.ids[strings.ToLower(n)]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dataverse: the environment has no privilege %s (is its table installed?)", strings.Join(missing, ", "))
	}
	return nil
}

// rolePrivileges resolves a declared role's privileges for the Web API, under business unit bu.
func (r *privilegeIDs) rolePrivileges(ctx context.Context, role Role, bu GUID) ([]RolePrivilege, error) {
	names := make([]string, len(role.Privileges))
	for i, p := range role.Privileges {
		names[i] = p.Name()
	}
	if err := r.resolve(ctx, names); err != nil {
		return nil, err
	}
	out := make([]RolePrivilege, len(role.Privileges))
	for i, p := range role.Privileges {
		key := strings.ToLower(p.Name())
		if !slices.Contains(r.depth[key], p.Depth) {
			return nil, fmt.Errorf("dataverse: role %q: privilege %s cannot be %s in this environment", role.Name, p.Name(), p.Depth)
		}
		out[i] = RolePrivilege{PrivilegeID: r.ids[key], PrivilegeName: p.Name(), BusinessUnitID: bu, Depth: p.Depth}
	}
	return out, nil
}

// planSecurity plans the roles and the field security profiles: a role or profile missing is created with
// its privileges or permissions, in the schema's solution; one whose description, privileges or
// permissions differ from the declaration is brought back to it. The roles live in the root business
// unit, and every role may use the app (app, planned before them).
func (c *Client) planSecurity(ctx context.Context, s Schema, a *App, app *appModule, p *Plan) error {
	if len(a.Roles) > 0 {
		roles, err := c.planRoles(ctx, a.Roles, s.SolutionName, p)
		if err != nil {
			return err
		}
		if err := c.planAppRoles(ctx, a, app, roles, p); err != nil {
			return err
		}
	}
	if len(a.FieldSecurityProfiles) > 0 {
		if err := c.planFieldSecurity(ctx, s, a.FieldSecurityProfiles, p); err != nil {
			return err
		}
	}
	return nil
}

// planAppRoles plans the roles' use of the app: a role not associated with the app is (a user sees a
// model-driven app only through a role it is associated with). The app's roles are read once; a role or
// app the plan creates gets its id when the plan applies. Roles associated by hand are left as they are.
func (c *Client) planAppRoles(ctx context.Context, a *App, app *appModule, roles map[string]GUID, p *Plan) error {
	have := map[GUID]bool{}
	if app.exists {
		var err error
		if have, err = c.AppRoles(ctx, app.id); err != nil {
			return err
		}
	}
	for _, r := range a.Roles {
		if id, ok := roles[strings.ToLower(r.Name)]; ok && have[id] {
			continue
		}
		p.add(fmt.Sprintf("let security role %q use app %s", r.Name, a.UniqueName), func(ctx context.Context) error {
			id, ok := roles[strings.ToLower(r.Name)]
			if !ok {
				return fmt.Errorf("dataverse: security role %q was not created", r.Name)
			}
			if app.id == (GUID{}) {
				return fmt.Errorf("dataverse: app %s was not created", a.UniqueName)
			}
			return c.associate(ctx, "appmodules", app.id, "appmoduleroles_association", "roles", id)
		})
	}
	return nil
}

// AppRoles returns the ids of the security roles associated with an app module (whose users see the app).
//
// API: GET /appmodules({id})/appmoduleroles_association?$select=roleid
func (c *Client) AppRoles(ctx context.Context, app GUID) (map[GUID]bool, error) {
	out := map[GUID]bool{}
	next, query := "appmodules("+app.String()+")/appmoduleroles_association", url.Values{"$select": {"roleid"}}
	for next != "" {
		var pg page
		if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: next, query: query, idempotent: true}, &pg); err != nil {
			return nil, fmt.Errorf("dataverse: read the roles of app %s: %w", app, err)
		}
		for _, row := range pg.Value {
			if id, ok := row.GUID("roleid"); ok {
				out[id] = true
			}
		}
		next, query = pg.NextLink, nil
	}
	return out, nil
}

// rootBusinessUnit is the environment's top business unit, the one without a parent.
//
// API: GET /businessunits?$filter=_parentbusinessunitid_value eq null
func (c *Client) rootBusinessUnit(ctx context.Context) (GUID, error) {
	q := &Query{Select: []string{"businessunitid"}, Filter: IsNull(LookupValue("parentbusinessunitid")), Top: 1}
	for row, err := range c.List(ctx, "businessunits", q) {
		if err != nil {
			return GUID{}, fmt.Errorf("dataverse: read the root business unit: %w", err)
		}
		if id, ok := row.GUID("businessunitid"); ok {
			return id, nil
		}
	}
	return GUID{}, fmt.Errorf("dataverse: the environment has no root business unit")
}

// planRoles plans the roles, and returns their ids by lower-cased name: those found now, and, once the
// plan has created them, the others.
func (c *Client) planRoles(ctx context.Context, roles []Role, solution string, p *Plan) (map[string]GUID, error) {
	bu, err := c.rootBusinessUnit(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]any, len(roles))
	for i, r := range roles {
		names[i] = r.Name
	}
	existing := map[string]Row{}
	q := &Query{Select: []string{"roleid", "name", "description"}, Filter: And(LookupEq("businessunitid", bu), In("name", names...))}
	for row, err := range c.List(ctx, "roles", q) {
		if err != nil {
			return nil, fmt.Errorf("dataverse: read roles: %w", err)
		}
		existing[strings.ToLower(row.String("name"))] = row
	}
	roleIDs := map[string]GUID{}
	for name, row := range existing {
		roleIDs[name], _ = row.GUID("roleid")
	}
	ids := &privilegeIDs{c: c}
	for _, r := range roles {
		have, ok := existing[strings.ToLower(r.Name)]
		if !ok {
			p.add(fmt.Sprintf("create security role %q with %d privilege(s)", r.Name, len(r.Privileges)), func(ctx context.Context) error {
				privs, err := ids.rolePrivileges(ctx, r, bu)
				if err != nil {
					return err
				}
				row := Row{"name": r.Name, "description": r.Description}
				row.SetLookup("businessunitid", "businessunits", bu)
				id, err := c.createInSolution(ctx, "roles", row, solution)
				if err != nil {
					return err
				}
				roleIDs[strings.ToLower(r.Name)] = id
				return c.AddRolePrivileges(ctx, id, privs)
			})
			continue
		}
		id, _ := have.GUID("roleid")
		if have.String("description") != r.Description {
			p.add(fmt.Sprintf("update security role %q: description", r.Name), func(ctx context.Context) error {
				_, err := c.Update(ctx, "roles", id, Row{"description": r.Description}, nil)
				return err
			})
		}
		held, err := c.RolePrivileges(ctx, id)
		if err != nil {
			return nil, err
		}
		if diff := privilegeDiff(r.Privileges, held); diff != "" {
			p.add(fmt.Sprintf("update security role %q: privileges: %s", r.Name, diff), func(ctx context.Context) error {
				privs, err := ids.rolePrivileges(ctx, r, bu)
				if err != nil {
					return err
				}
				return c.ReplaceRolePrivileges(ctx, id, privs)
			})
		}
	}
	return roleIDs, nil
}

// privilegeDiff describes how the held privileges differ from the declared ones ("" when they match):
// what is missing, what is extra, what has another depth.
func privilegeDiff(want []Privilege, held []RolePrivilege) string {
	have := map[string]RolePrivilege{}
	for _, h := range held {
		have[strings.ToLower(h.PrivilegeName)] = h
	}
	var add, remove, depth []string
	declared := map[string]bool{}
	for _, w := range want {
		key := strings.ToLower(w.Name())
		declared[key] = true
		h, ok := have[key]
		switch {
		case !ok:
			add = append(add, fmt.Sprintf("%s (%s)", w.Name(), w.Depth))
		case h.Depth != w.Depth:
			depth = append(depth, fmt.Sprintf("%s %s→%s", w.Name(), h.Depth, w.Depth))
		}
	}
	for _, h := range held {
		if !declared[strings.ToLower(h.PrivilegeName)] {
			remove = append(remove, h.PrivilegeName)
		}
	}
	var parts []string
	for _, part := range []struct {
		label string
		items []string
	}{{"add", add}, {"remove", remove}, {"change depth", depth}} {
		if len(part.items) > 0 {
			sort.Strings(part.items)
			parts = append(parts, part.label+" "+strings.Join(part.items, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

func (c *Client) planFieldSecurity(ctx context.Context, s Schema, profiles []FieldSecurityProfile, p *Plan) error {
	names := make([]any, len(profiles))
	for i, f := range profiles {
		names[i] = f.Name
	}
	existing := map[string]Row{}
	var ids []any
	q := &Query{Select: []string{"fieldsecurityprofileid", "name", "description"}, Filter: In("name", names...)}
	for row, err := range c.List(ctx, "fieldsecurityprofiles", q) {
		if err != nil {
			return fmt.Errorf("dataverse: read field security profiles: %w", err)
		}
		existing[strings.ToLower(row.String("name"))] = row
		id, _ := row.GUID("fieldsecurityprofileid")
		ids = append(ids, id)
	}
	perms := map[GUID][]Row{}
	if len(ids) > 0 {
		q := &Query{Select: []string{"fieldpermissionid", "entityname", "attributelogicalname", "canread", "cancreate", "canupdate", "_fieldsecurityprofileid_value"},
			Filter: In(LookupValue("fieldsecurityprofileid"), ids...)}
		for row, err := range c.List(ctx, "fieldpermissions", q) {
			if err != nil {
				return fmt.Errorf("dataverse: read field permissions: %w", err)
			}
			profile, _ := row.GUID(LookupValue("fieldsecurityprofileid"))
			perms[profile] = append(perms[profile], row)
		}
	}
	for _, f := range profiles {
		have, ok := existing[strings.ToLower(f.Name)]
		if !ok {
			p.add(fmt.Sprintf("create field security profile %q with %d column permission(s)", f.Name, len(f.Permissions)), func(ctx context.Context) error {
				id, err := c.createInSolution(ctx, "fieldsecurityprofiles", Row{"name": f.Name, "description": f.Description}, s.SolutionName)
				if err != nil {
					return err
				}
				for _, fp := range f.Permissions {
					if err := c.createFieldPermission(ctx, id, fp); err != nil {
						return err
					}
				}
				return nil
			})
			continue
		}
		id, _ := have.GUID("fieldsecurityprofileid")
		if have.String("description") != f.Description {
			p.add(fmt.Sprintf("update field security profile %q: description", f.Name), func(ctx context.Context) error {
				_, err := c.Update(ctx, "fieldsecurityprofiles", id, Row{"description": f.Description}, nil)
				return err
			})
		}
		held := map[string]Row{}
		for _, row := range perms[id] {
			held[strings.ToLower(row.String("entityname")+"."+row.String("attributelogicalname"))] = row
		}
		for _, fp := range f.Permissions {
			col := fp.Table + "." + fp.Column
			row, ok := held[col]
			delete(held, col)
			if !ok {
				p.add(fmt.Sprintf("field security profile %q: allow %s on %s", f.Name, fp.describe(), col), func(ctx context.Context) error {
					return c.createFieldPermission(ctx, id, fp)
				})
				continue
			}
			want := fp.values()
			if !sameFieldValues(row, want) {
				pid, _ := row.GUID("fieldpermissionid")
				p.add(fmt.Sprintf("field security profile %q: allow %s on %s (was different)", f.Name, fp.describe(), col), func(ctx context.Context) error {
					_, err := c.Update(ctx, "fieldpermissions", pid, want, nil)
					return err
				})
			}
		}
		extra := make([]string, 0, len(held))
		for col := range held {
			extra = append(extra, col)
		}
		sort.Strings(extra)
		for _, col := range extra {
			pid, _ := held[col].GUID("fieldpermissionid")
			p.add(fmt.Sprintf("field security profile %q: remove %s", f.Name, col), func(ctx context.Context) error {
				return c.Delete(ctx, "fieldpermissions", pid, nil)
			})
		}
	}
	return nil
}

func (fp FieldPermission) values() Row {
	return Row{"canread": fieldValue(fp.Read), "cancreate": fieldValue(fp.Create), "canupdate": fieldValue(fp.Update)}
}

func (fp FieldPermission) describe() string {
	var can []string
	for _, x := range []struct {
		ok   bool
		verb string
	}{{fp.Read, "read"}, {fp.Create, "create"}, {fp.Update, "update"}} {
		if x.ok {
			can = append(can, x.verb)
		}
	}
	if len(can) == 0 {
		return "no access"
	}
	return strings.Join(can, ", ")
}

func sameFieldValues(have, want Row) bool {
	for col, v := range want {
		n, ok := have.Int(col)
		if !ok || n != int64(v.(int)) {
			return false
		}
	}
	return true
}

// createFieldPermission adds one column to a profile. The column must be secured already: Dataverse
// refuses a permission on a column that is not.
//
// API: POST /fieldpermissions
func (c *Client) createFieldPermission(ctx context.Context, profile GUID, fp FieldPermission) error {
	row := fp.values()
	row["entityname"], row["attributelogicalname"] = fp.Table, fp.Column
	row.SetLookup("fieldsecurityprofileid", "fieldsecurityprofiles", profile)
	if _, err := c.Create(ctx, "fieldpermissions", row); err != nil {
		return fmt.Errorf("dataverse: add %s.%s to field security profile: %w", fp.Table, fp.Column, err)
	}
	return nil
}

// AssignRole gives a user a security role. Assigning a role the user holds already changes nothing.
//
// API: POST /systemusers({id})/systemuserroles_association/$ref
func (c *Client) AssignRole(ctx context.Context, user, role GUID) error {
	return c.associate(ctx, "systemusers", user, "systemuserroles_association", "roles", role)
}

// AddToFieldSecurityProfile makes a user a member of a field security profile.
//
// API: POST /systemusers({id})/systemuserprofiles_association/$ref
func (c *Client) AddToFieldSecurityProfile(ctx context.Context, user, profile GUID) error {
	return c.associate(ctx, "systemusers", user, "systemuserprofiles_association", "fieldsecurityprofiles", profile)
}

// associate links two rows through a many-to-many relationship.
func (c *Client) associate(ctx context.Context, set string, id GUID, relationship, targetSet string, target GUID) error {
	body, err := json.Marshal(map[string]string{"@odata.id": c.api.String() + targetSet + "(" + target.String() + ")"})
	if err != nil {
		return err
	}
	path := set + "(" + id.String() + ")/" + relationship + "/$ref"
	if _, err := c.doJSON(ctx, request{method: http.MethodPost, path: path, body: body, idempotent: true}, nil); err != nil {
		return fmt.Errorf("dataverse: associate %s(%s) with %s(%s): %w", set, id, targetSet, target, err)
	}
	return nil
}
