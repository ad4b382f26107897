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
	stop := func(rule int, name string, v Verdict, msg string) Decision {
		out := w.stop(rule, name, v, msg)
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
		return stop(4, "Partner Center subscription", Fail, fmt.Sprintf(
			"Partner Center has no subscription %s for customer %s: check the subscription's Provider subscription ID, then set this change back to Awaiting Provisioning.", subscriptionID(f), tenant))
	case re.StatusCode == 404 && code == partnercenter.CodeOrderNotFound:
		return stop(12, "Partner Center order", Fail, fmt.Sprintf(
			"Partner Center does not know the order %s recorded on this change: check the customer's orders in Partner Center before trying again, so nothing is bought twice.", f.LCL.PCOrderID))
	case re.StatusCode == 404:
		return stop(4, "Partner Center customer", Fail, fmt.Sprintf(
			"Tenant %s is not a customer in Partner Center: check the provider account's Provider specific account ID, or ask the customer to accept the reseller relationship. Then set this change back to Awaiting Provisioning.", tenant))
	case code == partnercenter.CodeNoCommerceRelationship:
		return stop(4, "Partner Center customer", Fail, fmt.Sprintf(
			"The partner has no reseller relationship with tenant %s in Partner Center: ask the customer to accept one, then set this change back to Awaiting Provisioning.", tenant))
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
		return stop(9, "Seat reduction", Fail, fmt.Sprintf(
			"Partner Center refused the seat reduction: %s Reduce at renewal instead, or set a quantity Partner Center allows now.", sentence(refundableText(re))))
	}
	return stop(12, "Partner Center accepts the change", Fail, Refusal(err))
}

// Refusal says in words why Partner Center refused a change (rule 12), and what to do.
func Refusal(err error) string {
	re := responseError(err)
	if re == nil {
		return fmt.Sprintf("Partner Center refused the change: %v.", err)
	}
	what := sentence(re.Description)
	switch re.Code {
	case partnercenter.CodeMCANotAccepted:
		return "The customer has not accepted the Microsoft Customer Agreement, so Partner Center blocks purchases: get it accepted (the customer's Agreement row: request an acceptance link), then set this change back to Awaiting Provisioning."
	case partnercenter.CodeSandboxLimit, partnercenter.CodeMaxSubscriptions, partnercenter.CodeMaxSeats, partnercenter.CodeCartSandboxLimit, partnercenter.CodeSandboxAzurePlanLimit:
		return "This is a Partner Center integration sandbox, and it caps customers, subscriptions and seats: " + what + " Use a smaller quantity, or test against a production account."
	case partnercenter.CodeQuantityOutOfRange, partnercenter.CodeRemainingSeatsExceeded, partnercenter.CodeRemainingAssetsExceeded:
		return "Partner Center does not allow this quantity for the product: " + what + " Enter a quantity within the product's limits, then set this change back to Awaiting Provisioning."
	case partnercenter.CodeSubscriptionSuspended, partnercenter.CodeQuantityWhileSuspending:
		return "The subscription is suspended in Partner Center: reactivate it first (a Reactivate change), then set this change back to Awaiting Provisioning."
	case partnercenter.CodeDeletedNotUpdatable:
		return "The subscription is cancelled or expired in Partner Center and can no longer be changed: buy a new subscription if the customer still needs it."
	case partnercenter.CodeCancellationWindowEnded:
		return "Partner Center no longer allows cancelling this subscription: " + what + " Turn auto-renew off so it ends at renewal, and archive this change."
	case partnercenter.CodeAddOnParentNotActive:
		return "This add-on's parent subscription is not active in Partner Center: reactivate the parent first, then set this change back to Awaiting Provisioning."
	case partnercenter.CodeResellerMPANotAccepted:
		return "The indirect reseller has not accepted the Microsoft Partner Agreement, so Partner Center refuses the order: the reseller must accept it in Partner Center first."
	case partnercenter.CodePartnerMPANotAccepted:
		return "Your company has not accepted the latest Microsoft Partner Agreement in Partner Center: a global admin must accept it (Partner Center → Settings → Legal), then set this change back to Awaiting Provisioning."
	case partnercenter.CodeCartItemErrors:
		return "Partner Center refused the order's items: " + strings.Join(re.Data, "; ") + ". Check the subscription's Offer ID, term and billing cycle, then set this change back to Awaiting Provisioning."
	case partnercenter.CodeCartAlreadySubmitted:
		return "Partner Center says this change's cart was already checked out, but the connector could not find its order: check the customer's orders in Partner Center. If the order exists, enter its id in Provider order ID and set the change back to Awaiting Provisioning; if not, clear Provider cart ID first."
	}
	if re.Code != "" {
		return fmt.Sprintf("Partner Center refused the change (error %s): %s Fix what it names, then set this change back to Awaiting Provisioning.", re.Code, what)
	}
	return fmt.Sprintf("Partner Center refused the change (HTTP %d): %s Fix what it names, then set this change back to Awaiting Provisioning.", re.StatusCode, what)
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
