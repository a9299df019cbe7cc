package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeSingle(t *testing.T) {
	e := mustEncoder(t, WithRefSeed(func() uint16 { return 0x1234 }))
	segs, err := e.Encode("+491701234567", []byte{0x44, 0x02, 0xb6, 0x0b})
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 {
		t.Fatalf("got %d segments", len(segs))
	}
	// 11: SUBMIT, VPF relative; 00 MR; 0C 91 international 12 digits;
	// 00 PID; 04 DCS; A7 = 24 h; 04 UDL; data.
	want := "1100" + "0C91" + "947110325476" + "00" + "04" + "A7" + "04" + "4402B60B"
	if got := strings.ToUpper(hex.EncodeToString(segs[0].TPDU)); got != want {
		t.Fatalf("TPDU\n got %s\nwant %s", got, want)
	}
	if segs[0].PDU != "00"+want || segs[0].Length != len(want)/2 {
		t.Fatalf("PDU %s length %d", segs[0].PDU, segs[0].Length)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		opts []Option
		segs int
	}{
		{"empty", 0, nil, 1},
		{"one", 1, nil, 1},
		{"140", 140, nil, 1},
		{"141", 141, nil, 2},
		{"268", 268, nil, 2},
		{"269", 269, nil, 3},
		{"ref16 266", 266, []Option{With16BitRef(true)}, 2},
		{"ref16 267", 267, []Option{With16BitRef(true)}, 3},
		{"ports 133", 133, []Option{WithPorts(2948, 9200)}, 1},
		{"ports 134", 134, []Option{WithPorts(2948, 9200)}, 2},
		{"max", MaxDatagram, nil, 255},
		{"max ref16", 255 * 133, []Option{With16BitRef(true), WithStatusReport(true), WithDCS(DCS8BitClass1)}, 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, tc.n)
			for i := range data {
				data[i] = byte(i * 7)
			}
			segs, err := new(Encoder).Encode("+15551234567", data, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) != tc.segs {
				t.Fatalf("segments %d, want %d", len(segs), tc.segs)
			}
			var got []byte
			for i, s := range segs {
				sub, err := ParseSubmit(s.TPDU)
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				if sub.Destination.String() != "+15551234567" {
					t.Fatalf("destination %v", sub.Destination)
				}
				if sub.UDH.Concat != s.Concat {
					t.Fatalf("concat %+v, want %+v", sub.UDH.Concat, s.Concat)
				}
				b, err := sub.Binary()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, b...)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("payload differs")
			}
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	e := new(Encoder)
	for _, tc := range []struct {
		n    int
		opts []Option
	}{
		{MaxDatagram + 1, nil},
		{255*133 + 1, []Option{With16BitRef(true)}},
		{255*128 + 1, []Option{WithPorts(1, 2)}},
	} {
		t.Run(fmt.Sprintf("%d bytes", tc.n), func(t *testing.T) {
			_, err := e.Encode("+15551234567", make([]byte, tc.n), tc.opts...)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes: err %v", tc.n, err)
			}
		})
	}
	if st := e.Stats(); st.TooLarge != 3 || st.Destinations != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDecodeDeliverRoundTrip(t *testing.T) {
	scts := time.Date(2026, 11, 25, 14, 3, 9, 0, time.FixedZone("", -5*3600-30*60))
	segs, err := new(Encoder).Encode("+15551234567", bytes.Repeat([]byte{0xAB}, 300), WithPorts(2948, 9200))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		sub, err := ParseSubmit(s.TPDU)
		if err != nil {
			t.Fatal(err)
		}
		d := DeliverOf(sub, Address{TON: TONInternational, NPI: NPIISDN, Value: "4930123456"}, scts)
		tp, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		in, err := DecodePDU(append([]byte{0}, tp...))
		if err != nil {
			t.Fatal(err)
		}
		g := in.Deliver
		if g == nil || g.Originator.String() != "+4930123456" || !g.SCTS.Equal(scts) || g.UDH.Ports.Dst != 2948 {
			t.Fatalf("got %+v", g)
		}
		if _, off := g.SCTS.Zone(); off != -5*3600-30*60 {
			t.Fatalf("zone offset %d", off)
		}
	}
}

// The warthog618/sms tpdu decoder, an independent implementation, reads
// every TPDU the Encoder emits the same way we do.
func TestLibraryDecodesOurTPDUs(t *testing.T) {
	for _, opts := range [][]Option{nil, {With16BitRef(true)}, {WithPorts(2948, 9200), WithStatusReport(true)}} {
		t.Run(fmt.Sprintf("%d options", len(opts)), func(t *testing.T) {
			data := bytes.Repeat([]byte{0x00, 0xFF, 0x7E}, 200)
			segs, err := new(Encoder).Encode("+4915112345678", data, opts...)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, s := range segs {
				var lt tpdu.TPDU
				lt.Direction = tpdu.MO
				if err := lt.UnmarshalBinary(s.TPDU); err != nil {
					t.Fatal(err)
				}
				if lt.DA.Number() != "+4915112345678" || lt.DCS != 0x04 || lt.VP.Format != tpdu.VpfRelative {
					t.Fatalf("library read %+v", lt)
				}
				segsN, seq, ref, ok := lt.ConcatInfo()
				if !ok || segsN != int(s.Concat.Total) || seq != int(s.Concat.Seq) || ref != int(s.Concat.Ref) {
					t.Fatalf("library concat %d %d %d %v, ours %+v", segsN, seq, ref, ok, s.Concat)
				}
				got = append(got, lt.UD...)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("library reads other user data")
			}
		})
	}
}

// Golden TPDUs, field by field (TS 23.040 §9.2.2.2 SMS-SUBMIT).
func TestEncodeGolden(t *testing.T) {
	seed := WithRefSeed(func() uint16 { return 0xAB12 })
	for _, tc := range []struct {
		name string
		n    int
		opts []Option
		want []string // per segment, upper-case hex without data bytes
	}{
		{"no VP, SRR, RD, class 2", 2, []Option{WithValidity(0), WithStatusReport(true), func(o *SubmitOptions) { o.RejectDuplicates = true }, WithDCS(DCS8BitClass2)},
			[]string{"25" + "00" + "0B91" + "5155214365F7" + "00" + "F6" + "02"}},
		{"1 week VP, 16-bit ref + ports", 134, []Option{WithValidity(7 * 24 * time.Hour), With16BitRef(true), WithPorts(2948, 0xC002)},
			[]string{
				"51" + "00" + "0B91" + "5155214365F7" + "00" + "04" + "AD" + "8C" + "0C" + "0804AB120201" + "05040B84C002",
				"51" + "00" + "0B91" + "5155214365F7" + "00" + "04" + "AD" + "14" + "0C" + "0804AB120202" + "05040B84C002",
			}},
		{"digits without + (TON unknown)", 1, nil, []string{"11" + "00" + "0A81" + "1032547698" + "00" + "04" + "A7" + "01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := "+15551234567"
			if tc.name == "digits without + (TON unknown)" {
				dest = "0123456789"
			}
			segs, err := mustEncoder(t, seed).Encode(dest, make([]byte, tc.n), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) != len(tc.want) {
				t.Fatalf("%d segments", len(segs))
			}
			for i, s := range segs {
				got := strings.ToUpper(hex.EncodeToString(s.TPDU))
				if !strings.HasPrefix(got, tc.want[i]) || len(got) != len(tc.want[i])+2*(len(s.TPDU)-len(tc.want[i])/2) {
					t.Fatalf("segment %d\n got %s\nwant %s...", i, got, tc.want[i])
				}
				if s.PDU != "00"+got || s.Length != len(s.TPDU) {
					t.Fatalf("PDU %s length %d", s.PDU, s.Length)
				}
			}
		})
	}
}
