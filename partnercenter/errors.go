package partnercenter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cspconnector/csp-connector/internal/apierror"
	"github.com/cspconnector/csp-connector/internal/retry"
)

// Partner Center error codes the connector branches on, with the meaning Partner Center gives each: its
// REST error-code table (error-codes.md) unless another source is named (reference: partnercenter.md §2.4,
// §4.4, §7). Codes are not unique across Partner Center's domains; helpers pair them with the HTTP status
// where that matters. Every code here has a source; the codes whose meaning has none are the simulator's
// own choices, kept together in partnercentertest/errors.go ("Codes without a source").
const (
	CodeTokenMissing             = "800001" // 401 partner token missing in request context
	CodeMCANotAccepted           = "13605"  // 403 no Microsoft Customer Agreement: purchase blocked
	CodeNoCommerceRelationship   = "20002"  // 403 the partner has no commerce relationship with the customer
	CodeSubscriptionNotFound     = "20003"  // 404 subscription not found
	CodeETagInvalid              = "2055"   // 400 ETag no longer valid
	CodeAddOnParentNotActive     = "27009"  // 409 an add-on cannot be enabled while its parent is not active
	CodeSandboxLimit             = "800018" // 400 the sandbox limit has been met
	CodeOrderInProgress          = "800060" // 409 order in progress, check history later
	CodeCartBeingProcessed       = "800064" // 409 the cart is being processed by another request
	CodeCartAlreadySubmitted     = "800065" // 400 an already submitted cart cannot be checked out
	CodeMaxSubscriptions         = "800066" // 403 maximum subscriptions per customer (sandbox)
	CodeMaxSeats                 = "800067" // 403 maximum seats per subscription (sandbox)
	CodeQuantityCannotDecrease   = "800090" // 400 the subscription quantity cannot be decreased
	CodeSeatReductionWindowEnded = "900257" // 400 past the window for reducing seats
	CodeSubscriptionSuspended    = "800091" // 400 a suspended subscription cannot be updated
	CodeSubscriptionNotReady     = "800082" // 400 the subscription is not ready to be updated, retry later
	CodeCancellationWindowEnded  = "900117" // 400 past the cancellation window
	// CodeOrgRegistrationIDNotSupported is 600002, "Organization registration id value is not supported"
	// in Partner Center's error table. In 2018 the legacy create-agreement call was seen answering a
	// future dateAgreed with the same number ("Date of agreement cannot be greater than the current date",
	// github.com/microsoft/Partner-Center-PowerShell/issues/26): never infer the cause from this code
	// alone; read the description that came with it.
	CodeOrgRegistrationIDNotSupported = "600002"
	CodeAgreementAlreadyExists        = "600061" // 400 PartnerConfirmedAgreementAlreadyExists (confirm-customer-consent-customer-agreement.md)
	CodeCartSandboxLimit              = "10009"  // cart line item SandboxLimitExceeded (cart-resources.md)
	CodeOrderNotFound                 = "20000"  // 404 order ID not found
	CodeQuantityWhileSuspending       = "2001"   // 400 quantity change while the subscription is being suspended
	CodeQuantityOutOfRange            = "2002"   // 400 quantity outside the allowed minimum and maximum
	CodeDeletedNotUpdatable           = "2011"   // 400 a deleted subscription cannot be updated
	CodeCartItemErrors                = "800009" // 400 error in cart item(s)
	CodeRemainingSeatsExceeded        = "800088" // 403 requested seats exceed the remaining seats per subscription
	CodeRemainingAssetsExceeded       = "800089" // 403 requested seats exceed the remaining assets per customer
	CodeSandboxAzurePlanLimit         = "900116" // 400 sandbox Azure plan limit
	CodeResellerMPANotAccepted        = "900123" // 403 the indirect reseller has not accepted the Microsoft Partner Agreement
	CodePartnerMPANotAccepted         = "900124" // 403 your company has not accepted the Microsoft Partner Agreement
	CodeRoleLacksRights               = "900150" // 403 the role lacks rights for the operation
)

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
	b := apierror.Text("partnercenter", e.Method, e.URL, e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(b, " code %s", e.Code)
	}
	if e.ErrorName != "" {
		fmt.Fprintf(b, " (%s)", e.ErrorName)
	}
	if e.Description != "" {
		fmt.Fprintf(b, ": %s", e.Description)
	}
	if e.CorrelationID != "" {
		fmt.Fprintf(b, " [correlation %s]", e.CorrelationID)
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

// errorFromResponse reads a non-success response (at most apierror.MaxBody bytes) and closes it.
func errorFromResponse(resp *http.Response) *ResponseError {
	re := parseErrorBody(resp.StatusCode, apierror.ReadBody(resp))
	re.RetryAfter = retry.After(resp.Header.Get("Retry-After"), time.Now())
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

// stripBOM removes a UTF-8 byte-order mark: Partner Center's responses start with one, and Go's JSON
// decoder rejects it.
func stripBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\ufeff")) }
