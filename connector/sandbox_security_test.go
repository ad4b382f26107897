package connector

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/subscriptions"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// TestConnectorRoleGrantsExactlyWhatTheConnectorCalls: the security role installed for the connector's
// application user grants exactly the table privileges the running connector's calls need, no fewer (a
// call would be refused) and no more (least privilege). The Dataverse simulator records the privilege
// each call needs; the connector runs every workload on the sandbox: the jobs (provisioning sweep and
// health report, provider account and subscription sync, attestation check, verify connectivity), the
// events of an admin's writes, and every operation of its HTTP API, which also drive the notifications
// (in-app notices and the webhook outbox) and the diagnoses. The installer is not the connector: it runs
// as an administrator (infra/README.md), so what the sandbox's install did is forgotten first.
func TestConnectorRoleGrantsExactlyWhatTheConnectorCalls(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	// The one step by hand (infra/README.md): the connector's application user gets its role and the
	// secured columns' profile. From here on the simulator refuses any call the role does not grant.
	ctx, dv, app := t.Context(), sb.DataverseClient, sb.Dataverse.UserID()
	require.NoError(t, dv.AssignRole(ctx, app, lookupID(t, dv, "roles", "roleid", schema.ConnectorRole)))
	require.NoError(t, dv.AddToFieldSecurityProfile(ctx, app, lookupID(t, dv, "fieldsecurityprofiles", "fieldsecurityprofileid", schema.SecretsProfile)))
	sb.Dataverse.EnforcePrivileges(true)
	t.Cleanup(func() {
		if denied := sb.Dataverse.PrivilegesDenied(); t.Failed() && len(denied) > 0 {
			t.Logf("Dataverse refused %d call(s) the role does not grant, the first: %s", len(denied), denied[0])
		}
	})
	sb.Dataverse.ResetPrivilegesUsed()
	runService(t, sb.Service)
	waitStartupJobs(t, sb)
	op := operatorClient(t, sb)
	base := sandboxBase(sb)

	// An admin asks for Verify Connectivity on the provider's form; the event wakes the connector.
	admin, err := dataverse.NewClient(sb.Dataverse.URL, nil, &dataverse.ClientOptions{HTTPClient: sb.Dataverse.ClientAs(sb.AdminID)})
	require.NoError(t, err)
	_, err = admin.Update(t.Context(), schema.SetProviders, sb.partnerCenterProvider, dataverse.Row{"csp_verifyrequestedon": time.Now().Add(time.Second).UTC()}, nil)
	require.NoError(t, err)

	// A flow subscribes to an event, the connector posts to it, the flow unsubscribes.
	flow := newFlowCallback(t)
	var sub api.WebhookSubscriptionView
	op.post(api.Prefix+"/webhook-subscriptions", api.WebhookSubscriptionRequest{CallbackURL: flow.srv.URL + "/invoke?sig=c2VjcmV0",
		EventType: string(notify.ProviderAccountNeedsMapping)}).ok(t, http.StatusCreated, &sub)
	// A second flow is broken: its deliveries fail and are kept in the outbox for another attempt.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	t.Cleanup(broken.Close)
	op.post(api.Prefix+"/webhook-subscriptions", api.WebhookSubscriptionRequest{CallbackURL: broken.URL + "/invoke?sig=YnJva2Vu",
		EventType: string(notify.ProviderAccountNeedsMapping)}).ok(t, http.StatusCreated, nil)
	op.get(api.Prefix+"/webhook-subscriptions").ok(t, http.StatusOK, nil)
	require.NoError(t, sb.PartnerCenter.AddCustomer(partnercentertest.Customer{TenantID: uuid.NewString(), CompanyName: "Zyxw Unmatched", Domain: "zyxw-unmatched.example", Country: "US"}))
	waitJobIdle(t, sb, provideraccounts.SyncJobName)
	op.poll(op.post(api.Prefix+"/provider-accounts/sync", nil).accepted(t, base, nil))
	require.Eventually(t, func() bool {
		for _, row := range sb.Dataverse.Rows(schema.TableNotification) {
			if n, _ := row["csp_attempts"].(int64); n > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the failed delivery is recorded in the outbox")

	// A subscription bought outside Dynamics (in the Microsoft 365 admin center, a month ago), which the
	// Subscription Sync imports: the sandbox's own subscriptions were imported when it started.
	require.NoError(t, sb.PartnerCenter.AddSubscription(demoContosoTenant, partnercentertest.Subscription{
		OfferID: partnercentertest.CatalogBusinessPremium, Quantity: 3, AutoRenew: true, CreatedOn: time.Now().AddDate(0, -1, 0)}))
	// Every job, run now through the API.
	for _, job := range []string{provisioning.SweepJobName, provisioning.ReportJobName, provideraccounts.SyncJobName, subscriptions.SyncJobName,
		agreements.AttestationCheckJob, connectivity.VerifyJobName} {
		op.poll(op.post(api.Prefix+"/jobs/"+strings.ReplaceAll(job, " ", "%20")+"/run", nil).accepted(t, base, nil))
	}
	op.get(api.Prefix+"/jobs").ok(t, http.StatusOK, nil)
	op.get(api.Prefix+"/jobs/"+strings.ReplaceAll(provisioning.SweepJobName, " ", "%20")+"/runs").ok(t, http.StatusOK, nil)

	// The rest of the API: provider accounts, agreements, license changes, subscriptions, connectivity.
	op.get(api.Prefix+"/provider-accounts").ok(t, http.StatusOK, nil)
	accounts := providerAccountsByTenant(t, sb)
	litware := accounts[demoLitwareTenant]
	op.get(api.Prefix+"/provider-accounts/"+litware.ID.String()).ok(t, http.StatusOK, nil)
	op.post(api.Prefix+"/provider-accounts/"+litware.ID.String()+"/map", api.MapRequest{AccountID: accountByName(t, sb, "Litware, Inc.").String()}).ok(t, http.StatusOK, nil)
	op.poll(op.post(api.Prefix+"/provider-accounts/sync", nil).accepted(t, base, nil))
	op.get(api.Prefix+"/agreements/"+sb.contosoAgreement.String()).ok(t, http.StatusOK, nil)
	op.post(api.Prefix+"/agreements/"+sb.contosoAgreement.String()+"/request-link", validSignatory).ok(t, http.StatusOK, nil)
	op.poll(op.post(api.Prefix+"/agreements/check", nil).accepted(t, base, nil))
	op.get(api.Prefix+"/agreement-templates").ok(t, http.StatusOK, nil)
	op.poll(op.post(api.Prefix+"/agreement-templates/"+sb.mcaTemplate.String()+"/create-agreements", nil).accepted(t, base, nil))
	lcl := sb.DemoChanges[demoChangeSandboxCap]
	op.get(api.Prefix+"/license-change-logs/"+lcl.String()).ok(t, http.StatusOK, nil)
	op.get(api.Prefix+"/license-change-logs/"+lcl.String()+"/diagnosis").ok(t, http.StatusOK, nil)
	op.post(api.Prefix+"/license-change-logs/"+lcl.String()+"/provision", api.ProvisionRequest{Retry: true}).ok(t, http.StatusOK, nil)
	op.get(api.Prefix+"/subscriptions/"+readLCL(t, sb.DataverseClient, lcl).Subscription.ID.String()+"/diagnosis").ok(t, http.StatusOK, nil)
	op.post(api.Prefix+"/connectivity/verify", nil).ok(t, http.StatusOK, nil)

	op.do(http.MethodDelete, api.Prefix+"/webhook-subscriptions/"+sub.ID, nil)
	require.NoError(t, sb.Dataverse.WaitDeliveries(t.Context()))
	require.Eventually(t, func() bool { return sb.Service.Queue.Len() == 0 }, 10*time.Second, 10*time.Millisecond)
	waitStartupJobs(t, sb)

	assert.Empty(t, sb.Dataverse.PrivilegesDenied(), "Dataverse refused none of the connector's calls")
	var used []string
	for _, u := range sb.Dataverse.PrivilegesUsed(sb.Dataverse.UserID()) {
		used = append(used, u.String())
	}
	// What the role needs beyond the calls above, and why. Each must not be among the calls: when the
	// workload reaches one, it leaves this list.
	beyond := map[string]string{
		// Code the workload does not reach within a test's seconds.
		"prvReadcsp_notification":         "notify.Notifications.poll reads the outbox every 30 s for deliveries no replica holds",
		"prvWritecsp_webhooksubscription": "notify.WebhookDeliverer.countMissed and resetFailures keep a subscription's failure count once a delivery is given up",
		// Read once per client, before this test starts recording: the sandbox's client (the connector's)
		// learned which bulk messages Dataverse has (the ids of CreateMultiple, UpdateMultiple and
		// UpsertMultiple) at its first bulk write, when the sandbox was seeded.
		"prvReadSdkMessage": "dataverse.bulkTables reads sdkmessages once per client",
		// Dataverse's own rule, which the simulator does not model.
		"prvReadAppNotification": "Dataverse asks the sender of an in-app notification for Read on appnotification (reference/dataverse.md §10)",
	}
	for name, why := range beyond {
		assert.NotContains(t, used, name, "the workload now reaches %s (%s): take it out of the list of privileges beyond the calls", name, why)
		used = append(used, name)
	}
	var granted []string
	i := slices.IndexFunc(schema.Schema().App.Roles, func(r dataverse.Role) bool { return r.Name == schema.ConnectorRole })
	require.GreaterOrEqual(t, i, 0, "the schema declares the role %q", schema.ConnectorRole)
	for _, p := range schema.Schema().App.Roles[i].Privileges {
		granted = append(granted, p.Name())
		assert.Equal(t, dataverse.DepthGlobal, p.Depth, "%s: the connector works on every row, whoever owns it", p.Name())
	}
	missing, unused := difference(used, granted), difference(granted, used)
	assert.Empty(t, missing, "the connector calls for these, but the role %q does not grant them (add them in dataverse/schema/security.go)", schema.ConnectorRole)
	assert.Empty(t, unused, "the role %q grants these, but the connector never needed them (remove them in dataverse/schema/security.go)", schema.ConnectorRole)
	slices.Sort(used)
	t.Logf("the connector needs %d privileges: %s", len(used), strings.Join(used, " "))

	// The secured columns: the profile allows exactly the reads and writes the connector made.
	var fieldsUsed, allowed []string
	for _, f := range sb.Dataverse.SecuredColumnsUsed(app) {
		fieldsUsed = append(fieldsUsed, f.String())
	}
	j := slices.IndexFunc(schema.Schema().App.FieldSecurityProfiles, func(p dataverse.FieldSecurityProfile) bool { return p.Name == schema.SecretsProfile })
	require.GreaterOrEqual(t, j, 0, "the schema declares the profile %q", schema.SecretsProfile)
	for _, fp := range schema.Schema().App.FieldSecurityProfiles[j].Permissions {
		for access, ok := range map[string]bool{"read": fp.Read, "create": fp.Create, "update": fp.Update} {
			if ok {
				allowed = append(allowed, fp.Table+"."+fp.Column+": "+access)
			}
		}
	}
	assert.Empty(t, difference(fieldsUsed, allowed), "the connector reads or writes these secured columns, but the profile %q does not allow it", schema.SecretsProfile)
	assert.Empty(t, difference(allowed, fieldsUsed), "the profile %q allows these, but the connector never did them", schema.SecretsProfile)
	t.Logf("secured columns: %s", strings.Join(fieldsUsed, "; "))
}

// difference is what a has and b has not, sorted.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// lookupID finds a row's id by its name.
func lookupID(t *testing.T, dv *dataverse.Client, set, idColumn, name string) dataverse.GUID {
	t.Helper()
	for row, err := range dv.List(t.Context(), set, &dataverse.Query{Select: []string{idColumn}, Filter: dataverse.Eq("name", name), Top: 1}) {
		require.NoError(t, err)
		id, ok := row.GUID(idColumn)
		require.True(t, ok)
		return id
	}
	t.Fatalf("no %s named %q", set, name)
	return dataverse.GUID{}
}
