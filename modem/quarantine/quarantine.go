package quarantine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/internal/record"
	"github.com/m2mbearer/m2mbearer/modem"
)

// ErrCorrupt wraps every problem decoding a stored entry.
var ErrCorrupt = errors.New("quarantine: corrupt entry")

// ErrNotOpen is returned by a Store that Open did not return (the zero
// value): it holds nothing and refuses everything.
var ErrNotOpen = errors.New("quarantine: store not opened (use Open)")

// ErrInvalidOption is wrapped by Open's error for an Options field out of
// its range (a negative Max).
var ErrInvalidOption = errors.New("quarantine: invalid option")

// DefaultMax is the bound used when Options.Max is 0.
const DefaultMax = 1000

// Options configures a Store. The zero value works.
type Options struct {
	// Max bounds the entries (default DefaultMax). A full store refuses Put
	// with an error wrapping modem.ErrQuarantineFull; the driver then leaves
	// the message on the modem.
	Max int
}

// Stats are the store's counters.
type Stats struct {
	Entries  int    // entries now
	Max      int    // the bound
	Put      uint64 // entries stored since Open
	Rejected uint64 // Put refused because the store was full
}

// Store is a bbolt-backed Quarantine. It is safe for concurrent use. The
// zero Store is not open: Put, List and Delete fail with ErrNotOpen.
type Store struct {
	db  *bolt.DB
	max int

	mu    sync.Mutex // serialises Put and Delete with the entry count
	count int

	put, rejected atomic.Uint64
}

var bucket = []byte("quarantine")

// Open opens (creating if needed) the store at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.Max < 0 {
		return nil, fmt.Errorf("%w: Options: Max %d is negative", ErrInvalidOption, opts.Max)
	}
	if opts.Max == 0 {
		opts.Max = DefaultMax
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("quarantine: open %s: %w", path, err)
	}
	s := &Store{db: db, max: opts.Max}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		s.count = b.Stats().KeyN
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("quarantine: %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// Put stores q under a new ID and returns it once committed (fsync'd). It
// implements modem.Quarantine.
func (s *Store) Put(ctx context.Context, q modem.Quarantined) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.db == nil {
		return 0, ErrNotOpen
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count >= s.max {
		s.rejected.Add(1)
		return 0, fmt.Errorf("%w: %d entries", modem.ErrQuarantineFull, s.count)
	}
	var id uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		id = n
		q.ID = id
		return b.Put(key(id), encode(q))
	})
	if err != nil {
		return 0, fmt.Errorf("quarantine: put: %w", err)
	}
	s.count++
	s.put.Add(1)
	return id, nil
}

// List returns up to limit entries with an ID greater than after, oldest
// first (limit <= 0: all).
func (s *Store) List(after uint64, limit int) ([]modem.Quarantined, error) {
	if s.db == nil {
		return nil, ErrNotOpen
	}
	var out []modem.Quarantined
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Seek(key(after + 1)); k != nil; k, v = c.Next() {
			q, err := decode(v)
			if err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			q.ID = binary.BigEndian.Uint64(k)
			out = append(out, q)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// Delete removes the entry with that ID; false when there was none.
func (s *Store) Delete(id uint64) (bool, error) {
	if s.db == nil {
		return false, ErrNotOpen
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get(key(id)) == nil {
			return nil
		}
		found = true
		return b.Delete(key(id))
	})
	if err != nil {
		return false, fmt.Errorf("quarantine: delete %d: %w", id, err)
	}
	if found {
		s.count--
	}
	return found, nil
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	n := s.count
	s.mu.Unlock()
	return Stats{Entries: n, Max: s.max, Put: s.put.Load(), Rejected: s.rejected.Load()}
}

var _ modem.Quarantine = (*Store)(nil)

func key(id uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return b[:]
}

// Record bounds; the driver bounds entries more tightly.
const (
	maxField = 4096
	maxLines = 64
)

const version = 1

func encode(q modem.Quarantined) []byte {
	b := []byte{version}
	b = record.AppendTime(b, q.Time)
	b = record.AppendString(b, q.Modem)
	b = record.AppendString(b, q.Storage)
	b = binary.AppendVarint(b, int64(q.Index))
	b = binary.AppendUvarint(b, uint64(len(q.Lines)))
	for _, l := range q.Lines {
		b = record.AppendString(b, l)
	}
	return record.AppendString(b, q.Reason)
}

func decode(v []byte) (modem.Quarantined, error) {
	d := record.NewDecoder(v, ErrCorrupt)
	if d.Byte() != version {
		d.Fail("version")
	}
	var q modem.Quarantined
	q.Time = d.Time().UTC()
	q.Modem = d.String(maxField)
	q.Storage = d.String(maxField)
	idx := d.Varint()
	if idx < -1 || idx > 1<<20 {
		d.Fail("index")
	}
	q.Index = int(idx)
	n := d.Count(maxLines)
	for i := 0; i < n; i++ {
		q.Lines = append(q.Lines, d.String(maxField))
	}
	q.Reason = d.String(maxField)
	if err := d.Finish(); err != nil {
		return modem.Quarantined{}, err
	}
	return q, nil
}
