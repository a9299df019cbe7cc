package model

import (
	"fmt"
	"math"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want Ranges
	}{
		{"0..100", true, Ranges{{0, 100}}},
		{"0-100", true, Ranges{{0, 100}}},
		{" 1 - 65535 ", true, Ranges{{1, 65535}}},
		{"-40..85", true, Ranges{{-40, 85}}},
		{"-40-85", true, Ranges{{-40, 85}}},
		{"-1E3..1e3", true, Ranges{{-1000, 1000}}},
		{"0..255 bytes", true, Ranges{{0, 255}}},
		{"1,2,5..7", true, Ranges{{1, 1}, {2, 2}, {5, 7}}},
		{"3", true, Ranges{{3, 3}}},
		{"", false, nil},
		{"see Table 3", false, nil},
		{"100..0", false, nil},
		{"a..b", false, nil},
		{"1..", false, nil},
		{"NaN", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := ParseRange(tc.in)
			if ok != tc.ok || len(got) != len(tc.want) {
				t.Fatalf("ParseRange(%q) = %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("ParseRange(%q) = %v, want %v", tc.in, got, tc.want)
				}
			}
		})
	}
	r, _ := ParseRange("0..100")
	for x, want := range map[float64]bool{0: true, 100: true, 50.5: true, -1: false, 150: false, 99999999999: false} {
		t.Run(fmt.Sprint(x), func(t *testing.T) {
			if r.Contains(x) != want {
				t.Errorf("Contains(%v) = %v", x, !want)
			}
		})
	}
}

// FuzzParseRange: ParseRange never panics, and what it accepts has
// ordered, non-NaN bounds.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"0..100", "1-65535", "-40..85", "0..255 bytes", "1,2,5..7", "", "x", "1e309..2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := ParseRange(s)
		if !ok {
			return
		}
		if len(r) == 0 || len(r) > maxRangeParts {
			t.Fatalf("%q: %d intervals", s, len(r))
		}
		for _, in := range r {
			if math.IsNaN(in.Lo) || math.IsNaN(in.Hi) || in.Lo > in.Hi {
				t.Fatalf("%q: bad interval %v", s, in)
			}
		}
	})
}
