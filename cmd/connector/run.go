package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// run is the whole program: main only supplies the process's context, arguments, environment and streams,
// so tests call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:   "connector",
		Short: "CSP Connector keeps Dynamics 365 (Dataverse) and Microsoft Partner Center in step",
		Long: `CSP Connector keeps Dynamics 365 (Dataverse) and Microsoft Partner Center in step.

Configuration comes from environment variables (see the README); every problem is reported at once.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.AddCommand(runCommand(getenv, stderr), sandboxCommand(getenv, stdout, stderr), dataverseCommand(getenv, stdout, stderr),
		pcCommand(getenv, stdout, stderr), verifyCommand(getenv, stdout, stderr), jobsCommand(getenv, stdout, stderr), inspectCommand(stdin, stdout))
	return root.ExecuteContext(ctx)
}

// newLogger writes JSON logs to stderr at the configured level.
func newLogger(stderr io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
}

func sandboxCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var addr, pcAddr string
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run the connector on its built-in simulators (no Azure needed)",
		Long: `Run the connector on its built-in simulators: a Dataverse simulator with the connector's tables
installed by the real installer and demonstration rows in them, and a Partner Center simulator with
demonstration customers, subscriptions and agreements. Nothing leaves this machine and no Azure or
Microsoft account is needed. Stop it with Ctrl+C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := connector.LoadConfig(getenv)
			if err != nil {
				return err
			}
			log := newLogger(stderr, cfg.LogLevel)
			sb, err := connector.StartSandbox(cmd.Context(), connector.SandboxOptions{DataverseAddr: addr, PartnerCenterAddr: pcAddr, Logger: log})
			if err != nil {
				return err
			}
			defer sb.Close()
			sb.Describe(stdout)
			<-cmd.Context().Done()
			fmt.Fprintln(stdout, "Stopped.")
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "dataverse-addr", "127.0.0.1:8091", "loopback address of the Dataverse simulator (port 0 picks a free one)")
	cmd.Flags().StringVar(&pcAddr, "partnercenter-addr", "127.0.0.1:8092", "loopback address of the Partner Center simulator (port 0 picks a free one)")
	return cmd
}

func dataverseCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataverse",
		Short: "Work with the Dataverse environment",
	}
	var dryRun bool
	var output string
	install := &cobra.Command{
		Use:   "install",
		Short: "Create or update the connector's tables, columns, choices and keys",
		Long: `Create or update the connector's tables, columns, choices, status reasons and alternate keys in the
environment at DATAVERSE_URL, inside the CSPConnector solution (publisher prefix csp). It compares
first and changes only what is missing, so running it again changes nothing. --dry-run prints the
plan without changing anything. Differences it will not resolve by itself (a column whose type
differs, a key whose index failed) are listed as problems and make the command fail.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output must be text or json")
			}
			cfg, err := connector.LoadConfig(getenv, connector.NeedDataverse)
			if err != nil {
				return err
			}
			log := newLogger(stderr, cfg.LogLevel)
			dv, err := connector.NewDataverseClient(cfg, log, nil)
			if err != nil {
				return err
			}
			return installSchema(cmd.Context(), dv, dryRun, output, stdout)
		},
	}
	install.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	install.Flags().StringVarP(&output, "output", "o", "text", "text, or json for scripts")
	cmd.AddCommand(install)
	return cmd
}

func installSchema(ctx context.Context, dv *dataverse.Client, dryRun bool, output string, stdout io.Writer) error {
	plan, err := dv.PlanSchema(ctx, schema.Schema())
	if err != nil {
		return err
	}
	applied := false
	if output == "text" {
		fmt.Fprintf(stdout, "Environment %s\n%s", dv.OrganizationURL(), plan.String())
	}
	if !dryRun && !plan.Empty() {
		err = dv.ApplySchema(ctx, plan, func(i int, ch dataverse.Change) {
			if output == "text" {
				fmt.Fprintf(stdout, "[%d/%d] %s\n", i+1, len(plan.Changes), ch.Summary)
			}
		})
		if err != nil {
			return err
		}
		applied = true
		if output == "text" {
			fmt.Fprintf(stdout, "Done: %d change(s) applied.\n", len(plan.Changes))
		}
	} else if dryRun && output == "text" && !plan.Empty() {
		fmt.Fprintln(stdout, "Dry run: nothing was changed.")
	}
	if output == "json" {
		summaries := make([]string, len(plan.Changes))
		for i, ch := range plan.Changes {
			summaries[i] = ch.Summary
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{
			"environment": dv.OrganizationURL(), "dryRun": dryRun, "applied": applied,
			"changes": summaries, "problems": append([]string{}, plan.Problems...),
		}); err != nil {
			return err
		}
	}
	if len(plan.Problems) > 0 {
		return fmt.Errorf("the environment has %d problem(s) the installer does not resolve: %s", len(plan.Problems), strings.Join(plan.Problems, "; "))
	}
	return nil
}
