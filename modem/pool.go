package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/m2mbearer/m2mbearer/internal/backoff"
)

// ErrUnknownSIM is returned by Pool.Send when a named MSISDN is not in the
// pool. It is permanent: a configuration error, not a transient state.
var ErrUnknownSIM error = &kindError{"modem: SIM not in pool", false}

// Member is what a Pool needs of a modem. *Modem implements it; tests and
// simulators may provide others.
type Member interface {
	// MSISDN is the SIM's number; it identifies the member in the pool.
	MSISDN() string
	// Ready reports whether the member can take a send now.
	Ready() bool
	// SendPDU sends one SMS-SUBMIT TPDU and returns its TP-MR.
	SendPDU(ctx context.Context, tpdu []byte) (int, error)
	// Received delivers SMS-DELIVERs and status reports.
	Received() <-chan *Received
	// Events delivers life-cycle events.
	Events() <-chan Event
	// Close releases the member.
	Close() error
}

// Receipt describes a send that the modem accepted.
type Receipt struct {
	From     string        // MSISDN of the SIM that sent it
	MR       int           // TP-Message-Reference, to match the status report
	Sent     time.Time     // when +CMGS returned
	Took     time.Duration // from Send call to +CMGS result, queueing included
	Attempts int           // modems tried
}

// PoolOption configures a Pool. An option given a value out of its range
// makes NewPool fail with an error wrapping ErrInvalidOption.
type PoolOption func(*Pool) error

// WithPoolLogger sets the pool's logger (default: none, a discard logger).
func WithPoolLogger(l *slog.Logger) PoolOption {
	return func(p *Pool) error { p.log = l; return nil }
}

// WithPoolMetrics sets the metrics hook (queue lengths "pool-inflight").
func WithPoolMetrics(m Metrics) PoolOption {
	return func(p *Pool) error { p.metrics = m; return nil }
}

// WithMaxQueue bounds the sends waiting for or running on one member, at
// least 1 (default 256). When every allowed member is at the bound, Send
// fails with an error wrapping ErrNoModem, which is retryable.
func WithMaxQueue(n int) PoolOption {
	return func(p *Pool) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxQueue(%d): at least 1", ErrInvalidOption, n)
		}
		p.maxQueue = n
		return nil
	}
}

// WithPoolBuffers sets the sizes of the pool's received and event
// channels, each at least 1 (defaults 256 and 256).
func WithPoolBuffers(received, events int) PoolOption {
	return func(p *Pool) error {
		if received < 1 || events < 1 {
			return fmt.Errorf("%w: WithPoolBuffers(%d, %d): each at least 1", ErrInvalidOption, received, events)
		}
		p.inboxSize, p.eventsSize = received, events
		return nil
	}
}

// MemberOption configures one member of a Pool. An option given a value
// out of its range makes Pool.Add fail with an error wrapping
// ErrInvalidOption.
type MemberOption func(*member) error

// WithRate limits the member to perSecond sends with bursts of burst, at
// least 1 (a token bucket); perSecond <= 0 means no limit. Real modems
// manage about one +CMGS every 2-5 s, and operators throttle SIMs that go
// faster.
func WithRate(perSecond float64, burst int) MemberOption {
	return func(m *member) error {
		if burst < 1 {
			return fmt.Errorf("%w: WithRate burst %d: at least 1", ErrInvalidOption, burst)
		}
		if perSecond > 0 {
			m.interval = time.Duration(float64(time.Second) / perSecond)
		}
		m.burst = burst
		return nil
	}
}

type member struct {
	dev      Member
	msisdn   string
	interval time.Duration
	burst    int

	sends *rate.Limiter // nil: no rate limit (interval <= 0)

	inflight atomic.Int32
	sent     atomic.Uint64
	failed   atomic.Uint64
	stop     chan struct{}
	seq      int
}

// reserve takes a token and returns how long to wait before using it.
func (m *member) reserve(now time.Time) time.Duration {
	if m.sends == nil {
		return 0
	}
	return m.sends.ReserveN(now, 1).DelayFrom(now)
}

// backlog estimates how long a new send would wait for the rate limit.
func (m *member) backlog(now time.Time) time.Duration {
	if m.sends == nil {
		return 0
	}
	if t := m.sends.TokensAt(now); t < 1 {
		return time.Duration((1 - t) * float64(m.interval))
	}
	return 0
}

// MemberStatus is a snapshot of one pool member.
type MemberStatus struct {
	MSISDN   string
	Ready    bool
	InFlight int
	Sent     uint64
	Failed   uint64
}

// Pool sends TPDUs through several modems, each owning one SIM, and merges
// what they receive. A send names the SIMs it may leave from (a device
// accepts SMS only from the number it was provisioned with); among those
// the pool picks a ready one with the least work queued, honouring each
// member's rate limit, and fails over to another allowed SIM on a
// retryable error. The pool owns its members: Close closes them.
//
// The zero Pool is not usable: use NewPool. Add and Send fail with
// ErrNotCreated; it has no members and Close does nothing.
type Pool struct {
	log        *slog.Logger
	metrics    Metrics
	maxQueue   int
	inboxSize  int
	eventsSize int

	mu      sync.RWMutex
	members map[string]*member
	order   []string
	rr      atomic.Uint64
	closed  bool

	inbox   chan *Received
	events  chan Event
	dropped atomic.Uint64
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewPool returns an empty pool.
func NewPool(opts ...PoolOption) (*Pool, error) {
	p := &Pool{log: slog.New(slog.DiscardHandler), metrics: nopMetrics{}, maxQueue: 256, inboxSize: 256, eventsSize: 256,
		members: make(map[string]*member)}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, fmt.Errorf("modem: NewPool: %w", err)
		}
	}
	p.done = make(chan struct{}) // last: a Pool refused above stays a zero one
	p.inbox = make(chan *Received, p.inboxSize)
	p.events = make(chan Event, p.eventsSize)
	return p, nil
}

// Add puts a modem in the pool under its MSISDN, which must be known and
// unique.
func (p *Pool) Add(dev Member, opts ...MemberOption) error {
	if p.done == nil { // set once by NewPool
		return ErrNotCreated
	}
	if dev == nil {
		return fmt.Errorf("%w: Pool.Add of a nil Member", ErrInvalidOption)
	}
	msisdn := dev.MSISDN()
	if msisdn == "" {
		return errors.New("modem: pool member without MSISDN (set Config.MSISDN)")
	}
	m := &member{dev: dev, msisdn: msisdn, burst: 1, stop: make(chan struct{})}
	for _, o := range opts {
		if err := o(m); err != nil {
			return fmt.Errorf("modem: Pool.Add %s: %w", msisdn, err)
		}
	}
	if m.interval > 0 {
		m.sends = rate.NewLimiter(rate.Every(m.interval), m.burst)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, dup := p.members[msisdn]; dup {
		return fmt.Errorf("modem: pool already has %s", msisdn)
	}
	m.seq = len(p.order)
	p.members[msisdn] = m
	p.order = append(p.order, msisdn)
	p.wg.Add(1)
	go p.forward(m)
	return nil
}

// Remove takes a member out of the pool and closes it.
func (p *Pool) Remove(msisdn string) error {
	p.mu.Lock()
	m, ok := p.members[msisdn]
	if ok {
		delete(p.members, msisdn)
		for i, k := range p.order {
			if k == msisdn {
				p.order = append(p.order[:i:i], p.order[i+1:]...)
				break
			}
		}
		close(m.stop)
	}
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownSIM, msisdn)
	}
	return m.dev.Close()
}

// forward merges one member's received messages and events into the pool.
func (p *Pool) forward(m *member) {
	defer p.wg.Done()
	rx, ev := m.dev.Received(), m.dev.Events()
	for {
		select {
		case <-p.done:
			return
		case <-m.stop:
			return
		case r, ok := <-rx:
			if !ok {
				rx = nil
				continue
			}
			select {
			case p.inbox <- r:
			case <-p.done:
				return // not acknowledged: stays in the modem or is redelivered
			case <-m.stop:
				return
			}
		case e, ok := <-ev:
			if !ok {
				ev = nil
				continue
			}
			select {
			case p.events <- e:
			default:
				p.dropped.Add(1)
			}
		}
	}
}

// Received returns the merged channel of everything the members received.
func (p *Pool) Received() <-chan *Received { return p.inbox }

// Events returns the merged, bounded event channel.
func (p *Pool) Events() <-chan Event { return p.events }

// DroppedEvents counts events lost because the event channel was full.
func (p *Pool) DroppedEvents() uint64 { return p.dropped.Load() }

// Status returns a snapshot of every member, in the order they were added.
func (p *Pool) Status() []MemberStatus {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]MemberStatus, 0, len(p.order))
	for _, k := range p.order {
		m := p.members[k]
		out = append(out, MemberStatus{MSISDN: k, Ready: m.dev.Ready(), InFlight: int(m.inflight.Load()),
			Sent: m.sent.Load(), Failed: m.failed.Load()})
	}
	return out
}

// SendTPDU sends tpdu from the SIM fromMSISDN, or from any SIM in the pool
// when fromMSISDN is empty. It is the method the SMS bearer uses.
func (p *Pool) SendTPDU(ctx context.Context, fromMSISDN string, tpdu []byte) (Receipt, error) {
	if fromMSISDN == "" {
		return p.Send(ctx, nil, tpdu)
	}
	return p.Send(ctx, []string{fromMSISDN}, tpdu)
}

// Send sends tpdu from one of the allowed SIMs (nil: any). It waits for
// the member's rate limit and queue, honours ctx, and tries another allowed
// member when one fails with a retryable error. Errors: ErrUnknownSIM when
// an allowed SIM is not in the pool, ErrNoModem (retryable) when none is
// ready, or the last member's error.
func (p *Pool) Send(ctx context.Context, allowed []string, tpdu []byte) (Receipt, error) {
	start := time.Now()
	tried := map[*member]bool{}
	var lastErr error
	for attempt := 1; ; attempt++ {
		m, err := p.pick(allowed, tried)
		if err != nil {
			if lastErr != nil {
				return Receipt{Attempts: attempt - 1}, lastErr
			}
			return Receipt{}, err
		}
		tried[m] = true
		mr, err := p.sendOn(ctx, m, tpdu)
		if err == nil {
			now := time.Now()
			return Receipt{From: m.msisdn, MR: mr, Sent: now, Took: now.Sub(start), Attempts: attempt}, nil
		}
		lastErr = fmt.Errorf("modem: send via %s: %w", m.msisdn, err)
		if !Retryable(err) || ctx.Err() != nil {
			return Receipt{Attempts: attempt}, lastErr
		}
	}
}

func (p *Pool) sendOn(ctx context.Context, m *member, tpdu []byte) (int, error) {
	n := m.inflight.Add(1)
	p.metrics.Queue(m.msisdn, "pool-inflight", int(n))
	defer func() { p.metrics.Queue(m.msisdn, "pool-inflight", int(m.inflight.Add(-1))) }()
	if wait := m.reserve(time.Now()); wait > 0 {
		if err := backoff.Wait(ctx, wait); err != nil {
			return 0, err
		}
	}
	mr, err := m.dev.SendPDU(ctx, tpdu)
	if err != nil {
		m.failed.Add(1)
		return 0, err
	}
	m.sent.Add(1)
	return mr, nil
}

// pick chooses the ready allowed member with the least queued work
// (sends in flight plus rate-limit backlog); ties go round-robin.
func (p *Pool) pick(allowed []string, tried map[*member]bool) (*member, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.done == nil {
		return nil, ErrNotCreated
	}
	if p.closed {
		return nil, ErrClosed
	}
	var cands []*member
	if allowed == nil {
		for _, k := range p.order {
			cands = append(cands, p.members[k])
		}
	} else {
		for _, k := range allowed {
			m, ok := p.members[k]
			if !ok {
				if len(allowed) == 1 {
					return nil, fmt.Errorf("%w: %s", ErrUnknownSIM, k)
				}
				continue
			}
			cands = append(cands, m)
		}
		if len(cands) == 0 {
			return nil, fmt.Errorf("%w: none of %v", ErrUnknownSIM, allowed)
		}
	}
	now := time.Now()
	var best *member
	var bestCost time.Duration
	full, notReady := 0, 0
	start := int(p.rr.Add(1))
	for i := range cands {
		m := cands[(start+i)%len(cands)]
		if tried[m] {
			continue
		}
		if !m.dev.Ready() {
			notReady++
			continue
		}
		q := int(m.inflight.Load())
		if q >= p.maxQueue {
			full++
			continue
		}
		// Cost: queued sends, each worth one rate interval (or 1 ms without
		// a limit), plus the backlog of the bucket.
		unit := m.interval
		if unit <= 0 {
			unit = time.Millisecond
		}
		cost := time.Duration(q)*unit + m.backlog(now)
		if best == nil || cost < bestCost {
			best, bestCost = m, cost
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: %d allowed, %d not ready, %d at queue limit", ErrNoModem, len(cands), notReady, full)
	}
	return best, nil
}

// Close closes every member and stops the pool's goroutines.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed || p.done == nil {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	ms := make([]*member, 0, len(p.members))
	for _, m := range p.members {
		ms = append(ms, m)
	}
	p.mu.Unlock()
	var errs []error
	for _, m := range ms {
		if err := m.dev.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.wg.Wait()
	return errors.Join(errs...)
}

var _ Member = (*Modem)(nil)
