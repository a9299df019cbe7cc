package sim

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGammuReadsStored: gammu reads a message stored on a simulated modem
// (+CPMS, +CMGL/+CMGR in PDU mode) over its pty.
func TestGammuReadsStored(t *testing.T) {
	clk := NewManualClock(t0)
	n, err := NewNetwork(WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a, _ := n.AddModem("+15550201")
	p, _ := ProfileByName("ec25")
	b, _ := n.AddModem("+15550202", WithProfile(p), WithPTYLink(filepath.Join(t.TempDir(), "ttyB")))
	ca, _ := a.Pipe()
	ta := newTerm(t, ca)
	ta.mustOK("ATE0")
	if _, f := ta.send(text7(t, "+15550202", "stored hello")); f != "OK" {
		t.Fatal(f)
	}
	dev, err := b.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	waitFor(t, func() bool { return b.Stats().Received == 1 })
	out, err := gammu(t, dev, "getallsms")
	if err != nil {
		t.Fatalf("getallsms: %v\n%s", err, out)
	}
	if !strings.Contains(out, "stored hello") || !strings.Contains(out, "+15550201") {
		t.Fatalf("getallsms output:\n%s", out)
	}
}
