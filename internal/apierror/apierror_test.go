package apierror_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cspconnector/csp-connector/internal/apierror"
)

func TestText(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "svc: GET https://x.test/a: HTTP 404", apierror.Text("svc", "GET", "https://x.test/a", 404).String())
	assert.Equal(t, "svc: HTTP 503", apierror.Text("svc", "", "", 503).String(), "no call known")
}

type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestReadBodyIsBoundedAndCloses(t *testing.T) {
	t.Parallel()
	body := &closer{Reader: strings.NewReader(strings.Repeat("x", apierror.MaxBody+10))}
	got := apierror.ReadBody(&http.Response{Body: body})
	assert.Len(t, got, apierror.MaxBody)
	assert.True(t, body.closed)
}
