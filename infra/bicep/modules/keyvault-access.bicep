// Lets the connector's managed identity read secrets from an existing Key Vault that uses the Azure RBAC
// permission model. Deployed at the vault's resource group (main.bicep sets the scope).

@description('Name of the existing Key Vault.')
param keyVaultName string

@description('Principal (object) id of the connector\'s managed identity.')
param principalId string

// "Key Vault Secrets User": read secret contents (getSecret, readMetadata). Built-in role id from
// learn.microsoft.com/azure/role-based-access-control/built-in-roles/security.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
