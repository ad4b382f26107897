// Package subscriptions keeps csp_subscription rows in step with Partner Center's subscriptions: the
// Subscription Sync lists each mapped customer's subscriptions (one listing per customer, a page at a
// time), upserts the rows by their alternate key (provider account + Partner Center subscription id),
// writes nothing for a row that did not change, and records every change Partner Center made on its own
// (drift) as a license change with source Provider, so billing sees each change with its source. A
// subscription with a change of ours in flight is never touched: its drift is reported instead, as the
// run's summary, an in-app notice and a SubscriptionDrift event.
package subscriptions
