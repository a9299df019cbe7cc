package pdu

import (
	"encoding/binary"
	"fmt"
)

// Information element identifiers (TS 23.040 §9.2.3.24) handled here.
const (
	IEConcat8  byte = 0x00 // concatenated short messages, 8-bit reference
	IEPorts8   byte = 0x04 // application port addressing, 8-bit ports
	IEPorts16  byte = 0x05 // application port addressing, 16-bit ports
	IEConcat16 byte = 0x08 // concatenated short messages, 16-bit reference
)

// IE is one information element of a user data header.
type IE struct {
	ID   byte
	Data []byte
}

// Concat is the content of a concatenation IE (TS 23.040 §9.2.3.24.1 and
// §9.2.3.24.8). The zero value (Total 0) means "not concatenated".
type Concat struct {
	Ref   uint16 // concatenated short message reference number
	Ref16 bool   // true for IE 0x08 (16-bit reference)
	Total uint8  // maximum number of short messages, 1..255
	Seq   uint8  // sequence number of this short message, 1..Total
}

// IsZero reports whether c carries no concatenation.
func (c Concat) IsZero() bool { return c.Total == 0 }

// Ports is the content of an application port addressing IE (TS 23.040
// §9.2.3.24.3 and §9.2.3.24.4). The zero value means "no ports".
type Ports struct {
	Present bool
	Wide    bool // 16-bit IE 0x05; false for the 8-bit IE 0x04
	Dst     uint16
	Src     uint16
}

// UDH is a parsed user data header. Every IE is kept in IEs, in order; the
// concatenation and port IEs are also decoded into Concat and Ports. Where
// an IE repeats, the last occurrence wins (TS 23.040 §9.2.3.24). A
// concatenation or port IE whose length or values are not allowed is
// ignored, as §9.2.3.24.1 requires, and its ID is listed in Ignored.
//
// The zero UDH is an empty header (Len 0).
type UDH struct {
	IEs     []IE
	Concat  Concat
	Ports   Ports
	Ignored []byte
}

// Len returns the encoded length of the header including the UDHL octet, or
// 0 if h has no IEs.
func (h *UDH) Len() int {
	if len(h.IEs) == 0 {
		return 0
	}
	n := 1
	for _, ie := range h.IEs {
		n += 2 + len(ie.Data)
	}
	return n
}

// ParseUDH parses a user data header: the UDHL octet and the IEs it counts.
// It returns the header and the number of bytes consumed (UDHL + 1). It
// fails only when the header runs past b or an IE runs past the header;
// unknown IEs are kept in IEs and otherwise skipped.
func ParseUDH(b []byte) (UDH, int, error) {
	var h UDH
	if len(b) < 1 {
		return h, 0, decErr("UDHL", 0, ErrTruncated, "")
	}
	end := 1 + int(b[0])
	if len(b) < end {
		return h, 0, decErr("UDH", 0, ErrTruncated, "UDHL %d but %d bytes left", b[0], len(b)-1)
	}
	for i := 1; i < end; {
		if end-i < 2 {
			return UDH{}, 0, decErr("UDH", i, ErrMalformed, "IE header runs past UDHL")
		}
		id, l := b[i], int(b[i+1])
		if i+2+l > end {
			return UDH{}, 0, decErr("UDH", i, ErrMalformed, "IE 0x%02X length %d runs past UDHL", id, l)
		}
		data := b[i+2 : i+2+l]
		h.IEs = append(h.IEs, IE{ID: id, Data: data})
		h.apply(id, data)
		i += 2 + l
	}
	return h, end, nil
}

func (h *UDH) apply(id byte, d []byte) {
	switch id {
	case IEConcat8, IEConcat16:
		var c Concat
		switch {
		case id == IEConcat8 && len(d) == 3:
			c = Concat{Ref: uint16(d[0]), Total: d[1], Seq: d[2]}
		case id == IEConcat16 && len(d) == 4:
			c = Concat{Ref: binary.BigEndian.Uint16(d), Ref16: true, Total: d[2], Seq: d[3]}
		default:
			h.Ignored = append(h.Ignored, id)
			return
		}
		// §9.2.3.24.1: total 0, sequence 0 or sequence > total → ignore the IE.
		if c.Total == 0 || c.Seq == 0 || c.Seq > c.Total {
			h.Ignored = append(h.Ignored, id)
			return
		}
		h.Concat = c
	case IEPorts8:
		if len(d) != 2 {
			h.Ignored = append(h.Ignored, id)
			return
		}
		h.Ports = Ports{Present: true, Dst: uint16(d[0]), Src: uint16(d[1])}
	case IEPorts16:
		if len(d) != 4 {
			h.Ignored = append(h.Ignored, id)
			return
		}
		h.Ports = Ports{Present: true, Wide: true, Dst: binary.BigEndian.Uint16(d), Src: binary.BigEndian.Uint16(d[2:])}
	}
}

// AppendUDH appends the encoded header (UDHL and IEs) to dst. It fails if
// the header would be longer than 139 octets or an IE longer than 255.
func AppendUDH(dst []byte, h UDH) ([]byte, error) {
	n := h.Len()
	if n == 0 {
		return dst, nil
	}
	if n > 140 {
		return dst, fmt.Errorf("%w: user data header of %d octets", ErrInvalidOption, n)
	}
	dst = append(dst, byte(n-1))
	for _, ie := range h.IEs {
		if len(ie.Data) > 255 {
			return dst, fmt.Errorf("%w: IE 0x%02X of %d octets", ErrInvalidOption, ie.ID, len(ie.Data))
		}
		dst = append(dst, ie.ID, byte(len(ie.Data)))
		dst = append(dst, ie.Data...)
	}
	return dst, nil
}
