package connector

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// testSandbox starts the simulators with the schema installed and demo rows, on free loopback ports.
func testSandbox(t *testing.T) *Sandbox {
	t.Helper()
	sb, err := StartSandbox(t.Context(), SandboxOptions{DataverseAddr: "127.0.0.1:0", PartnerCenterAddr: "127.0.0.1:0", ConnectorAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	return sb
}
