package sim

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"
	"pgregory.net/rapid"
)

// userDataOf returns TP-UDL and TP-UD of an SMS-SUBMIT or SMS-DELIVER, the
// bytes that must cross the SMSC unchanged.
func userDataOf(t *rapid.T, b []byte, submit bool) []byte {
	var x tpdu.TPDU
	if submit {
		x.Direction = tpdu.MO
	}
	if err := x.UnmarshalBinary(b); err != nil {
		t.Fatalf("decode %x: %v", b, err)
	}
	var addr tpdu.Address
	if submit {
		addr = x.DA
	} else {
		addr = x.OA
	}
	ab, _ := addr.MarshalBinary()
	if submit {
		vp := map[tpdu.ValidityPeriodFormat]int{tpdu.VpfNotPresent: 0, tpdu.VpfRelative: 1,
			tpdu.VpfAbsolute: 7, tpdu.VpfEnhanced: 7}[x.FirstOctet.VPF()]
		return b[2+len(ab)+2+vp:]
	}
	return b[1+len(ab)+2+7:]
}

// TestPropertySubmitToDeliver: for any SMS-SUBMIT (7-bit, 8-bit or UCS-2,
// with or without a concatenation UDH, with or without TP-SRR and a
// validity period) the SMS-DELIVER carries the same TP-PID, TP-DCS,
// TP-UDHI and byte-identical TP-UDL/TP-UD, from the sender's number.
func TestPropertySubmitToDeliver(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s, _ := tpdu.NewSubmit()
		s.DA = numberAddress("+" + rapid.StringMatching(`[1-9][0-9]{4,14}`).Draw(t, "da"))
		alpha := rapid.IntRange(0, 2).Draw(t, "alpha")
		s.DCS = []tpdu.DCS{0x00, tpdu.Dcs8BitData, 0x08}[alpha]
		s.PID = byte(rapid.IntRange(0, 0x3f).Draw(t, "pid"))
		if rapid.Bool().Draw(t, "srr") {
			s.FirstOctet |= tpdu.FoSRR
		}
		if rapid.Bool().Draw(t, "vp") {
			s.SetVP(tpdu.ValidityPeriod{Format: tpdu.VpfRelative, Duration: 24 * time.Hour})
		}
		if rapid.Bool().Draw(t, "concat") {
			if rapid.Bool().Draw(t, "ref16") {
				s.SetUDH(tpdu.UserDataHeader{{ID: 8, Data: []byte{0x12, 0x34, 3, 2}}})
			} else {
				s.SetUDH(tpdu.UserDataHeader{{ID: 0, Data: []byte{0x7a, 3, 2}}})
			}
		}
		max := s.UDBlockSize()
		ud := rapid.SliceOfN(rapid.Byte(), 0, max).Draw(t, "ud")
		switch alpha {
		case 0:
			for i := range ud {
				ud[i] &= 0x7f
				if ud[i] == 0x1b { // an escape must be followed by a char
					ud[i] = 0x20
				}
			}
		case 2:
			ud = ud[:len(ud)&^1]
		}
		s.UD = ud
		raw, err := s.MarshalBinary()
		if err != nil {
			t.Skip("unencodable", err)
		}
		sub, err := decodeSubmit(raw)
		if err != nil {
			t.Fatalf("decodeSubmit(%x): %v", raw, err)
		}
		d, err := deliverFor(sub, "+15550001", t0)
		if err != nil {
			t.Fatal(err)
		}
		var got tpdu.TPDU
		if err := got.UnmarshalBinary(d); err != nil {
			t.Fatalf("deliver %x: %v", d, err)
		}
		if got.SmsType() != tpdu.SmsDeliver || got.OA.Number() != "+15550001" || got.PID != s.PID ||
			got.DCS != s.DCS || got.UDHI() != s.UDHI() || got.FirstOctet.SRI() != s.FirstOctet.SRR() {
			t.Fatalf("deliver %+v from submit %+v", got, s)
		}
		if a, b := userDataOf(t, raw, true), userDataOf(t, d, false); !bytes.Equal(a, b) {
			t.Fatalf("user data changed:\n%x\n%x", a, b)
		}
	})
}

func TestDecodeSubmitRejects(t *testing.T) {
	for _, h := range [][]byte{
		{},
		{0x00},                   // SMS-DELIVER MTI from the MS side
		{0x01, 0x00},             // truncated
		{0x01, 0x00, 0x00, 0x80}, // empty destination
	} {
		t.Run(fmt.Sprintf("%x", h), func(t *testing.T) {
			if _, err := decodeSubmit(h); err == nil {
				t.Errorf("%x accepted", h)
			}
		})
	}
}

func TestNormalizeMSISDN(t *testing.T) {
	for in, want := range map[string]string{
		"+49 151 234": "+49151234", "0049151": "+0049151", "": "", "abc": "", "4915": "+4915",
	} {
		t.Run(in, func(t *testing.T) {
			if got := NormalizeMSISDN(in); got != want {
				t.Errorf("%q -> %q, want %q", in, got, want)
			}
		})
	}
}
