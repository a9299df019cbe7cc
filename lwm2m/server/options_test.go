package server

import (
	"errors"
	"testing"

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
			s, err := New(registry.NewMemory(registry.Options{}), tc.opt)
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
		s, err := New(registry.NewMemory(registry.Options{}), WithLimits(Limits{SourceRate: -1}), WithLifetimeBounds(60, 60))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}
