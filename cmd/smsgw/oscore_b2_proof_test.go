package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOSCOREAppendixB2Proof builds the daemon and runs it twice on one
// data directory with two OSCORE demo lights, one on UDP and one SMS-only
// (its SMS through the simulator's pty modems and the real modem driver).
// Between the runs each light's OSCORE state file (<data>/fleet/<light>/
// oscore.db: sequence numbers, ID Context) is deleted, as if its flash
// were wiped; the server keeps its own. In the second run both lights
// register again and answer reads with no operator action: each runs RFC
// 8613 Appendix B.2 with the server (response #1, new context), and the
// server refuses nothing as a replay.
func TestOSCOREAppendixB2Proof(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon twice")
	}
	dir := t.TempDir()
	bin := buildSmsgw(t, ".", filepath.Join(dir, "smsgw"))
	cfgFile := writeProofConfig(t, dir, "{udp: 0, queue: 0, sms: 0, dtls: 0, oscore: 1, oscore_sms: 1, awake: 8s}")
	data := filepath.Join(dir, "data")
	lights := []string{"light-oscore-1", "light-oscore-sms-1"}
	run := func(name string) map[string]int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		d := startDaemon(t, ctx, bin, "-config", cfgFile, "-data", data)
		defer func() {
			if t.Failed() {
				t.Logf("%s: daemon stderr (last 4k):\n%s", name, tail(d.stderr.String(), 4096))
			}
		}()
		// Both lights registered in this run: each registration went
		// through a verified OSCORE exchange on its transport.
		var ev map[string]int
		deadline := time.Now().Add(60 * time.Second)
		for {
			ev = oscoreEvents(d.metrics())
			if ev["udp/b2_established"] >= 1 && ev["sms/b2_established"] >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no Appendix B.2 run completed on both transports: %v", name, ev)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The SMS light's registration with its B.2 run: Register as
		// request #1, response #1, Register again as request #2, 2.01: the
		// Register twice (its links take 2 segments), 2 answers of 1.
		var out, in float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if out, in = smsSegments(d); out >= 2 && in >= 2 {
				break
			}
		}
		t.Logf("%s: SMS segments at registration: out %v, in %v", name, out, in)
		if out != 2 || in < 2 || int(in)%2 != 0 {
			t.Errorf("%s: registration with its B.2 run: %v SMS out and %v in, want 2 out and the Register twice in", name, out, in)
		}
		for _, l := range lights {
			code, v := d.call("GET", "/devices/"+l+"/data/3/0/0", "")
			if code != 200 || !strings.Contains(fmt.Sprint(v), "m2mbearer") {
				t.Fatalf("%s: read %s /3/0/0: %d %v", name, l, code, v)
			}
		}
		ev = oscoreEvents(d.metrics())
		t.Logf("%s: server OSCORE events %v", name, ev)
		d.once.Do(func() {
			_ = d.cmd.Process.Signal(os.Interrupt)
			select {
			case <-d.done:
			case <-time.After(30 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.done
			}
		})
		return ev
	}
	first := run("first run (first contact)")
	for _, l := range lights {
		f := filepath.Join(data, "fleet", l, "oscore.db")
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s has no OSCORE state file: %v", l, err)
		}
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	second := run("second run (the lights' OSCORE state deleted)")
	for _, r := range []struct {
		name string
		ev   map[string]int
	}{{"first run", first}, {"second run", second}} {
		ev := r.ev
		for _, tr := range []string{"udp", "sms"} {
			t.Run(r.name+" "+tr, func(t *testing.T) {
				if ev[tr+"/b2_response1"] < 1 || ev[tr+"/replay"] != 0 || ev[tr+"/decrypt_failed"] != 0 {
					t.Errorf("%s: response #1 %d, replay %d, decrypt_failed %d", tr, ev[tr+"/b2_response1"], ev[tr+"/replay"], ev[tr+"/decrypt_failed"])
				}
			})
		}
	}
	for _, l := range lights {
		t.Run("new OSCORE state of "+l, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(data, "fleet", l, "oscore.db")); err != nil {
				t.Errorf("%s: no new OSCORE state after the run: %v", l, err)
			}
		})
	}
}

// oscoreEvents parses smsgw_oscore_events_total into "transport/event" → n.
func oscoreEvents(metrics string) map[string]int {
	re := regexp.MustCompile(`smsgw_oscore_events_total\{event="([a-z0-9_]+)",transport="([a-z]+)"\} (\d+)`)
	out := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(metrics, -1) {
		n, _ := strconv.Atoi(m[3])
		out[m[2]+"/"+m[1]] = n
	}
	return out
}

// smsSegments returns the SMS segments the daemon sent and received.
func smsSegments(d *daemon) (out, in float64) {
	_, v := d.call("GET", "/sms", "")
	st, _ := v["stats"].(map[string]any)
	o, _ := st["segments_queued"].(float64)
	i, _ := st["segments_received"].(float64)
	return o, i
}
