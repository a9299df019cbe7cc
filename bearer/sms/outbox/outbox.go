package outbox

import (
	"errors"
	"fmt"

	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Errors callers branch on.
var (
	// ErrFull is returned by Enqueue when the outbox is at its count or byte limit.
	ErrFull = errors.New("outbox: full")
	// ErrNotFound is returned for an entry ID that is not in the outbox.
	ErrNotFound = errors.New("outbox: no such entry")
	// ErrExpired is the error of an entry given up at its expiry time.
	ErrExpired = errors.New("outbox: entry expired before it was sent")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("outbox: closed")
	// ErrInvalid is wrapped by Enqueue errors for entries that cannot be stored.
	ErrInvalid = errors.New("outbox: invalid entry")
	// ErrInvalidOption is wrapped by Open's error for an option given a
	// value out of its range (a negative limit, WithClock(nil)), and by
	// NewWorker's for a WorkerConfig field out of its range.
	ErrInvalidOption = errors.New("outbox: invalid option")
	// ErrNotCreated is returned by a zero Outbox or Worker (not made by
	// Open or NewWorker). It matches ErrClosed too: a zero Outbox holds
	// nothing and takes nothing, as a closed one.
	ErrNotCreated = fmt.Errorf("%w: zero value, not made by Open or NewWorker", ErrClosed)
)

// Limits bound the outbox. A zero field takes its default; a negative one
// is refused (WithLimits).
type Limits struct {
	// MaxEntries is the most entries held (default 100,000).
	MaxEntries int
	// MaxBytes is the most TPDU bytes held (default 64 MiB).
	MaxBytes int
	// MaxAge is the default lifetime of an entry whose Expires is zero
	// (default 24 h).
	MaxAge time.Duration
}

func (l *Limits) defaults() {
	if l.MaxEntries <= 0 {
		l.MaxEntries = 100_000
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 64 << 20
	}
	if l.MaxAge <= 0 {
		l.MaxAge = 24 * time.Hour
	}
}

// Stats is a snapshot of the outbox's size.
type Stats struct {
	Entries int
	Bytes   int
	// Pending is the number of entries with segments not yet accepted.
	Pending int
	// AwaitingReport is the number of entries whose segments were all
	// accepted but not all reported delivered.
	AwaitingReport int
}

type sched struct {
	seq      uint64 // the transaction that produced it (0: loaded or enqueued)
	nextTry  time.Time
	expires  time.Time
	size     int
	pending  bool // some segment not accepted yet
	to, from string
}

// Outbox is a durable store of entries waiting to be sent. It is safe for
// concurrent use.
//
// The zero Outbox is not usable: use Open. Its methods fail with
// ErrNotCreated (Due and Expire find nothing, Close does nothing).
type Outbox struct {
	be     Backend
	limits Limits
	now    func() time.Time

	mu     sync.Mutex
	closed bool
	sched  map[uint64]*sched
	pendTo map[string][]uint64 // see index.go
	heads  []headRef
	gone   map[uint64]goneMark
	// nextExpiry is no later than the earliest expiry held (zero: unknown).
	nextExpiry time.Time
	txSeq      atomic.Uint64 // transactions of update, in commit order (taken inside Backend.Update)
	bytes      int
	wake       chan struct{}
}

// Option configures Open. An option given a value out of its range makes
// Open fail with an error wrapping ErrInvalidOption.
type Option func(*Outbox) error

// WithLimits sets the outbox bounds; a negative one is refused (it used to
// mean the default).
func WithLimits(l Limits) Option {
	return func(o *Outbox) error {
		if l.MaxEntries < 0 || l.MaxBytes < 0 || l.MaxAge < 0 {
			return fmt.Errorf("%w: negative limit in %+v", ErrInvalidOption, l)
		}
		o.limits = l
		return nil
	}
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(o *Outbox) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		o.now = now
		return nil
	}
}

// Open opens (creating if needed) the outbox file at path (a bbolt
// Backend) and loads the schedule of the entries it holds. A corrupt entry
// fails Open with an error wrapping ErrCorrupt rather than being dropped
// silently.
func Open(path string, opts ...Option) (*Outbox, error) {
	be, err := OpenBolt(path)
	if err != nil {
		return nil, err
	}
	o, err := OpenBackend(be, opts...)
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("outbox: load %s: %w", path, err)
	}
	return o, nil
}

// OpenBackend opens an outbox over be and loads the schedule of the
// entries it holds. Close closes be.
func OpenBackend(be Backend, opts ...Option) (*Outbox, error) {
	o := &Outbox{be: be, now: time.Now, sched: make(map[uint64]*sched), pendTo: map[string][]uint64{}, gone: map[uint64]goneMark{},
		wake: make(chan struct{}, 1)}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	o.limits.defaults()
	err := be.Load(func(e *Entry) error {
		o.setSchedLocked(e.ID, schedOf(e))
		o.bytes += e.Size()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(o.sched) > 0 {
		o.signal()
	}
	return o, nil
}

func schedOf(e *Entry) *sched {
	return &sched{nextTry: e.NextTry, expires: e.Expires, size: e.Size(), pending: e.NextPending() >= 0, to: e.To, from: e.From}
}

// Close closes the file. Entries stay stored.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed || o.wake == nil {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	return o.be.Close()
}

// Wake returns a channel that receives when new work may be due (an entry was
// enqueued or rescheduled). It never closes.
func (o *Outbox) Wake() <-chan struct{} { return o.wake }

func (o *Outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Enqueue validates and stores e, assigning e.ID, e.Created and (when zero)
// e.Expires. It returns only after the entry is durable.
func (o *Outbox) Enqueue(e *Entry) (uint64, error) {
	if err := validate(e); err != nil {
		return 0, err
	}
	size := e.Size()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.wake == nil {
		return 0, ErrNotCreated
	}
	if o.closed {
		return 0, ErrClosed
	}
	if len(o.sched) >= o.limits.MaxEntries || o.bytes+size > o.limits.MaxBytes {
		return 0, fmt.Errorf("%w: %d entries, %d bytes held", ErrFull, len(o.sched), o.bytes)
	}
	now := o.now()
	e.Created = now
	if e.Expires.IsZero() || e.Expires.After(now.Add(o.limits.MaxAge)) {
		e.Expires = now.Add(o.limits.MaxAge)
	}
	if err := o.be.Add(e); err != nil {
		return 0, fmt.Errorf("outbox: store: %w", err)
	}
	o.setSchedLocked(e.ID, schedOf(e))
	o.bytes += size
	o.signal()
	return e.ID, nil
}

func validate(e *Entry) error {
	switch {
	case e == nil:
		return fmt.Errorf("%w: nil", ErrInvalid)
	case e.To == "" || len(e.To) > maxString || len(e.From) > maxString:
		return fmt.Errorf("%w: bad destination or sender %q/%q", ErrInvalid, e.To, e.From)
	case len(e.Segments) == 0 || len(e.Segments) > maxSegments:
		return fmt.Errorf("%w: %d segments", ErrInvalid, len(e.Segments))
	}
	for i, s := range e.Segments {
		if len(s.TPDU) == 0 || len(s.TPDU) > maxTPDU {
			return fmt.Errorf("%w: segment %d is %d bytes", ErrInvalid, i, len(s.TPDU))
		}
	}
	return nil
}

// Get returns a copy of the stored entry id.
func (o *Outbox) Get(id uint64) (*Entry, error) {
	if o.wake == nil {
		return nil, ErrNotCreated
	}
	return o.be.Get(id)
}

// Due returns up to max entries that have segments to send and whose
// NextTry has come, excluding those skip names, earliest expiry first (ties
// oldest first; entries stored without a deadline expire MaxAge after they
// were stored, so among them this is oldest first). Per destination only
// the oldest pending entry is considered, so a peer's datagrams leave in
// order even when one of them waits for a retry.
func (o *Outbox) Due(now time.Time, max int, skip func(id uint64, to string) bool) ([]*Entry, error) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, ErrClosed
	}
	// Per destination only the head (oldest pending entry) may go, so a
	// peer's datagrams leave in order; across destinations the earliest
	// deadlines first (o.heads is in that order).
	var ids []uint64
	for _, h := range o.heads {
		if len(ids) == max {
			break
		}
		if h.nextTry.After(now) || (skip != nil && skip(h.id, h.to)) {
			continue
		}
		ids = append(ids, h.id)
	}
	o.mu.Unlock()
	out := make([]*Entry, 0, min(len(ids), max))
	for _, id := range ids {
		if len(out) >= max {
			break
		}
		e, err := o.Get(id)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// NextDue returns the earliest NextTry among entries with segments to send,
// and false when there is none.
func (o *Outbox) NextDue() (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	// The head (oldest pending entry) of each destination decides.
	var t time.Time
	found := false
	for _, h := range o.heads {
		if !found || h.nextTry.Before(t) {
			t, found = h.nextTry, true
		}
	}
	return t, found
}

// update applies fn to the stored entry id in one durable step
// (Backend.Update); when the entry is done it is removed. It returns the
// updated entry.
func (o *Outbox) update(id uint64, fn func(e *Entry) error) (*Entry, bool, error) {
	if o.wake == nil {
		return nil, false, ErrNotCreated
	}
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return nil, false, ErrClosed
	}
	var seq uint64
	e, done, err := o.be.Update(id, func(e *Entry) error {
		if err := fn(e); err != nil {
			return err
		}
		// Not o.mu: Enqueue and Remove hold it while they wait for the
		// backend, which may be inside this update.
		seq = o.txSeq.Add(1)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.staleLocked(id, seq) {
		return e, done, nil
	}
	if done {
		o.forgetLocked(id, seq)
	} else {
		s := schedOf(e)
		s.seq = seq
		o.setSchedLocked(id, s)
	}
	o.pruneGoneLocked(o.now())
	return e, done, nil
}

func (o *Outbox) forget(e *Entry) {
	o.forgetLocked(e.ID, o.txSeq.Add(1))
}

// Accepted records that segment seg of entry id was accepted by the modem of
// SIM from with message reference mr. When the entry named no SIM, from is
// recorded as its SIM so the rest of it, and status reports, stay on it. It
// returns the entry and whether it is finished (and removed).
func (o *Outbox) Accepted(id uint64, seg int, from string, mr uint8) (*Entry, bool, error) {
	return o.update(id, func(e *Entry) error {
		if seg < 0 || seg >= len(e.Segments) {
			return fmt.Errorf("%w: segment %d of %d", ErrInvalid, seg, len(e.Segments))
		}
		if e.From == "" {
			e.From = from
		}
		e.Segments[seg].State = Accepted
		e.Segments[seg].MR = mr
		return nil
	})
}

// Retry records a failed attempt and schedules the next one at next.
func (o *Outbox) Retry(id uint64, next time.Time, cause error) (*Entry, error) {
	e, _, err := o.update(id, func(e *Entry) error {
		e.Attempts++
		e.NextTry = next
		if cause != nil {
			e.LastError = truncate(cause.Error(), 4096)
		}
		return nil
	})
	if err == nil {
		o.signal()
	}
	return e, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Remove deletes entry id whatever its state (a permanent failure, an expiry,
// a cancellation) and returns it.
func (o *Outbox) Remove(id uint64) (*Entry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.wake == nil {
		return nil, ErrNotCreated
	}
	if o.closed {
		return nil, ErrClosed
	}
	e, err := o.be.Remove(id)
	if err != nil {
		return nil, err
	}
	o.forget(e)
	return e, nil
}

// ReportStatus is what a status report said of a segment.
type ReportStatus int

// Report outcomes (TS 23.040 §9.2.3.15 classes).
const (
	ReportDelivered ReportStatus = iota
	ReportTemporary              // still trying: nothing changes
	ReportPermanent              // given up by the SMSC
)

// Report correlates a status report from the SIM from with message reference
// mr. For ReportDelivered the segment is marked delivered (and the entry
// removed once all are); for ReportPermanent the entry is removed. It returns
// the entry (nil when no stored entry waits for that reference: a late or
// foreign report), the segment index, and whether the entry is finished.
func (o *Outbox) Report(from string, mr uint8, status ReportStatus) (*Entry, int, bool, error) {
	return o.ReportTo(from, "", mr, status)
}

// ReportTo is Report for a status report that names its recipient to (TP-RA,
// normalised like Entry.To): the segment is found by (from, to, mr), which
// stays unambiguous when from's TP-MR has wrapped; an empty to, or a
// segment recorded before recipients were keyed, falls back to (from, mr).
func (o *Outbox) ReportTo(from, to string, mr uint8, status ReportStatus) (*Entry, int, bool, error) {
	if o.wake == nil {
		return nil, -1, false, ErrNotCreated
	}
	id, seg, err := o.be.Lookup(from, to, mr)
	if err != nil || seg < 0 {
		return nil, -1, false, err
	}
	switch status {
	case ReportTemporary:
		e, err := o.Get(id)
		return e, seg, false, err
	case ReportPermanent:
		e, err := o.Remove(id)
		return e, seg, true, err
	}
	e, done, err := o.update(id, func(e *Entry) error {
		if seg < len(e.Segments) && e.Segments[seg].MR == mr {
			e.Segments[seg].State = Delivered
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, seg, false, nil
	}
	return e, seg, done, err
}

// Expire removes and returns the entries whose Expires has passed.
func (o *Outbox) Expire(now time.Time) ([]*Entry, error) {
	o.mu.Lock()
	if !o.nextExpiry.IsZero() && !now.After(o.nextExpiry) {
		// Nothing can have expired yet: no scan (the worker calls Expire
		// on every loop, a hundred times a second under load).
		o.mu.Unlock()
		return nil, nil
	}
	var ids []uint64
	var next time.Time
	for id, s := range o.sched {
		switch {
		case s.expires.IsZero():
		case now.After(s.expires):
			ids = append(ids, id)
		case next.IsZero() || s.expires.Before(next):
			next = s.expires
		}
	}
	o.nextExpiry = next
	o.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var out []*Entry
	for _, id := range ids {
		e, err := o.Remove(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Stats returns the current counts.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := Stats{Entries: len(o.sched), Bytes: o.bytes}
	for _, s := range o.sched {
		if s.pending {
			st.Pending++
		} else {
			st.AwaitingReport++
		}
	}
	return st
}

// PendingTo returns how many entries for destination to have segments not
// yet accepted by a modem: datagrams still waiting to leave.
func (o *Outbox) PendingTo(to string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.sched {
		if s.pending && s.to == to {
			n++
		}
	}
	return n
}

// Path returns the file the outbox is stored in ("" for a backend that is
// not a file).
func (o *Outbox) Path() string {
	if b, ok := o.be.(*boltBackend); ok {
		return b.path()
	}
	return ""
}
