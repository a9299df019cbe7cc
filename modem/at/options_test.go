package at

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestOptionsRefuse: a command given an option out of its range fails
// with ErrInvalidOption and nothing is sent (WithTimeout(0) used to be
// ignored, keeping Config.Timeout).
func TestOptionsRefuse(t *testing.T) {
	l := newLine(t, Dialect{})
	cases := []struct {
		name string
		opt  Option
	}{
		{"WithTimeout(0)", WithTimeout(0)},
		{"WithTimeout(-1s)", WithTimeout(-time.Second)},
		{"WithEndOnInfo(-1ms)", WithEndOnInfo(-time.Millisecond)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.e.Exec(context.Background(), "+CSQ", tc.opt)
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("Exec = %v, want ErrInvalidOption", err)
			}
			select {
			case c := <-l.cmds:
				t.Fatalf("%q sent", c)
			default:
			}
		})
	}
}

// TestNewRefuses: a Config field out of its range fails New with
// ErrInvalidOption naming it, and no reader starts (a negative field used
// to take its default, a QuietMax below Quiet became 2 s or Quiet).
func TestNewRefuses(t *testing.T) {
	rw := duplex{strings.NewReader(""), io.Discard}
	newE := func(rw io.ReadWriter, c Config) func() error {
		return func() error { _, err := New(rw, c); return err }
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "nil line", Field: "rw", Make: newE(nil, Config{})},
		{Name: "negative Timeout", Field: "Timeout", Make: newE(rw, Config{Timeout: -time.Second})},
		{Name: "negative MaxLine", Field: "MaxLine", Make: newE(rw, Config{MaxLine: -1})},
		{Name: "negative MaxAnswerLines", Field: "MaxAnswerLines", Make: newE(rw, Config{MaxAnswerLines: -1})},
		{Name: "negative Quiet", Field: "Quiet", Make: newE(rw, Config{Quiet: -time.Millisecond})},
		{Name: "negative QuietMax", Field: "QuietMax", Make: newE(rw, Config{QuietMax: -time.Millisecond})},
		{Name: "QuietMax below Quiet", Field: "QuietMax 1s is below Quiet 3s", Make: newE(rw, Config{Quiet: 3 * time.Second, QuietMax: time.Second})},
	})
	e, err := New(rw, Config{Quiet: 3 * time.Second})
	if err != nil || e.cfg.QuietMax != 3*time.Second || e.cfg.Timeout != 5*time.Second {
		t.Fatalf("New(defaults) = %+v, %v", e, err)
	}
	<-e.Done()
}
