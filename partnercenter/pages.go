package partnercenter

import (
	"context"
	"fmt"
	"iter"
	"net/http"
)

// pages yields the items of a collection one page at a time, from first on: it follows links.next with
// the headers Partner Center gives it (MS-ContinuationToken), as the SDK's enumerators do. Only one page
// is held. A failure is yielded once, as the last element.
func pages[T any](ctx context.Context, c *Client, first call) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		cl := first
		for page := 1; ; page++ {
			var p collection[T]
			if _, err := c.doJSON(ctx, cl, &p); err != nil {
				yield(zero, err)
				return
			}
			for _, item := range p.Items {
				if !yield(item, nil) {
					return
				}
			}
			next, ok := p.Links["next"]
			if !ok || next.URI == "" {
				return
			}
			h := http.Header{}
			for _, kv := range next.Headers {
				h.Set(kv.Key, kv.Value)
			}
			if h.Get("MS-ContinuationToken") == "" && p.ContinuationToken != "" {
				h.Set("MS-ContinuationToken", p.ContinuationToken)
			}
			cl = call{method: http.MethodGet, path: next.URI, header: h, tenant: first.tenant, op: fmt.Sprintf("%s (page %d)", first.op, page+1)}
		}
	}
}
