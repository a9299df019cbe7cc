package queue

import (
	"slices"
	"sync"
)

// Store keeps request records durably. Implementations: BoltStore (a bbolt
// file; the default), MemStore (tests and ephemeral deployments); a Redis
// store for scale-out plugs in here. A Store is used by one Manager at a
// time; its methods must be safe for concurrent use.
//
// Durability contract: when Add or Put returns nil, the record survives a
// crash of the process (and, for BoltStore, of the machine: the bbolt
// transaction is fsync'd).
type Store interface {
	// Add stores a new record, assigning rec.ID from a durable monotonic
	// sequence (ids are never reused, also across restarts).
	Add(rec *Record) (uint64, error)
	// Put overwrites the record with rec.ID.
	Put(rec *Record) error
	// Get returns the record with id, or an error wrapping ErrNotFound.
	Get(id uint64) (*Record, error)
	// Delete removes records; unknown ids are ignored.
	Delete(ids ...uint64) error
	// ForEach calls fn for every record in id order; fn must not call the
	// store. An error from fn stops the walk and is returned.
	ForEach(fn func(*Record) error) error
	// Close releases the store.
	Close() error
}

// MemStore is an in-memory Store: fast, not durable across a process
// restart. Records are kept encoded, so a caller never shares memory with
// the store. The zero MemStore is an empty store ready to use.
type MemStore struct {
	mu     sync.Mutex
	seq    uint64
	recs   map[uint64][]byte
	closed bool
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{recs: make(map[uint64][]byte)} }

// Add implements Store.
func (s *MemStore) Add(rec *Record) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if s.recs == nil { // the zero MemStore
		s.recs = make(map[uint64][]byte)
	}
	s.seq++
	rec.ID = s.seq
	rec.Attempt.ID = rec.ID
	s.recs[rec.ID] = EncodeRecord(nil, rec)
	return rec.ID, nil
}

// Put implements Store.
func (s *MemStore) Put(rec *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.recs == nil { // the zero MemStore
		s.recs = make(map[uint64][]byte)
	}
	s.recs[rec.ID] = EncodeRecord(nil, rec)
	return nil
}

// Get implements Store.
func (s *MemStore) Get(id uint64) (*Record, error) {
	s.mu.Lock()
	b, ok := s.recs[id]
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !ok {
		return nil, ErrNotFound
	}
	return DecodeRecord(b)
}

// Delete implements Store.
func (s *MemStore) Delete(ids ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, id := range ids {
		delete(s.recs, id)
	}
	return nil
}

// ForEach implements Store.
func (s *MemStore) ForEach(fn func(*Record) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	ids := make([]uint64, 0, len(s.recs))
	for id := range s.recs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	bufs := make([][]byte, len(ids))
	for i, id := range ids {
		bufs[i] = s.recs[id]
	}
	s.mu.Unlock()
	for _, b := range bufs {
		r, err := DecodeRecord(b)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of records.
func (s *MemStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// Close implements Store.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
