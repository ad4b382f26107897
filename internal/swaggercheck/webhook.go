package swaggercheck

import "strings"

// checkWebhookTrigger checks the shape Power Automate needs for a webhook trigger
// (x-ms-trigger "single"): the platform POSTs a subscription carrying its callback URL, expects
// 201 with a Location naming the subscription, later sends DELETE to that Location, and
// validates each delivered event against x-ms-notification-content.
func (c *checker) checkWebhookTrigger(op operation, ops []operation) {
	loc := op.loc()
	if op.method != "post" {
		c.report(loc, "is a webhook trigger (x-ms-trigger \"single\") but not a POST; the platform subscribes with POST")
	}
	if _, ok := op.item["x-ms-notification-content"]; !ok {
		c.report(field("paths", op.path), "holds the webhook trigger %s but has no x-ms-notification-content describing the events it delivers", op.id())
	}
	c.checkCallbackURL(op)
	if _, ok := object(op.node["responses"])["201"]; !ok {
		c.report(field(loc, "responses"), "has no 201; a webhook trigger must answer 201 Created with a Location naming the subscription")
	}
	c.checkUnsubscribe(op, ops)
}

// checkCallbackURL checks that exactly one body property receives the platform's callback URL,
// hidden from makers.
func (c *checker) checkCallbackURL(op operation) {
	loc := op.loc()
	var body map[string]any
	for _, p := range c.parameters(op) {
		if in, _ := text(p["in"]); in == "body" {
			body = deref(c.root, object(p["schema"]))
		}
	}
	props := object(body["properties"])
	var urls []string
	for _, name := range sortedKeys(props) {
		if object(props[name])["x-ms-notification-url"] == true {
			urls = append(urls, name)
		}
	}
	switch len(urls) {
	case 0:
		c.report(loc, "is a webhook trigger but its body has no property with x-ms-notification-url: true to receive the callback URL")
	case 1:
		if !isInternal(object(props[urls[0]])) {
			c.report(loc, "is a webhook trigger whose callback URL property %q is not x-ms-visibility internal; makers must not see or fill it", urls[0])
		}
	default:
		c.report(loc, "is a webhook trigger with %d properties marked x-ms-notification-url (%s); exactly one receives the callback URL",
			len(urls), strings.Join(urls, ", "))
	}
}

// checkUnsubscribe checks that the Location the trigger returns maps onto an internal DELETE
// operation on `<trigger path>/{id}`.
func (c *checker) checkUnsubscribe(trigger operation, ops []operation) {
	var deletes []operation
	for _, op := range ops {
		if op.method == "delete" && isChildTemplate(trigger.path, op.path) {
			deletes = append(deletes, op)
		}
	}
	if len(deletes) == 0 {
		c.report(trigger.loc(), "is a webhook trigger but there is no DELETE operation on %s/{id} for the platform to unsubscribe with",
			strings.TrimSuffix(trigger.path, "/"))
		return
	}
	var visible []string
	for _, op := range deletes {
		if isInternal(op.node) {
			return
		}
		visible = append(visible, op.loc())
	}
	c.report(trigger.loc(), "is a webhook trigger whose unsubscribe operation (%s) is not x-ms-visibility internal, so it would show as an action",
		strings.Join(visible, ", "))
}

// isChildTemplate reports whether child is parent followed by one templated segment:
// `/v1/subscriptions/{subscriptionId}` under `/v1/subscriptions`.
func isChildTemplate(parent, child string) bool {
	rest, ok := strings.CutPrefix(child, strings.TrimSuffix(parent, "/")+"/")
	return ok && strings.HasPrefix(rest, "{") && strings.HasSuffix(rest, "}") && !strings.ContainsAny(rest, "/") &&
		strings.Count(rest, "{") == 1
}
