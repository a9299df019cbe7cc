package registry

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Store errors.
var (
	// ErrNotFound: no registration with that ID (the server answers 4.04).
	ErrNotFound = errors.New("lwm2m registry: registration not found")
	// ErrFull: the store holds its maximum of registrations (5.03).
	ErrFull = errors.New("lwm2m registry: store full")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("lwm2m registry: store closed")
	// ErrInvalidOption is wrapped by the error of NewMemory, NewBolt and
	// OpenBolt for an Options field out of its range (named in the error).
	ErrInvalidOption = errors.New("lwm2m registry: invalid option")
)

// Store keeps registrations, indexed by ID (the location) and by endpoint
// name, and orders them by expiry. Implementations are safe for concurrent
// use. Registrations handed to and returned by a Store are immutable: Update
// builds a new value.
type Store interface {
	// Add stores r. A zero r.ID is replaced by a fresh ID: 64 random bits
	// (crypto/rand) not in use, so that a registration's location cannot
	// be guessed from another one's. A registration with the same endpoint
	// name is replaced and returned as prev (the client registered again:
	// Core §6.2.1 makes the new one current).
	Add(ctx context.Context, r *Registration) (prev *Registration, err error)
	// Update replaces the registration id by fn(old). fn must not modify
	// old; it returns the new value (with the same ID and endpoint) or an
	// error, which Update returns unchanged.
	Update(ctx context.Context, id uint64, fn func(old *Registration) (*Registration, error)) (old, cur *Registration, err error)
	// Remove deletes the registration id and returns it.
	Remove(ctx context.Context, id uint64) (*Registration, error)
	// Get returns the registration with the given ID.
	Get(id uint64) (*Registration, bool)
	// ByEndpoint returns the registration of an endpoint name.
	ByEndpoint(name string) (*Registration, bool)
	// Len returns the number of registrations.
	Len() int
	// Range calls fn for each registration until fn returns false. It
	// iterates over the registrations present when it was called, holding
	// no lock while fn runs, so fn may call the store (and other locks
	// taken in fn cannot deadlock against the store's).
	Range(fn func(*Registration) bool)
	// Expire removes at most max registrations whose ExpiresAt plus the
	// store's grace is not after now, earliest first, and returns them.
	Expire(ctx context.Context, now time.Time, max int) ([]*Registration, error)
	// NextExpiry returns the earliest time Expire would remove something.
	NextExpiry() (time.Time, bool)
	// Close releases the store.
	Close() error
}

// Options configure a store. A zero field takes its default; a negative
// one makes the store's constructor fail with an error wrapping
// ErrInvalidOption.
type Options struct {
	// MaxRegistrations bounds the store (default 1,000,000); Add of a new
	// endpoint beyond it fails with ErrFull.
	MaxRegistrations int
	// Grace is added to a registration's lifetime before it expires
	// (default 0). Clients send Update shortly before the lifetime ends;
	// a few seconds of grace absorbs network delay.
	Grace time.Duration
}

// check refuses negative fields and fills in the default of zero ones.
func (o *Options) check() error {
	var f cfgcheck.Fields
	cfgcheck.Default(&f, "MaxRegistrations", &o.MaxRegistrations, 1_000_000)
	cfgcheck.NonNegative(&f, "Grace", o.Grace)
	return f.Err(ErrInvalidOption, "Options")
}

// index is the in-memory part shared by Memory and Bolt: two maps and an
// expiry min-heap of nodes. Callers hold index.mu.
type index struct {
	mu     sync.RWMutex
	opts   Options
	byID   map[uint64]*node
	byName map[string]*node
	exp    expHeap
	closed bool
}

// node is the store's handle on a registration: the current value and its
// position in the expiry heap. Registrations stay immutable; only nodes
// change, under the index lock.
type node struct {
	r    *Registration
	hidx int
}

func newIndex(o Options) (*index, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	return &index{opts: o, byID: map[uint64]*node{}, byName: map[string]*node{}}, nil
}

// freshID returns a random non-zero ID not in use. Locations are the only
// thing a NoSec client shows to update or delete its registration, so
// they carry 64 bits from crypto/rand (whose Read does not fail), never a
// sequence number.
func (x *index) freshID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 && x.byID[id] == nil {
			return id
		}
	}
}

func (x *index) get(id uint64) (*Registration, bool) {
	if n, ok := x.byID[id]; ok {
		return n.r, true
	}
	return nil, false
}

func (x *index) byEndpoint(name string) (*Registration, bool) {
	if n, ok := x.byName[name]; ok {
		return n.r, true
	}
	return nil, false
}

// put inserts r (assigned an ID already), replacing any registration of the
// same endpoint or ID; it returns the replaced registration of the endpoint.
func (x *index) put(r *Registration) (prev *Registration) {
	if old, ok := x.byName[r.Endpoint]; ok {
		x.del(old)
		prev = old.r
	}
	if old, ok := x.byID[r.ID]; ok {
		x.del(old)
	}
	n := &node{r: r}
	x.byID[r.ID] = n
	x.byName[r.Endpoint] = n
	heap.Push(&x.exp, n)
	return prev
}

func (x *index) del(n *node) {
	delete(x.byID, n.r.ID)
	if cur, ok := x.byName[n.r.Endpoint]; ok && cur == n {
		delete(x.byName, n.r.Endpoint)
	}
	if n.hidx >= 0 && n.hidx < len(x.exp) && x.exp[n.hidx] == n {
		heap.Remove(&x.exp, n.hidx)
	}
}

// delReg removes r if it is still current; it reports whether it was.
func (x *index) delReg(r *Registration) bool {
	n, ok := x.byID[r.ID]
	if !ok || n.r != r {
		return false
	}
	x.del(n)
	return true
}

// replace makes cur (same ID and endpoint as old) current. It reports
// false when old is no longer current.
func (x *index) replace(old, cur *Registration) bool {
	n, ok := x.byID[old.ID]
	if !ok || n.r != old {
		return false
	}
	n.r = cur
	heap.Fix(&x.exp, n.hidx)
	return true
}

func (x *index) full(r *Registration) bool {
	_, exists := x.byName[r.Endpoint]
	return !exists && len(x.byID) >= x.opts.MaxRegistrations
}

// due returns up to max registrations expired at now, earliest first,
// without removing them.
func (x *index) due(now time.Time, max int) []*Registration {
	limit := now.UnixNano() - int64(x.opts.Grace)
	var popped []*node
	for len(x.exp) > 0 && len(popped) < max && x.exp[0].r.expiry() <= limit {
		popped = append(popped, heap.Pop(&x.exp).(*node))
	}
	out := make([]*Registration, len(popped))
	for i, n := range popped {
		heap.Push(&x.exp, n)
		out[i] = n.r
	}
	return out
}

func (x *index) nextExpiry() (time.Time, bool) {
	if len(x.exp) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, x.exp[0].r.expiry()).Add(x.opts.Grace), true
}

// rangeAll calls fn for each registration of a snapshot taken under the
// read lock, and calls fn without the lock: a callback that calls back
// into the store (the queue's holder check asks ByEndpoint) must not
// take the read lock again while a writer waits, which deadlocks a
// sync.RWMutex.
func (x *index) rangeAll(fn func(*Registration) bool) {
	x.mu.RLock()
	regs := make([]*Registration, 0, len(x.byID))
	for _, n := range x.byID {
		regs = append(regs, n.r)
	}
	x.mu.RUnlock()
	for _, r := range regs {
		if !fn(r) {
			return
		}
	}
}

// expHeap orders nodes by expiry; node.hidx is the heap position.
type expHeap []*node

func (h expHeap) Len() int { return len(h) }
func (h expHeap) Less(i, j int) bool {
	a, b := h[i].r.expiry(), h[j].r.expiry()
	if a != b {
		return a < b
	}
	return h[i].r.ID < h[j].r.ID
}
func (h expHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *expHeap) Push(v any) {
	n := v.(*node)
	n.hidx = len(*h)
	*h = append(*h, n)
}
func (h *expHeap) Pop() any {
	old := *h
	k := len(old) - 1
	n := old[k]
	old[k] = nil
	n.hidx = -1
	*h = old[:k]
	return n
}

// Memory is an in-memory Store. Registrations are lost on restart; use Bolt
// for a durable store. The zero Memory is an empty store with the default
// Options.
type Memory struct {
	once sync.Once
	x    *index
}

// index returns the store's index, creating it for a zero Memory.
func (m *Memory) index() *index {
	m.once.Do(func() {
		if m.x == nil {
			m.x, _ = newIndex(Options{}) // zero Options: never refused
		}
	})
	return m.x
}

// NewMemory returns an empty in-memory store, or an error wrapping
// ErrInvalidOption when a field of o is out of its range.
func NewMemory(o Options) (*Memory, error) {
	x, err := newIndex(o)
	if err != nil {
		return nil, err
	}
	return &Memory{x: x}, nil
}

var _ Store = (*Memory)(nil)

// Add implements Store.
func (m *Memory) Add(ctx context.Context, r *Registration) (*Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	x := m.index()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, ErrClosed
	}
	if x.full(r) {
		return nil, ErrFull
	}
	if r.ID == 0 {
		r.ID = x.freshID()
	}
	return x.put(r), nil
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, id uint64, fn func(*Registration) (*Registration, error)) (*Registration, *Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	x := m.index()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, nil, ErrClosed
	}
	old, ok := x.get(id)
	if !ok {
		return nil, nil, ErrNotFound
	}
	cur, err := fn(old)
	if err != nil {
		return old, nil, err
	}
	cur.ID, cur.Endpoint = old.ID, old.Endpoint
	x.replace(old, cur)
	return old, cur, nil
}

// Remove implements Store.
func (m *Memory) Remove(ctx context.Context, id uint64) (*Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	x := m.index()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil, ErrClosed
	}
	r, ok := x.get(id)
	if !ok {
		return nil, ErrNotFound
	}
	x.delReg(r)
	return r, nil
}

// Get implements Store.
func (m *Memory) Get(id uint64) (*Registration, bool) {
	x := m.index()
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.get(id)
}

// ByEndpoint implements Store.
func (m *Memory) ByEndpoint(name string) (*Registration, bool) {
	x := m.index()
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.byEndpoint(name)
}

// Len implements Store.
func (m *Memory) Len() int {
	x := m.index()
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// Range implements Store.
func (m *Memory) Range(fn func(*Registration) bool) {
	m.index().rangeAll(fn)
}

// Expire implements Store.
func (m *Memory) Expire(ctx context.Context, now time.Time, max int) ([]*Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	x := m.index()
	x.mu.Lock()
	defer x.mu.Unlock()
	out := x.due(now, max)
	for _, r := range out {
		x.delReg(r)
	}
	return out, nil
}

// NextExpiry implements Store.
func (m *Memory) NextExpiry() (time.Time, bool) {
	x := m.index()
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.nextExpiry()
}

// Close implements Store.
func (m *Memory) Close() error {
	x := m.index()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.closed = true
	return nil
}
