package connector

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/intake"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/partnercenter"
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
		{"DATAVERSE_BATCH_SIZE", strconv.Itoa(dataverse.DefaultBatchSize), "Rows per bulk message (CreateMultiple, UpdateMultiple) or $batch for bulk writes (1–1000)"},
		{"DATAVERSE_BUDGET_REQUESTS", strconv.Itoa(dataverse.DefaultBudgetRequests), "Requests per 300 seconds the replica paces itself within (Dataverse's service protection allows 6000 per user and web server; replicas sharing one application user should share it); 0 switches pacing off, leaving the server's 429s to pace it"},
		{"DATAVERSE_BUDGET_EXECUTION_SECONDS", strconv.Itoa(int(dataverse.DefaultBudgetExecutionTime.Seconds())), "Combined execution time per 300 seconds, in seconds, the replica paces itself within, measured as each request's elapsed time (Dataverse allows 1200 per user and web server)"},
		{"DATAVERSE_BULK_RESERVE", strconv.Itoa(dataverse.DefaultBulkReserve), "Percent of that budget and of the requests in flight that jobs (syncs, checks, sweeps) leave to interactive work (events, API calls, buttons), 0–90"},
		{"PARTNERCENTER_ENDPOINT", partnercenter.DefaultEndpoint, "Partner Center API endpoint (paths under /v1)"},
		{"PARTNERCENTER_AUTH", AuthDefault, "default (the app registration below; app-only tokens from its secret, or azidentity's chain without one), or none (loopback simulators only)"},
		{"PARTNERCENTER_TENANT_ID", "", "The partner's Microsoft Entra tenant id (required by commands that call Partner Center, unless PARTNERCENTER_AUTH=none)"},
		{"PARTNERCENTER_CLIENT_ID", "", "Application (client) id of the app registered in Partner Center (required with PARTNERCENTER_TENANT_ID)"},
		{"PARTNERCENTER_CLIENT_SECRET", "", "The app's client secret (a secret: never logged). Needed for app+user calls; for app-only calls azidentity's chain is used without it"},
		{"PARTNERCENTER_REFRESH_TOKEN_FILE", "", "File holding the secure application model refresh token of a partner Admin or Sales agent; rewritten on every exchange. Without it, agreement reads, legacy attestation, direct-sign status and the reseller link are unavailable"},
		{"PARTNERCENTER_TOKEN_URL", "", "Token endpoint override (default https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token); http only on loopback"},
		{"SERVICEBUS_NAMESPACE", "", "Service Bus namespace the Dataverse events arrive on, e.g. contoso-csp.servicebus.windows.net (authenticated like Dataverse, through DATAVERSE_AUTH's credential; the identity needs Azure Service Bus Data Receiver)"},
		{"SERVICEBUS_CONNECTION_STRING", "", "Alternative to SERVICEBUS_NAMESPACE: a connection string with Listen rights (a secret: never logged)"},
		{"SERVICEBUS_QUEUE", DefaultQueue, "Queue the Dataverse service endpoint posts to"},
		{"SERVICEBUS_SEND_CONNECTION_STRING", "", "Used only by `connector dataverse install`: the connection string of a Send-only rule on the queue, which Dataverse's service endpoint posts with (a secret: never logged)"},
		{"CONNECTOR_HTTP_ADDR", ":8080", "Address of the HTTP server: /webhooks/dataverse, /healthz, /readyz, /metrics"},
		{"CONNECTOR_WEBHOOK_KEY", "", "Key a Dataverse webhook must present (as ?code= or in CONNECTOR_WEBHOOK_HEADER); without it the webhook intake is off (a secret: never logged)"},
		{"CONNECTOR_WEBHOOK_HEADER", "", "Header that carries CONNECTOR_WEBHOOK_KEY (webhook auth type HttpHeader); empty: the code query value (WebhookKey)"},
		{"CONNECTOR_PUBLIC_URL", "", "URL Dataverse and flows reach this connector at (https); `connector dataverse install` registers <url>/webhooks/dataverse when there is no Service Bus; required with the HTTP API (its Location headers and nextLinks)"},
		{"CONNECTOR_HEALTH_ADDR", "", "Serve /healthz, /readyz and /metrics on this address instead (e.g. :9090, kept off the ingress); empty: on CONNECTOR_HTTP_ADDR"},
		{"CONNECTOR_API_TENANT_ID", "", "The HTTP API (/api/v1) accepts Microsoft Entra ID access tokens (v2.0) of this tenant; set with CONNECTOR_API_AUDIENCES. Without it or CONNECTOR_API_KEYS the API is off"},
		{"CONNECTOR_API_AUDIENCES", "", "Comma-separated audiences the API's tokens may carry: the API app registration's client id and/or its App ID URI (api://…)"},
		{"CONNECTOR_API_AUTHORITY", "https://login.microsoftonline.com", "Entra ID authority the tokens come from (another cloud's, e.g. https://login.microsoftonline.us)"},
		{"CONNECTOR_API_KEYS", "", "API keys the HTTP API accepts, comma-separated name=role[+role]=sha256:<hex>, roles reader and operator; only hashes are stored (`connector api hash-key` makes one)"},
		{"CONNECTOR_API_RATE", "600", "Requests a minute each API caller may make (10–100000); more are answered 429 with Retry-After"},
		{"CONNECTOR_WORKERS", "8", "Rows reconciled in parallel per replica (1–64)"},
		{"CONNECTOR_QUEUE_LIMIT", "1000", "Rows that may wait in the work queue per replica before intake pauses (10–100000)"},
		{"CONNECTOR_SHUTDOWN_TIMEOUT", "30s", "How long running work may finish after SIGTERM before it is abandoned to another replica"},
		{"CONNECTOR_INSTANCE", "", "Name of this replica in job leases and run history (default: the host name)"},
		{"CONNECTOR_NOTIFY_USERS", "", "Comma-separated systemuser ids of the people who get in-app notifications (changes a Manual provider needs, the weekly license change report)"},
		{"CONNECTOR_NOTIFY_INAPP", "true", "Send in-app notifications (appnotification rows) to CONNECTOR_NOTIFY_USERS: true or false"},
		{"CONNECTOR_WEBHOOK_ALLOW_HOSTS", "", "Hosts of the partner's own that webhook subscriptions may call although they are internal: comma-separated names, IP addresses or CIDR prefixes (callbacks must otherwise be https to a public address)"},
		{"CONNECTOR_NOTIFY_WEBHOOKS", "true", "Post notifications to the webhook subscriptions registered in Dataverse (csp_webhooksubscription: the Power Automate trigger): true or false"},
		{"SERVICEBUS_NOTIFY_TOPIC", "", "Service Bus topic the connector publishes notifications on, for flows that listen there (empty: off). Uses the Service Bus connection above; the identity needs Azure Service Bus Data Sender on the topic"},
		{"CONNECTOR_NOTIFY_DIGEST_OVER", "20", "A provider account sync that finds more rows needing a person than this sends one digest instead of one notification each (1–1000)"},
		{"CONNECTOR_LINK_LIFETIME", "168h", "How long an acceptance link is treated as open when Partner Center does not say (from 5m to 168h, the 7 days peers use; Microsoft documents no lifetime)"},
		{"CONNECTOR_CLAIM_TTL", "10m", "How long a replica's claim on a license change it is pushing lasts: a replica that dies mid-change holds the row this long, then another resumes it (from 30s to 1h; longer than the slowest Partner Center call)"},
		{"CONNECTOR_REPORT_AFTER", "24h", "How long a license change may wait or stay failed before the License Change Health Report lists it"},
		{"CONNECTOR_LOG_LEVEL", "info", "Log level: debug, info, warn, error (run and sandbox log JSON on stderr; other commands log warnings as text unless --verbose)"},
	}
}

// Requirements a command can pass to LoadConfig besides variable names.
const (
	// NeedDataverse: the command talks to Dataverse.
	NeedDataverse = "need:dataverse"
	// NeedPartnerCenter: the command talks to Partner Center.
	NeedPartnerCenter = "need:partnercenter"
	// NeedIntake: the command receives events (Service Bus or webhook; at least one must be configured).
	NeedIntake = "need:intake"
)

// What a command may read besides its requirements: LoadConfig checks nothing more for them, the command's
// help lists their settings.
const (
	// UsesServiceBus: the command uses Service Bus when it is configured.
	UsesServiceBus = "uses:servicebus"
	// UsesRegistration: the command registers the event intake in Dataverse.
	UsesRegistration = "uses:registration"
	// UsesNotifications: the command may notify people.
	UsesNotifications = "uses:notifications"
)

// SettingsFor lists, in Settings order, the settings a command with these requirements (Need…, Uses…, or
// variable names) reads: what its help shows.
func SettingsFor(required ...string) []Setting {
	names := map[string]bool{"CONNECTOR_LOG_LEVEL": true}
	prefixes := []string{}
	for _, r := range required {
		switch r {
		case NeedDataverse:
			prefixes = append(prefixes, "DATAVERSE_")
		case NeedPartnerCenter:
			prefixes = append(prefixes, "PARTNERCENTER_")
		case NeedIntake: // the service itself: everything but the installer's send rule
			prefixes = append(prefixes, "SERVICEBUS_", "CONNECTOR_")
		case UsesServiceBus:
			names["SERVICEBUS_NAMESPACE"], names["SERVICEBUS_CONNECTION_STRING"], names["SERVICEBUS_QUEUE"] = true, true, true
		case UsesRegistration:
			for _, n := range []string{"SERVICEBUS_NAMESPACE", "SERVICEBUS_CONNECTION_STRING", "SERVICEBUS_QUEUE", "SERVICEBUS_SEND_CONNECTION_STRING",
				"CONNECTOR_PUBLIC_URL", "CONNECTOR_WEBHOOK_KEY", "CONNECTOR_WEBHOOK_HEADER"} {
				names[n] = true
			}
		case UsesNotifications:
			prefixes = append(prefixes, "CONNECTOR_NOTIFY_")
			names["SERVICEBUS_NOTIFY_TOPIC"] = true
		default:
			names[r] = true
		}
	}
	var out []Setting
	for _, s := range Settings() {
		keep := names[s.Name]
		for _, p := range prefixes {
			keep = keep || strings.HasPrefix(s.Name, p)
		}
		if keep && !(slices.Contains(required, NeedIntake) && s.Name == "SERVICEBUS_SEND_CONNECTION_STRING") {
			out = append(out, s)
		}
	}
	return out
}

// DefaultQueue is the Service Bus queue name the infrastructure creates.
const DefaultQueue = intake.DefaultQueue

// Config is the connector's configuration, read once from the environment.
type Config struct {
	DataverseURL            string
	DataverseAuth           string
	DataverseMaxConcurrency int
	DataverseBatchSize      int
	// DataverseBudgetRequests (0: pacing off), DataverseBudgetExecution and DataverseBulkReserve are the
	// Dataverse client's service protection budget.
	DataverseBudgetRequests  int
	DataverseBudgetExecution time.Duration
	DataverseBulkReserve     int

	PartnerCenterEndpoint         string
	PartnerCenterAuth             string
	PartnerCenterTenantID         string
	PartnerCenterClientID         string
	PartnerCenterClientSecret     string // a secret: LogValue leaves it out
	PartnerCenterRefreshTokenFile string
	PartnerCenterTokenURL         string

	ServiceBusNamespace            string
	ServiceBusConnectionString     string // a secret
	ServiceBusQueue                string
	ServiceBusSendConnectionString string // a secret

	HTTPAddr   string
	HealthAddr string
	// The HTTP API's callers: Entra ID tokens of APITenantID for APIAudiences, and API keys.
	APITenantID   string
	APIAudiences  []string
	APIAuthority  string
	APIKeys       []apiauth.APIKey
	APIRate       int
	WebhookKey    string // a secret
	WebhookHeader string
	// WebhookAllowHosts are the partner's own hosts webhook callbacks may reach (CallbackPolicy).
	WebhookAllowHosts []string
	PublicURL         string
	Workers           int
	QueueLimit        int
	ShutdownTimeout   time.Duration
	Instance          string
	// NotifyUsers get in-app notifications; ReportAfter is the License Change Health Report's threshold.
	NotifyUsers []dataverse.GUID
	ReportAfter time.Duration
	// Notification channels: in-app, webhook subscriptions, a Service Bus topic (empty: off); a sync with
	// more than NotifyDigestOver rows to announce sends one digest.
	NotifyInApp, NotifyWebhooks bool
	NotifyTopic                 string
	NotifyDigestOver            int
	// LinkLifetime is how long an acceptance link counts as open when Partner Center does not say
	// (CONNECTOR_LINK_LIFETIME, default 7 days, at most 7 days).
	LinkLifetime time.Duration
	// ClaimTTL is how long a claim on a license change lasts (CONNECTOR_CLAIM_TTL, default provisioning.DefaultClaimTTL).
	ClaimTTL time.Duration

	LogLevel slog.Level
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
	needs := map[string]bool{}
	for _, name := range required {
		if strings.HasPrefix(name, "uses:") {
			continue
		}
		if strings.HasPrefix(name, "need:") {
			needs[name] = true
			continue
		}
		if get(name, "") == "" {
			bad("%s is required", name)
		}
	}
	if needs[NeedDataverse] && get("DATAVERSE_URL", "") == "" {
		bad("DATAVERSE_URL is required")
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
	case AuthDefault:
		// Left unset against a simulator, azidentity would try every sign-in it knows and fail with a chain
		// of errors that never says what to set.
		if u, err := url.Parse(c.DataverseURL); get("DATAVERSE_AUTH", "") == "" && c.DataverseURL != "" && err == nil && IsLoopback(u.Hostname()) {
			bad("DATAVERSE_URL %s is a local simulator (a loopback address), which takes no sign-in: set DATAVERSE_AUTH=none (or DATAVERSE_AUTH=default to sign in anyway)", c.DataverseURL)
		}
	case AuthManagedIdentity:
	case AuthNone:
		if u, err := url.Parse(c.DataverseURL); c.DataverseURL != "" && (err != nil || !IsLoopback(u.Hostname())) {
			bad("DATAVERSE_AUTH=none is accepted only when DATAVERSE_URL is a loopback address (a local simulator); use default or managed-identity for %s", c.DataverseURL)
		}
	default:
		bad("DATAVERSE_AUTH %q is not one of %s, %s, %s", c.DataverseAuth, AuthDefault, AuthManagedIdentity, AuthNone)
	}
	c.loadPartnerCenter(get, needs[NeedPartnerCenter], bad)
	c.loadRuntime(get, needs[NeedIntake], bad)
	c.DataverseMaxConcurrency = intSetting(get, "DATAVERSE_MAX_CONCURRENCY", dataverse.DefaultMaxConcurrency, 1, 52, bad)
	c.DataverseBatchSize = intSetting(get, "DATAVERSE_BATCH_SIZE", dataverse.DefaultBatchSize, 1, dataverse.MaxBatchOperations, bad)
	c.DataverseBudgetRequests = intSetting(get, "DATAVERSE_BUDGET_REQUESTS", dataverse.DefaultBudgetRequests, 0, 1_000_000, bad)
	c.DataverseBudgetExecution = time.Duration(intSetting(get, "DATAVERSE_BUDGET_EXECUTION_SECONDS", int(dataverse.DefaultBudgetExecutionTime.Seconds()), 1, 1_000_000, bad)) * time.Second
	c.DataverseBulkReserve = intSetting(get, "DATAVERSE_BULK_RESERVE", dataverse.DefaultBulkReserve, 0, 90, bad)
	if err := c.LogLevel.UnmarshalText([]byte(get("CONNECTOR_LOG_LEVEL", "info"))); err != nil {
		bad("CONNECTOR_LOG_LEVEL %q is not one of debug, info, warn, error", get("CONNECTOR_LOG_LEVEL", ""))
	}
	if len(problems) > 0 {
		return Config{}, &ConfigError{Problems: problems}
	}
	return c, nil
}

func (c *Config) loadPartnerCenter(get func(string, string) string, needed bool, bad func(string, ...any)) {
	c.PartnerCenterEndpoint = strings.TrimRight(get("PARTNERCENTER_ENDPOINT", partnercenter.DefaultEndpoint), "/")
	c.PartnerCenterAuth = strings.ToLower(get("PARTNERCENTER_AUTH", AuthDefault))
	c.PartnerCenterTenantID = get("PARTNERCENTER_TENANT_ID", "")
	c.PartnerCenterClientID = get("PARTNERCENTER_CLIENT_ID", "")
	c.PartnerCenterClientSecret = get("PARTNERCENTER_CLIENT_SECRET", "")
	c.PartnerCenterRefreshTokenFile = get("PARTNERCENTER_REFRESH_TOKEN_FILE", "")
	c.PartnerCenterTokenURL = get("PARTNERCENTER_TOKEN_URL", "")
	endpoint, err := url.Parse(c.PartnerCenterEndpoint)
	switch {
	case err != nil || endpoint.Host == "" || (endpoint.Scheme != "https" && endpoint.Scheme != "http"):
		bad("PARTNERCENTER_ENDPOINT %q is not an absolute URL such as %s", c.PartnerCenterEndpoint, partnercenter.DefaultEndpoint)
	case endpoint.Scheme == "http" && !IsLoopback(endpoint.Hostname()):
		bad("PARTNERCENTER_ENDPOINT must use https (plain http is accepted only for a loopback simulator)")
	}
	if c.PartnerCenterTokenURL != "" {
		if u, err := url.Parse(c.PartnerCenterTokenURL); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname()))) {
			bad("PARTNERCENTER_TOKEN_URL must be an https URL (http only on loopback)")
		}
	}
	switch c.PartnerCenterAuth {
	case AuthNone:
		if err == nil && !IsLoopback(endpoint.Hostname()) {
			bad("PARTNERCENTER_AUTH=none is accepted only when PARTNERCENTER_ENDPOINT is a loopback address (a local simulator)")
		}
	case AuthDefault:
		if needed && get("PARTNERCENTER_AUTH", "") == "" && err == nil && IsLoopback(endpoint.Hostname()) && c.PartnerCenterTenantID == "" && c.PartnerCenterClientID == "" {
			bad("PARTNERCENTER_ENDPOINT %s is a local simulator (a loopback address), which takes no sign-in: set PARTNERCENTER_AUTH=none (or PARTNERCENTER_TENANT_ID and PARTNERCENTER_CLIENT_ID to sign in anyway)", c.PartnerCenterEndpoint)
			break
		}
		if needed && c.PartnerCenterTenantID == "" {
			bad("PARTNERCENTER_TENANT_ID is required")
		}
		if needed && c.PartnerCenterClientID == "" {
			bad("PARTNERCENTER_CLIENT_ID is required")
		}
		if c.PartnerCenterRefreshTokenFile != "" && c.PartnerCenterClientSecret == "" {
			bad("PARTNERCENTER_REFRESH_TOKEN_FILE needs PARTNERCENTER_CLIENT_SECRET: the refresh token is exchanged with the app's secret")
		}
	default:
		bad("PARTNERCENTER_AUTH %q is not one of %s, %s", c.PartnerCenterAuth, AuthDefault, AuthNone)
	}
}

func (c *Config) loadRuntime(get func(string, string) string, needIntake bool, bad func(string, ...any)) {
	c.ServiceBusNamespace = strings.TrimSuffix(strings.TrimPrefix(get("SERVICEBUS_NAMESPACE", ""), "sb://"), "/")
	c.ServiceBusConnectionString = get("SERVICEBUS_CONNECTION_STRING", "")
	c.ServiceBusQueue = get("SERVICEBUS_QUEUE", DefaultQueue)
	c.ServiceBusSendConnectionString = get("SERVICEBUS_SEND_CONNECTION_STRING", "")
	c.HTTPAddr = get("CONNECTOR_HTTP_ADDR", ":8080")
	c.WebhookKey = get("CONNECTOR_WEBHOOK_KEY", "")
	c.WebhookHeader = get("CONNECTOR_WEBHOOK_HEADER", "")
	c.PublicURL = strings.TrimRight(get("CONNECTOR_PUBLIC_URL", ""), "/")
	c.Instance = get("CONNECTOR_INSTANCE", "")
	if c.ServiceBusNamespace != "" && c.ServiceBusConnectionString != "" {
		bad("set SERVICEBUS_NAMESPACE or SERVICEBUS_CONNECTION_STRING, not both")
	}
	switch {
	case c.ServiceBusNamespace == "":
	case strings.ContainsAny(c.ServiceBusNamespace, ";="):
		// A connection string pasted here: do not echo it, its key would land in the logs.
		bad("SERVICEBUS_NAMESPACE looks like a connection string: put connection strings in SERVICEBUS_CONNECTION_STRING; SERVICEBUS_NAMESPACE is the fully qualified namespace, e.g. contoso-csp.servicebus.windows.net")
	case strings.ContainsAny(c.ServiceBusNamespace, "/:") || !strings.Contains(c.ServiceBusNamespace, "."):
		bad("SERVICEBUS_NAMESPACE %q must be the fully qualified namespace, e.g. contoso-csp.servicebus.windows.net", c.ServiceBusNamespace)
	}
	for _, cs := range []struct{ name, value string }{{"SERVICEBUS_CONNECTION_STRING", c.ServiceBusConnectionString}, {"SERVICEBUS_SEND_CONNECTION_STRING", c.ServiceBusSendConnectionString}} {
		if cs.value != "" {
			if _, err := ParseServiceBusConnectionString(cs.value); err != nil {
				bad("%s: %v", cs.name, err)
			}
		}
	}
	if c.WebhookKey != "" && len(c.WebhookKey) < 16 {
		bad("CONNECTOR_WEBHOOK_KEY must be at least 16 characters (it is the only thing that authenticates Dataverse's posts)")
	}
	if c.WebhookHeader != "" && c.WebhookKey == "" {
		bad("CONNECTOR_WEBHOOK_HEADER needs CONNECTOR_WEBHOOK_KEY")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname()))) {
			bad("CONNECTOR_PUBLIC_URL must be an https URL (http only on loopback)")
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("CONNECTOR_HTTP_ADDR %q is not host:port (e.g. :8080)", c.HTTPAddr)
	}
	if needIntake && c.ServiceBusNamespace == "" && c.ServiceBusConnectionString == "" && c.WebhookKey == "" {
		bad("no event intake: set SERVICEBUS_NAMESPACE (or SERVICEBUS_CONNECTION_STRING) for Service Bus, or CONNECTOR_WEBHOOK_KEY for the webhook")
	}
	c.loadAPI(get, bad)
	c.Workers = intSetting(get, "CONNECTOR_WORKERS", 8, 1, 64, bad)
	c.QueueLimit = intSetting(get, "CONNECTOR_QUEUE_LIMIT", 1000, 10, 100000, bad)
	for _, raw := range strings.Split(get("CONNECTOR_NOTIFY_USERS", ""), ",") {
		if raw = strings.TrimSpace(raw); raw == "" {
			continue
		}
		id, err := dataverse.ParseGUID(raw)
		if err != nil {
			bad("CONNECTOR_NOTIFY_USERS: %q is not a systemuser id (a GUID)", raw)
			continue
		}
		c.NotifyUsers = append(c.NotifyUsers, id)
	}
	c.NotifyInApp = boolSetting(get, "CONNECTOR_NOTIFY_INAPP", true, bad)
	c.NotifyWebhooks = boolSetting(get, "CONNECTOR_NOTIFY_WEBHOOKS", true, bad)
	if hosts, err := notify.ParseCallbackAllowList(get("CONNECTOR_WEBHOOK_ALLOW_HOSTS", "")); err != nil {
		bad("CONNECTOR_WEBHOOK_ALLOW_HOSTS: " + err.Error())
	} else {
		c.WebhookAllowHosts = hosts
	}
	c.NotifyTopic = get("SERVICEBUS_NOTIFY_TOPIC", "")
	if c.NotifyTopic != "" && c.ServiceBusNamespace == "" && c.ServiceBusConnectionString == "" {
		bad("SERVICEBUS_NOTIFY_TOPIC needs SERVICEBUS_NAMESPACE or SERVICEBUS_CONNECTION_STRING")
	}
	c.NotifyDigestOver = intSetting(get, "CONNECTOR_NOTIFY_DIGEST_OVER", 20, 1, 1000, bad) // at most the notification queue
	c.ReportAfter = 24 * time.Hour
	if raw := get("CONNECTOR_REPORT_AFTER", ""); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < time.Minute {
			bad("CONNECTOR_REPORT_AFTER %q must be a duration of at least 1m, such as 24h", raw)
		} else {
			c.ReportAfter = d
		}
	}
	c.ClaimTTL = provisioning.DefaultClaimTTL
	if raw := get("CONNECTOR_CLAIM_TTL", ""); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < 30*time.Second || d > time.Hour {
			bad("CONNECTOR_CLAIM_TTL %q must be a duration from 30s to 1h, such as 10m", raw)
		} else {
			c.ClaimTTL = d
		}
	}
	c.LinkLifetime = agreements.DefaultLinkLifetime
	if raw := get("CONNECTOR_LINK_LIFETIME", ""); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < agreements.MinLinkLifetime || d > agreements.MaxLinkLifetime {
			bad("CONNECTOR_LINK_LIFETIME %q must be a duration from 5m to 168h (7 days), such as 72h", raw)
		} else {
			c.LinkLifetime = d
		}
	}
	c.ShutdownTimeout = 30 * time.Second
	if raw := get("CONNECTOR_SHUTDOWN_TIMEOUT", ""); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < 0 || d > 10*time.Minute {
			bad("CONNECTOR_SHUTDOWN_TIMEOUT %q must be a duration such as 30s (at most 10m)", raw)
		} else {
			c.ShutdownTimeout = d
		}
	}
}

// ServiceBusConnection is the part of a Service Bus connection string the connector reads.
type ServiceBusConnection struct {
	Endpoint   string // sb://<namespace>/
	Namespace  string // host[:port]
	KeyName    string
	Key        string // a secret
	EntityPath string
	Emulator   bool
}

// ParseServiceBusConnectionString reads Endpoint, SharedAccessKeyName, SharedAccessKey, EntityPath and
// UseDevelopmentEmulator; an error names what is missing without echoing the secret.
func ParseServiceBusConnectionString(cs string) (ServiceBusConnection, error) {
	var c ServiceBusConnection
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "endpoint":
			c.Endpoint = v
		case "sharedaccesskeyname":
			c.KeyName = v
		case "sharedaccesskey":
			c.Key = v
		case "entitypath":
			c.EntityPath = v
		case "usedevelopmentemulator":
			c.Emulator, _ = strconv.ParseBool(v)
		}
	}
	u, err := url.Parse(c.Endpoint)
	if c.Endpoint == "" || err != nil || u.Scheme != "sb" || u.Host == "" {
		return ServiceBusConnection{}, errors.New("the connection string has no Endpoint=sb://<namespace>/")
	}
	c.Namespace = u.Host
	if c.KeyName == "" || c.Key == "" {
		return ServiceBusConnection{}, errors.New("the connection string needs SharedAccessKeyName and SharedAccessKey")
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

func boolSetting(get func(string, string) string, name string, def bool, bad func(string, ...any)) bool {
	raw := get(name, "")
	if raw == "" {
		return def
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		bad("%s %q must be true or false", name, raw)
		return def
	}
	return v
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

// LogValue keeps the configuration loggable without its secrets: the client secret shows only whether it
// is set. Every new secret setting must be added here the same way.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("dataverse_url", c.DataverseURL),
		slog.String("dataverse_auth", c.DataverseAuth),
		slog.Int("dataverse_max_concurrency", c.DataverseMaxConcurrency),
		slog.Int("dataverse_batch_size", c.DataverseBatchSize),
		slog.Int("dataverse_budget_requests", c.DataverseBudgetRequests),
		slog.Duration("dataverse_budget_execution", c.DataverseBudgetExecution),
		slog.Int("dataverse_bulk_reserve", c.DataverseBulkReserve),
		slog.String("partnercenter_endpoint", c.PartnerCenterEndpoint),
		slog.String("partnercenter_auth", c.PartnerCenterAuth),
		slog.String("partnercenter_tenant_id", c.PartnerCenterTenantID),
		slog.String("partnercenter_client_id", c.PartnerCenterClientID),
		slog.Bool("partnercenter_client_secret_set", c.PartnerCenterClientSecret != ""),
		slog.String("partnercenter_refresh_token_file", c.PartnerCenterRefreshTokenFile),
		slog.String("servicebus_namespace", c.ServiceBusNamespace),
		slog.Bool("servicebus_connection_string_set", c.ServiceBusConnectionString != ""),
		slog.String("servicebus_queue", c.ServiceBusQueue),
		slog.String("http_addr", c.HTTPAddr),
		slog.Bool("webhook_key_set", c.WebhookKey != ""),
		slog.String("webhook_header", c.WebhookHeader),
		slog.String("public_url", c.PublicURL),
		slog.Int("workers", c.Workers),
		slog.Int("queue_limit", c.QueueLimit),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.String("instance", c.Instance),
		slog.Int("notify_users", len(c.NotifyUsers)),
		slog.Duration("report_after", c.ReportAfter),
		slog.Bool("notify_inapp", c.NotifyInApp), slog.Bool("notify_webhooks", c.NotifyWebhooks), slog.Any("webhook_allow_hosts", c.WebhookAllowHosts), slog.String("notify_topic", c.NotifyTopic),
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

// loadAPI reads the HTTP API's settings and checks them by building the authenticator.
func (c *Config) loadAPI(get func(string, string) string, bad func(string, ...any)) {
	c.HealthAddr = get("CONNECTOR_HEALTH_ADDR", "")
	if c.HealthAddr != "" {
		if _, _, err := net.SplitHostPort(c.HealthAddr); err != nil {
			bad("CONNECTOR_HEALTH_ADDR %q is not host:port (e.g. :9090)", c.HealthAddr)
		}
	}
	c.APITenantID = get("CONNECTOR_API_TENANT_ID", "")
	for _, a := range strings.Split(get("CONNECTOR_API_AUDIENCES", ""), ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.APIAudiences = append(c.APIAudiences, a)
		}
	}
	c.APIAuthority = get("CONNECTOR_API_AUTHORITY", "https://login.microsoftonline.com")
	keys, err := apiauth.ParseAPIKeys(get("CONNECTOR_API_KEYS", ""))
	if err != nil {
		bad("CONNECTOR_API_KEYS: %v", err)
	}
	c.APIKeys = keys
	c.APIRate = intSetting(get, "CONNECTOR_API_RATE", 600, 10, 100000, bad)
	switch {
	case c.APITenantID == "" && len(c.APIAudiences) > 0:
		bad("CONNECTOR_API_AUDIENCES needs CONNECTOR_API_TENANT_ID")
	case c.APITenantID != "" && len(c.APIAudiences) == 0:
		bad("CONNECTOR_API_TENANT_ID needs CONNECTOR_API_AUDIENCES (the API app registration's client id or App ID URI)")
	case c.APITenantID != "" || len(c.APIKeys) > 0:
		if _, err := c.APIAuth(nil); err != nil {
			bad("HTTP API: %v", err)
		}
	}
	if (c.APITenantID != "" || len(c.APIAudiences) > 0 || get("CONNECTOR_API_KEYS", "") != "") && c.PublicURL == "" {
		// Behind an ingress the request's own scheme and host are not what flows reach: Location headers
		// and nextLinks would point at http:// or an internal name.
		bad("the HTTP API needs CONNECTOR_PUBLIC_URL (the https URL flows call), for its Location headers and nextLinks")
	}
}

// APIAuth builds the HTTP API's authenticator; nil (and no error) when neither Entra ID nor API keys are
// configured. hc fetches Entra ID's signing keys (nil: a default client).
func (c Config) APIAuth(hc *http.Client) (*apiauth.Authenticator, error) {
	ac := apiauth.Config{Keys: c.APIKeys, KeyHeader: api.KeyHeader}
	if c.APITenantID != "" {
		ac.Entra = &apiauth.EntraConfig{TenantID: c.APITenantID, Audiences: c.APIAudiences, Authority: c.APIAuthority, HTTPClient: hc}
	}
	if ac.Entra == nil && len(ac.Keys) == 0 {
		return nil, nil
	}
	return apiauth.New(ac)
}
