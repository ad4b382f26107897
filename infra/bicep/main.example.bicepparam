// Example parameters: copy to main.bicepparam, replace every value marked REPLACE, then
//   az deployment group create -g <resource-group> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
using 'main.bicep'

param namePrefix = 'contoso-csp' // REPLACE
param image = 'contosoacr.azurecr.io/csp-connector:1.0.0' // REPLACE: built from infra/Dockerfile
param containerRegistryResourceId = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/contoso-shared/providers/Microsoft.ContainerRegistry/registries/contosoacr' // REPLACE, or '' for a public image
param dataverseUrl = 'https://contoso.crm.dynamics.com' // REPLACE
param partnerCenterTenantId = '00000000-0000-0000-0000-000000000000' // REPLACE
param partnerCenterClientId = '00000000-0000-0000-0000-000000000000' // REPLACE

// The client secret from Key Vault (preferred) ...
param partnerCenterClientSecretUri = 'https://contoso-kv.vault.azure.net/secrets/partnercenter-client-secret' // REPLACE
param keyVaultResourceId = '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/contoso-secrets/providers/Microsoft.KeyVault/vaults/contoso-kv' // REPLACE
// ... or as a value read from the environment at deployment time (never commit it):
// param partnerCenterClientSecret = readEnvironmentVariable('PARTNERCENTER_CLIENT_SECRET')

// Only for webhook intake instead of Service Bus:
// param webhookKey = readEnvironmentVariable('CONNECTOR_WEBHOOK_KEY')

// The HTTP API (/api/v1), which the Power Automate custom connector calls (infra/powerplatform/README.md).
// With Microsoft Entra ID: the API app registration's tenant and its client id and/or App ID URI ...
// param apiTenantId = '00000000-0000-0000-0000-000000000000' // REPLACE
// param apiAudiences = ['00000000-0000-0000-0000-000000000000', 'api://csp-connector'] // REPLACE
// ... and/or API keys: a Key Vault secret holding the `connector api hash-key` entries, comma-separated.
// param apiKeysSecretUri = 'https://contoso-kv.vault.azure.net/secrets/connector-api-keys' // REPLACE

// In-app notifications: the systemuser ids of the people who get them (infra/README.md, "Who gets notified").
// param notifyUserIds = ['00000000-0000-0000-0000-000000000000'] // REPLACE
