package mapping

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/dataverse/schema"
	"github.com/cspconnector/csp-connector/partnercenter"
)

// Failure turns a Partner Center failure into the decision's last step: rule 4 (the customer or the
// subscription is not there), rule 10 (credentials, consent, connectivity: hold, provider not connected),
// rule 11 (throttling, outage: hold and retry after a backoff that honours Retry-After) or rule 12 (a
// refusal: fail with the reason in words). d is the walk so far; attempts is the LCL's attempt count.
func Failure(d Decision, f LCLFacts, err error, now time.Time) Decision {
	w := walk{d: d}
	sys := SystemMessage(err, f.LCL.Attempts)
	fail := func(rule int, name, what string, r Remedy) Decision {
		out := w.fail(rule, name, what, r)
		out.System = sys
		return out
	}
	hold := func(rule int, name string, reason schema.HeldReason, next time.Time, msg string) Decision {
		out := w.hold(rule, name, reason, next, msg)
		out.System = sys
		return out
	}
	re := responseError(err)
	code := partnercenter.ErrorCode(err)
	tenant := ""
	if f.ProviderAccount != nil {
		tenant = f.ProviderAccount.TenantID
	}
	retry := now.Add(RetryDelay(f.LCL.Attempts, partnercenter.RetryAfter(err)))

	switch {
	case errors.Is(err, partnercenter.ErrNoCredential):
		d := hold(10, "Partner Center credentials", schema.HeldNotConnected, time.Time{},
			"The connector has no Partner Center credential of the kind this change needs: configure it (see Verify Connectivity on the provider). The change is retried once connectivity is verified.")
		d.NotConnected = true
		return d
	case re == nil && isNetwork(err):
		return hold(11, "Partner Center reachable", schema.HeldRetrying, retry,
			fmt.Sprintf("Partner Center could not be reached: the connector tries again at %s.", FormatTime(retry)))
	case re == nil:
		return hold(11, "Completed", schema.HeldRetrying, retry,
			fmt.Sprintf("The change could not be completed (%v): the connector tries again at %s.", err, FormatTime(retry)))
	}

	switch {
	case re.StatusCode == 404 && code == partnercenter.CodeSubscriptionNotFound:
		return fail(4, "Partner Center subscription", fmt.Sprintf(
			"Partner Center has no subscription %s for customer %s: check the subscription's Provider subscription ID.", subscriptionID(f), tenant), RemedyRetry)
	case re.StatusCode == 404 && code == partnercenter.CodeOrderNotFound:
		return fail(12, "Partner Center order", fmt.Sprintf(
			"Partner Center does not know the order %s recorded on this change: check the customer's orders in Partner Center before trying again, so nothing is bought twice.", f.LCL.PCOrderID), RemedyRetry)
	case re.StatusCode == 404:
		return fail(4, "Partner Center customer", fmt.Sprintf(
			"Tenant %s is not a customer in Partner Center: check the provider account's Provider specific account ID, or ask the customer to accept the reseller relationship.", tenant), RemedyRetry)
	case code == partnercenter.CodeNoCommerceRelationship:
		return fail(4, "Partner Center customer", fmt.Sprintf(
			"The partner has no reseller relationship with tenant %s in Partner Center: ask the customer to accept one.", tenant), RemedyRetry)
	case partnercenter.IsThrottled(err):
		return hold(11, "Partner Center throttling", schema.HeldRetrying, retry,
			fmt.Sprintf("Partner Center asked the connector to slow down (throttled): it tries again at %s.", FormatTime(retry)))
	case partnercenter.IsTransient(err) || re.StatusCode >= 500:
		return hold(11, "Partner Center available", schema.HeldRetrying, retry,
			fmt.Sprintf("Partner Center is busy or having an outage (HTTP %d): the connector tries again at %s.", re.StatusCode, FormatTime(retry)))
	case partnercenter.IsUnauthorized(err) || (partnercenter.IsForbidden(err) && !refusal(code)):
		d := hold(10, "Partner Center credentials", schema.HeldNotConnected, time.Time{},
			"Partner Center refused the connector's credentials ("+strconv.Itoa(re.StatusCode)+"): check the app registration, its consent and the Admin agent role, then run Verify Connectivity on the provider. The change is retried once connectivity is verified.")
		d.NotConnected = true
		return d
	case partnercenter.IsSeatReductionRefused(err):
		return fail(9, "Seat reduction", fmt.Sprintf(
			"Partner Center refused the seat reduction: %s Set a quantity Partner Center allows now, or reduce at renewal instead.", sentence(refundableText(re))), RemedyRetryOrArchive)
	}
	what, r := Refusal(err)
	return fail(12, "Partner Center accepts the change", what, r)
}

// Refusal says in words why Partner Center refused a change (rule 12) and what to do about it; the
// remedy's step completes the message.
func Refusal(err error) (string, Remedy) {
	re := responseError(err)
	if re == nil {
		return fmt.Sprintf("Partner Center refused the change: %v.", err), RemedyRetry
	}
	what := sentence(re.Description)
	switch re.Code {
	case partnercenter.CodeMCANotAccepted:
		return "The customer has not accepted the Microsoft Customer Agreement, so Partner Center blocks purchases: get it accepted (the customer's Agreement row: request an acceptance link).", RemedyRetry
	case partnercenter.CodeSandboxLimit, partnercenter.CodeMaxSubscriptions, partnercenter.CodeMaxSeats, partnercenter.CodeCartSandboxLimit, partnercenter.CodeSandboxAzurePlanLimit:
		return "This is a Partner Center integration sandbox, and it caps customers, subscriptions and seats: " + what + " Use a smaller quantity, or test against a production account.", RemedyRetry
	case partnercenter.CodeQuantityOutOfRange, partnercenter.CodeRemainingSeatsExceeded, partnercenter.CodeRemainingAssetsExceeded:
		return "Partner Center does not allow this quantity for the product: " + what + " Enter a quantity within the product's limits.", RemedyRetry
	case partnercenter.CodeSubscriptionSuspended, partnercenter.CodeQuantityWhileSuspending:
		return "The subscription is suspended in Partner Center: reactivate it first (a Reactivate change).", RemedyRetry
	case partnercenter.CodeDeletedNotUpdatable:
		return "The subscription is cancelled or expired in Partner Center and can no longer be changed: buy a new subscription if the customer still needs it.", RemedyArchive
	case partnercenter.CodeCancellationWindowEnded:
		return "Partner Center no longer allows cancelling this subscription: " + what + " Turn auto-renew off so it ends at renewal.", RemedyArchive
	case partnercenter.CodeAddOnParentNotActive:
		return "This add-on's parent subscription is not active in Partner Center: reactivate the parent first.", RemedyRetry
	case partnercenter.CodeResellerMPANotAccepted:
		return "The indirect reseller has not accepted the Microsoft Partner Agreement, so Partner Center refuses the order: the reseller must accept it in Partner Center first.", RemedyRetryOrArchive
	case partnercenter.CodePartnerMPANotAccepted:
		return "Your company has not accepted the latest Microsoft Partner Agreement in Partner Center: a global admin must accept it (Partner Center → Settings → Legal).", RemedyRetry
	case partnercenter.CodeCartItemErrors:
		return "Partner Center refused the order's items: " + strings.Join(re.Data, "; ") + ". Check the subscription's Offer ID, term and billing cycle.", RemedyRetry
	case partnercenter.CodeCartAlreadySubmitted:
		return "Partner Center says this change's cart was already checked out, but the connector could not find its order: check the customer's orders in Partner Center. If the order exists, enter its id in Provider order ID; if not, clear Provider cart ID.", RemedyRetry
	}
	if re.Code != "" {
		return fmt.Sprintf("Partner Center refused the change (error %s): %s Fix what it names.", re.Code, what), RemedyRetry
	}
	return fmt.Sprintf("Partner Center refused the change (HTTP %d): %s Fix what it names.", re.StatusCode, what), RemedyRetry
}

// refusal reports the 403 codes that are business refusals, not missing permissions.
func refusal(code string) bool {
	switch code {
	case partnercenter.CodeMCANotAccepted, partnercenter.CodeMaxSubscriptions, partnercenter.CodeMaxSeats, partnercenter.CodeSandboxLimit,
		partnercenter.CodeRemainingSeatsExceeded, partnercenter.CodeRemainingAssetsExceeded, partnercenter.CodeResellerMPANotAccepted,
		partnercenter.CodePartnerMPANotAccepted, partnercenter.CodeNoCommerceRelationship:
		return true
	}
	return false
}

// SystemMessage is the support detail of a failure: Partner Center's code and words, the request and
// correlation ids, and the attempt count.
func SystemMessage(err error, attempts int) string {
	var b strings.Builder
	if re := responseError(err); re != nil {
		fmt.Fprintf(&b, "Partner Center HTTP %d", re.StatusCode)
		if re.Code != "" {
			fmt.Fprintf(&b, ", error %s", re.Code)
		}
		if re.ErrorName != "" {
			fmt.Fprintf(&b, " (%s)", re.ErrorName)
		}
		fmt.Fprintf(&b, ": %s", re.Description)
		if len(re.Data) > 0 {
			fmt.Fprintf(&b, " [%s]", strings.Join(re.Data, "; "))
		}
		if re.Method != "" {
			fmt.Fprintf(&b, "\nRequest: %s %s", re.Method, re.URL)
		}
		fmt.Fprintf(&b, "\nMS-RequestId: %s\nMS-CorrelationId: %s", orNone(re.RequestID), orNone(re.CorrelationID))
	} else if err != nil {
		fmt.Fprintf(&b, "%v", err)
	}
	fmt.Fprintf(&b, "\nAttempts: %d", attempts)
	return b.String()
}

func responseError(err error) *partnercenter.ResponseError {
	var re *partnercenter.ResponseError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

func refundableText(re *partnercenter.ResponseError) string {
	for _, d := range re.Data {
		if n, ok := strings.CutPrefix(d, "refundableQuantity="); ok {
			return fmt.Sprintf("%s Seats that may still be removed: %s.", sentence(re.Description), n)
		}
	}
	return re.Description
}

func subscriptionID(f LCLFacts) string {
	if f.Subscription != nil {
		return f.Subscription.PCSubscriptionID
	}
	return ""
}

// sentence ends text with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, "!") || strings.HasSuffix(s, "?") {
		return s
	}
	return s + "."
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
