package partnercenter_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// BenchmarkListCustomers lists every customer of a partner with 1,000 and with 10,000 customers, over
// loopback HTTP to the simulator, at the page size Partner Center allows (500). It reports the requests
// made, which must equal the number of pages, and the peak live heap the listing adds above what was live
// before it started, which must not grow with the number of customers: the client holds one page at a
// time. Live heap is sampled every 100 customers after a forced collection, because the heap before
// collection follows the collector's pacing (which scales with the simulator's data in the same process),
// not what the client keeps. The wall time includes the client's own per-partner rate limiter pacing the
// page requests (500 per minute: a burst of 10, then about 8 per second).
//
//	go test -run XXX -bench BenchmarkListCustomers -benchtime 1x ./partnercenter/
func BenchmarkListCustomers(b *testing.B) {
	peaks := map[int]uint64{}
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("customers=%d", n), func(b *testing.B) {
			srv, err := partnercentertest.NewServer(partnercentertest.Options{AuthOptional: true})
			require.NoError(b, err)
			defer srv.Close()
			for i := range n {
				require.NoError(b, srv.AddCustomer(partnercentertest.Customer{TenantID: tenant(i), CompanyName: fmt.Sprintf("Customer %05d Ltd", i), Domain: fmt.Sprintf("customer%d.onmicrosoft.com", i)}))
			}
			c, err := partnercenter.NewClient(srv.URL, partnercenter.Credentials{}, &partnercenter.ClientOptions{HTTPClient: srv.Client(), PageSize: partnercenter.DefaultPageSize})
			require.NoError(b, err)
			var peak uint64
			requests := 0
			for b.Loop() {
				srv.ResetRequests()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base := ms.HeapAlloc
				count := 0
				for _, err := range c.Customers(b.Context(), nil) {
					require.NoError(b, err)
					if count++; count%100 == 0 {
						runtime.GC()
						runtime.ReadMemStats(&ms)
						if ms.HeapAlloc > base {
							peak = max(peak, ms.HeapAlloc-base)
						}
					}
				}
				require.Equal(b, n, count)
				requests = len(srv.Requests())
			}
			pages := (n + partnercenter.DefaultPageSize - 1) / partnercenter.DefaultPageSize
			b.ReportMetric(float64(requests), "requests")
			b.ReportMetric(float64(pages), "pages")
			b.ReportMetric(float64(peak)/1024, "peak-heap-KiB")
			if requests != pages {
				b.Fatalf("%d requests for %d pages", requests, pages)
			}
			peaks[n] = peak
		})
	}
	// The live heap a listing needs is a page's worth, whatever the number of customers.
	if small, large := peaks[1_000], peaks[10_000]; small > 0 && large > 2*small {
		b.Fatalf("peak heap grew with the customer count: %d KiB for 1,000, %d KiB for 10,000", small/1024, large/1024)
	}
}
