package smsc

import (
	"errors"
	"fmt"

	"github.com/warthog618/sms/encoding/gsm7"

	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

var errCannotConvert = errors.New("smsc: cannot convert")

// submitTPDUs turns a submit_sm into the SMS-SUBMIT TPDU(s) a mobile would
// have sent: UDH kept, sar_* turned into a 16-bit concatenation IE, ports
// TLVs into a port IE, a message_payload too long for one SMS split.
func submitTPDUs(sm *smppwire.SM, to string, ref uint16) ([][]byte, error) {
	data := sm.Payload()
	var ies []pdu.IE
	if sm.ESMClass&smppwire.ESMUDHI != 0 {
		h, n, err := pdu.ParseUDH(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCannotConvert, err)
		}
		ies, data = h.IEs, data[n:]
	}
	concat := false
	for _, ie := range ies {
		concat = concat || ie.ID == 0x00 || ie.ID == 0x08
	}
	if r, ok := sm.TLVs.U16(smppwire.TagSarMsgRefNum); ok {
		total, ok1 := sm.TLVs.U8(smppwire.TagSarTotalSegments)
		seq, ok2 := sm.TLVs.U8(smppwire.TagSarSegmentSeqnum)
		if !ok1 || !ok2 || total == 0 || seq == 0 || seq > total {
			return nil, fmt.Errorf("%w: sar_* TLVs incomplete or out of range", errCannotConvert)
		}
		ies = append(ies, concatIE(r, total, seq))
		concat = true
	}
	if dp, ok := sm.TLVs.U16(smppwire.TagDestinationPort); ok {
		sp, _ := sm.TLVs.U16(smppwire.TagSourcePort)
		ies = append(ies, pdu.IE{ID: 0x05, Data: []byte{byte(dp >> 8), byte(dp), byte(sp >> 8), byte(sp)}})
	}
	dcs := dcsOf(sm.DataCoding)
	gsm := pdu.DCS(dcs).Alphabet() == pdu.AlphabetGSM7
	var septets []byte
	if gsm {
		enc := gsm7.NewEncoder()
		s, err := enc.Encode(data)
		if err != nil {
			return nil, fmt.Errorf("%w: text not in the GSM alphabet: %w", errCannotConvert, err)
		}
		septets = s
	}
	head := submitHead{to: to, pid: sm.ProtocolID, dcs: dcs, srr: sm.RegisteredDelivery&3 != 0}
	hdr := (&pdu.UDH{IEs: ies}).Len()
	fits := hdr+len(data) <= pdu.MaxUserData
	if gsm {
		fits = (hdr*8+6)/7+len(septets) <= 160
	}
	if fits {
		t, err := marshalSubmit(head, ies, data, septets)
		return [][]byte{t}, err
	}
	if concat || gsm {
		return nil, fmt.Errorf("%w: %d octets will not fit one SMS", errCannotConvert, hdr+len(data))
	}
	room := pdu.MaxUserData - (&pdu.UDH{IEs: append(append([]pdu.IE(nil), ies...), pdu.IE{ID: 0x08, Data: make([]byte, 4)})}).Len()
	total := (len(data) + room - 1) / room
	if total > 255 {
		return nil, fmt.Errorf("%w: %d octets need %d segments", errCannotConvert, len(data), total)
	}
	var out [][]byte
	for i := 0; i < total; i++ {
		seg := append(append([]pdu.IE(nil), ies...), pdu.IE{ID: 0x08, Data: []byte{byte(ref >> 8), byte(ref), byte(total), byte(i + 1)}})
		t, err := marshalSubmit(head, seg, data[i*room:min((i+1)*room, len(data))], nil)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func dcsOf(dc byte) byte {
	switch {
	case dc&0xF0 == 0xF0:
		return dc
	case dc == smppwire.DataCodingBinary || dc == 0x02:
		return 0x04
	case dc == smppwire.DataCodingUCS2:
		return 0x08
	}
	return 0x00
}

// submitHead is what every SMS-SUBMIT of one submit_sm shares: the
// destination, TP-PID, TP-DCS and whether a status report is requested.
type submitHead struct {
	to       string
	pid, dcs byte
	srr      bool
}

// marshalSubmit encodes an SMS-SUBMIT (TP-VPF relative, 24 h; TP-MR 0,
// which the sending Endpoint sets) with the UDH ies and the user data:
// septets for the GSM 7-bit alphabet of h.dcs, data otherwise.
func marshalSubmit(h submitHead, ies []pdu.IE, data, septets []byte) ([]byte, error) {
	to, pid, dcs, srr := h.to, h.pid, h.dcs, h.srr
	gsm := pdu.DCS(dcs).Alphabet() == pdu.AlphabetGSM7
	digits := to
	if len(digits) > 0 && digits[0] == '+' {
		digits = digits[1:]
	}
	if digits == "" || len(digits) > 20 {
		return nil, fmt.Errorf("%w: destination %q", errCannotConvert, to)
	}
	fo := byte(0x01 | 0x10) // SMS-SUBMIT, TP-VPF relative
	if srr {
		fo |= 0x20
	}
	if len(ies) > 0 {
		fo |= 0x40
	}
	t := []byte{fo, 0, byte(len(digits)), 0x91}
	for i := 0; i < len(digits); i += 2 {
		lo := digits[i] - '0'
		hi := byte(0xF)
		if i+1 < len(digits) {
			hi = digits[i+1] - '0'
		}
		if lo > 9 || hi > 9 && hi != 0xF {
			return nil, fmt.Errorf("%w: destination %q is not digits", errCannotConvert, to)
		}
		t = append(t, hi<<4|lo)
	}
	t = append(t, pid, dcs, 0xA7)
	hdr, err := pdu.AppendUDH(nil, pdu.UDH{IEs: ies})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCannotConvert, err)
	}
	if !gsm {
		t = append(t, byte(len(hdr)+len(data)))
		t = append(t, hdr...)
		return append(t, data...), nil
	}
	fill := 0
	if len(hdr) > 0 {
		fill = (7 - len(hdr)*8%7) % 7
	}
	t = append(t, byte((len(hdr)*8+fill)/7+len(septets)))
	t = append(t, hdr...)
	return append(t, gsm7.Pack7Bit(septets, fill)...), nil
}

// deliverSM turns an SMS-DELIVER for one of the account's numbers into a
// deliver_sm: UDH kept (esm_class UDHI), 8-bit data as data_coding 0x04.
func deliverSM(tpdu []byte, to string) (*smppwire.SM, error) {
	in, err := pdu.Decode(tpdu)
	if err != nil || in.Deliver == nil {
		return nil, fmt.Errorf("%w: not an SMS-DELIVER: %v", errCannotConvert, err)
	}
	d := in.Deliver
	sm := &smppwire.SM{SourceTON: byte(d.Originator.TON), SourceNPI: byte(d.Originator.NPI), SourceAddr: d.Originator.Value,
		DestTON: smppwire.TONInternational, DestNPI: smppwire.NPIISDN, DestAddr: trimPlus(to), ProtocolID: d.PID}
	body := d.Data
	switch d.DCS.Alphabet() {
	case pdu.Alphabet8Bit:
		sm.DataCoding = smppwire.DataCodingBinary
	case pdu.AlphabetUCS2:
		sm.DataCoding = smppwire.DataCodingUCS2
	default:
		text, err := d.Text()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCannotConvert, err)
		}
		body = []byte(text)
	}
	if byte(d.DCS)&0xF0 == 0xF0 {
		sm.DataCoding = byte(d.DCS)
	}
	if d.HasUDH {
		hdr, err := pdu.AppendUDH(nil, d.UDH)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errCannotConvert, err)
		}
		sm.ESMClass |= smppwire.ESMUDHI
		body = append(hdr, body...)
	}
	sm.ShortMessage = body
	return sm, nil
}

func trimPlus(s string) string {
	if len(s) > 0 && s[0] == '+' {
		return s[1:]
	}
	return s
}

// concatIE is the concatenation IE of a sar_* reference: 8-bit (IE 0x00)
// when the reference fits, as the sender's segments were sized for it.
func concatIE(ref uint16, total, seq byte) pdu.IE {
	if ref <= 0xFF {
		return pdu.IE{ID: 0x00, Data: []byte{byte(ref), total, seq}}
	}
	return pdu.IE{ID: 0x08, Data: []byte{byte(ref >> 8), byte(ref), total, seq}}
}
