package main

import (
	"context"
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
	cmd := &cobra.Command{
		Use:   "pc",
		Short: "Read customers, subscriptions and agreements from Partner Center (read-only); consent to its app+user calls",
	}
	p := &pcReads{getenv: getenv, stdout: stdout, stderr: stderr}
	addOutputFlag(cmd.PersistentFlags(), &p.output)
	for _, sub := range []*cobra.Command{p.customersCommand(), p.customerCommand(), p.subscriptionsCommand(), p.subscriptionCommand(), p.agreementsCommand()} {
		cmd.AddCommand(withSettings(sub, connector.NeedPartnerCenter))
	}
	cmd.AddCommand(consentCommand(getenv, stdout, stderr))
	return cmd
}

// pcReads is what the pc commands share: the environment, where they print, and the --output of pc.
type pcReads struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	output         outputFormat
}

// client builds the Partner Center client from the settings cmd needs, its waits said on stderr.
func (p *pcReads) client(cmd *cobra.Command) (*partnercenter.Client, error) {
	cfg, log, err := loadConfig(cmd, p.getenv, p.stderr)
	if err != nil {
		return nil, err
	}
	return connector.NewPartnerCenterClient(cfg, log, reportWaits("Partner Center", nil, p.stderr))
}

// pcRead is what every pc command but customers does: read one thing from Partner Center, then print it
// as JSON or as text.
func pcRead[T any](p *pcReads, cmd *cobra.Command, read func(context.Context, *partnercenter.Client) (T, error), print func(io.Writer, T) error) error {
	pc, err := p.client(cmd)
	if err != nil {
		return err
	}
	v, err := read(cmd.Context(), pc)
	if err != nil {
		return err
	}
	if p.output == outputJSON {
		return writeJSON(p.stdout, v)
	}
	return print(p.stdout, v)
}

func (p *pcReads) customersCommand() *cobra.Command {
	var namePrefix, domainPrefix string
	cmd := &cobra.Command{
		Use:   "customers",
		Short: "List the partner's customers (streamed page by page)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := &partnercenter.ListCustomersOptions{}
			switch {
			case namePrefix != "" && domainPrefix != "":
				return errors.New("use --name or --domain, not both: Partner Center filters on one field")
			case namePrefix != "":
				opts.Filter = &partnercenter.CustomerFilter{Field: partnercenter.FilterCompanyName, Value: namePrefix}
			case domainPrefix != "":
				opts.Filter = &partnercenter.CustomerFilter{Field: partnercenter.FilterDomain, Value: domainPrefix}
			}
			pc, err := p.client(cmd)
			if err != nil {
				return err
			}
			return printCustomers(pc.Customers(cmd.Context(), opts), p.output, p.stdout)
		},
	}
	cmd.Flags().StringVar(&namePrefix, "name", "", "only company names starting with this")
	cmd.Flags().StringVar(&domainPrefix, "domain", "", "only domains starting with this")
	return cmd
}

func (p *pcReads) customerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "customer <tenant-id>",
		Short: "Show one customer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return pcRead(p, cmd, func(ctx context.Context, pc *partnercenter.Client) (partnercenter.Customer, error) {
				return pc.Customer(ctx, args[0])
			}, printCustomer)
		},
	}
}

func (p *pcReads) subscriptionsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "subscriptions <tenant-id>",
		Short: "List a customer's subscriptions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return pcRead(p, cmd, func(ctx context.Context, pc *partnercenter.Client) (subscriptionList, error) {
				subs, err := pc.Subscriptions(ctx, args[0])
				return subscriptionList{subs}, err
			}, printSubscriptions)
		},
	}
}

func (p *pcReads) subscriptionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "subscription <tenant-id> <subscription-id>",
		Short: "Show one subscription, with the seats that may still be removed and until when",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return pcRead(p, cmd, func(ctx context.Context, pc *partnercenter.Client) (partnercenter.Subscription, error) {
				return pc.Subscription(ctx, args[0], args[1])
			}, func(w io.Writer, s partnercenter.Subscription) error { return printSubscription(w, s, time.Now()) })
		},
	}
}

func (p *pcReads) agreementsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "agreements <tenant-id>",
		Short: "Show whether a customer has accepted the Microsoft Customer Agreement, and how",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return pcRead(p, cmd, func(ctx context.Context, pc *partnercenter.Client) (mcaAcceptance, error) {
				list, err := pc.Agreements(ctx, args[0], partnercenter.MicrosoftCustomerAgreement)
				if err != nil {
					return mcaAcceptance{}, err
				}
				signed, err := pc.DirectSignedStatus(ctx, args[0])
				return mcaAcceptance{Agreements: list, DirectSigned: signed}, err
			}, printAcceptance)
		},
	}
}

// subscriptionList is a customer's subscriptions as connector pc subscriptions prints them.
type subscriptionList struct {
	Subscriptions []partnercenter.Subscription `json:"subscriptions"`
}

// mcaAcceptance is how a customer accepted the Microsoft Customer Agreement, as connector pc agreements
// prints it: the agreements a partner recorded, and the direct-sign status from the admin center.
type mcaAcceptance struct {
	Agreements   []partnercenter.Agreement `json:"agreements"`
	DirectSigned bool                      `json:"directSigned"`
}

func printCustomer(stdout io.Writer, c partnercenter.Customer) error {
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
}

func printSubscriptions(stdout io.Writer, l subscriptionList) error {
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SUBSCRIPTION ID\tOFFER\tSEATS\tSTATUS\tTERM\tBILLING\tPARENT")
	for _, s := range l.Subscriptions {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, name(s), s.Quantity, s.Status, s.TermDuration, s.BillingCycle, s.ParentSubscriptionID)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "%d subscription(s)\n", len(l.Subscriptions))
	return err
}

// printSubscription shows one subscription, with the seats removable at now.
func printSubscription(stdout io.Writer, s partnercenter.Subscription, now time.Time) error {
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
}

func printAcceptance(stdout io.Writer, a mcaAcceptance) error {
	fmt.Fprintf(stdout, "Microsoft Customer Agreement accepted: %s\n", yesNo(a.DirectSigned || len(a.Agreements) > 0))
	fmt.Fprintf(stdout, "Accepted directly in the Microsoft 365 admin center: %s\n", yesNo(a.DirectSigned))
	if len(a.Agreements) == 0 {
		_, err := fmt.Fprintln(stdout, "No agreements recorded by a partner.")
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DATE AGREED\tSIGNATORY\tEMAIL\tTEMPLATE")
	for _, g := range a.Agreements {
		fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\n", g.DateAgreed.UTC().Format(time.RFC3339), g.PrimaryContact.FirstName, g.PrimaryContact.LastName, g.PrimaryContact.Email, g.TemplateID)
	}
	return w.Flush()
}

func printCustomers(seq iter.Seq2[partnercenter.Customer, error], output outputFormat, stdout io.Writer) error {
	n := 0
	if output == outputJSON {
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
