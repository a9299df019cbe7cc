package firmware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Fetcher copies the bytes of an image this node does not have from
// somewhere that has them (another node of a cluster) to w.
type Fetcher func(ctx context.Context, info ImageInfo, w io.Writer) error

// WithFetch lets Open fetch the bytes of an image the catalog knows but
// this node's directory lacks (cluster mode: uploaded on another node).
// The bytes are checked against the catalog's size and SHA-256 before they
// are kept (fsync'd, renamed into place); a mismatch is refused with
// ErrNotLocal. Without it Open fails with ErrNotLocal.
func WithFetch(f Fetcher) StoreOption {
	return func(s *Store) error { s.fetch = f; return nil }
}

// fetchTimeout bounds one fetch.
const fetchTimeout = 5 * time.Minute

// fetchLocal fetches the bytes of info into the store's directory.
func (s *Store) fetchLocal(info ImageInfo) error {
	s.fetchMu.Lock() // one fetch at a time: a second Open of the same image waits and finds it
	defer s.fetchMu.Unlock()
	final := filepath.Join(s.dir, info.ID+".bin")
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(s.dir, info.ID+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	h := sha256.New()
	lw := &limitWriter{w: io.MultiWriter(tmp, h), left: info.Size}
	if err := s.fetch(ctx, info, lw); err != nil {
		return fmt.Errorf("firmware: fetch %s: %w: %w", info.ID, ErrNotLocal, err)
	}
	if lw.n != info.Size || hex.EncodeToString(h.Sum(nil)) != info.SHA256 {
		return fmt.Errorf("firmware: fetch %s: %w: got %d bytes with another SHA-256 than the catalog's %d", info.ID, ErrNotLocal, lw.n, info.Size)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	syncDir(s.dir)
	return nil
}

// limitWriter refuses more than left bytes.
type limitWriter struct {
	w    io.Writer
	left int64
	n    int64
}

var errTooLong = errors.New("more bytes than the image's size")

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errTooLong
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	l.n += int64(n)
	return n, err
}
