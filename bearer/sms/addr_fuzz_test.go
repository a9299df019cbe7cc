package sms

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseMSISDN: numbers come from registrations (sms=), SMS
// originators, configuration and the API. Whatever the input, a number
// either parses into a canonical E.164 address that every parser agrees
// on, or fails with a *NumberError.
func FuzzParseMSISDN(f *testing.F) {
	for _, s := range []string{
		"+4915112345678", "4915112345678", "004915112345678", "+49 (151) 123-456/78", "0151 12345678",
		"+0123456789", "+1234567890123456", "+123456", "12ab", "", "+", "00", "٤٩١٥١١٢٣٤٥٦٧٨", "+49\t151 1234567",
	} {
		f.Add(s, "49")
	}
	f.Add("0151 12345678", "")
	f.Add("0151 12345678", "4a")
	f.Fuzz(func(t *testing.T, s, cc string) {
		check := func(name string, a Addr, err error) {
			t.Helper()
			if err != nil {
				var ne *NumberError
				if !errors.As(err, &ne) || !errors.Is(err, ErrInvalidNumber) || ne.Reason == "" {
					t.Fatalf("%s(%q): error %v is not a *NumberError", name, s, err)
				}
				if !a.IsZero() {
					t.Fatalf("%s(%q): error with a non-zero Addr", name, s)
				}
				return
			}
			d := a.Digits()
			if len(d) < MinDigits || len(d) > MaxDigits || d[0] == '0' || strings.Trim(d, "0123456789") != "" {
				t.Fatalf("%s(%q) = %q: not E.164 digits", name, s, d)
			}
			if a.String() != "+"+d || a.Network() != Network {
				t.Fatalf("%s(%q): String %q", name, s, a.String())
			}
			// Every form of the number parses back to the same address.
			for _, form := range []string{a.String(), d, "00" + d} {
				b, err := ParseMSISDN(form)
				if err != nil || b != a {
					t.Fatalf("%s(%q) = %v, but ParseMSISDN(%q) = %v, %v", name, s, a, form, b, err)
				}
			}
			if b, err := ParseLwM2M(d); err != nil || b != a {
				t.Fatalf("ParseLwM2M(%q) = %v, %v", d, b, err)
			}
		}
		a, err := ParseMSISDN(s)
		check("ParseMSISDN", a, err)
		b, err := ParseLwM2M(s)
		check("ParseLwM2M", b, err)
		if err == nil && (a != b) {
			t.Fatalf("ParseLwM2M(%q) = %v but ParseMSISDN = %v", s, b, a)
		}
		c, err := Numbering{CountryCode: cc}.Parse(s)
		check("Numbering.Parse", c, err)
	})
}
