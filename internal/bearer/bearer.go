// Package bearer adds OAuth bearer tokens to HTTP requests for the API clients (dataverse,
// partnercenter): a cache that asks the credential once per token lifetime, and a RoundTripper that sends
// the token and, when the server refuses it (401), tries once more with a fresh one.
//
// The clients share it without importing each other; each keeps what differs (the scope, which cache a
// request uses) on its own side.
package bearer

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// RefreshMargin renews a token this long before it expires, so no request leaves with one that expires on
// the way.
const RefreshMargin = 2 * time.Minute

// Cache keeps the current access token of one credential and scope until shortly before it expires, so a
// burst of requests asks the credential once. It is safe for concurrent use.
type Cache struct {
	cred  azcore.TokenCredential
	scope string

	mu  sync.Mutex
	tok azcore.AccessToken
}

// NewCache returns a cache of cred's tokens for scope.
func NewCache(cred azcore.TokenCredential, scope string) *Cache {
	return &Cache{cred: cred, scope: scope}
}

// Token returns a token that is valid for at least RefreshMargin, asking the credential when the cached
// one is missing or about to expire. A failure is a *TokenError.
func (c *Cache) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Token != "" && time.Until(c.tok.ExpiresOn) > RefreshMargin {
		return c.tok.Token, nil
	}
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}})
	if err != nil {
		return "", &TokenError{Err: err}
	}
	c.tok = tok
	return tok.Token, nil
}

// Invalidate forgets a token the server refused, unless another request already replaced it.
func (c *Cache) Invalidate(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Token == token {
		c.tok = azcore.AccessToken{}
	}
}

// TokenError is a failure to obtain a token. The clients' retry loops do not retry it: the credential has
// retries of its own, and a misconfigured credential does not heal in seconds.
type TokenError struct{ Err error }

func (e *TokenError) Error() string { return "get access token: " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

// Transport adds the bearer token of Tokens to every request it sends through Next. On a 401 it drops the
// token and tries once more with a fresh one, which is safe for every method: the server refused the
// request before doing anything. A request whose body cannot be read again (no GetBody) is not resent.
type Transport struct {
	Tokens *Cache // nil: no Authorization header
	Next   http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Tokens == nil {
		return t.Next.RoundTrip(req)
	}
	tok, err := t.Tokens.Token(req.Context())
	if err != nil {
		return nil, err
	}
	resp, err := t.Next.RoundTrip(withToken(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	t.Tokens.Invalidate(tok)
	fresh, err := t.Tokens.Token(req.Context())
	if err != nil || fresh == tok {
		return resp, nil
	}
	retry := withToken(req, fresh)
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return t.Next.RoundTrip(retry)
}

func withToken(req *http.Request, tok string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}
