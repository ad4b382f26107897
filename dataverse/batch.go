package dataverse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Op is one operation for a $batch: build it with GetOp, CreateOp, UpdateOp, UpsertOp or DeleteOp.
type Op struct {
	method     string
	path       string
	query      url.Values
	header     http.Header
	body       []byte
	idempotent bool
	err        error
	// primaryKey names the column an UpsertOp asked back: its result's id is there.
	primaryKey string
	// target is the write as a bulk message's target would carry it, for a write that can go in one
	// (see WriteBatch); nil otherwise.
	target *bulkTarget
}

// GetOp reads a row inside a batch (not allowed inside a change set).
func GetOp(entitySet string, id GUID, opts *GetOptions) Op {
	path, err := rowPath(entitySet, id)
	op := Op{method: http.MethodGet, path: path, idempotent: true, err: err}
	if opts != nil {
		op.query, op.err = (&Query{Select: opts.Select, Expand: opts.Expand}).values()
		op.header = preferHeader(opts.FormattedValues, 0)
	}
	return op
}

// QueryOp reads the rows matching q inside a batch (not allowed inside a change set): one page, at most
// q.Top rows or q.PageSize. Read them with OpResult.Rows. Several reads in one batch are one round trip.
func QueryOp(entitySet string, q *Query) Op {
	op := Op{method: http.MethodGet, path: entitySet, idempotent: true, err: checkEntitySet(entitySet)}
	if op.err == nil {
		op.query, op.err = q.values()
	}
	if q != nil {
		op.header = preferHeader(q.FormattedValues, q.PageSize)
	}
	return op
}

// CreateOp inserts a row inside a batch.
func CreateOp(entitySet string, row Row) Op {
	op := Op{method: http.MethodPost, path: entitySet, err: checkEntitySet(entitySet)}
	op.body, op.err = marshalOnce(op.err, row)
	op.target = &bulkTarget{set: entitySet, kind: bulkCreate, row: maps.Clone(row)}
	return op
}

// UpdateOp changes an existing row inside a batch (If-Match: * or the given ETag).
func UpdateOp(entitySet string, id GUID, changes Row, opts *UpdateOptions) Op {
	path, err := rowPath(entitySet, id)
	op := Op{method: http.MethodPatch, path: path, idempotent: true, header: http.Header{"If-Match": {"*"}}}
	if opts != nil && opts.IfMatch != "" {
		op.header.Set("If-Match", string(opts.IfMatch))
	}
	op.body, op.err = marshalOnce(err, changes)
	if op.header.Get("If-Match") == "*" {
		// UpdateMultiple updates rows that exist, as If-Match: * does; a row's own ETag cannot be given
		// to it through the Web API, so a conditional update stays a single PATCH.
		op.target = &bulkTarget{set: entitySet, kind: bulkUpdate, row: maps.Clone(changes), id: id}
	}
	return op
}

// UpsertOp writes a row by alternate key inside a batch. With opts.PrimaryKey, read the row's id with
// OpResult.ID and whether it was created with OpResult.Created. Without it the result says only whether
// the write succeeded (ID fails, Created is false), and WriteBatch may send it with UpsertMultiple, which
// answers nothing else.
func UpsertOp(entitySet string, key Key, row Row, opts *UpsertOptions) Op {
	req, err := upsertRequest(entitySet, key, row, opts, false)
	if err != nil {
		return Op{err: err}
	}
	var o UpsertOptions
	if opts != nil {
		o = *opts
	}
	op := Op{method: req.method, path: req.path, query: req.query, header: req.header, body: req.body, idempotent: req.idempotent, primaryKey: o.PrimaryKey}
	t := &bulkTarget{set: entitySet, row: maps.Clone(row), key: maps.Clone(key), primaryKey: o.PrimaryKey}
	switch {
	case o.Mode == UpsertCreateOnly:
		t.kind = bulkCreateByKey
	case o.Mode == UpsertUpdateOnly:
		t = nil // no bulk message updates by alternate key only
	case o.PrimaryKey != "":
		t.kind = bulkUpsertByKey
	default:
		t.kind = bulkUpsert
	}
	op.target = t
	return op
}

// DeleteOp removes a row inside a batch.
func DeleteOp(entitySet string, id GUID, opts *DeleteOptions) Op {
	path, err := rowPath(entitySet, id)
	op := Op{method: http.MethodDelete, path: path, idempotent: true, err: err}
	if opts != nil && opts.IfMatch != "" {
		op.header = http.Header{"If-Match": {string(opts.IfMatch)}}
	}
	return op
}

func marshalOnce(prev error, row Row) ([]byte, error) {
	if prev != nil {
		return nil, prev
	}
	b, err := json.Marshal(row)
	if err != nil {
		return nil, fmt.Errorf("dataverse: encode row: %w", err)
	}
	return b, nil
}

// OpResult is the outcome of one operation of a batch.
type OpResult struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	// Err is the operation's failure (a *ResponseError for an answer from Dataverse), or nil.
	Err error

	// primaryKey is the UpsertOp's primary key column; create marks a CreateOp or a row a bulk message
	// created; id is the row a bulk message wrote, when it is known.
	primaryKey string
	create     bool
	id         GUID
}

// ID returns the id of the row the operation created or upserted: a CreateOp's from OData-EntityId, an
// UpsertOp's from the representation it asked for (its OData-EntityId names the row by key values).
func (r OpResult) ID() (GUID, error) {
	if r.Err != nil {
		return GUID{}, r.Err
	}
	if r.id != (GUID{}) {
		return r.id, nil
	}
	if r.primaryKey != "" {
		row, err := r.Row()
		if err != nil {
			return GUID{}, err
		}
		res, err := upsertResult(r.StatusCode, row, r.primaryKey)
		return res.ID, err
	}
	return idFromEntityID(r.Header.Get("OData-EntityId"))
}

// Created reports whether the operation succeeded and created its row: always for a CreateOp, for an
// UpsertOp when Dataverse answered 201 Created rather than 200 OK (an existing row updated).
func (r OpResult) Created() bool {
	return r.Err == nil && (r.create || r.StatusCode == http.StatusCreated)
}

// Row decodes the operation's JSON body (a GetOp, or a write that asked for its representation).
func (r OpResult) Row() (Row, error) {
	if r.Err != nil {
		return nil, r.Err
	}
	var row Row
	if err := decodeJSON(bytes.NewReader(r.Body), &row); err != nil {
		return nil, fmt.Errorf("dataverse: batch part: %w", err)
	}
	return row, nil
}

// Rows decodes a QueryOp's answer.
func (r OpResult) Rows() ([]Row, error) {
	if r.Err != nil {
		return nil, r.Err
	}
	var p page
	if err := decodeJSON(bytes.NewReader(r.Body), &p); err != nil {
		return nil, fmt.Errorf("dataverse: batch part: %w", err)
	}
	return p.Value, nil
}

// ErrNotExecuted marks a batch operation Dataverse did not run because an earlier one failed and the batch
// did not ask to continue on error.
var ErrNotExecuted = errors.New("dataverse: not executed: an earlier operation of the batch failed")

// Batch is a $batch request: operations run in order; those added together with AddChangeSet succeed or
// fail as one transaction.
type Batch struct {
	parts []batchPart
	n     int
}

type batchPart struct {
	ops       []Op
	changeSet bool
}

// Add appends independent operations.
func (b *Batch) Add(ops ...Op) {
	for _, op := range ops {
		b.parts = append(b.parts, batchPart{ops: []Op{op}})
	}
	b.n += len(ops)
}

// AddChangeSet appends operations that must all succeed or all be rolled back. Reads are not allowed in a
// change set.
func (b *Batch) AddChangeSet(ops ...Op) {
	if len(ops) == 0 {
		return
	}
	b.parts = append(b.parts, batchPart{ops: ops, changeSet: true})
	b.n += len(ops)
}

// Len is the number of operations.
func (b *Batch) Len() int { return b.n }

func (b *Batch) validate() error {
	if b.n == 0 {
		return errors.New("dataverse: empty batch")
	}
	if b.n > MaxBatchOperations {
		return fmt.Errorf("dataverse: batch of %d operations exceeds Dataverse's limit of %d", b.n, MaxBatchOperations)
	}
	for _, p := range b.parts {
		for _, op := range p.ops {
			if op.err != nil {
				return op.err
			}
			if p.changeSet && op.method == http.MethodGet {
				return errors.New("dataverse: a change set cannot contain a read")
			}
		}
	}
	return nil
}

func (b *Batch) idempotent() bool {
	for _, p := range b.parts {
		for _, op := range p.ops {
			if !op.idempotent {
				return false
			}
		}
	}
	return true
}

// BatchOptions shapes a $batch.
type BatchOptions struct {
	// ContinueOnError runs every operation even after one fails (Prefer: odata.continue-on-error);
	// otherwise Dataverse stops at the first failure and later operations report ErrNotExecuted.
	ContinueOnError bool
}

// ExecuteBatch sends b as one request and returns one result per operation, in the order they were added.
// The error is for the request as a whole (invalid batch, network, context); per-operation failures are in
// the results.
//
// API: POST /$batch (multipart/mixed, CRLF, change sets as nested multipart)
func (c *Client) ExecuteBatch(ctx context.Context, b *Batch, opts *BatchOptions) ([]OpResult, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	boundary := "batch_" + uuid.NewString()
	body, err := b.encode(boundary, c.api.Path)
	if err != nil {
		return nil, err
	}
	h := http.Header{"Content-Type": {`multipart/mixed; boundary="` + boundary + `"`}}
	if opts != nil && opts.ContinueOnError {
		h.Set("Prefer", "odata.continue-on-error")
	}
	resp, err := c.doRaw(ctx, request{method: http.MethodPost, path: "$batch", header: h, body: body, idempotent: b.idempotent()})
	if err != nil {
		return nil, fmt.Errorf("dataverse: batch of %d: %w", b.n, err)
	}
	defer drainClose(resp.Body)
	mediaType, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !strings.HasPrefix(mediaType, "multipart/") {
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("dataverse: batch of %d: %w", b.n, errorFromResponse(resp))
		}
		return nil, fmt.Errorf("dataverse: batch of %d: unexpected response type %q", b.n, mediaType)
	}
	responses, err := parseBatchResponse(resp.Body, params["boundary"])
	if err != nil {
		return nil, fmt.Errorf("dataverse: batch of %d: %w", b.n, err)
	}
	return b.match(responses), nil
}

// encode writes the multipart body. MIME requires CRLF line ends; multipart.Writer writes them, and the
// embedded HTTP request lines use CRLF as well.
func (b *Batch) encode(boundary, apiPath string) ([]byte, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, err
	}
	contentID := 0
	for _, p := range b.parts {
		if !p.changeSet {
			pw, err := w.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Transfer-Encoding": {"binary"}})
			if err != nil {
				return nil, err
			}
			writeOp(pw, p.ops[0], apiPath)
			continue
		}
		csBoundary := "changeset_" + uuid.NewString()
		pw, err := w.CreatePart(textproto.MIMEHeader{"Content-Type": {`multipart/mixed; boundary="` + csBoundary + `"`}})
		if err != nil {
			return nil, err
		}
		cw := multipart.NewWriter(pw)
		if err := cw.SetBoundary(csBoundary); err != nil {
			return nil, err
		}
		for _, op := range p.ops {
			contentID++
			opw, err := cw.CreatePart(textproto.MIMEHeader{
				"Content-Type":              {"application/http"},
				"Content-Transfer-Encoding": {"binary"},
				"Content-Id":                {strconv.Itoa(contentID)},
			})
			if err != nil {
				return nil, err
			}
			writeOp(opw, op, apiPath)
		}
		if err := cw.Close(); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeOp(w io.Writer, op Op, apiPath string) {
	target := apiPath + op.path
	if len(op.query) > 0 {
		target += "?" + encodeQuery(op.query)
	}
	fmt.Fprintf(w, "%s %s HTTP/1.1\r\n", op.method, target)
	if op.body != nil {
		fmt.Fprintf(w, "Content-Type: application/json; type=entry\r\n")
	}
	if op.method == http.MethodGet {
		fmt.Fprintf(w, "Accept: application/json\r\n")
	}
	for k, vs := range op.header {
		for _, v := range vs {
			fmt.Fprintf(w, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(w, "\r\n")
	if op.body != nil {
		w.Write(op.body)
		fmt.Fprintf(w, "\r\n")
	}
}

// batchResponse is one top-level part of a batch response: a single response, or a change set's.
type batchResponse struct {
	single    *partResponse
	changeSet []partResponse
}

type partResponse struct {
	contentID string
	resp      OpResult
}

// parseBatchResponse reads a multipart batch response. It accepts CRLF and bare LF line ends (the
// documentation's samples use LF).
func parseBatchResponse(r io.Reader, boundary string) ([]batchResponse, error) {
	if boundary == "" {
		return nil, errors.New("batch response has no boundary")
	}
	mr := multipart.NewReader(r, boundary)
	var out []batchResponse
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read batch response: %w", err)
		}
		mediaType, params, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if strings.HasPrefix(mediaType, "multipart/") {
			cs, err := parseChangeSetResponse(part, params["boundary"])
			if err != nil {
				return nil, err
			}
			out = append(out, batchResponse{changeSet: cs})
			continue
		}
		pr, err := parsePart(part)
		if err != nil {
			return nil, err
		}
		out = append(out, batchResponse{single: &pr})
	}
}

func parseChangeSetResponse(r io.Reader, boundary string) ([]partResponse, error) {
	if boundary == "" {
		return nil, errors.New("change set response has no boundary")
	}
	mr := multipart.NewReader(r, boundary)
	var out []partResponse
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read change set response: %w", err)
		}
		pr, err := parsePart(part)
		if err != nil {
			return nil, err
		}
		out = append(out, pr)
	}
}

func parsePart(part *multipart.Part) (partResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(part), nil)
	if err != nil {
		return partResponse{}, fmt.Errorf("read batch part: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return partResponse{}, fmt.Errorf("read batch part body: %w", err)
	}
	body = bytes.TrimRight(body, "\r\n")
	res := OpResult{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		re := parseErrorBody(resp.StatusCode, body)
		re.RequestID = firstHeader(resp.Header, "REQ_ID", "x-ms-service-request-id")
		res.Err = re
	}
	return partResponse{contentID: part.Header.Get("Content-Id"), resp: res}, nil
}

// match assigns response parts to operations. Parts come back in request order; a change set that failed
// answers with one error for the whole set (everything in it was rolled back); when Dataverse stopped at
// the first failure, the operations after it have no part and get ErrNotExecuted.
func (b *Batch) match(responses []batchResponse) []OpResult {
	out := b.matchParts(responses)
	i := 0
	for _, p := range b.parts {
		for _, op := range p.ops {
			out[i].primaryKey, out[i].create = op.primaryKey, op.method == http.MethodPost
			i++
		}
	}
	return out
}

func (b *Batch) matchParts(responses []batchResponse) []OpResult {
	out := make([]OpResult, 0, b.n)
	for i, p := range b.parts {
		if i >= len(responses) {
			for range p.ops {
				out = append(out, OpResult{Err: ErrNotExecuted})
			}
			continue
		}
		r := responses[i]
		switch {
		case !p.changeSet && r.single != nil:
			out = append(out, r.single.resp)
		case p.changeSet && len(r.changeSet) == len(p.ops):
			for _, pr := range r.changeSet {
				out = append(out, pr.resp)
			}
		default:
			// A failed change set (one error part, nested or not) or a shape we do not recognise: every
			// operation of the part shares the first answer.
			var first OpResult
			if r.single != nil {
				first = r.single.resp
			} else if len(r.changeSet) > 0 {
				first = r.changeSet[len(r.changeSet)-1].resp
			}
			if first.Err == nil {
				first.Err = fmt.Errorf("dataverse: batch part %d: unexpected response shape", i)
			}
			for range p.ops {
				out = append(out, first)
			}
		}
	}
	return out
}

// BulkOptions shapes ExecuteMany.
type BulkOptions struct {
	// BatchSize overrides the client's operations per $batch (at most 1000).
	BatchSize int
	// Concurrency overrides the client's batches in flight.
	Concurrency int
}

// ExecuteMany runs independent operations (no transaction) in as few requests as it can: $batch requests of
// BatchSize operations with continue-on-error, several in flight at once. It returns one result per
// operation, in order; the error is only for invalid input. A batch of safe-to-repeat operations that
// timed out on the server is split in half and sent again, so one slow batch does not fail them all.
func (c *Client) ExecuteMany(ctx context.Context, ops []Op, opts *BulkOptions) ([]OpResult, error) {
	size, conc := c.opts.BatchSize, c.opts.BulkConcurrency
	if opts != nil && opts.BatchSize > 0 {
		size = min(opts.BatchSize, MaxBatchOperations)
	}
	if opts != nil && opts.Concurrency > 0 {
		conc = opts.Concurrency
	}
	for i, op := range ops {
		if op.err != nil {
			return nil, fmt.Errorf("dataverse: operation %d: %w", i, op.err)
		}
	}
	results := make([]OpResult, len(ops))
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for start := 0; start < len(ops); start += size {
		end := min(start+size, len(ops))
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for i := start; i < len(ops); i++ {
				results[i] = OpResult{Err: ctx.Err()}
			}
			wg.Wait()
			return results, nil
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c.runChunk(ctx, ops[start:end], results[start:end])
		})
	}
	wg.Wait()
	return results, nil
}

func (c *Client) runChunk(ctx context.Context, ops []Op, results []OpResult) {
	var b Batch
	b.Add(ops...)
	res, err := c.ExecuteBatch(ctx, &b, &BatchOptions{ContinueOnError: true})
	if err != nil && len(ops) > 1 && b.idempotent() && isServerTimeout(err) {
		half := len(ops) / 2
		c.log.InfoContext(ctx, "dataverse: batch timed out on the server; splitting it", "operations", len(ops))
		c.runChunk(ctx, ops[:half], results[:half])
		c.runChunk(ctx, ops[half:], results[half:])
		return
	}
	if err != nil {
		for i := range results {
			results[i] = OpResult{Err: err}
		}
		return
	}
	copy(results, res)
}

func isServerTimeout(err error) bool {
	re := asResponseError(err)
	if re == nil {
		return false
	}
	return re.StatusCode == http.StatusGatewayTimeout || re.StatusCode == http.StatusRequestTimeout || re.Code == CodeSQLTimeout
}

// sendBatch sends ops as one $batch that carries on past failures, then sends again the ones Dataverse
// did not run or refused for a moment (throttled, transient, not executed), up to three more times. The
// error is for a first $batch that failed as a whole (nothing was written); after that, every op has its
// own result, and those a later attempt could not send carry that attempt's error.
//
// API: POST /$batch (as ExecuteBatch, with Prefer: odata.continue-on-error)
func (c *Client) sendBatch(ctx context.Context, ops []Op) ([]OpResult, error) {
	results := make([]OpResult, len(ops))
	send := make([]int, len(ops)) // indexes into ops still to send
	for i := range send {
		send[i] = i
	}
	delay := time.Second
	for attempt := 0; ; attempt++ {
		var b Batch
		for _, i := range send {
			b.Add(ops[i])
		}
		res, err := c.ExecuteBatch(ctx, &b, &BatchOptions{ContinueOnError: true})
		if err != nil && attempt == 0 {
			return nil, err
		}
		if err != nil { // what the earlier attempts wrote stands; the ops still to send fail with this
			for _, i := range send {
				results[i].Err = err
			}
			return results, nil
		}
		var again []int
		for j, i := range send {
			results[i] = res[j]
			if e := res[j].Err; e != nil && (errors.Is(e, ErrNotExecuted) || IsThrottled(e) || IsTransient(e)) {
				again = append(again, i)
			}
		}
		if len(again) == 0 || attempt == 3 {
			return results, nil
		}
		send = again
		select {
		case <-ctx.Done():
			for _, i := range send {
				results[i].Err = ctx.Err()
			}
			return results, nil
		case <-time.After(delay):
		}
		delay *= 2
	}
}
