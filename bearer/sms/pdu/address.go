package pdu

import (
	"fmt"
	"strings"

	"github.com/warthog618/sms/encoding/gsm7"
)

// TypeOfNumber is the TON field of a TS 23.040 §9.1.2.5 address (bits 6..4
// of the Type-of-Address octet).
type TypeOfNumber uint8

// Types of number.
const (
	TONUnknown       TypeOfNumber = 0
	TONInternational TypeOfNumber = 1
	TONNational      TypeOfNumber = 2
	TONNetwork       TypeOfNumber = 3
	TONSubscriber    TypeOfNumber = 4
	TONAlphanumeric  TypeOfNumber = 5
	TONAbbreviated   TypeOfNumber = 6
)

// NumberingPlan is the NPI field of a TS 23.040 §9.1.2.5 address (bits 3..0).
type NumberingPlan uint8

// Numbering plans.
const (
	NPIUnknown  NumberingPlan = 0
	NPIISDN     NumberingPlan = 1 // E.164
	NPIData     NumberingPlan = 3
	NPITelex    NumberingPlan = 4
	NPINational NumberingPlan = 8
	NPIPrivate  NumberingPlan = 9
)

// maxAddrDigits is the most semi-octets an address value holds: the whole
// TP-OA/TP-DA field is at most 12 octets, 10 of them the value (§9.1.2.5).
const maxAddrDigits = 20

// Address is a TP-OA, TP-DA or TP-RA address, or an SMSC address.
//
// The zero Address is the empty address (IsZero).
type Address struct {
	TON TypeOfNumber
	NPI NumberingPlan
	// Value holds the digits (0-9, '*', '#', 'a', 'b', 'c') of a numeric
	// address, without a '+', or the decoded text of an alphanumeric one.
	Value string
}

// NumberAddress returns the address of a phone number: "+" followed by
// digits is international E.164 (TON 1, NPI 1); digits alone are TON
// unknown, NPI ISDN. Spaces are not allowed; it is a codec, not a parser of
// human input (package sms normalises numbers).
func NumberAddress(number string) (Address, error) {
	a := Address{TON: TONUnknown, NPI: NPIISDN, Value: number}
	if strings.HasPrefix(number, "+") {
		a.TON = TONInternational
		a.Value = number[1:]
	}
	if a.Value == "" || len(a.Value) > maxAddrDigits {
		return Address{}, fmt.Errorf("%w: %q: want 1..%d digits", ErrInvalidAddress, number, maxAddrDigits)
	}
	for i := 0; i < len(a.Value); i++ {
		if c := a.Value[i]; c < '0' || c > '9' {
			return Address{}, fmt.Errorf("%w: %q: non-digit %q", ErrInvalidAddress, number, c)
		}
	}
	return a, nil
}

// String returns "+digits" for international numbers, the text of an
// alphanumeric address and the bare digits otherwise.
func (a Address) String() string {
	if a.TON == TONInternational && a.Value != "" {
		return "+" + a.Value
	}
	return a.Value
}

// IsZero reports whether a is the empty address.
func (a Address) IsZero() bool { return a == Address{} }

func (a Address) toa() byte { return 0x80 | byte(a.TON&7)<<4 | byte(a.NPI&0x0f) }

const semiDigits = "0123456789*#abc"

func semiValue(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c == '*':
		return 10, true
	case c == '#':
		return 11, true
	case c >= 'a' && c <= 'c':
		return c - 'a' + 12, true
	case c >= 'A' && c <= 'C':
		return c - 'A' + 12, true
	}
	return 0, false
}

// appendSemiOctets appends digits as TS 23.040 §9.1.2.3 semi-octets, low
// nibble first, padded with 0xF.
func appendSemiOctets(dst []byte, digits string) ([]byte, error) {
	for i := 0; i < len(digits); i += 2 {
		lo, ok := semiValue(digits[i])
		if !ok {
			return dst, fmt.Errorf("%w: digit %q", ErrInvalidAddress, digits[i])
		}
		hi := byte(0x0f)
		if i+1 < len(digits) {
			if hi, ok = semiValue(digits[i+1]); !ok {
				return dst, fmt.Errorf("%w: digit %q", ErrInvalidAddress, digits[i+1])
			}
		}
		dst = append(dst, hi<<4|lo)
	}
	return dst, nil
}

// decodeSemiOctets decodes n semi-octets from b; an odd n must end in 0xF.
func decodeSemiOctets(b []byte, n int) (string, error) {
	var sb strings.Builder
	sb.Grow(n)
	for i := 0; i < n; i++ {
		v := b[i/2]
		if i%2 == 1 {
			v >>= 4
		}
		v &= 0x0f
		if v == 0x0f {
			return "", fmt.Errorf("%w: filler 0xF inside the address", ErrMalformed)
		}
		sb.WriteByte(semiDigits[v])
	}
	if n%2 == 1 && b[n/2]>>4 != 0x0f {
		return "", fmt.Errorf("%w: odd address not padded with 0xF", ErrMalformed)
	}
	return sb.String(), nil
}

// appendAddress appends a TP-DA style address: length in useful
// semi-octets, TOA, value.
func appendAddress(dst []byte, a Address) ([]byte, error) {
	if a.TON == TONAlphanumeric {
		enc := gsm7.NewEncoder().WithExtCharset(nil)
		sept, err := enc.Encode([]byte(a.Value))
		if err != nil {
			return dst, fmt.Errorf("%w: alphanumeric %q: %v", ErrInvalidAddress, a.Value, err)
		}
		if len(sept) > 11 {
			return dst, fmt.Errorf("%w: alphanumeric %q longer than 11 characters", ErrInvalidAddress, a.Value)
		}
		dst = append(dst, byte((len(sept)*7+3)/4), a.toa())
		return append(dst, gsm7.Pack7Bit(sept, 0)...), nil
	}
	if len(a.Value) > maxAddrDigits {
		return dst, fmt.Errorf("%w: %d digits > %d", ErrInvalidAddress, len(a.Value), maxAddrDigits)
	}
	dst = append(dst, byte(len(a.Value)), a.toa())
	return appendSemiOctets(dst, a.Value)
}

// parseAddress parses a TP-OA/TP-DA/TP-RA address at b[off:]; it returns the
// address and the offset after it.
func parseAddress(field string, b []byte, off int) (Address, int, error) {
	if len(b) < off+2 {
		return Address{}, off, decErr(field, off, ErrTruncated, "")
	}
	n := int(b[off])
	toa := b[off+1]
	octets := (n + 1) / 2
	if octets > maxAddrDigits/2 {
		return Address{}, off, decErr(field, off, ErrMalformed, "address length %d semi-octets > %d", n, maxAddrDigits)
	}
	v := off + 2
	if len(b) < v+octets {
		return Address{}, off, decErr(field, off, ErrTruncated, "")
	}
	a := Address{TON: TypeOfNumber(toa >> 4 & 7), NPI: NumberingPlan(toa & 0x0f)}
	raw := b[v : v+octets]
	if a.TON == TONAlphanumeric {
		// TS 23.040 §9.1.2.5: the length counts the useful semi-octets of
		// the packed 7-bit value, so n*4/7 septets are characters.
		sept := gsm7.Unpack7Bit(raw, 0)
		if k := n * 4 / 7; k < len(sept) {
			sept = sept[:k]
		}
		dec := gsm7.NewDecoder().WithExtCharset(nil)
		text, err := dec.Decode(sept)
		if err != nil {
			return Address{}, off, decErr(field, off, ErrMalformed, "alphanumeric address: %v", err)
		}
		a.Value = string(text)
	} else {
		s, err := decodeSemiOctets(raw, n)
		if err != nil {
			return Address{}, off, decErr(field, off, err, "")
		}
		a.Value = s
	}
	return a, v + octets, nil
}

// parseSMSC parses the TS 24.011 RP-SC address that precedes the TPDU in PDU
// mode: a length in octets (including the TOA octet), the TOA, the value.
// A zero length means "no SMSC" (use the SIM's).
func parseSMSC(b []byte) (Address, int, error) {
	if len(b) < 1 {
		return Address{}, 0, decErr("SMSC", 0, ErrTruncated, "")
	}
	l := int(b[0])
	if l == 0 {
		return Address{}, 1, nil
	}
	if l > 11 {
		return Address{}, 0, decErr("SMSC", 0, ErrMalformed, "SMSC length %d octets > 11", l)
	}
	if len(b) < 1+l {
		return Address{}, 0, decErr("SMSC", 0, ErrTruncated, "")
	}
	toa := b[1]
	a := Address{TON: TypeOfNumber(toa >> 4 & 7), NPI: NumberingPlan(toa & 0x0f)}
	raw := b[2 : 1+l]
	n := 2 * len(raw)
	if n > 0 && raw[len(raw)-1]>>4 == 0x0f {
		n--
	}
	s, err := decodeSemiOctets(raw, n)
	if err != nil {
		return Address{}, 0, decErr("SMSC", 0, err, "")
	}
	a.Value = s
	return a, 1 + l, nil
}
