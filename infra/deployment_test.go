// Package infra_test checks the deployment files against the connector's own list of settings
// (connector.Settings, the README's configuration table), so that a setting added to the connector is
// either deployed by both the Bicep template and the Kubernetes manifests or named here with the reason it
// is not. The Bicep CLI cannot run on the development machines, so the Bicep files are read as text: the
// checks are about names (environment variables, secrets, parameters), not about the template compiling.
package infra_test

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cspconnector/csp-connector/connector"
)

// notDeployed names the settings neither deployment sets, each with the reason. Anything else in
// connector.Settings must be set by both.
func notDeployed() map[string]string {
	return map[string]string{
		"DATAVERSE_MAX_CONCURRENCY":          "tuning: the default suits one replica, and the server's x-ms-dop-hint lowers it further",
		"DATAVERSE_BATCH_SIZE":               "tuning: the default suits Dataverse's limits",
		"DATAVERSE_BUDGET_REQUESTS":          "tuning: the default is Dataverse's documented limit for one application user; lower it where replicas share the user",
		"DATAVERSE_BUDGET_EXECUTION_SECONDS": "tuning: the default is Dataverse's documented limit for one application user",
		"DATAVERSE_BULK_RESERVE":             "tuning: the default leaves interactive work a tenth of the budget",
		"PARTNERCENTER_ENDPOINT":             "the default is Partner Center's API; another value is for a simulator",
		"PARTNERCENTER_AUTH":                 "the default is the app registration; none is for loopback simulators only",
		"PARTNERCENTER_TOKEN_URL":            "the default derives from PARTNERCENTER_TENANT_ID; an override is for tests",
		"SERVICEBUS_CONNECTION_STRING":       "the deployments receive with the managed (workload) identity through SERVICEBUS_NAMESPACE",
		"SERVICEBUS_SEND_CONNECTION_STRING":  "used only by `connector dataverse install`, run by an administrator, never by the service",
		"CONNECTOR_QUEUE_LIMIT":              "tuning: the default suits a replica's memory",
		"CONNECTOR_INSTANCE":                 "the default, the host name, is the replica's or pod's own name",
		"CONNECTOR_NOTIFY_INAPP":             "on by default; it sends only to CONNECTOR_NOTIFY_USERS",
		"CONNECTOR_NOTIFY_WEBHOOKS":          "on by default; it sends only to subscriptions flows registered",
		"CONNECTOR_NOTIFY_DIGEST_OVER":       "tuning: the default suits people reading notifications",
		"CONNECTOR_REPORT_AFTER":             "tuning: the default (a day) suits the weekly report",
		"CONNECTOR_CLAIM_TTL":                "tuning: the default (10 minutes) outlasts any one change; shorter is for tests that kill replicas",
		"CONNECTOR_LINK_LIFETIME":            "tuning: the default (7 days) is what peers use; Microsoft documents none",
	}
}

// commentedInKubernetes names settings the ConfigMap carries commented out, with the reason: setting them
// needs something the Secret does not have until the operator adds it.
func commentedInKubernetes() map[string]string {
	return map[string]string{
		"PARTNERCENTER_REFRESH_TOKEN_FILE": "needs PARTNERCENTER_REFRESH_TOKEN in the Secret (the secure application model is optional)",
	}
}

// secretSettings are the settings whose values are kept with the secrets: in Container Apps secrets (Key
// Vault references or @secure() parameters) and in the Kubernetes Secret, never in plain configuration.
// CONNECTOR_API_KEYS holds only hashes, but it decides who may call the API, so it is kept with them.
func secretSettings() []string {
	return []string{"PARTNERCENTER_CLIENT_SECRET", "CONNECTOR_WEBHOOK_KEY", "CONNECTOR_API_KEYS"}
}

// platformVariables are environment variables the deployments set for libraries, not for the connector.
var platformVariables = []string{"AZURE_CLIENT_ID"} // azidentity: which user-assigned identity

func settingNames() []string {
	var names []string
	for _, s := range connector.Settings() {
		names = append(names, s.Name)
	}
	return names
}

func TestEverySettingIsDeployedOrSaysWhyNot(t *testing.T) {
	t.Parallel()
	bicep := readBicepApp(t)
	k8s := readKubernetes(t)
	known := settingNames()
	for name := range notDeployed() {
		assert.Contains(t, known, name, "notDeployed names a setting the connector no longer has")
	}
	for name := range commentedInKubernetes() {
		assert.Contains(t, known, name, "commentedInKubernetes names a setting the connector no longer has")
	}
	for _, name := range known {
		if _, ok := notDeployed()[name]; ok {
			continue
		}
		assert.Contains(t, bicep.env, name, "infra/bicep/modules/containerapp.bicep does not set %s", name)
		if _, ok := commentedInKubernetes()[name]; ok {
			assert.Contains(t, k8s.commented, name, "infra/k8s/configmap.yaml should carry %s commented out", name)
			continue
		}
		assert.Contains(t, k8s.env, name, "infra/k8s (ConfigMap or Deployment env) does not set %s", name)
	}
	for _, name := range bicep.env {
		assert.True(t, slices.Contains(known, name) || slices.Contains(platformVariables, name), "containerapp.bicep sets %s, which the connector does not read", name)
	}
	for _, name := range k8s.env {
		assert.True(t, slices.Contains(known, name) || slices.Contains(platformVariables, name), "infra/k8s sets %s, which the connector does not read", name)
	}
}

func TestSecretsStayInSecretStores(t *testing.T) {
	t.Parallel()
	bicep := readBicepApp(t)
	k8s := readKubernetes(t)
	for _, name := range secretSettings() {
		assert.Contains(t, bicep.secretEnv, name, "containerapp.bicep must take %s from a Container Apps secret (secretRef)", name)
		assert.Contains(t, k8s.secretEnv, name, "the Deployment must take %s from the Secret (secretKeyRef)", name)
		assert.NotContains(t, k8s.configMap, name, "%s must not be in the ConfigMap", name)
		assert.Contains(t, k8s.secretExample, name, "secret.example.yaml should show %s (commented out if setting it turns something on)", name)
	}
	for _, ref := range bicep.secretRefs {
		assert.Contains(t, bicep.secrets, ref, "containerapp.bicep refers to a secret it does not declare")
	}
}

// TestBicepNamesMatch stands in for `az bicep build`, which cannot run here: every parameter the app
// module needs is passed by main.bicep, every value main.bicep passes is a parameter of the module, and
// every parameter the example parameter file sets is declared in main.bicep.
func TestBicepNamesMatch(t *testing.T) {
	t.Parallel()
	module := readFile(t, "bicep/modules/containerapp.bicep")
	main := readFile(t, "bicep/main.bicep")
	example := readFile(t, "bicep/main.example.bicepparam")

	declared, required := bicepParams(module)
	passed, values := moduleArgs(t, main, "modules/containerapp.bicep")
	symbols := regexp.MustCompile(`(?m)^(?:param|var|resource|module) (\w+) `).FindAllStringSubmatch(main, -1)
	for _, v := range values {
		assert.True(t, slices.ContainsFunc(symbols, func(m []string) bool { return m[1] == v }), "main.bicep passes %s, which it does not declare", v)
	}
	for _, p := range required {
		assert.Contains(t, passed, p, "main.bicep does not pass the app module's parameter %s", p)
	}
	for _, p := range passed {
		assert.Contains(t, declared, p, "main.bicep passes %s, which the app module does not declare", p)
	}
	mainParams, _ := bicepParams(main)
	for _, m := range regexp.MustCompile(`(?m)^(?://\s*)?param (\w+) =`).FindAllStringSubmatch(example, -1) {
		assert.Contains(t, mainParams, m[1], "main.example.bicepparam sets %s, which main.bicep does not declare", m[1])
	}
	// Every parameter main.bicep declares is used somewhere besides its declaration.
	for _, p := range mainParams {
		uses := regexp.MustCompile(`\b`+p+`\b`).FindAllStringIndex(main, -1)
		assert.Greater(t, len(uses), 1, "main.bicep declares %s but never uses it", p)
	}
}

func TestKubernetesPortsMatch(t *testing.T) {
	t.Parallel()
	k8s := readKubernetes(t)
	for _, p := range k8s.probePorts {
		assert.Contains(t, k8s.containerPorts, p, "a probe uses a port the container does not declare")
	}
	for _, p := range k8s.serviceTargets {
		assert.Contains(t, k8s.containerPorts, p, "the Service targets a port the container does not declare")
	}
	for _, p := range k8s.ingressPorts {
		assert.Contains(t, k8s.servicePorts, p, "the Ingress uses a Service port the Service does not have")
	}
	require.Contains(t, k8s.configMap, "CONNECTOR_HEALTH_ADDR")
	assert.NotContains(t, k8s.servicePorts, "health", "health and metrics stay off the Service the ingress routes to")
}

// TestKubernetesConfigurationLoads: the ConfigMap as shipped, with the example Secret, is a configuration
// `connector run` accepts (an empty value, such as the API's or the notification recipients', means off),
// and so it is with the API's Entra ID pair filled in.
func TestKubernetesConfigurationLoads(t *testing.T) {
	t.Parallel()
	k8s := readKubernetes(t)
	for name, extra := range map[string]map[string]string{
		"as shipped": nil,
		"API on":     {"CONNECTOR_API_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47", "CONNECTOR_API_AUDIENCES": "api://csp-connector", "CONNECTOR_NOTIFY_USERS": "75c2dd85-e89e-e711-8122-000d3aa2331c"},
	} {
		t.Run(name, func(t *testing.T) {
			getenv := func(key string) string { return cmp.Or(extra[key], k8s.values[key]) }
			cfg, err := connector.LoadConfig(getenv, connector.NeedDataverse, connector.NeedPartnerCenter, connector.NeedIntake)
			require.NoError(t, err)
			assert.Equal(t, extra["CONNECTOR_API_TENANT_ID"] != "", cfg.APITenantID != "")
			assert.Equal(t, "connector-notifications", cfg.NotifyTopic)
			assert.Equal(t, ":9090", cfg.HealthAddr)
		})
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(name))
	require.NoError(t, err)
	return string(b)
}

type bicepApp struct {
	env, secretEnv, secrets, secretRefs []string
}

// readBicepApp reads the environment variables and secrets of the container app module. Environment
// variable names are upper case and secret names lower case in this template, which is what tells them
// apart in the text.
func readBicepApp(t *testing.T) bicepApp {
	t.Helper()
	src := readFile(t, "bicep/modules/containerapp.bicep")
	var app bicepApp
	entry := regexp.MustCompile(`(?ms)name: '([A-Z][A-Z0-9_]*)'\s*\n\s*(value|secretRef): '?([^'\n]*)'?`)
	for _, m := range entry.FindAllStringSubmatch(src, -1) {
		app.env = append(app.env, m[1])
		if m[2] == "secretRef" {
			app.secretEnv = append(app.secretEnv, m[1])
			app.secretRefs = append(app.secretRefs, m[3])
		}
	}
	start := strings.Index(src, "var secrets = concat(")
	require.GreaterOrEqual(t, start, 0, "containerapp.bicep has no `var secrets = concat(`")
	end := strings.Index(src[start:], "\n)\n")
	require.Greater(t, end, 0)
	for _, m := range regexp.MustCompile(`name: '([a-z0-9-]+)'`).FindAllStringSubmatch(src[start:start+end], -1) {
		app.secrets = append(app.secrets, m[1])
	}
	require.NotEmpty(t, app.env)
	return app
}

// bicepParams returns the parameters a Bicep file declares, and those without a default.
func bicepParams(src string) (declared, required []string) {
	for _, m := range regexp.MustCompile(`(?m)^param (\w+) [\w.]+( =)?`).FindAllStringSubmatch(src, -1) {
		declared = append(declared, m[1])
		if m[2] == "" {
			required = append(required, m[1])
		}
	}
	return declared, required
}

// moduleArgs returns the parameter names main.bicep passes to the module at path, and the values that
// are a bare name (a parameter, variable, resource or module of main.bicep).
func moduleArgs(t *testing.T, src, path string) (args, names []string) {
	t.Helper()
	start := strings.Index(src, "'"+path+"' = {")
	require.GreaterOrEqual(t, start, 0, "main.bicep does not use %s", path)
	open := strings.Index(src[start:], "params: {")
	require.Greater(t, open, 0)
	body := src[start+open+len("params: {"):]
	body = body[:strings.Index(body, "\n  }\n")]
	for _, m := range regexp.MustCompile(`(?m)^\s+(\w+): (.*)$`).FindAllStringSubmatch(body, -1) {
		args = append(args, m[1])
		if regexp.MustCompile(`^\w+$`).MatchString(m[2]) {
			names = append(names, m[2])
		}
	}
	return args, names
}

type kubernetes struct {
	configMap, commented, env, secretEnv, secretExample []string
	// values are the ConfigMap's and the example Secret's values.
	values                                     map[string]string
	containerPorts, probePorts                 []string
	servicePorts, serviceTargets, ingressPorts []string
}

type object struct {
	Kind string
	Data map[string]string
	// StringData is the Secret example's.
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec struct {
				Containers []container
			}
		}
		Ports []struct {
			Name       string
			TargetPort string `yaml:"targetPort"`
		}
		Rules []struct {
			HTTP struct {
				Paths []struct {
					Backend struct {
						Service struct {
							Port struct{ Name string }
						}
					}
				}
			}
		}
	}
}

type container struct {
	Name    string
	Ports   []struct{ Name string }
	EnvFrom []struct {
		ConfigMapRef struct{ Name string } `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string
		ValueFrom struct {
			SecretKeyRef struct{ Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	LivenessProbe  probe `yaml:"livenessProbe"`
	ReadinessProbe probe `yaml:"readinessProbe"`
}

type probe struct {
	HTTPGet struct{ Port string } `yaml:"httpGet"`
}

// readKubernetes parses every manifest (the ones kustomization.yaml applies and the examples) and
// collects the settings the connector container gets and the ports that must line up.
func readKubernetes(t *testing.T) kubernetes {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	require.NoError(t, err)
	k := kubernetes{values: map[string]string{}}
	for _, file := range files {
		dec := yaml.NewDecoder(bytes.NewReader([]byte(readFile(t, file))))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, file)
			switch o.Kind {
			case "ConfigMap":
				for key, v := range o.Data {
					k.configMap = append(k.configMap, key)
					k.values[key] = v
				}
			case "Secret":
				for key, v := range o.StringData {
					k.secretExample = append(k.secretExample, key)
					k.values[key] = v
				}
			case "Deployment":
				for _, c := range o.Spec.Template.Spec.Containers {
					if c.Name != "connector" {
						continue
					}
					for _, p := range c.Ports {
						k.containerPorts = append(k.containerPorts, p.Name)
					}
					k.probePorts = append(k.probePorts, c.LivenessProbe.HTTPGet.Port, c.ReadinessProbe.HTTPGet.Port)
					for _, e := range c.Env {
						k.env = append(k.env, e.Name)
						if e.ValueFrom.SecretKeyRef.Key != "" {
							k.secretEnv = append(k.secretEnv, e.Name)
						}
					}
					require.Len(t, c.EnvFrom, 1, "the connector container takes its settings from the ConfigMap")
				}
			case "Service":
				for _, p := range o.Spec.Ports {
					k.servicePorts = append(k.servicePorts, p.Name)
					k.serviceTargets = append(k.serviceTargets, p.TargetPort)
				}
			case "Ingress":
				for _, r := range o.Spec.Rules {
					for _, p := range r.HTTP.Paths {
						k.ingressPorts = append(k.ingressPorts, p.Backend.Service.Port.Name)
					}
				}
			}
		}
	}
	k.env = append(k.env, k.configMap...)
	k.commented = commentedKeys(readFile(t, filepath.Join("k8s", "configmap.yaml")))
	k.secretExample = append(k.secretExample, commentedKeys(readFile(t, filepath.Join("k8s", "secret.example.yaml")))...)
	require.NotEmpty(t, k.configMap)
	require.NotEmpty(t, k.containerPorts)
	return k
}

// commentedKeys returns the upper-case keys of commented-out lines such as `# NAME: "value"`.
func commentedKeys(src string) []string {
	var keys []string
	for _, m := range regexp.MustCompile(`(?m)^\s*#\s*([A-Z][A-Z0-9_]+):`).FindAllStringSubmatch(src, -1) {
		keys = append(keys, m[1])
	}
	return keys
}
