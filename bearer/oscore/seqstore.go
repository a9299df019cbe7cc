package oscore

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SeqStore keeps, per sender context, an upper bound of the Sender
// Sequence Numbers that may have been used (RFC 8613 Appendix B.1.1).
// StoreSeq must be durable (synced) when it returns: the numbers below the
// bound are used only after it. Keys are opaque hex names of sender
// contexts (no secrets).
type SeqStore interface {
	LoadSeq(key string) (bound uint64, ok bool, err error)
	StoreSeq(key string, bound uint64) error
}

// MemoryStore is a SeqStore in memory: a context restarted in the same
// process continues where it was, but a process restart forgets, so use it
// only for tests or contexts that never outlive the process. The zero
// value is ready to use.
type MemoryStore struct {
	mu  sync.Mutex
	m   map[string]uint64
	ids map[string][]byte
	// Writes counts StoreSeq calls (to test Appendix B.1.1 steps).
	Writes int
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// LoadSeq implements SeqStore.
func (s *MemoryStore) LoadSeq(key string) (uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok, nil
}

// StoreSeq implements SeqStore.
func (s *MemoryStore) StoreSeq(key string, bound uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]uint64{}
	}
	s.m[key] = bound
	s.Writes++
	return nil
}

// LoadIDContext implements IDContextStore.
func (s *MemoryStore) LoadIDContext(origin string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.ids[origin]
	return append([]byte(nil), v...), ok, nil
}

// SwitchIDContext implements IDContextStore.
func (s *MemoryStore) SwitchIDContext(origin string, idctx []byte, seqKey string, bound uint64, retired string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]uint64{}
	}
	if s.ids == nil {
		s.ids = map[string][]byte{}
	}
	s.ids[origin] = append([]byte{}, idctx...)
	s.m[seqKey] = bound
	if retired != "" && retired != seqKey {
		delete(s.m, retired)
	}
	s.Writes++
	return nil
}

// Len returns how many sequence bounds and ID Contexts are stored.
func (s *MemoryStore) Len() (bounds, idContexts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m), len(s.ids)
}

// Forget drops everything stored: a device whose storage was wiped.
func (s *MemoryStore) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m, s.ids = nil, nil
}

var (
	seqBucket   = []byte("oscore-seq")
	idctxBucket = []byte("oscore-idctx")
)

// BoltStore is a SeqStore in a bbolt database (each StoreSeq is one synced
// transaction). The zero BoltStore is not usable (use OpenBoltStore or
// NewBoltStore): its calls fail with ErrNotCreated, so a Context on it
// protects nothing rather than reuse a sequence number.
type BoltStore struct {
	db  *bolt.DB
	own bool
}

// NewBoltStore uses db (not closed by Close).
func NewBoltStore(db *bolt.DB) (*BoltStore, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: NewBoltStore: nil db", ErrInvalidOption)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(seqBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(idctxBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("oscore: bolt store: %w", err)
	}
	return &BoltStore{db: db}, nil
}

// OpenBoltStore opens (creating) a bbolt file at path. A file another
// process holds makes it fail after 5 s (bbolt's flock), not wait forever.
func OpenBoltStore(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("oscore: open %s: %w", path, err)
	}
	s, err := NewBoltStore(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// LoadSeq implements SeqStore.
func (s *BoltStore) LoadSeq(key string) (bound uint64, ok bool, err error) {
	if s.db == nil {
		return 0, false, ErrNotCreated
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(seqBucket).Get([]byte(key))
		if len(v) == 8 {
			bound, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	return bound, ok, err
}

// StoreSeq implements SeqStore.
func (s *BoltStore) StoreSeq(key string, bound uint64) error {
	if s.db == nil {
		return ErrNotCreated
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], bound)
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(seqBucket).Put([]byte(key), v[:])
	})
}

// LoadIDContext implements IDContextStore.
func (s *BoltStore) LoadIDContext(origin string) (idctx []byte, ok bool, err error) {
	if s.db == nil {
		return nil, false, ErrNotCreated
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(idctxBucket).Get([]byte(origin)); v != nil {
			idctx, ok = append([]byte{}, v...), true
		}
		return nil
	})
	return idctx, ok, err
}

// SwitchIDContext implements IDContextStore: one synced transaction.
func (s *BoltStore) SwitchIDContext(origin string, idctx []byte, seqKey string, bound uint64, retired string) error {
	if s.db == nil {
		return ErrNotCreated
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], bound)
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(idctxBucket).Put([]byte(origin), append([]byte{}, idctx...)); err != nil {
			return err
		}
		seq := tx.Bucket(seqBucket)
		if err := seq.Put([]byte(seqKey), v[:]); err != nil {
			return err
		}
		if retired != "" && retired != seqKey {
			return seq.Delete([]byte(retired))
		}
		return nil
	})
}

// Close closes the database if OpenBoltStore opened it.
func (s *BoltStore) Close() error {
	if s.own && s.db != nil {
		return s.db.Close()
	}
	return nil
}
