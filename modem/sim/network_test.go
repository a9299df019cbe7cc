package sim

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// manualPair is two generic modems on a network stepped by a ManualClock.
func manualPair(t *testing.T, opts ...NetworkOption) (*ManualClock, *Network, *term, *term, *Modem, *Modem) {
	t.Helper()
	clk := NewManualClock(t0)
	n, ta, tb, a, b := newPair(t, append([]NetworkOption{WithClock(clk)}, opts...)...)
	for _, tm := range []*term{ta, tb} {
		tm.mustOK("ATE0")
		tm.mustOK("AT+CMEE=1")
	}
	return clk, n, ta, tb, a, b
}

// readCMT reads one +CMT URC and its PDU, returning the SMS-DELIVER.
func readCMT(t *testing.T, tm *term) *tpdu.TPDU {
	t.Helper()
	l := tm.line()
	if !strings.HasPrefix(l, "+CMT: ,") {
		t.Fatalf("want +CMT, got %q", l)
	}
	return decodeDeliverHex(t, tm.line())
}

func TestCMTWithoutAck(t *testing.T) {
	clk, n, ta, tb, _, _ := manualPair(t, WithConditions(Conditions{Latency: Fixed(3 * time.Second)}))
	tb.mustOK("AT+CNMI=2,2,0,0,0")
	if _, f := ta.send(submitPDU(t, "+15550002", []byte("x"), false)); f != "OK" {
		t.Fatal(f)
	}
	clk.Advance(2 * time.Second)
	if s := n.Stats(); s.Delivered != 0 || s.Stored != 1 {
		t.Fatalf("delivered before latency: %+v", s)
	}
	clk.Advance(time.Second)
	d := readCMT(t, tb)
	if string(d.UD) != "x" || !d.SCTS.Equal(t0) {
		t.Fatalf("deliver %+v", d)
	}
	waitFor(t, func() bool { return n.Stats().Delivered == 1 })
	// Nothing stays scheduled for a delivered message (no 24 h expiry
	// event left behind).
	if s := n.Stats(); s.Scheduled != 0 || s.Stored != 0 {
		t.Fatalf("%+v", s)
	}
}

// waitFor polls cond (state owned by other goroutines) with a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCMTAckAndTimeout(t *testing.T) {
	clk, n, ta, tb, _, b := manualPair(t)
	tb.mustOK("AT+CSMS=1")
	tb.mustOK("AT+CNMI=2,2,0,1,0")
	for i := range 2 {
		if _, f := ta.send(submitPDU(t, "+15550002", []byte{byte(i)}, false)); f != "OK" {
			t.Fatal(f)
		}
	}
	clk.Advance(0)
	d := readCMT(t, tb)
	if d.UD[0] != 0 {
		t.Fatalf("first %v", d.UD)
	}
	// The second waits for the acknowledgement of the first.
	tb.mustOK("AT+CNMA")
	d = readCMT(t, tb)
	if d.UD[0] != 1 {
		t.Fatalf("second %v", d.UD)
	}
	waitFor(t, func() bool { return n.Stats().Delivered == 1 })
	// No ack: after the timeout the ME turns routing off (mt=0, ds=0) and
	// the network retries into storage.
	clk.Advance(15 * time.Second)
	waitFor(t, func() bool { return b.Stats().AckTimeouts == 1 })
	if info := tb.mustOK("AT+CNMI?"); info[0] != "+CNMI: 2,0,0,0,0" {
		t.Fatalf("after timeout %q", info)
	}
	clk.Advance(30 * time.Second)
	waitFor(t, func() bool { return n.Stats().Delivered == 2 })
	info := tb.mustOK("AT+CMGL=4")
	if len(info) != 2 || !strings.HasPrefix(info[0], "+CMGL: 1,0,,") {
		t.Fatalf("stored %q", info)
	}
	if decodeDeliverHex(t, info[1]).UD[0] != 1 {
		t.Fatal("wrong message stored")
	}
	if s := n.Stats(); s.Retries != 1 || s.Stored != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStatusReports(t *testing.T) {
	for _, c := range []struct {
		name string
		cnmi string
		urc  string
	}{
		{"CDS", "AT+CNMI=2,1,0,1,0", "+CDS: "},
		{"CDSI", "AT+CNMI=2,1,0,2,0", `+CDSI: "SM",1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk, n, ta, tb, _, _ := manualPair(t, WithConditions(Conditions{Latency: Fixed(time.Second)}))
			ta.mustOK(c.cnmi)
			tb.mustOK("AT+CNMI=2,1,0,0,0")
			info, f := ta.send(submitPDU(t, "+15550002", []byte("srr"), true))
			if f != "OK" {
				t.Fatal(f)
			}
			mr := strings.TrimPrefix(info[0], "+CMGS: ")
			clk.Advance(time.Second)
			if l := tb.line(); l != `+CMTI: "SM",1` {
				t.Fatalf("receiver %q", l)
			}
			waitFor(t, func() bool { return n.Stats().Delivered == 1 })
			clk.Advance(time.Second)
			l := ta.line()
			if !strings.HasPrefix(l, c.urc) {
				t.Fatalf("originator %q", l)
			}
			var h string
			if c.name == "CDS" {
				h = ta.line()
			} else {
				info := ta.mustOK("AT+CMGR=1")
				h = info[1]
			}
			r := decodeDeliverHex(t, h)
			if r.SmsType() != tpdu.SmsStatusReport || fmt.Sprint(r.MR) != mr || r.ST != StatusReceived ||
				r.RA.Number() != "+15550002" {
				t.Fatalf("report %+v", r)
			}
			waitFor(t, func() bool { return n.Stats().StatusReports == 1 })
		})
	}
}

// receiveOrder sends count numbered messages through a network with
// faults and returns the numbers in the order they arrive.
func receiveOrder(t *testing.T, seed uint64, count int) ([]int, NetworkStats) {
	t.Helper()
	cond := Conditions{Latency: Uniform(time.Second, 5*time.Second), Loss: 0.2, Duplicate: 0.2,
		Reorder: 0.2, ReorderDelay: 20 * time.Second}
	clk, n, ta, tb, _, _ := manualPair(t, WithSeed(seed), WithConditions(cond))
	tb.mustOK("AT+CNMI=2,2,0,0,0")
	for i := range count {
		if _, f := ta.send(submitPDU(t, "+15550002", []byte{byte(i)}, false)); f != "OK" {
			t.Fatal(f)
		}
	}
	clk.Advance(time.Minute)
	waitFor(t, func() bool { s := n.Stats(); return s.Stored == 0 })
	s := n.Stats()
	var got []int
	for range s.Delivered {
		got = append(got, int(readCMT(t, tb).UD[0]))
	}
	return got, s
}

func TestFaultsDeterministicBySeed(t *testing.T) {
	const count = 60
	a, sa := receiveOrder(t, 7, count)
	b, sb := receiveOrder(t, 7, count)
	c, _ := receiveOrder(t, 8, count)
	if fmt.Sprint(a) != fmt.Sprint(b) || sa != sb {
		t.Fatalf("same seed, different runs:\n%v %+v\n%v %+v", a, sa, b, sb)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatalf("seeds 7 and 8 gave the same run %v", a)
	}
	if sa.Lost == 0 || sa.Duplicated == 0 || sa.Reordered == 0 {
		t.Fatalf("faults not exercised: %+v", sa)
	}
	if int(sa.Delivered) != count-int(sa.Lost)+int(sa.Duplicated) {
		t.Fatalf("delivered %d != %d - %d + %d", sa.Delivered, count, sa.Lost, sa.Duplicated)
	}
	inversions := 0
	for i := 1; i < len(a); i++ {
		if a[i] < a[i-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatalf("no reordering in %v", a)
	}
}

func TestStorageFullRetry(t *testing.T) {
	clk := NewManualClock(t0)
	n, err := NewNetwork(WithClock(clk), WithValidity(time.Hour, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a, _ := n.AddModem("+15550001")
	b, _ := n.AddModem("+15550002", WithStorageCapacity(2))
	ca, _ := a.Pipe()
	cb, _ := b.Pipe()
	ta, tb := newTerm(t, ca), newTerm(t, cb)
	ta.mustOK("ATE0")
	tb.mustOK("ATE0")
	tb.mustOK("AT+CNMI=2,1,0,0,0")
	for i := range 3 {
		if _, f := ta.send(submitPDU(t, "+15550002", []byte{byte(i)}, false)); f != "OK" {
			t.Fatal(f)
		}
	}
	clk.Advance(0)
	for i := 1; i <= 2; i++ {
		if l := tb.line(); l != `+CMTI: "SM",`+itoa(i) {
			t.Fatalf("urc %q", l)
		}
	}
	waitFor(t, func() bool { return n.Stats().Retries == 1 })
	if info := tb.mustOK("AT+CPMS?"); info[0] != `+CPMS: "SM",2,2,"SM",2,2,"SM",2,2` {
		t.Fatalf("%q", info)
	}
	// Deleting frees memory: the SMSC is told and delivers at once.
	tb.mustOK("AT+CMGD=1")
	clk.Advance(0)
	if l := tb.line(); l != `+CMTI: "SM",1` {
		t.Fatalf("after delete %q", l)
	}
	waitFor(t, func() bool { return n.Stats().Delivered == 3 })
}

func TestExpiryAndUnknownNumbers(t *testing.T) {
	clk, n, ta, _, _, _ := manualPair(t, WithValidity(time.Hour, time.Minute))
	ta.mustOK("AT+CNMI=2,1,0,1,0")
	// A number that no modem has: the SMSC keeps it for the validity
	// period, then reports "validity period expired".
	if _, f := ta.send(submitPDU(t, "+19999999", []byte("?"), true)); f != "OK" {
		t.Fatal(f)
	}
	clk.Advance(59 * time.Minute)
	if s := n.Stats(); s.Expired != 0 || s.Stored != 1 {
		t.Fatalf("%+v", s)
	}
	clk.Advance(time.Minute)
	ta.line()
	r := decodeDeliverHex(t, ta.line())
	if r.ST != StatusValidityExpired {
		t.Fatalf("status %#x", r.ST)
	}
	// A provisioned number that appears later gets the message then.
	n.Provision("+15550003")
	if _, f := ta.send(submitPDU(t, "+15550003", []byte("later"), false)); f != "OK" {
		t.Fatal(f)
	}
	clk.Advance(10 * time.Minute)
	c, _ := n.AddModem("+15550003")
	cc, _ := c.Pipe()
	tc := newTerm(t, cc)
	tc.mustOK("ATE0")
	tc.mustOK("AT+CNMI=2,1,0,0,0")
	clk.Advance(time.Minute) // deliveries happen when the clock moves
	waitFor(t, func() bool { return c.Stats().Received == 1 })
}

func TestRejectUnknown(t *testing.T) {
	clk, n, ta, _, _, _ := manualPair(t, WithRejectUnknown())
	ta.mustOK("AT+CNMI=2,1,0,1,0")
	if _, f := ta.send(submitPDU(t, "+19999999", []byte("?"), true)); f != "OK" {
		t.Fatal(f)
	}
	clk.Advance(0)
	ta.line()
	r := decodeDeliverHex(t, ta.line())
	if r.ST != StatusNotObtainable {
		t.Fatalf("status %#x", r.ST)
	}
	if s := n.Stats(); s.Failed != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestCMSInjectionAndSendTime(t *testing.T) {
	clk := NewManualClock(t0)
	n, err := NewNetwork(WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a, _ := n.AddModem("+15550001", WithSendTime(2*time.Second))
	ca, _ := a.Pipe()
	ta := newTerm(t, ca)
	ta.mustOK("ATE0")
	ta.mustOK("AT+CMEE=1")
	a.InjectCMSError(38, 2)
	for range 2 {
		if _, f := ta.send(submitPDU(t, "+15550002", []byte("x"), false)); f != "+CMS ERROR: 38" {
			t.Fatalf("injected: %s", f)
		}
	}
	done := make(chan string, 1)
	go func() {
		_, f := ta.send(submitPDU(t, "+15550002", []byte("x"), false))
		done <- f
	}()
	waitFor(t, func() bool { return clk.Pending() > 0 })
	select {
	case f := <-done:
		t.Fatalf("answered before the send time: %s", f)
	default:
	}
	clk.Advance(2 * time.Second)
	select {
	case f := <-done:
		if f != "OK" {
			t.Fatal(f)
		}
	case <-time.After(waitLimit):
		t.Fatal("no answer")
	}
	if s := a.Stats(); s.Sent != 1 || s.SendFailed != 2 {
		t.Fatalf("%+v", s)
	}
	// Not registered: +CMS ERROR 331.
	a.SetRegistered(false)
	if _, f := ta.send(submitPDU(t, "+15550002", []byte("x"), false)); f != "+CMS ERROR: 331" {
		t.Fatal(f)
	}
}

func TestLatencyDistributions(t *testing.T) {
	n, err := NewNetwork(WithSeed(3))
	if err != nil {
		t.Fatal(err)
	}
	r := n.rng
	for i := range 1000 {
		if d := Fixed(time.Second)(r); d != time.Second {
			t.Fatal(d)
		}
		if d := Uniform(3*time.Second, time.Second)(r); d < time.Second || d > 3*time.Second {
			t.Fatalf("uniform %v", d)
		}
		if d := Exponential(time.Second, 2*time.Second)(r); d < time.Second || d > 41*time.Second {
			t.Fatalf("exponential %v at %d", d, i)
		}
	}
	var sum time.Duration
	for range 5000 {
		sum += Exponential(0, time.Second)(r)
	}
	if mean := sum / 5000; mean < 900*time.Millisecond || mean > 1100*time.Millisecond {
		t.Fatalf("exponential mean %v", mean)
	}
}

// TestOrderKeptWallClock: with the wall clock and no faults, messages
// from one sender arrive in the order sent.
func TestOrderKeptWallClock(t *testing.T) {
	n, err := NewNetwork(WithConditions(Conditions{Latency: Fixed(time.Millisecond)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	var mu sync.Mutex
	var got []byte
	if _, err := n.AddEndpoint("+15550002", func(m EndpointMessage) bool {
		var d tpdu.TPDU
		if err := d.UnmarshalBinary(m.TPDU); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, d.UD[0])
		mu.Unlock()
		return true
	}); err != nil {
		t.Fatal(err)
	}
	tx, _ := n.AddEndpoint("+15550001", nil)
	const count = 200
	for i := range count {
		if _, err := tx.Send(context.Background(), submitPDU(t, "+15550002", []byte{byte(i)}, false)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == count })
	mu.Lock()
	defer mu.Unlock()
	for i := range got {
		if got[i] != byte(i) {
			t.Fatalf("order broken at %d: %v", i, got)
		}
	}
}
