package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
)

func syncCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "sync", Short: "Sync rows from Partner Center"}
	accounts := withSettings(&cobra.Command{
		Use:   "provider-accounts",
		Short: "Sync Partner Center customers into Provider Accounts and map them to Accounts (the Provider Account Sync job, run now)",
		Long: `Lists every customer of each active Automatic provider in Partner Center, creates or updates its
Provider Account row, sets Inactive the rows whose customer left, maps new rows to Accounts where the
rules find one clear match, creates their Pending agreements, and notifies people about the rest. It runs
as the Provider Account Sync job: under the job's lease (a sync running elsewhere makes it stop with a
message) and recorded in the job's run history.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var progress func(provideraccounts.SyncProgress)
			if isTerminal(stderr) {
				last := time.Time{}
				progress = func(p provideraccounts.SyncProgress) {
					if time.Since(last) < 200*time.Millisecond {
						return
					}
					last = time.Now()
					fmt.Fprintf(stderr, "\r%s: %d customers, %d created, %d updated, %d mapped, %d need a person (%d newly) ", p.Provider,
						p.Counts.Seen, p.Counts.Created, p.Counts.Updated, p.Counts.Mapped, p.Counts.NeedPerson, p.Counts.NeedMapping)
				}
			}
			svc, err := commandService(cmd, getenv, stderr, func(o *connector.ServiceOptions) { o.SyncProgress = progress })
			if err != nil {
				return err
			}
			res, err := runJob(cmd.Context(), svc, provideraccounts.SyncJobName)
			if isTerminal(stderr) {
				fmt.Fprintln(stderr)
			}
			if err != nil {
				return err
			}
			return printRun(stdout, outputText, res)
		},
	}, connector.NeedDataverse, connector.NeedPartnerCenter, connector.UsesServiceBus, connector.UsesNotifications)
	cmd.AddCommand(accounts, subscriptionsSyncCommand(getenv, stdout, stderr))
	return cmd
}

// isTerminal says whether w is a terminal (progress is drawn only there, never into a log file or pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
