package content

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Format is a CoAP Content-Format number.
type Format uint16

// LwM2M content formats (IANA CoAP Content-Formats registry). These are
// the project's one list: lwm2m/server's Format constants and
// lwm2m/registry's Formats bits are defined from them.
const (
	Text      Format = 0     // text/plain;charset=utf-8
	CoreLink  Format = 40    // application/link-format
	Opaque    Format = 42    // application/octet-stream
	CBOR      Format = 60    // application/cbor (no LwM2M payload; announced in "ct")
	SenMLJSON Format = 110   // application/senml+json
	SenMLCBOR Format = 112   // application/senml+cbor
	TLV       Format = 11542 // application/vnd.oma.lwm2m+tlv
	OldJSON   Format = 11543 // application/vnd.oma.lwm2m+json (LwM2M 1.0)
	LwM2MCBOR Format = 11544 // application/vnd.oma.lwm2m+cbor (LwM2M 1.2)

	// LegacyTLV and LegacyJSON are the pre-registration numbers used by
	// early LwM2M 1.0 clients; Decode treats them as TLV and OldJSON.
	LegacyTLV  Format = 1542
	LegacyJSON Format = 1543
)

// String returns the media type.
func (f Format) String() string {
	switch f {
	case Text:
		return "text/plain"
	case CoreLink:
		return "application/link-format"
	case Opaque:
		return "application/octet-stream"
	case CBOR:
		return "application/cbor"
	case SenMLJSON:
		return "application/senml+json"
	case SenMLCBOR:
		return "application/senml+cbor"
	case TLV, LegacyTLV:
		return "application/vnd.oma.lwm2m+tlv"
	case OldJSON, LegacyJSON:
		return "application/vnd.oma.lwm2m+json"
	case LwM2MCBOR:
		return "application/vnd.oma.lwm2m+cbor"
	}
	return "format " + strconv.Itoa(int(f))
}

// Limits applied by every decoder.
const (
	// MaxPayload is the largest payload decoded (TLV's own limit is 16 MiB
	// per value).
	MaxPayload = 16 << 20
	// MaxRecords is the most records one payload may produce.
	MaxRecords = 65536
	// MaxDepth is the deepest CBOR nesting accepted.
	MaxDepth = 16
)

// Errors callers branch on.
var (
	// ErrMalformed: the payload does not follow the format (CoAP 4.00).
	ErrMalformed = errors.New("lwm2m content: malformed payload")
	// ErrTypeMismatch: a value does not fit the resource's declared type
	// (4.00); wrapped together with ErrMalformed.
	ErrTypeMismatch = errors.New("lwm2m content: type mismatch")
	// ErrLimit: a size, count or depth limit was exceeded (4.13 or 4.00);
	// wrapped together with ErrMalformed.
	ErrLimit = errors.New("lwm2m content: limit exceeded")
	// ErrUnsupportedFormat: the content format is unknown or not usable for
	// this operation (4.15 on a request, 4.06 for an Accept).
	ErrUnsupportedFormat = errors.New("lwm2m content: unsupported content format")
	// ErrNotEncodable: the records cannot be expressed in the format (for
	// example several values as plain text) (4.06, or 5.00 on a response).
	ErrNotEncodable = errors.New("lwm2m content: not encodable in this format")
)

// DecodeError describes a refused payload. errors.Is(err, ErrMalformed) is
// true for every DecodeError; Err is a more precise cause when there is one
// (ErrTypeMismatch, ErrLimit, a path error).
type DecodeError struct {
	Format Format
	Offset int // byte offset, -1 when unknown
	Reason string
	Err    error
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("lwm2m content: %v at byte %d: %s", e.Format, e.Offset, e.Reason)
	}
	return fmt.Sprintf("lwm2m content: %v: %s", e.Format, e.Reason)
}

// Unwrap returns ErrMalformed and the precise cause.
func (e *DecodeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrMalformed, e.Err}
	}
	return []error{ErrMalformed}
}

func decErr(f Format, off int, cause error, format string, args ...any) *DecodeError {
	return &DecodeError{Format: f, Offset: off, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// Decode decodes a payload of format f received for the request path base
// (the path of the Read, Write or Notify; path.Root for Send and composite
// operations). m types untyped formats and may be nil. The records come
// back in payload order with absolute paths.
func Decode(f Format, base path.Path, data []byte, m model.Resolver) ([]Record, error) {
	if len(data) > MaxPayload {
		return nil, decErr(f, -1, ErrLimit, "payload of %d bytes over %d", len(data), MaxPayload)
	}
	switch f {
	case Text:
		return decodeText(base, data, m)
	case Opaque:
		return decodeOpaque(base, data)
	case CoreLink:
		return decodeCoreLink(base, data)
	case TLV, LegacyTLV:
		return decodeTLV(base, data, m)
	case SenMLJSON:
		return decodeSenMLJSON(base, data, m)
	case SenMLCBOR:
		return decodeSenMLCBOR(base, data, m)
	case LwM2MCBOR:
		return decodeLwM2MCBOR(base, data, m)
	case OldJSON, LegacyJSON:
		return decodeOldJSON(base, data, m)
	}
	return nil, fmt.Errorf("%w: %d", ErrUnsupportedFormat, uint16(f))
}

// Encode encodes records (absolute paths under base) in format f for a
// response or request on path base. The LwM2M 1.0 JSON format (11543) is
// decode-only and gives ErrUnsupportedFormat.
func Encode(f Format, base path.Path, recs []Record) ([]byte, error) {
	for _, r := range recs {
		if !r.Path.HasPrefix(base) {
			return nil, fmt.Errorf("%w: record %v outside %v", ErrNotEncodable, r.Path, base)
		}
		if !r.Path.Valid() {
			return nil, fmt.Errorf("%w: invalid path %v", ErrNotEncodable, r.Path)
		}
	}
	switch f {
	case Text:
		return encodeText(base, recs)
	case Opaque:
		return encodeOpaque(base, recs)
	case CoreLink:
		return encodeCoreLink(base, recs)
	case TLV, LegacyTLV:
		return encodeTLV(base, recs)
	case SenMLJSON:
		return encodeSenMLJSON(base, recs)
	case SenMLCBOR:
		return encodeSenMLCBOR(base, recs)
	case LwM2MCBOR:
		return encodeLwM2MCBOR(recs)
	}
	return nil, fmt.Errorf("%w: cannot encode %d", ErrUnsupportedFormat, uint16(f))
}

// Preferred picks the format a server uses to send data to a client of the
// given LwM2M enabler version ("1.0", "1.1", "1.2") that announced formats
// in the "ct" parameter of its registration (empty when it announced none).
//
// Among the announced formats it prefers, for 1.2, LwM2M CBOR, then SenML
// CBOR, SenML JSON and TLV; for 1.1, SenML CBOR, SenML JSON, TLV; for 1.0,
// TLV. When nothing usable was announced it falls back to the format every
// client of that version supports for multiple values: TLV for 1.0 and 1.1
// (1.1 Core §7.4: TLV, mandatory in 1.0, is what 1.1 clients in the field
// implement), SenML CBOR for 1.2 (1.2 Core §7.4 makes TLV optional).
func Preferred(lwm2mVersion string, announced []Format) Format {
	var order []Format
	fallback := TLV
	switch lwm2mVersion {
	case "1.0", "":
		order = []Format{TLV}
	case "1.1":
		order = []Format{SenMLCBOR, SenMLJSON, TLV}
	default: // 1.2 and later
		order = []Format{LwM2MCBOR, SenMLCBOR, SenMLJSON, TLV}
		fallback = SenMLCBOR
	}
	for _, f := range order {
		if slices.Contains(announced, f) {
			return f
		}
	}
	return fallback
}

// PreferredCompact is Preferred for costly bearers (SMS, where every 134
// bytes is one more message): among the announced formats it picks the
// smallest encoding of an object instance, LwM2M CBOR (1.2), then TLV, then
// SenML CBOR, then SenML JSON. For the Device instance of the specification
// examples these take 119, 121, 196 and 384 bytes. The fallback when
// nothing usable was announced is that of Preferred. TLV cannot address the
// root, so composite operations and Send still need Preferred.
func PreferredCompact(lwm2mVersion string, announced []Format) Format {
	order := []Format{TLV, SenMLCBOR, SenMLJSON}
	if lwm2mVersion != "1.0" && lwm2mVersion != "1.1" && lwm2mVersion != "" {
		order = append([]Format{LwM2MCBOR}, order...)
	}
	if lwm2mVersion == "1.0" || lwm2mVersion == "" {
		order = []Format{TLV}
	}
	for _, f := range order {
		if slices.Contains(announced, f) {
			return f
		}
	}
	return Preferred(lwm2mVersion, nil)
}

// Coerce converts a value to type t: numbers between Integer, Unsigned,
// Float and Time when the value fits exactly, String and Corelnk into each
// other, "obj:inst" text into Objlnk. It fails with ErrTypeMismatch.
func Coerce(v Value, t model.Type) (Value, error) {
	if v.typ == t || v.typ == model.None {
		return v, nil
	}
	mismatch := func() (Value, error) {
		return Value{}, fmt.Errorf("%w: %v value %s for a %v resource", ErrTypeMismatch, v.typ, v, t)
	}
	switch t {
	case model.Integer, model.Time:
		switch v.typ {
		case model.Integer, model.Time:
			return Value{typ: t, num: v.num}, nil
		case model.Unsigned:
			if v.num > math.MaxInt64 {
				return mismatch()
			}
			return Value{typ: t, num: v.num}, nil
		case model.Float:
			f := v.Float()
			if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
				return mismatch()
			}
			return Value{typ: t, num: uint64(int64(f))}, nil
		}
	case model.Unsigned:
		switch v.typ {
		case model.Integer, model.Time:
			if int64(v.num) < 0 {
				return mismatch()
			}
			return NewUint(v.num), nil
		case model.Float:
			f := v.Float()
			if f != math.Trunc(f) || f < 0 || f >= 1<<64 {
				return mismatch()
			}
			return NewUint(uint64(f)), nil
		}
	case model.Float:
		switch v.typ {
		case model.Integer, model.Time:
			return NewFloat(float64(int64(v.num))), nil
		case model.Unsigned:
			return NewFloat(float64(v.num)), nil
		}
	case model.String:
		if v.typ == model.Corelnk {
			return NewString(v.str), nil
		}
	case model.Corelnk:
		if v.typ == model.String {
			return NewCorelnk(v.str), nil
		}
	case model.Objlnk:
		if v.typ == model.String {
			if o, ok := parseObjlnk(v.str); ok {
				return o, nil
			}
		}
	}
	return mismatch()
}

// resolveType returns the declared type of the resource at p, or None.
func resolveType(m model.Resolver, p path.Path) model.Type {
	if m == nil || p.Len() < 3 {
		return model.None
	}
	r, ok := m.Resource(p.ObjectID(), p.ResourceID())
	if !ok {
		return model.None
	}
	return r.Type
}

// typed checks that a value sits at a resource or resource instance and
// coerces it to the model type of p when the model knows it.
func typed(f Format, m model.Resolver, p path.Path, v Value) (Value, error) {
	if v.typ != model.None && p.Len() < path.LevelResource {
		return Value{}, decErr(f, -1, nil, "value at %v, which is not a resource", p)
	}
	t := resolveType(m, p)
	if t == model.None {
		return v, nil
	}
	c, err := Coerce(v, t)
	if err != nil {
		return Value{}, decErr(f, -1, ErrTypeMismatch, "%v: %v", p, err)
	}
	return c, nil
}
