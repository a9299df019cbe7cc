package smpp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/internal/record"
)

// store is the link's durable state in one bbolt file: the correlation of
// each message_id awaiting a receipt, the last TP-MR per (source,
// destination), and in ConcatPayload mode the segments of sets not yet
// complete. Writes go through bolt's Batch, so submits in flight share
// fsyncs.
type store struct {
	db *bolt.DB
}

var (
	bucketIDs  = []byte("ids")  // message_id -> corr
	bucketMR   = []byte("mr")   // sim|to -> last TP-MR
	bucketSets = []byte("sets") // sim|to|ref|total -> segments (payload mode)
)

var errCorrupt = errors.New("smpp: corrupt state record")

// corr is what a message_id stands for: the SIM (source) and destination
// the bearer knows the message by, and the TP-MR of each segment it
// carried (one, or all of a set in ConcatPayload mode).
type corr struct {
	SIM, To string
	MRs     []uint8
	Created time.Time
}

func (c *corr) marshal() []byte {
	b := []byte{1}
	b = record.AppendString(b, c.SIM)
	b = record.AppendString(b, c.To)
	b = record.AppendBytes(b, c.MRs)
	return record.AppendTime(b, c.Created)
}

func unmarshalCorr(v []byte) (*corr, error) {
	d := record.NewDecoder(v, errCorrupt)
	if d.Byte() != 1 {
		d.Fail("version")
	}
	c := &corr{SIM: d.String(64), To: d.String(64), MRs: d.Bytes(255), Created: d.Time()}
	return c, d.Finish()
}

func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("smpp: open state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIDs, bucketMR, bucketSets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("smpp: init state: %w", err)
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func pairKey(sim, to string) []byte { return []byte(sim + "|" + to) }

// nextMR allocates the next TP-MR for (sim, to) inside tx.
func nextMR(tx *bolt.Tx, sim, to string) uint8 {
	b := tx.Bucket(bucketMR)
	k := pairKey(sim, to)
	var mr uint8
	if v := b.Get(k); len(v) == 1 {
		mr = v[0] + 1
	}
	b.Put(k, []byte{mr})
	return mr
}

// accepted records message id (when want is set) with fresh TP-MRs for n
// segments, and returns the TP-MRs. Without a receipt to wait for, nothing
// needs to be stored but the TP-MR counter.
func (s *store) accepted(id string, sim, to string, n int, want bool, now time.Time) ([]uint8, error) {
	var mrs []uint8
	err := s.db.Batch(func(tx *bolt.Tx) error {
		mrs = mrs[:0]
		for i := 0; i < n; i++ {
			mrs = append(mrs, nextMR(tx, sim, to))
		}
		if !want {
			return nil
		}
		c := &corr{SIM: sim, To: to, MRs: mrs, Created: now}
		return tx.Bucket(bucketIDs).Put([]byte(id), c.marshal())
	})
	if err != nil {
		return nil, fmt.Errorf("smpp: storing message_id %s: %w", id, err)
	}
	return mrs, nil
}

// lookup returns the correlation of id, or nil.
func (s *store) lookup(id string) (*corr, error) {
	var c *corr
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketIDs).Get([]byte(id))
		if v == nil {
			return nil
		}
		var err error
		c, err = unmarshalCorr(v)
		return err
	})
	return c, err
}

// forget removes id once its final receipt was handed on.
func (s *store) forget(id string) error {
	return s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketIDs).Delete([]byte(id)) })
}

// prune removes correlations older than before (receipts that never came)
// and returns how many.
func (s *store) prune(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIDs)
		var old [][]byte
		b.ForEach(func(k, v []byte) error {
			c, err := unmarshalCorr(v)
			if err != nil || c.Created.Before(before) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}

// pending counts the stored correlations.
func (s *store) pending() int {
	if s == nil {
		return 0
	}
	n := 0
	s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketIDs).Stats().KeyN; return nil })
	return n
}

func setKey(sim, to string, ref uint16, total uint8) []byte {
	return fmt.Appendf(nil, "%s|%s|%d|%d", sim, to, ref, total)
}

// addSegment stores one segment of a set (payload mode) with a fresh TP-MR
// and returns the set's segments so far (index seq-1; nil where missing)
// and their TP-MRs. A segment stored before (a resend after a crash) keeps
// its TP-MR.
func (s *store) addSegment(sim, to string, ref uint16, total, seq uint8, tpdu []byte) ([][]byte, []uint8, error) {
	segs := make([][]byte, total)
	mrs := make([]uint8, total)
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSets)
		k := setKey(sim, to, ref, total)
		for i := range segs {
			segs[i], mrs[i] = nil, 0
		}
		if v := b.Get(k); v != nil {
			d := record.NewDecoder(v, errCorrupt)
			for n := d.Count(255); n > 0 && d.Err() == nil; n-- {
				i := int(d.Byte())
				mr := d.Byte()
				t := d.Bytes(200)
				if i < len(segs) {
					segs[i], mrs[i] = t, mr
				}
			}
			if err := d.Finish(); err != nil {
				return err
			}
		}
		if segs[seq-1] == nil {
			segs[seq-1], mrs[seq-1] = tpdu, nextMR(tx, sim, to)
		}
		var out []byte
		cnt := 0
		for _, t := range segs {
			if t != nil {
				cnt++
			}
		}
		out = binary.AppendUvarint(out, uint64(cnt))
		for i, t := range segs {
			if t != nil {
				out = append(out, byte(i), mrs[i])
				out = record.AppendBytes(out, t)
			}
		}
		return b.Put(k, out)
	})
	return segs, mrs, err
}

// setSubmitted replaces a complete set by the correlation of its
// message_id (when want is set), in one transaction.
func (s *store) setSubmitted(sim, to string, ref uint16, total uint8, id string, mrs []uint8, want bool, now time.Time) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSets).Delete(setKey(sim, to, ref, total)); err != nil {
			return err
		}
		if !want {
			return nil
		}
		c := &corr{SIM: sim, To: to, MRs: mrs, Created: now}
		return tx.Bucket(bucketIDs).Put([]byte(id), c.marshal())
	})
}
