package sim

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
)

// ErrBadPDU is wrapped by errors about PDUs the simulator cannot accept.
var ErrBadPDU = errors.New("sim: bad PDU")

// TP-Status values of TS 23.040 §9.2.3.15 used by the simulated SMSC.
const (
	StatusReceived         byte = 0x00 // short message received by the SME
	StatusNotObtainable    byte = 0x43 // permanent error: not obtainable
	StatusValidityExpired  byte = 0x46 // permanent error: SM validity period expired
	StatusTempNoResponse   byte = 0x22 // temporary error, SC still trying: no response from SME
	StatusDeletedBySCAdmin byte = 0x48 // permanent error: SM deleted by SC administration
)

// submit is a decoded SMS-SUBMIT as the SMSC sees it.
type submit struct {
	raw  []byte // the TPDU as sent by the MS, TP-MR already set
	t    tpdu.TPDU
	to   string // normalised destination
	srr  bool
	conc bool // carries a concatenation IE
}

// decodeSubmit decodes an SMS-SUBMIT TPDU (no SMSC prefix).
func decodeSubmit(b []byte) (*submit, error) {
	s := &submit{raw: append([]byte(nil), b...)}
	s.t.Direction = tpdu.MO
	if err := s.t.UnmarshalBinary(s.raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPDU, err)
	}
	if s.t.SmsType() != tpdu.SmsSubmit {
		return nil, fmt.Errorf("%w: TP-MTI %v is not SMS-SUBMIT", ErrBadPDU, s.t.SmsType())
	}
	s.to = NormalizeMSISDN(s.t.DA.Number())
	if s.to == "" {
		return nil, fmt.Errorf("%w: empty TP-DA", ErrBadPDU)
	}
	s.srr = s.t.FirstOctet.SRR()
	_, _, _, s.conc = s.t.ConcatInfo()
	return s, nil
}

// NormalizeMSISDN returns the routing key of a phone number: its digits,
// with a leading '+' when the number was given in international form.
// Numbers with and without '+' that have the same digits route to the same
// subscriber.
func NormalizeMSISDN(n string) string {
	n = strings.TrimSpace(n)
	var b strings.Builder
	for _, r := range n {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "+" + b.String()
}

func numberAddress(n string) tpdu.Address {
	a := tpdu.NewAddress()
	a.SetNumber(strings.TrimPrefix(n, "+"))
	return a
}

// deliverFor builds the SMS-DELIVER TPDU that carries s from originator
// from, stamped with the SMSC time scts.
func deliverFor(s *submit, from string, scts time.Time) ([]byte, error) {
	d := tpdu.TPDU{Direction: tpdu.MT}
	if err := d.SetSmsType(tpdu.SmsDeliver); err != nil {
		return nil, err
	}
	// TP-MMS set: no more messages are waiting (TS 23.040 §9.2.3.2).
	d.FirstOctet |= tpdu.FoMMS
	if s.srr {
		d.FirstOctet |= tpdu.FoSRI
	}
	if s.t.FirstOctet.RP() {
		d.FirstOctet |= tpdu.FoRP
	}
	d.OA = numberAddress(from)
	d.PID = s.t.PID
	d.DCS = s.t.DCS
	d.SCTS = tpdu.Timestamp{Time: scts}
	d.UDH = s.t.UDH
	if s.t.UDHI() {
		d.FirstOctet |= tpdu.FoUDHI
	}
	d.UD = s.t.UD
	b, err := d.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: building SMS-DELIVER: %w", ErrBadPDU, err)
	}
	return b, nil
}

// statusReportFor builds the SMS-STATUS-REPORT for s: TP-MR of the
// submit, TP-RA its destination, TP-SCTS when the SMSC took it, TP-DT the
// discharge time and TP-ST the status.
func statusReportFor(s *submit, scts, dt time.Time, st byte) ([]byte, error) {
	r := tpdu.TPDU{Direction: tpdu.MT}
	if err := r.SetSmsType(tpdu.SmsStatusReport); err != nil {
		return nil, err
	}
	r.FirstOctet |= tpdu.FoMMS
	r.MR = s.t.MR
	r.RA = numberAddress(s.to)
	r.SCTS = tpdu.Timestamp{Time: scts}
	r.DT = tpdu.Timestamp{Time: dt}
	r.ST = st
	b, err := r.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: building SMS-STATUS-REPORT: %w", ErrBadPDU, err)
	}
	return b, nil
}

// pduModeHex returns the PDU-mode hex string (SMSC address then TPDU) and
// the TPDU length in octets, as +CMT, +CMGR and +CMGL show them.
func pduModeHex(smsc string, t []byte) (string, int) {
	p := pdumode.PDU{TPDU: t}
	if smsc != "" {
		p.SMSC.Addr = strings.TrimPrefix(smsc, "+")
		p.SMSC.TOA = 0x91
	}
	s, err := p.MarshalHexString()
	if err != nil {
		// An SMSC address that cannot be encoded: fall back to none.
		s, _ = (&pdumode.PDU{TPDU: t}).MarshalHexString()
	}
	return strings.ToUpper(s), len(t)
}

// parsePDUModeHex parses the hex PDU a TE gives after the +CMGS/+CMGW
// prompt, checks its TPDU length against the command's <length> and
// returns the TPDU.
func parsePDUModeHex(h string, length int) ([]byte, error) {
	p, err := pdumode.UnmarshalHexString(strings.TrimSpace(h))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPDU, err)
	}
	if len(p.TPDU) != length {
		return nil, fmt.Errorf("%w: TPDU is %d octets, <length> says %d", ErrBadPDU, len(p.TPDU), length)
	}
	return p.TPDU, nil
}
