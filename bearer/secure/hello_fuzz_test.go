package secure

import (
	"bytes"
	"testing"
)

// helloFragments splits a ClientHello record of datagram b into two
// records at fragment offset cut (RFC 6347 §4.2.3), as a peer with a small
// MTU sends it.
func helloFragments(b []byte, cut int) (first, second []byte) {
	if len(b) < recordHeaderLen+12 || b[0] != contentHandshake {
		return nil, nil
	}
	msg := b[recordHeaderLen:]
	body := msg[12:]
	if cut <= 0 || cut >= len(body) {
		return nil, nil
	}
	frag := func(off int, part []byte) []byte {
		h := append([]byte(nil), msg[:12]...)
		h[6], h[7], h[8] = byte(off>>16), byte(off>>8), byte(off)
		n := len(part)
		h[9], h[10], h[11] = byte(n>>16), byte(n>>8), byte(n)
		return record(22, 0xfefd, 0, uint64(off), nil, append(h, part...))
	}
	return frag(0, body[:cut]), frag(cut, body[cut:])
}

// TestHelloAssembler: a ClientHello in one record or in two fragments, in
// either order, is put back together and its CID request read; garbage
// and oversized lengths are refused.
func TestHelloAssembler(t *testing.T) {
	flight := captureClientFlight(t)
	if len(flight) == 0 {
		t.Fatal("no ClientHello captured from our own DTLS client")
	}
	hello := flight[0]
	a, b := helloFragments(hello, 40)
	for _, tc := range []struct {
		name  string
		parts [][]byte
		whole bool
	}{
		{"one record", [][]byte{hello}, true},
		{"two fragments", [][]byte{a, b}, true},
		{"fragments reversed", [][]byte{b, a}, true},
		{"one fragment only", [][]byte{a}, false},
		{"garbage", [][]byte{[]byte("not dtls at all, not at all")}, false},
		{"length over the bound", [][]byte{record(22, 0xfefd, 0, 0, nil, []byte{1, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 7})}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h helloAssembler
			var got bool
			for _, p := range tc.parts {
				if m := h.add(bytes.Clone(p)); m != nil {
					got = true
					if wantsOwnCID(m) {
						t.Fatal("a client with CIDLength nil asks for no CID of its own")
					}
				}
			}
			if got != tc.whole {
				t.Fatalf("assembled %v, want %v", got, tc.whole)
			}
		})
	}
}

// FuzzClientHelloParts: the ClientHello readers of the demultiplexer
// (session ID, fragment reassembly, CID request, record walk) never panic
// and stay within their bound, whatever the datagrams.
func FuzzClientHelloParts(f *testing.F) {
	for _, s := range captureClientFlight(f) {
		f.Add(s, []byte(nil))
		a, b := helloFragments(s, 50)
		f.Add(a, b)
		f.Add(b, a)
	}
	f.Add(record(22, 0xfefd, 0, 0, nil, []byte{1, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40}), []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var h helloAssembler
		for _, d := range [][]byte{a, b} {
			_ = helloSessionID(d)
			_ = hasRecord(d, contentChangeCipherSpec)
			if m := h.add(bytes.Clone(d)); m != nil {
				_ = wantsOwnCID(m)
			}
			if len(h.body) > maxHelloLen {
				t.Fatalf("assembler holds %d bytes", len(h.body))
			}
		}
	})
}
