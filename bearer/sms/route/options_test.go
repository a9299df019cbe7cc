package route

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestNewRefusesBadOptions: an option given a value out of its range
// fails New with ErrInvalidOption (WithMaxAge(-1) used to become 72 h, the
// positional buffer 0 or -1 became 256).
func TestNewRefusesBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  Option
	}{
		{"WithBuffer(0)", WithBuffer(0)},
		{"WithBuffer(-1)", WithBuffer(-1)},
		{"WithMaxAge(0)", WithMaxAge(0)},
		{"WithMaxAge(-1h)", WithMaxAge(-time.Hour)},
		{"WithClock(nil)", WithClock(nil)},
		{"WithStateFile(\"\")", WithStateFile("")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := New([]Route{{Name: "x", Transport: &fake{}}}, c.opt)
			if !errors.Is(err, ErrInvalidOption) || m != nil {
				t.Fatalf("New = %v, %v; want nil and ErrInvalidOption", m, err)
			}
		})
	}
	m, err := New([]Route{{Name: "x", Transport: &fake{}}}, WithBuffer(1), WithMaxAge(time.Hour),
		WithClock(time.Now), WithStateFile(filepath.Join(t.TempDir(), "route.db")))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}
