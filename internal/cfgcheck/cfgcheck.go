// Package cfgcheck checks the fields of a component's Config struct the way
// every m2mbearer constructor does: a zero field takes its default, a
// negative (or NaN) one is refused, and the constructor's error names every
// field it refuses and wraps the package's ErrInvalidOption.
//
// # Usage
//
//	var f cfgcheck.Fields
//	cfgcheck.Default(&f, "Window", &c.Window, 10)
//	cfgcheck.Default(&f, "ResponseTimeout", &c.ResponseTimeout, 10*time.Second)
//	cfgcheck.NonNegative(&f, "Rate", c.Rate)
//	if c.ReconnectMax < c.ReconnectMin {
//		f.Badf("ReconnectMax %v is below ReconnectMin %v", c.ReconnectMax, c.ReconnectMin)
//	}
//	if err := f.Err(ErrInvalidOption, "Config"); err != nil { // "smpp: invalid option: Config: Window -1 is negative"
//		return err
//	}
//
// # Design
//
// Refuse, never correct. A value out of its range is an error, not the
// default and not the nearest valid value (net/http and pion/dtls treat a
// zero field as the default; we add that a negative one is a mistake).
//
// All at once. Every bad field of a Config is named in one error, so a
// configuration is fixed in one pass.
package cfgcheck

import (
	"fmt"
	"math"
	"strings"
)

// Number is the type of a Config field that holds a size, a count, a rate
// or a duration.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~float32 | ~float64
}

// Fields collects the problems of one Config. The zero Fields is ready to
// use and holds no problem.
type Fields struct {
	bad []string
}

// Default sets *p to def when it is zero, and records name when it is
// negative or NaN (leaving *p as it is).
func Default[T Number](f *Fields, name string, p *T, def T) {
	switch {
	case negative(*p):
		f.Badf("%s %v is negative", name, *p)
	case *p == 0:
		*p = def
	}
}

// NonNegative records name when v is negative or NaN.
func NonNegative[T Number](f *Fields, name string, v T) {
	if negative(v) {
		f.Badf("%s %v is negative", name, v)
	}
}

// Probability records name when v is not in [0, 1] (NaN included).
func Probability(f *Fields, name string, v float64) {
	if !(v >= 0 && v <= 1) {
		f.Badf("%s %v is not a probability in [0, 1]", name, v)
	}
}

func negative[T Number](v T) bool {
	return v < 0 || math.IsNaN(float64(v))
}

// Badf records a problem in its own words; it should start with the
// field's name ("ReconnectMax 1s is below ReconnectMin 2s").
func (f *Fields) Badf(format string, args ...any) {
	f.bad = append(f.bad, fmt.Sprintf(format, args...))
}

// Err returns nil when nothing was recorded; otherwise an error wrapping
// sentinel whose text is sentinel's, then what (the Config's name), then
// every problem recorded, in order.
func (f *Fields) Err(sentinel error, what string) error {
	if len(f.bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %s", sentinel, what, strings.Join(f.bad, "; "))
}

// Refines returns a sentinel error with text msg that also matches parent
// under errors.Is: a package's ErrInvalidOption that is a kind of its older,
// broader "invalid argument" error, so callers that branch on the older one
// keep working.
func Refines(msg string, parent error) error {
	return &refined{msg: msg, parent: parent}
}

type refined struct {
	msg    string
	parent error
}

func (e *refined) Error() string { return e.msg }
func (e *refined) Unwrap() error { return e.parent }

// AtLeast1 returns nil when n ≥ 1, otherwise an error wrapping sentinel
// that names the option and its value: the check of an option such as
// WithQueue(n), where an explicit 0 is no more meaningful than -1.
func AtLeast1[T ~int | ~int64](sentinel error, option string, n T) error {
	if n < 1 {
		return fmt.Errorf("%w: %s(%d): at least 1", sentinel, option, n)
	}
	return nil
}
