package dataverse

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vectorResponse is the response half of a documented .http sample.
type vectorResponse struct {
	status int
	header http.Header
	body   []byte
}

var statusLine = regexp.MustCompile(`(?m)^HTTP/1\.1 (\d{3})[^\n]*$`)

// readVector returns the response in a vector file: the first status line (after the "### --- response"
// marker when the file has one), its headers and its body. The samples have trailing spaces and "###"
// commentary; both are dropped the way a reader of the doc would.
func readVector(t *testing.T, name string) vectorResponse {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
	require.NoError(t, err)
	if i := bytes.Index(data, []byte("### --- response")); i >= 0 {
		data = data[i:]
	}
	resp := statusLine.FindSubmatchIndex(data)
	require.NotNil(t, resp, "no response in %s", name)
	status, _ := strconv.Atoi(string(data[resp[2]:resp[3]]))
	sc := bufio.NewScanner(bytes.NewReader(data[resp[1]:]))
	h := http.Header{}
	var body strings.Builder
	inBody := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \r")
		if strings.HasPrefix(line, "###") {
			break
		}
		if !inBody {
			if line == "" {
				if len(h) > 0 {
					inBody = true
				}
				continue
			}
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(strings.TrimSpace(line), "{") {
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
				continue
			}
			inBody = true // the WhoAmI sample has no blank line before its body
		}
		body.WriteString(line + "\n")
	}
	return vectorResponse{status: status, header: h, body: []byte(strings.TrimSpace(body.String()))}
}

func (v vectorResponse) httpResponse() *http.Response {
	return &http.Response{StatusCode: v.status, Header: v.header, Body: io.NopCloser(bytes.NewReader(v.body))}
}

func TestResponseErrorParsesEveryDocumentedShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		vector     string
		status     int
		code       string
		message    string
		retryAfter time.Duration
		check      func(t *testing.T, err error)
	}{
		{vector: "webapi-400-plugin-error-with-annotations.http", status: 400, code: CodePluginError, message: "Example Error Message.",
			check: func(t *testing.T, err error) {
				re := asResponseError(err)
				// The published sample misses a comma; the annotations must survive anyway.
				assert.Equal(t, "Example Error Message.", re.Details["InnerError.Message"])
				assert.Equal(t, "12345", re.Details["ErrorDetails.SubErrorCode"])
				assert.Contains(t, re.Details["HelpLink"], "go.microsoft.com")
				assert.True(t, IsBadRequest(err))
				assert.False(t, IsTransient(err))
			}},
		{vector: "webapi-404-upsert-prevent-create.http", status: 404, code: "",
			message: "account With Id = 00000000-0000-0000-0000-000000000001 Does Not Exist",
			check: func(t *testing.T, err error) {
				assert.True(t, IsNotFound(err))
				assert.False(t, IsConflict(err))
			}},
		{vector: "webapi-412-optimistic-concurrency-update.http", status: 412, code: "",
			message: "The version of the existing record doesn't match the RowVersion property provided.",
			check: func(t *testing.T, err error) {
				assert.True(t, IsConflict(err))
				assert.False(t, IsNotFound(err))
			}},
		{vector: "webapi-412-upsert-prevent-update.http", status: 412, code: "", message: "A record with matching key values already exists.",
			check: func(t *testing.T, err error) { assert.True(t, IsConflict(err)) }},
		{vector: "service-protection-429-ASSEMBLED.http", status: 429, code: CodeThrottledRequests,
			message: "Number of requests exceeded the limit of 6000 over time window of 300 seconds.", retryAfter: 12 * time.Second,
			check: func(t *testing.T, err error) {
				assert.True(t, IsThrottled(err))
				assert.True(t, IsTransient(err))
				assert.Equal(t, 12*time.Second, RetryAfter(err))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.vector, func(t *testing.T) {
			t.Parallel()
			v := readVector(t, tt.vector)
			require.Equal(t, tt.status, v.status)
			var err error = errorFromResponse(v.httpResponse())
			re := asResponseError(err)
			require.NotNil(t, re)
			assert.Equal(t, tt.status, re.StatusCode)
			assert.Equal(t, tt.code, re.Code)
			assert.Equal(t, tt.message, re.Message)
			assert.Equal(t, tt.retryAfter, re.RetryAfter)
			tt.check(t, err)
		})
	}
}

func TestResponseErrorOtherShapes(t *testing.T) {
	t.Parallel()
	t.Run("not JSON at all (a gateway page)", func(t *testing.T) {
		re := parseErrorBody(502, []byte("<html>Bad Gateway</html>"))
		assert.Equal(t, "<html>Bad Gateway</html>", re.Message)
		assert.True(t, IsTransient(re))
	})
	t.Run("empty body", func(t *testing.T) {
		re := parseErrorBody(503, nil)
		assert.Equal(t, "Service Unavailable", re.Message)
		assert.True(t, IsTransient(re))
	})
	t.Run("byte-order mark", func(t *testing.T) {
		re := parseErrorBody(400, []byte("\ufeff{\"error\":{\"code\":\"0x80040220\",\"message\":\"The user does not hold the necessary privileges.\"}}"))
		assert.Equal(t, CodePrivilegeDenied, re.Code)
		assert.True(t, IsForbidden(re))
	})
	t.Run("throttling code on a 503", func(t *testing.T) {
		re := parseErrorBody(503, []byte(`{"error":{"code":"0x80072326","message":"Number of concurrent requests exceeded the limit of 52."}}`))
		assert.True(t, IsThrottled(re))
	})
	t.Run("error text names the call, not credentials", func(t *testing.T) {
		re := &ResponseError{StatusCode: 404, Code: CodeObjectDoesNotExist, Message: "missing", Method: "GET",
			URL: redactURL("https://user:secret@contoso.crm.dynamics.com/api/data/v9.2/accounts(1)"), RequestID: "abc"}
		assert.NotContains(t, re.Error(), "secret")
		assert.Contains(t, re.Error(), "GET https://contoso.crm.dynamics.com/api/data/v9.2/accounts(1): HTTP 404 0x80040217: missing (request abc)")
	})
}
