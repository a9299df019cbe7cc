package oscore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/oscore"
)

// TestOpenBoltStoreHeld checks that a file another holder has locked is
// refused after bbolt's lock timeout instead of blocking the caller
// forever (a restarted daemon whose predecessor still holds the file).
func TestOpenBoltStoreHeld(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "oscore.db")
	first, err := oscore.OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		s, err := oscore.OpenBoltStore(path)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("second open of a held file succeeded")
		}
		t.Logf("refused after %v: %v", time.Since(start).Round(10*time.Millisecond), err)
	case <-time.After(30 * time.Second):
		t.Fatal("second open of a held file still waiting after 30 s")
	}
}
