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
	return eachRecord(top.items, st.cborRecord)
}

// cborLabels is what one SenML CBOR record's labels say: its name (hasN:
// present), time, and its value's item and label (nvals: how many values).
type cborLabels struct {
	n     string
	hasN  bool
	t     float64
	item  *cborItem
	key   string
	nvals int
}

// cborRecord decodes the idx-th record: its labels (base labels kept in st
// for the records after it) and its one value.
func (st *senmlState) cborRecord(idx int, rec cborItem) (Record, error) {
	if rec.kind != ckMap {
		return Record{}, decErr(SenMLCBOR, rec.off, nil, "record %d is not a map", idx)
	}
	l, err := st.cborLabels(idx, rec)
	if err != nil {
		return Record{}, err
	}
	if l.nvals > 1 {
		return Record{}, decErr(SenMLCBOR, rec.off, nil, "record %d has %d values", idx, l.nvals)
	}
	p, err := st.resolve(l.n, l.hasN, idx)
	if err != nil {
		return Record{}, err
	}
	var v Value
	if l.item != nil {
		if v, err = cborValue(idx, *l.item, l.key, resolveType(st.m, p)); err != nil {
			return Record{}, err
		}
	}
	if v, err = typed(SenMLCBOR, st.m, p, v); err != nil {
		return Record{}, err
	}
	r := Record{Path: p, Value: v}
	if l.t != 0 || st.bt != 0 {
		r.Time = st.bt + l.t
	}
	return r, nil
}

func cborBad(idx int, it cborItem, what string) error {
	return decErr(SenMLCBOR, it.off, nil, "record %d: bad %s", idx, what)
}

// cborLabels reads the labels of record idx: bn and bt into st, the rest
// into the cborLabels returned.
func (st *senmlState) cborLabels(idx int, rec cborItem) (cborLabels, error) {
	var l cborLabels
	bad := func(it cborItem, what string) error { return cborBad(idx, it, what) }
	for k := 0; k+1 < len(rec.items); k += 2 {
		key, val := rec.items[k], rec.items[k+1]
		if key.kind == ckText {
			if key.s == senmlVLO {
				l.nvals++
				l.item, l.key = &rec.items[k+1], senmlVLO
			} else if len(key.s) > 0 && key.s[len(key.s)-1] == '_' {
				return l, decErr(SenMLCBOR, key.off, nil, "record %d: must-understand label %q", idx, key.s)
			}
			continue
		}
		label, ok := key.int64()
		if !ok {
			return l, decErr(SenMLCBOR, key.off, nil, "record %d: label is not an integer or text", idx)
		}
		switch label {
		case senmlBN:
			if val.kind != ckText {
				return l, bad(val, "bn")
			}
			st.bn = val.s
		case senmlBT:
			f, ok := cborNumberFloat(val)
			if !ok {
				return l, bad(val, "bt")
			}
			st.bt = f
		case senmlN:
			if val.kind != ckText {
				return l, bad(val, "n")
			}
			l.n, l.hasN = val.s, true
		case senmlT:
			f, ok := cborNumberFloat(val)
			if !ok {
				return l, bad(val, "t")
			}
			l.t = f
		case senmlV, senmlVS, senmlVB, senmlVD:
			l.nvals++
			l.item = &rec.items[k+1]
			switch label {
			case senmlV:
				l.key = "v"
			case senmlVS:
				l.key = "vs"
			case senmlVB:
				l.key = "vb"
			default:
				l.key = "vd"
			}
		}
	}
	return l, nil
}

// cborValue is the value of item it under label key ("v", "vs", "vb", "vd"
// or vlo) for a resource of type mt.
func cborValue(idx int, it cborItem, key string, mt model.Type) (Value, error) {
	var v Value
	bad := func(it cborItem, what string) error { return cborBad(idx, it, what) }
	switch key {
	case "v":
		var ok bool
		if v, ok = cborNumber(it, mt); !ok {
			return v, bad(it, "v")
		}
	case "vs":
		if it.kind != ckText {
			return v, bad(it, "vs")
		}
		v = NewString(it.s)
	case "vb":
		if it.kind != ckBool {
			return v, bad(it, "vb")
		}
		v = NewBool(it.b)
	case "vd":
		if it.kind != ckBytes {
			return v, bad(it, "vd")
		}
		v = NewOpaque([]byte(it.s))
	case senmlVLO:
		var ok bool
		if it.kind != ckText {
			return v, bad(it, "vlo")
		}
		if v, ok = parseObjlnk(it.s); !ok {
			return v, bad(it, "vlo")
		}
	}
	return v, nil
}
