package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// run is the whole program: main only supplies the process's context, arguments, environment and streams,
// so tests call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := rootCommand(getenv, stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if plain, ok := plainFailure(err); ok {
		if verbose, _ := root.PersistentFlags().GetBool("verbose"); verbose {
			fmt.Fprintln(stderr, "detail:", err)
		}
		return errors.New(plain)
	}
	return err
}

// rootCommand is the command tree: every command, reading the environment through getenv and writing on
// stdout and stderr.
func rootCommand(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "connector",
		Short: "CSP Connector keeps Dynamics 365 (Dataverse) and Microsoft Partner Center in step",
		Long: `CSP Connector keeps Dynamics 365 (Dataverse) and Microsoft Partner Center in step.

Configuration comes from environment variables (see the README; each command's --help lists the ones it
reads); every problem is reported at once. Commands print their result on stdout and warnings on stderr;
run and sandbox log JSON on stderr at CONNECTOR_LOG_LEVEL.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().Bool("verbose", false, "log at CONNECTOR_LOG_LEVEL (info by default) on stderr, not only warnings")
	root.SetFlagErrorFunc(flagError)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(runCommand(getenv, stderr), sandboxCommand(getenv, stdout, stderr), dataverseCommand(getenv, stdout, stderr),
		pcCommand(getenv, stdout, stderr), verifyCommand(getenv, stdout, stderr), jobsCommand(getenv, stdout, stderr), inspectCommand(stdin, stdout),
		provisionCommand(getenv, stdout, stderr), diagnoseCommand(getenv, stdout, stderr), syncCommand(getenv, stdout, stderr),
		agreementsCommand(getenv, stdout, stderr), apiCommand(stdin, stdout), setupCommand(getenv, stdout, stderr))
	return root
}

// plainFailure says in words why a command could not reach Dataverse or Partner Center: the error the
// clients return names the request URL (encoded) and the socket, which is for --verbose, not for people.
func plainFailure(err error) (string, bool) {
	var op *net.OpError
	if err == nil || !errors.As(err, &op) || op.Op != "dial" {
		return "", false
	}
	service, setting := "the service", "its address"
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "dataverse:") || strings.Contains(msg, ": dataverse:"):
		service, setting = "Dataverse", "DATAVERSE_URL"
	case strings.HasPrefix(msg, "partnercenter:") || strings.Contains(msg, ": partnercenter:"):
		service, setting = "Partner Center", "PARTNERCENTER_ENDPOINT"
	}
	at := ""
	if op.Addr != nil {
		at = " at " + op.Addr.String()
	}
	why := "no connection could be made"
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno) && errno == syscall.ECONNREFUSED:
		why = "nothing is listening there"
	case op.Timeout():
		why = "the connection timed out"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		at, why = " at "+dnsErr.Name, "the name does not resolve"
	}
	return fmt.Sprintf("%s%s is not answering (%s): is it running, and is %s right? (--verbose shows the request that failed)", service, at, why, setting), true
}

// newLogger writes JSON logs to stderr at the configured level: the service's logs (run, sandbox), for a
// log collector. Commands a person runs log through loadConfig's instead.
func newLogger(stderr io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
}

func sandboxCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var addr, pcAddr, connAddr string
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run the connector on its built-in simulators (no Azure needed)",
		Long: `Run the connector on its built-in simulators: a Dataverse simulator with the connector's tables
installed by the real installer, its event steps registered with a webhook pointing at the connector, and
demonstration rows; a Partner Center simulator with demonstration customers, subscriptions and agreements;
and the connector itself, receiving the simulator's events through its webhook exactly as it would receive
Dataverse's. Nothing leaves this machine and no Azure or Microsoft account is needed. Stop it with Ctrl+C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := connector.LoadConfig(getenv)
			if err != nil {
				return err
			}
			log := newLogger(stderr, cfg.LogLevel)
			sb, err := connector.StartSandbox(cmd.Context(), connector.SandboxOptions{DataverseAddr: addr, PartnerCenterAddr: pcAddr, ConnectorAddr: connAddr, Logger: log})
			if err != nil {
				return err
			}
			defer sb.Close()
			sb.Describe(stdout)
			err = sb.Service.Run(cmd.Context())
			fmt.Fprintln(stdout, "Stopped.")
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "dataverse-addr", "127.0.0.1:8091", "loopback address of the Dataverse simulator (port 0 picks a free one)")
	cmd.Flags().StringVar(&pcAddr, "partnercenter-addr", "127.0.0.1:8092", "loopback address of the Partner Center simulator (port 0 picks a free one)")
	cmd.Flags().StringVar(&connAddr, "addr", "127.0.0.1:8090", "address the connector serves its webhook, health and metrics on (port 0 picks a free one)")
	return withSettings(cmd)
}

func dataverseCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataverse",
		Short: "Work with the Dataverse environment",
	}
	var dryRun, rotate bool
	var output outputFormat
	install := &cobra.Command{
		Use:   "install",
		Short: "Create or update the connector's tables, its app, its security roles, and its event registration",
		Long: `Create or update, in the environment at DATAVERSE_URL and inside the CSPConnector solution (publisher
prefix csp):
  - the tables: columns, choices, status reasons and alternate keys;
  - the CSP Connector app: a main form per table, the views, the sitemap (Provisioning, Customers, Setup),
    the command buttons and the script they run (a web resource), in-app notifications switched on;
  - the security roles CSP Connector (for the connector's application user), CSP Connector Admin and
    CSP Connector Reader, each allowed to use the app, and the field security profile CSP Connector
    Secrets (webhook callback URLs);
then register the event intake: the service endpoint (a Service Bus queue with Json messages when
SERVICEBUS_NAMESPACE or SERVICEBUS_CONNECTION_STRING is set, using the Send-only rule in
SERVICEBUS_SEND_CONNECTION_STRING; else a webhook at CONNECTOR_PUBLIC_URL/webhooks/dataverse with
CONNECTOR_WEBHOOK_KEY) and one asynchronous post-operation step per trigger, with the images the handlers
read.

It compares first and changes only what is missing or different, so running it again changes nothing.
--dry-run prints the plan without changing anything: every table, form, view, command and role it would
create or update, and the event registration's changes once the tables exist. Differences it will not
resolve by itself (a column whose type differs, a key whose index failed, a step disabled by hand) are
listed as problems and make the command fail. Secrets are write-only in Dataverse: an existing endpoint
keeps its key unless --rotate-secrets is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, dv, err := commandDataverse(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			reg, regErr := connector.RegistrationFor(cfg, connector.Triggers())
			if regErr != nil && !errors.Is(regErr, connector.ErrNoIntakeToRegister) {
				return regErr
			}
			reg.RotateSecrets = rotate
			var regp *dataverse.Registration
			if regErr == nil {
				regp = &reg
			}
			if err := installAll(cmd.Context(), dv, regp, dryRun, output, stdout); err != nil {
				return err
			}
			if output == outputText && !dryRun {
				fmt.Fprintln(stdout, "Next: connector pc consent (once, as a partner Admin agent), then connector setup")
			}
			return nil
		},
	}
	install.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	install.Flags().BoolVar(&rotate, "rotate-secrets", false, "send the endpoint's key or SAS key again (after rotating it)")
	addOutputFlag(install.Flags(), &output)
	cmd.AddCommand(withSettings(install, connector.NeedDataverse, connector.UsesRegistration))
	return cmd
}

// installAll installs the schema, then the event registration (nil: none configured).
func installAll(ctx context.Context, dv *dataverse.Client, reg *dataverse.Registration, dryRun bool, output outputFormat, stdout io.Writer) error {
	report := map[string]any{"environment": dv.OrganizationURL(), "dryRun": dryRun}
	schemaReport, schemaEmpty, err := installSchema(ctx, dv, dryRun, output, stdout)
	report["applied"], report["changes"], report["problems"] = schemaReport.applied, schemaReport.changes, schemaReport.problems
	if err == nil {
		var regReport map[string]any
		regReport, err = installRegistration(ctx, dv, reg, dryRun, schemaEmpty, output, stdout)
		report["registration"] = regReport
	}
	if output == outputJSON {
		if encErr := writeJSON(stdout, report); encErr != nil {
			return encErr
		}
	}
	return err
}

type installReport struct {
	applied  bool
	changes  []string
	problems []string
}

func installRegistration(ctx context.Context, dv *dataverse.Client, reg *dataverse.Registration, dryRun, schemaInstalled bool, output outputFormat, stdout io.Writer) (map[string]any, error) {
	text := output == outputText
	if reg == nil {
		if text {
			fmt.Fprintf(stdout, "Event registration skipped: %v\n", connector.ErrNoIntakeToRegister)
		}
		return map[string]any{"skipped": connector.ErrNoIntakeToRegister.Error()}, nil
	}
	if dryRun && !schemaInstalled {
		msg := "the tables are not installed yet; run again after installing to see the event registration plan"
		if text {
			fmt.Fprintf(stdout, "Event registration: %s.\n", msg)
		}
		return map[string]any{"skipped": msg}, nil
	}
	plan, err := dv.PlanRegistration(ctx, *reg)
	if err != nil {
		return nil, err
	}
	if text {
		fmt.Fprintf(stdout, "Event registration (%s)\n%s", reg.Endpoint, plan.String())
	}
	applied := false
	if !dryRun && !plan.Empty() {
		if err := dv.ApplyRegistration(ctx, plan, func(i int, ch dataverse.Change) {
			if text {
				fmt.Fprintf(stdout, "[%d/%d] %s\n", i+1, len(plan.Changes), ch.Summary)
			}
		}); err != nil {
			return nil, err
		}
		applied = true
		if text {
			fmt.Fprintf(stdout, "Done: %d registration change(s) applied.\n", len(plan.Changes))
		}
	} else if dryRun && text && !plan.Empty() {
		fmt.Fprintln(stdout, "Dry run: nothing was changed.")
	}
	out := map[string]any{"endpoint": reg.Endpoint.Name, "applied": applied, "changes": plan.Summaries(), "problems": append([]string{}, plan.Problems...)}
	if len(plan.Problems) > 0 {
		return out, fmt.Errorf("the event registration has %d problem(s) the installer does not resolve: %s", len(plan.Problems), strings.Join(plan.Problems, "; "))
	}
	return out, nil
}

func installSchema(ctx context.Context, dv *dataverse.Client, dryRun bool, output outputFormat, stdout io.Writer) (installReport, bool, error) {
	plan, err := dv.PlanSchema(ctx, schema.Schema())
	if err != nil {
		return installReport{}, false, err
	}
	rep := installReport{changes: plan.Summaries(), problems: append([]string{}, plan.Problems...)}
	text := output == outputText
	if text {
		fmt.Fprintf(stdout, "Environment %s\n%s", dv.OrganizationURL(), plan.String())
	}
	if !dryRun && !plan.Empty() {
		err = dv.ApplySchema(ctx, plan, func(i int, ch dataverse.Change) {
			if text {
				fmt.Fprintf(stdout, "[%d/%d] %s\n", i+1, len(plan.Changes), ch.Summary)
			}
		})
		if err != nil {
			return rep, false, err
		}
		rep.applied = true
		if text {
			fmt.Fprintf(stdout, "Done: %d change(s) applied.\n", len(plan.Changes))
		}
	} else if dryRun && text && !plan.Empty() {
		fmt.Fprintln(stdout, "Dry run: nothing was changed.")
	}
	if len(plan.Problems) > 0 {
		return rep, false, fmt.Errorf("the environment has %d problem(s) the installer does not resolve: %s", len(plan.Problems), strings.Join(plan.Problems, "; "))
	}
	return rep, !dryRun || plan.Empty(), nil
}
