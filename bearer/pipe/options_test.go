package pipe_test

import (
	"math"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestOptionsRefuse: an option out of its range fails New and NewHub with
// ErrInvalidOption naming it (WithQueue(0) used to become 1024, equal
// names left New's second Conn nil, a loss above 1 or invalid Params were
// taken as given).
func TestOptionsRefuse(t *testing.T) {
	badParams := bearer.UDPParams("pipe")
	badParams.NStart = 0
	newP := func(o pipe.Option) func() error {
		return func() error { _, _, err := pipe.New(o); return err }
	}
	cases := []cfgchecktest.Case{
		{Name: "WithQueue(0)", Field: "WithQueue", Make: newP(pipe.WithQueue(0))},
		{Name: "WithQueue(-1)", Field: "WithQueue", Make: newP(pipe.WithQueue(-1))},
		{Name: "WithNames same", Field: "WithNames", Make: newP(pipe.WithNames("a", "a"))},
		{Name: "WithNames empty", Field: "WithNames", Make: newP(pipe.WithNames("", "b"))},
		{Name: "WithParams invalid", Field: "NStart", Make: newP(pipe.WithParams(badParams))},
		{Name: "Loss above 1", Field: "Loss", Make: newP(pipe.WithFaults(pipe.Faults{Loss: 1.5}))},
		{Name: "negative Duplicate", Field: "Duplicate", Make: newP(pipe.WithFaults(pipe.Faults{Duplicate: -0.1}))},
		{Name: "NaN Reorder", Field: "Reorder", Make: newP(pipe.WithFaults(pipe.Faults{Reorder: math.NaN()}))},
		{Name: "negative ReorderDelay", Field: "ReorderDelay", Make: newP(pipe.WithFaults(pipe.Faults{ReorderDelay: -time.Millisecond}))},
		{Name: "negative Delay", Field: "Delay", Make: newP(pipe.WithFaults(pipe.Faults{Delay: -time.Millisecond}))},
		{Name: "negative Jitter", Field: "Jitter", Make: newP(pipe.WithFaults(pipe.Faults{Jitter: -time.Millisecond}))},
		{Name: "NewHub WithQueue(0)", Field: "WithQueue", Make: func() error { _, err := pipe.NewHub(pipe.WithQueue(0)); return err }},
	}
	cfgchecktest.Refuses(t, pipe.ErrInvalidOption, cases)
	a, b, err := pipe.New(pipe.WithQueue(1), pipe.WithNames("x", "y"), pipe.WithSeed(3),
		pipe.WithFaults(pipe.Faults{Loss: 1, Duplicate: 0, Reorder: 0.5, Delay: time.Millisecond}))
	if err != nil || a == nil || b == nil {
		t.Fatalf("New = %v, %v, %v", a, b, err)
	}
	a.Close()
	b.Close()
}
