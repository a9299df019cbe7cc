package model

import (
	"testing"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestNewRegistryRefuses: WithMaxObjects below 1 (which used to make a
// registry that refused every object with ErrFull) fails NewRegistry
// with ErrInvalidOption.
func TestNewRegistryRefuses(t *testing.T) {
	newR := func(o Option) func() error {
		return func() error { _, err := NewRegistry(o); return err }
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "WithMaxObjects(0)", Field: "WithMaxObjects(0)", Make: newR(WithMaxObjects(0))},
		{Name: "WithMaxObjects(-1)", Field: "WithMaxObjects(-1)", Make: newR(WithMaxObjects(-1))},
	})
	r, err := NewRegistry(WithMaxObjects(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(Core()[0]); err != nil {
		t.Fatal(err)
	}
}
