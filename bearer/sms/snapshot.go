package sms

import (
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// StateFiles are the bbolt files the bearer keeps in Config.StateDir.
var StateFiles = []string{"outbox.db", "sms-state.db"}

// SnapshotState writes a consistent copy of one of the bearer's state
// files (StateFiles) to w while the bearer runs, for backups. It returns
// the bytes written.
func (b *Bearer) SnapshotState(name string, w io.Writer) (n int64, err error) {
	switch name {
	case "outbox.db":
		return b.ob.WriteTo(w)
	case "sms-state.db":
		err = b.st.db.View(func(tx *bolt.Tx) error {
			n, err = tx.WriteTo(w)
			return err
		})
		return n, err
	}
	return 0, fmt.Errorf("sms: no state file %q (they are %v)", name, StateFiles)
}
