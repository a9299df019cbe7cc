package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// SegmentState is where one SMS segment of an entry stands.
type SegmentState uint8

// Segment states.
const (
	// Pending: not yet accepted by a modem.
	Pending SegmentState = iota
	// Accepted: the modem answered +CMGS with a message reference; it will not be sent again.
	Accepted
	// Delivered: a status report said the SMSC delivered it.
	Delivered
)

func (s SegmentState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Accepted:
		return "accepted"
	case Delivered:
		return "delivered"
	}
	return fmt.Sprintf("SegmentState(%d)", uint8(s))
}

// Segment is one SMS-SUBMIT TPDU of an entry and what became of it.
type Segment struct {
	// TPDU is the SMS-SUBMIT TPDU (no SMSC prefix). It is fixed when the
	// entry is stored, concatenation reference included, so a segment sent
	// again after a crash is recognised as a duplicate by the receiver's
	// reassembler.
	TPDU  []byte
	State SegmentState
	// MR is the TP-Message-Reference the modem returned (valid once Accepted).
	MR uint8
}

// Entry is one datagram waiting in the outbox, already split into TPDUs.
type Entry struct {
	// ID is assigned by Enqueue, increasing.
	ID uint64
	// From is the MSISDN of the SIM that must send the entry ("" lets the
	// sender pick among the SIMs it may use for To).
	From string
	// To is the destination MSISDN.
	To string
	// Segments are the TPDUs, in order.
	Segments []Segment
	// WantReport keeps the entry until every segment is reported delivered.
	WantReport bool
	// Created is when the entry was stored; Expires is when it is given up.
	Created, Expires time.Time
	// Attempts counts failed send attempts; NextTry is when the next may start.
	Attempts int
	NextTry  time.Time
	// LastError is the text of the last send error.
	LastError string
}

// Size is the number of TPDU bytes the entry holds.
func (e *Entry) Size() int {
	n := 0
	for _, s := range e.Segments {
		n += len(s.TPDU)
	}
	return n
}

// done reports whether nothing remains to do for the entry.
func (e *Entry) done() bool {
	for _, s := range e.Segments {
		if s.State == Pending || (e.WantReport && s.State != Delivered) {
			return false
		}
	}
	return true
}

// NextPending returns the index of the first segment not yet accepted, or -1.
func (e *Entry) NextPending() int {
	for i, s := range e.Segments {
		if s.State == Pending {
			return i
		}
	}
	return -1
}

// ErrCorrupt is wrapped by errors decoding a stored entry.
var ErrCorrupt = errors.New("outbox: corrupt entry")

const (
	entryVersion = 1
	maxSegments  = 255
	maxTPDU      = 176 // TS 23.040: an SMS-SUBMIT TPDU is at most 164 octets; leave room
	maxString    = 64
)

// marshal encodes e in the outbox's binary record format:
// version, id, from, to, flags, created, expires, attempts, nexttry,
// lasterror, nseg, then per segment state, mr, tpdu.
func (e *Entry) marshal() []byte {
	b := make([]byte, 0, 64+e.Size()+4*len(e.Segments))
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, e.ID)
	b = appendString(b, e.From)
	b = appendString(b, e.To)
	var flags byte
	if e.WantReport {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, e.Created.UnixNano())
	b = binary.AppendVarint(b, e.Expires.UnixNano())
	b = binary.AppendUvarint(b, uint64(e.Attempts))
	b = binary.AppendVarint(b, e.NextTry.UnixNano())
	b = appendString(b, e.LastError)
	b = binary.AppendUvarint(b, uint64(len(e.Segments)))
	for _, s := range e.Segments {
		b = append(b, byte(s.State), s.MR)
		b = binary.AppendUvarint(b, uint64(len(s.TPDU)))
		b = append(b, s.TPDU...)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(what string, max int) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *reader) time(what string) time.Time {
	v := r.varint(what)
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

func unmarshalEntry(data []byte) (*Entry, error) {
	r := &reader{b: data}
	if v := r.byte("version"); r.err == nil && v != entryVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	e := &Entry{}
	e.ID = r.uvarint("id")
	e.From = string(r.bytes("from", maxString))
	e.To = string(r.bytes("to", maxString))
	flags := r.byte("flags")
	e.WantReport = flags&1 != 0
	e.Created = r.time("created")
	e.Expires = r.time("expires")
	att := r.uvarint("attempts")
	if att > 1<<31 {
		r.fail("attempts")
	}
	e.Attempts = int(att)
	e.NextTry = r.time("nexttry")
	e.LastError = string(r.bytes("lasterror", 4096))
	nseg := r.uvarint("segments")
	if r.err == nil && (nseg == 0 || nseg > maxSegments) {
		r.fail("segment count")
	}
	if r.err != nil {
		return nil, r.err
	}
	e.Segments = make([]Segment, nseg)
	for i := range e.Segments {
		st := SegmentState(r.byte("state"))
		if st > Delivered {
			r.fail("segment state")
		}
		e.Segments[i] = Segment{State: st, MR: r.byte("mr"), TPDU: r.bytes("tpdu", maxTPDU)}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return e, nil
}
