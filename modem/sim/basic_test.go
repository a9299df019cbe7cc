package sim

import (
	"strings"
	"testing"
	"time"
)

func newPair(t *testing.T, opts ...NetworkOption) (*Network, *term, *term, *Modem, *Modem) {
	t.Helper()
	n, err := NewNetwork(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a, err := n.AddModem("+15550001")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddModem("+15550002")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := a.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return n, newTerm(t, ca), newTerm(t, cb), a, b
}

func TestSendReceiveCMTI(t *testing.T) {
	_, ta, tb, _, b := newPair(t)
	for _, c := range []string{"ATE0", "AT+CMEE=1", "AT+CMGF=0", "AT+CNMI=2,1,0,0,0"} {
		ta.mustOK(c)
		tb.mustOK(c)
	}
	info, final := ta.send(submitPDU(t, "+15550002", []byte{1, 2, 3, 0xff}, false))
	if final != "OK" || len(info) != 1 || info[0] != "+CMGS: 0" {
		t.Fatalf("send: %q %s", info, final)
	}
	urc := tb.line()
	if urc != `+CMTI: "SM",1` {
		t.Fatalf("urc %q", urc)
	}
	info = tb.mustOK("AT+CMGR=1")
	if len(info) != 2 || !strings.HasPrefix(info[0], "+CMGR: 0,,") {
		t.Fatalf("cmgr %q", info)
	}
	d := decodeDeliverHex(t, info[1])
	if d.OA.Number() != "+15550001" || string(d.UD) != "\x01\x02\x03\xff" {
		t.Fatalf("deliver %+v", d)
	}
	tb.mustOK("AT+CMGD=1")
	if got := b.Stats(); got.Received != 1 || got.Stored != 0 {
		t.Fatalf("stats %+v", got)
	}
	_ = time.Second
}
