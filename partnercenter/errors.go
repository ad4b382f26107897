package partnercenter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Partner Center error codes the connector branches on (reference: partnercenter.md §2.4, §4.4, §7).
// Codes are not unique across Partner Center's domains; helpers pair them with the HTTP status where
// that matters.
const (
	CodeTokenMissing             = "800001"
	CodeMCANotAccepted           = "13605"
	CodeNoCommerceRelationship   = "20002"
	CodeSubscriptionNotFound     = "20003"
	CodeETagInvalid              = "2055"
	CodeAddOnParentNotActive     = "27009"
	CodeSandboxLimit             = "800018"
	CodeOrderInProgress          = "800060"
	CodeCartBeingProcessed       = "800064"
	CodeCartAlreadySubmitted     = "800065"
	CodeMaxSubscriptions         = "800066"
	CodeMaxSeats                 = "800067"
	CodeQuantityCannotDecrease   = "800090"
	CodeSeatReductionWindowEnded = "900257"
	CodeSubscriptionSuspended    = "800091"
	CodeSubscriptionNotReady     = "800082"
	CodeCancellationWindowEnded  = "900117"
	CodeAgreementDateInFuture    = "600002"
	CodeAgreementAlreadyExists   = "600061"
	CodeCartSandboxLimit         = "10009"
	CodeOrderNotFound            = "20000"
	CodeQuantityWhileSuspending  = "2001"
	CodeQuantityOutOfRange       = "2002"
	CodeDeletedNotUpdatable      = "2011"
	CodeCartItemErrors           = "800009"
	CodeRemainingSeatsExceeded   = "800088"
	CodeRemainingAssetsExceeded  = "800089"
	CodeSandboxAzurePlanLimit    = "900116"
	CodeResellerMPANotAccepted   = "900123"
	CodePartnerMPANotAccepted    = "900124"
	CodeRoleLacksRights          = "900150"
)

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// ResponseError is every non-success answer from Partner Center, whichever of its three error shapes
// the body used: {code, description, data, source} (code numeric or string), the agreements shape
// {code, message, errorName, isRetryable, …}, or the throttling shape {statusCode, message}. Its Error
// text is for logs; workflows translate the Code into words for people.
type ResponseError struct {
	StatusCode int
	// Code is Partner Center's error code as decimal text ("600061"), or "" when the body had none.
	Code        string
	Description string
	// ErrorName is the agreements shape's symbolic name (PartnerConfirmedAgreementAlreadyExists).
	ErrorName string
	// Retryable is the agreements shape's isRetryable, when present.
	Retryable *bool
	Data      []string
	Source    string
	// RetryAfter is the server's Retry-After (429).
	RetryAfter time.Duration
	// RequestID and CorrelationID identify the call for Microsoft support.
	RequestID, CorrelationID string
	Method, URL              string
}

func (e *ResponseError) Error() string {
	var b strings.Builder
	b.WriteString("partnercenter: ")
	if e.Method != "" {
		fmt.Fprintf(&b, "%s %s: ", e.Method, e.URL)
	}
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " code %s", e.Code)
	}
	if e.ErrorName != "" {
		fmt.Fprintf(&b, " (%s)", e.ErrorName)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	if e.CorrelationID != "" {
		fmt.Fprintf(&b, " [correlation %s]", e.CorrelationID)
	}
	return b.String()
}

// ErrorCode returns the Partner Center error code of err ("" when err is not a *ResponseError or has none).
func ErrorCode(err error) string {
	if re := asResponseError(err); re != nil {
		return re.Code
	}
	return ""
}

func asResponseError(err error) *ResponseError {
	var re *ResponseError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

func hasStatus(err error, status int) bool {
	re := asResponseError(err)
	return re != nil && re.StatusCode == status
}

func hasCode(err error, codes ...string) bool {
	re := asResponseError(err)
	if re == nil {
		return false
	}
	for _, c := range codes {
		if re.Code == c {
			return true
		}
	}
	return false
}

// IsNotFound reports a missing customer, subscription, cart, order or attestation.
func IsNotFound(err error) bool {
	return hasStatus(err, http.StatusNotFound) || hasCode(err, CodeSubscriptionNotFound)
}

// IsThrottled reports a 429: wait RetryAfter(err) and try again.
func IsThrottled(err error) bool { return hasStatus(err, http.StatusTooManyRequests) }

// IsUnauthorized reports a refused token (401): credentials, consent or the refresh token need fixing.
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsForbidden reports a 403: a missing role or relationship, a sandbox cap, or a purchase blocked by a
// missing Microsoft Customer Agreement (see IsMCANotAccepted).
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

// IsAlreadyExists reports 600061: the agreement (or attestation) already exists. Workflows treat it as
// success.
func IsAlreadyExists(err error) bool {
	re := asResponseError(err)
	return re != nil && (re.Code == CodeAgreementAlreadyExists || re.ErrorName == "PartnerConfirmedAgreementAlreadyExists")
}

// IsMCANotAccepted reports 13605: the customer has no accepted Microsoft Customer Agreement.
func IsMCANotAccepted(err error) bool { return hasCode(err, CodeMCANotAccepted) }

// IsSeatReductionRefused reports a seat decrease Partner Center will not make now: more seats than are
// refundable (800090) or the reduction window has passed (900257). The seats can be reduced at renewal.
func IsSeatReductionRefused(err error) bool {
	return hasCode(err, CodeQuantityCannotDecrease, CodeSeatReductionWindowEnded)
}

// IsSandboxLimit reports an integration-sandbox cap (customers, subscriptions per customer, seats).
func IsSandboxLimit(err error) bool {
	return hasCode(err, CodeSandboxLimit, CodeMaxSubscriptions, CodeMaxSeats, CodeCartSandboxLimit, CodeSandboxAzurePlanLimit)
}

// IsETagInvalid reports 2055: the subscription changed since it was read; read it again.
func IsETagInvalid(err error) bool { return hasCode(err, CodeETagInvalid) }

// IsTransient reports a failure worth retrying later: throttling, a server error, or a resource that is
// busy (an order or cart being processed, a subscription not ready).
func IsTransient(err error) bool {
	re := asResponseError(err)
	if re == nil {
		return false
	}
	if re.Retryable != nil && *re.Retryable {
		return true
	}
	switch re.Code {
	case CodeOrderInProgress, CodeCartBeingProcessed, CodeSubscriptionNotReady:
		return true
	}
	return re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusRequestTimeout || re.StatusCode >= 500
}

// RetryAfter returns how long the server asked the caller to wait, or zero.
func RetryAfter(err error) time.Duration {
	if re := asResponseError(err); re != nil {
		return re.RetryAfter
	}
	return 0
}

// errorFromResponse reads a non-success response (at most maxErrorBody bytes) and closes it.
func errorFromResponse(resp *http.Response) *ResponseError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	re := parseErrorBody(resp.StatusCode, body)
	re.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	re.RequestID = resp.Header.Get("MS-RequestId")
	re.CorrelationID = resp.Header.Get("MS-CorrelationId")
	if resp.Request != nil {
		re.Method = resp.Request.Method
		re.URL = resp.Request.URL.Redacted()
		if re.RequestID == "" {
			re.RequestID = resp.Request.Header.Get("MS-RequestId")
		}
		if re.CorrelationID == "" {
			re.CorrelationID = resp.Request.Header.Get("MS-CorrelationId")
		}
	}
	return re
}

// parseErrorBody decodes any of the three error shapes. A body that is not JSON becomes the description.
func parseErrorBody(status int, body []byte) *ResponseError {
	re := &ResponseError{StatusCode: status}
	body = bytes.TrimSpace(stripBOM(body))
	var raw struct {
		Code        json.RawMessage `json:"code"`
		Description string          `json:"description"`
		Message     string          `json:"message"`
		ErrorName   string          `json:"errorName"`
		IsRetryable *bool           `json:"isRetryable"`
		Data        []any           `json:"data"`
		Source      string          `json:"source"`
		StatusCode  int             `json:"statusCode"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		if len(body) > 0 {
			re.Description = string(body[:min(len(body), 512)])
		} else {
			re.Description = http.StatusText(status)
		}
		return re
	}
	re.Code = codeText(raw.Code)
	re.Description = raw.Description
	if re.Description == "" {
		re.Description = raw.Message
	}
	re.ErrorName, re.Retryable, re.Source = raw.ErrorName, raw.IsRetryable, raw.Source
	for _, d := range raw.Data {
		if s, ok := d.(string); ok {
			re.Data = append(re.Data, s)
		} else if b, err := json.Marshal(d); err == nil {
			re.Data = append(re.Data, string(b))
		}
	}
	if re.Description == "" {
		re.Description = http.StatusText(status)
	}
	return re
}

// codeText renders a code that is a JSON number or a JSON string as decimal text.
func codeText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if i, err := n.Int64(); err == nil {
			return strconv.FormatInt(i, 10)
		}
		return n.String()
	}
	return string(raw)
}

// parseRetryAfter reads Retry-After as delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(max(secs, 0) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// stripBOM removes a UTF-8 byte-order mark: Partner Center's responses start with one, and Go's JSON
// decoder rejects it.
func stripBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\ufeff")) }
