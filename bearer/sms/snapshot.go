package sms

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// StateFiles returns the bbolt files the bearer keeps in Config.StateDir
// (none of them when Config.State and Config.OutboxBackend are shared
// stores), those SnapshotState copies.
func (b *Bearer) StateFiles() []string {
	var out []string
	if b.ob != nil && b.ob.Snapshots() {
		out = append(out, "outbox.db")
	}
	if b.st != nil {
		if _, ok := b.st.s.(io.WriterTo); ok {
			out = append(out, "sms-state.db")
		}
	}
	return out
}

// SnapshotState writes a consistent copy of one of the bearer's state
// files (StateFiles) to w while the bearer runs, for backups. It returns
// the bytes written.
func (b *Bearer) SnapshotState(name string, w io.Writer) (int64, error) {
	switch name {
	case "outbox.db":
		if b.ob != nil && b.ob.Snapshots() {
			return b.ob.WriteTo(w)
		}
	case "sms-state.db":
		if b.st != nil {
			if wt, ok := b.st.s.(io.WriterTo); ok {
				return wt.WriteTo(w)
			}
		}
	}
	return 0, fmt.Errorf("sms: no state file %q (they are %v)", name, b.StateFiles())
}

// WriteTo writes a consistent copy of the state file (one read
// transaction), for backups.
func (s *BoltState) WriteTo(w io.Writer) (n int64, err error) {
	if s.db == nil {
		return 0, errStateNotOpen
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
