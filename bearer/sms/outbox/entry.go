package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/record"
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
//
// The zero Entry has no segments: it is Done, with nothing pending.
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

// marshal encodes e in the outbox's binary record format (internal/record):
// version, id, from, to, flags, created, expires, attempts, nexttry,
// lasterror, nseg, then per segment state, mr, tpdu.
func (e *Entry) marshal() []byte {
	b := make([]byte, 0, 64+e.Size()+4*len(e.Segments))
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, e.ID)
	b = record.AppendString(b, e.From)
	b = record.AppendString(b, e.To)
	var flags byte
	if e.WantReport {
		flags |= 1
	}
	b = append(b, flags)
	b = record.AppendTime(b, e.Created)
	b = record.AppendTime(b, e.Expires)
	b = binary.AppendUvarint(b, uint64(e.Attempts))
	b = record.AppendTime(b, e.NextTry)
	b = record.AppendString(b, e.LastError)
	b = binary.AppendUvarint(b, uint64(len(e.Segments)))
	for _, s := range e.Segments {
		b = append(b, byte(s.State), s.MR)
		b = record.AppendBytes(b, s.TPDU)
	}
	return b
}

func unmarshalEntry(data []byte) (*Entry, error) {
	d := record.NewDecoder(data, ErrCorrupt)
	if v := d.Byte(); d.Err() == nil && v != entryVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	e := &Entry{}
	e.ID = d.Uvarint()
	e.From = d.String(maxString)
	e.To = d.String(maxString)
	e.WantReport = d.Byte()&1 != 0
	e.Created = d.Time()
	e.Expires = d.Time()
	att := d.Uvarint()
	if att > 1<<31 {
		d.Fail("attempts")
	}
	e.Attempts = int(att)
	e.NextTry = d.Time()
	e.LastError = d.String(4096)
	nseg := d.Uvarint()
	if d.Err() == nil && (nseg == 0 || nseg > maxSegments) {
		d.Fail("segment count")
	}
	if d.Err() != nil {
		return nil, d.Err()
	}
	e.Segments = make([]Segment, nseg)
	for i := range e.Segments {
		st := SegmentState(d.Byte())
		if st > Delivered {
			d.Fail("segment state")
		}
		e.Segments[i] = Segment{State: st, MR: d.Byte(), TPDU: d.Bytes(maxTPDU)}
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return e, nil
}

// Done reports whether nothing remains to do for the entry: every segment
// accepted, and delivered when reports are wanted.
func (e *Entry) Done() bool { return e.done() }

// Marshal encodes e in the outbox's binary record format (for Backends
// outside this package).
func (e *Entry) Marshal() []byte { return e.marshal() }

// UnmarshalEntry decodes a record written by Marshal; errors wrap
// ErrCorrupt.
func UnmarshalEntry(data []byte) (*Entry, error) { return unmarshalEntry(data) }
