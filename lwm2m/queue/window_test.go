package queue

import (
	"testing"
	"time"
)

// TestLearnedWindow: a request left unanswered t after the device's last
// message teaches the Manager the device listens less than t (never below
// MinWindow, never above the configured window); the request goes back to
// the queue, not failed; an answered one sent later widens the window
// again; the device's next message sends the queue at once.
func TestLearnedWindow(t *testing.T) {
	tests := []struct {
		name    string
		gap     time.Duration // from the device's message to the send
		want    time.Duration
		learned bool
	}{
		{"4s", 4 * time.Second, 4 * time.Second, true},
		{"0.5s clamped to MinWindow", 500 * time.Millisecond, 2 * time.Second, true},
		{"past the window: not sent", 100 * time.Second, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(c *Config) { c.Waker = nil; c.MinWindow = 2 * time.Second })
			ep := "lamp"
			r.m.Seen(ep, 93*time.Second)
			r.clk.Advance(tc.gap)
			gate := make(chan struct{})
			r.fleet.mu.Lock()
			r.fleet.gate = gate
			r.fleet.mu.Unlock()
			id := r.enqueue(t, ep, KindRead, "/3/0/0")
			if !tc.learned {
				if got := r.fleet.runCount(id); got != 0 {
					t.Fatalf("sent %d times to a device past its window", got)
				}
			} else {
				r.fleet.mu.Lock()
				r.fleet.asleepOnce[id] = true
				r.fleet.mu.Unlock()
			}
			close(gate)
			waitFor(t, "the drain to settle", func() bool {
				r.m.mu.Lock()
				defer r.m.mu.Unlock()
				d := r.m.devices[ep]
				return d != nil && !d.busy && !d.ready
			})
			win, ok := r.m.Window(ep)
			if ok != tc.learned || win != tc.want {
				t.Fatalf("window %v %v, want %v %v", win, ok, tc.want, tc.learned)
			}
			if rec, _ := r.m.Get(id); rec.State != StateQueued {
				t.Fatalf("request %s, want queued", rec.State)
			}
			if r.m.Awake(ep) {
				t.Fatal("device still awake after an unanswered request")
			}
			// The device's next message: the queue runs at once, and the
			// awake window is the learned one.
			r.m.Seen(ep, 93*time.Second)
			if rec, err := r.wait(t, id); err != nil || rec.State != StateDone {
				t.Fatalf("after the device's message: %+v %v", rec, err)
			}
			if tc.learned {
				r.clk.Advance(tc.want + time.Millisecond)
				if r.m.Awake(ep) {
					t.Fatalf("awake %v after its message with window %v", tc.want+time.Millisecond, tc.want)
				}
				// De-registration forgets it.
				r.m.ForgetDevice(ep)
				if _, ok := r.m.Window(ep); ok {
					t.Fatal("window kept after ForgetDevice")
				}
			}
		})
	}
}
