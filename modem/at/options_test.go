package at

import (
	"context"
	"errors"
	"testing"
	"time"
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
