package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
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
	e := NewEncoder(WithRefSeed(func() uint16 { return 0x1234 }))
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
			segs, err := NewEncoder().Encode("+15551234567", data, tc.opts...)
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
	e := NewEncoder()
	for _, tc := range []struct {
		n    int
		opts []Option
	}{
		{MaxDatagram + 1, nil},
		{255*133 + 1, []Option{With16BitRef(true)}},
		{255*128 + 1, []Option{WithPorts(1, 2)}},
	} {
		_, err := e.Encode("+15551234567", make([]byte, tc.n), tc.opts...)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d bytes: err %v", tc.n, err)
		}
	}
	if st := e.Stats(); st.TooLarge != 3 || st.Destinations != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDecodeDeliverRoundTrip(t *testing.T) {
	scts := time.Date(2026, 11, 25, 14, 3, 9, 0, time.FixedZone("", -5*3600-30*60))
	segs, err := NewEncoder().Encode("+15551234567", bytes.Repeat([]byte{0xAB}, 300), WithPorts(2948, 9200))
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
		data := bytes.Repeat([]byte{0x00, 0xFF, 0x7E}, 200)
		segs, err := NewEncoder().Encode("+4915112345678", data, opts...)
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
	}
}
