package logthrottle

import (
	"sync"
	"time"
)

// Defaults of a zero Limiter.
const (
	DefaultBurst    = 10
	DefaultInterval = 10 * time.Second
)

// Limiter lets at most Burst lines through per Interval. The zero value is
// ready to use with DefaultBurst and DefaultInterval. It is safe for
// concurrent use.
type Limiter struct {
	// Burst is how many lines pass per Interval (0: DefaultBurst).
	Burst int
	// Interval is the window length (0: DefaultInterval).
	Interval time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	mu         sync.Mutex
	start      time.Time // current window
	passed     int       // lines let through in the window
	suppressed uint64    // held back since the last line let through
	total      uint64    // held back in all
}

// Allow reports whether a line may be written now; when it may, held is
// the number of lines held back since the previous line let through (put
// it in the line, e.g. as "suppressed").
func (l *Limiter) Allow() (ok bool, held uint64) {
	if l == nil {
		return true, 0
	}
	burst, interval := l.Burst, l.Interval
	if burst <= 0 {
		burst = DefaultBurst
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() || t.Sub(l.start) >= interval || t.Before(l.start) {
		l.start, l.passed = t, 0
	}
	if l.passed >= burst {
		l.suppressed++
		l.total++
		return false, 0
	}
	l.passed++
	held, l.suppressed = l.suppressed, 0
	return true, held
}

// Suppressed returns how many lines were held back in all.
func (l *Limiter) Suppressed() uint64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
