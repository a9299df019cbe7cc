// Package backoff is the project's one exponential backoff: a delay that
// doubles per attempt up to a cap, spread by a jitter so that a fleet
// refused at the same moment does not retry in step, and a wait that ends
// with its context.
//
// # Usage
//
//	p := backoff.Policy{Min: time.Second, Max: time.Minute, Jitter: 0.2}
//	for attempt := 0; ; attempt++ {
//		if err := try(); err == nil {
//			return nil
//		}
//		if err := backoff.Wait(ctx, p.Next(attempt, rand.Float64)); err != nil {
//			return err
//		}
//	}
//
// # Design
//
// Users: the SMPP link's re-bind and throttle waits (bearer/sms/smpp), the
// SMS outbox's retry schedule (bearer/sms/outbox), the Redis change feed's
// reconnection (redisstore) and the LwM2M registration procedure's waits
// (lwm2m/client, where Min is the Communication Retry Timer and there is no
// cap).
package backoff

import (
	"context"
	"math"
	"time"
)

// Policy is an exponential backoff: attempt n (from 0) waits Min doubled n
// times, at most Max, spread by ±Jitter.
//
// The zero Policy waits 0. Max <= 0 means no cap (the delay saturates at
// the largest time.Duration instead of overflowing). Jitter is a fraction
// in [0, 1]: 0.2 spreads a delay d over [0.8·d, 1.2·d]; values outside
// [0, 1] are clamped to it.
type Policy struct {
	Min, Max time.Duration
	Jitter   float64
}

// Delay returns the delay of attempt n without jitter: Min doubled n
// times, capped at Max. A negative n is attempt 0; a negative Min is 0.
func (p Policy) Delay(n int) time.Duration {
	d := max(p.Min, 0)
	for i := 0; i < n && d > 0; i++ {
		if p.Max > 0 && d >= p.Max {
			break
		}
		if d > math.MaxInt64/2 {
			d = math.MaxInt64
			break
		}
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	return d
}

// Next returns the delay of attempt n with jitter: Delay(n) spread by
// Jitter using rnd, a source of uniform values in [0, 1) (math/rand/v2's
// Float64 or a seeded *rand.Rand's). A nil rnd applies no jitter.
func (p Policy) Next(n int, rnd func() float64) time.Duration {
	d := p.Delay(n)
	if rnd == nil {
		return d
	}
	return Spread(d, p.Jitter, rnd())
}

// Spread returns d spread by ±frac at the point u of [0, 1): u = 0 gives
// d·(1−frac), u → 1 gives d·(1+frac). frac is clamped to [0, 1] and u to
// [0, 1]; a non-positive d is 0. The result saturates instead of
// overflowing.
func Spread(d time.Duration, frac, u float64) time.Duration {
	if d <= 0 {
		return 0
	}
	frac = min(max(frac, 0), 1)
	u = min(max(u, 0), 1)
	f := float64(d) * (1 - frac + 2*frac*u)
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}

// Wait waits d or until ctx ends, whichever comes first; it returns
// ctx.Err() when ctx ended first (or had already ended) and nil otherwise.
// A non-positive d returns ctx.Err() at once.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
