package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestHelp: smsgw --help lists every command; each command's --help (and
// "smsgw help CMD") prints its usage and flags to stdout and exits 0.
func TestHelp(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"--help", []string{"--help"}},
		{"-h", []string{"-h"}},
		{"help", []string{"help"}},
		{"flag before --help", []string{"-api", "http://x", "--help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			var out, errb bytes.Buffer
			if rc := run(args, &out, &errb); rc != exitOK {
				t.Fatalf("%v: exit %d", args, rc)
			}
			for _, c := range commands {
				if c.group != "" && !strings.Contains(out.String(), "  "+c.name+" ") {
					t.Fatalf("%v does not list %q:\n%s", args, c.name, out.String())
				}
			}
			if !strings.Contains(out.String(), "Exit codes:") || !strings.Contains(out.String(), "-o FORMAT") {
				t.Fatalf("%v: no exit codes or -o:\n%s", args, out.String())
			}
		})
	}
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			args := append(strings.Fields(c.name), "--help")
			var out, errb bytes.Buffer
			if rc := run(args, &out, &errb); rc != exitOK || errb.Len() > 0 {
				t.Fatalf("exit %d, stderr %q", rc, errb.String())
			}
			if !strings.HasPrefix(out.String(), "Usage: smsgw "+c.name) || !strings.Contains(out.String(), "Exit codes:") {
				t.Fatalf("help:\n%s", out.String())
			}
			if c.client && (!strings.Contains(out.String(), "-api") || !strings.Contains(out.String(), "-o FORMAT")) {
				t.Fatalf("client help without the global flags:\n%s", out.String())
			}
			var viaHelp bytes.Buffer
			run(append([]string{"help"}, strings.Fields(c.name)...), &viaHelp, &errb)
			if viaHelp.String() != out.String() {
				t.Fatalf("smsgw help %s differs from --help", c.name)
			}
		})
	}
	t.Run("API URL without a command", func(t *testing.T) {
		var out, errb bytes.Buffer
		if rc := run([]string{"-api", "http://gw:8080"}, &out, &errb); rc != exitUsage || !strings.Contains(errb.String(), "smsgw -api http://gw:8080 devices") {
			t.Fatalf("exit %d:\n%s", rc, errb.String())
		}
	})
	t.Run("group without subcommand", func(t *testing.T) {
		var out, errb bytes.Buffer
		if rc := run([]string{"fw"}, &out, &errb); rc != exitUsage || !strings.Contains(errb.String(), "smsgw fw upload") {
			t.Fatalf("exit %d:\n%s", rc, errb.String())
		}
	})
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name string
		args []string
		cmd  string
		rest []string
		help bool
	}{
		{"nothing: the daemon", nil, "run", nil, false},
		{"daemon flags", []string{"-config", "c.yaml", "-api", "127.0.0.1:0"}, "run", []string{"-config", "c.yaml", "-api", "127.0.0.1:0"}, false},
		{"flags before a command", []string{"-api", "http://h:1", "-o", "json", "devices"}, "devices", []string{"-api", "http://h:1", "-o", "json"}, false},
		{"flag=value before", []string{"-api=http://h:1", "read", "l", "/3/0"}, "read", []string{"-api=http://h:1", "l", "/3/0"}, false},
		{"flags after", []string{"devices", "-api", "http://h:1"}, "devices", []string{"-api", "http://h:1"}, false},
		{"group: after the subcommand", []string{"-api", "http://h:1", "fw", "list"}, "fw", []string{"list", "-api", "http://h:1"}, false},
		{"bool flag before", []string{"-sms", "fw", "update", "l", "img"}, "fw", []string{"update", "-sms", "l", "img"}, false},
		{"flag value that is a command name", []string{"-token-file", "devices", "jobs"}, "jobs", []string{"-token-file", "devices"}, false},
		{"help before a command", []string{"-api", "x", "--help"}, "", nil, true},
		{"unknown command", []string{"-api", "x", "frobnicate"}, "frobnicate", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, rest, help := splitCommand(tc.args)
			if cmd != tc.cmd || help != tc.help || len(rest)+len(tc.rest) > 0 && !reflect.DeepEqual(rest, tc.rest) {
				t.Fatalf("got %q %q %v, want %q %q %v", cmd, rest, help, tc.cmd, tc.rest, tc.help)
			}
		})
	}
}

func TestTakeOutput(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		format string
		rest   []string
		bad    bool
	}{
		{"default", []string{"l", "/3/0"}, "table", []string{"l", "/3/0"}, false},
		{"-o json", []string{"-o", "json", "l"}, "json", []string{"l"}, false},
		{"-o=json after", []string{"l", "-o=json"}, "json", []string{"l"}, false},
		{"--output", []string{"--output", "table"}, "table", nil, false},
		{"after --", []string{"l", "--", "-o", "json"}, "table", []string{"l", "--", "-o", "json"}, false},
		{"unknown format", []string{"-o", "yaml"}, "", nil, true},
		{"no format", []string{"-o"}, "", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, rest, err := takeOutput(tc.args)
			if tc.bad {
				if exitCode(err) != exitUsage {
					t.Fatalf("err %v, want a usage error", err)
				}
				return
			}
			if err != nil || f != tc.format || len(rest)+len(tc.rest) > 0 && !reflect.DeepEqual(rest, tc.rest) {
				t.Fatalf("got %q %q %v", f, rest, err)
			}
		})
	}
}

// TestExitCodes: each kind of answer maps to its documented exit code,
// whatever the output format.
func TestExitCodes(t *testing.T) {
	tok := tokenFile(t, "t")
	status := 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status >= 400 {
			w.Write([]byte(`{"error": "refused for the test"}`))
			return
		}
		w.Write([]byte(`{"endpoint": "l", "job": {"id": 7, "state": "queued"}}`))
	}))
	defer srv.Close()
	tests := []struct {
		name   string
		status int
		args   []string
		want   int
	}{
		{"ok", 200, []string{"read", "l", "/3/0"}, exitOK},
		{"queued for a sleeping device", 202, []string{"read", "l", "/3/0"}, exitPending},
		{"device timed out", 504, []string{"read", "l", "/3/0"}, exitPending},
		{"accepted firmware job", 202, []string{"fw", "update", "l", "img"}, exitOK},
		{"not found", 404, []string{"read", "l", "/3/0"}, exitFailed},
		{"server error", 500, []string{"devices"}, exitFailed},
		{"conflict", 409, []string{"campaign", "pause", "c1"}, exitFailed},
		{"token refused", 401, []string{"devices"}, exitAuth},
		{"forbidden", 403, []string{"fw", "list"}, exitAuth},
		{"extra argument", 200, []string{"devices", "light-1"}, exitUsage},
		{"missing argument", 200, []string{"fw", "show"}, exitUsage},
	}
	for _, tc := range tests {
		for _, format := range []string{"table", "json"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				status = tc.status
				var out, errb bytes.Buffer
				args := append(append([]string{}, tc.args...), "-api", srv.URL, "-token-file", tok, "-o", format)
				if rc := run(args, &out, &errb); rc != tc.want {
					t.Fatalf("exit %d, want %d; stderr %q", rc, tc.want, errb.String())
				}
				if tc.status >= 400 && tc.want != exitUsage && !strings.Contains(errb.String(), "refused for the test") {
					t.Fatalf("the API's error is not on stderr: %q", errb.String())
				}
				if format == "json" && tc.status >= 400 && tc.want != exitUsage && !strings.Contains(out.String(), `"error"`) {
					t.Fatalf("-o json: the error answer is not on stdout: %q", out.String())
				}
			})
		}
	}
	t.Run("no token", func(t *testing.T) {
		t.Setenv("SMSGW_TOKEN", "")
		var out, errb bytes.Buffer
		if rc := run([]string{"devices", "-api", srv.URL, "-data", t.TempDir()}, &out, &errb); rc != exitAuth {
			t.Fatalf("exit %d, want %d: %s", rc, exitAuth, errb.String())
		}
	})
}

// TestDaemonRefusesBadConfig: the daemon runs check-config's checks at
// start and refuses with the same words, before opening anything; a flag
// over the file is checked the same way.
func TestDaemonRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("api:\n  listen: 127.0.0.1:99999\nsms:\n  dialy_budget: 3\n"), 0o600)
	var checkOut, checkErr bytes.Buffer
	if rc := run([]string{"check-config", bad}, &checkOut, &checkErr); rc != exitFailed {
		t.Fatalf("check-config: exit %d", rc)
	}
	problems := checkErr.String()[strings.Index(checkErr.String(), bad):]
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"config file", []string{"-config", bad, "-data", filepath.Join(dir, "d1")}, problems},
		{"flag over the file", []string{"-api", "127.0.0.1:99999", "-data", filepath.Join(dir, "d2")},
			"`api.listen` must be host:port with a port in 1..65535, or 0 for any free port, got \"127.0.0.1:99999\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if rc := run(tc.args, &out, &errb); rc != exitFailed || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q, want %q", rc, errb.String(), tc.want)
			}
			if _, err := os.Stat(tc.args[len(tc.args)-1]); !os.IsNotExist(err) {
				t.Fatalf("the refused daemon created its data dir: %v", err)
			}
		})
	}
}

// TestEveryClientCommandRuns: each API client command of the help's table
// sends a request (none is listed without being handled, none is handled
// without being listed: run dispatches by the table).
func TestEveryClientCommandRuns(t *testing.T) {
	tok := tokenFile(t, "t")
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path)
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	samples := map[string][]string{
		"read": {"l", "/3/0"}, "write": {"l", "/3/0/1", "x"}, "exec": {"l", "/3/0/4"}, "discover": {"l", "/3"},
		"attrs": {"l", "/3/0", "pmin=1"}, "read-composite": {"l", "/3/0"}, "write-composite": {"l", "/3/0/1=x"},
		"observe-composite": {"l", "/3/0"}, "values": {"l"}, "fw upload": {"cli_test.go", "-version", "1"},
		"fw show": {"i"}, "fw delete": {"i"}, "fw update": {"l", "i"}, "fw job": {"1"}, "campaign create": {"-image", "i", "-prefix", "l"},
		"campaign status": {"c"}, "campaign pause": {"c"}, "campaign resume": {"c"}, "campaign cancel": {"c"},
	}
	for _, c := range commands {
		if !c.client {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			got = nil
			args := append(append(strings.Fields(c.name), samples[c.name]...), "-api", srv.URL, "-token-file", tok)
			var out, errb bytes.Buffer
			if rc := run(args, &out, &errb); rc != exitOK || len(got) != 1 {
				t.Fatalf("exit %d, requests %q, stderr %q (a new command needs its sample arguments here)", rc, got, errb.String())
			}
		})
	}
}

// tokenFile writes token to a file for -token-file; $SMSGW_TOKEN, which
// would take precedence, is unset for the test.
func tokenFile(t *testing.T, token string) string {
	t.Helper()
	t.Setenv("SMSGW_TOKEN", "")
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
