package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

var seedTPDUs = []string{
	"07915391131213F406030C91539133131316218030612015402180306120654000",
	"06550A912143658709122022118314801220221183148000",
	"07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
	"0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B",
	"00040B919471103254F60008522011413223800A004800E9006C006C006F",
	"0044" + "0B919471103254F6" + "0004" + "52201141322380" + "16" + "0B0003A502010504" + "0B84C002" + "01060344AF9A" + "4402",
}

func FuzzDecodePDU(f *testing.F) {
	for _, s := range seedTPDUs {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := DecodePDU(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			return
		}
		if (in.Deliver == nil) == (in.StatusReport == nil) {
			t.Fatal("exactly one of Deliver and StatusReport must be set")
		}
		if d := in.Deliver; d != nil {
			_, _ = d.Text()
			if data, err := d.Binary(); err == nil && len(data) > MaxUserData {
				t.Fatalf("%d bytes of user data", len(data))
			}
			// A decoded DELIVER re-encodes to something that decodes alike.
			tp, err := d.Marshal()
			if err != nil {
				return // e.g. alphanumeric originator outside the default alphabet
			}
			d2, err := ParseDeliver(tp)
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if d2.Originator != d.Originator || !bytes.Equal(d2.Data, d.Data) || d2.UDH.Concat != d.UDH.Concat || d2.UDH.Ports != d.UDH.Ports || !d2.SCTS.Equal(d.SCTS) {
				t.Fatalf("round trip differs:\n%+v\n%+v", d, d2)
			}
		}
	})
}

func FuzzParseSubmit(f *testing.F) {
	segs, _ := new(Encoder).Encode("+4915112345678", bytes.Repeat([]byte{7}, 300), WithPorts(2948, 9200), WithStatusReport(true))
	for _, s := range segs {
		f.Add(s.TPDU)
	}
	f.Add([]byte{0x01, 0x00, 0x00, 0x91, 0x00, 0x04, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSubmit(b)
		if err != nil {
			return
		}
		_ = s.Validity()
		_, _ = s.Binary()
	})
}

func FuzzParseUDH(f *testing.F) {
	for _, s := range []string{"050003A50302", "0608041234FF01", "0605040B84C002", "0E000301020105040B84C002240101", "00", "03000301", "0100"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseUDH(b)
		if err != nil {
			return
		}
		if n != int(b[0])+1 || n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		if c := h.Concat; !c.IsZero() && (c.Seq == 0 || c.Seq > c.Total) {
			t.Fatalf("invalid concat accepted %+v", c)
		}
		enc, err := AppendUDH(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.IEs) > 0 && !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoded % X, want % X", enc, b[:n])
		}
	})
}

// FuzzReassembler feeds a byte stream as a sequence of parts: each record
// is originator (1 byte), ref, total, seq, length, data. Invariants: bytes
// held never exceed the cap, pending sets never exceed the caps, and every
// set either completes, is pending, or was reported dropped.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{1, 7, 3, 3, 2, 'c', 'c', 1, 7, 3, 1, 2, 'a', 'a', 1, 7, 3, 2, 2, 'b', 'b'})
	f.Add([]byte{1, 7, 2, 1, 1, 'x', 1, 7, 2, 1, 1, 'x', 1, 7, 3, 1, 0, 2, 7, 2, 2, 0})
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		clk := newClock()
		var dropped int
		r := mustReassembler(t, ReassemblerConfig{
			Timeout: time.Minute, MaxSetsPerOriginator: 2, MaxSets: 3, MaxBytes: 300,
			Now: clk.Now, OnDrop: func(Dropped) { dropped++ },
		})
		sets := 0
		for len(b) >= 5 {
			oa, ref, total, seq, l := b[0]%4, b[1]%4, b[2]%5, b[3]%6, int(b[4])%150
			b = b[5:]
			l = min(l, len(b))
			p := Part{Originator: string('0' + oa), Concat: Concat{Ref: uint16(ref), Total: total, Seq: seq}, Data: b[:l]}
			if total == 0 {
				p.Concat = Concat{}
			}
			b = b[l:]
			before := r.Stats().PendingSets
			dg, err := r.Add(p)
			if err == nil && dg == nil && r.Stats().PendingSets > before {
				sets++
			}
			if dg != nil && dg.Segments > 1 {
				sets-- // completed a set that was counted as opened
			}
			st := r.Stats()
			if st.BytesHeld > 300 || st.PendingSets > 3 || st.BytesHeld < 0 {
				t.Fatalf("caps broken: %+v", st)
			}
			if int(oa)%2 == 0 {
				clk.Advance(20 * time.Second)
			}
		}
		clk.Advance(time.Hour)
		r.Sweep()
		if st := r.Stats(); st.PendingSets != 0 || st.BytesHeld != 0 {
			t.Fatalf("left after sweep: %+v", st)
		}
		_ = sets
		if uint64(dropped) != r.Stats().Expired+r.Stats().Evicted {
			t.Fatalf("reported %d drops, counted %+v", dropped, r.Stats())
		}
	})
}

func FuzzParseWAPPush(f *testing.F) {
	f.Add(BuildWAPPush(1, appendixLCoAP))
	f.Add([]byte{0x01, 0x06, 0x80, 0x03, 0xC4, 0xAF, 0x9A, 0x44})
	f.Add(append([]byte{0x07, 0x06, 42}, []byte("application/x\x00\xAF"+LwM2MAppURI+"\x00")...))
	f.Add([]byte{0x01, 0x06, 0x08, 0x03, 0xC4, 0x81, 0xEA, 0x8D, 0x85, 0xAF, 0x9A})
	f.Add([]byte{0x01, 0x06, 0x1F, 0x1F, 0x1F})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseWAPPush(b)
		if err != nil {
			if !errors.Is(err, ErrWAPPush) {
				t.Fatalf("error %v does not wrap ErrWAPPush", err)
			}
			return
		}
		if tr.AppID != LwM2MAppID && tr.AppURI != LwM2MAppURI {
			t.Fatalf("accepted app %d %q", tr.AppID, tr.AppURI)
		}
		if len(tr.CoAP) > len(b) || !bytes.HasSuffix(b, tr.CoAP) {
			t.Fatal("CoAP is not the tail of the input")
		}
	})
}

// FuzzDecodeModemHex takes the text a modem prints and the <length> it
// gave, as the modem driver passes them on.
func FuzzDecodeModemHex(f *testing.F) {
	for _, s := range seedTPDUs {
		f.Add(s, 0)
		f.Add(s, len(s)/2-8)
	}
	f.Add("06550A912143658709122022118314801220221183148000", 24)
	f.Add(" zz ", 3)
	f.Fuzz(func(t *testing.T, s string, length int) {
		in, err := DecodeModemHex(s, length)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			return
		}
		if (in.Deliver == nil) == (in.StatusReport == nil) {
			t.Fatal("exactly one of Deliver and StatusReport must be set")
		}
	})
}
