// Package msisdn holds the one definition of an international SMS number
// (E.164 MSISDN) the module uses: the SMS bearer's addresses
// (bearer/sms.ParseMSISDN) and the LwM2M server's SMS-number bindings
// and wake targets both parse numbers here, so a number matches the same
// way below and above the bearer interface.
//
// # Usage
//
//	d, err := msisdn.Parse("+49 151 1234-5678") // "4915112345678"
//	n, err := msisdn.Normalize("004915112345678") // "+4915112345678"
//
// # Design
//
// One rule set. The E.164 limits ([MaxDigits], [MinDigits]) and the
// accepted forms ("+", "00" or bare digits, visual separators ignored)
// live only here; bearer/sms keeps its public names ([Error] is
// sms.NumberError, [ErrInvalid] is sms.ErrInvalidNumber).
//
// No transport. The package imports nothing of the module, so
// lwm2m/server can compare numbers without importing the SMS bearer.
package msisdn

import (
	"errors"
	"fmt"
	"strings"
)

// Network is the network name of SMS addresses (net.Addr.Network of
// bearer/sms.Addr).
const Network = "sms"

// E.164 limits: at most 15 digits (E.164 §6.1); we also refuse fewer than
// 7, shorter than the shortest national number plus country code in use
// (short codes are not MSISDNs).
const (
	MaxDigits = 15
	MinDigits = 7
)

// ErrInvalid is wrapped by every *Error.
var ErrInvalid = errors.New("sms: invalid number")

// Error reports a number that is not a usable MSISDN. The zero Error has
// no input and no reason.
type Error struct {
	Input  string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("sms: invalid number %q: %s", e.Input, e.Reason)
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Clean removes the visual separators people and modems use: spaces,
// hyphens, dots, parentheses, slashes.
func Clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '/', '\t':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// E164 checks digits (a number without "+") against the E.164 rules and
// returns it; input is what the caller was given, for the error.
func E164(input, digits string) (string, error) {
	switch {
	case digits == "":
		return "", &Error{input, "no digits"}
	case strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) >= 0:
		return "", &Error{input, "only digits may follow the optional +"}
	case digits[0] == '0':
		return "", &Error{input, "an E.164 country code does not start with 0"}
	case len(digits) > MaxDigits:
		return "", &Error{input, fmt.Sprintf("%d digits > %d (E.164)", len(digits), MaxDigits)}
	case len(digits) < MinDigits:
		return "", &Error{input, fmt.Sprintf("%d digits < %d", len(digits), MinDigits)}
	}
	return digits, nil
}

// Parse parses an international number: "+4915112345678",
// "4915112345678" (E.164 without "+", as modems and the LwM2M sms=
// parameter give it) or "004915112345678" (international prefix 00),
// separators ignored, and returns its digits without "+".
func Parse(s string) (string, error) {
	c := Clean(s)
	switch {
	case strings.HasPrefix(c, "+"):
		return E164(s, c[1:])
	case strings.HasPrefix(c, "00"):
		return E164(s, c[2:])
	}
	return E164(s, c)
}

// Normalize parses s as Parse does and returns the "+<digits>" form
// (what bearer/sms.Addr.String gives).
func Normalize(s string) (string, error) {
	d, err := Parse(s)
	if err != nil {
		return "", err
	}
	return "+" + d, nil
}

// Same reports whether a and b are the same valid number.
func Same(a, b string) bool {
	x, err1 := Parse(a)
	y, err2 := Parse(b)
	return err1 == nil && err2 == nil && x == y
}
