package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRenderTable(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"scalars in the answer's order", `{"b": 1, "a": "x", "ok": true, "none": null, "empty": ""}`,
			"b:      1\na:      x\nok:     yes\nnone:   -\nempty:  -\n"},
		{"nested object", `{"id": "c1", "counts": {"done": 5, "skipped": 2}}`,
			"id:  c1\ncounts:\n  done:     5\n  skipped:  2\n"},
		{"list of objects, missing cells", `{"rows": [{"a": 1, "b": [1, 2]}, {"a": 2, "c": {"x": 1}}]}`,
			"rows (2):\n  A  B    C\n  1  1,2  -\n  2  -    {\"x\":1}\n"},
		{"empty list", `{"jobs": []}`, "jobs:  (none)\n"},
		{"list of scalars", `["a", "b"]`, "a\nb\n"},
		{"not JSON: as it came", "plain text\n", "plain text\n"},
		{"a campaign's devices are not registered devices", `{"id": "c1", "devices": [{"endpoint": "l1", "state": "done", "attempts": 1, "sms": 3}]}`,
			"id:  c1\ndevices (1):\n  ENDPOINT  STATE  ATTEMPTS  SMS\n  l1        done   1         3\n"},
		{"device columns", `{"devices": [{"endpoint": "l1", "objects": "</1/0>", "transport": "udp", "binding": "U", "queue": false,
			"awake": true, "queued": 0, "security": "nosec", "address": "127.0.0.1:5", "updated": "2026-12-06T12:00:00Z"}]}`,
			"devices (1):\n  ENDPOINT  TRANSPORT  BINDING  QUEUE  AWAKE  QUEUED  SECURITY  ADDRESS      UPDATED\n  l1        udp        U        no     yes    0       nosec     127.0.0.1:5  2026-12-06T12:00:00Z\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := renderTable(&b, []byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

// FuzzRenderTable: any answer renders without panicking, and JSON renders
// the same way twice.
func FuzzRenderTable(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		body, _, _ := strings.Cut(string(b), "--- stderr\n")
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"a": [{"b": {"c": [1, {"d": null}]}}], "e": 1e400}`))
	f.Add([]byte(`[[[[]]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a, b bytes.Buffer
		renderTable(&a, data)
		renderTable(&b, data)
		if a.String() != b.String() {
			t.Fatalf("two renderings differ:\n%s\n%s", a.String(), b.String())
		}
	})
}
