package dataverse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/internal/apierror"
	"github.com/cspconnector/csp-connector/internal/retry"
)

// Dataverse error codes the client and its callers branch on. The code in an error body is unrelated to the
// HTTP status and is often empty (the 404 and 412 samples in the docs have "code":""), so helpers look at the
// status first and use codes only to refine it.
const (
	CodeObjectDoesNotExist         = "0x80040217"
	CodeRecordNotFoundByEntityKey  = "0x80060891"
	CodeDuplicateRecord            = "0x80040237"
	CodeDuplicateRecordEntityKey   = "0x80060892"
	CodeDuplicateRecordsFound      = "0x80040333"
	CodeConcurrencyVersionMismatch = "0x80060882"
	CodePrivilegeDenied            = "0x80040220"
	CodeAccessDenied               = "0x80048405"
	CodeRequestIsNotAuthenticated  = "0x80044302"
	CodeResourceNotFoundForSegment = "0x8006088a"
	CodeValidation                 = "0x80044331"
	CodeODataPayload               = "0x80048d19"
	CodeCustomizationLock          = "0x80090412"
	CodeSQLTimeout                 = "-2147204783"
	CodeSQLDeadlock                = "-2147204784"
	CodeThrottledRequests          = "0x80072322"
	CodeThrottledExecutionTime     = "0x80072321"
	CodeThrottledConcurrency       = "0x80072326"
	CodeThrottledConcurrencyDSS    = "0x80072327"
	CodePluginError                = "0x80040265"
	CodeNoRolesAssigned            = "0x80042F09"
)

// ResponseError is every non-success answer from Dataverse: the HTTP status, the Dataverse error code and
// message, and what a caller needs to retry or report it. Its Error text is for logs, not for people;
// workflows translate it before writing a message onto a row.
type ResponseError struct {
	StatusCode int
	// Code is the Dataverse error code ("0x80040217"), possibly empty.
	Code string
	// Message is Dataverse's own message.
	Message string
	// RetryAfter is the server's Retry-After, when it sent one (429, 503).
	RetryAfter time.Duration
	// RequestID identifies the request for Microsoft support (x-ms-service-request-id or REQ_ID).
	RequestID string
	// Method and URL say which call failed; the URL carries no credentials.
	Method string
	URL    string
	// Details holds the @Microsoft.PowerApps.CDS.* annotations when the request asked for them
	// (HelpLink, TraceText, InnerError.Message, ErrorDetails.*), keyed without the prefix.
	Details map[string]string
}

func (e *ResponseError) Error() string {
	b := apierror.Text("dataverse", e.Method, e.URL, e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(b, " (request %s)", e.RequestID)
	}
	return b.String()
}

// IsNotFound reports a missing row, table or resource (404), including an alternate-key miss.
func IsNotFound(err error) bool {
	re := asResponseError(err)
	return re != nil && (re.StatusCode == http.StatusNotFound ||
		re.Code == CodeObjectDoesNotExist || re.Code == CodeRecordNotFoundByEntityKey)
}

// IsConflict reports a failed precondition (412): the row changed since its ETag was read, or a create-only
// upsert found an existing row.
func IsConflict(err error) bool {
	re := asResponseError(err)
	return re != nil && re.StatusCode == http.StatusPreconditionFailed
}

// IsDuplicate reports a write refused because a row with the same key or duplicate-detection match exists.
func IsDuplicate(err error) bool {
	re := asResponseError(err)
	if re == nil {
		return false
	}
	switch re.Code {
	case CodeDuplicateRecord, CodeDuplicateRecordEntityKey, CodeDuplicateRecordsFound:
		return true
	}
	return false
}

// IsThrottled reports a service-protection refusal (429, or one of the throttling codes on another status).
func IsThrottled(err error) bool {
	re := asResponseError(err)
	if re == nil {
		return false
	}
	switch re.Code {
	case CodeThrottledRequests, CodeThrottledExecutionTime, CodeThrottledConcurrency, CodeThrottledConcurrencyDSS:
		return true
	}
	return re.StatusCode == http.StatusTooManyRequests
}

// IsUnauthorized reports that the token was refused (401): credentials or consent need fixing.
func IsUnauthorized(err error) bool {
	re := asResponseError(err)
	return re != nil && (re.StatusCode == http.StatusUnauthorized || re.Code == CodeRequestIsNotAuthenticated)
}

// IsForbidden reports a missing privilege or security role (403): the application user needs a role.
func IsForbidden(err error) bool {
	re := asResponseError(err)
	if re == nil {
		return false
	}
	switch strings.ToLower(re.Code) {
	case CodePrivilegeDenied, CodeAccessDenied, strings.ToLower(CodeNoRolesAssigned):
		return true
	}
	return re.StatusCode == http.StatusForbidden
}

// IsBadRequest reports a request Dataverse will never accept as sent (400): a validation error, an unknown
// column, a malformed value. Retrying it unchanged cannot help.
func IsBadRequest(err error) bool {
	re := asResponseError(err)
	return re != nil && re.StatusCode == http.StatusBadRequest && !isTransientCode(re.Code)
}

// IsTransient reports an error worth retrying later: throttling, a server or gateway failure, a SQL timeout
// or deadlock, a metadata customization lock.
func IsTransient(err error) bool {
	re := asResponseError(err)
	if re == nil {
		return false
	}
	if IsThrottled(err) || isTransientCode(re.Code) {
		return true
	}
	switch re.StatusCode {
	case http.StatusRequestTimeout, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return re.StatusCode >= 500 && re.StatusCode != http.StatusNotImplemented
}

func isTransientCode(code string) bool {
	switch code {
	case CodeSQLTimeout, CodeSQLDeadlock, CodeCustomizationLock:
		return true
	}
	return false
}

// RetryAfter returns how long the server asked the caller to wait, or zero.
func RetryAfter(err error) time.Duration {
	if re := asResponseError(err); re != nil {
		return re.RetryAfter
	}
	return 0
}

func asResponseError(err error) *ResponseError {
	var re *ResponseError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

// errorFromResponse reads a non-success response into a *ResponseError. It reads at most apierror.MaxBody
// bytes and closes the body.
func errorFromResponse(resp *http.Response) *ResponseError {
	re := parseErrorBody(resp.StatusCode, apierror.ReadBody(resp))
	re.RetryAfter = retry.After(resp.Header.Get("Retry-After"), time.Now())
	re.RequestID = firstHeader(resp.Header, "x-ms-service-request-id", "REQ_ID", "x-ms-request-id")
	if resp.Request != nil {
		re.Method = resp.Request.Method
		re.URL = redactURL(resp.Request.URL.String())
	}
	return re
}

// parseErrorBody decodes {"error":{"code","message",@annotations…}}. Bodies that are not strict JSON (one
// documented sample misses a comma) and bodies that are not JSON at all still yield the code and message
// where they can be found, so no error shape is ever lost.
func parseErrorBody(status int, body []byte) *ResponseError {
	re := &ResponseError{StatusCode: status}
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\ufeff")))
	var env struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err == nil && env.Error != nil {
		for k, raw := range env.Error {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				s = strings.TrimSpace(string(raw))
			}
			switch {
			case k == "code":
				re.Code = s
			case k == "message":
				re.Message = s
			case strings.HasPrefix(k, "@Microsoft.PowerApps.CDS."):
				if re.Details == nil {
					re.Details = map[string]string{}
				}
				re.Details[strings.TrimPrefix(k, "@Microsoft.PowerApps.CDS.")] = s
			}
		}
		return re
	}
	re.Code = looseField(body, "code")
	re.Message = looseField(body, "message")
	if re.Message == "" && len(body) > 0 && !bytes.HasPrefix(body, []byte("{")) {
		re.Message = string(body[:min(len(body), 512)])
	}
	for _, m := range looseAnnotation.FindAllSubmatch(body, -1) {
		if re.Details == nil {
			re.Details = map[string]string{}
		}
		var s string
		if json.Unmarshal(m[2], &s) == nil {
			re.Details[string(m[1])] = s
		}
	}
	if re.Message == "" {
		re.Message = http.StatusText(status)
	}
	return re
}

var looseAnnotation = regexp.MustCompile(`"@Microsoft\.PowerApps\.CDS\.([A-Za-z.]+)"\s*:\s*("(?:[^"\\]|\\.)*")`)

// looseField finds "name": "value" in text that failed to parse as JSON.
func looseField(body []byte, name string) string {
	re := regexp.MustCompile(`"` + regexp.QuoteMeta(name) + `"\s*:\s*("(?:[^"\\]|\\.)*")`)
	m := re.FindSubmatch(body)
	if m == nil {
		return ""
	}
	var s string
	if json.Unmarshal(m[1], &s) != nil {
		return ""
	}
	return s
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}
