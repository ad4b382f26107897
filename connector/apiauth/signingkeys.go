package apiauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

const (
	// minKeyRefresh is how long a fetched key set is served from memory when go-oidc asks for it again.
	// go-oidc refetches whenever a token's key id is unknown or its signature fails, so without this a
	// stream of forged tokens would make the connector fetch the keys once per request. Entra ID
	// publishes new keys well before it signs with them, so a genuine new key is already in a set a few
	// minutes old. Microsoft's own token libraries wait 5 minutes between refreshes too.
	minKeyRefresh = 5 * time.Minute
	// maxKeySetSize bounds the key set read; Entra ID's is a few kilobytes.
	maxKeySetSize = 1 << 20
)

// keyFetcher is the HTTP transport under go-oidc's remote key set. Besides throttling refreshes
// (minKeyRefresh) it remembers whether the last fetch failed, which go-oidc's errors do not tell apart
// from a bad signature.
type keyFetcher struct {
	next http.RoundTripper
	now  func() time.Time

	mu        sync.Mutex
	body      []byte    // the last key set fetched, nil before the first success
	fetchedAt time.Time // when body was fetched
	err       error     // the outcome of the last fetch that went to the network
}

func (f *keyFetcher) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	if f.body != nil && f.now().Sub(f.fetchedAt) < minKeyRefresh {
		body := f.body
		f.mu.Unlock()
		return keySetResponse(req, body), nil
	}
	f.mu.Unlock()

	body, err := f.fetch(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
	if err != nil {
		return nil, err
	}
	f.body, f.fetchedAt = body, f.now()
	return keySetResponse(req, body), nil
}

// fetch gets the key set and checks that it is one: an HTTP 200 with a JSON object holding keys.
func (f *keyFetcher) fetch(req *http.Request) ([]byte, error) {
	resp, err := f.next.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("get signing keys %s: %w", req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("get signing keys %s: %w", req.URL.Redacted(), err)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("get signing keys %s: HTTP %d", req.URL.Redacted(), resp.StatusCode)
	case len(body) > maxKeySetSize:
		return nil, fmt.Errorf("get signing keys %s: more than %d bytes", req.URL.Redacted(), maxKeySetSize)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 {
		return nil, fmt.Errorf("get signing keys %s: the answer is not a JSON Web Key Set", req.URL.Redacted())
	}
	return body, nil
}

// failure returns why the last fetch failed, or nil if it succeeded or none was made.
func (f *keyFetcher) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func keySetResponse(req *http.Request, body []byte) *http.Response {
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
