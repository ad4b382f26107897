package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// TestSyncProviderAccountsCommand: `connector sync provider-accounts` runs the sync job against the sandbox
// (the sandbox's own service is not running): the new customer gets its row, mapped by its domain, with its
// Pending agreement, the run is in the job's history, and a second run changes nothing.
func TestSyncProviderAccountsCommand(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	ctx := t.Context()
	account, err := ps.sb.DataverseClient.Create(ctx, schema.SetAccounts, dataverse.Row{"name": "Wide World Importers", "websiteurl": "https://wideworldimporters.com"})
	require.NoError(t, err)
	tenant := uuid.NewString()
	require.NoError(t, ps.sb.PartnerCenter.AddCustomer(partnercentertest.Customer{TenantID: tenant, CompanyName: "Wide World Importers", Domain: "wideworldimporters.com"}))

	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"sync", "provider-accounts"}, ps.env, nil, &out, io.Discard))
	t.Log(out.String())
	assert.Contains(t, out.String(), "Provider Account Sync: succeeded")
	assert.Contains(t, out.String(), "8 customers seen: 6 created, 2 updated")
	// Litware (two accounts fit) and Adventure Works (none does) are left to a person.
	assert.Contains(t, out.String(), "2 need a person (2 newly)")

	raw, err := ps.sb.DataverseClient.GetByKey(ctx, schema.SetProviderAccounts, dataverse.Key{dataverse.LookupValue("csp_provider"): ps.provider, "csp_tenantid": tenant},
		&dataverse.GetOptions{Select: dataverse.Columns[schema.ProviderAccount]()})
	require.NoError(t, err)
	var pa schema.ProviderAccount
	require.NoError(t, dataverse.Unmarshal(raw, &pa))
	assert.Equal(t, schema.MappingAutoMapped, pa.MappingStatus, pa.MappingMessage)
	assert.Equal(t, account, pa.Account.ID)
	n := 0
	for _, err := range ps.sb.DataverseClient.List(ctx, schema.SetAgreements, &dataverse.Query{Select: []string{"csp_agreementid"}, Filter: dataverse.LookupEq("csp_provideraccount", pa.ID)}) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 1, n, "the mapped row has its Pending agreement")

	out.Reset()
	require.NoError(t, run(ctx, []string{"sync", "provider-accounts"}, ps.env, nil, &out, io.Discard))
	assert.Contains(t, out.String(), "8 customers seen: 0 created, 0 updated, 8 unchanged")
	assert.Contains(t, out.String(), "2 need a person (0 newly)", "the rows still need a person, though none newly")
}
