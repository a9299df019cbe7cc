package msisdn

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" for a refusal
	}{
		{"plus", "+4915112345678", "4915112345678"},
		{"bare digits", "4915112345678", "4915112345678"},
		{"00 prefix", "004915112345678", "4915112345678"},
		{"separators", " +49 (151) 1234-56.78/ ", "4915112345678"},
		{"empty", "", ""},
		{"letters", "+49151abc", ""},
		{"leading 0 after +", "+04915112345678", ""},
		{"16 digits", "+4915112345678901", ""},
		{"6 digits", "+491511", ""},
		{"7 digits", "+4915112", "4915112"},
		{"15 digits", "+491511234567890", "491511234567890"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.want == "" {
				var e *Error
				if !errors.Is(err, ErrInvalid) || !errors.As(err, &e) || e.Input != tc.in || e.Reason == "" {
					t.Fatalf("Parse(%q) = %q, %v; want an *Error", tc.in, got, err)
				}
				if _, err := Normalize(tc.in); !errors.Is(err, ErrInvalid) {
					t.Fatalf("Normalize(%q): %v", tc.in, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			if n, err := Normalize(tc.in); err != nil || n != "+"+tc.want {
				t.Fatalf("Normalize(%q) = %q, %v", tc.in, n, err)
			}
		})
	}
}

func TestSame(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		want       bool
	}{
		{"forms of one number", "+49 151 12345678", "004915112345678", true},
		{"different numbers", "+4915112345678", "+4915112345679", false},
		{"both invalid and equal", "12ab", "12ab", false},
		{"one invalid", "+4915112345678", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Same(tc.a, tc.b); got != tc.want {
				t.Fatalf("Same(%q, %q) = %v", tc.a, tc.b, got)
			}
		})
	}
}
