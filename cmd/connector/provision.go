package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// provisioningSettings are what the commands that act on one row through the service need: Dataverse and
// Partner Center, no intake (nothing is received; the commands act on the row they are given).
func provisioningSettings() []string {
	return []string{connector.NeedDataverse, connector.NeedPartnerCenter, connector.UsesServiceBus, connector.UsesNotifications}
}

// parseRowID reads a row id argument, saying which kind of row was expected when it is not one.
func parseRowID(kind, arg string) (dataverse.GUID, error) {
	id, err := dataverse.ParseGUID(arg)
	if err != nil {
		return id, fmt.Errorf("%q is not a %s id: ids are GUIDs such as 3f2504e0-4f89-11d3-9a0c-0305e82c3301", arg, kind)
	}
	return id, nil
}

func provisionCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "provision", Short: "Push a license change to Partner Center now"}
	var output outputFormat
	lcl := &cobra.Command{
		Use:   "lcl <id>",
		Short: "Push one License Change Log to Partner Center now, and print its outcome",
		Long: `Provision one License Change Log now, exactly as the running connector would: through the work queue,
with the same decision (every rule of connector diagnose lcl), the same claim on the row, the same
idempotent change in Partner Center and the same write-back. A change that is held, failed or already done
is left as the rules say; the command prints what this run did and the row's state after it.

Exits non-zero when the id is not a change log's, the run failed in a way worth retrying later, or the
change is Failed Provisioning after the run. Changes this one unblocks are left to the running
connector's sweep.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRowID("license change log", args[0])
			if err != nil {
				return err
			}
			// The service's own queue does not run in this process: what this change unblocks is found by the
			// running connector's sweep instead of being queued here and dropped at exit.
			cfg, log, err := loadConfig(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			svc, err := newService(cfg, log, stderr, func(o *connector.ServiceOptions) { o.LeaveWokenRows = true })
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// Provision reports a missing row as nothing to do; a person who named it wants to hear it is not there.
			if _, err := svc.DV.Get(ctx, schema.SetLicenseChangeLogs, id, &dataverse.GetOptions{Select: []string{"csp_licensechangelogid"}}); err != nil {
				if dataverse.IsNotFound(err) {
					return fmt.Errorf("no license change log %s", id)
				}
				return err
			}
			out, err := provisionThroughQueue(ctx, svc.Prov, id, log.With("workflow", "provisioning"))
			if err != nil {
				return fmt.Errorf("provision %s: %w", id, err)
			}
			dg, err := svc.Prov.Diagnose(ctx, id)
			if dataverse.IsNotFound(err) {
				return fmt.Errorf("no license change log %s (it was deleted during the run)", id)
			}
			if err != nil {
				return err
			}
			if output == outputJSON {
				if err := writeJSON(stdout, struct {
					Outcome provisioning.Outcome  `json:"outcome"`
					LCL     provisioning.LCLState `json:"lcl"`
				}{out, dg.LCL}); err != nil {
					return err
				}
			} else {
				printOutcome(stdout, out, dg.LCL)
			}
			if dg.LCL.Status == mapping.ProvisioningLabel(schema.ProvisioningFailed) {
				return fmt.Errorf("license change log %s is %s: %s", id, dg.LCL.Status, dg.LCL.Message)
			}
			return nil
		},
	}
	addOutputFlag(lcl.Flags(), &output)
	cmd.AddCommand(withSettings(lcl, provisioningSettings()...))
	return cmd
}

// provisionThroughQueue runs one LCL through a work queue of its own, as every run of the connector goes
// through one, with the provisioner as its handler; the claim on the row keeps it from overlapping a run of
// a connector replica. The queue logs to log. It returns the run's outcome.
func provisionThroughQueue(ctx context.Context, p *provisioning.Provisioner, id dataverse.GUID, log *slog.Logger) (provisioning.Outcome, error) {
	// Do returns only the run's error; the handler keeps the outcome. It is read once the queue has
	// stopped, when no handler can still be writing it (Do returns early when ctx ends).
	var out provisioning.Outcome
	q := work.NewQueue(func(ctx context.Context, w work.Batch) error {
		var err error
		out, err = p.Provision(ctx, w.Key.ID)
		return err
	}, work.Options{Workers: 1, Logger: log})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		q.Run(ctx)
	}()
	err := q.Do(ctx, work.Item{Key: work.Key{Table: schema.TableLicenseChangeLog, ID: id}, Source: work.SourceCLI})
	_ = q.Shutdown(ctx) // the run is over, or ctx ended and cancelled it
	<-stopped
	return out, err
}

func diagnoseCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "diagnose",
		Short: "Explain what the connector would do with a license change or an agreement, and why (changes nothing)",
	}
	addOutputFlag(cmd.PersistentFlags(), &output)
	lcl := &cobra.Command{
		Use:   "lcl <id>",
		Short: "Walk the provisioning decision for one License Change Log, check by check",
		Long: `Walk the provisioning decision for one License Change Log without changing anything: every check with
its rule number, whether it passed and why; Partner Center's copy of the subscription when the
checks before it pass (a read); what the connector would do now; and the row's current state.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiagnosis(cmd, "license change log", args[0], getenv, stdout, stderr, output,
				func(ctx context.Context, s *connector.Service, id dataverse.GUID) (provisioning.Diagnosis, error) {
					return s.Prov.Diagnose(ctx, id)
				},
				provisioning.Diagnosis.WriteText)
		},
	}
	subscription := &cobra.Command{
		Use:   "subscription <id>",
		Short: "List a subscription's license changes oldest first, with what holds each",
		Long: `List a subscription's License Change Logs in the order the connector pushes them (oldest first), with
each one's state and, for pending ones, what holds or failed it (from the rules that need no Partner
Center call). The id is the subscription row's, or Partner Center's subscription id (its Provider
subscription ID column, as connector pc subscriptions lists it). Changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiagnosis(cmd, "subscription", args[0], getenv, stdout, stderr, output,
				func(ctx context.Context, s *connector.Service, id dataverse.GUID) (provisioning.SubscriptionDiagnosis, error) {
					d, err := s.Prov.DiagnoseSubscription(ctx, id)
					if !dataverse.IsNotFound(err) {
						return d, err
					}
					rowID, found, ferr := subscriptionByPCID(ctx, s.DV, args[0])
					if ferr != nil || !found {
						return d, cmp.Or(ferr, err)
					}
					return s.Prov.DiagnoseSubscription(ctx, rowID)
				}, provisioning.SubscriptionDiagnosis.WriteText)
		},
	}
	agreement := &cobra.Command{
		Use:   "agreement <id>",
		Short: "Explain an agreement: what the connector knows, what Partner Center says now, what to do next",
		Long: `Show one Agreement as the connector sees it (attestation status, acceptance path, link and expiry, date
agreed and when the connector verified it) beside what Partner Center says now (the attestation's status,
the customer's Microsoft Customer Agreements, the direct-sign status from the Microsoft 365 admin center),
which way the customer accepted, and what to do next. It only reads: the "we accepted but it still shows
Pending" guide, automated.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiagnosis(cmd, "agreement", args[0], getenv, stdout, stderr, output,
				func(ctx context.Context, s *connector.Service, id dataverse.GUID) (agreements.Diagnosis, error) {
					return s.Agreements.Diagnose(ctx, id)
				}, agreements.Diagnosis.WriteText)
		},
	}
	cmd.AddCommand(withSettings(lcl, provisioningSettings()...), withSettings(subscription, provisioningSettings()...), withSettings(agreement, provisioningSettings()...))
	return cmd
}

// subscriptionByPCID finds the subscription row of a Partner Center subscription id. The same id under two
// provider accounts (a customer moved between providers) is an error that lists both rows.
func subscriptionByPCID(ctx context.Context, dv *dataverse.Client, pcID string) (dataverse.GUID, bool, error) {
	var ids []dataverse.GUID
	q := &dataverse.Query{Select: []string{"csp_subscriptionid"}, Filter: dataverse.Eq("csp_pcsubscriptionid", strings.TrimSpace(pcID)), Top: 2}
	for raw, err := range dv.List(ctx, schema.SetSubscriptions, q) {
		if err != nil {
			return dataverse.GUID{}, false, err
		}
		if id, ok := raw.GUID("csp_subscriptionid"); ok {
			ids = append(ids, id)
		}
	}
	switch len(ids) {
	case 0:
		return dataverse.GUID{}, false, nil
	case 1:
		return ids[0], true, nil
	}
	return dataverse.GUID{}, false, fmt.Errorf("Partner Center subscription %s has more than one subscription row (%s, %s…): give the row id", pcID, ids[0], ids[1])
}

// runWord says what one provisioning run did, by its verdict.
func runWord(v mapping.Verdict) string {
	switch v {
	case mapping.Proceed:
		return "pushed"
	case mapping.Hold:
		return "held"
	case mapping.Fail:
		return "failed"
	case mapping.Skip:
		return "nothing to do"
	}
	return v.String()
}

func printOutcome(w io.Writer, out provisioning.Outcome, st provisioning.LCLState) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "License change\t%s\n", orDash(st.Name))
	fmt.Fprintf(tw, "Id\t%s\n", st.ID)
	run := runWord(out.Decision.Verdict)
	switch {
	case out.Changed != "":
		run += ": " + out.Changed
	case out.Decision.Message != "":
		run += ": " + out.Decision.Message
	}
	if out.Changed == "" && out.Decision.Verdict != mapping.Skip {
		run += " (Partner Center unchanged)"
	}
	field(tw, "This run", run)
	provisioning.WriteState(tw, st)
	_ = tw.Flush()
}

// field writes a label and a value that may span lines, the later lines under the first.
func field(tw io.Writer, label, value string) {
	for i, line := range strings.Split(strings.TrimRight(value, "\n"), "\n") {
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, line)
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// runDiagnosis is what both diagnose commands do: parse the row id, build the service, diagnose, and print
// text or JSON; a missing row is named.
func runDiagnosis[T any](cmd *cobra.Command, kind, arg string, getenv func(string) string, stdout, stderr io.Writer, output outputFormat,
	diagnose func(context.Context, *connector.Service, dataverse.GUID) (T, error), print func(T, io.Writer)) error {
	id, err := parseRowID(kind, arg)
	if err != nil {
		return err
	}
	svc, err := commandService(cmd, getenv, stderr)
	if err != nil {
		return err
	}
	d, err := diagnose(cmd.Context(), svc, id)
	if dataverse.IsNotFound(err) {
		return fmt.Errorf("no %s %s", kind, id)
	}
	if err != nil {
		return err
	}
	if output == outputJSON {
		return writeJSON(stdout, d)
	}
	print(d, stdout)
	return nil
}
