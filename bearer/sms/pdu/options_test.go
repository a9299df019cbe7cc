package pdu

import (
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestNewEncoderRefuses: an option out of its range fails NewEncoder with
// ErrInvalidOption (WithMaxDestinations(0) and WithRefSeed(nil) used to be
// ignored; defaults no Encode could use failed every Encode).
func TestNewEncoderRefuses(t *testing.T) {
	newE := func(o EncoderOption) func() error {
		return func() error { _, err := NewEncoder(o); return err }
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "WithMaxDestinations(0)", Field: "WithMaxDestinations", Make: newE(WithMaxDestinations(0))},
		{Name: "WithMaxDestinations(-1)", Field: "WithMaxDestinations", Make: newE(WithMaxDestinations(-1))},
		{Name: "WithRefSeed(nil)", Field: "WithRefSeed", Make: newE(WithRefSeed(nil))},
		{Name: "WithDefaults 7-bit DCS", Field: "WithDefaults", Make: newE(WithDefaults(WithDCS(0)))},
		{Name: "WithDefaults negative validity", Field: "validity", Make: newE(WithDefaults(WithValidity(-time.Second)))},
	})
	if _, err := NewEncoder(WithMaxDestinations(1), WithRefSeed(func() uint16 { return 1 }),
		WithDefaults(WithStatusReport(true), WithValidity(time.Hour))); err != nil {
		t.Fatal(err)
	}
}

// TestNewReassemblerRefuses: a negative field, or a MaxBytes below one SMS
// (it used to be raised to 140), fails NewReassembler with ErrInvalidOption
// naming the field; zero fields take the defaults.
func TestNewReassemblerRefuses(t *testing.T) {
	newR := func(c ReassemblerConfig) func() error {
		return func() error { _, err := NewReassembler(c); return err }
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "negative Timeout", Field: "Timeout", Make: newR(ReassemblerConfig{Timeout: -time.Second})},
		{Name: "negative MaxSetsPerOriginator", Field: "MaxSetsPerOriginator", Make: newR(ReassemblerConfig{MaxSetsPerOriginator: -1})},
		{Name: "negative MaxSets", Field: "MaxSets", Make: newR(ReassemblerConfig{MaxSets: -1})},
		{Name: "negative MaxBytes", Field: "MaxBytes", Make: newR(ReassemblerConfig{MaxBytes: -1})},
		{Name: "MaxBytes below one SMS", Field: "MaxBytes 139", Make: newR(ReassemblerConfig{MaxBytes: MaxUserData - 1})},
	})
	r, err := NewReassembler(ReassemblerConfig{MaxBytes: MaxUserData})
	if err != nil || r.cfg.Timeout != 10*time.Minute || r.cfg.MaxSets != 4096 {
		t.Fatalf("NewReassembler(defaults) = %+v, %v", r, err)
	}
}
