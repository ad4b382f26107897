// Lets the connector's managed identity pull images from an existing Azure Container Registry, so the
// container app's first revision can start. Deployed at the registry's resource group (main.bicep sets
// the scope).

@description('Name of the existing container registry.')
param registryName string

@description('Principal (object) id of the connector\'s managed identity.')
param principalId string

// "AcrPull": pull images. Built-in role id from
// learn.microsoft.com/azure/role-based-access-control/built-in-roles/containers.
var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
