package server

import (
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// TestNewRefusesBadOptions: New fails, starting nothing, on a nil store or
// an option out of its range (a negative SourceBurst or MaxSources used to
// become the default; min > max lifetime bounds refused every Register).
func TestNewRefusesBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  Option
	}{
		{"negative SourceBurst", WithLimits(Limits{SourceBurst: -1})},
		{"negative MaxSources", WithLimits(Limits{MaxSources: -1})},
		{"min lifetime above max", WithLifetimeBounds(600, 60)},
		{"negative observations", WithMaxObservations(-1)},
		{"negative last values", WithLastValues(-1, 10)},
		{"nil clock", WithClock(nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(new(registry.Memory), tc.opt)
			if !errors.Is(err, ErrInvalidOption) || s != nil {
				t.Fatalf("New = %v, %v; want nil and ErrInvalidOption", s, err)
			}
		})
	}
	t.Run("nil store", func(t *testing.T) {
		if s, err := New(nil); !errors.Is(err, ErrInvalidOption) || s != nil {
			t.Fatalf("New(nil) = %v, %v; want nil and ErrInvalidOption", s, err)
		}
	})
	t.Run("a negative SourceRate is no limit", func(t *testing.T) {
		s, err := New(new(registry.Memory), WithLimits(Limits{SourceRate: -1}), WithLifetimeBounds(60, 60))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}

// TestNewBootstrapServerRefuses: a nil lookup (a panic at the first
// Bootstrap-Request) and limits below 1 session or a timeout of 0 or less
// fail NewBootstrapServer with ErrInvalidOption.
func TestNewBootstrapServerRefuses(t *testing.T) {
	lookup := func(string, bearer.Identity) (*BootstrapConfig, bool) { return nil, false }
	cases := []struct {
		name   string
		lookup func(string, bearer.Identity) (*BootstrapConfig, bool)
		opt    BootstrapOption
	}{
		{"nil lookup", nil, WithBootstrapLimits(1, time.Second)},
		{"no session", lookup, WithBootstrapLimits(0, time.Second)},
		{"no timeout", lookup, WithBootstrapLimits(1, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBootstrapServer(tc.lookup, tc.opt)
			if !errors.Is(err, ErrInvalidOption) || b != nil {
				t.Fatalf("NewBootstrapServer = %v, %v; want nil and ErrInvalidOption", b, err)
			}
		})
	}
	b, err := NewBootstrapServer(lookup, WithBootstrapLimits(1, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
