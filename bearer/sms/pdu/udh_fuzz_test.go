package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// udhFromBytes builds a header from fuzz input: each IE is ID, length
// (taken modulo what is left), data. It stops at 140 octets in all (UDHL
// included), the largest header that fits an SMS, unless over is set, in
// which case it keeps going so the encoder's limit is exercised too.
func udhFromBytes(b []byte, over bool) UDH {
	var h UDH
	size := 1
	for len(b) >= 2 {
		id, l := b[0], int(b[1])
		b = b[2:]
		l = min(l, len(b))
		if !over && size+2+l > 140 {
			l = 140 - size - 2
			if l < 0 {
				break
			}
		}
		h.IEs = append(h.IEs, IE{ID: id, Data: b[:l]})
		size += 2 + l
		b = b[l:]
		if !over && size >= 139 {
			break
		}
	}
	return h
}

// FuzzUDHAgreement: the encoder and the parser agree on every header up to
// the largest one (UDHL 139, 140 octets): AppendUDH → ParseUDH gives the
// same IEs, the same decoded concatenation and ports as applying the IEs
// in order, and consumes exactly what was written; a header over 140
// octets is refused by the encoder, never truncated.
func FuzzUDHAgreement(f *testing.F) {
	// The largest header: one IE of 137 data octets (1+2+137 = 140).
	f.Add(append([]byte{0x70, 137}, bytes.Repeat([]byte{0xAB}, 137)...), false)
	// Concatenation (8-bit, then 16-bit: the last wins) and 16-bit ports,
	// then padding IEs up to the limit.
	big, _ := hex.DecodeString("0003A5030208041234FF0105040B84C002")
	f.Add(append(big, bytes.Repeat([]byte{0x24, 0x01, 0x00}, 50)...), false)
	f.Add([]byte{0x00, 0x03, 0x01, 0x00, 0x01}, false) // concat total 0: ignored
	f.Add(append([]byte{0x70, 138}, bytes.Repeat([]byte{0xCD}, 138)...), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, b []byte, over bool) {
		h := udhFromBytes(b, over)
		enc, err := AppendUDH([]byte{0xEE}, h)
		if h.Len() > 140 {
			if !errors.Is(err, ErrInvalidOption) || len(enc) != 1 {
				t.Fatalf("header of %d octets: err %v, %d bytes written", h.Len(), err, len(enc))
			}
			return
		}
		if err != nil {
			t.Fatalf("header of %d octets refused: %v", h.Len(), err)
		}
		enc = enc[1:]
		if len(h.IEs) == 0 {
			if len(enc) != 0 {
				t.Fatalf("empty header encoded as % X", enc)
			}
			return
		}
		if len(enc) != h.Len() || len(enc) > 140 {
			t.Fatalf("encoded %d octets, Len %d", len(enc), h.Len())
		}
		// Followed by user data, as in a TPDU.
		got, n, err := ParseUDH(append(bytes.Clone(enc), 0x42, 0x43))
		if err != nil || n != len(enc) {
			t.Fatalf("parse of % X: n %d err %v", enc, n, err)
		}
		if len(got.IEs) != len(h.IEs) {
			t.Fatalf("%d IEs back, %d written", len(got.IEs), len(h.IEs))
		}
		var want UDH
		for i, ie := range h.IEs {
			if got.IEs[i].ID != ie.ID || !bytes.Equal(got.IEs[i].Data, ie.Data) {
				t.Fatalf("IE %d: % X/%X back, % X/%X written", i, got.IEs[i].Data, got.IEs[i].ID, ie.Data, ie.ID)
			}
			want.apply(ie.ID, ie.Data)
		}
		if got.Concat != want.Concat || got.Ports != want.Ports || !bytes.Equal(got.Ignored, want.Ignored) {
			t.Fatalf("decoded %+v %+v %v, want %+v %+v %v", got.Concat, got.Ports, got.Ignored, want.Concat, want.Ports, want.Ignored)
		}
		again, err := AppendUDH(nil, got)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("re-encoded % X, want % X (%v)", again, enc, err)
		}
	})
}
