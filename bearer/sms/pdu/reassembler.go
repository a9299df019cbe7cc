package pdu

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Reassembler errors.
var (
	// ErrTotalMismatch: a segment's total disagrees with the pending set of
	// the same originator and reference.
	ErrTotalMismatch = errors.New("pdu: segment total disagrees with its set")
	// ErrConflict: a segment repeats a sequence number already held, with
	// different bytes.
	ErrConflict = errors.New("pdu: segment conflicts with one already held")
	// ErrDuplicate: a segment repeats one already held, byte for byte; it is
	// ignored (not an error to report upstream, but counted).
	ErrDuplicate = errors.New("pdu: duplicate segment")
	// ErrBadSegment: a part with an impossible concatenation or size.
	ErrBadSegment = errors.New("pdu: invalid segment")
)

// Part is one received SMS as the Reassembler takes it.
type Part struct {
	// Originator is the sender, normally Address.String() of TP-OA.
	Originator string
	// Concat is the concatenation IE; zero for a single SMS.
	Concat Concat
	// Ports is the application port IE, if any.
	Ports Ports
	// Data is the 8-bit user data after the header. The Reassembler keeps
	// a copy; the caller may reuse Data after Add returns.
	Data []byte
}

// PartOf returns the Part of an SMS-DELIVER, or an error wrapping
// ErrNotBinary if it does not carry 8-bit data.
//
// A concatenation IE that TS 23.040 §9.2.3.24.1 says to ignore (sequence 0,
// sequence above total, total 0, wrong length) would turn one segment into
// a whole datagram: a truncated CoAP message that may still parse. PartOf
// refuses such an SMS with ErrBadSegment instead.
func PartOf(d *Deliver) (Part, error) {
	b, err := d.Binary()
	if err != nil {
		return Part{}, fmt.Errorf("from %s: %w", d.Originator, err)
	}
	for _, id := range d.UDH.Ignored {
		if id == IEConcat8 || id == IEConcat16 {
			return Part{}, fmt.Errorf("from %s: %w: malformed concatenation IE 0x%02X", d.Originator, ErrBadSegment, id)
		}
	}
	return Part{Originator: d.Originator.String(), Concat: d.UDH.Concat, Ports: d.UDH.Ports, Data: b}, nil
}

// SetKey names a set of segments: (originator, reference, total, reference
// size). Two sets of one originator with the same reference and reference
// size cannot be pending at once; a segment with another total is refused.
//
// The zero SetKey names no set: the empty originator, reference 0, total 0.
type SetKey struct {
	Originator string
	Ref        uint16
	Ref16      bool
	Total      uint8
}

func (k SetKey) String() string {
	bits := 8
	if k.Ref16 {
		bits = 16
	}
	return fmt.Sprintf("%s ref %d/%d-bit total %d", k.Originator, k.Ref, bits, k.Total)
}

// Datagram is a complete message.
type Datagram struct {
	Originator string
	Data       []byte
	Ports      Ports
	// Segments is the number of SMS it came in (1 for a single SMS).
	Segments int
	// Key is the set it was reassembled from (zero for a single SMS).
	Key SetKey
}

// DropReason says why a pending set was given up.
type DropReason uint8

// Drop reasons.
const (
	// DropExpired: the set's deadline passed before it was complete.
	DropExpired DropReason = iota + 1
	// DropOriginatorCap: a new set of the same originator needed room.
	DropOriginatorCap
	// DropSetCap: a new set needed room under the global set cap.
	DropSetCap
	// DropByteCap: new bytes needed room under the global byte cap.
	DropByteCap
	// DropClosed: Reset discarded the set.
	DropClosed
	// DropLateDuplicate: the set expired holding only segments equal to
	// those of a set completed shortly before: late SMSC duplicates, not a
	// lost message.
	DropLateDuplicate
)

func (r DropReason) String() string {
	switch r {
	case DropExpired:
		return "expired"
	case DropOriginatorCap:
		return "originator-cap"
	case DropSetCap:
		return "set-cap"
	case DropByteCap:
		return "byte-cap"
	case DropClosed:
		return "reset"
	case DropLateDuplicate:
		return "late-duplicate"
	}
	return "unknown"
}

// Dropped describes a set that was given up.
type Dropped struct {
	Key      SetKey
	Reason   DropReason
	Received int // distinct segments held
	Bytes    int // payload bytes held
	Age      time.Duration
}

// ReassemblerConfig sets the Reassembler's limits. Zero fields take the
// defaults shown; a negative one, or a MaxBytes below one SMS, makes
// NewReassembler fail with an error wrapping ErrInvalidOption.
type ReassemblerConfig struct {
	// Timeout is how long a set may stay incomplete after its first
	// segment arrived (default 10 min; SMS may be delayed by minutes).
	Timeout time.Duration
	// MaxSetsPerOriginator caps pending sets of one originator (default 8).
	MaxSetsPerOriginator int
	// MaxSets caps pending sets in all (default 4,096).
	MaxSets int
	// MaxBytes caps payload bytes held in all (default 16 MiB; at least
	// 140, MaxUserData).
	MaxBytes int
	// OnDrop, if set, is called for every set given up, after the
	// Reassembler's lock is released, on the goroutine that caused it.
	OnDrop func(Dropped)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ReassemblerStats are the Reassembler's counters and gauges.
type ReassemblerStats struct {
	PendingSets int // gauge
	BytesHeld   int // gauge: payload bytes of pending sets
	// Remembered is a gauge of recently completed sets kept (as one 64-bit
	// hash a segment) to recognise late duplicates.
	Remembered int
	Single     uint64
	Completed  uint64 // concatenated datagrams completed
	Segments   uint64 // segments accepted into sets
	Duplicates uint64
	Conflicts  uint64
	Mismatches uint64 // total disagreed with the set
	Invalid    uint64
	Expired    uint64
	Evicted    uint64 // by any cap
	// LateDuplicates counts sets dropped as DropLateDuplicate.
	LateDuplicates uint64
}

// Reassembler rebuilds concatenated messages. It starts no goroutine: the
// owner calls Add for every SMS and Sweep from time to time (NextDeadline
// says when). It is safe for concurrent use. The zero Reassembler is ready
// to use, with the limits of a zero ReassemblerConfig (the defaults).
type Reassembler struct {
	cfg ReassemblerConfig

	mu     sync.Mutex
	sets   map[setID]*pendingSet
	perOA  map[string]int
	oldest *pendingSet // doubly linked list in creation (= deadline) order
	newest *pendingSet
	bytes  int
	st     ReassemblerStats

	// Recently completed sets, so that a late duplicate segment (SMSCs do
	// resend) is recognised instead of opening a set that would only
	// expire. Bounded by MaxSets, kept for Timeout; only a 64-bit hash per
	// segment is held.
	done     map[setID]*doneSet
	doneFIFO []*doneSet
}

type doneSet struct {
	id      setID
	total   uint8
	hashes  []uint64
	expires time.Time
}

func segHash(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

type setID struct {
	oa    string
	ref   uint16
	ref16 bool
}

type pendingSet struct {
	key        SetKey
	ports      Ports
	created    time.Time
	deadline   time.Time
	parts      [][]byte // index seq-1; nil when missing
	have       int
	bytes      int
	suspect    bool // holds only segments equal to a completed set's
	prev, next *pendingSet
}

// NewReassembler returns a Reassembler with cfg's limits, or an error
// wrapping ErrInvalidOption naming the fields out of range. A zero
// Reassembler is usable too, with the defaults of a zero config.
func NewReassembler(cfg ReassemblerConfig) (*Reassembler, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Reassembler{cfg: cfg}
	r.initLocked()
	return r, nil
}

// check refuses negative fields and a MaxBytes that cannot hold one SMS;
// zero fields take their defaults in initLocked.
func (c *ReassemblerConfig) check() error {
	var f cfgcheck.Fields
	cfgcheck.NonNegative(&f, "Timeout", c.Timeout)
	cfgcheck.NonNegative(&f, "MaxSetsPerOriginator", c.MaxSetsPerOriginator)
	cfgcheck.NonNegative(&f, "MaxSets", c.MaxSets)
	switch {
	case c.MaxBytes < 0:
		cfgcheck.NonNegative(&f, "MaxBytes", c.MaxBytes)
	case c.MaxBytes > 0 && c.MaxBytes < MaxUserData:
		f.Badf("MaxBytes %d is below one SMS's user data (%d)", c.MaxBytes, MaxUserData)
	}
	return f.Err(ErrInvalidOption, "ReassemblerConfig")
}

// initLocked applies the defaults on first use; r.mu is held (or r is not
// shared yet).
func (r *Reassembler) initLocked() {
	if r.sets != nil {
		return
	}
	cfg := &r.cfg
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.MaxSetsPerOriginator <= 0 {
		cfg.MaxSetsPerOriginator = 8
	}
	if cfg.MaxSets <= 0 {
		cfg.MaxSets = 4096
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 16 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r.sets, r.perOA, r.done = make(map[setID]*pendingSet), make(map[string]int), make(map[setID]*doneSet)
}

// Stats returns a snapshot of the counters.
func (r *Reassembler) Stats() ReassemblerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	s.PendingSets = len(r.sets)
	s.BytesHeld = r.bytes
	s.Remembered = len(r.done)
	return s
}

// NextDeadline returns the earliest deadline of a pending set, and false
// when none is pending.
func (r *Reassembler) NextDeadline() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.oldest == nil {
		return time.Time{}, false
	}
	return r.oldest.deadline, true
}

// Sweep gives up every set whose deadline has passed and reports each to
// OnDrop. It returns how many were dropped.
func (r *Reassembler) Sweep() int {
	r.mu.Lock()
	r.initLocked()
	now := r.cfg.Now()
	drops := r.expireLocked(now)
	r.pruneDoneLocked(now)
	r.mu.Unlock()
	r.report(drops)
	return len(drops)
}

// Reset drops every pending set (reason DropClosed).
func (r *Reassembler) Reset() {
	r.mu.Lock()
	r.initLocked()
	now := r.cfg.Now()
	var drops []Dropped
	for r.oldest != nil {
		drops = append(drops, r.removeLocked(r.oldest, DropClosed, now))
	}
	r.mu.Unlock()
	r.report(drops)
}

func (r *Reassembler) report(drops []Dropped) {
	if r.cfg.OnDrop == nil {
		return
	}
	for _, d := range drops {
		r.cfg.OnDrop(d)
	}
}

// Add takes one SMS. It returns the complete datagram when p completes a
// set or is a single SMS, nil while a set is still incomplete, and an error
// (ErrDuplicate, ErrConflict, ErrTotalMismatch, ErrBadSegment) when p is
// not used. Sets that expire or are evicted meanwhile go to OnDrop.
func (r *Reassembler) Add(p Part) (*Datagram, error) {
	c := p.Concat
	if len(p.Data) > MaxUserData {
		r.count(func(s *ReassemblerStats) { s.Invalid++ })
		return nil, fmt.Errorf("%w: %d bytes in one SMS", ErrBadSegment, len(p.Data))
	}
	if c.IsZero() || c.Total == 1 {
		if !c.IsZero() && c.Seq != 1 {
			r.count(func(s *ReassemblerStats) { s.Invalid++ })
			return nil, fmt.Errorf("%w: sequence %d of 1", ErrBadSegment, c.Seq)
		}
		r.count(func(s *ReassemblerStats) { s.Single++ })
		return &Datagram{Originator: p.Originator, Data: bytes.Clone(p.Data), Ports: p.Ports, Segments: 1}, nil
	}
	if c.Seq == 0 || c.Seq > c.Total {
		r.count(func(s *ReassemblerStats) { s.Invalid++ })
		return nil, fmt.Errorf("%w: sequence %d of %d", ErrBadSegment, c.Seq, c.Total)
	}
	r.mu.Lock()
	r.initLocked()
	now := r.cfg.Now()
	drops := r.expireLocked(now)
	dg, err := r.addLocked(p, now, &drops)
	r.mu.Unlock()
	r.report(drops)
	return dg, err
}

func (r *Reassembler) count(f func(*ReassemblerStats)) {
	r.mu.Lock()
	f(&r.st)
	r.mu.Unlock()
}

func (r *Reassembler) addLocked(p Part, now time.Time, drops *[]Dropped) (*Datagram, error) {
	c := p.Concat
	id := setID{p.Originator, c.Ref, c.Ref16}
	s := r.sets[id]
	r.pruneDoneLocked(now)
	late := r.lateDuplicateLocked(id, s, p)
	if err := r.checkSlotLocked(s, p); err != nil {
		return nil, err
	}
	s = r.makeRoomLocked(s, len(p.Data), now, drops)
	if s == nil {
		s = r.openLocked(id, p, now, drops)
		s.suspect = late
	} else if !late {
		s.suspect = false
	}
	r.fillLocked(s, p)
	if s.have < int(s.key.Total) {
		return nil, nil
	}
	return r.completeLocked(id, s, now), nil
}

// lateDuplicateLocked reports whether p equals the segment at its place
// in a set of id completed within Timeout: most likely a late SMSC
// duplicate. It is not dropped (a new message that reuses the reference
// may share a segment byte for byte): it opens or joins a set marked
// suspect, which, if it expires holding only such segments, is reported as
// DropLateDuplicate rather than as a loss. A differing segment with no set
// of id pending forgets the completed set: a new message reuses the
// reference.
func (r *Reassembler) lateDuplicateLocked(id setID, s *pendingSet, p Part) bool {
	d := r.done[id]
	if d == nil {
		return false
	}
	c := p.Concat
	if d.total == c.Total && d.hashes[c.Seq-1] == segHash(p.Data) {
		return true
	}
	if s == nil {
		delete(r.done, id)
	}
	return false
}

// checkSlotLocked refuses p when the pending set s (nil: none) has
// another total, or already holds segment p.Concat.Seq (a duplicate when
// equal, a conflict when not).
func (r *Reassembler) checkSlotLocked(s *pendingSet, p Part) error {
	if s == nil {
		return nil
	}
	c := p.Concat
	if s.key.Total != c.Total {
		r.st.Mismatches++
		return fmt.Errorf("%w: %s got a segment with total %d", ErrTotalMismatch, s.key, c.Total)
	}
	if old := s.parts[c.Seq-1]; old != nil {
		if bytes.Equal(old, p.Data) {
			r.st.Duplicates++
			return fmt.Errorf("%w: %s segment %d", ErrDuplicate, s.key, c.Seq)
		}
		r.st.Conflicts++
		return fmt.Errorf("%w: %s segment %d", ErrConflict, s.key, c.Seq)
	}
	return nil
}

// makeRoomLocked evicts the oldest sets until n more bytes fit MaxBytes,
// never the set s being filled; when only s is left and the bytes still do
// not fit, s is given up too and makeRoomLocked returns nil, else s.
func (r *Reassembler) makeRoomLocked(s *pendingSet, n int, now time.Time, drops *[]Dropped) *pendingSet {
	for r.bytes+n > r.cfg.MaxBytes && r.oldest != nil {
		victim := r.oldest
		if victim == s {
			if victim = s.next; victim == nil {
				break
			}
		}
		*drops = append(*drops, r.removeLocked(victim, DropByteCap, now))
	}
	if r.bytes+n > r.cfg.MaxBytes {
		*drops = append(*drops, r.removeLocked(s, DropByteCap, now))
		return nil
	}
	return s
}

// openLocked opens the set of id for p's message, first evicting the
// originator's oldest sets past MaxSetsPerOriginator and the oldest sets
// past MaxSets.
func (r *Reassembler) openLocked(id setID, p Part, now time.Time, drops *[]Dropped) *pendingSet {
	for r.perOA[p.Originator] >= r.cfg.MaxSetsPerOriginator {
		victim := r.oldestOf(p.Originator)
		if victim == nil {
			break
		}
		*drops = append(*drops, r.removeLocked(victim, DropOriginatorCap, now))
	}
	for len(r.sets) >= r.cfg.MaxSets && r.oldest != nil {
		*drops = append(*drops, r.removeLocked(r.oldest, DropSetCap, now))
	}
	c := p.Concat
	s := &pendingSet{
		key:     SetKey{Originator: p.Originator, Ref: c.Ref, Ref16: c.Ref16, Total: c.Total},
		ports:   p.Ports,
		created: now, deadline: now.Add(r.cfg.Timeout),
		parts: make([][]byte, c.Total),
	}
	r.sets[id] = s
	r.perOA[p.Originator]++
	r.pushLocked(s)
	return s
}

// fillLocked stores a copy of p's data at its place in s and counts it.
func (r *Reassembler) fillLocked(s *pendingSet, p Part) {
	seq := p.Concat.Seq
	s.parts[seq-1] = bytes.Clone(p.Data)
	if s.parts[seq-1] == nil {
		s.parts[seq-1] = []byte{}
	}
	s.have++
	s.bytes += len(p.Data)
	r.bytes += len(p.Data)
	r.st.Segments++
}

// completeLocked joins the segments of the full set s, unlinks it and
// remembers it as completed for the late-duplicate check.
func (r *Reassembler) completeLocked(id setID, s *pendingSet, now time.Time) *Datagram {
	data := make([]byte, 0, s.bytes)
	for _, b := range s.parts {
		data = append(data, b...)
	}
	r.unlinkLocked(s)
	r.st.Completed++
	r.rememberLocked(id, s, now)
	return &Datagram{Originator: s.key.Originator, Data: data, Ports: s.ports, Segments: int(s.key.Total), Key: s.key}
}

func (r *Reassembler) rememberLocked(id setID, s *pendingSet, now time.Time) {
	d := &doneSet{id: id, total: s.key.Total, hashes: make([]uint64, len(s.parts)), expires: now.Add(r.cfg.Timeout)}
	for i, b := range s.parts {
		d.hashes[i] = segHash(b)
	}
	for len(r.doneFIFO) >= r.cfg.MaxSets {
		r.dropDoneLocked()
	}
	r.done[id] = d
	r.doneFIFO = append(r.doneFIFO, d)
}

func (r *Reassembler) dropDoneLocked() {
	d := r.doneFIFO[0]
	r.doneFIFO[0] = nil
	r.doneFIFO = r.doneFIFO[1:]
	if r.done[d.id] == d {
		delete(r.done, d.id)
	}
}

func (r *Reassembler) pruneDoneLocked(now time.Time) {
	for len(r.doneFIFO) > 0 && !now.Before(r.doneFIFO[0].expires) {
		r.dropDoneLocked()
	}
}

func (r *Reassembler) oldestOf(oa string) *pendingSet {
	for s := r.oldest; s != nil; s = s.next {
		if s.key.Originator == oa {
			return s
		}
	}
	return nil // unreachable while perOA is consistent
}

func (r *Reassembler) expireLocked(now time.Time) []Dropped {
	var drops []Dropped
	for r.oldest != nil && !now.Before(r.oldest.deadline) {
		drops = append(drops, r.removeLocked(r.oldest, DropExpired, now))
	}
	return drops
}

func (r *Reassembler) pushLocked(s *pendingSet) {
	s.prev = r.newest
	if r.newest != nil {
		r.newest.next = s
	} else {
		r.oldest = s
	}
	r.newest = s
}

// unlinkLocked forgets s without reporting it.
func (r *Reassembler) unlinkLocked(s *pendingSet) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		r.oldest = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		r.newest = s.prev
	}
	s.prev, s.next = nil, nil
	delete(r.sets, setID{s.key.Originator, s.key.Ref, s.key.Ref16})
	if r.perOA[s.key.Originator]--; r.perOA[s.key.Originator] <= 0 {
		delete(r.perOA, s.key.Originator)
	}
	r.bytes -= s.bytes
}

func (r *Reassembler) removeLocked(s *pendingSet, why DropReason, now time.Time) Dropped {
	r.unlinkLocked(s)
	if why == DropExpired && s.suspect {
		why = DropLateDuplicate
		r.st.LateDuplicates++
	} else if why == DropExpired {
		r.st.Expired++
	} else if why != DropClosed {
		r.st.Evicted++
	}
	return Dropped{Key: s.key, Reason: why, Received: s.have, Bytes: s.bytes, Age: now.Sub(s.created)}
}
