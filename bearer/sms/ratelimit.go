package sms

import (
	"time"

	"github.com/m2mbearer/m2mbearer/internal/ratelimit"
)

// limiter is a token bucket per destination, bounded in the number of
// destinations it tracks (idle full buckets are forgotten first, then an
// arbitrary one).
type limiter struct{ k *ratelimit.Keyed }

func newLimiter(rate float64, burst, max int) *limiter {
	return &limiter{ratelimit.NewKeyed(ratelimit.Config{Rate: rate, Burst: burst, MaxKeys: max, Overflow: ratelimit.EvictOne})}
}

// take removes n tokens for key at now, or returns how long to wait.
func (l *limiter) take(key string, n int, now time.Time) (bool, time.Duration) {
	return l.k.Take(key, n, now)
}
