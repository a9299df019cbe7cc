package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// EventKind says what happened to a registration.
type EventKind uint8

// Event kinds.
const (
	Registered   EventKind = iota + 1 // Register accepted (Previous: the replaced registration, if any)
	Updated                           // Update accepted (Previous: the registration before)
	Deregistered                      // De-register accepted
	Expired                           // lifetime (plus grace) ran out
	Notified                          // an observe notification arrived (Notification set)
	Sent                              // data arrived with the 1.1 Send operation (Send set)
)

func (k EventKind) String() string {
	switch k {
	case Registered:
		return "registered"
	case Updated:
		return "updated"
	case Deregistered:
		return "deregistered"
	case Expired:
		return "expired"
	case Notified:
		return "notification"
	case Sent:
		return "send"
	}
	return "unknown"
}

// Event is one registration-interface or reporting event.
type Event struct {
	Kind         EventKind
	Registration *registry.Registration
	Previous     *registry.Registration
	Notification *Notification
	Send         *SendEvent
	Time         time.Time
}

// Notification is an observe notification from a device.
//
// The zero Notification carries an empty text/plain payload for the root
// path, which Values refuses.
type Notification struct {
	Endpoint string
	Paths    []path.Path // the observed path(s)
	Content  Content
	Seq      uint32 // the Observe option value
	// m is the model of the observation (WithType types included).
	m model.Resolver
}

// Subscription receives events on C until Close or until the Server
// closes (C is then closed). A subscriber that does not keep up loses
// events rather than stalling the server: see Dropped. The zero
// Subscription receives nothing (its C is nil); Server.Subscribe makes
// one.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	hub     *eventHub
	dropped atomic.Uint64
}

// Dropped returns how many events did not fit in the subscription's buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	if s.hub != nil {
		s.hub.remove(s)
	}
}

type eventHub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
	drops  *atomic.Uint64
}

func (h *eventHub) init() { h.subs = map[*Subscription]struct{}{} }

// Subscribe returns a subscription with a buffer of size events (at least
// 1). At most 1024 subscriptions may be open; beyond that Subscribe
// returns nil.
func (s *Server) Subscribe(size int) *Subscription {
	size = max(size, 1)
	h := &s.events
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil { // a zero Server
		return nil
	}
	h.drops = &s.stats.EventsDropped
	c := make(chan Event, size)
	sub := &Subscription{C: c, c: c, hub: h}
	if h.closed {
		close(c)
		return sub
	}
	if len(h.subs) >= 1024 {
		return nil
	}
	h.subs[sub] = struct{}{}
	return sub
}

func (h *eventHub) publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		select {
		case sub.c <- ev:
		default:
			sub.dropped.Add(1)
			if h.drops != nil {
				h.drops.Add(1)
			}
		}
	}
}

func (h *eventHub) remove(sub *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		close(sub.c)
	}
}

func (h *eventHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		delete(h.subs, sub)
		close(sub.c)
	}
}
