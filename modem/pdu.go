package modem

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
)

// This file holds the little PDU knowledge the driver needs: it splits the
// PDU-mode hex line into SMSC address and TPDU (with the pdumode package of
// github.com/warthog618/sms), tells SMS-DELIVER from SMS-STATUS-REPORT by
// TP-MTI, and reads a status report's TP-MR and TP-ST by hand. Everything
// else about TPDUs belongs to the SMS bearer.

// Kind tells what a received TPDU is, by its TP-MTI (TS 23.040 §9.2.3.1).
type Kind int

// Kinds of received TPDUs.
const (
	KindDeliver      Kind = iota // SMS-DELIVER (TP-MTI 00)
	KindStatusReport             // SMS-STATUS-REPORT (TP-MTI 10)
	KindOther                    // anything else (SMS-SUBMIT stored by a user, reserved)
)

func (k Kind) String() string {
	switch k {
	case KindDeliver:
		return "deliver"
	case KindStatusReport:
		return "status-report"
	}
	return "other"
}

// TPDUKind returns the kind of an MS-terminated TPDU.
func TPDUKind(tpdu []byte) Kind {
	if len(tpdu) == 0 {
		return KindOther
	}
	switch tpdu[0] & 0x03 {
	case 0x00:
		return KindDeliver
	case 0x02:
		return KindStatusReport
	}
	return KindOther
}

// SplitPDU decodes a PDU-mode hex line: an SMSC address (TS 24.011 RP
// address, length octet first) followed by the TPDU. length is the <length>
// the modem announced (TPDU octets, SMSC excluded); a mismatch is an error,
// so a truncated line is never taken for a message. The SMSC is returned
// with '+' when international, or "" when absent.
func SplitPDU(hexLine string, length int) (smsc string, tpdu []byte, err error) {
	hexLine = strings.TrimSpace(hexLine)
	if len(hexLine) > 2*(maxTPDU+12) {
		return "", nil, fmt.Errorf("%w: PDU line of %d characters", ErrBadPDU, len(hexLine))
	}
	raw, err := hex.DecodeString(hexLine)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadPDU, err)
	}
	var p pdumode.PDU
	if err := p.UnmarshalBinary(raw); err != nil {
		return "", nil, fmt.Errorf("%w: SMSC address: %v", ErrBadPDU, err)
	}
	if len(p.TPDU) == 0 {
		return "", nil, fmt.Errorf("%w: empty TPDU", ErrBadPDU)
	}
	if length >= 0 && len(p.TPDU) != length {
		return "", nil, fmt.Errorf("%w: TPDU has %d octets, modem announced %d", ErrBadPDU, len(p.TPDU), length)
	}
	if p.SMSC.Addr != "" {
		smsc = p.SMSC.Number()
	}
	return smsc, append([]byte(nil), p.TPDU...), nil
}

// PDULine is a PDU-mode line as DecodePDULine read it.
type PDULine struct {
	SMSC     string // the SMSC address ('+' when international), "" when absent
	TPDU     []byte // the TPDU without SMSC address
	Kind     Kind   // by TP-MTI
	Length   int    // the <length> the modem announced (-1: none)
	Mismatch bool   // the TPDU does not have the announced length (used because it decodes)
	NoSMSC   bool   // the line carried no SMSC part: its octets are the announced <length>
}

// DecodePDULine reads a PDU-mode hex line as modems print it after +CMGR,
// +CMGL, +CMT and +CDS: hex digits (spaces and a stray pair of quotes
// around them are ignored) holding an SMSC address (TS 24.011 RP address,
// length octet first) and the TPDU; length is the <length> of the header
// (TPDU octets; -1 when there is none).
//
// It is lenient where modems and phones are: a line whose octets are
// exactly <length> is a TPDU without SMSC part; a TPDU whose length differs
// from <length> (common in real dumps) is used when it decodes as the
// message its TP-MTI says (SMS-DELIVER or SMS-STATUS-REPORT, mobile
// terminated; SMS-SUBMIT, mobile originated), and PDULine.Mismatch tells
// the caller to log it. Everything else is an error wrapping ErrBadPDU:
// not hex, an unreadable SMSC address, an empty TPDU, or a mismatched
// length with a TPDU that does not decode.
func DecodePDULine(line string, length int) (PDULine, error) {
	s := strings.Trim(strings.TrimSpace(line), `"`)
	s = strings.TrimSpace(s)
	if len(s) > 2*(maxTPDU+12) {
		return PDULine{}, fmt.Errorf("%w: PDU line of %d characters", ErrBadPDU, len(s))
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return PDULine{}, fmt.Errorf("%w: %v", ErrBadPDU, err)
	}
	if len(raw) == 0 {
		return PDULine{}, fmt.Errorf("%w: empty PDU line", ErrBadPDU)
	}
	out := PDULine{Length: length}
	var p pdumode.PDU
	splitErr := p.UnmarshalBinary(raw)
	if splitErr == nil && len(p.TPDU) == 0 {
		splitErr = errors.New("empty TPDU")
	}
	if splitErr == nil && (length < 0 || len(p.TPDU) == length) {
		return finishPDU(out, p.SMSC.Addr, p.SMSC.Number(), p.TPDU), nil
	}
	if length > 0 && len(raw) == length {
		if derr := tpduDecodes(raw); derr == nil || splitErr != nil {
			out.NoSMSC = true
			return finishPDU(out, "", "", raw), nil
		}
	}
	if splitErr != nil {
		return PDULine{}, fmt.Errorf("%w: SMSC address: %v", ErrBadPDU, splitErr)
	}
	if derr := tpduDecodes(p.TPDU); derr != nil {
		return PDULine{}, fmt.Errorf("%w: TPDU has %d octets, modem announced %d, and it does not decode: %v", ErrBadPDU, len(p.TPDU), length, derr)
	}
	out.Mismatch = true
	return finishPDU(out, p.SMSC.Addr, p.SMSC.Number(), p.TPDU), nil
}

func finishPDU(out PDULine, addr, number string, tp []byte) PDULine {
	if addr != "" {
		out.SMSC = number
	}
	out.TPDU = append([]byte(nil), tp...)
	out.Kind = TPDUKind(tp)
	return out
}

// tpduDecodes checks that tp decodes as the message its TP-MTI names:
// SMS-DELIVER or SMS-STATUS-REPORT (mobile terminated) or SMS-SUBMIT
// (mobile originated, as a phone stores its sent messages).
func tpduDecodes(tp []byte) error {
	if len(tp) == 0 {
		return errors.New("empty TPDU")
	}
	t := tpdu.TPDU{Direction: tpdu.MT}
	if tp[0]&0x03 == 0x01 {
		t.Direction = tpdu.MO
	}
	return t.UnmarshalBinary(tp)
}

// StatusReport is what the driver reads from an SMS-STATUS-REPORT TPDU
// (TS 23.040 §9.2.2.3): enough to correlate it with the send.
//
// The zero StatusReport reports TP-ST 0 (delivered) for message reference
// 0.
type StatusReport struct {
	MR        int    // TP-MR of the SMS-SUBMIT it reports on
	Recipient string // TP-RA digits (with '+' when international)
	Status    int    // TP-ST (TS 23.040 §9.2.3.15)
}

// Delivered reports whether TP-ST says the message reached the recipient
// (0x00..0x1F, "short message transaction completed").
func (s StatusReport) Delivered() bool { return s.Status >= 0 && s.Status <= 0x1F }

// Final reports whether the SMSC will not try again (transaction completed
// or permanent error: TP-ST not in 0x20..0x3F).
func (s StatusReport) Final() bool { return s.Status < 0x20 || s.Status > 0x3F }

// ParseStatusReport reads TP-MR, TP-RA and TP-ST from an SMS-STATUS-REPORT.
func ParseStatusReport(tpdu []byte) (StatusReport, error) {
	if TPDUKind(tpdu) != KindStatusReport {
		return StatusReport{}, fmt.Errorf("%w: not a status report", ErrBadPDU)
	}
	if len(tpdu) < 4 {
		return StatusReport{}, fmt.Errorf("%w: status report of %d octets", ErrBadPDU, len(tpdu))
	}
	sr := StatusReport{MR: int(tpdu[1])}
	digits := int(tpdu[2])
	if digits > 20 {
		return StatusReport{}, fmt.Errorf("%w: TP-RA of %d digits", ErrBadPDU, digits)
	}
	toa := tpdu[3]
	n := (digits + 1) / 2
	i := 4
	if len(tpdu) < i+n+14+1 {
		return StatusReport{}, fmt.Errorf("%w: status report truncated", ErrBadPDU)
	}
	var b strings.Builder
	if toa&0x70 == 0x10 {
		b.WriteByte('+')
	}
	const bcd = "0123456789*#abc"
	for k := 0; k < digits; k++ {
		o := tpdu[i+k/2]
		d := o & 0x0F
		if k%2 == 1 {
			d = o >> 4
		}
		if d > 14 {
			return StatusReport{}, fmt.Errorf("%w: TP-RA digit %x", ErrBadPDU, d)
		}
		b.WriteByte(bcd[d])
	}
	sr.Recipient = b.String()
	i += n + 14 // TP-RA, TP-SCTS, TP-DT
	sr.Status = int(tpdu[i])
	return sr, nil
}

// EncodeSubmitLine returns the PDU-mode hex string for +CMGS: an SMSC
// prefix (smsc empty: "00", use the SIM's SMSC) followed by the TPDU.
func EncodeSubmitLine(smsc string, submit []byte) (string, error) {
	if len(submit) == 0 || len(submit) > maxTPDU {
		return "", fmt.Errorf("%w: TPDU of %d octets", ErrBadPDU, len(submit))
	}
	var p pdumode.PDU
	if smsc != "" {
		p.SMSC.Address = tpdu.NewAddress(tpdu.FromNumber(smsc))
	}
	p.TPDU = submit
	s, err := p.MarshalHexString()
	if err != nil {
		return "", fmt.Errorf("%w: SMSC %q: %v", ErrBadPDU, smsc, err)
	}
	return strings.ToUpper(s), nil
}
