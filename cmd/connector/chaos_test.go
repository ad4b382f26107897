//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/subscriptions"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/internal/fakesb"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// The chaos test (`make chaos`) runs the whole system as separate processes and breaks it while it works:
// three `connector run` processes compete for one queue of the fake Service Bus (a node process that keeps
// its queues in a state file), both simulators run in this test's process, and a driver kill -9s replicas
// and restarts them, drops the broker's connections, kill -9s and restarts the broker, and injects 429
// storms and 5xx into both APIs while an admin's workload of license changes, acceptance-link requests and
// provider account syncs goes in. Then the final state is compared, exactly, with what the workload asked
// for.
//
// It runs only when asked: CHAOS=1 (the full size) or CHAOS_SHORT=1 (the short CI size). Sizes can be set
// with CHAOS_CHANGES, CHAOS_AGREEMENTS and CHAOS_DURATION (the chaos phase; settling comes after it);
// CHAOS_DIR keeps the replicas' logs.

// chaosSize is the workload's size.
type chaosSize struct {
	changes, agreements int
	duration            time.Duration
}

func chaosSizeFromEnv(t *testing.T) chaosSize {
	full, short := os.Getenv("CHAOS") == "1", os.Getenv("CHAOS_SHORT") == "1"
	if !full && !short {
		t.Skip("the chaos test runs only when asked: make chaos (CHAOS=1), or make chaos CHAOS_SHORT=1 for the short CI run")
	}
	size := chaosSize{changes: 1000, agreements: 200, duration: 3 * time.Minute}
	if short {
		size = chaosSize{changes: 200, agreements: 40, duration: 60 * time.Second}
	}
	atoi := func(name string, def int) int {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, name)
			return n
		}
		return def
	}
	size.changes, size.agreements = atoi("CHAOS_CHANGES", size.changes), atoi("CHAOS_AGREEMENTS", size.agreements)
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "CHAOS_DURATION")
		size.duration = d
	}
	require.GreaterOrEqual(t, size.agreements, 4, "CHAOS_AGREEMENTS: at least 4 customers")
	require.GreaterOrEqual(t, size.changes, size.agreements, "CHAOS_CHANGES: at least one change per customer")
	return size
}

// chaosFigures are what the run did and found; the test prints them at the end.
type chaosFigures struct {
	kills, replicaStarts, crashes           int
	brokerRestarts, connectionDrops         int
	pc429, pc5xx, dv429, dv5xx              int // answers the simulators gave from injected faults
	deliveryRetries                         atomic.Int64
	changes, quantityChanges, purchases     int
	addOns, agreements, links, syncRequests int
	subscriptionSyncRequests                int
	malformed                               int
}

// chaosCustomer is one Partner Center customer of the workload and its rows.
type chaosCustomer struct {
	tenant, name, domain string
	direct               bool // accepted the MCA in the admin center (may buy); else asks for a link
	account, providerAcc dataverse.GUID
	agreement            dataverse.GUID
	sub                  dataverse.GUID // an existing subscription whose seats change
	pcSub                string
	initialSubs          int
}

// chaosChange is one License Change Log of the workload and what it must end as.
type chaosChange struct {
	kind     schema.ChangeType
	addOn    bool
	customer *chaosCustomer
	sub      dataverse.GUID // its subscription row
	pcSub    string         // the Partner Center subscription, for seat changes
	offer    string
	quantity int
	parent   *chaosChange // an add-on's parent purchase
	id       dataverse.GUID
	seq      int // creation order, also its effective date's order
}

func TestChaos(t *testing.T) {
	size := chaosSizeFromEnv(t)
	ctx := t.Context()
	// CHAOS_DIR keeps the replicas' logs and the broker's state file after the run.
	dir := os.Getenv("CHAOS_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		t.Logf("logs in %s", dir)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var fig chaosFigures

	bin := filepath.Join(dir, "connector")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	require.NoError(t, build.Run(), "build the connector")

	// The broker, with a state file so its queues survive its restarts.
	broker := fakesb.Start(t, fakesb.Options{Queues: []string{connector.DefaultQueue}, StateFile: filepath.Join(dir, "fakesb-state.jsonl"),
		LockDuration: 10 * time.Second, Quiet: true})
	sbc, err := azservicebus.NewClientFromConnectionString(broker.ConnectionString(), nil)
	require.NoError(t, err)
	sender, err := sbc.NewSender(connector.DefaultQueue, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sender.Close(context.Background()) })

	// Dataverse posts each event to Service Bus and, like its asynchronous service, tries again while
	// the namespace does not answer.
	contentType := "application/json"
	deliver := func(ctx context.Context, target dataversetest.ServiceBusTarget, body []byte, props map[string]any) error {
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
			sendCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := sender.SendMessage(sendCtx, &azservicebus.Message{Body: body, ContentType: &contentType, ApplicationProperties: props}, nil)
			cancel()
			if err == nil || ctx.Err() != nil {
				return err
			}
			fig.deliveryRetries.Add(1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	dvs, err := dataversetest.NewServer(dataversetest.Options{Tables: schema.StandardTables(), ServiceBusDelivery: deliver})
	require.NoError(t, err)
	t.Cleanup(dvs.Close)
	// The simulator plays every customer who gets an acceptance link: they accept it.
	var pcs *partnercentertest.Server
	var acceptMu sync.Mutex
	var acceptErrs []string
	pcs, err = partnercentertest.NewServer(partnercentertest.Options{AuthOptional: true, OnAttestation: func(id, _ string) {
		time.Sleep(200 * time.Millisecond)
		if err := pcs.AcceptAttestation(id); err != nil {
			acceptMu.Lock()
			acceptErrs = append(acceptErrs, id+": "+err.Error())
			acceptMu.Unlock()
		}
	}})
	require.NoError(t, err)
	t.Cleanup(pcs.Close)

	env := map[string]string{
		"DATAVERSE_URL": dvs.URL, "DATAVERSE_AUTH": "none",
		"PARTNERCENTER_ENDPOINT": pcs.URL, "PARTNERCENTER_AUTH": "none",
		"SERVICEBUS_CONNECTION_STRING": broker.ConnectionString(), "SERVICEBUS_SEND_CONNECTION_STRING": broker.ConnectionString(),
		"CONNECTOR_HTTP_ADDR": "127.0.0.1:0", "CONNECTOR_SHUTDOWN_TIMEOUT": "5s",
		// A killed replica's claim on a change it was pushing holds the row this long; short, so that the
		// run settles in minutes and claims expire under replicas that are still working.
		"CONNECTOR_CLAIM_TTL": "45s",
	}
	require.NoError(t, run(ctx, []string{"dataverse", "install"}, getenv(env), nil, io.Discard, io.Discard))

	dv, err := dataverse.NewClient(dvs.URL, nil, &dataverse.ClientOptions{HTTPClient: dvs.Client()})
	require.NoError(t, err)
	adminUser, err := dvs.Insert("systemuser", map[string]any{"fullname": "Chaos Admin"})
	require.NoError(t, err)
	adminID, err := dataverse.ParseGUID(adminUser)
	require.NoError(t, err)
	admin, err := dataverse.NewClient(dvs.URL, nil, &dataverse.ClientOptions{HTTPClient: dvs.ClientAs(adminID)})
	require.NoError(t, err)
	env["CONNECTOR_NOTIFY_USERS"] = adminID.String()

	customers, unmapped, changes := seedChaos(t, dv, pcs, size, rng)
	fig.agreements = len(customers)
	for _, c := range changes {
		switch {
		case c.kind == schema.ChangeQuantity:
			fig.quantityChanges++
		case c.addOn:
			fig.addOns++
		default:
			fig.purchases++
		}
	}
	fig.changes = len(changes)
	t.Logf("workload: %d customers (%d more only in Partner Center, to map by hand), %d changes (%d seat changes, %d purchases, %d add-ons)",
		len(customers), len(unmapped), len(changes), fig.quantityChanges, fig.purchases, fig.addOns)

	// Three replicas.
	replicas := make([]*chaosReplica, 3)
	for i := range replicas {
		replicas[i] = &chaosReplica{name: fmt.Sprintf("replica-%d", i+1), bin: bin, env: env, dir: dir}
		replicas[i].start(t)
		fig.replicaStarts++
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.stop()
		}
	})

	// The workload goes in over the first 60% of the chaos phase, as an admin's writes.
	type op struct {
		what string
		do   func(context.Context) error
	}
	var ops []op
	effective := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	for _, c := range changes {
		ops = append(ops, op{"create change", func(ctx context.Context) error {
			row := dataverse.Row{"csp_name": fmt.Sprintf("chaos %s %d", c.customer.name, c.seq), "csp_changetype": int(c.kind),
				"csp_provisioningstatus": int(schema.ProvisioningAwaiting), "csp_changesource": int(schema.SourceDynamics),
				"csp_quantity": c.quantity, "csp_effectivedate": effective.Add(time.Duration(c.seq) * time.Second),
				"csp_subscription@odata.bind": "/csp_subscriptions(" + c.sub.String() + ")"}
			id, err := admin.Create(ctx, schema.SetLicenseChangeLogs, row)
			c.id = id
			return err
		}})
	}
	for _, c := range customers {
		if c.direct {
			continue
		}
		fig.links++
		// At a random place: the changes keep their order (an admin enters one subscription's seat
		// changes one after the other, as their effective dates say).
		ops = slices.Insert(ops, rng.IntN(len(ops)+1), op{"request link", func(ctx context.Context) error {
			_, err := admin.Update(ctx, schema.SetAgreements, c.agreement, dataverse.Row{"csp_signatoryfirstname": "Ada", "csp_signatorylastname": "Lovelace",
				"csp_signatoryemail": "accept.ada@" + c.domain, "csp_signatorycompany": c.name, "csp_signatorycountry": "GB", "csp_signatorylanguage": "en-GB",
				"csp_attestationstatus": int(schema.AttestationLinkRequested)}, nil)
			return err
		}})
	}
	syncEvery := len(ops)/5 + 1
	for i := syncEvery; i < len(ops); i += syncEvery {
		fig.syncRequests++
		ops = slices.Insert(ops, i, op{"run provider account sync", func(ctx context.Context) error {
			return runNow(ctx, admin, dv, provideraccounts.SyncJobName)
		}})
	}
	// The Subscription Sync runs while the changes are being provisioned (besides its 1-minute schedule):
	// Partner Center then shows changes of ours whose rows are not written back yet, which it must not take
	// for changes made in Partner Center, nor import a purchase of ours as a second row.
	subSyncEvery := len(ops)/8 + 1
	for i := subSyncEvery / 2; i < len(ops); i += subSyncEvery {
		fig.subscriptionSyncRequests++
		ops = slices.Insert(ops, i, op{"run subscription sync", func(ctx context.Context) error {
			return runNow(ctx, admin, dv, subscriptions.SyncJobName)
		}})
	}

	var workErrs []string
	var workMu sync.Mutex
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		spread := size.duration * 6 / 10
		start := time.Now()
		for i, o := range ops {
			if d := time.Until(start.Add(spread * time.Duration(i) / time.Duration(len(ops)))); d > 0 {
				time.Sleep(d)
			}
			// A person retries what the service refused (an injected 5xx or 429 outlasting the client's
			// retries); the simulator's faults answer before serving, so a refused write never happened.
			var err error
			// Faults pile up while the replicas back off, so a person may have to keep trying for a while.
			for giveUp := time.Now().Add(3 * time.Minute); time.Now().Before(giveUp); {
				opCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
				err = o.do(opCtx)
				cancel()
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(time.Second)
			}
			if err != nil {
				workMu.Lock()
				workErrs = append(workErrs, fmt.Sprintf("%s: %v", o.what, err))
				workMu.Unlock()
			}
		}
	}()

	// Messages no connector can read: the only ones that may end dead-lettered.
	for i, body := range []string{"not json at all", `{"MessageName": 42`, "\x00\x01binary"} {
		broker.Send(t, connector.DefaultQueue, []byte(body), map[string]any{"chaos": fmt.Sprintf("malformed-%d", i)})
		fig.malformed++
	}

	// The chaos driver.
	var before fakesb.Stats
	chaosEnd := time.Now().Add(size.duration)
	for time.Now().Before(chaosEnd) {
		time.Sleep(time.Duration(2000+rng.IntN(2000)) * time.Millisecond)
		switch n := rng.IntN(100); {
		case n < 45:
			r := replicas[rng.IntN(len(replicas))]
			r.kill()
			fig.kills++
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
			r.start(t)
			fig.replicaStarts++
		case n < 55:
			broker.DropConnections(t)
			fig.connectionDrops++
		case n < 63:
			// The broker's counters start again with its process: keep what this one counted.
			before = addStats(before, broker.Stats(t, connector.DefaultQueue))
			broker.Restart(t)
			fig.brokerRestarts++
		case n < 73:
			pcs.Inject(partnercentertest.Fault{Status: 429, RetryAfter: time.Second, Times: 10 + rng.IntN(30)})
		case n < 81:
			pcs.Inject(partnercentertest.Fault{Status: 500 + []int{0, 2, 3}[rng.IntN(3)], Times: 5 + rng.IntN(15)})
		case n < 91:
			dvs.Inject(dataversetest.Fault{Status: 429, RetryAfter: time.Second, Times: 10 + rng.IntN(30)})
		default:
			dvs.Inject(dataversetest.Fault{Status: 500 + []int{0, 3}[rng.IntN(2)], Times: 5 + rng.IntN(15)})
		}
	}
	pcs.ClearFaults()
	dvs.ClearFaults()
	for _, r := range replicas {
		if crashed := r.crashed(); crashed != "" {
			fig.crashes++
			t.Errorf("%s exited by itself: %s", r.name, crashed)
			r.start(t)
		}
	}
	t.Logf("chaos phase over after %s: %d kills, %d broker restarts, %d connection drops; settling", size.duration, fig.kills, fig.brokerRestarts, fig.connectionDrops)
	<-workDone
	require.Empty(t, workErrs, "the workload's writes")
	for _, c := range changes {
		require.NotZero(t, c.id, "every change was created")
	}

	// Settle: every change and agreement reaches its end, the queue drains, every event is delivered.
	settleStart := time.Now()
	settled := func() (bool, string) {
		lcls := listLCLs(t, dv)
		for _, c := range changes {
			l, ok := lcls[c.id]
			if !ok || l.ProvisioningStatus == schema.ProvisioningAwaiting || l.ProvisioningStatus == schema.ProvisioningInProgress {
				return false, fmt.Sprintf("change %s: status %d held %d: %s", c.id, l.ProvisioningStatus, l.HeldReason, l.ProvisioningMessage)
			}
		}
		ags := listAgreements(t, dv)
		for _, c := range customers {
			a := ags[c.agreement]
			if a.AttestationStatus != schema.AttestationAttested && a.AttestationStatus != schema.AttestationAcceptedDirectly && a.AttestationStatus != schema.AttestationFailed {
				return false, fmt.Sprintf("agreement of %s: status %d: %s", c.name, a.AttestationStatus, a.AttestationMessage)
			}
		}
		if s := broker.Stats(t, connector.DefaultQueue); s.Active+s.Locked > 0 {
			return false, fmt.Sprintf("queue: %+v", s)
		}
		return true, ""
	}
	var why string
	for {
		var ok bool
		if ok, why = settled(); ok {
			break
		}
		// The slowest path back by design: an add-on whose parent was bought by a replica killed before it
		// woke the add-on waits out its 2-minute safety net, then the next sweep (every minute here).
		if time.Since(settleStart) > 8*time.Minute {
			t.Fatalf("not settled 8 minutes after the chaos ended: %s", why)
		}
		time.Sleep(2 * time.Second)
	}
	require.NoError(t, dvs.WaitDeliveries(ctx))
	t.Logf("settled in %s", time.Since(settleStart).Round(time.Second))

	// The exact check.
	lcls := listLCLs(t, dv)
	var lost, wrong []string
	lastTarget := map[string]*chaosChange{} // Partner Center subscription -> its last seat change
	var purchases []*chaosChange
	for _, c := range changes {
		l := lcls[c.id]
		if l.ProvisioningStatus != schema.ProvisioningProvisioned {
			lost = append(lost, fmt.Sprintf("change %d (%s) ended %d: %s", c.seq, c.id, l.ProvisioningStatus, l.ProvisioningMessage))
			continue
		}
		if c.kind == schema.ChangeQuantity {
			if prev := lastTarget[c.pcSub]; prev == nil || prev.seq < c.seq {
				lastTarget[c.pcSub] = c
			}
		} else {
			purchases = append(purchases, c)
		}
	}
	for pcSub, c := range lastTarget {
		s, ok := pcs.Subscription(c.customer.tenant, pcSub)
		switch {
		case !ok:
			wrong = append(wrong, fmt.Sprintf("subscription %s is gone from Partner Center", pcSub))
		case s.Quantity != c.quantity:
			wrong = append(wrong, fmt.Sprintf("subscription %s has %d seats in Partner Center; its last change (%d) asked for %d", pcSub, s.Quantity, c.seq, c.quantity))
		}
	}
	subs := listSubscriptions(t, dv)
	bought := map[string]bool{}
	duplicates := 0
	for _, c := range purchases {
		pcID := cmpOr(lcls[c.id].PCSubscriptionID, subs[c.sub].PCSubscriptionID)
		s, ok := pcs.Subscription(c.customer.tenant, pcID)
		switch {
		case pcID == "" || !ok:
			wrong = append(wrong, fmt.Sprintf("purchase %d (%s) names no Partner Center subscription (%q)", c.seq, c.id, pcID))
		case bought[pcID]:
			duplicates++
			wrong = append(wrong, fmt.Sprintf("purchase %d names subscription %s that another purchase names too", c.seq, pcID))
		case s.Quantity != c.quantity || !strings.EqualFold(s.OfferID, c.offer):
			wrong = append(wrong, fmt.Sprintf("purchase %d bought %d of %s; asked %d of %s", c.seq, s.Quantity, s.OfferID, c.quantity, c.offer))
		case c.addOn && s.ParentSubscriptionID != cmpOr(lcls[c.parent.id].PCSubscriptionID, subs[c.parent.sub].PCSubscriptionID):
			wrong = append(wrong, fmt.Sprintf("add-on %d is under %q, not its parent's subscription", c.seq, s.ParentSubscriptionID))
		}
		bought[pcID] = true
	}
	effects, orders := 0, 0
	for _, cu := range customers {
		want := 0
		for _, c := range purchases {
			if c.customer == cu {
				want++
			}
		}
		got := pcs.Orders(cu.tenant)
		orders += got
		if got > want {
			duplicates += got - want
		}
		if n := len(pcs.Subscriptions(cu.tenant)); n != cu.initialSubs+want {
			wrong = append(wrong, fmt.Sprintf("%s has %d subscriptions in Partner Center; %d were there and %d bought", cu.name, n, cu.initialSubs, want))
		}
	}
	for _, r := range pcs.Requests() {
		if r.Method == "PATCH" && strings.Contains(r.Path, "/subscriptions/") && r.Status/100 == 2 && !r.Replayed {
			effects++
		}
	}
	effects += orders

	// Agreements: one per customer, each at its end, one attestation per link.
	ags := listAgreements(t, dv)
	agreementsWrong := 0
	perAccount := map[dataverse.GUID]int{}
	for _, a := range ags {
		perAccount[a.ProviderAccount.ID]++
	}
	for _, c := range customers {
		a := ags[c.agreement]
		want, path := schema.AttestationAttested, schema.AcceptanceLink
		if c.direct {
			want, path = schema.AttestationAcceptedDirectly, schema.AcceptanceAdminCenter
		}
		if a.AttestationStatus != want || a.AcceptancePath != path || a.Status != schema.StatusActive || perAccount[c.providerAcc] != 1 {
			agreementsWrong++
			wrong = append(wrong, fmt.Sprintf("agreement of %s: status %d path %d statuscode %d (%d rows): %s", c.name, a.AttestationStatus, a.AcceptancePath, a.Status, perAccount[c.providerAcc], a.AttestationMessage))
		}
	}
	assert.Len(t, pcs.Attestations(), fig.links, "one attestation per acceptance link asked for")
	acceptMu.Lock()
	assert.Empty(t, acceptErrs, "the simulated customers accept every link")
	acceptMu.Unlock()

	// Provider accounts: the syncs made no duplicates and kept the manual mappings; the customers no
	// account fits are Unmapped and someone was told about each at least once.
	pas := map[string][]schema.ProviderAccount{}
	for raw, err := range dv.List(ctx, schema.SetProviderAccounts, &dataverse.Query{Select: dataverse.Columns[schema.ProviderAccount]()}) {
		require.NoError(t, err)
		var pa schema.ProviderAccount
		require.NoError(t, dataverse.Unmarshal(raw, &pa))
		pas[strings.ToLower(pa.TenantID)] = append(pas[strings.ToLower(pa.TenantID)], pa)
	}
	for _, c := range customers {
		if rows := pas[c.tenant]; len(rows) != 1 || rows[0].MappingStatus != schema.MappingMapped || rows[0].Account.ID != c.account {
			wrong = append(wrong, fmt.Sprintf("provider account of %s: %+v", c.name, rows))
		}
	}
	var titles []string
	for raw, err := range dv.List(ctx, schema.SetAppNotifications, &dataverse.Query{Select: []string{"title"}}) {
		require.NoError(t, err)
		titles = append(titles, raw.String("title"))
	}
	notified := 0
	for _, u := range unmapped {
		rows := pas[u.tenant]
		if len(rows) != 1 || rows[0].MappingStatus != schema.MappingUnmapped {
			wrong = append(wrong, fmt.Sprintf("provider account of %s (no account fits): %+v", u.name, rows))
		}
		if slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, u.name) }) {
			notified++
		} else {
			wrong = append(wrong, fmt.Sprintf("nobody was told to map %s", u.name))
		}
	}

	// Dead letters: exactly the malformed messages.
	dead := broker.DeadLetters(t, connector.DefaultQueue)
	var deadMalformed int
	for _, d := range dead {
		if _, ok := d.ApplicationProperties["chaos"]; ok {
			deadMalformed++
		} else {
			wrong = append(wrong, fmt.Sprintf("dead-lettered (%s: %s): %.200s", d.Reason, d.Description, d.Body))
		}
	}
	if deadMalformed != fig.malformed {
		wrong = append(wrong, fmt.Sprintf("%d of the %d malformed messages were dead-lettered", deadMalformed, fig.malformed))
	}
	var undelivered int
	for _, d := range dvs.Deliveries() {
		if !d.Delivered() {
			undelivered++
		}
	}

	// Changes the connector recorded on its own (drift from Partner Center): none, since only the
	// workload changed anything, though the Subscription Sync ran while the changes were being provisioned.
	drift := 0
	var lastProvisioned time.Time
	for _, l := range lcls {
		if l.ChangeSource == schema.SourceProvider {
			drift++
			t.Errorf("recorded as a change made in Partner Center: %s: %s", l.Name, l.ProvisioningMessage)
		}
		if l.ProvisionedOn.After(lastProvisioned) {
			lastProvisioned = l.ProvisionedOn
		}
	}
	subSyncs, subSyncsAmid := 0, 0
	var subSyncSummaries []string
	for _, r := range listJobRuns(t, dv, subscriptions.SyncJobName) {
		subSyncs++
		if r.StartedOn.Before(lastProvisioned) {
			subSyncsAmid++
		}
		subSyncSummaries = append(subSyncSummaries, r.Summary)
	}
	t.Logf("subscription syncs: %s", strings.Join(subSyncSummaries, " | "))

	for _, r := range pcs.Requests() {
		switch {
		case r.Status == 429:
			fig.pc429++
		case r.Status >= 500:
			fig.pc5xx++
		}
	}
	for _, r := range dvs.Requests() {
		switch {
		case r.Status == 429:
			fig.dv429++
		case r.Status >= 500:
			fig.dv5xx++
		}
	}
	stats := addStats(before, broker.Stats(t, connector.DefaultQueue))
	report := fmt.Sprintf(`chaos run: %d changes (%d seat changes, %d purchases, %d add-ons), %d agreements (%d by link), %d provider account syncs asked for
  chaos %s, settled in %s; replicas: 3, kills (SIGKILL): %d, starts: %d, crashes: %d
  broker: restarts (SIGKILL): %d, dropped connections: %d; messages delivered %d, completed %d, abandoned %d, released %d, lock expiries %d
  faults answered: Partner Center 429: %d, 5xx: %d; Dataverse 429: %d, 5xx: %d; event posts retried while the broker was away: %d
  Partner Center effects: %d (seat updates %d, orders %d); duplicates: %d; lost: %d; wrong: %d; agreements wrong: %d
  dead-lettered: %d (malformed on purpose: %d); events not delivered: %d; unmapped customers notified: %d of %d; drift records: %d
  subscription syncs: %d runs (Run Now asked %d times), %d of them started before the last change was provisioned`,
		fig.changes, fig.quantityChanges, fig.purchases, fig.addOns, fig.agreements, fig.links, fig.syncRequests,
		size.duration, time.Since(settleStart).Round(time.Second), fig.kills, fig.replicaStarts, fig.crashes,
		fig.brokerRestarts, fig.connectionDrops, stats.Delivered, stats.Completed, stats.Abandoned, stats.Released, stats.Expired,
		fig.pc429, fig.pc5xx, fig.dv429, fig.dv5xx, fig.deliveryRetries.Load(),
		effects, effects-orders, orders, duplicates, len(lost), len(wrong), agreementsWrong,
		len(dead), deadMalformed, undelivered, notified, len(unmapped), drift,
		subSyncs, fig.subscriptionSyncRequests, subSyncsAmid)
	t.Log(report)
	fmt.Println(report)
	assert.Zero(t, duplicates, "duplicates")
	assert.Empty(t, lost, "lost changes")
	assert.Empty(t, wrong, "final state")
	assert.Zero(t, undelivered, "events not delivered")
	assert.Zero(t, drift, "drift records")
	assert.Positive(t, subSyncsAmid, "the Subscription Sync ran while changes were being provisioned")
	assert.Equal(t, orders, fig.purchases+fig.addOns, "one order per purchase")
}

// addStats adds the counters of two broker processes.
func addStats(a, b fakesb.Stats) fakesb.Stats {
	return fakesb.Stats{Delivered: a.Delivered + b.Delivered, Completed: a.Completed + b.Completed, Abandoned: a.Abandoned + b.Abandoned,
		Released: a.Released + b.Released, Expired: a.Expired + b.Expired}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// seedChaos creates the customers in Partner Center and their rows in Dataverse (as the connector's own
// identity, so no event goes out), and plans the changes.
func seedChaos(t *testing.T, dv *dataverse.Client, pcs *partnercentertest.Server, size chaosSize, rng *rand.Rand) (customers, unmapped []*chaosCustomer, changes []*chaosChange) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	create := func(set string, row dataverse.Row) dataverse.GUID {
		id, err := dv.Create(ctx, set, row)
		require.NoError(t, err, "seed %s", set)
		return id
	}
	bind := func(set string, id dataverse.GUID) string { return "/" + set + "(" + id.String() + ")" }
	provider := create(schema.SetProviders, dataverse.Row{"csp_name": "Microsoft Partner Center", "csp_type": int(schema.ProviderAutomatic),
		"csp_partnermodel": int(schema.PartnerDirectBill), "csp_automatch": true, "csp_connectivitystatus": int(schema.ConnectivityConnected)})
	template := create(schema.SetAgreementTemplates, dataverse.Row{"csp_name": "Microsoft Customer Agreement", "csp_templateid": partnercentertest.MCATemplateID,
		"csp_agreementtype": int(schema.AgreementMicrosoftCustomerAgreement), "csp_provider@odata.bind": bind(schema.SetProviders, provider)})
	// Jobs on short schedules, so that settling does not wait for the defaults (an admin may set these).
	for _, j := range []string{provisioning.SweepJobName, agreements.AttestationCheckJob, subscriptions.SyncJobName} {
		create(schema.SetJobs, dataverse.Row{"csp_name": j, "csp_schedule": "1m", "csp_enabled": true})
	}

	for i := range size.agreements {
		c := &chaosCustomer{tenant: uuid.NewString(), name: fmt.Sprintf("Chaos Customer %03d", i), domain: fmt.Sprintf("chaos%03d.example", i),
			direct: i%2 == 0, pcSub: uuid.NewString(), initialSubs: 1}
		require.NoError(t, pcs.AddCustomer(partnercentertest.Customer{TenantID: c.tenant, CompanyName: c.name, Domain: c.domain, Country: "GB", DirectSigned: c.direct,
			Subscriptions: []partnercentertest.Subscription{{ID: c.pcSub, OfferID: partnercentertest.CatalogAADPremiumP1, FriendlyName: "Azure AD Premium P1",
				Quantity: 5, TermDuration: "P1Y", BillingCycle: "monthly", AutoRenew: true, CreatedOn: now.AddDate(0, 0, -30)}}}))
		c.account = create(schema.SetAccounts, dataverse.Row{"name": c.name + " (account)", "websiteurl": "https://www." + c.domain})
		c.providerAcc = create(schema.SetProviderAccounts, dataverse.Row{"csp_name": c.name, "csp_tenantid": c.tenant, "csp_domain": c.domain,
			"csp_companyname": c.name, "csp_relationship": "Reseller", "csp_mappingstatus": int(schema.MappingMapped), "csp_mappingmessage": "Mapped by a person.",
			"csp_lastsyncedon": now, "csp_provider@odata.bind": bind(schema.SetProviders, provider), "csp_account@odata.bind": bind(schema.SetAccounts, c.account)})
		c.agreement = create(schema.SetAgreements, dataverse.Row{"csp_name": c.name + " — MCA", "csp_attestationstatus": int(schema.AttestationNotStarted),
			"csp_provideraccount@odata.bind": bind(schema.SetProviderAccounts, c.providerAcc), "csp_account@odata.bind": bind(schema.SetAccounts, c.account),
			"csp_agreementtemplate@odata.bind": bind(schema.SetAgreementTemplates, template)})
		_, err := dv.Update(ctx, schema.SetAgreements, c.agreement, dataverse.Row{"statuscode": schema.AgreementPending}, nil)
		require.NoError(t, err)
		c.sub = create(schema.SetSubscriptions, dataverse.Row{"csp_name": "Azure AD Premium P1", "csp_pcsubscriptionid": c.pcSub, "csp_quantity": 5,
			"csp_offerid": partnercentertest.CatalogAADPremiumP1, "csp_termduration": "P1Y", "csp_billingcycle": "monthly", "csp_autorenew": true,
			"csp_reductionbehavior": int(schema.ReductionAllowed), "csp_actualprovisionedon": now.AddDate(0, 0, -30),
			"csp_provider@odata.bind": bind(schema.SetProviders, provider), "csp_provideraccount@odata.bind": bind(schema.SetProviderAccounts, c.providerAcc),
			"csp_account@odata.bind": bind(schema.SetAccounts, c.account)})
		customers = append(customers, c)
	}
	// Customers no account fits: the syncs create their rows Unmapped and someone must be told.
	for i := range 3 {
		u := &chaosCustomer{tenant: uuid.NewString(), name: fmt.Sprintf("Unknown Holdings %d", i), domain: fmt.Sprintf("unknown%d.example", i)}
		require.NoError(t, pcs.AddCustomer(partnercentertest.Customer{TenantID: u.tenant, CompanyName: u.name, Domain: u.domain, Country: "US"}))
		unmapped = append(unmapped, u)
	}

	// Changes: every customer's subscription gets seat increases (absolute targets, in order); customers
	// who accepted the MCA buy subscriptions, some with an add-on behind them.
	var direct []*chaosCustomer
	for _, c := range customers {
		if c.direct {
			direct = append(direct, c)
		}
	}
	seats := map[*chaosCustomer]int{}
	seq := 0
	add := func(c *chaosChange) {
		c.seq = seq
		seq++
		changes = append(changes, c)
	}
	purchaseRow := func(c *chaosCustomer, offer string, parent dataverse.GUID) dataverse.GUID {
		row := dataverse.Row{"csp_name": "chaos purchase", "csp_offerid": offer, "csp_termduration": "P1Y", "csp_billingcycle": "monthly",
			"csp_reductionbehavior":   int(schema.ReductionAllowed),
			"csp_provider@odata.bind": bind(schema.SetProviders, provider), "csp_provideraccount@odata.bind": bind(schema.SetProviderAccounts, c.providerAcc),
			"csp_account@odata.bind": bind(schema.SetAccounts, c.account)}
		if parent != (dataverse.GUID{}) {
			row["csp_parentsubscription@odata.bind"] = bind(schema.SetSubscriptions, parent)
		}
		return create(schema.SetSubscriptions, row)
	}
	for len(changes) < size.changes {
		switch n := rng.IntN(100); {
		case n < 65 || len(direct) == 0:
			c := customers[rng.IntN(len(customers))]
			seats[c] = max(seats[c], 5) + 1 + rng.IntN(3)
			add(&chaosChange{kind: schema.ChangeQuantity, customer: c, sub: c.sub, pcSub: c.pcSub, quantity: seats[c]})
		case n < 85 || size.changes-len(changes) < 2:
			c := direct[rng.IntN(len(direct))]
			add(&chaosChange{kind: schema.ChangePurchase, customer: c, offer: partnercentertest.CatalogBusinessBasic,
				sub: purchaseRow(c, partnercentertest.CatalogBusinessBasic, dataverse.GUID{}), quantity: 1 + rng.IntN(20)})
		default:
			c := direct[rng.IntN(len(direct))]
			parent := &chaosChange{kind: schema.ChangePurchase, customer: c, offer: partnercentertest.CatalogBusinessPremium,
				sub: purchaseRow(c, partnercentertest.CatalogBusinessPremium, dataverse.GUID{}), quantity: 1 + rng.IntN(20)}
			addOn := &chaosChange{kind: schema.ChangePurchase, addOn: true, customer: c, offer: partnercentertest.CatalogExtraStorage,
				sub: purchaseRow(c, partnercentertest.CatalogExtraStorage, parent.sub), quantity: 1 + rng.IntN(20), parent: parent}
			// Half the add-ons are entered before their parent: they wait for it.
			if rng.IntN(2) == 0 {
				add(addOn)
				add(parent)
			} else {
				add(parent)
				add(addOn)
			}
		}
	}
	return customers, unmapped, changes
}

// runNow presses a job's Run Now, as an admin does on its form.
func runNow(ctx context.Context, admin, dv *dataverse.Client, job string) error {
	for raw, err := range dv.List(ctx, schema.SetJobs, &dataverse.Query{Select: []string{"csp_jobid"}, Filter: dataverse.Eq("csp_name", job)}) {
		if err != nil {
			return err
		}
		id, _ := raw.GUID("csp_jobid")
		_, err = admin.Update(ctx, schema.SetJobs, id, dataverse.Row{"csp_runrequestedon": time.Now().UTC()}, nil)
		return err
	}
	return fmt.Errorf("no job row %q yet", job)
}

// listJobRuns reads the runs of one job.
func listJobRuns(t *testing.T, dv *dataverse.Client, job string) []schema.JobRun {
	var out []schema.JobRun
	for raw, err := range dv.List(t.Context(), schema.SetJobs, &dataverse.Query{Select: []string{"csp_jobid"}, Filter: dataverse.Eq("csp_name", job)}) {
		require.NoError(t, err)
		id, _ := raw.GUID("csp_jobid")
		for raw, err := range dv.List(t.Context(), schema.SetJobRuns, &dataverse.Query{Select: dataverse.Columns[schema.JobRun](), Filter: dataverse.LookupEq("csp_job", id)}) {
			require.NoError(t, err)
			var r schema.JobRun
			require.NoError(t, dataverse.Unmarshal(raw, &r))
			out = append(out, r)
		}
	}
	return out
}

func listLCLs(t *testing.T, dv *dataverse.Client) map[dataverse.GUID]schema.LicenseChangeLog {
	out := map[dataverse.GUID]schema.LicenseChangeLog{}
	for raw, err := range dv.List(t.Context(), schema.SetLicenseChangeLogs, &dataverse.Query{Select: dataverse.Columns[schema.LicenseChangeLog]()}) {
		require.NoError(t, err)
		var l schema.LicenseChangeLog
		require.NoError(t, dataverse.Unmarshal(raw, &l))
		out[l.ID] = l
	}
	return out
}

func listAgreements(t *testing.T, dv *dataverse.Client) map[dataverse.GUID]schema.Agreement {
	out := map[dataverse.GUID]schema.Agreement{}
	for raw, err := range dv.List(t.Context(), schema.SetAgreements, &dataverse.Query{Select: dataverse.Columns[schema.Agreement]()}) {
		require.NoError(t, err)
		var a schema.Agreement
		require.NoError(t, dataverse.Unmarshal(raw, &a))
		out[a.ID] = a
	}
	return out
}

func listSubscriptions(t *testing.T, dv *dataverse.Client) map[dataverse.GUID]schema.Subscription {
	out := map[dataverse.GUID]schema.Subscription{}
	for raw, err := range dv.List(t.Context(), schema.SetSubscriptions, &dataverse.Query{Select: dataverse.Columns[schema.Subscription]()}) {
		require.NoError(t, err)
		var s schema.Subscription
		require.NoError(t, dataverse.Unmarshal(raw, &s))
		out[s.ID] = s
	}
	return out
}

// chaosReplica is one `connector run` process, started again after each kill.
type chaosReplica struct {
	name, bin, dir string
	env            map[string]string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	killed  bool
	exitErr error
	starts  int
}

func (r *chaosReplica) start(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts++
	logFile, err := os.OpenFile(filepath.Join(r.dir, r.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	fmt.Fprintf(logFile, "--- start %d at %s\n", r.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, "run")
	cmd.Env = []string{"CONNECTOR_INSTANCE=" + r.name}
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Dies with the test, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start(), "start %s", r.name)
	done := make(chan struct{})
	r.cmd, r.done, r.killed, r.exitErr = cmd, done, false, nil
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		r.mu.Lock()
		if err == nil {
			err = errors.New("exit status 0")
		}
		r.exitErr = err
		r.mu.Unlock()
		close(done)
	}()
}

// kill sends SIGKILL and waits for the process to be gone.
func (r *chaosReplica) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.killed = true
	r.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// crashed says why the process ended when nobody killed it ("" while it runs or after a kill).
func (r *chaosReplica) crashed() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		if !r.killed {
			return fmt.Sprint(r.exitErr)
		}
	default:
	}
	return ""
}

// stop ends the process with SIGTERM, as the platform does, and waits for it.
func (r *chaosReplica) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.killed = true
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}
