package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOSCOREProof builds the daemon and runs it with OSCORE demo lights:
// one on UDP and one SMS-only, whose SMS go through the simulator's pty
// modems and the real modem driver, beside a NoSec SMS-only light. Each
// light reads over the HTTP API; the daemon's metrics show the messages
// verified by OSCORE on both transports. An OSCORE read over SMS costs
// the SMS a NoSec read costs (1 out, 1 back), the first one too: the demo
// lights run Appendix B.2, so their first contact (the registration)
// derived fresh keys on both sides, whose replay windows need no Echo
// round trip (the Echo cost of Appendix B.1.2 after a restart is measured
// in bearer/sms TestSecurityCostTable).
func TestOSCOREProof(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	dir := t.TempDir()
	bin := buildSmsgw(t, ".", filepath.Join(dir, "smsgw"))
	cfgFile := writeProofConfig(t, dir, "{udp: 0, queue: 0, sms: 1, dtls: 0, oscore: 1, oscore_sms: 1, oscore_queue: 1, awake: 4s}")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	d := startDaemon(t, ctx, bin, "-config", cfgFile, "-data", filepath.Join(dir, "data"))
	defer func() {
		if t.Failed() {
			t.Logf("daemon stderr (last 4k):\n%s", tail(d.stderr.String(), 4096))
		}
	}()
	d.waitFleet(4, 60*time.Second)

	// segments counts the light's own SMS (the fleet's other lights send
	// and receive SMS at any time, so the gateway-wide counters are not
	// exact); a light with no SMS number has none (404).
	segments := func(d *daemon, light string) (out, in float64) {
		code, v := d.call("GET", "/devices/"+light+"/sms", "")
		if code == 404 {
			return 0, 0
		}
		st, _ := v["sent_total"].(map[string]any)
		rt, _ := v["received_total"].(map[string]any)
		o, _ := st["segments"].(float64)
		i, _ := rt["segments"].(float64)
		return o, i
	}
	// A light counts as registered once the gateway stored its
	// registration, before the gateway's answer (one SMS) is written: wait
	// for that answer to be counted so the first read's figures hold only
	// the read (under load: "SMS segments out 2 in 1").
	for _, light := range []string{"light-oscore-sms-1", "light-sms-1"} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if o, _ := segments(d, light); o >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the answer to its registration was never sent", light)
			}
		}
	}
	for _, tc := range []struct {
		name, light string
		sms         float64 // segments each way
	}{
		{"OSCORE over UDP, first read", "light-oscore-1", 0},
		{"OSCORE over UDP", "light-oscore-1", 0},
		{"OSCORE over SMS, first read after the device registered (B.2 run: fresh keys, no Echo)", "light-oscore-sms-1", 1},
		{"OSCORE over SMS", "light-oscore-sms-1", 1},
		{"NoSec over SMS", "light-sms-1", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := d.on(t)
			o0, i0 := segments(d, tc.light)
			start := time.Now()
			code, v := d.call("GET", "/devices/"+tc.light+"/data/3/0/0", "")
			if code != 200 || !strings.Contains(fmt.Sprint(v), "m2mbearer") {
				t.Fatalf("read /3/0/0: %d %v", code, v)
			}
			o1, i1 := segments(d, tc.light)
			t.Logf("%s: read /3/0/0 in %v, SMS out %v, in %v", tc.light, time.Since(start).Round(time.Millisecond), o1-o0, i1-i0)
			if o1-o0 != tc.sms || i1-i0 != tc.sms {
				t.Errorf("SMS segments out %v in %v, want %v each", o1-o0, i1-i0, tc.sms)
			}
		})
	}
	t.Run("OSCORE queue light asleep, woken by an OSCORE SMS trigger", func(t *testing.T) {
		oscoreQueueWake(t, d.on(t))
	})
	m := d.metrics()
	for _, tr := range []string{"udp", "sms"} {
		t.Run("verified over "+tr, func(t *testing.T) {
			re := regexp.MustCompile(`smsgw_oscore_events_total\{event="verified",transport="` + tr + `"\} (\d+)`)
			mm := re.FindStringSubmatch(m)
			if mm == nil {
				t.Fatalf("no verified OSCORE messages on %s:\n%s", tr, grepLines([]byte(m), "smsgw_oscore"))
			}
			if n, _ := strconv.Atoi(mm[1]); n < 2 {
				t.Errorf("%s: %d verified", tr, n)
			}
		})
	}
	t.Logf("\n%s", grepLines([]byte(m), "smsgw_oscore"))
}

// oscoreQueueWake: the OSCORE queue light (UDP in queue mode, its SMS
// trigger under the same OSCORE context) falls asleep; a read through the
// API is queued, the gateway wakes the light with one OSCORE-protected
// SMS (Execute /1/0/8 with No-Response), the light verifies it, updates
// over UDP and the queued read is answered over UDP: 1 SMS out, 0 in.
// Before, the trigger went unprotected onto the SMS bearer and an OSCORE
// device refused it (i19-oscore's note).
func oscoreQueueWake(t *testing.T, d *daemon) {
	const light = "light-oscore-queue-1"
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, v := d.call("GET", "/devices/"+light, ""); v["awake"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the OSCORE queue light never fell asleep")
		}
	}
	use0 := d.smsUse(light)
	wakes0 := d.metric(`smsgw_sms_wakeups_total`)
	prot0 := d.metric(`smsgw_oscore_events_total{event="protected",transport="sms"}`)
	start := time.Now()
	code, v := d.call("GET", "/devices/"+light+"/data/3/0/0", "")
	if code == 202 {
		job, _ := v["job"].(map[string]any)
		if job == nil {
			t.Fatalf("queued read: %d %v", code, v)
		}
		code, v = d.call("GET", fmt.Sprintf("/jobs/%v?wait=60s", job["id"]), "")
		if code != 200 || v["state"] != "done" {
			t.Fatalf("wake-up: %d %v", code, v)
		}
	} else if job, _ := v["job"].(map[string]any); code != 200 || job == nil || job["state"] != "done" {
		t.Fatalf("the sleeping light's read did not go through the queue: %d %v", code, v)
	}
	if !strings.Contains(fmt.Sprint(v), "m2mbearer") {
		t.Fatalf("queued read answered %v", v)
	}
	took := time.Since(start)
	// The SMS accounting settles when the trigger has left the outbox.
	var use smsUse
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if use = d.smsUse(light).minus(use0); use.out >= 1 || time.Now().After(deadline) {
			break
		}
	}
	wakes, prot := d.metric(`smsgw_sms_wakeups_total`)-wakes0, d.metric(`smsgw_oscore_events_total{event="protected",transport="sms"}`)-prot0
	t.Logf("%s woken and read in %v: %v; wake-ups %v, OSCORE-protected on SMS %v", light, took.Round(time.Millisecond), use, wakes, prot)
	if use.out != 1 || use.in != 0 {
		t.Errorf("wake-up + queued read cost %v SMS out, %v in; want 1, 0", use.out, use.in)
	}
	if wakes != 1 || prot != 1 {
		t.Errorf("wake-ups %v, OSCORE-protected SMS %v; want 1 and 1 (the trigger)", wakes, prot)
	}
}
