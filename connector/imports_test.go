package connector

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/cspconnector/csp-connector"

// layerOf is where a package of the project stands: a package imports only packages of lower layers
// (see sideways). -1 is a package the rule does not know yet.
func layerOf(pkg string) int {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	switch {
	case top == "internal" && (strings.HasPrefix(rel, "internal/testrig") || strings.HasPrefix(rel, "internal/fakesb") ||
		strings.HasPrefix(rel, "internal/swaggercheck") || strings.HasPrefix(rel, "internal/xsdcheck")):
		return side
	case top == "internal", top == "dataverse", top == "partnercenter":
		return 0 // the clients, their simulators and their shared plumbing
	case top == "mapping":
		return 1 // pure rules over the clients' types
	case rel == "connector/metrics", rel == "connector/event", rel == "connector/request",
		strings.HasPrefix(rel, "connector/apiauth"):
		return 2
	case rel == "connector/work", rel == "connector/notify":
		return 3
	case rel == "connector/jobs", rel == "connector/intake":
		return 4
	case rel == "connector/provisioning", rel == "connector/agreements", rel == "connector/provideraccounts", rel == "connector/subscriptions",
		rel == "connector/connectivity":
		return workflows
	case rel == "connector/api":
		return 6
	case rel == "connector":
		return 7
	case top == "cmd", top == "infra":
		return 8
	}
	return -1
}

const (
	workflows = 5
	side      = -2 // test support (the rig, the fake broker, the connector definition and schema checkers), used from tests
)

// sideways says whether packages of one layer may import each other: the clients with their simulators
// and plumbing, apiauth with its test issuer, and the workflows (their exported helpers).
func sideways(layer int) bool { return layer == 0 || layer == 2 || layer == workflows }

// TestImportsRunOneWay reads the import graph from `go list -deps` and fails on any import that runs back
// up: a workflow importing the API or the root, intake importing a workflow, a client importing the
// connector, anything under connector/ importing the root. The two clients import nothing of each other.
func TestImportsRunOneWay(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	require.NoError(t, err)
	packages := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], module) {
			continue // the standard library and modules the project depends on
		}
		pkg, from := fields[0], layerOf(fields[0])
		packages++
		assert.NotEqual(t, -1, from, "%s has no place in the layers: add it to layerOf", pkg)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := layerOf(imp)
			switch {
			case to == side && from >= 0:
				t.Errorf("%s imports %s: test support is for tests only", pkg, imp)
			case from < 0 || to < 0:
			case to > from, to == from && !sideways(from):
				t.Errorf("%s (layer %d) imports %s (layer %d): imports run down only", pkg, from, imp, to)
			}
			clients := []string{module + "/dataverse", module + "/partnercenter"}
			for i, c := range clients {
				other := clients[1-i]
				if strings.HasPrefix(pkg, c) && strings.HasPrefix(imp, other) {
					t.Errorf("%s imports %s: the two clients import nothing of each other", pkg, imp)
				}
			}
		}
	}
	require.NoError(t, sc.Err())
	assert.Greater(t, packages, 20, "go list listed the project")
}

// TestConnectorPackagesStaySmall: no package under connector/ grows past about 3,000 lines of code (tests
// not counted); one that does has a seam to split along.
func TestConnectorPackagesStaySmall(t *testing.T) {
	t.Parallel()
	lines := map[string]int{}
	require.NoError(t, filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		lines[filepath.Dir(path)] += bytes.Count(b, []byte("\n"))
		return err
	}))
	require.NotEmpty(t, lines)
	for dir, n := range lines {
		assert.LessOrEqual(t, n, 3000, "connector/%s has %d lines", dir, n)
	}
}
