package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/intake"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/subscriptions"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// SandboxOptions configures the sandbox.
type SandboxOptions struct {
	// DataverseAddr and PartnerCenterAddr are the loopback addresses of the simulators ("127.0.0.1:0"
	// picks a free port).
	DataverseAddr, PartnerCenterAddr string
	// ConnectorAddr is where the connector itself serves HTTP (its webhook, /healthz, /readyz, /metrics);
	// the Dataverse simulator posts events there.
	ConnectorAddr string
	Logger        *slog.Logger
	// ServiceBusDelivery, when set, receives the events of Service Bus endpoints registered in the
	// Dataverse simulator (tests point it at a broker).
	ServiceBusDelivery dataversetest.ServiceBusDelivery
	// Now is the clock of the simulators and the demo data; nil means time.Now.
	Now func() time.Time
	// HealthAddr, when set, serves health and metrics on their own address (CONNECTOR_HEALTH_ADDR).
	HealthAddr string
	// APIAuth authenticates the HTTP API's callers (tests: a local token issuer); nil: the demo API keys
	// SandboxOperatorKey and SandboxReaderKey.
	APIAuth *apiauth.Authenticator
}

// The sandbox's demo API keys (not secrets: the sandbox runs on loopback with simulated data).
const (
	SandboxOperatorKey = "sandbox-operator-key"
	SandboxReaderKey   = "sandbox-reader-key"
)

// Sandbox is the connector running on its built-in simulators: no Azure, no Microsoft account. Each
// simulator is a real HTTP server on loopback, so the product talks to it exactly as it would talk to the
// real service.
type Sandbox struct {
	Dataverse           *dataversetest.Server
	DataverseClient     *dataverse.Client
	PartnerCenter       *partnercentertest.Server
	PartnerCenterClient *partnercenter.Client
	// Install is the schema installation that ran at start.
	Install *dataverse.Plan
	// Seeded counts the demonstration rows per table written directly (subscriptions Partner Center has are
	// not among them: Imported says what the Subscription Sync made of them).
	Seeded map[string]int
	// Imported is what the Subscription Sync did at start: it imported the subscriptions the Partner Center
	// simulator holds, before the demonstration changes were entered on them.
	Imported subscriptions.SyncResult
	// DriftSubscription is the subscription row whose quantity the sandbox then changes in Partner Center
	// (Seats 10 → 12): the Subscription Sync's run when the connector starts records it as a Provider
	// license change.
	DriftSubscription dataverse.GUID
	// Service is the connector, wired to both simulators with the webhook intake; the simulator posts
	// every registered event to it, so the sandbox runs the real intake path. Run it with Service.Run.
	Service *Service
	// Registration is the event registration applied at start (service endpoint and steps).
	Registration *dataverse.RegistrationPlan
	// AdminID is a demonstration user ("Demo Admin"): writes made as this user (ClientAs) are a person's
	// changes, which wake the connector; the connector's own writes do not.
	AdminID dataverse.GUID
	// DemoChanges are the demonstration License Change Logs by name (csp_name), one per provisioning
	// outcome: the connector's first Provisioning Sweep brings each to the state Describe lists.
	DemoChanges map[string]dataverse.GUID

	demoChanges           []demoChange // DemoChanges in the order Describe lists them
	contosoAgreement      dataverse.GUID
	mcaTemplate           dataverse.GUID
	listener              net.Listener
	partnerCenterProvider dataverse.GUID
	metrics               *metrics.Recorder
}

// demoChange is a demonstration License Change Log and the outcome the connector gives it.
type demoChange struct {
	name, outcome string
}

// StartSandbox starts the simulators, installs the schema through the real installer, and seeds
// demonstration rows. Close it when done.
func StartSandbox(ctx context.Context, opts SandboxOptions) (*Sandbox, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	dv, err := dataversetest.NewServer(dataversetest.Options{
		Addr:               opts.DataverseAddr,
		Tables:             schema.StandardTables(),
		Now:                now,
		Limits:             dataversetest.DataverseLimits(),
		ServiceBusDelivery: opts.ServiceBusDelivery,
	})
	if err != nil {
		return nil, err
	}
	sb := &Sandbox{Dataverse: dv, Seeded: map[string]int{}, DemoChanges: map[string]dataverse.GUID{}, metrics: metrics.New()}
	cfg := Config{DataverseURL: dv.URL, DataverseAuth: AuthNone, DataverseMaxConcurrency: dataverse.DefaultMaxConcurrency, DataverseBatchSize: dataverse.DefaultBatchSize,
		DataverseBudgetRequests: dataverse.DefaultBudgetRequests, DataverseBudgetExecution: dataverse.DefaultBudgetExecutionTime, DataverseBulkReserve: dataverse.DefaultBulkReserve}
	if sb.DataverseClient, err = NewDataverseClient(cfg, log, sb.metrics.Instrument("dataverse", dv.Client())); err != nil {
		sb.Close()
		return nil, err
	}
	if sb.Install, err = sb.DataverseClient.PlanSchema(ctx, schema.Schema()); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: plan schema: %w", err)
	}
	if err := sb.DataverseClient.ApplySchema(ctx, sb.Install, nil); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: install schema: %w", err)
	}
	// The integration sandbox's caps are on, as in a partner's test account: the demo shows the connector
	// explaining them (and the demo data stays within them).
	// The simulator plays the customer who gets an acceptance link: a signatory whose e-mail starts with
	// "accept" accepts it, one with "expire" lets it expire, anyone else leaves it pending.
	playCustomer := func(id, email string) {
		time.Sleep(time.Second)
		switch local := strings.ToLower(email); {
		case strings.HasPrefix(local, "accept"):
			_ = sb.PartnerCenter.AcceptAttestation(id)
		case strings.HasPrefix(local, "expire"):
			_ = sb.PartnerCenter.ExpireAttestation(id)
		}
	}
	if sb.PartnerCenter, err = partnercentertest.NewServer(partnercentertest.Options{Addr: opts.PartnerCenterAddr, Now: now, AuthOptional: true, SandboxCaps: true,
		OnAttestation: playCustomer}); err != nil {
		sb.Close()
		return nil, err
	}
	cfg.PartnerCenterEndpoint, cfg.PartnerCenterAuth = sb.PartnerCenter.URL, AuthNone
	if sb.PartnerCenterClient, err = NewPartnerCenterClient(cfg, log, sb.metrics.Instrument("partnercenter", sb.PartnerCenter.Client())); err != nil {
		sb.Close()
		return nil, err
	}
	if err := seedPartnerCenter(sb.PartnerCenter, now()); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: seed Partner Center: %w", err)
	}
	if err := sb.seed(ctx, now); err != nil {
		sb.Close()
		return nil, fmt.Errorf("sandbox: seed demonstration data: %w", err)
	}
	if err := sb.startService(ctx, cfg, opts, log); err != nil {
		sb.Close()
		return nil, err
	}
	return sb, nil
}

// startService wires the connector to the simulators with a webhook intake and registers its steps in
// the Dataverse simulator, pointing at the connector's own address.
func (sb *Sandbox) startService(ctx context.Context, cfg Config, opts SandboxOptions, log *slog.Logger) error {
	admin, err := sb.Dataverse.Insert("systemuser", map[string]any{"fullname": "Demo Admin"})
	if err != nil {
		return fmt.Errorf("sandbox: create the demo admin: %w", err)
	}
	if sb.AdminID, err = dataverse.ParseGUID(admin); err != nil {
		return err
	}
	addr := opts.ConnectorAddr
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	if sb.listener, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("sandbox: the connector cannot listen on %s: %w", addr, err)
	}
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	cfg.HTTPAddr = sb.listener.Addr().String()
	cfg.PublicURL = "http://" + cfg.HTTPAddr
	cfg.WebhookKey = hex.EncodeToString(key)
	cfg.ServiceBusQueue = DefaultQueue
	cfg.Workers, cfg.QueueLimit, cfg.ShutdownTimeout, cfg.Instance = 4, 1000, 10*time.Second, "sandbox"
	// The demo admin gets the in-app notifications (a Manual provider's change, the weekly report): see
	// the appnotifications table.
	cfg.NotifyUsers, cfg.ReportAfter = []dataverse.GUID{sb.AdminID}, 24*time.Hour
	cfg.NotifyInApp, cfg.NotifyWebhooks, cfg.NotifyDigestOver = true, true, 20
	cfg.HealthAddr, cfg.APIRate = opts.HealthAddr, 600
	reg, err := RegistrationFor(cfg, Triggers())
	if err != nil {
		return err
	}
	if sb.Registration, err = sb.DataverseClient.PlanRegistration(ctx, reg); err != nil {
		return fmt.Errorf("sandbox: plan the event registration: %w", err)
	}
	if err := sb.DataverseClient.ApplyRegistration(ctx, sb.Registration, nil); err != nil {
		return fmt.Errorf("sandbox: register the events: %w", err)
	}
	auth := opts.APIAuth
	if auth == nil {
		if auth, err = sandboxAuth(); err != nil {
			return err
		}
	}
	sb.Service, err = NewService(cfg, ServiceOptions{Logger: log, Metrics: sb.metrics, DV: sb.DataverseClient, PC: sb.PartnerCenterClient, Listen: sb.listener,
		JobTick: 5 * time.Second, CheckEvery: 30 * time.Second, Now: opts.Now, AllowHTTPLoopbackWebhooks: true, APIAuth: auth})
	return err
}

// Close stops the simulators.
func (sb *Sandbox) Close() {
	if sb.listener != nil {
		_ = sb.listener.Close()
	}
	if sb.Dataverse != nil {
		sb.Dataverse.Close()
	}
	if sb.PartnerCenter != nil {
		sb.PartnerCenter.Close()
	}
}

// AppURL is the address of the CSP Connector app in the Dataverse simulator's pages: what an admin sees in
// Dynamics, rendered from the forms, views, sitemap and commands the installer put in.
func (sb *Sandbox) AppURL() string {
	return sb.Dataverse.URL + dataversetest.PagesPath + "?appname=" + url.QueryEscape(schema.AppUniqueName)
}

// Describe writes what the sandbox is and how to use it. The app's address comes first: it is where a
// newcomer starts.
func (sb *Sandbox) Describe(w io.Writer) {
	self := "http://" + sb.listener.Addr().String()
	env := fmt.Sprintf("DATAVERSE_URL=%s DATAVERSE_AUTH=none PARTNERCENTER_ENDPOINT=%s PARTNERCENTER_AUTH=none", sb.Dataverse.URL, sb.PartnerCenter.URL)
	fmt.Fprintf(w, "Open the CSP Connector app in a browser: %s\n", sb.AppURL())
	fmt.Fprintf(w, "  (the Dataverse simulator's pages: the app's sitemap, views, forms, command buttons and the bell, as installed)\n\n")
	fmt.Fprintf(w, "CSP Connector sandbox: the connector on its built-in simulators (no Azure account needed).\n\n")
	fmt.Fprintf(w, "  Dataverse simulator  %s   (Web API under %s)\n", sb.Dataverse.URL, dataverse.APIPath)
	fmt.Fprintf(w, "  Partner Center       %s   (API under /v1; %d demo customers; integration sandbox caps: 25 seats per subscription, 5 subscriptions per customer)\n", sb.PartnerCenter.URL, sb.PartnerCenter.Customers())
	fmt.Fprintf(w, "  Schema installed     %d change(s) through the real installer\n", len(sb.Install.Changes))
	fmt.Fprintf(w, "  Demonstration rows  ")
	for _, t := range []string{schema.TableProvider, schema.TableAccount, schema.TableProviderAccount, schema.TableAgreementTemplate, schema.TableAgreement, schema.TableSubscription, schema.TableLicenseChangeLog, schema.TableJob} {
		fmt.Fprintf(w, " %s=%d", t, sb.Seeded[t])
	}
	fmt.Fprintf(w, "\n  Connector            %s   (webhook %s, /healthz, /readyz, /metrics)\n", self, intake.WebhookPath)
	fmt.Fprintf(w, "  Subscriptions        %d imported from Partner Center by the Subscription Sync at start (not seeded as rows)\n", sb.Imported.Created)
	fmt.Fprintf(w, "  Events registered    %d step(s) posting to the connector's webhook, as Dataverse does\n", len(Triggers()))
	if len(sb.demoChanges) > 0 {
		fmt.Fprintf(w, "\nLicense changes: the connector's Provisioning Sweep pushes them at start; each ends as shown.\n")
		width := 0
		for _, c := range sb.demoChanges {
			width = max(width, utf8.RuneCountInString(c.name))
		}
		for _, c := range sb.demoChanges {
			fmt.Fprintf(w, "  %s  %-*s  → %s\n", sb.DemoChanges[c.name], width, c.name, c.outcome)
		}
		fmt.Fprintf(w, "  Why each is where it is, check by check:  connector diagnose lcl <id>\n")
	}
	fmt.Fprintf(w, "\nProvider accounts: the Provider Account Sync runs at start and maps Partner Center's customers to accounts.\n")
	for _, line := range [][2]string{
		{"Alpine Ski House", "Auto-mapped (website alpineskihouse.com, same name)"},
		{"Tailspin Toys", "Auto-mapped (a contact's e-mail domain tailspintoys.com)"},
		{"Northwind Traders", "Auto-mapped (its tenant is mapped already through the manual provider)"},
		{"Litware", "Ambiguous (two accounts fit equally: choose one)"},
		{"Adventure Works Cycles", "Unmapped (no account fits)"},
	} {
		fmt.Fprintf(w, "  %-24s → %s\n", line[0], line[1])
	}
	fmt.Fprintf(w, "  The Demo Admin gets an in-app notification for each of the last two:\n")
	fmt.Fprintf(w, "  curl -s '%s%sappnotifications?$select=title,body,data'\n", sb.Dataverse.URL, dataverse.APIPath)
	fmt.Fprintf(w, "  curl -s '%s%scsp_provideraccounts?$select=csp_name,csp_mappingstatus,csp_mappingmessage' -H 'Prefer: odata.include-annotations=\"*\"'\n", sb.Dataverse.URL, dataverse.APIPath)
	fmt.Fprintf(w, "  %s go run ./cmd/connector sync provider-accounts\n", env)
	if sb.DriftSubscription != (dataverse.GUID{}) {
		fmt.Fprintf(w, "\nSubscriptions: imported at start; then Contoso's Azure Active Directory Premium P1 went from 10 to 12 seats in Partner Center,\n")
		fmt.Fprintf(w, "not through Dynamics. The Subscription Sync's run at start records it as a license change with source Provider:\n")
		fmt.Fprintf(w, "  curl -s '%s%scsp_licensechangelogs?$select=csp_name,csp_changesource,csp_provisioningmessage&$filter=_csp_subscription_value%%20eq%%20%s' -H 'Prefer: odata.include-annotations=\"*\"'\n",
			sb.Dataverse.URL, dataverse.APIPath, sb.DriftSubscription)
		fmt.Fprintf(w, "  %s go run ./cmd/connector sync subscriptions -o json\n", env)
	}
	fmt.Fprintf(w, "\nAgreements (Microsoft Customer Agreement): the Attestation Check runs every 30 seconds in the sandbox.\n")
	fmt.Fprintf(w, "  Fabrikam Inc            → Attested (an agreement Partner Center has recorded)\n")
	fmt.Fprintf(w, "  Northwind Traders       → Accepted directly (in the Microsoft 365 admin center)\n")
	fmt.Fprintf(w, "  Contoso Ltd             → Not started: ask for an acceptance link, as an admin would on the form. The simulator plays\n")
	fmt.Fprintf(w, "                            the customer: a signatory e-mail starting with accept accepts the link, expire lets it expire.\n")
	if sb.contosoAgreement != (dataverse.GUID{}) {
		fmt.Fprintf(w, "  curl -s -X PATCH '%s%scsp_agreements(%s)' -H 'MSCRMCallerID: %s' -H 'Content-Type: application/json' -H 'If-Match: *' -d '{\"csp_signatoryfirstname\":\"Ada\",\"csp_signatorylastname\":\"Lovelace\",\"csp_signatoryemail\":\"accept.ada@contoso.com\",\"csp_signatorycompany\":\"Contoso Ltd\",\"csp_signatorycountry\":\"GB\",\"csp_signatorylanguage\":\"en-GB\",\"csp_attestationstatus\":%d}'\n",
			sb.Dataverse.URL, dataverse.APIPath, sb.contosoAgreement, sb.AdminID, int(schema.AttestationLinkRequested))
		fmt.Fprintf(w, "  %s go run ./cmd/connector diagnose agreement %s\n", env, sb.contosoAgreement)
	}
	fmt.Fprintf(w, "\nHTTP API (what Power Automate flows call; OpenAPI 2.0 at %s%s/swagger.json). Demo keys: %s (operator), %s (reader).\n", self, api.Prefix, SandboxOperatorKey, SandboxReaderKey)
	fmt.Fprintf(w, "  curl -s '%s%s/provider-accounts?mappingStatus=ambiguous' -H '%s: %s'\n", self, api.Prefix, api.KeyHeader, SandboxReaderKey)
	fmt.Fprintf(w, "  curl -s -i -X POST %s%s/provider-accounts/sync -H '%s: %s'    # 202: poll the Location\n", self, api.Prefix, api.KeyHeader, SandboxOperatorKey)
	if sb.contosoAgreement != (dataverse.GUID{}) {
		fmt.Fprintf(w, "  curl -s -X POST %s%s/agreements/%s/request-link -H '%s: %s' -H 'Content-Type: application/json' -d '{\"signatoryFirstName\":\"Ada\",\"signatoryLastName\":\"Lovelace\",\"signatoryEmail\":\"accept.ada@contoso.com\",\"signatoryCompany\":\"Contoso Ltd\",\"signatoryCountry\":\"GB\",\"signatoryLanguage\":\"en-GB\"}'\n",
			self, api.Prefix, sb.contosoAgreement, api.KeyHeader, SandboxOperatorKey)
	}
	fmt.Fprintf(w, "\nTry it:\n")
	fmt.Fprintf(w, "  # ask Verify Connectivity for the Partner Center provider, as an admin would from its form:\n")
	fmt.Fprintf(w, "  curl -s -X PATCH '%s%scsp_providers(%s)' -H 'MSCRMCallerID: %s' -H 'Content-Type: application/json' -H 'If-Match: *' -d \"{\\\"csp_verifyrequestedon\\\": \\\"$(date -u +%%FT%%TZ)\\\"}\"\n",
		sb.Dataverse.URL, dataverse.APIPath, sb.partnerCenterProvider, sb.AdminID)
	fmt.Fprintf(w, "  curl -s '%s%scsp_providers?$select=csp_name,csp_connectivitystatus,csp_connectivitymessage,csp_lastverifiedon'\n", sb.Dataverse.URL, dataverse.APIPath)
	fmt.Fprintf(w, "  curl -s %s/readyz\n", self)
	fmt.Fprintf(w, "  curl -s '%s%scsp_licensechangelogs?$select=csp_name,csp_provisioningstatus,csp_heldreason,csp_provisioningmessage' -H 'Prefer: odata.include-annotations=\"*\"'\n", sb.Dataverse.URL, dataverse.APIPath)
	if addOn, ok := sb.DemoChanges[demoChangeAddOn]; ok {
		fmt.Fprintf(w, "  %s go run ./cmd/connector diagnose lcl %s\n", env, addOn)
	}
	if parent, ok := sb.DemoChanges[demoChangeParentPurchase]; ok {
		fmt.Fprintf(w, "  # buy Fabrikam's Business Premium now instead of next week; its waiting add-on is bought right after:\n")
		fmt.Fprintf(w, "  curl -s -X PATCH '%s%scsp_licensechangelogs(%s)' -H 'MSCRMCallerID: %s' -H 'Content-Type: application/json' -H 'If-Match: *' -d \"{\\\"csp_effectivedate\\\": \\\"$(date -u +%%FT%%TZ)\\\"}\"\n",
			sb.Dataverse.URL, dataverse.APIPath, parent, sb.AdminID)
	}
	fmt.Fprintf(w, "  DATAVERSE_URL=%s DATAVERSE_AUTH=none go run ./cmd/connector dataverse install --dry-run\n", sb.Dataverse.URL)
	fmt.Fprintf(w, "  PARTNERCENTER_ENDPOINT=%s PARTNERCENTER_AUTH=none go run ./cmd/connector pc customers\n", sb.PartnerCenter.URL)
	fmt.Fprintf(w, "  PARTNERCENTER_ENDPOINT=%s PARTNERCENTER_AUTH=none go run ./cmd/connector pc subscriptions %s\n", sb.PartnerCenter.URL, demoContosoTenant)
	fmt.Fprintf(w, "\nPress Ctrl+C to stop.\n")
}

// seed writes demonstration rows through the client (typed rows and the codec, over HTTP), so the
// sandbox exercises the same path the workflows use. The subscriptions Partner Center has are imported by
// the Subscription Sync, as a partner's would be; the sandbox then sets their reduction policy as an admin
// does, enters the demonstration changes, and changes one subscription in Partner Center (the drift demo).
func (sb *Sandbox) seed(ctx context.Context, clock func() time.Time) error {
	now := clock()
	c := sb.DataverseClient
	create := func(table, set string, row any) (dataverse.GUID, error) {
		body, err := dataverse.Marshal(row)
		if err != nil {
			return dataverse.GUID{}, err
		}
		id, err := c.Create(ctx, set, body)
		if err == nil {
			sb.Seeded[table]++
		}
		return id, err
	}
	var errs []error
	must := func(id dataverse.GUID, err error) dataverse.GUID {
		errs = append(errs, err)
		return id
	}
	pc := must(create(schema.TableProvider, schema.SetProviders, schema.Provider{
		Name: "Microsoft Partner Center", Type: schema.ProviderAutomatic, PartnerModel: schema.PartnerDirectBill,
		AutoMatch: true, ConnectivityStatus: schema.ConnectivityNotVerified,
	}))
	manual := must(create(schema.TableProvider, schema.SetProviders, schema.Provider{
		Name: "Distributor portal (manual)", Type: schema.ProviderManual, PartnerModel: schema.PartnerIndirectReseller,
		ConnectivityStatus: schema.ConnectivityNotVerified,
	}))
	sb.partnerCenterProvider = pc
	contoso := must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Contoso Ltd", Website: "https://www.contoso.com", Email: "billing@contoso.com"}))
	fabrikam := must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Fabrikam, Inc.", Website: "https://fabrikam.com"}))
	northwind := must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Northwind Traders", Email: "accounts@northwindtraders.com"}))

	contosoPA := must(create(schema.TableProviderAccount, schema.SetProviderAccounts, schema.ProviderAccount{
		Name: "Contoso Ltd", Provider: dataverse.Ref{ID: pc}, TenantID: demoContosoTenant, Domain: "contoso.onmicrosoft.com",
		CompanyName: "Contoso Ltd", Relationship: "Reseller", Account: dataverse.Ref{ID: contoso}, MappingStatus: schema.MappingMapped,
		MappingMessage: "Mapped by a person.", LastSyncedOn: now,
	}))
	fabrikamPA := must(create(schema.TableProviderAccount, schema.SetProviderAccounts, schema.ProviderAccount{
		Name: "Fabrikam", Provider: dataverse.Ref{ID: pc}, TenantID: demoFabrikamTenant, Domain: "fabrikam.com",
		CompanyName: "Fabrikam Inc", Relationship: "Reseller", Account: dataverse.Ref{ID: fabrikam}, MappingStatus: schema.MappingAutoMapped,
		MappingMessage: "Mapped automatically: the customer's domain fabrikam.com is the account's website.", LastSyncedOn: now,
	}))
	// Accounts the provider account sync maps its new customers to: Alpine Ski House by its
	// website, Tailspin Toys by a contact's e-mail domain; Litware has two accounts that fit equally well
	// (Ambiguous); Adventure Works has none (Unmapped). Northwind's tenant is mapped already through the
	// manual provider, so the Partner Center row maps to the same account.
	must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Alpine Ski House", Website: "https://www.alpineskihouse.com"}))
	tailspin := must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Tailspin Toys Ltd"}))
	must(create(schema.TableContact, schema.SetContacts, demoContact{FirstName: "Jo", LastName: "Berry", Email: "jo.berry@tailspintoys.com", Parent: dataverse.Ref{ID: tailspin}}))
	must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Litware, Inc.", Website: "https://litware.com"}))
	must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Litware Inc.", Website: "https://eu.litware.com"}))
	mca := must(create(schema.TableAgreementTemplate, schema.SetAgreementTemplates, schema.AgreementTemplate{
		Name: "Microsoft Customer Agreement", TemplateID: partnercentertest.MCATemplateID, AgreementType: schema.AgreementMicrosoftCustomerAgreement,
		Provider: dataverse.Ref{ID: pc}, AgreementLink: "https://www.microsoft.com/licensing/docs/customeragreement",
	}))
	agreement := must(create(schema.TableAgreement, schema.SetAgreements, schema.Agreement{
		Name: "Contoso Ltd — Microsoft Customer Agreement", ProviderAccount: dataverse.Ref{ID: contosoPA}, Account: dataverse.Ref{ID: contoso},
		Template: dataverse.Ref{ID: mca}, AttestationStatus: schema.AttestationNotStarted,
	}))
	sb.contosoAgreement, sb.mcaTemplate = agreement, mca
	if agreement != (dataverse.GUID{}) {
		_, err := c.Update(ctx, schema.SetAgreements, agreement, dataverse.Row{"statuscode": schema.AgreementPending}, nil)
		errs = append(errs, err)
	}
	northwindPA := must(create(schema.TableProviderAccount, schema.SetProviderAccounts, schema.ProviderAccount{
		Name: "Northwind Traders (distributor)", Provider: dataverse.Ref{ID: manual}, TenantID: demoNorthwindTenant, Domain: "northwindtraders.com",
		CompanyName: "Northwind Traders", Relationship: "Indirect reseller", Account: dataverse.Ref{ID: northwind}, MappingStatus: schema.MappingMapped,
		MappingMessage: "Mapped by a person.",
	}))

	if err := errors.Join(errs...); err != nil {
		return err
	}

	// Subscriptions: what Partner Center has is imported by the Subscription Sync.
	var err error
	if sb.Imported, err = subscriptions.New(c, sb.PartnerCenterClient, &subscriptions.Options{Now: clock}).Sync(ctx, subscriptions.SyncOptions{}); err != nil {
		return fmt.Errorf("import the subscriptions: %w", err)
	}
	imported := func(pa dataverse.GUID, pcID string) dataverse.GUID {
		raw, err := c.GetByKey(ctx, schema.SetSubscriptions, dataverse.Key{dataverse.LookupValue("csp_provideraccount"): pa, "csp_pcsubscriptionid": pcID},
			&dataverse.GetOptions{Select: []string{"csp_subscriptionid"}})
		if err != nil {
			errs = append(errs, fmt.Errorf("the imported subscription %s: %w", pcID, err))
			return dataverse.GUID{}
		}
		id, _ := raw.GUID("csp_subscriptionid")
		return id
	}
	// The partner's reduction policy is theirs, not Partner Center's: an admin sets it on the imported rows,
	// with the date each was provisioned (the sync records when it first saw them).
	policy := func(id dataverse.GUID, provisioned time.Time) dataverse.GUID {
		if id != (dataverse.GUID{}) {
			_, err := c.Update(ctx, schema.SetSubscriptions, id, dataverse.Row{"csp_reductionbehavior": int(schema.ReductionAllowedWithinWindow),
				"csp_reductionwindow": 168, "csp_actualprovisionedon": provisioned}, nil)
			errs = append(errs, err)
		}
		return id
	}
	contosoPremium := policy(imported(contosoPA, demoContosoSubscription), now.AddDate(0, 0, -30))
	contosoBasic := policy(imported(contosoPA, demoContosoBasicSubscription), now.AddDate(0, 0, -2))
	fabrikamP1 := policy(imported(fabrikamPA, demoFabrikamP1Subscription), now.AddDate(0, 0, -30))
	sb.DriftSubscription = policy(imported(contosoPA, demoContosoP1Subscription), now.AddDate(0, 0, -60))
	// The drift demo: 10 → 12 seats in Partner Center, not through Dynamics.
	errs = append(errs, sb.PartnerCenter.ChangeSubscription(demoContosoTenant, partnercentertest.Subscription{ID: demoContosoP1Subscription, Quantity: 12, AutoRenew: true}))

	subscription := func(s schema.Subscription) dataverse.GUID {
		return must(create(schema.TableSubscription, schema.SetSubscriptions, s))
	}
	// Not bought yet (no Partner Center id): its Purchase is due next week, and the add-on waits for it.
	fabrikamPremium := subscription(schema.Subscription{
		Name: "Microsoft 365 Business Premium", ProviderAccount: dataverse.Ref{ID: fabrikamPA}, Account: dataverse.Ref{ID: fabrikam},
		Provider: dataverse.Ref{ID: pc}, OfferID: partnercentertest.CatalogBusinessPremium, TermDuration: "P1Y", BillingCycle: "monthly",
	})
	fabrikamStorage := subscription(schema.Subscription{
		Name: "Office 365 Extra File Storage", ProviderAccount: dataverse.Ref{ID: fabrikamPA}, Account: dataverse.Ref{ID: fabrikam},
		Provider: dataverse.Ref{ID: pc}, Parent: dataverse.Ref{ID: fabrikamPremium}, OfferID: partnercentertest.CatalogExtraStorage,
		TermDuration: "P1Y", BillingCycle: "monthly",
	})
	northwindBC := subscription(schema.Subscription{
		Name: "Dynamics 365 Business Central Essentials", ProviderAccount: dataverse.Ref{ID: northwindPA}, Account: dataverse.Ref{ID: northwind},
		Provider: dataverse.Ref{ID: manual}, OfferID: "D365-BC-ESSENTIALS-P1Y", Quantity: 5, ActualProvisionedOn: now.AddDate(0, -2, 0),
		TermDuration: "P1Y", BillingCycle: "monthly", CommitmentEndDate: now.AddDate(0, 10, 0),
	})

	change := func(name string, sub dataverse.GUID, typ schema.ChangeType, quantity, previous int, effective time.Time, outcome string) {
		l := schema.LicenseChangeLog{Name: name, Subscription: dataverse.Ref{ID: sub}, ChangeType: typ, EffectiveDate: effective,
			ProvisioningStatus: schema.ProvisioningAwaiting, ChangeSource: schema.SourceDynamics}
		if quantity > 0 {
			l.Quantity = &quantity
		}
		if previous > 0 {
			l.PreviousQuantity = &previous
		}
		id := must(create(schema.TableLicenseChangeLog, schema.SetLicenseChangeLogs, l))
		sb.DemoChanges[name] = id
		sb.demoChanges = append(sb.demoChanges, demoChange{name: name, outcome: outcome})
	}
	change(demoChangeProvisioned, contosoPremium, schema.ChangeQuantity, 12, 10, now,
		"Provisioned (seats 10 → 12 in Partner Center)")
	change(demoChangeScheduled, contosoPremium, schema.ChangeQuantity, 15, 12, now.AddDate(0, 1, 0),
		"Awaiting Provisioning, held Scheduled (pushed on its effective date)")
	change(demoChangeParentPurchase, fabrikamPremium, schema.ChangePurchase, 10, 0, now.AddDate(0, 0, 7),
		"Awaiting Provisioning, held Scheduled (bring its effective date forward to buy it now)")
	change(demoChangeAddOn, fabrikamStorage, schema.ChangePurchase, 10, 0, now,
		"Awaiting Provisioning, held Waiting for parent (bought right after it)")
	change(demoChangeManual, northwindBC, schema.ChangeQuantity, 8, 5, now,
		"Awaiting Provisioning, held Manual provider (a person makes it in the portal)")
	change(demoChangeReduction, fabrikamP1, schema.ChangeQuantity, 15, 20, now,
		"Failed Provisioning (the reduction window ended: reduce at renewal)")
	change(demoChangeSandboxCap, contosoBasic, schema.ChangeQuantity, 30, 3, now,
		"Failed Provisioning (the integration sandbox allows 25 seats at most)")
	return errors.Join(errs...)
}

// demoContact is a contact row as the sandbox seeds it (the parent account is written through its
// navigation property; schema.Contact reads it back as a customer lookup).
type demoContact struct {
	FirstName string        `dataverse:"firstname"`
	LastName  string        `dataverse:"lastname"`
	Email     string        `dataverse:"emailaddress1"`
	Parent    dataverse.Ref `dataverse:"parentcustomerid,lookup=accounts"`
}

// Demonstration tenants and subscriptions, shared by both simulators so the rows and the provider agree.
const (
	demoContosoTenant            = "4c721420-72ad-4708-a0a7-371a2f7b0969"
	demoFabrikamTenant           = "a1b2c3d4-0000-4000-8000-000000000002"
	demoAdventureWorksTenant     = "a1b2c3d4-0000-4000-8000-000000000003"
	demoNorthwindTenant          = "a1b2c3d4-0000-4000-8000-000000000004"
	demoAlpineTenant             = "a1b2c3d4-0000-4000-8000-000000000005"
	demoTailspinTenant           = "a1b2c3d4-0000-4000-8000-000000000006"
	demoLitwareTenant            = "a1b2c3d4-0000-4000-8000-000000000007"
	demoContosoSubscription      = "a4c1340d-6911-4758-bba3-0c4c6007d161"
	demoContosoBasicSubscription = "5b6f4b2e-7c1d-4e0a-9f3b-2d8e6a1c0b01"
	demoFabrikamP1Subscription   = "c3e5a7f1-2b4d-4c6e-8a0b-1d3f5b7d9e03"
	demoContosoP1Subscription    = "d7a9c1e3-5f6b-4d8e-9a0c-2e4f6a8c0e05"
)

// Demonstration License Change Logs (csp_name), one per provisioning outcome.
const (
	demoChangeProvisioned    = "Contoso: 10 → 12 seats"
	demoChangeScheduled      = "Contoso: 12 → 15 seats next month"
	demoChangeParentPurchase = "Fabrikam: buy Business Premium next week"
	demoChangeAddOn          = "Fabrikam: buy Extra File Storage (add-on)"
	demoChangeManual         = "Northwind: Business Central 5 → 8 seats"
	demoChangeReduction      = "Fabrikam: Azure AD Premium P1 20 → 15 seats"
	demoChangeSandboxCap     = "Contoso: Business Basic 3 → 30 seats"
)

// seedPartnerCenter gives the Partner Center simulator customers in each situation the workflows meet:
// agreement attested, accepted in the admin center, not accepted; subscriptions inside and outside their
// refund window, a suspended one, one whose seats change there after the import (the drift demo). It
// stays within the integration sandbox's caps (25 seats per subscription, 5 subscriptions per customer)
// with room to spare: Fabrikam's add-on demo buys two more, and tests add their own subscriptions to
// Contoso.
func seedPartnerCenter(pc *partnercentertest.Server, now time.Time) error {
	mca := "117a77b0-9360-443b-8795-c6dedc750cf9"
	customers := []partnercentertest.Customer{
		{TenantID: demoContosoTenant, CompanyName: "Contoso Ltd", Domain: "contoso.onmicrosoft.com", Country: "GB",
			Subscriptions: []partnercentertest.Subscription{
				{ID: demoContosoSubscription, OfferID: partnercentertest.CatalogBusinessPremium, FriendlyName: "Microsoft 365 Business Premium", Quantity: 10, TermDuration: "P1Y", BillingCycle: "monthly", AutoRenew: true, CreatedOn: now.AddDate(0, 0, -30)},
				{ID: demoContosoBasicSubscription, OfferID: partnercentertest.CatalogBusinessBasic, FriendlyName: "Microsoft 365 Business Basic", Quantity: 3, TermDuration: "P1M", BillingCycle: "monthly", CreatedOn: now.AddDate(0, 0, -2)},
				// The drift demo: its seats change in Partner Center after the import.
				{ID: demoContosoP1Subscription, OfferID: partnercentertest.CatalogAADPremiumP1, FriendlyName: "Azure Active Directory Premium P1", Quantity: 10, TermDuration: "P1Y", BillingCycle: "monthly", AutoRenew: true, CreatedOn: now.AddDate(0, 0, -60)},
			}},
		{TenantID: demoFabrikamTenant, CompanyName: "Fabrikam Inc", Domain: "fabrikam.com", Country: "US",
			Agreements: []partnercentertest.Agreement{{TemplateID: mca, Type: "MicrosoftCustomerAgreement", FirstName: "Ana", LastName: "Bowman", Email: "ana.bowman@fabrikam.com", DateAgreed: now.AddDate(0, -3, 0)}},
			Subscriptions: []partnercentertest.Subscription{
				{ID: "0e7b0a53-4a4d-4a55-8f7a-6c0c9a1d2b02", OfferID: partnercentertest.CatalogBusinessBasic, FriendlyName: "Microsoft 365 Business Basic", Quantity: 25, TermDuration: "P1Y", BillingCycle: "annual", Status: "suspended", CreatedOn: now.AddDate(0, -5, 0)},
				{ID: demoFabrikamP1Subscription, OfferID: partnercentertest.CatalogAADPremiumP1, FriendlyName: "Azure Active Directory Premium P1", Quantity: 20, TermDuration: "P1Y", BillingCycle: "annual", AutoRenew: true, CreatedOn: now.AddDate(0, 0, -30)},
			}},
		{TenantID: demoAdventureWorksTenant, CompanyName: "Adventure Works Cycles", Domain: "adventure-works.com", Country: "US"},
		{TenantID: demoNorthwindTenant, CompanyName: "Northwind Traders", Domain: "northwindtraders.com", Country: "DE", DirectSigned: true},
		{TenantID: demoAlpineTenant, CompanyName: "Alpine Ski House", Domain: "alpineskihouse.com", Country: "AT"},
		{TenantID: demoTailspinTenant, CompanyName: "Tailspin Toys", Domain: "tailspintoys.com", Country: "GB"},
		{TenantID: demoLitwareTenant, CompanyName: "Litware", Domain: "litware.com", Country: "US"},
	}
	for _, c := range customers {
		if err := pc.AddCustomer(c); err != nil {
			return err
		}
	}
	return nil
}

// sandboxAuth accepts the sandbox's demo API keys.
func sandboxAuth() (*apiauth.Authenticator, error) {
	return apiauth.New(apiauth.Config{KeyHeader: api.KeyHeader, Keys: []apiauth.APIKey{
		{Name: "sandbox-operator", Hash: apiauth.HashKey(SandboxOperatorKey), Roles: []apiauth.Role{apiauth.RoleOperator}},
		{Name: "sandbox-reader", Hash: apiauth.HashKey(SandboxReaderKey), Roles: []apiauth.Role{apiauth.RoleReader}},
	}})
}
