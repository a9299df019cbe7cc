package sim

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestHangMidCommand(t *testing.T) {
	n, err := NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	m, _ := n.AddModem("+15550001", WithSendTime(time.Hour))
	c, _ := m.Pipe()
	tm := newTerm(t, c)
	tm.mustOK("ATE0")
	// A +CMGS in progress: the modem hangs and never answers it.
	if _, err := c.Write([]byte("AT+CMGS=11\r")); err != nil {
		t.Fatal(err)
	}
	if l := tm.line(); l != "> " {
		t.Fatal(l)
	}
	if _, err := c.Write([]byte("0001000891515500020000FF0178\x1a")); err != nil {
		t.Fatal(err)
	}
	m.Hang()
	if _, err := c.Write([]byte("AT\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-tm.lines:
		t.Fatalf("hung modem answered %q", l)
	case <-time.After(200 * time.Millisecond):
	}
	// Replug cures it.
	m.Unplug()
	c2, err := m.Replug()
	if err != nil {
		t.Fatal(err)
	}
	tm2 := newTerm(t, c2)
	tm2.mustOK("ATE0")
	if s := m.Stats(); s.Plugs != 2 {
		t.Fatalf("%+v", s)
	}
}

func TestUnplugPipe(t *testing.T) {
	clk := NewManualClock(t0)
	n, err := NewNetwork(WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a, _ := n.AddModem("+15550001")
	b, _ := n.AddModem("+15550002")
	ca, _ := a.Pipe()
	cb, _ := b.Pipe()
	ta := newTerm(t, ca)
	ta.mustOK("ATE0")
	b.Unplug()
	// The driver's end reads EOF.
	buf := make([]byte, 16)
	if _, err := cb.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after unplug: %v", err)
	}
	if _, err := b.Pipe(); err != nil {
		t.Fatal(err)
	}
	b.Unplug()
	// Messages to an unplugged modem wait in the SMSC.
	if _, f := ta.send(submitPDU(t, "+15550002", []byte("w"), false)); f != "OK" {
		t.Fatal(f)
	}
	clk.Advance(time.Minute)
	if s := n.Stats(); s.Stored != 1 || s.Delivered != 0 {
		t.Fatalf("%+v", s)
	}
	cb2, err := b.Replug()
	if err != nil {
		t.Fatal(err)
	}
	tb := newTerm(t, cb2)
	tb.mustOK("ATE0") // settings reset: echo was on again
	clk.Advance(0)
	waitFor(t, func() bool { return n.Stats().Delivered == 1 })
	// Power-up default +CNMI of the generic profile is 0,0: stored, no URC.
	info := tb.mustOK("AT+CMGL=4")
	if len(info) != 2 || string(decodeDeliverHex(t, info[1]).UD) != "w" {
		t.Fatalf("%q", info)
	}
}

func TestPTYUnplugReplug(t *testing.T) {
	n, err := NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	link := filepath.Join(t.TempDir(), "ttyUSB-sim0")
	p, _ := ProfileByName("ec25")
	m, _ := n.AddModem("+15550001", WithProfile(p), WithPTYLink(link))
	path, err := m.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	if path != link || m.PTYPath() != link {
		t.Fatalf("path %q", path)
	}
	first, _ := os.Readlink(link)
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tm := newTerm(t, f)
	for _, want := range append(p.BootURCs, p.ReadyURCs...) {
		if l := tm.line(); l != want {
			t.Fatalf("boot %q want %q", l, want)
		}
	}
	tm.mustOK("ATE0")
	if info := tm.mustOK("AT+CGMM"); info[0] != "EC25" {
		t.Fatalf("%q", info)
	}
	m.Unplug()
	// The name goes away, as udev removes /dev/ttyUSBn.
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link after unplug: %v", err)
	}
	// The driver's reads end (EIO or EOF), as after a USB unplug.
	var rerr error
	select {
	case _, ok := <-tm.lines:
		if ok {
			t.Fatal("data after unplug")
		}
	case <-time.After(waitLimit):
		t.Fatal("no error after unplug")
	}
	buf := make([]byte, 1)
	_, rerr = f.Read(buf)
	// Linux hangs the slave up when the master closes: EIO, then EOF.
	if !errors.Is(rerr, syscall.EIO) && !errors.Is(rerr, io.EOF) {
		t.Fatalf("read after unplug: %v", rerr)
	}
	if _, err := m.Replug(); err != nil {
		t.Fatal(err)
	}
	second, _ := os.Readlink(link)
	if second == "" || second == first && m.PTYPath() != link {
		t.Fatalf("link %q -> %q", first, second)
	}
	f2, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tm2 := newTerm(t, f2)
	for range len(p.BootURCs) + len(p.ReadyURCs) {
		tm2.line()
	}
	tm2.mustOK("ATE0")
	m.Unplug()
}

// TestHungModemLosesNothing: a hung modem takes no messages; after a replug
// the SMSC's retry delivers them.
func TestHungModemLosesNothing(t *testing.T) {
	clk, n, ta, tb, _, b := manualPair(t, WithValidity(time.Hour, 30*time.Second))
	tb.mustOK("AT+CNMI=2,2,0,0,0")
	b.Hang()
	if _, f := ta.send(submitPDU(t, "+15550002", []byte("h"), false)); f != "OK" {
		t.Fatal(f)
	}
	clk.Advance(0)
	if s := n.Stats(); s.Delivered != 0 || s.Retries != 1 {
		t.Fatalf("%+v", s)
	}
	b.Unplug()
	c, err := b.Replug()
	if err != nil {
		t.Fatal(err)
	}
	tb2 := newTerm(t, c)
	tb2.mustOK("ATE0")
	tb2.mustOK("AT+CNMI=2,2,0,0,0")
	clk.Advance(30 * time.Second)
	if d := readCMT(t, tb2); string(d.UD) != "h" {
		t.Fatalf("%q", d.UD)
	}
	waitFor(t, func() bool { return n.Stats().Delivered == 1 })
}
