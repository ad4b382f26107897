// Package api is the connector's HTTP API under /api/v1, for Power Automate flows and operators: one
// route table serves the operations and generates their OpenAPI 2.0 document (the custom connector's
// definition). Callers sign in with a Microsoft Entra ID token or an API key (package apiauth); answers
// are JSON, errors application/problem+json; long work answers 202 with a Location to poll. The
// operations call the workflows through Deps and never reach into the service that wires them.
package api
