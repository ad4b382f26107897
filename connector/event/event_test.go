package event_test

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cspconnector/csp-connector/connector/event"
	"github.com/cspconnector/csp-connector/dataverse"
)

func contactUpdate(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/webhook-remoteexecutioncontext-contact-update.json")
	require.NoError(t, err)
	return b
}

func TestDecodeDocumentedContactUpdate(t *testing.T) {
	t.Parallel()
	e, err := event.Decode(contactUpdate(t))
	require.NoError(t, err)
	assert.Equal(t, "Update", e.Message)
	assert.Equal(t, "contact", e.Table)
	assert.Equal(t, "6d81597f-0f9f-e711-8122-000d3aa2331c", e.RowID.String())
	assert.Equal(t, "4ef5b371-e89e-e711-8122-000d3aa2331c", e.OrganizationID.String())
	assert.Equal(t, "OrgName", e.OrganizationName)
	assert.Equal(t, "b374239d-4233-41a9-8b17-a86cb4f737b5", e.CorrelationID)
	assert.Equal(t, "75c2dd85-e89e-e711-8122-000d3aa2331c", e.InitiatingUserID.String())
	assert.Equal(t, 1, e.Depth)
	assert.Equal(t, 1, e.Mode)
	assert.Equal(t, 40, e.Stage)
	assert.Equal(t, time.Date(2017, 9, 26, 7, 4, 8, 0, time.UTC), e.OperationCreatedOn, "/Date(ms-0700)/: the milliseconds are UTC")
	assert.False(t, e.Truncated)
	require.NotNil(t, e.Target)
	assert.Equal(t, []string{"firstname", "contactid", "fullname", "yomifullname", "modifiedon", "modifiedby", "modifiedonbehalfby"}, e.ChangedColumns())
	assert.True(t, e.Changed("firstname"))
	assert.False(t, e.Changed("lastname"))
	assert.Equal(t, "James", e.Target.Attributes["firstname"])
	assert.Equal(t, time.Date(2017, 9, 26, 0, 4, 7, 0, time.UTC), e.Target.Attributes["modifiedon"])
	assert.Equal(t, dataverse.Ref{Table: "systemuser", ID: uuid.MustParse("75c2dd85-e89e-e711-8122-000d3aa2331c")}, e.Target.Attributes["modifiedby"])
	assert.Nil(t, e.Target.Attributes["modifiedonbehalfby"])
	require.Contains(t, e.PostImages, "AsynchronousStepPrimaryName")
	assert.Equal(t, "James Glynn (sample)", e.PostImages["AsynchronousStepPrimaryName"].Attributes["fullname"])
	assert.Empty(t, e.PreImages)
}

// typedMessage carries every attribute shape: choices, money, multi-select, named lookups, formatted
// values, images, a custom API's parameters.
const typedMessage = `{
  "MessageName": "Update", "PrimaryEntityName": "csp_licensechangelog", "PrimaryEntityId": "{E73FFC82-E292-ED11-AAD1-000D3A9933C9}",
  "OrganizationId": "4ef5b371-e89e-e711-8122-000d3aa2331c", "Depth": "2", "SomethingNew": {"x": 1},
  "InputParameters": [{"key": "Target", "value": {
      "__type": "Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "LogicalName": "csp_licensechangelog", "Id": "e73ffc82-e292-ed11-aad1-000d3a9933c9",
      "Attributes": [
        {"key": "csp_provisioningstatus", "value": {"__type": "OptionSetValue:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "Value": 418700000}},
        {"key": "csp_price", "value": {"__type": "Money:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "Value": 2154.32}},
        {"key": "csp_regions", "value": [{"__type": "OptionSetValue:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "Value": 1}, {"__type": "OptionSetValue:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "Value": 3}]},
        {"key": "csp_subscription", "value": {"__type": "EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts", "Id": "a4c1340d-6911-4758-bba3-0c4c6007d161", "LogicalName": "csp_subscription", "Name": "M365 BP", "KeyAttributes": [], "RowVersion": null}},
        {"key": "csp_quantity", "value": 12},
        {"key": "csp_ratio", "value": 0.5},
        {"key": "csp_flag", "value": true},
        {"key": "csp_effectivedate", "value": "\/Date(1767225600000)\/"}
      ],
      "FormattedValues": [{"key": "csp_provisioningstatus", "value": "Awaiting Provisioning"}, {"key": "csp_price", "value": "$2,154.32"}],
      "RowVersion": "5948260"}}],
  "PreEntityImages": [{"key": "pre", "value": {"Attributes": [{"key": "csp_quantity", "value": 10}], "LogicalName": "csp_licensechangelog", "Id": "e73ffc82-e292-ed11-aad1-000d3a9933c9"}}]
}`

func TestDecodeTypedValues(t *testing.T) {
	t.Parallel()
	e, err := event.Decode([]byte("\ufeff" + typedMessage))
	require.NoError(t, err)
	assert.Equal(t, "e73ffc82-e292-ed11-aad1-000d3a9933c9", e.RowID.String(), "braces and upper case are accepted")
	assert.Equal(t, 2, e.Depth, "numbers sent as strings are read")
	a := e.Target.Attributes
	assert.Equal(t, event.Choice(418700000), a["csp_provisioningstatus"])
	assert.Equal(t, event.Money(2154.32), a["csp_price"])
	assert.Equal(t, []event.Choice{1, 3}, a["csp_regions"])
	assert.Equal(t, dataverse.Ref{Table: "csp_subscription", ID: uuid.MustParse("a4c1340d-6911-4758-bba3-0c4c6007d161"), Name: "M365 BP"}, a["csp_subscription"])
	assert.Equal(t, int64(12), a["csp_quantity"])
	assert.Equal(t, 0.5, a["csp_ratio"])
	assert.Equal(t, true, a["csp_flag"])
	assert.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), a["csp_effectivedate"])
	assert.Equal(t, "Awaiting Provisioning", e.Target.FormattedValues["csp_provisioningstatus"])
	assert.Equal(t, "5948260", e.Target.RowVersion)
	assert.Equal(t, int64(10), e.PreImages["pre"].Attributes["csp_quantity"])

	j := event.Inspect(e)
	out, err := json.Marshal(j)
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(out, &back))
	attrs := back["attributes"].(map[string]any)
	assert.Equal(t, float64(418700000), attrs["csp_provisioningstatus"], "choices as integers")
	assert.Equal(t, 2154.32, attrs["csp_price"], "money as numbers")
	assert.Equal(t, map[string]any{"table": "csp_subscription", "id": "a4c1340d-6911-4758-bba3-0c4c6007d161", "name": "M365 BP"}, attrs["csp_subscription"])
	assert.Equal(t, "2026-01-01T00:00:00Z", attrs["csp_effectivedate"], "dates in RFC 3339")
	assert.Equal(t, []any{float64(1), float64(3)}, attrs["csp_regions"])
	assert.Equal(t, map[string]any{"csp_quantity": float64(10)}, back["preImage"])
	assert.Equal(t, map[string]any{}, back["postImage"])
	for _, key := range []string{"message", "table", "id", "organizationId", "correlationId", "initiatingUserId", "depth", "operationCreatedOn", "changed"} {
		_, ok := back[key]
		assert.True(t, ok, key)
	}
}

func TestDecodeCustomAPIAndTruncatedMessages(t *testing.T) {
	t.Parallel()
	e, err := event.Decode([]byte(`{"MessageName": "csp_RequestAttestationLink", "PrimaryEntityName": "csp_agreement", "PrimaryEntityId": "e73ffc82-e292-ed11-aad1-000d3a9933c9",
		"InputParameters": [{"key": "Target", "value": {"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": "e73ffc82-e292-ed11-aad1-000d3a9933c9", "LogicalName": "csp_agreement", "Name": null}},
		                    {"key": "Language", "value": "nl-NL"}]}`))
	require.NoError(t, err)
	assert.Equal(t, "csp_RequestAttestationLink", e.Message)
	require.NotNil(t, e.TargetRef)
	assert.Equal(t, "csp_agreement", e.TargetRef.Table)
	assert.Nil(t, e.Target)
	assert.Equal(t, map[string]any{"Language": "nl-NL"}, e.Parameters)

	e, err = event.Decode([]byte(`{"MessageName": "Update", "PrimaryEntityName": "csp_agreement", "PrimaryEntityId": "e73ffc82-e292-ed11-aad1-000d3a9933c9", "MessageMaxSizeExceeded": true}`))
	require.NoError(t, err)
	assert.True(t, e.Truncated)
	assert.Nil(t, e.Target)
}

func TestDecodeRefusesWhatCanNeverSucceed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, reason, detail string
	}{
		{"xml format", `<RemoteExecutionContext xmlns="http://schemas.microsoft.com/xrm/2011/Contracts"/>`, event.ReasonNotJSON, "message format to Json"},
		{"binary format", "@\x1eRemoteExecutionContext", event.ReasonNotJSON, "message format to Json"},
		{"empty", "  ", event.ReasonMalformed, "empty"},
		{"broken json", `{"MessageName": `, event.ReasonNotJSON, "not a JSON object"},
		{"other json", `{"hello": "world"}`, event.ReasonMalformed, "no MessageName, no PrimaryEntityName"},
		{"no row", `{"MessageName": "Update", "PrimaryEntityName": "contact"}`, event.ReasonMalformed, "no PrimaryEntityId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := event.Decode([]byte(tt.body))
			require.Error(t, err)
			assert.True(t, event.IsDecodeError(err))
			var de *event.DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.reason, de.Reason)
			assert.Contains(t, de.Detail, tt.detail)
		})
	}
}

func TestWriteInspectIsReadable(t *testing.T) {
	t.Parallel()
	e, err := event.Decode([]byte(typedMessage))
	require.NoError(t, err)
	var b strings.Builder
	event.WriteInspect(&b, e)
	for _, want := range []string{
		"Update of csp_licensechangelog e73ffc82-e292-ed11-aad1-000d3a9933c9",
		`csp_provisioningstatus = option 418700000 ("Awaiting Provisioning")`,
		`csp_subscription = csp_subscription a4c1340d-6911-4758-bba3-0c4c6007d161 ("M365 BP")`,
		"csp_effectivedate = 2026-01-01T00:00:00Z",
		"Pre image pre:",
	} {
		assert.Contains(t, b.String(), want)
	}
}

// FuzzDecodeEvent: no input panics, hangs or yields an event without its operation, table and row.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(contactUpdate(f))
	f.Add([]byte(typedMessage))
	f.Add([]byte(`{"MessageName":"Update","PrimaryEntityName":"x","PrimaryEntityId":"e73ffc82-e292-ed11-aad1-000d3a9933c9","InputParameters":[{"key":"Target","value":{"Attributes":[{"key":"a","value":"\/Date(-99999999999999999)\/"}]}}]}`))
	f.Add([]byte(`<xml/>`))
	f.Add(nestedEntityMessage(14, 1, 3))
	f.Add(nestedEntityMessage(30, 1, 3))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := event.Decode(body)
		if err != nil {
			assert.True(t, event.IsDecodeError(err))
			return
		}
		assert.NotEmpty(t, e.Message)
		assert.NotEmpty(t, e.Table)
		_, err = json.Marshal(event.Inspect(e))
		assert.NoError(t, err)
		var b strings.Builder
		event.WriteInspect(&b, e)
	})
}

// BenchmarkDecodeEvent decodes Microsoft's documented contact-update message (3.9 KB, with a parent
// context and an image): the per-message cost of intake before any handler runs.
//
//	go test -run XXX -bench BenchmarkDecodeEvent -benchmem ./connector/
func BenchmarkDecodeEvent(b *testing.B) {
	body := contactUpdate(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// nestedEntityMessage is an Update whose Target carries, level after level, an attribute whose value is
// another entity, each level with attrs string attributes of strLen characters: the shape an attacker
// used to make decoding quadratic in the depth.
func nestedEntityMessage(levels, attrs, strLen int) []byte {
	filler := strings.Repeat("x", strLen)
	var b strings.Builder
	b.WriteString(`{"MessageName":"Update","PrimaryEntityName":"csp_licensechangelog","PrimaryEntityId":"e73ffc82-e292-ed11-aad1-000d3a9933c9","InputParameters":[{"key":"Target","value":`)
	for range levels {
		b.WriteString(`{"__type":"Entity:http://schemas.microsoft.com/xrm/2011/Contracts","LogicalName":"csp_licensechangelog","Attributes":[`)
		for a := range attrs {
			fmt.Fprintf(&b, `{"key":"csp_a%d","value":"%s"},`, a, filler)
		}
		b.WriteString(`{"key":"csp_inner","value":`)
	}
	b.WriteString(`"innermost"`)
	for range levels {
		b.WriteString(`}]}`)
	}
	b.WriteString(`}]}`)
	return []byte(b.String())
}

func TestDecodeBoundsNesting(t *testing.T) {
	t.Parallel()
	// Twelve entities deep (about 50 levels of JSON) still decodes, to the innermost value.
	e, err := event.Decode(nestedEntityMessage(12, 2, 20))
	require.NoError(t, err)
	v := any(*e.Target)
	for range 12 {
		ent, ok := v.(event.Entity)
		require.True(t, ok)
		assert.Len(t, ent.Attributes["csp_a1"], 20)
		v = ent.Attributes["csp_inner"]
	}
	assert.Equal(t, "innermost", v)

	// 800 levels (the attack's 240 KB) is refused as malformed, so it is dead-lettered with the reason.
	_, err = event.Decode(nestedEntityMessage(800, 1, 200))
	var de *event.DecodeError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, event.ReasonMalformed, de.Reason)
	assert.Contains(t, de.Detail, "nests deeper than 64 levels")

	// Arrays nested inside an attribute are kept raw without being looked into, however deep.
	deepArray := strings.Repeat("[", 50) + strings.Repeat("]", 50)
	e, err = event.Decode([]byte(`{"MessageName":"Update","PrimaryEntityName":"x","PrimaryEntityId":"e73ffc82-e292-ed11-aad1-000d3a9933c9","InputParameters":[{"key":"Target","value":{"Attributes":[{"key":"a","value":` + deepArray + `}]}}]}`))
	require.NoError(t, err)
	assert.JSONEq(t, deepArray, string(e.Target.Attributes["a"].(json.RawMessage)))
}

func TestDecodeRefusesTrailingData(t *testing.T) {
	t.Parallel()
	_, err := event.Decode(append(contactUpdate(t), []byte(` {"MessageName":"Delete"}`)...))
	var de *event.DecodeError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, event.ReasonNotJSON, de.Reason)
	assert.Contains(t, de.Detail, "after the JSON value")
}

// BenchmarkDecodeEventSize decodes messages of 16 KB to 1 MB nested as deep as the decoder allows (15
// entities inside each other, the attack's shape) and reports time and memory per KB of message. One
// pass over the body makes both flat across sizes; the decoder used to re-read every nested entity once
// per level above it. Dataverse's own messages stop at 256 KB; the webhook accepts up to 1 MiB.
//
//	go test -run XXX -bench BenchmarkDecodeEventSize -benchmem ./connector/
func BenchmarkDecodeEventSize(b *testing.B) {
	for _, kb := range []int{16, 64, 256, 1024} {
		const levels, strLen = 15, 200
		perLevel := kb * 1024 / levels / (strLen + 30)
		body := nestedEntityMessage(levels, perLevel, strLen)
		b.Run(fmt.Sprintf("%dKB", kb), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for b.Loop() {
				if _, err := event.Decode(body); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&m1)
			perKB := float64(len(body)) / 1024 * float64(b.N)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/perKB, "ns/KB")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/perKB, "B/KB")
		})
	}
}

func TestDecodeBoundsValues(t *testing.T) {
	t.Parallel()
	flat := `{"MessageName":"Update","PrimaryEntityName":"x","PrimaryEntityId":"e73ffc82-e292-ed11-aad1-000d3a9933c9","InputParameters":[{"key":"Target","value":{"Attributes":[{"key":"a","value":[` +
		strings.Repeat("0,", 300_000) + `0]}]}}]}`
	_, err := event.Decode([]byte(flat))
	var de *event.DecodeError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, event.ReasonMalformed, de.Reason)
	assert.Contains(t, de.Detail, "more than 100000 values")
}
