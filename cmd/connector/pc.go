package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// pcCommand holds the read-only Partner Center commands support uses for the "check the provider side"
// step of a troubleshooting guide. They need only the Partner Center settings.
func pcCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "pc",
		Short: "Read customers, subscriptions and agreements from Partner Center (read-only)",
	}
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "text", "text, or json for scripts")
	client := func(cmd *cobra.Command) (*partnercenter.Client, error) {
		if output != "text" && output != "json" {
			return nil, errors.New("--output must be text or json")
		}
		cfg, log, err := loadConfig(cmd, getenv, stderr)
		if err != nil {
			return nil, err
		}
		return connector.NewPartnerCenterClient(cfg, log, reportWaits("Partner Center", nil, stderr))
	}

	var namePrefix, domainPrefix string
	customers := &cobra.Command{
		Use:   "customers",
		Short: "List the partner's customers (streamed page by page)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pc, err := client(cmd)
			if err != nil {
				return err
			}
			opts := &partnercenter.ListCustomersOptions{}
			switch {
			case namePrefix != "" && domainPrefix != "":
				return errors.New("use --name or --domain, not both: Partner Center filters on one field")
			case namePrefix != "":
				opts.Filter = &partnercenter.CustomerFilter{Field: partnercenter.FilterCompanyName, Value: namePrefix}
			case domainPrefix != "":
				opts.Filter = &partnercenter.CustomerFilter{Field: partnercenter.FilterDomain, Value: domainPrefix}
			}
			return printCustomers(pc.Customers(cmd.Context(), opts), output, stdout)
		},
	}
	customers.Flags().StringVar(&namePrefix, "name", "", "only company names starting with this")
	customers.Flags().StringVar(&domainPrefix, "domain", "", "only domains starting with this")

	customer := &cobra.Command{
		Use:   "customer <tenant-id>",
		Short: "Show one customer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pc, err := client(cmd)
			if err != nil {
				return err
			}
			c, err := pc.Customer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(stdout, c)
			}
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "Tenant id\t%s\n", c.ID)
			fmt.Fprintf(w, "Company\t%s\n", c.CompanyProfile.CompanyName)
			fmt.Fprintf(w, "Domain\t%s\n", c.CompanyProfile.Domain)
			fmt.Fprintf(w, "Relationship\t%s\n", c.RelationshipToPartner)
			if c.AllowDelegatedAccess != nil {
				fmt.Fprintf(w, "Delegated access\t%t\n", *c.AllowDelegatedAccess)
			}
			if b := c.BillingProfile; b != nil {
				fmt.Fprintf(w, "Billing contact\t%s %s <%s>\n", b.FirstName, b.LastName, b.Email)
				if b.DefaultAddress != nil {
					fmt.Fprintf(w, "Country\t%s\n", b.DefaultAddress.Country)
				}
				fmt.Fprintf(w, "Language\t%s\n", b.Language)
			}
			return w.Flush()
		},
	}

	subscriptions := &cobra.Command{
		Use:   "subscriptions <tenant-id>",
		Short: "List a customer's subscriptions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pc, err := client(cmd)
			if err != nil {
				return err
			}
			subs, err := pc.Subscriptions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(stdout, map[string]any{"subscriptions": subs})
			}
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "SUBSCRIPTION ID\tOFFER\tSEATS\tSTATUS\tTERM\tBILLING\tPARENT")
			for _, s := range subs {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, name(s), s.Quantity, s.Status, s.TermDuration, s.BillingCycle, s.ParentSubscriptionID)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d subscription(s)\n", len(subs))
			return nil
		},
	}

	subscription := &cobra.Command{
		Use:   "subscription <tenant-id> <subscription-id>",
		Short: "Show one subscription, with the seats that may still be removed and until when",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pc, err := client(cmd)
			if err != nil {
				return err
			}
			s, err := pc.Subscription(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(stdout, s)
			}
			now := time.Now()
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "Subscription\t%s\n", s.ID)
			fmt.Fprintf(w, "Offer\t%s (%s)\n", name(s), s.OfferID)
			fmt.Fprintf(w, "Seats\t%d\n", s.Quantity)
			fmt.Fprintf(w, "Status\t%s\n", s.Status)
			fmt.Fprintf(w, "Term, billing\t%s, %s\n", s.TermDuration, s.BillingCycle)
			fmt.Fprintf(w, "Auto-renew\t%t\n", s.AutoRenewEnabled)
			if s.ParentSubscriptionID != "" {
				fmt.Fprintf(w, "Add-on of\t%s\n", s.ParentSubscriptionID)
			}
			if s.CommitmentEndDate != nil {
				fmt.Fprintf(w, "Term ends\t%s\n", s.CommitmentEndDate.Format(time.DateOnly))
			}
			fmt.Fprintf(w, "Seats removable now\t%d\n", s.Refundable(now))
			if s.RefundableQuantity != nil {
				for _, d := range s.RefundableQuantity.Details {
					fmt.Fprintf(w, "  \t%d until %s\n", d.Quantity, d.AllowedUntil.UTC().Format(time.RFC3339))
				}
			}
			if s.CancellationAllowedUntilDate != nil {
				fmt.Fprintf(w, "Cancellable until\t%s\n", s.CancellationAllowedUntilDate.UTC().Format(time.RFC3339))
			} else {
				fmt.Fprintf(w, "Cancellable until\tnot cancellable\n")
			}
			if s.Attributes.ETag != "" {
				fmt.Fprintf(w, "ETag\t%s\n", s.Attributes.ETag)
			}
			return w.Flush()
		},
	}

	agreements := &cobra.Command{
		Use:   "agreements <tenant-id>",
		Short: "Show whether a customer has accepted the Microsoft Customer Agreement, and how",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pc, err := client(cmd)
			if err != nil {
				return err
			}
			list, err := pc.Agreements(cmd.Context(), args[0], partnercenter.MicrosoftCustomerAgreement)
			if err != nil {
				return err
			}
			signed, err := pc.DirectSignedStatus(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(stdout, map[string]any{"agreements": list, "directSigned": signed})
			}
			accepted := signed || len(list) > 0
			fmt.Fprintf(stdout, "Microsoft Customer Agreement accepted: %s\n", yesNo(accepted))
			fmt.Fprintf(stdout, "Accepted directly in the Microsoft 365 admin center: %s\n", yesNo(signed))
			if len(list) == 0 {
				fmt.Fprintln(stdout, "No agreements recorded by a partner.")
				return nil
			}
			w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "DATE AGREED\tSIGNATORY\tEMAIL\tTEMPLATE")
			for _, a := range list {
				fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\n", a.DateAgreed.UTC().Format(time.RFC3339), a.PrimaryContact.FirstName, a.PrimaryContact.LastName, a.PrimaryContact.Email, a.TemplateID)
			}
			return w.Flush()
		},
	}
	for _, sub := range []*cobra.Command{customers, customer, subscriptions, subscription, agreements} {
		cmd.AddCommand(withSettings(sub, connector.NeedPartnerCenter))
	}
	return cmd
}

func printCustomers(seq iter.Seq2[partnercenter.Customer, error], output string, stdout io.Writer) error {
	n := 0
	if output == "json" {
		// Streamed as it pages: a list of thousands is never held in memory.
		fmt.Fprint(stdout, `{"customers":[`)
		for c, err := range seq {
			if err != nil {
				return err
			}
			if n > 0 {
				fmt.Fprint(stdout, ",")
			}
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			stdout.Write(b)
			n++
		}
		fmt.Fprintln(stdout, "]}")
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT ID\tCOMPANY\tDOMAIN\tRELATIONSHIP")
	for c, err := range seq {
		if err != nil {
			w.Flush()
			return err
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.ID, c.CompanyProfile.CompanyName, c.CompanyProfile.Domain, c.RelationshipToPartner)
		if n++; n%100 == 0 {
			w.Flush() // show progress on long lists
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d customer(s)\n", n)
	return nil
}

func name(s partnercenter.Subscription) string {
	if s.FriendlyName != "" {
		return s.FriendlyName
	}
	if s.OfferName != "" {
		return s.OfferName
	}
	return s.OfferID
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
