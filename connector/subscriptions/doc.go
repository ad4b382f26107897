// Package subscriptions keeps csp_subscription rows in step with Partner Center's subscriptions: the
// Subscription Sync lists each mapped customer's subscriptions (one listing per customer, a page at a
// time), upserts the rows by their alternate key (provider account + Partner Center subscription id),
// writes nothing for a row that did not change, and records every change Partner Center made on its own
// (drift) as a license change with source Provider, so billing sees each change with its source. Whether
// a change of ours explains a difference is read when the difference is found, so the sync may run while
// changes are being provisioned. A subscription with a change of ours in flight is never touched: what
// that change does not explain is reported instead, as the run's summary, an in-app notice and a
// SubscriptionDrift event.
package subscriptions
