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
	"time"

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
}

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
	// Seeded counts the demonstration rows per table.
	Seeded map[string]int
	// Service is the connector, wired to both simulators with the webhook intake; the simulator posts
	// every registered event to it, so the sandbox runs the real intake path. Run it with Service.Run.
	Service *Service
	// Registration is the event registration applied at start (service endpoint and steps).
	Registration *dataverse.RegistrationPlan
	// AdminID is a demonstration user ("Demo Admin"): writes made as this user (ClientAs) are a person's
	// changes, which wake the connector; the connector's own writes do not.
	AdminID               dataverse.GUID
	listener              net.Listener
	partnerCenterProvider dataverse.GUID
	metrics               *Metrics
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
	sb := &Sandbox{Dataverse: dv, Seeded: map[string]int{}, metrics: NewMetrics()}
	cfg := Config{DataverseURL: dv.URL, DataverseAuth: AuthNone, DataverseMaxConcurrency: dataverse.DefaultMaxConcurrency, DataverseBatchSize: dataverse.DefaultBatchSize}
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
	if sb.PartnerCenter, err = partnercentertest.NewServer(partnercentertest.Options{Addr: opts.PartnerCenterAddr, Now: now, AuthOptional: true}); err != nil {
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
	if err := sb.seed(ctx, now()); err != nil {
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
	sb.Service, err = NewService(cfg, ServiceOptions{Logger: log, Metrics: sb.metrics, DV: sb.DataverseClient, PC: sb.PartnerCenterClient, Listen: sb.listener, JobTick: 5 * time.Second})
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

// Describe writes what the sandbox is and how to use it.
func (sb *Sandbox) Describe(w io.Writer) {
	fmt.Fprintf(w, "CSP Connector sandbox: the connector on its built-in simulators (no Azure account needed).\n\n")
	fmt.Fprintf(w, "  Dataverse simulator  %s   (Web API under %s)\n", sb.Dataverse.URL, dataverse.APIPath)
	fmt.Fprintf(w, "  Partner Center       %s   (API under /v1; %d demo customers)\n", sb.PartnerCenter.URL, sb.PartnerCenter.Customers())
	fmt.Fprintf(w, "  Schema installed     %d change(s) through the real installer\n", len(sb.Install.Changes))
	fmt.Fprintf(w, "  Demonstration rows  ")
	for _, t := range []string{schema.TableProvider, schema.TableAccount, schema.TableProviderAccount, schema.TableAgreementTemplate, schema.TableAgreement, schema.TableSubscription, schema.TableLicenseChangeLog, schema.TableJob} {
		fmt.Fprintf(w, " %s=%d", t, sb.Seeded[t])
	}
	fmt.Fprintf(w, "\n  Connector            %s   (webhook %s, /healthz, /readyz, /metrics)\n", "http://"+sb.listener.Addr().String(), WebhookPath)
	fmt.Fprintf(w, "  Events registered    %d step(s) posting to the connector's webhook, as Dataverse does\n", len(Triggers()))
	fmt.Fprintf(w, "\nTry it:\n")
	fmt.Fprintf(w, "  # ask Verify Connectivity for the Partner Center provider, as an admin would from its form:\n")
	fmt.Fprintf(w, "  curl -s -X PATCH '%s%scsp_providers(%s)' -H 'MSCRMCallerID: %s' -H 'Content-Type: application/json' -H 'If-Match: *' -d \"{\\\"csp_verifyrequestedon\\\": \\\"$(date -u +%%FT%%TZ)\\\"}\"\n",
		sb.Dataverse.URL, dataverse.APIPath, sb.partnerCenterProvider, sb.AdminID)
	fmt.Fprintf(w, "  curl -s '%s%scsp_providers?$select=csp_name,csp_connectivitystatus,csp_connectivitymessage,csp_lastverifiedon'\n", sb.Dataverse.URL, dataverse.APIPath)
	fmt.Fprintf(w, "  curl -s %s/readyz\n", "http://"+sb.listener.Addr().String())
	fmt.Fprintf(w, "  curl -s '%s%scsp_licensechangelogs?$select=csp_name,csp_provisioningstatus' -H 'Prefer: odata.include-annotations=\"*\"'\n", sb.Dataverse.URL, dataverse.APIPath)
	fmt.Fprintf(w, "  DATAVERSE_URL=%s DATAVERSE_AUTH=none go run ./cmd/connector dataverse install --dry-run\n", sb.Dataverse.URL)
	fmt.Fprintf(w, "  PARTNERCENTER_ENDPOINT=%s PARTNERCENTER_AUTH=none go run ./cmd/connector pc customers\n", sb.PartnerCenter.URL)
	fmt.Fprintf(w, "  PARTNERCENTER_ENDPOINT=%s PARTNERCENTER_AUTH=none go run ./cmd/connector pc subscriptions %s\n", sb.PartnerCenter.URL, demoContosoTenant)
	fmt.Fprintf(w, "\nPress Ctrl+C to stop.\n")
}

// seed writes demonstration rows through the client (typed rows and the codec, over HTTP), so the
// sandbox exercises the same path the workflows use.
func (sb *Sandbox) seed(ctx context.Context, now time.Time) error {
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
	must(create(schema.TableProvider, schema.SetProviders, schema.Provider{
		Name: "Distributor portal (manual)", Type: schema.ProviderManual, PartnerModel: schema.PartnerIndirectReseller,
		ConnectivityStatus: schema.ConnectivityNotVerified,
	}))
	sb.partnerCenterProvider = pc
	contoso := must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Contoso Ltd", Website: "https://www.contoso.com", Email: "billing@contoso.com"}))
	fabrikam := must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Fabrikam, Inc.", Website: "https://fabrikam.com"}))
	must(create(schema.TableAccount, schema.SetAccounts, schema.Account{Name: "Northwind Traders", Email: "accounts@northwindtraders.com"}))

	contosoPA := must(create(schema.TableProviderAccount, schema.SetProviderAccounts, schema.ProviderAccount{
		Name: "Contoso Ltd", Provider: dataverse.Ref{ID: pc}, TenantID: demoContosoTenant, Domain: "contoso.onmicrosoft.com",
		CompanyName: "Contoso Ltd", Relationship: "Reseller", Account: dataverse.Ref{ID: contoso}, MappingStatus: schema.MappingMapped,
		MappingMessage: "Mapped by a person.", LastSyncedOn: now,
	}))
	must(create(schema.TableProviderAccount, schema.SetProviderAccounts, schema.ProviderAccount{
		Name: "Fabrikam", Provider: dataverse.Ref{ID: pc}, TenantID: demoFabrikamTenant, Domain: "fabrikam.com",
		CompanyName: "Fabrikam Inc", Relationship: "Reseller", Account: dataverse.Ref{ID: fabrikam}, MappingStatus: schema.MappingAutoMapped,
		MappingMessage: "Mapped automatically: the customer's domain fabrikam.com is the account's website.", LastSyncedOn: now,
	}))
	must(create(schema.TableProviderAccount, schema.SetProviderAccounts, schema.ProviderAccount{
		Name: "Adventure Works", Provider: dataverse.Ref{ID: pc}, TenantID: demoAdventureWorksTenant, Domain: "adventure-works.com",
		CompanyName: "Adventure Works Cycles", Relationship: "Reseller", MappingStatus: schema.MappingUnmapped,
		MappingMessage: "No account matches this customer's domain or name. Choose the account on this row.", LastSyncedOn: now,
	}))
	mca := must(create(schema.TableAgreementTemplate, schema.SetAgreementTemplates, schema.AgreementTemplate{
		Name: "Microsoft Customer Agreement", TemplateID: "117a1e9f-3e79-4b1b-9b4e-6f2b1c0b7d1a", AgreementType: schema.AgreementMicrosoftCustomerAgreement,
		Provider: dataverse.Ref{ID: pc}, AgreementLink: "https://www.microsoft.com/licensing/docs/customeragreement",
	}))
	agreement := must(create(schema.TableAgreement, schema.SetAgreements, schema.Agreement{
		Name: "Contoso Ltd — Microsoft Customer Agreement", ProviderAccount: dataverse.Ref{ID: contosoPA}, Account: dataverse.Ref{ID: contoso},
		Template: dataverse.Ref{ID: mca}, AttestationStatus: schema.AttestationNotStarted,
	}))
	if agreement != (dataverse.GUID{}) {
		_, err := c.Update(ctx, schema.SetAgreements, agreement, dataverse.Row{"statuscode": schema.AgreementPending}, nil)
		errs = append(errs, err)
	}
	sub := must(create(schema.TableSubscription, schema.SetSubscriptions, schema.Subscription{
		Name: "Microsoft 365 Business Premium", ProviderAccount: dataverse.Ref{ID: contosoPA}, Account: dataverse.Ref{ID: contoso},
		Provider: dataverse.Ref{ID: pc}, PCSubscriptionID: demoContosoSubscription, OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS",
		Quantity: 10, ReductionBehavior: schema.ReductionAllowedWithinWindow, ReductionWindowHrs: 168, ActualProvisionedOn: now.AddDate(0, 0, -30),
		TermDuration: "P1Y", BillingCycle: "monthly", CommitmentEndDate: now.AddDate(0, 11, 0),
	}))
	twelve, fifteen := 12, 15
	ten := 10
	must(create(schema.TableLicenseChangeLog, schema.SetLicenseChangeLogs, schema.LicenseChangeLog{
		Name: "Contoso: 10 → 12 seats", Subscription: dataverse.Ref{ID: sub}, ChangeType: schema.ChangeQuantity,
		Quantity: &twelve, PreviousQuantity: &ten, EffectiveDate: now, ProvisioningStatus: schema.ProvisioningAwaiting, ChangeSource: schema.SourceDynamics,
	}))
	must(create(schema.TableLicenseChangeLog, schema.SetLicenseChangeLogs, schema.LicenseChangeLog{
		Name: "Contoso: 12 → 15 seats next month", Subscription: dataverse.Ref{ID: sub}, ChangeType: schema.ChangeQuantity,
		Quantity: &fifteen, PreviousQuantity: &twelve, EffectiveDate: now.AddDate(0, 1, 0), ProvisioningStatus: schema.ProvisioningAwaiting, ChangeSource: schema.SourceDynamics,
	}))
	return errors.Join(errs...)
}

// Demonstration tenants and subscriptions, shared by both simulators so the rows and the provider agree.
const (
	demoContosoTenant        = "4c721420-72ad-4708-a0a7-371a2f7b0969"
	demoFabrikamTenant       = "a1b2c3d4-0000-4000-8000-000000000002"
	demoAdventureWorksTenant = "a1b2c3d4-0000-4000-8000-000000000003"
	demoNorthwindTenant      = "a1b2c3d4-0000-4000-8000-000000000004"
	demoContosoSubscription  = "a4c1340d-6911-4758-bba3-0c4c6007d161"
)

// seedPartnerCenter gives the Partner Center simulator customers in each situation the workflows meet:
// agreement attested, accepted in the admin center, not accepted; subscriptions inside and outside their
// refund window, an add-on, a suspended one.
func seedPartnerCenter(pc *partnercentertest.Server, now time.Time) error {
	mca := "117a77b0-9360-443b-8795-c6dedc750cf9"
	customers := []partnercentertest.Customer{
		{TenantID: demoContosoTenant, CompanyName: "Contoso Ltd", Domain: "contoso.onmicrosoft.com", Country: "GB",
			Subscriptions: []partnercentertest.Subscription{
				{ID: demoContosoSubscription, OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", FriendlyName: "Microsoft 365 Business Premium", Quantity: 10, TermDuration: "P1Y", BillingCycle: "monthly", AutoRenew: true, CreatedOn: now.AddDate(0, 0, -30)},
				{ID: "5b6f4b2e-7c1d-4e0a-9f3b-2d8e6a1c0b01", OfferID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971", FriendlyName: "Microsoft 365 Business Basic", Quantity: 3, TermDuration: "P1M", BillingCycle: "monthly", CreatedOn: now.AddDate(0, 0, -2)},
			}},
		{TenantID: demoFabrikamTenant, CompanyName: "Fabrikam Inc", Domain: "fabrikam.com", Country: "US",
			Agreements: []partnercentertest.Agreement{{TemplateID: mca, Type: "MicrosoftCustomerAgreement", FirstName: "Ana", LastName: "Bowman", Email: "ana.bowman@fabrikam.com", DateAgreed: now.AddDate(0, -3, 0)}},
			Subscriptions: []partnercentertest.Subscription{
				{ID: "0e7b0a53-4a4d-4a55-8f7a-6c0c9a1d2b02", OfferID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971", FriendlyName: "Microsoft 365 Business Basic", Quantity: 25, TermDuration: "P1Y", BillingCycle: "annual", Status: "suspended", CreatedOn: now.AddDate(0, -5, 0)},
			}},
		{TenantID: demoAdventureWorksTenant, CompanyName: "Adventure Works Cycles", Domain: "adventure-works.com", Country: "US"},
		{TenantID: demoNorthwindTenant, CompanyName: "Northwind Traders", Domain: "northwindtraders.com", Country: "DE", DirectSigned: true},
	}
	for _, c := range customers {
		if err := pc.AddCustomer(c); err != nil {
			return err
		}
	}
	return nil
}
