// Package cfgchecktest runs the table test every constructor has: each
// refused option or Config field fails the constructor with the package's
// ErrInvalidOption, and the error names the field.
//
// # Usage
//
//	newR := func(c pdu.ReassemblerConfig) func() error {
//		return func() error { _, err := pdu.NewReassembler(c); return err }
//	}
//	cfgchecktest.Refuses(t, pdu.ErrInvalidOption, []cfgchecktest.Case{
//		{Name: "negative Timeout", Field: "Timeout", Make: newR(pdu.ReassemblerConfig{Timeout: -1})},
//	})
//
// # Design
//
// One case, one subtest. Each case runs as t.Run(Name), so a constructor
// that accepts a value it should refuse names itself in the failure.
package cfgchecktest

import (
	"errors"
	"strings"
	"testing"
)

// Case is one refusal: Make calls the constructor with one bad option or
// field and returns its error (closing what it made, if it made anything).
// Field is the text the error must contain: the option or field's name.
type Case struct {
	Name  string
	Field string
	Make  func() error
}

// Refuses runs every case as a subtest: its error must wrap sentinel and
// contain Field.
func Refuses(t *testing.T, sentinel error, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			err := c.Make()
			if !errors.Is(err, sentinel) {
				t.Fatalf("error %v, want one wrapping %v", err, sentinel)
			}
			if !strings.Contains(err.Error(), c.Field) {
				t.Fatalf("error %q does not name %q", err, c.Field)
			}
		})
	}
}
