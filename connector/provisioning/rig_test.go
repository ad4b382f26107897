package provisioning

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// clock is a settable clock shared by the simulators and the provisioner.
// provRig is a provisioner on both simulators: one Automatic Partner Center provider, one mapped customer.
type provRig struct {
	*testrig.Sims
	P        *Provisioner
	Provider dataverse.GUID
	Account  dataverse.GUID // the provider account
	Tenant   string

	mu    sync.Mutex
	woken []dataverse.GUID
}

type provOptions struct {
	SandboxCaps bool
	// PCOptions tune the Partner Center client (retries); nil: quick retries.
	PCOptions *partnercenter.ClientOptions
	// ProviderType defaults to Automatic.
	ProviderType schema.ProviderType
}

func newProvRig(t testing.TB, o provOptions) *provRig {
	t.Helper()
	ctx := t.Context()
	pco := partnercenter.ClientOptions{MaxRetries: 2, MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond, PollInterval: time.Millisecond}
	if o.PCOptions != nil {
		pco = *o.PCOptions
	}
	sims := testrig.StartSims(t, testrig.SimOptions{PartnerCenter: partnercentertest.Options{SandboxCaps: o.SandboxCaps},
		Dataverse:           dataverse.ClientOptions{MaxRetries: 5, MinRetryWait: time.Second, MaxRetryWait: time.Minute}, // the client's defaults
		PartnerCenterClient: pco})
	dv, pc, pcs, clk := sims.DV, sims.PC, sims.PCS, sims.Clock
	var err error
	r := &provRig{Sims: sims, Tenant: uuid.NewString()}
	r.P = New(dv, pc, &Options{Now: clk.Now, Wake: func(_ context.Context, ids []dataverse.GUID) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.woken = append(r.woken, ids...)
	}})
	require.NoError(t, pcs.AddCustomer(partnercentertest.Customer{TenantID: r.Tenant, CompanyName: "Contoso Ltd", Agreements: []partnercentertest.Agreement{
		{FirstName: "Ada", LastName: "Lovelace", Email: "ada@contoso.example"}}}))
	typ := o.ProviderType
	if typ == 0 {
		typ = schema.ProviderAutomatic
	}
	r.Provider, err = dv.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "Microsoft Partner Center", "csp_type": int(typ),
		"csp_connectivitystatus": int(schema.ConnectivityConnected)})
	require.NoError(t, err)
	r.Account, err = dv.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Contoso Ltd", "csp_tenantid": r.Tenant,
		"csp_provider@odata.bind": "/csp_providers(" + r.Provider.String() + ")"})
	require.NoError(t, err)
	return r
}

// Woken returns and forgets the LCLs the provisioner asked to wake.
func (r *provRig) Woken() []dataverse.GUID {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.woken
	r.woken = nil
	return w
}

// sub is a subscription in both places.
type sub struct {
	Row  dataverse.GUID
	PCID string
}

// Subscription creates a Partner Center subscription (quantity seats, bought at the rig's now minus age)
// and its Dataverse row; extra columns go on the row.
func (r *provRig) Subscription(t testing.TB, quantity int, age time.Duration, extra dataverse.Row) sub {
	t.Helper()
	pcID := uuid.NewString()
	require.NoError(t, r.PCS.AddSubscription(r.Tenant, partnercentertest.Subscription{ID: pcID, OfferID: "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS",
		Quantity: quantity, TermDuration: "P1Y", BillingCycle: "monthly", AutoRenew: true, CreatedOn: r.Clock.Now().Add(-age)}))
	row := dataverse.Row{"csp_name": "Microsoft 365 Business Premium", "csp_pcsubscriptionid": pcID, "csp_quantity": quantity,
		"csp_offerid": "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", "csp_termduration": "P1Y", "csp_billingcycle": "monthly",
		"csp_reductionbehavior": int(schema.ReductionAllowed), "csp_actualprovisionedon": r.Clock.Now().Add(-age).UTC(),
		"csp_provider@odata.bind": "/csp_providers(" + r.Provider.String() + ")", "csp_provideraccount@odata.bind": "/csp_provideraccounts(" + r.Account.String() + ")"}
	for k, v := range extra {
		row[k] = v
	}
	id, err := r.DV.Create(t.Context(), schema.SetSubscriptions, row)
	require.NoError(t, err)
	return sub{Row: id, PCID: pcID}
}

// LCL creates a change log Awaiting Provisioning on subscription s.
func (r *provRig) LCL(t testing.TB, s dataverse.GUID, change schema.ChangeType, quantity int, extra dataverse.Row) dataverse.GUID {
	t.Helper()
	row := dataverse.Row{"csp_name": "change", "csp_changetype": int(change), "csp_provisioningstatus": int(schema.ProvisioningAwaiting),
		"csp_changesource": int(schema.SourceDynamics)}
	if s != uuid.Nil {
		row["csp_subscription@odata.bind"] = "/csp_subscriptions(" + s.String() + ")"
	}
	if quantity > 0 {
		row["csp_quantity"] = quantity
	}
	for k, v := range extra {
		row[k] = v
	}
	id, err := r.DV.Create(t.Context(), schema.SetLicenseChangeLogs, row)
	require.NoError(t, err)
	return id
}

// Read reads an LCL.
func (r *provRig) Read(t testing.TB, id dataverse.GUID) schema.LicenseChangeLog {
	t.Helper()
	row, err := r.DV.Get(t.Context(), schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.LicenseChangeLog]()})
	require.NoError(t, err)
	var l schema.LicenseChangeLog
	require.NoError(t, dataverse.Unmarshal(row, &l))
	return l
}

// ReadSubscription reads a subscription row.
func (r *provRig) ReadSubscription(t testing.TB, id dataverse.GUID) schema.Subscription {
	t.Helper()
	row, err := r.DV.Get(t.Context(), schema.SetSubscriptions, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.Subscription]()})
	require.NoError(t, err)
	var s schema.Subscription
	require.NoError(t, dataverse.Unmarshal(row, &s))
	return s
}

// PCQuantity is Partner Center's quantity of a subscription.
func (r *provRig) PCQuantity(t testing.TB, pcID string) int {
	t.Helper()
	s, ok := r.PCS.Subscription(r.Tenant, pcID)
	require.True(t, ok)
	return s.Quantity
}

func idStrings[T fmt.Stringer](ids []T) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}
