package queue

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Record encoding: a compact hand-written binary form, versioned by its
// first byte. encoding/gob would also do, but it carries type descriptors
// in every standalone value (hundreds of bytes a record, and a type
// registry), while a queued Read is about 40 bytes here.
//
//	version 1:
//	  0x01
//	  uvarint id, string endpoint, byte kind, byte state
//	  uvarint n, n × string path
//	  varint content format, bytes payload, string args
//	  varint created, varint expires (Unix ns; 0 = zero time)
//	  uvarint n, n × (string key, string value) meta
//	  uvarint attempt, varint sendingSince
//	  byte hasResult [byte code, varint cf, bytes payload]
//	  byte errKind, string errMsg, varint finished
//
// string and bytes are uvarint length + data.
const codecVersion = 1

// Decoder bounds: a record never holds more than these.
const (
	maxPaths = 1024
	maxMeta  = 256
	maxField = 1 << 24
)

// EncodeRecord appends the binary form of r to dst.
func EncodeRecord(dst []byte, r *Record) []byte {
	dst = append(dst, codecVersion)
	dst = binary.AppendUvarint(dst, r.ID)
	dst = appendString(dst, r.Endpoint)
	dst = append(dst, byte(r.Kind), byte(r.State))
	dst = binary.AppendUvarint(dst, uint64(len(r.Paths)))
	for _, p := range r.Paths {
		dst = appendString(dst, p)
	}
	dst = binary.AppendVarint(dst, int64(r.ContentFormat))
	dst = appendBytes(dst, r.Payload)
	dst = appendString(dst, r.Args)
	dst = binary.AppendVarint(dst, unixNano(r.Created))
	dst = binary.AppendVarint(dst, unixNano(r.Expires))
	dst = binary.AppendUvarint(dst, uint64(len(r.Meta)))
	for _, k := range sortedKeys(r.Meta) {
		dst = appendString(dst, k)
		dst = appendString(dst, r.Meta[k])
	}
	dst = binary.AppendUvarint(dst, uint64(r.Attempt.N))
	dst = binary.AppendVarint(dst, unixNano(r.SendingSince))
	if r.Result == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1, r.Result.Code)
		dst = binary.AppendVarint(dst, int64(r.Result.ContentFormat))
		dst = appendBytes(dst, r.Result.Payload)
	}
	dst = append(dst, byte(r.ErrKind))
	dst = appendString(dst, r.ErrMsg)
	dst = binary.AppendVarint(dst, unixNano(r.Finished))
	return dst
}

// DecodeRecord decodes a record written by EncodeRecord. Errors wrap
// ErrCorrupt. The record does not alias data.
func DecodeRecord(data []byte) (*Record, error) {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != codecVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	r := &Record{}
	r.ID = d.uvarint()
	r.Endpoint = d.string()
	r.Kind = Kind(d.byte())
	r.State = State(d.byte())
	if n := d.count(maxPaths); n > 0 {
		r.Paths = make([]string, n)
		for i := range r.Paths {
			r.Paths[i] = d.string()
		}
	}
	r.ContentFormat = d.int32()
	r.Payload = d.bytes()
	r.Args = d.string()
	r.Created = d.time()
	r.Expires = d.time()
	if n := d.count(maxMeta); n > 0 {
		r.Meta = make(map[string]string, n)
		for range n {
			k := d.string()
			r.Meta[k] = d.string()
		}
	}
	n := d.uvarint()
	if n > math.MaxUint32 {
		d.fail("attempt")
	}
	r.Attempt = Attempt{ID: r.ID, N: uint32(n)}
	r.SendingSince = d.time()
	switch d.byte() {
	case 0:
	case 1:
		res := &Result{Code: d.byte()}
		res.ContentFormat = d.int32()
		res.Payload = d.bytes()
		r.Result = res
	default:
		d.fail("result flag")
	}
	r.ErrKind = ErrKind(d.byte())
	r.ErrMsg = d.string()
	r.Finished = d.time()
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err == nil {
		switch {
		case !r.Kind.Valid():
			d.fail("kind")
		case r.State < StateQueued || r.State >= stateEnd:
			d.fail("state")
		case r.ErrKind >= errKindEnd:
			d.fail("error kind")
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("length")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail("int32")
		return 0
	}
	return int32(v)
}

func (d *decoder) time() time.Time {
	v := d.varint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

func (d *decoder) count(limit int) int {
	n := d.uvarint()
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *decoder) raw() []byte {
	n := d.uvarint()
	if n > maxField || n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.raw()) }

func (d *decoder) bytes() []byte {
	v := d.raw()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
