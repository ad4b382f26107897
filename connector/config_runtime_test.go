package connector_test

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
)

// Secrets used below: none may appear in an error message or a log line.
const (
	listenKey  = "zzListenKeyzz0123456789abcdefABCDEF+/="
	sendKey    = "zzSendKeyzz0123456789abcdefABCDEF+/=="
	webhookKey = "zz-webhook-key-zz-0123456789"
)

func problems(t *testing.T, vars map[string]string, required ...string) []string {
	t.Helper()
	_, err := connector.LoadConfig(env(vars), required...)
	require.Error(t, err)
	var ce *connector.ConfigError
	require.ErrorAs(t, err, &ce)
	for _, secret := range []string{listenKey, sendKey, webhookKey, "zz-short", "SharedAccessKey="} {
		assert.NotContains(t, err.Error(), secret, "a configuration error shows a secret")
	}
	return ce.Problems
}

func TestRuntimeSettingsReportEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	got := problems(t, map[string]string{
		"SERVICEBUS_NAMESPACE":              "contoso-csp",
		"SERVICEBUS_CONNECTION_STRING":      "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKey=" + listenKey,
		"SERVICEBUS_SEND_CONNECTION_STRING": "SharedAccessKeyName=dataverse-send;SharedAccessKey=" + sendKey,
		"CONNECTOR_WEBHOOK_KEY":             "zz-short",
		"CONNECTOR_PUBLIC_URL":              "http://connector.contoso.com",
		"CONNECTOR_HTTP_ADDR":               "8080",
		"CONNECTOR_WORKERS":                 "65",
		"CONNECTOR_QUEUE_LIMIT":             "9",
		"CONNECTOR_SHUTDOWN_TIMEOUT":        "11m",
	}, connector.NeedIntake)
	assert.Equal(t, []string{
		"set SERVICEBUS_NAMESPACE or SERVICEBUS_CONNECTION_STRING, not both",
		`SERVICEBUS_NAMESPACE "contoso-csp" must be the fully qualified namespace, e.g. contoso-csp.servicebus.windows.net`,
		"SERVICEBUS_CONNECTION_STRING: the connection string needs SharedAccessKeyName and SharedAccessKey",
		"SERVICEBUS_SEND_CONNECTION_STRING: the connection string has no Endpoint=sb://<namespace>/",
		"CONNECTOR_WEBHOOK_KEY must be at least 16 characters (it is the only thing that authenticates Dataverse's posts)",
		"CONNECTOR_PUBLIC_URL must be an https URL (http only on loopback)",
		`CONNECTOR_HTTP_ADDR "8080" is not host:port (e.g. :8080)`,
		`CONNECTOR_WORKERS "65" must be a whole number from 1 to 64`,
		`CONNECTOR_QUEUE_LIMIT "9" must be a whole number from 10 to 100000`,
		`CONNECTOR_SHUTDOWN_TIMEOUT "11m" must be a duration such as 30s (at most 10m)`,
	}, got)
}

func TestRuntimeSettingProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		vars     map[string]string
		required []string
		want     string
	}{
		{"namespace with a path", map[string]string{"SERVICEBUS_NAMESPACE": "contoso-csp.servicebus.windows.net/queues"}, nil, `SERVICEBUS_NAMESPACE "contoso-csp.servicebus.windows.net/queues" must be the fully qualified namespace`},
		{"namespace as a URL", map[string]string{"SERVICEBUS_NAMESPACE": "https://contoso-csp.servicebus.windows.net"}, nil, "must be the fully qualified namespace"},
		{"connection string pasted as the namespace", map[string]string{"SERVICEBUS_NAMESPACE": "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=" + listenKey}, nil, "SERVICEBUS_NAMESPACE looks like a connection string: put connection strings in SERVICEBUS_CONNECTION_STRING"},
		{"connection string without an endpoint", map[string]string{"SERVICEBUS_CONNECTION_STRING": "SharedAccessKeyName=listen;SharedAccessKey=" + listenKey}, nil, "SERVICEBUS_CONNECTION_STRING: the connection string has no Endpoint=sb://<namespace>/"},
		{"connection string with an https endpoint", map[string]string{"SERVICEBUS_CONNECTION_STRING": "Endpoint=https://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=" + listenKey}, nil, "has no Endpoint=sb://"},
		{"connection string without a key", map[string]string{"SERVICEBUS_CONNECTION_STRING": "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=listen"}, nil, "needs SharedAccessKeyName and SharedAccessKey"},
		{"connection string that is only a key", map[string]string{"SERVICEBUS_CONNECTION_STRING": listenKey}, nil, "SERVICEBUS_CONNECTION_STRING: the connection string has no Endpoint"},
		{"send connection string without a key name", map[string]string{"SERVICEBUS_SEND_CONNECTION_STRING": "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKey=" + sendKey}, nil, "SERVICEBUS_SEND_CONNECTION_STRING: the connection string needs SharedAccessKeyName"},
		{"short webhook key", map[string]string{"CONNECTOR_WEBHOOK_KEY": "zz-short"}, nil, "CONNECTOR_WEBHOOK_KEY must be at least 16 characters"},
		{"header without a key", map[string]string{"CONNECTOR_WEBHOOK_HEADER": "x-api-key"}, nil, "CONNECTOR_WEBHOOK_HEADER needs CONNECTOR_WEBHOOK_KEY"},
		{"public URL over http off loopback", map[string]string{"CONNECTOR_PUBLIC_URL": "http://10.0.0.5:8080"}, nil, "CONNECTOR_PUBLIC_URL must be an https URL (http only on loopback)"},
		{"public URL without a scheme", map[string]string{"CONNECTOR_PUBLIC_URL": "connector.contoso.com"}, nil, "CONNECTOR_PUBLIC_URL must be an https URL"},
		{"HTTP address without a port", map[string]string{"CONNECTOR_HTTP_ADDR": "localhost"}, nil, `CONNECTOR_HTTP_ADDR "localhost" is not host:port`},
		{"no workers", map[string]string{"CONNECTOR_WORKERS": "0"}, nil, `CONNECTOR_WORKERS "0" must be a whole number from 1 to 64`},
		{"workers not a number", map[string]string{"CONNECTOR_WORKERS": "eight"}, nil, `CONNECTOR_WORKERS "eight"`},
		{"queue limit too large", map[string]string{"CONNECTOR_QUEUE_LIMIT": "100001"}, nil, `CONNECTOR_QUEUE_LIMIT "100001" must be a whole number from 10 to 100000`},
		{"shutdown timeout without a unit", map[string]string{"CONNECTOR_SHUTDOWN_TIMEOUT": "30"}, nil, `CONNECTOR_SHUTDOWN_TIMEOUT "30" must be a duration such as 30s`},
		{"negative shutdown timeout", map[string]string{"CONNECTOR_SHUTDOWN_TIMEOUT": "-1s"}, nil, `CONNECTOR_SHUTDOWN_TIMEOUT "-1s"`},
		{"no intake", nil, []string{connector.NeedIntake}, "no event intake: set SERVICEBUS_NAMESPACE (or SERVICEBUS_CONNECTION_STRING) for Service Bus, or CONNECTOR_WEBHOOK_KEY for the webhook"},
		{"only a header is no intake", map[string]string{"CONNECTOR_WEBHOOK_HEADER": "x-api-key"}, []string{connector.NeedIntake}, "no event intake"},
		{"a send connection string alone is no intake", map[string]string{"SERVICEBUS_SEND_CONNECTION_STRING": "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=" + sendKey}, []string{connector.NeedIntake}, "no event intake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := problems(t, tc.vars, tc.required...)
			assert.True(t, strings.Contains(strings.Join(got, "\n"), tc.want), "want a problem containing %q, got %q", tc.want, got)
		})
	}
}

func TestRuntimeSettingsAccepted(t *testing.T) {
	t.Parallel()
	cfg, err := connector.LoadConfig(env(nil))
	require.NoError(t, err)
	assert.Equal(t, connector.DefaultQueue, cfg.ServiceBusQueue)
	assert.Equal(t, ":8080", cfg.HTTPAddr)
	assert.Equal(t, 8, cfg.Workers)
	assert.Equal(t, 1000, cfg.QueueLimit)
	assert.Equal(t, 30*time.Second, cfg.ShutdownTimeout)

	cfg, err = connector.LoadConfig(env(map[string]string{
		"SERVICEBUS_NAMESPACE":       "sb://contoso-csp.servicebus.windows.net/",
		"SERVICEBUS_QUEUE":           "csp-events",
		"CONNECTOR_WEBHOOK_KEY":      webhookKey,
		"CONNECTOR_WEBHOOK_HEADER":   "x-api-key",
		"CONNECTOR_PUBLIC_URL":       "http://127.0.0.1:8090/",
		"CONNECTOR_HTTP_ADDR":        "127.0.0.1:0",
		"CONNECTOR_WORKERS":          "64",
		"CONNECTOR_QUEUE_LIMIT":      "10",
		"CONNECTOR_SHUTDOWN_TIMEOUT": "10m",
	}), connector.NeedIntake)
	require.NoError(t, err)
	assert.Equal(t, "contoso-csp.servicebus.windows.net", cfg.ServiceBusNamespace, "the scheme and slash are dropped")
	assert.Equal(t, "csp-events", cfg.ServiceBusQueue)
	assert.Equal(t, "http://127.0.0.1:8090", cfg.PublicURL, "http on loopback is accepted; the trailing slash is dropped")
	assert.Equal(t, 64, cfg.Workers)
	assert.Equal(t, 10, cfg.QueueLimit)
	assert.Equal(t, 10*time.Minute, cfg.ShutdownTimeout)

	for _, intake := range []map[string]string{
		{"SERVICEBUS_CONNECTION_STRING": "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=" + listenKey + ";EntityPath=dataverse-events"},
		{"SERVICEBUS_CONNECTION_STRING": "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + listenKey + ";UseDevelopmentEmulator=true;"},
		{"CONNECTOR_WEBHOOK_KEY": webhookKey},
	} {
		_, err := connector.LoadConfig(env(intake), connector.NeedIntake)
		assert.NoError(t, err, "%v", intake)
	}
}

func TestParseServiceBusConnectionString(t *testing.T) {
	t.Parallel()
	c, err := connector.ParseServiceBusConnectionString(" Endpoint=sb://contoso-csp.servicebus.windows.net/; SharedAccessKeyName=dataverse-send ;SharedAccessKey=" + sendKey + ";EntityPath=dataverse-events")
	require.NoError(t, err)
	assert.Equal(t, connector.ServiceBusConnection{Endpoint: "sb://contoso-csp.servicebus.windows.net/", Namespace: "contoso-csp.servicebus.windows.net",
		KeyName: "dataverse-send", Key: sendKey, EntityPath: "dataverse-events"}, c, "a key ending in = is kept whole")

	c, err = connector.ParseServiceBusConnectionString("endpoint=sb://localhost:5672;sharedaccesskeyname=root;sharedaccesskey=k;usedevelopmentemulator=true")
	require.NoError(t, err)
	assert.Equal(t, "localhost:5672", c.Namespace, "names are case-insensitive; the emulator's port is kept")
	assert.True(t, c.Emulator)

	for _, bad := range []string{"", listenKey, "Endpoint=sb://;SharedAccessKeyName=a;SharedAccessKey=" + listenKey, "Endpoint=contoso;SharedAccessKeyName=a;SharedAccessKey=" + listenKey,
		"Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=;SharedAccessKey=" + listenKey} {
		_, err := connector.ParseServiceBusConnectionString(bad)
		if assert.Error(t, err, bad) {
			assert.NotContains(t, err.Error(), listenKey)
		}
	}
}

func TestLoggedRuntimeConfigurationHasNoSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := connector.LoadConfig(env(map[string]string{
		"SERVICEBUS_CONNECTION_STRING":      "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=" + listenKey,
		"SERVICEBUS_SEND_CONNECTION_STRING": "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=" + sendKey,
		"CONNECTOR_WEBHOOK_KEY":             webhookKey,
		"CONNECTOR_WEBHOOK_HEADER":          "x-api-key",
	}), connector.NeedIntake)
	require.NoError(t, err)
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var logged bytes.Buffer
		slog.New(h(&logged)).Info("starting", "config", cfg)
		for _, secret := range []string{listenKey, sendKey, webhookKey, "SharedAccessKey"} {
			assert.NotContains(t, logged.String(), secret, name)
		}
		assert.Contains(t, logged.String(), "servicebus_connection_string_set", name)
		assert.Contains(t, logged.String(), "webhook_key_set", name)
		assert.Contains(t, logged.String(), "x-api-key", name, "the header name is not a secret")
	}
}

// TestLogValueLeavesOutEverySecretField sets every string field of Config to a marker and checks that the
// fields named like secrets (…Secret, …Key, …ConnectionString) never reach the log, so a secret setting
// added later without its LogValue entry being masked is caught.
func TestLogValueLeavesOutEverySecretField(t *testing.T) {
	t.Parallel()
	var cfg connector.Config
	v := reflect.ValueOf(&cfg).Elem()
	secret := func(name string) bool {
		return strings.HasSuffix(name, "Secret") || strings.HasSuffix(name, "Key") || strings.HasSuffix(name, "ConnectionString")
	}
	var secrets, others []string
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Type.Kind() != reflect.String {
			continue
		}
		marker := "marker-" + f.Name
		v.Field(i).SetString(marker)
		if secret(f.Name) {
			secrets = append(secrets, marker)
		} else {
			others = append(others, marker)
		}
	}
	require.Subset(t, secrets, []string{"marker-PartnerCenterClientSecret", "marker-ServiceBusConnectionString", "marker-ServiceBusSendConnectionString", "marker-WebhookKey"})
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", cfg)
	for _, m := range secrets {
		assert.NotContains(t, logged.String(), m)
	}
	assert.Contains(t, logged.String(), "marker-DataverseURL", "the other settings are logged")
	assert.NotEmpty(t, others)
}
