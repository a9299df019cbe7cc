package sms

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

var _ net.Addr = Addr{}

func TestParseMSISDN(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "+4915112345678", want: "+4915112345678"},
		{in: "4915112345678", want: "+4915112345678"},
		{in: "004915112345678", want: "+4915112345678"},
		{in: " +49 151 1234-5678 ", want: "+4915112345678"},
		{in: "+1 (555) 123.4567", want: "+15551234567"},
		{in: "+6837001", want: "+6837001"}, // Niue: 7 digits in all
		{in: "+123456789012345", want: "+123456789012345"},
		{in: "+1234567890123456", bad: true}, // 16 digits
		{in: "+123456", bad: true},           // too short
		{in: "+0491511234", bad: true},       // country code 0
		{in: "015112345678", bad: true},      // national without Numbering
		{in: "+49151abc", bad: true},
		{in: "++4915112345678", bad: true},
		{in: "", bad: true},
		{in: "+", bad: true},
		{in: "+49 151 12345678 ext 2", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, err := ParseMSISDN(tc.in)
			if tc.bad {
				var ne *NumberError
				if !errors.Is(err, ErrInvalidNumber) || !errors.As(err, &ne) || ne.Input != tc.in {
					t.Errorf("%q: got %v, %v; want a *NumberError", tc.in, a, err)
				}
				return
			}
			if err != nil || a.String() != tc.want || a.Network() != "sms" || a.Digits() != tc.want[1:] {
				t.Errorf("%q: got %q %v", tc.in, a, err)
			}
		})
	}
}

func TestParseLwM2M(t *testing.T) {
	a, err := ParseLwM2M("4915112345678")
	if err != nil || a != MustAddr(t, "+4915112345678") {
		t.Fatalf("%v %v", a, err)
	}
	for _, bad := range []string{"+4915112345678", "49 151 12345678", "0049151", ""} {
		t.Run(bad, func(t *testing.T) {
			if _, err := ParseLwM2M(bad); !errors.Is(err, ErrInvalidNumber) {
				t.Errorf("%q accepted: %v", bad, err)
			}
		})
	}
}

func MustAddr(t *testing.T, s string) Addr {
	t.Helper()
	a, err := ParseMSISDN(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNumbering(t *testing.T) {
	de := Numbering{CountryCode: "49"}
	for _, tc := range []struct {
		n        Numbering
		in, want string
		bad      bool
	}{
		{n: de, in: "0151 12345678", want: "+4915112345678"},
		{n: de, in: "+33612345678", want: "+33612345678"},
		{n: de, in: "0033612345678", want: "+33612345678"},
		{n: de, in: "4915112345678", want: "+4915112345678"},
		{n: Numbering{CountryCode: "7", TrunkPrefix: "8"}, in: "8 916 123-45-67", want: "+79161234567"},
		{n: Numbering{}, in: "015112345678", bad: true},
		{n: Numbering{CountryCode: "0x"}, in: "015112345678", bad: true},
		{n: Numbering{CountryCode: "4912"}, in: "015112345678", bad: true},
		{n: de, in: "0", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, err := tc.n.Parse(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrInvalidNumber) {
					t.Errorf("%+v %q: got %v %v", tc.n, tc.in, a, err)
				}
				return
			}
			if err != nil || a.String() != tc.want {
				t.Errorf("%+v %q: got %q %v", tc.n, tc.in, a, err)
			}
		})
	}
}

func TestAddrZeroAndKey(t *testing.T) {
	var z Addr
	if !z.IsZero() || z.String() != "" {
		t.Fatal("zero Addr")
	}
	m := map[Addr]int{MustAddr(t, "+4915112345678"): 1}
	if m[MustAddr(t, "0049 151 12345678")] != 1 {
		t.Fatal("equal numbers are not equal keys")
	}
}

func ExampleParseMSISDN() {
	a, err := ParseMSISDN("+49 151 1234 5678")
	if err != nil {
		panic(err)
	}
	fmt.Println(a.Network(), a, a.Digits())
	_, err = ParseMSISDN("12345")
	fmt.Println(errors.Is(err, ErrInvalidNumber))
	// Output:
	// sms +4915112345678 4915112345678
	// true
}

func ExampleNumbering_Parse() {
	de := Numbering{CountryCode: "49"}
	a, _ := de.Parse("0151 12345678")
	fmt.Println(a)
	// Output: +4915112345678
}
