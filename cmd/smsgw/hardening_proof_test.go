package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gwtest"
)

// The proofs of issue 17's operations half, each against the smsgw binary
// on loopback. SMSGW_PROOF_BIN runs them against another build (e.g. one of
// an older commit, to see them fail there); the configurations use only
// options both know where that matters (api.token in the file).

const hardToken = "hardening-proof-token"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// smsgwBinary builds the daemon once for the proofs of this file.
func smsgwBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	if b := os.Getenv("SMSGW_PROOF_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "smsgw-proof-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "smsgw")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// proofConfig is a configuration for the proofs: by default a daemon
// without the simulator (one UDP listener, nothing moving, so that its
// data dir changes only when the test changes it).
type proofConfig struct {
	limits    string // lines under api.limits (new keys: left out for SMSGW_PROOF_BIN)
	simulator bool   // the simulated modems, no lights (brings the SMS state files)
	imageMax  int64  // firmware image bound (for SMSGW_PROOF_BIN: max_bytes, the bound there)
	extra     string // more top-level YAML
}

func (c proofConfig) file(t *testing.T) string {
	t.Helper()
	y := "api:\n  listen: 127.0.0.1:0\n  token: " + hardToken + "\n"
	if c.limits != "" && os.Getenv("SMSGW_PROOF_BIN") == "" {
		y += "  limits:\n" + c.limits
	}
	y += "lwm2m:\n  udp: 127.0.0.1:0\n  dtls: \"\"\nlog:\n  level: warn\n"
	if c.simulator {
		y += "simulator:\n  enabled: true\n  fleet: {udp: 0, queue: 0, sms: 0, dtls: 0}\n"
	} else {
		y += "simulator:\n  enabled: false\n"
	}
	switch {
	case c.imageMax > 0 && os.Getenv("SMSGW_PROOF_BIN") != "":
		y += fmt.Sprintf("firmware:\n  max_bytes: %d\n", c.imageMax)
	case c.imageMax > 0:
		y += fmt.Sprintf("firmware:\n  max_bytes: %d\n  max_image_bytes: %d\n", max(c.imageMax, 1<<30), c.imageMax)
	}
	y += c.extra
	f := filepath.Join(t.TempDir(), "smsgw.yaml")
	if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func quietYAML(t *testing.T, extra string) string { return proofConfig{extra: extra}.file(t) }

// runToEnd runs the binary to its exit and returns the exit code and
// stderr.
func runToEnd(t *testing.T, bin string, within time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("smsgw %v still running after %v; stderr:\n%s", args, within, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// oneLine checks a start-up failure's stderr: one line, no panic.
func oneLine(t *testing.T, stderr, want string) {
	t.Helper()
	s := strings.TrimRight(stderr, "\n")
	if strings.Contains(s, "\n") || strings.Contains(s, "panic") || strings.Contains(s, "goroutine") || !strings.Contains(s, want) {
		t.Fatalf("stderr is not one line with %q:\n%s", want, stderr)
	}
}

// TestProofStartupErrors: a busy port or a bad one ends the daemon with
// exit code 1 and one line naming the option, never a panic.
func TestProofStartupErrors(t *testing.T) {
	bin := smsgwBinary(t)
	tcp, udp := gwtest.BusyPorts(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"API port busy", []string{"-api", tcp}, "smsgw: api.listen " + tcp + ": address already in use"},
		{"UDP port busy", []string{"-udp", udp}, "smsgw: lwm2m.udp " + udp + ": address already in use"},
		{"API port out of range", []string{"-api", "127.0.0.1:99999"}, "api.listen"},
		{"API host unknown", []string{"-api", "no-such-host.invalid:8080"}, "smsgw: api.listen no-such-host.invalid:8080: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-config", quietYAML(t, ""), "-data", t.TempDir()}, tc.args...)
			code, stderr := runToEnd(t, bin, 30*time.Second, args...)
			if code != 1 {
				t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			oneLine(t, stderr, tc.want)
		})
	}
}

// TestProofSecondInstance: a second daemon on a data dir in use refuses at
// once, names the first, and changes nothing in the data dir (the token
// file least of all); the first keeps serving.
func TestProofSecondInstance(t *testing.T) {
	bin := smsgwBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := t.TempDir()
	// The first daemon generates the token file.
	cfg := filepath.Join(t.TempDir(), "smsgw.yaml")
	os.WriteFile(cfg, []byte("api:\n  listen: 127.0.0.1:0\nlwm2m:\n  udp: 127.0.0.1:0\n  dtls: \"\"\nsimulator:\n  enabled: false\nlog:\n  level: warn\n"), 0o600)
	d := startDaemon(t, ctx, bin, "-config", cfg, "-data", data)
	token, err := os.ReadFile(filepath.Join(data, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	before := listDir(t, data)
	start := time.Now()
	code, stderr := runToEnd(t, bin, 30*time.Second, "-config", cfg, "-data", data, "-api", "127.0.0.1:0")
	el := time.Since(start)
	if code != 1 {
		t.Fatalf("second instance: exit code %d; stderr:\n%s", code, stderr)
	}
	oneLine(t, stderr, "is in use by another smsgw (pid "+strconv.Itoa(d.cmd.Process.Pid))
	if el > 5*time.Second {
		t.Fatalf("refused after %v, not at once", el)
	}
	if after := listDir(t, data); after != before {
		t.Fatalf("the second instance changed the data dir:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if now, _ := os.ReadFile(filepath.Join(data, "api-token")); !bytes.Equal(now, token) {
		t.Fatal("the token file changed")
	}
	req, _ := http.NewRequest("GET", d.api+"/devices", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the first daemon after the refusal: %v %v", err, resp)
	}
	resp.Body.Close()
	// The banner printed the token file's path, never the token.
	if strings.Contains(d.stdout.String(), strings.TrimSpace(string(token))) {
		t.Fatal("the token was printed")
	}
	t.Logf("second instance refused in %v: %s", el.Round(time.Millisecond), strings.TrimSpace(stderr))
}

// listDir lists every file under dir with size, mode, mtime and a hash.
func listDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %s", p, fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

// TestProofDamagedStateFiles: a truncated and a zero-length state file of
// a data dir that had state stop the daemon with one line naming the file
// and what to do; nothing is replaced; state check lists it, state reset
// sets it aside, and the next start works.
func TestProofDamagedStateFiles(t *testing.T) {
	bin := smsgwBinary(t)
	cfg := quietYAML(t, "")
	for _, tc := range []struct {
		name, file string
		damage     func(path string) error
		want       string
	}{
		{"truncated registrations.db", "registrations.db", func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()/2)
		}, "is truncated"},
		{"zero-length queue.db", "queue.db", func(p string) error { return os.Truncate(p, 0) }, "is empty (0 bytes)"},
		{"zero-length sms/outbox.db", "sms/outbox.db", func(p string) error { return os.Truncate(p, 0) }, "is empty (0 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			// A first run leaves the state files (the simulator brings the SMS ones).
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			d := startDaemon(t, ctx, bin, "-config", proofConfig{simulator: true}.file(t), "-data", data)
			d.stop(t)
			path := filepath.Join(data, tc.file)
			if err := tc.damage(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			code, stderr := runToEnd(t, bin, 30*time.Second, "-config", cfg, "-data", data)
			if code != 1 {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			oneLine(t, stderr, "smsgw: state file "+path+" "+tc.want)
			oneLine(t, stderr, "smsgw state reset -data "+data+" "+tc.file)
			if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
				t.Fatal("the damaged file was changed")
			}
			var out, errb bytes.Buffer
			if rc := run([]string{"state", "check", "-data", data}, &out, &errb); rc != 1 || !strings.Contains(out.String(), path+" "+tc.want) {
				t.Fatalf("state check: rc %d\n%s%s", rc, out.String(), errb.String())
			}
			out.Reset()
			if rc := run([]string{"state", "reset", "-data", data, tc.file}, &out, &errb); rc != 0 {
				t.Fatalf("state reset: rc %d %s", rc, errb.String())
			}
			d2 := startDaemon(t, ctx, bin, "-config", cfg, "-data", data)
			d2.stop(t)
			t.Logf("%s: %s", tc.name, strings.TrimSpace(stderr))
		})
	}
}

// stop sends SIGINT and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop within 30 s of SIGINT")
	}
}

// procStatus reads a field (kB) of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestProofSlowloris: 1000 connections from one address each send the
// headers of a request and a little of its body, then stall. The daemon
// holds at most api.limits.max_conns_per_client of them (the others get a
// JSON 429 at once), closes those within body_timeout, and its descriptors
// and memory stay bounded.
func TestProofSlowloris(t *testing.T) {
	bin := smsgwBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const perClient, stalls = 16, 1000
	cfg := proofConfig{limits: fmt.Sprintf("    max_conns_per_client: %d\n    body_timeout: 2s\n    header_timeout: 2s\n", perClient)}.file(t)
	d := startDaemon(t, ctx, bin, "-config", cfg, "-data", t.TempDir())
	pid := d.cmd.Process.Pid
	addr := strings.TrimPrefix(strings.TrimSuffix(d.api, "/api/v1"), "http://")
	fd0, rss0 := openFDs(t, pid), procStatus(t, pid, "VmRSS")
	head := "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + hardToken + "\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"image\":"

	conns := make([]net.Conn, 0, stalls)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < stalls; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, head) // may fail on a refused connection: fine
	}
	// While they stall: descriptors and memory.
	time.Sleep(500 * time.Millisecond)
	fd1, rss1 := openFDs(t, pid), procStatus(t, pid, "VmRSS")
	t.Logf("daemon with %d stalled requests: %d fds (idle %d), RSS %d MB (idle %d MB)", stalls, fd1, fd0, rss1>>20, rss0>>20)
	// Bound: the connections served, and the refused ones still being
	// answered (at most 64 at once, a second each).
	if fd1 > fd0+perClient+64+8 {
		t.Errorf("daemon holds %d fds with %d stalled requests (idle: %d, per-client bound %d)", fd1, stalls, fd0, perClient)
	}
	if rss1 > rss0+32<<20 {
		t.Errorf("RSS grew from %d to %d MB", rss0>>20, rss1>>20)
	}
	// Every connection ends with an answer from the daemon: 429 at once,
	// or 408 once body_timeout has passed.
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			code := 0
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				b, _ := io.ReadAll(resp.Body)
				var e struct{ Error string }
				if json.Unmarshal(b, &e) == nil && e.Error != "" {
					code = resp.StatusCode
				}
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("answers after %v: %v (status: count; 0 = no JSON answer)", time.Since(start).Round(time.Millisecond), codes)
	if codes[http.StatusTooManyRequests] < stalls-perClient-4 || codes[http.StatusRequestTimeout] < perClient-4 || codes[0] > 8 {
		t.Errorf("answers %v: want about %d × 429 and %d × 408", codes, stalls-perClient, perClient)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		fd2 := openFDs(t, pid)
		if fd2 <= fd0+4 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after the stalled requests ended the daemon holds %d fds (idle %d)", fd2, fd0)
			break
		}
	}
	if m := d.metrics(); !strings.Contains(m, `smsgw_api_refused_total{reason="client_conns"} `) ||
		!strings.Contains(m, `smsgw_api_refused_total{reason="body_timeout"} `) {
		t.Errorf("refusals not counted: %s", grepLines([]byte(m), "refused"))
	}
}

// patternReader yields size bytes of a fixed pattern, generated as read
// (nothing stored).
type patternReader struct{ n, size int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n >= p.size {
		return 0, io.EOF
	}
	if rem := p.size - p.n; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		x := p.n + int64(i)
		b[i] = byte(x>>12) ^ byte(x)
	}
	p.n += int64(len(b))
	return len(b), nil
}

// TestProofUploadMemory: a 2 GB firmware image uploaded chunked (its size
// unknown to the daemon) is stored with the daemon's peak RSS under 64 MB;
// an upload over firmware.max_image_bytes gets 413 while it streams and
// leaves nothing. M2M_UPLOAD_PROOF_MB changes the size (default 2048; 512
// when the temporary directory has less than three times that free, e.g.
// a small tmpfs: the daemon stores the image there).
func TestProofUploadMemory(t *testing.T) {
	bin := smsgwBinary(t)
	size := int64(2048) << 20
	if s := os.Getenv("M2M_UPLOAD_PROOF_MB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			t.Fatalf("M2M_UPLOAD_PROOF_MB=%q", s)
		}
		size = n << 20
	} else if free := freeBytes(os.TempDir()); free < 3*size {
		t.Logf("%s has %d MB free: uploading 512 MB instead of 2048 (M2M_UPLOAD_PROOF_MB sets it)", os.TempDir(), free>>20)
		size = 512 << 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h := sha256.New()
	io.Copy(h, &patternReader{size: size})
	sum := hex.EncodeToString(h.Sum(nil))
	upload := func(d *daemon, version string, n int64) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "POST", d.api+"/firmware?version="+version+"&sha256="+sum, &patternReader{size: n})
		req.ContentLength = -1 // chunked: the daemon cannot know the size
		req.Header.Set("Authorization", "Bearer "+hardToken)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	limit := size + 1<<30
	data := t.TempDir()
	d := startDaemon(t, ctx, bin, "-config", proofConfig{imageMax: limit}.file(t), "-data", data)
	start := time.Now()
	code, body := upload(d, "big", size)
	el := time.Since(start)
	hwm := procStatus(t, d.cmd.Process.Pid, "VmHWM")
	t.Logf("%d MB chunked upload: HTTP %d in %v (%.0f MB/s), daemon peak RSS %d MB", size>>20, code, el.Round(time.Millisecond), float64(size>>20)/el.Seconds(), hwm>>20)
	if code != http.StatusCreated || !strings.Contains(body, fmt.Sprintf(`"size": %d`, size)) {
		t.Fatalf("upload: %d %s", code, body)
	}
	if hwm > 64<<20 {
		t.Errorf("daemon peak RSS %d MB, want under 64 MB", hwm>>20)
	}
	var info struct{ ID string }
	json.Unmarshal([]byte(body), &info)
	if st, err := os.Stat(filepath.Join(data, "firmware", info.ID+".bin")); err != nil || st.Size() != size {
		t.Fatalf("stored image: %v %v", st, err)
	}
	d.call("DELETE", "/firmware/"+info.ID, "") // give the disk back
	d.kill()

	// Over the bound: refused while streaming, nothing left.
	data = t.TempDir()
	d = startDaemon(t, ctx, bin, "-config", proofConfig{imageMax: 64 << 20}.file(t), "-data", data)
	code, body = upload(d, "too-big", size)
	hwm = procStatus(t, d.cmd.Process.Pid, "VmHWM")
	t.Logf("over max_image_bytes: HTTP %d %s, peak RSS %d MB", code, strings.TrimSpace(body), hwm>>20)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the bound: %d %s", code, body)
	}
	if left, _ := filepath.Glob(filepath.Join(data, "firmware", "*")); len(left) != 0 {
		t.Fatalf("left in the store: %v", left)
	}
	if hwm > 64<<20 {
		t.Errorf("daemon peak RSS %d MB, want under 64 MB", hwm>>20)
	}
}

// freeBytes is the space left for an unprivileged user under dir.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

// TestProofPagination: with 5000 registered devices, /api/v1/devices
// answers a page at a time: a walk sees every device once, in order, and
// no answer passes 300 KB (today's answer had them all: 2.2 MB here).
func TestProofPagination(t *testing.T) {
	bin := smsgwBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 5000
	data := t.TempDir()
	if err := gwtest.FillRegistrations(data, n, 300); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, ctx, bin, "-config", quietYAML(t, ""), "-data", data)
	seen, pages, biggest, prev, cursor := 0, 0, 0, "", ""
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", d.api+"/devices?limit=1000&cursor="+cursor, nil)
		req.Header.Set("Authorization", "Bearer "+hardToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		biggest = max(biggest, len(b))
		if resp.StatusCode != 200 || len(b) > 300<<10 {
			t.Fatalf("page %d: HTTP %d, %d bytes", pages, resp.StatusCode, len(b))
		}
		var v struct {
			Devices []struct{ Endpoint string }
			Total   int
			Next    string `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.Total != n {
			t.Fatalf("page %d: total %d, %v", pages, v.Total, err)
		}
		for _, dv := range v.Devices {
			if dv.Endpoint <= prev {
				t.Fatalf("page %d: %s after %s", pages, dv.Endpoint, prev)
			}
			prev = dv.Endpoint
			seen++
		}
		pages++
		if v.Next == "" {
			break
		}
		cursor = v.Next
	}
	if seen != n {
		t.Fatalf("walked %d devices in %d pages, want %d", seen, pages, n)
	}
	t.Logf("%d devices in %d pages of limit 1000, largest answer %d KB", n, pages, biggest>>10)
}
