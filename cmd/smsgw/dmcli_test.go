package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDMCommands: the CLI's Discover, Write-Attributes, composite, raw
// write, values and objects commands send the API request the OpenAPI
// document describes.
func TestDMCommands(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = r.Method + " " + r.URL.Path + " " + strings.TrimSpace(string(b))
		if typ := r.URL.Query().Get("type"); typ != "" {
			got += " type=" + typ
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"discover", []string{"discover", "l1", "/3/0"}, `GET /api/v1/devices/l1/discover/3/0 `},
		{"attrs", []string{"attrs", "l1", "/3311/0/5851", "pmin=10", "pmax=60", "gt"}, `PUT /api/v1/devices/l1/attributes/3311/0/5851 {"set":{"pmax":60,"pmin":10},"unset":["gt"]}`},
		{"read-composite", []string{"read-composite", "l1", "/3/0/0", "/3311/0"}, `POST /api/v1/devices/l1/composite/read {"paths":["/3/0/0","/3311/0"]}`},
		{"observe-composite", []string{"observe-composite", "l1", "/3311/0/5851"}, `POST /api/v1/devices/l1/composite/observe {"paths":["/3311/0/5851"]}`},
		{"write-composite", []string{"write-composite", "l1", "/3311/0/5851=40", "/31024/10/1=7:Integer"},
			`POST /api/v1/devices/l1/composite/write {"types":{"/31024/10/1":"Integer"},"values":{"/31024/10/1":"7","/3311/0/5851":"40"}}`},
		{"raw write", []string{"write", "l1", "/31024/10/1", "7", "Integer"}, `PUT /api/v1/devices/l1/data/31024/10/1 {"type":"Integer","value":"7"}`},
		{"typed read", []string{"read", "l1", "/31024/10/1", "Unsigned Integer"}, `GET /api/v1/devices/l1/data/31024/10/1  type=Unsigned Integer`},
		{"values", []string{"values", "l1"}, `GET /api/v1/devices/l1/values `},
		{"objects", []string{"objects"}, `GET /api/v1/objects `},
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("t\n"), 0o600)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = ""
			args := append([]string{"-api", srv.URL, "-token-file", tokenFile}, tc.args[1:]...)
			if err := runClient(tc.args[0], args, io.Discard); err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(got) != strings.TrimSpace(tc.want) {
				t.Fatalf("sent %q\nwant %q", got, tc.want)
			}
		})
	}
}
