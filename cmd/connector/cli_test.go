package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// deadPort is a loopback address nothing listens on: connections to it are refused at once. It is port
// 1 (tcpmux, which nothing here serves), not a port just closed: the system hands a closed ephemeral
// port to the next listener, which in a parallel test run may be another test's server.
func deadPort(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:1"
}

// TestVerifyWithUnreachablePartnerCenter: `connector verify` run from a laptop with a wrong
// PARTNERCENTER_ENDPOINT says on stderr what it waits on, gives up within --timeout, tells the person in
// plain words, and leaves the shared provider row alone; --write records it, the Go error going to the
// row's system message only.
func TestVerifyWithUnreachablePartnerCenter(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	ctx := t.Context()
	dead := deadPort(t)
	env := getenv(map[string]string{"DATAVERSE_URL": ps.sb.Dataverse.URL, "DATAVERSE_AUTH": "none",
		"PARTNERCENTER_ENDPOINT": "http://" + dead, "PARTNERCENTER_AUTH": "none", "CONNECTOR_INSTANCE": "laptop"})
	provider := func() schema.Provider {
		raw, err := ps.sb.DataverseClient.Get(ctx, schema.SetProviders, ps.provider, &dataverse.GetOptions{Select: dataverse.Columns[schema.Provider]()})
		require.NoError(t, err)
		var p schema.Provider
		require.NoError(t, dataverse.Unmarshal(raw, &p))
		return p
	}
	jobRuns := func() int {
		n := 0
		for _, err := range ps.sb.DataverseClient.List(ctx, schema.SetJobRuns, &dataverse.Query{Select: []string{"csp_jobrunid"}}) {
			require.NoError(t, err)
			n++
		}
		return n
	}
	before, runsBefore := provider(), jobRuns()

	var out, errs syncBuffer
	start := time.Now()
	err := run(ctx, []string{"verify", "--timeout", "2s"}, env, nil, &out, &errs)
	took := time.Since(start)
	require.ErrorContains(t, err, "not connected: Partner Center")
	assert.Less(t, took, 15*time.Second, "the checks give up after --timeout")
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errs.String())
	assert.Contains(t, errs.String(), "Partner Center at "+dead+" is not answering (attempt 1, retrying for up to ")
	assert.Regexp(t, `Dataverse\s+ok`, out.String())
	assert.Contains(t, out.String(), "Not connected. The connector could not reach Partner Center in the time allowed: check its address (PARTNERCENTER_ENDPOINT) and the network.\n")
	for _, raw := range []string{"dial tcp", "connection refused", dead, "http://", "%2F"} {
		assert.NotContains(t, out.String(), raw, "the report is for people")
	}
	after := provider()
	assert.Equal(t, before.LastVerifiedOn, after.LastVerifiedOn, "verify without --write leaves the provider row alone")
	assert.Equal(t, before.ConnectivityStatus, after.ConnectivityStatus)
	assert.Equal(t, before.ConnectivityMessage, after.ConnectivityMessage)
	assert.Equal(t, runsBefore, jobRuns(), "verify without --write records no job run")

	// Asked to, it records the outcome: plain words in the message, the error in the system message.
	err = run(ctx, []string{"verify", "--write", "--timeout", "1s"}, env, nil, io.Discard, io.Discard)
	require.ErrorContains(t, err, "not connected: Partner Center")
	after = provider()
	assert.Equal(t, schema.ConnectivityNotConnected, after.ConnectivityStatus)
	assert.Equal(t, "Not connected. The connector could not reach Partner Center in the time allowed: check its address (PARTNERCENTER_ENDPOINT) and the network.", after.ConnectivityMessage)
	for _, raw := range []string{"dial tcp", "connection refused", dead, "http://", "%2F", "context deadline"} {
		assert.NotContains(t, after.ConnectivityMessage, raw)
	}
	assert.Contains(t, after.SystemMessage, "Partner Center: partnercenter: list customers: context deadline exceeded", "the detail is kept for whoever investigates")
}

// TestCommandsKeepLogsOffStdout: a command run by a person prints its result on stdout and logs only
// warnings, as text, on stderr; --verbose shows the rest.
func TestCommandsKeepLogsOffStdout(t *testing.T) {
	t.Parallel()
	ps := startProvSandbox(t)
	var out, errs bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"sync", "provider-accounts"}, ps.env, nil, &out, &errs))
	assert.Contains(t, out.String(), "Provider Account Sync: succeeded")
	for _, log := range []string{`"level"`, "level=", `"msg"`} {
		assert.NotContains(t, out.String(), log)
	}
	assert.NotContains(t, errs.String(), `"level":"INFO"`)
	assert.NotContains(t, errs.String(), "level=INFO")

	out.Reset()
	errs.Reset()
	require.NoError(t, run(t.Context(), []string{"sync", "provider-accounts", "--verbose"}, ps.env, nil, &out, &errs))
	assert.Contains(t, errs.String(), "level=INFO", "--verbose logs at CONNECTOR_LOG_LEVEL, as text")
	assert.NotContains(t, out.String(), "level=")
}

// TestHelpNamesTheSettingsEachCommandReads: `connector <cmd> -h` lists the environment variables the
// command reads, and no other command's.
func TestHelpNamesTheSettingsEachCommandReads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"verify"}, []string{"DATAVERSE_URL", "DATAVERSE_AUTH=default", "PARTNERCENTER_ENDPOINT", "PARTNERCENTER_TENANT_ID", "SERVICEBUS_NAMESPACE"}, []string{"CONNECTOR_WEBHOOK_KEY"}},
		{[]string{"pc", "customers"}, []string{"PARTNERCENTER_ENDPOINT", "PARTNERCENTER_AUTH"}, []string{"DATAVERSE_URL"}},
		{[]string{"agreements", "templates"}, []string{"DATAVERSE_URL"}, []string{"PARTNERCENTER_ENDPOINT"}},
		{[]string{"sync", "provider-accounts"}, []string{"DATAVERSE_URL", "PARTNERCENTER_CLIENT_ID", "CONNECTOR_NOTIFY_USERS"}, nil},
		{[]string{"dataverse", "install"}, []string{"DATAVERSE_URL", "SERVICEBUS_SEND_CONNECTION_STRING", "CONNECTOR_PUBLIC_URL"}, []string{"PARTNERCENTER_ENDPOINT"}},
		{[]string{"diagnose", "lcl"}, []string{"DATAVERSE_URL", "PARTNERCENTER_ENDPOINT"}, nil},
		{[]string{"run"}, []string{"DATAVERSE_URL", "PARTNERCENTER_ENDPOINT", "CONNECTOR_HTTP_ADDR", "CONNECTOR_WORKERS"}, []string{"SERVICEBUS_SEND_CONNECTION_STRING"}},
	} {
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), append(tc.args, "-h"), getenv(nil), nil, &out, io.Discard))
		assert.Contains(t, out.String(), "Settings it reads", tc.args)
		for _, w := range tc.want {
			assert.Contains(t, out.String(), w, tc.args)
		}
		for _, n := range tc.not {
			assert.NotContains(t, out.String(), n, tc.args)
		}
	}
}

// TestPrintedTextPointsAtNoInternalFiles: no command's help, and no diagnosis, sends users to files they
// do not have (the design notes, ../shared).
func TestPrintedTextPointsAtNoInternalFiles(t *testing.T) {
	t.Parallel()
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(rootCommand(getenv(nil), nil, io.Discard, io.Discard), nil)
	require.Greater(t, len(paths), 20)
	for _, p := range paths {
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), append(p, "--help"), getenv(nil), nil, &out, io.Discard))
		for _, internal := range []string{"DESIGN", "../shared", "shared/reference"} {
			assert.NotContains(t, out.String(), internal, "connector %s --help", strings.Join(p, " "))
		}
	}

	ps := startProvSandbox(t)
	sub, _ := ps.subscription(t, "Contoso Business Basic", "", 3)
	lcl := ps.quantityChange(t, sub, "Contoso: 4 seats", 4, time.Now().Add(30*24*time.Hour))
	out, err := ps.run(t, "diagnose", "lcl", lcl.String())
	require.NoError(t, err)
	assert.Contains(t, out, "Checks (rule number, or - for a preliminary)")
	assert.NotContains(t, out, "DESIGN")
}

// TestUnreachableDataverseIsSaidInWords: a command that cannot reach Dataverse ends with one line a person
// reads (which service, where, what to check), not the client's error with its encoded request URL;
// --verbose adds that detail.
func TestUnreachableDataverseIsSaidInWords(t *testing.T) {
	t.Parallel()
	dead := deadPort(t)
	env := map[string]string{"DATAVERSE_URL": "http://" + dead, "DATAVERSE_AUTH": "none"}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errs bytes.Buffer
	err := run(ctx, []string{"agreements", "templates", "--verbose"}, getenv(env), nil, &out, &errs)
	require.Error(t, err)
	assert.Equal(t, "Dataverse at "+dead+" is not answering (nothing is listening there): is it running, and is DATAVERSE_URL right? (--verbose shows the request that failed)", err.Error())
	assert.NotContains(t, err.Error(), "%24select")
	assert.Contains(t, errs.String(), "detail: ", "--verbose adds the client's error")
	assert.Contains(t, errs.String(), "dial tcp "+dead)
}

// TestEveryOutputFlagRefusesOtherFormats: every command that takes --output declares it the same way (its
// help says text|json) and refuses any other format before it reads a setting or an argument, in one
// sentence that names the two it has.
func TestEveryOutputFlagRefusesOtherFormats(t *testing.T) {
	t.Parallel()
	commands := map[string][]string{ // by path, with arguments the command would accept
		"verify":                nil,
		"jobs run":              {"Verify Connectivity"},
		"agreements templates":  nil,
		"inspect":               {"-"},
		"pc customers":          nil,
		"pc customer":           {"4c721420-72ad-4708-a0a7-371a2f7b0969"},
		"pc subscriptions":      {"4c721420-72ad-4708-a0a7-371a2f7b0969"},
		"pc subscription":       {"4c721420-72ad-4708-a0a7-371a2f7b0969", "a4c1340d-6911-4758-bba3-0c4c6007d161"},
		"pc agreements":         {"4c721420-72ad-4708-a0a7-371a2f7b0969"},
		"pc consent":            nil,
		"setup":                 nil,
		"provision lcl":         {"not-a-guid"},
		"diagnose lcl":          {"not-a-guid"},
		"diagnose subscription": {"not-a-guid"},
		"diagnose agreement":    {"not-a-guid"},
		"dataverse install":     nil,
		"sync subscriptions":    nil,
	}
	// The table is every runnable command with the flag: one added later is tested too.
	var withOutput []string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if f := c.Flag("output"); f != nil && c.Runnable() {
			withOutput = append(withOutput, strings.Join(path, " "))
			assert.Equal(t, "text|json", f.Value.Type(), "connector %s --output", strings.Join(path, " "))
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(rootCommand(getenv(nil), nil, io.Discard, io.Discard), nil)
	assert.ElementsMatch(t, slices.Collect(maps.Keys(commands)), withOutput)

	for path, args := range commands {
		for _, bad := range []string{"yaml", "JSON", ""} {
			t.Run(path+" -o "+bad, func(t *testing.T) {
				t.Parallel()
				argv := append(append(strings.Fields(path), args...), "--output="+bad)
				var out bytes.Buffer
				err := run(t.Context(), argv, getenv(nil), strings.NewReader("{}"), &out, io.Discard)
				require.Error(t, err)
				assert.Equal(t, fmt.Sprintf("--output must be text or json, not %q", bad), err.Error())
				assert.Empty(t, out.String())
			})
		}
		t.Run(path+" --help", func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			require.NoError(t, run(t.Context(), append(strings.Fields(path), "--help"), getenv(nil), nil, &out, io.Discard))
			assert.Regexp(t, `-o, --output text\|json +text, or json for scripts \(default text\)`, out.String())
		})
	}
}
