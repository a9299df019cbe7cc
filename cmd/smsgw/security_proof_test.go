package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
)

// TestSecurityProof attacks the smsgw binary on loopback the way issue 17
// did, in the demo configuration (lwm2m.nosec: allow, so NoSec is allowed
// for unconfigured names) plus one configured SMS device, meter-7:
//   - hijack of an SMS-bound, a PSK-bound and a configured name over UDP;
//   - sms= injection followed by an API read: no wake-up SMS, no new SMS peer;
//   - registration-id guessing;
//   - Update and De-register of a known location from another source;
//   - a registration flood from one source (10,000 Registers at 2,000 a
//     second): rate limited, counted, RSS bounded;
//   - a flood of 10,000 DTLS ClientHellos that never authenticate: every
//     failure counted, the log bounded.
//
// The attacks come from 127.0.0.2..127.0.0.6, the demo fleet from 127.0.0.1.
func TestSecurityProof(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	dir := t.TempDir()
	bin := buildSmsgw(t, ".", filepath.Join(dir, "smsgw"))
	cfgFile := filepath.Join(dir, "smsgw.yaml")
	cfg := fmt.Sprintf(`api:
  listen: 127.0.0.1:0
  token: %s
lwm2m:
  udp: 127.0.0.1:0
  dtls: 127.0.0.1:0
queue:
  awake_window: 1s
sms:
  devices:
    - endpoint: meter-7
      msisdn: "+491720000777"
      server_sim: "+491710000001"
simulator:
  latency: 50ms
  send_time: 20ms
  fleet: {udp: 1, queue: 1, sms: 1, dtls: 1, awake: 4s}
`, fwProofToken)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := startDaemon(t, ctx, bin, "-config", cfgFile, "-data", filepath.Join(dir, "data"))
	defer func() {
		if t.Failed() {
			t.Logf("daemon stderr (last 4k):\n%s", tail(d.stderr.String(), 4096))
		}
	}()
	d.waitFleet(4, 60*time.Second)
	server := d.bannerAddr(`LwM2M UDP:\s+coap://(\S+)`)
	dtlsAddr := d.bannerAddr(`LwM2M DTLS:\s+coaps://(\S+)`)

	t.Run("hijack", func(t *testing.T) {
		d := d.on(t)
		atk := newCoAPPeer(t, "127.0.0.2")
		before := d.metric(`smsgw_lwm2m_refused_total{reason="forbidden"}`)
		for _, ep := range []string{"light-sms-1", "light-dtls-1", "meter-7"} {
			t.Run(ep, func(t *testing.T) {
				code, _, diag := atk.on(t).call(server, codes.POST, "/rd", []string{"ep=" + ep, "lt=300", "b=U"}, "</1/0>,</3/0>")
				if code != codes.Forbidden {
					t.Errorf("register %s over UDP: %v %s, want 4.03", ep, code, diag)
				}
			})
		}
		if _, v := d.call("GET", "/devices/light-sms-1", ""); v["transport"] != "sms" {
			t.Errorf("light-sms-1 after the attempt: %v", v)
		}
		if c, _ := d.call("GET", "/devices/meter-7", ""); c != http.StatusNotFound {
			t.Errorf("meter-7 registered by the attacker: HTTP %d", c)
		}
		if got := d.metric(`smsgw_lwm2m_refused_total{reason="forbidden"}`) - before; got != 3 {
			t.Errorf("forbidden counted %v times, want 3", got)
		}
	})

	t.Run("sms injection", func(t *testing.T) {
		d := d.on(t)
		atk := newCoAPPeer(t, "127.0.0.2")
		peers := d.metric(`smsgw_sms_state{what="peers"}`)
		wakeups := d.metric(`smsgw_sms_wakeups_total`)
		code, _, diag := atk.call(server, codes.POST, "/rd",
			[]string{"ep=x", "lwm2m=1.0", "lt=300", "b=UQS", "sms=4915100000666"}, "</1/0>,</3/0>")
		if code != codes.Created {
			t.Fatalf("NoSec register of an unconfigured name in the demo config: %v %s", code, diag)
		}
		_, dev := d.call("GET", "/devices/x", "")
		if dev["wakeable"] != false {
			t.Errorf("x shown as wakeable: %v", dev)
		}
		// The read goes to the attacker's socket, which never answers: x is
		// asleep, and the queue would wake it by SMS if it trusted sms=.
		rc, rv := d.call("GET", "/devices/x/data/3/0?wait=2s", "")
		t.Logf("read of x: HTTP %d %v", rc, rv)
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			if w := d.metric(`smsgw_sms_wakeups_total`); w != wakeups {
				t.Fatalf("wake-up SMS sent after an sms= injection (%v → %v)", wakeups, w)
			}
			if p := d.metric(`smsgw_sms_state{what="peers"}`); p != peers {
				t.Fatalf("SMS peers grew from a registration's sms= (%v → %v)", peers, p)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})

	t.Run("id guessing", func(t *testing.T) {
		d := d.on(t)
		victim := newCoAPPeer(t, "127.0.0.4")
		code, loc, diag := victim.call(server, codes.POST, "/rd", []string{"ep=victim", "lt=300", "b=U"}, "</1/0>,</3/0>")
		if code != codes.Created {
			t.Fatalf("victim register: %v %s", code, diag)
		}
		id, ok := strings.CutPrefix(loc, "/rd/")
		if n, err := strconv.ParseUint(id, 36, 64); !ok || err != nil || n < 1<<32 {
			t.Errorf("location %s does not look like 64 random bits", loc)
		}
		atk := newCoAPPeer(t, "127.0.0.2")
		hits := 0
		guesses := []string{}
		for i := 1; i <= 100; i++ {
			guesses = append(guesses, strconv.FormatUint(uint64(i), 36))
		}
		for range 50 {
			var b [8]byte
			rand.Read(b[:])
			guesses = append(guesses, strconv.FormatUint(binary.BigEndian.Uint64(b[:]), 36))
		}
		for _, g := range guesses {
			if code, _, _ := atk.call(server, codes.POST, "/rd/"+g, []string{"lt=1"}, ""); code != codes.NotFound {
				hits++
			}
			if code, _, _ := atk.call(server, codes.DELETE, "/rd/"+g, nil, ""); code != codes.NotFound {
				hits++
			}
		}
		if hits > 0 {
			t.Errorf("%d of %d guessed locations answered other than 4.04", hits, 2*len(guesses))
		}
		if c, _ := d.call("GET", "/devices/victim", ""); c != http.StatusOK {
			t.Errorf("victim gone after the guessing: HTTP %d", c)
		}
	})

	t.Run("update and de-register from another source", func(t *testing.T) {
		d := d.on(t)
		victim := newCoAPPeer(t, "127.0.0.4")
		code, loc, diag := victim.call(server, codes.POST, "/rd", []string{"ep=victim-2", "lt=300", "b=U"}, "</1/0>,</3/0>")
		if code != codes.Created {
			t.Fatalf("victim register: %v %s", code, diag)
		}
		atk := newCoAPPeer(t, "127.0.0.2")
		if code, _, _ := atk.call(server, codes.POST, loc, []string{"lt=1"}, ""); code != codes.NotFound {
			t.Errorf("update from another source: %v, want 4.04", code)
		}
		if code, _, _ := atk.call(server, codes.DELETE, loc, nil, ""); code != codes.NotFound {
			t.Errorf("de-register from another source: %v, want 4.04", code)
		}
		samePortOtherIP := newCoAPPeerPort(t, "127.0.0.2", victim.port())
		if code, _, _ := samePortOtherIP.call(server, codes.DELETE, loc, nil, ""); code != codes.NotFound {
			t.Errorf("de-register from another address with the victim's port: %v, want 4.04", code)
		}
		if code, _, _ := victim.call(server, codes.POST, loc, []string{"lt=300"}, ""); code != codes.Changed {
			t.Errorf("the victim's own update: %v", code)
		}
		if got := d.metric(`smsgw_lwm2m_refused_total{reason="wrong_source"}`); got < 3 {
			t.Errorf("wrong_source counted %v times", got)
		}
		if code, _, _ := victim.call(server, codes.DELETE, loc, nil, ""); code != codes.Deleted {
			t.Errorf("the victim's own de-register: %v", code)
		}
	})

	t.Run("limits", func(t *testing.T) {
		p := newCoAPPeer(t, "127.0.0.5")
		for _, c := range []struct {
			name    string
			queries []string
			payload string
			want    codes.Code
		}{
			{"lifetime 2^32-1", []string{"ep=lt-max", "lt=4294967295"}, "</1/0>", codes.BadRequest},
			{"1,000-byte link attribute", []string{"ep=big-attr"}, `</1/0>;x="` + strings.Repeat("a", 1000) + `"`, codes.BadRequest},
		} {
			t.Run(c.name, func(t *testing.T) {
				if code, _, diag := p.on(t).call(server, codes.POST, "/rd", c.queries, c.payload); code != c.want {
					t.Errorf("%s: %v %s, want %v", c.name, code, diag, c.want)
				}
			})
		}
	})

	t.Run("registration flood", func(t *testing.T) {
		d := d.on(t)
		pid := d.cmd.Process.Pid
		rssBefore := vmRSS(t, pid)
		_, v := d.call("GET", "/devices", "")
		countBefore, _ := v["count"].(float64)
		const n = 10000
		start := time.Now()
		got := floodRegister(t, server, "127.0.0.3", n)
		el := time.Since(start)
		time.Sleep(500 * time.Millisecond)
		_, v = d.call("GET", "/devices", "")
		count, _ := v["count"].(float64)
		rssAfter := vmRSS(t, pid)
		limited := d.metric(`smsgw_lwm2m_refused_total{reason="rate_limited"}`)
		t.Logf("%d Registers from one source in %v: answers %v; registered %v → %v; rate_limited %v; RSS %d → %d KiB",
			n, el.Round(time.Millisecond), got, countBefore, count, limited, rssBefore, rssAfter)
		// The default policy lets one source make 500 at once and 50 a
		// second after that.
		if allowed := countBefore + 500 + 50*el.Seconds() + 50; count > allowed {
			t.Errorf("%v registered, more than the %v the source rate allows", count, allowed)
		}
		if got[codes.TooManyRequests] == 0 || limited < float64(got[codes.TooManyRequests]) {
			t.Errorf("no 4.29 answers counted: answers %v, metric %v", got, limited)
		}
		if grow := rssAfter - rssBefore; grow > 48<<10 {
			t.Errorf("RSS grew by %d KiB", grow)
		}
	})

	t.Run("dtls hello flood", func(t *testing.T) {
		d := d.on(t)
		res := helloFlood(t, d, dtlsAddr, "127.0.0.6", 10000)
		t.Logf("10,000 ClientHellos: %s", res)
		if res.logBytes > 16<<10 {
			t.Errorf("%d bytes of log for %d failed handshakes", res.logBytes, res.failed)
		}
		if res.failed < 5000 {
			t.Errorf("only %d failed handshakes counted", res.failed)
		}
		if d.metric(`smsgw_log_suppressed_total{source="dtls"}`) == 0 {
			t.Error("no suppressed DTLS log lines counted")
		}
		if base := os.Getenv("M2M_SECURITY_BASELINE"); base != "" {
			b := baselineHelloFlood(t, base)
			t.Logf("log bytes per 10,000 hellos: baseline %s: %d, this tree: %d (%.0fx less)", base, b.logBytes, res.logBytes,
				float64(b.logBytes)/float64(max(res.logBytes, 1)))
		}
	})
}

// buildSmsgw builds the smsgw command in dir to out.
func buildSmsgw(t *testing.T, dir, out string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", dir, err, b)
	}
	return out
}

// bannerAddr waits for a line of the start-up banner and returns the
// regexp's group.
func (d *daemon) bannerAddr(re string) string {
	d.t.Helper()
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := r.FindStringSubmatch(d.stdout.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no %q in the banner:\n%s", re, d.stdout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric returns the value of one series of /metrics (0 when absent).
func (d *daemon) metric(series string) float64 {
	d.t.Helper()
	for _, l := range strings.Split(d.metrics(), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// vmRSS returns the resident set of process pid in KiB.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// coapPeer is a bare CoAP-over-UDP client on one socket: what an attacker
// with a UDP socket has.
type coapPeer struct {
	t    *testing.T
	conn *net.UDPConn
	mid  *atomic.Uint32 // shared by the copies on returns
}

// on returns p reporting to t, a subtest of p's test (see daemon.on).
func (p *coapPeer) on(t *testing.T) *coapPeer {
	c := *p
	c.t = t
	return &c
}

func newCoAPPeer(t *testing.T, ip string) *coapPeer { return newCoAPPeerPort(t, ip, 0) }

func newCoAPPeerPort(t *testing.T, ip string, port int) *coapPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &coapPeer{t: t, conn: c, mid: new(atomic.Uint32)}
	p.mid.Store(uint32(time.Now().UnixNano()))
	return p
}

func (p *coapPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// encodeRequest builds one CoAP request datagram.
func encodeRequest(typ message.Type, mid uint16, token []byte, code codes.Code, path string, queries []string, payload string) []byte {
	m := message.Message{Code: code, Type: typ, MessageID: int32(mid), Token: token, Payload: []byte(payload)}
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		m.Options = m.Options.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	for _, q := range queries {
		m.Options = m.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	if payload != "" {
		m.Options = m.Options.Add(message.Option{ID: message.ContentFormat, Value: []byte{byte(message.AppLinkFormat)}})
	}
	n, _ := coder.DefaultCoder.Size(m)
	out := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, out); err != nil {
		panic(err)
	}
	return out
}

// call sends a confirmable request and returns the response code, its
// Location-Path and its diagnostic payload.
func (p *coapPeer) call(to string, code codes.Code, path string, queries []string, payload string) (codes.Code, string, string) {
	p.t.Helper()
	addr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		p.t.Fatal(err)
	}
	mid := uint16(p.mid.Add(1))
	token := []byte{byte(mid >> 8), byte(mid), 0x17}
	req := encodeRequest(message.Confirmable, mid, token, code, path, queries, payload)
	buf := make([]byte, 4096)
	for attempt := 0; attempt < 4; attempt++ {
		if _, err := p.conn.WriteToUDP(req, addr); err != nil {
			p.t.Fatal(err)
		}
		p.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, _, err := p.conn.ReadFromUDP(buf)
			if err != nil {
				break // timeout: retransmit
			}
			m := message.Message{Options: make(message.Options, 0, 32)}
			if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil || string(m.Token) != string(token) {
				continue
			}
			var loc []string
			for _, o := range m.Options {
				if o.ID == message.LocationPath {
					loc = append(loc, string(o.Value))
				}
			}
			lp := ""
			if len(loc) > 0 {
				lp = "/" + strings.Join(loc, "/")
			}
			return m.Code, lp, string(m.Payload)
		}
	}
	p.t.Fatalf("%v %s: no answer", code, path)
	return 0, "", ""
}

// floodRegister sends n non-confirmable Registers with distinct names from
// one socket as fast as it can and counts the answers by code.
func floodRegister(t *testing.T, to, ip string, n int) map[codes.Code]int {
	t.Helper()
	p := newCoAPPeer(t, ip)
	addr, _ := net.ResolveUDPAddr("udp", to)
	got := map[codes.Code]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, _, err := p.conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := message.Message{Options: make(message.Options, 0, 32)}
			if _, err := coder.DefaultCoder.Decode(buf[:k], &m); err == nil {
				mu.Lock()
				got[m.Code]++
				mu.Unlock()
			}
		}
	}()
	for i := range n {
		mid := uint16(i)
		req := encodeRequest(message.NonConfirmable, mid, []byte{byte(i >> 16), byte(i >> 8), byte(i)}, codes.POST, "/rd",
			[]string{fmt.Sprintf("ep=flood-%d", i), "lt=3600", "b=U"}, "</1/0>,</3/0>")
		if _, err := p.conn.WriteToUDP(req, addr); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			// 2,000 a second: what the server can take without the socket
			// buffers dropping most of it (the issue saw 3,000 a second).
			time.Sleep(50 * time.Millisecond)
		}
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	out := map[codes.Code]int{}
	for k, v := range got {
		out[k] = v
	}
	return out
}

type floodResult struct {
	sent, failed int
	logBytes     int64
}

func (r floodResult) String() string {
	return fmt.Sprintf("%d sent, %d failed handshakes counted, %d bytes of log", r.sent, r.failed, r.logBytes)
}

// captureHello returns a real ClientHello (PSK) as bearer/secure's client
// sends it.
func captureHello(t *testing.T) []byte {
	t.Helper()
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	u, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	go func() {
		c, err := secure.Dial(ctx, u, sink.LocalAddr(), &secure.Config{PSKIdentity: []byte("x"), PSKKey: make([]byte, 16)})
		if err == nil {
			c.Close()
		}
		u.Close()
	}()
	defer cancel()
	buf := make([]byte, 2048)
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := sink.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no ClientHello: %v", err)
	}
	return append([]byte(nil), buf[:n]...)
}

// helloFlood sends n ClientHellos to the daemon's DTLS listener, each from
// a new socket (a new source address), and measures the log the daemon
// wrote until the failures are counted.
func helloFlood(t *testing.T, d *daemon, to, ip string, n int) floodResult {
	t.Helper()
	hello := captureHello(t)
	addr, _ := net.ResolveUDPAddr("udp", to)
	failed0 := d.metric(`smsgw_dtls_handshakes_total{result="failed"}`)
	log0 := d.stderr.Total()
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		c.WriteToUDP(hello, addr)
		c.Close()
	}
	// Every hello beyond the handshake slots evicts an older one; wait
	// until the failures stop growing.
	var failed float64
	for last, stable := -1.0, 0; stable < 5; time.Sleep(200 * time.Millisecond) {
		failed = d.metric(`smsgw_dtls_handshakes_total{result="failed"}`) - failed0
		if failed == last {
			stable++
		} else {
			last, stable = failed, 0
		}
	}
	return floodResult{sent: n, failed: int(failed), logBytes: d.stderr.Total() - log0}
}

// baselineHelloFlood runs the hello flood against the smsgw of another
// checkout (M2M_SECURITY_BASELINE=/path/to/checkout), for the before/after
// figure, with a configuration any version reads.
func baselineHelloFlood(t *testing.T, checkout string) floodResult {
	t.Helper()
	dir := t.TempDir()
	bin := buildSmsgw(t, filepath.Join(checkout, "cmd", "smsgw"), filepath.Join(dir, "smsgw-baseline"))
	cfgFile := filepath.Join(dir, "smsgw.yaml")
	cfg := fmt.Sprintf("api:\n  listen: 127.0.0.1:0\n  token: %s\nlwm2m:\n  udp: 127.0.0.1:0\n  dtls: 127.0.0.1:0\nsimulator:\n  fleet: {udp: 0, queue: 0, sms: 0, dtls: 0, awake: 4s}\n", fwProofToken)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := startDaemon(t, ctx, bin, "-config", cfgFile, "-data", filepath.Join(dir, "data"))
	defer d.kill()
	return helloFlood(t, d, d.bannerAddr(`LwM2M DTLS:\s+coaps://(\S+)`), "127.0.0.7", 10000)
}
