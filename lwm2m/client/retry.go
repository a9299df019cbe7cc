package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/backoff"
)

// Clock is the time source of the registration procedure's waits (tests
// use a manual clock). The zero Client uses the real clock.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WithClock sets the clock of the registration procedure (default: the
// real clock).
func WithClock(c Clock) Option {
	return func(cf *config) error {
		if c == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		cf.clock = c
		return nil
	}
}

// RetryPolicy is the LwM2M 1.1 registration procedure's schedule (Core
// §6.2.1.1, Server Object resources 17–20). A communication sequence is
// up to RetryCount attempts, the n-th retry RetryTimer × 2^(n−1) after the
// failed attempt before it; a failed sequence is followed by the next one
// SequenceDelay later, up to SequenceCount sequences; then the
// registration has failed and the client stops trying (until
// StartRetry is called again). Every wait is spread by ±25 % jitter so
// that a fleet refused at the same moment does not retry in step.
//
// The zero RetryPolicy allows no attempt (MaxAttempts 0);
// DefaultRetryPolicy returns the Core defaults.
type RetryPolicy struct {
	RetryCount    int           // /1/x/17 Communication Retry Count (default 5)
	RetryTimer    time.Duration // /1/x/18 Communication Retry Timer (default 60 s)
	SequenceDelay time.Duration // /1/x/19 Communication Sequence Delay Timer (default 86400 s)
	SequenceCount int           // /1/x/20 Communication Sequence Retry Count (default 1)
}

// DefaultRetryPolicy is the schedule with the LwM2M 1.1 defaults: at most
// 5 Register attempts a day.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{RetryCount: 5, RetryTimer: 60 * time.Second, SequenceDelay: 24 * time.Hour, SequenceCount: 1}
}

// MaxAttempts is how many Register attempts the whole procedure makes.
func (p RetryPolicy) MaxAttempts() int { return p.RetryCount * p.SequenceCount }

// RetryPolicy returns the schedule of the first LwM2M Server instance
// (/1/x/17–20), the defaults for resources it lacks; WithRetry sets the
// Retry Timer of a client whose Server object has none.
func (c *Client) RetryPolicy() RetryPolicy {
	p := DefaultRetryPolicy()
	if c.cfg.retrySet {
		p.RetryTimer = c.cfg.retry
	}
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	o, ok := c.t.objs[1]
	if !ok {
		return p
	}
	ids := slices.Sorted(maps.Keys(o.insts))
	if len(ids) == 0 {
		return p
	}
	inst := o.insts[ids[0]]
	get := func(id uint16) (int64, bool) {
		rn, ok := inst[id]
		if !ok || rn.multi != nil || rn.single.Int() <= 0 {
			return 0, false
		}
		return rn.single.Int(), true
	}
	if v, ok := get(17); ok {
		p.RetryCount = int(min(v, 1<<16))
	}
	if v, ok := get(18); ok {
		p.RetryTimer = time.Duration(min(v, 1<<31)) * time.Second
	}
	if v, ok := get(19); ok {
		p.SequenceDelay = time.Duration(min(v, 1<<31)) * time.Second
	}
	if v, ok := get(20); ok {
		p.SequenceCount = int(min(v, 1<<16))
	}
	return p
}

// ErrRegistrationFailed is matched by *RegistrationFailedError.
var ErrRegistrationFailed = errors.New("lwm2m client: registration failed")

// RegistrationFailedError ends the registration procedure: every attempt
// of every sequence failed.
type RegistrationFailedError struct {
	Attempts int
	Last     error
}

func (e *RegistrationFailedError) Error() string {
	return fmt.Sprintf("lwm2m client: registration failed after %d attempts: %v", e.Attempts, e.Last)
}

// Is matches ErrRegistrationFailed.
func (e *RegistrationFailedError) Is(target error) bool { return target == ErrRegistrationFailed }

// Unwrap returns the last attempt's error.
func (e *RegistrationFailedError) Unwrap() error { return e.Last }

// jitter spreads d by ±25 %.
func jitter(d time.Duration) time.Duration { return backoff.Spread(d, 0.25, rand.Float64()) }

// retryWait is the wait before retry n (n ≥ 1) of a sequence: the
// Communication Retry Timer × 2^(n−1), with no cap but no overflow.
func (p RetryPolicy) retryWait(n int) time.Duration {
	return backoff.Policy{Min: p.RetryTimer}.Delay(n - 1)
}

// wait waits d on the client's clock, or until ctx ends or Close.
func (c *Client) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-c.clock().After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stop:
		return errors.New("lwm2m client: closed")
	}
}

func (c *Client) clock() Clock {
	if c.cfg.clock == nil {
		return realClock{}
	}
	return c.cfg.clock
}

// RegisterWithRetry registers following the LwM2M registration procedure
// (RetryPolicy): it returns nil once a Register succeeded, the context's
// error, or a *RegistrationFailedError when every attempt failed. Over SMS
// with the defaults that bounds a device refused by its server to 5
// Register SMS (and their answers) a day. With WithRedial, an attempt
// first opens a new security context when the last one was lost (a
// handshake that fails is a failed attempt).
func (c *Client) RegisterWithRetry(ctx context.Context) error {
	if c.stop == nil {
		return ErrNotCreated
	}
	p := c.RetryPolicy()
	attempts := 0
	var last error
	for seq := 0; seq < max(p.SequenceCount, 1); seq++ {
		if seq > 0 {
			c.log.Warn("lwm2m client: registration sequence failed, next one later", "ep", c.name,
				"after", p.SequenceDelay, "err", last)
			if err := c.wait(ctx, jitter(p.SequenceDelay)); err != nil {
				return err
			}
		}
		for n := 0; n < max(p.RetryCount, 1); n++ {
			if n > 0 {
				if err := c.wait(ctx, jitter(p.retryWait(n))); err != nil {
					return err
				}
			}
			attempts++
			last = c.ensureSession(ctx) // session.go: a new DTLS session when the last was lost
			if last == nil {
				last = c.Register(ctx)
				if last == nil {
					return nil
				}
				c.sessionLost(last)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.log.Info("lwm2m client: register attempt failed", "ep", c.name, "attempt", attempts, "err", last)
		}
	}
	return &RegistrationFailedError{Attempts: attempts, Last: last}
}

// StartRetry is Start with the registration procedure: it registers with
// RegisterWithRetry (retrying with backoff per the Server object, resources
// 17–20) and then starts the update loop. It returns a
// *RegistrationFailedError when the procedure gave up.
func (c *Client) StartRetry(ctx context.Context, ep *bearer.Endpoint, addr net.Addr) error {
	if c.stop == nil {
		return ErrNotCreated
	}
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("lwm2m client: already started or closed")
	}
	c.ep, c.server = ep, addr // nil with WithRedial: the first attempt dials
	c.mu.Unlock()
	if err := c.RegisterWithRetry(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("lwm2m client: closed")
	}
	c.started = true
	c.loopDone = make(chan struct{})
	go c.loop()
	return nil
}

// updateRetry returns the wait after the n-th Update failure in a row
// (the Communication Retry Timer doubled, with jitter, at most period),
// and whether the client should give up on Updates and register anew
// (n reached the Communication Retry Count).
func (c *Client) updateRetry(n int, period time.Duration) (time.Duration, bool) {
	p := c.RetryPolicy()
	if n >= max(p.RetryCount, 1) {
		return 0, true
	}
	return min(jitter(p.retryWait(n)), period), false
}
