package connector

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/intake"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
)

// EndpointName is the name of the connector's service endpoint in Dataverse.
const EndpointName = "CSP Connector"

// Triggers lists every event that wakes the connector. The service registers a handler for each, and
// `connector dataverse install` registers a Dataverse step for each: one declaration for both.
func Triggers() []work.Trigger {
	return slices.Concat([]work.Trigger{connectivity.ProviderTrigger(), jobs.RowTrigger()}, provisioning.Triggers(), provisioning.SubscriptionTriggers(), provideraccounts.Triggers(), agreements.Triggers(), agreements.TemplateTriggers())
}

// ErrNoIntakeToRegister is returned when the configuration names no intake to register.
var ErrNoIntakeToRegister = errors.New("no event intake to register: set SERVICEBUS_NAMESPACE (or SERVICEBUS_CONNECTION_STRING) with SERVICEBUS_SEND_CONNECTION_STRING for Service Bus, or CONNECTOR_PUBLIC_URL with CONNECTOR_WEBHOOK_KEY for the webhook")

// RegistrationFor builds the event registration for the configured intake: a Service Bus queue endpoint
// (Dataverse posts with the Send-only rule in SERVICEBUS_SEND_CONNECTION_STRING) when Service Bus is
// configured, else a webhook endpoint at CONNECTOR_PUBLIC_URL/webhooks/dataverse with the webhook key;
// and one asynchronous post-operation step per trigger.
func RegistrationFor(cfg Config, triggers []work.Trigger) (dataverse.Registration, error) {
	var ep dataverse.ServiceEndpoint
	switch {
	case cfg.ServiceBusNamespace != "" || cfg.ServiceBusConnectionString != "":
		if cfg.ServiceBusSendConnectionString == "" {
			return dataverse.Registration{}, errors.New("registering the Service Bus endpoint needs SERVICEBUS_SEND_CONNECTION_STRING: the connection string of a Send-only rule on the queue (see infra/README.md)")
		}
		send, err := ParseServiceBusConnectionString(cfg.ServiceBusSendConnectionString)
		if err != nil {
			return dataverse.Registration{}, fmt.Errorf("SERVICEBUS_SEND_CONNECTION_STRING: %w", err)
		}
		if send.EntityPath != "" && !strings.EqualFold(send.EntityPath, cfg.ServiceBusQueue) {
			return dataverse.Registration{}, fmt.Errorf("SERVICEBUS_SEND_CONNECTION_STRING is a rule of queue %q, but SERVICEBUS_QUEUE is %q: Dataverse's posts would be refused", send.EntityPath, cfg.ServiceBusQueue)
		}
		ep = dataverse.ServiceEndpoint{Name: EndpointName, Kind: dataverse.EndpointServiceBusQueue,
			Description:      "Dataverse events for the CSP Connector (Json messages on a Service Bus queue).",
			NamespaceAddress: "sb://" + send.Namespace + "/", Path: cfg.ServiceBusQueue, SASKeyName: send.KeyName, SASKey: send.Key}
	case cfg.PublicURL != "" && cfg.WebhookKey != "":
		ep = dataverse.ServiceEndpoint{Name: EndpointName, Kind: dataverse.EndpointWebhook,
			Description: "Dataverse events for the CSP Connector (webhook).", URL: cfg.PublicURL + intake.WebhookPath}
		if cfg.WebhookHeader != "" {
			ep.HeaderName, ep.HeaderValue = cfg.WebhookHeader, cfg.WebhookKey
		} else {
			ep.WebhookKey = cfg.WebhookKey
		}
	default:
		return dataverse.Registration{}, ErrNoIntakeToRegister
	}
	reg := dataverse.Registration{Endpoint: ep}
	for _, tr := range triggers {
		st := dataverse.Step{Name: fmt.Sprintf("%s: %s of %s", EndpointName, tr.Message, tr.Table), Message: tr.Message, Table: tr.Table, Images: tr.Images}
		if tr.Table == "" {
			st.Name = fmt.Sprintf("%s: %s", EndpointName, tr.Message)
		}
		if strings.EqualFold(tr.Message, "Update") {
			st.FilteringAttributes = tr.Columns
		}
		reg.Steps = append(reg.Steps, st)
	}
	return reg, nil
}
