package testrig

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/dataversetest"
	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// Sims is both simulators on one hand-moved clock, with a client on each: what a workflow's tests start
// from before they add the rows their cases need.
type Sims struct {
	DVS   *dataversetest.Server
	PCS   *partnercentertest.Server
	DV    *dataverse.Client
	PC    *partnercenter.Client
	Clock *Clock
}

// SimOptions tune StartSims; zero values take the defaults.
type SimOptions struct {
	// PartnerCenter configures the Partner Center simulator; StartSims sets its clock, makes sign-in
	// optional and turns its rate limit off.
	PartnerCenter partnercentertest.Options
	// Dataverse and PartnerCenterClient configure the clients; StartSims points them at the simulators.
	// Without retry settings they retry once, after a millisecond.
	Dataverse           dataverse.ClientOptions
	PartnerCenterClient partnercenter.ClientOptions
}

// StartSims starts the Dataverse simulator with the connector's schema and the Partner Center simulator,
// both on one clock standing at 21 November 2026 10:00 UTC, and a client on each; all end with the test.
func StartSims(t testing.TB, o SimOptions) *Sims {
	t.Helper()
	s := &Sims{Clock: NewClock(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))}
	var err error
	s.DVS, err = dataversetest.NewServer(dataversetest.Options{Tables: schema.Schema().Tables, Now: s.Clock.Now})
	require.NoError(t, err)
	t.Cleanup(s.DVS.Close)
	pco := o.PartnerCenter
	pco.Now, pco.AuthOptional, pco.DisableRateLimit = s.Clock.Now, true, true
	s.PCS, err = partnercentertest.NewServer(pco)
	require.NoError(t, err)
	t.Cleanup(s.PCS.Close)

	dvo := o.Dataverse
	dvo.HTTPClient = s.DVS.Client()
	if dvo.Tables == nil {
		dvo.Tables = schema.Schema().Tables
	}
	if dvo.MaxRetries == 0 && dvo.MinRetryWait == 0 {
		dvo.MaxRetries, dvo.MinRetryWait, dvo.MaxRetryWait = 1, time.Millisecond, time.Millisecond
	}
	s.DV, err = dataverse.NewClient(s.DVS.URL, nil, &dvo)
	require.NoError(t, err)
	pcc := o.PartnerCenterClient
	pcc.HTTPClient = s.PCS.Client()
	if pcc.MaxRetries == 0 && pcc.MinRetryWait == 0 {
		pcc.MaxRetries, pcc.MinRetryWait, pcc.MaxRetryWait = 1, time.Millisecond, time.Millisecond
	}
	s.PC, err = partnercenter.NewClient(s.PCS.URL, partnercenter.Credentials{}, &pcc)
	require.NoError(t, err)
	return s
}
