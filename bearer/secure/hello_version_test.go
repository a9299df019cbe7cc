package secure

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"
)

// helloWithVersion returns a real ClientHello datagram (the first flight
// of our client) with its record-layer version set to v.
func helloWithVersion(t *testing.T, v uint16) []byte {
	t.Helper()
	flight := captureClientFlight(t)
	if len(flight) == 0 || !isHelloRecord(flight[0]) {
		t.Fatalf("no ClientHello captured: %x", flight)
	}
	b := flight[0]
	b[1], b[2] = byte(v>>8), byte(v)
	return b
}

// TestHelloRecordVersion sends a ClientHello with each record-layer
// version to a live Server: every {254, xx} gets pion's HelloVerifyRequest
// (mbedTLS 2.x, Anjay's default, sends 0xFE00), anything else is dropped
// as garbage.
func TestHelloRecordVersion(t *testing.T) {
	tests := []struct {
		version   uint16
		accepted  bool
		rewritten bool
	}{
		{0xfe00, true, true}, // mbedTLS 2.x
		{0xfe01, true, true},
		{0xfefc, true, true}, // DTLS 1.3's successor numbering, unknown to pion
		{0xfefe, true, true},
		{0xfeff, true, false}, // DTLS 1.0
		{0xfefd, true, false}, // DTLS 1.2
		{0x0303, false, false},
		{0xfd00, false, false},
		{0x0000, false, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%#04x", tc.version), func(t *testing.T) {
			n := newMemNet()
			s := startServer(t, n, &Config{PSKLookup: pskLookup, Logger: discardLogger()})
			dev := n.attach("dev", memParams())
			defer dev.Close()
			if _, err := dev.WriteTo(helloWithVersion(t, tc.version), memAddr("srv")); err != nil {
				t.Fatal(err)
			}
			if !tc.accepted {
				waitFor(t, "the datagram counted as garbage", func() bool { return s.Stats().Garbage == 1 })
				if st := s.Stats(); st.Sessions != 0 || st.HelloVersionRewritten != 0 {
					t.Fatalf("refused version started a session: %+v", st)
				}
				return
			}
			_ = dev.SetReadDeadline(time.Now().Add(testWait))
			buf := make([]byte, 2048)
			k, _, err := dev.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no answer to the ClientHello: %v (stats %+v)", err, s.Stats())
			}
			// HelloVerifyRequest: epoch-0 handshake record, handshake type 3.
			if k <= recordHeaderLen || buf[0] != contentHandshake || buf[recordHeaderLen] != 3 {
				t.Fatalf("answer is not a HelloVerifyRequest: %x", buf[:k])
			}
			st := s.Stats()
			if got := st.HelloVersionRewritten == 1; got != tc.rewritten {
				t.Fatalf("HelloVersionRewritten %d, want rewritten=%v", st.HelloVersionRewritten, tc.rewritten)
			}
			if st.Garbage != 0 {
				t.Fatalf("garbage counted: %+v", st)
			}
		})
	}
}

// oldHelloBearer plays an mbedTLS 2.x client: every epoch-0 ClientHello
// record it sends carries record-layer version 0xFE00.
type oldHelloBearer struct{ *memBearer }

func (b oldHelloBearer) WriteTo(p []byte, addr net.Addr) (int, error) {
	q := bytes.Clone(p)
	for r := q; len(r) >= recordHeaderLen; {
		length := int(r[11])<<8 | int(r[12])
		if recordHeaderLen+length > len(r) {
			break
		}
		if isHelloRecord(r) {
			r[1], r[2] = 0xfe, 0x00
		}
		r = r[recordHeaderLen+length:]
	}
	return b.memBearer.WriteTo(q, addr)
}

// TestHandshakeWithOldHelloVersion: a client whose ClientHellos (the first
// and the one with the cookie) carry record version 0xFE00 completes a PSK
// handshake, and data flows; a record of any other kind with that version
// is still refused.
func TestHandshakeWithOldHelloVersion(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup, Logger: discardLogger()})
	c, err := Dial(testCtx(t), oldHelloBearer{n.attach("dev", memParams())}, memAddr("srv"),
		&Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatalf("handshake with 0xFE00 ClientHellos: %v (server %+v)", err, s.Stats())
	}
	defer c.Close()
	if got := roundTrip(t, c, "hello"); got != "psk:dev-1|hello" {
		t.Fatalf("echo %q", got)
	}
	if st := s.Stats(); st.HelloVersionRewritten < 2 || st.HandshakesOK != 1 {
		t.Fatalf("stats %+v, want both ClientHellos rewritten and one handshake", st)
	}
	atk := n.attach("dev2", memParams())
	defer atk.Close()
	for _, d := range [][]byte{
		record(contentApplicationData, 0xfe00, 1, 1, nil, []byte{1, 2, 3}),
		record(contentHandshake, 0xfe00, 0, 0, nil, []byte{handshakeServerHello, 0, 0, 0}),
		record(contentHandshake, 0xfe00, 1, 0, nil, []byte{handshakeClientHello, 0, 0, 0}), // not epoch 0
		record(contentAlert, 0xfe00, 0, 0, nil, []byte{2, 40}),
	} {
		if _, err := atk.WriteTo(d, memAddr("srv")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the four records counted as garbage", func() bool { return s.Stats().Garbage == 4 })
}

func TestLegacyHelloVersion(t *testing.T) {
	hello := func(v uint16) []byte {
		return record(contentHandshake, v, 0, 0, nil, []byte{handshakeClientHello, 0, 0, 0})
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name string
		in   []byte
		want []byte
		n    int
	}{
		{"fe00 rewritten", hello(0xfe00), hello(0xfeff), 1},
		{"fefd kept", hello(0xfefd), hello(0xfefd), 0},
		{"feff kept", hello(0xfeff), hello(0xfeff), 0},
		{"two fragments", cat(hello(0xfe00), hello(0xfe01)), cat(hello(0xfeff), hello(0xfeff)), 2},
		{"other record kept", cat(hello(0xfe00), record(contentAlert, 0xfe00, 0, 0, nil, []byte{1, 0})),
			cat(hello(0xfeff), record(contentAlert, 0xfe00, 0, 0, nil, []byte{1, 0})), 1},
		{"tls version kept", hello(0x0301), hello(0x0301), 0},
		{"truncated record ends the walk", hello(0xfe00)[:15], hello(0xfe00)[:15], 0},
		{"empty", nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(tc.in)
			if n := legacyHelloVersion(b); n != tc.n || !bytes.Equal(b, tc.want) {
				t.Fatalf("got %d %x, want %d %x", n, b, tc.n, tc.want)
			}
		})
	}
}
