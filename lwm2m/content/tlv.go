package content

import (
	"encoding/binary"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// TLV identifier types (LwM2M 1.1 Core §7.4.3, Table 7.4.3-1: bits 7-6).
const (
	tlvObjectInstance   = 0b00
	tlvResourceInstance = 0b01
	tlvMultipleResource = 0b10
	tlvResource         = 0b11
)

const tlvMaxLen = 1<<24 - 1

// appendTLVHeader appends a TLV type byte, identifier and length, using the
// shortest identifier and length fields.
func appendTLVHeader(b []byte, kind byte, id uint16, n int) []byte {
	t := kind << 6
	if id > 0xff {
		t |= 1 << 5
	}
	switch {
	case n < 8:
		t |= byte(n)
	case n <= 0xff:
		t |= 1 << 3
	case n <= 0xffff:
		t |= 2 << 3
	default:
		t |= 3 << 3
	}
	b = append(b, t)
	if id > 0xff {
		b = append(b, byte(id>>8))
	}
	b = append(b, byte(id))
	switch {
	case n < 8:
	case n <= 0xff:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, byte(n>>8), byte(n))
	default:
		b = append(b, byte(n>>16), byte(n>>8), byte(n))
	}
	return b
}

// tlvValue returns the TLV value bytes of v (Core Appendix C: integers in 1,
// 2, 4 or 8 bytes two's complement; unsigned in 1, 2, 4 or 8 bytes; floats
// in 4 bytes when exact, else 8; booleans in 1 byte; objlnk in 4 bytes).
func tlvValue(b []byte, v Value) ([]byte, error) {
	switch v.typ {
	case model.String, model.Corelnk:
		return append(b, v.str...), nil
	case model.Opaque:
		return append(b, v.raw...), nil
	case model.Integer, model.Time:
		i := int64(v.num)
		switch {
		case i >= math.MinInt8 && i <= math.MaxInt8:
			return append(b, byte(i)), nil
		case i >= math.MinInt16 && i <= math.MaxInt16:
			return binary.BigEndian.AppendUint16(b, uint16(i)), nil
		case i >= math.MinInt32 && i <= math.MaxInt32:
			return binary.BigEndian.AppendUint32(b, uint32(i)), nil
		}
		return binary.BigEndian.AppendUint64(b, uint64(i)), nil
	case model.Unsigned:
		u := v.num
		switch {
		case u <= math.MaxUint8:
			return append(b, byte(u)), nil
		case u <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(b, uint16(u)), nil
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(b, uint32(u)), nil
		}
		return binary.BigEndian.AppendUint64(b, u), nil
	case model.Float:
		f := v.Float()
		if f32 := float32(f); float64(f32) == f {
			return binary.BigEndian.AppendUint32(b, math.Float32bits(f32)), nil
		}
		return binary.BigEndian.AppendUint64(b, v.num), nil
	case model.Boolean:
		if v.num != 0 {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case model.Objlnk:
		return binary.BigEndian.AppendUint32(b, uint32(v.num)), nil
	}
	return b, errf(ErrNotEncodable, "TLV cannot carry a record without value")
}

func appendTLVLeaf(b []byte, kind byte, id uint16, v Value) ([]byte, error) {
	var val []byte
	switch v.typ {
	case model.String, model.Corelnk:
		if len(v.str) > tlvMaxLen {
			return nil, errf(ErrNotEncodable, "TLV value of %d bytes over 16 MiB", len(v.str))
		}
		return append(appendTLVHeader(b, kind, id, len(v.str)), v.str...), nil
	case model.Opaque:
		val = v.raw
	default:
		var tmp [8]byte
		var err error
		if val, err = tlvValue(tmp[:0], v); err != nil {
			return nil, err
		}
	}
	if len(val) > tlvMaxLen {
		return nil, errf(ErrNotEncodable, "TLV value of %d bytes over 16 MiB", len(val))
	}
	b = appendTLVHeader(b, kind, id, len(val))
	return append(b, val...), nil
}

// TLV containers (object instances, multiple resources) are written in
// place: room for the longest header (type, 16-bit ID, 24-bit length) is
// reserved, the content appended, then the real header written and the
// content moved up. No intermediate buffers.
const tlvMaxHeader = 6

func beginTLV(b []byte) ([]byte, int) {
	return append(b, make([]byte, tlvMaxHeader)...), len(b)
}

func endTLV(b []byte, start int, kind byte, id uint16) ([]byte, error) {
	n := len(b) - start - tlvMaxHeader
	if n > tlvMaxLen {
		return nil, errf(ErrNotEncodable, "TLV container of %d bytes over 16 MiB", n)
	}
	var hdr [tlvMaxHeader]byte
	h := appendTLVHeader(hdr[:0], kind, id, n)
	copy(b[start:], h)
	copy(b[start+len(h):], b[start+tlvMaxHeader:])
	return b[:start+len(h)+n], nil
}

// appendTLVResources writes the resources of one object instance; recs are
// sorted and all below the same instance.
func appendTLVResources(b []byte, recs []Record) ([]byte, error) {
	var err error
	for k := 0; k < len(recs); {
		r := recs[k]
		if r.Path.Len() == path.LevelResource {
			if b, err = appendTLVLeaf(b, tlvResource, r.Path.ResourceID(), r.Value); err != nil {
				return nil, err
			}
			k++
			continue
		}
		rid := r.Path.ResourceID()
		var start int
		b, start = beginTLV(b)
		for ; k < len(recs) && recs[k].Path.ResourceID() == rid; k++ {
			if b, err = appendTLVLeaf(b, tlvResourceInstance, recs[k].Path.ResourceInstanceID(), recs[k].Value); err != nil {
				return nil, err
			}
		}
		if b, err = endTLV(b, start, tlvMultipleResource, rid); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// sortedResources returns recs sorted by path (recs itself when already
// sorted) after checking that every record is a resource or resource
// instance, and that no path is given twice or both as a single resource
// and with instances.
func sortedResources(recs []Record) ([]Record, error) {
	cmp := func(a, b Record) int { return path.Compare(a.Path, b.Path) }
	if !slices.IsSortedFunc(recs, cmp) {
		recs = slices.Clone(recs)
		slices.SortStableFunc(recs, cmp)
	}
	for k, r := range recs {
		if r.Path.Len() < path.LevelResource {
			return nil, errf(ErrNotEncodable, "record at %v is not a resource", r.Path)
		}
		if k > 0 {
			prev := recs[k-1].Path
			if prev == r.Path {
				return nil, errf(ErrNotEncodable, "%v given twice", r.Path)
			}
			if r.Path.HasPrefix(prev) {
				return nil, errf(ErrNotEncodable, "%v is both a single resource and has instance %v", prev, r.Path)
			}
		}
	}
	return recs, nil
}

// encodeTLV encodes records for a request on base (Core §7.4.3): object
// instances for an object, resources for an instance, one resource (single
// or multiple) for a resource, one resource instance for a resource
// instance. The root is not addressable in TLV.
func encodeTLV(base path.Path, recs []Record) ([]byte, error) {
	if base.IsRoot() {
		return nil, errf(ErrNotEncodable, "TLV cannot encode from the root path")
	}
	if base.IsResourceInstance() {
		if len(recs) != 1 || recs[0].Path != base {
			return nil, errf(ErrNotEncodable, "TLV at %v carries exactly one resource instance", base)
		}
		return appendTLVLeaf(nil, tlvResourceInstance, base.ResourceInstanceID(), recs[0].Value)
	}
	sorted, err := sortedResources(recs)
	if err != nil {
		return nil, err
	}
	size := 0
	for _, r := range sorted {
		size += 8 + len(r.Value.str) + len(r.Value.raw)
	}
	b := make([]byte, 0, size+tlvMaxHeader)
	if base.Len() != path.LevelObject {
		return appendTLVResources(b, sorted)
	}
	for k := 0; k < len(sorted); {
		inst := sorted[k].Path.InstanceID()
		end := k
		for end < len(sorted) && sorted[end].Path.InstanceID() == inst {
			end++
		}
		var start int
		b, start = beginTLV(b)
		if b, err = appendTLVResources(b, sorted[k:end]); err != nil {
			return nil, err
		}
		if b, err = endTLV(b, start, tlvObjectInstance, inst); err != nil {
			return nil, err
		}
		k = end
	}
	return b, nil
}

type tlvItem struct {
	kind  byte
	id    uint16
	value []byte
	off   int // offset of the header in the payload
	hdr   int // header length
}

// readTLVs splits data into TLV items. off is the offset of data in the
// whole payload, for error messages.
func readTLVs(data []byte, off int) ([]tlvItem, error) {
	var items []tlvItem
	for pos := 0; pos < len(data); {
		start := pos
		t := data[pos]
		pos++
		kind := t >> 6
		idLen := 1
		if t&(1<<5) != 0 {
			idLen = 2
		}
		lenLen := int(t>>3) & 3
		if pos+idLen+lenLen > len(data) {
			return nil, decErr(TLV, off+start, nil, "truncated TLV header")
		}
		id := uint16(data[pos])
		if idLen == 2 {
			id = binary.BigEndian.Uint16(data[pos:])
		}
		pos += idLen
		n := int(t & 7)
		if lenLen > 0 {
			n = 0
			for k := 0; k < lenLen; k++ {
				n = n<<8 | int(data[pos+k])
			}
			pos += lenLen
		}
		if n > len(data)-pos {
			return nil, decErr(TLV, off+start, nil, "TLV length %d past the end of the payload", n)
		}
		if id == 65535 {
			return nil, decErr(TLV, off+start, path.ErrRange, "TLV identifier 65535 is reserved")
		}
		if len(items) >= MaxRecords {
			return nil, decErr(TLV, off+start, ErrLimit, "more than %d TLVs", MaxRecords)
		}
		items = append(items, tlvItem{kind: kind, id: id, value: data[pos : pos+n], off: off + start, hdr: pos - start})
		pos += n
	}
	return items, nil
}

type tlvDecoder struct {
	m    model.Resolver
	base []byte // the whole payload, for offsets
	recs []Record
}

// decodeTLV decodes TLV for a request on base. It accepts what clients in
// the field send: at an instance path, resources with or without the
// object-instance wrapper; at a resource path, the resource TLV or bare
// resource instances.
func decodeTLV(base path.Path, data []byte, m model.Resolver) ([]Record, error) {
	if base.IsRoot() {
		return nil, decErr(TLV, -1, nil, "TLV cannot address the root path")
	}
	d := &tlvDecoder{m: m, base: data, recs: make([]Record, 0, min(len(data)/3+1, 1024))}
	items, err := readTLVs(data, 0)
	if err != nil {
		return nil, err
	}
	switch base.Len() {
	case path.LevelObject:
		for _, it := range items {
			if it.kind != tlvObjectInstance {
				return nil, decErr(TLV, it.off, nil, "expected an object instance TLV under %v", base)
			}
			p, _ := base.Child(it.id)
			if err := d.instance(p, it); err != nil {
				return nil, err
			}
		}
	case path.LevelInstance:
		if len(items) == 1 && items[0].kind == tlvObjectInstance {
			if items[0].id != base.InstanceID() {
				return nil, decErr(TLV, 0, nil, "object instance %d in a payload for %v", items[0].id, base)
			}
			err := d.instance(base, items[0])
			return d.recs, err
		}
		for _, it := range items {
			if err := d.resource(base, it); err != nil {
				return nil, err
			}
		}
	case path.LevelResource:
		for _, it := range items {
			switch it.kind {
			case tlvResource, tlvMultipleResource:
				if it.id != base.ResourceID() {
					return nil, decErr(TLV, it.off, nil, "resource %d in a payload for %v", it.id, base)
				}
				if err := d.resource(base.Parent(), it); err != nil {
					return nil, err
				}
			case tlvResourceInstance:
				if err := d.leaf(base, it); err != nil {
					return nil, err
				}
			default:
				return nil, decErr(TLV, it.off, nil, "object instance TLV in a payload for %v", base)
			}
		}
	case path.LevelResourceInstance:
		if len(items) != 1 || (items[0].kind != tlvResourceInstance && items[0].kind != tlvResource) || items[0].id != base.ResourceInstanceID() {
			return nil, decErr(TLV, 0, nil, "expected one resource instance TLV %d for %v", base.ResourceInstanceID(), base)
		}
		v, err := d.value(base, items[0])
		if err != nil {
			return nil, err
		}
		d.recs = append(d.recs, Record{Path: base, Value: v})
	}
	return d.recs, nil
}

func (d *tlvDecoder) instance(p path.Path, it tlvItem) error {
	items, err := readTLVs(it.value, it.off+it.hdr)
	if err != nil {
		return err
	}
	for _, r := range items {
		if err := d.resource(p, r); err != nil {
			return err
		}
	}
	return nil
}

// resource decodes a resource TLV under instance path p.
func (d *tlvDecoder) resource(p path.Path, it tlvItem) error {
	rp, _ := p.Child(it.id)
	switch it.kind {
	case tlvResource:
		v, err := d.value(rp, it)
		if err != nil {
			return err
		}
		if len(d.recs) >= MaxRecords {
			return decErr(TLV, it.off, ErrLimit, "more than %d records", MaxRecords)
		}
		d.recs = append(d.recs, Record{Path: rp, Value: v})
		return nil
	case tlvMultipleResource:
		items, err := readTLVs(it.value, it.off+it.hdr)
		if err != nil {
			return err
		}
		for _, ri := range items {
			if ri.kind != tlvResourceInstance {
				return decErr(TLV, ri.off, nil, "multiple resource %v holds a non-instance TLV", rp)
			}
			if err := d.leaf(rp, ri); err != nil {
				return err
			}
		}
		return nil
	}
	return decErr(TLV, it.off, nil, "expected a resource TLV under %v", p)
}

func (d *tlvDecoder) leaf(rp path.Path, it tlvItem) error {
	p, _ := rp.Child(it.id)
	v, err := d.value(p, it)
	if err != nil {
		return err
	}
	if len(d.recs) >= MaxRecords {
		return decErr(TLV, it.off, ErrLimit, "more than %d records", MaxRecords)
	}
	d.recs = append(d.recs, Record{Path: p, Value: v})
	return nil
}

// value decodes a TLV value with the model type of p (Opaque if unknown).
func (d *tlvDecoder) value(p path.Path, it tlvItem) (Value, error) {
	b := it.value
	bad := func(what string) (Value, error) {
		return Value{}, decErr(TLV, it.off, ErrTypeMismatch, "%v: %d bytes are not %s", p, len(b), what)
	}
	t := resolveType(d.m, p)
	switch t {
	case model.None, model.Opaque:
		return NewOpaque(append([]byte(nil), b...)), nil
	case model.String, model.Corelnk:
		if !utf8.Valid(b) {
			return Value{}, decErr(TLV, it.off, ErrTypeMismatch, "%v: invalid UTF-8", p)
		}
		return Value{typ: t, str: string(b)}, nil
	case model.Integer, model.Time:
		var i int64
		switch len(b) {
		case 1:
			i = int64(int8(b[0]))
		case 2:
			i = int64(int16(binary.BigEndian.Uint16(b)))
		case 4:
			i = int64(int32(binary.BigEndian.Uint32(b)))
		case 8:
			i = int64(binary.BigEndian.Uint64(b))
		default:
			return bad("an integer (1, 2, 4 or 8 bytes)")
		}
		return Value{typ: t, num: uint64(i)}, nil
	case model.Unsigned:
		switch len(b) {
		case 1, 2, 4, 8:
			var u uint64
			for _, c := range b {
				u = u<<8 | uint64(c)
			}
			return NewUint(u), nil
		}
		return bad("an unsigned integer (1, 2, 4 or 8 bytes)")
	case model.Float:
		switch len(b) {
		case 4:
			return NewFloat(float64(math.Float32frombits(binary.BigEndian.Uint32(b)))), nil
		case 8:
			return NewFloat(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
		}
		return bad("a float (4 or 8 bytes)")
	case model.Boolean:
		if len(b) == 1 && b[0] <= 1 {
			return NewBool(b[0] == 1), nil
		}
		return bad("a boolean (one byte 0 or 1)")
	case model.Objlnk:
		if len(b) == 4 {
			return NewObjlnk(binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])), nil
		}
		return bad("an object link (4 bytes)")
	}
	return bad("a value")
}
