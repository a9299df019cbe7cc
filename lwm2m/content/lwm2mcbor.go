package content

import (
	"slices"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// LwM2M CBOR (content format 11544, LwM2M 1.2 Core §7.4.7): nested CBOR maps
// keyed by path IDs from the root, {3: {0: {0: "Open Mobile Alliance"}}}.
// A key may also be an array of IDs standing for several levels at once
// ({[3, 0]: {0: ...}}). Leaves are typed CBOR values: text for String,
// Corelnk and Objlnk ("3:0"), integers, floats, booleans, byte strings for
// Opaque, tag 1 + integer for Time, null for "no value".

// encodeLwM2MCBOR encodes records as nested definite-length maps from the
// root, IDs in ascending order. (Decoders also accept the indefinite-length
// maps some clients send.)
func encodeLwM2MCBOR(recs []Record) ([]byte, error) {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b Record) int { return path.Compare(a.Path, b.Path) })
	for k, r := range sorted {
		if r.Path.IsRoot() {
			return nil, errf(ErrNotEncodable, "LwM2M CBOR has no value at the root")
		}
		if k > 0 && sorted[k].Path.HasPrefix(sorted[k-1].Path) {
			return nil, errf(ErrNotEncodable, "%v and %v overlap", sorted[k-1].Path, r.Path)
		}
	}
	return lwm2mCBORLevel(make([]byte, 0, 16*len(recs)+1), sorted, 0)
}

// lwm2mCBORLevel writes the map of IDs at depth level for sorted records
// sharing the same first level IDs.
func lwm2mCBORLevel(b []byte, recs []Record, level int) ([]byte, error) {
	n := 0
	for k := range recs {
		if k == 0 || id(recs[k], level) != id(recs[k-1], level) {
			n++
		}
	}
	b = cborHead(b, cborMap, uint64(n))
	for start := 0; start < len(recs); {
		end := start + 1
		key := id(recs[start], level)
		for end < len(recs) && id(recs[end], level) == key {
			end++
		}
		b = cborHead(b, cborUint, uint64(key))
		group := recs[start:end]
		if len(group) == 1 && group[0].Path.Len() == level+1 {
			var err error
			if b, err = lwm2mCBORValue(b, group[0].Value); err != nil {
				return nil, err
			}
		} else {
			var err error
			if b, err = lwm2mCBORLevel(b, group, level+1); err != nil {
				return nil, err
			}
		}
		start = end
	}
	return b, nil
}

func id(r Record, level int) uint16 {
	v, _ := r.Path.ID(level)
	return v
}

func lwm2mCBORValue(b []byte, v Value) ([]byte, error) {
	switch v.typ {
	case model.None:
		return append(b, 0xf6), nil
	case model.String, model.Corelnk:
		return cborString(b, v.str), nil
	case model.Integer:
		return cborInt(b, int64(v.num)), nil
	case model.Time:
		return cborInt(cborHead(b, cborTag, 1), int64(v.num)), nil
	case model.Unsigned:
		return cborHead(b, cborUint, v.num), nil
	case model.Float:
		return cborFloat(b, v.Float()), nil
	case model.Boolean:
		return cborBool(b, v.num != 0), nil
	case model.Opaque:
		return cborByteString(b, v.raw), nil
	case model.Objlnk:
		o, i := v.Objlnk()
		return cborString(b, formatObjlnk(o, i)), nil
	}
	return nil, errf(ErrNotEncodable, "unknown value type %v", v.typ)
}

type lwm2mCBORDecoder struct {
	base path.Path
	m    model.Resolver
	recs []Record
	seen map[path.Path]struct{}
}

func decodeLwM2MCBOR(base path.Path, data []byte, m model.Resolver) ([]Record, error) {
	top, err := decodeCBOR(LwM2MCBOR, data)
	if err != nil {
		return nil, err
	}
	if top.kind != ckMap {
		return nil, decErr(LwM2MCBOR, 0, nil, "LwM2M CBOR is a map")
	}
	d := &lwm2mCBORDecoder{base: base, m: m, seen: map[path.Path]struct{}{}}
	if err := d.walk(top, path.Root); err != nil {
		return nil, err
	}
	return d.recs, nil
}

func (d *lwm2mCBORDecoder) walk(mp cborItem, prefix path.Path) error {
	for k := 0; k+1 < len(mp.items); k += 2 {
		key, val := mp.items[k], mp.items[k+1]
		p := prefix
		var ids []cborItem
		switch key.kind {
		case ckUint:
			ids = []cborItem{key}
		case ckArray:
			ids = key.items
			if len(ids) == 0 {
				return decErr(LwM2MCBOR, key.off, nil, "empty path array")
			}
		default:
			return decErr(LwM2MCBOR, key.off, nil, "key is not an ID or an array of IDs")
		}
		for _, it := range ids {
			if it.kind != ckUint || it.u > path.MaxID {
				return decErr(LwM2MCBOR, it.off, path.ErrRange, "path ID is not an integer in 0..65534")
			}
			var err error
			if p, err = p.Child(uint16(it.u)); err != nil {
				return decErr(LwM2MCBOR, it.off, err, "path below %v too deep", prefix)
			}
		}
		if val.kind == ckMap {
			if err := d.walk(val, p); err != nil {
				return err
			}
			continue
		}
		if err := d.leaf(p, val); err != nil {
			return err
		}
	}
	return nil
}

func (d *lwm2mCBORDecoder) leaf(p path.Path, it cborItem) error {
	if !p.HasPrefix(d.base) {
		return decErr(LwM2MCBOR, it.off, nil, "%v is outside the request path %v", p, d.base)
	}
	if _, dup := d.seen[p]; dup {
		return decErr(LwM2MCBOR, it.off, nil, "%v given twice", p)
	}
	if len(d.recs) >= MaxRecords {
		return decErr(LwM2MCBOR, it.off, ErrLimit, "more than %d records", MaxRecords)
	}
	d.seen[p] = struct{}{}
	mt := resolveType(d.m, p)
	var v Value
	switch it.kind {
	case ckNull:
	case ckText:
		v = NewString(it.s)
	case ckBytes:
		v = NewOpaque([]byte(it.s))
	case ckBool:
		v = NewBool(it.b)
	case ckUint, ckNeg, ckFloat:
		var ok bool
		if v, ok = cborNumber(it, mt); !ok {
			return decErr(LwM2MCBOR, it.off, nil, "%v: number out of range", p)
		}
	case ckTag:
		i, ok := it.items[0].int64()
		if it.u != 1 || !ok {
			return decErr(LwM2MCBOR, it.off, nil, "%v: unsupported tag %d", p, it.u)
		}
		v = NewTimeUnix(i)
	default:
		return decErr(LwM2MCBOR, it.off, nil, "%v: arrays are not LwM2M values", p)
	}
	v, err := typed(LwM2MCBOR, d.m, p, v)
	if err != nil {
		return err
	}
	d.recs = append(d.recs, Record{Path: p, Value: v})
	return nil
}
