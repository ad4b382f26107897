package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func agreementsCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "agreements", Short: "Check and create Microsoft Customer Agreement rows"}
	check := &cobra.Command{
		Use:   "check",
		Short: "Run the Attestation Check now: move every agreement waiting on the customer by what Partner Center says",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := provisioningService(getenv, stderr, "text")
			if err != nil {
				return err
			}
			var res connector.RunResult
			err = svc.Work(cmd.Context(), func(ctx context.Context) error {
				var err error
				res, err = svc.Jobs.RunNow(ctx, connector.AttestationCheckJob, schema.TriggerRunNow)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %s in %s. %s\n", res.Job, connector.RunStatusWord(res.Status), res.Ended.Sub(res.Started).Round(time.Millisecond), res.Counts.Summary)
			return res.Err
		},
	}
	var template string
	create := &cobra.Command{
		Use:   "create --template <id>",
		Short: "Create a Pending agreement of a template for every mapped provider account of its provider that has none",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := parseRowID("agreement template", template)
			if err != nil {
				return err
			}
			svc, err := provisioningService(getenv, stderr, "text")
			if err != nil {
				return err
			}
			created, existing, err := svc.Agreements.CreateForTemplate(cmd.Context(), id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d Pending agreement(s) created; %d mapped provider account(s) had one already.\n", created, existing)
			return nil
		},
	}
	create.Flags().StringVar(&template, "template", "", "the agreement template's id (required)")
	_ = create.MarkFlagRequired("template")
	cmd.AddCommand(check, create)
	return cmd
}

func printAgreementDiagnosis(w io.Writer, d connector.AgreementDiagnosis) {
	fmt.Fprintf(w, "Agreement %s  %s\n", d.ID, d.Name)
	fmt.Fprintf(w, "  Customer            %s (tenant %s)\n", orDash(d.Customer), orDash(d.TenantID))
	fmt.Fprintf(w, "  Status              %s; attestation %s; path %s\n", d.Status, orDash(d.AttestationStatus), orDash(d.AcceptancePath))
	if d.AttestationID != "" {
		fmt.Fprintf(w, "  Attestation         %s, link expires %s\n", d.AttestationID, stampPtr(d.LinkExpiresOn))
	}
	fmt.Fprintf(w, "  Date agreed         %s (when the customer accepted, as Partner Center reports it)\n", stampPtr(d.DateAgreed))
	fmt.Fprintf(w, "  Verified on         %s (when the connector confirmed it)\n", stampPtr(d.VerifiedOn))
	if d.Message != "" {
		fmt.Fprintf(w, "  Message             %s\n", d.Message)
	}
	fmt.Fprintf(w, "\nPartner Center now:\n")
	switch pc := d.PartnerCenter; {
	case pc.Attestation != nil:
		fmt.Fprintf(w, "  Attestation         %s (expires %s)\n", pc.Attestation.Status, stamp(pc.Attestation.ExpiresAt))
	case pc.AttestationError != "":
		fmt.Fprintf(w, "  Attestation         could not be read: %s\n", pc.AttestationError)
	}
	if d.PartnerCenter.AgreementsError != "" {
		fmt.Fprintf(w, "  MCA agreements      could not be read: %s\n", d.PartnerCenter.AgreementsError)
	} else {
		fmt.Fprintf(w, "  MCA agreements      %d\n", len(d.PartnerCenter.Agreements))
		for _, a := range d.PartnerCenter.Agreements {
			fmt.Fprintf(w, "    %s %s <%s> on %s\n", a.PrimaryContact.FirstName, a.PrimaryContact.LastName, a.PrimaryContact.Email, stamp(a.DateAgreed))
		}
	}
	switch {
	case d.PartnerCenter.DirectSignError != "":
		fmt.Fprintf(w, "  Admin center        could not be read: %s\n", d.PartnerCenter.DirectSignError)
	case d.PartnerCenter.DirectSigned != nil:
		fmt.Fprintf(w, "  Admin center        accepted directly: %t\n", *d.PartnerCenter.DirectSigned)
	}
	if d.Path != "" {
		fmt.Fprintf(w, "  Accepted through    %s\n", d.Path)
	}
	fmt.Fprintf(w, "\nNext: %s\n", d.Next)
}

func stampPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}
