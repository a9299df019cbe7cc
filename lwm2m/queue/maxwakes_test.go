package queue

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestMaxWakes: WakePolicy.MaxWakes nil is DefaultMaxWakes, a pointer to
// n is n wake-ups, a pointer to 0 is none at all (not the default: a zero
// count and an explicit choice must not mean different things, and a
// wake-up is an SMS someone pays for), and a negative count is refused.
func TestMaxWakes(t *testing.T) {
	tests := []struct {
		name string
		max  *int
		want int // wake-ups before ErrNotWoken; 0: none, the request waits
	}{
		{"nil is the default", nil, DefaultMaxWakes},
		{"one", new(1), 1},
		{"zero is none", new(0), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(c *Config) { c.Wake.MaxWakes = tc.max })
			r.m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491710000002")})
			id := r.enqueue(t, "lamp", KindRead, "/3/0")
			if tc.want == 0 {
				// Whatever the Manager does about the sleeping device is
				// done once no worker holds it or is due to.
				waitFor(t, "the device settled", func() bool {
					r.m.mu.Lock()
					defer r.m.mu.Unlock()
					d := r.m.devices["lamp"]
					return !d.ready && !d.busy && !d.wakeSending
				})
				if n := r.waker.count("lamp"); n != 0 {
					t.Fatalf("%d wake-ups, want none", n)
				}
				r.clk.Advance(time.Hour)
				r.m.Seen("lamp", 0) // the device shows up by itself
				if _, err := r.wait(t, id); err != nil {
					t.Fatal(err)
				}
				if n := r.waker.count("lamp"); n != 0 {
					t.Fatalf("%d wake-ups, want none", n)
				}
				return
			}
			step := time.Minute // WakePolicy of newRig: Timeout 1 min, Factor 2
			for i := 1; i <= tc.want; i++ {
				waitFor(t, fmt.Sprint("wake ", i), func() bool { return r.waker.count("lamp") == i })
				due := r.waker.at("lamp", i).Add(step)
				r.waitTimer(t, timerWake, due)
				r.clk.Advance(step)
				step = min(2*step, 10*time.Minute)
			}
			_, err := r.wait(t, id)
			var nw *NotWokenError
			if !errors.As(err, &nw) || nw.Wakes != tc.want || r.waker.count("lamp") != tc.want {
				t.Fatalf("err %v after %d wake-ups, want ErrNotWoken after %d", err, r.waker.count("lamp"), tc.want)
			}
		})
	}
	t.Run("negative is refused", func(t *testing.T) {
		_, err := New(Config{Store: NewMemStore(), Executor: newFleet(), Wake: WakePolicy{MaxWakes: new(-1)}})
		if err == nil {
			t.Fatal("New accepted MaxWakes -1")
		}
	})
	t.Run("the caller's pointer is copied", func(t *testing.T) {
		n := 2
		r := newRig(t, func(c *Config) { c.Wake.MaxWakes = &n })
		n = 0
		if got := *r.m.cfg.Wake.MaxWakes; got != 2 || r.m.cfg.Waker == nil {
			t.Fatalf("MaxWakes %d after the caller changed its variable", got)
		}
	})
}
