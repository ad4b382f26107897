// Package connectivity verifies that the connector can reach what it needs — Dataverse, Partner Center
// (app-only and, when configured, app+user) and Service Bus — and records the outcome on the Partner
// Center provider rows in words, with the technical detail in their system message. The Verify
// Connectivity job runs it on a schedule, and a provider's Verify requested on (its button) runs it now.
package connectivity
