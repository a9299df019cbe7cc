package secure

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// deadlinePlain is a memBearer that records WriteToBefore calls and
// reports a backlog.
type deadlinePlain struct {
	*memBearer
	before atomic.Int32
}

func (d *deadlinePlain) WriteToBefore(p []byte, a net.Addr, _ time.Time) (int, error) {
	d.before.Add(1)
	return d.WriteTo(p, a)
}
func (d *deadlinePlain) Backlog(net.Addr) int { return 7 }

// TestMixed: a plain peer and a DTLS peer through one Mixed: reads from
// both sides with their identities, writes routed by the predicate,
// deadlines passed to the plain side, backlogs asked of the right side,
// a side that fails ends the Mixed with its error.
func TestMixed(t *testing.T) {
	n := newMemNet()
	srv, err := NewServer(n.attach("srv-dtls", memParams()), &Config{PSKLookup: pskLookup, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	plain := &deadlinePlain{memBearer: n.attach("srv-plain", memParams())}
	if _, err := NewMixed(nil, srv, func(net.Addr) bool { return false }); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("nil plain: %v", err)
	}
	m, err := NewMixed(plain, srv, func(a net.Addr) bool { return a.String() == "dtls-dev" })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if p := m.Params(); p.Name != "mem" || p.MaxDatagram != srv.Params().MaxDatagram {
		t.Fatalf("params %+v", p)
	}
	conn, err := Dial(testCtx(t), n.attach("dtls-dev", memParams()), memAddr("srv-dtls"), &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dev := n.attach("plain-dev", memParams())
	if _, err := conn.WriteTo([]byte("secret"), memAddr("srv-dtls")); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteTo([]byte("plain"), memAddr("srv-plain")); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	_ = m.SetReadDeadline(time.Now().Add(testWait))
	buf := make([]byte, 64)
	for range 2 {
		k, a, err := m.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		got[a.String()] = string(buf[:k]) + "|" + bearer.PeerIdentity(a).String()
		if _, err := m.WriteToBefore(buf[:k], a, time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("echo to %v: %v", a, err)
		}
	}
	if got["dtls-dev"] != "secret|psk:dev-1" || got["plain-dev"] != "plain|none" {
		t.Fatalf("read %v", got)
	}
	if plain.before.Load() != 1 {
		t.Fatalf("deadline writes to the plain side: %d", plain.before.Load())
	}
	if m.Backlog(memAddr("plain-dev")) != 7 || m.Backlog(memAddr("dtls-dev")) != 0 {
		t.Fatal("backlog asked of the wrong side")
	}
	_ = conn.SetReadDeadline(time.Now().Add(testWait))
	if k, _, err := conn.ReadFrom(buf); err != nil || string(buf[:k]) != "secret" {
		t.Fatalf("DTLS echo %q %v", buf[:k], err)
	}
	_ = plain.memBearer.Close() // the plain side fails
	_ = m.SetReadDeadline(time.Now().Add(testWait))
	if _, _, err := m.ReadFrom(buf); err == nil || !strings.Contains(err.Error(), "mem side") || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after the plain side failed: %v", err)
	}
}
