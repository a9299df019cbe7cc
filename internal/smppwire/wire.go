package smppwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// CommandID is an SMPP command_id.
type CommandID uint32

// Command IDs used here (SMPP 3.4 §5.1.2.1).
const (
	GenericNack         CommandID = 0x80000000
	BindReceiver        CommandID = 0x00000001
	BindReceiverResp    CommandID = 0x80000001
	BindTransmitter     CommandID = 0x00000002
	BindTransmitterResp CommandID = 0x80000002
	SubmitSM            CommandID = 0x00000004
	SubmitSMResp        CommandID = 0x80000004
	DeliverSM           CommandID = 0x00000005
	DeliverSMResp       CommandID = 0x80000005
	Unbind              CommandID = 0x00000006
	UnbindResp          CommandID = 0x80000006
	BindTransceiver     CommandID = 0x00000009
	BindTransceiverResp CommandID = 0x80000009
	Outbind             CommandID = 0x0000000B
	EnquireLink         CommandID = 0x00000015
	EnquireLinkResp     CommandID = 0x80000015
)

// IsResponse reports whether id is a response (bit 31 set).
func (id CommandID) IsResponse() bool { return id&0x80000000 != 0 }

// Resp returns the response command_id of a request.
func (id CommandID) Resp() CommandID { return id | 0x80000000 }

func (id CommandID) String() string {
	switch id {
	case GenericNack:
		return "generic_nack"
	case BindReceiver:
		return "bind_receiver"
	case BindReceiverResp:
		return "bind_receiver_resp"
	case BindTransmitter:
		return "bind_transmitter"
	case BindTransmitterResp:
		return "bind_transmitter_resp"
	case SubmitSM:
		return "submit_sm"
	case SubmitSMResp:
		return "submit_sm_resp"
	case DeliverSM:
		return "deliver_sm"
	case DeliverSMResp:
		return "deliver_sm_resp"
	case Unbind:
		return "unbind"
	case UnbindResp:
		return "unbind_resp"
	case BindTransceiver:
		return "bind_transceiver"
	case BindTransceiverResp:
		return "bind_transceiver_resp"
	case Outbind:
		return "outbind"
	case EnquireLink:
		return "enquire_link"
	case EnquireLinkResp:
		return "enquire_link_resp"
	}
	return fmt.Sprintf("command_id(0x%08X)", uint32(id))
}

// Sizes of the format.
const (
	HeaderLen = 16
	// MaxPDU bounds command_length. The largest PDU we exchange is a
	// submit_sm with a message_payload of a whole concatenated CoAP
	// datagram (34,170 octets) plus its fields; 64 KiB holds it.
	MaxPDU = 64 << 10
	// MaxShortMessage is the largest short_message (sm_length is one octet
	// and 255 is reserved).
	MaxShortMessage = 254
	// InterfaceVersion is SMPP 3.4.
	InterfaceVersion = 0x34
)

// Errors callers branch on.
var (
	// ErrMalformed is wrapped by every decoding error.
	ErrMalformed = errors.New("smpp: malformed PDU")
	// ErrTooLong is wrapped when command_length exceeds MaxPDU (or the
	// reader's limit) or is shorter than a header.
	ErrTooLong = errors.New("smpp: bad command_length")
)

// Header is the 16-octet PDU header.
type Header struct {
	Length   uint32 // command_length, header included
	ID       CommandID
	Status   Status
	Sequence uint32
}

// PDU is one decoded PDU: its header and its raw body.
type PDU struct {
	Header
	Body []byte
}

// ReadPDU reads one PDU from r. A command_length below HeaderLen or above
// max (MaxPDU when max is 0) is refused with ErrTooLong before any body is
// read, so a hostile peer cannot make us allocate more than max octets.
func ReadPDU(r io.Reader, max int) (PDU, error) {
	if max <= 0 || max > MaxPDU {
		max = MaxPDU
	}
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return PDU{}, err
	}
	p := PDU{Header: decodeHeader(h[:])}
	if p.Length < HeaderLen || p.Length > uint32(max) {
		return p, fmt.Errorf("%w: %d (limit %d)", ErrTooLong, p.Length, max)
	}
	p.Body = make([]byte, p.Length-HeaderLen)
	if _, err := io.ReadFull(r, p.Body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return p, err
	}
	return p, nil
}

// ParsePDU decodes one whole PDU held in b (header included).
func ParsePDU(b []byte) (PDU, error) {
	if len(b) < HeaderLen {
		return PDU{}, fmt.Errorf("%w: %d octets", ErrMalformed, len(b))
	}
	p := PDU{Header: decodeHeader(b)}
	if p.Length != uint32(len(b)) || p.Length > MaxPDU {
		return p, fmt.Errorf("%w: command_length %d for %d octets", ErrTooLong, p.Length, len(b))
	}
	p.Body = b[HeaderLen:]
	return p, nil
}

func decodeHeader(h []byte) Header {
	return Header{
		Length:   binary.BigEndian.Uint32(h[0:]),
		ID:       CommandID(binary.BigEndian.Uint32(h[4:])),
		Status:   Status(binary.BigEndian.Uint32(h[8:])),
		Sequence: binary.BigEndian.Uint32(h[12:]),
	}
}

// Marshal returns the PDU with header id, status, seq and the given body.
func Marshal(id CommandID, status Status, seq uint32, body []byte) []byte {
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	binary.BigEndian.PutUint32(b[0:], uint32(HeaderLen+len(body)))
	binary.BigEndian.PutUint32(b[4:], uint32(id))
	binary.BigEndian.PutUint32(b[8:], uint32(status))
	binary.BigEndian.PutUint32(b[12:], seq)
	return append(b, body...)
}

// reader walks a body, remembering the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at offset %d", ErrMalformed, what, r.off)
	}
}

func (r *reader) u8(what string) byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail(what)
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

// cstring reads a C-Octet String of at most max octets including its NUL.
func (r *reader) cstring(what string, max int) string {
	if r.err != nil {
		return ""
	}
	for i := r.off; i < len(r.b) && i-r.off < max; i++ {
		if r.b[i] == 0 {
			s := string(r.b[r.off:i])
			r.off = i + 1
			return s
		}
	}
	r.fail(what + " (no NUL within its size)")
	return ""
}

func (r *reader) bytes(what string, n int) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		r.fail(what)
		return nil
	}
	v := append([]byte(nil), r.b[r.off:r.off+n]...)
	r.off += n
	return v
}

func (r *reader) rest() []byte { return r.b[r.off:] }

func appendCString(b []byte, s string, max int) ([]byte, error) {
	if len(s) >= max {
		return b, fmt.Errorf("smpp: %q is %d octets, the field holds %d", s, len(s), max-1)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return b, fmt.Errorf("smpp: %q contains NUL", s)
		}
	}
	b = append(b, s...)
	return append(b, 0), nil
}
