// Package intake is where Dataverse's events come in: the Service Bus listener (peek-lock, lock renewal,
// one settlement per message) and the webhook endpoint both decode the RemoteExecutionContext
// (package event), let the Gate judge it — another organization's message or one that can never
// succeed is dead-lettered with the reason, the connector's own write-back is ignored — and hand it to
// the work queue (package work) keyed by its row.
package intake
