package content

import (
	"math"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// SenML CBOR labels (RFC 8428 §6, Table 4) and the LwM2M text label "vlo"
// (LwM2M 1.1 Core §7.4.5).
const (
	senmlBN  = -2
	senmlBT  = -3
	senmlN   = 0
	senmlV   = 2
	senmlVS  = 3
	senmlVB  = 4
	senmlT   = 6
	senmlVD  = 8
	senmlVLO = "vlo"
)

// encodeSenMLCBOR encodes records as SenML CBOR with the names of
// senmlNames and the label order of the LwM2M 1.1 Core §7.4.5 example (bn,
// n, value). Numbers use the shortest CBOR form: integers as major types
// 0/1, floats as half, single or double.
func encodeSenMLCBOR(base path.Path, recs []Record) ([]byte, error) {
	bn, names := senmlNames(recs)
	b := make([]byte, 0, 24*len(recs)+4)
	b = cborHead(b, cborArray, uint64(len(recs)))
	for k, r := range recs {
		nf := 0
		if k == 0 && bn != "" {
			nf++
		}
		if names[k] != "" {
			nf++
		}
		if r.Time != 0 {
			nf++
		}
		if !r.Value.IsNone() {
			nf++
		}
		b = cborHead(b, cborMap, uint64(nf))
		if k == 0 && bn != "" {
			b = cborString(cborInt(b, senmlBN), bn)
		}
		if names[k] != "" {
			b = cborString(cborInt(b, senmlN), names[k])
		}
		if r.Time != 0 {
			b = cborFloatOrInt(cborInt(b, senmlT), r.Time)
		}
		v := r.Value
		switch v.typ {
		case model.None:
		case model.String, model.Corelnk:
			b = cborString(cborInt(b, senmlVS), v.str)
		case model.Integer, model.Time:
			b = cborInt(cborInt(b, senmlV), int64(v.num))
		case model.Unsigned:
			b = cborHead(cborInt(b, senmlV), cborUint, v.num)
		case model.Float:
			b = cborFloat(cborInt(b, senmlV), v.Float())
		case model.Boolean:
			b = cborBool(cborInt(b, senmlVB), v.num != 0)
		case model.Opaque:
			b = cborByteString(cborInt(b, senmlVD), v.raw)
		case model.Objlnk:
			o, i := v.Objlnk()
			b = cborString(cborString(b, senmlVLO), formatObjlnk(o, i))
		}
	}
	return b, nil
}

// cborFloatOrInt writes integral times as integers, others as floats.
func cborFloatOrInt(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return cborInt(b, int64(f))
	}
	return cborFloat(b, f)
}

func formatObjlnk(o, i uint16) string {
	b, _ := appendText(nil, NewObjlnk(o, i))
	return string(b)
}

// cborNumber converts a CBOR number item to a value, typed by the model
// type mt when it is numeric.
func cborNumber(it cborItem, mt model.Type) (Value, bool) {
	switch it.kind {
	case ckUint:
		if mt == model.Unsigned || it.u > math.MaxInt64 {
			return NewUint(it.u), true
		}
		return NewInt(int64(it.u)), true
	case ckNeg:
		i, ok := it.int64()
		if !ok {
			return Value{}, false
		}
		return NewInt(i), true
	case ckFloat:
		if math.IsInf(it.f, 0) || math.IsNaN(it.f) {
			return Value{}, false // as in JSON and text, which cannot carry them
		}
		return NewFloat(it.f), true
	}
	return Value{}, false
}

func cborNumberFloat(it cborItem) (float64, bool) {
	switch it.kind {
	case ckFloat:
		return it.f, !math.IsNaN(it.f) && !math.IsInf(it.f, 0)
	case ckUint, ckNeg:
		i, ok := it.int64()
		return float64(i), ok
	}
	return 0, false
}

// decodeSenMLCBOR decodes SenML CBOR (RFC 8428 §6). Unknown labels are
// ignored except text labels ending in "_" (must-understand).
func decodeSenMLCBOR(base path.Path, data []byte, m model.Resolver) ([]Record, error) {
	top, err := decodeCBOR(SenMLCBOR, data)
	if err != nil {
		return nil, err
	}
	if top.kind != ckArray {
		return nil, decErr(SenMLCBOR, 0, nil, "SenML CBOR is an array of maps")
	}
	if len(top.items) > MaxRecords {
		return nil, decErr(SenMLCBOR, 0, ErrLimit, "more than %d records", MaxRecords)
	}
	st := &senmlState{f: SenMLCBOR, base: base, m: m}
	recs := make([]Record, 0, len(top.items))
	for idx, rec := range top.items {
		if rec.kind != ckMap {
			return nil, decErr(SenMLCBOR, rec.off, nil, "record %d is not a map", idx)
		}
		var (
			n       string
			hasN    bool
			t       float64
			valItem *cborItem
			valKey  string
			nvals   int
		)
		bad := func(it cborItem, what string) error {
			return decErr(SenMLCBOR, it.off, nil, "record %d: bad %s", idx, what)
		}
		for k := 0; k+1 < len(rec.items); k += 2 {
			key, val := rec.items[k], rec.items[k+1]
			if key.kind == ckText {
				if key.s == senmlVLO {
					nvals++
					valItem, valKey = &rec.items[k+1], senmlVLO
				} else if len(key.s) > 0 && key.s[len(key.s)-1] == '_' {
					return nil, decErr(SenMLCBOR, key.off, nil, "record %d: must-understand label %q", idx, key.s)
				}
				continue
			}
			label, ok := key.int64()
			if !ok {
				return nil, decErr(SenMLCBOR, key.off, nil, "record %d: label is not an integer or text", idx)
			}
			switch label {
			case senmlBN:
				if val.kind != ckText {
					return nil, bad(val, "bn")
				}
				st.bn = val.s
			case senmlBT:
				f, ok := cborNumberFloat(val)
				if !ok {
					return nil, bad(val, "bt")
				}
				st.bt = f
			case senmlN:
				if val.kind != ckText {
					return nil, bad(val, "n")
				}
				n, hasN = val.s, true
			case senmlT:
				f, ok := cborNumberFloat(val)
				if !ok {
					return nil, bad(val, "t")
				}
				t = f
			case senmlV, senmlVS, senmlVB, senmlVD:
				nvals++
				valItem = &rec.items[k+1]
				switch label {
				case senmlV:
					valKey = "v"
				case senmlVS:
					valKey = "vs"
				case senmlVB:
					valKey = "vb"
				default:
					valKey = "vd"
				}
			}
		}
		if nvals > 1 {
			return nil, decErr(SenMLCBOR, rec.off, nil, "record %d has %d values", idx, nvals)
		}
		p, err := st.resolve(n, hasN, idx)
		if err != nil {
			return nil, err
		}
		var v Value
		if valItem != nil {
			it := *valItem
			switch valKey {
			case "v":
				var ok bool
				if v, ok = cborNumber(it, resolveType(m, p)); !ok {
					return nil, bad(it, "v")
				}
			case "vs":
				if it.kind != ckText {
					return nil, bad(it, "vs")
				}
				v = NewString(it.s)
			case "vb":
				if it.kind != ckBool {
					return nil, bad(it, "vb")
				}
				v = NewBool(it.b)
			case "vd":
				if it.kind != ckBytes {
					return nil, bad(it, "vd")
				}
				v = NewOpaque([]byte(it.s))
			case senmlVLO:
				var ok bool
				if it.kind != ckText {
					return nil, bad(it, "vlo")
				}
				if v, ok = parseObjlnk(it.s); !ok {
					return nil, bad(it, "vlo")
				}
			}
		}
		if v, err = typed(SenMLCBOR, m, p, v); err != nil {
			return nil, err
		}
		r := Record{Path: p, Value: v}
		if t != 0 || st.bt != 0 {
			r.Time = st.bt + t
		}
		recs = append(recs, r)
	}
	return recs, nil
}
