package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Unmarshal reads the JSON object js into the struct dst points to, as
// encoding/json does, with three differences that keep service configs
// forward compatible and their errors readable:
//
//   - A field dst does not have is not an error: its dotted path
//     ("breaker.nope") is returned in unknown (sorted) and the rest is
//     read. grpc-go's built-in policies ignore unknown fields too, so a
//     config written for a newer release still works with older clients.
//   - A value of the wrong type is reported with its path, its value and
//     what is allowed ("breaker.window: 5, must be a duration string such
//     as \"5s\""); every such error is returned, joined.
//   - Keys match the JSON names exactly (encoding/json also accepts other
//     letter cases; here such a key is unknown).
//
// Fields absent from js keep their value, so unmarshal into the defaults.
// Empty input and null leave dst unchanged. Embedded structs without a JSON
// name are flattened (embedded pointers are not followed); fields of struct
// type without an UnmarshalJSON method are read recursively; every other
// field is decoded by encoding/json.
func Unmarshal(js []byte, dst any) (unknown []string, err error) {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config.Unmarshal: dst is %T, must be a non-nil pointer to a struct", dst)
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 {
		return nil, nil
	}
	if !json.Valid(js) {
		var x any
		err := json.Unmarshal(js, &x) // for the position of the syntax error
		return nil, fmt.Errorf("config: invalid JSON: %v", err)
	}
	d := &decoder{}
	d.object("", js, v.Elem())
	slices.Sort(d.unknown)
	return d.unknown, errors.Join(d.errs...)
}

type decoder struct {
	unknown []string
	errs    []error
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// object reads the JSON object raw into the struct v; path names v.
func (d *decoder) object(path string, raw []byte, v reflect.Value) {
	if string(raw) == "null" {
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		d.errs = append(d.errs, Invalid(cmp.Or(path, "config"), short(raw), "a JSON object"))
		return
	}
	fields := fieldsOf(v.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		idx, ok := fields[k]
		if !ok {
			d.unknown = append(d.unknown, p)
			continue
		}
		f := v.FieldByIndex(idx)
		if t := f.Type(); t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshalerType) {
			d.object(p, m[k], f)
			continue
		}
		if err := json.Unmarshal(m[k], f.Addr().Interface()); err != nil {
			d.errs = append(d.errs, Invalid(p, short(m[k]), expected(f.Type(), err)))
		}
	}
}

// fieldsOf maps the JSON names of t's fields, embedded ones flattened
// (an outer name hides an embedded one), to their index paths.
func fieldsOf(t reflect.Type) map[string][]int {
	m := make(map[string][]int)
	var embedded []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			embedded = append(embedded, f)
			continue
		}
		if !f.IsExported() {
			continue
		}
		m[cmp.Or(name, f.Name)] = f.Index
	}
	for _, e := range embedded {
		for name, idx := range fieldsOf(e.Type) {
			if _, ok := m[name]; !ok {
				m[name] = append(slices.Clone(e.Index), idx...)
			}
		}
	}
	return m
}

// expected says what a field of type t accepts, given the error decoding
// it returned.
func expected(t reflect.Type, err error) string {
	if errors.Is(err, errNotDuration) {
		return errNotDuration.Error()
	}
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a JSON object"
	}
	return "a JSON value of type " + t.String()
}

// short returns raw compacted and cut to a length fit for an error.
func short(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		b.Reset()
		b.Write(raw)
	}
	const maxLen = 64
	if b.Len() > maxLen {
		return string(b.Bytes()[:maxLen]) + "..."
	}
	return b.String()
}
