package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// openAPIDoc is the part of openapi.json the route tests read.
type openAPIDoc struct {
	Paths      map[string]map[string]openAPIOp `json:"paths"`
	Components struct {
		Schemas map[string]*schema `json:"schemas"`
	} `json:"components"`
}

type openAPIOp struct {
	OperationID string                   `json:"operationId"`
	Security    []map[string][]string    `json:"security"`
	Responses   map[string]openAPIAnswer `json:"responses"`
}

type openAPIAnswer struct {
	Content map[string]struct {
		Schema *schema `json:"schema"`
	} `json:"content"`
}

// schema is the subset of OpenAPI 3.0 schemas the document uses.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Properties           map[string]*schema `json:"properties"`
	Required             []string           `json:"required"`
	Items                *schema            `json:"items"`
	Enum                 []any              `json:"enum"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Nullable             bool               `json:"nullable"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// samplePath fills an OpenAPI path's parameters with values the router
// takes ({path} is a multi-segment LwM2M path).
func samplePath(p string) string {
	return regexp.MustCompile(`\{([a-z_]+)\}`).ReplaceAllStringFunc(p, func(m string) string {
		if m == "{path}" {
			return "3/0/1"
		}
		return "x"
	})
}

// TestRoutesMatchOpenAPI walks the router's routes and the OpenAPI
// document: every operation of the document is routed to a pattern of the
// same method, every pattern is reached by some operation, and every
// operation has a unique operationId.
func TestRoutesMatchOpenAPI(t *testing.T) {
	g, _ := startGateway(t)
	mux := g.routes()
	doc := loadOpenAPI(t)
	reached := map[string]bool{}
	ids := map[string]string{}
	var ops []string
	for p, methods := range doc.Paths {
		for m, op := range methods {
			ops = append(ops, strings.ToUpper(m)+" "+p)
			name := strings.ToUpper(m) + " " + p
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", name)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q already names %s", name, op.OperationID, other)
			}
			ids[op.OperationID] = name
			req := httptest.NewRequest(strings.ToUpper(m), samplePath(p), nil)
			_, pattern := mux.Handler(req)
			if pattern == "" {
				t.Errorf("%s (as %s): documented, not routed", name, req.URL.Path)
				continue
			}
			if pm, _, _ := strings.Cut(pattern, " "); pm != strings.ToUpper(m) {
				t.Errorf("%s: routed to %q", name, pattern)
			}
			reached[pattern] = true
		}
	}
	sort.Strings(ops)
	if len(ops) < 40 {
		t.Fatalf("only %d operations in openapi.json", len(ops))
	}
	for _, p := range mux.patterns {
		if !reached[p] {
			t.Errorf("route %q is not in openapi.json", p)
		}
	}
	t.Logf("%d operations, %d routes", len(ops), len(mux.patterns))
}

// TestErrorShape: every refusal is the one JSON error shape, with
// Content-Type application/json: unknown paths (404), methods a route does
// not take (405, with Allow), a missing token (401) on every route that
// needs one, and documented error answers point at the Error schema.
func TestErrorShape(t *testing.T) {
	g, api := startGateway(t)
	base := strings.TrimSuffix(api, "/api/v1")
	doc := loadOpenAPI(t)
	check := func(t *testing.T, method, path, token string, want int) map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, b := rawCall(t, ctx, method, base+path, token)
		var v map[string]any
		if resp.StatusCode != want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(b, &v) != nil {
			t.Fatalf("%s %s: HTTP %d %q %s, want %d with a JSON error", method, path, resp.StatusCode, resp.Header.Get("Content-Type"), b, want)
		}
		if msg, _ := v["error"].(string); msg == "" || len(v) != 1 {
			t.Fatalf("%s %s: body %s is not {\"error\": \"...\"}", method, path, b)
		}
		if want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
			t.Fatalf("%s %s: 405 without Allow", method, path)
		}
		return v
	}
	t.Run("unknown paths", func(t *testing.T) {
		for _, p := range []string{"/nope", "/api/v1/nope", "/api/v2/devices", "/api/v1/devices/x/nothing/3/0", "/api/v1/firmware/x/y", "/ui/nope.js", "/fw/nope"} {
			check(t, "GET", p, testToken, http.StatusNotFound)
		}
	})
	t.Run("wrong methods", func(t *testing.T) {
		for p, methods := range doc.Paths {
			if _, ok := methods["patch"]; !ok {
				check(t, "PATCH", samplePath(p), testToken, http.StatusMethodNotAllowed)
			}
		}
		check(t, "POST", "/api/v1/devices", testToken, http.StatusMethodNotAllowed)
	})
	t.Run("missing token", func(t *testing.T) {
		for p, methods := range doc.Paths {
			for m, op := range methods {
				if len(op.Security) > 0 {
					v := check(t, strings.ToUpper(m), samplePath(p), "", http.StatusUnauthorized)
					if !strings.Contains(v["error"].(string), "bearer token") {
						t.Fatalf("%s %s: %v", m, p, v)
					}
				}
			}
		}
	})
	t.Run("the HTTP guard's refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   int // bytes
			header int // bytes of one extra header
			want   int
		}{
			{"body too large", 100 << 10, 0, http.StatusRequestEntityTooLarge},
			// over api.limits.max_header_bytes (16 KB), under net/http's own
			// limit (twice that), whose refusal is plain text
			{"headers too large", 0, 20 << 10, http.StatusRequestHeaderFieldsTooLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "PUT", base+"/api/v1/devices/x/data/3/0/1", strings.NewReader(strings.Repeat("x", tc.body)))
				req.Header.Set("Authorization", "Bearer "+testToken)
				if tc.header > 0 {
					req.Header.Set("X-Padding", strings.Repeat("p", tc.header))
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					cancel()
					t.Fatalf("%s: %v", tc.name, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				var v map[string]any
				if resp.StatusCode != tc.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(b, &v) != nil || v["error"] == nil {
					t.Fatalf("%s: HTTP %d %q %s, want %d with a JSON error", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.want)
				}
			})
		}
	})
	t.Run("documented errors use the Error schema", func(t *testing.T) {
		for p, methods := range doc.Paths {
			for m, op := range methods {
				for code, a := range op.Responses {
					if code[0] < '4' {
						continue
					}
					for ct, c := range a.Content {
						if ct == "application/json" && (c.Schema == nil || c.Schema.Ref != "#/components/schemas/Error") {
							t.Errorf("%s %s %s: error answer not #/components/schemas/Error", m, p, code)
						}
					}
				}
			}
		}
	})
	_ = g
}

// TestResponsesMatchSchemas: the answers of main routes validate against
// the schemas openapi.json gives them, and every field name in them is
// snake_case (map keys that are data, such as LwM2M paths, excepted).
func TestResponsesMatchSchemas(t *testing.T) {
	g, api := startGateway(t)
	a := apiClient{t, api}
	waitFleet(t, a, 4)
	doc := loadOpenAPI(t)
	get := func(path string) any {
		t.Helper()
		code, v := a.do("GET", path, "")
		if code != 200 {
			t.Fatalf("GET %s: HTTP %d %v", path, code, v)
		}
		return v
	}
	img := bytes.Repeat([]byte("image"), 100)
	code, up := a.upload("name=a&version=2.0&sha256="+sum(img)+"&size=500", img)
	if err := doc.validate(doc.Paths["/api/v1/firmware"]["post"].Responses[fmt.Sprint(code)].Content["application/json"].Schema, up, "$"); code != 201 || err != nil {
		t.Fatalf("upload: HTTP %d %v: %v", code, up, err)
	}
	for _, tc := range []struct {
		name, path, docPath string
	}{
		{"firmware image", "/firmware/" + up["id"].(string), "/api/v1/firmware/{id}"},
		{"unknown image", "/firmware/0123456789abcdef", "/api/v1/firmware/{id}"},
		{"read", "/devices/light-udp-1/data/3/0", "/api/v1/devices/{ep}/data/{path}"},
		{"bad path", "/devices/light-udp-1/data/3/zero", "/api/v1/devices/{ep}/data/{path}"},
		{"device", "/devices/light-udp-1", "/api/v1/devices/{ep}"},
		{"SMS device", "/devices/light-sms-1", "/api/v1/devices/{ep}"},
		{"unknown device", "/devices/no-such-light", "/api/v1/devices/{ep}"},
		{"SMS statistics", "/sms", "/api/v1/sms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, v := a.do("GET", tc.path, "")
			ans, ok := doc.Paths[tc.docPath]["get"].Responses[fmt.Sprint(code)]
			if !ok || ans.Content["application/json"].Schema == nil {
				t.Fatalf("GET %s: HTTP %d has no schema in openapi.json", tc.path, code)
			}
			if err := doc.validate(ans.Content["application/json"].Schema, v, "$"); err != nil {
				t.Fatalf("GET %s (HTTP %d): %v\n%s", tc.path, code, err, toJSON(v))
			}
		})
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for _, p := range []string{"/devices", "/devices/light-sms-1", "/devices/light-sms-1/sms", "/jobs", "/modems", "/sms", "/sms/quarantine", "/firmware", "/campaigns", "/devices/light-udp-1/values", "/objects", "/objects/3311", "/sms/spend", "/wakeups"} {
		t.Run("snake_case "+p, func(t *testing.T) {
			var walk func(v any, at string)
			walk = func(v any, at string) {
				switch x := v.(type) {
				case map[string]any:
					for k, e := range x {
						data := strings.HasPrefix(k, "/") || strings.HasPrefix(k, "+") || strings.Contains(k, "-") || k[0] >= '0' && k[0] <= '9'
						if !data && !snake.MatchString(k) {
							t.Errorf("GET %s: field %s.%s is not snake_case", p, at, k)
						}
						walk(e, at+"."+k)
					}
				case []any:
					for i, e := range x {
						walk(e, fmt.Sprintf("%s[%d]", at, i))
					}
				}
			}
			walk(get(p), "$")
		})
	}
	_ = g
}

// validate checks v (decoded JSON) against s: types, required and known
// properties (an answer's field the schema does not list is an error
// unless additionalProperties allows it), enums, items.
func (d openAPIDoc) validate(s *schema, v any, at string) error {
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		r, ok := d.Components.Schemas[name]
		if !ok {
			return fmt.Errorf("%s: unknown $ref %s", at, s.Ref)
		}
		return d.validate(r, v, at)
	}
	if v == nil {
		if s.Nullable || s.Type == "" {
			return nil
		}
		return fmt.Errorf("%s: null, want %s", at, s.Type)
	}
	if len(s.Enum) > 0 {
		found := false
		for _, e := range s.Enum {
			found = found || e == v
		}
		if !found {
			return fmt.Errorf("%s: %v not in %v", at, v, s.Enum)
		}
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want object", at, v)
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				return fmt.Errorf("%s: required %q missing", at, r)
			}
		}
		for k, e := range m {
			ps, ok := s.Properties[k]
			if !ok {
				if len(s.Properties) > 0 && string(s.AdditionalProperties) != "true" && len(s.AdditionalProperties) == 0 {
					return fmt.Errorf("%s: field %q is not in the schema", at, k)
				}
				continue
			}
			if err := d.validate(ps, e, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want array", at, v)
		}
		if s.Items != nil {
			for i, e := range l {
				if err := d.validate(s.Items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %T, want string", at, v)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: %v, want integer", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: %T, want number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want boolean", at, v)
		}
	}
	return nil
}

func TestSnakeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"DatagramsSent", "datagrams_sent"},
		{"WAPPushReceived", "wap_push_received"},
		{"HeldForRestart", "held_for_restart"},
		{"DupDropped", "dup_dropped"},
		{"HTTPLimits", "http_limits"},
		{"Peers", "peers"},
		{"Bytes64", "bytes64"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := snakeName(tc.in); got != tc.want {
				t.Fatalf("snakeName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// rawCall sends a request without a body, with the bearer token unless it
// is "", and returns the answer (its body read and closed).
func rawCall(t *testing.T, ctx context.Context, method, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
