package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// setupCommand is `connector setup`: after `connector dataverse install` (the tables) and `connector pc
// consent` (the sign-in), the rows the connector needs before its first sync.
func setupCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var dryRun, autoMatch bool
	var model string
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the Microsoft Partner Center provider row and its Microsoft Customer Agreement template",
		Long: `Create the rows the connector needs in Dataverse beyond its tables, once: the Microsoft Partner Center
provider row (type Automatic, the partner model of --partner-model) and its Microsoft Customer Agreement
template, with Microsoft's template id read from Partner Center's agreement metadata (no id to copy by
hand). Rows that exist are left as they are, so running it again changes nothing; --dry-run lists what it
would create.

Reading the agreement metadata needs a partner Admin agent's sign-in (app+user): run connector pc consent
first. Run it after connector dataverse install.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := connector.SetupOptions{DryRun: dryRun, AutoMatch: autoMatch}
			if model != "" {
				m, err := connector.ParsePartnerModel(model)
				if err != nil {
					return err
				}
				opts.PartnerModel = m
			}
			cfg, log, err := loadConfig(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			dv, err := connector.NewDataverseClient(cfg, log, reportWaits("Dataverse", nil, stderr))
			if err != nil {
				return err
			}
			if cfg.PartnerCenterAuth != connector.AuthNone {
				const why = "setup reads the Microsoft Customer Agreement template id from Partner Center, which needs a partner Admin agent's sign-in"
				if cfg.PartnerCenterRefreshTokenFile == "" {
					return errors.New(why + ": set PARTNERCENTER_REFRESH_TOKEN_FILE to where the connector keeps its refresh token, run connector pc consent, then setup again")
				}
				if _, err := os.Stat(cfg.PartnerCenterRefreshTokenFile); errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("%s, and %s does not exist yet: run connector pc consent first, then setup again", why, cfg.PartnerCenterRefreshTokenFile)
				}
			}
			pc, err := connector.NewPartnerCenterClient(cfg, log, reportWaits("Partner Center", nil, stderr))
			if err != nil {
				return err
			}
			rep, err := connector.Setup(cmd.Context(), dv, pc, opts)
			if te, ok := errors.AsType[*partnercenter.TokenError](err); ok && te.Code == "invalid_grant" {
				return errors.New("Partner Center refused the stored sign-in (the refresh token expired after 90 days unused, was revoked, or needs a new MFA sign-in): run connector pc consent again, then setup")
			}
			if output == outputJSON {
				if err != nil {
					return err
				}
				return writeJSON(stdout, rep)
			}
			for _, s := range rep.Steps {
				id := ""
				if s.ID != (dataverse.GUID{}) {
					id = " (" + s.ID.String() + ")"
				}
				fmt.Fprintf(stdout, "%-13s %s %q%s: %s\n", s.Action, s.Table, s.Name, id, s.Detail)
			}
			if err != nil {
				return err
			}
			switch {
			case dryRun && rep.Changed():
				fmt.Fprintln(stdout, "Dry run: nothing was changed.")
			case !rep.Changed():
				fmt.Fprintln(stdout, "Nothing to change.")
			}
			if !dryRun {
				fmt.Fprintln(stdout, "Next: connector verify, then connector sync provider-accounts")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be created and change nothing")
	cmd.Flags().StringVar(&model, "partner-model", "", "how you buy from Microsoft, for the provider row it creates: direct-bill, indirect-provider or indirect-reseller")
	cmd.Flags().BoolVar(&autoMatch, "automatch", true, "map the provider's customers to accounts automatically (the provider row's csp_automatch)")
	addOutputFlag(cmd.Flags(), &output)
	return withSettings(cmd, connector.NeedDataverse, connector.NeedPartnerCenter)
}
