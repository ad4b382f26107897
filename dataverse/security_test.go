package dataverse_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// withSecurity returns the schema with its app's roles and profiles changed by edit (the app is copied).
func withSecurity(edit func(a *dataverse.App)) dataverse.Schema {
	s := schema.Schema()
	a := *s.App
	a.Roles = slices.Clone(a.Roles)
	for i := range a.Roles {
		a.Roles[i].Privileges = slices.Clone(a.Roles[i].Privileges)
	}
	a.FieldSecurityProfiles = slices.Clone(a.FieldSecurityProfiles)
	edit(&a)
	s.App = &a
	return s
}

func roleIndex(a *dataverse.App, name string) int {
	return slices.IndexFunc(a.Roles, func(r dataverse.Role) bool { return r.Name == name })
}

func TestSecurityProblems(t *testing.T) {
	t.Parallel()
	require.NoError(t, schema.Schema().Validate(), "the declaration itself is sound")
	tests := []struct {
		name string
		edit func(a *dataverse.App)
		want string
	}{
		{"privilege on an unknown table", func(a *dataverse.App) {
			i := roleIndex(a, schema.ReaderRole)
			a.Roles[i].Privileges = append(a.Roles[i].Privileges, dataverse.Privilege{Table: "csp_invoice", Access: dataverse.AccessRead, Depth: dataverse.DepthGlobal})
		}, `role "CSP Connector Reader" grants Read on table csp_invoice, which the schema does not declare`},
		{"privilege granted twice", func(a *dataverse.App) {
			i := roleIndex(a, schema.ReaderRole)
			a.Roles[i].Privileges = append(a.Roles[i].Privileges, a.Roles[i].Privileges[0])
		}, `role "CSP Connector Reader" grants prvReadcsp_provider twice`},
		{"unknown depth", func(a *dataverse.App) {
			a.Roles[roleIndex(a, schema.ReaderRole)].Privileges[0].Depth = "Organization"
		}, `role "CSP Connector Reader" grants Read on csp_provider at unknown depth "Organization"`},
		{"profile names a column that is not secured", func(a *dataverse.App) {
			a.FieldSecurityProfiles[0].Permissions = append(a.FieldSecurityProfiles[0].Permissions,
				dataverse.FieldPermission{Table: schema.TableProvider, Column: "csp_name", Read: true})
		}, `field security profile "CSP Connector Secrets" names column csp_provider.csp_name, which is not Secured`},
		{"profile names an unknown column", func(a *dataverse.App) {
			a.FieldSecurityProfiles[0].Permissions = append(a.FieldSecurityProfiles[0].Permissions,
				dataverse.FieldPermission{Table: schema.TableWebhookSubscription, Column: "csp_secret", Read: true})
		}, `field security profile "CSP Connector Secrets" names column csp_webhooksubscription.csp_secret, which the schema does not declare`},
		{"secured column no profile covers", func(a *dataverse.App) {
			a.FieldSecurityProfiles = nil
		}, `secured column csp_webhooksubscription.csp_callbackurl is in no field security profile: nobody could read it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := withSecurity(tt.edit).Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// installedBlank installs s in a blank environment and returns the client and the simulator.
func installedBlank(t *testing.T, s dataverse.Schema) (*dataverse.Client, *dataversetest.Server) {
	t.Helper()
	c, srv := blankEnv(t)
	installed(t, c, s)
	return c, srv
}

// roleID finds a role by name.
func roleID(t *testing.T, ctx context.Context, c *dataverse.Client, name string) dataverse.GUID {
	t.Helper()
	for row, err := range c.List(ctx, "roles", &dataverse.Query{Select: []string{"roleid"}, Filter: dataverse.Eq("name", name)}) {
		require.NoError(t, err)
		id, ok := row.GUID("roleid")
		require.True(t, ok)
		return id
	}
	t.Fatalf("no role %q", name)
	return dataverse.GUID{}
}

func declared(r dataverse.Role) map[string]dataverse.Depth {
	out := map[string]dataverse.Depth{}
	for _, p := range r.Privileges {
		out[p.Name()] = p.Depth
	}
	return out
}

// TestInstallSecurityCreatesRolesAndProfileAndASecondRunChangesNothing: the three roles are created in
// the root business unit holding exactly their declared privileges, the profile with its column
// permissions; installing again finds nothing to do.
func TestInstallSecurityCreatesRolesAndProfileAndASecondRunChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := schema.Schema()
	c, srv := blankEnv(t)
	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	for _, r := range s.App.Roles {
		assert.Contains(t, plan.Summaries(), "create security role \""+r.Name+"\" with "+itoa(len(r.Privileges))+" privilege(s)")
	}
	assert.Contains(t, plan.Summaries(), `create field security profile "CSP Connector Secrets" with 1 column permission(s)`)
	for _, line := range plan.Summaries() {
		if strings.Contains(line, "security") {
			t.Log(line)
		}
	}
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	root := srv.Rows("businessunit")
	require.Len(t, root, 1)
	for _, r := range s.App.Roles {
		id := roleID(t, ctx, c, r.Name)
		row, ok := srv.Row("role", id.String())
		require.True(t, ok)
		assert.Equal(t, root[0]["businessunitid"], row["businessunitid"], "%s lives in the root business unit", r.Name)
		assert.Equal(t, r.Description, row["description"])
		assert.Equal(t, declared(r), srv.RolePrivileges(id), "%s holds exactly its declared privileges", r.Name)
	}
	connector := s.App.Roles[roleIndex(s.App, schema.ConnectorRole)]
	assert.Contains(t, declared(connector), "prvCreateAppNotification")
	assert.Contains(t, declared(connector), "prvAppendToUser", "systemuser's privileges keep the stem User")
	assert.NotContains(t, declared(connector), "prvDeletecsp_licensechangelog", "the connector never deletes a license change")

	perms := srv.Rows("fieldpermission")
	require.Len(t, perms, 1)
	assert.Equal(t, "csp_webhooksubscription", perms[0]["entityname"])
	assert.Equal(t, "csp_callbackurl", perms[0]["attributelogicalname"])
	assert.EqualValues(t, 4, perms[0]["canread"], "Allowed")
	assert.EqualValues(t, 4, perms[0]["cancreate"], "Allowed")
	assert.EqualValues(t, 0, perms[0]["canupdate"], "Not Allowed: the connector never changes a callback URL")

	again, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.Empty(t, again.Summaries(), "a second install has nothing to do")
}

// TestInstallSecurityBringsRolesAndProfileBackToTheDeclaration: a privilege added to the declaration, one
// granted by hand, a description changed, a column permission narrowed by hand: the next plan names each,
// applying it restores the declaration exactly, and the plan after that is empty.
func TestInstallSecurityBringsRolesAndProfileBackToTheDeclaration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := installedBlank(t, schema.Schema())

	// By hand, in the environment: the connector's role gets Delete on license changes, the reader's
	// description is edited, the profile also allows updates.
	connector := roleID(t, ctx, c, schema.ConnectorRole)
	var del dataverse.GUID
	for row, err := range c.List(ctx, "privileges", &dataverse.Query{Filter: dataverse.Eq("name", "prvDeletecsp_licensechangelog")}) {
		require.NoError(t, err)
		del, _ = row.GUID("privilegeid")
	}
	bu := srv.Rows("businessunit")[0]["businessunitid"].(string)
	require.NoError(t, c.AddRolePrivileges(ctx, connector, []dataverse.RolePrivilege{{PrivilegeID: del, BusinessUnitID: uuid.MustParse(bu), Depth: dataverse.DepthGlobal}}))
	reader := roleID(t, ctx, c, schema.ReaderRole)
	_, err := c.Update(ctx, "roles", reader, dataverse.Row{"description": "edited"}, nil)
	require.NoError(t, err)
	perm := srv.Rows("fieldpermission")[0]
	permID := uuid.MustParse(perm["fieldpermissionid"].(string))
	_, err = c.Update(ctx, "fieldpermissions", permID, dataverse.Row{"canupdate": 4}, nil)
	require.NoError(t, err)

	// In the declaration: readers also see teams.
	s := withSecurity(func(a *dataverse.App) {
		i := roleIndex(a, schema.ReaderRole)
		a.Roles[i].Privileges = append(a.Roles[i].Privileges, dataverse.Privilege{Table: schema.TableTeam, Access: dataverse.AccessRead, Depth: dataverse.DepthGlobal})
	})
	plan, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.Equal(t, []string{
		`update security role "CSP Connector": privileges: remove prvDeletecsp_licensechangelog`,
		`update security role "CSP Connector Reader": description`,
		`update security role "CSP Connector Reader": privileges: add prvReadTeam (Global)`,
		`field security profile "CSP Connector Secrets": allow read, create on csp_webhooksubscription.csp_callbackurl (was different)`,
	}, plan.Summaries())
	require.NoError(t, c.ApplySchema(ctx, plan, nil))

	assert.Equal(t, declared(s.App.Roles[roleIndex(s.App, schema.ConnectorRole)]), srv.RolePrivileges(connector))
	assert.Equal(t, declared(s.App.Roles[roleIndex(s.App, schema.ReaderRole)]), srv.RolePrivileges(reader))
	got, _ := srv.Row("fieldpermission", permID.String())
	assert.EqualValues(t, 0, got["canupdate"])
	again, err := c.PlanSchema(ctx, s)
	require.NoError(t, err)
	assert.Empty(t, again.Summaries())
}

// TestSimulatorRefusesWhatDataverseRefusesInSecurity: a field permission on a column that is not secured,
// a privilege at a depth its table does not have, a privilege that does not exist.
func TestSimulatorRefusesWhatDataverseRefusesInSecurity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := installedBlank(t, schema.Schema())
	profile := uuid.MustParse(srv.Rows("fieldsecurityprofile")[0]["fieldsecurityprofileid"].(string))
	row := dataverse.Row{"entityname": schema.TableProvider, "attributelogicalname": "csp_name", "canread": 4, "cancreate": 0, "canupdate": 0}
	row.SetLookup("fieldsecurityprofileid", "fieldsecurityprofiles", profile)
	_, err := c.Create(ctx, "fieldpermissions", row)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not secured")

	reader := roleID(t, ctx, c, schema.ReaderRole)
	bu := uuid.MustParse(srv.Rows("businessunit")[0]["businessunitid"].(string))
	var orgOwned dataverse.GUID
	for row, err := range c.List(ctx, "privileges", &dataverse.Query{Filter: dataverse.Eq("name", "prvReadRole")}) {
		require.NoError(t, err)
		orgOwned, _ = row.GUID("privilegeid")
	}
	err = c.AddRolePrivileges(ctx, reader, []dataverse.RolePrivilege{{PrivilegeID: orgOwned, BusinessUnitID: bu, Depth: dataverse.DepthBasic}})
	require.Error(t, err, "a table without owners has Global privileges only")
	assert.Contains(t, err.Error(), "cannot be given at depth Basic")
	err = c.AddRolePrivileges(ctx, reader, []dataverse.RolePrivilege{{PrivilegeID: bu, BusinessUnitID: bu, Depth: dataverse.DepthGlobal}})
	require.Error(t, err)
	assert.True(t, dataverse.IsNotFound(err))
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSimulatorEnforcesRolesWhenAsked: with enforcement on, a user holding the Reader role reads the
// connector's tables but is refused a create with Dataverse's PrivilegeDenied error, naming the missing
// privilege; a user without roles is not checked; with enforcement off nobody is.
func TestSimulatorEnforcesRolesWhenAsked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := installedBlank(t, schema.Schema())
	reader, err := srv.Insert("systemuser", map[string]any{"fullname": "Rita Reader"})
	require.NoError(t, err)
	readerID := uuid.MustParse(reader)
	role := roleID(t, ctx, c, schema.ReaderRole)
	require.NoError(t, c.AssignRole(ctx, readerID, role))
	require.NoError(t, c.AssignRole(ctx, readerID, role), "assigning twice changes nothing")
	assert.Equal(t, []string{role.String()}, srv.RolesOf(readerID))
	profile := uuid.MustParse(srv.Rows("fieldsecurityprofile")[0]["fieldsecurityprofileid"].(string))
	require.NoError(t, c.AddToFieldSecurityProfile(ctx, srv.UserID(), profile))
	assert.Equal(t, []string{profile.String()}, srv.FieldSecurityProfilesOf(srv.UserID()))
	err = c.AssignRole(ctx, readerID, profile)
	require.Error(t, err, "a profile is not a role")

	as, err := dataverse.NewClient(srv.URL, nil, &dataverse.ClientOptions{HTTPClient: srv.ClientAs(readerID)})
	require.NoError(t, err)
	provider := dataverse.Row{"csp_name": "Manual distributor"}
	_, err = as.Create(ctx, schema.SetProviders, provider)
	require.NoError(t, err, "enforcement is off at start")

	srv.EnforcePrivileges(true)
	for _, err := range as.List(ctx, schema.SetProviders, &dataverse.Query{Select: []string{"csp_name"}}) {
		require.NoError(t, err, "the Reader role reads providers")
	}
	_, err = as.Create(ctx, schema.SetProviders, provider)
	require.Error(t, err)
	assert.True(t, dataverse.IsForbidden(err), "%v", err)
	var re *dataverse.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 403, re.StatusCode)
	assert.Equal(t, dataverse.CodePrivilegeDenied, re.Code)
	assert.Contains(t, re.Message, "is missing prvCreatecsp_provider privilege")
	assert.Len(t, srv.PrivilegesDenied(), 1)

	_, err = c.Create(ctx, schema.SetProviders, provider)
	assert.NoError(t, err, "the application user holds no role here: not checked")
}
