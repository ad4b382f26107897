package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInspectNeedsNoConfiguration(t *testing.T) {
	t.Parallel()
	const file = "../../connector/event/testdata/webhook-remoteexecutioncontext-contact-update.json"
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"inspect", file}, getenv(nil), nil, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "Update of contact 6d81597f-0f9f-e711-8122-000d3aa2331c")
	assert.Contains(t, out.String(), `firstname = "James"`)

	body, err := os.ReadFile(file)
	require.NoError(t, err)
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"inspect", "-", "--output", "json"}, getenv(nil), bytes.NewReader(body), &out, &bytes.Buffer{}))
	var j struct {
		Message, Table, ID, OrganizationID, CorrelationID, InitiatingUserID string
		Depth                                                               int
		OperationCreatedOn                                                  string
		Changed                                                             []string
		Attributes                                                          map[string]any
		PostImage                                                           map[string]any
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &j))
	assert.Equal(t, "Update", j.Message)
	assert.Equal(t, "contact", j.Table)
	assert.Equal(t, "2017-09-26T07:04:08Z", j.OperationCreatedOn)
	assert.Equal(t, map[string]any{"table": "systemuser", "id": "75c2dd85-e89e-e711-8122-000d3aa2331c"}, j.Attributes["modifiedby"])
	assert.Equal(t, "James Glynn (sample)", j.PostImage["fullname"])

	err = run(t.Context(), []string{"inspect", "-"}, getenv(nil), strings.NewReader("<RemoteExecutionContext/>"), &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "set the Dataverse service endpoint's message format to Json")
}
