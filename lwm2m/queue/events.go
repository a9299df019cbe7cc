package queue

import (
	"sync/atomic"
	"time"
)

// EventType says what happened.
type EventType uint8

// Event types.
const (
	EventQueued    EventType = iota + 1 // request stored
	EventWake                           // SMS wake-up sent to the device
	EventWoke                           // a device that was being woken showed up
	EventSent                           // request handed to the executor
	EventDone                           // answered (Record.Result)
	EventFailed                         // failed (Err)
	EventExpired                        // expired (Err)
	EventCancelled                      // cancelled (Err)
)

func (t EventType) String() string {
	switch t {
	case EventQueued:
		return "queued"
	case EventWake:
		return "wake"
	case EventWoke:
		return "woke"
	case EventSent:
		return "sent"
	case EventDone:
		return "done"
	case EventFailed:
		return "failed"
	case EventExpired:
		return "expired"
	case EventCancelled:
		return "cancelled"
	}
	return "event(?)"
}

func eventOf(s State) EventType {
	switch s {
	case StateDone:
		return EventDone
	case StateExpired:
		return EventExpired
	case StateCancelled:
		return EventCancelled
	}
	return EventFailed
}

// Event is one step of a request or a device.
type Event struct {
	Type     EventType
	Endpoint string
	// ID is the request (0 for device events: wake, woke).
	ID    uint64
	State State
	// Err is the *RequestError of failed, expired and cancelled requests.
	Err  error
	Time time.Time
}

// Subscription receives events on a bounded channel. A subscriber too slow
// to keep up loses events (counted by Dropped and the "events_dropped"
// metric), never requests: final states are always in the Store for Get
// and Wait. The zero Subscription is an ended one: its channel is closed.
type Subscription struct {
	m       *Manager
	c       chan Event
	dropped atomic.Uint64
	closed  bool
}

// Subscribe returns a subscription with a channel of buf events (at least 1).
func (m *Manager) Subscribe(buf int) *Subscription {
	s := &Subscription{m: m, c: make(chan Event, max(buf, 1))}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.subs == nil { // closed, or a zero Manager
		s.closeLocked()
		return s
	}
	m.subs[s] = struct{}{}
	return s
}

// C returns the event channel; it is closed by Close or Manager.Close.
func (s *Subscription) C() <-chan Event {
	if s.c == nil { // the zero Subscription has ended
		return closedEvents
	}
	return s.c
}

var closedEvents = func() chan Event { c := make(chan Event); close(c); return c }()

// Dropped returns how many events did not fit the channel.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription.
func (s *Subscription) Close() {
	if s.m == nil { // the zero Subscription
		return
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if !s.closed {
		s.closed = true
		delete(s.m.subs, s)
		close(s.c)
	}
}

func (m *Manager) emitLocked(ev Event) {
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(ev)
	}
	for s := range m.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
			m.met.Add("events_dropped", 1)
		}
	}
}
