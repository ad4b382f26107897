// Log Analytics, the Container Apps environment and the connector's container app: `connector run` with
// its managed identity, external HTTPS ingress on port 8080 (the webhook and the HTTP API), health probes
// and metrics on port 9090 (not behind the ingress), and a KEDA azure-servicebus scale rule on the
// Dataverse event queue.

param location string
param tags object = {}

param logAnalyticsName string
param environmentName string

@maxLength(32)
param appName string

@description('Container image (built from infra/Dockerfile).')
param image string

@description('Registry server to pull the image from with the managed identity (e.g. contosoacr.azurecr.io); empty for a public image.')
param registryServer string = ''

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client (application) id of the user-assigned managed identity; selects it for azidentity (AZURE_CLIENT_ID).')
param identityClientId string

param dataverseUrl string
param partnerCenterTenantId string
param partnerCenterClientId string

@description('Key Vault secret URI of the Partner Center client secret; wins over partnerCenterClientSecret.')
param partnerCenterClientSecretUri string = ''

@secure()
param partnerCenterClientSecret string = ''

@description('Key Vault secret URI of a secure application model refresh token to seed PARTNERCENTER_REFRESH_TOKEN_FILE with; empty to run without one.')
param partnerCenterRefreshTokenSecretUri string = ''

@description('Image of the init container that copies the refresh token into a writable volume (it needs /bin/sh and cp).')
param seedImage string

@secure()
param webhookKey string = ''
param webhookHeader string = ''

param serviceBusNamespaceName string
param serviceBusNamespaceFqdn string
param serviceBusQueueName string

@description('Topic to publish notifications on (SERVICEBUS_NOTIFY_TOPIC); empty: off.')
param notifyTopicName string = ''

@description('systemuser ids of the people who get in-app notifications (CONNECTOR_NOTIFY_USERS).')
param notifyUserIds array = []

@description('Hosts of the partner\'s own that webhook callbacks may reach although internal (CONNECTOR_WEBHOOK_ALLOW_HOSTS): names, IP addresses or CIDR prefixes.')
param webhookAllowHosts array = []

@description('Entra ID tenant whose tokens the HTTP API accepts (CONNECTOR_API_TENANT_ID); empty: no Entra ID sign-in.')
param apiTenantId string = ''

@description('Audiences the API\'s tokens may carry (CONNECTOR_API_AUDIENCES).')
param apiAudiences array = []

@description('Entra ID authority of the API\'s tokens (CONNECTOR_API_AUTHORITY).')
param apiAuthority string

@description('Key Vault secret URI of the API key list (CONNECTOR_API_KEYS); wins over apiKeys.')
param apiKeysSecretUri string = ''

@secure()
param apiKeys string = ''

@description('Requests a minute each API caller may make (CONNECTOR_API_RATE).')
param apiRate int

param workers int
param logLevel string
param minReplicas int
param maxReplicas int
param queueMessageCount int

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource managedEnvironment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

var hasClientSecret = !empty(partnerCenterClientSecretUri) || !empty(partnerCenterClientSecret)
var hasRefreshToken = !empty(partnerCenterRefreshTokenSecretUri)
var hasAPIKeys = !empty(apiKeysSecretUri) || !empty(apiKeys)
var stateDir = '/var/lib/connector'
// The webhook and the HTTP API listen on httpPort, behind the ingress; health probes and metrics on
// healthPort, which the ingress does not route to (CONNECTOR_HEALTH_ADDR).
var httpPort = 8080
var healthPort = 9090

// Container Apps secrets: Key Vault references are resolved with the managed identity; plain values come
// from @secure() parameters and never appear in outputs.
var secrets = concat(
  !empty(partnerCenterClientSecretUri)
    ? [
        {
          name: 'partnercenter-client-secret'
          keyVaultUrl: partnerCenterClientSecretUri
          identity: identityId
        }
      ]
    : [],
  empty(partnerCenterClientSecretUri) && !empty(partnerCenterClientSecret)
    ? [
        {
          name: 'partnercenter-client-secret'
          value: partnerCenterClientSecret
        }
      ]
    : [],
  !empty(webhookKey)
    ? [
        {
          name: 'connector-webhook-key'
          value: webhookKey
        }
      ]
    : [],
  hasRefreshToken
    ? [
        {
          name: 'partnercenter-refresh-token'
          keyVaultUrl: partnerCenterRefreshTokenSecretUri
          identity: identityId
        }
      ]
    : [],
  !empty(apiKeysSecretUri)
    ? [
        {
          name: 'connector-api-keys'
          keyVaultUrl: apiKeysSecretUri
          identity: identityId
        }
      ]
    : [],
  empty(apiKeysSecretUri) && !empty(apiKeys)
    ? [
        {
          name: 'connector-api-keys'
          value: apiKeys
        }
      ]
    : []
)

// The environment variables the connector reads (README "Configuration").
var env = concat(
  [
    {
      name: 'DATAVERSE_URL'
      value: dataverseUrl
    }
    {
      // The host's managed identity; AZURE_CLIENT_ID picks the user-assigned one.
      name: 'DATAVERSE_AUTH'
      value: 'managed-identity'
    }
    {
      name: 'AZURE_CLIENT_ID'
      value: identityClientId
    }
    {
      name: 'PARTNERCENTER_TENANT_ID'
      value: partnerCenterTenantId
    }
    {
      name: 'PARTNERCENTER_CLIENT_ID'
      value: partnerCenterClientId
    }
    {
      // FQDN: the connector authenticates to Service Bus with the same azidentity credential.
      name: 'SERVICEBUS_NAMESPACE'
      value: serviceBusNamespaceFqdn
    }
    {
      name: 'SERVICEBUS_QUEUE'
      value: serviceBusQueueName
    }
    {
      name: 'CONNECTOR_HTTP_ADDR'
      value: ':${httpPort}'
    }
    {
      name: 'CONNECTOR_HEALTH_ADDR'
      value: ':${healthPort}'
    }
    {
      // The app's own ingress FQDN is <app>.<environment default domain>.
      name: 'CONNECTOR_PUBLIC_URL'
      value: 'https://${appName}.${managedEnvironment.properties.defaultDomain}'
    }
    {
      name: 'CONNECTOR_WORKERS'
      value: string(workers)
    }
    {
      // terminationGracePeriodSeconds below (45) leaves room for this drain.
      name: 'CONNECTOR_SHUTDOWN_TIMEOUT'
      value: '30s'
    }
    {
      name: 'CONNECTOR_LOG_LEVEL'
      value: logLevel
    }
    {
      name: 'CONNECTOR_API_AUTHORITY'
      value: apiAuthority
    }
    {
      name: 'CONNECTOR_API_RATE'
      value: string(apiRate)
    }
  ],
  // The HTTP API (the Power Automate custom connector's) is on when Entra ID or API keys are configured.
  !empty(apiTenantId)
    ? [
        {
          name: 'CONNECTOR_API_TENANT_ID'
          value: apiTenantId
        }
      ]
    : [],
  !empty(apiAudiences)
    ? [
        {
          name: 'CONNECTOR_API_AUDIENCES'
          value: join(apiAudiences, ',')
        }
      ]
    : [],
  hasAPIKeys
    ? [
        {
          name: 'CONNECTOR_API_KEYS'
          secretRef: 'connector-api-keys'
        }
      ]
    : [],
  !empty(webhookAllowHosts)
    ? [
        {
          name: 'CONNECTOR_WEBHOOK_ALLOW_HOSTS'
          value: join(webhookAllowHosts, ',')
        }
      ]
    : [],
  !empty(notifyUserIds)
    ? [
        {
          name: 'CONNECTOR_NOTIFY_USERS'
          value: join(notifyUserIds, ',')
        }
      ]
    : [],
  !empty(notifyTopicName)
    ? [
        {
          name: 'SERVICEBUS_NOTIFY_TOPIC'
          value: notifyTopicName
        }
      ]
    : [],
  hasClientSecret
    ? [
        {
          name: 'PARTNERCENTER_CLIENT_SECRET'
          secretRef: 'partnercenter-client-secret'
        }
      ]
    : [],
  !empty(webhookKey)
    ? [
        {
          name: 'CONNECTOR_WEBHOOK_KEY'
          secretRef: 'connector-webhook-key'
        }
      ]
    : [],
  !empty(webhookHeader)
    ? [
        {
          name: 'CONNECTOR_WEBHOOK_HEADER'
          value: webhookHeader
        }
      ]
    : [],
  hasRefreshToken
    ? [
        {
          name: 'PARTNERCENTER_REFRESH_TOKEN_FILE'
          value: '${stateDir}/refresh-token'
        }
      ]
    : []
)

// The refresh token file is rewritten on every exchange (write to a temporary file, then rename), so it
// must live in a writable directory: an EmptyDir volume, seeded from the Key Vault secret by an init
// container. EmptyDir is per replica and lost on restart; each new replica starts from the seed.
var volumes = hasRefreshToken
  ? [
      {
        name: 'refresh-token-seed'
        storageType: 'Secret'
        secrets: [
          {
            secretRef: 'partnercenter-refresh-token'
            path: 'refresh-token'
          }
        ]
      }
      {
        name: 'state'
        storageType: 'EmptyDir'
      }
    ]
  : []

var initContainers = hasRefreshToken
  ? [
      {
        name: 'seed-refresh-token'
        image: seedImage
        command: [
          '/bin/sh'
          '-c'
        ]
        args: [
          'cp /seed/refresh-token ${stateDir}/refresh-token && chown -R 65532:65532 ${stateDir} && chmod 700 ${stateDir} && chmod 600 ${stateDir}/refresh-token'
        ]
        resources: {
          cpu: json('0.25')
          memory: '0.5Gi'
        }
        volumeMounts: [
          {
            volumeName: 'refresh-token-seed'
            mountPath: '/seed'
          }
          {
            volumeName: 'state'
            mountPath: stateDir
          }
        ]
      }
    ]
  : []

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: appName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: managedEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        // Public: Dataverse posts to /webhooks/dataverse and Power Automate calls the API (/api/v1).
        // /healthz, /readyz and /metrics are on healthPort, which the ingress does not reach.
        external: true
        targetPort: httpPort
        transport: 'auto'
        allowInsecure: false
      }
      registries: empty(registryServer)
        ? []
        : [
            {
              server: registryServer
              identity: identityId
            }
          ]
      secrets: secrets
    }
    template: {
      terminationGracePeriodSeconds: 45
      initContainers: initContainers
      containers: [
        {
          name: 'connector'
          image: image
          args: [
            'run'
          ]
          env: env
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: healthPort
              }
              initialDelaySeconds: 5
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: healthPort
              }
              initialDelaySeconds: 2
              periodSeconds: 5
              failureThreshold: 3
            }
          ]
          volumeMounts: hasRefreshToken
            ? [
                {
                  volumeName: 'state'
                  mountPath: stateDir
                }
              ]
            : []
        }
      ]
      volumes: volumes
      scale: {
        // At least one replica always: the scheduled jobs (sync, sweeps, attestation checks) and the
        // webhook endpoint live in the service, and an empty queue must not stop them.
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'dataverse-events-queue'
            custom: {
              type: 'azure-servicebus'
              // Managed identity instead of a connection string (custom rules accept `identity` from
              // Microsoft.App API version 2024-02-02-preview; this template uses 2025-01-01).
              identity: identityId
              metadata: {
                // KEDA wants the namespace name here, not the FQDN.
                namespace: serviceBusNamespaceName
                queueName: serviceBusQueueName
                messageCount: string(queueMessageCount)
              }
            }
          }
        ]
      }
    }
  }
}

output fqdn string = app.properties.configuration.ingress.fqdn
output name string = app.name
