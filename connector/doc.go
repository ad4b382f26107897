// Package connector wires the CSP Connector together; the work is done in its packages, and their
// imports tell the story.
//
// Follow a license change event. Dataverse posts it to Service Bus (or to the webhook); package intake
// receives it, decodes the RemoteExecutionContext with package event and lets its Gate judge it — another
// organization's message or one that can never succeed is dead-lettered with the reason, the connector's
// own write-back is ignored. What is left goes to package work: one queue keyed by row, where duplicates
// collapse and one row runs at a time. Its Dispatcher hands the row to the handler its workflow
// registered — package provisioning for a license change — which re-reads the row, decides with the pure
// rules of package mapping, claims the row, makes the change in Partner Center exactly once and writes the
// outcome and a message for people back onto the row. The intake then settles the message.
//
// The other workflows — provideraccounts, agreements, subscriptions, connectivity — are wired the same way; package jobs
// runs their scheduled work under a lease, package notify tells people and flows what needs them, and
// package api serves the operations Power Automate calls. This package holds only what joins them: the
// configuration (every problem reported at once), the clients built from it, the Service that wires and
// runs everything, the Dataverse event registration, and the sandbox that runs the product on its
// simulators.
//
// Imports run one way: cmd → connector → api → the workflows → jobs, notify, work, intake, event →
// mapping, dataverse, partnercenter. TestImportsRunOneWay holds the code to it.
package connector
