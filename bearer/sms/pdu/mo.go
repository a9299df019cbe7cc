package pdu

import (
	"fmt"
	"time"

	"github.com/warthog618/sms/encoding/gsm7"
)

// Submit is a decoded SMS-SUBMIT (TS 23.040 §9.2.2.2). Simulators and tests
// use it to turn what a modem sends into what the far end receives.
//
// The zero Submit is an empty GSM 7-bit message to the empty address:
// Binary fails (not 8-bit data).
type Submit struct {
	MR               byte    // TP-MR
	Destination      Address // TP-DA
	PID              byte    // TP-PID
	DCS              DCS     // TP-DCS
	RejectDuplicates bool    // TP-RD
	StatusReport     bool    // TP-SRR
	ReplyPath        bool    // TP-RP
	// VPF is the TP-VPF value: 0 none, 2 relative, 1 enhanced, 3 absolute.
	VPF byte
	// VP is the raw TP-VP field (1 octet relative, 7 otherwise).
	VP []byte
	UserData
}

// Validity returns the relative validity period, or 0 if TP-VP is not in
// the relative format.
func (s *Submit) Validity() time.Duration {
	if s.VPF != 2 || len(s.VP) != 1 {
		return 0
	}
	return RelativeVPDuration(s.VP[0])
}

// Binary returns the 8-bit user data; see ErrNotBinary.
func (s *Submit) Binary() ([]byte, error) { return s.binary(s.DCS) }

// ParseSubmit decodes an SMS-SUBMIT TPDU (no SMSC prefix).
func ParseSubmit(b []byte) (*Submit, error) {
	if len(b) < 2 {
		return nil, decErr("TP-MR", len(b), ErrTruncated, "")
	}
	fo := b[0]
	if fo&3 != mtiSubmit {
		return nil, decErr("TP-MTI", 0, ErrUnsupportedType, "not SMS-SUBMIT (MTI %d)", fo&3)
	}
	s := &Submit{
		MR: b[1], RejectDuplicates: fo&foRD != 0, StatusReport: fo&foSRR != 0,
		ReplyPath: fo&foRP != 0, VPF: fo & foVPFMask >> 3,
	}
	da, i, err := parseAddress("TP-DA", b, 2)
	if err != nil {
		return nil, err
	}
	s.Destination = da
	if len(b) < i+2 {
		return nil, decErr("TP-PID", i, ErrTruncated, "")
	}
	s.PID, s.DCS = b[i], DCS(b[i+1])
	i += 2
	vpLen := 7 // enhanced (01) and absolute (11) formats
	switch s.VPF {
	case 0:
		vpLen = 0
	case 2:
		vpLen = 1
	}
	if len(b) < i+vpLen {
		return nil, decErr("TP-VP", i, ErrTruncated, "")
	}
	if vpLen > 0 {
		s.VP = b[i : i+vpLen]
	}
	i += vpLen
	if s.UserData, err = parseUserData(b, i, fo&foUDHI != 0, s.DCS); err != nil {
		return nil, err
	}
	return s, nil
}

// DeliverOf returns the SMS-DELIVER a recipient gets for an SMS-SUBMIT sent
// by originator and time-stamped scts by the service centre, with the
// same PID, DCS, TP-RP, user data header and data.
func DeliverOf(s *Submit, originator Address, scts time.Time) *Deliver {
	return &Deliver{
		Originator: originator, PID: s.PID, DCS: s.DCS, SCTS: scts,
		StatusReportIndication: s.StatusReport, ReplyPath: s.ReplyPath,
		UserData: s.UserData,
	}
}

// Marshal encodes an SMS-DELIVER TPDU. For GSM 7-bit coding Data holds
// unpacked septets; otherwise octets. The header is re-encoded from
// UDH.IEs when HasUDH is set.
func (d *Deliver) Marshal() ([]byte, error) {
	fo := byte(mtiDeliver)
	if !d.MoreMessages {
		fo |= foMMS
	}
	if d.LoopPrevention {
		fo |= foLP
	}
	if d.StatusReportIndication {
		fo |= foSRI
	}
	if d.ReplyPath {
		fo |= foRP
	}
	if d.HasUDH {
		fo |= foUDHI
	}
	t := make([]byte, 0, 176)
	t = append(t, fo)
	t, err := appendAddress(t, d.Originator)
	if err != nil {
		return nil, err
	}
	t = append(t, d.PID, byte(d.DCS))
	t = appendSCTS(t, d.SCTS)
	return appendUserData(t, d.UserData, d.DCS)
}

// Marshal encodes a status report TPDU (used by simulators).
func (s *StatusReport) Marshal() ([]byte, error) {
	fo := byte(mtiStatusReport)
	if !s.MoreMessages {
		fo |= foMMS
	}
	if s.Qualifier {
		fo |= foSRQ
	}
	if s.HasUD && s.UD.HasUDH {
		fo |= foUDHI
	}
	t := make([]byte, 0, 176)
	t = append(t, fo, s.MR)
	t, err := appendAddress(t, s.Recipient)
	if err != nil {
		return nil, err
	}
	t = appendSCTS(t, s.SCTS)
	t = appendSCTS(t, s.Discharge)
	t = append(t, s.Status)
	var pi byte
	if s.HasPID {
		pi |= 1
	}
	if s.HasDCS {
		pi |= 2
	}
	if s.HasUD {
		pi |= 4
	}
	if pi == 0 {
		return t, nil
	}
	t = append(t, pi)
	if s.HasPID {
		t = append(t, s.PID)
	}
	if s.HasDCS {
		t = append(t, byte(s.DCS))
	}
	if s.HasUD {
		return appendUserData(t, s.UD, s.DCS)
	}
	return t, nil
}

func appendUserData(t []byte, u UserData, dcs DCS) ([]byte, error) {
	var hdr []byte
	if u.HasUDH {
		var err error
		if hdr, err = AppendUDH(nil, u.UDH); err != nil {
			return nil, err
		}
		if len(hdr) == 0 {
			hdr = []byte{0} // UDHI set, empty header
		}
	}
	if alphabetForDecode(dcs) != AlphabetGSM7 {
		if len(hdr)+len(u.Data) > MaxUserData {
			return nil, fmt.Errorf("%w: %d octets of user data > 140", ErrInvalidOption, len(hdr)+len(u.Data))
		}
		t = append(t, byte(len(hdr)+len(u.Data)))
		t = append(t, hdr...)
		return append(t, u.Data...), nil
	}
	fill := 0
	if len(hdr) > 0 {
		fill = (7 - len(hdr)*8%7) % 7
	}
	udl := (len(hdr)*8+fill)/7 + len(u.Data)
	if udl > 160 {
		return nil, fmt.Errorf("%w: %d septets of user data > 160", ErrInvalidOption, udl)
	}
	for _, c := range u.Data {
		if c > 0x7f {
			return nil, fmt.Errorf("%w: septet 0x%02X > 0x7F", ErrInvalidOption, c)
		}
	}
	t = append(t, byte(udl))
	t = append(t, hdr...)
	return append(t, gsm7.Pack7Bit(u.Data, fill)...), nil
}
