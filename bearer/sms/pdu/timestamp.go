package pdu

import (
	"fmt"
	"time"
)

// Service centre time stamp (TS 23.040 §9.2.3.11): seven octets of
// semi-octet-swapped BCD — year, month, day, hour, minute, second, time
// zone in quarters of an hour with the sign in bit 3.

func bcdSwapped(b byte) (int, bool) {
	lo, hi := int(b&0x0f), int(b>>4)
	if lo > 9 || hi > 9 {
		return 0, false
	}
	return lo*10 + hi, true
}

func parseSCTS(field string, b []byte, off int) (time.Time, error) {
	if len(b) < off+7 {
		return time.Time{}, decErr(field, off, ErrTruncated, "")
	}
	var v [6]int
	for i := range v {
		n, ok := bcdSwapped(b[off+i])
		if !ok {
			return time.Time{}, decErr(field, off+i, ErrMalformed, "octet 0x%02X is not BCD", b[off+i])
		}
		v[i] = n
	}
	tzb := b[off+6]
	if tzb>>4 > 9 {
		return time.Time{}, decErr(field, off+6, ErrMalformed, "time zone octet 0x%02X is not BCD", tzb)
	}
	q := int(tzb&0x07)*10 + int(tzb>>4)
	if tzb&0x08 != 0 {
		q = -q
	}
	year := 2000 + v[0]
	if v[0] >= 90 { // SMS predates 2000; TS 23.040 gives no century
		year = 1900 + v[0]
	}
	month, dd, hh, mm, ss := v[1], v[2], v[3], v[4], v[5]
	if month < 1 || month > 12 || dd < 1 || dd > daysIn(year, time.Month(month)) || hh > 23 || mm > 59 || ss > 59 {
		return time.Time{}, decErr(field, off, ErrMalformed, "impossible date %02d-%02d-%02d %02d:%02d:%02d", v[0], month, dd, hh, mm, ss)
	}
	loc := time.UTC
	if q != 0 {
		loc = time.FixedZone(fmt.Sprintf("UTC%+03d:%02d", q/4, abs(q%4)*15), q*15*60)
	}
	return time.Date(year, time.Month(month), dd, hh, mm, ss, 0, loc), nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// appendSCTS appends t as a TS 23.040 §9.2.3.11 time stamp in t's own zone,
// rounded down to the second and to the quarter hour of offset.
func appendSCTS(dst []byte, t time.Time) []byte {
	sw := func(n int) byte { return byte(n%10)<<4 | byte(n/10) }
	_, off := t.Zone()
	q := off / (15 * 60)
	tz := sw(abs(q))
	if q < 0 {
		tz |= 0x08
	}
	return append(dst, sw(t.Year()%100), sw(int(t.Month())), sw(t.Day()),
		sw(t.Hour()), sw(t.Minute()), sw(t.Second()), tz)
}
