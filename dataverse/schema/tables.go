// Package schema declares, once, the Dataverse tables the connector works with (DESIGN §3): their columns,
// choices, lookups, alternate keys and status reasons. The installer creates them from this declaration,
// the simulator validates requests against it, and the typed rows in rows.go are checked against it by
// tests, so a column renamed here and not there fails the build's tests rather than a customer's sync.
package schema

import (
	"sync"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Publisher and solution the connector's customizations belong to.
const (
	Prefix               = "csp"
	PublisherName        = "cspconnector"
	PublisherDisplayName = "CSP Connector"
	SolutionName         = "CSPConnector"
	SolutionDisplayName  = "CSP Connector"
)

// Table logical names.
const (
	TableProvider            = "csp_provider"
	TableProviderAccount     = "csp_provideraccount"
	TableAgreementTemplate   = "csp_agreementtemplate"
	TableAgreement           = "csp_agreement"
	TableSubscription        = "csp_subscription"
	TableLicenseChangeLog    = "csp_licensechangelog"
	TableJob                 = "csp_job"
	TableJobRun              = "csp_jobrun"
	TableWebhookSubscription = "csp_webhooksubscription"
	TableNotification        = "csp_notification"
	TableAccount             = "account"
	TableContact             = "contact"
	TableSystemUser          = "systemuser"
	TableTeam                = "team"
	TableAppNotification     = "appnotification"
)

// Entity set names (what the Web API addresses).
const (
	SetProviders            = "csp_providers"
	SetProviderAccounts     = "csp_provideraccounts"
	SetAgreementTemplates   = "csp_agreementtemplates"
	SetAgreements           = "csp_agreements"
	SetSubscriptions        = "csp_subscriptions"
	SetLicenseChangeLogs    = "csp_licensechangelogs"
	SetJobs                 = "csp_jobs"
	SetJobRuns              = "csp_jobruns"
	SetWebhookSubscriptions = "csp_webhooksubscriptions"
	SetNotifications        = "csp_notifications"
	SetAccounts             = "accounts"
	SetContacts             = "contacts"
	SetSystemUsers          = "systemusers"
	SetTeams                = "teams"
	SetAppNotifications     = "appnotifications"
)

// Alternate keys.
const (
	KeyProviderAccountTenant = "csp_provideraccount_tenant"
	KeyJobName               = "csp_job_name"
	KeySubscriptionPCID      = "csp_subscription_pcid"
	// KeyAgreementTemplate: one agreement per provider account and template, so creating them is an
	// upsert that a retry or a second replica cannot double.
	KeyAgreementTemplate = "csp_agreement_template"
)

func opt[T ~int](v T, label string) dataverse.Option {
	return dataverse.Option{Value: int(v), Label: label}
}

func text(name, display string, max int) dataverse.Column {
	return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeString, MaxLength: max}
}

func memo(name, display string) dataverse.Column {
	return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeMemo, MaxLength: 4000}
}

// diagnosis is the column the connector writes a Diagnose request's answer into: the check-by-check walk
// `connector diagnose` prints (csp_diagnoserequestedon asks for it).
func diagnosis() dataverse.Column {
	return dataverse.Column{LogicalName: "csp_diagnosis", DisplayName: "Diagnosis", Type: dataverse.TypeMemo, MaxLength: 20000, ConnectorOwned: true,
		Description: "What Diagnose found: every check the connector makes, its result, and the next step. The Diagnose button asks for it."}
}

func whole(name, display string) dataverse.Column {
	return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeInteger}
}

func yesNo(name, display string) dataverse.Column {
	return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeBoolean}
}

func when(name, display string) dataverse.Column {
	return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeDateTime}
}

func choice(name, display string, options ...dataverse.Option) dataverse.Column {
	return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeChoice, Options: options}
}

func lookup(name, display, target string) dataverse.Column {
	return dataverse.Column{LogicalName: name, DisplayName: display, Type: dataverse.TypeLookup, Target: target}
}

// owned marks a column only the connector writes: forms show it read-only, in the connector's section.
func owned(c dataverse.Column) dataverse.Column {
	c.ConnectorOwned = true
	return c
}

func primaryName(display string) dataverse.Column {
	return dataverse.Column{LogicalName: "csp_name", DisplayName: display, Type: dataverse.TypeString, MaxLength: 200, Required: true}
}

func table(logical, set, display, plural, description string, primary string, cols ...dataverse.Column) dataverse.Table {
	return dataverse.Table{
		LogicalName: logical, EntitySetName: set, DisplayName: display, PluralName: plural, Description: description,
		PrimaryName: primaryName(primary), Columns: cols,
	}
}

func runStatusOptions() []dataverse.Option {
	return []dataverse.Option{
		opt(RunInProgress, "In progress"), opt(RunSucceeded, "Succeeded"), opt(RunPartiallySucceeded, "Partially succeeded"),
		opt(RunFailed, "Failed"), opt(RunCancelled, "Cancelled"),
	}
}

// Schema returns the connector's tables and the standard tables it reads and writes.
func Schema() dataverse.Schema {
	provider := table(TableProvider, SetProviders, "Provider", "Providers",
		"A provider integration: Microsoft Partner Center, or a manual or do-nothing provider.", "Name",
		choice("csp_type", "Type", opt(ProviderAutomatic, "Automatic"), opt(ProviderManual, "Manual"), opt(ProviderDoNothing, "Do Nothing")),
		choice("csp_partnermodel", "Partner model", opt(PartnerDirectBill, "Direct bill"), opt(PartnerIndirectProvider, "Indirect provider"), opt(PartnerIndirectReseller, "Indirect reseller")),
		yesNo("csp_automatch", "Map provider accounts automatically"),
		owned(choice("csp_connectivitystatus", "Connectivity", opt(ConnectivityNotVerified, "Not verified"), opt(ConnectivityConnected, "Connected"), opt(ConnectivityNotConnected, "Not connected"))),
		owned(memo("csp_connectivitymessage", "Connectivity message")),
		owned(memo("csp_systemmessage", "System message")),
		owned(when("csp_lastverifiedon", "Last verified on")),
		when("csp_verifyrequestedon", "Verify requested on"),
	)

	account := table(TableProviderAccount, SetProviderAccounts, "Provider Account", "Provider Accounts",
		"One customer of a provider; for Partner Center, one customer tenant.", "Name",
		lookup("csp_provider", "Provider", TableProvider),
		owned(text("csp_tenantid", "Provider specific account ID", 100)),
		owned(text("csp_domain", "Domain", 255)),
		owned(text("csp_companyname", "Company name", 255)),
		owned(text("csp_relationship", "Relationship", 100)),
		lookup("csp_account", "Account", TableAccount),
		owned(choice("csp_mappingstatus", "Mapping status", opt(MappingUnmapped, "Unmapped"), opt(MappingAutoMapped, "Auto-mapped"), opt(MappingMapped, "Mapped"), opt(MappingAmbiguous, "Ambiguous"))),
		owned(memo("csp_mappingmessage", "Mapping message")),
		owned(lookup("csp_automappedaccount", "Auto-mapped account", TableAccount)),
		owned(when("csp_mappingnoticedon", "Mapping notice sent on")),
		owned(when("csp_lastsyncedon", "Last synced on")),
	)
	account.Keys = []dataverse.AlternateKey{{SchemaName: KeyProviderAccountTenant, Columns: []string{"csp_provider", "csp_tenantid"}}}

	template := table(TableAgreementTemplate, SetAgreementTemplates, "Agreement Template", "Agreement Templates",
		"An agreement type; an active template gets a Pending agreement for every mapped provider account.", "Name",
		text("csp_templateid", "Template ID", 100),
		choice("csp_agreementtype", "Agreement type", opt(AgreementMicrosoftCustomerAgreement, "Microsoft Customer Agreement"), opt(AgreementMicrosoftCloudAgreement, "Microsoft Cloud Agreement"), opt(AgreementPartner, "Partner agreement")),
		lookup("csp_provider", "Provider", TableProvider),
		dataverse.Column{LogicalName: "csp_agreementlink", DisplayName: "Agreement link", Type: dataverse.TypeString, MaxLength: 2000, Format: "Url"},
		when("csp_createrequestedon", "Create agreements requested on"),
		owned(memo("csp_createmessage", "Create agreements message")),
		owned(when("csp_createdoneon", "Create agreements done on")),
	)

	agreement := table(TableAgreement, SetAgreements, "Agreement", "Agreements",
		"One customer's acceptance of one agreement template.", "Name",
		lookup("csp_provideraccount", "Provider account", TableProviderAccount),
		lookup("csp_account", "Account", TableAccount),
		lookup("csp_agreementtemplate", "Agreement template", TableAgreementTemplate),
		// People set the attestation status (Link requested) and the path, so neither is ConnectorOwned.
		choice("csp_attestationstatus", "Attestation status",
			opt(AttestationNotStarted, "Not started"), opt(AttestationLinkRequested, "Link requested"), opt(AttestationLinkSent, "Link sent"),
			opt(AttestationCustomerAccepted, "Customer accepted"), opt(AttestationAttested, "Attested"), opt(AttestationAcceptedDirectly, "Accepted directly"),
			opt(AttestationExpired, "Expired"), opt(AttestationFailed, "Failed")),
		choice("csp_acceptancepath", "Acceptance path", opt(AcceptanceLink, "Acceptance link"), opt(AcceptancePartnerAttestation, "Partner attestation"), opt(AcceptanceAdminCenter, "Microsoft 365 admin center"), opt(AcceptanceManual, "Manual")),
		text("csp_signatoryfirstname", "Signatory first name", 100),
		text("csp_signatorylastname", "Signatory last name", 100),
		dataverse.Column{LogicalName: "csp_signatoryemail", DisplayName: "Signatory email", Type: dataverse.TypeString, MaxLength: 320, Format: "Email"},
		dataverse.Column{LogicalName: "csp_signatoryphone", DisplayName: "Signatory phone", Type: dataverse.TypeString, MaxLength: 50, Format: "Phone"},
		text("csp_signatorycompany", "Signatory company", 255),
		text("csp_signatorycountry", "Signatory country (ISO 3166 code)", 2),
		text("csp_signatorylanguage", "Signatory language", 20),
		owned(text("csp_attestationid", "Attestation ID", 100)),
		dataverse.Column{LogicalName: "csp_acceptanceurl", ConnectorOwned: true, DisplayName: "Acceptance link", Type: dataverse.TypeString, MaxLength: 2000, Format: "Url"},
		owned(when("csp_linkexpireson", "Link expires on")),
		when("csp_dateagreed", "Date agreed"),
		owned(when("csp_verifiedon", "Verified on")),
		owned(memo("csp_attestationmessage", "Attestation message")),
		owned(memo("csp_systemmessage", "System message")),
		when("csp_diagnoserequestedon", "Diagnose requested on"),
		diagnosis(),
	)
	agreement.StatusReasons = []dataverse.Option{{Value: AgreementPending, Label: "Pending", State: StateActive}}
	agreement.Keys = []dataverse.AlternateKey{{SchemaName: KeyAgreementTemplate, Columns: []string{"csp_provideraccount", "csp_agreementtemplate"}}}

	subscription := table(TableSubscription, SetSubscriptions, "Subscription", "Subscriptions",
		"A subscription at a provider.", "Name",
		lookup("csp_provideraccount", "Provider account", TableProviderAccount),
		lookup("csp_account", "Account", TableAccount),
		lookup("csp_provider", "Provider", TableProvider),
		lookup("csp_parentsubscription", "Parent subscription", TableSubscription),
		owned(text("csp_pcsubscriptionid", "Provider subscription ID", 100)),
		text("csp_offerid", "Offer ID", 200),
		whole("csp_quantity", "Quantity"),
		choice("csp_reductionbehavior", "Seat reduction", opt(ReductionAllowed, "Allowed"), opt(ReductionDisallowed, "Disallowed"), opt(ReductionAllowedWithinWindow, "Allowed within window")),
		whole("csp_reductionwindow", "Reduction window (hours)"),
		owned(when("csp_actualprovisionedon", "Actual provisioned on")),
		text("csp_termduration", "Term", 20),
		text("csp_billingcycle", "Billing cycle", 50),
		owned(when("csp_commitmentenddate", "Commitment end date")),
		owned(text("csp_offername", "Offer name", 200)),
		yesNo("csp_autorenew", "Auto-renew"),
		owned(memo("csp_syncmessage", "Sync message")),
		when("csp_diagnoserequestedon", "Diagnose requested on"),
		diagnosis(),
	)
	subscription.Keys = []dataverse.AlternateKey{{SchemaName: KeySubscriptionPCID, Columns: []string{"csp_provideraccount", "csp_pcsubscriptionid"}}}
	subscription.StatusReasons = []dataverse.Option{{Value: SubscriptionSuspended, Label: "Suspended", State: StateActive}}

	lcl := table(TableLicenseChangeLog, SetLicenseChangeLogs, "License Change Log", "License Change Logs",
		"One change to push to the provider: a purchase, seat change, suspension, reactivation or cancellation.", "Name",
		lookup("csp_subscription", "Subscription", TableSubscription),
		choice("csp_changetype", "Change type", opt(ChangePurchase, "Purchase"), opt(ChangeQuantity, "Quantity"), opt(ChangeSuspend, "Suspend"), opt(ChangeReactivate, "Reactivate"), opt(ChangeCancel, "Cancel"), opt(ChangeRenewal, "Renewal or term")),
		whole("csp_quantity", "New quantity"),
		whole("csp_previousquantity", "Previous quantity"),
		when("csp_effectivedate", "Effective date"),
		// People set Awaiting Provisioning to ask for the change (again after a failure): not ConnectorOwned.
		choice("csp_provisioningstatus", "Provisioning status",
			opt(ProvisioningAwaiting, "Awaiting Provisioning"), opt(ProvisioningInProgress, "Provisioning"), opt(ProvisioningProvisioned, "Provisioned"),
			opt(ProvisioningFailed, "Failed Provisioning"), opt(ProvisioningNotApplicable, "Not Applicable")),
		owned(memo("csp_provisioningmessage", "Provisioning message")),
		owned(memo("csp_systemmessage", "System message")),
		owned(text("csp_attemptid", "Attempt ID", 100)),
		owned(when("csp_claimexpireson", "Claim expires on")),
		owned(whole("csp_attempts", "Attempts")),
		owned(when("csp_provisionedon", "Provisioned on")),
		owned(text("csp_pcorderid", "Provider order ID", 100)),
		owned(text("csp_pccartid", "Provider cart ID", 100)),
		owned(text("csp_pcsubscriptionid", "Provider subscription ID", 100)),
		owned(choice("csp_heldreason", "Held because",
			opt(HeldScheduled, "Scheduled"), opt(HeldWaitingForParent, "Waiting for parent"), opt(HeldBlocked, "Blocked by an earlier change"),
			opt(HeldManual, "Manual provider"), opt(HeldNotConnected, "Not connected"), opt(HeldRetrying, "Retrying"))),
		owned(when("csp_nextattempton", "Next attempt on")),
		owned(choice("csp_changesource", "Change source", opt(SourceDynamics, "Dynamics"), opt(SourceProvider, "Provider"))),
		when("csp_diagnoserequestedon", "Diagnose requested on"),
		diagnosis(),
	)
	lcl.StatusReasons = []dataverse.Option{{Value: LCLArchived, Label: "Archived", State: StateInactive}}

	job := table(TableJob, SetJobs, "Connector Job", "Connector Jobs",
		"A scheduled job of the connector; set Run requested on to run it now.", "Name",
		text("csp_schedule", "Schedule", 100),
		yesNo("csp_enabled", "Enabled"),
		when("csp_runrequestedon", "Run requested on"),
		owned(when("csp_lastrunon", "Last run on")),
		owned(when("csp_nextrunon", "Next run on")),
		owned(choice("csp_laststatus", "Last status", runStatusOptions()...)),
		owned(text("csp_leaseowner", "Lease owner", 200)),
		owned(when("csp_leaseexpireson", "Lease expires on")),
		owned(memo("csp_message", "Message")),
	)
	job.Keys = []dataverse.AlternateKey{{SchemaName: KeyJobName, Columns: []string{"csp_name"}}}

	run := table(TableJobRun, SetJobRuns, "Connector Job Run", "Connector Job Runs",
		"One run of a connector job: when, why, what it did.", "Name",
		owned(lookup("csp_job", "Job", TableJob)),
		owned(choice("csp_trigger", "Trigger", opt(TriggerSchedule, "Schedule"), opt(TriggerRunNow, "Run Now"), opt(TriggerAPI, "API"))),
		owned(when("csp_startedon", "Started on")),
		owned(when("csp_finishedon", "Finished on")),
		owned(choice("csp_status", "Status", runStatusOptions()...)),
		owned(whole("csp_processed", "Processed")),
		owned(whole("csp_created", "Created")),
		owned(whole("csp_updated", "Updated")),
		owned(whole("csp_failed", "Failed")),
		owned(whole("csp_deactivated", "Deactivated")),
		owned(whole("csp_mapped", "Mapped")),
		owned(whole("csp_unmapped", "Needing mapping")),
		owned(memo("csp_summary", "Summary")),
		owned(memo("csp_errormessage", "Error message")),
		owned(text("csp_instance", "Instance", 200)),
	)

	hook := table(TableWebhookSubscription, SetWebhookSubscriptions, "Connector Webhook", "Connector Webhooks",
		"A Power Automate (or other) subscription to connector events.", "Name",
		choice("csp_eventtype", "Event type", opt(EventProviderAccountNeedsMapping, "Provider account needs mapping"), opt(EventLCLFailed, "License change failed"), opt(EventAgreementAccepted, "Agreement accepted"), opt(EventJobFailed, "Job failed"), opt(EventSubscriptionDrift, "Subscription drift")),
		dataverse.Column{LogicalName: "csp_callbackurl", DisplayName: "Callback URL", Type: dataverse.TypeString, MaxLength: 2000, Format: "Url", Secured: true,
			Description: "A secret: anyone holding it can post to the flow. Column security restricts who reads it; the connector never logs it."},
		text("csp_owner", "Owner", 200),
		owned(whole("csp_consecutivefailures", "Consecutive failures")),
	)

	// The outbox: a notification is written here before any channel is tried, and deleted once every
	// channel is done with it, so one that a replica was delivering when it stopped is delivered by another.
	outbox := table(TableNotification, SetNotifications, "Connector Notification", "Connector Notifications",
		"A notification waiting for delivery to in-app recipients, the topic and webhook subscriptions; deleted once delivered.", "Title",
		owned(text("csp_eventid", "Event ID", 100)),
		owned(text("csp_type", "Type", 100)),
		dataverse.Column{LogicalName: "csp_payload", ConnectorOwned: true, DisplayName: "Payload", Type: dataverse.TypeMemo, MaxLength: 1048576,
			Description: "The notification as JSON, as the channels send it."},
		dataverse.Column{LogicalName: "csp_deliverystate", ConnectorOwned: true, DisplayName: "Delivery state", Type: dataverse.TypeMemo, MaxLength: 100000,
			Description: "JSON: the channels, in-app recipients and webhook subscriptions still to deliver to."},
		owned(whole("csp_attempts", "Attempts")),
		owned(when("csp_nextattempton", "Next attempt on")),
		owned(text("csp_claimedby", "Claimed by", 200)),
		owned(memo("csp_systemmessage", "System message")),
	)

	s := dataverse.Schema{
		Prefix: Prefix, OptionValuePrefix: OptionValuePrefix,
		PublisherName: PublisherName, PublisherDisplayName: PublisherDisplayName,
		SolutionName: SolutionName, SolutionDisplayName: SolutionDisplayName,
		Tables: append([]dataverse.Table{provider, account, template, agreement, subscription, lcl, job, run, hook, outbox}, StandardTables()...),
	}
	s.App = app(s)
	return s
}

// StandardTables are the tables every Dataverse environment has, with the columns the connector uses.
func StandardTables() []dataverse.Table {
	std := func(logical, set, display string, primary dataverse.Column, cols ...dataverse.Column) dataverse.Table {
		return dataverse.Table{LogicalName: logical, EntitySetName: set, DisplayName: display, PluralName: display + "s", PrimaryName: primary, Columns: cols, Standard: true}
	}
	name := func(col string) dataverse.Column {
		return dataverse.Column{LogicalName: col, DisplayName: "Name", Type: dataverse.TypeString, MaxLength: 160}
	}
	email := func(col string) dataverse.Column {
		return dataverse.Column{LogicalName: col, DisplayName: "Email", Type: dataverse.TypeString, MaxLength: 100, Format: "Email"}
	}
	return []dataverse.Table{
		std(TableAccount, SetAccounts, "Account", name("name"),
			dataverse.Column{LogicalName: "websiteurl", DisplayName: "Website", Type: dataverse.TypeString, MaxLength: 200, Format: "Url"},
			email("emailaddress1"),
		),
		std(TableContact, SetContacts, "Contact", name("fullname"),
			text("firstname", "First name", 50), text("lastname", "Last name", 50), email("emailaddress1"),
			lookup("parentcustomerid", "Company name", TableAccount),
		),
		std(TableSystemUser, SetSystemUsers, "User", name("fullname"),
			email("internalemailaddress"), text("azureactivedirectoryobjectid", "Microsoft Entra ID object ID", 40),
			yesNo("isdisabled", "Disabled"),
		),
		std(TableTeam, SetTeams, "Team", name("name")),
		std(TableAppNotification, SetAppNotifications, "Notification", name("title"),
			// Body is at most 500 characters (appnotification table reference); what does not fit is where
			// the notice's link leads.
			dataverse.Column{LogicalName: "body", DisplayName: "Body", Type: dataverse.TypeMemo, MaxLength: 500},
			lookup("ownerid", "Owner", TableSystemUser),
			choice("icontype", "Icon type", dataverse.Option{Value: 100000000, Label: "Info"}, dataverse.Option{Value: 100000001, Label: "Success"},
				dataverse.Option{Value: 100000002, Label: "Failure"}, dataverse.Option{Value: 100000003, Label: "Warning"},
				dataverse.Option{Value: 100000004, Label: "Mention"}, dataverse.Option{Value: 100000005, Label: "Custom"}),
			choice("toasttype", "Toast type", dataverse.Option{Value: 200000000, Label: "Timed"}, dataverse.Option{Value: 200000001, Label: "Hidden"}),
			whole("ttlinseconds", "Expiry (seconds)"),
			dataverse.Column{LogicalName: "data", DisplayName: "Data", Type: dataverse.TypeMemo, MaxLength: 5000},
		),
	}
}

// PrimaryKey returns the primary key column of a table by its logical name: <logical name>id, as
// dataverse.Table.PrimaryKey. Upserts need it to learn the id of the row they wrote.
func PrimaryKey(table string) string { return dataverse.Table{LogicalName: table}.PrimaryKey() }

// MaxLength returns the declared MaxLength of a text column of a table (by logical names), 0 when it is
// not a declared String or Memo column.
func MaxLength(table, column string) int {
	c, ok := textColumns()[columnKey{table, column}]
	if !ok {
		return 0
	}
	return c.MaxLength
}

// Fit returns text fitted to the declared length of table.column (dataverse.FitText: counted in UTF-16
// code units as Dataverse counts, cut on a character and ended with "…"). Every text the connector writes
// that it did not check against the column first goes through Fit or FitRow, so no write fails on length.
// It panics on a column that is not a declared text column: that is a typo, not data.
func Fit(table, column, text string) string {
	c, ok := textColumns()[columnKey{table, column}]
	if !ok {
		panic("schema: " + table + "." + column + " is not a declared text column")
	}
	return dataverse.FitText(text, c.MaxLength)
}

// FitRow fits every text value of a row written to table (by logical name) to its column (Fit).
func FitRow(table string, row dataverse.Row) {
	if t, ok := tables()[table]; ok {
		t.Fit(row)
	}
}

type columnKey struct{ table, column string }

// tables indexes Schema() by logical name once.
var tables = sync.OnceValue(func() map[string]dataverse.Table {
	m := map[string]dataverse.Table{}
	for _, t := range Schema().Tables {
		m[t.LogicalName] = t
	}
	return m
})

// textColumns indexes the String and Memo columns of Schema() once.
var textColumns = sync.OnceValue(func() map[columnKey]dataverse.Column {
	m := map[columnKey]dataverse.Column{}
	for _, t := range Schema().Tables {
		for _, c := range t.AllColumns() {
			if c.Type == dataverse.TypeString || c.Type == dataverse.TypeMemo {
				m[columnKey{t.LogicalName, c.LogicalName}] = c
			}
		}
	}
	return m
})

// OptionLabel returns the label of a choice value of a table's column ("" when unknown), as forms show it.
func OptionLabel(table, column string, value int) string {
	return optionLabels()[optionKey{table, column, value}]
}

type optionKey struct {
	table, column string
	value         int
}

// optionLabels indexes every choice label of the schema once: decisions name statuses on every run.
var optionLabels = sync.OnceValue(func() map[optionKey]string {
	m := map[optionKey]string{}
	for _, t := range Schema().Tables {
		for _, c := range t.AllColumns() {
			for _, o := range c.Options {
				m[optionKey{t.LogicalName, c.LogicalName, o.Value}] = o.Label
			}
		}
	}
	return m
})
