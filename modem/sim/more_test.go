package sim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"
)

// TestConcatenatedBinary sends a 3-segment 8-bit message with a 16-bit
// reference UDH, as the SMS bearer does, and checks that every segment
// arrives with its UDH and data intact.
func TestConcatenatedBinary(t *testing.T) {
	clk, n, ta, tb, a, _ := manualPair(t)
	tb.mustOK("AT+CNMI=2,2,0,0,0")
	msg := make([]byte, 3*133-20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	s, _ := tpdu.NewSubmit()
	s.DA = numberAddress("+15550002")
	s.DCS = tpdu.Dcs8BitData
	segs := s.Segment(msg, tpdu.With16BitConcatRef)
	if len(segs) != 3 {
		t.Fatalf("%d segments", len(segs))
	}
	for _, sg := range segs {
		b, err := sg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, f := ta.send(b); f != "OK" {
			t.Fatal(f)
		}
	}
	clk.Advance(0)
	var got []byte
	for i := range 3 {
		d := readCMT(t, tb)
		total, seq, _, ok := d.ConcatInfo()
		if !ok || total != 3 || seq != i+1 {
			t.Fatalf("segment %d: concat %v %d/%d", i, ok, seq, total)
		}
		got = append(got, d.UD...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("reassembled data differs")
	}
	if s := n.Stats(); s.Segments != 3 || s.Submitted != 3 {
		t.Fatalf("%+v", s)
	}
	if s := a.Stats(); s.Segments != 3 || s.Sent != 3 {
		t.Fatalf("%+v", s)
	}
}

// TestCNMIBufferMode: with <mode> 0 indications are held in the TA and
// flushed when <mode> goes to 1-3 with <bfr> 0, or dropped with <bfr> 1.
func TestCNMIBufferMode(t *testing.T) {
	for _, bfr := range []int{0, 1} {
		t.Run("bfr="+itoa(bfr), func(t *testing.T) {
			clk, _, ta, tb, _, _ := manualPair(t)
			tb.mustOK("AT+CNMI=0,1,0,0,0")
			if _, f := ta.send(submitPDU(t, "+15550002", []byte("b"), false)); f != "OK" {
				t.Fatal(f)
			}
			clk.Advance(0)
			waitFor(t, func() bool {
				info := tb.mustOK("AT+CPMS?")
				return strings.HasPrefix(info[0], `+CPMS: "SM",1,`)
			})
			info, _ := tb.cmd("AT+CNMI=2,1,0,0," + itoa(bfr))
			if len(info) != 0 {
				t.Fatalf("info %q", info)
			}
			if bfr == 0 {
				if l := tb.line(); l != `+CMTI: "SM",1` {
					t.Fatalf("flushed %q", l)
				}
			} else {
				tb.mustOK("AT") // nothing came before this OK
			}
		})
	}
}

func TestStorageCommands(t *testing.T) {
	_, _, tm := plugged(t, genericProfile(), WithStorageCapacity(4))
	tm.mustOK("ATE0")
	tm.mustOK("AT+CMEE=1")
	pdu := submitPDU(t, "+15550002", []byte("w"), false)
	write := func(stat string) string {
		t.Helper()
		if _, err := tm.conn.Write([]byte("AT+CMGW=" + itoa(len(pdu)) + "," + stat + "\r")); err != nil {
			t.Fatal(err)
		}
		if l := tm.line(); l != "> " {
			t.Fatal(l)
		}
		if _, err := tm.conn.Write([]byte("00" + strings.ToUpper(hexString(pdu)) + "\x1a")); err != nil {
			t.Fatal(err)
		}
		l := tm.line()
		if f := tm.line(); f != "OK" {
			t.Fatal(l, f)
		}
		return l
	}
	for i, stat := range []string{"2", "3", "2", "3"} {
		if l := write(stat); l != "+CMGW: "+itoa(i+1) {
			t.Fatalf("cmgw %q", l)
		}
	}
	// ESC at the prompt cancels: OK, nothing stored.
	if _, err := tm.conn.Write([]byte("AT+CMGW=" + itoa(len(pdu)) + "\r")); err != nil {
		t.Fatal(err)
	}
	if l := tm.line(); l != "> " {
		t.Fatal(l)
	}
	if _, err := tm.conn.Write([]byte("0011\x1b")); err != nil {
		t.Fatal(err)
	}
	if l := tm.line(); l != "OK" {
		t.Fatal(l)
	}
	if _, f := tm.cmd("AT+CMGL=4"); f != "OK" {
		t.Fatal(f)
	}
	if info := tm.mustOK("AT+CMGL=2"); len(info) != 4 || !strings.HasPrefix(info[0], "+CMGL: 1,2,,") {
		t.Fatalf("%q", info)
	}
	if info := tm.mustOK("AT+CMGL=3"); len(info) != 4 || !strings.HasPrefix(info[0], "+CMGL: 2,3,,") {
		t.Fatalf("%q", info)
	}
	tm.mustOK("AT+CMGD=1,2") // read and sent: removes 2 and 4
	if info := tm.mustOK("AT+CMGL=4"); len(info) != 4 {
		t.Fatalf("after delflag 2: %q", info)
	}
	tm.mustOK("AT+CMGD=1,3") // and unsent
	if info := tm.mustOK("AT+CMGL=4"); len(info) != 0 {
		t.Fatalf("after delflag 3: %q", info)
	}
	if _, f := tm.cmd("AT+CMGD=9"); f != "+CMS ERROR: 321" {
		t.Fatal(f)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789ABCDEF"
	var sb strings.Builder
	for _, x := range b {
		sb.WriteByte(digits[x>>4])
		sb.WriteByte(digits[x&15])
	}
	return sb.String()
}

// syncBuf is a concurrency-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTrace(t *testing.T) {
	var buf syncBuf
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, _, tm := plugged(t, genericProfile(), WithTrace(l))
	tm.mustOK("ATE0")
	tm.mustOK("AT+CGMI")
	out := buf.String()
	for _, want := range []string{`msg="sim: at rx"`, `line=AT+CGMI`, `msg="sim: at tx"`, "m2mbearer"} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(out, want) {
				t.Errorf("trace lacks %q:\n%s", want, out)
			}
		})
	}
}

func TestEndpointRefuseAndDetach(t *testing.T) {
	clk := NewManualClock(t0)
	n, err := NewNetwork(WithClock(clk), WithValidity(time.Hour, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	var mu sync.Mutex
	accept, got := false, 0
	rx, err := n.AddEndpoint("+15550002", func(m EndpointMessage) bool {
		mu.Lock()
		defer mu.Unlock()
		if accept {
			got++
		}
		return accept
	})
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := n.AddEndpoint("+15550001", nil)
	if _, err := n.AddEndpoint("+15550001", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := tx.Send(context.Background(), submitPDU(t, "+15550002", []byte("e"), false)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(0)
	if s := n.Stats(); s.Retries != 1 || s.Delivered != 0 {
		t.Fatalf("%+v", s)
	}
	mu.Lock()
	accept = true
	mu.Unlock()
	rx.SetAttached(false)
	clk.Advance(10 * time.Second) // retry finds it detached
	if s := n.Stats(); s.Delivered != 0 {
		t.Fatalf("%+v", s)
	}
	rx.SetAttached(true)
	clk.Advance(0)
	if s := n.Stats(); s.Delivered != 1 || s.Stored != 0 {
		t.Fatalf("%+v", s)
	}
	if _, err := tx.Send(context.Background(), []byte{0x00}); !errors.Is(err, ErrBadPDU) {
		t.Fatalf("short: %v", err)
	}
	if _, err := tx.Send(context.Background(), []byte{0x00, 0x00, 0x00}); !errors.Is(err, ErrBadPDU) {
		t.Fatalf("deliver as submit: %v", err)
	}
}

func TestCongestionAndClose(t *testing.T) {
	clk := NewManualClock(t0)
	n, err := NewNetwork(WithClock(clk), WithMaxStored(1))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := n.AddModem("+15550001")
	ca, _ := a.Pipe()
	ta := newTerm(t, ca)
	ta.mustOK("ATE0")
	ta.mustOK("AT+CMEE=1")
	if _, f := ta.send(submitPDU(t, "+19999", []byte("1"), false)); f != "OK" {
		t.Fatal(f)
	}
	if _, f := ta.send(submitPDU(t, "+19999", []byte("2"), false)); f != "+CMS ERROR: 42" {
		t.Fatalf("congestion: %s", f)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Plugged() {
		t.Fatal("modem still plugged after Close")
	}
	if _, err := a.Pipe(); !errors.Is(err, ErrClosed) {
		t.Fatalf("plug after close: %v", err)
	}
	if _, err := n.AddModem("+15550009"); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}

func TestManualClock(t *testing.T) {
	c := NewManualClock(t0)
	var order []int
	c.AfterFunc(2*time.Second, func() { order = append(order, 2) })
	c.AfterFunc(time.Second, func() { order = append(order, 1) })
	stop := c.AfterFunc(time.Second, func() { order = append(order, 99) })
	if !stop.Stop() || stop.Stop() {
		t.Fatal("Stop")
	}
	c.AfterFunc(time.Second, func() {
		if !c.Now().Equal(t0.Add(time.Second)) {
			t.Errorf("now in callback %v", c.Now())
		}
		c.AfterFunc(0, func() { order = append(order, 3) })
	})
	c.Advance(1500 * time.Millisecond)
	c.Advance(time.Second)
	if got := order; len(got) != 3 || got[0] != 1 || got[1] != 3 || got[2] != 2 {
		t.Fatalf("order %v", got)
	}
	if !c.Now().Equal(t0.Add(2500*time.Millisecond)) || c.Pending() != 0 {
		t.Fatal(c.Now(), c.Pending())
	}
}

// TestCNMIClasses: <mt>=2 stores class 2 (SIM) messages with +CMTI and
// routes the others with +CMT; <mt>=3 routes only class 3 directly.
func TestCNMIClasses(t *testing.T) {
	clk, _, ta, tb, _, _ := manualPair(t)
	send := func(dcs tpdu.DCS) {
		t.Helper()
		s, _ := tpdu.NewSubmit()
		s.DA = numberAddress("+15550002")
		s.DCS = dcs
		s.UD = []byte{1}
		b, _ := s.MarshalBinary()
		if _, f := ta.send(b); f != "OK" {
			t.Fatal(f)
		}
		clk.Advance(0)
	}
	tb.mustOK("AT+CNMI=2,2,0,0,0")
	send(0xf6) // 8-bit, class 2
	if l := tb.line(); l != `+CMTI: "SM",1` {
		t.Fatalf("class 2 with mt=2: %q", l)
	}
	send(0xf5) // 8-bit, class 1
	readCMT(t, tb)
	tb.mustOK("AT+CNMI=2,3,0,0,0")
	send(0xf7) // class 3
	readCMT(t, tb)
	send(tpdu.Dcs8BitData) // no class
	if l := tb.line(); l != `+CMTI: "SM",2` {
		t.Fatalf("no class with mt=3: %q", l)
	}
}
