// Package ratelimit is the project's per-key rate limiter: one token
// bucket (golang.org/x/time/rate.Limiter) per key — a source address, a
// destination MSISDN — bounded in the number of keys it tracks, on a clock
// the caller passes in (tests drive it by hand; rate.Limiter takes explicit
// times through AllowN, ReserveN and TokensAt).
//
// # Usage
//
//	l := ratelimit.NewKeyed(ratelimit.Config{Rate: 50, Burst: 500, MaxKeys: 65536, Overflow: ratelimit.Share})
//	if ok, wait := l.Take(peer, 1, time.Now()); !ok {
//		// refuse, retry after wait
//	}
//
// # Design
//
// A single bucket is a rate.Limiter used directly (the SMPP link's submit
// rate, a modem pool member's send rate); this package only adds the keys
// and their bound.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Overflow is what a Keyed limiter does with a new key when it already
// tracks MaxKeys keys and none of them is idle (its bucket full again, no
// different from a new one) to forget.
type Overflow int

const (
	// EvictOne forgets one arbitrary key to make room (an SMS bearer's
	// destinations: a forgotten destination starts with a full bucket).
	EvictOne Overflow = iota
	// Share puts the new key in one bucket shared by every key past the
	// bound (a server's sources: a flood of new addresses shares one
	// rate instead of each getting a burst).
	Share
)

// Config configures a Keyed limiter.
type Config struct {
	// Rate is the tokens a second each key earns; <= 0: no limit (Take
	// always succeeds).
	Rate float64
	// Burst is the size of each key's bucket (values below 1 are 1).
	Burst int
	// MaxKeys bounds the keys tracked (<= 0: 100,000).
	MaxKeys int
	// Overflow is the policy past MaxKeys.
	Overflow Overflow
	// SweepEvery is the least time between two sweeps for idle keys (0:
	// every time a new key finds the limiter full).
	SweepEvery time.Duration
}

// Keyed is a token bucket per key, made by NewKeyed. It is safe for
// concurrent use; a nil *Keyed and the zero Keyed (Rate 0) limit nothing.
type Keyed struct {
	cfg Config

	mu        sync.Mutex
	keys      map[string]*rate.Limiter
	shared    *rate.Limiter
	lastSweep time.Time
}

// NewKeyed returns a Keyed limiter with every key's bucket starting full.
func NewKeyed(c Config) *Keyed {
	c.Burst = max(c.Burst, 1)
	if c.MaxKeys <= 0 {
		c.MaxKeys = 100_000
	}
	return &Keyed{cfg: c, keys: map[string]*rate.Limiter{}, shared: c.newBucket()}
}

func (c Config) newBucket() *rate.Limiter { return rate.NewLimiter(rate.Limit(c.Rate), c.Burst) }

// Take removes n tokens from key's bucket at now and reports true, or
// reports false and how long until the bucket holds them. n larger than
// Burst is taken when the bucket is full (a message bigger than the burst
// still goes, and then its bucket is in debt for the rest).
func (l *Keyed) Take(key string, n int, now time.Time) (bool, time.Duration) {
	if l == nil || l.cfg.Rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	need := float64(min(n, l.cfg.Burst))
	if have := b.TokensAt(now); have < need {
		return false, time.Duration((need - have) / l.cfg.Rate * float64(time.Second))
	}
	for left := n; left > 0; left -= l.cfg.Burst {
		b.ReserveN(now, min(left, l.cfg.Burst))
	}
	return true, 0
}

// bucket returns key's bucket, making room for a new one as Overflow says.
func (l *Keyed) bucket(key string, now time.Time) *rate.Limiter {
	if b, ok := l.keys[key]; ok {
		return b
	}
	if len(l.keys) >= l.cfg.MaxKeys {
		l.sweep(now)
	}
	if len(l.keys) >= l.cfg.MaxKeys {
		if l.cfg.Overflow == Share {
			return l.shared
		}
		for k := range l.keys {
			delete(l.keys, k)
			break
		}
	}
	b := l.cfg.newBucket()
	l.keys[key] = b
	return b
}

// sweep forgets the keys whose bucket is full again, at most once per
// SweepEvery.
func (l *Keyed) sweep(now time.Time) {
	if l.cfg.SweepEvery > 0 && now.Sub(l.lastSweep) < l.cfg.SweepEvery {
		return
	}
	l.lastSweep = now
	for k, b := range l.keys {
		if b.TokensAt(now) >= float64(l.cfg.Burst) {
			delete(l.keys, k)
		}
	}
}

// Len returns the number of keys tracked.
func (l *Keyed) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
