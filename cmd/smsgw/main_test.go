package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

// TestDaemonProof builds the smsgw binary, starts it with no config (free
// ports, temp data dir), waits for the demo fleet and reads /3/0 over the
// HTTP API from a UDP light, a sleeping queue-mode light (queued, woken by
// SMS, answered) and an SMS-only light; then stops it with SIGINT.
func TestDaemonProof(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "smsgw")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const token = "proof-token"
	cmd := exec.CommandContext(ctx, bin, "-data", filepath.Join(dir, "data"), "-api", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-dtls", "127.0.0.1:0",
		"-log-level", "warn")
	cmd.Env = append(os.Environ(), "SMSGW_TOKEN="+token)
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
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", stderr.String())
		}
	}()

	// The banner tells where the API is.
	apiRe := regexp.MustCompile(`HTTP API:\s+(http://\S+)`)
	var api string
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for api == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("daemon exited before printing the API address")
			}
			if m := apiRe.FindStringSubmatch(l); m != nil {
				api = m[1]
			}
		case <-ctx.Done():
			t.Fatal("no API address printed")
		}
	}
	go func() {
		for range lines {
		}
	}()

	// call takes the (sub)test whose t.Fatalf a failed request ends.
	call := func(t *testing.T, method, path string, body string, tok string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, api+path, rd)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}

	// Wait for the fleet: 7 lights registered.
	deadline := time.Now().Add(45 * time.Second)
	for {
		code, v := call(t, "GET", "/devices", "", token)
		if code == 200 && v["count"] == float64(7) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet not registered: %d %v", code, v)
		}
		time.Sleep(200 * time.Millisecond)
	}

	read := func(ep string) (map[string]any, time.Duration) {
		t.Helper()
		start := time.Now()
		code, v := call(t, "GET", "/devices/"+ep+"/data/3/0?wait=40s", "", token)
		el := time.Since(start)
		if code != 200 || v["code"] != "2.05" {
			t.Fatalf("read %s /3/0: HTTP %d %v", ep, code, v)
		}
		vals, _ := v["values"].([]any)
		found := false
		for _, x := range vals {
			m := x.(map[string]any)
			if m["path"] == "/3/0/2" && m["value"] == ep {
				found = true
			}
		}
		if !found {
			t.Fatalf("read %s /3/0: serial number missing in %v", ep, v)
		}
		return v, el
	}
	_, el := read("light-udp-1")
	t.Logf("UDP light /3/0: %v", el)

	// The queue-mode light is asleep once its awake window (8 s in the demo
	// config, 4 s as the server counts it) has passed since it registered.
	for {
		_, d := call(t, "GET", "/devices/light-queue-1", "", token)
		if d["awake"] == false {
			break
		}
		if time.Now().After(deadline.Add(15 * time.Second)) {
			t.Fatalf("queue light never asleep: %v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	v, el := read("light-queue-1")
	job, _ := v["job"].(map[string]any)
	if job == nil || job["state"] != "done" {
		t.Fatalf("sleeping light's read did not go through the queue: %v", v)
	}
	t.Logf("sleeping light /3/0 (queued, SMS wake-up, answered): %v, job %v", el, job["id"])
	_, el = read("light-sms-1")
	t.Logf("SMS-only light /3/0: %v", el)

	// The wake-up was an SMS.
	req, _ := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(api, "/api/v1")+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^smsgw_sms_wakeups_total [1-9]`).Match(metrics) {
		t.Fatalf("no SMS wake-up counted:\n%s", grepLines(metrics, "wakeup"))
	}

	// Bad input gets clear errors.
	// The cases run in order: "write" sets what "read back" reads.
	for _, c := range []struct {
		name                    string
		method, path, body, tok string
		want                    int
	}{
		{"no token", "GET", "/devices", "", "", 401},
		{"wrong token", "GET", "/devices", "", "wrong", 401},
		{"unknown device", "GET", "/devices/no-such-light/data/3/0", "", token, 404},
		{"bad path", "GET", "/devices/light-udp-1/data/3/zero", "", token, 400},
		{"value of the wrong type", "PUT", "/devices/light-udp-1/data/3311/0/5851", `{"value":"bright"}`, token, 400},
		{"write", "PUT", "/devices/light-udp-1/data/3311/0/5851", `{"value":40}`, token, 200},
		{"read back", "GET", "/devices/light-udp-1/data/3311/0/5851", "", token, 200},
		{"unknown instance", "GET", "/devices/light-udp-1/data/3311/7", "", token, 404},
		{"bad job id", "GET", "/jobs/notanumber", "", token, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, v := call(t, c.method, c.path, c.body, c.tok)
			if code != c.want {
				t.Errorf("%s %s: HTTP %d %v, want %d", c.method, c.path, code, v, c.want)
			}
			if code >= 400 && (v["error"] == nil || v["error"] == "") {
				t.Errorf("%s %s: no error message", c.method, c.path)
			}
		})
	}

	// Graceful stop on SIGINT.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("daemon exit after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop within 30 s of SIGINT")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "queue.db")); err != nil {
		t.Fatalf("queue state: %v", err)
	}
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}

func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("api:\n  listen: 127.0.0.1:9000\n"), 0o600)
	os.WriteFile(bad, []byte("api:\n  listen: 127.0.0.1:9000\nlog:\n  level: loud\n  colour: red\n"), 0o600)
	var out, errb bytes.Buffer
	if rc := run([]string{"check-config", good}, &out, &errb); rc != 0 {
		t.Fatalf("good config: rc %d %s", rc, errb.String())
	}
	out.Reset()
	errb.Reset()
	if rc := run([]string{"check-config", bad}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "line 5") {
		t.Fatalf("bad config: rc %d, stderr %q", rc, errb.String())
	}
	if rc := run([]string{"frobnicate"}, &out, &errb); rc != 2 {
		t.Fatalf("unknown command rc %d", rc)
	}
	out.Reset()
	if rc := run([]string{"default-config"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "server_sims") {
		t.Fatalf("default-config: rc %d", rc)
	}
}
