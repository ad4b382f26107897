package connector

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// AzureCredential is the azidentity credential DATAVERSE_AUTH selects (nil for none). Dataverse and
// Service Bus (SERVICEBUS_NAMESPACE) share it.
func AzureCredential(cfg Config) (azcore.TokenCredential, error) {
	var cred azcore.TokenCredential
	var err error
	switch cfg.DataverseAuth {
	case AuthNone:
		return nil, nil
	case AuthManagedIdentity:
		cred, err = azidentity.NewManagedIdentityCredential(nil)
	default:
		cred, err = azidentity.NewDefaultAzureCredential(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("azure credential (%s): %w", cfg.DataverseAuth, err)
	}
	return cred, nil
}

// NewDataverseClient builds the Dataverse client the configuration describes. hc may be nil.
func NewDataverseClient(cfg Config, log *slog.Logger, hc *http.Client) (*dataverse.Client, error) {
	if cfg.DataverseURL == "" {
		return nil, &ConfigError{Problems: []string{"DATAVERSE_URL is required"}}
	}
	cred, err := AzureCredential(cfg)
	if err != nil {
		return nil, err
	}
	return dataverse.NewClient(cfg.DataverseURL, cred, &dataverse.ClientOptions{
		HTTPClient:     hc,
		Logger:         log.With("component", "dataverse"),
		MaxConcurrency: cfg.DataverseMaxConcurrency,
		BatchSize:      cfg.DataverseBatchSize,
		// The budget: zero requests in the configuration switches pacing off (negative in the client).
		BudgetRequests:      cmp.Or(cfg.DataverseBudgetRequests, -1),
		BudgetExecutionTime: cfg.DataverseBudgetExecution,
		BulkReserve:         cmp.Or(cfg.DataverseBulkReserve, -1),
		Tables:              schema.Schema().Tables,
	})
}

// NewPartnerCenterClient builds the Partner Center client the configuration describes: app-only tokens
// from the app's client secret (or azidentity's chain without one), app+user tokens from the refresh token
// file when one is configured. hc may be nil.
func NewPartnerCenterClient(cfg Config, log *slog.Logger, hc *http.Client) (*partnercenter.Client, error) {
	var creds partnercenter.Credentials
	if cfg.PartnerCenterAuth != AuthNone {
		tokenURL := cfg.PartnerCenterTokenURL
		if tokenURL == "" {
			tokenURL = partnercenter.TokenURL(cfg.PartnerCenterTenantID)
		}
		var err error
		switch {
		case cfg.PartnerCenterTokenURL != "" && cfg.PartnerCenterClientSecret != "":
			// A non-Microsoft token endpoint (a simulator): azidentity only speaks to Entra authorities.
			creds.AppOnly, err = partnercenter.NewClientSecretCredential(tokenURL, cfg.PartnerCenterClientID, cfg.PartnerCenterClientSecret, hc)
		case cfg.PartnerCenterClientSecret != "":
			creds.AppOnly, err = azidentity.NewClientSecretCredential(cfg.PartnerCenterTenantID, cfg.PartnerCenterClientID, cfg.PartnerCenterClientSecret, nil)
		default:
			creds.AppOnly, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{TenantID: cfg.PartnerCenterTenantID})
		}
		if err != nil {
			return nil, fmt.Errorf("partner center app-only credential: %w", err)
		}
		if cfg.PartnerCenterRefreshTokenFile != "" {
			store := partnercenter.FileTokenStore{Path: cfg.PartnerCenterRefreshTokenFile}
			if creds.AppUser, err = partnercenter.NewRefreshTokenCredential(tokenURL, cfg.PartnerCenterClientID, cfg.PartnerCenterClientSecret, store, hc); err != nil {
				return nil, fmt.Errorf("partner center app+user credential: %w", err)
			}
		}
	}
	return partnercenter.NewClient(cfg.PartnerCenterEndpoint, creds, &partnercenter.ClientOptions{HTTPClient: hc, Logger: log.With("component", "partnercenter")})
}

// NewServiceBusClient connects to the namespace the configuration names: with the connection string when
// one is set, else with cred (the same azidentity credential as Dataverse). opts may be nil.
func NewServiceBusClient(cfg Config, cred azcore.TokenCredential, opts *azservicebus.ClientOptions) (*azservicebus.Client, error) {
	switch {
	case cfg.ServiceBusConnectionString != "":
		return azservicebus.NewClientFromConnectionString(cfg.ServiceBusConnectionString, opts)
	case cfg.ServiceBusNamespace != "":
		if cred == nil {
			return nil, errors.New("service bus: SERVICEBUS_NAMESPACE needs an Azure credential (DATAVERSE_AUTH default or managed-identity)")
		}
		return azservicebus.NewClient(cfg.ServiceBusNamespace, cred, opts)
	default:
		return nil, errors.New("service bus: neither SERVICEBUS_NAMESPACE nor SERVICEBUS_CONNECTION_STRING is set")
	}
}
