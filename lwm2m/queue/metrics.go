package queue

import (
	"time"
)

// Metrics receives the queue's counters and gauges. The daemon adapts it to
// Prometheus; the default discards. Implementations must be safe for
// concurrent use and must not block.
//
// Counters (Add): "queued", "sent", "done", "failed", "expired",
// "cancelled", "unknown_outcome", "requeued" (device fell asleep mid-drain),
// "wakeups" (trigger sent), "wake_errors", "wake_refused_unprotected" (a
// trigger to a secured peer that would have gone unprotected, refused:
// ErrUnprotectedTrigger), "not_woken" (devices given up),
// "rejected_full", "rejected_devices", "store_errors", "events_dropped",
// "pruned".
// Gauges (Set): "depth" (live requests), "bytes" (their encoded size),
// "devices" (device table size), "results" (final records retained).
type Metrics interface {
	Add(name string, delta float64)
	Set(name string, value float64)
}

type nopMetrics struct{}

func (nopMetrics) Add(string, float64) {}
func (nopMetrics) Set(string, float64) {}

// Clock is the time source of the Manager; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, and a stop
	// function that releases it early.
	After(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
