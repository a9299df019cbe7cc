package oscore

import "sync/atomic"

// Event is a countable thing that happens in a Conn.
type Event uint8

// Events counted by a Conn (Counters, or WithMetrics).
const (
	EventProtected          Event = iota // message protected and sent
	EventVerified                        // message verified and passed up
	EventReplay                          // request refused: Partial IV seen or below the window (4.01)
	EventNoContext                       // request refused: unknown kid / kid context (4.01)
	EventDecryptFailed                   // message refused: tag did not verify (4.00; responses dropped)
	EventBadOption                       // request refused: malformed OSCORE option (4.02)
	EventDecodeError                     // message refused: bad plaintext or outer code (4.00)
	EventEchoChallenge                   // 4.01 with Echo sent: replay window not initialised (B.1.2)
	EventEchoRetry                       // request re-sent with the peer's Echo value (B.1.2)
	EventPlainPassed                     // unprotected message passed up (AllowPlain, peer without context)
	EventPlainRefused                    // unprotected request refused (4.01) or response dropped
	EventPlainError                      // unprotected 4.xx/5.xx answer to a protected request passed up
	EventUnexpected                      // protected response matching no request, dropped
	EventNotificationReplay              // notification with an old Partial IV, dropped (§7.4.1)
	EventDuplicate                       // retransmitted request recognised and passed to the message layer
	EventSeqStoreError                   // the sequence number could not be persisted: nothing sent
	EventEvicted                         // binding or cache entry evicted before its lifetime
	EventB2Started                       // Appendix B.2 run started by us as requester: request #1 sent (step 1)
	EventB2Response1                     // request answered with an Appendix B.2 response #1, not executed (step 2)
	EventB2Request2                      // request re-sent with a run's new keys after response #1 (step 3)
	EventB2Established                   // Appendix B.2 run completed: the new context is in use (step 4 or 5)
	EventB2Evicted                       // cached R2 dropped for a newer run (more than 4 pending)
	numEvents
)

var eventNames = [numEvents]string{
	"protected", "verified", "replay", "no_context", "decrypt_failed", "bad_option", "decode_error",
	"echo_challenge", "echo_retry", "plain_passed", "plain_refused", "plain_error", "unexpected",
	"notification_replay", "duplicate", "seq_store_error", "evicted",
	"b2_started", "b2_response1", "b2_request2", "b2_established", "b2_evicted",
}

// String returns the event's snake_case name (a metric label).
func (e Event) String() string {
	if e < numEvents {
		return eventNames[e]
	}
	return "unknown"
}

// Metrics receives a Conn's counts; safe for concurrent use.
type Metrics interface{ Count(ev Event, n int) }

// Counters keeps counts in memory. The zero value is ready to use.
type Counters struct{ c [numEvents]atomic.Int64 }

// Count adds n to ev.
func (c *Counters) Count(ev Event, n int) {
	if ev < numEvents {
		c.c[ev].Add(int64(n))
	}
}

// Get returns the count of ev.
func (c *Counters) Get(ev Event) int64 {
	if ev < numEvents {
		return c.c[ev].Load()
	}
	return 0
}

// Snapshot returns the non-zero counts by name.
func (c *Counters) Snapshot() map[string]int64 {
	m := map[string]int64{}
	for i := range c.c {
		if v := c.c[i].Load(); v != 0 {
			m[Event(i).String()] = v
		}
	}
	return m
}

type multiMetrics []Metrics

func (mm multiMetrics) Count(ev Event, n int) {
	for _, m := range mm {
		m.Count(ev, n)
	}
}
