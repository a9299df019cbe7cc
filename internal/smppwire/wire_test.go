package smppwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// A bind_transceiver captured from the SMPP 3.4 specification's layout:
// system_id "esme", password "secret", system_type "", version 0x34.
const bindHex = "00000021" + "00000009" + "00000000" + "00000001" +
	"65736d6500" + "73656372657400" + "00" + "34" + "01" + "01" + "00"

func TestBindRoundTrip(t *testing.T) {
	b := &Bind{SystemID: "esme", Password: "secret", InterfaceVersion: InterfaceVersion, AddrTON: 1, AddrNPI: 1}
	body, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pdu := Marshal(BindTransceiver, ROK, 1, body)
	want, _ := hex.DecodeString(bindHex)
	if !bytes.Equal(pdu, want) {
		t.Fatalf("bind\n got %x\nwant %x", pdu, want)
	}
	p, err := ParsePDU(pdu)
	if err != nil || p.ID != BindTransceiver || p.Sequence != 1 {
		t.Fatalf("ParsePDU: %+v %v", p.Header, err)
	}
	got, err := ParseBind(p.Body)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("ParseBind: %+v %v", got, err)
	}
}

func TestMarshalRefusesOversizedFields(t *testing.T) {
	cases := []struct {
		name string
		run  func() error
	}{
		{"system_id 16", func() error { _, err := (&Bind{SystemID: strings.Repeat("x", 16)}).Marshal(); return err }},
		{"password 9", func() error { _, err := (&Bind{Password: "123456789"}).Marshal(); return err }},
		{"NUL inside", func() error { _, err := (&Bind{SystemID: "a\x00b"}).Marshal(); return err }},
		{"short_message 255", func() error { _, err := (&SM{ShortMessage: make([]byte, 255)}).Marshal(); return err }},
		{"dest 21", func() error { _, err := (&SM{DestAddr: strings.Repeat("1", 21)}).Marshal(); return err }},
		{"both payloads", func() error {
			_, err := (&SM{ShortMessage: []byte{1}, TLVs: TLVs{{Tag: TagMessagePayload, Value: []byte{2}}}}).Marshal()
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.run() == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSMRoundTrip(t *testing.T) {
	s := &SM{SourceTON: TONInternational, SourceNPI: NPIISDN, SourceAddr: "15550001", DestTON: TONInternational,
		DestNPI: NPIISDN, DestAddr: "15551234", ESMClass: ESMUDHI, RegisteredDelivery: RegDeliveryAlways,
		DataCoding: DataCodingBinary, ShortMessage: []byte{5, 0, 3, 7, 2, 1, 0x40, 0x01},
		TLVs: TLVs{U16(TagSarMsgRefNum, 0x1234), U8(TagSarTotalSegments, 2), U8(TagSarSegmentSeqnum, 1)}}
	body, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSM(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("got %+v\nwant %+v", got, s)
	}
	if v, ok := got.TLVs.U16(TagSarMsgRefNum); !ok || v != 0x1234 {
		t.Fatalf("sar_msg_ref_num %v %v", v, ok)
	}
	if !bytes.Equal(got.Payload(), s.ShortMessage) {
		t.Fatal("payload")
	}
	long := &SM{DataCoding: DataCodingBinary, TLVs: TLVs{{Tag: TagMessagePayload, Value: bytes.Repeat([]byte{9}, 1000)}}}
	body, err = long.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err = ParseSM(body)
	if err != nil || len(got.Payload()) != 1000 {
		t.Fatalf("message_payload: %v %d", err, len(got.Payload()))
	}
}

func TestParseSMMalformed(t *testing.T) {
	good, _ := (&SM{SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("hi")}).Marshal()
	cases := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"truncated", good[:10]},
		{"sm_length past end", append(append([]byte(nil), good[:len(good)-3]...), 200, 1)},
		{"no NUL in service_type", bytes.Repeat([]byte{'a'}, 40)},
		{"TLV header truncated", append(append([]byte(nil), good...), 0x04)},
		{"TLV length past end", append(append([]byte(nil), good...), 0x04, 0x24, 0x00, 0x10, 1)},
		{"both payloads", append(append([]byte(nil), good...), 0x04, 0x24, 0x00, 0x01, 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseSM(c.body); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestReadPDULimits(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"length below header", Marshal(EnquireLink, ROK, 1, nil)[:4:4], io.ErrUnexpectedEOF},
		{"length 15", []byte{0, 0, 0, 15, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1}, ErrTooLong},
		{"length 4 GiB", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1}, ErrTooLong},
		{"body truncated", Marshal(SubmitSM, ROK, 1, make([]byte, 40))[:30], io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ReadPDU(bytes.NewReader(c.in), 0); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	p, err := ReadPDU(bytes.NewReader(Marshal(EnquireLink, ROK, 7, nil)), 0)
	if err != nil || p.ID != EnquireLink || p.Sequence != 7 || len(p.Body) != 0 {
		t.Fatalf("enquire_link: %+v %v", p, err)
	}
}

func TestReceipt(t *testing.T) {
	sub := time.Date(2026, 12, 6, 8, 30, 0, 0, time.UTC)
	r := &Receipt{ID: "0000abcd", Submitted: 1, Delivered: 1, SubmitDate: sub, DoneDate: sub.Add(time.Minute),
		State: StateDelivered, Err: "000", Text: "x"}
	cases := []struct {
		name  string
		sm    *SM
		id    string
		state MessageState
	}{
		{"appendix B text", &SM{ESMClass: ESMDeliveryReceipt, ShortMessage: []byte(r.Format())}, "0000abcd", StateDelivered},
		{"upper-case keys", &SM{ESMClass: ESMDeliveryReceipt,
			ShortMessage: []byte("ID:77 SUB:001 DLVRD:000 SUBMIT DATE:2612060830 DONE DATE:2612060831 STAT:UNDELIV ERR:005 TEXT:")},
			"77", StateUndeliverable},
		{"TLVs win", &SM{ESMClass: ESMDeliveryReceipt, ShortMessage: []byte("id:1 stat:ENROUTE"),
			TLVs: TLVs{CString(TagReceiptedMessageID, "ff01"), U8(TagMessageState, byte(StateExpired))}}, "ff01", StateExpired},
		{"TLVs only", &SM{ESMClass: ESMDeliveryReceipt,
			TLVs: TLVs{CString(TagReceiptedMessageID, "9"), U8(TagMessageState, byte(StateDelivered))}}, "9", StateDelivered},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseReceipt(c.sm)
			if err != nil || got.ID != c.id || got.State != c.state {
				t.Fatalf("got %+v %v", got, err)
			}
		})
	}
	got, _ := ParseReceipt(cases[0].sm)
	if !got.DoneDate.Equal(r.DoneDate) || got.Err != "000" || got.Submitted != 1 {
		t.Fatalf("fields: %+v", got)
	}
	for _, bad := range []string{"", "stat:DELIVRD", "id:5 stat:WHATEVER"} {
		t.Run("refused "+bad, func(t *testing.T) {
			if _, err := ParseReceipt(&SM{ShortMessage: []byte(bad)}); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestStatusClasses(t *testing.T) {
	cases := []struct {
		s         Status
		retryable bool
	}{
		{RThrottled, true}, {RMsgQFul, true}, {RSysErr, true}, {RXTAppn, true},
		{RInvDstAdr, false}, {RInvSrcAdr, false}, {RInvMsgLen, false}, {RXPAppn, false}, {RInvEsmClass, false},
	}
	for _, c := range cases {
		t.Run(c.s.String(), func(t *testing.T) {
			e := &StatusError{Command: SubmitSM, Status: c.s}
			if e.Retryable() != c.retryable {
				t.Fatalf("Retryable = %v", e.Retryable())
			}
		})
	}
}

// TestSMProperty: every SM that marshals parses back to itself.
func TestSMProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cstr := func(max int) *rapid.Generator[string] {
			return rapid.StringMatching("[0-9A-Za-z+]{0," + itoa(max-1) + "}")
		}
		s := &SM{
			ServiceType: cstr(6).Draw(t, "st"), SourceTON: rapid.Byte().Draw(t, "ston"), SourceAddr: cstr(21).Draw(t, "src"),
			DestAddr: cstr(21).Draw(t, "dst"), ESMClass: rapid.Byte().Draw(t, "esm"), DataCoding: rapid.Byte().Draw(t, "dc"),
			ValidityPeriod: cstr(17).Draw(t, "vp"), RegisteredDelivery: rapid.Byte().Draw(t, "rd"),
			ShortMessage: rapid.SliceOfN(rapid.Byte(), 0, MaxShortMessage).Draw(t, "sm"),
		}
		if rapid.Bool().Draw(t, "sar") {
			s.TLVs = TLVs{U16(TagSarMsgRefNum, rapid.Uint16().Draw(t, "ref")), U8(TagSarTotalSegments, 3), U8(TagSarSegmentSeqnum, 1)}
		}
		body, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseSM(body)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.ShortMessage) == 0 {
			got.ShortMessage = s.ShortMessage
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("got %+v want %+v", got, s)
		}
	})
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func TestOutbind(t *testing.T) {
	cases := []struct {
		name string
		body []byte
		want *OutbindBody
	}{
		{"spec fields", []byte("smsc\x00secret\x00"), &OutbindBody{SystemID: "smsc", Password: "secret"}},
		{"empty password", []byte("smsc\x00\x00"), &OutbindBody{SystemID: "smsc"}},
		{"password missing", []byte("smsc\x00"), nil},
		{"system_id over 15", []byte("0123456789abcdef\x00pw\x00"), nil},
		{"no terminator", []byte("smsc"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseOutbind(c.body)
			if c.want == nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
			b, err := got.Marshal()
			if err != nil || !bytes.Equal(b, c.body) {
				t.Fatalf("re-encoded %q, %v", b, err)
			}
		})
	}
}
