package api

import (
	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/subscriptions"
)

// syncSubscriptionsRoute starts the Subscription Sync, as its Run Now does.
func syncSubscriptionsRoute() apiRoute {
	return apiRoute{Method: "POST", Path: Prefix + "/subscriptions/sync", ID: "SyncSubscriptions", Role: apiauth.RoleOperator,
		Summary:     "Sync subscriptions now",
		Description: "Starts the Subscription Sync: each mapped customer's Partner Center subscriptions become Subscription rows, and changes made in Partner Center are recorded as license changes with source Provider (or reported, when a change of ours is in flight). Poll the run until it finishes; its summary lists the mismatches.",
		Responses:   []apiResponse{{Status: 202, Description: "The sync started (or was already running): poll Location.", Body: JobRunView{}, Headers: []string{"Location", "Retry-After"}}},
		handle:      startJob(subscriptions.SyncJobName)}
}
