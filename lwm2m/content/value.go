package content

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Value is a typed LwM2M resource value (Core Appendix C data types). The
// zero Value has type model.None: "no value", as in the path-only records of
// a Read-Composite request.
type Value struct {
	typ model.Type
	num uint64 // Integer/Time (int64 bits), Unsigned, Float (float64 bits), Boolean (0/1), Objlnk (obj<<16|inst)
	str string // String, Corelnk
	raw []byte // Opaque
}

// NewString returns a String value.
func NewString(s string) Value { return Value{typ: model.String, str: s} }

// NewInt returns an Integer value.
func NewInt(i int64) Value { return Value{typ: model.Integer, num: uint64(i)} }

// NewUint returns an Unsigned Integer value.
func NewUint(u uint64) Value { return Value{typ: model.Unsigned, num: u} }

// NewFloat returns a Float value.
func NewFloat(f float64) Value { return Value{typ: model.Float, num: math.Float64bits(f)} }

// NewBool returns a Boolean value.
func NewBool(b bool) Value {
	v := Value{typ: model.Boolean}
	if b {
		v.num = 1
	}
	return v
}

// NewOpaque returns an Opaque value; b is not copied.
func NewOpaque(b []byte) Value { return Value{typ: model.Opaque, raw: b} }

// NewTime returns a Time value (Unix seconds; sub-second parts are dropped).
func NewTime(t time.Time) Value { return NewTimeUnix(t.Unix()) }

// NewTimeUnix returns a Time value of Unix seconds.
func NewTimeUnix(sec int64) Value { return Value{typ: model.Time, num: uint64(sec)} }

// NewObjlnk returns an Objlnk value "obj:inst". LwM2M uses 65535:65535 as
// the null link.
func NewObjlnk(obj, inst uint16) Value {
	return Value{typ: model.Objlnk, num: uint64(obj)<<16 | uint64(inst)}
}

// NewCorelnk returns a Corelnk value (RFC 6690 text).
func NewCorelnk(s string) Value { return Value{typ: model.Corelnk, str: s} }

// Type returns the value's type; model.None for "no value".
func (v Value) Type() model.Type { return v.typ }

// IsNone reports whether v carries no value.
func (v Value) IsNone() bool { return v.typ == model.None }

// Str returns the text of a String or Corelnk value.
func (v Value) Str() string { return v.str }

// Int returns an Integer or Time value (and Unsigned values as int64 bits).
func (v Value) Int() int64 { return int64(v.num) }

// Uint returns an Unsigned Integer value.
func (v Value) Uint() uint64 { return v.num }

// Float returns a Float value.
func (v Value) Float() float64 {
	if v.typ != model.Float {
		return 0
	}
	return math.Float64frombits(v.num)
}

// Bool returns a Boolean value.
func (v Value) Bool() bool { return v.num != 0 }

// Bytes returns an Opaque value (not a copy).
func (v Value) Bytes() []byte { return v.raw }

// Time returns a Time value as a UTC time.Time.
func (v Value) Time() time.Time { return time.Unix(int64(v.num), 0).UTC() }

// Objlnk returns the object and instance IDs of an Objlnk value.
func (v Value) Objlnk() (obj, inst uint16) { return uint16(v.num >> 16), uint16(v.num) }

// Equal reports whether v and w have the same type and value. Floats compare
// by bits, so NaN equals NaN and 0 differs from -0.
func (v Value) Equal(w Value) bool {
	return v.typ == w.typ && v.num == w.num && v.str == w.str && bytes.Equal(v.raw, w.raw)
}

// String returns a readable form (the plain text encoding where one exists).
func (v Value) String() string {
	switch v.typ {
	case model.None:
		return "<none>"
	case model.Opaque:
		return fmt.Sprintf("opaque(%d bytes)", len(v.raw))
	}
	b, _ := appendText(nil, v)
	return string(b)
}

// appendText appends the plain-text (content format 0) form of v (LwM2M 1.1
// Core §7.4.1: decimal numbers, "0"/"1" booleans, Unix time, "obj:inst",
// base64 opaque).
func appendText(b []byte, v Value) ([]byte, error) {
	switch v.typ {
	case model.String, model.Corelnk:
		return append(b, v.str...), nil
	case model.Integer, model.Time:
		return strconv.AppendInt(b, int64(v.num), 10), nil
	case model.Unsigned:
		return strconv.AppendUint(b, v.num, 10), nil
	case model.Float:
		return appendFloat(b, v.Float())
	case model.Boolean:
		if v.num != 0 {
			return append(b, '1'), nil
		}
		return append(b, '0'), nil
	case model.Objlnk:
		o, i := v.Objlnk()
		b = strconv.AppendUint(b, uint64(o), 10)
		b = append(b, ':')
		return strconv.AppendUint(b, uint64(i), 10), nil
	case model.Opaque:
		return base64.StdEncoding.AppendEncode(b, v.raw), nil
	}
	return b, fmt.Errorf("%w: no value", ErrNotEncodable)
}

func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("%w: float %v has no LwM2M text form", ErrNotEncodable, f)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64), nil
}

// parseObjlnk parses "obj:inst".
func parseObjlnk(s string) (Value, bool) {
	for k := 0; k < len(s); k++ {
		if s[k] == ':' {
			o, err1 := strconv.ParseUint(s[:k], 10, 16)
			i, err2 := strconv.ParseUint(s[k+1:], 10, 16)
			if err1 != nil || err2 != nil {
				return Value{}, false
			}
			return NewObjlnk(uint16(o), uint16(i)), true
		}
	}
	return Value{}, false
}

// Record is one resource (or resource instance) value at an absolute path,
// the unit every format encodes. Time is the SenML time (base time + time,
// seconds) of a timestamped value, 0 when absent.
//
// The zero Record is the root path with no value (model.None).
type Record struct {
	Path  path.Path
	Value Value
	Time  float64
}

// String returns "path=value".
func (r Record) String() string { return r.Path.String() + "=" + r.Value.String() }

// ParseValue parses the plain-text form of a value of type t, as an
// operator types it in an API or on a command line: decimal numbers,
// "0"/"1" or "true"/"false" for booleans, Unix seconds or RFC 3339 for
// times, "obj:inst" for object links, base64 for opaque data. Errors wrap
// ErrTypeMismatch.
func ParseValue(t model.Type, s string) (Value, error) {
	switch t {
	case model.Boolean:
		switch s {
		case "true":
			return NewBool(true), nil
		case "false":
			return NewBool(false), nil
		}
	case model.Time:
		if tm, err := time.Parse(time.RFC3339, s); err == nil {
			return NewTime(tm), nil
		}
	case model.None:
		return Value{}, fmt.Errorf("%w: executable resources have no value", ErrTypeMismatch)
	}
	v, err := parseText(t, []byte(s))
	if err != nil {
		return Value{}, fmt.Errorf("%w: %q is not a valid %v", ErrTypeMismatch, s, t)
	}
	return v, nil
}

// Any returns the value as a plain Go value, for JSON APIs and logs:
// string (String, Corelnk, and Objlnk as "obj:inst"), int64 (Integer),
// uint64 (Unsigned), float64, bool, []byte (Opaque), time.Time (Time), or
// nil for no value.
func (v Value) Any() any {
	switch v.typ {
	case model.String, model.Corelnk:
		return v.str
	case model.Integer:
		return v.Int()
	case model.Unsigned:
		return v.num
	case model.Float:
		return v.Float()
	case model.Boolean:
		return v.Bool()
	case model.Opaque:
		return v.raw
	case model.Time:
		return v.Time()
	case model.Objlnk:
		return v.String()
	}
	return nil
}
