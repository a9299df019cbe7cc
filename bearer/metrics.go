package bearer

import "sync/atomic"

// Event is a countable thing that happens in an Endpoint.
type Event uint8

// Events counted through Metrics.Count.
const (
	EventReceived            Event = iota // datagram received
	EventSent                             // datagram sent (including retransmissions)
	EventRetransmission                   // CON message retransmitted
	EventDuplicate                        // duplicate message (same peer and MID) received
	EventTimeout                          // exchange timed out
	EventRSTSent                          // RST sent
	EventRSTReceived                      // RST received
	EventDropMalformed                    // datagram that is not valid CoAP, dropped
	EventDropUnknownACK                   // ACK matching no exchange, ignored
	EventDropUnexpected                   // message of the wrong kind (reserved code, ACK request...), dropped
	EventDropOverload                     // request dropped: handler pool or queue full
	EventBadOption                        // request rejected with 4.02 Bad Option
	EventDedupEvicted                     // dedup entry evicted before its lifetime (cache full)
	EventSeparateResponse                 // handler late: empty ACK then separate response
	EventObserveRegistered                // observation registered (server side)
	EventObserveRemoved                   // observation removed (server side)
	EventNotificationSent                 // notification sent
	EventNotificationDropped              // notification received out of order or stale, dropped (client side)
	EventBlockTransfer                    // block-wise transfer completed
	EventBlockError                       // block-wise error (4.08, 4.13, expired or evicted buffer)
	EventWriteError                       // bearer WriteTo failed
	EventReadError                        // bearer ReadFrom failed (the read loop backs off and goes on)
	EventNoResponse                       // response not sent: the request's No-Response option (RFC 7967) declined it
	EventFiredAnswer                      // answer to a fire-and-forget NON (Endpoint.Fire) matched and dropped, not reset
	EventQBlockTransfer                   // RFC 9177 Q-Block body completed (sent or received)
	EventQBlockMissing                    // RFC 9177 request or 4.08 for missing blocks sent
	EventQBlockFallback                   // peer turned Q-Block down (4.02, RST): RFC 7959 instead
	EventDedupRegenerated                 // duplicate answered by running a regenerable handler again
	EventDedupRegenMismatch               // regenerated reply differed from the digest: not sent, entry dropped
	numEvents
)

var eventNames = [numEvents]string{
	"received", "sent", "retransmission", "duplicate", "timeout", "rst_sent", "rst_received",
	"drop_malformed", "drop_unknown_ack", "drop_unexpected", "drop_overload", "bad_option",
	"dedup_evicted", "separate_response", "observe_registered", "observe_removed",
	"notification_sent", "notification_dropped", "block_transfer", "block_error", "write_error", "read_error",
	"no_response", "fired_answer",
	"qblock_transfer", "qblock_missing", "qblock_fallback", "dedup_regenerated", "dedup_regen_mismatch",
}

// String returns the event's snake_case name, usable as a metric label.
func (e Event) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return "unknown"
}

// Gauge is a sampled size of a bounded structure.
type Gauge uint8

// Gauges reported through Metrics.Set.
const (
	GaugeExchanges    Gauge = iota // outstanding client exchanges
	GaugeDedupEntries              // entries in the duplicate-detection cache
	GaugeObservations              // server-side observations
	GaugeBlockBuffers              // Block1 reassembly and Block2 serving buffers
	GaugePeers                     // peers with NSTART state
	numGauges
)

var gaugeNames = [numGauges]string{"exchanges", "dedup_entries", "observations", "block_buffers", "peers"}

// String returns the gauge's snake_case name.
func (g Gauge) String() string {
	if int(g) < len(gaugeNames) {
		return gaugeNames[g]
	}
	return "unknown"
}

// Metrics receives counters and gauges from an Endpoint. Implementations
// must be safe for concurrent use and fast (they are called on the hot
// path). The default is a no-op; a Prometheus adapter lives with the daemon.
type Metrics interface {
	Count(ev Event, n int)
	Set(g Gauge, v int)
}

type nopMetrics struct{}

func (nopMetrics) Count(Event, int) {}
func (nopMetrics) Set(Gauge, int)   {}

// Counters is a Metrics that keeps the counts in memory; handy in tests and
// for a status page. The zero value is ready to use.
type Counters struct {
	events [numEvents]atomic.Int64
	gauges [numGauges]atomic.Int64
}

// Count adds n to ev.
func (c *Counters) Count(ev Event, n int) {
	if ev < numEvents {
		c.events[ev].Add(int64(n))
	}
}

// Set records v for g.
func (c *Counters) Set(g Gauge, v int) {
	if g < numGauges {
		c.gauges[g].Store(int64(v))
	}
}

// Get returns the count of ev.
func (c *Counters) Get(ev Event) int64 {
	if ev < numEvents {
		return c.events[ev].Load()
	}
	return 0
}

// Gauge returns the last value set for g.
func (c *Counters) Gauge(g Gauge) int64 {
	if g < numGauges {
		return c.gauges[g].Load()
	}
	return 0
}

// Snapshot returns all non-zero counts by event name.
func (c *Counters) Snapshot() map[string]int64 {
	m := make(map[string]int64)
	for i := range c.events {
		if v := c.events[i].Load(); v != 0 {
			m[Event(i).String()] = v
		}
	}
	return m
}
