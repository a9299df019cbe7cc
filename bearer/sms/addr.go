package sms

import (
	"fmt"
	"strings"

	"github.com/m2mbearer/m2mbearer/internal/msisdn"
)

// Network is the network name of SMS addresses.
const Network = msisdn.Network

// E.164 limits: at most 15 digits (E.164 §6.1); we also refuse fewer than
// 7, shorter than the shortest national number plus country code in use
// (short codes are not MSISDNs). The rules are internal/msisdn's, shared
// with lwm2m/server.
const (
	MaxDigits = msisdn.MaxDigits
	MinDigits = msisdn.MinDigits
)

// ErrInvalidNumber is wrapped by every *NumberError.
var ErrInvalidNumber = msisdn.ErrInvalid

// NumberError reports a number that is not a usable MSISDN: its Input and
// the Reason. The zero NumberError has neither.
type NumberError = msisdn.Error

// Addr is the address of an SMS peer: an international MSISDN. It
// implements net.Addr with network "sms" and String "+<digits>". The zero
// Addr is invalid; use ParseMSISDN and friends. Addr is comparable and can
// be a map key.
type Addr struct {
	digits string // E.164 digits, no "+"
}

// Network returns "sms".
func (a Addr) Network() string { return Network }

// String returns the normalised E.164 form, "+4915112345678".
func (a Addr) String() string {
	if a.digits == "" {
		return ""
	}
	return "+" + a.digits
}

// Digits returns the number without "+", the LwM2M "sms=" form.
func (a Addr) Digits() string { return a.digits }

// IsZero reports whether a is the zero Addr.
func (a Addr) IsZero() bool { return a.digits == "" }

func e164(input, digits string) (Addr, error) {
	d, err := msisdn.E164(input, digits)
	if err != nil {
		return Addr{}, err
	}
	return Addr{digits: d}, nil
}

// ParseMSISDN parses an international number: "+4915112345678",
// "4915112345678" (E.164 without "+", as modems and the LwM2M sms=
// parameter give it) or "004915112345678" (international prefix 00).
// Spaces, hyphens, dots, slashes and parentheses are ignored.
func ParseMSISDN(s string) (Addr, error) {
	d, err := msisdn.Parse(s)
	if err != nil {
		return Addr{}, err
	}
	return Addr{digits: d}, nil
}

// ParseLwM2M parses the LwM2M "sms=" registration parameter and MSISDN
// resource form: E.164 digits only, no "+", no separators.
func ParseLwM2M(s string) (Addr, error) {
	if strings.HasPrefix(s, "+") {
		return Addr{}, &NumberError{Input: s, Reason: `the LwM2M form has no "+"`}
	}
	return e164(s, s)
}

// Numbering resolves national numbers: a number starting with the trunk
// prefix (default "0") becomes +<CountryCode><rest>. The zero Numbering has
// no country code: Parse refuses national numbers.
type Numbering struct {
	// CountryCode is the E.164 country code, digits only, e.g. "49".
	CountryCode string
	// TrunkPrefix is the national dialling prefix (default "0").
	TrunkPrefix string
}

// Parse parses an international number as ParseMSISDN does, or a national
// one ("0151 12345678" with CountryCode "49" → "+4915112345678"). A number
// with neither "+", "00" nor the trunk prefix is taken as E.164 without
// "+".
func (n Numbering) Parse(s string) (Addr, error) {
	c := msisdn.Clean(s)
	trunk := n.TrunkPrefix
	if trunk == "" {
		trunk = "0"
	}
	if strings.HasPrefix(c, "+") || (strings.HasPrefix(c, "00") && trunk != "00") {
		return ParseMSISDN(c)
	}
	if strings.HasPrefix(c, trunk) {
		if n.CountryCode == "" {
			return Addr{}, &NumberError{Input: s, Reason: "national number but no country code configured"}
		}
		if _, err := e164(n.CountryCode, n.CountryCode+"0000000"); err != nil || len(n.CountryCode) > 3 {
			return Addr{}, &NumberError{Input: s, Reason: fmt.Sprintf("bad configured country code %q", n.CountryCode)}
		}
		return e164(s, n.CountryCode+c[len(trunk):])
	}
	return e164(s, c)
}
