package connector

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/cspconnector/csp-connector/dataverse"
)

// NewDataverseClient builds the Dataverse client the configuration describes. hc may be nil.
func NewDataverseClient(cfg Config, log *slog.Logger, hc *http.Client) (*dataverse.Client, error) {
	if cfg.DataverseURL == "" {
		return nil, &ConfigError{Problems: []string{"DATAVERSE_URL is required"}}
	}
	var cred azcore.TokenCredential
	var err error
	switch cfg.DataverseAuth {
	case AuthNone:
	case AuthManagedIdentity:
		cred, err = azidentity.NewManagedIdentityCredential(nil)
	default:
		cred, err = azidentity.NewDefaultAzureCredential(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("dataverse credential (%s): %w", cfg.DataverseAuth, err)
	}
	return dataverse.NewClient(cfg.DataverseURL, cred, &dataverse.ClientOptions{
		HTTPClient:     hc,
		Logger:         log.With("component", "dataverse"),
		MaxConcurrency: cfg.DataverseMaxConcurrency,
		BatchSize:      cfg.DataverseBatchSize,
	})
}
