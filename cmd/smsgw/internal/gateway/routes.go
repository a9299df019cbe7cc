package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// routeMux is the API's ServeMux; it remembers the patterns registered on
// it so that a test can hold them against the OpenAPI document.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

// Handle registers the handler for the pattern and remembers the pattern.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// jsonErrors gives a handler that answers errors in plain text (file
// servers: "404 page not found") the API's error shape; what names what a
// 404 did not find ("file in the web UI").
func jsonErrors(h http.Handler, what string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&errorRewriter{ResponseWriter: w, r: r, what: what}, r)
	})
}

// errorRewriter replaces the body of an error answer (status 400 or more)
// with {"error": ...}.
type errorRewriter struct {
	http.ResponseWriter
	r      *http.Request
	what   string
	failed bool
}

func (e *errorRewriter) WriteHeader(code int) {
	if code < 400 {
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.failed = true
	e.Header().Del("Content-Length")
	e.Header().Del("X-Content-Type-Options")
	msg := http.StatusText(code)
	if code == http.StatusNotFound {
		msg = fmt.Sprintf("no %s at %s", e.what, e.r.URL.Path)
	}
	writeError(e.ResponseWriter, code, msg)
}

func (e *errorRewriter) Write(b []byte) (int, error) {
	if e.failed {
		return len(b), nil // the plain-text message, already replaced
	}
	return e.ResponseWriter.Write(b)
}

var (
	timeType      = reflect.TypeOf(time.Time{})
	marshalerType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
)

// snakeJSON returns v for encoding/json with the snake_case field names of
// the rest of the API: struct fields without a json tag (the statistics
// structs of the bearer, queue and proxy packages) are named by their Go
// name in snake_case (DatagramsSent: datagrams_sent, WAPPushReceived:
// wap_push_received); fields with a json tag keep it. Map keys are data and
// are kept.
func snakeJSON(v any) any {
	if v == nil {
		return nil
	}
	return snakeValue(reflect.ValueOf(v))
}

func snakeValue(v reflect.Value) any {
	t := v.Type()
	if t == timeType || t.Implements(marshalerType) {
		return v.Interface()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return snakeValue(v.Elem())
	case reflect.Struct:
		out := make(map[string]any, t.NumField())
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" && opts == "" {
				continue
			}
			if strings.Contains(opts, "omitempty") && v.Field(i).IsZero() {
				continue
			}
			if name == "" {
				name = snakeName(f.Name)
			}
			out[name] = snakeValue(v.Field(i))
		}
		return out
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 || v.Kind() == reflect.Slice && v.IsNil() {
			return v.Interface()
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = snakeValue(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() || t.Key().Kind() != reflect.String {
			return v.Interface()
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[it.Key().String()] = snakeValue(it.Value())
		}
		return out
	}
	return v.Interface()
}

// snakeName turns a Go field name into snake_case; an initialism stays one
// word (HTTPLimits: http_limits, DroppedNotBinary: dropped_not_binary).
func snakeName(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || unicode.IsUpper(r[i-1]) && nextLower {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
