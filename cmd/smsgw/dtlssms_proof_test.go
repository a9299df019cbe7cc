package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"context"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// smsUse is a device's SMS accounting from GET /devices/{ep}/sms: segments
// sent by the gateway and received from the device, handshake segments
// apart.
type smsUse struct{ out, in, hsOut, hsIn, hsBytes float64 }

func (d *daemon) smsUse(ep string) smsUse {
	d.t.Helper()
	code, v := d.call("GET", "/devices/"+ep+"/sms", "")
	if code != 200 {
		d.t.Fatalf("sms accounting of %s: %d %v", ep, code, v)
	}
	seg := func(k string) float64 { m, _ := v[k].(map[string]any); f, _ := m["segments"].(float64); return f }
	hs := func(k, unit string) float64 {
		m, _ := v[k].(map[string]any)
		h, _ := m["handshake"].(map[string]any)
		f, _ := h[unit].(float64)
		return f
	}
	return smsUse{out: seg("sent_total"), in: seg("received_total"), hsOut: hs("sent", "segments"), hsIn: hs("received", "segments"),
		hsBytes: hs("sent", "bytes") + hs("received", "bytes")}
}

func (u smsUse) minus(b smsUse) smsUse {
	return smsUse{u.out - b.out, u.in - b.in, u.hsOut - b.hsOut, u.hsIn - b.hsIn, u.hsBytes - b.hsBytes}
}

func (u smsUse) String() string {
	return fmt.Sprintf("%v SMS out, %v in (handshake %v out, %v in, %v bytes)", u.out, u.in, u.hsOut, u.hsIn, u.hsBytes)
}

// TestDTLSOverSMSProof builds the daemon and runs it with a DTLS-over-SMS
// demo light beside a NoSec SMS light, their SMS through the simulator's
// pty modems and the real modem driver: the DTLS light registers over
// DTLS (PSK) over SMS, is read, written and updated over SMS (firmware
// push), and after the daemon is killed (every light restarts with it) it
// comes back with an abbreviated handshake: its session, kept by the light
// and by the server, is resumed. Each step's SMS cost is logged beside the
// NoSec light's.
func TestDTLSOverSMSProof(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	dir := t.TempDir()
	bin := buildSmsgw(t, ".", filepath.Join(dir, "smsgw"))
	cfgFile := writeProofConfig(t, dir, "{udp: 0, queue: 0, sms: 1, dtls: 0, oscore: 0, oscore_sms: 0, dtls_sms: 1, awake: 8s}")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	data := filepath.Join(dir, "data")
	args := []string{"-config", cfgFile, "-data", data}
	d := startDaemon(t, ctx, bin, args...)
	defer func() {
		if t.Failed() {
			t.Logf("daemon stderr (last 4k):\n%s", tail(d.stderr.String(), 4096))
		}
	}()
	const light, plain = "light-dtls-sms-1", "light-sms-1"
	d.waitFleet(2, 60*time.Second)
	if _, v := d.call("GET", "/devices/"+light, ""); v["transport"] != "sms" || v["security"] != "psk" {
		t.Fatalf("%s: %v", light, v)
	}
	if _, v := d.call("GET", "/devices/"+plain, ""); v["security"] != "nosec" {
		t.Fatalf("%s: %v", plain, v)
	}
	first := d.smsUse(light)
	t.Logf("%s registered: full handshake and Register: %v", light, first)
	if first.hsOut == 0 || first.hsIn == 0 {
		t.Fatalf("no handshake counted: %v", first)
	}

	step := func(t *testing.T, d *daemon, name, ep, method, path, body string, want int) smsUse {
		t.Helper()
		before := d.smsUse(ep)
		start := time.Now()
		code, v := d.call(method, "/devices/"+ep+"/data/"+path, body)
		if code != want {
			t.Fatalf("%s %s: %d %v", name, ep, code, v)
		}
		u := d.smsUse(ep).minus(before)
		t.Logf("%s %s in %v: %v", name, ep, time.Since(start).Round(time.Millisecond), u)
		return u
	}
	for _, ep := range []string{light, plain} {
		t.Run("read and write "+ep, func(t *testing.T) {
			d := d.on(t)
			r := step(t, d, "read /3/0/0", ep, "GET", "3/0/0", "", 200)
			if r.out != 1 || r.in != 1 || r.hsOut+r.hsIn != 0 {
				t.Errorf("read of %s: %v, want 1 SMS each way and no handshake", ep, r)
			}
			step(t, d, "write /3311/0/5851", ep, "PUT", "3311/0/5851", `{"value": 40}`, 200)
			if _, v := d.call("GET", "/devices/"+ep+"/data/3311/0/5851", ""); !strings.Contains(fmt.Sprint(v), "40") {
				t.Fatalf("read back /3311/0/5851 of %s: %v", ep, v)
			}
		})
	}

	// Firmware pushed over DTLS over SMS.
	pkg, err := firmware.BuildPackage("2.0.0", bytes.Repeat([]byte("dtls "), 200))
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(dir, "fw.bin")
	os.WriteFile(pkgFile, pkg, 0o600)
	id, _ := d.cli("fw", "upload", pkgFile, "-version", "2.0.0")["id"].(string)
	for _, ep := range []string{light, plain} {
		t.Run("firmware push to "+ep, func(t *testing.T) {
			d := d.on(t)
			before := d.smsUse(ep)
			start := time.Now()
			job := d.cli("fw", "update", ep, id, "-sms")
			if j := d.waitJob(job["id"].(string), 120*time.Second); j["state"] != "done" || j["version"] != "2.0.0" {
				t.Fatalf("firmware over SMS to %s: %v", ep, j)
			}
			if v := d.version(ep); v != "2.0.0" {
				t.Fatalf("%s /3/0/3 %q", ep, v)
			}
			t.Logf("firmware push of %d bytes to %s in %v: %v", len(pkg), ep, time.Since(start).Round(time.Millisecond), d.smsUse(ep).minus(before))
		})
	}
	if st := lightFirmware(t, data, light); st.Applied != 1 || st.Version != "2.0.0" {
		t.Fatalf("%s firmware state %+v", light, st)
	}
	m := d.metrics()
	if dtlsMetric(m, "ok") < 1 || dtlsMetric(m, "resumed") != 0 || dtlsMetric(m, "failed") != 0 {
		t.Fatalf("handshake metrics:\n%s", grepLines([]byte(m), "smsgw_dtls_sms"))
	}

	// The daemon dies (SIGKILL), the light with it; both keep their
	// session. After the restart the light resumes it.
	d.kill()
	d2 := startDaemon(t, ctx, bin, args...)
	defer func() {
		if t.Failed() {
			t.Logf("restarted daemon stderr (last 4k):\n%s", tail(d2.stderr.String(), 4096))
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m = d2.metrics()
		if dtlsMetric(m, "ok") >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake after the restart:\n%s", grepLines([]byte(m), "smsgw_dtls"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dtlsMetric(m, "resumed") != 1 {
		t.Fatalf("after the restart the light did not resume its session:\n%s", grepLines([]byte(m), "smsgw_dtls"))
	}
	// The registrations are still in the store: wait for the light's
	// Register and its answer (the answer counted as sent).
	d2.waitFleet(2, 30*time.Second)
	var again smsUse
	for {
		again = d2.smsUse(light)
		if again.out > again.hsOut && d2.metric(`smsgw_registration_events_total{event="registered"}`) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not register after the restart: %v", light, again)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s after the restart: abbreviated handshake and Register: %v (first start: %v)", light, again, first)
	// On SMS a PSK handshake takes 4 SMS either way (docs/dtls-sms.md); the
	// abbreviated one has no key exchange and fewer bytes.
	if again.hsOut+again.hsIn > first.hsOut+first.hsIn || again.hsBytes >= first.hsBytes {
		t.Errorf("the abbreviated handshake cost %v SMS, %v bytes; the full one %v, %v", again.hsOut+again.hsIn, again.hsBytes,
			first.hsOut+first.hsIn, first.hsBytes)
	}
	r := step(t, d2, "read /3/0/3 after the restart", light, "GET", "3/0/3", "", 200)
	if r.out != 1 || r.in != 1 {
		t.Errorf("read after the restart: %v", r)
	}
	t.Logf("after the restart: %s", grepLines([]byte(m), "smsgw_dtls_sms_handshakes_total{"))
}

var dtlsMetricRe = map[string]*regexp.Regexp{}

// dtlsMetric reads smsgw_dtls_sms_handshakes_total{result=...}.
func dtlsMetric(m, result string) float64 {
	re, ok := dtlsMetricRe[result]
	if !ok {
		re = regexp.MustCompile(`(?m)^smsgw_dtls_sms_handshakes_total\{result="` + result + `"\} (\d+)`)
		dtlsMetricRe[result] = re
	}
	mm := re.FindStringSubmatch(m)
	if mm == nil {
		return -1
	}
	f, _ := strconv.ParseFloat(mm[1], 64)
	return f
}
