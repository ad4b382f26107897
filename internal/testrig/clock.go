// Package testrig holds what the connector's tests share: the Dataverse simulator with the schema and a
// client on it, readers of the job tables, and a clock a test moves by hand, for the code
// that takes its time from a func() time.Time. Tests of code that sleeps or uses timers use
// testing/synctest instead.
package testrig

import (
	"sync"
	"time"
)

// Clock is a time that moves only when a test moves it. Its zero value stands at the zero time; NewClock
// starts it somewhere.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time; pass it where code takes a func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
