package pdu

import "time"

// Relative validity period (TS 23.040 §9.2.3.12.1):
//
//	  0..143  (VP+1) × 5 minutes          5 min .. 12 h
//	144..167  12 h + (VP−143) × 30 min    12 h 30 .. 24 h
//	168..196  (VP−166) × 1 day            2 .. 30 days
//	197..255  (VP−192) × 1 week           5 .. 63 weeks
const (
	day  = 24 * time.Hour
	week = 7 * day
	// MaxValidity is the longest relative validity period, 63 weeks.
	MaxValidity = 63 * week
)

// RelativeVP returns the TP-VP octet (relative format) of the shortest
// period that is at least d. Periods above 63 weeks give 255; d <= 5 min
// gives 0.
func RelativeVP(d time.Duration) byte {
	switch {
	case d <= 5*time.Minute:
		return 0
	case d <= 12*time.Hour:
		return byte((d+5*time.Minute-1)/(5*time.Minute) - 1)
	case d <= day:
		return byte(143 + (d-12*time.Hour+30*time.Minute-1)/(30*time.Minute))
	case d <= 30*day:
		n := (d + day - 1) / day
		if n < 2 {
			n = 2
		}
		return byte(166 + n)
	case d <= MaxValidity:
		n := (d + week - 1) / week
		if n < 5 {
			n = 5
		}
		return byte(192 + n)
	}
	return 255
}

// RelativeVPDuration returns the period a relative TP-VP octet stands for.
func RelativeVPDuration(vp byte) time.Duration {
	v := time.Duration(vp)
	switch {
	case vp <= 143:
		return (v + 1) * 5 * time.Minute
	case vp <= 167:
		return 12*time.Hour + (v-143)*30*time.Minute
	case vp <= 196:
		return (v - 166) * day
	}
	return (v - 192) * week
}
