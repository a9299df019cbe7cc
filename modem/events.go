package modem

import (
	"fmt"
	"time"
)

// EventType names what happened to a modem.
type EventType int

// Event types.
const (
	EventConnected       EventType = iota // link up and initialised
	EventDisconnected                     // link lost (EOF/EIO, timeout storm, Close)
	EventReconnectFailed                  // one re-open attempt failed; another follows after backoff
	EventStorageFull                      // message storage full (+CPMS used == total)
	EventHealth                           // a health poll completed
	EventDropped                          // something was dropped because a bounded queue was full
	EventBadInput                         // a line or PDU from the modem could not be parsed and was skipped
	EventQuarantined                      // a received message that cannot be delivered was put in the quarantine
	EventLengthMismatch                   // a PDU's length differed from its <length>; it was used because it decodes
)

func (t EventType) String() string {
	switch t {
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventReconnectFailed:
		return "reconnect-failed"
	case EventStorageFull:
		return "storage-full"
	case EventHealth:
		return "health"
	case EventDropped:
		return "dropped"
	case EventBadInput:
		return "bad-input"
	case EventQuarantined:
		return "quarantined"
	case EventLengthMismatch:
		return "length-mismatch"
	}
	return fmt.Sprintf("event(%d)", int(t))
}

// Event is a modem life-cycle or fault notice.
//
// The zero Event is a "connected" notice at the zero time naming no modem.
type Event struct {
	Time   time.Time
	Modem  string // the modem's name (its MSISDN when known, else the device)
	Type   EventType
	Err    error  // the cause, when there is one
	Detail string // a short human-readable detail
}

func (e Event) String() string {
	s := e.Time.Format(time.RFC3339Nano) + " " + e.Modem + " " + e.Type.String()
	if e.Detail != "" {
		s += " " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Metrics receives counters and timings from modems and pools. Implement it
// to export to any metrics system; NewPrometheusMetrics exports to
// Prometheus. Methods must be safe for concurrent use and must not block.
type Metrics interface {
	// Command is called after every AT command with its name (e.g. "+CMGS").
	Command(modem, cmd string, d time.Duration, err error)
	// Received is called for every message handed to the consumer.
	Received(modem string, kind Kind)
	// Event is called for every event, whether or not it was queued.
	Event(modem string, t EventType)
	// Queue reports the length of a bounded queue ("inbox", "urc",
	// "pool-inflight") after a change.
	Queue(modem, queue string, n int)
}

type nopMetrics struct{}

func (nopMetrics) Command(string, string, time.Duration, error) {}
func (nopMetrics) Received(string, Kind)                        {}
func (nopMetrics) Event(string, EventType)                      {}
func (nopMetrics) Queue(string, string, int)                    {}
