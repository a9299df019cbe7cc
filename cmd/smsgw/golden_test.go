package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
)

// -update (or SMSGW_UPDATE_GOLDEN=1) rewrites the files under
// testdata/golden from the output of this run.
var updateGolden = flag.Bool("update", false, "rewrite testdata/golden from this run's output")

const goldenToken = "golden-token"

// startGoldenGateway runs a gateway in this process with two UDP demo
// lights and returns the URL of a proxy in front of its API that makes the
// answers repeatable: times, ports and counters that change from run to run
// are replaced by fixed values before the CLI reads them.
func startGoldenGateway(t *testing.T) string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", goldenToken
	cfg.Simulator.Fleet = config.Fleet{UDP: 2, Awake: 3 * time.Second}
	cfg.Simulator.Latency, cfg.Simulator.SendTime = 10*time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	g, err := gateway.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		if err := g.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	target, _ := url.Parse(strings.TrimSuffix(g.Info().API, "/api/v1"))
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		b = normalizeAnswer(b)
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	// Both lights registered.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var out, errb bytes.Buffer
		if run([]string{"devices", "-api", srv.URL, "-token-file", tokenFile(t, goldenToken), "-o", "json"}, &out, &errb) == 0 &&
			strings.Contains(out.String(), `"count": 2`) {
			return srv.URL
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet not registered: %s %s", out.String(), errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var answerNormalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "2026-12-06T12:00:00Z"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:40000"},
}

func normalizeAnswer(b []byte) []byte {
	for _, n := range answerNormalizers {
		b = n.re.ReplaceAll(b, []byte(n.with))
	}
	return b
}

// TestGolden runs each client command against a gateway (table and JSON
// output) and compares stdout, stderr and the exit code with
// testdata/golden/NAME.{table,json}.
func TestGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a gateway")
	}
	api := startGoldenGateway(t)
	image := filepath.Join(t.TempDir(), "light-2.0.bin")
	if err := os.WriteFile(image, bytes.Repeat([]byte("firmware 2.0 for the demo light\n"), 64), 0o600); err != nil {
		t.Fatal(err)
	}
	good, wrong := tokenFile(t, goldenToken), tokenFile(t, "wrong")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"devices", []string{"devices"}, exitOK},
		{"read", []string{"read", "light-udp-1", "/3/0"}, exitOK},
		{"read-resource", []string{"read", "light-udp-1", "/3311/0/5851"}, exitOK},
		{"values", []string{"values", "light-udp-1"}, exitOK},
		{"write", []string{"write", "light-udp-1", "/3311/0/5851", "40"}, exitOK},
		{"discover", []string{"discover", "light-udp-1", "/3311/0"}, exitOK},
		{"attrs", []string{"attrs", "light-udp-1", "/3311/0/5851", "pmin=10", "pmax=60"}, exitOK},
		{"read-composite", []string{"read-composite", "light-udp-1", "/3/0/0", "/3311/0/5850"}, exitOK},
		{"jobs", []string{"jobs"}, exitOK},
		{"cluster-not-a-cluster", []string{"cluster"}, exitFailed},
		{"fw-upload", []string{"fw", "upload", image, "-version", "2.0"}, exitOK},
		{"fw-list", []string{"fw", "list"}, exitOK},
		{"fw-dry-run", []string{"fw", "update", "light-udp-2", "1747eccc4c88272f", "-dry-run"}, exitOK},
		{"campaign-list", []string{"campaign", "list"}, exitOK},
		{"flags-after-arguments", []string{"read", "light-udp-1", "/3311/0/5850", "%flags"}, exitOK},
		{"unknown-device", []string{"read", "no-such-light", "/3/0"}, exitFailed},
		{"bad-path", []string{"read", "light-udp-1", "/3/zero"}, exitFailed},
		{"unknown-campaign", []string{"campaign", "status", "nope"}, exitFailed},
		{"missing-argument", []string{"read", "light-udp-1"}, exitUsage},
		{"unknown-flag", []string{"devices", "-colour"}, exitUsage},
		{"unknown-command", []string{"frobnicate"}, exitUsage},
		{"bad-output", []string{"devices", "-o", "yaml"}, exitUsage},
		{"unreachable", []string{"devices", "-api", "http://127.0.0.1:1"}, exitUnreachable},
		{"wrong-token", []string{"devices", "-token-file", "%wrong"}, exitAuth},
	}
	for _, tc := range tests {
		for _, format := range []string{"table", "json"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				// The common flags go first, before the command name (a
				// case's own flags after it override them), or where the
				// case has "%flags".
				common := []string{"-o", format, "-api", api, "-token-file", good}
				args := append([]string{}, common...)
				for _, a := range tc.args {
					if a == "%flags" {
						args = nil
					}
				}
				for _, a := range tc.args {
					if a == "%flags" {
						args = append(args, common...)
						continue
					}
					if a == "%wrong" {
						a = wrong
					}
					args = append(args, a)
				}
				checkGolden(t, tc.name+"."+format, args, tc.code)
			})
		}
	}
}

// checkGolden runs smsgw with args and compares its stdout, stderr and exit
// code with testdata/golden/name (rewritten first under -update).
func checkGolden(t *testing.T, name string, args []string, wantCode int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	got := out.String() + "--- stderr\n" + errb.String() + "--- exit " + strconv.Itoa(code) + "\n"
	file := filepath.Join("testdata", "golden", name)
	if *updateGolden || os.Getenv("SMSGW_UPDATE_GOLDEN") == "1" {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code != wantCode {
		t.Errorf("exit %d, want %d\n%s", code, wantCode, got)
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (run with -update to accept it):\n--- got\n%s--- want\n%s", file, got, want)
	}
}

// TestGoldenLocal: the commands that need no daemon: the help texts and
// check-config's report.
func TestGoldenLocal(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/var/lib") // the default data dir the help shows
	t.Setenv("SMSGW_API", "")
	t.Setenv("SMSGW_TOKEN", "")
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"--help"}, exitOK},
		{"help-devices", []string{"devices", "--help"}, exitOK},
		{"help-fw", []string{"fw", "--help"}, exitOK},
		{"help-fw-update", []string{"fw", "update", "--help"}, exitOK},
		{"help-run", []string{"run", "--help"}, exitOK},
		{"check-config-bad", []string{"check-config", filepath.Join("testdata", "check-config-bad.yaml")}, exitFailed},
		{"check-config-good", []string{"check-config", filepath.Join("testdata", "check-config-good.yaml")}, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) { checkGolden(t, tc.name, tc.args, tc.code) })
	}
}
