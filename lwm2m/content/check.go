package content

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
)

// ErrOutOfRange is matched by the error of Check for a value outside its
// resource's RangeEnumeration.
var ErrOutOfRange = errors.New("lwm2m content: value out of range")

// Check returns v converted to the type of resource def (see Coerce) after
// checking it against def's RangeEnumeration: the value of a numeric
// resource (Integer, Unsigned, Float, Time), the length in bytes of a
// String or Opaque one. A range model.ParseRange cannot read is not
// enforced. Errors wrap ErrTypeMismatch or ErrOutOfRange and say why.
func Check(v Value, def *model.Resource) (Value, error) {
	if def == nil || v.IsNone() {
		return v, nil
	}
	if def.Type != model.None {
		cv, err := Coerce(v, def.Type)
		if err != nil {
			return Value{}, fmt.Errorf("%s: %w", def.Name, err)
		}
		v = cv
	}
	r, ok := model.ParseRange(def.Range)
	if !ok {
		return v, nil
	}
	var x float64
	what := "value"
	switch v.Type() {
	case model.Integer, model.Time:
		x = float64(v.Int())
	case model.Unsigned:
		x = float64(v.Uint())
	case model.Float:
		x = v.Float()
	case model.String:
		if !utf8.ValidString(v.Str()) {
			return Value{}, fmt.Errorf("%w: %s is not UTF-8", ErrTypeMismatch, def.Name)
		}
		x, what = float64(len(v.Str())), "length"
	case model.Opaque:
		x, what = float64(len(v.Bytes())), "length"
	default:
		return v, nil
	}
	if !r.Contains(x) {
		return Value{}, fmt.Errorf("%w: %s %s %v outside %s", ErrOutOfRange, def.Name, what, x, def.Range)
	}
	return v, nil
}
