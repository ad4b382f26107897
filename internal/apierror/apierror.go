// Package apierror holds what the two API clients' ResponseError types (dataverse, partnercenter) have in
// common: how much of an error body is read, and how an error's text begins. Each client keeps its own
// type, body shapes and Is… helpers.
package apierror

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBody bounds how much of an error body is read: enough for any service error, not enough for a
// misbehaving proxy to exhaust memory.
const MaxBody = 64 << 10

// ReadBody reads at most MaxBody bytes of a response body and closes it. A body cut short by a network
// error yields what arrived: the error being reported is the status, not the read.
func ReadBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	return body
}

// Text begins an error's text, for logs: "service: METHOD URL: HTTP status", without the call when
// method is empty. The caller appends the details its service gives.
func Text(service, method, url string, status int) *strings.Builder {
	var b strings.Builder
	b.WriteString(service + ": ")
	if method != "" {
		fmt.Fprintf(&b, "%s %s: ", method, url)
	}
	fmt.Fprintf(&b, "HTTP %d", status)
	return &b
}
