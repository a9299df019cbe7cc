package content

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// A small strict CBOR (RFC 8949) reader and writer, only what SenML CBOR and
// LwM2M CBOR need. The writer uses preferred serialisation: shortest
// argument encodings and the shortest float that keeps the value. The reader
// accepts definite and indefinite lengths, all three float widths, tags (it
// keeps the tag number), and refuses what LwM2M never sends: undefined,
// simple values other than false/true/null, and non-UTF-8 text. Depth and
// item counts are bounded; declared lengths are checked against the bytes
// left before anything is allocated.

const (
	cborUint   = 0
	cborNeg    = 1
	cborBytes  = 2
	cborText   = 3
	cborArray  = 4
	cborMap    = 5
	cborTag    = 6
	cborSimple = 7
)

func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

func cborInt(b []byte, i int64) []byte {
	if i >= 0 {
		return cborHead(b, cborUint, uint64(i))
	}
	return cborHead(b, cborNeg, uint64(-1-i))
}

func cborString(b []byte, s string) []byte {
	return append(cborHead(b, cborText, uint64(len(s))), s...)
}

func cborByteString(b []byte, s []byte) []byte {
	return append(cborHead(b, cborBytes, uint64(len(s))), s...)
}

func cborBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xf5)
	}
	return append(b, 0xf4)
}

// cborFloat writes f as a half, single or double float, the shortest that
// represents it exactly (RFC 8949 §4.2.2 preferred serialisation).
func cborFloat(b []byte, f float64) []byte {
	if h, ok := toHalf(f); ok {
		return binary.BigEndian.AppendUint16(append(b, 0xf9), h)
	}
	if f32 := float32(f); float64(f32) == f || math.IsNaN(f) {
		return binary.BigEndian.AppendUint32(append(b, 0xfa), math.Float32bits(f32))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xfb), math.Float64bits(f))
}

// toHalf returns the IEEE 754 half-precision bits of f when the conversion
// is exact.
func toHalf(f float64) (uint16, bool) {
	if math.IsNaN(f) {
		return 0x7e00, true
	}
	if math.IsInf(f, 1) {
		return 0x7c00, true
	}
	if math.IsInf(f, -1) {
		return 0xfc00, true
	}
	if f == 0 {
		if math.Signbit(f) {
			return 0x8000, true
		}
		return 0, true
	}
	h := halfBits(f)
	if h == 0xffff || fromHalf(h) != f {
		return 0, false
	}
	return h, true
}

// halfBits rounds f to half precision by truncation (0xffff when out of
// range); toHalf keeps the result only if it converts back exactly.
func halfBits(f float64) uint16 {
	var sign uint16
	if f < 0 {
		sign = 0x8000
		f = -f
	}
	if f >= 65520 {
		return 0xffff
	}
	frac, exp := math.Frexp(f) // f = frac × 2^exp, frac in [0.5, 1)
	e := exp - 1               // f = (2·frac) × 2^e, 2·frac in [1, 2)
	if e < -24 {
		return 0xffff
	}
	if e < -14 { // subnormal: f = m × 2^-24
		m := f * (1 << 24)
		if m != math.Trunc(m) {
			return 0xffff
		}
		return sign | uint16(m)
	}
	m := (2*frac - 1) * 1024
	if m != math.Trunc(m) {
		return 0xffff
	}
	return sign | uint16(e+15)<<10 | uint16(m)
}

func fromHalf(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m, -24)
	case 31:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

// cborKind of a decoded item.
type cborKind uint8

const (
	ckUint cborKind = iota
	ckNeg           // negative integer: value -1 - u
	ckBytes
	ckText
	ckArray
	ckMap
	ckTag
	ckFloat
	ckBool
	ckNull
)

// cborItem is a decoded CBOR data item.
type cborItem struct {
	kind  cborKind
	u     uint64 // ckUint, ckNeg argument, ckTag number
	f     float64
	b     bool
	s     string // ckText, ckBytes
	items []cborItem
	off   int // offset of the item in the payload
}

// int64 returns an integer item as int64.
func (it cborItem) int64() (int64, bool) {
	switch it.kind {
	case ckUint:
		if it.u <= math.MaxInt64 {
			return int64(it.u), true
		}
	case ckNeg:
		if it.u <= math.MaxInt64 {
			return -1 - int64(it.u), true
		}
	}
	return 0, false
}

type cborReader struct {
	f     Format
	data  []byte
	pos   int
	count int // items decoded, bounded by MaxRecords*8
}

func (r *cborReader) err(cause error, format string, args ...any) error {
	return decErr(r.f, r.pos, cause, format, args...)
}

// decodeCBOR decodes exactly one CBOR item filling data.
func decodeCBOR(f Format, data []byte) (cborItem, error) {
	r := &cborReader{f: f, data: data}
	it, err := r.item(0)
	if err != nil {
		return cborItem{}, err
	}
	if r.pos != len(data) {
		return cborItem{}, r.err(nil, "%d bytes after the CBOR item", len(data)-r.pos)
	}
	return it, nil
}

func (r *cborReader) head() (major byte, info byte, arg uint64, err error) {
	if r.pos >= len(r.data) {
		return 0, 0, 0, r.err(nil, "truncated CBOR")
	}
	c := r.data[r.pos]
	r.pos++
	major, info = c>>5, c&0x1f
	var n int
	switch {
	case info < 24:
		return major, info, uint64(info), nil
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	case info == 31:
		return major, info, 0, nil
	default:
		return 0, 0, 0, r.err(nil, "reserved CBOR additional information %d", info)
	}
	if len(r.data)-r.pos < n {
		return 0, 0, 0, r.err(nil, "truncated CBOR argument")
	}
	for k := 0; k < n; k++ {
		arg = arg<<8 | uint64(r.data[r.pos+k])
	}
	r.pos += n
	return major, info, arg, nil
}

func (r *cborReader) item(depth int) (cborItem, error) {
	if depth > MaxDepth {
		return cborItem{}, r.err(ErrLimit, "CBOR nested deeper than %d", MaxDepth)
	}
	r.count++
	if r.count > 8*MaxRecords {
		return cborItem{}, r.err(ErrLimit, "more than %d CBOR items", 8*MaxRecords)
	}
	off := r.pos
	major, info, arg, err := r.head()
	if err != nil {
		return cborItem{}, err
	}
	it := cborItem{off: off}
	if info == 31 && (major == cborUint || major == cborNeg || major == cborTag) {
		return it, r.err(nil, "indefinite length on major type %d", major)
	}
	switch major {
	case cborUint:
		it.kind, it.u = ckUint, arg
	case cborNeg:
		it.kind, it.u = ckNeg, arg
	case cborBytes, cborText:
		s, err := r.str(major, info, arg)
		if err != nil {
			return it, err
		}
		it.s = s
		it.kind = ckBytes
		if major == cborText {
			it.kind = ckText
			if !utf8.ValidString(s) {
				return it, decErr(r.f, off, nil, "CBOR text is not UTF-8")
			}
		}
	case cborArray, cborMap:
		err := r.container(&it, major == cborMap, info, arg, depth)
		return it, err
	case cborTag:
		c, err := r.item(depth + 1)
		if err != nil {
			return it, err
		}
		it.kind, it.u, it.items = ckTag, arg, []cborItem{c}
	case cborSimple:
		err := r.simple(&it, info, arg)
		return it, err
	}
	return it, nil
}

// container reads the items of an array or map (isMap) whose head had
// additional information info and argument arg (the count, or 31 for an
// indefinite length ended by a break) into it.
func (r *cborReader) container(it *cborItem, isMap bool, info byte, arg uint64, depth int) error {
	per := 1
	it.kind = ckArray
	if isMap {
		per, it.kind = 2, ckMap
	}
	if info == 31 {
		for {
			if r.pos >= len(r.data) {
				return r.err(nil, "unterminated indefinite-length container")
			}
			if r.data[r.pos] == 0xff {
				r.pos++
				break
			}
			for k := 0; k < per; k++ {
				c, err := r.item(depth + 1)
				if err != nil {
					return err
				}
				it.items = append(it.items, c)
			}
		}
		return nil
	}
	if arg > uint64(len(r.data)-r.pos) { // every item takes at least one byte
		return r.err(nil, "CBOR container of %d items past the end", arg)
	}
	it.items = make([]cborItem, 0, int(arg)*per)
	for k := 0; k < int(arg)*per; k++ {
		c, err := r.item(depth + 1)
		if err != nil {
			return err
		}
		it.items = append(it.items, c)
	}
	return nil
}

// simple reads a simple value or float (major type 7) into it.
func (r *cborReader) simple(it *cborItem, info byte, arg uint64) error {
	switch info {
	case 20, 21:
		it.kind, it.b = ckBool, info == 21
	case 22:
		it.kind = ckNull
	case 25:
		it.kind, it.f = ckFloat, fromHalf(uint16(arg))
	case 26:
		it.kind, it.f = ckFloat, float64(math.Float32frombits(uint32(arg)))
	case 27:
		it.kind, it.f = ckFloat, math.Float64frombits(arg)
	case 31:
		return decErr(r.f, it.off, nil, "unexpected CBOR break")
	default:
		return decErr(r.f, it.off, nil, "unsupported CBOR simple value %d", info)
	}
	return nil
}

func (r *cborReader) str(major, info byte, arg uint64) (string, error) {
	if info != 31 {
		if arg > uint64(len(r.data)-r.pos) {
			return "", r.err(nil, "CBOR string of %d bytes past the end", arg)
		}
		s := string(r.data[r.pos : r.pos+int(arg)])
		r.pos += int(arg)
		return s, nil
	}
	var b []byte
	for {
		if r.pos >= len(r.data) {
			return "", r.err(nil, "unterminated indefinite-length string")
		}
		if r.data[r.pos] == 0xff {
			r.pos++
			return string(b), nil
		}
		m, ci, n, err := r.head()
		if err != nil {
			return "", err
		}
		if m != major || ci == 31 {
			return "", r.err(nil, "bad chunk in indefinite-length string")
		}
		if n > uint64(len(r.data)-r.pos) {
			return "", r.err(nil, "CBOR string chunk past the end")
		}
		b = append(b, r.data[r.pos:r.pos+int(n)]...)
		r.pos += int(n)
	}
}
