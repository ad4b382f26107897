package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// newService builds the connector service from the configuration: clients instrumented for /metrics,
// and the Service Bus client when one is configured. A command run by a person passes its stderr as
// waits: what the clients retry is said there as it happens (nil: only logged).
// newService wires the service a command uses; tune sets what the command needs of it beyond the
// configuration (a bound, a progress line).
func newService(cfg connector.Config, log *slog.Logger, waits io.Writer, tune ...func(*connector.ServiceOptions)) (*connector.Service, error) {
	if cfg.Instance == "" {
		cfg.Instance, _ = os.Hostname()
	}
	m := metrics.New()
	dvHTTP, pcHTTP := m.Instrument("dataverse", nil), m.Instrument("partnercenter", nil)
	if waits != nil {
		dvHTTP, pcHTTP = reportWaits("Dataverse", dvHTTP, waits), reportWaits("Partner Center", pcHTTP, waits)
	}
	dv, err := connector.NewDataverseClient(cfg, log, dvHTTP)
	if err != nil {
		return nil, err
	}
	pc, err := connector.NewPartnerCenterClient(cfg, log, pcHTTP)
	if err != nil {
		return nil, err
	}
	opts := connector.ServiceOptions{Logger: log, Metrics: m, DV: dv, PC: pc}
	for _, t := range tune {
		t(&opts)
	}
	if cfg.ServiceBusNamespace != "" || cfg.ServiceBusConnectionString != "" {
		cred, err := connector.AzureCredential(cfg)
		if err != nil {
			return nil, err
		}
		if opts.ServiceBus, err = connector.NewServiceBusClient(cfg, cred, nil); err != nil {
			return nil, err
		}
	}
	return connector.NewService(cfg, opts)
}

// commandService builds the service for a command a person runs: the configuration the command needs (as
// withSettings recorded it), a logger on stderr, and what the clients wait on said there as it happens.
// The service is not run: the command calls its workflows, or runs a job with runJob.
func commandService(cmd *cobra.Command, getenv func(string) string, stderr io.Writer, tune ...func(*connector.ServiceOptions)) (*connector.Service, error) {
	cfg, log, err := loadConfig(cmd, getenv, stderr)
	if err != nil {
		return nil, err
	}
	return newService(cfg, log, stderr, tune...)
}

// commandDataverse builds the Dataverse client for a command a person runs, from the configuration the
// command needs (which it also returns), what the client waits on said on stderr.
func commandDataverse(cmd *cobra.Command, getenv func(string) string, stderr io.Writer) (connector.Config, *dataverse.Client, error) {
	cfg, log, err := loadConfig(cmd, getenv, stderr)
	if err != nil {
		return cfg, nil, err
	}
	dv, err := connector.NewDataverseClient(cfg, log, reportWaits("Dataverse", nil, stderr))
	return cfg, dv, err
}

// runJob runs the named job now, as a person's Run Now: under the job's lease and recorded in its run
// history, with the service's work queue running for the job's length and for the work it caused (the
// rows a sweep submitted, the changes a success woke).
func runJob(ctx context.Context, svc *connector.Service, name string) (jobs.RunResult, error) {
	var res jobs.RunResult
	err := svc.Work(ctx, func(ctx context.Context) error {
		var err error
		res, err = svc.Jobs.RunNow(ctx, name, schema.TriggerRunNow)
		return err
	})
	return res, err
}

// printRun says what a run did, as text (one line with its counts and summary) or as the API's job run
// resource, and returns the run's own error: the command fails as the run did.
func printRun(w io.Writer, output outputFormat, res jobs.RunResult) error {
	if output == outputJSON {
		if err := writeJSON(w, api.RunResultView(res)); err != nil {
			return err
		}
		return res.Err
	}
	fmt.Fprintf(w, "%s: %s in %s (processed %d, created %d, updated %d, failed %d).", res.Job, jobs.RunStatusWord(res.Status),
		res.Ended.Sub(res.Started).Round(time.Millisecond), res.Counts.Processed, res.Counts.Created, res.Counts.Updated, res.Counts.Failed)
	if summary := strings.TrimRight(res.Counts.Summary, ".:; "); summary != "" {
		fmt.Fprintf(w, " %s.", summary)
	}
	fmt.Fprintln(w)
	return res.Err
}

func runCommand(getenv func(string) string, stderr io.Writer) *cobra.Command {
	return withSettings(&cobra.Command{
		Use:   "run",
		Short: "Run the connector service",
		Long: `Run the connector: receive Dataverse events from Service Bus (SERVICEBUS_NAMESPACE or
SERVICEBUS_CONNECTION_STRING) and/or the webhook (CONNECTOR_WEBHOOK_KEY), reconcile the rows they name,
run scheduled jobs, and serve /webhooks/dataverse, /healthz, /readyz and /metrics on CONNECTOR_HTTP_ADDR.
SIGTERM stops intake, lets running work finish for CONNECTOR_SHUTDOWN_TIMEOUT, and exits. It logs JSON
on stderr at CONNECTOR_LOG_LEVEL.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := connector.LoadConfig(getenv, connector.NeedDataverse, connector.NeedPartnerCenter, connector.NeedIntake)
			if err != nil {
				return err
			}
			log := newLogger(stderr, cfg.LogLevel)
			log.Info("starting", "config", cfg)
			svc, err := newService(cfg, log, nil)
			if err != nil {
				return err
			}
			return svc.Run(cmd.Context())
		},
	}, connector.NeedDataverse, connector.NeedPartnerCenter, connector.NeedIntake)
}

// verifyTimeout bounds a verification a person waits for at a terminal; the service's own checks wait
// for the clients' full retries.
const verifyTimeout = 30 * time.Second

func verifyCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var output outputFormat
	var write bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Verify connectivity to Dataverse, Partner Center and Service Bus from here",
		Long: `Check Dataverse (WhoAmI), Partner Center (app-only, and app+user when a refresh token is configured)
and Service Bus (when configured) with this configuration, side by side, and print what each answered.
A service that does not answer is retried for up to --timeout; each failed attempt is said on stderr.
Exits non-zero when a check fails.

It writes nothing: the provider rows keep what the running connector found. With --write it runs the
Verify Connectivity job instead, as the connector does on its schedule: the run goes in the job's
history, the outcome on every Partner Center provider row, and a success retries the license changes
held for connectivity. Use --write only with the service's own configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return errors.New("--timeout must be a positive duration such as 30s")
			}
			svc, err := commandService(cmd, getenv, stderr, func(o *connector.ServiceOptions) { o.VerifyTimeout = timeout })
			if err != nil {
				return err
			}
			var rep connectivity.Report
			if write {
				// With the work queue running: a successful check retries the license changes held for connectivity.
				_, err = runJob(cmd.Context(), svc, connectivity.VerifyJobName)
				rep = svc.Conn.Last()
			}
			if rep.At.IsZero() {
				// Not asked to write, or the job could not run (its row could not be written): check and print.
				rep = svc.Conn.Verify(cmd.Context())
			}
			if output == outputJSON {
				if err := writeJSON(stdout, rep); err != nil {
					return err
				}
			} else {
				printReport(stdout, rep)
			}
			if err != nil {
				return fmt.Errorf("the result could not be recorded in Dataverse: %w", err)
			}
			if !rep.OK {
				return errors.New("not connected: " + failedNames(rep))
			}
			return nil
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	cmd.Flags().BoolVar(&write, "write", false, "run the Verify Connectivity job: record the run and write the outcome on the provider rows")
	cmd.Flags().DurationVar(&timeout, "timeout", verifyTimeout, "how long to wait for a service that does not answer")
	return withSettings(cmd, connector.NeedDataverse, connector.NeedPartnerCenter, connector.UsesServiceBus)
}

func printReport(w io.Writer, rep connectivity.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range rep.Checks {
		mark := "ok"
		switch {
		case c.Skipped:
			mark = "skipped"
		case !c.OK:
			mark = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%dms\t%s\n", c.Name, mark, c.TookMS, c.Detail)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, rep.Message())
}

func failedNames(rep connectivity.Report) string {
	var names []string
	for _, c := range rep.Checks {
		if !c.OK {
			names = append(names, c.Name)
		}
	}
	return strings.Join(names, ", ")
}

func jobsCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Short: "List and run the connector's scheduled jobs"}
	list := withSettings(&cobra.Command{
		Use:   "list",
		Short: "List the jobs with their schedule and last run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, dv, err := commandDataverse(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCHEDULE\tENABLED\tLAST RUN\tNEXT RUN\tMESSAGE")
			for r, err := range dv.List(cmd.Context(), schema.SetJobs, &dataverse.Query{Select: dataverse.Columns[schema.Job](), OrderBy: []string{"csp_name"}}) {
				if err != nil {
					return err
				}
				var j schema.Job
				if err := dataverse.Unmarshal(r, &j); err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\n", j.Name, j.Schedule, j.Enabled, stamp(j.LastRunOn), stamp(j.NextRunOn), j.Message)
			}
			return tw.Flush()
		},
	}, connector.NeedDataverse)
	var output outputFormat
	runNow := &cobra.Command{
		Use:   "run <name>",
		Short: "Run a job now, under its lease, and record the run",
		Long: `Runs the job now, under its lease (a run going on elsewhere makes it stop with a message), records
the run in the job's run history and prints what it did. --output json prints the run as the API's job
run resource, for scripts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := commandService(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			res, err := runJob(cmd.Context(), svc, args[0])
			if err != nil {
				return err
			}
			return printRun(stdout, output, res)
		},
	}
	addOutputFlag(runNow.Flags(), &output)
	cmd.AddCommand(list, withSettings(runNow, connector.NeedDataverse, connector.NeedPartnerCenter, connector.UsesServiceBus, connector.UsesNotifications))
	return cmd
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}
