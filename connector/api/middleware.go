package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cspconnector/csp-connector/connector/apiauth"
)

// The middleware an operation runs behind, one job each. Server.operation chains them; a layer that
// refuses the request answers with a problem and does not call the next.

// callState is what the layers learn of one request and hand down: the operation, the caller once
// authenticated, the body once read, and the status answered, for the metric. observe puts it in the
// request's context; the layers under it fill it in.
type callState struct {
	operation string
	who       apiauth.Principal
	body      []byte
	status    int
}

type callStateKey struct{}

// stateOf is the request's callState (observe's); a request that did not go through observe gets an
// empty one, so a layer tested on its own still runs.
func stateOf(r *http.Request) *callState {
	if st, ok := r.Context().Value(callStateKey{}).(*callState); ok {
		return st
	}
	return &callState{}
}

// observe records each request of the operation: the request counter by status and a debug line with
// its duration. It is the outermost layer, so every answer, a recovered panic's too, is counted.
func (a *Server) observe(operation string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.opts.Now()
		st := &callState{operation: operation}
		defer func() {
			a.opts.Metrics.APIRequest(operation, st.status)
			a.opts.Logger.Debug("API request", "operation", operation, "status", st.status, "took_ms", a.opts.Now().Sub(start).Milliseconds())
		}()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callStateKey{}, st)))
	})
}

// recoverPanic turns a panic in the layers under it into a 500 in words, and logs it: one operation's bug
// does not take the connection down, and the caller is told to read the row before retrying.
func (a *Server) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				st := stateOf(r)
				a.opts.Logger.Error("API operation panicked", "operation", st.operation, "panic", fmt.Sprint(p))
				st.status = http.StatusInternalServerError
				writeProblem(w, &apiError{status: st.status, detail: "The connector failed on an internal error; see its log. Read the row before retrying: part of the work may be done."})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// requireOn answers 404 while the API is off (no authentication configured), saying how to turn it on.
func (a *Server) requireOn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Auth == nil {
			a.fail(w, r, &apiError{status: http.StatusNotFound, detail: "The API is off: configure Microsoft Entra ID (CONNECTOR_API_TENANT_ID and CONNECTOR_API_AUDIENCES) or API keys (CONNECTOR_API_KEYS)."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireStarted answers 503 with Retry-After until the connector has reached Dataverse: before, no
// operation could read a row.
func (a *Server) requireStarted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.deps.Started != nil && !a.deps.Started() {
			w.Header().Set("Retry-After", "30")
			a.fail(w, r, &apiError{status: http.StatusServiceUnavailable, detail: "The connector is starting: it has not reached Dataverse yet. Try again in a moment."})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate signs the caller in and takes the request from its allowance. Failed sign-ins count
// against the caller's address, so guessing keys is slowed down too.
func (a *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := a.opts.Auth.Authenticate(r)
		if err != nil {
			if ok, wait := a.allow("addr:" + remoteHost(r)); !ok {
				a.fail(w, r, &apiError{status: http.StatusTooManyRequests, retryAfter: wait, detail: "Too many requests from this address."})
				return
			}
			a.fail(w, r, authError(err))
			return
		}
		if ok, wait := a.allow(who.ID); !ok {
			a.fail(w, r, &apiError{status: http.StatusTooManyRequests, retryAfter: wait,
				detail: fmt.Sprintf("Too many requests from this caller (the limit is %d a minute): wait %d seconds.", a.opts.RatePerMinute, wait)})
			return
		}
		stateOf(r).who = who
		next.ServeHTTP(w, r)
	})
}

// authorize refuses a caller without the operation's role.
func (a *Server) authorize(role apiauth.Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.opts.Auth.Authorize(stateOf(r).who, role); err != nil {
			a.fail(w, r, authError(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads the request body, up to limit bytes: a larger one is a 413.
func (a *Server) readBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// On the server's own writer: over the limit, it also closes the connection after the answer.
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				a.fail(w, r, &apiError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("The request body is larger than %d KiB.", limit>>10)})
				return
			}
			a.fail(w, r, &apiError{status: http.StatusBadRequest, detail: "The request body could not be read."})
			return
		}
		stateOf(r).body = body
		next.ServeHTTP(w, r)
	})
}

// idempotent answers a POST that carries an Idempotency-Key once per caller, operation, path and key: a
// repeat gets the first answer (see idempotency.do). An answer that is an error is not remembered, so a
// retry runs again.
func (a *Server) idempotent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 255 {
			a.fail(w, r, &apiError{status: http.StatusBadRequest, detail: "The Idempotency-Key header is longer than 255 characters."})
			return
		}
		st := stateOf(r)
		e, err := a.idem.do(r.Context(), st.who.ID+"\x00"+st.operation+"\x00"+r.URL.Path+"\x00"+key, sha256.Sum256(st.body), a.opts.Now(), func() (idemEntry, error) {
			rec := &answerRecorder{header: http.Header{}}
			next.ServeHTTP(rec, r)
			ans := idemEntry{status: rec.status, header: rec.header, body: rec.body.Bytes()}
			if ans.status >= http.StatusBadRequest {
				return idemEntry{}, &failedAnswer{ans}
			}
			return ans, nil
		})
		var failed *failedAnswer
		switch {
		case err == nil:
			st.status = e.status
			e.write(w)
		case errors.As(err, &failed):
			// The first run's problem, as it answered it; a repeat that waited on it gets the same.
			st.status = failed.answer.status
			failed.answer.write(w)
		default:
			a.fail(w, r, err)
		}
	})
}

// answerRecorder keeps an answer for idempotent to remember.
type answerRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *answerRecorder) Header() http.Header { return rec.header }

func (rec *answerRecorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (rec *answerRecorder) Write(b []byte) (int, error) {
	rec.WriteHeader(http.StatusOK)
	return rec.body.Write(b)
}

// failedAnswer is an error answer idempotent recorded: the run failed, and is not remembered.
type failedAnswer struct{ answer idemEntry }

func (f *failedAnswer) Error() string {
	return fmt.Sprintf("the operation answered %d", f.answer.status)
}

// withTimeout bounds the work under it: synchronous work ends before the server's write timeout and
// Power Automate's.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// answer runs the operation's handler and writes its result, or its error as a problem.
func (a *Server) answer(handle func(*apiCall) (apiResult, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r)
		res, err := handle(&apiCall{api: a, r: r, who: st.who, body: st.body})
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out, err := a.render(r, res)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		st.status = out.status
		out.write(w)
	})
}

// fail answers an error as a problem, logging those that are the connector's or its services' fault.
func (a *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	ae := asAPIError(err)
	st := stateOf(r)
	st.status = ae.status
	if ae.status >= 500 {
		a.opts.Logger.Warn("API operation failed", "operation", st.operation, "status", ae.status, "error", err)
	}
	writeProblem(w, ae)
}
