package queue

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestLifecycleProperty drives random sequences of enqueue, cancel, clock
// steps and device appearances (with wake-ups that are never answered) and
// checks that every request ends in exactly one reported final state, that
// a device runs its requests in queue order, and that cancelled and
// expired requests never run.
func TestLifecycleProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var mu sync.Mutex
		finals := map[uint64][]EventType{}
		r := newRig(t, func(c *Config) {
			c.OnEvent = func(ev Event) {
				if ev.ID != 0 && ev.State.Final() {
					mu.Lock()
					finals[ev.ID] = append(finals[ev.ID], ev.Type)
					mu.Unlock()
				}
			}
		})
		defer r.m.Close()
		nDev := rapid.IntRange(1, 3).Draw(rt, "devices")
		for d := range nDev {
			if d%2 == 0 {
				r.m.SetDevice(fmt.Sprint("d", d), DeviceConfig{Wake: wakeable("+49171000000" + fmt.Sprint(d))})
			}
		}
		enq := map[string][]uint64{}
		var ids []uint64
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for range steps {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				ep := fmt.Sprint("d", rapid.IntRange(0, nDev-1).Draw(rt, "dev"))
				exp := time.Duration(rapid.IntRange(1, 20).Draw(rt, "expMin")) * time.Minute
				id, err := r.m.Enqueue(context.Background(), Request{Endpoint: ep, Kind: KindWrite, Paths: []string{"/3/0/14"}, Expires: r.clk.Now().Add(exp)})
				if err != nil {
					rt.Fatal(err)
				}
				enq[ep] = append(enq[ep], id)
				ids = append(ids, id)
			case 1:
				if len(ids) > 0 {
					_ = r.m.Cancel(ids[rapid.IntRange(0, len(ids)-1).Draw(rt, "cancel")])
				}
			case 2:
				r.clk.Advance(time.Duration(rapid.IntRange(1, 300).Draw(rt, "advanceS")) * time.Second)
			case 3:
				r.m.Seen(fmt.Sprint("d", rapid.IntRange(0, nDev-1).Draw(rt, "seen")), time.Duration(rapid.IntRange(1, 120).Draw(rt, "windowS"))*time.Second)
			}
		}
		// Finally every device shows up for long enough.
		for d := range nDev {
			r.m.Seen(fmt.Sprint("d", d), 24*time.Hour)
		}
		for _, id := range ids {
			rec, _ := r.wait(t, id)
			if rec == nil || !rec.State.Final() {
				rt.Fatalf("request %d not final: %+v", id, rec)
			}
			if rec.State == StateCancelled || rec.State == StateExpired {
				if r.fleet.runCount(id) != 0 && rec.SendingSince.IsZero() {
					rt.Fatalf("request %d %s but ran", id, rec.State)
				}
			}
			if rec.State == StateDone && r.fleet.runCount(id) != 1 {
				rt.Fatalf("request %d done, ran %d times", id, r.fleet.runCount(id))
			}
		}
		waitFor(t, "final events", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(finals) == len(ids)
		})
		mu.Lock()
		for id, evs := range finals {
			if len(evs) != 1 {
				rt.Fatalf("request %d reported %v", id, evs)
			}
		}
		mu.Unlock()
		for ep, want := range enq {
			got := r.fleet.order(ep)
			// What ran is a subsequence of the queue order.
			i := 0
			for _, id := range got {
				j := slices.Index(want[i:], id)
				if j < 0 {
					rt.Fatalf("%s ran %v, queue order %v", ep, got, want)
				}
				i += j + 1
			}
		}
		if st := r.m.Stats(); st.Live != 0 || st.Bytes != 0 {
			rt.Fatalf("stats after all final: %+v", st)
		}
	})
}
