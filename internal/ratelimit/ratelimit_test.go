package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

type take struct {
	key  string
	n    int
	at   time.Duration // after t0
	ok   bool
	wait time.Duration
}

func TestKeyedTake(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		takes []take
		keys  int
	}{
		{"no limit", Config{Rate: 0, Burst: 1}, []take{{"a", 100, 0, true, 0}, {"a", 100, 0, true, 0}}, 0},
		{"burst then refused with the wait", Config{Rate: 2, Burst: 2}, []take{
			{"a", 1, 0, true, 0}, {"a", 1, 0, true, 0}, {"a", 1, 0, false, 500 * time.Millisecond},
			{"a", 1, 500 * time.Millisecond, true, 0}}, 1},
		{"keys are apart", Config{Rate: 1, Burst: 1}, []take{
			{"a", 1, 0, true, 0}, {"b", 1, 0, true, 0}, {"a", 1, 0, false, time.Second}}, 2},
		{"n above burst goes when full and leaves a debt", Config{Rate: 1, Burst: 2}, []take{
			{"a", 5, 0, true, 0}, {"a", 1, 3 * time.Second, false, time.Second}, {"a", 1, 4 * time.Second, true, 0}}, 1},
		{"n above burst waits for a full bucket", Config{Rate: 1, Burst: 2}, []take{
			{"a", 1, 0, true, 0}, {"a", 5, 0, false, time.Second}}, 1},
		{"burst below 1 is 1", Config{Rate: 1}, []take{{"a", 1, 0, true, 0}, {"a", 1, 0, false, time.Second}}, 1},
		{"evict one past the bound", Config{Rate: 1, Burst: 1, MaxKeys: 2, Overflow: EvictOne}, []take{
			{"a", 1, 0, true, 0}, {"b", 1, 0, true, 0}, {"c", 1, 0, true, 0}}, 2},
		{"idle keys are swept first", Config{Rate: 1, Burst: 1, MaxKeys: 2, Overflow: Share}, []take{
			{"a", 1, 0, true, 0}, {"b", 1, 0, true, 0}, {"c", 1, 2 * time.Second, true, 0}}, 1},
		{"past the bound keys share one bucket", Config{Rate: 1, Burst: 1, MaxKeys: 1, Overflow: Share}, []take{
			{"a", 1, 0, true, 0}, {"b", 1, 0, true, 0}, {"c", 1, 0, false, time.Second}}, 1},
		{"sweeps at most once per SweepEvery", Config{Rate: 10, Burst: 1, MaxKeys: 1, Overflow: Share, SweepEvery: time.Second}, []take{
			{"a", 1, 0, true, 0}, {"b", 1, 0, true, 0}, // sweeps at t0 (a is not idle), b shares
			{"c", 1, 500 * time.Millisecond, true, 0}, // a idle, but no sweep before t0+1s: shared bucket refilled
			{"d", 1, 500 * time.Millisecond, false, 100 * time.Millisecond}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewKeyed(tc.cfg)
			for i, tk := range tc.takes {
				ok, wait := l.Take(tk.key, tk.n, t0.Add(tk.at))
				if ok != tk.ok || wait != tk.wait {
					t.Fatalf("take %d (%q, %d at +%v) = %v, %v; want %v, %v", i, tk.key, tk.n, tk.at, ok, wait, tk.ok, tk.wait)
				}
			}
			if got := l.Len(); got != tc.keys {
				t.Fatalf("Len = %d, want %d", got, tc.keys)
			}
		})
	}
}

func TestNilKeyed(t *testing.T) {
	var l *Keyed
	if ok, wait := l.Take("a", 1, t0); !ok || wait != 0 {
		t.Fatalf("nil Take = %v, %v", ok, wait)
	}
	if l.Len() != 0 {
		t.Fatal("nil Len")
	}
}

// TestKeyedProperties: over any schedule, a key never gets more than
// Burst + Rate·elapsed tokens (while it is tracked: no eviction here);
// the keys tracked never pass MaxKeys; a refusal's wait is positive and
// a take after it succeeds.
func TestKeyedProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			Rate:     float64(rapid.IntRange(1, 100).Draw(t, "rate")),
			Burst:    rapid.IntRange(1, 20).Draw(t, "burst"),
			MaxKeys:  rapid.IntRange(1, 5).Draw(t, "max"),
			Overflow: Overflow(rapid.IntRange(0, 1).Draw(t, "overflow")),
		}
		l := NewKeyed(cfg)
		solo := NewKeyed(Config{Rate: cfg.Rate, Burst: cfg.Burst, MaxKeys: 1})
		now := t0
		taken := 0
		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.IntRange(0, 200).Draw(t, "gap")) * time.Millisecond)
			key := fmt.Sprint(rapid.IntRange(0, 7).Draw(t, "key"))
			n := rapid.IntRange(1, cfg.Burst).Draw(t, "n")
			l.Take(key, n, now)
			if l.Len() > cfg.MaxKeys {
				t.Fatalf("%d keys tracked, max %d", l.Len(), cfg.MaxKeys)
			}
			ok, wait := solo.Take("k", n, now)
			if ok {
				taken += n
			} else {
				if wait <= 0 {
					t.Fatalf("refused with wait %v", wait)
				}
				if ok2, _ := solo.Take("k", n, now.Add(wait+time.Microsecond)); !ok2 {
					t.Fatalf("refused again after the wait %v", wait)
				}
				now = now.Add(wait + time.Microsecond)
				taken += n
			}
			bound := float64(cfg.Burst) + cfg.Rate*now.Sub(t0).Seconds() + 1e-6
			if float64(taken) > bound {
				t.Fatalf("%d tokens taken by %v, bound %.3f", taken, now.Sub(t0), bound)
			}
		}
	})
}

func TestZeroKeyed(t *testing.T) {
	var l Keyed
	if ok, wait := l.Take("a", 5, t0); !ok || wait != 0 || l.Len() != 0 {
		t.Fatalf("zero Keyed: %v %v %d", ok, wait, l.Len())
	}
}
