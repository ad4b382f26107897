package provisioning

import (
	"context"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// Retry sets a failed license change back to Awaiting Provisioning, as a person does on the form, so that
// its next run provisions it again. l is the row as read: if it has changed since, the write is refused
// (a conflict) rather than undo someone else's change. A change that has not failed is left as it is.
func (p *Provisioner) Retry(ctx context.Context, l schema.LicenseChangeLog) error {
	if l.ProvisioningStatus != schema.ProvisioningFailed {
		return nil
	}
	_, err := p.dv.Update(ctx, schema.SetLicenseChangeLogs, l.ID, dataverse.Row{"csp_provisioningstatus": int(schema.ProvisioningAwaiting)}, &dataverse.UpdateOptions{IfMatch: l.ETag})
	return err
}
