package logthrottle

import (
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &Limiter{Burst: 3, Interval: time.Second, Now: func() time.Time { return now }}
	type step struct {
		advance time.Duration
		ok      bool
		held    uint64
	}
	steps := []struct {
		name string
		step
	}{
		{"first", step{0, true, 0}},
		{"second", step{0, true, 0}},
		{"third", step{0, true, 0}},
		{"over the burst", step{0, false, 0}},
		{"still over", step{500 * time.Millisecond, false, 0}},
		{"next window reports the held back", step{500 * time.Millisecond, true, 2}},
		{"then counts again from zero", step{0, true, 0}},
		{"clock going back starts a window", step{-time.Hour, true, 0}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			now = now.Add(s.advance)
			ok, held := l.Allow()
			if ok != s.ok || held != s.held {
				t.Fatalf("Allow() = %v, %d; want %v, %d", ok, held, s.ok, s.held)
			}
		})
	}
	if got := l.Suppressed(); got != 2 {
		t.Fatalf("Suppressed = %d", got)
	}
}

// TestZeroAndNil: a zero Limiter uses the defaults; a nil one lets
// everything through (no panic).
func TestZeroAndNil(t *testing.T) {
	var z Limiter
	n := 0
	for range 1000 {
		if ok, _ := z.Allow(); ok {
			n++
		}
	}
	if n != DefaultBurst || z.Suppressed() != 1000-DefaultBurst {
		t.Fatalf("zero Limiter let %d through, held %d", n, z.Suppressed())
	}
	var nl *Limiter
	if ok, _ := nl.Allow(); !ok || nl.Suppressed() != 0 {
		t.Fatal("nil Limiter")
	}
}

// TestBoundProperty: over any sequence of events, the lines let through in
// any window are at most Burst, and lines plus held back equal the events.
func TestBoundProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		burst := rapid.IntRange(1, 20).Draw(t, "burst")
		now := time.Unix(0, 0)
		l := &Limiter{Burst: burst, Interval: time.Second, Now: func() time.Time { return now }}
		steps := rapid.SliceOfN(rapid.IntRange(0, 400), 1, 300).Draw(t, "gaps_ms")
		var passed, reported uint64
		var window time.Time
		inWindow := 0
		for i, gap := range steps {
			now = now.Add(time.Duration(gap) * time.Millisecond)
			if i == 0 || now.Sub(window) >= time.Second {
				window, inWindow = now, 0
			}
			ok, held := l.Allow()
			if ok {
				passed++
				reported += held
				inWindow++
			}
			if inWindow > burst {
				t.Fatalf("%d lines in one window, burst %d", inWindow, burst)
			}
		}
		if passed+l.Suppressed() != uint64(len(steps)) || reported > l.Suppressed() {
			t.Fatalf("passed %d + held %d != %d events (reported %d)", passed, l.Suppressed(), len(steps), reported)
		}
	})
}

func TestConcurrent(t *testing.T) {
	l := &Limiter{Burst: 5, Interval: time.Hour}
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if ok, _ := l.Allow(); ok {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if passed != 5 || l.Suppressed() != 8000-5 {
		t.Fatalf("passed %d, held %d", passed, l.Suppressed())
	}
}
