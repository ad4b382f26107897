package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// PartnerCenterProviderName is the name Setup gives the Microsoft Partner Center provider row.
const PartnerCenterProviderName = "Microsoft Partner Center"

// MCATemplateName is the name Setup gives the Microsoft Customer Agreement template row.
const MCATemplateName = "Microsoft Customer Agreement"

// SetupOptions says what Setup creates.
type SetupOptions struct {
	// PartnerModel of the provider row it creates (direct bill, indirect provider or indirect reseller);
	// zero: the provider row must exist already.
	PartnerModel schema.PartnerModel
	// AutoMatch of the provider row it creates: map provider accounts to accounts automatically.
	AutoMatch bool
	// DryRun reads only: the report says what would be created.
	DryRun bool
}

// SetupStep is one row Setup looked after.
type SetupStep struct {
	Table  string         `json:"table"`
	Name   string         `json:"name"`
	ID     dataverse.GUID `json:"id,omitzero"`
	Action string         `json:"action"` // "created", "would create", "exists"
	Detail string         `json:"detail,omitempty"`
}

// SetupReport is what Setup did, row by row, in order.
type SetupReport struct {
	DryRun bool        `json:"dryRun"`
	Steps  []SetupStep `json:"steps"`
}

// Changed reports whether Setup created anything (or would have, in a dry run).
func (r SetupReport) Changed() bool {
	for _, s := range r.Steps {
		if s.Action != "exists" {
			return true
		}
	}
	return false
}

// ErrSetupNeedsPartnerModel: the provider row must be created and no partner model was given.
var ErrSetupNeedsPartnerModel = errors.New("the Microsoft Partner Center provider row does not exist yet: say how you buy from Microsoft with --partner-model direct-bill, indirect-provider or indirect-reseller")

// Setup creates what the connector needs in Dataverse beyond its tables, once: the Microsoft Partner
// Center provider row (type Automatic) and its Microsoft Customer Agreement template, whose template id is
// read from Partner Center's agreement metadata (an app+user call) rather than copied by hand. A row that
// exists already is left as it is, so running it again changes nothing. An MCA template of the provider
// whose template id is not the one Partner Center lists is reported, not changed: its agreements were made
// against it.
func Setup(ctx context.Context, dv *dataverse.Client, pc *partnercenter.Client, opts SetupOptions) (SetupReport, error) {
	rep := SetupReport{DryRun: opts.DryRun}
	provider, found, err := findPartnerCenterProvider(ctx, dv)
	if err != nil {
		return rep, err
	}
	if found {
		rep.Steps = append(rep.Steps, SetupStep{Table: schema.TableProvider, Name: provider.Name, ID: provider.ID, Action: "exists",
			Detail: "type Automatic; left as it is"})
	} else if opts.PartnerModel == 0 {
		return rep, ErrSetupNeedsPartnerModel
	}

	// The template id comes from Partner Center, never from a document: read it before writing anything, so
	// a missing sign-in stops setup with nothing half made.
	meta, err := pc.AgreementMetadata(ctx, partnercenter.MicrosoftCustomerAgreement)
	if err != nil {
		return rep, fmt.Errorf("reading Partner Center's Microsoft Customer Agreement metadata: %w", err)
	}
	var mca partnercenter.AgreementMetadata
	for _, m := range meta {
		if strings.EqualFold(m.AgreementType, partnercenter.MicrosoftCustomerAgreement) && m.TemplateID != "" && (mca.TemplateID == "" || m.VersionRank > mca.VersionRank) {
			mca = m
		}
	}
	if mca.TemplateID == "" {
		return rep, errors.New("Partner Center lists no Microsoft Customer Agreement template (its agreement metadata is empty): the template cannot be created")
	}

	if !found {
		provider = schema.Provider{Name: PartnerCenterProviderName, Type: schema.ProviderAutomatic, PartnerModel: opts.PartnerModel,
			AutoMatch: opts.AutoMatch, ConnectivityStatus: schema.ConnectivityNotVerified}
		step := SetupStep{Table: schema.TableProvider, Name: provider.Name, Action: "would create", Detail: "type Automatic, " + partnerModelName(opts.PartnerModel)}
		if !opts.DryRun {
			if provider.ID, err = setupCreate(ctx, dv, schema.SetProviders, provider); err != nil {
				return rep, fmt.Errorf("creating the %s provider row: %w", provider.Name, err)
			}
			step.ID, step.Action = provider.ID, "created"
		}
		rep.Steps = append(rep.Steps, step)
	}

	var templates []schema.AgreementTemplate
	if provider.ID != (dataverse.GUID{}) {
		q := &dataverse.Query{Select: dataverse.Columns[schema.AgreementTemplate](),
			Filter: dataverse.And(dataverse.LookupEq("csp_provider", provider.ID), dataverse.Eq("csp_agreementtype", schema.AgreementMicrosoftCustomerAgreement))}
		for raw, err := range dv.List(ctx, schema.SetAgreementTemplates, q) {
			if err != nil {
				return rep, err
			}
			var t schema.AgreementTemplate
			if err := dataverse.Unmarshal(raw, &t); err != nil {
				return rep, err
			}
			templates = append(templates, t)
		}
	}
	for _, t := range templates {
		if strings.EqualFold(t.TemplateID, mca.TemplateID) {
			rep.Steps = append(rep.Steps, SetupStep{Table: schema.TableAgreementTemplate, Name: t.Name, ID: t.ID, Action: "exists",
				Detail: "template id " + t.TemplateID + ", as Partner Center lists it"})
			return rep, nil
		}
	}
	step := SetupStep{Table: schema.TableAgreementTemplate, Name: MCATemplateName, Action: "would create",
		Detail: "template id " + mca.TemplateID + " from Partner Center's agreement metadata"}
	for _, t := range templates {
		step.Detail += fmt.Sprintf("; the provider's template %q has template id %s, which Partner Center no longer lists: deactivate it when its agreements are done", t.Name, t.TemplateID)
	}
	if !opts.DryRun {
		id, err := setupCreate(ctx, dv, schema.SetAgreementTemplates, schema.AgreementTemplate{Name: MCATemplateName, TemplateID: mca.TemplateID,
			AgreementType: schema.AgreementMicrosoftCustomerAgreement, Provider: dataverse.Ref{ID: provider.ID}, AgreementLink: mca.AgreementLink})
		if err != nil {
			return rep, fmt.Errorf("creating the %s template row: %w", MCATemplateName, err)
		}
		step.ID, step.Action = id, "created"
	}
	rep.Steps = append(rep.Steps, step)
	return rep, nil
}

// findPartnerCenterProvider finds the Automatic provider row: the one named Microsoft Partner Center, or
// the only Automatic one.
func findPartnerCenterProvider(ctx context.Context, dv *dataverse.Client) (schema.Provider, bool, error) {
	var automatic []schema.Provider
	q := &dataverse.Query{Select: dataverse.Columns[schema.Provider](), Filter: dataverse.Eq("csp_type", schema.ProviderAutomatic)}
	for raw, err := range dv.List(ctx, schema.SetProviders, q) {
		if err != nil {
			return schema.Provider{}, false, err
		}
		var p schema.Provider
		if err := dataverse.Unmarshal(raw, &p); err != nil {
			return schema.Provider{}, false, err
		}
		if strings.EqualFold(strings.TrimSpace(p.Name), PartnerCenterProviderName) {
			return p, true, nil
		}
		automatic = append(automatic, p)
	}
	switch len(automatic) {
	case 0:
		return schema.Provider{}, false, nil
	case 1:
		return automatic[0], true, nil
	}
	names := make([]string, len(automatic))
	for i, p := range automatic {
		names[i] = fmt.Sprintf("%q", p.Name)
	}
	return schema.Provider{}, false, fmt.Errorf("there are %d Automatic provider rows (%s) and none is named %q: name the Partner Center one so, and run setup again",
		len(automatic), strings.Join(names, ", "), PartnerCenterProviderName)
}

func setupCreate(ctx context.Context, dv *dataverse.Client, set string, row any) (dataverse.GUID, error) {
	body, err := dataverse.Marshal(row)
	if err != nil {
		return dataverse.GUID{}, err
	}
	return dv.Create(ctx, set, body)
}

// ParsePartnerModel reads a partner model as a flag gives it: direct-bill, indirect-provider or
// indirect-reseller.
func ParsePartnerModel(s string) (schema.PartnerModel, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "direct-bill", "direct":
		return schema.PartnerDirectBill, nil
	case "indirect-provider":
		return schema.PartnerIndirectProvider, nil
	case "indirect-reseller":
		return schema.PartnerIndirectReseller, nil
	}
	return 0, fmt.Errorf("partner model %q is not one of direct-bill, indirect-provider, indirect-reseller", s)
}

func partnerModelName(m schema.PartnerModel) string {
	switch m {
	case schema.PartnerDirectBill:
		return "partner model Direct bill"
	case schema.PartnerIndirectProvider:
		return "partner model Indirect provider"
	case schema.PartnerIndirectReseller:
		return "partner model Indirect reseller"
	}
	return "partner model unknown"
}
