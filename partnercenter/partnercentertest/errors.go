package partnercentertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error codes the simulator answers with: Partner Center's own, from its REST error-code table
// (error-codes.md, 2023 revision) and the pages named in the reference. The codes whose meaning no source
// gives are in the next block, and only there.
const (
	CodeTokenMissing          = 800001 // 401 Partner Token missing in request context (also unknown and expired tokens)
	CodeInvalidInput          = 800002 // 400 Invalid request input
	CodeAppOnlyNotSupported   = 900329 // 403 This resource does not support application-only authentication
	CodeNotFound              = 1000   // 404 Not found (unknown path, attestation)
	CodeInvalidCustomerID     = 900118 // 400 Invalid Customer ID (not a GUID)
	CodeTenantNotFound        = 60003  // 404 Tenant not found (unknown customer)
	CodeNoRelationship        = 20002  // 403 the partner has no commerce relationship with the customer
	CodeSubscriptionNotFound  = 20003  // 404 Subscription with ID {0} not found
	CodeOrderNotFound         = 20000  // 404 Order ID not found
	CodeCartNotFound          = 800008 // 404 Unable to retrieve cart ID
	CodeCartItemErrors        = 800009 // 400 Error in Cart item(s): checkout of a cart whose lines carry errors
	CodeQuantityWhileSuspend  = 2001   // 400 quantity can't change while the subscription is being suspended
	CodeQuantityOutOfRange    = 2002   // 400 quantity isn't within the minimum and maximum allowed
	CodeDeletedNotUpdatable   = 2011   // 400 a deleted subscription can't be updated
	CodeBillingCycleImmutable = 2054   // 400 billing cycle can't be changed with update-subscription
	CodeETagInvalid           = 2055   // 400 Etag is no longer valid
	CodeAddOnParentInactive   = 27009  // 409 can't enable a child subscription while the parent isn't active
	CodeMCARequired           = 13605  // 403 no MCA: neither partner-attested nor accepted in the admin center
	CodeSandboxLimit          = 800018 // 400 The sandbox limit has been met (customers)
	CodeOrderInProgress       = 800060 // 409 still processing a request with the same MS-RequestId
	CodeCartBeingProcessed    = 800064 // 409 Cart {0} is being processed by another request
	CodeCartAlreadySubmitted  = 800065 // 400 can't check out an already submitted cart
	CodeSandboxSubscriptions  = 800066 // 403 maximum number of subscriptions per customer exceeded
	CodeSandboxSeats          = 800067 // 403 maximum seat count per subscription exceeded
	CodeNotReadyToUpdate      = 800082 // 409 Subscription is not ready to be updated (a 202 update not yet observed)
	CodeQuantityNotDecreased  = 800090 // 400 Subscription quantity can't be decreased (more than the refundable seats)
	CodeSuspendedNotUpdatable = 800091 // 400 Can't update a subscription with suspended status
	CodeStatusNotUpdatable    = 800096 // 400 Can't update the status for this subscription (unknown target status)
	CodeCancellationWindow    = 900117 // 400 You have passed your {0}-day cancellation window
	CodeReductionWindow       = 900257 // 400 You have passed your {0}-day window for reducing seats (no refundable seats left)

	// Agreements and attestation (the agreements error shape).
	CodeAgreementExists = 600061 // 400 PartnerConfirmedAgreementAlreadyExists (confirm-customer-consent-customer-agreement.md)
	// CodeOrgRegistrationIDNotSupported is 600002: "Organization registration id value is not supported"
	// in the error-code table. The simulator answers it where Partner Center was seen to: the legacy
	// create-agreement call with a future dateAgreed, described "Date of agreement cannot be greater than
	// the current date" (github.com/microsoft/Partner-Center-PowerShell/issues/26, 2018). One number, two
	// meanings: clients must read the description.
	CodeOrgRegistrationIDNotSupported = 600002
)

// Codes without a source: no Partner Center page, sample or captured answer says which code Partner Center
// gives for these failures. The simulator picked them so that every failure carries a distinct, stable
// code; the connector never branches on them. Correct them here once the real ones are known.
const (
	CodeAppUserNotSupported       = 900308 // 403 an app+user token on an operation that takes app-only tokens
	CodeAttestationNotAccepted    = 600030 // 400 create agreement from an attestation the customer has not accepted yet
	CodeAttestationExpired        = 600031 // 400 create agreement from an attestation whose link expired
	CodeAttestationAlreadyPending = 600062 // 409 create an attestation while one is pending for the customer
)

// Cart line-item error codes (cart-resources.md; CartErrorCode.cs).
const (
	LineErrorCatalogItemNotValid = 10001 // CatalogItemIdIsNotValid
	LineErrorSubscriptionInvalid = 10007 // SubscriptionIsNotValid (an add-on's parent)
	LineErrorInvalidInput        = 10010 // InvalidInput
)

// apiError is an error answer. Codes in the agreements range (600000–600099) are written in the agreements
// shape, everything else in the standard PartnerFD shape; throttling has a shape of its own.
type apiError struct {
	status      int
	code        int
	description string
	data        []string
	errorName   string            // agreements shape only
	parameters  map[string]string // agreements shape only
	retryAfter  time.Duration
	throttled   bool
	header      http.Header
}

func newError(status, code int, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, description: fmt.Sprintf(format, args...)}
}

func invalidInput(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, CodeInvalidInput, format, args...)
}

func agreementError(status, code int, errorName, description string) *apiError {
	return &apiError{status: status, code: code, errorName: errorName, description: description}
}

func throttled(wait time.Duration) *apiError {
	return &apiError{status: http.StatusTooManyRequests, retryAfter: wait, throttled: true}
}

// seconds rounds a wait up to whole seconds, at least one: Retry-After of 0 would invite an immediate retry.
func seconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

func (e *apiError) body() any {
	switch {
	case e.throttled:
		return map[string]any{
			"statusCode": http.StatusTooManyRequests,
			"message":    fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", seconds(e.retryAfter)),
		}
	case e.code >= 600000 && e.code < 600100:
		params := e.parameters
		if params == nil {
			params = map[string]string{}
		}
		name := e.errorName
		if name == "" {
			name = "InvalidInput"
		}
		out := map[string]any{
			"code": e.code, "message": e.description, "description": e.description, "errorName": name,
			"isRetryable": false, "parameters": params, "errorMessageExtended": "InternalErrorCode=" + strconv.Itoa(e.code),
		}
		if len(e.data) > 0 {
			out["data"] = e.data
		}
		return out
	}
	data := e.data
	if data == nil {
		data = []string{}
	}
	return map[string]any{"code": e.code, "description": e.description, "data": data, "source": "PartnerFD"}
}

func (e *apiError) result() result {
	h := http.Header{}
	for k, v := range e.header {
		h[k] = v
	}
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(seconds(e.retryAfter)))
	}
	return result{status: e.status, header: h, body: e.body()}
}

// bom is the UTF-8 byte-order mark Partner Center puts before every JSON body it sends.
const bom = "\ufeff"

// encodeJSON renders a response body: the byte-order mark, then camelCase JSON. HTML escaping is off so
// URLs with & read as they do in Microsoft's captures.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	buf.WriteString(bom)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Every value rendered here is built by the simulator from plain types, so this is a bug; it is
		// reported in the body rather than with a panic.
		fallback, _ := json.Marshal(map[string]any{"code": 800003, "description": "Unexpected service error: " + err.Error(), "data": []string{}, "source": "PartnerFD"})
		return append([]byte(bom), fallback...)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// decodeJSON reads a request body into v. Go's decoder already matches field names case-insensitively,
// which is what Partner Center's binding does (its own samples send PascalCase); a leading byte-order mark
// is tolerated.
func decodeJSON(body []byte, v any) error {
	body = bytes.TrimPrefix(bytes.TrimSpace(body), []byte(bom))
	if len(body) == 0 {
		return fmt.Errorf("the request body is empty")
	}
	return json.Unmarshal(body, v)
}
