package outbox

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenRefusesBadOptions: a negative limit (which used to mean the
// default) and a nil clock fail Open with ErrInvalidOption.
func TestOpenRefusesBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  Option
	}{
		{"negative MaxEntries", WithLimits(Limits{MaxEntries: -1})},
		{"negative MaxBytes", WithLimits(Limits{MaxBytes: -1})},
		{"negative MaxAge", WithLimits(Limits{MaxAge: -time.Hour})},
		{"nil clock", WithClock(nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), c.opt)
			if !errors.Is(err, ErrInvalidOption) || o != nil {
				t.Fatalf("Open = %v, %v; want nil and ErrInvalidOption", o, err)
			}
		})
	}
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), WithLimits(Limits{}), WithClock(time.Now))
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
}
