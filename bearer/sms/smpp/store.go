package smpp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	bucketIDs    = []byte("ids")    // message_id -> corr
	bucketMR     = []byte("mr")     // sim|to -> last TP-MR
	bucketSets   = []byte("sets")   // sim|to|ref|total -> segments (payload mode)
	bucketSetAge = []byte("setage") // sim|to|ref|total -> when its first segment came (unix ns)
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
		for _, b := range [][]byte{bucketIDs, bucketMR, bucketSets, bucketSetAge} {
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

func (s *store) writeTo(w io.Writer) (n int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

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
func (s *store) accepted(id string, lg leg, n int, want bool, now time.Time) ([]uint8, error) {
	sim, to := lg.sim, lg.to
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

// prune removes correlations created before corrBefore (receipts that
// never came) and ConcatPayload sets begun before setBefore (their other
// segments never came), and returns how many of each. A set stored without
// an age (by an older version) is given now as its age.
func (s *store) prune(corrBefore, setBefore, now time.Time) (corrs int, sets []string, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		corrs, sets = 0, nil
		b := tx.Bucket(bucketIDs)
		var old [][]byte
		b.ForEach(func(k, v []byte) error {
			c, err := unmarshalCorr(v)
			if err != nil || c.Created.Before(corrBefore) {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		corrs = len(old)
		sb, ab := tx.Bucket(bucketSets), tx.Bucket(bucketSetAge)
		var unaged [][]byte
		old = old[:0]
		sb.ForEach(func(k, _ []byte) error {
			v := ab.Get(k)
			switch {
			case len(v) != 8:
				unaged = append(unaged, append([]byte(nil), k...))
			case time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(setBefore):
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range unaged {
			if err := ab.Put(k, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
				return err
			}
		}
		for _, k := range old {
			if err := deleteSet(tx, k); err != nil {
				return err
			}
			sets = append(sets, string(k))
		}
		return nil
	})
	return corrs, sets, err
}

func deleteSet(tx *bolt.Tx, k []byte) error {
	if err := tx.Bucket(bucketSets).Delete(k); err != nil {
		return err
	}
	return tx.Bucket(bucketSetAge).Delete(k)
}

// sets counts the incomplete ConcatPayload sets stored.
func (s *store) sets() int {
	if s == nil {
		return 0
	}
	n := 0
	s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketSets).Stats().KeyN; return nil })
	return n
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

// leg is the SIM (source address) a message leaves from and the number
// it goes to: the TP-MR counters and correlations are kept per leg.
type leg struct{ sim, to string }

// segSet names a set of concatenated segments (payload mode): its leg,
// its reference number and its segment count.
type segSet struct {
	leg
	ref   uint16
	total uint8
}

func (c segSet) key() []byte {
	return fmt.Appendf(nil, "%s|%s|%d|%d", c.sim, c.to, c.ref, c.total)
}

// addSegment stores one segment of a set (payload mode) with a fresh TP-MR
// and returns the set's segments so far (index seq-1; nil where missing)
// and their TP-MRs. A segment stored before (a resend after a crash) keeps
// its TP-MR. A new set beyond maxSets evicts the oldest one, returned.
func (s *store) addSegment(set segSet, seq uint8, tpdu []byte, now time.Time, maxSets int) ([][]byte, []uint8, string, error) {
	sim, to, total := set.sim, set.to, set.total
	segs := make([][]byte, total)
	mrs := make([]uint8, total)
	var evicted string
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSets)
		k := set.key()
		evicted = ""
		for i := range segs {
			segs[i], mrs[i] = nil, 0
		}
		if v := b.Get(k); v == nil {
			if b.Stats().KeyN >= maxSets {
				old := oldestSet(tx)
				if err := deleteSet(tx, old); err != nil {
					return err
				}
				evicted = string(old)
			}
			if err := tx.Bucket(bucketSetAge).Put(k, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
				return err
			}
		} else {
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
	return segs, mrs, evicted, err
}

// oldestSet names the set begun first (an unaged one counts as oldest).
func oldestSet(tx *bolt.Tx) []byte {
	ab := tx.Bucket(bucketSetAge)
	var oldest []byte
	var at uint64
	tx.Bucket(bucketSets).ForEach(func(k, _ []byte) error {
		var t uint64
		if v := ab.Get(k); len(v) == 8 {
			t = binary.BigEndian.Uint64(v)
		}
		if oldest == nil || t < at {
			oldest, at = append([]byte(nil), k...), t
		}
		return nil
	})
	return oldest
}

// setSubmitted replaces a complete set by the correlation of its
// message_id (when want is set), in one transaction.
func (s *store) setSubmitted(set segSet, id string, mrs []uint8, want bool, now time.Time) error {
	sim, to := set.sim, set.to
	return s.db.Batch(func(tx *bolt.Tx) error {
		if err := deleteSet(tx, set.key()); err != nil {
			return err
		}
		if !want {
			return nil
		}
		c := &corr{SIM: sim, To: to, MRs: mrs, Created: now}
		return tx.Bucket(bucketIDs).Put([]byte(id), c.marshal())
	})
}
