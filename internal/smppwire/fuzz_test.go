package smppwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecode feeds arbitrary octets to every decoder of input from the
// network: none may panic, every error must wrap ErrMalformed or ErrTooLong
// (or be a short read), and whatever decodes must re-encode.
func FuzzDecode(f *testing.F) {
	sm, _ := (&SM{SourceAddr: "15550001", DestAddr: "15551234", ESMClass: ESMUDHI, DataCoding: DataCodingBinary,
		ShortMessage: []byte{5, 0, 3, 1, 2, 1, 0x40}, TLVs: TLVs{U16(TagSarMsgRefNum, 1)}}).Marshal()
	rc, _ := (&SM{ESMClass: ESMDeliveryReceipt, ShortMessage: []byte("id:1 sub:001 dlvrd:001 submit date:2612060830 done date:2612060830 stat:DELIVRD err:000 text:")}).Marshal()
	bind, _ := (&Bind{SystemID: "esme", Password: "pw", InterfaceVersion: InterfaceVersion}).Marshal()
	f.Add(Marshal(SubmitSM, ROK, 1, sm))
	f.Add(Marshal(DeliverSM, ROK, 2, rc))
	f.Add(Marshal(BindTransceiver, ROK, 3, bind))
	f.Add(Marshal(SubmitSMResp, ROK, 4, []byte("abc\x00")))
	f.Add(Marshal(BindTransceiverResp, ROK, 5, []byte("smsc\x00\x02\x10\x00\x01\x34")))
	f.Add(Marshal(EnquireLink, ROK, 6, nil))
	ob, _ := (&OutbindBody{SystemID: "smsc", Password: "secret"}).Marshal()
	f.Add(Marshal(Outbind, ROK, 7, ob))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPDU(bytes.NewReader(b), 0)
		if err != nil {
			if !errors.Is(err, ErrTooLong) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadPDU error %v", err)
			}
			return
		}
		check := func(err error) {
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: error %v does not wrap ErrMalformed", p.ID, err)
			}
		}
		if s, err := ParseSM(p.Body); err == nil {
			if len(s.ShortMessage) > MaxShortMessage {
				t.Fatal("short_message over 254")
			}
			if _, err := s.Marshal(); err != nil {
				t.Fatalf("decoded SM does not re-encode: %v", err)
			}
			if r, err := ParseReceipt(s); err == nil && (r.ID == "" || r.State == 0) {
				t.Fatal("receipt without id or state")
			}
		} else {
			check(err)
		}
		if bd, err := ParseBind(p.Body); err == nil {
			if _, err := bd.Marshal(); err != nil {
				t.Fatalf("decoded bind does not re-encode: %v", err)
			}
		} else {
			check(err)
		}
		if o, err := ParseOutbind(p.Body); err == nil {
			if _, err := o.Marshal(); err != nil {
				t.Fatalf("decoded outbind does not re-encode: %v", err)
			}
		} else {
			check(err)
		}
		_, err = ParseBindResp(p.Body)
		check(err)
		_, err = ParseSubmitResp(p.Body)
		check(err)
	})
}
