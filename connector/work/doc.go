// Package work is the one queue everything that wants a row reconciled goes through — events from
// Service Bus and the webhook, sweeps, jobs, the HTTP API — keyed by (table, row id): submissions for a
// key collapse, one key runs at a time, different keys run in parallel up to the worker count. The
// Dispatcher hands each run to the handler a workflow registered for its table, and its Triggers say
// which Dataverse events wake that handler (the same declaration registers the Dataverse steps and
// drives the intake's loop guard).
package work
