package modem

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestPoolOptionsRefuse: an option given a value out of its range fails
// NewPool or Pool.Add with ErrInvalidOption instead of being corrected
// (WithMaxQueue(0) used to become 1, WithRate's burst 0 became 1,
// WithPoolBuffers(0, 0) channels of 1).
func TestPoolOptionsRefuse(t *testing.T) {
	pools := []struct {
		name string
		opt  PoolOption
	}{
		{"WithMaxQueue(0)", WithMaxQueue(0)},
		{"WithMaxQueue(-1)", WithMaxQueue(-1)},
		{"WithPoolBuffers(0, 1)", WithPoolBuffers(0, 1)},
		{"WithPoolBuffers(1, 0)", WithPoolBuffers(1, 0)},
	}
	for _, tc := range pools {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPool(tc.opt)
			if !errors.Is(err, ErrInvalidOption) || p != nil {
				t.Fatalf("NewPool = %v, %v; want nil and ErrInvalidOption", p, err)
			}
		})
	}
	members := []struct {
		name string
		opt  MemberOption
		ok   bool
	}{
		{"WithRate(1, 0)", WithRate(1, 0), false},
		{"WithRate(0, -1)", WithRate(0, -1), false},
		{"WithRate(0, 1) no limit", WithRate(0, 1), true},
		{"WithRate(0.5, 3)", WithRate(0.5, 3), true},
	}
	for _, tc := range members {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPool(WithMaxQueue(1), WithPoolBuffers(1, 1))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			err = p.Add(newStub("+1", 0), tc.opt)
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrInvalidOption)) {
				t.Fatalf("Add = %v, want ok %v or ErrInvalidOption", err, tc.ok)
			}
		})
	}
}

// TestOpenRefusesBadConfig: Config values that Open used to correct
// silently (a negative size or backoff bound, ReconnectMax below
// ReconnectMin, which became 30 s) fail Open with ErrInvalidOption
// before the modem is dialled.
func TestOpenRefusesBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"negative InboxSize", Config{InboxSize: -1}},
		{"negative EventsSize", Config{EventsSize: -1}},
		{"negative TimeoutStorm", Config{TimeoutStorm: -1}},
		{"negative ReconnectMin", Config{ReconnectMin: -time.Second}},
		{"ReconnectMax below ReconnectMin", Config{ReconnectMin: time.Minute, ReconnectMax: time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dialled := false
			m, err := Open(context.Background(), tc.cfg, WithDialer(func(context.Context) (io.ReadWriteCloser, error) {
				dialled = true
				return nil, ErrNotConnected
			}))
			if !errors.Is(err, ErrInvalidOption) || m != nil || dialled {
				t.Fatalf("Open = %v, %v (dialled %v); want nil and ErrInvalidOption, not dialled", m, err, dialled)
			}
		})
	}
}
