package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Executor runs one request on an awake device and returns its answer.
// The LwM2M server implements it on its bearer.Endpoint. It should use
// req.Attempt (Token, MessageID) for the CoAP request, so that a re-send of
// the same attempt is deduplicated by the device. An error wrapping
// ErrDeviceAsleep, a net.Error timeout or context.DeadlineExceeded (while
// the Manager's own context is live) means "no answer, the device is
// asleep": the request goes back to the head of the queue.
type Executor interface {
	Execute(ctx context.Context, ep string, req *Request) (*Result, error)
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, ep string, req *Request) (*Result, error)

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, ep string, req *Request) (*Result, error) {
	return f(ctx, ep, req)
}

// Limits bound the queues. Zero fields take the defaults.
type Limits struct {
	PerDevice      int   // live requests per device (default 64)
	PerDeviceBytes int64 // their encoded bytes (default 256 KiB)
	Total          int   // live requests in all (default 1,000,000)
	TotalBytes     int64 // (default 512 MiB)
}

// WakePolicy is the SMS wake-up schedule: after each wake-up the device has
// Timeout × Factor^(n-1) (at most MaxTimeout) to show up; after MaxWakes
// wake-ups without it, its queued requests fail with ErrNotWoken. Two
// wake-ups of one device are at least MinInterval apart.
type WakePolicy struct {
	Timeout    time.Duration // default 2 min
	Factor     float64       // default 2; at least 1
	MaxTimeout time.Duration // default 30 min
	// MaxWakes is the number of wake-ups before the requests fail: nil
	// means DefaultMaxWakes; new(0) means none at all (no wake-up SMS, as
	// with a nil Waker: requests wait for the device or expire); negative
	// is refused by New. A count of 0 is never read as "the default".
	MaxWakes    *int
	MinInterval time.Duration // default 30 s
	// CallTimeout bounds one Waker.Wake call (default 30 s).
	CallTimeout time.Duration
}

// DefaultMaxWakes is WakePolicy.MaxWakes when it is nil.
const DefaultMaxWakes = 4

// Config configures a Manager. Store and Executor are required. A zero
// limit or duration takes its default; a negative one (or a Wake.Factor
// between 0 and 1) makes New fail with an error wrapping
// ErrInvalidOption.
type Config struct {
	Store    Store
	Executor Executor
	// Waker sends SMS wake-ups; nil disables them (requests wait for the
	// device or expire).
	Waker  Waker
	Limits Limits
	Wake   WakePolicy
	// DefaultExpiry applies to requests without Expires (default 24 h).
	DefaultExpiry time.Duration
	// DefaultWindow is the awake window of Seen without one: MAX_TRANSMIT_WAIT
	// of CoAP over UDP with RFC 7252 defaults (93 s) unless set.
	DefaultWindow time.Duration
	// MinWindow is the least awake window learned for a device (default
	// 1 s). The Manager learns each device's window from its traffic: a
	// request first sent t after the device's last message and left
	// unanswered (while it sent nothing else) shows the device listens
	// less than t, and the window becomes t (never below MinWindow); an
	// answered one sent t after shows it listens at least t. The learned
	// window never exceeds the configured one (DeviceConfig.Window, the
	// window given to Seen, or DefaultWindow). See Manager.Window.
	MinWindow time.Duration
	// DedupWindow is how long after an attempt was first sent a re-send of
	// it is still answered from the device's CoAP duplicate cache:
	// EXCHANGE_LIFETIME (247 s for UDP defaults) unless set. Beyond it, a
	// request whose outcome is unknown is re-sent as a new attempt only if
	// its kind is idempotent; otherwise it fails with ErrUnknownOutcome.
	DedupWindow time.Duration
	// Concurrency is how many devices are drained or woken at once
	// (default 16); each device has at most one request outstanding.
	Concurrency int
	// ExecTimeout bounds one Executor.Execute call (default 5 min).
	ExecTimeout time.Duration
	// Retention keeps final records retrievable by Get/Wait (default 24 h);
	// MaxResults bounds them (default 100,000; the oldest go first).
	Retention  time.Duration
	MaxResults int
	// MaxDevices bounds the device table (default 1,000,000).
	MaxDevices int
	// Holds, when set, says whether this Manager may wake the device: on a
	// Store shared by several nodes (cluster mode) every node's Manager
	// knows every request, but only the node holding the device's session
	// wakes it; the others wait until the device shows up on them (Seen).
	// It is called with the Manager's lock held and must not call back.
	// Nil: always. See shared.go for the rest of the cluster contract.
	Holds func(ep string) bool
	// LeaseRetry is how soon a request another node is sending is looked
	// at again (default 1 s; see ErrNotOwner).
	LeaseRetry time.Duration
	// OnEvent, if set, receives every event synchronously; it must not block.
	OnEvent func(Event)
	Metrics Metrics
	// Logger receives the manager's logs (default: none, a discard logger).
	Logger *slog.Logger
	Clock  Clock
}

func (c *Config) defaults() error {
	if c.Store == nil || c.Executor == nil {
		return fmt.Errorf("%w: Config.Store and Config.Executor are required", ErrInvalidOption)
	}
	// A zero field takes its default; a negative one is refused (it used
	// to take the default too).
	var bad cfgcheck.Fields
	setD := func(name string, d *time.Duration, v time.Duration) { cfgcheck.Default(&bad, name, d, v) }
	setI := func(name string, i *int, v int) { cfgcheck.Default(&bad, name, i, v) }
	udp := bearer.UDPParams("udp")
	setI("Limits.PerDevice", &c.Limits.PerDevice, 64)
	cfgcheck.Default(&bad, "Limits.PerDeviceBytes", &c.Limits.PerDeviceBytes, 256<<10)
	setI("Limits.Total", &c.Limits.Total, 1_000_000)
	cfgcheck.Default(&bad, "Limits.TotalBytes", &c.Limits.TotalBytes, 512<<20)
	setD("Wake.Timeout", &c.Wake.Timeout, 2*time.Minute)
	switch {
	case c.Wake.Factor == 0:
		c.Wake.Factor = 2
	case c.Wake.Factor < 1:
		bad.Badf("Wake.Factor %v is below 1", c.Wake.Factor)
	}
	setD("Wake.MaxTimeout", &c.Wake.MaxTimeout, 30*time.Minute)
	switch {
	case c.Wake.MaxWakes == nil:
		c.Wake.MaxWakes = new(DefaultMaxWakes)
	case *c.Wake.MaxWakes < 0:
		bad.Badf("Wake.MaxWakes %d is negative (new(0): no wake-ups)", *c.Wake.MaxWakes)
	default:
		c.Wake.MaxWakes = new(*c.Wake.MaxWakes) // the Manager's own copy
	}
	if *c.Wake.MaxWakes == 0 {
		c.Waker = nil // no wake-up at all
	}
	setD("Wake.MinInterval", &c.Wake.MinInterval, 30*time.Second)
	setD("Wake.CallTimeout", &c.Wake.CallTimeout, 30*time.Second)
	setD("DefaultExpiry", &c.DefaultExpiry, 24*time.Hour)
	setD("DefaultWindow", &c.DefaultWindow, udp.MaxTransmitWait())
	setD("MinWindow", &c.MinWindow, time.Second)
	setD("DedupWindow", &c.DedupWindow, udp.ExchangeLifetime())
	setI("Concurrency", &c.Concurrency, 16)
	setD("ExecTimeout", &c.ExecTimeout, 5*time.Minute)
	setD("LeaseRetry", &c.LeaseRetry, time.Second)
	setD("Retention", &c.Retention, 24*time.Hour)
	setI("MaxResults", &c.MaxResults, 100_000)
	setI("MaxDevices", &c.MaxDevices, 1_000_000)
	if err := bad.Err(ErrInvalidOption, "Config"); err != nil {
		return err
	}
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return nil
}

// DeviceConfig is the queue-mode configuration of one device.
type DeviceConfig struct {
	// Window is its awake window after Seen; 0 uses Config.DefaultWindow.
	// SeenParams overrides it with the bearer's MAX_TRANSMIT_WAIT.
	Window time.Duration
	// Wake, if wakeable, lets the Manager send it SMS wake-ups.
	Wake *WakeTarget
	// DedupWindow overrides Config.DedupWindow for the device: the
	// EXCHANGE_LIFETIME of the bearer it is reached on (for the SMS
	// defaults, sms.DefaultParams().ExchangeLifetime()).
	DedupWindow time.Duration
}

type entry struct {
	id      uint64
	size    int32
	expires int64
}

type device struct {
	ep         string
	queue      []entry // live requests in id order, head first
	bytes      int64
	reserved   int   // Enqueues between the bound check and the store write
	awakeUntil int64 // Unix ns
	lastSeen   int64 // Unix ns of the last Seen
	// learned is the awake window learned from the device's traffic (0:
	// nothing learned yet); it caps the window of Seen (see MinWindow).
	learned time.Duration
	cfg     DeviceConfig
	busy    bool   // a worker holds it
	sending uint64 // id of the request being sent (0: none)
	seen    uint32 // Seen calls, to notice one during a wake-up or send
	ready   bool   // on the ready list
	// wake-up state since the device was last seen
	wakes       int
	waiting     bool  // a wake timer is pending
	wakeSending bool  // a Waker.Wake call is in progress
	wakeDue     int64 // when it fires
	lastWake    int64
	lastWakeErr error
}

func (d *device) idle() bool {
	return len(d.queue) == 0 && d.reserved == 0 && !d.busy && !d.ready && d.cfg == (DeviceConfig{})
}

type waiter struct {
	ch    chan struct{}
	n     int
	cause error
}

// maxCauses bounds the original errors kept for late Waits.
const maxCauses = 4096

type finished struct {
	id uint64
	at int64
}

// Manager is the queue-mode core: durable per-device queues, awake
// tracking, the drain (NSTART=1 per device, Config.Concurrency devices at
// once) and SMS wake-ups. New starts its goroutines; Close stops them.
//
// The zero Manager is not usable: use New. It behaves as a closed Manager
// whose calls fail with ErrNotCreated; Seen and the other calls without an
// error do nothing.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	clk  Clock
	met  Metrics
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu         sync.Mutex
	devices    map[string]*device
	total      int
	totalBytes int64
	readyList  []*device
	timers     timerHeap
	waiters    map[uint64]*waiter
	results    []finished // final records, oldest first
	subs       map[*Subscription]struct{}
	closed     bool
	// causes keeps the original errors of the latest failures for late
	// Waits (bounded FIFO, maxCauses).
	causes     map[uint64]error
	causeOrder []uint64

	readyC chan struct{}
	kickC  chan struct{}
}

// New opens a Manager on cfg.Store: it loads the stored records (live ones
// back into their device queues, in id order; final ones into the result
// index) and starts the timer loop and the drain workers.
func New(cfg Config) (*Manager, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	m := &Manager{
		cfg: cfg, log: cfg.Logger, clk: cfg.Clock, met: cfg.Metrics, ctx: ctx, stop: stop,
		devices: make(map[string]*device),
		waiters: make(map[uint64]*waiter),
		subs:    make(map[*Subscription]struct{}),
		causes:  make(map[uint64]error),
		readyC:  make(chan struct{}, 1),
		kickC:   make(chan struct{}, 1),
	}
	if err := m.load(); err != nil {
		stop()
		return nil, err
	}
	m.timers.push(timer{at: m.now() + int64(m.pruneEvery()), kind: timerPrune})
	m.wg.Add(1 + cfg.Concurrency)
	go m.timerLoop()
	for range cfg.Concurrency {
		go m.worker()
	}
	return m, nil
}

func (m *Manager) now() int64 { return m.clk.Now().UnixNano() }

func (m *Manager) pruneEvery() time.Duration {
	return min(max(m.cfg.Retention/10, time.Second), 5*time.Minute)
}

func (m *Manager) load() error {
	var live, sending int
	err := m.cfg.Store.ForEach(func(r *Record) error {
		if r.State.Final() {
			m.results = append(m.results, finished{id: r.ID, at: unixNano(r.Finished)})
			return nil
		}
		d := m.devices[r.Endpoint]
		if d == nil {
			d = &device{ep: r.Endpoint}
			m.devices[r.Endpoint] = d
		}
		size := int32(len(EncodeRecord(nil, r)))
		d.queue = append(d.queue, entry{id: r.ID, size: size, expires: unixNano(r.Expires)})
		d.bytes += int64(size)
		m.total++
		m.totalBytes += int64(size)
		m.timers.push(timer{at: unixNano(r.Expires), kind: timerExpire, id: r.ID, dev: d})
		live++
		if r.State == StateSending {
			sending++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: load: %w", err)
	}
	slices.SortStableFunc(m.results, func(a, b finished) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	m.gauges()
	if live > 0 || len(m.results) > 0 {
		m.log.Info("queue: loaded", "live", live, "in_flight_at_crash", sending, "results", len(m.results), "devices", len(m.devices))
	}
	return nil
}

// Close stops the workers and the timer loop and waits for them. A request
// being executed is interrupted; its record stays in "sending" and is
// resolved by the next Manager on the same store (see Manager). Waiters
// get ErrClosed. The Store is not closed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed || m.devices == nil {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.stop()
	m.wg.Wait()
	m.mu.Lock()
	for s := range m.subs {
		s.closeLocked()
	}
	m.mu.Unlock()
	return nil
}

// ---- enqueue, cancel, get, wait ----

// Enqueue validates req, checks the bounds, stores it durably and returns
// its id. Only then is it queued: it is sent at once if the device is
// awake, otherwise when the device shows up (Seen) or, for a wakeable
// device, after an SMS wake-up. Errors: ErrInvalidRequest, *FullError
// (ErrQueueFull), ErrTooManyDevices, ErrClosed, store errors.
func (m *Manager) Enqueue(ctx context.Context, req Request) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if m.devices == nil {
		return 0, ErrNotCreated
	}
	now := m.clk.Now()
	if req.Endpoint == "" || !req.Kind.Valid() {
		return 0, fmt.Errorf("%w: endpoint %q kind %v", ErrInvalidRequest, req.Endpoint, req.Kind)
	}
	if req.Expires.IsZero() {
		req.Expires = now.Add(m.cfg.DefaultExpiry)
	} else if !req.Expires.After(now) {
		return 0, fmt.Errorf("%w: expiry %v is past", ErrInvalidRequest, req.Expires)
	}
	req.Created = now
	req.ID, req.Attempt = 0, Attempt{}
	rec := &Record{Request: req, State: StateQueued}
	size := int32(len(EncodeRecord(nil, rec)) + 8) // +8: room for the id
	lim := m.cfg.Limits

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, ErrClosed
	}
	d, err := m.deviceLocked(req.Endpoint)
	if err != nil {
		m.mu.Unlock()
		return 0, err
	}
	var full *FullError
	switch {
	case len(d.queue)+d.reserved >= lim.PerDevice:
		full = &FullError{Endpoint: req.Endpoint, Scope: "device", What: "count", Limit: int64(lim.PerDevice)}
	case d.bytes+int64(size) > lim.PerDeviceBytes:
		full = &FullError{Endpoint: req.Endpoint, Scope: "device", What: "bytes", Limit: lim.PerDeviceBytes}
	case m.total >= lim.Total:
		full = &FullError{Endpoint: req.Endpoint, Scope: "total", What: "count", Limit: int64(lim.Total)}
	case m.totalBytes+int64(size) > lim.TotalBytes:
		full = &FullError{Endpoint: req.Endpoint, Scope: "total", What: "bytes", Limit: lim.TotalBytes}
	}
	if full != nil {
		m.mu.Unlock()
		m.met.Add("rejected_full", 1)
		return 0, full
	}
	d.reserved++
	d.bytes += int64(size)
	m.total++
	m.totalBytes += int64(size)
	m.mu.Unlock()

	id, err := m.cfg.Store.Add(rec)

	m.mu.Lock()
	d.reserved--
	d.bytes -= int64(size)
	m.total--
	m.totalBytes -= int64(size)
	if err != nil {
		m.mu.Unlock()
		m.met.Add("store_errors", 1)
		return 0, fmt.Errorf("queue: enqueue for %q: %w", req.Endpoint, err)
	}
	// insertLocked counts it again, unless a shared store's change stream
	// has queued it already (Refresh).
	m.insertLocked(d, entry{id: id, size: size, expires: req.Expires.UnixNano()})
	m.emitLocked(Event{Type: EventQueued, Endpoint: req.Endpoint, ID: id, State: StateQueued, Time: now})
	m.scheduleLocked(d, now.UnixNano())
	m.gauges()
	m.mu.Unlock()
	m.met.Add("queued", 1)
	return id, nil
}

func (m *Manager) deviceLocked(ep string) (*device, error) {
	if d := m.devices[ep]; d != nil {
		return d, nil
	}
	if len(m.devices) >= m.cfg.MaxDevices {
		m.met.Add("rejected_devices", 1)
		return nil, fmt.Errorf("%w: limit %d", ErrTooManyDevices, m.cfg.MaxDevices)
	}
	d := &device{ep: ep}
	m.devices[ep] = d
	return d, nil
}

// ErrInProgress is returned by Cancel for a request already sent to the
// device (its outcome will be reported as usual).
var ErrInProgress = errors.New("queue: request already sent")

// Cancel cancels a queued request: it ends in StateCancelled, reported to
// waiters and subscribers. Errors: ErrNotFound, ErrInProgress (being
// executed now), or a *RequestError of a request already final.
func (m *Manager) Cancel(id uint64) error {
	if m.devices == nil {
		return ErrNotCreated
	}
	rec, err := m.cfg.Store.Get(id)
	if err != nil {
		return err
	}
	if rec.State.Final() {
		return fmt.Errorf("queue: cancel %d: already %s", id, rec.State)
	}
	m.mu.Lock()
	d := m.devices[rec.Endpoint]
	idx := -1
	if d != nil {
		idx = slices.IndexFunc(d.queue, func(e entry) bool { return e.id == id })
	}
	switch {
	case idx < 0:
		m.mu.Unlock()
		return fmt.Errorf("queue: cancel %d: %w", id, ErrNotFound)
	case d.queue[idx].id == d.sending:
		m.mu.Unlock()
		return fmt.Errorf("queue: cancel %d: %w", id, ErrInProgress)
	}
	m.removeLocked(d, idx)
	m.mu.Unlock()
	m.finish(rec, StateCancelled, ErrKindCancelled, "cancelled by caller", nil)
	return nil
}

// Get returns the stored record of a request: its state, and its result or
// error once final. ErrNotFound after the retention.
func (m *Manager) Get(id uint64) (*Record, error) {
	if m.devices == nil {
		return nil, ErrNotCreated
	}
	return m.cfg.Store.Get(id)
}

// Wait waits until request id is final or ctx is done, and returns the
// record and, unless it is done, its error (a *RequestError matching
// ErrExpired, ErrCancelled, ErrNotWoken, ErrUnknownOutcome or ErrExecutor;
// while this Manager runs it unwraps to the original cause, e.g. an
// sms.BudgetError).
func (m *Manager) Wait(ctx context.Context, id uint64) (*Record, error) {
	if m.devices == nil {
		return nil, ErrNotCreated
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	w := m.waiters[id]
	if w == nil {
		w = &waiter{ch: make(chan struct{})}
		m.waiters[id] = w
	}
	w.n++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if w.n--; w.n == 0 && m.waiters[id] == w {
			delete(m.waiters, id)
		}
		m.mu.Unlock()
	}()
	rec, err := m.cfg.Store.Get(id)
	if err != nil {
		return nil, err
	}
	if !rec.State.Final() {
		select {
		case <-w.ch:
		case <-ctx.Done():
			return rec, ctx.Err()
		case <-m.ctx.Done():
			return rec, ErrClosed
		}
		if rec, err = m.cfg.Store.Get(id); err != nil {
			return nil, err
		}
	}
	if e := rec.Err(); e != nil {
		re := e.(*RequestError)
		m.mu.Lock()
		re.Cause = w.cause
		if re.Cause == nil {
			re.Cause = m.causes[id]
		}
		m.mu.Unlock()
		return rec, re
	}
	return rec, nil
}

// ---- awake tracking ----

// SetDevice sets the queue-mode configuration of a device (its awake
// window and how to wake it). The LwM2M server calls it on Register and
// Update. A device with queued work that is now wakeable gets a wake-up.
func (m *Manager) SetDevice(ep string, cfg DeviceConfig) error {
	if m.devices == nil {
		return ErrNotCreated
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	d, err := m.deviceLocked(ep)
	if err != nil {
		return err
	}
	d.cfg = cfg
	m.scheduleLocked(d, m.now())
	return nil
}

// Seen marks the device awake until now + window (window 0: its
// configured window or Config.DefaultWindow). The LwM2M server calls it on
// anything the device sends (Register, Update, a notification, a request).
// A device with queued work starts draining.
func (m *Manager) Seen(ep string, window time.Duration) {
	if m.devices == nil { // a zero Manager
		return
	}
	now := m.clk.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	d, err := m.deviceLocked(ep)
	if err != nil {
		return
	}
	if window <= 0 {
		window = d.cfg.Window
	}
	if window <= 0 {
		window = m.cfg.DefaultWindow
	}
	if d.learned > 0 {
		window = min(window, d.learned)
	}
	// The device's own message says when it is awake: its window runs
	// from now, whatever an earlier, longer guess said.
	d.awakeUntil = now.Add(window).UnixNano()
	d.lastSeen = now.UnixNano()
	d.seen++
	if d.wakes > 0 || d.waiting || d.wakeSending {
		m.emitLocked(Event{Type: EventWoke, Endpoint: ep, Time: now})
	}
	d.wakes, d.waiting, d.wakeDue, d.lastWakeErr = 0, false, 0, nil
	m.scheduleLocked(d, now.UnixNano())
}

// SeenParams is Seen with the window MAX_TRANSMIT_WAIT of the bearer the
// device used (93 s for UDP defaults, 90 s for the SMS defaults).
func (m *Manager) SeenParams(ep string, p bearer.Params) {
	m.Seen(ep, p.MaxTransmitWait())
}

// ForgetDevice drops the device's queue-mode configuration and its
// learned awake window (on de-registration or lifetime expiry); its queued
// requests stay, waiting for the device or their expiry, but it is no
// longer woken.
func (m *Manager) ForgetDevice(ep string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := m.devices[ep]; d != nil {
		d.cfg = DeviceConfig{}
		d.waiting, d.wakeDue = false, 0
		d.learned = 0
	}
}

// Awake reports whether the device is within its awake window.
func (m *Manager) Awake(ep string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.devices[ep]
	return d != nil && d.awakeUntil > m.now()
}

// Asleep marks the device asleep now (e.g. it de-registered or the server
// learned it closed its socket).
func (m *Manager) Asleep(ep string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := m.devices[ep]; d != nil {
		d.awakeUntil = 0
		m.scheduleLocked(d, m.now())
	}
}

// Window returns the awake window learned for the device (see
// Config.MinWindow) and whether one was learned yet.
func (m *Manager) Window(ep string) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.devices[ep]
	if d == nil || d.learned == 0 {
		return 0, false
	}
	return d.learned, true
}

// learnLocked updates d's learned window from a request first sent at
// sentAt (Unix ns), answered or not. m.mu is held.
func (m *Manager) learnLocked(d *device, sentAt int64, answered bool) {
	if d.lastSeen == 0 || sentAt < d.lastSeen {
		return
	}
	gap := time.Duration(sentAt - d.lastSeen)
	switch {
	case !answered && (d.learned == 0 || gap < d.learned):
		d.learned = max(gap, m.cfg.MinWindow)
		m.met.Add("window_learned", 1)
	case answered && d.learned > 0 && gap > d.learned:
		d.learned = gap
		m.met.Add("window_learned", 1)
	}
}

// Pending returns the ids of the device's live requests in queue order.
func (m *Manager) Pending(ep string) []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.devices[ep]
	if d == nil {
		return nil
	}
	ids := make([]uint64, len(d.queue))
	for i, e := range d.queue {
		ids[i] = e.id
	}
	return ids
}

// Stats is a snapshot of the Manager's sizes.
type Stats struct {
	Devices, Live, Results int
	Bytes                  int64
}

// Stats returns the current sizes.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Devices: len(m.devices), Live: m.total, Results: len(m.results), Bytes: m.totalBytes}
}
