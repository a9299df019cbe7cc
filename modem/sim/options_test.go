package sim

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestOptionsRefuse: an option out of its range fails NewNetwork or
// AddModem with ErrInvalidOption naming it (each used to be taken as
// given: a nil clock, a network that stores nothing, a loss above 1, an
// SMSC address without digits, a SIM that stores nothing, a +CSQ out of
// TS 27.007's range).
func TestOptionsRefuse(t *testing.T) {
	newN := func(o NetworkOption) func() error {
		return func() error {
			n, err := NewNetwork(o)
			if err == nil {
				n.Close()
			}
			return err
		}
	}
	n, err := NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	i := 0
	addM := func(o ModemOption) func() error {
		return func() error {
			i++
			_, err := n.AddModem(fmt.Sprintf("+155500%02d", i), o)
			return err
		}
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "WithClock(nil)", Field: "WithClock", Make: newN(WithClock(nil))},
		{Name: "Loss above 1", Field: "Loss", Make: newN(WithConditions(Conditions{Loss: 2}))},
		{Name: "negative Duplicate", Field: "Duplicate", Make: newN(WithConditions(Conditions{Duplicate: -1}))},
		{Name: "NaN Reorder", Field: "Reorder", Make: newN(WithConditions(Conditions{Reorder: math.NaN()}))},
		{Name: "negative ReorderDelay", Field: "ReorderDelay", Make: newN(WithConditions(Conditions{ReorderDelay: -time.Second}))},
		{Name: "WithSMSC without digits", Field: "WithSMSC", Make: newN(WithSMSC("smsc"))},
		{Name: "WithValidity(0, retry)", Field: "WithValidity", Make: newN(WithValidity(0, time.Second))},
		{Name: "WithValidity(validity, -1s)", Field: "WithValidity", Make: newN(WithValidity(time.Hour, -time.Second))},
		{Name: "WithMaxStored(0)", Field: "WithMaxStored", Make: newN(WithMaxStored(0))},
		{Name: "WithSendTime(-1s)", Field: "WithSendTime", Make: addM(WithSendTime(-time.Second))},
		{Name: "WithAckTimeout(0)", Field: "WithAckTimeout", Make: addM(WithAckTimeout(0))},
		{Name: "WithStorageCapacity(0)", Field: "WithStorageCapacity", Make: addM(WithStorageCapacity(0))},
		{Name: "WithSignal(32)", Field: "WithSignal", Make: addM(WithSignal(32))},
		{Name: "WithSignal(-1)", Field: "WithSignal", Make: addM(WithSignal(-1))},
		{Name: "WithChunkedWrites(0)", Field: "WithChunkedWrites", Make: addM(WithChunkedWrites(0))},
	})
	if _, err := n.AddModem("+15559999", WithSignal(99), WithSendTime(0), WithStorageCapacity(1)); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
}
