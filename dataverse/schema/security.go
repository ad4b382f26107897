package schema

import (
	"slices"

	"github.com/cspconnector/csp-connector/dataverse"
)

// The security roles and the field security profile the installer creates.
const (
	// ConnectorRole is for the connector's application user: exactly the privileges its calls need.
	ConnectorRole = "CSP Connector"
	// AdminRole is for the people who run the connector: everything on its tables.
	AdminRole = "CSP Connector Admin"
	// ReaderRole is for the people who look: read-only on its tables.
	ReaderRole = "CSP Connector Reader"
	// SecretsProfile is the field security profile of the secured columns (webhook callback URLs).
	SecretsProfile = "CSP Connector Secrets"
)

// connectorAccess is what the running connector does to each table, as the Dataverse simulator records
// it while the connector runs every workload on the sandbox; TestConnectorRoleGrantsExactlyWhatTheConnectorCalls
// (connector/sandbox_security_test.go) fails, naming the difference, when this list and the calls part.
var connectorAccess = []struct {
	table  string
	access []dataverse.Access
}{
	{TableProvider, []dataverse.Access{read, write, appendTo}},
	{TableProviderAccount, []dataverse.Access{create, read, write, appendTo, appendFrom}},
	{TableAgreementTemplate, []dataverse.Access{read, write, appendTo}},
	{TableAgreement, []dataverse.Access{create, read, write, appendFrom}},
	{TableSubscription, []dataverse.Access{create, read, write, appendTo, appendFrom}},
	{TableLicenseChangeLog, []dataverse.Access{create, read, write, appendFrom}},
	{TableJob, []dataverse.Access{create, read, write, appendTo}},
	{TableJobRun, []dataverse.Access{create, read, write, appendFrom}},
	{TableWebhookSubscription, []dataverse.Access{create, read, write, del}},
	{TableNotification, []dataverse.Access{create, read, write, del}}, // the notification outbox
	{TableAccount, []dataverse.Access{read, appendTo}},                // matching customers, mapping provider accounts
	{TableContact, []dataverse.Access{read}},                          // matching customers by e-mail domain
	{TableSystemUser, []dataverse.Access{appendTo}},                   // the recipient of an in-app notification
	// In-app notifications: Read because Dataverse asks a sender for it (Create and Read on appnotification;
	// reference/dataverse.md §10), though the connector never reads one back.
	{TableAppNotification, []dataverse.Access{create, read, appendFrom}},
	// Which tables take bulk messages (CreateMultiple, UpdateMultiple, UpsertMultiple) is read once from
	// sdkmessages and sdkmessagefilters (dataverse/bulk.go).
	{"sdkmessage", []dataverse.Access{read}},
	{"sdkmessagefilter", []dataverse.Access{read}},
}

// Short names for connectorAccess.
const (
	create     = dataverse.AccessCreate
	read       = dataverse.AccessRead
	write      = dataverse.AccessWrite
	del        = dataverse.AccessDelete
	appendFrom = dataverse.AccessAppend
	appendTo   = dataverse.AccessAppendTo
)

// roles are the connector's security roles. Every privilege on a table is Global: the connector works on
// every row of its tables whoever owns them, and the people who run it see all of them; people read only
// their own in-app notifications.
func roles(s dataverse.Schema) []dataverse.Role {
	global := func(table string, access ...dataverse.Access) []dataverse.Privilege {
		out := make([]dataverse.Privilege, len(access))
		for i, a := range access {
			out[i] = dataverse.Privilege{Table: table, Access: a, Depth: dataverse.DepthGlobal}
		}
		return out
	}
	var connector, admin, reader []dataverse.Privilege
	for _, c := range connectorAccess {
		connector = append(connector, global(c.table, c.access...)...)
	}
	full := []dataverse.Access{dataverse.AccessCreate, dataverse.AccessRead, dataverse.AccessWrite, dataverse.AccessDelete, dataverse.AccessAppend, dataverse.AccessAppendTo}
	// Admins also set the lookups of the connector's tables to the standard tables (an Account on a
	// provider account), which needs Read and AppendTo there.
	standard := map[string][]dataverse.Access{}
	for _, t := range s.Tables {
		if t.Standard {
			continue
		}
		admin = append(admin, global(t.LogicalName, full...)...)
		reader = append(reader, global(t.LogicalName, dataverse.AccessRead)...)
		for _, c := range t.Columns {
			if target, ok := s.Table(c.Target); ok && c.Type == dataverse.TypeLookup && target.Standard {
				standard[target.LogicalName] = []dataverse.Access{dataverse.AccessRead, dataverse.AccessAppendTo}
			}
		}
	}
	for _, name := range []string{TableAccount, TableContact, TableSystemUser} {
		if _, ok := standard[name]; !ok {
			standard[name] = []dataverse.Access{dataverse.AccessRead}
		}
	}
	names := make([]string, 0, len(standard))
	for name := range standard {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		admin = append(admin, global(name, standard[name]...)...)
		reader = append(reader, global(name, dataverse.AccessRead)...)
	}
	// Both see the in-app notifications the connector sends them, and only their own (Basic).
	own := dataverse.Privilege{Table: TableAppNotification, Access: dataverse.AccessRead, Depth: dataverse.DepthBasic}
	admin, reader = append(admin, own), append(reader, own)
	return []dataverse.Role{
		{Name: ConnectorRole, Privileges: connector,
			Description: "For the CSP Connector's application user only: the table privileges the connector's calls need, nothing more. Installed and kept exact by `connector dataverse install`."},
		{Name: AdminRole, Privileges: admin,
			Description: "For the people who run the CSP Connector: create, read, update and delete on its tables, and read on the accounts, contacts and users they link to. Give it with a base role such as Basic User."},
		{Name: ReaderRole, Privileges: reader,
			Description: "For the people who follow the CSP Connector's work: read-only on its tables and on the accounts, contacts and users they link to. Give it with a base role such as Basic User."},
	}
}

// connectorSecrets is what the connector does with each secured column, as the Dataverse simulator records
// it (the same test as connectorAccess): it stores a flow's callback URL when the flow subscribes, and
// reads it to post events; it never changes one (a flow that moves subscribes again).
var connectorSecrets = []dataverse.FieldPermission{
	{Table: TableWebhookSubscription, Column: "csp_callbackurl", Read: true, Create: true},
}

// fieldSecurityProfiles say who reads the secured columns: the connector only (its application user is
// the profile's one member). Apart from System Administrators, whom Dataverse always lets read secured
// columns, nobody else sees a webhook's callback URL.
func fieldSecurityProfiles(dataverse.Schema) []dataverse.FieldSecurityProfile {
	return []dataverse.FieldSecurityProfile{{Name: SecretsProfile, Permissions: connectorSecrets,
		Description: "The secured columns of the CSP Connector (webhook callback URLs, which carry their flow's signature): for the connector's application user only."}}
}
