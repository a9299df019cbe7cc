package quarantine

import (
	"io"

	bolt "go.etcd.io/bbolt"
)

// WriteTo writes a consistent copy of the store's file to w (bbolt's
// Tx.WriteTo in one read transaction: Puts and Deletes go on meanwhile),
// for backups of a running daemon. It returns the bytes written.
func (s *Store) WriteTo(w io.Writer) (n int64, err error) {
	if s.db == nil {
		return 0, ErrNotOpen
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
