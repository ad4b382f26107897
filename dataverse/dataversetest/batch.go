package dataversetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/internal/simhttp"
)

// batchItem is a top-level part of a $batch request: one operation or a change set.
type batchItem struct {
	ops       []batchOp
	changeSet bool
}

type batchOp struct {
	op        op
	contentID string
}

// serveBatch runs a $batch: operations in order, change sets atomically (rolled back on any failure),
// stopping at the first failure unless the client asked for odata.continue-on-error.
func (s *Server) serveBatch(w *simhttp.StatusWriter, r *http.Request, body []byte, user string, entry *Request, latency time.Duration) {
	items, err := parseBatchRequest(r.Header.Get("Content-Type"), body, r.Host)
	if err != nil {
		(&apiError{status: 400, message: "The batch request is malformed: " + err.Error()}).write(w)
		return
	}
	n := 0
	for _, it := range items {
		n += len(it.ops)
	}
	entry.Operations = n
	if n > dataverse.MaxBatchOperations {
		(&apiError{status: 400, code: "0x8004418a", message: fmt.Sprintf("The number of requests in the batch (%d) exceeds the maximum of %d.", n, dataverse.MaxBatchOperations)}).write(w)
		return
	}
	// A $batch is one request for the request count, whatever it holds; its operations' execution time
	// accrues (protection.go).
	release, refused := s.admit(user)
	if refused != nil {
		refused.write(w)
		return
	}
	var spent time.Duration
	defer func() { entry.ExecutionTime = spent; release(spent) }()
	if !simhttp.Pause(r.Context(), latency) {
		w.Status = 499
		return
	}
	spent = latency
	var cost time.Duration
	continueOnError := strings.Contains(r.Header.Get("Prefer"), "odata.continue-on-error")
	inheritCaller(items, r.Header)

	s.mu.Lock()
	// Events are raised for what commits: an operation outside a change set, a change set as a whole.
	correlationID := uuid.NewString()
	var committed []change
	var parts []batchPartResult
	failedStatus := 0
	for _, it := range items {
		if !it.changeSet {
			o := it.ops[0].op
			o.changes = &committed
			var res result
			if f, _, ok := s.matchFault(o.method, o.path, true); ok {
				res = fail(defaultFaultError(f))
			} else {
				res = s.dispatch(o, nil)
			}
			cost += s.cost(o, res)
			s.logOp(it.ops[0].op, res.status, user)
			parts = append(parts, batchPartResult{single: &res})
			if res.status >= 400 && !continueOnError {
				failedStatus = res.status
				break
			}
			continue
		}
		var undoLog []undo
		var results []result
		var changes []change
		refs := map[string]string{}
		failed := false
		for _, bo := range it.ops {
			o := bo.op
			o.changes = &changes
			o.path, o.body = resolveContentIDs(o.path, o.body, refs)
			var res result
			if f, _, ok := s.matchFault(o.method, o.path, true); ok {
				res = fail(defaultFaultError(f))
			} else {
				res = s.dispatch(o, &undoLog)
			}
			cost += s.cost(o, res)
			s.logOp(o, res.status, user)
			results = append(results, res)
			if res.status >= 400 {
				failed = true
				results = []result{res}
				break
			}
			if bo.contentID != "" {
				if loc := res.header.Get("Odata-Entityid"); loc != "" {
					refs["$"+bo.contentID] = loc[strings.Index(loc, dataverse.APIPath)+len(dataverse.APIPath):]
				}
			}
		}
		if failed {
			for i := len(undoLog) - 1; i >= 0; i-- {
				undoLog[i].apply()
			}
		} else {
			committed = append(committed, changes...)
		}
		parts = append(parts, batchPartResult{changeSet: results, contentIDs: contentIDs(it)})
		if failed && !continueOnError {
			failedStatus = results[0].status
			break
		}
	}
	s.raise(committed, correlationID)
	s.mu.Unlock()
	if !simhttp.Pause(r.Context(), cost) {
		w.Status = 499
		return
	}
	spent += cost

	boundary := "batchresponse_" + uuid.NewString()
	var buf bytes.Buffer
	writeBatchResponse(&buf, boundary, parts)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+boundary)
	w.Header().Set("OData-Version", "4.0")
	status := http.StatusOK
	if failedStatus != 0 {
		status = failedStatus
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// inheritCaller gives the operations of a batch the impersonation header of the $batch request, unless
// they carry their own.
func inheritCaller(items []batchItem, h http.Header) {
	for _, name := range []string{CallerIDHeader, CallerObjectIDHeader} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		for i := range items {
			for j := range items[i].ops {
				o := &items[i].ops[j].op
				if o.header == nil {
					o.header = http.Header{}
				}
				if o.header.Get(CallerIDHeader) == "" && o.header.Get(CallerObjectIDHeader) == "" {
					o.header.Set(name, v)
				}
			}
		}
	}
}

func contentIDs(it batchItem) []string {
	out := make([]string, len(it.ops))
	for i, o := range it.ops {
		out[i] = o.contentID
	}
	return out
}

func (s *Server) logOp(o op, status int, user string) {
	path, _ := url.PathUnescape(o.path)
	s.log.Record(Request{Method: o.method, Path: path, Query: o.query.Encode(), Status: status, InBatch: true, User: user})
}

// resolveContentIDs replaces $n references to rows created earlier in the change set, in the URL and in
// @odata.bind values.
func resolveContentIDs(path string, body []byte, refs map[string]string) (string, []byte) {
	if len(refs) == 0 {
		return path, body
	}
	if strings.HasPrefix(path, "$") {
		ref, rest, _ := strings.Cut(path, "/")
		if target, ok := refs[ref]; ok {
			path = target
			if rest != "" {
				path += "/" + rest
			}
		}
	}
	for ref, target := range refs {
		body = bytes.ReplaceAll(body, []byte(`"`+ref+`"`), []byte(`"/`+target+`"`))
	}
	return path, body
}

type batchPartResult struct {
	single     *result
	changeSet  []result
	contentIDs []string
}

func writeBatchResponse(w io.Writer, boundary string, parts []batchPartResult) {
	mw := multipart.NewWriter(w)
	_ = mw.SetBoundary(boundary)
	for _, p := range parts {
		if p.single != nil {
			pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Transfer-Encoding": {"binary"}})
			writeHTTPResponse(pw, *p.single)
			continue
		}
		csBoundary := "changesetresponse_" + uuid.NewString()
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"multipart/mixed; boundary=" + csBoundary}})
		cw := multipart.NewWriter(pw)
		_ = cw.SetBoundary(csBoundary)
		for i, res := range p.changeSet {
			h := textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Transfer-Encoding": {"binary"}}
			if len(p.changeSet) == len(p.contentIDs) && p.contentIDs[i] != "" {
				h.Set("Content-ID", p.contentIDs[i])
			}
			rw, _ := cw.CreatePart(h)
			writeHTTPResponse(rw, res)
		}
		_ = cw.Close()
	}
	_ = mw.Close()
}

func writeHTTPResponse(w io.Writer, res result) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", res.status, http.StatusText(res.status))
	for k, vs := range res.header {
		for _, v := range vs {
			fmt.Fprintf(w, "%s: %s\r\n", k, v)
		}
	}
	var body []byte
	switch {
	case res.err != nil:
		body, _ = json.Marshal(map[string]any{"error": map[string]any{"code": res.err.code, "message": res.err.message}})
	case res.body != nil:
		body, _ = json.Marshal(res.body)
	}
	if body != nil {
		fmt.Fprintf(w, "Content-Type: application/json; odata.metadata=minimal\r\n")
	}
	fmt.Fprintf(w, "OData-Version: 4.0\r\n\r\n")
	if body != nil {
		w.Write(body)
		fmt.Fprintf(w, "\r\n")
	}
}

// parseBatchRequest reads the multipart body of a $batch into operations.
func parseBatchRequest(contentType string, body []byte, host string) ([]batchItem, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") || params["boundary"] == "" {
		return nil, errors.New("Content-Type must be multipart/mixed with a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var items []batchItem
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return items, nil
		}
		if err != nil {
			return nil, err
		}
		mt, ps, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if strings.HasPrefix(mt, "multipart/") {
			cr := multipart.NewReader(part, ps["boundary"])
			var ops []batchOp
			for {
				cp, err := cr.NextPart()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, err
				}
				o, err := parseEmbeddedRequest(cp, host)
				if err != nil {
					return nil, err
				}
				if o.method == http.MethodGet {
					return nil, errors.New("a change set cannot contain a GET")
				}
				ops = append(ops, batchOp{op: o, contentID: cp.Header.Get("Content-Id")})
			}
			items = append(items, batchItem{ops: ops, changeSet: true})
			continue
		}
		o, err := parseEmbeddedRequest(part, host)
		if err != nil {
			return nil, err
		}
		items = append(items, batchItem{ops: []batchOp{{op: o}}})
	}
}

// parseEmbeddedRequest reads one application/http part: a request line, headers, a body. It does not use
// http.ReadRequest: parts carry no Content-Length (so ReadRequest would see no body), and a request target
// may be a Content-ID reference such as "$1", which ReadRequest refuses as a request URI.
func parseEmbeddedRequest(r io.Reader, host string) (op, error) {
	br := bufio.NewReader(r)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return op{}, fmt.Errorf("part is not an HTTP request: %w", err)
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || !strings.HasPrefix(proto, "HTTP/") {
		return op{}, fmt.Errorf("part is not an HTTP request: malformed request line %q", line)
	}
	u, err := url.Parse(target)
	if err != nil {
		return op{}, fmt.Errorf("part is not an HTTP request: %w", err)
	}
	header, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) { // a part may end right after its headers
		return op{}, fmt.Errorf("part is not an HTTP request: %w", err)
	}
	body, err := io.ReadAll(br) // the body is the rest of the part
	if err != nil {
		return op{}, err
	}
	path := u.EscapedPath()
	if i := strings.Index(path, dataverse.APIPath); i >= 0 {
		path = path[i+len(dataverse.APIPath):]
	}
	return op{method: method, path: strings.TrimPrefix(path, "/"), query: u.Query(), header: http.Header(header), body: bytes.TrimRight(body, "\r\n"), host: host}, nil
}
