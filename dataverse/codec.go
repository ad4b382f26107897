package dataverse

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// The codec maps rows to structs through `dataverse` field tags:
//
//	type LicenseChangeLog struct {
//		ID       dataverse.GUID `dataverse:"csp_licensechangelogid,readonly"`
//		ETag     dataverse.ETag `dataverse:"@odata.etag"`
//		Quantity int            `dataverse:"csp_quantity"`
//		Subscription dataverse.Ref `dataverse:"csp_subscription,lookup=csp_subscriptions"`
//	}
//
// Supported field types: string, bool, int kinds (including named choice types), float64, time.Time,
// GUID, Ref (lookups), ETag, and pointers to the scalar kinds for columns where null differs from zero.
// "readonly" fields are read but never written; "omitzero" fields are left out of Marshal when zero (for
// statecode and statuscode, whose zero is not "unset"), though Changes still writes them when they change.
// Lookups are read from _name_value and written as name@odata.bind with the entity set given by lookup=.
// A choice (a named int type with an OptionValue method) that is zero is unset and written as null:
// every real option value carries the publisher's prefix.

type fieldInfo struct {
	index    int
	column   string
	readonly bool
	omitZero bool   // Marshal leaves the field out when zero, so the server's default applies
	lookup   string // entity set of a lookup's target
	etag     bool
}

type typeInfo struct{ fields []fieldInfo }

// The reflect types the codec special-cases. (Constants in spirit: reflect.TypeFor costs nothing.)
func refType() reflect.Type  { return reflect.TypeFor[Ref]() }
func guidType() reflect.Type { return reflect.TypeFor[GUID]() }
func timeType() reflect.Type { return reflect.TypeFor[time.Time]() }

// typeInfoOf parses the tags of a struct type. It is not cached: parsing a few dozen tags costs far less
// than the request that fetched the row, and a cache would be package state.
func typeInfoOf(t reflect.Type) (*typeInfo, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("dataverse: codec: %s is not a struct", t)
	}
	ti := &typeInfo{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("dataverse")
		if !ok || tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fi := fieldInfo{index: i, column: name}
		for opt := range strings.SplitSeq(opts, ",") {
			switch {
			case opt == "":
			case opt == "readonly":
				fi.readonly = true
			case opt == "omitzero":
				fi.omitZero = true
			case strings.HasPrefix(opt, "lookup="):
				fi.lookup = strings.TrimPrefix(opt, "lookup=")
			default:
				return nil, fmt.Errorf("dataverse: codec: %s.%s: unknown tag option %q", t, f.Name, opt)
			}
		}
		switch {
		case name == AnnotationETag:
			if f.Type != reflect.TypeFor[ETag]() {
				return nil, fmt.Errorf("dataverse: codec: %s.%s: %s needs type ETag", t, f.Name, name)
			}
			fi.etag, fi.readonly = true, true
		case f.Type == refType():
			if fi.lookup == "" && !fi.readonly {
				return nil, fmt.Errorf("dataverse: codec: %s.%s: a writable lookup needs lookup=<entity set>", t, f.Name)
			}
		case !supported(f.Type):
			return nil, fmt.Errorf("dataverse: codec: %s.%s: unsupported type %s", t, f.Name, f.Type)
		}
		ti.fields = append(ti.fields, fi)
	}
	return ti, nil
}

func supported(t reflect.Type) bool {
	if t == guidType() || t == timeType() {
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
		if t == timeType() || t == guidType() {
			return true
		}
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64, reflect.Float64:
		return true
	}
	return false
}

// Columns returns the columns a typed row reads, for $select: lookups as _name_value, no annotations.
func Columns[T any]() []string {
	ti, err := typeInfoOf(reflect.TypeFor[T]())
	if err != nil {
		panic(err) // a programming error in a struct tag, caught by the first test that uses the type
	}
	var out []string
	for _, f := range ti.fields {
		switch {
		case f.etag:
		case f.lookup != "" || reflect.TypeFor[T]().Field(f.index).Type == refType():
			out = append(out, LookupValue(f.column))
		default:
			out = append(out, f.column)
		}
	}
	return out
}

// Unmarshal fills the tagged fields of *v from row. Columns absent from the row leave fields unchanged.
func Unmarshal(row Row, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("dataverse: Unmarshal needs a non-nil pointer, got %T", v)
	}
	rv = rv.Elem()
	ti, err := typeInfoOf(rv.Type())
	if err != nil {
		return err
	}
	for _, f := range ti.fields {
		fv := rv.Field(f.index)
		if f.etag {
			fv.SetString(string(row.ETag()))
			continue
		}
		if fv.Type() == refType() {
			if ref, ok := row.Lookup(f.column); ok {
				fv.Set(reflect.ValueOf(ref))
			} else if _, present := row[LookupValue(f.column)]; present {
				fv.Set(reflect.ValueOf(Ref{}))
			}
			continue
		}
		raw, present := row[f.column]
		if !present {
			continue
		}
		if err := setField(fv, raw); err != nil {
			return fmt.Errorf("dataverse: column %s: %w", f.column, err)
		}
	}
	return nil
}

func setField(fv reflect.Value, raw any) error {
	if raw == nil {
		fv.SetZero()
		return nil
	}
	if fv.Kind() == reflect.Pointer {
		p := reflect.New(fv.Type().Elem())
		if err := setField(p.Elem(), raw); err != nil {
			return err
		}
		fv.Set(p)
		return nil
	}
	switch {
	case fv.Type() == timeType():
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("want a date-time, got %T", raw)
		}
		t, err := parseTime(s)
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(t))
		return nil
	case fv.Type() == guidType():
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("want a row id, got %T", raw)
		}
		id, err := ParseGUID(s)
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(id))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("want text, got %T", raw)
		}
		fv.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return fmt.Errorf("want yes/no, got %T", raw)
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		i, ok := Row{"v": raw}.Int("v")
		if !ok {
			return fmt.Errorf("want a whole number, got %v", raw)
		}
		if fv.OverflowInt(i) {
			return fmt.Errorf("%d overflows %s", i, fv.Type())
		}
		fv.SetInt(i)
	case reflect.Float64:
		f, ok := Row{"v": raw}.Float("v")
		if !ok {
			return fmt.Errorf("want a number, got %v", raw)
		}
		fv.SetFloat(f)
	default:
		return fmt.Errorf("unsupported field type %s", fv.Type())
	}
	return nil
}

// Marshal returns every writable tagged field of v as a row to create. Zero times, zero ids, empty lookups
// and nil pointers are written as null; so is the empty string, which Dataverse stores as null anyway.
func Marshal(v any) (Row, error) {
	rv := reflect.Indirect(reflect.ValueOf(v))
	ti, err := typeInfoOf(rv.Type())
	if err != nil {
		return nil, err
	}
	row := Row{}
	for _, f := range ti.fields {
		if f.readonly || (f.omitZero && rv.Field(f.index).IsZero()) {
			continue
		}
		writeField(row, f, rv.Field(f.index))
	}
	return row, nil
}

// Changes returns the writable tagged fields whose values differ between before and after (two values of
// the same struct type): the body of an update that rewrites nothing unchanged. An empty row means there is
// nothing to write.
func Changes(before, after any) (Row, error) {
	bv, av := reflect.Indirect(reflect.ValueOf(before)), reflect.Indirect(reflect.ValueOf(after))
	if bv.Type() != av.Type() {
		return nil, fmt.Errorf("dataverse: Changes of %s and %s", bv.Type(), av.Type())
	}
	ti, err := typeInfoOf(av.Type())
	if err != nil {
		return nil, err
	}
	row := Row{}
	for _, f := range ti.fields {
		if f.readonly || sameValue(bv.Field(f.index), av.Field(f.index)) {
			continue
		}
		writeField(row, f, av.Field(f.index))
	}
	return row, nil
}

func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Pointer {
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	}
	if a.Type() == timeType() {
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	if a.Type() == refType() {
		return a.Interface().(Ref).ID == b.Interface().(Ref).ID
	}
	return a.Equal(b)
}

func writeField(row Row, f fieldInfo, fv reflect.Value) {
	if fv.Type() == refType() {
		row.SetLookup(f.column, f.lookup, fv.Interface().(Ref).ID)
		return
	}
	row[f.column] = columnValue(fv)
}

func columnValue(fv reflect.Value) any {
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return nil
		}
		fv = fv.Elem()
	}
	switch {
	case fv.Type() == timeType():
		t := fv.Interface().(time.Time)
		if t.IsZero() {
			return nil
		}
		return t.UTC().Format(time.RFC3339)
	case fv.Type() == guidType():
		id := fv.Interface().(GUID)
		if id == (GUID{}) {
			return nil
		}
		return id.String()
	}
	switch fv.Kind() {
	case reflect.String:
		if fv.String() == "" {
			return nil
		}
		return fv.String()
	case reflect.Bool:
		return fv.Bool()
	case reflect.Int, reflect.Int32, reflect.Int64:
		if _, isChoice := fv.Interface().(interface{ OptionValue() int }); isChoice && fv.Int() == 0 {
			return nil
		}
		return json.Number(formatInt(fv.Int()))
	case reflect.Float64:
		return fv.Float()
	}
	return fv.Interface()
}
