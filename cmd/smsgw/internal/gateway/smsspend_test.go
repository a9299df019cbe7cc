package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// usage is a bearer's count for peer: sent and received segments (as
// triggers and responses).
func usage(peer string, sent, received uint64) sms.Usage {
	u := sms.Usage{Peer: peer}
	u.Sent[bearer.PurposeTrigger].Segments = sent
	u.Received[bearer.PurposeResponse].Segments = received
	return u
}

func TestSpendBook(t *testing.T) {
	day := func(d int, h int) time.Time { return time.Date(2026, 12, d, h, 0, 0, 0, time.UTC) }
	type sample struct {
		at time.Time
		us []sms.Usage
	}
	for _, c := range []struct {
		name    string
		samples []sample
		want    string // recent(31), newest first
	}{
		{"growth since the last sample goes to its day",
			[]sample{{day(5, 10), []sms.Usage{usage("+1", 3, 1)}}, {day(5, 11), []sms.Usage{usage("+1", 5, 1)}}, {day(6, 1), []sms.Usage{usage("+1", 9, 4)}}},
			"[{2026-12-06 map[+1:{4 3}]} {2026-12-05 map[+1:{5 1}]}]"},
		{"nothing grew: no day",
			[]sample{{day(5, 10), []sms.Usage{usage("+1", 0, 0)}}},
			"[]"},
		{"a bearer that started again counts from zero",
			[]sample{{day(5, 10), []sms.Usage{usage("+1", 7, 0)}}, {day(5, 12), []sms.Usage{usage("+1", 2, 0)}}},
			"[{2026-12-05 map[+1:{9 0}]}]"},
		{"a day before the newest (the clock went back) counts on the newest",
			[]sample{{day(6, 10), []sms.Usage{usage("+1", 1, 0)}}, {day(5, 23), []sms.Usage{usage("+1", 2, 0)}}},
			"[{2026-12-06 map[+1:{2 0}]}]"},
		{"a time in another zone is filed by its UTC day",
			[]sample{{time.Date(2026, 12, 6, 0, 30, 0, 0, time.FixedZone("CET", 3600)), []sms.Usage{usage("+1", 1, 0)}}},
			"[{2026-12-05 map[+1:{1 0}]}]"},
		{"numbers apart",
			[]sample{{day(5, 10), []sms.Usage{usage("+1", 1, 0), usage("+2", 0, 2)}}},
			"[{2026-12-05 map[+1:{1 0} +2:{0 2}]}]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b spendBook
			for _, s := range c.samples {
				b.sample(s.at, func() []sms.Usage { return s.us })
			}
			if got := fmt.Sprint(b.recent(spendDays)); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

// TestSpendBookBoundsAndSnapshot: at most spendDays days are kept, the
// snapshot is written only when something changed and restores the days,
// and a bad snapshot is refused.
func TestSpendBookBoundsAndSnapshot(t *testing.T) {
	var b spendBook
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 40 {
		b.sample(t0.AddDate(0, 0, i), func() []sms.Usage { return []sms.Usage{usage("+1", uint64(i+1), 0)} })
	}
	days := b.recent(100)
	if len(days) != spendDays || days[0].Day != "2026-02-09" || days[spendDays-1].Day != "2026-01-10" {
		t.Fatalf("%d days, %s .. %s", len(days), days[0].Day, days[len(days)-1].Day)
	}
	if r := b.recent(2); len(r) != 2 || r[1].Day != "2026-02-08" {
		t.Fatalf("recent(2): %v", r)
	}
	file := filepath.Join(t.TempDir(), spendFile)
	var last uint64
	if err := b.save(file, &last); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(file)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := b.save(file, &last); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("saved again without a change")
	}
	last = 0
	if err := b.save(file, &last); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var c spendBook
	if err := c.load(f); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.recent(100)) != fmt.Sprint(days) || st.Size() == 0 {
		t.Fatalf("restored %v", c.recent(3))
	}
	for _, bad := range []string{`{`, `{"day": "x"}`, strings.Repeat("[", 10)} {
		t.Run(bad, func(t *testing.T) {
			if err := c.load(strings.NewReader(bad)); err == nil {
				t.Errorf("%q loaded", bad)
			}
		})
	}
	// Entries with a bad day or no numbers are left out; of a day given
	// twice the first is kept.
	if err := c.load(strings.NewReader(`[{"day":"2026-13-01","numbers":{}},{"day":"2026-01-02"},{"day":"2026-01-03","numbers":{"+1":{"sent_segments":2}}},{"day":"2026-01-03","numbers":{}}]`)); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.recent(10)); got != "[{2026-01-03 map[+1:{2 0}]}]" {
		t.Fatalf("loaded %s", got)
	}
}

// FuzzSpendLoad: any snapshot file loads or is refused, never panics, and
// what loads stays within spendDays days, sorted, one entry a day.
func FuzzSpendLoad(f *testing.F) {
	f.Add(`[{"day":"2026-12-05","numbers":{"+1":{"sent_segments":3,"received_segments":1}}}]`)
	f.Add(`[{"day":"2026-12-06","numbers":{}},{"day":"2026-12-05","numbers":{"+2":{}}}]`)
	f.Add(`[{"day":"x"}]`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, data string) {
		var b spendBook
		if b.load(strings.NewReader(data)) != nil {
			return
		}
		days := b.recent(100)
		if len(days) > spendDays {
			t.Fatalf("%d days", len(days))
		}
		for i := 1; i < len(days); i++ {
			if days[i].Day >= days[i-1].Day {
				t.Fatalf("days not newest first, one each: %v", days)
			}
		}
		b.sample(time.Now(), func() []sms.Usage { return []sms.Usage{usage("+1", 1, 1)} })
	})
}
