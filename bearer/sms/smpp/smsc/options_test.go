package smsc

import (
	"testing"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// TestStartRefuses: a Config that cannot work fails Start with
// ErrInvalidOption naming the field (negative sizes used to take the
// defaults).
func TestStartRefuses(t *testing.T) {
	n, err := sim.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	start := func(c Config) func() error {
		return func() error {
			s, err := Start(c)
			if err == nil {
				s.Close()
			}
			return err
		}
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "no Network", Field: "Network", Make: start(Config{})},
		{Name: "negative Window", Field: "Window", Make: start(Config{Network: n, Window: -1})},
		{Name: "negative QueueLen", Field: "QueueLen", Make: start(Config{Network: n, QueueLen: -1})},
		{Name: "negative MaxSessions", Field: "MaxSessions", Make: start(Config{Network: n, MaxSessions: -1})},
	})
}
