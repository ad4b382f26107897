package dataverse

import (
	"bufio"
	"bytes"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDocumentedBatchResponses(t *testing.T) {
	t.Parallel()
	t.Run("change set and a read", func(t *testing.T) {
		v := readVector(t, "batch-changeset.http")
		require.Equal(t, 200, v.status)
		boundary := "batchresponse_f27ef42d-51b0-4685-bac9-f468f844de2f"
		responses, err := parseBatchResponse(bytes.NewReader(v.body), boundary)
		require.NoError(t, err)
		var b Batch
		b.AddChangeSet(CreateOp("tasks", Row{"subject": "1"}), CreateOp("tasks", Row{"subject": "2"}), CreateOp("tasks", Row{"subject": "3"}))
		b.Add(GetOp("accounts", uuid.MustParse("00000000-0000-0000-0000-000000000001"), nil))
		results := b.match(responses)
		require.Len(t, results, 4)
		for i, want := range []string{"e73ffc82-e292-ed11-aad1-000d3a9933c9", "e83ffc82-e292-ed11-aad1-000d3a9933c9", "e93ffc82-e292-ed11-aad1-000d3a9933c9"} {
			assert.Equal(t, 204, results[i].StatusCode)
			id, err := results[i].ID()
			require.NoError(t, err)
			assert.Equal(t, want, id.String())
		}
		var page struct{ Value []Row }
		require.NoError(t, decodeJSON(bytes.NewReader(results[3].Body), &page))
		require.Len(t, page.Value, 3)
		assert.Equal(t, "Task 2 in batch", page.Value[1].String("subject"))
	})
	t.Run("stopped at the first failure", func(t *testing.T) {
		v := readVector(t, "batch-error-no-continue-response.http")
		require.Equal(t, 400, v.status)
		responses, err := parseBatchResponse(bytes.NewReader(v.body), "batchresponse_156da4b8-cd2c-4862-a911-4aaab97c001a")
		require.NoError(t, err)
		var b Batch
		b.Add(CreateOp("tasks", Row{"subject": strings.Repeat("x", 201)}), CreateOp("tasks", Row{"subject": "ok"}))
		results := b.match(responses)
		require.Len(t, results, 2)
		var re *ResponseError
		require.ErrorAs(t, results[0].Err, &re)
		assert.Equal(t, CodeValidation, re.Code)
		assert.Equal(t, "5ecd1cb3-1730-4ffc-909c-d44c22270026", re.RequestID)
		assert.Contains(t, re.Message, "exceeded the maximum allowed length of '200'")
		assert.ErrorIs(t, results[1].Err, ErrNotExecuted)
	})
}

func TestBatchRequestIsCRLFMultipart(t *testing.T) {
	t.Parallel()
	var b Batch
	b.Add(GetOp("accounts", uuid.MustParse("00000000-0000-0000-0000-000000000001"), &GetOptions{Select: []string{"name"}}))
	b.AddChangeSet(
		UpsertOp("csp_provideraccounts", Key{"csp_tenantid": "a b"}, Row{"csp_name": "x"}, &UpsertOptions{PrimaryKey: "csp_provideraccountid"}),
		UpdateOp("accounts", uuid.MustParse("00000000-0000-0000-0000-000000000002"), Row{"name": "y"}, &UpdateOptions{IfMatch: `W/"7"`}),
	)
	body, err := b.encode("batch_test", APIPath)
	require.NoError(t, err)
	assert.NotContains(t, strings.ReplaceAll(string(body), "\r\n", ""), "\n", "every line ends in CRLF")

	mr := multipart.NewReader(bytes.NewReader(body), "batch_test")
	first, err := mr.NextPart()
	require.NoError(t, err)
	assert.Equal(t, "application/http", first.Header.Get("Content-Type"))
	second, err := mr.NextPart()
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(second.Header.Get("Content-Type"))
	require.NoError(t, err)
	assert.Equal(t, "multipart/mixed", mt)
	cr := multipart.NewReader(second, params["boundary"])
	var lines []string
	for {
		p, err := cr.NextPart()
		if err != nil {
			break
		}
		assert.NotEmpty(t, p.Header.Get("Content-Id"))
		req, err := http.ReadRequest(bufio.NewReader(p))
		require.NoError(t, err)
		lines = append(lines, req.Method+" "+req.URL.String()+" "+req.Header.Get("If-Match")+req.Header.Get("Prefer"))
	}
	assert.Equal(t, []string{
		"PATCH /api/data/v9.2/csp_provideraccounts(csp_tenantid='a%20b')?%24select=csp_provideraccountid return=representation",
		`PATCH /api/data/v9.2/accounts(00000000-0000-0000-0000-000000000002) W/"7"`,
	}, lines)
}

func TestBatchValidation(t *testing.T) {
	t.Parallel()
	var empty Batch
	assert.Error(t, empty.validate())
	var read Batch
	read.AddChangeSet(GetOp("accounts", uuid.New(), nil))
	assert.ErrorContains(t, read.validate(), "change set cannot contain a read")
	var big Batch
	for range MaxBatchOperations + 1 {
		big.Add(DeleteOp("accounts", uuid.New(), nil))
	}
	assert.ErrorContains(t, big.validate(), "exceeds")
	var bad Batch
	bad.Add(CreateOp("not a set", Row{}))
	assert.Error(t, bad.validate())
	var mixed Batch
	mixed.Add(UpsertOp("a", Key{"k": "v"}, Row{}, &UpsertOptions{PrimaryKey: "aid"}))
	assert.True(t, mixed.idempotent())
	mixed.Add(CreateOp("a", Row{}))
	assert.False(t, mixed.idempotent(), "a create makes the batch unsafe to resend")
}
