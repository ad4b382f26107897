package request_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/cspconnector/csp-connector/connector/request"
)

func TestRequestRule(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	assert.Equal(t, request.None, request.Of(time.Time{}, last))
	assert.Equal(t, request.Waiting, request.Of(last.Add(time.Second), last))
	assert.Equal(t, request.Stale, request.Of(last, last), "the same second is already done")
	assert.Equal(t, request.Stale, request.Of(last.Add(500*time.Millisecond), last), "Dataverse keeps seconds")
	assert.Equal(t, request.Waiting, request.Of(last.Add(3*time.Hour), last), "a date to come is a request now")

	started, now := last.Add(time.Hour), last.Add(time.Hour+time.Minute)
	assert.True(t, request.Served(started.Add(-time.Minute), started, now), "made before the work started")
	assert.False(t, request.Served(started.Add(30*time.Second), started, now), "made while it ran: left for the next run")
	assert.True(t, request.Served(now.Add(3*time.Hour), started, now), "dated to come: served now")
	assert.False(t, request.Served(time.Time{}, started, now))
	// A button dates its request by Dataverse's clock rounded up to the next second, so a request made a
	// moment before the work started can be dated up to a second after it (TestSandboxAppInABrowser:
	// Verify Connectivity was never answered).
	startedMid := started.Add(300 * time.Millisecond)
	assert.True(t, request.Served(started.Add(time.Second), startedMid, now), "dated the next whole second, made before the work started")
	assert.False(t, request.Served(started.Add(2*time.Second), startedMid, now), "a later second: made while it ran")
	assert.False(t, request.InFuture(now.Add(30*time.Second), now), "within the clock skew")
	assert.True(t, request.InFuture(now.Add(2*time.Minute), now))

	note := request.StaleNote("Run requested on", last.Add(-time.Hour), last, "the job ran", "Set it again.")
	msg := request.WithNote(note, "Run requested on", "Last run succeeded.")
	assert.Equal(t, note+"\nLast run succeeded.", msg)
	again := request.WithNote(note, "Run requested on", msg)
	assert.Equal(t, msg, again, "a later note replaces the earlier one")
}
