package secure

import (
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestConfigRefusesNegative: a negative knob (which used to take its
// default) fails NewServer and Dial with ErrInvalidOption naming the
// field; IdleTimeout is the exception (negative disables the expiry).
func TestConfigRefusesNegative(t *testing.T) {
	n := newMemNet()
	srv := func(edit func(*Config)) func() error {
		return func() error {
			c := &Config{PSKLookup: pskLookup}
			edit(c)
			s, err := NewServer(n.attach("s", memParams()), c)
			if err == nil {
				s.Close()
			}
			return err
		}
	}
	cli := func(edit func(*Config)) func() error {
		return func() error {
			c := &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]}
			edit(c)
			_, err := Dial(testCtx(t), n.attach("c", memParams()), memAddr("nobody"), c)
			return err
		}
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "server HandshakeTimeout", Field: "HandshakeTimeout", Make: srv(func(c *Config) { c.HandshakeTimeout = -time.Second })},
		{Name: "server MaxSessions", Field: "MaxSessions", Make: srv(func(c *Config) { c.MaxSessions = -1 })},
		{Name: "server MaxHandshakes", Field: "MaxHandshakes", Make: srv(func(c *Config) { c.MaxHandshakes = -1 })},
		{Name: "server QueueLen", Field: "QueueLen", Make: srv(func(c *Config) { c.QueueLen = -1 })},
		{Name: "server FlightInterval", Field: "FlightInterval", Make: srv(func(c *Config) { c.FlightInterval = -time.Second })},
		{Name: "server MTU", Field: "MTU", Make: srv(func(c *Config) { c.MTU = -1 })},
		{Name: "server every field named", Field: "MaxSessions -1 is negative; MaxHandshakes -2 is negative",
			Make: srv(func(c *Config) { c.MaxSessions, c.MaxHandshakes = -1, -2 })},
		{Name: "client HandshakeTimeout", Field: "HandshakeTimeout", Make: cli(func(c *Config) { c.HandshakeTimeout = -time.Second })},
		{Name: "client QueueLen", Field: "QueueLen", Make: cli(func(c *Config) { c.QueueLen = -1 })},
		{Name: "client FlightInterval", Field: "FlightInterval", Make: cli(func(c *Config) { c.FlightInterval = -time.Second })},
		{Name: "client MTU", Field: "MTU", Make: cli(func(c *Config) { c.MTU = -1 })},
	})
	if err := srv(func(c *Config) { c.IdleTimeout = -1 })(); err != nil {
		t.Fatalf("negative IdleTimeout (no expiry) refused: %v", err)
	}
}
