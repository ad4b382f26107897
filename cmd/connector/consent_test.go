package main

import (
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/partnercenter"
	"github.com/cspconnector/csp-connector/partnercenter/partnercentertest"
)

// consentRun is `connector pc consent` running against the Partner Center simulator's token endpoint,
// with the address it printed.
type consentRun struct {
	srv     *partnercentertest.Server
	env     map[string]string
	file    string
	out     *syncBuffer
	errs    *syncBuffer
	done    chan error
	authURL *url.URL
}

func startConsent(t *testing.T) *consentRun {
	t.Helper()
	srv, err := partnercentertest.NewServer(partnercentertest.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return startConsentWith(t, srv, nil)
}

// startConsentWith runs the consent against srv, with more settings in extra (Dataverse's, for a command
// run after it).
func startConsentWith(t *testing.T, srv *partnercentertest.Server, extra map[string]string) *consentRun {
	t.Helper()
	var err error
	c := &consentRun{srv: srv, file: filepath.Join(t.TempDir(), "pc-refresh-token"), out: &syncBuffer{}, errs: &syncBuffer{}, done: make(chan error, 1)}
	c.env = map[string]string{
		"PARTNERCENTER_ENDPOINT": srv.URL, "PARTNERCENTER_TOKEN_URL": srv.TokenURL(), "PARTNERCENTER_TENANT_ID": srv.PartnerTenantID(),
		"PARTNERCENTER_CLIENT_ID": srv.ClientID(), "PARTNERCENTER_CLIENT_SECRET": srv.ClientSecret(), "PARTNERCENTER_REFRESH_TOKEN_FILE": c.file,
	}
	maps.Copy(c.env, extra)
	go func() {
		c.done <- run(t.Context(), []string{"pc", "consent", "--timeout", "1m"}, getenv(c.env), nil, c.out, c.errs)
	}()
	printed := regexp.MustCompile(`(?m)^  (http://\S+)$`)
	require.Eventually(t, func() bool { return printed.MatchString(c.out.String()) }, 10*time.Second, 10*time.Millisecond, "stderr: %s", c.errs.String())
	c.authURL, err = url.Parse(printed.FindStringSubmatch(c.out.String())[1])
	require.NoError(t, err)
	return c
}

// redirectURI is where the command waits for the sign-in.
func (c *consentRun) redirectURI() string { return c.authURL.Query().Get("redirect_uri") }

func (c *consentRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("pc consent did not finish")
		return nil
	}
}

func getPage(t *testing.T, u string) (int, string) {
	t.Helper()
	res, err := http.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestConsentEndToEnd: the printed address is the simulator's authorize endpoint with PKCE; an answer
// with another state is refused and nothing is written; the test then plays the browser (the simulator
// signs the partner user in and redirects to the loopback listener), the command redeems the code and
// writes the refresh token to PARTNERCENTER_REFRESH_TOKEN_FILE (0600), which the connector's client then
// uses for app+user calls.
func TestConsentEndToEnd(t *testing.T) {
	t.Parallel()
	c := startConsent(t)
	q := c.authURL.Query()
	assert.Equal(t, c.srv.AuthorizeURL(), c.authURL.Scheme+"://"+c.authURL.Host+c.authURL.Path, "the authorize endpoint beside PARTNERCENTER_TOKEN_URL")
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Len(t, q.Get("code_challenge"), 43)
	assert.Equal(t, partnercenter.ConsentScope, q.Get("scope"))
	assert.Regexp(t, `^http://localhost:\d+$`, c.redirectURI())
	require.NotEmpty(t, q.Get("state"))

	status, page := getPage(t, c.redirectURI()+"/?code=planted&state=not-the-one")
	assert.Equal(t, http.StatusBadRequest, status, "an answer with another state is refused")
	assert.Contains(t, page, "does not belong to the consent that is waiting")
	assert.NoFileExists(t, c.file)
	assert.Contains(t, c.errs.String(), "state does not match")

	status, page = getPage(t, c.authURL.String()) // the browser: sign-in, then the redirect to the listener
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, page, "Signed in.")
	require.NoError(t, c.wait(t), "stderr: %s", c.errs.String())

	info, err := os.Stat(c.file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	raw, err := os.ReadFile(c.file)
	require.NoError(t, err)
	token := strings.TrimSpace(string(raw))
	require.NotEmpty(t, token)
	assert.Contains(t, c.out.String(), "saved in "+c.file)
	assert.Contains(t, c.out.String(), "Next: connector setup")
	assert.NotContains(t, c.out.String()+c.errs.String(), token, "nothing secret is printed")
	assert.NotContains(t, c.out.String()+c.errs.String(), c.srv.ClientSecret())

	// The connector reads the file: app+user calls work, and the token is rotated in place.
	cfg, err := connector.LoadConfig(getenv(c.env), connector.NeedPartnerCenter)
	require.NoError(t, err)
	pc, err := connector.NewPartnerCenterClient(cfg, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	meta, err := pc.AgreementMetadata(t.Context(), partnercenter.MicrosoftCustomerAgreement)
	require.NoError(t, err)
	require.Len(t, meta, 1)
	assert.Equal(t, partnercentertest.MCATemplateID, meta[0].TemplateID)
	rotated, err := os.ReadFile(c.file)
	require.NoError(t, err)
	assert.NotEqual(t, token, strings.TrimSpace(string(rotated)), "the exchange rotated the token and the file holds the new one")
}

// TestConsentRefusalsAreSaidInWords: a sign-in that comes back with error= ends the command with the
// reason in words and Entra's code; nothing is written.
func TestConsentRefusalsAreSaidInWords(t *testing.T) {
	t.Parallel()
	c := startConsent(t)
	state := url.QueryEscape(c.authURL.Query().Get("state"))
	status, page := getPage(t, c.redirectURI()+"/?state="+state+"&error=access_denied&error_description="+
		url.QueryEscape("AADSTS65004: User declined to consent to access the app.\r\nTrace ID: 1"))
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, page, "the permissions were not accepted")
	err := c.wait(t)
	require.Error(t, err)
	assert.Equal(t, "The sign-in did not complete: the sign-in was cancelled, or the permissions were not accepted (access_denied, AADSTS65004). Nothing was saved; fix that and run connector pc consent again.", err.Error())
	assert.NoFileExists(t, c.file)
}

// TestConsentRefusesACodeOfAnotherSignIn: a code issued for another authorization request (another PKCE
// challenge: an intercepted or planted code) arriving with the right state is refused by the simulator's
// token endpoint, since the command's verifier does not match; nothing is written.
func TestConsentRefusesACodeOfAnotherSignIn(t *testing.T) {
	t.Parallel()
	c := startConsent(t)
	other := partnercenter.AuthorizationRequest{TokenURL: c.srv.TokenURL(), ClientID: c.srv.ClientID(), RedirectURI: c.redirectURI(),
		State: "attacker", PKCE: partnercenter.NewPKCE()}
	otherURL, err := other.URL()
	require.NoError(t, err)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Get(otherURL)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusFound, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	code := loc.Query().Get("code")
	require.NotEmpty(t, code)

	status, page := getPage(t, c.redirectURI()+"/?code="+url.QueryEscape(code)+"&state="+url.QueryEscape(c.authURL.Query().Get("state")))
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, page, "nothing was saved")
	err = c.wait(t)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the token endpoint refused the sign-in's code")
	assert.Contains(t, err.Error(), "invalid_grant, AADSTS50148")
	assert.NotContains(t, err.Error(), code)
	assert.NoFileExists(t, c.file)
}
