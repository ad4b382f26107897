package intake

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/connector/metrics"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/internal/testrig"
)

var (
	testOrg  = uuid.MustParse("4a5e1b7c-0000-4000-8000-000000000001")
	testSelf = uuid.MustParse("4a5e1b7c-0000-4000-8000-0000000000aa")
	testUser = uuid.MustParse("4a5e1b7c-0000-4000-8000-0000000000bb")
	testRow  = uuid.MustParse("4a5e1b7c-0000-4000-8000-0000000000cc")
)

func testGate() *Gate {
	return &Gate{OrganizationID: testOrg, SelfUserID: testSelf, Triggers: []work.Trigger{
		{Table: "csp_licensechangelog", Message: "Create"},
		{Table: "csp_licensechangelog", Message: "Update", Columns: []string{"csp_provisioningstatus", "csp_quantity"},
			WriteBack: []string{"csp_provisioningstatus", "csp_provisioningmessage"}},
		{Table: "csp_licensechangelog", Message: "Delete"},
		{Table: "", Message: "csp_RunJob"},
	}}
}

func updateEvent(user uuid.UUID, cols ...string) event.Event {
	attrs := map[string]any{}
	for _, c := range cols {
		attrs[c] = nil
	}
	return event.Event{Message: "Update", Table: "csp_licensechangelog", RowID: testRow, OrganizationID: testOrg, InitiatingUserID: user,
		Target: &event.Entity{Table: "csp_licensechangelog", ID: testRow, Attributes: attrs, Columns: cols}}
}

func TestGateJudge(t *testing.T) {
	t.Parallel()
	foreign := updateEvent(testUser, "csp_quantity")
	foreign.OrganizationID = uuid.New()
	truncatedOwn := updateEvent(testSelf)
	truncatedOwn.Target, truncatedOwn.Truncated = nil, true
	truncated := truncatedOwn
	truncated.InitiatingUserID = testUser
	create := updateEvent(testSelf, "csp_quantity", "csp_name")
	create.Message = "Create"
	deleted := event.Event{Message: "Delete", Table: "csp_licensechangelog", RowID: testRow, OrganizationID: testOrg, InitiatingUserID: testUser,
		TargetRef: &dataverse.Ref{Table: "csp_licensechangelog", ID: testRow}}
	account := updateEvent(testUser, "name")
	account.Table = "account"
	customAPI := event.Event{Message: "csp_RunJob", OrganizationID: testOrg, InitiatingUserID: testUser}

	cases := []struct {
		name   string
		ev     event.Event
		action Action
		reason string
	}{
		{"another organization is rejected", foreign, ActionReject, ReasonForeignOrganization},
		{"a person changing a trigger column is work", updateEvent(testUser, "csp_quantity", "modifiedon"), ActionProcess, ""},
		{"a person changing other columns is not", updateEvent(testUser, "csp_name", "modifiedon"), ActionIgnore, "NoTriggerColumn"},
		{"the connector's own write-back never wakes it", updateEvent(testSelf, "csp_provisioningstatus", "csp_provisioningmessage", "modifiedon"), ActionIgnore, "OwnWrite"},
		{"the connector changing a trigger column that is not a write-back is work", updateEvent(testSelf, "csp_quantity"), ActionProcess, ""},
		{"a person's write of a write-back column that is a trigger is work", updateEvent(testUser, "csp_provisioningstatus"), ActionProcess, ""},
		{"a cut message from someone else is work (re-read the row)", truncated, ActionProcess, ""},
		{"a cut message from the connector is its own", truncatedOwn, ActionIgnore, "OwnAction"},
		{"the connector's own create is not work (no trigger columns)", create, ActionIgnore, "OwnWrite"},
		{"a person's delete is work", deleted, ActionProcess, ""},
		{"a table without triggers is ignored", account, ActionIgnore, "NoTrigger"},
		{"an unbound custom API is work", customAPI, ActionProcess, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := testGate().Judge(tc.ev)
			assert.Equal(t, tc.action, v.Action, "%+v", v)
			assert.Equal(t, tc.reason, v.Reason)
		})
	}
	assert.Equal(t, work.Key{Table: "csp_RunJob"}, work.KeyFor(customAPI))
	assert.Equal(t, work.Key{Table: "csp_licensechangelog", ID: testRow}, work.KeyFor(deleted))
}

type recorder struct {
	mu   sync.Mutex
	work []work.Batch
	err  error
}

func (r *recorder) handle(ctx context.Context, w work.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.work = append(r.work, w)
	return r.err
}

func (r *recorder) runs() []work.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]work.Batch(nil), r.work...)
}

func newTestIntake(t *testing.T, rec *recorder, opts work.Options) *Intake {
	d := work.NewDispatcher()
	d.Handle("csp_licensechangelog", rec.handle)
	q := work.NewQueue(d.Dispatch, opts)
	testrig.RunQueue(t, q)
	return &Intake{Gate: testGate(), Queue: q, Metrics: metrics.New()}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef-key"
	rec := &recorder{}
	in := newTestIntake(t, rec, work.Options{Workers: 2})
	byCode := httptest.NewServer(in.Webhook(WebhookOptions{Key: secret, MaxBody: 4096}))
	defer byCode.Close()
	byHeader := httptest.NewServer(in.Webhook(WebhookOptions{Key: secret, Header: "x-api-key"}))
	defer byHeader.Close()

	good := testrig.EventJSON(testOrg, testUser, "csp_licensechangelog", testRow, "csp_quantity")
	post := func(url, body string, header map[string]string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	cases := []struct {
		name   string
		url    string
		body   string
		header map[string]string
		status int
		detail string
	}{
		{"no key", byCode.URL + WebhookPath, good, nil, 401, "webhook key"},
		{"wrong key", byCode.URL + WebhookPath + "?code=0123456789abcdef-kez", good, nil, 401, "webhook key"},
		{"key in the header when the code is expected", byCode.URL, good, map[string]string{"x-api-key": secret}, 401, ""},
		{"code when the header is expected", byHeader.URL + "?code=" + secret, good, nil, 401, ""},
		{"too large", byCode.URL + "?code=" + secret, good + strings.Repeat(" ", 5000), nil, 413, "larger"},
		{"XML body", byCode.URL + "?code=" + secret, "<Entity/>", nil, 400, "Json"},
		{"another organization", byCode.URL + "?code=" + secret, testrig.EventJSON(uuid.New(), testUser, "csp_licensechangelog", testRow, "csp_quantity"), nil, 400, ReasonForeignOrganization},
		{"own write-back", byCode.URL + "?code=" + secret, testrig.EventJSON(testOrg, testSelf, "csp_licensechangelog", testRow, "csp_provisioningmessage"), nil, 202, "ignored"},
		{"accepted by code", byCode.URL + "?code=" + secret, good, nil, 202, "accepted"},
		{"accepted by header", byHeader.URL, good, map[string]string{"x-api-key": secret}, 202, "accepted"},
	}
	for _, tc := range cases {
		status, body := post(tc.url, tc.body, tc.header)
		assert.Equal(t, tc.status, status, "%s: %s", tc.name, body)
		assert.Contains(t, body, tc.detail, tc.name)
	}
	resp, err := http.Get(byCode.URL + "?code=" + secret)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	require.Eventually(t, func() bool {
		n := 0
		for _, w := range rec.runs() {
			n += len(w.Events)
		}
		return n == 2
	}, 5*time.Second, 10*time.Millisecond, "the two accepted events reach the handler, and only they")
	for _, w := range rec.runs() {
		assert.Equal(t, work.Key{Table: "csp_licensechangelog", ID: testRow}, w.Key)
		assert.Equal(t, []string{work.SourceWebhook}, w.Sources)
	}
}

func TestWebhookAnswers503WhenTheQueueIsFull(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef-key"
	block := make(chan struct{})
	defer close(block)
	d := work.NewDispatcher()
	d.Handle("csp_licensechangelog", func(ctx context.Context, w work.Batch) error { <-block; return nil })
	q := work.NewQueue(d.Dispatch, work.Options{Workers: 1, Limit: 1})
	testrig.RunQueue(t, q)
	in := &Intake{Gate: testGate(), Queue: q}
	srv := httptest.NewServer(in.Webhook(WebhookOptions{Key: secret, SubmitTimeout: 50 * time.Millisecond}))
	defer srv.Close()

	send := func(row uuid.UUID) int {
		resp, err := http.Post(srv.URL+"?code="+secret, "application/json", strings.NewReader(testrig.EventJSON(testOrg, testUser, "csp_licensechangelog", row, "csp_quantity")))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 202, send(uuid.New()))
	assert.Equal(t, 503, send(uuid.New()), "Dataverse retries a 503 once; a full queue must not swallow the event")
}

// TestWebhookThrottlesWrongKeys: an address that keeps presenting wrong keys is answered 429 until its
// allowance refills; the right key is never held up (behind an ingress every caller has one address, and
// Dataverse must not be locked out by someone else's guesses).
func TestWebhookThrottlesWrongKeys(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef-key"
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	in := newTestIntake(t, &recorder{}, work.Options{Workers: 1})
	h := in.Webhook(WebhookOptions{Key: secret, FailedKeys: 3, FailedKeyEvery: 10 * time.Second, Now: clock})
	post := func(addr, code string) int {
		r := httptest.NewRequest(http.MethodPost, WebhookPath+"?code="+code, strings.NewReader(testrig.EventJSON(testOrg, testUser, "csp_licensechangelog", testRow, "csp_quantity")))
		r.RemoteAddr = addr + ":50000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for range 3 {
		assert.Equal(t, http.StatusUnauthorized, post("203.0.113.9", "guess-guess-guess-1"))
	}
	assert.Equal(t, http.StatusTooManyRequests, post("203.0.113.9", "guess-guess-guess-2"))
	assert.Equal(t, http.StatusAccepted, post("203.0.113.9", secret), "the right key is not throttled, from the same address either")
	assert.Equal(t, http.StatusTooManyRequests, post("203.0.113.9", "guess-guess-guess-3"))
	assert.Equal(t, http.StatusUnauthorized, post("198.51.100.7", "guess-guess-guess-4"), "another address has its own allowance")
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	assert.Equal(t, http.StatusUnauthorized, post("203.0.113.9", "guess-guess-guess-5"), "the allowance refills")
}

// TestWebhookBodyErrorsNameNoAddresses: a body that stops arriving answers 400 without the socket
// addresses net/http's error carries; null and array bodies are "not a JSON object", not .NET XML.
func TestWebhookBodyErrorsNameNoAddresses(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef-key"
	in := newTestIntake(t, &recorder{}, work.Options{Workers: 1})
	srv := httptest.NewUnstartedServer(in.Webhook(WebhookOptions{Key: secret}))
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST %s?code=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"MessageName\":", WebhookPath, secret)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	answer, _ := io.ReadAll(conn)
	if len(answer) > 0 { // the server may also just close the connection
		assert.Contains(t, string(answer), "400")
		assert.NotContains(t, string(answer), "127.0.0.1")
		assert.NotContains(t, string(answer), "i/o timeout")
	}

	for _, body := range []string{"null", "[1,2]", `"text"`, "42"} {
		resp, err := http.Post(srv.URL+"?code="+secret, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		assert.Contains(t, string(b), "not a JSON object", body)
		assert.NotContains(t, string(b), "XML", body)
	}
}
