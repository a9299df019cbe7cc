package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

func TestWakeBook(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	wake := func(ep string, s float64) queue.Event {
		return queue.Event{Type: queue.EventWake, Endpoint: ep, Time: at(s)}
	}
	woke := func(ep string, s float64) queue.Event {
		return queue.Event{Type: queue.EventWoke, Endpoint: ep, Time: at(s)}
	}
	for _, c := range []struct {
		name   string
		events []queue.Event
		want   []WakeLatency // newest first
		waking int
	}{
		{"one trigger", []queue.Event{wake("a", 0), woke("a", 7.5)},
			[]WakeLatency{{"a", at(7.5), 7.5, 1}}, 0},
		{"measured from the first of three triggers", []queue.Event{wake("a", 0), wake("a", 60), wake("a", 180), woke("a", 181)},
			[]WakeLatency{{"a", at(181), 181, 3}}, 0},
		{"a device seen without a trigger is not a wake-up", []queue.Event{woke("a", 5)}, nil, 0},
		{"other events are ignored", []queue.Event{{Type: queue.EventQueued, Endpoint: "a", ID: 1, Time: at(0)},
			{Type: queue.EventDone, Endpoint: "a", ID: 1, Time: at(1)}}, nil, 0},
		{"interleaved devices", []queue.Event{wake("a", 0), wake("b", 1), woke("b", 3), wake("c", 4), woke("a", 10)},
			[]WakeLatency{{"a", at(10), 10, 1}, {"b", at(3), 2, 1}}, 1},
		{"a wake-up that never ended is forgotten after a day", []queue.Event{wake("a", 0), wake("a", 25*3600), woke("a", 25*3600+4)},
			[]WakeLatency{{"a", at(25*3600 + 4), 4, 1}}, 0},
		{"a clock that went back counts zero", []queue.Event{wake("a", 10), woke("a", 9)},
			[]WakeLatency{{"a", at(9), 0, 1}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWakeBook(nil)
			for _, ev := range c.events {
				w.event(ev)
			}
			s := w.stats()
			if fmt.Sprint(s.Recent) != fmt.Sprint(c.want) && !(len(s.Recent) == 0 && len(c.want) == 0) {
				t.Errorf("recent %v, want %v", s.Recent, c.want)
			}
			if s.Count != uint64(len(c.want)) || s.Waking != c.waking {
				t.Errorf("count %d waking %d, want %d %d", s.Count, s.Waking, len(c.want), c.waking)
			}
		})
	}
}

// TestWakeBookBounds: the ring keeps the newest wakeRing wake-ups, the
// histogram counts all of them (also in Prometheus), and the devices being
// woken are bounded.
func TestWakeBookBounds(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: wakeBuckets})
	w := newWakeBook(h)
	t0 := time.Now()
	n := wakeRing + 44
	for i := range n {
		ep := fmt.Sprint("d", i)
		w.event(queue.Event{Type: queue.EventWake, Endpoint: ep, Time: t0})
		w.event(queue.Event{Type: queue.EventWoke, Endpoint: ep, Time: t0.Add(time.Duration(i%20) * time.Second)})
	}
	s := w.stats()
	if len(s.Recent) != wakeRing || s.Count != uint64(n) || s.Recent[0].Endpoint != fmt.Sprint("d", n-1) ||
		s.Recent[wakeRing-1].Endpoint != fmt.Sprint("d", n-wakeRing) {
		t.Fatalf("ring: %d kept of %d, newest %s, oldest %s", len(s.Recent), s.Count, s.Recent[0].Endpoint, s.Recent[len(s.Recent)-1].Endpoint)
	}
	var total uint64
	for _, b := range s.Buckets {
		total += b.Count
	}
	// 0..19 s, 15 of each value: ≤1 s holds 0 and 1, ≤2 s holds 2.
	if total != uint64(n) || len(s.Buckets) != len(wakeBuckets)+1 || s.Buckets[0].LE != 1 || s.Buckets[len(s.Buckets)-1].LE != 0 {
		t.Fatalf("buckets %v", s.Buckets)
	}
	if s.P50 < 8 || s.P50 > 11 || s.Max != 19 || s.P90 < 17 {
		t.Fatalf("p50 %v p90 %v max %v", s.P50, s.P90, s.Max)
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil || m.GetHistogram().GetSampleCount() != uint64(n) {
		t.Fatalf("prometheus histogram: %v %v", m.GetHistogram().GetSampleCount(), err)
	}

	w = newWakeBook(nil)
	for i := range maxWaking + 10 {
		w.event(queue.Event{Type: queue.EventWake, Endpoint: fmt.Sprint("w", i), Time: t0.Add(time.Duration(i))})
	}
	if s := w.stats(); s.Waking != maxWaking || s.Dropped != 10 {
		t.Fatalf("waking %d dropped %d", s.Waking, s.Dropped)
	}
	if n, d := w.sizes(); n != maxWaking || d != 10 {
		t.Fatalf("sizes %d %d", n, d)
	}
	if _, ok := w.waking["w0"]; ok {
		t.Fatal("the oldest wake-up was kept")
	}
}
