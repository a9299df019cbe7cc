package model

import (
	"strconv"
	"strings"
	"unicode"
)

// Interval is one closed interval [Lo, Hi] of a RangeEnumeration.
type Interval struct{ Lo, Hi float64 }

// Ranges is a parsed RangeEnumeration: the value (for numeric types) or
// the length in bytes (String, Opaque) must lie in one of the intervals.
type Ranges []Interval

// Contains reports whether x lies in one of the intervals.
func (r Ranges) Contains(x float64) bool {
	for _, in := range r {
		if x >= in.Lo && x <= in.Hi {
			return true
		}
	}
	return false
}

// maxRangeParts bounds the comma-separated parts ParseRange reads.
const maxRangeParts = 64

// ParseRange parses the RangeEnumeration of a resource definition (as
// written in DDF files): intervals "0..100", "1-65535", "-40..85", single
// values and comma-separated lists of both ("1,2,5..7"), with an optional
// unit word after a number ("0..255 bytes"). ok is false for an empty
// string and for any form it does not understand: such a range is not
// enforced (the definitions in the wild use prose such as "see Table
// 1"), rather than refusing every write of the resource.
func ParseRange(s string) (r Ranges, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, false
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxRangeParts {
		return nil, false
	}
	for _, part := range parts {
		in, ok := parseInterval(part)
		if !ok {
			return nil, false
		}
		r = append(r, in)
	}
	return r, true
}

func parseInterval(s string) (Interval, bool) {
	s = strings.TrimSpace(s)
	// A unit word after the last number: "0..255 bytes", "1-20 chars".
	if i := strings.LastIndexFunc(s, func(c rune) bool { return unicode.IsDigit(c) }); i >= 0 {
		if rest := strings.TrimSpace(s[i+1:]); rest != "" && isWord(rest) {
			s = strings.TrimSpace(s[:i+1])
		}
	}
	lo, hi, found := strings.Cut(s, "..")
	if !found {
		// "a-b": a '-' after a digit (not a sign, not an exponent's).
		for i := 1; i < len(s); i++ {
			if s[i] != '-' {
				continue
			}
			prev := strings.TrimRight(s[:i], " ")
			if prev != "" && prev[len(prev)-1] >= '0' && prev[len(prev)-1] <= '9' {
				lo, hi, found = prev, s[i+1:], true
				break
			}
		}
	}
	if !found {
		lo, hi = s, s
	}
	a, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
	b, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
	if err1 != nil || err2 != nil || a > b || a != a || b != b {
		return Interval{}, false
	}
	return Interval{Lo: a, Hi: b}, true
}

func isWord(s string) bool {
	for _, c := range s {
		if !unicode.IsLetter(c) && c != ' ' {
			return false
		}
	}
	return true
}
