package provisioning

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/testrig"
	"github.com/cspconnector/csp-connector/mapping"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// The provisioner under faults: killed at every point of a change and restarted, two replicas racing, an
// admin editing the row mid-change, Partner Center throttling, failing, timing out and refusing tokens,
// and duplicate, out-of-order events through the work queue. Each test ends by checking what people and
// Partner Center see: the row's status, the seats on both sides, and that nothing was done twice.

// errProcessKilled is what a crash point returns: the run ends there, as if the process had died.
var errProcessKilled = errors.New("process killed by the fault test")

// wireSpec names the request a tripwire fires on: method, and substrings of the URL path and the body.
// lost fires after the server answered (the request took effect, the process died before reading the
// answer); otherwise it fires before the request is sent.
type wireSpec struct {
	method, path, body string
	lost               bool
}

// tripwire is a transport that runs action at the first request matching spec. An action that returns an
// error fails that request with it (after cancelling the run, for a crash); nil lets the request through.
type tripwire struct {
	next    http.RoundTripper
	spec    wireSpec
	action  func() error
	tripped atomic.Bool
}

func (s wireSpec) wrap(action func() error) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper { return &tripwire{next: next, spec: s, action: action} }
}

func (w *tripwire) RoundTrip(req *http.Request) (*http.Response, error) {
	if w.tripped.Load() || req.Method != w.spec.method || !strings.Contains(req.URL.Path, w.spec.path) {
		return w.next.RoundTrip(req)
	}
	if w.spec.body != "" {
		if req.Body == nil {
			return w.next.RoundTrip(req)
		}
		data, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(data))
		if !bytes.Contains(data, []byte(w.spec.body)) {
			return w.next.RoundTrip(req)
		}
	}
	if !w.tripped.CompareAndSwap(false, true) {
		return w.next.RoundTrip(req)
	}
	if !w.spec.lost {
		if err := w.action(); err != nil {
			return nil, err
		}
		return w.next.RoundTrip(req)
	}
	resp, err := w.next.RoundTrip(req)
	if aerr := w.action(); aerr != nil {
		if resp != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return nil, aerr
	}
	return resp, err
}

// killer is a tripwire action that kills the run: its context ends, so nothing more reaches either service.
func killer(cancel context.CancelFunc) func() error {
	return func() error {
		cancel()
		return errProcessKilled
	}
}

// fastPC are Partner Center client options for tests: quick retries, no client-side rate limit to wait on.
func fastPC(maxRetries int) *partnercenter.ClientOptions {
	return &partnercenter.ClientOptions{MaxRetries: maxRetries, MinRetryWait: time.Millisecond, MaxRetryWait: 10 * time.Millisecond,
		PollInterval: time.Millisecond, TenantRequests: 100_000}
}

// faultClients are clients of their own on the rig's simulators, as another process has: transports
// wrapped by wrapDV and wrapPC (nil: plain), Partner Center credentials creds and options pco (nil:
// fastPC; of pco.HTTPClient only the Timeout is used, the transport is the simulator's).
func faultClients(t *testing.T, r *provRig, wrapDV, wrapPC func(http.RoundTripper) http.RoundTripper,
	creds partnercenter.Credentials, pco *partnercenter.ClientOptions) (*dataverse.Client, *partnercenter.Client) {
	t.Helper()
	dvHTTP := *r.DVS.Client()
	if wrapDV != nil {
		dvHTTP.Transport = wrapDV(dvHTTP.Transport)
	}
	dv, err := dataverse.NewClient(r.DVS.URL, nil, &dataverse.ClientOptions{HTTPClient: &dvHTTP})
	require.NoError(t, err)
	if pco == nil {
		pco = fastPC(2)
	}
	o := *pco
	pcHTTP := *r.PCS.Client()
	if o.HTTPClient != nil {
		pcHTTP.Timeout = o.HTTPClient.Timeout
	}
	if wrapPC != nil {
		pcHTTP.Transport = wrapPC(pcHTTP.Transport)
	}
	o.HTTPClient = &pcHTTP
	pc, err := partnercenter.NewClient(r.PCS.URL, creds, &o)
	require.NoError(t, err)
	return dv, pc
}

// faultPurchaseRow creates a subscription row not yet bought: no Partner Center subscription id.
func faultPurchaseRow(t *testing.T, r *provRig) dataverse.GUID {
	t.Helper()
	id, err := r.DV.Create(t.Context(), schema.SetSubscriptions, dataverse.Row{"csp_name": "Microsoft 365 Business Premium",
		"csp_offerid": "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS", "csp_termduration": "P1Y", "csp_billingcycle": "monthly",
		"csp_reductionbehavior":   int(schema.ReductionAllowed),
		"csp_provider@odata.bind": "/csp_providers(" + r.Provider.String() + ")", "csp_provideraccount@odata.bind": "/csp_provideraccounts(" + r.Account.String() + ")"})
	require.NoError(t, err)
	return id
}

// pcChanges counts the updates of a subscription Partner Center carried out: PATCHes that succeeded and
// were not answered from its MS-RequestId store.
func pcChanges(r *provRig, pcID string) int {
	n := 0
	for _, req := range r.PCS.Requests() {
		if req.Method == http.MethodPatch && strings.Contains(strings.ToLower(req.Path), strings.ToLower(pcID)) && !req.Replayed && req.Status >= 200 && req.Status < 300 {
			n++
		}
	}
	return n
}

// pcRequests are the logged Partner Center requests with this method whose path contains path.
func pcRequests(r *provRig, method, path string) []partnercentertest.Request {
	var out []partnercentertest.Request
	for _, req := range r.PCS.Requests() {
		if req.Method == method && strings.Contains(req.Path, path) {
			out = append(out, req)
		}
	}
	return out
}

// restarted is a new process on the rig's clients: a Provisioner that shares nothing with the one that died.
func restarted(r *provRig) *Provisioner {
	return New(r.DV, r.PC, &Options{Now: r.Clock.Now, Wake: r.P.wakeRows})
}

// TestProvisionFaultCrashAndRestart kills the process at every point of a quantity change and of a
// purchase, then restarts it: the claim keeps the change from everyone until it expires, the sweep finds
// it then, and the resumed attempt finishes it without doing anything twice.
func TestProvisionFaultCrashAndRestart(t *testing.T) {
	t.Parallel()
	update := wireSpec{method: http.MethodPatch, path: "/subscriptions/"}
	checkout := wireSpec{method: http.MethodPost, path: "/checkout"}
	tests := []struct {
		name                  string
		purchase              bool
		afterClaim, afterCall bool
		// dvWire and pcWire kill the dying process at one request to Dataverse or Partner Center.
		dvWire, pcWire *wireSpec
		// left is what the dead run left in Partner Center: the seats (quantity change) or the orders
		// (purchase); leftCart and leftOrder, the ids it had recorded on the row.
		left                int
		leftCart, leftOrder bool
	}{
		{name: "quantity killed after the claim", afterClaim: true, left: 10},
		{name: "quantity killed while the update was in flight", pcWire: &wireSpec{method: update.method, path: update.path, lost: true}, left: 15},
		{name: "quantity killed after the call before the write-back", afterCall: true, left: 15},
		{name: "purchase killed after the claim", purchase: true, afterClaim: true, left: 0},
		{name: "purchase killed after the cart was recorded before checkout", purchase: true, pcWire: &checkout, left: 0, leftCart: true},
		{name: "purchase killed while checkout was in flight", purchase: true, pcWire: &wireSpec{method: checkout.method, path: checkout.path, lost: true},
			left: 1, leftCart: true},
		{name: "purchase killed after checkout before the order id was recorded", purchase: true,
			dvWire: &wireSpec{method: http.MethodPatch, path: "csp_licensechangelogs(", body: "csp_pcorderid"}, left: 1, leftCart: true},
		{name: "purchase killed after the order id was recorded before the write-back", purchase: true, afterCall: true,
			left: 1, leftCart: true, leftOrder: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newProvRig(t, provOptions{})
			ctx, die := context.WithCancel(t.Context())
			defer die()
			var wrapDV, wrapPC func(http.RoundTripper) http.RoundTripper
			if tt.dvWire != nil {
				wrapDV = tt.dvWire.wrap(killer(die))
			}
			if tt.pcWire != nil {
				wrapPC = tt.pcWire.wrap(killer(die))
			}
			dv, pc := faultClients(t, r, wrapDV, wrapPC, partnercenter.Credentials{}, nil)
			dying := New(dv, pc, &Options{Now: r.Clock.Now})
			if tt.afterClaim {
				dying.faults.afterClaim = func(dataverse.GUID) error { return errProcessKilled }
			}
			if tt.afterCall {
				dying.faults.afterCall = func(dataverse.GUID) error { return errProcessKilled }
			}

			var s sub
			var id dataverse.GUID
			if tt.purchase {
				s.Row = faultPurchaseRow(t, r)
				id = r.LCL(t, s.Row, schema.ChangePurchase, 5, nil)
			} else {
				s = r.Subscription(t, 10, 24*time.Hour, nil)
				id = r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)
			}
			inPC := func() int {
				if tt.purchase {
					return r.PCS.Orders(r.Tenant)
				}
				return r.PCQuantity(t, s.PCID)
			}

			_, err := dying.Provision(ctx, id)
			require.True(t, errors.Is(err, errProcessKilled) || errors.Is(err, context.Canceled), "the run ends at the crash point: %v", err)
			crashed := r.Read(t, id)
			require.Equal(t, schema.ProvisioningInProgress, crashed.ProvisioningStatus, "the dead run holds the claim")
			require.NotEmpty(t, crashed.AttemptID)
			assert.True(t, crashed.ClaimExpiresOn.After(r.Clock.Now()))
			assert.Equal(t, tt.leftCart, crashed.PCCartID != "", "cart id on the row")
			assert.Equal(t, tt.leftOrder, crashed.PCOrderID != "", "order id on the row")
			require.Equal(t, tt.left, inPC(), "what the dead run did in Partner Center")

			// Restarted while the claim holds: the change belongs to the dead attempt until it expires.
			p := restarted(r)
			out, err := p.Provision(t.Context(), id)
			require.NoError(t, err)
			assert.Equal(t, mapping.Skip, out.Decision.Verdict)
			assert.Contains(t, out.Decision.Message, "Another attempt ("+crashed.AttemptID+")")
			n, err := p.Sweep(t.Context())
			require.NoError(t, err)
			assert.Zero(t, n, "a live claim is not swept")
			assert.Equal(t, tt.left, inPC())

			r.Clock.Advance(DefaultClaimTTL + time.Second)
			n, err = p.Sweep(t.Context())
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			require.Equal(t, []string{id.String()}, idStrings(r.Woken()), "the sweep finds the expired claim")
			out, err = p.Provision(t.Context(), id)
			require.NoError(t, err)
			assert.Equal(t, mapping.Proceed, out.Decision.Verdict, out.Decision.Message)

			l := r.Read(t, id)
			assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus, l.ProvisioningMessage)
			assert.Equal(t, crashed.AttemptID, l.AttemptID, "the restart resumes the dead attempt")
			assert.Equal(t, 1, l.Attempts, "a resumed attempt is not a new one")
			assert.True(t, l.ClaimExpiresOn.IsZero(), "the claim is released")
			row := r.ReadSubscription(t, s.Row)
			if !tt.purchase {
				assert.Equal(t, 15, r.PCQuantity(t, s.PCID))
				assert.Equal(t, 15, row.Quantity)
				assert.Equal(t, 1, pcChanges(r, s.PCID), "Partner Center changed once")
				// Either the dead attempt made the change or the resumed one did: the message is true both ways.
				assert.Contains(t, []string{"Seats 10 → 15 in Partner Center.", "Partner Center has 15 seats, as asked."}, l.ProvisioningMessage)
				return
			}
			assert.Equal(t, 1, r.PCS.Orders(r.Tenant), "bought once")
			bought := r.PCS.Subscriptions(r.Tenant)
			require.Len(t, bought, 1, "one subscription created")
			assert.Equal(t, 5, r.PCQuantity(t, bought[0]))
			assert.Equal(t, bought[0], row.PCSubscriptionID)
			assert.Equal(t, bought[0], l.PCSubscriptionID)
			assert.Equal(t, 5, row.Quantity)
			assert.NotEmpty(t, l.PCOrderID)
			if crashed.PCCartID != "" {
				assert.Equal(t, crashed.PCCartID, l.PCCartID, "the recorded cart is the one bought")
			}
			if crashed.PCOrderID != "" {
				assert.Equal(t, crashed.PCOrderID, l.PCOrderID)
			}
			assert.Contains(t, l.ProvisioningMessage, "Bought 5 seat(s) in Partner Center: order "+l.PCOrderID)
		})
	}
}

// TestProvisionFaultOrderIDWriteFails is the purchase whose order id Dataverse refuses to record (500)
// right after checkout: the run holds the change for a retry, and the retry finds the order through the
// recorded cart instead of buying again.
func TestProvisionFaultOrderIDWriteFails(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	refuse := func() error {
		r.DVS.Inject(dataversetest.Fault{Method: http.MethodPatch, Path: "csp_licensechangelogs", Status: http.StatusInternalServerError, Times: 1})
		return nil
	}
	dv, _ := faultClients(t, r, wireSpec{method: http.MethodPatch, path: "csp_licensechangelogs(", body: "csp_pcorderid"}.wrap(refuse),
		nil, partnercenter.Credentials{}, nil)
	p := New(dv, r.PC, &Options{Now: r.Clock.Now, Wake: r.P.wakeRows})
	subRow := faultPurchaseRow(t, r)
	id := r.LCL(t, subRow, schema.ChangePurchase, 5, nil)

	out, err := p.Provision(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, mapping.Hold, out.Decision.Verdict, out.Decision.Message)
	l := r.Read(t, id)
	assert.Equal(t, schema.ProvisioningAwaiting, l.ProvisioningStatus)
	assert.Equal(t, schema.HeldRetrying, l.HeldReason)
	assert.NotEmpty(t, l.PCCartID)
	assert.Empty(t, l.PCOrderID, "the order id was not recorded")
	assert.True(t, l.ClaimExpiresOn.IsZero(), "the claim is released")
	assert.True(t, l.NextAttemptOn.After(r.Clock.Now()))
	assert.Contains(t, l.SystemMessage, "500")
	require.Equal(t, 1, r.PCS.Orders(r.Tenant), "checkout went through")

	r.Clock.Advance(l.NextAttemptOn.Sub(r.Clock.Now()) + time.Second)
	_, err = p.Sweep(t.Context())
	require.NoError(t, err)
	require.Contains(t, idStrings(r.Woken()), id.String())
	out, err = p.Provision(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, mapping.Proceed, out.Decision.Verdict, out.Decision.Message)
	l = r.Read(t, id)
	assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus, l.ProvisioningMessage)
	assert.Equal(t, 2, l.Attempts)
	assert.Equal(t, 1, r.PCS.Orders(r.Tenant), "not bought twice")
	bought := r.PCS.Subscriptions(r.Tenant)
	require.Len(t, bought, 1)
	assert.Equal(t, bought[0], r.ReadSubscription(t, subRow).PCSubscriptionID)
	assert.NotEmpty(t, l.PCOrderID)
	checkouts := pcRequests(r, http.MethodPost, "/checkout")
	require.Len(t, checkouts, 2)
	assert.False(t, checkouts[0].Replayed)
	// A new attempt checks out with a request id of its own (so a refusal fixed since is not replayed):
	// Partner Center refuses the bought cart (800065), and the connector finds the cart's order instead.
	assert.False(t, checkouts[1].Replayed)
	assert.Equal(t, http.StatusBadRequest, checkouts[1].Status)
}

// TestProvisionReplicasRace runs two replicas, each with clients of its own, over the same changes at
// the same time: every change is made once, in order, and reported done by one of them.
func TestProvisionReplicasRace(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{PCOptions: fastPC(2)})
	const subscriptions, changes = 4, 3
	type plan struct {
		s       sub
		lcls    []dataverse.GUID
		targets []int
	}
	plans := make([]plan, subscriptions)
	var all []dataverse.GUID
	for i := range plans {
		plans[i].s = r.Subscription(t, 10, 24*time.Hour, nil)
		for k := range changes {
			r.Clock.Advance(time.Second) // creation order is the order of the changes
			q := 10 + (i+1)*(k+1)
			id := r.LCL(t, plans[i].s.Row, schema.ChangeQuantity, q, nil)
			plans[i].lcls = append(plans[i].lcls, id)
			plans[i].targets = append(plans[i].targets, q)
			all = append(all, id)
		}
	}
	dv2, pc2 := faultClients(t, r, nil, nil, partnercenter.Credentials{}, fastPC(2))
	replicas := []*Provisioner{New(r.DV, r.PC, &Options{Now: r.Clock.Now}), New(dv2, pc2, &Options{Now: r.Clock.Now})}

	ctx := t.Context()
	done := func(dv *dataverse.Client) bool {
		for _, id := range all {
			row, err := dv.Get(ctx, schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: []string{"csp_provisioningstatus"}})
			if err != nil {
				return false
			}
			if v, _ := row.Int("csp_provisioningstatus"); schema.ProvisioningStatus(v) != schema.ProvisioningProvisioned {
				return false
			}
		}
		return true
	}
	var mu sync.Mutex
	performed := map[dataverse.GUID][]int{} // the replicas that reported the change done
	var failures []error
	start := make(chan struct{})
	var wg sync.WaitGroup
	const workers = 3 // per replica, as its work queue runs several keys at once
	for i, p := range replicas {
		for range workers {
			wg.Go(func() {
				<-start
				for range 20 {
					for _, id := range all {
						out, err := p.Provision(ctx, id)
						mu.Lock()
						if err != nil && !errors.Is(err, errConflict) {
							failures = append(failures, err)
						}
						if out.Changed != "" {
							performed[id] = append(performed[id], i)
						}
						mu.Unlock()
					}
					if done(p.dv) {
						return
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()

	require.Empty(t, failures)
	require.True(t, done(r.DV), "every change is provisioned")
	for _, pl := range plans {
		prev := 10
		for k, id := range pl.lcls {
			l := r.Read(t, id)
			assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus)
			assert.Equal(t, 1, l.Attempts, "claimed once")
			assert.Equal(t, fmt.Sprintf("Seats %d → %d in Partner Center.", prev, pl.targets[k]), l.ProvisioningMessage, "made in order, by one replica")
			assert.Len(t, performed[id], 1, "reported done once")
			prev = pl.targets[k]
		}
		last := pl.targets[len(pl.targets)-1]
		assert.Equal(t, last, r.PCQuantity(t, pl.s.PCID))
		assert.Equal(t, last, r.ReadSubscription(t, pl.s.Row).Quantity)
		assert.Equal(t, changes, pcChanges(r, pl.s.PCID), "one Partner Center update per change")
	}
	by := [2]int{}
	for _, rs := range performed {
		for _, i := range rs {
			by[i]++
		}
	}
	refused := 0
	for _, req := range r.DVS.Requests() {
		if req.Status == http.StatusPreconditionFailed {
			refused++
		}
	}
	t.Logf("changes made by replica 0: %d, replica 1: %d; writes refused by If-Match: %d", by[0], by[1], refused)
}

// TestProvisionAdminEditsWhileProvisioning has an admin edit the row between the claim and the call, or
// between the call and the write-back, or delete it; with crash set, the process dies right after the edit
// and the sweep finds the row once the claim expired, archived or not. Whatever the admin did, what Partner
// Center now shows ends up on the subscription row and in the change's message, the claim is released and
// the status is true: Provisioned when the change went out (archived rows stay archived), never left
// Provisioning. A new target entered in time is made too.
func TestProvisionAdminEditsWhileProvisioning(t *testing.T) {
	t.Parallel()
	const (
		made = "21 Nov 2026 10:00 UTC" // the rig's clock during the run
		// undo is how a message about a change made although someone tried to stop it ends.
		undo = "if the change should not have happened, create a new change to undo it."
	)
	archivedRow := dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.LCLArchived}
	status := func(s schema.ProvisioningStatus) dataverse.Row {
		return dataverse.Row{"csp_provisioningstatus": int(s), "csp_provisioningmessage": "Stopped by an admin."}
	}
	type want struct {
		deleted  bool                      // the change's row is gone
		status   schema.ProvisioningStatus // csp_provisioningstatus
		archived bool                      // statecode Inactive, status reason Archived
		inactive bool                      // statecode Inactive, status reason Inactive (deactivated)
		quantity int                       // the change's csp_quantity
		message  string                    // exact; for a purchase %[1]s is the order id, %[2]s the subscription's
		seats    int                       // in Partner Center and on the subscription row
		changes  int                       // updates Partner Center carried out (quantity changes) or orders (purchases)
		verdict  mapping.Verdict
	}
	tests := []struct {
		name      string
		purchase  bool // a purchase of 5 seats; otherwise a quantity change 10 → 15
		afterCall bool // the edit lands after the Partner Center call; otherwise right after the claim
		crash     bool // the process dies right after the edit; the sweep finds the row after the claim expired
		edit      dataverse.Row
		delete    bool // the admin deletes the row instead
		want      want
	}{
		{name: "new quantity after the claim", edit: dataverse.Row{"csp_quantity": 20},
			want: want{status: schema.ProvisioningProvisioned, quantity: 20, message: "Seats 15 → 20 in Partner Center.", seats: 20, changes: 2}},
		{name: "new quantity after the call", afterCall: true, edit: dataverse.Row{"csp_quantity": 20},
			want: want{status: schema.ProvisioningProvisioned, quantity: 20, message: "Seats 15 → 20 in Partner Center.", seats: 20, changes: 2}},
		{name: "renamed after the claim", edit: dataverse.Row{"csp_name": "Renamed by an admin"},
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, message: "Seats 10 → 15 in Partner Center.", seats: 15, changes: 1}},
		{name: "renamed after the call", afterCall: true, edit: dataverse.Row{"csp_name": "Renamed by an admin"},
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, message: "Seats 10 → 15 in Partner Center.", seats: 15, changes: 1}},
		{name: "archived after the claim", edit: archivedRow,
			want: want{status: schema.ProvisioningProvisioned, archived: true, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although the row was archived while it was being made. The row stays archived; " + undo}},
		{name: "archived after the call", afterCall: true, edit: archivedRow,
			want: want{status: schema.ProvisioningProvisioned, archived: true, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although the row was archived while it was being made. The row stays archived; " + undo}},
		{name: "deactivated after the call", afterCall: true, edit: dataverse.Row{"statecode": schema.StateInactive},
			want: want{status: schema.ProvisioningProvisioned, inactive: true, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although the row was deactivated while it was being made. The row stays inactive; " + undo}},
		{name: "archived with a new quantity after the call", afterCall: true, edit: dataverse.Row{"statecode": schema.StateInactive, "statuscode": schema.LCLArchived, "csp_quantity": 20},
			want: want{status: schema.ProvisioningProvisioned, archived: true, quantity: 20, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although the row was archived while it was being made. The row stays archived; " + undo}},
		{name: "set Failed after the claim", edit: status(schema.ProvisioningFailed),
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although its Provisioning Status was set to Failed Provisioning while it was being made. It is Provisioned because the change was made; " + undo}},
		{name: "set Failed after the call", afterCall: true, edit: status(schema.ProvisioningFailed),
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although its Provisioning Status was set to Failed Provisioning while it was being made. It is Provisioned because the change was made; " + undo}},
		{name: "set Not Applicable after the call", afterCall: true, edit: status(schema.ProvisioningNotApplicable),
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although its Provisioning Status was set to Not Applicable while it was being made. It is Provisioned because the change was made; " + undo}},
		{name: "set Awaiting after the call", afterCall: true, edit: status(schema.ProvisioningAwaiting),
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats: this change was made at " + made + " although its Provisioning Status was set to Awaiting Provisioning while it was being made. It is Provisioned because the change was made: there is nothing left to retry."}},
		{name: "set Provisioned after the call", afterCall: true, edit: status(schema.ProvisioningProvisioned),
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, message: "Seats 10 → 15 in Partner Center.", seats: 15, changes: 1}},
		{name: "deleted after the claim", delete: true, want: want{deleted: true, seats: 15, changes: 1}},
		{name: "deleted after the call", afterCall: true, delete: true, want: want{deleted: true, seats: 15, changes: 1}},

		// The process dies right after the edit; the sweep finds the row once the claim expired.
		{name: "archived after the claim, then a crash", crash: true, edit: archivedRow,
			want: want{status: schema.ProvisioningAwaiting, archived: true, quantity: 15, seats: 10, changes: 0, verdict: mapping.Skip,
				message: "Not made in Partner Center: the row was archived before the connector sent the change, and Partner Center has 10 seats. To have it made after all, activate the row again."}},
		{name: "archived after the call, then a crash", afterCall: true, crash: true, edit: archivedRow,
			want: want{status: schema.ProvisioningProvisioned, archived: true, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats, as this change asks (checked at 21 Nov 2026 10:11 UTC), although the row was archived while it was being made. The row stays archived; " + undo}},
		{name: "set Failed after the call, then a crash", afterCall: true, crash: true, edit: status(schema.ProvisioningFailed),
			want: want{status: schema.ProvisioningProvisioned, quantity: 15, seats: 15, changes: 1,
				message: "Partner Center now has 15 seats, as this change asks (checked at 21 Nov 2026 10:11 UTC), although its Provisioning Status was set to Failed Provisioning while it was being made. It is Provisioned because the change was made; " + undo}},
		{name: "set Failed after the claim, then a crash", crash: true, edit: status(schema.ProvisioningFailed),
			want: want{status: schema.ProvisioningFailed, quantity: 15, seats: 10, changes: 0, verdict: mapping.Skip, message: "Stopped by an admin."}},

		{name: "purchase: new quantity after the claim", purchase: true, edit: dataverse.Row{"csp_quantity": 7},
			want: want{status: schema.ProvisioningProvisioned, quantity: 7, seats: 7, changes: 1,
				message: "Bought 7 seat(s) in Partner Center: order %[1]s, subscription %[2]s."}},
		{name: "purchase: new quantity after checkout", purchase: true, afterCall: true, edit: dataverse.Row{"csp_quantity": 7},
			want: want{status: schema.ProvisioningProvisioned, quantity: 7, seats: 5, changes: 1,
				message: "Bought 5 seat(s) in Partner Center: order %[1]s, subscription %[2]s. New quantity was changed to 7 while the order was being placed: Partner Center has the 5 seat(s) bought. For 7, create a Quantity change."}},
		{name: "purchase: renamed after the claim", purchase: true, edit: dataverse.Row{"csp_name": "Renamed by an admin"},
			want: want{status: schema.ProvisioningProvisioned, quantity: 5, seats: 5, changes: 1,
				message: "Bought 5 seat(s) in Partner Center: order %[1]s, subscription %[2]s."}},
		{name: "purchase: archived after the claim", purchase: true, edit: archivedRow,
			want: want{status: schema.ProvisioningAwaiting, archived: true, quantity: 5, changes: 0, verdict: mapping.Skip,
				message: "Not made in Partner Center: the row was archived before the connector placed the order. To have it made after all, activate the row again."}},
		{name: "purchase: archived after checkout", purchase: true, afterCall: true, edit: archivedRow,
			want: want{status: schema.ProvisioningProvisioned, archived: true, quantity: 5, seats: 5, changes: 1,
				message: "Partner Center now has 5 seats (order %[1]s, subscription %[2]s): this change was made at " + made + " although the row was archived while it was being made. The row stays archived; " + undo}},
		{name: "purchase: archived after checkout, then a crash", purchase: true, afterCall: true, crash: true, edit: archivedRow,
			want: want{status: schema.ProvisioningProvisioned, archived: true, quantity: 5, seats: 5, changes: 1,
				message: "Partner Center now has 5 seats (order %[1]s, subscription %[2]s), as this change asks (checked at 21 Nov 2026 10:11 UTC), although the row was archived while it was being made. The row stays archived; " + undo}},
		{name: "purchase: deleted after checkout", purchase: true, afterCall: true, delete: true, want: want{deleted: true, seats: 5, changes: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newProvRig(t, provOptions{})
			var s sub
			var id dataverse.GUID
			if tt.purchase {
				s.Row = faultPurchaseRow(t, r)
				id = r.LCL(t, s.Row, schema.ChangePurchase, 5, nil)
			} else {
				s = r.Subscription(t, 10, 24*time.Hour, nil)
				id = r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)
			}
			var edits atomic.Int32
			crashed := errors.New("the process died")
			admin := func(lcl dataverse.GUID) error {
				if edits.Add(1) != 1 {
					return nil
				}
				var err error
				if tt.delete {
					err = r.DV.Delete(t.Context(), schema.SetLicenseChangeLogs, lcl, nil)
				} else {
					_, err = r.DV.Update(t.Context(), schema.SetLicenseChangeLogs, lcl, tt.edit, nil)
				}
				if err == nil && tt.crash {
					return crashed
				}
				return err
			}
			p := restarted(r)
			if tt.afterCall {
				p.faults.afterCall = admin
			} else {
				p.faults.afterClaim = admin
			}

			out, err := p.Provision(t.Context(), id)
			require.Positive(t, edits.Load(), "the admin's edit happened mid-change")
			if tt.crash {
				require.ErrorIs(t, err, crashed)
				r.Clock.Advance(DefaultClaimTTL + time.Minute)
				r.Woken()
				_, serr := r.P.Sweep(t.Context())
				require.NoError(t, serr)
				require.Contains(t, idStrings(r.Woken()), id.String(), "the sweep finds the claim left behind, on an active row or not")
				out, err = restarted(r).Provision(t.Context(), id)
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want.verdict, out.Decision.Verdict, out.Decision.Message)

			// The subscription row shows what Partner Center shows.
			sr := r.ReadSubscription(t, s.Row)
			if tt.purchase {
				assert.Equal(t, tt.want.changes, r.PCS.Orders(r.Tenant), "orders placed")
				subs := r.PCS.Subscriptions(r.Tenant)
				if tt.want.changes == 0 {
					assert.Empty(t, subs)
					assert.Empty(t, sr.PCSubscriptionID)
				} else if assert.Len(t, subs, 1) {
					s.PCID = subs[0]
					assert.Equal(t, s.PCID, sr.PCSubscriptionID)
				}
			} else {
				assert.Equal(t, tt.want.changes, pcChanges(r, s.PCID), "updates Partner Center carried out")
			}
			if s.PCID != "" {
				assert.Equal(t, tt.want.seats, r.PCQuantity(t, s.PCID), "seats in Partner Center")
			}
			assert.Equal(t, tt.want.seats, sr.Quantity, "seats on the subscription row")

			if tt.want.deleted {
				_, err := r.DV.Get(t.Context(), schema.SetLicenseChangeLogs, id, nil)
				assert.True(t, dataverse.IsNotFound(err), "the row stays deleted: %v", err)
				return
			}
			l := r.Read(t, id)
			assert.Equal(t, tt.want.status, l.ProvisioningStatus, l.ProvisioningMessage)
			message := tt.want.message
			if strings.Contains(message, "%[1]s") {
				message = fmt.Sprintf(message, l.PCOrderID, s.PCID)
			}
			assert.Equal(t, message, l.ProvisioningMessage)
			switch {
			case tt.want.archived:
				assert.Equal(t, schema.StateInactive, l.State)
				assert.Equal(t, schema.LCLArchived, l.Status)
			case tt.want.inactive:
				assert.Equal(t, schema.StateInactive, l.State)
				assert.Equal(t, schema.StatusInactive, l.Status)
			default:
				assert.Equal(t, schema.StateActive, l.State)
			}
			assert.Equal(t, tt.want.quantity, *l.Quantity, "the admin's value stays")
			assert.True(t, l.ClaimExpiresOn.IsZero(), "the claim is released")
			assert.Equal(t, 1, l.Attempts, "one attempt")
			if tt.want.status == schema.ProvisioningProvisioned {
				assert.False(t, l.ProvisionedOn.IsZero(), "when it was provisioned")
				if tt.purchase {
					assert.Equal(t, s.PCID, l.PCSubscriptionID)
				}
			} else {
				assert.True(t, l.ProvisionedOn.IsZero())
			}
		})
	}
}

// TestProvisionThrottlingAndOutages has Partner Center throttle, fail, time out and drop connections until
// the client gives up: the change stays Awaiting, held Retrying until a time that honours Retry-After,
// with the request id for support; once the fault clears the sweep picks it up and it goes through once.
func TestProvisionThrottlingAndOutages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		fault         partnercentertest.Fault
		maxRetries    int
		clientTimeout time.Duration // the HTTP client's timeout; 0: none
		callTimeout   time.Duration // the provisioner's CallTimeout; 0: its default (60 s)
		method        string        // the faulted calls, counted in the log
		calls         int
		claimed       bool          // the fault met the update, after the claim
		retryIn       time.Duration // csp_nextattempton − now
		message       string
		responded     bool // Partner Center answered (the system message names its request id)
	}{
		{name: "429 storm, retried then given up", fault: partnercentertest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second},
			maxRetries: 1, method: http.MethodGet, calls: 2, retryIn: time.Minute, message: "asked the connector to slow down (throttled)", responded: true},
		{name: "429 asking for longer than a call may wait", fault: partnercentertest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Minute},
			maxRetries: 2, method: http.MethodGet, calls: 1, retryIn: 5 * time.Minute, message: "throttled", responded: true},
		{name: "429 on the update after the claim", fault: partnercentertest.Fault{Method: http.MethodPatch, Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Minute},
			maxRetries: 2, method: http.MethodPatch, calls: 1, claimed: true, retryIn: 5 * time.Minute, message: "throttled", responded: true},
		{name: "503 on every call", fault: partnercentertest.Fault{Status: http.StatusServiceUnavailable},
			maxRetries: 2, method: http.MethodGet, calls: 3, retryIn: time.Minute, message: "busy or having an outage (HTTP 503)", responded: true},
		{name: "500 on the update", fault: partnercentertest.Fault{Method: http.MethodPatch, Status: http.StatusInternalServerError},
			maxRetries: 1, method: http.MethodPatch, calls: 2, claimed: true, retryIn: time.Minute, message: "busy or having an outage (HTTP 500)", responded: true},
		{name: "answers slower than the HTTP client's timeout", fault: partnercentertest.Fault{Method: http.MethodGet, Latency: 5 * time.Second},
			maxRetries: 1, clientTimeout: 100 * time.Millisecond, method: http.MethodGet, calls: 2, retryIn: time.Minute, message: "could not be reached"},
		{name: "answers slower than the call's deadline", fault: partnercentertest.Fault{Method: http.MethodGet, Latency: 5 * time.Second},
			maxRetries: 2, callTimeout: 100 * time.Millisecond, method: http.MethodGet, calls: 1, retryIn: time.Minute, message: "could not be reached"},
		{name: "connection dropped on every update", fault: partnercentertest.Fault{Method: http.MethodPatch, Drop: true},
			maxRetries: 2, method: http.MethodPatch, calls: 3, claimed: true, retryIn: time.Minute, message: "could not be reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pco := fastPC(tt.maxRetries)
			if tt.clientTimeout > 0 {
				pco.HTTPClient = &http.Client{Timeout: tt.clientTimeout}
			}
			r := newProvRig(t, provOptions{})
			_, pc := faultClients(t, r, nil, nil, partnercenter.Credentials{}, pco)
			p := New(r.DV, pc, &Options{Now: r.Clock.Now, Wake: r.P.wakeRows, CallTimeout: tt.callTimeout})
			s := r.Subscription(t, 10, 24*time.Hour, nil)
			id := r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)
			r.PCS.Inject(tt.fault)

			now := r.Clock.Now()
			out, err := p.Provision(t.Context(), id)
			require.NoError(t, err)
			assert.Equal(t, mapping.Hold, out.Decision.Verdict, out.Decision.Message)
			// A request the client gave up on is logged when the simulator notices, which may be just after.
			assert.Eventually(t, func() bool { return len(pcRequests(r, tt.method, "subscriptions/")) >= tt.calls }, 5*time.Second, 5*time.Millisecond)
			faulted := pcRequests(r, tt.method, "subscriptions/")
			assert.Len(t, faulted, tt.calls, "the client's tries")
			l := r.Read(t, id)
			assert.Equal(t, schema.ProvisioningAwaiting, l.ProvisioningStatus)
			assert.Equal(t, schema.HeldRetrying, l.HeldReason)
			assert.WithinDuration(t, now.Add(tt.retryIn), l.NextAttemptOn, time.Second, "the next attempt honours Retry-After and the backoff")
			assert.Contains(t, l.ProvisioningMessage, tt.message)
			assert.Contains(t, l.ProvisioningMessage, mapping.FormatTime(now.Add(tt.retryIn)))
			if tt.responded && assert.NotEmpty(t, faulted) {
				assert.Contains(t, l.SystemMessage, "MS-RequestId: "+faulted[len(faulted)-1].RequestID)
			}
			assert.True(t, l.ClaimExpiresOn.IsZero(), "no claim is left behind")
			if tt.claimed {
				assert.Equal(t, 1, l.Attempts)
			} else {
				assert.Zero(t, l.Attempts, "nothing was claimed")
			}
			assert.Zero(t, pcChanges(r, s.PCID))
			assert.Equal(t, 10, r.PCQuantity(t, s.PCID))

			// Not due yet: the sweep leaves it; once due and the fault cleared, it goes through.
			n, err := p.Sweep(t.Context())
			require.NoError(t, err)
			assert.Zero(t, n)
			r.PCS.ClearFaults()
			r.Clock.Advance(tt.retryIn + time.Second)
			_, err = p.Sweep(t.Context())
			require.NoError(t, err)
			require.Equal(t, []string{id.String()}, idStrings(r.Woken()))
			out, err = p.Provision(t.Context(), id)
			require.NoError(t, err)
			assert.Equal(t, "Seats 10 → 15 in Partner Center.", out.Changed)
			l = r.Read(t, id)
			assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus)
			assert.Equal(t, schema.HeldReason(0), l.HeldReason)
			assert.True(t, l.NextAttemptOn.IsZero())
			assert.Equal(t, 15, r.PCQuantity(t, s.PCID))
			assert.Equal(t, 15, r.ReadSubscription(t, s.Row).Quantity)
			assert.Equal(t, 1, pcChanges(r, s.PCID))
		})
	}
}

// TestProvisionFaultUpdateRetriedTransparently has Partner Center drop or throttle the update once:
// the client's retry is the same request (same MS-RequestId) and the change goes through in one run.
func TestProvisionFaultUpdateRetriedTransparently(t *testing.T) {
	t.Parallel()
	for _, f := range []partnercentertest.Fault{
		{Method: http.MethodPatch, Drop: true, Times: 1},
		{Method: http.MethodPatch, Status: http.StatusTooManyRequests, Times: 1},
		{Method: http.MethodPatch, Status: http.StatusBadGateway, Times: 1},
	} {
		t.Run(fmt.Sprintf("drop=%v status=%d", f.Drop, f.Status), func(t *testing.T) {
			t.Parallel()
			r := newProvRig(t, provOptions{})
			s := r.Subscription(t, 10, 24*time.Hour, nil)
			id := r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)
			r.PCS.Inject(f)
			out, err := r.P.Provision(t.Context(), id)
			require.NoError(t, err)
			assert.Equal(t, "Seats 10 → 15 in Partner Center.", out.Changed)
			patches := pcRequests(r, http.MethodPatch, "subscriptions/")
			require.Len(t, patches, 2)
			assert.Equal(t, patches[0].RequestID, patches[1].RequestID, "the retry is the same request")
			assert.Equal(t, http.StatusOK, patches[1].Status)
			assert.Equal(t, 1, pcChanges(r, s.PCID))
			assert.Equal(t, schema.ProvisioningProvisioned, r.Read(t, id).ProvisioningStatus)
		})
	}
}

// TestProvisionFaultUpdateLandsAfterTimeout has the update take longer than the connector waits, cut off
// by the HTTP client's timeout (the client retries with the same MS-RequestId) or by the call's deadline
// (no retry): Partner Center carries it out anyway. However the run ends (the retry answered from Partner
// Center's request store, or held because the first request was still in flight or the call ran out of
// time), the change is made once and the row ends Provisioned.
func TestProvisionFaultUpdateLandsAfterTimeout(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name                       string
		clientTimeout, callTimeout time.Duration
	}{
		{name: "HTTP client timeout", clientTimeout: 200 * time.Millisecond},
		{name: "call deadline", callTimeout: 200 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pco := fastPC(2)
			if tt.clientTimeout > 0 {
				pco.HTTPClient = &http.Client{Timeout: tt.clientTimeout}
			}
			r := newProvRig(t, provOptions{})
			_, pc := faultClients(t, r, nil, nil, partnercenter.Credentials{}, pco)
			p := New(r.DV, pc, &Options{Now: r.Clock.Now, Wake: r.P.wakeRows, CallTimeout: tt.callTimeout})
			s := r.Subscription(t, 10, 24*time.Hour, nil)
			id := r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)
			r.PCS.Inject(partnercentertest.Fault{Method: http.MethodPatch, Latency: time.Second, Times: 1})

			_, err := p.Provision(t.Context(), id)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return r.PCQuantity(t, s.PCID) == 15 }, 5*time.Second, 10*time.Millisecond,
				"the update that timed out lands")
			if l := r.Read(t, id); l.ProvisioningStatus != schema.ProvisioningProvisioned {
				t.Logf("first run: %s", l.ProvisioningMessage)
				assert.Equal(t, schema.ProvisioningAwaiting, l.ProvisioningStatus)
				assert.Equal(t, schema.HeldRetrying, l.HeldReason)
				assert.True(t, l.ClaimExpiresOn.IsZero(), "no claim is left behind")
				r.Clock.Advance(l.NextAttemptOn.Sub(r.Clock.Now()) + time.Second)
				_, err = p.Provision(t.Context(), id)
				require.NoError(t, err)
			} else {
				assert.NotZero(t, tt.clientTimeout, "a call cut off by its deadline is not retried in the run")
			}
			assert.Equal(t, schema.ProvisioningProvisioned, r.Read(t, id).ProvisioningStatus)
			assert.Equal(t, 15, r.ReadSubscription(t, s.Row).Quantity)
			assert.Equal(t, 1, pcChanges(r, s.PCID), "carried out once")
		})
	}
}

// realClockCredential trusts the simulator's tokens for an hour of real time. The simulator stamps its
// tokens with the rig's clock, which may be hours from the real one; the client's token cache compares
// with the real clock, and would otherwise fetch a new token for every call and never send an expired one.
type realClockCredential struct{ azcore.TokenCredential }

func (c realClockCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, opts)
	tok.ExpiresOn = time.Now().Add(time.Hour)
	return tok, err
}

// TestProvisionFaultTokenExpiresMidRun expires Partner Center's access tokens between the read and the
// update: the client fetches a new token and the change goes through in the same run.
func TestProvisionFaultTokenExpiresMidRun(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	_, pc := faultClients(t, r, nil, nil, partnercenter.Credentials{AppOnly: realClockCredential{r.PCS.AppCredential()}}, nil)
	p := New(r.DV, pc, &Options{Now: r.Clock.Now, Wake: r.P.wakeRows})
	p.faults.afterClaim = func(dataverse.GUID) error { r.PCS.ExpireTokens(); return nil }
	s := r.Subscription(t, 10, 24*time.Hour, nil)
	id := r.LCL(t, s.Row, schema.ChangeQuantity, 15, nil)

	out, err := p.Provision(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, "Seats 10 → 15 in Partner Center.", out.Changed)
	assert.Equal(t, 2, r.PCS.TokenRequests(), "one token before, one after the expiry")
	patches := pcRequests(r, http.MethodPatch, "subscriptions/")
	require.Len(t, patches, 2)
	assert.Equal(t, http.StatusUnauthorized, patches[0].Status, "the expired token was refused")
	assert.Equal(t, http.StatusOK, patches[1].Status)
	assert.Equal(t, patches[0].RequestID, patches[1].RequestID)
	assert.Equal(t, 15, r.PCQuantity(t, s.PCID))
	assert.Equal(t, schema.ProvisioningProvisioned, r.Read(t, id).ProvisioningStatus)
}

// TestProvisionFaultCredentialsRefused has Partner Center refuse every token (401): the change is held
// Not connected and the provider marked Not connected; once connectivity is verified, WakeNotConnected
// submits it and it goes through.
func TestProvisionFaultCredentialsRefused(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	_, pc := faultClients(t, r, nil, nil, partnercenter.Credentials{AppOnly: realClockCredential{r.PCS.AppCredential()}}, nil)
	p := New(r.DV, pc, &Options{Now: r.Clock.Now, Wake: r.P.wakeRows})
	s := r.Subscription(t, 10, 24*time.Hour, nil)
	id := r.LCL(t, s.Row, schema.ChangeQuantity, 15, dataverse.Row{"csp_name": "Contoso seats"})
	r.PCS.Inject(partnercentertest.Fault{Status: http.StatusUnauthorized})

	out, err := p.Provision(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, mapping.Hold, out.Decision.Verdict)
	assert.True(t, out.Decision.NotConnected)
	l := r.Read(t, id)
	assert.Equal(t, schema.ProvisioningAwaiting, l.ProvisioningStatus)
	assert.Equal(t, schema.HeldNotConnected, l.HeldReason)
	assert.Contains(t, l.ProvisioningMessage, "refused the connector's credentials (401)")
	assert.Contains(t, l.SystemMessage, "HTTP 401")
	row, err := r.DV.Get(t.Context(), schema.SetProviders, r.Provider, &dataverse.GetOptions{Select: dataverse.Columns[schema.Provider]()})
	require.NoError(t, err)
	var prov schema.Provider
	require.NoError(t, dataverse.Unmarshal(row, &prov))
	assert.Equal(t, schema.ConnectivityNotConnected, prov.ConnectivityStatus)
	assert.Contains(t, prov.ConnectivityMessage, "Not connected: provisioning “Contoso seats”")
	assert.Equal(t, 10, r.PCQuantity(t, s.PCID))

	// The sweep does not retry it before its safety-net time: it waits for connectivity.
	n, err := p.Sweep(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n)
	r.PCS.ClearFaults()
	n, err = p.WakeNotConnected(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Equal(t, []string{id.String()}, idStrings(r.Woken()))
	out, err = p.Provision(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, "Seats 10 → 15 in Partner Center.", out.Changed)
	assert.Equal(t, schema.ProvisioningProvisioned, r.Read(t, id).ProvisioningStatus)
	assert.Equal(t, 15, r.PCQuantity(t, s.PCID))
	assert.Equal(t, 1, pcChanges(r, s.PCID))
}

// TestProvisionDuplicateAndOutOfOrderEvents runs a subscription's changes through the work queue with
// every event duplicated and the latest change submitted first (and created first, with an earlier
// change effective before it): each change is made once, in effective-date order.
func TestProvisionDuplicateAndOutOfOrderEvents(t *testing.T) {
	t.Parallel()
	r := newProvRig(t, provOptions{})
	s := r.Subscription(t, 10, 24*time.Hour, nil)
	now := r.Clock.Now()
	// Created last-first; effective first-first.
	third := r.LCL(t, s.Row, schema.ChangeQuantity, 17, dataverse.Row{"csp_effectivedate": now.Add(-time.Hour).UTC()})
	r.Clock.Advance(time.Second)
	second := r.LCL(t, s.Row, schema.ChangeQuantity, 15, dataverse.Row{"csp_effectivedate": now.Add(-2 * time.Hour).UTC()})
	r.Clock.Advance(time.Second)
	first := r.LCL(t, s.Row, schema.ChangeQuantity, 12, dataverse.Row{"csp_effectivedate": now.Add(-3 * time.Hour).UTC()})

	item := func(id dataverse.GUID, source string) work.Item {
		return work.Item{Key: work.Key{Table: schema.TableLicenseChangeLog, ID: id}, Source: source}
	}
	var q *work.Queue
	p := New(r.DV, r.PC, &Options{Now: r.Clock.Now, Wake: func(ctx context.Context, ids []dataverse.GUID) {
		for _, id := range ids {
			assert.NoError(t, q.Submit(ctx, item(id, work.SourceSweep)))
		}
	}})
	q = work.NewQueue(p.Handle, work.Options{Workers: 4})
	testrig.RunQueue(t, q)

	ctx := t.Context()
	for range 3 {
		for _, id := range []dataverse.GUID{third, second, first} {
			require.NoError(t, q.Submit(ctx, item(id, work.SourceWebhook)))
			require.NoError(t, q.Submit(ctx, item(id, work.SourceServiceBus)))
		}
	}
	status := func(id dataverse.GUID) schema.ProvisioningStatus {
		row, err := r.DV.Get(ctx, schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: []string{"csp_provisioningstatus"}})
		if err != nil {
			return 0
		}
		v, _ := row.Int("csp_provisioningstatus")
		return schema.ProvisioningStatus(v)
	}
	require.Eventually(t, func() bool {
		return status(first) == schema.ProvisioningProvisioned && status(second) == schema.ProvisioningProvisioned &&
			status(third) == schema.ProvisioningProvisioned
	}, 10*time.Second, 10*time.Millisecond, "the chain completes through wake-ups")

	// Late duplicates of every event, and a sweep, once all is done: nothing more happens.
	for _, id := range []dataverse.GUID{first, second, third} {
		require.NoError(t, q.Do(ctx, item(id, work.SourceServiceBus)))
	}
	n, err := p.Sweep(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)

	for id, want := range map[dataverse.GUID]string{
		first:  "Seats 10 → 12 in Partner Center.",
		second: "Seats 12 → 15 in Partner Center.",
		third:  "Seats 15 → 17 in Partner Center.",
	} {
		l := r.Read(t, id)
		assert.Equal(t, schema.ProvisioningProvisioned, l.ProvisioningStatus)
		assert.Equal(t, want, l.ProvisioningMessage, "made in order")
		assert.Equal(t, 1, l.Attempts)
	}
	assert.Equal(t, 17, r.PCQuantity(t, s.PCID), "the last change's target")
	assert.Equal(t, 17, r.ReadSubscription(t, s.Row).Quantity)
	assert.Equal(t, 3, pcChanges(r, s.PCID), "one update per change")
}
