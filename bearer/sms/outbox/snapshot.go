package outbox

import (
	"io"

	bolt "go.etcd.io/bbolt"
)

// WriteTo writes a consistent copy of the outbox file to w (bbolt's
// Tx.WriteTo in one read transaction: sends and new entries go on
// meanwhile), for backups of a running daemon. It returns the bytes
// written.
func (o *Outbox) WriteTo(w io.Writer) (n int64, err error) {
	err = o.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
