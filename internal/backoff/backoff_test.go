package backoff

import (
	"context"
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestDelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		n    int
		want time.Duration
	}{
		{"zero policy", Policy{}, 5, 0},
		{"first attempt is Min", Policy{Min: time.Second, Max: time.Minute}, 0, time.Second},
		{"negative attempt is the first", Policy{Min: time.Second, Max: time.Minute}, -3, time.Second},
		{"doubles", Policy{Min: time.Second, Max: time.Minute}, 3, 8 * time.Second},
		{"capped at Max", Policy{Min: time.Second, Max: time.Minute}, 6, time.Minute},
		{"far past the cap", Policy{Min: time.Second, Max: time.Minute}, 1 << 30, time.Minute},
		{"Min above Max is Max", Policy{Min: time.Hour, Max: time.Minute}, 0, time.Minute},
		{"negative Min", Policy{Min: -time.Second, Max: time.Minute}, 4, 0},
		{"no cap", Policy{Min: 60 * time.Second}, 5, 32 * 60 * time.Second},
		{"no cap saturates", Policy{Min: time.Hour}, 1 << 20, math.MaxInt64},
		{"smpp re-bind defaults", Policy{Min: time.Second, Max: 30 * time.Second}, 4, 16 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Delay(tc.n); got != tc.want {
				t.Fatalf("Delay(%d) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		name    string
		d       time.Duration
		frac, u float64
		want    time.Duration
	}{
		{"low end", 10 * time.Second, 0.2, 0, 8 * time.Second},
		{"middle", 10 * time.Second, 0.2, 0.5, 10 * time.Second},
		{"high end", 10 * time.Second, 0.25, 1, 12500 * time.Millisecond},
		{"no jitter", 10 * time.Second, 0, 0.9, 10 * time.Second},
		{"frac clamped to 1", 10 * time.Second, 7, 0, 0},
		{"negative frac is none", 10 * time.Second, -1, 0, 10 * time.Second},
		{"u clamped", 10 * time.Second, 0.5, 3, 15 * time.Second},
		{"zero delay", 0, 0.5, 0.7, 0},
		{"negative delay", -time.Second, 0.5, 0.7, 0},
		{"saturates", math.MaxInt64, 0.5, 1, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Spread(tc.d, tc.frac, tc.u); got != tc.want {
				t.Fatalf("Spread(%v, %v, %v) = %v, want %v", tc.d, tc.frac, tc.u, got, tc.want)
			}
		})
	}
}

// TestPolicyProperties: delays never decrease with the attempt, never pass
// the cap, start at Min; a jittered delay stays within ±Jitter of the
// plain one.
func TestPolicyProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := Policy{
			Min:    time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "min")),
			Max:    time.Duration(rapid.Int64Range(-1, int64(24*time.Hour)).Draw(t, "max")),
			Jitter: rapid.Float64Range(0, 1).Draw(t, "jitter"),
		}
		n := rapid.IntRange(0, 200).Draw(t, "n")
		u := rapid.Float64Range(0, 1).Draw(t, "u")
		d, next := p.Delay(n), p.Delay(n+1)
		if d < 0 || next < d {
			t.Fatalf("Delay(%d) = %v, Delay(%d) = %v", n, d, n+1, next)
		}
		if p.Max > 0 && d > p.Max {
			t.Fatalf("Delay(%d) = %v past Max %v", n, d, p.Max)
		}
		if first := p.Delay(0); p.Max <= 0 && first != p.Min || p.Max > 0 && first != min(p.Min, p.Max) {
			t.Fatalf("Delay(0) = %v with %+v", first, p)
		}
		j := p.Next(n, func() float64 { return u })
		lo, hi := float64(d)*(1-p.Jitter)-1, float64(d)*(1+p.Jitter)+1
		if float64(j) < lo || float64(j) > hi {
			t.Fatalf("Next(%d) = %v outside [%v, %v]", n, j, lo, hi)
		}
		if p.Next(n, nil) != d {
			t.Fatalf("Next without a source is not Delay")
		}
	})
}

func TestWait(t *testing.T) {
	t.Run("elapses", func(t *testing.T) {
		start := time.Now()
		if err := Wait(context.Background(), 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 10*time.Millisecond {
			t.Fatalf("returned after %v", el)
		}
	})
	t.Run("context ends first", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		if err := Wait(ctx, time.Hour); err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("already ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Wait(ctx, time.Hour); err != context.Canceled {
			t.Fatalf("err = %v", err)
		}
		if err := Wait(ctx, 0); err != context.Canceled {
			t.Fatalf("zero wait: err = %v", err)
		}
	})
	t.Run("zero wait", func(t *testing.T) {
		if err := Wait(context.Background(), -time.Second); err != nil {
			t.Fatal(err)
		}
	})
}
