package pdu

import (
	"container/list"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Sizes of the SMS user data (TS 23.040 §9.2.3.16, §9.2.3.24).
const (
	// MaxUserData is the user data capacity of one SMS in octets.
	MaxUserData = 140
	// MaxSegments is the most segments a concatenated message has.
	MaxSegments = 255
	// SegmentData8 is the payload of one segment with an 8-bit reference.
	SegmentData8 = MaxUserData - 1 - 5
	// SegmentData16 is the payload of one segment with a 16-bit reference.
	SegmentData16 = MaxUserData - 1 - 6
	// MaxDatagram is the largest datagram: 255 segments of 134 bytes.
	MaxDatagram = MaxSegments * SegmentData8
)

// TP-MTI and first-octet bits (TS 23.040 §9.2.3.1 .. §9.2.3.29).
const (
	mtiDeliver      = 0x00
	mtiSubmit       = 0x01
	mtiStatusReport = 0x02
	foRD            = 0x04 // SUBMIT: reject duplicates
	foMMS           = 0x04 // DELIVER, STATUS-REPORT: no more messages
	foLP            = 0x08 // DELIVER, STATUS-REPORT: loop prevention
	foVPFRelative   = 0x10 // SUBMIT: VPF = 10
	foVPFMask       = 0x18
	foSRR           = 0x20 // SUBMIT: status report request
	foSRI           = 0x20 // DELIVER: status report indication
	foSRQ           = 0x20 // STATUS-REPORT: qualifier (result of a COMMAND)
	foUDHI          = 0x40
	foRP            = 0x80
)

// SubmitOptions are the knobs of one encoded message.
//
// The zero SubmitOptions is not the default: its DCS 0x00 (GSM 7-bit) is
// refused by Encode and its Validity 0 omits TP-VP. Start from
// DefaultSubmitOptions.
type SubmitOptions struct {
	// DCS is TP-DCS; it must name uncompressed 8-bit data (DCS8Bit,
	// DCS8BitClass1, DCS8BitClass2, ...). Default DCS8Bit (0x04).
	DCS DCS
	// PID is TP-PID. Default 0x00.
	PID byte
	// Validity is the relative TP-VP, rounded up to the next representable
	// period (5 min .. 63 weeks). 0 omits TP-VP (the SMSC default applies).
	// Default 24 h.
	Validity time.Duration
	// StatusReport sets TP-SRR: ask the SMSC for an SMS-STATUS-REPORT.
	StatusReport bool
	// RejectDuplicates sets TP-RD.
	RejectDuplicates bool
	// Ref16 uses the 16-bit reference concatenation IE (0x08, 133 bytes a
	// segment) instead of the 8-bit one (0x00, 134 bytes).
	Ref16 bool
	// Ports, when Present, adds an application port IE to every segment:
	// IE 0x05 (16-bit ports) when Wide, IE 0x04 (8-bit) otherwise.
	Ports Ports
	// Repeat sends a concatenated message again under the reference it had
	// (RepeatRef) instead of taking the next one: the receiver's
	// reassembler joins the new copies of its segments to those of the
	// first sending, so a segment lost then may complete it now.
	Repeat    bool
	RepeatRef uint16
}

// DefaultSubmitOptions returns the defaults: DCS 0x04, PID 0, 24 h validity,
// no status report, 8-bit reference, no ports.
func DefaultSubmitOptions() SubmitOptions {
	return SubmitOptions{DCS: DCS8Bit, Validity: 24 * time.Hour}
}

// Option changes SubmitOptions.
type Option func(*SubmitOptions)

// WithDCS sets TP-DCS (it must name 8-bit data).
func WithDCS(d DCS) Option { return func(o *SubmitOptions) { o.DCS = d } }

// WithValidity sets the relative validity period; 0 omits TP-VP.
func WithValidity(d time.Duration) Option { return func(o *SubmitOptions) { o.Validity = d } }

// WithStatusReport sets or clears TP-SRR.
func WithStatusReport(on bool) Option { return func(o *SubmitOptions) { o.StatusReport = on } }

// WithRepeat sends the message again under reference ref (SubmitOptions.Repeat).
func WithRepeat(ref uint16) Option {
	return func(o *SubmitOptions) { o.Repeat, o.RepeatRef = true, ref }
}

// With16BitRef selects the 16-bit reference concatenation IE.
func With16BitRef(on bool) Option { return func(o *SubmitOptions) { o.Ref16 = on } }

// WithPorts adds a 16-bit application port IE (IE 0x05) to every segment.
func WithPorts(dst, src uint16) Option {
	return func(o *SubmitOptions) { o.Ports = Ports{Present: true, Wide: true, Dst: dst, Src: src} }
}

// WithoutPorts removes the application port IE.
func WithoutPorts() Option { return func(o *SubmitOptions) { o.Ports = Ports{} } }

func (o SubmitOptions) validate() error {
	if !o.DCS.IsBinary() {
		return fmt.Errorf("%w: DCS %s is not uncompressed 8-bit data", ErrInvalidOption, o.DCS)
	}
	if o.Validity < 0 {
		return fmt.Errorf("%w: negative validity %v", ErrInvalidOption, o.Validity)
	}
	if o.Ports.Present && !o.Ports.Wide && (o.Ports.Dst > 255 || o.Ports.Src > 255) {
		return fmt.Errorf("%w: 8-bit port IE with port above 255", ErrInvalidOption)
	}
	return nil
}

func (o SubmitOptions) portsLen() int {
	switch {
	case !o.Ports.Present:
		return 0
	case o.Ports.Wide:
		return 6
	}
	return 4
}

// SingleCapacity returns the most bytes that go in one unconcatenated SMS
// with these options (140, or less the port IE and UDHL).
func (o SubmitOptions) SingleCapacity() int {
	if p := o.portsLen(); p > 0 {
		return MaxUserData - 1 - p
	}
	return MaxUserData
}

// SegmentCapacity returns the payload of one segment of a concatenated
// message with these options (134 or 133, less the port IE).
func (o SubmitOptions) SegmentCapacity() int {
	c := 5
	if o.Ref16 {
		c = 6
	}
	return MaxUserData - 1 - c - o.portsLen()
}

// MaxPayload returns the largest datagram these options can carry:
// 34,170 bytes by default, 33,915 with 16-bit references, 32,640 with the
// 16-bit port IE.
func (o SubmitOptions) MaxPayload() int { return MaxSegments * o.SegmentCapacity() }

// Segments returns how many SMS a datagram of n bytes takes, or 0 if it is
// too large.
func (o SubmitOptions) Segments(n int) int {
	if n <= o.SingleCapacity() {
		return 1
	}
	c := o.SegmentCapacity()
	s := (n + c - 1) / c
	if s > MaxSegments {
		return 0
	}
	return s
}

// Segment is one SMS-SUBMIT ready for a modem.
type Segment struct {
	// TPDU is the binary SMS-SUBMIT TPDU (TP-MR 0: the modem assigns it).
	TPDU []byte
	// PDU is the PDU-mode hex string for AT+CMGS: "00" (use the SIM's
	// SMSC, TS 27.005 §3.5.1) followed by the TPDU in upper-case hex.
	PDU string
	// Length is the <length> of AT+CMGS=<length>: TPDU octets, without the
	// SMSC part (TS 27.005 §3.5.1).
	Length int
	// Concat is the concatenation IE of this segment (zero when single).
	Concat Concat
}

// EncoderStats are the Encoder's counters.
type EncoderStats struct {
	Messages     uint64 // datagrams encoded
	Segments     uint64 // segments produced
	Bytes        uint64 // payload bytes encoded
	TooLarge     uint64 // datagrams refused with ErrTooLarge
	Destinations int    // destinations with a reference counter
	RefEvictions uint64 // reference counters dropped to respect the cap
}

// Encoder turns datagrams into SMS-SUBMIT segments. It keeps one rotating
// concatenation reference per destination (bounded: the least recently
// used destination is forgotten past the cap, and counted). It is safe for
// concurrent use. The zero Encoder is ready to use, as NewEncoder() with
// no options.
type Encoder struct {
	defaults SubmitOptions
	maxDest  int
	seed     func() uint16

	mu   sync.Mutex
	refs map[string]*list.Element
	lru  list.List // of *refEntry, most recent at front

	messages, segments, bytes, tooLarge, evictions atomic.Uint64
}

type refEntry struct {
	dest string
	next uint16
}

// EncoderOption configures an Encoder. An option given a value out of its
// range makes NewEncoder fail with an error wrapping ErrInvalidOption.
type EncoderOption func(*Encoder) error

// WithDefaults sets the options every Encode starts from; defaults that
// no Encode could use (a DCS that is not 8-bit data, a negative validity)
// are refused.
func WithDefaults(opts ...Option) EncoderOption {
	return func(e *Encoder) error {
		for _, o := range opts {
			o(&e.defaults)
		}
		if err := e.defaults.validate(); err != nil {
			return fmt.Errorf("WithDefaults: %w", err)
		}
		return nil
	}
}

// WithMaxDestinations caps the per-destination reference counters, at
// least 1 (default 65,536).
func WithMaxDestinations(n int) EncoderOption {
	return func(e *Encoder) error {
		e.maxDest = n
		return cfgcheck.AtLeast1(ErrInvalidOption, "WithMaxDestinations", n)
	}
}

// WithRefSeed sets the function that gives the first reference for a
// destination the Encoder has not seen (default: random, so that a restart
// does not reuse references a receiver may still hold); nil is refused.
func WithRefSeed(f func() uint16) EncoderOption {
	return func(e *Encoder) error {
		if f == nil {
			return fmt.Errorf("%w: WithRefSeed(nil)", ErrInvalidOption)
		}
		e.seed = f
		return nil
	}
}

// defaultMaxDest is the default of WithMaxDestinations.
const defaultMaxDest = 1 << 16

// NewEncoder returns an Encoder, or an error wrapping ErrInvalidOption when
// an option is out of its range.
func NewEncoder(opts ...EncoderOption) (*Encoder, error) {
	e := &Encoder{
		defaults: DefaultSubmitOptions(),
		maxDest:  defaultMaxDest,
		seed:     func() uint16 { return uint16(rand.Uint32()) },
		refs:     make(map[string]*list.Element),
	}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Defaults returns the options Encode starts from.
func (e *Encoder) Defaults() SubmitOptions {
	if e.seed == nil { // the zero Encoder: NewEncoder's defaults
		return DefaultSubmitOptions()
	}
	return e.defaults
}

// Stats returns the counters.
func (e *Encoder) Stats() EncoderStats {
	e.mu.Lock()
	n := len(e.refs)
	e.mu.Unlock()
	return EncoderStats{
		Messages: e.messages.Load(), Segments: e.segments.Load(), Bytes: e.bytes.Load(),
		TooLarge: e.tooLarge.Load(), Destinations: n, RefEvictions: e.evictions.Load(),
	}
}

// nextRef returns the next concatenation reference for dest.
func (e *Encoder) nextRef(dest string, ref16 bool) uint16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refs == nil { // the zero Encoder
		e.refs = make(map[string]*list.Element)
	}
	el, ok := e.refs[dest]
	if !ok {
		limit := e.maxDest
		if limit <= 0 { // the zero Encoder
			limit = defaultMaxDest
		}
		for len(e.refs) >= limit {
			old := e.lru.Back()
			delete(e.refs, old.Value.(*refEntry).dest)
			e.lru.Remove(old)
			e.evictions.Add(1)
		}
		first := uint16(rand.Uint32()) // NewEncoder's seed, for the zero Encoder
		if e.seed != nil {
			first = e.seed()
		}
		el = e.lru.PushFront(&refEntry{dest: dest, next: first})
		e.refs[dest] = el
	} else {
		e.lru.MoveToFront(el)
	}
	r := el.Value.(*refEntry)
	ref := r.next
	r.next++
	if !ref16 {
		ref &= 0xff
	}
	return ref
}

// Encode turns data into SMS-SUBMIT segments for dest, a number as
// NumberAddress takes it ("+4915..." international, or bare digits). A
// datagram that does not fit in 255 segments gives an error wrapping
// ErrTooLarge and consumes no reference.
func (e *Encoder) Encode(dest string, data []byte, opts ...Option) ([]Segment, error) {
	o := e.Defaults()
	for _, f := range opts {
		f(&o)
	}
	da, err := NumberAddress(dest)
	if err != nil {
		return nil, err
	}
	return e.EncodeTo(da, data, o)
}

// EncodeTo is Encode with an explicit address and options.
func (e *Encoder) EncodeTo(da Address, data []byte, o SubmitOptions) ([]Segment, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	n := o.Segments(len(data))
	if n == 0 {
		e.tooLarge.Add(1)
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(data), o.MaxPayload())
	}
	// Header: first octet, MR, DA, PID, DCS, VP.
	fo := byte(mtiSubmit)
	if o.RejectDuplicates {
		fo |= foRD
	}
	if o.StatusReport {
		fo |= foSRR
	}
	if o.Validity > 0 {
		fo |= foVPFRelative
	}
	if n > 1 || o.Ports.Present {
		fo |= foUDHI
	}
	head := make([]byte, 0, 16)
	head = append(head, fo, 0x00)
	head, err := appendAddress(head, da)
	if err != nil {
		return nil, err
	}
	head = append(head, o.PID, byte(o.DCS))
	if o.Validity > 0 {
		head = append(head, RelativeVP(o.Validity))
	}
	var ref uint16
	switch {
	case n > 1 && o.Repeat:
		ref = o.RepeatRef
		if !o.Ref16 {
			ref &= 0xff
		}
	case n > 1:
		ref = e.nextRef(da.String(), o.Ref16)
	}
	segs := make([]Segment, n)
	capacity := o.SegmentCapacity()
	if n == 1 {
		capacity = o.SingleCapacity()
	}
	for i := range segs {
		chunk := data[min(i*capacity, len(data)):min((i+1)*capacity, len(data))]
		var c Concat
		if n > 1 {
			c = Concat{Ref: ref, Ref16: o.Ref16, Total: uint8(n), Seq: uint8(i + 1)}
		}
		t := make([]byte, 0, len(head)+1+1+13+len(chunk))
		t = append(t, head...)
		udl := len(t)
		t = append(t, 0)
		if fo&foUDHI != 0 {
			t = appendSegmentUDH(t, c, o)
		}
		t = append(t, chunk...)
		t[udl] = byte(len(t) - udl - 1)
		segs[i] = Segment{TPDU: t, PDU: pduHex(t), Length: len(t), Concat: c}
	}
	e.messages.Add(1)
	e.segments.Add(uint64(n))
	e.bytes.Add(uint64(len(data)))
	return segs, nil
}

// appendSegmentUDH appends the UDHL and the concatenation and port IEs.
func appendSegmentUDH(t []byte, c Concat, o SubmitOptions) []byte {
	udhl := len(t)
	t = append(t, 0)
	if !c.IsZero() {
		if c.Ref16 {
			t = append(t, IEConcat16, 4, byte(c.Ref>>8), byte(c.Ref), c.Total, c.Seq)
		} else {
			t = append(t, IEConcat8, 3, byte(c.Ref), c.Total, c.Seq)
		}
	}
	if o.Ports.Present {
		if o.Ports.Wide {
			t = append(t, IEPorts16, 4, byte(o.Ports.Dst>>8), byte(o.Ports.Dst), byte(o.Ports.Src>>8), byte(o.Ports.Src))
		} else {
			t = append(t, IEPorts8, 2, byte(o.Ports.Dst), byte(o.Ports.Src))
		}
	}
	t[udhl] = byte(len(t) - udhl - 1)
	return t
}

// pduHex returns "00" + upper-case hex of the TPDU.
func pduHex(t []byte) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 2+2*len(t))
	b[0], b[1] = '0', '0'
	for i, c := range t {
		b[2+2*i], b[3+2*i] = digits[c>>4], digits[c&0x0f]
	}
	return string(b)
}
