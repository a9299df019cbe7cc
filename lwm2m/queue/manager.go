package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
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
	Timeout     time.Duration // default 2 min
	Factor      float64       // default 2
	MaxTimeout  time.Duration // default 30 min
	MaxWakes    int           // default 4
	MinInterval time.Duration // default 30 s
	// CallTimeout bounds one Waker.Wake call (default 30 s).
	CallTimeout time.Duration
}

// Config configures a Manager. Store and Executor are required.
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
	// OnEvent, if set, receives every event synchronously; it must not block.
	OnEvent func(Event)
	Metrics Metrics
	Logger  *slog.Logger
	Clock   Clock
}

func (c *Config) defaults() error {
	if c.Store == nil || c.Executor == nil {
		return errors.New("queue: Config.Store and Config.Executor are required")
	}
	setD := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setI := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	udp := bearer.UDPParams("udp")
	setI(&c.Limits.PerDevice, 64)
	if c.Limits.PerDeviceBytes <= 0 {
		c.Limits.PerDeviceBytes = 256 << 10
	}
	setI(&c.Limits.Total, 1_000_000)
	if c.Limits.TotalBytes <= 0 {
		c.Limits.TotalBytes = 512 << 20
	}
	setD(&c.Wake.Timeout, 2*time.Minute)
	if c.Wake.Factor < 1 {
		c.Wake.Factor = 2
	}
	setD(&c.Wake.MaxTimeout, 30*time.Minute)
	setI(&c.Wake.MaxWakes, 4)
	setD(&c.Wake.MinInterval, 30*time.Second)
	setD(&c.Wake.CallTimeout, 30*time.Second)
	setD(&c.DefaultExpiry, 24*time.Hour)
	setD(&c.DefaultWindow, udp.MaxTransmitWait())
	setD(&c.DedupWindow, udp.ExchangeLifetime())
	setI(&c.Concurrency, 16)
	setD(&c.ExecTimeout, 5*time.Minute)
	setD(&c.Retention, 24*time.Hour)
	setI(&c.MaxResults, 100_000)
	setI(&c.MaxDevices, 1_000_000)
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
	cfg        DeviceConfig
	busy       bool   // a worker holds it
	seen       uint32 // Seen calls, to notice one during a wake-up or send
	ready      bool   // on the ready list
	// wake-up state since the device was last seen
	wakes       int
	waiting     bool  // a wake timer is pending
	wakeDue     int64 // when it fires
	lastWake    int64
	lastWakeErr error
}

func (d *device) idle() bool {
	return len(d.queue) == 0 && d.reserved == 0 && !d.busy && !d.ready && d.cfg.Wake == nil && d.cfg.Window == 0
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
	if m.closed {
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
	if err != nil {
		d.bytes -= int64(size)
		m.total--
		m.totalBytes -= int64(size)
		m.mu.Unlock()
		m.met.Add("store_errors", 1)
		return 0, fmt.Errorf("queue: enqueue for %q: %w", req.Endpoint, err)
	}
	e := entry{id: id, size: size, expires: req.Expires.UnixNano()}
	i := len(d.queue)
	for i > 0 && d.queue[i-1].id > id {
		i--
	}
	d.queue = slices.Insert(d.queue, i, e)
	m.pushTimerLocked(timer{at: e.expires, kind: timerExpire, id: id, dev: d})
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
	case idx == 0 && d.busy:
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
	return m.cfg.Store.Get(id)
}

// Wait waits until request id is final or ctx is done, and returns the
// record and, unless it is done, its error (a *RequestError matching
// ErrExpired, ErrCancelled, ErrNotWoken, ErrUnknownOutcome or ErrExecutor;
// while this Manager runs it unwraps to the original cause, e.g. an
// sms.BudgetError).
func (m *Manager) Wait(ctx context.Context, id uint64) (*Record, error) {
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
	d.awakeUntil = max(d.awakeUntil, now.Add(window).UnixNano())
	d.seen++
	if d.wakes > 0 || d.waiting {
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

// ---- scheduling ----

// scheduleLocked decides what the device needs next: a drain if it is
// awake with work, a wake-up if it is asleep with work and wakeable.
func (m *Manager) scheduleLocked(d *device, now int64) {
	if d.busy || d.ready || len(d.queue) == 0 || m.closed {
		return
	}
	if d.awakeUntil > now {
		m.readyLocked(d)
		return
	}
	if m.cfg.Waker == nil || !d.cfg.Wake.Wakeable() || d.waiting {
		return
	}
	if next := d.lastWake + int64(m.cfg.Wake.MinInterval); d.lastWake != 0 && next > now {
		// Rate limit: wake at the earliest allowed time.
		d.waiting, d.wakeDue = true, next
		m.pushTimerLocked(timer{at: next, kind: timerWake, dev: d})
		return
	}
	m.readyLocked(d)
}

func (m *Manager) readyLocked(d *device) {
	d.ready = true
	m.readyList = append(m.readyList, d)
	select {
	case m.readyC <- struct{}{}:
	default:
	}
}

func (m *Manager) pushTimerLocked(t timer) {
	first := len(m.timers) == 0 || t.at < m.timers[0].at
	m.timers.push(t)
	if first {
		select {
		case m.kickC <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) removeLocked(d *device, idx int) {
	e := d.queue[idx]
	d.queue = slices.Delete(d.queue, idx, idx+1)
	d.bytes -= int64(e.size)
	m.total--
	m.totalBytes -= int64(e.size)
	m.gauges()
}

func (m *Manager) gauges() {
	m.met.Set("depth", float64(m.total))
	m.met.Set("bytes", float64(m.totalBytes))
	m.met.Set("devices", float64(len(m.devices)))
	m.met.Set("results", float64(len(m.results)))
}

// finish stores the final state of rec (already removed from its device
// queue) and reports it.
func (m *Manager) finish(rec *Record, st State, kind ErrKind, msg string, cause error) {
	now := m.clk.Now()
	rec.State, rec.ErrKind, rec.ErrMsg, rec.Finished = st, kind, msg, now
	if err := m.cfg.Store.Put(rec); err != nil {
		// The record stays live in the store and is resolved after a
		// restart; report the outcome now anyway.
		m.met.Add("store_errors", 1)
		m.log.Error("queue: store final state", "id", rec.ID, "endpoint", rec.Endpoint, "state", st, "err", err)
	}
	name := map[State]string{StateDone: "done", StateFailed: "failed", StateExpired: "expired", StateCancelled: "cancelled"}[st]
	m.met.Add(name, 1)
	if kind == ErrKindUnknownOutcome {
		m.met.Add("unknown_outcome", 1)
	}
	ev := Event{Type: eventOf(st), Endpoint: rec.Endpoint, ID: rec.ID, State: st, Time: now}
	if e := rec.Err(); e != nil {
		re := e.(*RequestError)
		re.Cause = cause
		ev.Err = re
	}
	var prune []uint64
	m.mu.Lock()
	m.results = append(m.results, finished{id: rec.ID, at: now.UnixNano()})
	for len(m.results) > m.cfg.MaxResults {
		prune = append(prune, m.results[0].id)
		m.results = m.results[1:]
	}
	if cause != nil {
		m.causes[rec.ID] = cause
		m.causeOrder = append(m.causeOrder, rec.ID)
		if len(m.causeOrder) > maxCauses {
			delete(m.causes, m.causeOrder[0])
			m.causeOrder = m.causeOrder[1:]
		}
	}
	if w := m.waiters[rec.ID]; w != nil {
		w.cause = cause
		close(w.ch)
		delete(m.waiters, rec.ID)
	}
	m.emitLocked(ev)
	m.gauges()
	m.mu.Unlock()
	if st != StateDone {
		m.log.Info("queue: request ended", "id", rec.ID, "endpoint", rec.Endpoint, "state", st, "err", ev.Err)
	}
	m.prune(prune)
}

func (m *Manager) prune(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	if err := m.cfg.Store.Delete(ids...); err != nil {
		m.met.Add("store_errors", 1)
		m.log.Error("queue: prune results", "n", len(ids), "err", err)
		return
	}
	m.met.Add("pruned", float64(len(ids)))
}

// ---- timers ----

func (m *Manager) timerLoop() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		var next int64 = -1
		if len(m.timers) > 0 {
			next = m.timers[0].at
		}
		m.mu.Unlock()
		var c <-chan time.Time
		stop := func() bool { return false }
		if next >= 0 {
			c, stop = m.clk.After(time.Duration(next - m.now()))
		}
		select {
		case <-m.ctx.Done():
			stop()
			return
		case <-m.kickC:
		case <-c:
			m.fire()
		}
		stop()
	}
}

// fire handles every due timer.
func (m *Manager) fire() {
	now := m.now()
	type failDev struct {
		d     *device
		cause error
		wakes int
	}
	var expired []uint64
	var fails []failDev
	var prune []uint64
	m.mu.Lock()
	for len(m.timers) > 0 && m.timers[0].at <= now {
		t := m.timers.pop()
		switch t.kind {
		case timerExpire:
			d := t.dev
			idx := slices.IndexFunc(d.queue, func(e entry) bool { return e.id == t.id })
			if idx < 0 || (idx == 0 && d.busy) {
				continue // gone, or being sent: the drain checks expiry
			}
			m.removeLocked(d, idx)
			expired = append(expired, t.id)
		case timerWake:
			d := t.dev
			if !d.waiting || d.wakeDue != t.at {
				continue // stale
			}
			d.waiting, d.wakeDue = false, 0
			if d.wakes >= m.cfg.Wake.MaxWakes {
				fails = append(fails, failDev{d: d, cause: d.lastWakeErr, wakes: d.wakes})
				d.wakes, d.lastWakeErr = 0, nil
				continue
			}
			m.scheduleLocked(d, now)
		case timerPrune:
			cut := now - int64(m.cfg.Retention)
			for len(m.results) > 0 && m.results[0].at < cut {
				prune = append(prune, m.results[0].id)
				m.results = m.results[1:]
			}
			for ep, d := range m.devices {
				if d.idle() && d.awakeUntil <= now {
					delete(m.devices, ep)
				}
			}
			m.gauges()
			m.timers.push(timer{at: now + int64(m.pruneEvery()), kind: timerPrune})
		}
	}
	m.mu.Unlock()
	m.prune(prune)
	for _, id := range expired {
		rec, err := m.cfg.Store.Get(id)
		if err != nil {
			m.met.Add("store_errors", 1)
			m.log.Error("queue: expire", "id", id, "err", err)
			continue
		}
		msg := "expired before it could be sent"
		if !rec.SendingSince.IsZero() {
			msg = "expired after a send whose answer was lost"
		}
		m.finish(rec, StateExpired, ErrKindExpired, msg, nil)
	}
	for _, f := range fails {
		m.failAll(f.d, &NotWokenError{Endpoint: f.d.ep, Wakes: f.wakes, Cause: f.cause})
	}
}

// failAll fails every queued request of d (not one being sent) with
// ErrNotWoken.
func (m *Manager) failAll(d *device, cause *NotWokenError) {
	m.met.Add("not_woken", 1)
	m.mu.Lock()
	var ids []uint64
	for i := len(d.queue) - 1; i >= 0; i-- {
		if i == 0 && d.busy {
			break
		}
		ids = append(ids, d.queue[i].id)
		m.removeLocked(d, i)
	}
	m.mu.Unlock()
	slices.Reverse(ids)
	for _, id := range ids {
		rec, err := m.cfg.Store.Get(id)
		if err != nil {
			m.met.Add("store_errors", 1)
			continue
		}
		m.finish(rec, StateFailed, ErrKindNotWoken, cause.Error(), cause)
	}
}

// ---- workers ----

func (m *Manager) worker() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		var d *device
		if len(m.readyList) > 0 {
			d = m.readyList[0]
			m.readyList[0] = nil
			m.readyList = m.readyList[1:]
			if len(m.readyList) == 0 {
				m.readyList = nil
			}
			d.ready, d.busy = false, true
			if len(m.readyList) > 0 {
				select {
				case m.readyC <- struct{}{}:
				default:
				}
			}
		}
		m.mu.Unlock()
		if d == nil {
			select {
			case <-m.ctx.Done():
				return
			case <-m.readyC:
				continue
			}
		}
		m.serve(d)
		if m.ctx.Err() != nil {
			return
		}
	}
}

// serve drains d while it is awake, or wakes it if it is asleep.
func (m *Manager) serve(d *device) {
	for {
		m.mu.Lock()
		now := m.now()
		if m.closed || len(d.queue) == 0 {
			d.busy = false
			m.mu.Unlock()
			return
		}
		if d.awakeUntil <= now {
			// Asleep: wake it if that is allowed and due.
			wake := m.cfg.Waker != nil && d.cfg.Wake.Wakeable() && !d.waiting &&
				(d.lastWake == 0 || now >= d.lastWake+int64(m.cfg.Wake.MinInterval))
			if !wake {
				d.busy = false
				m.scheduleLocked(d, now)
				m.mu.Unlock()
				return
			}
			target := *d.cfg.Wake
			seen := d.seen
			m.mu.Unlock()
			m.wake(d, target, seen)
			return
		}
		head := d.queue[0]
		m.mu.Unlock()
		if !m.sendHead(d, head.id) {
			return
		}
	}
}

func (m *Manager) wake(d *device, target WakeTarget, seen uint32) {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.Wake.CallTimeout)
	err := m.cfg.Waker.Wake(ctx, d.ep, target)
	cancel()
	now := m.now()
	m.mu.Lock()
	d.busy = false
	if m.closed {
		m.mu.Unlock()
		return
	}
	d.lastWake = now
	if err == nil {
		m.emitLocked(Event{Type: EventWake, Endpoint: d.ep, Time: time.Unix(0, now)})
		m.met.Add("wakeups", 1)
	}
	if d.seen != seen {
		// The device showed up while the wake-up was being sent.
		m.scheduleLocked(d, now)
		m.mu.Unlock()
		return
	}
	d.wakes++
	wakes := d.wakes
	if err != nil {
		d.lastWakeErr = err
	}
	if err != nil && permanentWakeError(err) {
		d.wakes = 0
		m.mu.Unlock()
		m.met.Add("wake_errors", 1)
		m.log.Warn("queue: wake-up failed", "endpoint", d.ep, "err", err)
		m.failAll(d, &NotWokenError{Endpoint: d.ep, Wakes: wakes, Cause: err})
		return
	}
	timeout := float64(m.cfg.Wake.Timeout)
	for i := 1; i < wakes && timeout < float64(m.cfg.Wake.MaxTimeout); i++ {
		timeout *= m.cfg.Wake.Factor
	}
	due := now + int64(min(time.Duration(timeout), m.cfg.Wake.MaxTimeout))
	d.waiting, d.wakeDue = true, due
	m.pushTimerLocked(timer{at: due, kind: timerWake, dev: d})
	m.mu.Unlock()
	if err != nil {
		m.met.Add("wake_errors", 1)
		m.log.Warn("queue: wake-up failed, will retry", "endpoint", d.ep, "attempt", wakes, "err", err)
	} else {
		m.log.Debug("queue: wake-up sent", "endpoint", d.ep, "attempt", wakes)
	}
}

// sendHead runs the head request of d once. It returns true to go on
// draining, false when the worker has released d.
func (m *Manager) sendHead(d *device, id uint64) bool {
	release := func() bool {
		m.mu.Lock()
		d.busy = false
		m.scheduleLocked(d, m.now())
		m.mu.Unlock()
		return false
	}
	rec, err := m.cfg.Store.Get(id)
	if err != nil {
		m.met.Add("store_errors", 1)
		m.log.Error("queue: read request", "id", id, "err", err)
		m.mu.Lock()
		if len(d.queue) > 0 && d.queue[0].id == id {
			m.removeLocked(d, 0)
		}
		m.mu.Unlock()
		return true
	}
	now := m.clk.Now()
	dequeue := func() {
		m.mu.Lock()
		if len(d.queue) > 0 && d.queue[0].id == id {
			m.removeLocked(d, 0)
		}
		m.mu.Unlock()
	}
	if !rec.Expires.After(now) {
		dequeue()
		msg := "expired before it could be sent"
		if !rec.SendingSince.IsZero() {
			msg = "expired after a send whose answer was lost"
		}
		m.finish(rec, StateExpired, ErrKindExpired, msg, nil)
		return true
	}
	// At most once: a request sent before (answer lost, or a crash) is
	// re-sent as the same attempt only while the device's CoAP
	// deduplication still knows it; later, only idempotent kinds get a
	// fresh attempt.
	switch {
	case rec.SendingSince.IsZero() || rec.Attempt.N == 0:
		rec.Attempt.N++
		rec.SendingSince = now
	case now.Sub(rec.SendingSince) > m.cfg.DedupWindow:
		if !rec.Kind.Idempotent() {
			dequeue()
			m.finish(rec, StateFailed, ErrKindUnknownOutcome,
				fmt.Sprintf("sent at %s, no answer, dedup window %s passed; %s is not idempotent", rec.SendingSince.UTC().Format(time.RFC3339), m.cfg.DedupWindow, rec.Kind), nil)
			return true
		}
		rec.Attempt.N++
		rec.SendingSince = now
	}
	rec.Attempt.ID = rec.ID
	rec.State = StateSending
	if err := m.cfg.Store.Put(rec); err != nil {
		m.met.Add("store_errors", 1)
		m.log.Error("queue: persist sending state", "id", id, "err", err)
		return release()
	}
	m.met.Add("sent", 1)
	m.mu.Lock()
	seen := d.seen
	m.emitLocked(Event{Type: EventSent, Endpoint: d.ep, ID: id, State: StateSending, Time: now})
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ExecTimeout)
	req := rec.Request
	res, err := m.cfg.Executor.Execute(ctx, d.ep, &req)
	cancel()
	if m.ctx.Err() != nil && err != nil {
		// Shutdown interrupted the send: the record stays "sending" and
		// the next Manager resolves it.
		m.mu.Lock()
		d.busy = false
		m.mu.Unlock()
		return false
	}
	switch {
	case err == nil:
		if res == nil {
			res = &Result{ContentFormat: NoContentFormat}
		}
		rec.Result = res
		dequeue()
		m.finish(rec, StateDone, ErrKindNone, "", nil)
		return true
	case asleep(err):
		rec.State = StateQueued
		if perr := m.cfg.Store.Put(rec); perr != nil {
			m.met.Add("store_errors", 1)
		}
		m.met.Add("requeued", 1)
		m.log.Debug("queue: device asleep mid-drain", "endpoint", d.ep, "id", id, "err", err)
		m.mu.Lock()
		if d.seen == seen {
			d.awakeUntil = 0
		}
		m.mu.Unlock()
		return release()
	default:
		dequeue()
		m.finish(rec, StateFailed, ErrKindExecutor, err.Error(), err)
		return true
	}
}

func asleep(err error) bool {
	if errors.Is(err, ErrDeviceAsleep) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
