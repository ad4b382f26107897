// Package notify tells people and flows what needs them: in-app notifications in Dynamics to the
// configured users, a message on a Service Bus topic, and a POST to every webhook subscription (the
// Power Automate trigger). A notification is written to an outbox table in Dataverse before it is
// delivered, so one a replica could not finish is delivered by another; each channel de-duplicates by
// the notification's id. When the outbox cannot be written the notification is delivered from memory
// only, and PublishKept says so to a caller that records on its rows what was announced. CallbackPolicy keeps webhook callbacks to public https addresses.
package notify
