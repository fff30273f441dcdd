package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/trailaudit/trail/internal/store"
)

// readBody reads the whole request body, refusing (413) one over limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return readBodyInto(w, r, limit, nil)
}

// readBodyInto is readBody reading into buf when it is large enough for the
// announced length (else into a new buffer).
func readBodyInto(w http.ResponseWriter, r *http.Request, limit int64, buf []byte) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	size := 512
	if r.ContentLength > 0 {
		size = int(r.ContentLength) + 1 // +1 lets ReadAll see EOF without growing
	}
	// Read into a buffer of the announced size, as io.ReadAll would but
	// without its first small allocation; bytes.Buffer.ReadFrom would
	// allocate a second buffer, wanting 512 bytes free before each read.
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	b, err := readAllInto(buf[:0], http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errTooLarge(limit)
	case errors.Is(err, errIntakeFull):
		return nil, errIngestUnavailable
	case err != nil:
		return nil, &apiError{status: http.StatusBadRequest, code: "invalid_body",
			message: "Couldn't read the request body: " + err.Error() + "."}
	}
	return b, nil
}

// readAllInto appends everything r reads to b, growing it only when full.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// decodeStrict decodes an administrative request body (one JSON object) into
// dst: malformed JSON is a 400 invalid_json, a field dst does not have or a
// value of the wrong type a 422 naming the field.
func decodeStrict(body []byte, dst any) error {
	if err := checkJSONObject(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		var errs []fieldError
		textFields(reflect.ValueOf(dst), "", &errs)
		if len(errs) > 0 {
			return errInvalidParams(errs)
		}
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return errInvalidParams([]fieldError{{Code: "invalid_type", Field: field,
			Message: fmt.Sprintf("%s must be %s, not a JSON %s.", field, describeType(te.Type), te.Value)}})
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return errInvalidParams([]fieldError{{Code: "unknown_field", Field: name,
			Message: fmt.Sprintf("%s is not a field of this request; remove it.", name)}})
	}
	return errInvalidJSON(trimJSONPrefix(err.Error()))
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// listParams parses WorkOS list pagination: before, after, limit (1–100,
// default 10) and order (asc or desc, default desc).
func listParams(v url.Values, errs *[]fieldError) store.ListParams {
	p := store.ListParams{Limit: 10, Order: store.OrderDesc}
	p.Before = single(v, "before", errs)
	p.After = single(v, "after", errs)
	if p.Before != "" && p.After != "" {
		addErr(errs, "after", "invalid", "Give either before or after, not both.")
	}
	if s := single(v, "limit", errs); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			addErr(errs, "limit", "invalid", fmt.Sprintf("limit must be a whole number from 1 to 100, not %q.", truncate(s, 40)))
		} else {
			p.Limit = n
		}
	}
	if s := single(v, "order", errs); s != "" {
		if s != store.OrderAsc && s != store.OrderDesc {
			addErr(errs, "order", "invalid", fmt.Sprintf("order must be asc or desc, not %q.", truncate(s, 40)))
		} else {
			p.Order = s
		}
	}
	return p
}

// single returns the one value of a query parameter ("" when absent),
// reporting a parameter given twice or not valid UTF-8.
func single(v url.Values, name string, errs *[]fieldError) string {
	vals := v[name]
	switch {
	case len(vals) == 0:
		return ""
	case len(vals) > 1:
		addErr(errs, name, "invalid", name+" may be given only once.")
		return ""
	case !utf8.ValidString(vals[0]):
		addErr(errs, name, "invalid", name+" must be valid UTF-8.")
		return ""
	}
	return vals[0]
}

// unknownParams reports the query parameters not in known, in the order of
// the query string's keys (sorted, for a stable message).
func unknownParams(v url.Values, known map[string]bool, errs *[]fieldError) {
	var names []string
	for k := range v {
		if !known[k] {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	for _, n := range names {
		field := truncate(n, 100)
		if field == "" {
			field = `""` // "?=x" names a parameter with no name
		}
		addErr(errs, field, "unknown_parameter", fmt.Sprintf("%s is not a parameter of this endpoint; remove it.", truncate(strconv.Quote(n), 100)))
	}
}

func addErr(errs *[]fieldError, field, code, msg string) {
	*errs = append(*errs, fieldError{Code: code, Field: field, Message: msg})
}

// parseQuery parses the raw query string, refusing a malformed one rather
// than silently dropping its bad pairs.
func parseQuery(r *http.Request) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errInvalidParams([]fieldError{{Code: "invalid", Field: "(query)",
			Message: "The query string is malformed (" + err.Error() + "); percent-encode the parameter values."}})
	}
	if err := checkQueryText(v); err != nil {
		return nil, err
	}
	return v, nil
}

func trimJSONPrefix(msg string) string { return strings.TrimPrefix(msg, "json: ") }
