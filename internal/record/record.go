package record

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// NoLimit is a length limit that only the remaining bytes bound.
const NoLimit = math.MaxInt

// AppendString appends s with a uvarint length prefix.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendBytes appends b with a uvarint length prefix.
func AppendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// AppendTime appends t as a varint of Unix nanoseconds; the zero time is 0.
func AppendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(dst, 0)
	}
	return binary.AppendVarint(dst, t.UnixNano())
}

// Decoder reads a record. After the first problem every read returns a zero
// value and Err reports the problem.
type Decoder struct {
	b       []byte
	corrupt error
	err     error
}

// NewDecoder reads data; errors wrap corrupt.
func NewDecoder(data []byte, corrupt error) *Decoder {
	return &Decoder{b: data, corrupt: corrupt}
}

// Err returns the first problem met, or nil.
func (d *Decoder) Err() error { return d.err }

// Remaining returns the number of unread bytes.
func (d *Decoder) Remaining() int { return len(d.b) }

// Fail records a problem with the named field (the first one wins).
func (d *Decoder) Fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", d.corrupt, what)
	}
	d.b = nil
}

// Finish fails on trailing bytes and returns Err.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.Fail("record: trailing bytes")
	}
	return d.err
}

// Take returns the next n bytes (aliasing the input).
func (d *Decoder) Take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.Fail("length")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if v := d.Take(1); v != nil {
		return v[0]
	}
	return 0
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.Fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Int32 reads a signed varint that must fit in 32 bits.
func (d *Decoder) Int32() int32 {
	v := d.Varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.Fail("int32")
		return 0
	}
	return int32(v)
}

// Time reads a time written by AppendTime.
func (d *Decoder) Time() time.Time {
	if v := d.Varint(); v != 0 {
		return time.Unix(0, v)
	}
	return time.Time{}
}

// Count reads a uvarint element count of at most limit; it must also not
// exceed the remaining bytes (every element takes at least one).
func (d *Decoder) Count(limit int) int {
	n := d.Uvarint()
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.Fail("count")
		return 0
	}
	return int(n)
}

// Raw reads a length-prefixed field of at most max bytes (aliasing the input).
func (d *Decoder) Raw(max int) []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.Fail("length")
		return nil
	}
	return d.Take(int(n))
}

// String reads a length-prefixed string of at most max bytes.
func (d *Decoder) String(max int) string { return string(d.Raw(max)) }

// Bytes reads a length-prefixed byte field of at most max bytes into a new
// slice; an empty field is nil.
func (d *Decoder) Bytes(max int) []byte {
	v := d.Raw(max)
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}
