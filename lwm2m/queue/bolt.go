package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"
)

var bucketRequests = []byte("queue.requests")

// BoltStore is a Store in a bbolt file: every Add, Put and Delete is one
// fsync'd transaction, so a record is on disk before the caller learns its
// id. Ids come from the bucket's sequence, which is part of the same
// transaction. The zero BoltStore is not usable (use OpenBoltStore or
// NewBoltStore): its calls fail with ErrNotCreated.
type BoltStore struct {
	db   *bolt.DB
	own  bool
	path string
}

// OpenBoltStore opens (creating if needed) the bbolt file at path.
// A file held by another process makes it fail after timeout.
func OpenBoltStore(path string, timeout time.Duration) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	s, err := NewBoltStore(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.own, s.path = true, path
	return s, nil
}

// NewBoltStore uses an open bbolt database (shared with other state of the
// daemon); Close then leaves the database open.
func NewBoltStore(db *bolt.DB) (*BoltStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketRequests)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: create bucket: %w", err)
	}
	return &BoltStore{db: db}, nil
}

func key(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

func mapClosed(err error) error {
	if errors.Is(err, bolterr.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// Add implements Store.
func (s *BoltStore) Add(rec *Record) (uint64, error) {
	if s.db == nil {
		return 0, ErrNotCreated
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRequests)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec.ID = id
		rec.Attempt.ID = id
		return b.Put(key(id), EncodeRecord(nil, rec))
	})
	if err != nil {
		return 0, fmt.Errorf("queue: store add: %w", mapClosed(err))
	}
	return rec.ID, nil
}

// Put implements Store.
func (s *BoltStore) Put(rec *Record) error {
	if s.db == nil {
		return ErrNotCreated
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRequests).Put(key(rec.ID), EncodeRecord(nil, rec))
	})
	if err != nil {
		return fmt.Errorf("queue: store put %d: %w", rec.ID, mapClosed(err))
	}
	return nil
}

// Get implements Store.
func (s *BoltStore) Get(id uint64) (*Record, error) {
	if s.db == nil {
		return nil, ErrNotCreated
	}
	var rec *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRequests).Get(key(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		rec, err = DecodeRecord(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: store get %d: %w", id, mapClosed(err))
	}
	return rec, nil
}

// Delete implements Store.
func (s *BoltStore) Delete(ids ...uint64) error {
	if s.db == nil {
		return ErrNotCreated
	}
	if len(ids) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRequests)
		for _, id := range ids {
			if err := b.Delete(key(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: store delete: %w", mapClosed(err))
	}
	return nil
}

// ForEach implements Store.
func (s *BoltStore) ForEach(fn func(*Record) error) error {
	if s.db == nil {
		return ErrNotCreated
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
			rec, err := DecodeRecord(v)
			if err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			return fn(rec)
		})
	})
	if err != nil {
		return fmt.Errorf("queue: store walk: %w", mapClosed(err))
	}
	return nil
}

// Close closes the file if OpenBoltStore opened it.
func (s *BoltStore) Close() error {
	if s.own {
		return s.db.Close()
	}
	return nil
}
