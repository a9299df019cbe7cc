package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Backend is where an Outbox keeps its entries and the references status
// reports are correlated by. The bbolt file of Open is the default;
// redisstore keeps one per SIM set in Redis for a cluster. An Outbox is the
// only writer of its Backend; the methods must be safe for concurrent use,
// and a change must be durable when they return nil.
type Backend interface {
	// Load calls fn for every stored entry.
	Load(fn func(*Entry) error) error
	// Add stores e, assigning e.ID from a sequence never reused.
	Add(e *Entry) error
	// Get returns a copy of entry id, or an error wrapping ErrNotFound.
	Get(id uint64) (*Entry, error)
	// Update applies fn to a copy of the stored entry id and stores the
	// result in one atomic step; fn runs at most once per committed
	// change, and changes of one id commit in the order their fn ran. A
	// segment fn moved from Pending to accepted, in an entry that wants
	// reports, gets its references (From, MR) and (From, To, MR). When the
	// result is done (every segment accepted, or delivered when reports
	// are wanted), the entry and its references are removed instead and
	// removed is true. An error from fn is returned unchanged.
	Update(id uint64, fn func(e *Entry) error) (e *Entry, removed bool, err error)
	// Remove deletes entry id and the references that point to it.
	Remove(id uint64) (*Entry, error)
	// Lookup returns the entry and segment a status report names: by
	// (from, to, mr) when to is set and known, else by (from, mr);
	// seg < 0 when none.
	Lookup(from, to string, mr uint8) (id uint64, seg int, err error)
	// Close releases the backend.
	Close() error
}

var (
	bucketEntries = []byte("entries")
	bucketMR      = []byte("mr") // from|mr and from|to|mr -> id|seg
)

func key(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// MRKey names a segment's status report reference by sender and TP-MR.
func MRKey(from string, mr uint8) string { return from + "|" + string([]byte{mr}) }

// MRToKey names a segment by sender, recipient and TP-MR. TP-MR is one
// octet per sender: a modem pool wraps it after 256 sends, an SMPP link at
// 100 SMS/s every 2.6 s, long before the reports come back. A status
// report names its recipient (TP-RA), and the worker sends one entry per
// recipient at a time, so (from, to, mr) stays unambiguous for 256 sends
// to the same device.
func MRToKey(from, to string, mr uint8) string { return from + "|" + to + "|" + string([]byte{mr}) }

// RefValue is a reference's stored value: the entry ID and segment index.
func RefValue(id uint64, seg int) []byte {
	return append(binary.BigEndian.AppendUint64(nil, id), byte(seg))
}

// ParseRef decodes a RefValue; ok is false when v is not one.
func ParseRef(v []byte) (id uint64, seg int, ok bool) {
	if len(v) != 9 {
		return 0, -1, false
	}
	return binary.BigEndian.Uint64(v), int(v[8]), true
}

// NewRefs returns the references of segments that are accepted in after
// and were pending in before (or had another TP-MR), both the same entry,
// when it wants reports.
func NewRefs(before, after *Entry) map[string][]byte {
	if !after.WantReport {
		return nil
	}
	out := map[string][]byte{}
	for i, s := range after.Segments {
		if s.State == Pending || (i < len(before.Segments) && before.Segments[i].State != Pending && before.Segments[i].MR == s.MR) {
			continue
		}
		v := RefValue(after.ID, i)
		out[MRToKey(after.From, after.To, s.MR)] = v
		out[MRKey(after.From, s.MR)] = v
	}
	return out
}

// RefsOf returns the reference keys an entry's sent segments may hold.
func RefsOf(e *Entry) []string {
	var out []string
	for _, s := range e.Segments {
		if s.State != Pending {
			out = append(out, MRKey(e.From, s.MR), MRToKey(e.From, e.To, s.MR))
		}
	}
	return out
}

// boltBackend is the default Backend: one bbolt file.
type boltBackend struct{ db *bolt.DB }

// OpenBolt opens (creating if needed) the bbolt file at path as a Backend.
func OpenBolt(path string) (Backend, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	// Updates go through Batch; a lone one waits at most this long for
	// company before its fsync.
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketMR)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	return &boltBackend{db: db}, nil
}

func closedErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func (b *boltBackend) Load(fn func(*Entry) error) error {
	return b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			e, err := unmarshalEntry(v)
			if err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			return fn(e)
		})
	})
}

func (b *boltBackend) Add(e *Entry) error {
	return closedErr(b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketEntries)
		id, err := bk.NextSequence()
		if err != nil {
			return err
		}
		e.ID = id
		return bk.Put(key(id), e.marshal())
	}))
}

func (b *boltBackend) Get(id uint64) (*Entry, error) {
	var e *Entry
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Get(key(id))
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		var err error
		e, err = unmarshalEntry(v)
		return err
	})
	return e, closedErr(err)
}

// Update runs in bbolt's Batch: concurrent updates (one per segment a
// modem or an SMPP link accepted) share one fsync. A batch that fails is
// retried transaction by transaction, running fn again from the stored
// entry; only the run that commits counts.
func (b *boltBackend) Update(id uint64, fn func(*Entry) error) (*Entry, bool, error) {
	var e *Entry
	var done bool
	err := b.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketEntries)
		v := bk.Get(key(id))
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		before, err := unmarshalEntry(v)
		if err != nil {
			return err
		}
		if e, err = unmarshalEntry(v); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
		if done = e.done(); done {
			return b.deleteTx(tx, e)
		}
		mrb := tx.Bucket(bucketMR)
		for k, v := range NewRefs(before, e) {
			if err := mrb.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return bk.Put(key(id), e.marshal())
	})
	if err != nil {
		return nil, false, closedErr(err)
	}
	return e, done, nil
}

func (b *boltBackend) deleteTx(tx *bolt.Tx, e *Entry) error {
	mrb := tx.Bucket(bucketMR)
	for _, k := range RefsOf(e) {
		if id, _, ok := ParseRef(mrb.Get([]byte(k))); ok && id == e.ID {
			if err := mrb.Delete([]byte(k)); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketEntries).Delete(key(e.ID))
}

func (b *boltBackend) Remove(id uint64) (*Entry, error) {
	var e *Entry
	err := b.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Get(key(id))
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		var err error
		if e, err = unmarshalEntry(v); err != nil {
			return err
		}
		return b.deleteTx(tx, e)
	})
	return e, closedErr(err)
}

func (b *boltBackend) Lookup(from, to string, mr uint8) (uint64, int, error) {
	id, seg := uint64(0), -1
	err := b.db.View(func(tx *bolt.Tx) error {
		mrb := tx.Bucket(bucketMR)
		var v []byte
		if to != "" {
			v = mrb.Get([]byte(MRToKey(from, to, mr)))
		}
		if v == nil {
			v = mrb.Get([]byte(MRKey(from, mr)))
		}
		if x, s, ok := ParseRef(v); ok {
			id, seg = x, s
		}
		return nil
	})
	return id, seg, closedErr(err)
}

func (b *boltBackend) Close() error { return b.db.Close() }

// path returns the file of a bbolt backend.
func (b *boltBackend) path() string { return b.db.Path() }
