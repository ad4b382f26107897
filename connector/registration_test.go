package connector_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/connector/intake"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
)

const sendConnectionString = "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=dataverse-send;SharedAccessKey=" + sendKey + ";EntityPath=csp-events"

func TestRegistrationForServiceBus(t *testing.T) {
	t.Parallel()
	webhookToo := connector.Config{PublicURL: "https://connector.contoso.com", WebhookKey: webhookKey}
	for name, cfg := range map[string]connector.Config{
		"namespace":         {ServiceBusNamespace: "contoso-csp.servicebus.windows.net", ServiceBusQueue: "csp-events", ServiceBusSendConnectionString: sendConnectionString},
		"connection string": {ServiceBusConnectionString: "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=" + listenKey, ServiceBusQueue: "csp-events", ServiceBusSendConnectionString: sendConnectionString},
		"webhook configured too": {ServiceBusNamespace: "contoso-csp.servicebus.windows.net", ServiceBusQueue: "csp-events", ServiceBusSendConnectionString: sendConnectionString,
			PublicURL: webhookToo.PublicURL, WebhookKey: webhookToo.WebhookKey},
	} {
		reg, err := connector.RegistrationFor(cfg, connector.Triggers())
		require.NoError(t, err, name)
		assert.Equal(t, dataverse.ServiceEndpoint{
			Name: connector.EndpointName, Kind: dataverse.EndpointServiceBusQueue, Description: reg.Endpoint.Description,
			NamespaceAddress: "sb://contoso-csp.servicebus.windows.net/", Path: "csp-events",
			SASKeyName: "dataverse-send", SASKey: sendKey,
		}, reg.Endpoint, "%s: Service Bus wins, with the Send rule (never the Listen one) and the configured queue", name)
		assert.NotEmpty(t, reg.Endpoint.Description)
		assert.Len(t, reg.Steps, len(connector.Triggers()), name)
	}

	_, err := connector.RegistrationFor(connector.Config{ServiceBusNamespace: "contoso-csp.servicebus.windows.net", ServiceBusQueue: connector.DefaultQueue,
		PublicURL: webhookToo.PublicURL, WebhookKey: webhookToo.WebhookKey}, connector.Triggers())
	require.Error(t, err)
	assert.NotErrorIs(t, err, connector.ErrNoIntakeToRegister, "Service Bus is configured: say what it lacks, do not fall back to the webhook")
	assert.ErrorContains(t, err, "needs SERVICEBUS_SEND_CONNECTION_STRING")

	_, err = connector.RegistrationFor(connector.Config{ServiceBusNamespace: "contoso-csp.servicebus.windows.net", ServiceBusQueue: connector.DefaultQueue,
		ServiceBusSendConnectionString: "Endpoint=sb://contoso-csp.servicebus.windows.net/;SharedAccessKey=" + sendKey}, connector.Triggers())
	require.Error(t, err)
	assert.ErrorContains(t, err, "SERVICEBUS_SEND_CONNECTION_STRING: the connection string needs SharedAccessKeyName")
	assert.NotContains(t, err.Error(), sendKey)
}

func TestRegistrationForWebhook(t *testing.T) {
	t.Parallel()
	reg, err := connector.RegistrationFor(connector.Config{PublicURL: "https://connector.contoso.com", WebhookKey: webhookKey}, connector.Triggers())
	require.NoError(t, err)
	assert.Equal(t, dataverse.ServiceEndpoint{Name: connector.EndpointName, Kind: dataverse.EndpointWebhook, Description: reg.Endpoint.Description,
		URL: "https://connector.contoso.com" + intake.WebhookPath, WebhookKey: webhookKey}, reg.Endpoint, "the key goes as ?code=")

	reg, err = connector.RegistrationFor(connector.Config{PublicURL: "https://connector.contoso.com", WebhookKey: webhookKey, WebhookHeader: "x-api-key"}, connector.Triggers())
	require.NoError(t, err)
	assert.Equal(t, dataverse.ServiceEndpoint{Name: connector.EndpointName, Kind: dataverse.EndpointWebhook, Description: reg.Endpoint.Description,
		URL: "https://connector.contoso.com" + intake.WebhookPath, HeaderName: "x-api-key", HeaderValue: webhookKey}, reg.Endpoint, "the key goes in the header, and only there")
	assert.Len(t, reg.Steps, len(connector.Triggers()))
	assert.NotContains(t, reg.Endpoint.String(), webhookKey)
}

func TestRegistrationForNothingToRegister(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]connector.Config{
		"nothing":                             {},
		"a webhook key without a public URL":  {WebhookKey: webhookKey},
		"a public URL without a webhook key":  {PublicURL: "https://connector.contoso.com"},
		"a send connection string on its own": {ServiceBusSendConnectionString: sendConnectionString},
	} {
		_, err := connector.RegistrationFor(cfg, connector.Triggers())
		assert.ErrorIs(t, err, connector.ErrNoIntakeToRegister, name)
	}
}

func TestRegistrationStepsFollowTheTriggers(t *testing.T) {
	t.Parallel()
	cfg := connector.Config{PublicURL: "https://connector.contoso.com", WebhookKey: webhookKey}
	image := dataverse.StepImage{Alias: "pre", Type: dataverse.PreImage, Attributes: []string{"csp_quantity"}}
	custom := []work.Trigger{
		{Table: "csp_licensechangelog", Message: "Create", Columns: []string{"csp_quantity"}},
		{Table: "csp_licensechangelog", Message: "Update", Columns: []string{"csp_quantity", "csp_provisioningstatus"}, WriteBack: []string{"csp_provisioningstatus"}, Images: []dataverse.StepImage{image}},
		{Table: "csp_licensechangelog", Message: "Delete"},
		{Table: "csp_subscription", Message: "Update"},
		{Message: "csp_RunJob"},
	}
	for name, triggers := range map[string][]work.Trigger{"the connector's": connector.Triggers(), "every kind": custom} {
		reg, err := connector.RegistrationFor(cfg, triggers)
		require.NoError(t, err, name)
		require.Len(t, reg.Steps, len(triggers), "%s: one step per trigger", name)
		names := map[string]bool{}
		for i, st := range reg.Steps {
			tr := triggers[i]
			assert.Equal(t, tr.Message, st.Message, name)
			assert.Equal(t, tr.Table, st.Table, name)
			assert.Equal(t, tr.Images, st.Images, name)
			if tr.Message == "Update" {
				assert.Equal(t, tr.Columns, st.FilteringAttributes, "%s: an Update step fires only for its trigger columns", name)
			} else {
				assert.Empty(t, st.FilteringAttributes, "%s: only Update steps have filtering attributes (%s)", name, st.Name)
			}
			assert.True(t, strings.HasPrefix(st.Name, connector.EndpointName+": "), st.Name)
			key := strings.ToLower(st.Name) // the planner matches steps by name, ignoring case
			assert.False(t, names[key], "%s: two steps named %q", name, st.Name)
			names[key] = true
		}
	}

	reg, err := connector.RegistrationFor(cfg, custom)
	require.NoError(t, err)
	var got []string
	for _, st := range reg.Steps {
		got = append(got, st.Name)
	}
	assert.Equal(t, []string{
		"CSP Connector: Create of csp_licensechangelog",
		"CSP Connector: Update of csp_licensechangelog",
		"CSP Connector: Delete of csp_licensechangelog",
		"CSP Connector: Update of csp_subscription",
		"CSP Connector: csp_RunJob",
	}, got)
}

func TestRegistrationForRefusesASendRuleOfAnotherQueue(t *testing.T) {
	t.Parallel()
	_, err := connector.RegistrationFor(connector.Config{ServiceBusNamespace: "contoso-csp.servicebus.windows.net", ServiceBusQueue: "dataverse-events",
		ServiceBusSendConnectionString: sendConnectionString}, connector.Triggers())
	require.ErrorContains(t, err, `a rule of queue "csp-events", but SERVICEBUS_QUEUE is "dataverse-events"`)
	assert.NotContains(t, err.Error(), sendKey)
}
