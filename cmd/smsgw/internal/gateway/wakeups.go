package gateway

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// Wake-up latency: from the first SMS trigger the queue sends to a
// sleeping device (queue.EventWake) to the device showing up
// (queue.EventWoke), whatever number of triggers it took. The gateway
// keeps the last wakeRing wake-ups, a histogram over wakeBuckets since it
// started (also in Prometheus as smsgw_wakeup_latency_seconds) and the
// devices being woken; all bounded.

const (
	wakeRing = 256
	// maxWaking bounds the devices being woken at once that are tracked
	// (beyond it the oldest is dropped, counted).
	maxWaking = 100000
	// maxWakeWait ends a wake-up that never saw its device: a trigger
	// after it starts a new one.
	maxWakeWait = 24 * time.Hour
)

// wakeBuckets are the histogram's upper bounds in seconds.
var wakeBuckets = []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}

// WakeLatency is one measured wake-up.
type WakeLatency struct {
	Endpoint string    `json:"endpoint"`
	Woken    time.Time `json:"woken"`    // when the device showed up
	Seconds  float64   `json:"seconds"`  // since the first trigger
	Triggers int       `json:"triggers"` // SMS triggers sent for it
}

type waking struct {
	since    time.Time
	triggers int
}

// wakeBook follows the queue's wake events. Its zero value is not usable:
// newWakeBook.
type wakeBook struct {
	hist prometheus.Histogram // may be nil

	mu      sync.Mutex
	waking  map[string]waking
	ring    []WakeLatency // at most wakeRing, oldest overwritten
	next    int
	counts  []uint64 // per bucket, the last one above every bound
	total   uint64
	sum     float64
	dropped uint64
}

func newWakeBook(h prometheus.Histogram) *wakeBook {
	return &wakeBook{hist: h, waking: map[string]waking{}, counts: make([]uint64, len(wakeBuckets)+1)}
}

// event records a queue event; it runs under the queue's lock (OnEvent),
// so it only takes its own.
func (w *wakeBook) event(ev queue.Event) {
	if ev.Type != queue.EventWake && ev.Type != queue.EventWoke {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cur, ok := w.waking[ev.Endpoint]
	if ev.Type == queue.EventWake {
		if !ok || ev.Time.Sub(cur.since) > maxWakeWait {
			if !ok && len(w.waking) >= maxWaking {
				w.dropOldestLocked()
			}
			cur = waking{since: ev.Time}
		}
		cur.triggers++
		w.waking[ev.Endpoint] = cur
		return
	}
	if !ok {
		return // it came without a trigger of ours
	}
	delete(w.waking, ev.Endpoint)
	d := max(ev.Time.Sub(cur.since), 0).Seconds()
	l := WakeLatency{Endpoint: ev.Endpoint, Woken: ev.Time.UTC(), Seconds: d, Triggers: cur.triggers}
	if len(w.ring) < wakeRing {
		w.ring = append(w.ring, l)
	} else {
		w.ring[w.next] = l
	}
	w.next = (w.next + 1) % wakeRing
	i, _ := slices.BinarySearch(wakeBuckets, d)
	w.counts[i]++
	w.total++
	w.sum += d
	if w.hist != nil {
		w.hist.Observe(d)
	}
}

func (w *wakeBook) dropOldestLocked() {
	var oldest string
	var t time.Time
	for ep, x := range w.waking {
		if oldest == "" || x.since.Before(t) {
			oldest, t = ep, x.since
		}
	}
	delete(w.waking, oldest)
	w.dropped++
}

// WakeBucket is one histogram bucket: wake-ups that took more than the
// previous bucket's bound and at most LE seconds (LE 0: above the last).
type WakeBucket struct {
	LE    float64 `json:"le,omitempty"`
	Count uint64  `json:"count"`
}

// WakeStats is the answer of GET /api/v1/wakeups.
type WakeStats struct {
	Count   uint64        `json:"count"` // wake-ups measured since start
	Seconds float64       `json:"seconds_total"`
	Buckets []WakeBucket  `json:"buckets"`
	Recent  []WakeLatency `json:"recent"` // newest first
	// P50, P90 and Max are over Recent.
	P50    float64 `json:"p50_seconds"`
	P90    float64 `json:"p90_seconds"`
	Max    float64 `json:"max_seconds"`
	Waking int     `json:"waking"` // devices being woken now
	// Dropped counts the wake-ups not followed because maxWaking devices
	// were being woken already.
	Dropped uint64 `json:"dropped"`
}

func (w *wakeBook) stats() WakeStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := WakeStats{Count: w.total, Seconds: w.sum, Waking: len(w.waking), Dropped: w.dropped, Recent: make([]WakeLatency, 0, len(w.ring))}
	for i, c := range w.counts {
		b := WakeBucket{Count: c}
		if i < len(wakeBuckets) {
			b.LE = wakeBuckets[i]
		}
		s.Buckets = append(s.Buckets, b)
	}
	// The newest is just before next (next is len(ring) until the ring is
	// full, then wraps).
	n := len(w.ring)
	for i := range n {
		s.Recent = append(s.Recent, w.ring[((w.next-1-i)%n+n)%n])
	}
	if len(s.Recent) > 0 {
		secs := make([]float64, len(s.Recent))
		for i, l := range s.Recent {
			secs[i] = l.Seconds
		}
		slices.Sort(secs)
		s.P50, s.P90, s.Max = quantile(secs, 0.5), quantile(secs, 0.9), secs[len(secs)-1]
	}
	return s
}

// quantile of sorted values, nearest rank.
func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// sizes returns the devices being woken and the wake-ups dropped.
func (w *wakeBook) sizes() (waking int, dropped uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waking), w.dropped
}

// collectors export the book's bounded structures: the devices being
// woken and the wake-ups dropped beyond maxWaking.
func (w *wakeBook) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "smsgw_wakeup_waking",
			Help: "Devices being woken now (SMS trigger sent, device not seen yet); at most 100,000 followed."},
			func() float64 { n, _ := w.sizes(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "smsgw_wakeup_dropped_total",
			Help: "Wake-ups not followed for their latency because 100,000 devices were being woken already."},
			func() float64 { _, d := w.sizes(); return float64(d) }),
	}
}

// getWakeups serves GET /api/v1/wakeups.
func (g *Gateway) getWakeups(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, g.wakes.stats())
}
