// CSP Connector on Azure Container Apps, with its Service Bus namespace and managed identity.
//
//   az deployment group create -g <resource-group> -f infra/bicep/main.bicep -p infra/bicep/main.example.bicepparam
//
// See infra/README.md for the order of steps, including what to do in Dataverse afterwards.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Prefix of every resource name: lowercase letters, digits and hyphens, starting with a letter. The Service Bus namespace gets a hash of the resource group appended, since its name is global.')
@minLength(3)
@maxLength(20)
param namePrefix string

@description('Connector container image built from infra/Dockerfile, e.g. myregistry.azurecr.io/csp-connector:1.0.0.')
param image string

@description('Resource id of the Azure Container Registry holding the image. The managed identity is granted AcrPull on it and pulls with it. Empty for a public image.')
param containerRegistryResourceId string = ''

@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com')
param dataverseUrl string

@description('The partner\'s Microsoft Entra tenant id (PARTNERCENTER_TENANT_ID).')
param partnerCenterTenantId string

@description('Application (client) id of the app registered in Partner Center (PARTNERCENTER_CLIENT_ID).')
param partnerCenterClientId string

@description('Key Vault secret URI of the Partner Center app\'s client secret, e.g. https://contoso-kv.vault.azure.net/secrets/partnercenter-client-secret (no version: the latest is used). Preferred over partnerCenterClientSecret.')
param partnerCenterClientSecretUri string = ''

@description('The Partner Center app\'s client secret as a value, if it is not in Key Vault. Ignored when partnerCenterClientSecretUri is set.')
@secure()
param partnerCenterClientSecret string = ''

@description('Resource id of the Key Vault holding the secrets referenced above (Azure RBAC permission model). When set, the managed identity is granted Key Vault Secrets User on it. Leave empty if you grant access yourself or use no Key Vault.')
param keyVaultResourceId string = ''

@description('Optional Key Vault secret URI of a secure application model refresh token (PARTNERCENTER_REFRESH_TOKEN_FILE is then seeded from it). Needs a client secret too.')
param partnerCenterRefreshTokenSecretUri string = ''

@description('Image of the small init container that copies the refresh token into a writable volume; used only with partnerCenterRefreshTokenSecretUri.')
param seedImage string = 'docker.io/library/busybox:1.36'

@description('Key Dataverse must present on webhook posts (CONNECTOR_WEBHOOK_KEY, at least 16 characters). Setting it turns the webhook intake on; leave empty to use Service Bus only.')
@secure()
param webhookKey string = ''

@description('Header that carries the webhook key (CONNECTOR_WEBHOOK_HEADER, Dataverse auth type HttpHeader); empty: Dataverse sends it as ?code= (auth type WebhookKey).')
param webhookHeader string = ''

@description('Microsoft Entra tenant whose access tokens the HTTP API accepts (CONNECTOR_API_TENANT_ID): the API at /api/v1 that the Power Automate custom connector (infra/powerplatform) calls. Set with apiAudiences. With neither this nor API keys the API is off.')
param apiTenantId string = ''

@description('Audiences the API\'s access tokens may carry (CONNECTOR_API_AUDIENCES): the API app registration\'s client id and/or its App ID URI, e.g. [\'00000000-0000-0000-0000-000000000000\', \'api://csp-connector\'].')
param apiAudiences array = []

@description('Entra ID authority the API\'s tokens come from (CONNECTOR_API_AUTHORITY); by default this cloud\'s sign-in endpoint.')
param apiAuthority string = environment().authentication.loginEndpoint

@description('Key Vault secret URI of the API key list (CONNECTOR_API_KEYS: comma-separated name=role[+role]=sha256:<hex> entries, each printed by `connector api hash-key`), e.g. https://contoso-kv.vault.azure.net/secrets/connector-api-keys. Preferred over apiKeys. Setting either turns the API on.')
param apiKeysSecretUri string = ''

@description('The API key list (CONNECTOR_API_KEYS) as a value, if it is not in Key Vault. Ignored when apiKeysSecretUri is set.')
@secure()
param apiKeys string = ''

@description('Requests a minute each API caller may make (CONNECTOR_API_RATE, 10-100000); more are answered 429.')
@minValue(10)
@maxValue(100000)
param apiRate int = 600

@description('systemuser ids (GUIDs) of the people who get in-app notifications (CONNECTOR_NOTIFY_USERS): changes a Manual provider needs, the weekly license change report. infra/README.md says how to find them. Empty: no in-app notifications.')
param notifyUserIds array = []

@description('Hosts of your own (names, IP addresses or CIDR prefixes) that webhook subscriptions may call although they are internal (CONNECTOR_WEBHOOK_ALLOW_HOSTS). Empty: callbacks must be https to public addresses, as Power Automate\'s are.')
param webhookAllowHosts array = []

@description('Publish notifications on the Service Bus topic this template creates (SERVICEBUS_NOTIFY_TOPIC), for flows and services that subscribe to it.')
param publishNotificationsToTopic bool = true

@description('Rows reconciled in parallel per replica (CONNECTOR_WORKERS, 1-64).')
@minValue(1)
@maxValue(64)
param workers int = 8

@allowed([
  'debug'
  'info'
  'warn'
  'error'
])
param logLevel string = 'info'

@description('Replicas that always run. Keep at least 1: the job runner and the webhook endpoint live in the service.')
@minValue(1)
param minReplicas int = 1

@minValue(1)
param maxReplicas int = 10

@description('Active messages per replica the queue scale rule aims for.')
@minValue(1)
param queueMessageCount int = 20

@description('Also grant Azure Service Bus Data Owner to the identity, for the case where the scale rule cannot read the queue length with Data Receiver + Data Sender (infra/README.md).')
param grantServiceBusDataOwner bool = false

param tags object = {
  application: 'csp-connector'
}

var serviceBusNamespaceName = '${namePrefix}-sb-${uniqueString(resourceGroup().id)}'
var appName = '${namePrefix}-connector'

// Dummy ids keep the splits below well defined when no Key Vault or registry is given (the modules that
// use them are then skipped).
var keyVaultIdParts = split(
  empty(keyVaultResourceId)
    ? '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroup().name}/providers/Microsoft.KeyVault/vaults/none'
    : keyVaultResourceId,
  '/'
)
var registryIdParts = split(
  empty(containerRegistryResourceId)
    ? '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroup().name}/providers/Microsoft.ContainerRegistry/registries/none'
    : containerRegistryResourceId,
  '/'
)
// <name>.azurecr.io in the public cloud.
var registryServer = empty(containerRegistryResourceId) ? '' : '${last(registryIdParts)}${environment().suffixes.acrLoginServer}'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-connector-id'
  location: location
  tags: tags
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'csp-connector-servicebus'
  params: {
    location: location
    namespaceName: serviceBusNamespaceName
    principalId: identity.properties.principalId
    grantDataOwner: grantServiceBusDataOwner
    tags: tags
  }
}

module keyVaultAccess 'modules/keyvault-access.bicep' = if (!empty(keyVaultResourceId)) {
  name: 'csp-connector-keyvault-access'
  scope: resourceGroup(keyVaultIdParts[2], keyVaultIdParts[4])
  params: {
    keyVaultName: last(keyVaultIdParts)
    principalId: identity.properties.principalId
  }
}

module registryAccess 'modules/registry-access.bicep' = if (!empty(containerRegistryResourceId)) {
  name: 'csp-connector-registry-access'
  scope: resourceGroup(registryIdParts[2], registryIdParts[4])
  params: {
    registryName: last(registryIdParts)
    principalId: identity.properties.principalId
  }
}

module app 'modules/containerapp.bicep' = {
  name: 'csp-connector-app'
  // The role assignments first: the app's first revision pulls the image, resolves Key Vault references
  // and starts receiving at once.
  dependsOn: [
    keyVaultAccess
    registryAccess
  ]
  params: {
    location: location
    tags: tags
    logAnalyticsName: '${namePrefix}-logs'
    environmentName: '${namePrefix}-env'
    appName: appName
    image: image
    registryServer: registryServer
    identityId: identity.id
    identityClientId: identity.properties.clientId
    dataverseUrl: dataverseUrl
    partnerCenterTenantId: partnerCenterTenantId
    partnerCenterClientId: partnerCenterClientId
    partnerCenterClientSecretUri: partnerCenterClientSecretUri
    partnerCenterClientSecret: partnerCenterClientSecret
    partnerCenterRefreshTokenSecretUri: partnerCenterRefreshTokenSecretUri
    seedImage: seedImage
    webhookKey: webhookKey
    webhookHeader: webhookHeader
    apiTenantId: apiTenantId
    apiAudiences: apiAudiences
    apiAuthority: apiAuthority
    apiKeysSecretUri: apiKeysSecretUri
    apiKeys: apiKeys
    apiRate: apiRate
    notifyUserIds: notifyUserIds
    webhookAllowHosts: webhookAllowHosts
    notifyTopicName: publishNotificationsToTopic ? serviceBus.outputs.topicName : ''
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    serviceBusNamespaceFqdn: serviceBus.outputs.namespaceFqdn
    serviceBusQueueName: serviceBus.outputs.queueName
    workers: workers
    logLevel: logLevel
    minReplicas: minReplicas
    maxReplicas: maxReplicas
    queueMessageCount: queueMessageCount
  }
}

@description('SERVICEBUS_NAMESPACE for the connector and for `connector dataverse install`.')
output serviceBusNamespaceFqdn string = serviceBus.outputs.namespaceFqdn

@description('Namespace name, for `az servicebus ... --namespace-name`.')
output serviceBusNamespaceName string = serviceBus.outputs.namespaceName

@description('SERVICEBUS_QUEUE.')
output serviceBusQueueName string = serviceBus.outputs.queueName

@description('Name of the queue\'s Send-only rule for Dataverse. Its key is not an output: read it with `az servicebus queue authorization-rule keys list`.')
output dataverseSendRuleName string = serviceBus.outputs.sendRuleName

@description('Topic the connector publishes its notifications on (SERVICEBUS_NOTIFY_TOPIC, unless publishNotificationsToTopic is false), and its catch-all subscription.')
output notificationsTopicName string = serviceBus.outputs.topicName
output notificationsSubscriptionName string = serviceBus.outputs.topicSubscriptionName

@description('The connector\'s public host name: CONNECTOR_PUBLIC_URL is https://<this>.')
output containerAppFqdn string = app.outputs.fqdn

@description('Client (application) id of the managed identity: the Application ID of the Dataverse application user.')
output identityClientId string = identity.properties.clientId

@description('Object id of the managed identity, for further role assignments.')
output identityPrincipalId string = identity.properties.principalId
