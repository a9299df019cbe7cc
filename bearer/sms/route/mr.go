package route

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/internal/record"
)

// TP-MR translation.
//
// A status report names the SMS it reports on by TP-MR, one octet that the
// sending SIM allocates (TS 23.040 §9.2.3.6), and the bearer's outbox keys
// reports by (sender, recipient, TP-MR). A number served by two routes — a
// SIM in a modem and the same number on an SMPP account — has two TP-MR
// spaces: the modem assigns its own (+CMGS answers it; the TPDU's is
// overwritten), the SMPP link allocates one of its own (SMPP has none). Both
// can hand out the same TP-MR to the same device while the first report is
// still due, and the outbox would mark the wrong entry.
//
// So for such numbers the Mux hands the bearer a TP-MR of its own,
// allocated per sender number across routes and never one still awaiting
// its report for the same recipient, and keeps route (its TP-MR space),
// sender, recipient and the route's TP-MR → that TP-MR durably (bbolt, fsync'd before
// SendTPDU returns, so a report after a restart finds it). A status report
// coming in on a route is rewritten to the Mux's TP-MR before the bearer
// sees it; the mapping goes once a final report was acknowledged, or after
// MaxAge. Numbers with one route keep their route's TP-MR untouched.

var (
	bucketMap  = []byte("map")  // from|to|route|mr -> v, created
	bucketNext = []byte("next") // from -> last v
)

var errCorrupt = errors.New("route: corrupt TP-MR record")

// mrKey is the identity of a sent SMS in its route's TP-MR space.
type mrKey struct {
	space, from, to string
	mr              uint8
}

func (k mrKey) bytes() []byte {
	b := record.AppendString(nil, k.from)
	b = record.AppendString(b, k.to)
	b = record.AppendString(b, k.space)
	return append(b, k.mr)
}

func parseMRKey(b []byte) (mrKey, error) {
	d := record.NewDecoder(b, errCorrupt)
	k := mrKey{from: d.String(64), to: d.String(64), space: d.String(256)}
	k.mr = d.Byte()
	return k, d.Finish()
}

// routeMR is the fallback identity when the report's recipient is written
// differently from the number it was sent to (a national form): a modem's
// TP-MR is per SIM, so (space, from, mr) names its latest send.
type routeMR struct {
	space, from string
	mr          uint8
}

type pair struct{ from, to string }

type mapping struct {
	v  uint8
	at time.Time
}

// vset is a set of TP-MRs.
type vset [4]uint64

func (s *vset) has(v uint8) bool { return s[v>>6]&(1<<(v&63)) != 0 }
func (s *vset) set(v uint8)      { s[v>>6] |= 1 << (v & 63) }
func (s *vset) clear(v uint8)    { s[v>>6] &^= 1 << (v & 63) }
func (s *vset) empty() bool      { return s[0]|s[1]|s[2]|s[3] == 0 }
func (s *vset) full() bool {
	return bits.OnesCount64(s[0])+bits.OnesCount64(s[1])+bits.OnesCount64(s[2])+bits.OnesCount64(s[3]) == 256
}

// MRStats count the TP-MR translation of numbers with several routes.
type MRStats struct {
	Mapped     int    // sends awaiting their report, mapped now
	Assigned   uint64 // TP-MRs handed out for sends that asked for a report
	Translated uint64 // status reports rewritten to the Mux's TP-MR
	Unmapped   uint64 // status reports with no mapping, passed on unchanged (their TP-MR is not in use)
	Dropped    uint64 // status reports with no mapping whose TP-MR is in use for another send: acknowledged and dropped
	Reused     uint64 // mappings given up because all 256 TP-MRs of a sender and recipient were awaiting reports
	Expired    uint64 // mappings removed after MaxAge (their report never came)
	Held       uint64 // status reports that came before their send's mapping was stored, held for it
}

// translator is the durable TP-MR map.
type translator struct {
	db     *bolt.DB
	log    *slog.Logger
	now    func() time.Time
	maxAge time.Duration

	mu                                             sync.Mutex
	maps                                           map[mrKey]mapping
	latest                                         map[routeMR]mrKey
	inUse                                          map[pair]*vset
	next                                           map[string]uint8
	assigned                                       atomic.Uint64
	translated, unmapped, dropped, reused, expired atomic.Uint64
	held                                           atomic.Uint64
}

func openTranslator(path string, maxAge time.Duration, now func() time.Time, log *slog.Logger) (*translator, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("route: open TP-MR map %s: %w", path, err)
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	t := &translator{db: db, log: log, now: now, maxAge: maxAge, maps: map[mrKey]mapping{}, latest: map[routeMR]mrKey{},
		inUse: map[pair]*vset{}, next: map[string]uint8{}}
	err = db.Update(func(tx *bolt.Tx) error {
		mb, err := tx.CreateBucketIfNotExists(bucketMap)
		if err != nil {
			return err
		}
		nb, err := tx.CreateBucketIfNotExists(bucketNext)
		if err != nil {
			return err
		}
		if err := nb.ForEach(func(k, v []byte) error {
			if len(v) != 1 {
				return fmt.Errorf("%w: next TP-MR of %q", errCorrupt, k)
			}
			t.next[string(k)] = v[0]
			return nil
		}); err != nil {
			return err
		}
		return mb.ForEach(func(k, v []byte) error {
			mk, err := parseMRKey(k)
			if err != nil || len(v) != 9 {
				return fmt.Errorf("%w: mapping %x", errCorrupt, k)
			}
			t.addLocked(mk, mapping{v: v[0], at: time.Unix(0, int64(binary.BigEndian.Uint64(v[1:])))})
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("route: load TP-MR map %s: %w", path, err)
	}
	t.prune()
	return t, nil
}

func (t *translator) close() error { return t.db.Close() }

func (t *translator) addLocked(k mrKey, m mapping) {
	t.maps[k] = m
	p := pair{k.from, k.to}
	s := t.inUse[p]
	if s == nil {
		s = &vset{}
		t.inUse[p] = s
	}
	s.set(m.v)
	rk := routeMR{k.space, k.from, k.mr}
	if old, ok := t.latest[rk]; !ok || t.maps[old].at.Before(m.at) || old == k {
		t.latest[rk] = k
	}
}

func (t *translator) removeLocked(k mrKey) {
	m, ok := t.maps[k]
	if !ok {
		return
	}
	delete(t.maps, k)
	p := pair{k.from, k.to}
	if s := t.inUse[p]; s != nil {
		s.clear(m.v)
		if s.empty() {
			delete(t.inUse, p)
		}
	}
	if rk := (routeMR{k.space, k.from, k.mr}); t.latest[rk] == k {
		delete(t.latest, rk)
	}
}

// oldestLocked returns the oldest mapping of p.
func (t *translator) oldestLocked(p pair) mrKey {
	var old mrKey
	var at time.Time
	first := true
	for k, m := range t.maps {
		if k.from == p.from && k.to == p.to && (first || m.at.Before(at)) {
			old, at, first = k, m.at, false
		}
	}
	return old
}

// assign maps the route's TP-MR of a send from → to to a TP-MR of the Mux's
// and stores it durably before returning it.
func (t *translator) assign(space, from, to string, mr uint8) (uint8, error) {
	k := mrKey{space, from, to, mr}
	p := pair{from, to}
	now := t.now()
	t.mu.Lock()
	prev, hadPrev := t.maps[k]
	t.removeLocked(k) // the route's TP-MR wrapped: the later send wins
	s := t.inUse[p]
	var evicted *mrKey
	if s != nil && s.full() {
		old := t.oldestLocked(p)
		t.removeLocked(old)
		evicted = &old
		t.reused.Add(1)
	}
	last := t.next[from]
	v := last + 1
	for s != nil && s.has(v) {
		v++
	}
	t.addLocked(k, mapping{v: v, at: now})
	t.next[from] = v
	t.mu.Unlock()
	val := binary.BigEndian.AppendUint64([]byte{v}, uint64(now.UnixNano()))
	err := t.db.Batch(func(tx *bolt.Tx) error {
		if evicted != nil {
			if err := tx.Bucket(bucketMap).Delete(evicted.bytes()); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketNext).Put([]byte(from), []byte{v}); err != nil {
			return err
		}
		return tx.Bucket(bucketMap).Put(k.bytes(), val)
	})
	if err != nil {
		t.mu.Lock()
		if t.maps[k].v == v {
			t.removeLocked(k)
		}
		if hadPrev {
			t.addLocked(k, prev)
		}
		t.next[from] = last
		t.mu.Unlock()
		return 0, fmt.Errorf("route: storing the TP-MR of a send from %s: %w", from, err)
	}
	if evicted != nil {
		t.log.Warn("route: all 256 TP-MRs of a sender and recipient await reports; the oldest mapping is given up",
			"from", from, "to", to, "space", evicted.space)
	}
	t.assigned.Add(1)
	return v, nil
}

// lookup finds the mapping of a report that came in on a route of space.
func (t *translator) lookup(space, from, to string, mr uint8) (mrKey, mapping, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := mrKey{space, from, to, mr}
	if m, ok := t.maps[k]; ok {
		return k, m, true
	}
	if k2, ok := t.latest[routeMR{space, from, mr}]; ok {
		return k2, t.maps[k2], true
	}
	return mrKey{}, mapping{}, false
}

// used reports whether v awaits a report for from → to (any recipient
// form: to may be written otherwise, so any recipient of from counts when
// to matches none).
func (t *translator) used(from, to string, v uint8) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.inUse[pair{from, to}]; s != nil {
		return s.has(v)
	}
	for p, s := range t.inUse {
		if p.from == from && s.has(v) {
			return true
		}
	}
	return false
}

// forget removes k's mapping if it still maps to v (its final report was
// acknowledged).
func (t *translator) forget(k mrKey, v uint8) error {
	t.mu.Lock()
	m, ok := t.maps[k]
	if !ok || m.v != v {
		t.mu.Unlock()
		return nil
	}
	t.removeLocked(k)
	t.mu.Unlock()
	return t.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketMap).Delete(k.bytes()) })
}

// prune removes mappings older than maxAge.
func (t *translator) prune() {
	before := t.now().Add(-t.maxAge)
	t.mu.Lock()
	var old []mrKey
	for k, m := range t.maps {
		if m.at.Before(before) {
			old = append(old, k)
		}
	}
	for _, k := range old {
		t.removeLocked(k)
	}
	t.mu.Unlock()
	if len(old) == 0 {
		return
	}
	err := t.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMap)
		for _, k := range old {
			if err := b.Delete(k.bytes()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.log.Error("route: pruning the TP-MR map", "err", err)
		return
	}
	t.expired.Add(uint64(len(old)))
	t.log.Warn("route: TP-MR mappings past their age removed (their reports never came)", "count", len(old), "max_age", t.maxAge)
}

func (t *translator) stats() MRStats {
	t.mu.Lock()
	n := len(t.maps)
	t.mu.Unlock()
	return MRStats{Mapped: n, Assigned: t.assigned.Load(), Translated: t.translated.Load(), Unmapped: t.unmapped.Load(),
		Dropped: t.dropped.Load(), Reused: t.reused.Load(), Expired: t.expired.Load(), Held: t.held.Load()}
}

// numKey is the form numbers are mapped by.
func numKey(s string) string {
	if a, err := sms.ParseMSISDN(s); err == nil {
		return a.String()
	}
	return strings.TrimSpace(s)
}

// Option configures New. An option given a value out of its range makes
// New fail with an error wrapping ErrInvalidOption.
type Option func(*options) error

// ErrInvalidOption is wrapped by New's error for an option given a value
// out of its range (WithBuffer(0), WithMaxAge(-1), WithClock(nil)).
var ErrInvalidOption = errors.New("route: invalid option")

type options struct {
	buffer    int
	statePath string
	maxAge    time.Duration
	log       *slog.Logger
	now       func() time.Time
}

// WithBuffer bounds the merged Inbound channel, at least 1 (default 256).
func WithBuffer(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: WithBuffer(%d): at least 1", ErrInvalidOption, n)
		}
		o.buffer = n
		return nil
	}
}

// WithStateFile keeps the TP-MR translation of numbers with several routes
// in the bbolt file at path. It is required when a number has more than one
// route (New fails without it), so that reports after a restart still find
// their sends.
func WithStateFile(path string) Option {
	return func(o *options) error {
		if path == "" {
			return fmt.Errorf("%w: WithStateFile(\"\")", ErrInvalidOption)
		}
		o.statePath = path
		return nil
	}
}

// WithMaxAge sets how long a mapping waits for its report, above 0
// (default 72 h, past any SMSC validity period).
func WithMaxAge(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithMaxAge(%v): must be positive", ErrInvalidOption, d)
		}
		o.maxAge = d
		return nil
	}
}

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		o.now = now
		return nil
	}
}

// sharedNumbers returns the numbers more than one route may send from, and
// whether every number is shared (two routes or more, one of them taking
// any number).
func sharedNumbers(routes []*route) (map[string]bool, bool) {
	count := map[string]int{}
	anyRoute := false
	for _, r := range routes {
		if len(r.numbers) == 0 {
			anyRoute = true
		}
		for n := range r.numbers {
			count[n]++
		}
	}
	if anyRoute && len(routes) > 1 {
		return nil, true
	}
	shared := map[string]bool{}
	for n, c := range count {
		if c > 1 {
			shared[n] = true
		}
	}
	return shared, false
}

// setupMR opens the translation when some number has several routes.
func (m *Mux) setupMR(o options) error {
	m.shared, m.allShared = sharedNumbers(m.routes)
	if !m.allShared && len(m.shared) == 0 {
		return nil
	}
	if o.statePath == "" {
		return fmt.Errorf("%w: a number has several routes: WithStateFile is required to keep their TP-MRs apart across restarts", ErrInvalidOption)
	}
	if o.maxAge == 0 {
		o.maxAge = 72 * time.Hour
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	tr, err := openTranslator(o.statePath, o.maxAge, o.now, o.log)
	if err != nil {
		return err
	}
	m.tr, m.log = tr, o.log
	m.flight = &sends{open: map[uint64]string{}, changed: make(chan struct{})}
	return nil
}

// sends tracks the sends that asked for a report whose TP-MR is not mapped
// yet, by TP-MR space. A report can overtake the mapping of its own send:
// the SMSC's receipt may reach a link (and the mux) before that link's
// SendTPDU returned to the mux. Such a report finds no mapping; it is held
// until its mapping appears or every send of its space in flight at its
// arrival has ended (mrHold at most).
type sends struct {
	mu      sync.Mutex
	next    uint64
	open    map[uint64]string // token -> space
	changed chan struct{}     // closed and replaced when a send ends
}

const (
	mrHold  = 30 * time.Second // longest a report waits for its mapping
	maxHeld = 1024             // reports held at once
)

// sending takes a token for a send on r that asked for a report (0: none
// needed).
func (m *Mux) sending(r *route, tpdu []byte) uint64 {
	if m.flight == nil || len(tpdu) == 0 || tpdu[0]&3 != 1 || tpdu[0]&0x20 == 0 {
		return 0
	}
	f := m.flight
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.open[f.next] = r.space()
	return f.next
}

// sent gives the token back once the send's TP-MR is mapped (or it failed).
func (m *Mux) sent(tok uint64) {
	if tok == 0 {
		return
	}
	f := m.flight
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, tok)
	close(f.changed)
	f.changed = make(chan struct{})
}

// inFlight returns the newest token, and whether a send of space is in
// flight.
func (f *sends) inFlight(space string) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sp := range f.open {
		if sp == space {
			return f.next, true
		}
	}
	return f.next, false
}

// settled reports whether the sends of space that took a token up to snap
// have all ended, or returns a channel closed at the next end.
func (f *sends) settled(snap uint64, space string) (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t, sp := range f.open {
		if t <= snap && sp == space {
			return false, f.changed
		}
	}
	return true, nil
}

func (m *Mux) isShared(number string) bool {
	return m.tr != nil && (m.allShared || m.shared[number])
}

// pruneMR removes mappings past their age every hour until Close.
func (m *Mux) pruneMR() {
	defer m.wg.Done()
	t := time.NewTicker(min(time.Hour, m.tr.maxAge/4))
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.tr.prune()
		}
	}
}

// space is the route's TP-MR space.
func (r *route) space() string {
	if r.Space != "" {
		return r.Space
	}
	return r.Name
}

// translateSent returns the TP-MR the bearer sees for a send route r
// accepted with TP-MR mr: the route's own for a number with one route or a
// send that asked for no report, else a mapped one.
func (m *Mux) translateSent(r *route, sim, to string, tpdu []byte, mr uint8) (string, uint8, error) {
	// SMS-SUBMIT (TP-MTI 01) with TP-SRR (bit 5) set.
	if len(tpdu) == 0 || tpdu[0]&3 != 1 || tpdu[0]&0x20 == 0 {
		return sim, mr, nil
	}
	from := numKey(sim)
	if !m.isShared(from) {
		return sim, mr, nil
	}
	v, err := m.tr.assign(r.space(), from, numKey(to), mr)
	if err != nil {
		// Sent, but no report could be told apart: the outbox sends it
		// again (a duplicate the receiver drops) rather than guess.
		return "", 0, &storeError{err}
	}
	return sim, v, nil
}

// storeError is a failure to record a sent SMS's TP-MR (retryable).
type storeError struct{ err error }

func (e *storeError) Error() string   { return e.err.Error() }
func (e *storeError) Unwrap() error   { return e.err }
func (e *storeError) Retryable() bool { return true }

// translateIn rewrites a status report that came in on r for a number with
// several routes to the TP-MR the bearer knows. It returns false when the
// report is not to be passed on now: held for a mapping still being stored
// (handed on by holdReport), or dropped (acknowledged): no mapping, and its
// TP-MR in use for another send, so passing it on could mark the wrong
// entry.
func (m *Mux) translateIn(r *route, msg sms.Inbound) (sms.Inbound, bool) {
	if m.tr == nil || len(msg.TPDU) < 2 || msg.TPDU[0]&3 != 2 {
		return msg, true
	}
	from := numKey(msg.SIM)
	if !m.isShared(from) {
		return msg, true
	}
	sr, err := pdu.ParseStatusReport(msg.TPDU)
	if err != nil {
		return msg, true // the bearer counts and drops what it cannot decode
	}
	to := numKey(sr.Recipient.String())
	if k, mp, ok := m.tr.lookup(r.space(), from, to, sr.MR); ok {
		return m.rewrite(msg, sr, k, mp), true
	}
	if snap, busy := m.flight.inFlight(r.space()); busy {
		if m.held.Add(1) <= maxHeld {
			m.tr.held.Add(1)
			m.heldWG.Add(1)
			go m.holdReport(inReport{r, msg, sr, from, to}, snap)
			return msg, false
		}
		m.held.Add(-1)
		m.log.Warn("route: too many status reports held for their mapping; this one is decided now", "route", r.Name)
	}
	return m.unmapped(inReport{r, msg, sr, from, to})
}

// inReport is a status report that came in on route r for a number with
// several routes: the message, its decoded report, and the SIM (from) and
// recipient (to) its TP-MR belongs to.
type inReport struct {
	r        *route
	msg      sms.Inbound
	sr       *pdu.StatusReport
	from, to string
}

// holdReport waits for the mapping of a report that overtook it, then hands
// the report on (or decides it as unmapped).
func (m *Mux) holdReport(in inReport, snap uint64) {
	r, msg, sr, from, to := in.r, in.msg, in.sr, in.from, in.to
	defer m.heldWG.Done()
	defer m.held.Add(-1)
	t := time.NewTimer(mrHold)
	defer t.Stop()
	for {
		if k, mp, ok := m.tr.lookup(r.space(), from, to, sr.MR); ok {
			m.handOn(m.rewrite(msg, sr, k, mp))
			return
		}
		done, changed := m.flight.settled(snap, r.space())
		if done {
			break
		}
		select {
		case <-changed:
			continue
		case <-t.C:
		case <-m.stop:
			if msg.Reject != nil {
				msg.Reject(context.Background()) // the transport delivers it again
			}
			return
		}
		break
	}
	if msg, ok := m.unmapped(in); ok {
		m.handOn(msg)
	}
}

// handOn passes a held report on to Inbound.
func (m *Mux) handOn(msg sms.Inbound) {
	select {
	case m.in <- msg:
	case <-m.stop:
		if msg.Reject != nil {
			msg.Reject(context.Background())
		}
	}
}

// rewrite gives msg the Mux's TP-MR of mapping k; a final report's
// acknowledgement removes the mapping.
func (m *Mux) rewrite(msg sms.Inbound, sr *pdu.StatusReport, k mrKey, mp mapping) sms.Inbound {
	m.tr.translated.Add(1)
	t := append([]byte(nil), msg.TPDU...)
	t[1] = mp.v
	msg.TPDU = t
	if pdu.ClassifyStatus(sr.Status) != pdu.StatusPending {
		ack := msg.Ack
		msg.Ack = func(ctx context.Context) error {
			if ack != nil {
				if err := ack(ctx); err != nil {
					return err
				}
			}
			if err := m.tr.forget(k, mp.v); err != nil {
				m.log.Error("route: forgetting a reported TP-MR", "err", err)
			}
			return nil
		}
	}
	return msg
}

// unmapped decides a report with no mapping: passed on unchanged when its
// TP-MR awaits no report, else acknowledged and dropped (false).
func (m *Mux) unmapped(in inReport) (sms.Inbound, bool) {
	r, msg, sr, from, to := in.r, in.msg, in.sr, in.from, in.to
	if !m.tr.used(from, to, sr.MR) {
		m.tr.unmapped.Add(1)
		return msg, true
	}
	m.tr.dropped.Add(1)
	m.log.Warn("route: status report for no mapped send, its TP-MR awaits another report: dropped",
		"route", r.Name, "sim", from, "recipient", to, "mr", sr.MR, "status", sr.Status)
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if msg.Ack != nil {
		if err := msg.Ack(ctx); err != nil {
			m.log.Warn("route: acknowledging a dropped status report", "route", r.Name, "err", err)
		}
	}
	return msg, false
}

// ackTimeout bounds the acknowledgement of a dropped report.
const ackTimeout = 10 * time.Second

// ErrNoStateFile is WriteStateTo's error when the Mux keeps no state file
// (no number has several routes, or the zero Mux).
var ErrNoStateFile = errors.New("route: no TP-MR state file open")

// KeepsState reports whether the Mux has its state file (WithStateFile)
// open: it does when some number has several routes.
func (m *Mux) KeepsState() bool { return m.tr != nil }

// WriteStateTo writes a consistent copy of the state file to w (one read
// transaction: sends go on meanwhile), for backups of a running daemon.
func (m *Mux) WriteStateTo(w io.Writer) (n int64, err error) {
	if m.tr == nil {
		return 0, ErrNoStateFile
	}
	err = m.tr.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// MRStats returns the TP-MR translation counters (zero when no number has
// several routes).
func (m *Mux) MRStats() MRStats {
	if m.tr == nil {
		return MRStats{}
	}
	return m.tr.stats()
}
