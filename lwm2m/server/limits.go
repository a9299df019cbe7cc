package server

import (
	"fmt"
	"math"
	"net"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/ratelimit"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// Defaults of Limits. A zero field takes its default; see each field for
// how to lift a limit.
const (
	// DefaultSourceRate is the registration-interface requests a second
	// one source may make (4.29 Too Many Requests beyond it).
	DefaultSourceRate = 50
	// DefaultSourceBurst is how many such requests a source may make at
	// once after a quiet period.
	DefaultSourceBurst = 500
	// DefaultMaxSources bounds the sources whose request rate is tracked;
	// beyond it new sources share one bucket.
	DefaultMaxSources = 65536
	// DefaultMaxLifetime is the longest registration lifetime accepted,
	// in seconds (30 days).
	DefaultMaxLifetime = 30 * 24 * 3600
)

// Limits bound what clients may register. The zero value is the defaults.
// Over a limit a request is refused with a clear code and counted in
// Stats: the source rate with 4.29 Too Many Requests and Max-Age (RFC
// 8516), a lifetime outside the bounds with 4.00, an object list over
// registry.MaxLinkPayload with 4.13 and a full registry (its
// registry.Options.MaxRegistrations) with 5.03 and Max-Age.
type Limits struct {
	// SourceRate is how many Register, Update and De-register requests a
	// second one source may make: one IPv4 address, one IPv6 /64 (the
	// smallest network an attacker is given) or one SMS number. 0:
	// DefaultSourceRate; negative: no limit.
	SourceRate float64
	// SourceBurst is the burst of SourceRate (0: DefaultSourceBurst, or
	// SourceRate when that is larger).
	SourceBurst int
	// MaxSources bounds the sources tracked (0: DefaultMaxSources). When
	// more sources are active at once, the others share one bucket.
	MaxSources int
	// MinLifetime and MaxLifetime bound "lt" in seconds (0: 1 and
	// DefaultMaxLifetime; math.MaxUint32 allows any lifetime).
	MinLifetime, MaxLifetime uint32
}

// WithLimits sets the limits on what clients may register (default: the
// zero Limits, i.e. the Default* constants).
func WithLimits(l Limits) Option {
	return func(c *config) error {
		if l.SourceBurst < 0 || l.MaxSources < 0 {
			return fmt.Errorf("%w: negative SourceBurst or MaxSources in %+v", ErrInvalidOption, l)
		}
		c.limits = l
		return nil
	}
}

// WithLifetimeBounds refuses Register/Update lifetimes outside [min, max]
// seconds with 4.00 (a 0 takes the default of Limits). It sets the
// lifetime fields of the limits and keeps the others.
func WithLifetimeBounds(min, max uint32) Option {
	return func(c *config) error { c.limits.MinLifetime, c.limits.MaxLifetime = min, max; return nil }
}

func (l Limits) withDefaults() Limits {
	if l.SourceRate == 0 {
		l.SourceRate = DefaultSourceRate
	}
	if l.SourceBurst <= 0 {
		l.SourceBurst = max(DefaultSourceBurst, int(math.Ceil(l.SourceRate)))
	}
	if l.MaxSources <= 0 {
		l.MaxSources = DefaultMaxSources
	}
	if l.MinLifetime == 0 {
		l.MinLifetime = 1
	}
	if l.MaxLifetime == 0 {
		l.MaxLifetime = DefaultMaxLifetime
	}
	return l
}

// sourceKey names the source a request is rate limited as: an IPv4
// address, an IPv6 /64, or another kind of address (an SMS number).
func sourceKey(peer net.Addr) string {
	if ap, ok := registry.AddrPortOf(peer); ok {
		a := ap.Addr()
		if a.Is6() {
			if p, err := a.Prefix(64); err == nil {
				return p.String()
			}
		}
		return a.String()
	}
	return bearer.AddrKey(peer)
}

// sourceLimiter is a token bucket per source, bounded: buckets that have
// refilled are forgotten (at most once a second), and when MaxSources are
// active the rest share one bucket.
type sourceLimiter struct{ k *ratelimit.Keyed }

func newSourceLimiter(l Limits) *sourceLimiter {
	if l.SourceRate < 0 {
		return nil
	}
	return &sourceLimiter{ratelimit.NewKeyed(ratelimit.Config{Rate: l.SourceRate, Burst: l.SourceBurst,
		MaxKeys: l.MaxSources, Overflow: ratelimit.Share, SweepEvery: time.Second})}
}

// take takes one token for key at now; when none is left it returns false
// and how long until one is.
func (l *sourceLimiter) take(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	return l.k.Take(key, 1, now)
}

// tracked returns the number of sources tracked.
func (l *sourceLimiter) tracked() int {
	if l == nil {
		return 0
	}
	return l.k.Len()
}

// maxAgeSeconds is the Max-Age of a 4.29 or 5.03: the wait rounded up to
// whole seconds, at least 1.
func maxAgeSeconds(d time.Duration) uint32 {
	s := math.Ceil(d.Seconds())
	return uint32(min(max(s, 1), 3600))
}
