package partnercenter

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
)

// Link is a Partner Center link: a relative URI (with or without /v1) and headers to send with it.
type Link struct {
	URI     string     `json:"uri"`
	Method  string     `json:"method,omitempty"`
	Headers []KeyValue `json:"headers,omitempty"`
}

// KeyValue is a {key, value} pair (link headers, cart participants).
type KeyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Attributes are every resource's metadata: its type and, where concurrency applies, its ETag.
type Attributes struct {
	ObjectType string `json:"objectType,omitempty"`
	ETag       string `json:"etag,omitempty"`
}

// Enum is an open, case-insensitive enumeration value: Partner Center is not consistent about case
// ("Active", "active") and adds values over time, so unknown values are kept, never rejected.
type Enum string

// Is compares case-insensitively.
func (e Enum) Is(v Enum) bool { return strings.EqualFold(string(e), string(v)) }

// Values the connector uses. Compare with Is.
const (
	RelationshipReseller Enum = "reseller"
	RelationshipAdvisor  Enum = "advisor"
	RelationshipNone     Enum = "none"

	SubscriptionActive    Enum = "active"
	SubscriptionPending   Enum = "pending"
	SubscriptionSuspended Enum = "suspended"
	SubscriptionExpired   Enum = "expired"
	SubscriptionDisabled  Enum = "disabled"
	SubscriptionDeleted   Enum = "deleted"

	CartActive  Enum = "Active"
	CartOrdered Enum = "Ordered"

	OrderPending   Enum = "pending"
	OrderCompleted Enum = "completed"
	OrderCancelled Enum = "cancelled"
)

// Agreement types. Always pass one: Partner Center's default is the retired Microsoft Cloud Agreement.
const (
	MicrosoftCustomerAgreement = "MicrosoftCustomerAgreement"
	MicrosoftCloudAgreement    = "MicrosoftCloudAgreement"
)

// collection is Partner Center's list envelope.
type collection[T any] struct {
	TotalCount        int             `json:"totalCount"`
	Items             []T             `json:"items"`
	Links             map[string]Link `json:"links"`
	ContinuationToken string          `json:"continuationToken"`
}

// rawObject keeps every property of a resource as received, so that a resource sent back whole (a
// subscription PATCH) carries the properties this client does not model, unchanged.
type rawObject map[string]json.RawMessage

// merge writes the modelled fields of v over the raw properties, matching names case-insensitively.
func (r rawObject) merge(v any) ([]byte, error) {
	modelled, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(r) == 0 {
		return modelled, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(modelled, &fields); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(r)+len(fields))
	for k, val := range r {
		out[k] = val
	}
	for k, val := range fields {
		for existing := range out {
			if strings.EqualFold(existing, k) && existing != k {
				delete(out, existing)
			}
		}
		out[k] = val
	}
	return json.Marshal(out)
}

// bomReader skips a leading UTF-8 byte-order mark.
func bomReader(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && string(b) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	return br
}
