// Service Bus for the connector: the queue Dataverse posts change events to, the send-only rule
// Dataverse's service endpoint authenticates with, the notifications topic, and the connector identity's
// data-plane roles on the namespace.

@description('Azure region.')
param location string

@description('Namespace name (globally unique, 6-50 characters).')
param namespaceName string

@description('Queue Dataverse posts change events to (the connector reads SERVICEBUS_QUEUE, default dataverse-events).')
param queueName string = 'dataverse-events'

@description('Queue authorization rule with Send rights only, for the Dataverse Service Bus service endpoint.')
param sendRuleName string = 'dataverse-send'

@description('Topic for notifications about provider accounts the connector could not map.')
param topicName string = 'connector-notifications'

@description('Subscription on the notifications topic that receives every message.')
param topicSubscriptionName string = 'all'

@description('Principal (object) id of the connector\'s managed identity.')
param principalId string

@description('Also grant Azure Service Bus Data Owner. Only if the Container Apps scale rule cannot read the queue length with Receiver + Sender (see infra/README.md).')
param grantDataOwner bool = false

param tags object = {}

// Built-in role definition ids, as listed in "Azure built-in roles for Integration"
// (learn.microsoft.com/azure/role-based-access-control/built-in-roles/integration; source file
// articles/role-based-access-control/built-in-roles/integration.md in MicrosoftDocs/azure-docs).
var roleIds = {
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0' // Azure Service Bus Data Receiver: */receive/action
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39' // Azure Service Bus Data Sender: */send/action
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419' // Azure Service Bus Data Owner: Microsoft.ServiceBus/*
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  // Standard: topics and subscriptions need it (Basic has queues only).
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    minimumTlsVersion: '1.2'
    // Shared access keys stay enabled: Dataverse's Service Bus service endpoint authenticates with a SAS
    // key (the dataverse-send rule below). The connector itself uses its managed identity.
    disableLocalAuth: false
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: queueName
  properties: {
    // A message that fails 10 times goes to the dead-letter queue (`connector inspect` decodes it).
    maxDeliveryCount: 10
    // The connector renews locks while it works; one minute bounds how long a crashed replica's
    // messages stay invisible.
    lockDuration: 'PT1M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
    // Events are wake-ups and handlers are level-triggered (DESIGN §2), so duplicates are harmless.
    requiresDuplicateDetection: false
    requiresSession: false
  }
}

// Send only: Dataverse needs no more than Send on the queue (reference/dataverse.md §9.1), and this key
// can neither read nor delete messages.
resource sendRule 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2024-01-01' = {
  parent: queue
  name: sendRuleName
  properties: {
    rights: [
      'Send'
    ]
  }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: topicName
  properties: {
    defaultMessageTimeToLive: 'P14D'
    requiresDuplicateDetection: false
  }
}

resource topicSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = {
  parent: topic
  name: topicSubscriptionName
  properties: {
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P14D'
  }
}

// Namespace scope, so the roles cover the queue, the topic and its subscription.
resource receiverRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, principalId, roleIds.serviceBusDataReceiver)
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource senderRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, principalId, roleIds.serviceBusDataSender)
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource ownerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantDataOwner) {
  name: guid(namespace.id, principalId, roleIds.serviceBusDataOwner)
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output namespaceName string = namespace.name
// serviceBusEndpoint is https://<name>.servicebus.windows.net:443/ (or the sovereign cloud's suffix).
output namespaceFqdn string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
output queueName string = queue.name
output sendRuleName string = sendRule.name
output topicName string = topic.name
output topicSubscriptionName string = topicSubscription.name
