package smpp

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestDialRefuses: a Config that cannot work fails Dial with
// ErrInvalidOption naming the field, before any state is opened or any
// connection tried (a negative Window, Burst or duration used to take the
// default; a ReconnectMax below ReconnectMin was used as given).
func TestDialRefuses(t *testing.T) {
	dir := t.TempDir()
	dial := func(edit func(*Config)) func() error {
		c := Config{Addr: "127.0.0.1:1", StateDir: dir, Sources: []string{"+4915112345678"}}
		edit(&c)
		return func() error {
			l, err := Dial(c)
			if err == nil {
				l.Close()
			}
			return err
		}
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "no Addr", Field: "Addr", Make: dial(func(c *Config) { c.Addr = "" })},
		{Name: "no StateDir or State", Field: "StateDir", Make: dial(func(c *Config) { c.StateDir = "" })},
		{Name: "no Sources", Field: "Sources", Make: dial(func(c *Config) { c.Sources = nil })},
		{Name: "bad source", Field: "Sources[0]", Make: dial(func(c *Config) { c.Sources = []string{"not a number at all"} })},
		{Name: "negative Window", Field: "Window", Make: dial(func(c *Config) { c.Window = -1 })},
		{Name: "negative Burst", Field: "Burst", Make: dial(func(c *Config) { c.Burst = -1 })},
		{Name: "negative Rate", Field: "Rate", Make: dial(func(c *Config) { c.Rate = -1 })},
		{Name: "NaN Rate", Field: "Rate", Make: dial(func(c *Config) { c.Rate = math.NaN() })},
		{Name: "unknown Concat", Field: "Concat", Make: dial(func(c *Config) { c.Concat = 3 })},
		{Name: "unknown Bind", Field: "Bind", Make: dial(func(c *Config) { c.Bind = -1 })},
		{Name: "negative EnquireLink", Field: "EnquireLink", Make: dial(func(c *Config) { c.EnquireLink = -time.Second })},
		{Name: "negative ResponseTimeout", Field: "ResponseTimeout", Make: dial(func(c *Config) { c.ResponseTimeout = -time.Second })},
		{Name: "negative ReceiptMaxAge", Field: "ReceiptMaxAge", Make: dial(func(c *Config) { c.ReceiptMaxAge = -time.Hour })},
		{Name: "negative ReceiptHold", Field: "ReceiptHold", Make: dial(func(c *Config) { c.ReceiptHold = -time.Second })},
		{Name: "negative PayloadSetMaxAge", Field: "PayloadSetMaxAge", Make: dial(func(c *Config) { c.PayloadSetMaxAge = -time.Hour })},
		{Name: "negative PruneInterval", Field: "PruneInterval", Make: dial(func(c *Config) { c.PruneInterval = -time.Hour })},
		{Name: "negative MaxPayloadSets", Field: "MaxPayloadSets", Make: dial(func(c *Config) { c.MaxPayloadSets = -1 })},
		{Name: "negative InboundBuffer", Field: "InboundBuffer", Make: dial(func(c *Config) { c.InboundBuffer = -1 })},
		{Name: "ReconnectMax below ReconnectMin", Field: "ReconnectMax 1s is below ReconnectMin 2s",
			Make: dial(func(c *Config) { c.ReconnectMin, c.ReconnectMax = 2*time.Second, time.Second })},
		{Name: "ThrottleMax below ThrottleMin", Field: "ThrottleMax",
			Make: dial(func(c *Config) { c.ThrottleMin, c.ThrottleMax = time.Second, time.Millisecond })},
		{Name: "SystemID too long", Field: "SystemID", Make: dial(func(c *Config) { c.SystemID = strings.Repeat("x", 16) })},
	})
}
