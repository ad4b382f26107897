package api

import (
	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
)

// Deps is what the API uses of the connector: the workflows whose operations it exposes, the job runner,
// the work queue it hands rows to, and Dataverse for the rows it reads.
type Deps struct {
	DV         *dataverse.Client
	Prov       *provisioning.Provisioner
	Accounts   *provideraccounts.Workflow
	Agreements *agreements.Workflow
	Conn       *connectivity.Checker
	Jobs       *jobs.Runner
	Queue      *work.Queue
	// Callbacks is the rule for webhook subscriptions' callback URLs, the one the deliverer applies.
	Callbacks notify.CallbackPolicy
	// Started reports whether the connector has reached Dataverse; before, operations answer 503.
	Started func() bool
}
