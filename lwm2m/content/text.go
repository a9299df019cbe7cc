package content

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// single returns the one record a single-value format can carry.
func single(f Format, base path.Path, recs []Record) (Record, error) {
	if base.Len() < path.LevelResource {
		return Record{}, errf(ErrNotEncodable, "%v carries one resource value, not %v", f, base)
	}
	if len(recs) != 1 || recs[0].Path != base {
		return Record{}, errf(ErrNotEncodable, "%v carries exactly one value at %v, got %d records", f, base, len(recs))
	}
	return recs[0], nil
}

func decodeBase(f Format, base path.Path) error {
	if base.Len() < path.LevelResource {
		return decErr(f, -1, nil, "%v carries one resource value, not %v", f, base)
	}
	return nil
}

// encodeText encodes one value as plain text (LwM2M 1.1 Core §7.4.1).
func encodeText(base path.Path, recs []Record) ([]byte, error) {
	r, err := single(Text, base, recs)
	if err != nil {
		return nil, err
	}
	return appendText(nil, r.Value)
}

// decodeText decodes a plain text value, typed by the model (String when
// the resource is unknown).
func decodeText(base path.Path, data []byte, m model.Resolver) ([]Record, error) {
	if err := decodeBase(Text, base); err != nil {
		return nil, err
	}
	t := resolveType(m, base)
	if t == model.None {
		t = model.String
	}
	v, err := parseText(t, data)
	if err != nil {
		return nil, err
	}
	return []Record{{Path: base, Value: v}}, nil
}

func parseText(t model.Type, data []byte) (Value, error) {
	s := string(data)
	bad := func(what string) (Value, error) {
		if len(s) > 32 {
			s = s[:32] + "…"
		}
		return Value{}, decErr(Text, -1, ErrTypeMismatch, "%q is not %s", s, what)
	}
	switch t {
	case model.String, model.Corelnk:
		if !utf8.ValidString(s) {
			return Value{}, decErr(Text, -1, nil, "invalid UTF-8")
		}
		if t == model.Corelnk {
			return NewCorelnk(s), nil
		}
		return NewString(s), nil
	case model.Integer, model.Time:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("an integer")
		}
		return Value{typ: t, num: uint64(i)}, nil
	case model.Unsigned:
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad("an unsigned integer")
		}
		return NewUint(u), nil
	case model.Float:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return bad("a float")
		}
		return NewFloat(f), nil
	case model.Boolean:
		switch s {
		case "0":
			return NewBool(false), nil
		case "1":
			return NewBool(true), nil
		}
		return bad(`a boolean ("0" or "1")`)
	case model.Objlnk:
		v, ok := parseObjlnk(s)
		if !ok {
			return bad(`an object link ("obj:inst")`)
		}
		return v, nil
	case model.Opaque:
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			return bad("base64")
		}
		return NewOpaque(b), nil
	}
	return bad("a value")
}

// encodeOpaque encodes one Opaque value as raw bytes (Core §7.4.2).
func encodeOpaque(base path.Path, recs []Record) ([]byte, error) {
	r, err := single(Opaque, base, recs)
	if err != nil {
		return nil, err
	}
	if r.Value.typ != model.Opaque {
		return nil, errf(ErrNotEncodable, "opaque format carries Opaque values, not %v", r.Value.typ)
	}
	return append([]byte(nil), r.Value.raw...), nil
}

func decodeOpaque(base path.Path, data []byte) ([]Record, error) {
	if err := decodeBase(Opaque, base); err != nil {
		return nil, err
	}
	return []Record{{Path: base, Value: NewOpaque(append([]byte(nil), data...))}}, nil
}

// encodeCoreLink encodes one Corelnk value as application/link-format.
func encodeCoreLink(base path.Path, recs []Record) ([]byte, error) {
	r, err := single(CoreLink, base, recs)
	if err != nil {
		return nil, err
	}
	if r.Value.typ != model.Corelnk {
		return nil, errf(ErrNotEncodable, "link format carries Corelnk values, not %v", r.Value.typ)
	}
	if _, err := link.Parse([]byte(r.Value.str)); err != nil {
		return nil, errf(ErrNotEncodable, "Corelnk value is not link format: %v", err)
	}
	return []byte(r.Value.str), nil
}

// decodeCoreLink decodes a Corelnk value; the text must be valid RFC 6690.
// (Discover and registration payloads are parsed by package link.)
func decodeCoreLink(base path.Path, data []byte) ([]Record, error) {
	if err := decodeBase(CoreLink, base); err != nil {
		return nil, err
	}
	if _, err := link.Parse(data); err != nil {
		return nil, &DecodeError{Format: CoreLink, Offset: -1, Reason: err.Error(), Err: err}
	}
	return []Record{{Path: base, Value: NewCorelnk(string(data))}}, nil
}
