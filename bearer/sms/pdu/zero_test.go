package pdu

import (
	"bytes"
	"testing"
)

// TestZeroEncoder: the zero Encoder is NewEncoder() with no options: the
// same defaults, the same segments for a concatenated datagram but for the
// random reference (it panicked on its first concatenated one: its table
// of references was not made).
func TestZeroEncoder(t *testing.T) {
	data := bytes.Repeat([]byte{0x40}, 300)
	encode := func(t *testing.T, e *Encoder) [][]byte {
		if e.Defaults() != DefaultSubmitOptions() {
			t.Fatalf("defaults %+v", e.Defaults())
		}
		segs, err := e.Encode("+15550000001", data)
		if err != nil || len(segs) != 3 {
			t.Fatalf("%d segments, %v", len(segs), err)
		}
		var out [][]byte
		for _, s := range segs {
			b := bytes.Clone(s.TPDU)
			// UDH 05 00 03 <ref> <total> <seq>: the reference is random.
			i := bytes.Index(b, []byte{0x05, 0x00, 0x03})
			if i < 0 {
				t.Fatalf("no concatenation IE in % x", b)
			}
			b[i+3] = 0
			out = append(out, b)
		}
		return out
	}
	want := encode(t, mustEncoder(t))
	got := encode(t, &Encoder{})
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("segment %d:\nzero Encoder % x\nNewEncoder   % x", i, got[i], want[i])
		}
	}
}
