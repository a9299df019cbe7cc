package cfgcheck

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

var errTest = errors.New("x: invalid option")

func TestFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(*Fields)
		want string // "" for no error
	}{
		{"zero takes the default", func(f *Fields) {
			n := 0
			Default(f, "N", &n, 7)
			if n != 7 {
				f.Badf("default not applied: %d", n)
			}
		}, ""},
		{"positive kept", func(f *Fields) {
			d := time.Second
			Default(f, "D", &d, time.Minute)
			if d != time.Second {
				f.Badf("value changed: %v", d)
			}
		}, ""},
		{"negative refused and kept", func(f *Fields) {
			n := -3
			Default(f, "N", &n, 7)
			if n != -3 {
				f.Badf("value changed: %d", n)
			}
		}, "x: invalid option: C: N -3 is negative"},
		{"NaN refused", func(f *Fields) { NonNegative(f, "Rate", math.NaN()) }, "x: invalid option: C: Rate NaN is negative"},
		{"probabilities", func(f *Fields) {
			Probability(f, "P0", 0)
			Probability(f, "P1", 1)
			Probability(f, "Big", 1.5)
			Probability(f, "Neg", -0.1)
			Probability(f, "NaN", math.NaN())
		}, "x: invalid option: C: Big 1.5 is not a probability in [0, 1]; Neg -0.1 is not a probability in [0, 1]; NaN NaN is not a probability in [0, 1]"},
		{"every problem named", func(f *Fields) {
			NonNegative(f, "A", -1)
			NonNegative(f, "B", 2)
			NonNegative(f, "C", -time.Second)
			f.Badf("Max 1 is below Min 2")
		}, "x: invalid option: C: A -1 is negative; C -1s is negative; Max 1 is below Min 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Fields
			tc.run(&f)
			err := f.Err(errTest, "C")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Err = %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("Err = %v, want %q", err, tc.want)
			case tc.want != "" && !errors.Is(err, errTest):
				t.Fatalf("Err = %v does not wrap the sentinel", err)
			}
		})
	}
}

func TestAtLeast1(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{1, ""}, {7, ""}, {0, "x: invalid option: WithN(0): at least 1"}, {-2, "x: invalid option: WithN(-2): at least 1"}} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			err := AtLeast1(errTest, "WithN", tc.n)
			if (err == nil) != (tc.want == "") || (err != nil && (err.Error() != tc.want || !errors.Is(err, errTest))) {
				t.Fatalf("AtLeast1(%d) = %v, want %q", tc.n, err, tc.want)
			}
		})
	}
}

func TestRefines(t *testing.T) {
	parent := errors.New("x: invalid argument")
	e := Refines("x: invalid option", parent)
	if e.Error() != "x: invalid option" || !errors.Is(e, parent) || errors.Is(parent, e) {
		t.Fatalf("Refines: %v, Is(parent) %v", e, errors.Is(e, parent))
	}
}
