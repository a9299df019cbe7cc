package queue

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/record"
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
	dst = record.AppendString(dst, r.Endpoint)
	dst = append(dst, byte(r.Kind), byte(r.State))
	dst = binary.AppendUvarint(dst, uint64(len(r.Paths)))
	for _, p := range r.Paths {
		dst = record.AppendString(dst, p)
	}
	dst = binary.AppendVarint(dst, int64(r.ContentFormat))
	dst = record.AppendBytes(dst, r.Payload)
	dst = record.AppendString(dst, r.Args)
	dst = record.AppendTime(dst, r.Created)
	dst = record.AppendTime(dst, r.Expires)
	dst = binary.AppendUvarint(dst, uint64(len(r.Meta)))
	for _, k := range sortedKeys(r.Meta) {
		dst = record.AppendString(dst, k)
		dst = record.AppendString(dst, r.Meta[k])
	}
	dst = binary.AppendUvarint(dst, uint64(r.Attempt.N))
	dst = record.AppendTime(dst, r.SendingSince)
	if r.Result == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1, r.Result.Code)
		dst = binary.AppendVarint(dst, int64(r.Result.ContentFormat))
		dst = record.AppendBytes(dst, r.Result.Payload)
	}
	dst = append(dst, byte(r.ErrKind))
	dst = record.AppendString(dst, r.ErrMsg)
	dst = record.AppendTime(dst, r.Finished)
	return dst
}

// DecodeRecord decodes a record written by EncodeRecord. Errors wrap
// ErrCorrupt. The record does not alias data.
func DecodeRecord(data []byte) (*Record, error) {
	d := record.NewDecoder(data, ErrCorrupt)
	if v := d.Byte(); d.Err() == nil && v != codecVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	r := &Record{}
	r.ID = d.Uvarint()
	r.Endpoint = d.String(maxField)
	r.Kind = Kind(d.Byte())
	r.State = State(d.Byte())
	if n := d.Count(maxPaths); n > 0 {
		r.Paths = make([]string, n)
		for i := range r.Paths {
			r.Paths[i] = d.String(maxField)
		}
	}
	r.ContentFormat = d.Int32()
	r.Payload = d.Bytes(maxField)
	r.Args = d.String(maxField)
	r.Created = d.Time()
	r.Expires = d.Time()
	if n := d.Count(maxMeta); n > 0 {
		r.Meta = make(map[string]string, n)
		for range n {
			k := d.String(maxField)
			r.Meta[k] = d.String(maxField)
		}
	}
	n := d.Uvarint()
	if n > math.MaxUint32 {
		d.Fail("attempt")
	}
	r.Attempt = Attempt{ID: r.ID, N: uint32(n)}
	r.SendingSince = d.Time()
	switch d.Byte() {
	case 0:
	case 1:
		res := &Result{Code: d.Byte()}
		res.ContentFormat = d.Int32()
		res.Payload = d.Bytes(maxField)
		r.Result = res
	default:
		d.Fail("result flag")
	}
	r.ErrKind = ErrKind(d.Byte())
	r.ErrMsg = d.String(maxField)
	r.Finished = d.Time()
	if d.Err() == nil && d.Remaining() != 0 {
		d.Fail("trailing bytes")
	}
	if d.Err() == nil {
		switch {
		case !r.Kind.Valid():
			d.Fail("kind")
		case r.State < StateQueued || r.State >= stateEnd:
			d.Fail("state")
		case r.ErrKind >= errKindEnd:
			d.Fail("error kind")
		}
	}
	if d.Err() != nil {
		return nil, d.Err()
	}
	return r, nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (as records store it).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
