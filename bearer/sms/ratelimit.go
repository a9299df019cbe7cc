package sms

import (
	"sync"
	"time"
)

// limiter is a token bucket per destination, bounded in the number of
// destinations it tracks (idle full buckets are forgotten first).
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens a second; 0 disables
	burst   float64
	max     int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst, max int) *limiter {
	if burst <= 0 {
		burst = 1
	}
	if max <= 0 {
		max = 100_000
	}
	return &limiter{rate: rate, burst: float64(burst), max: max, buckets: map[string]*bucket{}}
}

// take removes n tokens for key at now, or returns how long to wait.
func (l *limiter) take(key string, n int, now time.Time) (bool, time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	need := float64(n)
	if need > l.burst {
		// A datagram larger than the burst may go when the bucket is full.
		need = l.burst
	}
	if b.tokens >= need {
		b.tokens -= float64(n)
		return true, 0
	}
	return false, time.Duration((need - b.tokens) / l.rate * float64(time.Second))
}

// evict drops buckets that are full again (idle long enough), or one
// arbitrary bucket when none is.
func (l *limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= l.max {
		for k := range l.buckets {
			delete(l.buckets, k)
			break
		}
	}
}
