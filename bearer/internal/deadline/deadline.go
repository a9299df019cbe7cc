package deadline

import (
	"sync"
	"time"
)

// Deadline is safe for concurrent use. The zero value is not usable; call New.
type Deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

// New returns a Deadline that is not set.
func New() *Deadline { return &Deadline{cancel: make(chan struct{})} }

// Set moves the deadline to t: the zero time clears it, a time in the past
// expires it at once.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired and closed it
	}
	d.timer = nil
	closed := false
	select {
	case <-d.cancel:
		closed = true
	default:
	}
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// Wait returns a channel that is closed when the current deadline passes.
// Call it again after Set: a moved deadline has a new channel.
func (d *Deadline) Wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}
