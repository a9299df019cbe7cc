package sms

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BoltState is the bearer's own durable state in one bbolt file beside the
// outbox (sms-state.db), the default StateStore: received segments not yet
// handed on (the inbox) and the SMS budget counters of the current day.
// Every write is one fsync'd transaction. The zero BoltState is not
// usable (use OpenBoltState): its calls fail with ErrNotCreated.
type BoltState struct {
	db      *bolt.DB
	mu      sync.Mutex // serialises budget check-and-add
	lastDay string     // day whose counters are current; older ones are pruned
}

var (
	bucketInbox  = []byte("inbox")
	bucketBudget = []byte("budget")
)

// errStateNotOpen is returned by a zero BoltState.
var errStateNotOpen = ErrNotCreated

// errCorruptState is wrapped when a stored record cannot be read.
var errCorruptState = errors.New("sms: corrupt state record")

var _ StateStore = (*BoltState)(nil)

// OpenBoltState opens (creating if needed) the state file at path.
func OpenBoltState(path string) (*BoltState, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("sms: open state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketInbox); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketBudget)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sms: init state: %w", err)
	}
	return &BoltState{db: db}, nil
}

// Close implements StateStore.
func (s *BoltState) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// StoreSegment implements StateStore.
func (s *BoltState) StoreSegment(sim string, tpdu []byte) (uint64, error) {
	if s.db == nil {
		return 0, errStateNotOpen
	}
	var id uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox)
		var err error
		if id, err = b.NextSequence(); err != nil {
			return err
		}
		v := binary.AppendUvarint(nil, uint64(len(sim)))
		v = append(v, sim...)
		v = append(v, tpdu...)
		return b.Put(binary.BigEndian.AppendUint64(nil, id), v)
	})
	return id, err
}

// DeleteSegments implements StateStore.
func (s *BoltState) DeleteSegments(ids []uint64) error {
	if s.db == nil {
		return errStateNotOpen
	}
	if len(ids) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox)
		for _, id := range ids {
			if err := b.Delete(binary.BigEndian.AppendUint64(nil, id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Segments implements StateStore. Corrupt records are returned as an error
// naming them; they are not skipped silently.
func (s *BoltState) Segments() ([]StoredSegment, error) {
	if s.db == nil {
		return nil, errStateNotOpen
	}
	var out []StoredSegment
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("%w: inbox key %x", errCorruptState, k)
			}
			n, w := binary.Uvarint(v)
			if w <= 0 || n > uint64(len(v)-w) {
				return fmt.Errorf("%w: inbox record %x", errCorruptState, k)
			}
			out = append(out, StoredSegment{
				ID:   binary.BigEndian.Uint64(k),
				SIM:  string(v[w : w+int(n)]),
				TPDU: append([]byte(nil), v[w+int(n):]...),
			})
			return nil
		})
	})
	return out, err
}

// deploymentKey is the budget counter of the whole deployment.
const deploymentKey = DeploymentBudget

func budgetKey(day, who string) []byte { return []byte(day + "|" + who) }

// Spend implements StateStore.
func (s *BoltState) Spend(day, peer string, n, perDevice, perDeployment int) (devAfter, depAfter int, err error) {
	if s.db == nil {
		return 0, 0, errStateNotOpen
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if day != s.lastDay {
		if err := s.pruneBudget(day); err != nil {
			return 0, 0, fmt.Errorf("sms: pruning old budget counters: %w", err)
		}
		s.lastDay = day
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBudget)
		get := func(k []byte) int {
			if v := b.Get(k); len(v) == 4 {
				return int(binary.BigEndian.Uint32(v))
			}
			return 0
		}
		dk, pk := budgetKey(day, deploymentKey), budgetKey(day, peer)
		dep, dev := get(dk), get(pk)
		if perDevice > 0 && dev+n > perDevice {
			return &BudgetError{Scope: "device", Peer: peer, Limit: perDevice, Used: dev, Need: n}
		}
		if perDeployment > 0 && dep+n > perDeployment {
			return &BudgetError{Scope: "deployment", Peer: peer, Limit: perDeployment, Used: dep, Need: n}
		}
		devAfter, depAfter = max(0, dev+n), max(0, dep+n)
		if err := b.Put(dk, binary.BigEndian.AppendUint32(nil, uint32(depAfter))); err != nil {
			return err
		}
		return b.Put(pk, binary.BigEndian.AppendUint32(nil, uint32(devAfter)))
	})
	return devAfter, depAfter, err
}

// Used implements StateStore.
func (s *BoltState) Used(day, who string) (int, error) {
	if s.db == nil {
		return 0, errStateNotOpen
	}
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBudget).Get(budgetKey(day, who)); len(v) == 4 {
			n = int(binary.BigEndian.Uint32(v))
		}
		return nil
	})
	return n, err
}

// pruneBudget removes counters of days other than day.
func (s *BoltState) pruneBudget(day string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBudget)
		var old [][]byte
		prefix := day + "|"
		b.ForEach(func(k, _ []byte) error {
			if len(k) < len(prefix) || string(k[:len(prefix)]) != prefix {
				old = append(old, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
