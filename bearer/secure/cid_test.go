package secure

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// lastTypes records the content type of the last datagram a bearer sent
// and received.
type lastTypes struct {
	bearer.Bearer
	sent, recv atomic.Int32
}

func (b *lastTypes) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := b.Bearer.ReadFrom(p)
	if err == nil && n > 0 {
		b.recv.Store(int32(p[0]))
	}
	return n, a, err
}

func (b *lastTypes) WriteTo(p []byte, addr net.Addr) (int, error) {
	b.sent.Store(int32(p[0]))
	return b.Bearer.WriteTo(p, addr)
}

// TestCIDLength: Config.CIDLength nil is the default (the server issues
// DefaultCIDLength-byte CIDs, the client sends them and asks none), new(0)
// means no connection IDs on that side, new(n) a client's own n-byte CID.
// The records each side sends after the handshake show what was agreed.
func TestCIDLength(t *testing.T) {
	for _, tc := range []struct {
		name             string
		srv, cli         *int
		cliSent, cliRecv int32 // record types: 23 plain, 25 tls12_cid
		overhead         int   // the client's Params: record bytes assumed
	}{
		{name: "defaults", cliSent: contentTLS12CID, cliRecv: contentApplicationData, overhead: 36},
		{name: "server new(0)", srv: new(0), cliSent: contentApplicationData, cliRecv: contentApplicationData, overhead: 29},
		{name: "client new(0)", cli: new(0), cliSent: contentApplicationData, cliRecv: contentApplicationData, overhead: 29},
		{name: "client new(4)", cli: new(4), cliSent: contentTLS12CID, cliRecv: contentTLS12CID, overhead: 36},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet()
			startServer(t, n, &Config{PSKLookup: pskLookup, CIDLength: tc.srv, Logger: discardLogger()})
			inner := &lastTypes{Bearer: n.attach("dev", memParams())}
			c, err := Dial(testCtx(t), inner, memAddr("srv"), &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"], CIDLength: tc.cli, Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := roundTrip(t, c, "x"); got != "psk:dev-1|x" {
				t.Fatalf("echo %q", got)
			}
			if s, r := inner.sent.Load(), inner.recv.Load(); s != tc.cliSent || r != tc.cliRecv {
				t.Fatalf("client sent a record of type %d, received %d; want %d, %d", s, r, tc.cliSent, tc.cliRecv)
			}
			if o := memParams().MaxDatagram - c.Params().MaxDatagram; o != tc.overhead {
				t.Fatalf("client Params: %d bytes of overhead, want %d", o, tc.overhead)
			}
		})
	}
}
