package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheckFile feeds the state file check with arbitrary files (seeded
// with whole bbolt files): it answers nil or an error wrapping
// ErrTruncated or ErrDamaged, never a panic or a fault, and reads no
// offset outside the file.
func FuzzCheckFile(f *testing.F) {
	dir := f.TempDir()
	for _, n := range []int{0, 40} {
		p := filepath.Join(dir, "seed.db")
		makeDB(f, p, n)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		os.Remove(p)
	}
	f.Add([]byte("not a bbolt file"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "x.db")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := CheckFile(p)
		if err != nil && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrEmpty) {
			t.Fatalf("error %v is none of the check's", err)
		}
	})
}
