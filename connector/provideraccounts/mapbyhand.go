package provideraccounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/mapping"
)

// Reasons MapByHand refuses a mapping; nothing was written.
var (
	ErrInactive  = errors.New("provideraccounts: the provider account is inactive")
	ErrNoAccount = errors.New("provideraccounts: there is no such account")
)

// MapByHand maps a provider account to an account as a person does in the form: it becomes Mapped, with a
// message saying by whom (by reads "through the API by Alice"), and gets its Pending agreements at once
// (the gate drops the event of the connector's own write). A row already mapped to that account is not
// written again. It returns the row as it then stands. Refusals: ErrInactive (its customer left the
// provider), ErrNoAccount; a missing provider account is Dataverse's not-found error.
func (p *Workflow) MapByHand(ctx context.Context, id, account dataverse.GUID, by string) (schema.ProviderAccount, error) {
	pa, err := p.read(ctx, id)
	if err != nil {
		return pa, err
	}
	if pa.State != schema.StateActive {
		return pa, ErrInactive
	}
	if _, err := p.dv.Get(ctx, schema.SetAccounts, account, &dataverse.GetOptions{Select: []string{"accountid"}}); dataverse.IsNotFound(err) {
		return pa, ErrNoAccount
	} else if err != nil {
		return pa, err
	}
	if pa.Account.ID != account || pa.MappingStatus != schema.MappingMapped {
		_, err := p.dv.Update(ctx, schema.SetProviderAccounts, id, dataverse.Row{
			"csp_account@odata.bind": dataverse.Bind(schema.SetAccounts, account), "csp_mappingstatus": schema.MappingMapped,
			"csp_mappingmessage": schema.Fit(schema.TableProviderAccount, "csp_mappingmessage", fmt.Sprintf("Mapped %s on %s.", by, mapping.FormatTime(p.now()))),
		}, &dataverse.UpdateOptions{IfMatch: pa.ETag})
		if err != nil {
			return pa, err
		}
	}
	if err := p.Handle(ctx, work.Batch{Key: work.Key{Table: schema.TableProviderAccount, ID: id}}); err != nil {
		return pa, err
	}
	return p.read(ctx, id)
}

// read reads one provider account.
func (p *Workflow) read(ctx context.Context, id dataverse.GUID) (schema.ProviderAccount, error) {
	var pa schema.ProviderAccount
	raw, err := p.dv.Get(ctx, schema.SetProviderAccounts, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.ProviderAccount]()})
	if err != nil {
		return pa, err
	}
	return pa, dataverse.Unmarshal(raw, &pa)
}
