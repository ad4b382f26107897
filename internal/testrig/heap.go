package testrig

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MeasureHeap times run, under the benchmark's timer, and samples the live heap every millisecond while
// it runs, with GOGC at gcPercent: lowered (5) so that garbage waiting for collection does not pass for
// live data, or the default (100) for the time. peak is the live heap above what it was before.
func MeasureHeap(b *testing.B, gcPercent int, run func()) (wall time.Duration, peak uint64) {
	old := debug.SetGCPercent(gcPercent)
	defer debug.SetGCPercent(old)
	runtime.GC()
	before := heapLive()
	var highest atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if h := heapLive(); h > highest.Load() {
					highest.Store(h)
				}
			}
		}
	})
	b.StartTimer()
	start := time.Now()
	run()
	wall = time.Since(start)
	b.StopTimer()
	close(stop)
	wg.Wait()
	if h := highest.Load(); h > before {
		peak = h - before
	}
	return wall, peak
}

func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
