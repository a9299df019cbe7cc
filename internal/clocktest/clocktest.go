package clocktest

import (
	"sync"
	"time"
)

// Manual is a clock that moves only by Advance. Safe for concurrent use.
type Manual struct {
	mu    sync.Mutex
	now   time.Time
	waits map[*wait]struct{}
}

type wait struct {
	at time.Time
	ch chan time.Time
}

// New returns a manual clock that reads start.
func New(start time.Time) *Manual {
	return &Manual{now: start, waits: map[*wait]struct{}{}}
}

// Now returns the clock's time.
func (c *Manual) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once Advance has
// moved it d further (at once for d ≤ 0), and a stop function that
// releases the wait and reports whether it was still pending.
func (c *Manual) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &wait{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- c.now
		return w.ch, func() bool { return false }
	}
	c.waits[w] = struct{}{}
	return w.ch, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.waits[w]
		delete(c.waits, w)
		return ok
	}
}

// Advance moves the clock by d and fires the waits it reaches.
func (c *Manual) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for w := range c.waits {
		if !w.at.After(c.now) {
			w.ch <- c.now
			delete(c.waits, w)
		}
	}
}

// ArmedBy reports whether some wait is pending for an instant at or
// before at.
func (c *Manual) ArmedBy(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.waits {
		if !w.at.After(at) {
			return true
		}
	}
	return false
}
