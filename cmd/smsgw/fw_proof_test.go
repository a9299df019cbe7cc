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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// daemon is a running smsgw binary in a test.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	api    string
	done   chan error
	stderr *lockedBuffer
	stdout *lockedBuffer // the banner and anything else printed
	once   *sync.Once    // shared by the copies on returns

	// tokenFile holds fwProofToken for the CLI (-token-file).
	tokenFile string
}

const fwProofToken = "fw-proof-token"

func startDaemon(t *testing.T, ctx context.Context, bin string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, done: make(chan error, 1), stderr: &lockedBuffer{}, stdout: &lockedBuffer{}, once: new(sync.Once)}
	d.cmd = exec.CommandContext(ctx, bin, args...)
	d.cmd.Stderr = d.stderr
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.kill() })
	apiRe := regexp.MustCompile(`HTTP API:\s+(http://\S+)`)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// A daemon that has not printed its banner after two minutes is stuck
	// in its start-up: SIGQUIT makes it print its goroutines on stderr,
	// shown with the failure.
	stuck := time.NewTimer(2 * time.Minute)
	defer stuck.Stop()
	for d.api == "" {
		select {
		case <-stuck.C:
			d.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
			}
			t.Fatalf("no API address printed after 2 min (SIGQUIT sent):\n%s", tail(d.stderr.String(), 64<<10))
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("daemon exited before printing the API address:\n%s", d.stderr.String())
			}
			d.stdout.Write([]byte(l + "\n"))
			if m := apiRe.FindStringSubmatch(l); m != nil {
				d.api = m[1]
			}
		case <-ctx.Done():
			t.Fatalf("no API address printed:\n%s", tail(d.stderr.String(), 8<<10))
		}
	}
	go func() {
		for l := range lines {
			d.stdout.Write([]byte(l + "\n"))
		}
	}()
	return d
}

// writeProofConfig writes the configuration of a daemon proof test to
// dir/smsgw.yaml and returns its path: the API and the UDP listener on
// ephemeral loopback ports with fwProofToken, no DTLS listener, warnings
// only, the simulator's 50ms latency and 20ms send time, the demo fleet
// given as a YAML flow mapping (e.g. "{udp: 2, sms: 1, awake: 8s}"), and
// the YAML sections of extra after it.
func writeProofConfig(t *testing.T, dir, fleet string, extra ...string) string {
	t.Helper()
	cfgFile := filepath.Join(dir, "smsgw.yaml")
	cfg := fmt.Sprintf(`api:
  listen: 127.0.0.1:0
  token: %s
lwm2m:
  udp: 127.0.0.1:0
  dtls: ""
log:
  level: warn
simulator:
  latency: 50ms
  send_time: 20ms
  fleet: %s
`, fwProofToken, fleet) + strings.Join(extra, "")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgFile
}

// on returns d reporting to t, a subtest of d's test: a failed request
// then ends the subtest, not its parent from the subtest's goroutine.
func (d *daemon) on(t *testing.T) *daemon {
	c := *d
	c.t = t
	return &c
}

// kill sends SIGKILL and waits for the process.
func (d *daemon) kill() {
	d.once.Do(func() {
		d.cmd.Process.Kill()
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			d.t.Error("daemon did not die after SIGKILL")
		}
	})
}

func (d *daemon) call(method, path, body string) (int, map[string]any) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, d.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+fwProofToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

// cli runs an smsgw client subcommand in-process against the daemon.
func (d *daemon) cli(args ...string) map[string]any {
	d.t.Helper()
	var out, errb bytes.Buffer
	if d.tokenFile == "" {
		d.tokenFile = filepath.Join(d.t.TempDir(), "token")
		if err := os.WriteFile(d.tokenFile, []byte(fwProofToken+"\n"), 0o600); err != nil {
			d.t.Fatal(err)
		}
	}
	args = append(args, "-o", "json", "-api", strings.TrimSuffix(d.api, "/api/v1"), "-token-file", d.tokenFile)
	if rc := run(args, &out, &errb); rc != 0 {
		d.t.Fatalf("smsgw %v: rc %d: %s %s", args, rc, errb.String(), out.String())
	}
	var v map[string]any
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		d.t.Fatalf("smsgw %v: not JSON: %s", args, out.String())
	}
	return v
}

func (d *daemon) waitFleet(n int, within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, v := d.call("GET", "/devices", "")
		if code == 200 && v["total"] == float64(n) { // total: the list comes a page (100) at a time
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("fleet not registered: %d total %v of %d", code, v["total"], n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitJob polls a single-device update job until it ends.
func (d *daemon) waitJob(id string, within time.Duration) map[string]any {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, v := d.call("GET", "/firmware-jobs/"+id, "")
		if v["state"] != "running" {
			return v
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("firmware job %s did not finish: %v", id, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *daemon) version(ep string) string {
	d.t.Helper()
	code, v := d.call("GET", "/devices/"+ep+"/data/3/0/3?wait=60s", "")
	if code != 200 {
		d.t.Fatalf("read %s /3/0/3: %d %v", ep, code, v)
	}
	vals, _ := v["values"].([]any)
	if len(vals) != 1 {
		d.t.Fatalf("read %s /3/0/3: %v", ep, v)
	}
	return fmt.Sprint(vals[0].(map[string]any)["value"])
}

func lightFirmware(t *testing.T, data, light string) gateway.LightFirmware {
	t.Helper()
	st := gateway.LightFirmware{Version: "1.0.0"}
	b, err := os.ReadFile(filepath.Join(data, "fleet", light, gateway.LightFirmwareFile))
	if os.IsNotExist(err) {
		return st
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFirmwareProof drives firmware updates through the daemon binary: an
// image uploaded with the CLI; one UDP light, one sleeping light (woken by
// SMS, pulls over UDP) and one SMS-only light (SMS push allowed, cost shown
// by a dry run first) updated and confirmed by /3/0/3; a corrupt image
// refused by each light with Update Result 5 and reported by its campaign;
// a campaign over the UDP lights of an enlarged fleet, the daemon SIGKILLed
// mid-campaign and restarted: the campaign resumes and completes, and no
// light applied the update twice (counted on the light side).
func TestFirmwareProof(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	dir := t.TempDir()
	bin := buildSmsgw(t, ".", filepath.Join(dir, "smsgw"))
	const nUDP, nQueue, nSMS = 24, 6, 2
	data := filepath.Join(dir, "data")
	cfgFile := writeProofConfig(t, dir, fmt.Sprintf("{udp: %d, queue: %d, sms: %d, dtls: 0, awake: 8s}", nUDP, nQueue, nSMS),
		"firmware:\n  concurrency: 6\n")
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	args := []string{"-config", cfgFile, "-data", data}
	d := startDaemon(t, ctx, bin, args...)
	defer func() {
		if t.Failed() {
			t.Logf("daemon stderr (last 4k):\n%s", tail(d.stderr.String(), 4096))
		}
	}()
	d.waitFleet(nUDP+nQueue+nSMS, 60*time.Second)

	// Upload with the CLI (it computes the SHA-256; the daemon checks it).
	pkg, err := firmware.BuildPackage("2.0.0", bytes.Repeat([]byte("firmware 2.0.0 for streetlights "), 64))
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(dir, "sl-2.0.0.bin")
	os.WriteFile(pkgFile, pkg, 0o600)
	img := d.cli("fw", "upload", pkgFile, "-version", "2.0.0")
	id, _ := img["id"].(string)
	if id == "" || img["size"] != float64(len(pkg)) {
		t.Fatalf("upload: %v", img)
	}

	// One UDP light, with the CLI.
	start := time.Now()
	job := d.cli("fw", "update", "light-udp-1", id)
	if j := d.waitJob(job["id"].(string), 60*time.Second); j["state"] != "done" || j["version"] != "2.0.0" {
		t.Fatalf("UDP light: %v", j)
	}
	if v := d.version("light-udp-1"); v != "2.0.0" {
		t.Fatalf("UDP light /3/0/3 %q", v)
	}
	t.Logf("UDP light updated (pull over CoAP) in %v", time.Since(start).Round(time.Millisecond))

	// A sleeping light: woken by SMS, pulls over UDP.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, dv := d.call("GET", "/devices/light-queue-1", "")
		if dv["awake"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue light never asleep: %v", dv)
		}
		time.Sleep(200 * time.Millisecond)
	}
	start = time.Now()
	code, v := d.call("POST", "/devices/light-queue-1/firmware", `{"image":"`+id+`"}`)
	if code != 202 {
		t.Fatalf("sleeping light: %d %v", code, v)
	}
	if p := v["plan"].(map[string]any); p["method"] != "pull" || p["queue"] != true {
		t.Fatalf("sleeping light plan: %v", p)
	}
	if j := d.waitJob(v["id"].(string), 90*time.Second); j["state"] != "done" || j["version"] != "2.0.0" {
		t.Fatalf("sleeping light: %v", j)
	}
	if v := d.version("light-queue-1"); v != "2.0.0" {
		t.Fatalf("sleeping light /3/0/3 %q", v)
	}
	if m := d.metrics(); !regexp.MustCompile(`(?m)^smsgw_sms_wakeups_total [1-9]`).MatchString(m) {
		t.Fatalf("the sleeping light was not woken by SMS: %s", grepLines([]byte(m), "wakeup"))
	}
	t.Logf("sleeping light updated (SMS wake-up, pull over UDP) in %v", time.Since(start).Round(time.Millisecond))

	// An SMS-only light: refused without SMS push, costed by a dry run,
	// then pushed over SMS.
	if code, v := d.call("POST", "/devices/light-sms-1/firmware", `{"image":"`+id+`","allow_sms_push":false}`); code != 422 {
		t.Fatalf("SMS light without allow_sms_push: %d %v", code, v)
	}
	plan := d.cli("fw", "update", "light-sms-1", id, "-sms", "-dry-run")["plan"].(map[string]any)
	if plan["method"] != "push" || plan["sms"].(float64) < 2 {
		t.Fatalf("SMS light plan: %v", plan)
	}
	t.Logf("SMS light plan before start: %v blocks of %v bytes, about %v SMS", plan["blocks"], plan["block_size"], plan["sms"])
	start = time.Now()
	job = d.cli("fw", "update", "light-sms-1", id, "-sms")
	if j := d.waitJob(job["id"].(string), 120*time.Second); j["state"] != "done" || j["version"] != "2.0.0" {
		t.Fatalf("SMS light: %v", j)
	}
	if v := d.version("light-sms-1"); v != "2.0.0" {
		t.Fatalf("SMS light /3/0/3 %q", v)
	}
	t.Logf("SMS-only light updated (push over SMS) in %v", time.Since(start).Round(time.Millisecond))

	// A corrupt image: the payload does not match the package's checksum.
	bad := bytes.Clone(pkg)
	bad[len(bad)-1] ^= 0x55
	badFile := filepath.Join(dir, "corrupt.bin")
	os.WriteFile(badFile, bad, 0o600)
	badID := d.cli("fw", "upload", badFile, "-version", "2.0.1")["id"].(string)
	c := d.cli("campaign", "create", "-image", badID, "-endpoints", "light-udp-2,light-udp-3", "-retries", "0")
	rep := waitCampaign(t, d, c["id"].(string), 60*time.Second)
	if rep["failed"] != float64(2) {
		t.Fatalf("corrupt campaign: %v", rep)
	}
	for _, x := range rep["campaign"].(map[string]any)["devices"].([]any) {
		dv := x.(map[string]any)
		if dv["state"] != firmware.DevFailed || dv["result"] != float64(firmware.ResultIntegrity) {
			t.Fatalf("corrupt image on %v: %v", dv["endpoint"], dv)
		}
	}

	// The campaign over every UDP light (UDP and sleeping), SIGKILL mid-way.
	c = d.cli("campaign", "create", "-image", id, "-filter", "transport=udp", "-concurrency", "6")
	cid := c["id"].(string)
	total := int(c["total"].(float64))
	if total != nUDP+nQueue {
		t.Fatalf("campaign targets %d lights, want %d", total, nUDP+nQueue)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		_, v := d.call("GET", "/campaigns/"+cid, "")
		counts := v["campaign"].(map[string]any)["counts"].(map[string]any)
		done, _ := counts["done"].(float64)
		if done >= 6 {
			t.Logf("SIGKILL with counts %v", counts)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign not progressing: %v", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.kill() // SIGKILL

	d2 := startDaemon(t, ctx, bin, args...)
	defer func() {
		if t.Failed() {
			t.Logf("restarted daemon stderr (last 4k):\n%s", tail(d2.stderr.String(), 4096))
		}
	}()
	start = time.Now()
	rep = waitCampaign(t, d2, cid, 120*time.Second)
	camp := rep["campaign"].(map[string]any)
	t.Logf("campaign resumed after SIGKILL, finished %v later: counts %v", time.Since(start).Round(time.Millisecond), camp["counts"])
	for _, x := range camp["devices"].([]any) {
		dv := x.(map[string]any)
		ep := dv["endpoint"].(string)
		lf := lightFirmware(t, data, ep)
		if lf.Applied > 1 {
			t.Errorf("%s applied the update %d times", ep, lf.Applied)
		}
		switch dv["state"] {
		case firmware.DevDone, firmware.DevSkipped:
			if lf.Version != "2.0.0" || lf.Applied != 1 {
				t.Errorf("%s: campaign says %v but the light runs %s (applied %d)", ep, dv["state"], lf.Version, lf.Applied)
			}
		case firmware.DevFailed:
			// Only a light killed between Execute and applying may fail,
			// and it must not have been updated.
			if lf.Applied != 0 || !strings.Contains(fmt.Sprint(dv["error"]), "not updated again") {
				t.Errorf("%s failed: %v (light runs %s, applied %d)", ep, dv, lf.Version, lf.Applied)
			}
			t.Logf("%s: interrupted by the SIGKILL after the Execute step was stored; not updated again (at most once): %v", ep, dv["error"])
		default:
			t.Errorf("%s: state %v", ep, dv)
		}
	}
	if st := lightFirmware(t, data, "light-sms-1"); st.Applied != 1 || st.Version != "2.0.0" {
		t.Errorf("light-sms-1: %+v", st)
	}
	if m := d2.metrics(); !strings.Contains(m, `smsgw_firmware_campaigns{state="done"} 2`) {
		t.Errorf("metrics: %s", grepLines([]byte(m), "smsgw_firmware"))
	}
}

func (d *daemon) metrics() string {
	d.t.Helper()
	resp, err := http.Get(strings.TrimSuffix(d.api, "/api/v1") + "/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	return string(m)
}

func waitCampaign(t *testing.T, d *daemon, id string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, v := d.call("GET", "/campaigns/"+id+"?devices=1", "")
		if code == 200 && v["campaign"].(map[string]any)["status"] == firmware.CampaignDone {
			return v
		}
		if time.Now().After(deadline) {
			c := v["campaign"].(map[string]any)
			t.Fatalf("campaign %s not done: %v %v", id, c["status"], c["counts"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// lockedBuffer is a bytes.Buffer the process writes while the test reads.
// It keeps the last MiB or so, and counts every byte written.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	total int64
}

// Total returns the number of bytes ever written.
func (l *lockedBuffer) Total() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total += int64(len(p))
	if l.b.Len() > 1<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
