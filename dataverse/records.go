package dataverse

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Query selects rows of one entity set.
type Query struct {
	// Select lists the columns to return (lookups by their _name_value property). Keep it narrow; empty
	// returns every column.
	Select []string
	// Filter restricts the rows; build it with Eq, And, In, ….
	Filter Filter
	// OrderBy lists "column" or "column desc".
	OrderBy []string
	// Top returns at most this many rows in one response; it is not combined with paging.
	Top int
	// PageSize overrides the client's Prefer: odata.maxpagesize (at most 5000).
	PageSize int
	// FormattedValues asks for labels of choices, names of lookups and localized dates.
	FormattedValues bool
	// Expand reads related rows with each row (Expand).
	Expand []Expand
}

// Expand reads rows related to a row in the same request ($expand): through a lookup (Nav is the lookup
// column, the navigation property the connector's install gives it), the row it points at, read with
// Expanded; through a one-to-many relationship (Nav is RelationshipName of the lookup that points back),
// the rows that point at it, read with ExpandedRows. Dataverse allows 15 in a query, nested ones counted.
type Expand struct {
	Nav    string
	Select []string
	// Filter restricts the rows of a one-to-many relationship (Dataverse refuses it on a lookup).
	Filter Filter
	// Expand reads the related rows' own related rows (a nested $expand).
	Expand []Expand
}

// expandText renders es as the value of $expand: nav($select=…;$filter=…;$expand=…),….
func expandText(es []Expand) (string, error) {
	items := make([]string, 0, len(es))
	for _, e := range es {
		if err := checkColumn(e.Nav); err != nil {
			return "", fmt.Errorf("dataverse: bad $expand navigation property %q", e.Nav)
		}
		if err := e.Filter.Err(); err != nil {
			return "", err
		}
		var opts []string
		if len(e.Select) > 0 {
			for _, c := range e.Select {
				if err := checkColumn(c); err != nil {
					return "", err
				}
			}
			opts = append(opts, "$select="+strings.Join(e.Select, ","))
		}
		if e.Filter.text != "" {
			opts = append(opts, "$filter="+e.Filter.text)
		}
		if len(e.Expand) > 0 {
			nested, err := expandText(e.Expand)
			if err != nil {
				return "", err
			}
			opts = append(opts, "$expand="+nested)
		}
		item := e.Nav
		if len(opts) > 0 {
			item += "(" + strings.Join(opts, ";") + ")"
		}
		items = append(items, item)
	}
	return strings.Join(items, ","), nil
}

func (q *Query) values() (url.Values, error) {
	v := url.Values{}
	if q == nil {
		return v, nil
	}
	if err := q.Filter.Err(); err != nil {
		return nil, err
	}
	if len(q.Select) > 0 {
		for _, c := range q.Select {
			if err := checkColumn(c); err != nil {
				return nil, err
			}
		}
		v.Set("$select", strings.Join(q.Select, ","))
	}
	if q.Filter.text != "" {
		v.Set("$filter", q.Filter.text)
	}
	if len(q.OrderBy) > 0 {
		for _, o := range q.OrderBy {
			col, dir, _ := strings.Cut(o, " ")
			if err := checkColumn(col); err != nil || (dir != "" && dir != "asc" && dir != "desc") {
				return nil, fmt.Errorf("dataverse: bad $orderby item %q", o)
			}
		}
		v.Set("$orderby", strings.Join(q.OrderBy, ","))
	}
	if q.Top > 0 {
		v.Set("$top", strconv.Itoa(q.Top))
	}
	if len(q.Expand) > 0 {
		text, err := expandText(q.Expand)
		if err != nil {
			return nil, err
		}
		v.Set("$expand", text)
	}
	return v, nil
}

// preferHeader builds the Prefer header: annotations and page size share it.
func preferHeader(formatted bool, pageSize int, more ...string) http.Header {
	var parts []string
	if formatted {
		parts = append(parts, `odata.include-annotations="*"`)
	}
	if pageSize > 0 {
		parts = append(parts, "odata.maxpagesize="+strconv.Itoa(pageSize))
	}
	parts = append(parts, more...)
	if len(parts) == 0 {
		return nil
	}
	return http.Header{"Prefer": {strings.Join(parts, ",")}}
}

type page struct {
	Value    []Row  `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// List returns the rows of entitySet matching q, page by page as the caller consumes them: only one page is
// held in memory. Stop ranging to stop fetching. A failure is yielded once, as the last element.
//
// API: GET /{entitySet}?$select&$filter&$orderby&$top, following @odata.nextLink unchanged.
func (c *Client) List(ctx context.Context, entitySet string, q *Query) iter.Seq2[Row, error] {
	return func(yield func(Row, error) bool) {
		if err := checkEntitySet(entitySet); err != nil {
			yield(nil, err)
			return
		}
		vals, err := q.values()
		if err != nil {
			yield(nil, err)
			return
		}
		pageSize, formatted := c.opts.PageSize, false
		if q != nil {
			formatted = q.FormattedValues
			if q.PageSize > 0 {
				pageSize = min(q.PageSize, 5000)
			}
			if q.Top > 0 {
				pageSize = 0 // Dataverse ignores $top when a page size is set
			}
		}
		next, query := entitySet, vals
		for next != "" {
			var p page
			req := request{method: http.MethodGet, path: next, query: query, header: preferHeader(formatted, pageSize), idempotent: true}
			if _, err := c.doJSON(ctx, req, &p); err != nil {
				yield(nil, fmt.Errorf("dataverse: list %s: %w", entitySet, err))
				return
			}
			for _, r := range p.Value {
				if !yield(r, nil) {
					return
				}
			}
			next, query = p.NextLink, nil
		}
	}
}

// GetOptions shapes a single-row read.
type GetOptions struct {
	Select          []string
	FormattedValues bool
	// Expand reads related rows with the row, in the same request (Expand).
	Expand []Expand
	// IfNoneMatch makes the read conditional: an unchanged row returns ErrNotModified.
	IfNoneMatch ETag
}

// ErrNotModified is returned by a conditional read of a row that has not changed.
var ErrNotModified = fmt.Errorf("dataverse: row not modified")

// Get reads one row by id. A missing row is an error for which IsNotFound is true.
//
// API: GET /{entitySet}({id})?$select
func (c *Client) Get(ctx context.Context, entitySet string, id GUID, opts *GetOptions) (Row, error) {
	path, err := rowPath(entitySet, id)
	if err != nil {
		return nil, err
	}
	row, err := c.getRow(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("dataverse: get %s: %w", path, err)
	}
	return row, nil
}

// GetByKey reads one row by alternate key.
//
// API: GET /{entitySet}({key1}={value1},…)?$select
func (c *Client) GetByKey(ctx context.Context, entitySet string, key Key, opts *GetOptions) (Row, error) {
	path, err := keyPath(entitySet, key)
	if err != nil {
		return nil, err
	}
	row, err := c.getRow(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("dataverse: get %s: %w", path, err)
	}
	return row, nil
}

func (c *Client) getRow(ctx context.Context, path string, opts *GetOptions) (Row, error) {
	var o GetOptions
	if opts != nil {
		o = *opts
	}
	q := (&Query{Select: o.Select, Expand: o.Expand})
	vals, err := q.values()
	if err != nil {
		return nil, err
	}
	h := preferHeader(o.FormattedValues, 0)
	if o.IfNoneMatch != "" {
		if h == nil {
			h = http.Header{}
		}
		h.Set("If-None-Match", string(o.IfNoneMatch))
	}
	var row Row
	resp, err := c.doJSON(ctx, request{method: http.MethodGet, path: path, query: vals, header: h, idempotent: true}, &row)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotModified {
		return nil, ErrNotModified
	}
	return row, nil
}

// Create inserts a row and returns its id. Set lookups with SetLookup. A create is not repeated after a
// failure that may have reached the server (it could create the row twice): give the row its id
// (row[primaryKey] = id) when the caller needs to find it again after an ambiguous failure.
//
// API: POST /{entitySet} → 204 + OData-EntityId
func (c *Client) Create(ctx context.Context, entitySet string, row Row) (GUID, error) {
	if err := checkEntitySet(entitySet); err != nil {
		return GUID{}, err
	}
	body, err := json.Marshal(row)
	if err != nil {
		return GUID{}, fmt.Errorf("dataverse: create %s: encode row: %w", entitySet, err)
	}
	resp, err := c.doJSON(ctx, request{method: http.MethodPost, path: entitySet, body: body}, nil)
	if err != nil {
		return GUID{}, fmt.Errorf("dataverse: create %s: %w", entitySet, err)
	}
	id, err := idFromEntityID(resp.Header.Get("OData-EntityId"))
	if err != nil {
		return GUID{}, fmt.Errorf("dataverse: create %s: %w", entitySet, err)
	}
	return id, nil
}

// UpdateOptions shapes an update.
type UpdateOptions struct {
	// IfMatch makes the update conditional on the row's version: if it changed since it was read, the
	// update fails with an error for which IsConflict is true. Empty means If-Match: *, which only
	// guarantees the update never creates a row.
	IfMatch ETag
	// Select asks for the updated row back (with its new ETag) with these columns.
	Select []string
}

// Update changes the given columns of an existing row; it never creates one. Send only the columns that
// changed: unchanged values written again still fire events and audit. It returns the updated row when
// opts.Select is set, else nil.
//
// API: PATCH /{entitySet}({id}) with If-Match
func (c *Client) Update(ctx context.Context, entitySet string, id GUID, changes Row, opts *UpdateOptions) (Row, error) {
	path, err := rowPath(entitySet, id)
	if err != nil {
		return nil, err
	}
	row, err := c.patch(ctx, path, changes, opts)
	if err != nil {
		return nil, fmt.Errorf("dataverse: update %s: %w", path, err)
	}
	return row, nil
}

func (c *Client) patch(ctx context.Context, path string, changes Row, opts *UpdateOptions) (Row, error) {
	var o UpdateOptions
	if opts != nil {
		o = *opts
	}
	body, err := json.Marshal(changes)
	if err != nil {
		return nil, fmt.Errorf("encode row: %w", err)
	}
	h := http.Header{"If-Match": {"*"}}
	if o.IfMatch != "" {
		h.Set("If-Match", string(o.IfMatch))
	}
	var vals url.Values
	var out *Row
	if len(o.Select) > 0 {
		if vals, err = (&Query{Select: o.Select}).values(); err != nil {
			return nil, err
		}
		h.Set("Prefer", "return=representation")
		out = new(Row)
	}
	var target any
	if out != nil {
		target = out
	}
	if _, err := c.doJSON(ctx, request{method: http.MethodPatch, path: path, query: vals, header: h, body: body, idempotent: true}, target); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, nil
	}
	return *out, nil
}

// UpsertMode chooses what an upsert may do.
type UpsertMode int

const (
	// UpsertCreateOrUpdate creates the row when no row has the key, else updates it.
	UpsertCreateOrUpdate UpsertMode = iota
	// UpsertCreateOnly fails with a conflict (IsConflict) when a row with the key exists.
	UpsertCreateOnly
	// UpsertUpdateOnly fails with not found (IsNotFound) when no row has the key.
	UpsertUpdateOnly
)

// UpsertResult says which row an upsert wrote.
type UpsertResult struct {
	ID GUID
	// Created is true when the row was created (201 Created), false when an existing row was updated.
	Created bool
}

// UpsertOptions shapes an upsert.
type UpsertOptions struct {
	Mode UpsertMode
	// PrimaryKey is the table's primary key column (<logicalname>id); it is required. Dataverse names a
	// row upserted by alternate key by its key values in OData-EntityId, never by its id, so the upsert
	// asks for the row back (Prefer: return=representation, $select of this column only), which also says
	// whether it was created (201) or updated (200).
	PrimaryKey string
}

// upsertRequest builds the PATCH of an upsert: its address, conditional headers and the representation it
// asks for.
func upsertRequest(entitySet string, key Key, row Row, opts *UpsertOptions, needPrimaryKey bool) (request, error) {
	var o UpsertOptions
	if opts != nil {
		o = *opts
	}
	path, err := keyPath(entitySet, key)
	if err != nil {
		return request{}, err
	}
	if o.PrimaryKey == "" && needPrimaryKey {
		return request{}, fmt.Errorf("dataverse: upsert %s: UpsertOptions.PrimaryKey is required: Dataverse names the row it wrote only in its representation", path)
	}
	body, err := json.Marshal(row)
	if err != nil {
		return request{}, fmt.Errorf("dataverse: upsert %s: encode row: %w", path, err)
	}
	h := upsertHeader(o.Mode)
	if o.PrimaryKey == "" {
		return request{method: http.MethodPatch, path: path, header: h, body: body, idempotent: o.Mode != UpsertCreateOnly}, nil
	}
	vals, err := (&Query{Select: []string{o.PrimaryKey}}).values()
	if err != nil {
		return request{}, err
	}
	h.Set("Prefer", "return=representation")
	return request{method: http.MethodPatch, path: path, query: vals, header: h, body: body, idempotent: o.Mode != UpsertCreateOnly}, nil
}

// upsertResult reads the row id and whether it was created from an upsert's representation.
func upsertResult(status int, row Row, primaryKey string) (UpsertResult, error) {
	id, ok := row.GUID(primaryKey)
	if !ok {
		return UpsertResult{}, fmt.Errorf("dataverse: the upsert's answer (%d) has no %s", status, primaryKey)
	}
	return UpsertResult{ID: id, Created: status == http.StatusCreated}, nil
}

// Upsert writes a row addressed by its alternate key and returns its id and whether it was created. Do
// not repeat the key columns in row: Dataverse takes them from the address. opts.PrimaryKey is required.
//
// API: PATCH /{entitySet}({key})?$select={primary key} with Prefer: return=representation (If-None-Match: *
// to create only, If-Match: * to update only) → 201 created / 200 updated, with the row
func (c *Client) Upsert(ctx context.Context, entitySet string, key Key, row Row, opts *UpsertOptions) (UpsertResult, error) {
	req, err := upsertRequest(entitySet, key, row, opts, true)
	if err != nil {
		return UpsertResult{}, err
	}
	var out Row
	resp, err := c.doJSON(ctx, req, &out)
	if err != nil {
		return UpsertResult{}, fmt.Errorf("dataverse: upsert %s: %w", req.path, err)
	}
	res, err := upsertResult(resp.StatusCode, out, opts.PrimaryKey)
	if err != nil {
		return UpsertResult{}, fmt.Errorf("dataverse: upsert %s: %w", req.path, err)
	}
	return res, nil
}

func upsertHeader(mode UpsertMode) http.Header {
	switch mode {
	case UpsertCreateOnly:
		return http.Header{"If-None-Match": {"*"}}
	case UpsertUpdateOnly:
		return http.Header{"If-Match": {"*"}}
	}
	return http.Header{}
}

// DeleteOptions shapes a delete.
type DeleteOptions struct {
	// IfMatch deletes only if the row is still at this version.
	IfMatch ETag
}

// Delete removes a row. Deleting a row that does not exist is an error for which IsNotFound is true.
//
// API: DELETE /{entitySet}({id})
func (c *Client) Delete(ctx context.Context, entitySet string, id GUID, opts *DeleteOptions) error {
	path, err := rowPath(entitySet, id)
	if err != nil {
		return err
	}
	var h http.Header
	if opts != nil && opts.IfMatch != "" {
		h = http.Header{"If-Match": {string(opts.IfMatch)}}
	}
	if _, err := c.doJSON(ctx, request{method: http.MethodDelete, path: path, header: h, idempotent: true}, nil); err != nil {
		return fmt.Errorf("dataverse: delete %s: %w", path, err)
	}
	return nil
}

// WhoAmIResult identifies the caller: UserID is the application user's systemuserid, the InitiatingUserId
// of every event the connector causes itself.
type WhoAmIResult struct {
	UserID         GUID `json:"UserId"`
	BusinessUnitID GUID `json:"BusinessUnitId"`
	OrganizationID GUID `json:"OrganizationId"`
}

// WhoAmI returns the caller's identity; it doubles as a connectivity and credentials check.
//
// API: GET /WhoAmI
func (c *Client) WhoAmI(ctx context.Context) (WhoAmIResult, error) {
	var r WhoAmIResult
	if _, err := c.doJSON(ctx, request{method: http.MethodGet, path: "WhoAmI", idempotent: true}, &r); err != nil {
		return WhoAmIResult{}, fmt.Errorf("dataverse: WhoAmI: %w", err)
	}
	return r, nil
}
