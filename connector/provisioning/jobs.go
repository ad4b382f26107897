package provisioning

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// sweepColumns are what the sweep reads of each LCL: enough to order a subscription's changes.
var sweepColumns = []string{"csp_licensechangelogid", "csp_name", "_csp_subscription_value", "csp_effectivedate", "createdon", "csp_provisioningstatus"}

// Sweep finds every LCL that needs a run, so nothing depends on an event arriving: changes Awaiting
// Provisioning that are due (no next attempt, or its time has come; a Manual provider's are left to a
// person), and claims that expired (a replica died mid-change), on active rows or not. Of a subscription's due changes only the
// first is submitted: each success wakes the next, in order. It returns how many it submitted.
func (p *Provisioner) Sweep(ctx context.Context) (int, error) {
	if p.wakeRows == nil {
		return 0, fmt.Errorf("provisioning sweep: nothing to submit work to")
	}
	now := p.now().UTC()
	due := dataverse.And(
		dataverse.Eq("statecode", schema.StateActive),
		dataverse.Eq("csp_provisioningstatus", schema.ProvisioningAwaiting),
		dataverse.Or(dataverse.IsNull("csp_nextattempton"), dataverse.Le("csp_nextattempton", now)),
		dataverse.Or(dataverse.IsNull("csp_heldreason"), dataverse.Ne("csp_heldreason", schema.HeldManual)),
	)
	first := map[dataverse.GUID]schema.LicenseChangeLog{} // per subscription
	var ids []dataverse.GUID
	for r, err := range p.dv.List(ctx, schema.SetLicenseChangeLogs, &dataverse.Query{Select: sweepColumns, Filter: due}) {
		if err != nil {
			return 0, fmt.Errorf("provisioning sweep: list due changes: %w", err)
		}
		var l schema.LicenseChangeLog
		if err := dataverse.Unmarshal(r, &l); err != nil {
			return 0, err
		}
		if l.Subscription.ID == uuid.Nil {
			ids = append(ids, l.ID) // no subscription: its run says so on the row
			continue
		}
		if cur, ok := first[l.Subscription.ID]; !ok || mapping.Before(l, cur) {
			first[l.Subscription.ID] = l
		}
	}
	heads := make([]schema.LicenseChangeLog, 0, len(first))
	for _, l := range first {
		heads = append(heads, l)
	}
	slices.SortFunc(heads, mapping.Compare)
	for _, l := range heads {
		ids = append(ids, l.ID)
	}
	// Active or not, whatever its status: a row archived (or set Failed by hand) while a replica that then
	// died was making its change still needs the outcome written, and only the claim left on it says so.
	expired := dataverse.Or(
		dataverse.And(dataverse.Eq("csp_provisioningstatus", schema.ProvisioningInProgress), dataverse.IsNull("csp_claimexpireson")),
		dataverse.Lt("csp_claimexpireson", now),
	)
	for r, err := range p.dv.List(ctx, schema.SetLicenseChangeLogs, &dataverse.Query{Select: []string{"csp_licensechangelogid"}, Filter: expired}) {
		if err != nil {
			return 0, fmt.Errorf("provisioning sweep: list expired claims: %w", err)
		}
		var l schema.LicenseChangeLog
		if err := dataverse.Unmarshal(r, &l); err != nil {
			return 0, err
		}
		ids = append(ids, l.ID)
	}
	if len(ids) > 0 {
		p.wakeRows(ctx, ids)
	}
	return len(ids), nil
}

// SweepJob is the provisioning sweep as a scheduled job.
func (p *Provisioner) SweepJob(schedule time.Duration) jobs.Job {
	return jobs.Job{Name: SweepJobName, Schedule: schedule, Run: func(ctx context.Context) (jobs.RunCounts, error) {
		n, err := p.Sweep(ctx)
		return jobs.RunCounts{Processed: n, Summary: fmt.Sprintf("%d license change(s) submitted for provisioning", n)}, err
	}}
}

// WakeNotConnected submits the changes held because Partner Center refused the credentials: called after
// Verify Connectivity succeeds.
func (p *Provisioner) WakeNotConnected(ctx context.Context) (int, error) {
	if p.wakeRows == nil {
		return 0, nil
	}
	var ids []dataverse.GUID
	q := &dataverse.Query{Select: []string{"csp_licensechangelogid"}, Filter: dataverse.And(
		dataverse.Eq("statecode", schema.StateActive),
		dataverse.Eq("csp_provisioningstatus", schema.ProvisioningAwaiting),
		dataverse.Eq("csp_heldreason", schema.HeldNotConnected))}
	for r, err := range p.dv.List(ctx, schema.SetLicenseChangeLogs, q) {
		if err != nil {
			return 0, err
		}
		var l schema.LicenseChangeLog
		if err := dataverse.Unmarshal(r, &l); err != nil {
			return 0, err
		}
		ids = append(ids, l.ID)
	}
	if len(ids) > 0 {
		p.wakeRows(ctx, ids)
	}
	return len(ids), nil
}

// reportLimit is how many changes the health report names; it counts them all.
const reportLimit = 25

// HealthReport lists the changes Awaiting Provisioning or Failed Provisioning for longer than after
// (created before now − after), oldest first: the weekly check the support guides recommend. The report
// is the run's summary; ReportJob also sends it as one in-app notice when Options.NoticeUsers is set.
func (p *Provisioner) HealthReport(ctx context.Context, after time.Duration) (jobs.RunCounts, string, error) {
	cutoff := p.now().Add(-after).UTC()
	q := &dataverse.Query{
		Select: append(sweepColumns, "csp_provisioningmessage", "csp_heldreason"),
		Filter: dataverse.And(dataverse.Eq("statecode", schema.StateActive),
			dataverse.In("csp_provisioningstatus", schema.ProvisioningAwaiting, schema.ProvisioningFailed, schema.ProvisioningInProgress),
			dataverse.Lt("createdon", cutoff)),
		OrderBy: []string{"createdon asc"},
	}
	var counts jobs.RunCounts
	var lines []string
	for r, err := range p.dv.List(ctx, schema.SetLicenseChangeLogs, q) {
		if err != nil {
			return counts, "", fmt.Errorf("license change report: %w", err)
		}
		var l schema.LicenseChangeLog
		if err := dataverse.Unmarshal(r, &l); err != nil {
			return counts, "", err
		}
		counts.Processed++
		if l.ProvisioningStatus == schema.ProvisioningFailed {
			counts.Failed++
		}
		if len(lines) < reportLimit {
			msg := l.ProvisioningMessage
			if msg == "" {
				msg = "no message yet"
			}
			lines = append(lines, fmt.Sprintf("- %s: %s since %s. %s", mapping.LCLName(l), mapping.ProvisioningLabel(l.ProvisioningStatus), mapping.FormatTime(l.CreatedOn), msg))
		}
	}
	if counts.Processed == 0 {
		counts.Summary = fmt.Sprintf("No license change has waited or stayed failed for more than %s", jobs.PlainDuration(after))
		return counts, counts.Summary + ".", nil
	}
	counts.Summary = fmt.Sprintf("%d license change(s) waiting or failed for more than %s (%d failed)", counts.Processed, jobs.PlainDuration(after), counts.Failed)
	body := counts.Summary + ", oldest first:\n" + strings.Join(lines, "\n")
	if counts.Processed > len(lines) {
		body += fmt.Sprintf("\n… and %d more (see the License Change Logs view filtered on Awaiting and Failed Provisioning).", counts.Processed-len(lines))
	}
	return counts, body, nil
}

// ReportJob is the License Change Health Report as a scheduled job (weekly by default).
func (p *Provisioner) ReportJob(schedule, after time.Duration) jobs.Job {
	return jobs.Job{Name: ReportJobName, Schedule: schedule, Run: func(ctx context.Context) (jobs.RunCounts, error) {
		counts, body, err := p.HealthReport(ctx, after)
		if err != nil || counts.Processed == 0 || p.noticeUsers == nil {
			return counts, err
		}
		if nerr := p.noticeUsers(ctx, notify.Notice{Title: fmt.Sprintf("%d license change(s) need attention", counts.Processed), Body: body, Icon: notify.NoticeWarning}); nerr != nil {
			p.log.Warn("could not send the license change report", "error", nerr)
		}
		return counts, nil
	}}
}
