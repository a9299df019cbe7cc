package bearer_test

import (
	"errors"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

// TestEndpointOptionsRefuse: an option given a value out of its range
// fails NewEndpoint with ErrInvalidParams instead of being corrected
// (WithTokenLength(9) used to become 8, WithTokenLength(0) 8 as well).
func TestEndpointOptionsRefuse(t *testing.T) {
	tests := []struct {
		name string
		opt  bearer.EndpointOption
		ok   bool
	}{
		{"token length 9", bearer.WithTokenLength(9), false},
		{"token length 0", bearer.WithTokenLength(0), false},
		{"token length -1", bearer.WithTokenLength(-1), false},
		{"token length 1", bearer.WithTokenLength(1), true},
		{"token length 8", bearer.WithTokenLength(8), true},
		{"block size 0", bearer.WithBlockSize(0), false},
		{"block size 100", bearer.WithBlockSize(100), false},
		{"block size 2048", bearer.WithBlockSize(2048), false},
		{"block size 16", bearer.WithBlockSize(16), true},
		{"block size 1024", bearer.WithBlockSize(1024), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b, err := pipe.New()
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			e, err := bearer.NewEndpoint(a, tc.opt)
			if tc.ok {
				if err != nil {
					t.Fatalf("NewEndpoint: %v", err)
				}
				e.Close()
				return
			}
			a.Close()
			if !errors.Is(err, bearer.ErrInvalidParams) {
				t.Fatalf("NewEndpoint = %v, want an error wrapping ErrInvalidParams", err)
			}
			if !errors.Is(err, bearer.ErrInvalidOption) {
				t.Fatalf("NewEndpoint = %v, want an error wrapping ErrInvalidOption", err)
			}
		})
	}
	if _, err := bearer.NewEndpoint(nil); !errors.Is(err, bearer.ErrInvalidOption) {
		t.Fatalf("NewEndpoint(nil) = %v, want ErrInvalidOption", err)
	}
}
