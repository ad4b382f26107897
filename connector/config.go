// Package connector is the CSP Connector runtime: configuration, the sandbox that runs the product on its
// simulators, and (as they land) intake, work queue, workflows, jobs and the HTTP API.
package connector

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Auth modes for DATAVERSE_AUTH.
const (
	AuthDefault         = "default"          // azidentity's default credential chain
	AuthManagedIdentity = "managed-identity" // the host's managed identity (AZURE_CLIENT_ID picks a user-assigned one)
	AuthNone            = "none"             // no token: only for a simulator on a loopback address
)

// Setting describes one environment variable: the README's configuration table is this list.
type Setting struct {
	Name    string
	Default string
	Help    string
}

// Settings lists every environment variable the connector reads.
func Settings() []Setting {
	return []Setting{
		{"DATAVERSE_URL", "", "Dataverse environment URL, e.g. https://contoso.crm.dynamics.com (required by commands that talk to Dataverse)"},
		{"DATAVERSE_AUTH", AuthDefault, "How to get Dataverse tokens: default (azidentity chain: environment, workload identity, managed identity, Azure CLI), managed-identity, or none (loopback simulators only)"},
		{"DATAVERSE_MAX_CONCURRENCY", strconv.Itoa(dataverse.DefaultMaxConcurrency), "Dataverse requests in flight per replica (service protection allows 52 per user and server); lowered further by the server's x-ms-dop-hint"},
		{"DATAVERSE_BATCH_SIZE", strconv.Itoa(dataverse.DefaultBatchSize), "Operations per $batch for bulk writes (1–1000)"},
		{"CONNECTOR_LOG_LEVEL", "info", "Log level: debug, info, warn, error (JSON logs on stderr)"},
	}
}

// Config is the connector's configuration, read once from the environment.
type Config struct {
	DataverseURL            string
	DataverseAuth           string
	DataverseMaxConcurrency int
	DataverseBatchSize      int
	LogLevel                slog.Level
}

// LoadConfig reads the configuration through getenv and validates it, reporting every problem at once.
// required names the variables the command about to run cannot do without.
func LoadConfig(getenv func(string) string, required ...string) (Config, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	for _, name := range required {
		if get(name, "") == "" {
			bad("%s is required", name)
		}
	}
	c := Config{
		DataverseURL:  strings.TrimRight(get("DATAVERSE_URL", ""), "/"),
		DataverseAuth: strings.ToLower(get("DATAVERSE_AUTH", AuthDefault)),
	}
	if c.DataverseURL != "" {
		u, err := url.Parse(c.DataverseURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			bad("DATAVERSE_URL %q is not an absolute URL such as https://contoso.crm.dynamics.com", c.DataverseURL)
		case u.Scheme == "http" && !IsLoopback(u.Hostname()):
			bad("DATAVERSE_URL must use https (plain http is accepted only for a loopback simulator)")
		case u.User != nil:
			bad("DATAVERSE_URL must not contain credentials")
		case u.Path != "" && u.Path != "/":
			bad("DATAVERSE_URL is the environment URL without a path (drop %q)", u.Path)
		}
	}
	switch c.DataverseAuth {
	case AuthDefault, AuthManagedIdentity:
	case AuthNone:
		if u, err := url.Parse(c.DataverseURL); c.DataverseURL != "" && (err != nil || !IsLoopback(u.Hostname())) {
			bad("DATAVERSE_AUTH=none is accepted only when DATAVERSE_URL is a loopback address (a local simulator); use default or managed-identity for %s", c.DataverseURL)
		}
	default:
		bad("DATAVERSE_AUTH %q is not one of %s, %s, %s", c.DataverseAuth, AuthDefault, AuthManagedIdentity, AuthNone)
	}
	c.DataverseMaxConcurrency = intSetting(get, "DATAVERSE_MAX_CONCURRENCY", dataverse.DefaultMaxConcurrency, 1, 52, bad)
	c.DataverseBatchSize = intSetting(get, "DATAVERSE_BATCH_SIZE", dataverse.DefaultBatchSize, 1, dataverse.MaxBatchOperations, bad)
	if err := c.LogLevel.UnmarshalText([]byte(get("CONNECTOR_LOG_LEVEL", "info"))); err != nil {
		bad("CONNECTOR_LOG_LEVEL %q is not one of debug, info, warn, error", get("CONNECTOR_LOG_LEVEL", ""))
	}
	if len(problems) > 0 {
		return Config{}, &ConfigError{Problems: problems}
	}
	return c, nil
}

func intSetting(get func(string, string) string, name string, def, lo, hi int, bad func(string, ...any)) int {
	raw := get(name, "")
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		bad("%s %q must be a whole number from %d to %d", name, raw, lo, hi)
		return def
	}
	return n
}

// ConfigError lists every configuration problem found.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "configuration: " + strings.Join(e.Problems, "; ")
}

// IsConfigError reports a configuration problem (as opposed to a runtime failure).
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// LogValue keeps the configuration loggable: it holds no secrets today, and fields that will hold them
// (connection strings, API keys) must be added here redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("dataverse_url", c.DataverseURL),
		slog.String("dataverse_auth", c.DataverseAuth),
		slog.Int("dataverse_max_concurrency", c.DataverseMaxConcurrency),
		slog.Int("dataverse_batch_size", c.DataverseBatchSize),
		slog.String("log_level", c.LogLevel.String()),
	)
}

// IsLoopback reports a host name or address that stays on this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
