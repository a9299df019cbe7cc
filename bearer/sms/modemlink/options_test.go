package modemlink_test

import (
	"errors"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/modem"
)

// TestNewRefuses: New fails with ErrInvalidOption for a buffer below 1
// (0 used to mean the default 64, -1 too) and for a nil pool (which
// used to panic in the forwarding goroutine).
func TestNewRefuses(t *testing.T) {
	pool, err := modem.NewPool()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tests := []struct {
		name string
		pool *modem.Pool
		opt  modemlink.Option
		ok   bool
	}{
		{"buffer 0", pool, modemlink.WithBuffer(0), false},
		{"buffer -1", pool, modemlink.WithBuffer(-1), false},
		{"nil pool", nil, modemlink.WithBuffer(1), false},
		{"buffer 1", pool, modemlink.WithBuffer(1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := modemlink.New(tc.pool, tc.opt)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				l.Close()
				return
			}
			if !errors.Is(err, modemlink.ErrInvalidOption) || l != nil {
				t.Fatalf("New = %v, %v; want nil and ErrInvalidOption", l, err)
			}
		})
	}
}
