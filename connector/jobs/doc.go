// Package jobs runs the connector's scheduled work — the Provider Account Sync, the Attestation Check,
// the Provisioning Sweep, Verify Connectivity, the health report — under a lease on its csp_job row, so
// one replica runs each at a time, and records every run in csp_jobrun with its counts and summary. Run
// requested on (the Run Now button) runs a job at once, by the request rule of package request.
package jobs
