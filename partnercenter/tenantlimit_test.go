package partnercenter_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// TestSubscriptionReadsUnderTenantLimit measures the client's per-tenant limiter against Partner Center's
// published limit: 500 requests per minute per tenant for the customer and subscription resources. Three
// customer tenants are read at once, two readers per tenant, 1,000 subscription reads per tenant (two
// minutes of the limit), against the simulator enforcing that limit as a sliding window, with the client's
// limiter at its default (the same limit).
//
// It runs in a testing/synctest bubble over the simulator's in-memory transport, so a request takes no time
// and the clock moves only while the limiter waits: the figures describe the limiter's design, not how many
// HTTP requests the machine can serve (a benchmark over loopback with the window scaled down measured that
// instead). The targets: no answer is a 429, no sliding minute holds more than 500 requests of one tenant,
// and the sustained rate is at least 90% of the allowed rate. By design it is about 96%: a burst of 10,
// then 480 a minute, so no minute holds more than 490. A benchmark cannot run in a bubble (synctest.Test
// takes a *testing.T), so this is a test, and it logs its figures:
//
//	go test -run TestSubscriptionReadsUnderTenantLimit -v ./partnercenter/
func TestSubscriptionReadsUnderTenantLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const tenants, readers, perReader = 3, 2, 500
		srv := partnercentertest.New(partnercentertest.Options{AuthOptional: true})
		for i := range tenants {
			subs := make([]partnercentertest.Subscription, 5)
			for j := range subs {
				subs[j] = partnercentertest.Subscription{ID: fmt.Sprintf("sub-%d-%d", i, j), OfferID: "CFQ7TTC0LH18:0001:CFQ7TTC0K971", Quantity: 1 + j}
			}
			require.NoError(t, srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(i), CompanyName: fmt.Sprintf("Tenant %d", i), Subscriptions: subs}))
		}
		c, err := partnercenter.NewClient(srv.URL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: srv.InMemoryClient()})
		require.NoError(t, err)

		// sent[i] holds the fake time of each read of tenant i; a read takes no time in the bubble, so that
		// is when the simulator counted it.
		sent := make([][]time.Time, tenants)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range tenants {
			var mu sync.Mutex
			for r := range readers {
				wg.Go(func() {
					for j := range perReader {
						_, err := c.Subscription(t.Context(), tenant(i), fmt.Sprintf("sub-%d-%d", i, (r+j)%5))
						if !assert.NoError(t, err) {
							return
						}
						mu.Lock()
						sent[i] = append(sent[i], time.Now())
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		elapsed := time.Since(start)

		throttled := 0
		for _, r := range srv.Requests() {
			if r.Status == http.StatusTooManyRequests {
				throttled++
			}
		}
		peak := 0
		for _, times := range sent {
			require.Len(t, times, readers*perReader)
			first := 0
			for last := range times {
				for times[last].Sub(times[first]) >= partnercenter.DefaultTenantWindow {
					first++
				}
				peak = max(peak, last-first+1)
			}
		}
		allowed := float64(tenants*partnercenter.DefaultTenantRequests) / partnercenter.DefaultTenantWindow.Seconds()
		achieved := float64(tenants*readers*perReader) / elapsed.Seconds()
		share := achieved / allowed
		t.Logf("%d reads over %d tenants in %v of fake time: %.1f%% of the allowed rate (%.1f of %.1f requests/s), "+
			"%d answers 429, at most %d requests of one tenant in any minute (limit %d)",
			tenants*readers*perReader, tenants, elapsed, share*100, achieved, allowed, throttled, peak, partnercenter.DefaultTenantRequests)

		assert.Zero(t, throttled, "the client's limiter should prevent every 429")
		assert.LessOrEqual(t, peak, partnercenter.DefaultTenantRequests, "requests of one tenant in a sliding minute")
		assert.GreaterOrEqual(t, share, 0.90, "share of the allowed rate achieved; the target is 90%")
	})
}
