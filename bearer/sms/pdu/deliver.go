package pdu

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warthog618/sms/encoding/gsm7"
	"github.com/warthog618/sms/encoding/ucs2"
)

// UserData is the decoded TP-UDL/TP-UD of a TPDU.
type UserData struct {
	// HasUDH is TP-UDHI: the user data starts with a header.
	HasUDH bool
	// UDH is the parsed header (zero if HasUDH is false).
	UDH UDH
	// Data is the short message after the header: octets for 8-bit and
	// UCS-2 coding, unpacked septets (one a byte) for GSM 7-bit.
	Data []byte
}

// Deliver is a decoded SMS-DELIVER (TS 23.040 §9.2.2.1).
//
// The zero Deliver is an empty GSM 7-bit message from the empty address:
// Text returns "", Binary fails (not 8-bit data).
type Deliver struct {
	Originator Address   // TP-OA
	PID        byte      // TP-PID
	DCS        DCS       // TP-DCS
	SCTS       time.Time // TP-SCTS, in the zone the SMSC gave
	// MoreMessages is true when TP-MMS is 0: the SMSC has more to send.
	MoreMessages bool
	// StatusReportIndication is TP-SRI.
	StatusReportIndication bool
	// ReplyPath is TP-RP; LoopPrevention is TP-LP.
	ReplyPath, LoopPrevention bool
	UserData
}

// Binary returns the 8-bit user data, the bytes of a CoAP datagram (or of
// one segment of it). Any other coding gives an error wrapping ErrNotBinary
// that names the coding and quotes the text, for logs.
func (u *UserData) binary(dcs DCS) ([]byte, error) {
	if dcs.IsBinary() {
		return u.Data, nil
	}
	text, err := u.text(dcs)
	if err != nil {
		return nil, fmt.Errorf("%w: DCS %s (undecodable text: %v)", ErrNotBinary, dcs, err)
	}
	if len(text) > 64 {
		text = text[:64] + "…"
	}
	return nil, fmt.Errorf("%w: DCS %s carries text %q", ErrNotBinary, dcs, text)
}

// text decodes the user data as text: GSM 7-bit (default alphabet and its
// extension table; national language shift tables are not applied), UCS-2,
// or for 8-bit data the bytes as UTF-8 if valid, else hex.
func (u *UserData) text(dcs DCS) (string, error) {
	switch alphabetForDecode(dcs) {
	case AlphabetUCS2:
		r, err := ucs2.Decode(u.Data)
		if err != nil {
			return "", err
		}
		return string(r), nil
	case Alphabet8Bit:
		if utf8.Valid(u.Data) {
			return string(u.Data), nil
		}
		return hex.EncodeToString(u.Data), nil
	}
	d := gsm7.NewDecoder()
	b, err := d.Decode(u.Data)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Binary returns the CoAP bytes of an 8-bit SMS; see ErrNotBinary.
func (d *Deliver) Binary() ([]byte, error) { return d.binary(d.DCS) }

// Text returns the user data as text, for logs.
func (d *Deliver) Text() (string, error) { return d.text(d.DCS) }

// DeliveryStatus is the outcome class of TP-ST (TS 23.040 §9.2.3.15).
type DeliveryStatus uint8

// Delivery outcomes.
const (
	// StatusDelivered: 0x00..0x1F, short message transaction completed.
	StatusDelivered DeliveryStatus = iota
	// StatusPending: 0x20..0x3F, temporary error, the SC is still trying.
	StatusPending
	// StatusFailed: 0x40..0x5F permanent error, and 0x60..0x7F temporary
	// error after which the SC makes no more attempts; both are final
	// failures. Reserved values 0x80..0xFF are treated as failures too.
	StatusFailed
)

func (s DeliveryStatus) String() string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusPending:
		return "pending"
	}
	return "failed"
}

// ClassifyStatus maps a TP-ST value to its outcome.
func ClassifyStatus(st byte) DeliveryStatus {
	switch {
	case st <= 0x1F:
		return StatusDelivered
	case st <= 0x3F:
		return StatusPending
	}
	return StatusFailed
}

// StatusReport is a decoded SMS-STATUS-REPORT (TS 23.040 §9.2.2.3).
//
// The zero StatusReport reports TP-ST 0 (delivered) for message reference
// 0.
type StatusReport struct {
	MR        byte      // TP-MR of the SMS-SUBMIT it reports on
	Recipient Address   // TP-RA
	SCTS      time.Time // TP-SCTS of the reported SMS
	Discharge time.Time // TP-DT: delivery time, or time of the last attempt
	Status    byte      // TP-ST
	// Qualifier is TP-SRQ: true when reporting on an SMS-COMMAND.
	Qualifier    bool
	MoreMessages bool // TP-MMS is 0
	// Optional parameters, present when TP-PI says so.
	PID    byte
	HasPID bool
	DCS    DCS
	HasDCS bool
	HasUD  bool
	UD     UserData
}

// Outcome classifies Status.
func (s *StatusReport) Outcome() DeliveryStatus { return ClassifyStatus(s.Status) }

// Incoming is a decoded mobile-terminated TPDU: exactly one of Deliver and
// StatusReport is set.
type Incoming struct {
	// SMSC is the service centre address that preceded the TPDU in PDU
	// mode; zero when absent.
	SMSC         Address
	Deliver      *Deliver
	StatusReport *StatusReport
}

// Decode decodes a mobile-terminated TPDU (no SMSC prefix): an
// SMS-DELIVER or an SMS-STATUS-REPORT. Other types give a DecodeError
// wrapping ErrUnsupportedType. It never panics and copies nothing it
// returns from b except where noted: Data and IE slices alias b.
func Decode(b []byte) (Incoming, error) {
	if len(b) < 1 {
		return Incoming{}, decErr("TP-MTI", 0, ErrTruncated, "")
	}
	switch b[0] & 3 {
	case mtiDeliver:
		d, err := ParseDeliver(b)
		return Incoming{Deliver: d}, err
	case mtiStatusReport:
		s, err := ParseStatusReport(b)
		return Incoming{StatusReport: s}, err
	case mtiSubmit:
		return Incoming{}, decErr("TP-MTI", 0, ErrUnsupportedType, "SMS-SUBMIT-REPORT")
	}
	return Incoming{}, decErr("TP-MTI", 0, ErrUnsupportedType, "reserved TP-MTI 11")
}

// DecodePDU decodes a PDU-mode PDU: the SMSC address (TS 24.011, a length
// octet that may be 0) followed by a mobile-terminated TPDU.
func DecodePDU(b []byte) (Incoming, error) {
	smsc, n, err := parseSMSC(b)
	if err != nil {
		return Incoming{}, err
	}
	in, err := Decode(b[n:])
	if err != nil {
		if de, ok := err.(*DecodeError); ok {
			de.Offset += n
		}
		return Incoming{}, err
	}
	in.SMSC = smsc
	return in, nil
}

// DecodeModemHex decodes a PDU as a modem prints it after +CMT, +CMGR or
// +CDS (TS 27.005 §3.4.1, §3.1 <pdu>): hex, normally with the SMSC address
// first. length is the <length> the modem printed (TPDU octets, SMSC
// excluded); it decides whether the SMSC part is present. With length <= 0
// the SMSC part is assumed present, as TS 27.005 specifies.
func DecodeModemHex(s string, length int) (Incoming, error) {
	s = strings.TrimSpace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		return Incoming{}, decErr("PDU", 0, ErrMalformed, "not hex: %v", err)
	}
	switch {
	case length <= 0:
		return DecodePDU(b)
	case len(b) == length:
		return Decode(b)
	case len(b) > 0 && len(b) == 1+int(b[0])+length:
		return DecodePDU(b)
	}
	return Incoming{}, decErr("PDU", 0, ErrMalformed, "%d octets do not match <length> %d with or without the SMSC part", len(b), length)
}

// ParseDeliver decodes an SMS-DELIVER TPDU.
func ParseDeliver(b []byte) (*Deliver, error) {
	if len(b) < 1 {
		return nil, decErr("TP-MTI", 0, ErrTruncated, "")
	}
	fo := b[0]
	if fo&3 != mtiDeliver {
		return nil, decErr("TP-MTI", 0, ErrUnsupportedType, "not SMS-DELIVER (MTI %d)", fo&3)
	}
	d := &Deliver{
		MoreMessages:           fo&foMMS == 0,
		LoopPrevention:         fo&foLP != 0,
		StatusReportIndication: fo&foSRI != 0,
		ReplyPath:              fo&foRP != 0,
	}
	oa, i, err := parseAddress("TP-OA", b, 1)
	if err != nil {
		return nil, err
	}
	d.Originator = oa
	if len(b) < i+2 {
		return nil, decErr("TP-PID", i, ErrTruncated, "")
	}
	d.PID, d.DCS = b[i], DCS(b[i+1])
	i += 2
	if d.SCTS, err = parseSCTS("TP-SCTS", b, i); err != nil {
		return nil, err
	}
	i += 7
	if d.UserData, err = parseUserData(b, i, fo&foUDHI != 0, d.DCS); err != nil {
		return nil, err
	}
	return d, nil
}

// ParseStatusReport decodes an SMS-STATUS-REPORT TPDU.
func ParseStatusReport(b []byte) (*StatusReport, error) {
	if len(b) < 2 {
		return nil, decErr("TP-MR", len(b), ErrTruncated, "")
	}
	fo := b[0]
	if fo&3 != mtiStatusReport {
		return nil, decErr("TP-MTI", 0, ErrUnsupportedType, "not SMS-STATUS-REPORT (MTI %d)", fo&3)
	}
	s := &StatusReport{MR: b[1], Qualifier: fo&foSRQ != 0, MoreMessages: fo&foMMS == 0}
	ra, i, err := parseAddress("TP-RA", b, 2)
	if err != nil {
		return nil, err
	}
	s.Recipient = ra
	if s.SCTS, err = parseSCTS("TP-SCTS", b, i); err != nil {
		return nil, err
	}
	i += 7
	if s.Discharge, err = parseSCTS("TP-DT", b, i); err != nil {
		return nil, err
	}
	i += 7
	if len(b) < i+1 {
		return nil, decErr("TP-ST", i, ErrTruncated, "")
	}
	s.Status = b[i]
	i++
	if i == len(b) {
		return s, nil
	}
	// TP-PI (§9.2.3.27), with extension octets while bit 7 is set; the
	// extension octets name no parameters yet and are skipped.
	pi := b[i]
	for j := b[i]; j&0x80 != 0; {
		i++
		if i >= len(b) {
			return nil, decErr("TP-PI", i, ErrTruncated, "extension octet missing")
		}
		j = b[i]
	}
	i++
	if pi&0x01 != 0 {
		if i >= len(b) {
			return nil, decErr("TP-PID", i, ErrTruncated, "")
		}
		s.PID, s.HasPID = b[i], true
		i++
	}
	if pi&0x02 != 0 {
		if i >= len(b) {
			return nil, decErr("TP-DCS", i, ErrTruncated, "")
		}
		s.DCS, s.HasDCS = DCS(b[i]), true
		i++
	}
	if pi&0x04 != 0 {
		if s.UD, err = parseUserData(b, i, fo&foUDHI != 0, s.DCS); err != nil {
			return nil, err
		}
		s.HasUD = true
		return s, nil
	}
	if i != len(b) {
		return nil, decErr("TP-PI", i, ErrTrailing, "%d octets after the last parameter", len(b)-i)
	}
	return s, nil
}

// alphabetForDecode applies TS 23.038 §4: reserved codings are read as the
// GSM 7-bit default alphabet.
func alphabetForDecode(d DCS) Alphabet {
	if a := d.Alphabet(); a != AlphabetReserved {
		return a
	}
	return AlphabetGSM7
}

// parseUserData decodes TP-UDL and TP-UD at b[i:], which must end the TPDU.
func parseUserData(b []byte, i int, udhi bool, dcs DCS) (UserData, error) {
	u := UserData{HasUDH: udhi}
	if len(b) < i+1 {
		return u, decErr("TP-UDL", i, ErrTruncated, "")
	}
	udl := int(b[i])
	i++
	septets := alphabetForDecode(dcs) == AlphabetGSM7
	octets := udl
	if septets {
		if udl > 160 {
			return u, decErr("TP-UDL", i-1, ErrMalformed, "%d septets > 160", udl)
		}
		octets = (udl*7 + 7) / 8
	} else if udl > MaxUserData {
		return u, decErr("TP-UDL", i-1, ErrMalformed, "%d octets > 140", udl)
	}
	if len(b) < i+octets {
		return u, decErr("TP-UD", i, ErrTruncated, "TP-UDL %d needs %d octets, %d present", udl, octets, len(b)-i)
	}
	if len(b) > i+octets {
		return u, decErr("TP-UD", i+octets, ErrTrailing, "%d octets after TP-UDL %d", len(b)-i-octets, udl)
	}
	ud := b[i : i+octets]
	hdr := 0
	if udhi {
		h, n, err := ParseUDH(ud)
		if err != nil {
			if de, ok := err.(*DecodeError); ok {
				de.Offset += i
			}
			return u, err
		}
		u.UDH, hdr = h, n
	}
	if !septets {
		u.Data = ud[hdr:]
		return u, nil
	}
	fill := 0
	if hdr > 0 {
		fill = (7 - hdr*8%7) % 7
	}
	n := udl - (hdr*8+fill)/7
	if n < 0 {
		return u, decErr("TP-UDL", i-1, ErrMalformed, "header of %d octets longer than %d septets", hdr, udl)
	}
	sept := gsm7.Unpack7Bit(ud[hdr:], fill)
	if len(sept) < n {
		return u, decErr("TP-UD", i, ErrTruncated, "")
	}
	u.Data = sept[:n]
	return u, nil
}
