package outbox

import (
	"errors"
	"io"

	bolt "go.etcd.io/bbolt"
)

// ErrNoSnapshot: the outbox's Backend keeps no file to copy (a shared
// store such as Redis has its own backups).
var ErrNoSnapshot = errors.New("outbox: the backend keeps no file to snapshot")

// WriteTo writes a consistent copy of the outbox file to w, for backups of
// a running daemon (the default bbolt Backend: Tx.WriteTo in one read
// transaction, sends and new entries go on meanwhile). A Backend without a
// file gives ErrNoSnapshot. It returns the bytes written.
func (o *Outbox) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := o.be.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return 0, ErrNoSnapshot
}

// Snapshots reports whether WriteTo can copy the outbox.
func (o *Outbox) Snapshots() bool {
	_, ok := o.be.(io.WriterTo)
	return ok
}

// WriteTo writes a consistent copy of the bbolt file.
func (b boltBackend) WriteTo(w io.Writer) (n int64, err error) {
	if b.db == nil {
		return 0, ErrNoSnapshot
	}
	err = b.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
