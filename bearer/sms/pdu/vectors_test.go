package pdu

import (
	"errors"
	"testing"
	"time"
)

// Real PDUs as modems printed them (+CDS/+CMT/+CMGR), collected from public
// modem driver test suites and forum transcripts, and TS 23.040-style
// examples widely used to illustrate the format.
func TestDecodeRealPDUs(t *testing.T) {
	cet := func(h int) *time.Location { return time.FixedZone("", h*3600) }
	for _, tc := range []struct {
		name     string
		hex      string
		length   int // as printed after +CDS:/+CMT:; 0 = unknown
		smsc     string
		kind     string // "deliver" or "report"
		addr     string // TP-OA or TP-RA as String()
		ton      TypeOfNumber
		scts     time.Time
		text     string         // deliver: user data as text
		mr       byte           // report
		st       byte           // report
		outcome  DeliveryStatus // report
		discharg time.Time      // report
		dcs      DCS            // deliver
		wantErr  error
	}{
		{name: "+CDS delivered (Portugal)", hex: "07915391131213F406030C91539133131316218030612015402180306120654000", length: 25,
			smsc: "+35193121314", kind: "report", addr: "+351933313161", ton: TONInternational, mr: 3, st: 0, outcome: StatusDelivered,
			scts: time.Date(2012, 8, 3, 16, 2, 51, 0, cet(1)), discharg: time.Date(2012, 8, 3, 16, 2, 56, 0, cet(1))},
		{name: "+CDS SC-specific temporary error 0x30 (ModemManager)", hex: "07914356060013F10659098136395339F6219011707193802190117071938030", length: 24,
			smsc: "+34656000311", kind: "report", addr: "639335936", ton: TONUnknown, mr: 0x59, st: 0x30, outcome: StatusPending,
			scts: time.Date(2012, 9, 11, 7, 17, 39, 0, cet(2)), discharg: time.Date(2012, 9, 11, 7, 17, 39, 0, cet(2))},
		{name: "+CDS without SMSC part (nRF91)", hex: "06550A912143658709122022118314801220221183148000", length: 24,
			kind: "report", addr: "+1234567890", ton: TONInternational, mr: 0x55, st: 0, outcome: StatusDelivered,
			scts: time.Date(2021, 2, 22, 11, 38, 41, 0, cet(2)), discharg: time.Date(2021, 2, 22, 11, 38, 41, 0, cet(2))},
		{name: "+CDS China Mobile", hex: "0891683108608805F906750D91683109731147F4313050913492003130509134430000", length: 26,
			smsc: "+8613800688509", kind: "report", addr: "+8613903711744", ton: TONInternational, mr: 0x75, st: 0, outcome: StatusDelivered,
			scts: time.Date(2013, 3, 5, 19, 43, 29, 0, time.UTC), discharg: time.Date(2013, 3, 5, 19, 43, 34, 0, time.UTC)},
		{name: "+CDS Iran, zone +04:30", hex: "079189390500410006270C81891942345447228013023041812280130230718100", length: 25,
			smsc: "+989350001400", kind: "report", addr: "989124434574", ton: TONUnknown, mr: 0x27, st: 0, outcome: StatusDelivered,
			scts: time.Date(2022, 8, 31, 20, 3, 14, 0, time.FixedZone("", 4*3600+1800)), discharg: time.Date(2022, 8, 31, 20, 3, 17, 0, time.FixedZone("", 4*3600+1800))},
		{name: "SMS-DELIVER 7-bit hellohello, subscriber number", hex: "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
			smsc: "+27381000015", kind: "deliver", addr: "27838890001", ton: TONSubscriber, dcs: 0,
			scts: time.Date(1999, 3, 29, 15, 16, 59, 0, cet(2)), text: "hellohello"},
		{name: "SMS-DELIVER alphanumeric originator", hex: "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B",
			smsc: "+447802000332", kind: "deliver", addr: "diafaan", ton: TONAlphanumeric,
			scts: time.Date(2011, 1, 11, 13, 25, 41, 0, time.UTC), text: "diafaan.com"},
		{name: "SMS-DELIVER UCS-2", hex: "00040B919471103254F60008522011413223800A004800E9006C006C006F",
			kind: "deliver", addr: "+49170123456", ton: TONInternational, dcs: 0x08,
			scts: time.Date(2025, 2, 11, 14, 23, 32, 0, cet(2)), text: "Héllo"},
		{name: "length mismatch", hex: "00040B919471103254F60008522011413223800A004800E9006C006C006F", length: 7, wantErr: ErrMalformed},
		{name: "SUBMIT-REPORT not decoded", hex: "0001", length: 1, wantErr: ErrUnsupportedType},
		{name: "reserved MTI", hex: "0003", length: 1, wantErr: ErrUnsupportedType},
		{name: "truncated SCTS", hex: "07917283010010F5040BC87238880900F100009930925161", wantErr: ErrTruncated},
		{name: "month 13", hex: "07917283010010F5040BC87238880900F10000993192516195800AE8329BFD4697D9EC37", wantErr: ErrMalformed},
		{name: "31 February", hex: "07917283010010F5040BC87238880900F10000992013516195800AE8329BFD4697D9EC37", wantErr: ErrMalformed},
		{name: "trailing byte", hex: "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC3700", wantErr: ErrTrailing},
		{name: "UDL past end", hex: "07917283010010F5040BC87238880900F10000993092516195800BE8329BFD4697D9EC37", wantErr: ErrTruncated},
		{name: "filler inside address", hex: "0004049121F300000099309251619580", wantErr: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeModemHex(tc.hex, tc.length)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("err %T is not a *DecodeError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.SMSC.String() != tc.smsc {
				t.Errorf("SMSC %q, want %q", in.SMSC, tc.smsc)
			}
			switch tc.kind {
			case "report":
				r := in.StatusReport
				if r == nil {
					t.Fatal("not a status report")
				}
				if r.Recipient.String() != tc.addr || r.Recipient.TON != tc.ton || r.MR != tc.mr || r.Status != tc.st || r.Outcome() != tc.outcome {
					t.Errorf("got RA %v TON %d MR %d ST 0x%02X %v", r.Recipient, r.Recipient.TON, r.MR, r.Status, r.Outcome())
				}
				if !r.SCTS.Equal(tc.scts) || !r.Discharge.Equal(tc.discharg) {
					t.Errorf("SCTS %v DT %v", r.SCTS, r.Discharge)
				}
				if _, o1 := r.SCTS.Zone(); func() bool { _, o2 := tc.scts.Zone(); return o1 != o2 }() {
					t.Errorf("zone of %v", r.SCTS)
				}
			case "deliver":
				d := in.Deliver
				if d == nil {
					t.Fatal("not a deliver")
				}
				if d.Originator.String() != tc.addr || d.Originator.TON != tc.ton || d.DCS != tc.dcs {
					t.Errorf("OA %v TON %d DCS %v", d.Originator, d.Originator.TON, d.DCS)
				}
				if !d.SCTS.Equal(tc.scts) {
					t.Errorf("SCTS %v, want %v", d.SCTS, tc.scts)
				}
				text, err := d.Text()
				if err != nil || text != tc.text {
					t.Errorf("text %q %v", text, err)
				}
				if _, err := d.Binary(); !errors.Is(err, ErrNotBinary) {
					t.Errorf("text SMS accepted as binary: %v", err)
				}
			}
		})
	}
}

func TestDCS(t *testing.T) {
	for _, tc := range []struct {
		dcs    DCS
		alpha  Alphabet
		class  int // -1 none
		binary bool
	}{
		{0x00, AlphabetGSM7, -1, false},
		{0x04, Alphabet8Bit, -1, true},
		{0x08, AlphabetUCS2, -1, false},
		{0x0C, AlphabetReserved, -1, false},
		{0x14, Alphabet8Bit, 0, true},
		{0x15, Alphabet8Bit, 1, true},
		{0x16, Alphabet8Bit, 2, true},
		{0x24, Alphabet8Bit, -1, false}, // compressed
		{0x44, Alphabet8Bit, -1, true},  // automatic deletion group
		{0x80, AlphabetReserved, -1, false},
		{0xB4, AlphabetReserved, -1, false},
		{0xC0, AlphabetGSM7, -1, false},
		{0xD0, AlphabetGSM7, -1, false},
		{0xE0, AlphabetUCS2, -1, false},
		{0xF0, AlphabetGSM7, 0, false},
		{0xF4, Alphabet8Bit, 0, true},
		{0xF5, Alphabet8Bit, 1, true},
		{0xF6, Alphabet8Bit, 2, true},
		{0xF7, Alphabet8Bit, 3, true},
		{0xFC, AlphabetReserved, 0, false},
	} {
		t.Run(tc.dcs.String(), func(t *testing.T) {
			c, ok := tc.dcs.Class()
			if !ok {
				c = -1
			}
			if tc.dcs.Alphabet() != tc.alpha || c != tc.class || tc.dcs.IsBinary() != tc.binary {
				t.Errorf("%s: alphabet %v class %d binary %v", tc.dcs, tc.dcs.Alphabet(), c, tc.dcs.IsBinary())
			}
		})
	}
}

func TestRelativeVP(t *testing.T) {
	for _, tc := range []struct {
		d  time.Duration
		vp byte
		rt time.Duration
	}{
		{0, 0, 5 * time.Minute},
		{5 * time.Minute, 0, 5 * time.Minute},
		{6 * time.Minute, 1, 10 * time.Minute},
		{time.Hour, 11, time.Hour},
		{12 * time.Hour, 143, 12 * time.Hour},
		{12*time.Hour + time.Minute, 144, 12*time.Hour + 30*time.Minute},
		{24 * time.Hour, 167, 24 * time.Hour},
		{25 * time.Hour, 168, 48 * time.Hour},
		{30 * day, 196, 30 * day},
		{31 * day, 197, 5 * week},
		{63 * week, 255, 63 * week},
		{100 * week, 255, 63 * week},
	} {
		t.Run(tc.d.String(), func(t *testing.T) {
			vp := RelativeVP(tc.d)
			if vp != tc.vp || RelativeVPDuration(vp) != tc.rt {
				t.Errorf("%v: VP %d (%v), want %d (%v)", tc.d, vp, RelativeVPDuration(vp), tc.vp, tc.rt)
			}
		})
	}
	for v := 0; v < 256; v++ {
		if got := RelativeVP(RelativeVPDuration(byte(v))); got != byte(v) {
			t.Errorf("VP %d → %v → %d", v, RelativeVPDuration(byte(v)), got)
		}
	}
}

func TestParseUDH(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hex     string
		concat  Concat
		ports   Ports
		ignored int
		ies     int
		err     error
	}{
		{name: "8-bit concat", hex: "050003A50302", concat: Concat{Ref: 0xA5, Total: 3, Seq: 2}, ies: 1},
		{name: "16-bit concat", hex: "0608041234FF01", concat: Concat{Ref: 0x1234, Ref16: true, Total: 255, Seq: 1}, ies: 1},
		{name: "16-bit ports (Appendix L)", hex: "0605040B84C002", ports: Ports{Present: true, Wide: true, Dst: 2948, Src: 0xC002}, ies: 1},
		{name: "8-bit ports", hex: "04040210F0", ports: Ports{Present: true, Dst: 0x10, Src: 0xF0}, ies: 1},
		{name: "concat + ports + unknown", hex: "0E0003010201" + "05040B84C002" + "240101", concat: Concat{Ref: 1, Total: 2, Seq: 1}, ports: Ports{Present: true, Wide: true, Dst: 2948, Src: 0xC002}, ies: 3},
		{name: "seq 0 ignored", hex: "050003010200", ignored: 1, ies: 1},
		{name: "seq > total ignored", hex: "050003010203", ignored: 1, ies: 1},
		{name: "total 0 ignored", hex: "050003010000", ignored: 1, ies: 1},
		{name: "bad concat length ignored", hex: "0400020102", ignored: 1, ies: 1},
		{name: "last concat wins", hex: "0A000301020100030203" + "02", concat: Concat{Ref: 2, Total: 3, Seq: 2}, ies: 2},
		{name: "empty header", hex: "00", ies: 0},
		{name: "IE past UDHL", hex: "03000301", err: ErrMalformed},
		{name: "UDHL past data", hex: "0500030102", err: ErrTruncated},
		{name: "dangling IE id", hex: "0100", err: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustHex(t, tc.hex)
			h, n, err := ParseUDH(b)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != int(b[0])+1 || h.Concat != tc.concat || h.Ports != tc.ports || len(h.Ignored) != tc.ignored || len(h.IEs) != tc.ies {
				t.Fatalf("n %d %+v", n, h)
			}
			enc, err := AppendUDH(nil, h)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.IEs) > 0 && string(enc) != string(b[:n]) {
				t.Fatalf("re-encoded % X, want % X", enc, b[:n])
			}
		})
	}
}
