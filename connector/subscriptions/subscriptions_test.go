package subscriptions

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// rig is the subscription sync on both simulators: one provider, one provider account mapped to an
// account and a Partner Center customer.
type rig struct {
	DVS     *dataversetest.Server
	PCS     *partnercentertest.Server
	DV      *dataverse.Client
	W       *Workflow
	Clock   *testrig.Clock
	PA      dataverse.GUID
	Tenant  string
	writes  atomic.Int64 // Dataverse requests other than GETs
	reverse atomic.Bool  // Partner Center's subscription lists come in reverse order
	// beforeList, when set, runs once before Partner Center answers the next subscription listing: what
	// happens while a sync runs, after it read the rows.
	beforeList atomic.Pointer[func()]

	mu      sync.Mutex
	notices []notify.Notification
}

type countingTransport struct {
	next   http.RoundTripper
	before func(*http.Request)
	f      func(*http.Request, *http.Response) (*http.Response, error)
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.before != nil {
		c.before(r)
	}
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	return c.f(r, resp)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := t.Context()
	clk := testrig.NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables, Now: clk.Now})
	require.NoError(t, err)
	t.Cleanup(dvs.Close)
	pcs, err := partnercentertest.NewServer(partnercentertest.Options{Now: clk.Now, AuthOptional: true, DisableRateLimit: true})
	require.NoError(t, err)
	t.Cleanup(pcs.Close)
	r := &rig{DVS: dvs, PCS: pcs, Clock: clk}
	dvHC := &http.Client{Transport: countingTransport{next: dvs.Client().Transport, f: func(req *http.Request, resp *http.Response) (*http.Response, error) {
		if req.Method != http.MethodGet {
			r.writes.Add(1)
		}
		return resp, nil
	}}}
	pcHC := &http.Client{Transport: countingTransport{next: pcs.Client().Transport, before: func(req *http.Request) {
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/subscriptions") {
			if f := r.beforeList.Swap(nil); f != nil {
				(*f)()
			}
		}
	}, f: func(req *http.Request, resp *http.Response) (*http.Response, error) {
		if !r.reverse.Load() || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/subscriptions") {
			return resp, nil
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		var page map[string]any
		if err := json.Unmarshal(bytes.TrimPrefix(body, []byte("\ufeff")), &page); err != nil {
			return nil, err
		}
		items, _ := page["items"].([]any)
		slices.Reverse(items)
		body, _ = json.Marshal(page)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return resp, nil
	}}}
	dv, err := dataverse.NewClient(dvs.URL, nil, &dataverse.ClientOptions{HTTPClient: dvHC, MaxRetries: 3, MinRetryWait: time.Millisecond, MaxRetryWait: 20 * time.Millisecond})
	require.NoError(t, err)
	pc, err := partnercenter.NewClient(pcs.URL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: pcHC, MaxRetries: 1, MinRetryWait: time.Millisecond, MaxRetryWait: 5 * time.Millisecond})
	require.NoError(t, err)
	r.DV = dv
	provider, err := dv.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic)})
	require.NoError(t, err)
	account, err := dv.Create(ctx, schema.SetAccounts, dataverse.Row{"name": "Contoso"})
	require.NoError(t, err)
	r.Tenant = uuid.NewString()
	require.NoError(t, pcs.AddCustomer(partnercentertest.Customer{TenantID: r.Tenant, CompanyName: "Contoso", Domain: "contoso.example"}))
	r.PA, err = dv.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Contoso", "csp_tenantid": r.Tenant,
		"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, provider), "csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, account),
		"csp_mappingstatus": int(schema.MappingMapped)})
	require.NoError(t, err)
	r.W = New(dv, pc, &Options{Now: clk.Now, BatchSize: 3, Publish: func(n notify.Notification) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.notices = append(r.notices, n)
		return true
	}})
	return r
}

func (r *rig) Notices() []notify.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.notices
	r.notices = nil
	return n
}

const (
	offerBasic   = "CFQ7TTC0LH18:0001:CFQ7TTC0K971"
	offerE3      = "CFQ7TTC0LFLX:0001:CFQ7TTC0K8P5"
	offerAddOnID = "CFQ7TTC0LHSF:0001:CFQ7TTC0KXG6"
)

func (r *rig) AddSub(t *testing.T, id, offer, parent string, qty int) {
	t.Helper()
	require.NoError(t, r.PCS.AddSubscription(r.Tenant, partnercentertest.Subscription{ID: id, OfferID: offer, OfferName: "Offer " + id,
		ParentSubscriptionID: parent, Quantity: qty, AutoRenew: true}))
}

// Row reads the subscription row of a Partner Center subscription.
func (r *rig) Row(t *testing.T, pcID string) schema.Subscription {
	t.Helper()
	raw, err := r.DV.GetByKey(t.Context(), schema.SetSubscriptions, subscriptionKey(r.PA, pcID), &dataverse.GetOptions{Select: dataverse.Columns[schema.Subscription]()})
	require.NoError(t, err)
	var s schema.Subscription
	require.NoError(t, dataverse.Unmarshal(raw, &s))
	return s
}

func (r *rig) LCLs(t *testing.T) []schema.LicenseChangeLog {
	t.Helper()
	var out []schema.LicenseChangeLog
	for raw, err := range r.DV.List(t.Context(), schema.SetLicenseChangeLogs, &dataverse.Query{Select: dataverse.Columns[schema.LicenseChangeLog]()}) {
		require.NoError(t, err)
		var l schema.LicenseChangeLog
		require.NoError(t, dataverse.Unmarshal(raw, &l))
		out = append(out, l)
	}
	return out
}

func (r *rig) Sync(t *testing.T) SyncResult {
	t.Helper()
	res, err := r.W.Sync(t.Context(), SyncOptions{})
	require.NoError(t, err)
	return res
}

func TestSyncCreatesUpdatesAndWritesNothingWhenUnchanged(t *testing.T) {
	r := newRig(t)
	subA, subB := uuid.NewString(), uuid.NewString()
	r.AddSub(t, subA, offerBasic, "", 10)
	r.AddSub(t, subB, offerE3, "", 5)

	res := r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 2, Created: 2}, res.SyncCounts)
	a := r.Row(t, subA)
	assert.Equal(t, 10, a.Quantity)
	assert.Equal(t, "Offer "+subA, a.OfferName)
	assert.Equal(t, offerBasic, a.OfferID)
	assert.Equal(t, "P1Y", a.TermDuration)
	assert.Equal(t, "monthly", a.BillingCycle)
	assert.True(t, a.AutoRenew)
	assert.False(t, a.CommitmentEndDate.IsZero())
	assert.Equal(t, r.Clock.Now().UTC(), a.ActualProvisionedOn.UTC(), "Actual provisioned on: when first seen")
	assert.Equal(t, r.PA, a.ProviderAccount.ID)
	assert.False(t, a.Account.IsZero())
	assert.Empty(t, r.LCLs(t), "a new subscription is not drift")

	// A column a person changed in Dynamics is put back; it is not a change in Partner Center.
	_, err := r.DV.Update(t.Context(), schema.SetSubscriptions, a.ID, dataverse.Row{"csp_offername": "typed by hand"}, nil)
	require.NoError(t, err)
	r.Clock.Advance(time.Hour)
	res = r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 2, Updated: 1, Unchanged: 1}, res.SyncCounts)
	assert.Equal(t, "Offer "+subA, r.Row(t, subA).OfferName)
	assert.Equal(t, a.ActualProvisionedOn, r.Row(t, subA).ActualProvisionedOn, "first seen stays")
	assert.Empty(t, r.LCLs(t))

	// Nothing changed: nothing is written.
	r.writes.Store(0)
	res = r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 2, Unchanged: 2}, res.SyncCounts)
	assert.Zero(t, r.writes.Load(), "a re-sync with nothing changed writes nothing")
	assert.Empty(t, r.Notices())
}

func TestSyncResolvesAddOnParentWhateverTheOrder(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		t.Run(map[bool]string{false: "parent first", true: "add-on first"}[reverse], func(t *testing.T) {
			r := newRig(t)
			r.reverse.Store(reverse)
			parent, addOn := uuid.NewString(), uuid.NewString()
			r.AddSub(t, parent, offerE3, "", 10)
			r.AddSub(t, addOn, offerAddOnID, parent, 10)
			res := r.Sync(t)
			assert.Equal(t, SyncCounts{Seen: 2, Created: 2}, res.SyncCounts)
			assert.Equal(t, r.Row(t, parent).ID, r.Row(t, addOn).Parent.ID)
			r.writes.Store(0)
			res = r.Sync(t)
			assert.Equal(t, SyncCounts{Seen: 2, Unchanged: 2}, res.SyncCounts)
			assert.Zero(t, r.writes.Load())
		})
	}
}

func TestSyncRecordsDriftAsProviderChange(t *testing.T) {
	r := newRig(t)
	sub := uuid.NewString()
	r.AddSub(t, sub, offerBasic, "", 10)
	r.Sync(t)
	require.NoError(t, r.PCS.ChangeSubscription(r.Tenant, partnercentertest.Subscription{ID: sub, Quantity: 12, AutoRenew: true}))
	r.Clock.Advance(time.Hour)

	res := r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Updated: 1, Drifted: 1}, res.SyncCounts)
	row := r.Row(t, sub)
	assert.Equal(t, 12, row.Quantity)
	lcls := r.LCLs(t)
	require.Len(t, lcls, 1)
	l := lcls[0]
	assert.Equal(t, schema.SourceProvider, l.ChangeSource)
	assert.Equal(t, schema.ProvisioningNotApplicable, l.ProvisioningStatus)
	assert.Equal(t, schema.ChangeQuantity, l.ChangeType)
	require.NotNil(t, l.Quantity)
	require.NotNil(t, l.PreviousQuantity)
	assert.Equal(t, 12, *l.Quantity)
	assert.Equal(t, 10, *l.PreviousQuantity)
	assert.Equal(t, row.ID, l.Subscription.ID)
	assert.Contains(t, l.ProvisioningMessage, "Seats 10 → 12, changed in Partner Center; seen on")
	require.Len(t, res.Drifts, 1)
	assert.Equal(t, Recorded, res.Drifts[0].Outcome)
	assert.Equal(t, l.ID, res.Drifts[0].LicenseChange)
	assert.Contains(t, res.Summary(), "Seats 10 → 12")

	notices := r.Notices()
	require.Len(t, notices, 1)
	assert.Equal(t, notify.SubscriptionDrift, notices[0].Type)
	assert.Contains(t, notices[0].Body, "Seats 10 → 12")
	assert.Equal(t, schema.EventSubscriptionDrift, notify.SubscriptionDrift.EventType())

	// Recorded once: the next run finds nothing.
	r.writes.Store(0)
	res = r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Unchanged: 1}, res.SyncCounts)
	assert.Zero(t, r.writes.Load())
	assert.Len(t, r.LCLs(t), 1)
}

func TestSyncRecordsSuspensionAndRenewalDrift(t *testing.T) {
	r := newRig(t)
	sub := uuid.NewString()
	r.AddSub(t, sub, offerBasic, "", 10)
	r.Sync(t)
	require.NoError(t, r.PCS.ChangeSubscription(r.Tenant, partnercentertest.Subscription{ID: sub, Status: "suspended", AutoRenew: false}))
	res := r.Sync(t)
	assert.Equal(t, 1, res.Drifted)
	row := r.Row(t, sub)
	assert.Equal(t, schema.SubscriptionSuspended, row.Status)
	assert.False(t, row.AutoRenew)
	var types []schema.ChangeType
	for _, l := range r.LCLs(t) {
		assert.Equal(t, schema.SourceProvider, l.ChangeSource)
		types = append(types, l.ChangeType)
	}
	assert.ElementsMatch(t, []schema.ChangeType{schema.ChangeSuspend, schema.ChangeRenewal}, types)
}

func TestSyncLeavesSubscriptionWithChangeInFlight(t *testing.T) {
	r := newRig(t)
	sub := uuid.NewString()
	r.AddSub(t, sub, offerBasic, "", 10)
	r.Sync(t)
	row := r.Row(t, sub)
	_, err := r.DV.Create(t.Context(), schema.SetLicenseChangeLogs, dataverse.Row{"csp_name": "Add 5 seats",
		"csp_subscription@odata.bind": dataverse.Bind(schema.SetSubscriptions, row.ID), "csp_changetype": int(schema.ChangeQuantity),
		"csp_quantity": 15, "csp_provisioningstatus": int(schema.ProvisioningAwaiting), "csp_changesource": int(schema.SourceDynamics)})
	require.NoError(t, err)
	require.NoError(t, r.PCS.ChangeSubscription(r.Tenant, partnercentertest.Subscription{ID: sub, Quantity: 12, AutoRenew: true}))

	r.writes.Store(0)
	res := r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Drifted: 1}, res.SyncCounts)
	assert.Zero(t, r.writes.Load(), "a subscription with a change of ours in flight is never touched")
	assert.Equal(t, row.ETag, r.Row(t, sub).ETag)
	assert.Len(t, r.LCLs(t), 1, "no Provider change")
	require.Len(t, res.Drifts, 1)
	assert.Equal(t, Blocked, res.Drifts[0].Outcome)
	assert.Equal(t, "Seats 10 → 12", res.Drifts[0].Change)
	notices := r.Notices()
	require.Len(t, notices, 1)
	assert.Equal(t, notify.SubscriptionDrift, notices[0].Type)
	assert.Contains(t, notices[0].Body, "in flight")
}

func TestSyncFlagsSubscriptionPartnerCenterNoLongerLists(t *testing.T) {
	r := newRig(t)
	sub := uuid.NewString()
	r.AddSub(t, sub, offerBasic, "", 10)
	r.Sync(t)
	gone := uuid.NewString()
	_, err := r.DV.Create(t.Context(), schema.SetSubscriptions, dataverse.Row{"csp_name": "Bought earlier", "csp_pcsubscriptionid": gone, "csp_quantity": 3,
		"csp_provideraccount@odata.bind": dataverse.Bind(schema.SetProviderAccounts, r.PA)})
	require.NoError(t, err)
	res := r.Sync(t)
	assert.Equal(t, 1, res.Drifted)
	require.Len(t, res.Drifts, 1)
	assert.Equal(t, Missing, res.Drifts[0].Outcome)
	assert.Contains(t, r.Row(t, gone).SyncMessage, "Partner Center no longer lists this subscription")
	r.writes.Store(0)
	res = r.Sync(t)
	assert.Equal(t, 1, res.Drifted, "still reported")
	assert.Zero(t, r.writes.Load(), "flagged once")
}

// gateTransport holds the first request until want requests are in flight at once (or a second has
// passed: a sync that lists one customer at a time never gets there) and records the most in flight.
type gateTransport struct {
	next          http.RoundTripper
	want          int64
	inFlight, max atomic.Int64
	open          chan struct{}
	once          sync.Once
}

func (g *gateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for m := g.max.Load(); n > m && !g.max.CompareAndSwap(m, n); m = g.max.Load() {
	}
	if n >= g.want {
		g.once.Do(func() { close(g.open) })
	}
	select {
	case <-g.open:
	case <-time.After(time.Second):
	}
	return g.next.RoundTrip(r)
}

func TestSyncListsCustomersConcurrentlyWithinWorkers(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	provider, err := r.DV.Create(ctx, schema.SetProviders, dataverse.Row{"csp_name": "Partner Center", "csp_type": int(schema.ProviderAutomatic)})
	require.NoError(t, err)
	account, err := r.DV.Create(ctx, schema.SetAccounts, dataverse.Row{"name": "Fabrikam"})
	require.NoError(t, err)
	r.AddSub(t, uuid.NewString(), offerBasic, "", 1)
	for i := range 11 {
		tenant := uuid.NewString()
		require.NoError(t, r.PCS.AddCustomer(partnercentertest.Customer{TenantID: tenant, CompanyName: "Customer", Domain: "c" + uuid.NewString()[:8] + ".example"}))
		require.NoError(t, r.PCS.AddSubscription(tenant, partnercentertest.Subscription{ID: uuid.NewString(), OfferID: offerBasic, Quantity: i + 1}))
		_, err := r.DV.Create(ctx, schema.SetProviderAccounts, dataverse.Row{"csp_name": "Customer", "csp_tenantid": tenant,
			"csp_provider@odata.bind": dataverse.Bind(schema.SetProviders, provider), "csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, account)})
		require.NoError(t, err)
	}
	gate := &gateTransport{next: r.PCS.Client().Transport, want: 4, open: make(chan struct{})}
	pc, err := partnercenter.NewClient(r.PCS.URL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: &http.Client{Transport: gate}})
	require.NoError(t, err)
	w := New(r.DV, pc, &Options{Now: r.Clock.Now, Workers: 4, GroupSize: 5, BatchSize: 7})

	res, err := w.Sync(ctx, SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, 12, res.Seen)
	assert.Equal(t, 12, res.Created)
	assert.Equal(t, int64(4), gate.max.Load(), "customers listed at once: the workers, no more")

	res, err = w.Sync(ctx, SyncOptions{})
	require.NoError(t, err)
	assert.Equal(t, 12, res.Unchanged)
}

// BeforeList runs f once, before Partner Center answers the next subscription listing.
func (r *rig) BeforeList(f func()) { r.beforeList.Store(&f) }

// ourChange creates a Dynamics license change of the subscription row in the given state.
func (r *rig) ourChange(t *testing.T, sub dataverse.GUID, kind schema.ChangeType, qty int, status schema.ProvisioningStatus) dataverse.GUID {
	t.Helper()
	row := dataverse.Row{"csp_name": "Our change", "csp_subscription@odata.bind": dataverse.Bind(schema.SetSubscriptions, sub),
		"csp_changetype": int(kind), "csp_provisioningstatus": int(status), "csp_changesource": int(schema.SourceDynamics)}
	if kind == schema.ChangeQuantity {
		row["csp_quantity"] = qty
	}
	if status == schema.ProvisioningProvisioned {
		row["csp_provisionedon"] = r.Clock.Now().UTC()
	}
	id, err := r.DV.Create(t.Context(), schema.SetLicenseChangeLogs, row)
	require.NoError(t, err)
	return id
}

// A change of ours entered and provisioned while the sync runs (after it started, before Partner Center
// lists the subscription) is not drift: Partner Center shows what we made.
func TestSyncDoesNotRecordOurChangeMadeWhileItRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		// provision makes the change as the provisioning does, up to the given point.
		status  schema.ProvisioningStatus
		rowToo  bool // the provisioning wrote the row back too (after the sync read it)
		skipped int
		updated int
	}{
		{name: "being provisioned when listed", status: schema.ProvisioningInProgress, skipped: 1},
		{name: "provisioned when listed, row written back", status: schema.ProvisioningProvisioned, rowToo: true, skipped: 1},
		{name: "provisioned when listed, row not yet written back", status: schema.ProvisioningProvisioned, updated: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			sub := uuid.NewString()
			r.AddSub(t, sub, offerBasic, "", 10)
			r.Sync(t)
			row := r.Row(t, sub)
			r.Clock.Advance(time.Hour)
			r.BeforeList(func() {
				r.ourChange(t, row.ID, schema.ChangeQuantity, 15, tc.status)
				require.NoError(t, r.PCS.ChangeSubscription(r.Tenant, partnercentertest.Subscription{ID: sub, Quantity: 15, AutoRenew: true}))
				if tc.rowToo {
					_, err := r.DV.Update(t.Context(), schema.SetSubscriptions, row.ID, dataverse.Row{"csp_quantity": 15}, nil)
					require.NoError(t, err)
				}
			})

			res := r.Sync(t)
			assert.Equal(t, SyncCounts{Seen: 1, Updated: tc.updated, Skipped: tc.skipped}, res.SyncCounts)
			assert.Empty(t, res.Drifts)
			for _, l := range r.LCLs(t) {
				assert.NotEqual(t, schema.SourceProvider, l.ChangeSource, "our own change recorded as a change made in Partner Center: %s", l.ProvisioningMessage)
			}
			assert.Empty(t, r.Notices())
			if tc.status == schema.ProvisioningInProgress {
				assert.Equal(t, 10, r.Row(t, sub).Quantity, "a subscription with a change of ours in flight is not touched")
			}
		})
	}
}

// A change of ours in flight does not hide what else Partner Center changed: it is reported, and the row
// is left alone.
func TestSyncReportsDriftBesideOurChangeInFlight(t *testing.T) {
	r := newRig(t)
	sub := uuid.NewString()
	r.AddSub(t, sub, offerBasic, "", 10)
	r.Sync(t)
	row := r.Row(t, sub)
	r.BeforeList(func() {
		r.ourChange(t, row.ID, schema.ChangeQuantity, 15, schema.ProvisioningInProgress)
		require.NoError(t, r.PCS.ChangeSubscription(r.Tenant, partnercentertest.Subscription{ID: sub, Quantity: 15, AutoRenew: false}))
	})
	res := r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Drifted: 1}, res.SyncCounts)
	require.Len(t, res.Drifts, 1)
	assert.Equal(t, Blocked, res.Drifts[0].Outcome)
	assert.Equal(t, "Seats 10 → 15; Auto-renew on → off", res.Drifts[0].Change)
	assert.Equal(t, row.ETag, r.Row(t, sub).ETag)
}

// A purchase of ours that Partner Center shows before the provisioning wrote its subscription id back is
// not imported as a second row; the next run, after the write-back, finds the one row.
func TestSyncLeavesSubscriptionOurPurchaseIsMaking(t *testing.T) {
	for _, during := range []bool{false, true} {
		t.Run(map[bool]string{false: "row entered before the run", true: "row entered while it runs"}[during], func(t *testing.T) {
			r := newRig(t)
			ctx := t.Context()
			r.AddSub(t, uuid.NewString(), offerE3, "", 3) // an older subscription, imported
			r.Sync(t)
			r.Clock.Advance(time.Hour)
			bought, addOn := uuid.NewString(), uuid.NewString()
			var purchase dataverse.GUID
			buy := func() {
				var err error
				purchase, err = r.DV.Create(ctx, schema.SetSubscriptions, dataverse.Row{"csp_name": "Bought in Dynamics", "csp_offerid": offerBasic,
					"csp_provideraccount@odata.bind": dataverse.Bind(schema.SetProviderAccounts, r.PA)})
				require.NoError(t, err)
				r.ourChange(t, purchase, schema.ChangePurchase, 0, schema.ProvisioningInProgress)
				r.Clock.Advance(time.Second)
				r.AddSub(t, bought, offerBasic, "", 4) // the checkout
				r.AddSub(t, addOn, offerAddOnID, bought, 1)
			}
			if during {
				r.BeforeList(buy)
			} else {
				buy()
			}
			res := r.Sync(t)
			assert.Equal(t, SyncCounts{Seen: 3, Unchanged: 1, Skipped: 2}, res.SyncCounts)
			assert.Empty(t, res.Drifts)

			// The provisioning writes the purchase back; the next run updates that row, and imports the add-on.
			_, err := r.DV.Update(ctx, schema.SetSubscriptions, purchase, dataverse.Row{"csp_pcsubscriptionid": bought, "csp_quantity": 4}, nil)
			require.NoError(t, err)
			res = r.Sync(t)
			assert.Equal(t, 3, res.Seen)
			assert.Equal(t, 1, res.Created)
			assert.Zero(t, res.Skipped+res.Failed)
			assert.Equal(t, purchase, r.Row(t, bought).ID, "one row: the purchase's")
			assert.Equal(t, purchase, r.Row(t, addOn).Parent.ID)
		})
	}
}

// A subscription bought long ago is imported even if a row for the same offer waits for its id: only a
// recent one can be a purchase of ours in flight.
func TestSyncImportsOlderSubscriptionBesideRowWithoutID(t *testing.T) {
	r := newRig(t)
	_, err := r.DV.Create(t.Context(), schema.SetSubscriptions, dataverse.Row{"csp_name": "Typed by hand", "csp_offerid": offerBasic,
		"csp_provideraccount@odata.bind": dataverse.Bind(schema.SetProviderAccounts, r.PA)})
	require.NoError(t, err)
	old := uuid.NewString()
	require.NoError(t, r.PCS.AddSubscription(r.Tenant, partnercentertest.Subscription{ID: old, OfferID: offerBasic, Quantity: 2,
		CreatedOn: r.Clock.Now().AddDate(0, -2, 0)}))
	res := r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Created: 1}, res.SyncCounts)
}

// Changes of ours provisioned the same second (times are kept to the second) all count as the last one:
// whichever Partner Center shows explains it.
func TestSyncTakesChangesProvisionedTheSameSecondAsTheLast(t *testing.T) {
	r := newRig(t)
	sub := uuid.NewString()
	r.AddSub(t, sub, offerBasic, "", 5)
	r.Sync(t)
	row := r.Row(t, sub)
	r.Clock.Advance(time.Hour)
	r.ourChange(t, row.ID, schema.ChangeQuantity, 8, schema.ProvisioningProvisioned)
	r.ourChange(t, row.ID, schema.ChangeQuantity, 9, schema.ProvisioningProvisioned)
	require.NoError(t, r.PCS.ChangeSubscription(r.Tenant, partnercentertest.Subscription{ID: sub, Quantity: 9, AutoRenew: true}))

	res := r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Updated: 1}, res.SyncCounts)
	assert.Equal(t, 9, r.Row(t, sub).Quantity)
	assert.Len(t, r.LCLs(t), 2, "no Provider change")
}

// A purchase of ours writes back what was bought, not the renewal terms Partner Center gave it: the sync
// takes them without recording a drift, and records a later change of them as one.
func TestSyncTakesTheRenewalTermsOfOurPurchase(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	bought := uuid.NewString()
	r.AddSub(t, bought, offerBasic, "", 4) // auto-renew on
	// The row the purchase was made from, written back by the provisioning: Partner Center's id and the
	// seats bought; auto-renew as the row had it (off).
	purchase, err := r.DV.Create(ctx, schema.SetSubscriptions, dataverse.Row{"csp_name": "Bought in Dynamics", "csp_offerid": offerBasic,
		"csp_pcsubscriptionid": bought, "csp_quantity": 4, "csp_provideraccount@odata.bind": dataverse.Bind(schema.SetProviderAccounts, r.PA)})
	require.NoError(t, err)
	r.ourChange(t, purchase, schema.ChangePurchase, 0, schema.ProvisioningProvisioned)

	r.Clock.Advance(10 * time.Minute)
	res := r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Updated: 1}, res.SyncCounts)
	assert.True(t, r.Row(t, bought).AutoRenew)
	assert.Len(t, r.LCLs(t), 1, "no Provider change")

	r.Clock.Advance(time.Hour)
	require.NoError(t, r.PCS.ChangeSubscription(r.Tenant, partnercentertest.Subscription{ID: bought, AutoRenew: false}))
	res = r.Sync(t)
	assert.Equal(t, SyncCounts{Seen: 1, Updated: 1, Drifted: 1}, res.SyncCounts)
	require.Len(t, res.Drifts, 1)
	assert.Equal(t, "Auto-renew on → off", res.Drifts[0].Change)
	assert.Equal(t, Recorded, res.Drifts[0].Outcome)
}
