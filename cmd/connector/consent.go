package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// consentCommand is `connector pc consent`: the secure application model's one interactive step. A
// partner Admin agent signs in (with MFA) in their own browser; the connector receives the authorization
// code on a loopback listener, redeems it with its PKCE verifier and stores the first refresh token
// where it reads it (PARTNERCENTER_REFRESH_TOKEN_FILE).
func consentCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var port int
	var timeout time.Duration
	var noBrowser bool
	cmd := &cobra.Command{
		Use:   "consent",
		Short: "Sign in as a partner Admin agent once, and store the refresh token the connector uses for app+user calls",
		Long: `Sign in as a partner Admin agent (or Sales agent), with MFA, in your own browser, and store the secure
application model's refresh token in PARTNERCENTER_REFRESH_TOKEN_FILE, where the connector reads it.

The command listens on this machine (127.0.0.1, a free port unless --port is given), prints the address
to open, and waits for the sign-in to come back (authorization code with PKCE). The app registration needs
the redirect URI http://localhost (Web platform; the port is not part of the match) and the delegated
permission user_impersonation of Microsoft Partner Center. Run it on a machine with a browser; copy the
file (or put its content in Key Vault, as the deployment reads it) to where the connector runs. The token
is rotated on every use: the connector rewrites the file each time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			output, _ := cmd.Flags().GetString("output") // pc's --output, parsed already
			cfg, _, err := loadConfig(cmd, getenv, stderr)
			if err != nil {
				return err
			}
			if cfg.PartnerCenterAuth == connector.AuthNone {
				return errors.New("PARTNERCENTER_AUTH=none is a local simulator that takes no sign-in: there is nothing to consent to")
			}
			tokenURL := cfg.PartnerCenterTokenURL
			if tokenURL == "" {
				tokenURL = partnercenter.TokenURL(cfg.PartnerCenterTenantID)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			c := &consent{
				tokenURL: tokenURL, clientID: cfg.PartnerCenterClientID, secret: cfg.PartnerCenterClientSecret,
				store: partnercenter.FileTokenStore{Path: cfg.PartnerCenterRefreshTokenFile}, path: cfg.PartnerCenterRefreshTokenFile,
				stdout: stdout, stderr: stderr, openBrowser: !noBrowser, json: output == string(outputJSON),
			}
			if c.json { // stdout is for the script: the instructions go to the person on stderr
				c.say = stderr
			} else {
				c.say = stdout
			}
			c.verbose, _ = cmd.Flags().GetBool("verbose")
			return c.run(ctx, port)
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "loopback port to receive the sign-in on (0: a free one)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the sign-in")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "only print the address; do not try to open a browser")
	return withSettings(cmd, connector.NeedPartnerCenter, "PARTNERCENTER_CLIENT_SECRET", "PARTNERCENTER_REFRESH_TOKEN_FILE")
}

type consent struct {
	tokenURL, clientID, secret string
	store                      partnercenter.RefreshTokenStore
	path                       string
	stdout, stderr             io.Writer
	say                        io.Writer // what the person reads: stdout, or stderr with --output json
	openBrowser, verbose, json bool
}

// redirect is what the browser brought back to the listener.
type redirect struct {
	code, errName, errDescription string
	reply                         chan<- string // the page the browser shows: the outcome in words
}

func (c *consent) run(ctx context.Context, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("could not listen on 127.0.0.1 port %d for the sign-in to come back (%v): choose another --port", port, err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	listeners := []net.Listener{ln}
	// http://localhost may resolve to ::1 in the browser: listen there too when this machine has it.
	if ln6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
		listeners = append(listeners, ln6)
	}
	req := partnercenter.AuthorizationRequest{
		TokenURL: c.tokenURL, ClientID: c.clientID, RedirectURI: "http://localhost:" + strconv.Itoa(port),
		State: randomState(), PKCE: partnercenter.NewPKCE(),
	}
	authURL, err := req.URL()
	if err != nil {
		return err
	}
	got := make(chan redirect)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		if q.Get("state") != req.State {
			// Another sign-in's answer (an old browser tab), or a page trying to plant its own code.
			fmt.Fprintln(c.stderr, "A sign-in answer arrived that this consent did not ask for (its state does not match); it was ignored. Still waiting.")
			writePage(w, http.StatusBadRequest, "This sign-in answer does not belong to the consent that is waiting: it was ignored. Use the address the command printed.")
			return
		}
		reply := make(chan string, 1)
		select {
		case got <- redirect{code: q.Get("code"), errName: q.Get("error"), errDescription: q.Get("error_description"), reply: reply}:
		case <-r.Context().Done():
			return
		case <-ctx.Done():
			writePage(w, http.StatusGone, "The consent is no longer waiting. Run connector pc consent again.")
			return
		}
		select {
		case page := <-reply:
			writePage(w, http.StatusOK, page)
		case <-r.Context().Done():
		}
	})}
	for _, l := range listeners {
		go func() { _ = srv.Serve(l) }()
	}
	defer func() {
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()

	fmt.Fprintf(c.say, "Open this address in a browser and sign in as a partner Admin agent (with MFA):\n\n  %s\n\nWaiting for the sign-in on http://localhost:%d ...\n", authURL, port)
	if c.openBrowser && isTerminal(c.say) {
		openInBrowser(authURL)
	}

	for {
		var rd redirect
		select {
		case rd = <-got:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return errors.New("no sign-in came back in time: run connector pc consent again (--timeout gives more time)")
			}
			return ctx.Err()
		}
		if rd.errName != "" {
			msg := signInRefusal(rd.errName, rd.errDescription)
			rd.reply <- msg
			return errors.New(msg)
		}
		if rd.code == "" {
			rd.reply <- "The sign-in answer carried no authorization code. Still waiting: sign in again from the address the command printed."
			continue
		}
		refresh, err := partnercenter.RedeemCode(ctx, nil, req, c.secret, rd.code)
		if err != nil {
			msg := redeemRefusal(err)
			rd.reply <- msg
			c.detail(err)
			return errors.New(msg)
		}
		if err := c.store.Save(ctx, refresh); err != nil {
			rd.reply <- "Signed in, but the connector could not save the token. See the terminal."
			c.detail(err)
			return fmt.Errorf("Signed in, but the refresh token could not be written to %s: check that its folder exists and is writable, then run connector pc consent again (--verbose shows why)", c.path)
		}
		rd.reply <- "Signed in. The connector has its refresh token; you can close this window."
		if c.json {
			return writeJSON(c.stdout, map[string]any{"refreshTokenFile": c.path, "next": "connector setup"})
		}
		fmt.Fprintf(c.stdout, "Signed in. The refresh token is saved in %s (readable only by its owner).\n", c.path)
		fmt.Fprintln(c.stdout, "The connector rotates it on every use and rewrites that file; it lapses after 90 days unused.")
		fmt.Fprintln(c.stdout, "Next: connector setup")
		return nil
	}
}

// detail writes the technical reason on stderr under --verbose (never a token: the clients' errors carry
// none).
func (c *consent) detail(err error) {
	if c.verbose {
		fmt.Fprintln(c.stderr, "detail:", err)
	}
}

var aadstsCode = regexp.MustCompile(`AADSTS\d+`)

// signInRefusal says in words why the sign-in came back with error= (OAuth 2.0 §4.1.2.1 and Entra's
// additions), with Entra's AADSTS code for support.
func signInRefusal(name, description string) string {
	why := "Microsoft Entra ID refused the sign-in"
	switch name {
	case "access_denied":
		why = "the sign-in was cancelled, or the permissions were not accepted"
	case "consent_required", "interaction_required", "login_required":
		why = "the partner user must sign in and accept the app's permissions (an admin may have to grant consent for the tenant first)"
	case "invalid_scope", "invalid_resource":
		why = "the app registration does not have the Partner Center permission user_impersonation"
	case "unauthorized_client", "unsupported_response_type", "invalid_request":
		why = "the app registration is not set up for this sign-in (a Web platform with the redirect URI http://localhost)"
	case "server_error", "temporarily_unavailable":
		why = "Microsoft Entra ID had a temporary problem"
	}
	code := name
	if c := aadstsCode.FindString(description); c != "" {
		code += ", " + c
	}
	return fmt.Sprintf("The sign-in did not complete: %s (%s). Nothing was saved; fix that and run connector pc consent again.", why, code)
}

// redeemRefusal says in words why the token endpoint refused the code.
func redeemRefusal(err error) string {
	var te *partnercenter.TokenError
	if !errors.As(err, &te) {
		return "Signed in, but the token endpoint could not be reached to finish; nothing was saved. Run connector pc consent again (--verbose shows why)"
	}
	code := te.Code
	if c := aadstsCode.FindString(te.Description); c != "" {
		code += ", " + c
	}
	why := "the token endpoint refused the sign-in's code"
	switch te.Code {
	case "invalid_client", "unauthorized_client":
		why = "the token endpoint refused the app's credentials: check PARTNERCENTER_CLIENT_ID and PARTNERCENTER_CLIENT_SECRET"
	case "invalid_grant":
		why = "the token endpoint refused the sign-in's code (expired, used already, or not issued for this request)"
	}
	return fmt.Sprintf("Signed in, but %s (%s); nothing was saved. Run connector pc consent again.", why, code)
}

func writePage(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>CSP Connector</title><p>%s</p>\n", html.EscapeString(text))
}

func randomState() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// openInBrowser tries the desktop's opener; the printed address is enough when there is none.
func openInBrowser(u string) {
	name := "xdg-open"
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "windows":
		return // rundll32 quoting is not worth it: the address is printed
	}
	cmd := exec.Command(name, u)
	if cmd.Start() == nil {
		go func() { _ = cmd.Wait() }()
	}
}
