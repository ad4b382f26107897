package notify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCallbackPolicyRefusesInternalDestinations: every way of naming an internal destination that an
// attack on the sandbox tried is refused when the subscription is made; public hosts and the partner's
// own allowed hosts pass.
func TestCallbackPolicyRefusesInternalDestinations(t *testing.T) {
	t.Parallel()
	strict := CallbackPolicy{}
	own := CallbackPolicy{AllowHosts: []string{"flows.contoso.internal", "10.20.0.0/16", "fd12:3456::1"}}
	sandbox := CallbackPolicy{AllowLoopback: true}
	tests := []struct {
		url    string
		policy CallbackPolicy
		ok     bool
	}{
		{"https://prod-12.westeurope.logic.azure.com/workflows/9a7/invoke?sig=x", strict, true},
		{"https://hooks.example.com:8443/flow", strict, true},
		{"https://20.50.2.1/flow", strict, true},
		{"https://[2603:1030::1]/flow", strict, true},
		{"https://169.254.169.254/latest/meta-data/", strict, false},
		{"https://168.63.129.16/machine?comp=goalstate", strict, false},
		{"https://100.100.100.200/latest/meta-data", strict, false},
		{"https://10.0.0.5/admin", strict, false},
		{"https://172.16.8.1/", strict, false},
		{"https://192.168.1.1/", strict, false},
		{"https://127.0.0.1/", strict, false},
		{"https://127.8.9.10/", strict, false},
		{"https://0.0.0.0/", strict, false},
		{"https://[::1]/", strict, false},
		{"https://[::ffff:127.0.0.1]/", strict, false},
		{"https://[::ffff:169.254.169.254]/", strict, false},
		{"https://[fd00::1]/", strict, false},
		{"https://[fd00:ec2::254]/", strict, false},
		{"https://[fe80::1]/", strict, false},
		{"https://[64:ff9b::a9fe:a9fe]/", strict, false},
		{"https://[2002:a9fe:a9fe::]/", strict, false},
		{"https://2130706433/", strict, false},
		{"https://0x7f000001/", strict, false},
		{"https://0177.0.0.1/", strict, false},
		{"https://127.1/", strict, false},
		{"https://localhost/", strict, false},
		{"https://LOCALHOST./", strict, false},
		{"https://metadata/computeMetadata/v1/", strict, false},
		{"https://metadata.google.internal/", strict, false},
		{"https://printer.local/", strict, false},
		{"https://app.localhost/", strict, false},
		{"https://intranet/", strict, false},
		{"http://hooks.example.com/flow", strict, false},
		{"ftp://hooks.example.com/flow", strict, false},
		{"https://flows.contoso.internal/hook", own, true},
		{"https://10.20.3.4/hook", own, true},
		{"https://10.21.3.4/hook", own, false},
		{"https://[fd12:3456::1]/hook", own, true},
		{"http://127.0.0.1:8080/flow", sandbox, true},
		{"https://localhost:8443/flow", sandbox, true},
		{"http://localhost:8080/flow", sandbox, true},
		{"http://10.0.0.5/flow", sandbox, false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		require.NoError(t, err)
		problem := tt.policy.Problem(u)
		if tt.ok {
			assert.Empty(t, problem, tt.url)
		} else {
			assert.NotEmpty(t, problem, tt.url)
			assert.NotContains(t, problem, u.Hostname(), "the URL is a secret: its host is not echoed either")
		}
	}
}

func TestParseCallbackAllowList(t *testing.T) {
	t.Parallel()
	hosts, err := ParseCallbackAllowList(" Flows.Contoso.internal, 10.20.0.0/16 ,,fd12::1")
	require.NoError(t, err)
	assert.Equal(t, []string{"flows.contoso.internal", "10.20.0.0/16", "fd12::1"}, hosts)
	_, err = ParseCallbackAllowList("https://flows.contoso.com/x, 10.0.0.0/33, flows:443")
	require.Error(t, err)
	for _, bad := range []string{"https://flows.contoso.com/x", "10.0.0.0/33", "flows:443"} {
		assert.Contains(t, err.Error(), bad, "every bad entry is named at once")
	}
}

// TestCallbackTransportChecksTheConnectedAddress: the check is made again on the address the connection
// goes to after the name is resolved, so a name that resolves to an internal address (here localhost,
// from /etc/hosts; in an attack a DNS name rebound after the subscription was made) is not reached.
func TestCallbackTransportChecksTheConnectedAddress(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	get := func(p CallbackPolicy, host string) (int, error) {
		c := &http.Client{Transport: p.Transport()}
		resp, err := c.Get(fmt.Sprintf("http://%s:%s/flow", host, port))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		_, err := get(CallbackPolicy{}, host)
		require.ErrorIs(t, err, errCallbackAddress, host)
		status, err := get(CallbackPolicy{AllowLoopback: true}, host)
		require.NoError(t, err)
		assert.Equal(t, http.StatusAccepted, status)
	}
	status, err := get(CallbackPolicy{AllowHosts: []string{"localhost"}}, "localhost")
	require.NoError(t, err, "a host the partner allowed by name is dialled whatever it resolves to")
	assert.Equal(t, http.StatusAccepted, status)
	status, err = get(CallbackPolicy{AllowHosts: []string{"127.0.0.0/8"}}, "localhost")
	require.NoError(t, err, "an allowed prefix covers the resolved address")
	assert.Equal(t, http.StatusAccepted, status)
}
