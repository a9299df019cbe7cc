package docs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// block is one fenced code block of a Markdown page.
type block struct {
	lang string
	line int // line of the opening fence
	text string
}

var fence = regexp.MustCompile("^```\\s*([A-Za-z0-9_-]*)\\s*$")

// codeBlocks returns the fenced code blocks of a Markdown document.
func codeBlocks(md []byte) ([]block, error) {
	var out []block
	var cur *block
	var body strings.Builder
	for i, l := range strings.Split(string(md), "\n") {
		m := fence.FindStringSubmatch(l)
		switch {
		case cur == nil && m != nil:
			cur = &block{lang: m[1], line: i + 1}
			body.Reset()
		case cur != nil && strings.TrimSpace(l) == "```":
			cur.text = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(l + "\n")
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("code block at line %d is not closed", cur.line)
	}
	return out, nil
}

func TestCodeBlocks(t *testing.T) {
	md := "text\n```sh\necho a\n```\n\n```text\nout\n```\n```\nplain\n```\n"
	got, err := codeBlocks([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	want := []block{{"sh", 2, "echo a\n"}, {"text", 6, "out\n"}, {"", 9, "plain\n"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := codeBlocks([]byte("```sh\necho\n")); err == nil {
		t.Error("an unclosed block was accepted")
	}
}

// TestTutorial runs every sh block of tutorial.md, in order, against a
// freshly started smsgw with its embedded default (the simulator and the
// demo fleet) on loopback ports and a temporary data dir, and fails on the
// first block that exits non-zero. Blocks share a working directory and the
// variables they set (each block runs in its own bash with set -euo
// pipefail, started from the variables the blocks before it exported).
func TestTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	for _, tool := range []string{"bash", "curl", "jq", "sha256sum", "od"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (.ci/run installs it): %v", tool, err)
		}
	}
	md, err := os.ReadFile("tutorial.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := codeBlocks(md)
	if err != nil {
		t.Fatal(err)
	}
	var sh []block
	for _, b := range blocks {
		if b.lang == "sh" {
			sh = append(sh, b)
		}
	}
	if len(sh) < 10 {
		t.Fatalf("tutorial.md has %d sh blocks; expected the whole tour", len(sh))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "smsgw"), "../cmd/smsgw").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	// The default data dir is $XDG_STATE_HOME/smsgw for the daemon and for
	// the CLI alike, so the tutorial's commands find the token as a user's do.
	env := append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(dir, "state"), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	env = withoutVars(env, "SMSGW_API", "SMSGW_TOKEN")

	api, stop := startDaemon(t, filepath.Join(bin, "smsgw"), env)
	defer stop()
	env = append(env, "SMSGW_API="+api)

	envFile := filepath.Join(work, ".tutorial-env")
	for i, b := range sh {
		script := "set -euo pipefail\n" +
			"[ -f " + shellQuote(envFile) + " ] && . " + shellQuote(envFile) + "\n" +
			"set -a\n" + b.text + "\nset +a\nexport -p > " + shellQuote(envFile) + "\n"
		bctx, bcancel := context.WithTimeout(ctx, 3*time.Minute)
		cmd := exec.CommandContext(bctx, "bash", "-c", script)
		cmd.Dir, cmd.Env = work, env
		cmd.WaitDelay = 5 * time.Second
		start := time.Now()
		out, err := cmd.CombinedOutput()
		bcancel()
		if err != nil {
			t.Fatalf("tutorial.md block %d (line %d) failed after %v: %v\n--- block\n%s--- output\n%s", i+1, b.line,
				time.Since(start).Round(time.Millisecond), err, b.text, out)
		}
		t.Logf("block %d (line %d) ok in %v:\n%s", i+1, b.line, time.Since(start).Round(time.Millisecond), indent(out))
	}
	checkAlertRules(t, api)
}

// alertMetric is a metric name with optional label matchers in a PromQL
// expression: smsgw_modem_state{what="ready"}.
var alertMetric = regexp.MustCompile(`\b(smsgw_[a-z0-9_]+)(\{([^}]*)\})?`)

// checkAlertRules checks that every smsgw metric, and every label value
// matched, in the alert rules of operations.md is exported by the running
// daemon (after the tutorial, which exercised the fleet, firmware and SMS).
func checkAlertRules(t *testing.T, api string) {
	t.Helper()
	md, err := os.ReadFile("operations.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := codeBlocks(md)
	if err != nil {
		t.Fatal(err)
	}
	var rules string
	for _, b := range blocks {
		if b.lang == "yaml" && strings.Contains(b.text, "groups:") && strings.Contains(b.text, "expr:") {
			rules = b.text
		}
	}
	if rules == "" {
		t.Fatal("operations.md has no alert rules block (yaml with groups: and expr:)")
	}
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", resp.Status, err)
	}
	var samples []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "smsgw_") {
			samples = append(samples, l)
		}
	}
	checked := 0
	for _, l := range strings.Split(rules, "\n") {
		_, expr, ok := strings.Cut(l, "expr:")
		if !ok {
			continue
		}
		for _, m := range alertMetric.FindAllStringSubmatch(expr, -1) {
			name, matchers := m[1], strings.Split(m[3], ",")
			found := false
			for _, s := range samples {
				if !strings.HasPrefix(s, name+"{") && !strings.HasPrefix(s, name+" ") {
					continue
				}
				all := true
				for _, mt := range matchers {
					if mt = strings.TrimSpace(mt); mt != "" && !strings.Contains(s, mt) {
						all = false
					}
				}
				if all {
					found = true
					break
				}
			}
			checked++
			if !found {
				t.Errorf("operations.md alert rule uses %s, which the daemon does not export:\n%s", m[0], l)
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d metrics found in the alert rules", checked)
	}
}

// indent indents command output for the test log.
func indent(b []byte) string {
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return ""
	}
	return "\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

// withoutVars drops the named variables from env.
func withoutVars(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// startDaemon starts smsgw with no configuration (the embedded default) on
// free loopback ports, checks its start-up banner and returns the API's
// base URL and a function that stops it (SIGINT, then kill).
func startDaemon(t *testing.T, bin string, env []string) (string, func()) {
	t.Helper()
	cmd := exec.Command(bin, "-api", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-dtls", "127.0.0.1:0", "-log-level", "warn")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads after the banner
			}
		}
		close(lines)
		done <- cmd.Wait()
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("smsgw stderr:\n%s", stderr.String())
		}
	}
	apiRe := regexp.MustCompile(`HTTP API:\s+(http://\S+?)/api/v1`)
	uiRe := regexp.MustCompile(`Web UI:\s+(http://\S+/ui/)`)
	var api, ui string
	var banner strings.Builder
	deadline := time.After(time.Minute)
	for api == "" || ui == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				stop()
				t.Fatalf("smsgw exited before its banner was complete:\n%s", banner.String())
			}
			banner.WriteString(l + "\n")
			if m := apiRe.FindStringSubmatch(l); m != nil {
				api = m[1]
			}
			if m := uiRe.FindStringSubmatch(l); m != nil {
				ui = m[1]
			}
		case <-deadline:
			stop()
			t.Fatalf("the start-up banner does not name the HTTP API and the web UI within a minute:\n%s", banner.String())
		}
	}
	// The web UI the banner names is served.
	resp, err := http.Get(ui)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		stop()
		t.Fatalf("GET %s: %s", ui, resp.Status)
	}
	return api, stop
}
