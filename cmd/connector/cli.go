package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cspconnector/csp-connector/connector"
)

// settingsKey is the annotation that holds what a command needs (connector.Need…, Uses…, variable
// names): the one place that says it, read by loadConfig and by the command's help.
const settingsKey = "connector/settings"

// withSettings records what cmd needs and lists the settings it reads at the end of its help.
func withSettings(cmd *cobra.Command, required ...string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[settingsKey] = strings.Join(required, ",")
	var b strings.Builder
	b.WriteString(strings.TrimRight(cmp.Or(cmd.Long, cmd.Short), "\n"))
	b.WriteString("\n\nSettings it reads (environment variables; see the README):\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, s := range connector.SettingsFor(required...) {
		name := s.Name
		if s.Default != "" {
			name += "=" + s.Default
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, s.Help)
	}
	_ = tw.Flush()
	cmd.Long = strings.TrimRight(b.String(), "\n")
	return cmd
}

// loadConfig reads the configuration cmd needs (as withSettings recorded it) and builds the logger of a
// command run by a person: text, on stderr, warnings and errors only unless --verbose, so stdout carries
// only the command's output.
func loadConfig(cmd *cobra.Command, getenv func(string) string, stderr io.Writer) (connector.Config, *slog.Logger, error) {
	var required []string
	if v := cmd.Annotations[settingsKey]; v != "" {
		required = strings.Split(v, ",")
	}
	cfg, err := connector.LoadConfig(getenv, required...)
	if err != nil {
		return cfg, nil, err
	}
	level := max(cfg.LogLevel, slog.LevelWarn)
	if verbose, _ := cmd.Flags().GetBool("verbose"); verbose {
		level = cfg.LogLevel
	}
	return cfg, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}

// outputFormat is the value of --output: text for people, json for scripts. Parsing the flag refuses any
// other, so a command never starts with a format it cannot print.
type outputFormat string

const (
	outputText outputFormat = "text"
	outputJSON outputFormat = "json"
)

// addOutputFlag declares --output (-o) on flags, text by default; every command that prints for scripts
// declares it here.
func addOutputFlag(flags *pflag.FlagSet, o *outputFormat) {
	*o = outputText
	flags.VarP(o, "output", "o", "text, or json for scripts")
}

func (o *outputFormat) String() string { return string(*o) }

// Type names the values in the help (--output text|json).
func (o *outputFormat) Type() string { return "text|json" }

func (o *outputFormat) Set(v string) error {
	switch f := outputFormat(v); f {
	case outputText, outputJSON:
		*o = f
		return nil
	}
	return &badOutputError{value: v}
}

// badOutputError refuses a value of --output. It is said whole (flagError unwraps it from the parser's
// "invalid argument … for … flag:" that would only repeat it).
type badOutputError struct{ value string }

func (e *badOutputError) Error() string {
	return fmt.Sprintf("--output must be text or json, not %q", e.value)
}

// flagError is the root's flag error function: a refusal that is already a sentence is returned as it is.
func flagError(_ *cobra.Command, err error) error {
	if bad, ok := errors.AsType[*badOutputError](err); ok {
		return bad
	}
	return err
}

// waitReporter tells the person running a command what it is waiting on: each attempt at a service that
// failed (no answer, or a 429 or 5xx the client retries), with how long it may still wait.
type waitReporter struct {
	next    http.RoundTripper
	service string
	w       io.Writer

	mu       sync.Mutex
	attempts map[string]int // by method and URL: a retry sends the same request again
}

// reportWaits wraps hc (nil: a default client) so that its failed attempts are reported on w.
func reportWaits(service string, hc *http.Client, w io.Writer) *http.Client {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	wrapped := *hc
	wrapped.Transport = &waitReporter{next: next, service: service, w: w, attempts: map[string]int{}}
	return &wrapped
}

func (t *waitReporter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	key := req.Method + " " + req.URL.String()
	failed := err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented
	t.mu.Lock()
	if !failed {
		delete(t.attempts, key)
		t.mu.Unlock()
		return resp, err
	}
	t.attempts[key]++
	attempt := t.attempts[key]
	t.mu.Unlock()
	if req.Context().Err() != nil {
		return resp, err // the command stopped waiting
	}
	what := "is not answering"
	switch {
	case err != nil:
	case resp.StatusCode == http.StatusTooManyRequests:
		what = "is throttling requests (429)"
	default:
		what = fmt.Sprintf("answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	bound := ""
	if deadline, ok := req.Context().Deadline(); ok {
		bound = fmt.Sprintf(", retrying for up to %s", max(time.Until(deadline), 0).Round(time.Second))
	}
	fmt.Fprintf(t.w, "%s at %s %s (attempt %d%s)\n", t.service, req.URL.Host, what, attempt, bound)
	return resp, err
}
