package registry

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketRegs = []byte("lwm2m.registrations")
	bucketMeta = []byte("lwm2m.registry.meta")
	keyNextID  = []byte("next-id")
)

const stripes = 256

// Bolt is a durable Store: every change is committed (and fsync'd) to a
// bbolt database before the call returns, so the server answers a client
// only after its registration is on disk. Reads are served from an
// in-memory index loaded at Open. Concurrent writers are grouped into
// shared transactions with bbolt's Batch, so one fsync covers many
// registrations under load.
//
// Changes to the same endpoint are serialised by striped locks, so the
// database and the index apply them in the same order.
//
// A zero Bolt (not opened) is a closed store: changes fail with ErrClosed
// and it holds nothing.
type Bolt struct {
	db     *bolt.DB
	x      *index
	dec    AddrDecoder
	seed   maphash.Seed
	locks  [stripes]sync.Mutex
	ownsDB bool
}

var _ Store = (*Bolt)(nil)

// BoltOptions configure OpenBolt and NewBolt; see Options for the ranges.
type BoltOptions struct {
	Options
	// AddrDecoder rebuilds non-UDP addresses at load; nil keeps StoredAddr.
	AddrDecoder AddrDecoder
	// Logger receives a line per corrupt record skipped at load
	// (default: none, a discard logger).
	Logger *slog.Logger
}

// OpenBolt opens (creating if needed) the bbolt file at path and loads its
// registrations.
func OpenBolt(path string, o BoltOptions) (*Bolt, error) {
	if err := o.check(); err != nil { // before the file is made
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("lwm2m registry: open %s: %w", path, err)
	}
	b, err := NewBolt(db, o)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	b.ownsDB = true
	return b, nil
}

// NewBolt uses an open bbolt database (shared with other stores of the
// daemon; Close then leaves it open) and loads its registrations.
func NewBolt(db *bolt.DB, o BoltOptions) (*Bolt, error) {
	x, err := newIndex(o.Options)
	if err != nil {
		return nil, err
	}
	b := &Bolt{db: db, x: x, dec: o.AddrDecoder, seed: maphash.MakeSeed()}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var corrupt [][]byte
	err = db.Update(func(tx *bolt.Tx) error {
		regs, err := tx.CreateBucketIfNotExists(bucketRegs)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		// Older versions kept a sequence counter here; IDs are random now.
		if meta.Get(keyNextID) != nil {
			if err := meta.Delete(keyNextID); err != nil {
				return err
			}
		}
		err = regs.ForEach(func(k, v []byte) error {
			r, err := UnmarshalRegistration(v, b.dec)
			if err != nil || len(k) != 8 || binary.BigEndian.Uint64(k) != r.ID {
				log.Warn("lwm2m registry: skipping corrupt record", "key", fmt.Sprintf("%x", k), "err", err)
				corrupt = append(corrupt, slices.Clone(k))
				return nil
			}
			// Two records of one endpoint can only come from a crash between
			// racing Adds; the higher ID is the later Register.
			if prev, ok := b.x.byEndpoint(r.Endpoint); ok && prev.ID > r.ID {
				corrupt = append(corrupt, slices.Clone(k))
				return nil
			} else if ok {
				corrupt = append(corrupt, idKey(prev.ID))
			}
			b.x.put(r)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range corrupt {
			if err := regs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lwm2m registry: load: %w", err)
	}
	return b, nil
}

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func (b *Bolt) stripe(name string) int {
	return int(maphash.String(b.seed, name) % stripes)
}

// Add implements Store.
func (b *Bolt) Add(ctx context.Context, r *Registration) (*Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.x == nil {
		return nil, ErrClosed
	}
	l := &b.locks[b.stripe(r.Endpoint)]
	l.Lock()
	defer l.Unlock()
	x := b.x
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil, ErrClosed
	}
	if x.full(r) {
		x.mu.Unlock()
		return nil, ErrFull
	}
	if r.ID == 0 {
		r.ID = x.freshID()
	}
	prev, _ := x.byEndpoint(r.Endpoint)
	x.mu.Unlock()

	rec := MarshalRegistration(nil, r)
	err := b.db.Batch(func(tx *bolt.Tx) error {
		if prev != nil && prev.ID != r.ID {
			if err := tx.Bucket(bucketRegs).Delete(idKey(prev.ID)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketRegs).Put(idKey(r.ID), rec)
	})
	if err != nil {
		return nil, fmt.Errorf("lwm2m registry: store %s: %w", r.Endpoint, err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.put(r), nil
}

// lockID finds registration id and locks its endpoint's stripe; it returns
// the registration current under the lock, or ErrNotFound.
func (b *Bolt) lockID(id uint64) (*Registration, *sync.Mutex, error) {
	if b.x == nil {
		return nil, nil, ErrClosed
	}
	for range 3 {
		r, ok := b.Get(id)
		if !ok {
			return nil, nil, ErrNotFound
		}
		l := &b.locks[b.stripe(r.Endpoint)]
		l.Lock()
		if cur, ok := b.Get(id); ok && cur.Endpoint == r.Endpoint {
			return cur, l, nil
		}
		l.Unlock()
	}
	return nil, nil, ErrNotFound
}

// Update implements Store.
func (b *Bolt) Update(ctx context.Context, id uint64, fn func(*Registration) (*Registration, error)) (*Registration, *Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	old, l, err := b.lockID(id)
	if err != nil {
		return nil, nil, err
	}
	defer l.Unlock()
	cur, err := fn(old)
	if err != nil {
		return old, nil, err
	}
	cur.ID, cur.Endpoint = old.ID, old.Endpoint
	rec := MarshalRegistration(nil, cur)
	if err := b.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRegs).Put(idKey(id), rec)
	}); err != nil {
		return old, nil, fmt.Errorf("lwm2m registry: update %s: %w", old.Endpoint, err)
	}
	b.x.mu.Lock()
	defer b.x.mu.Unlock()
	if !b.x.replace(old, cur) { // removed meanwhile: keep it gone
		return old, nil, ErrNotFound
	}
	return old, cur, nil
}

// Remove implements Store.
func (b *Bolt) Remove(ctx context.Context, id uint64) (*Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, l, err := b.lockID(id)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if err := b.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRegs).Delete(idKey(id))
	}); err != nil {
		return nil, fmt.Errorf("lwm2m registry: remove %s: %w", r.Endpoint, err)
	}
	b.x.mu.Lock()
	defer b.x.mu.Unlock()
	b.x.delReg(r)
	return r, nil
}

// Expire implements Store. The expired records are deleted in one
// transaction.
func (b *Bolt) Expire(ctx context.Context, now time.Time, max int) ([]*Registration, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.x == nil {
		return nil, ErrClosed
	}
	b.x.mu.Lock() // due reorders the heap
	cand := b.x.due(now, max)
	b.x.mu.Unlock()
	if len(cand) == 0 {
		return nil, nil
	}
	idx := make([]int, 0, len(cand))
	for _, r := range cand {
		idx = append(idx, b.stripe(r.Endpoint))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		b.locks[i].Lock()
	}
	defer func() {
		for _, i := range idx {
			b.locks[i].Unlock()
		}
	}()
	limit := now.UnixNano() - int64(b.x.opts.Grace)
	b.x.mu.RLock()
	out := cand[:0]
	for _, r := range cand {
		if cur, ok := b.x.get(r.ID); ok && cur == r && r.expiry() <= limit {
			out = append(out, r)
		}
	}
	b.x.mu.RUnlock()
	if err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketRegs)
		for _, r := range out {
			if err := bk.Delete(idKey(r.ID)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("lwm2m registry: expire: %w", err)
	}
	b.x.mu.Lock()
	defer b.x.mu.Unlock()
	for _, r := range out {
		b.x.delReg(r)
	}
	return out, nil
}

// Get implements Store.
func (b *Bolt) Get(id uint64) (*Registration, bool) {
	if b.x == nil {
		return nil, false
	}
	b.x.mu.RLock()
	defer b.x.mu.RUnlock()
	return b.x.get(id)
}

// ByEndpoint implements Store.
func (b *Bolt) ByEndpoint(name string) (*Registration, bool) {
	if b.x == nil {
		return nil, false
	}
	b.x.mu.RLock()
	defer b.x.mu.RUnlock()
	return b.x.byEndpoint(name)
}

// Len implements Store.
func (b *Bolt) Len() int {
	if b.x == nil {
		return 0
	}
	b.x.mu.RLock()
	defer b.x.mu.RUnlock()
	return len(b.x.byID)
}

// Range implements Store.
func (b *Bolt) Range(fn func(*Registration) bool) {
	if b.x == nil {
		return
	}
	b.x.rangeAll(fn)
}

// NextExpiry implements Store.
func (b *Bolt) NextExpiry() (time.Time, bool) {
	if b.x == nil {
		return time.Time{}, false
	}
	b.x.mu.RLock()
	defer b.x.mu.RUnlock()
	return b.x.nextExpiry()
}

// Close implements Store; it closes the database when OpenBolt opened it.
func (b *Bolt) Close() error {
	if b.x == nil {
		return nil
	}
	b.x.mu.Lock()
	b.x.closed = true
	b.x.mu.Unlock()
	if b.ownsDB {
		return b.db.Close()
	}
	return nil
}
