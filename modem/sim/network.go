package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Errors returned by Network methods. A modem turns them into the +CMS ERROR
// codes a real SMSC rejection produces.
var (
	ErrClosed     = errors.New("sim: network closed")
	ErrCongestion = errors.New("sim: SMSC store full (congestion)")
	ErrExists     = errors.New("sim: MSISDN already in use")
	ErrNoMSISDN   = errors.New("sim: invalid MSISDN")
	// ErrNotCreated is returned by a zero Network or Modem (not made by
	// NewNetwork or Network.AddModem).
	ErrNotCreated = errors.New("sim: zero value, not made by NewNetwork or Network.AddModem")
	// ErrInvalidOption is wrapped by the error of NewNetwork and AddModem
	// for an option out of its range (named in the error).
	ErrInvalidOption = errors.New("sim: invalid option")
)

// Latency draws one SMSC transit delay from r. Fixed, Uniform and
// Exponential build common distributions.
type Latency func(r *rand.Rand) time.Duration

// Fixed returns a constant latency.
func Fixed(d time.Duration) Latency { return func(*rand.Rand) time.Duration { return d } }

// Uniform returns a latency uniformly distributed in [lo, hi].
func Uniform(lo, hi time.Duration) Latency {
	if hi < lo {
		lo, hi = hi, lo
	}
	return func(r *rand.Rand) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }
}

// Exponential returns min plus an exponentially distributed delay of mean
// mean, capped at min + 20 × mean: the long tail real SMSCs show.
func Exponential(min, mean time.Duration) Latency {
	return func(r *rand.Rand) time.Duration {
		x := r.ExpFloat64() * float64(mean)
		x = math.Min(x, 20*float64(mean))
		return min + time.Duration(x)
	}
}

// Conditions are the network's fault and delay settings. They may be
// changed at any time with Network.SetConditions.
type Conditions struct {
	// Latency draws the SMSC transit time of each message (nil: zero).
	Latency Latency
	// Loss is the probability that a submitted message is silently lost.
	Loss float64
	// Duplicate is the probability that a message is delivered twice.
	Duplicate float64
	// Reorder is the probability that a message is held back an extra
	// ReorderDelay, so that later ones overtake it.
	Reorder      float64
	ReorderDelay time.Duration
}

// NetworkStats are the network's counters.
type NetworkStats struct {
	Submitted     uint64 // SMS-SUBMITs accepted by the SMSC
	Segments      uint64 // of which carry a concatenation IE
	Delivered     uint64 // SMS-DELIVERs accepted by a receiving modem
	Lost          uint64 // dropped by the Loss setting
	Duplicated    uint64 // delivered an extra copy by the Duplicate setting
	Reordered     uint64 // delayed by the Reorder setting
	Retries       uint64 // delivery attempts refused by a subscriber (unplugged, full, no ack, hung)
	Expired       uint64 // dropped at the end of the validity period
	Failed        uint64 // to numbers that do not exist (WithRejectUnknown)
	Rejected      uint64 // SUBMITs refused (bad PDU, store full)
	StatusReports uint64 // SMS-STATUS-REPORTs accepted by the originator's modem
	Stored        int    // messages held by the SMSC now
	Scheduled     int    // timer events pending now (deliveries, retries, expiries)
}

// NetworkOption configures NewNetwork. An option given a value out of its
// range makes NewNetwork fail with an error wrapping ErrInvalidOption.
type NetworkOption func(*Network) error

// WithSeed seeds the network's random generator (default 1).
func WithSeed(seed uint64) NetworkOption { return func(n *Network) error { n.seed = seed; return nil } }

// WithClock sets the clock (default: the wall clock); nil is refused.
func WithClock(c Clock) NetworkOption {
	return func(n *Network) error {
		if c == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		n.clock = c
		return nil
	}
}

// WithConditions sets the initial delay and fault settings: each
// probability in [0, 1], no negative ReorderDelay.
func WithConditions(c Conditions) NetworkOption {
	return func(n *Network) error {
		if err := c.check(); err != nil {
			return err
		}
		n.cond = c
		return nil
	}
}

// check refuses probabilities outside [0, 1] and a negative ReorderDelay.
func (c Conditions) check() error {
	var f cfgcheck.Fields
	cfgcheck.Probability(&f, "Loss", c.Loss)
	cfgcheck.Probability(&f, "Duplicate", c.Duplicate)
	cfgcheck.Probability(&f, "Reorder", c.Reorder)
	cfgcheck.NonNegative(&f, "ReorderDelay", c.ReorderDelay)
	return f.Err(ErrInvalidOption, "Conditions")
}

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(l *slog.Logger) NetworkOption {
	return func(n *Network) error { n.log = l; return nil }
}

// WithSMSC sets the SMSC address shown in PDUs and by +CSCA
// (default "+10000000000"); an address without digits is refused.
func WithSMSC(addr string) NetworkOption {
	return func(n *Network) error {
		if n.smsc = NormalizeMSISDN(addr); n.smsc == "" {
			return fmt.Errorf("%w: WithSMSC(%q): no digits", ErrInvalidOption, addr)
		}
		return nil
	}
}

// WithValidity sets how long the SMSC keeps an undeliverable message
// (default 24 h) and the interval between retries to a subscriber that
// refused a message (default 30 s); both must be positive.
func WithValidity(validity, retry time.Duration) NetworkOption {
	return func(n *Network) error {
		if validity <= 0 || retry <= 0 {
			return fmt.Errorf("%w: WithValidity(%v, %v): both positive", ErrInvalidOption, validity, retry)
		}
		n.validity, n.retry = validity, retry
		return nil
	}
}

// WithMaxStored bounds the messages the SMSC holds, at least 1 (default
// 100,000); beyond it SUBMITs fail with ErrCongestion (+CMS ERROR: 42).
func WithMaxStored(max int) NetworkOption {
	return func(n *Network) error {
		n.maxStored = max
		return cfgcheck.AtLeast1(ErrInvalidOption, "WithMaxStored", max)
	}
}

// WithRejectUnknown makes messages to numbers that are neither a modem's nor
// provisioned (Network.Provision) fail at once, with a "not obtainable"
// status report, instead of waiting for the number to appear.
func WithRejectUnknown() NetworkOption {
	return func(n *Network) error { n.rejectUnknown = true; return nil }
}

// Network is a simulated SMS network: an SMSC that stores and forwards
// short messages between the MSISDNs of its modems.
//
// The zero Network is not usable: use NewNetwork. AddModem and AddEndpoint
// fail with ErrNotCreated and Provision does nothing.
type Network struct {
	clock         Clock
	log           *slog.Logger
	seed          uint64
	smsc          string
	validity      time.Duration
	retry         time.Duration
	maxStored     int
	rejectUnknown bool

	fireMu  sync.Mutex // serialises timer batches
	mu      sync.Mutex
	rng     *rand.Rand
	cond    Conditions
	subs    map[string]subscriber
	known   map[string]bool
	waiting map[string]map[*mtMessage]struct{}
	events  eventHeap
	seq     uint64
	timer   Timer
	timerAt time.Time
	stats   NetworkStats
	closed  bool
}

// subscriber is the receiving side of a number: a Modem or an Endpoint.
type subscriber interface {
	// offer hands m over; false means "not now" (detached, hung, busy).
	// When it returns true, m.done is called exactly once later.
	offer(m *mtMessage) bool
}

type msgKind int

const (
	kindDeliver msgKind = iota
	kindStatusReport
)

// mtMessage is a mobile-terminated message in the SMSC.
type mtMessage struct {
	kind    msgKind
	tpdu    []byte
	to      string
	from    string
	sub     *submit
	scts    time.Time
	expires time.Time
	dup     bool
	waiting bool
	expiry  *event // the validity-period event, removed once final
	final   bool
	// done reports the outcome of an accepted offer.
	done func(ok bool)
}

// NewNetwork returns a network with no modems, or an error wrapping
// ErrInvalidOption when an option is out of its range.
func NewNetwork(opts ...NetworkOption) (*Network, error) {
	n := &Network{
		clock: realClock{}, seed: 1, smsc: "+10000000000",
		validity: 24 * time.Hour, retry: 30 * time.Second, maxStored: 100000,
		subs: map[string]subscriber{}, known: map[string]bool{},
		waiting: map[string]map[*mtMessage]struct{}{},
	}
	for _, o := range opts {
		if err := o(n); err != nil {
			return nil, err
		}
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.rng = rand.New(rand.NewPCG(n.seed, n.seed^0x9e3779b97f4a7c15))
	return n, nil
}

// SMSC returns the SMSC address.
func (n *Network) SMSC() string { return n.smsc }

// Clock returns the network's clock.
func (n *Network) Clock() Clock { return n.clock }

// SetConditions replaces the delay and fault settings.
func (n *Network) SetConditions(c Conditions) {
	n.mu.Lock()
	n.cond = c
	n.mu.Unlock()
}

// Provision declares that msisdn exists even though no modem uses it yet;
// messages to it wait in the SMSC until a modem with that number appears or
// their validity ends.
func (n *Network) Provision(msisdn string) {
	n.mu.Lock()
	if n.known == nil { // a zero Network
		n.mu.Unlock()
		return
	}
	n.known[NormalizeMSISDN(msisdn)] = true
	n.mu.Unlock()
}

// Stats returns a snapshot of the network counters.
func (n *Network) Stats() NetworkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.Scheduled = len(n.events)
	return s
}

// Close stops the network: pending deliveries are dropped and modems are
// unplugged. It is safe to call more than once.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	n.events = nil
	var modems []*Modem
	for _, s := range n.subs {
		if m, ok := s.(*Modem); ok {
			modems = append(modems, m)
		}
	}
	n.mu.Unlock()
	for _, m := range modems {
		m.Unplug()
	}
	return nil
}

func (n *Network) register(msisdn string, s subscriber) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		return ErrNotCreated
	}
	if n.closed {
		return ErrClosed
	}
	if msisdn == "" {
		return ErrNoMSISDN
	}
	if _, ok := n.subs[msisdn]; ok {
		return fmt.Errorf("%w: %s", ErrExists, msisdn)
	}
	n.subs[msisdn] = s
	n.known[msisdn] = true
	return nil
}

// submit is called by a modem (or an Endpoint) that sent TPDU b from
// number from. It returns the SMSC's refusal, if any.
func (n *Network) submit(from string, b []byte) error {
	_, err := n.submitInfo(from, b)
	return err
}

// submitInfo is submit that also reports whether the TPDU is a segment of
// a concatenated message.
func (n *Network) submitInfo(from string, b []byte) (segment bool, err error) {
	s, err := decodeSubmit(b)
	if err != nil {
		n.mu.Lock()
		n.stats.Rejected++
		n.mu.Unlock()
		return false, err
	}
	return s.conc, n.accept(from, s)
}

func (n *Network) accept(from string, s *submit) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if n.stats.Stored >= n.maxStored {
		n.stats.Rejected++
		return ErrCongestion
	}
	now := n.clock.Now()
	n.stats.Submitted++
	if s.conc {
		n.stats.Segments++
	}
	if n.rejectUnknown && !n.known[s.to] {
		n.stats.Failed++
		if s.srr {
			n.statusReportLocked(s, from, now, StatusNotObtainable)
		}
		return nil
	}
	if n.rng.Float64() < n.cond.Loss {
		n.stats.Lost++
		n.log.Debug("sim: message lost", "from", from, "to", s.to)
		return nil
	}
	copies := 1
	if n.rng.Float64() < n.cond.Duplicate {
		copies = 2
		n.stats.Duplicated++
	}
	for i := 0; i < copies; i++ {
		d, err := deliverFor(s, from, now)
		if err != nil {
			n.stats.Rejected++
			return err
		}
		m := &mtMessage{kind: kindDeliver, tpdu: d, to: s.to, from: from, sub: s,
			scts: now, expires: now.Add(n.validity), dup: i > 0}
		n.stats.Stored++
		n.scheduleLocked(now.Add(n.transitLocked()), func() { n.attempt(m) })
		m.expiry = n.scheduleLocked(m.expires, func() { n.expire(m) })
	}
	return nil
}

func (n *Network) transitLocked() time.Duration {
	var d time.Duration
	if n.cond.Latency != nil {
		d = max(n.cond.Latency(n.rng), 0)
	}
	if n.cond.Reorder > 0 && n.rng.Float64() < n.cond.Reorder {
		n.stats.Reordered++
		d += n.cond.ReorderDelay
	}
	return d
}

// statusReportLocked queues an SMS-STATUS-REPORT about s for its originator.
func (n *Network) statusReportLocked(s *submit, originator string, dt time.Time, st byte) {
	now := n.clock.Now()
	b, err := statusReportFor(s, now, dt, st)
	if err != nil {
		n.log.Error("sim: status report", "err", err)
		return
	}
	m := &mtMessage{kind: kindStatusReport, tpdu: b, to: originator, scts: now,
		expires: now.Add(n.validity)}
	n.stats.Stored++
	n.scheduleLocked(now.Add(n.transitLocked()), func() { n.attempt(m) })
	m.expiry = n.scheduleLocked(m.expires, func() { n.expire(m) })
}

// attempt offers m to its destination, or parks it until the destination
// attaches, frees memory or the retry interval ends.
func (n *Network) attempt(m *mtMessage) {
	n.mu.Lock()
	if n.closed || m.final {
		n.mu.Unlock()
		return
	}
	if m.waiting {
		n.unparkLocked(m)
	}
	sub := n.subs[m.to]
	m.done = func(ok bool) { n.result(m, ok) }
	n.mu.Unlock()
	if sub != nil && sub.offer(m) {
		return
	}
	n.mu.Lock()
	if !m.final && !n.closed {
		n.parkLocked(m)
		if sub != nil {
			// A subscriber that exists but cannot take it now (unplugged,
			// hung, busy): the SMSC tries again after the retry interval,
			// or as soon as the subscriber says it is ready.
			n.stats.Retries++
			n.scheduleRetryLocked(m)
		}
	}
	n.mu.Unlock()
}

func (n *Network) scheduleRetryLocked(m *mtMessage) {
	n.scheduleLocked(n.clock.Now().Add(n.retry), func() {
		n.mu.Lock()
		w := m.waiting
		n.mu.Unlock()
		if w {
			n.attempt(m)
		}
	})
}

func (n *Network) parkLocked(m *mtMessage) {
	w := n.waiting[m.to]
	if w == nil {
		w = map[*mtMessage]struct{}{}
		n.waiting[m.to] = w
	}
	w[m] = struct{}{}
	m.waiting = true
}

func (n *Network) unparkLocked(m *mtMessage) {
	if w := n.waiting[m.to]; w != nil {
		delete(w, m)
		if len(w) == 0 {
			delete(n.waiting, m.to)
		}
	}
	m.waiting = false
}

// result records the outcome of an offer a subscriber accepted.
func (n *Network) result(m *mtMessage, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.final || n.closed {
		return
	}
	now := n.clock.Now()
	if !ok {
		n.stats.Retries++
		n.parkLocked(m)
		n.scheduleRetryLocked(m)
		return
	}
	m.final = true
	n.cancelLocked(m.expiry)
	n.stats.Stored--
	switch m.kind {
	case kindDeliver:
		n.stats.Delivered++
		if m.sub.srr && !m.dup {
			n.statusReportLocked(m.sub, m.from, now, StatusReceived)
		}
	case kindStatusReport:
		n.stats.StatusReports++
	}
}

// expire ends m's validity period if it is still undelivered.
func (n *Network) expire(m *mtMessage) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.final || n.closed {
		return
	}
	if m.waiting {
		n.unparkLocked(m)
	}
	m.final = true
	n.stats.Stored--
	n.stats.Expired++
	if m.kind == kindDeliver && m.sub.srr && !m.dup {
		n.statusReportLocked(m.sub, m.from, n.clock.Now(), StatusValidityExpired)
	}
}

// ready is called when msisdn can take messages again (attached, memory
// freed): everything parked for it is retried now.
func (n *Network) ready(msisdn string) {
	n.mu.Lock()
	w := n.waiting[msisdn]
	var ms []*mtMessage
	for m := range w {
		ms = append(ms, m)
	}
	now := n.clock.Now()
	for _, m := range ms {
		n.unparkLocked(m)
	}
	// keep arrival order: SMSC time, then creation order is lost in a
	// map, so sort by SCTS.
	sortByTime(ms)
	for _, m := range ms {
		n.scheduleLocked(now, func() { n.attempt(m) })
	}
	n.mu.Unlock()
}

func sortByTime(ms []*mtMessage) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].scts.Before(ms[j-1].scts); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// cancelLocked removes a scheduled event that has not run.
func (n *Network) cancelLocked(e *event) {
	if e != nil && e.index >= 0 && e.index < len(n.events) && n.events[e.index] == e {
		heap.Remove(&n.events, e.index)
	}
}

// scheduleLocked runs f at time at on the network's single timer.
func (n *Network) scheduleLocked(at time.Time, f func()) *event {
	n.seq++
	e := &event{at: at, seq: n.seq, f: f}
	heap.Push(&n.events, e)
	if n.timer == nil || at.Before(n.timerAt) {
		if n.timer != nil {
			n.timer.Stop()
		}
		n.timerAt = at
		n.timer = n.clock.AfterFunc(at.Sub(n.clock.Now()), n.fire)
	}
	return e
}

func (n *Network) fire() {
	// One batch at a time: a timer armed while a batch runs must not
	// overtake it, so that equal latencies keep submission order.
	n.fireMu.Lock()
	defer n.fireMu.Unlock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	now := n.clock.Now()
	var due []func()
	for len(n.events) > 0 && !n.events[0].at.After(now) {
		due = append(due, heap.Pop(&n.events).(*event).f)
	}
	n.timer = nil
	if len(n.events) > 0 {
		n.timerAt = n.events[0].at
		n.timer = n.clock.AfterFunc(n.timerAt.Sub(now), n.fire)
	}
	n.mu.Unlock()
	for _, f := range due {
		f()
	}
}

type event struct {
	at    time.Time
	seq   uint64
	f     func()
	index int // in the heap; -1 once popped or removed
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h eventHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *eventHeap) Push(x any) {
	e := x.(*event)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
