package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/subscriptions"
)

// subscriptionsSyncCommand is `connector sync subscriptions`.
func subscriptionsSyncCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var output outputFormat
	var providerAccount string
	cmd := withSettings(&cobra.Command{
		Use:   "subscriptions",
		Short: "Sync Partner Center subscriptions into Subscriptions and record drift (the Subscription Sync job, run now)",
		Long: `Lists the subscriptions of every active provider account mapped to an account and a customer tenant
(one listing per customer), creates or updates its Subscription row, and writes nothing for a row that did
not change. A change made in Partner Center that no license change of ours explains (seats, status,
auto-renew, term) updates the row and is recorded as a license change with source Provider; a
subscription with a change of ours in flight is left alone and its drift reported; a subscription
Partner Center no longer lists is flagged on its row. The mismatches are the run's summary, an in-app
notice and a SubscriptionDrift event.

It runs as the Subscription Sync job (under its lease, recorded in its run history). With
--provider-account it syncs that provider account only, outside the job (not recorded as a run).
-o json prints the counts and the drifts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var only uuid.UUID
			if providerAccount != "" {
				id, err := uuid.Parse(strings.TrimSpace(providerAccount))
				if err != nil {
					return fmt.Errorf("--provider-account wants the provider account's row id (a GUID), not %q", providerAccount)
				}
				only = id
			}
			var result subscriptions.SyncResult
			svc, err := commandService(cmd, getenv, stderr, func(o *connector.ServiceOptions) {
				o.SubscriptionResult = func(r subscriptions.SyncResult) { result = r }
			})
			if err != nil {
				return err
			}
			if only != uuid.Nil {
				_, err := svc.Subscriptions.Sync(cmd.Context(), subscriptions.SyncOptions{ProviderAccount: only})
				if output == outputJSON {
					if werr := writeJSON(stdout, result); werr != nil {
						return werr
					}
					return err
				}
				if err != nil && result.Seen == 0 {
					return err
				}
				fmt.Fprintln(stdout, result.Summary()+".")
				return err
			}
			res, err := runJob(cmd.Context(), svc, subscriptions.SyncJobName)
			if err != nil {
				return err
			}
			if output == outputJSON {
				if err := writeJSON(stdout, result); err != nil {
					return err
				}
				return res.Err
			}
			return printRun(stdout, outputText, res)
		},
	}, connector.NeedDataverse, connector.NeedPartnerCenter, connector.UsesServiceBus, connector.UsesNotifications)
	addOutputFlag(cmd.Flags(), &output)
	cmd.Flags().StringVar(&providerAccount, "provider-account", "", "sync only this provider account (its row id)")
	return cmd
}
