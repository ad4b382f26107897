package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

func agreementsCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "agreements", Short: "Check and create Microsoft Customer Agreement rows, and list the templates"}
	check := &cobra.Command{
		Use:   "check",
		Short: "Run the Attestation Check now: move every agreement waiting on the customer by what Partner Center says",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := commandService(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			res, err := runJob(cmd.Context(), svc, agreements.AttestationCheckJob)
			if err != nil {
				return err
			}
			return printRun(stdout, outputText, res)
		},
	}
	var template string
	create := &cobra.Command{
		Use:   "create --template <name or id>",
		Short: "Create a Pending agreement of a template for every mapped provider account of its provider that has none",
		Long: `Create a Pending agreement of a template for every mapped provider account of its provider that has
none. --template names the template by its name, by Microsoft's template id (its Template ID column), or
by its row id; connector agreements templates lists them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := commandService(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			id, err := resolveTemplate(cmd.Context(), svc.DV, template)
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
	create.Flags().StringVar(&template, "template", "", "the agreement template: its name, Microsoft's template id, or its row id (required)")
	_ = create.MarkFlagRequired("template")
	var output outputFormat
	templates := &cobra.Command{
		Use:   "templates",
		Short: "List the agreement templates: name, Microsoft's template id, type, whether active, row id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, dv, err := commandDataverse(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			list, err := readTemplates(cmd.Context(), dv)
			if err != nil {
				return err
			}
			views := make([]templateView, 0, len(list))
			for _, t := range list {
				views = append(views, templateView{ID: t.ID.String(), Name: t.Name, TemplateID: t.TemplateID,
					Type: schema.OptionLabel(schema.TableAgreementTemplate, "csp_agreementtype", int(t.AgreementType)), Active: t.State == schema.StateActive})
			}
			if output == outputJSON {
				return writeJSON(stdout, map[string]any{"templates": views})
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTEMPLATE ID\tTYPE\tACTIVE\tROW ID")
			for _, v := range views {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, orDash(v.TemplateID), orDash(v.Type), yesNo(v.Active), v.ID)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d template(s)\n", len(views))
			return nil
		},
	}
	addOutputFlag(templates.Flags(), &output)
	cmd.AddCommand(withSettings(check, provisioningSettings()...), withSettings(create, provisioningSettings()...), withSettings(templates, connector.NeedDataverse))
	return cmd
}

// templateView is one agreement template as connector agreements templates prints it.
type templateView struct {
	Name       string `json:"name"`
	TemplateID string `json:"templateId"` // Microsoft's
	Type       string `json:"type"`
	Active     bool   `json:"active"`
	ID         string `json:"id"` // the row's
}

// readTemplates reads every agreement template, by name (there are a handful).
func readTemplates(ctx context.Context, dv *dataverse.Client) ([]schema.AgreementTemplate, error) {
	var out []schema.AgreementTemplate
	for raw, err := range dv.List(ctx, schema.SetAgreementTemplates, &dataverse.Query{Select: dataverse.Columns[schema.AgreementTemplate](), OrderBy: []string{"csp_name"}}) {
		if err != nil {
			return nil, err
		}
		var t schema.AgreementTemplate
		if err := dataverse.Unmarshal(raw, &t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// resolveTemplate finds the template a person named: by its row id, else by its name or Microsoft's
// template id; when several share them, the only active one.
func resolveTemplate(ctx context.Context, dv *dataverse.Client, arg string) (dataverse.GUID, error) {
	arg = strings.TrimSpace(arg)
	list, err := readTemplates(ctx, dv)
	if err != nil {
		return dataverse.GUID{}, err
	}
	var matches, active []schema.AgreementTemplate
	for _, t := range list {
		if strings.EqualFold(t.ID.String(), arg) {
			return t.ID, nil
		}
		if strings.EqualFold(t.Name, arg) || t.TemplateID != "" && strings.EqualFold(t.TemplateID, arg) {
			matches = append(matches, t)
			if t.State == schema.StateActive {
				active = append(active, t)
			}
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0].ID, nil
	case len(active) == 1:
		return active[0].ID, nil
	case len(matches) == 0:
		return dataverse.GUID{}, fmt.Errorf("no agreement template is named %q or has it as its template id or row id; connector agreements templates lists them", arg)
	}
	ids := make([]string, 0, len(matches))
	for _, t := range matches {
		ids = append(ids, t.ID.String())
	}
	return dataverse.GUID{}, fmt.Errorf("%d agreement templates match %q: give the row id of one (%s)", len(matches), arg, strings.Join(ids, ", "))
}
