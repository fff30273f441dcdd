package api

// Text that reaches the database. PostgreSQL's text and jsonb cannot hold
// U+0000 and refuse invalid UTF-8: a request carrying either in a string
// that is stored or looked up would fail with a 500. These checks answer
// 422 naming the field instead, for every JSON body decoded by
// decodeStrict, every query parameter (parseQuery) and every path
// parameter (handle); fields with rules of their own (event fields, stream
// names) refuse more.

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// badText says what is wrong with s as text for the database, or "".
func badText(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "must not contain the NUL character (U+0000)"
	}
	return ""
}

// textFields reports every string in v (a decoded request: structs with
// json tags, pointers, slices, maps of strings) that badText refuses, by
// its JSON path.
func textFields(v reflect.Value, path string, errs *[]fieldError) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			textFields(v.Elem(), path, errs)
		}
	case reflect.String:
		if p := badText(v.String()); p != "" {
			name := path
			if name == "" {
				name = "(body)"
			}
			addErr(errs, name, "invalid", name+" "+p+".")
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			textFields(v.Field(i), join(path, name), errs)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 { // []byte, json.RawMessage: not text
			return
		}
		for i := range v.Len() {
			textFields(v.Index(i), path+"["+strconv.Itoa(i)+"]", errs)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() == reflect.String {
				if p := badText(k.String()); p != "" {
					addErr(errs, path, "invalid", fmt.Sprintf("The keys of %s %s.", path, p))
					continue
				}
				textFields(iter.Value(), join(path, k.String()), errs)
			}
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// checkQueryText refuses query parameters (names and values) that are not
// text the database can hold.
func checkQueryText(v url.Values) error {
	var errs []fieldError
	for k, vals := range v {
		if p := badText(k); p != "" {
			addErr(&errs, truncate(strconv.Quote(k), 100), "invalid", "Query parameter names "+p+".")
			continue
		}
		for _, s := range vals {
			if p := badText(s); p != "" {
				addErr(&errs, k, "invalid", k+" "+p+".")
				break
			}
		}
	}
	if len(errs) > 0 {
		return errInvalidParams(errs)
	}
	return nil
}

// checkPathText refuses path parameters (the {name} wildcards of pattern)
// that are not text the database can hold.
func checkPathText(r *http.Request, pattern string) error {
	var errs []fieldError
	for rest := pattern; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			break
		}
		name := strings.TrimSuffix(strings.TrimSuffix(rest[i+1:i+j], "..."), "$")
		rest = rest[i+j+1:]
		if name == "" {
			continue
		}
		if p := badText(r.PathValue(name)); p != "" {
			addErr(&errs, name, "invalid", "The "+name+" in the path "+p+".")
		}
	}
	if len(errs) > 0 {
		return errInvalidParams(errs)
	}
	return nil
}
