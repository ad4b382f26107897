package partnercentertest

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// op is one API request as the handlers see it.
type op struct {
	method   string
	path     string   // below /v1/, unescaped, no trailing slash
	segments []string // path split on "/"
	query    url.Values
	header   http.Header
	body     []byte
	who      principal
}

// param returns the path segment that the route's {name} placeholder matched.
func (o *op) param(rt *route, name string) string {
	for i, p := range rt.pattern {
		if p == "{"+name+"}" {
			return o.segments[i]
		}
	}
	return ""
}

// result is a handler's answer.
type result struct {
	status int
	header http.Header
	body   any // a JSON value, or nil for no body
}

func ok(status int, body any) result { return result{status: status, body: body} }

func (r result) render() *storedResponse {
	sr := &storedResponse{status: r.status, header: http.Header{}}
	for k, v := range r.header {
		sr.header[k] = v
	}
	if r.body != nil {
		sr.header.Set("Content-Type", "application/json; charset=utf-8")
		sr.body = encodeJSON(r.body)
	}
	return sr
}

func (r result) write(w http.ResponseWriter) { r.render().write(w) }

// storedResponse is an answer as bytes: what the idempotency store keeps and replays.
type storedResponse struct {
	status int
	header http.Header
	body   []byte
}

func (sr *storedResponse) write(w http.ResponseWriter) {
	for k, v := range sr.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(sr.body)))
	w.WriteHeader(sr.status)
	_, _ = w.Write(sr.body)
}

// tokenKind is the kind of access token an operation takes.
type tokenKind int

const (
	eitherToken tokenKind = iota
	appUserOnly
	appOnly
)

// route is one REST operation.
type route struct {
	method  string
	pattern []string // literal segments match case-insensitively; {name} matches any one segment
	auth    tokenKind
	// authFor, when set, decides the token kind from the request (creating an agreement takes app+user
	// for the legacy body and app-only for the enhanced, attestation-based one).
	authFor func(o *op) tokenKind
	handle  func(s *Server, o *op) result
	// begin, when set, runs before the latency and may answer early; it marks the resource busy so a
	// concurrent request sees it (cart checkout).
	begin func(s *Server, o *op) *result
}

func (rt *route) need(o *op) tokenKind {
	if rt.authFor != nil {
		return rt.authFor(o)
	}
	return rt.auth
}

// newRoute declares an operation; handle receives the route so it can read the path parameters.
func newRoute(method, pattern string, auth tokenKind, handle func(*Server, *op, *route) result) *route {
	rt := &route{method: method, pattern: strings.Split(pattern, "/"), auth: auth}
	rt.handle = func(s *Server, o *op) result { return handle(s, o, rt) }
	return rt
}

// routes lists every operation the simulator serves. Literal paths come before the parameterised paths
// they would otherwise match (customers/relationshiprequests before customers/{customer}).
func routes() []*route {
	createAgreement := newRoute(http.MethodPost, "customers/{customer}/agreements", appUserOnly, (*Server).createAgreement)
	createAgreement.authFor = agreementTokenKind
	checkout := newRoute(http.MethodPost, "customers/{customer}/carts/{cart}/checkout", eitherToken, (*Server).finishCheckout)
	checkout.begin = func(s *Server, o *op) *result { return s.beginCheckout(o, checkout) }
	return []*route{
		newRoute(http.MethodGet, "customers", eitherToken, (*Server).listCustomers),
		newRoute(http.MethodGet, "customers/relationshiprequests", appUserOnly, (*Server).relationshipRequest),
		newRoute(http.MethodGet, "customers/{customer}", eitherToken, (*Server).getCustomer),
		newRoute(http.MethodGet, "agreements", appUserOnly, (*Server).agreementMetadata),
		newRoute(http.MethodGet, "customers/{customer}/agreements", appUserOnly, (*Server).listAgreements),
		createAgreement,
		newRoute(http.MethodGet, "customers/{customer}/directSignedMicrosoftCustomerAgreementStatus", appUserOnly, (*Server).directSignStatus),
		newRoute(http.MethodPost, "attestations/enhanced", appOnly, (*Server).createAttestation),
		newRoute(http.MethodGet, "attestations/enhanced/{attestation}", appOnly, (*Server).getAttestation),
		newRoute(http.MethodGet, "customers/{customer}/subscriptions", eitherToken, (*Server).listSubscriptions),
		newRoute(http.MethodGet, "customers/{customer}/subscriptions/{subscription}", eitherToken, (*Server).getSubscription),
		newRoute(http.MethodPatch, "customers/{customer}/subscriptions/{subscription}", eitherToken, (*Server).updateSubscription),
		newRoute(http.MethodGet, "customers/{customer}/subscriptions/{subscription}/addons", eitherToken, (*Server).listAddOns),
		newRoute(http.MethodPost, "customers/{customer}/carts", eitherToken, (*Server).createCart),
		newRoute(http.MethodGet, "customers/{customer}/carts/{cart}", eitherToken, (*Server).getCart),
		checkout,
		newRoute(http.MethodGet, "customers/{customer}/orders", eitherToken, (*Server).listOrders),
		newRoute(http.MethodGet, "customers/{customer}/orders/{order}", eitherToken, (*Server).getOrder),
	}
}

// match finds the route for a request: 404 when no path matches, 405 when the path exists for other methods.
func (s *Server) match(o *op) (*route, *apiError) {
	pathMatched := false
	for _, rt := range s.routes {
		if !matches(rt.pattern, o.segments) {
			continue
		}
		if rt.method == o.method {
			return rt, nil
		}
		pathMatched = true
	}
	if pathMatched {
		return nil, newError(http.StatusMethodNotAllowed, CodeInvalidInput, "The requested resource does not support http method '%s'.", o.method)
	}
	return nil, newError(http.StatusNotFound, CodeNotFound, "No HTTP resource was found that matches the request URI '%s%s'.", APIPath, o.path)
}

func matches(pattern, segments []string) bool {
	if len(pattern) != len(segments) {
		return false
	}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") {
			if segments[i] == "" {
				return false
			}
			continue
		}
		if !strings.EqualFold(p, segments[i]) {
			return false
		}
	}
	return true
}
