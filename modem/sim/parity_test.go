package sim

import (
	"bytes"
	"encoding/hex"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawConn records every byte the modem writes, for checks on the exact
// bytes (line ends, missing final result codes).
type rawConn struct {
	conn io.ReadWriteCloser
	mu   sync.Mutex
	buf  bytes.Buffer
}

func newRaw(t *testing.T, m *Modem) *rawConn {
	t.Helper()
	c, err := m.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &rawConn{conn: c}
	go func() {
		b := make([]byte, 512)
		for {
			n, err := c.Read(b)
			r.mu.Lock()
			r.buf.Write(b[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close() })
	return r
}

// exchange writes s and returns what the modem wrote until its output
// contains want (or fails the test after a deadline).
func (r *rawConn) exchange(t *testing.T, s, want string) string {
	t.Helper()
	r.mu.Lock()
	r.buf.Reset()
	r.mu.Unlock()
	if _, err := r.conn.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		r.mu.Lock()
		got := r.buf.String()
		r.mu.Unlock()
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %q: got %q, want %q in it", s, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// quiet returns what the modem writes within d after s.
func (r *rawConn) quiet(t *testing.T, s string, d time.Duration) string {
	t.Helper()
	r.mu.Lock()
	r.buf.Reset()
	r.mu.Unlock()
	if _, err := r.conn.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func plugRaw(t *testing.T, p Profile, opts ...ModemOption) (*Network, *Modem, *rawConn) {
	t.Helper()
	n, err := NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	m, err := n.AddModem("+15550601", append([]ModemOption{WithProfile(p)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := newRaw(t, m)
	r.exchange(t, "ATE0\r", "OK")
	return n, m, r
}

// addTerm adds a modem with profile p to n, plugs it in over a pipe, reads
// its boot texts and turns its echo off.
func addTerm(t *testing.T, n *Network, msisdn string, p Profile) (*Modem, *term) {
	t.Helper()
	m, err := n.AddModem(msisdn, WithProfile(p))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	tm := newTerm(t, c)
	for range append(p.BootURCs, p.ReadyURCs...) {
		_ = tm.line()
	}
	tm.mustOK("ATE0")
	return m, tm
}

// What gammu, smsd and gsmsendsms found missing or wrong.
func TestToolParity(t *testing.T) {
	_, _, r := plugRaw(t, genericProfile())
	if got := r.exchange(t, "\x1b\r", "OK"); got != "\r\nOK\r\n" {
		t.Fatalf("ESC CR: %q", got)
	}
	if got := r.exchange(t, "AT+CSCS=?\r", "OK"); !strings.Contains(got, `"HEX"`) {
		t.Fatalf("AT+CSCS=?: %q", got)
	}
	if got := r.exchange(t, "AT+CSCS=\"HEX\"\r", "\r\n"); !strings.Contains(got, "OK") {
		t.Fatalf(`AT+CSCS="HEX": %q`, got)
	}
	if got := r.exchange(t, "AT+CGATT?\r", "OK"); !strings.Contains(got, "+CGATT: 1") {
		t.Fatalf("AT+CGATT?: %q", got)
	}
	// gsmsendsms ends the command line with a NUL.
	tp := submitPDU(t, "+15550602", []byte("x"), false)
	r.exchange(t, "AT+CMGS="+itoa(len(tp))+"\x00\r", "> ")
	got := r.exchange(t, "00"+strings.ToUpper(hex.EncodeToString(tp))+"\x1a", "OK")
	if !strings.Contains(got, "+CMGS: ") {
		t.Fatalf("send after a NUL: %q", got)
	}
}

// Status reports follow +CNMI <ds>: 0 not routed, 1 +CDS (under <mode> 0
// stored and announced by a buffered +CDSI, never stored unannounced), 2
// stored with +CDSI.
func TestStatusReportRouting(t *testing.T) {
	for _, tc := range []struct {
		name, cnmi, want string
	}{
		{"ds=0", "AT+CNMI=2,1,0,0,0", ""},
		{"ds=1", "AT+CNMI=2,1,0,1,0", "+CDS: "},
		{"ds=2", "AT+CNMI=2,1,0,2,0", `+CDSI: "SM",1`},
		{"ds=1 under mode 0", "AT+CNMI=0,1,0,1,0", `+CDSI: "SM",1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk, n, ta, tb, a, _ := manualPair(t, WithConditions(Conditions{Latency: Fixed(time.Second)}))
			ta.mustOK(tc.cnmi)
			tb.mustOK("AT+CNMI=2,1,0,0,0")
			if _, f := ta.send(submitPDU(t, "+15550002", []byte("srr"), true)); f != "OK" {
				t.Fatal(f)
			}
			clk.Advance(time.Second)
			_ = tb.line()
			waitFor(t, func() bool { return n.Stats().Delivered == 1 })
			clk.Advance(time.Second)
			waitFor(t, func() bool { return n.Stats().StatusReports == 1 })
			if strings.Contains(tc.cnmi, "=0,") {
				ta.mustOK("AT+CNMI=2,1,0,1,0") // leave mode 0: the buffer is flushed
			}
			if tc.want == "" {
				if a.Stats().Stored != 0 {
					t.Fatal("a report not routed was stored")
				}
				return
			}
			if l := ta.line(); !strings.HasPrefix(l, tc.want) {
				t.Fatalf("got %q, want %q", l, tc.want)
			}
		})
	}
}

// Every quirk of the vendor dialects, on the wire.
func TestVendorDialects(t *testing.T) {
	t.Run("huawei", func(t *testing.T) {
		_, m, r := plugRaw(t, huaweiProfile())
		if got := r.exchange(t, "AT+CSQ\r", "OK"); got != "\r\n+CSQ: 20,99\r\r\n\r\n^RSSI: 14\r\r\n\r\nOK\r\r\n" &&
			!strings.HasSuffix(got, "\r\nOK\r\r\n") {
			t.Fatalf("CR CR LF line ends: %q", got)
		}
		if got := r.exchange(t, "AT^FOO\r", "SUPPORT"); !strings.Contains(got, "COMMAND NOT SUPPORT\r\r\n") {
			t.Fatalf("unknown command: %q", got)
		}
		if got := r.exchange(t, "AT+CNMI=2,1,0,2,0,1\r", "PARAMETERS"); !strings.Contains(got, "TOO MANY PARAMETERS") {
			t.Fatalf("surplus parameter: %q", got)
		}
		idx, err := m.StoreRaw("SM", 1, 3, "00AABB", false)
		if err != nil {
			t.Fatal(err)
		}
		got := r.exchange(t, "AT+CMGR="+itoa(idx)+"\r", "OK")
		if i, j := strings.Index(got, "+CMGR:"), strings.Index(got, "00AABB"); i < 0 || j < 0 || !strings.Contains(got[i:j], "^") {
			t.Fatalf("no ^ report between header and PDU: %q", got)
		}
	})
	t.Run("zte", func(t *testing.T) {
		clk, n, ta, _, _, _ := manualPair(t, WithConditions(Conditions{Latency: Fixed(time.Second)}))
		_, tz := addTerm(t, n, "+15550003", zteProfile())
		tz.mustOK("AT+CNMI=2,1,0,2,0")
		ta.mustOK("ATE0")
		if _, f := tz.send(submitPDU(t, "+15550001", []byte("r"), true)); f != "OK" {
			t.Fatal(f)
		}
		clk.Advance(time.Second)
		waitFor(t, func() bool { return n.Stats().Delivered == 1 })
		clk.Advance(time.Second)
		if l := tz.line(); l != `+CDSI: "SR",1` {
			t.Fatalf("report stored as %q, want in SR", l)
		}
		tz.mustOK(`AT+CPMS="SR"`)
		info := tz.mustOK("AT+CMGR=1")
		if !strings.HasPrefix(info[0], "+CMGR: ,,") {
			t.Fatalf("report listed as %q, want an empty <stat>", info[0])
		}
	})
	t.Run("wavecom", func(t *testing.T) {
		_, _, r := plugRaw(t, wavecomProfile())
		if got := r.quiet(t, "AT+CPIN?\r", 150*time.Millisecond); !strings.HasPrefix(got, "\r\n+CPIN: READY\r\n") || strings.Contains(got, "OK") {
			t.Fatalf("AT+CPIN?: %q (want no OK)", got)
		}
		if got := r.exchange(t, "AT+CGMI\r", "OK"); !strings.Contains(got, "\r\n WAVECOM MODEM \r\n") {
			t.Fatalf("AT+CGMI: %q", got)
		}
		if got := r.exchange(t, "AT+CPMS=\"SM\",\"SM\"\r", "OK"); !strings.Contains(got, "+CPMS: 0,30,0,30\r\n") {
			t.Fatalf("two memories: %q", got)
		}
		if got := r.exchange(t, "AT+CPMS=\"SM\",\"SM\",\"SM\"\r", "ERROR"); strings.Contains(got, "OK") {
			t.Fatalf("a third memory accepted: %q", got)
		}
		if got := r.exchange(t, "AT+CNMI=2,1,0,2\r", "\r\n"); !strings.Contains(got, "OK") {
			t.Fatalf("four +CNMI parameters: %q", got)
		}
	})
	t.Run("telit and cinterion noise", func(t *testing.T) {
		for _, p := range []Profile{telitProfile(), cinterionProfile()} {
			t.Run(p.Name, func(t *testing.T) {
				_, _, r := plugRaw(t, p)
				if got := r.exchange(t, "AT+CSQ\r", "OK"); !strings.Contains(got, p.Noise[0]) {
					t.Fatalf("%s: %q", p.Name, got)
				}
			})
		}
	})
	t.Run("cinterion boot", func(t *testing.T) {
		n, err := NewNetwork()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		m, _ := n.AddModem("+15550611", WithProfile(cinterionProfile()))
		c, _ := m.Pipe()
		tm := newTerm(t, c)
		if l := tm.line(); l != "^SYSSTART" {
			t.Fatalf("boot %q", l)
		}
	})
	t.Run("nrf91", func(t *testing.T) {
		clk, n, ta, _, _, _ := manualPair(t, WithConditions(Conditions{Latency: Fixed(time.Second)}))
		nr, tn := addTerm(t, n, "+15550004", nrf91Profile())
		if _, f := tn.cmd("AT+CMGL=4"); f != "ERROR" {
			t.Fatalf("+CMGL: %s", f)
		}
		if _, f := tn.cmd("AT+CNMI=2,1,0,2,0"); f == "OK" {
			t.Fatal("storage routing accepted")
		}
		tn.mustOK(`AT+CPMS="TA","TA"`)
		tn.mustOK("AT+CNMI=3,2,0,1")
		ta.mustOK("ATE0")
		if _, f := ta.send(submitPDU(t, "+15550004", []byte("n"), false)); f != "OK" {
			t.Fatal(f)
		}
		clk.Advance(time.Second)
		if l := tn.line(); !strings.HasPrefix(l, "+CMT: ") {
			t.Fatalf("%q", l)
		}
		_ = tn.line()
		tn.mustOK("AT+CNMA=1") // acknowledged although +CSMS is 0
		waitFor(t, func() bool { return n.Stats().Delivered == 1 })
		nr.DropSMSClient()
		if l := tn.line(); l != "+CMS ERROR: 524" {
			t.Fatalf("after DropSMSClient: %q", l)
		}
	})
}

// The test knobs: raw storage, interleaved lines, skewed lengths, chunked
// output, stuck echo.
func TestDialectKnobs(t *testing.T) {
	_, m, r := plugRaw(t, genericProfile(), WithLengthSkew(3), WithChunkedWrites(3), WithEchoStuck())
	idx, err := m.StoreRaw("SM", -1, 9, "ZZ-not-hex", true)
	if err != nil {
		t.Fatal(err)
	}
	m.Interleave(`+CMTI: "SM",9`, 1)
	got := r.exchange(t, "AT+CMGR="+itoa(idx)+"\r", "OK\r\n")
	for _, want := range []string{"AT+CMGR=", "+CMGR: ,,12\r\n", `+CMTI: "SM",9`, "ZZ-not-hex"} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(got, want) {
				t.Fatalf("got %q, want %q in it", got, want)
			}
		})
	}
	if strings.Index(got, "+CMTI") > strings.Index(got, "ZZ") {
		t.Fatalf("interleaved line not between header and PDU: %q", got)
	}
}
