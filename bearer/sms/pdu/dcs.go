package pdu

import "fmt"

// DCS is the TP-DCS data coding scheme octet (3GPP TS 23.038 §4).
type DCS byte

// Alphabet is the character set of the user data named by a DCS.
type Alphabet uint8

// Alphabets (TS 23.038 §4).
const (
	AlphabetGSM7     Alphabet = iota // GSM 7-bit default alphabet
	Alphabet8Bit                     // 8-bit data: the CoAP coding
	AlphabetUCS2                     // UCS-2, 16 bits a character
	AlphabetReserved                 // a reserved coding group or value
)

func (a Alphabet) String() string {
	switch a {
	case AlphabetGSM7:
		return "gsm7"
	case Alphabet8Bit:
		return "8bit"
	case AlphabetUCS2:
		return "ucs2"
	}
	return "reserved"
}

// Common DCS values for binary data.
const (
	// DCS8Bit is 8-bit data, no message class: the LwM2M default.
	DCS8Bit DCS = 0x04
	// DCS8BitClass1 is 8-bit data, class 1 (ME-specific).
	DCS8BitClass1 DCS = 0xF5
	// DCS8BitClass2 is 8-bit data, class 2 (SIM-specific).
	DCS8BitClass2 DCS = 0xF6
)

// Alphabet returns the alphabet the DCS names. Coding groups 1000..1011 and
// the reserved alphabet value 11 of the general groups give
// AlphabetReserved.
func (d DCS) Alphabet() Alphabet {
	switch {
	case d&0x80 == 0: // 00xx xxxx general, 01xx xxxx automatic deletion
		return Alphabet(d >> 2 & 3)
	case d&0xF0 == 0xC0, d&0xF0 == 0xD0: // message waiting, discard / store, GSM 7-bit
		return AlphabetGSM7
	case d&0xF0 == 0xE0: // message waiting, store, UCS2
		return AlphabetUCS2
	case d&0xF0 == 0xF0: // data coding / message class
		if d&0x08 != 0 {
			return AlphabetReserved // bit 3 is reserved, shall be 0
		}
		if d&0x04 != 0 {
			return Alphabet8Bit
		}
		return AlphabetGSM7
	}
	return AlphabetReserved // 1000..1011 reserved coding groups
}

// Class returns the message class (0..3) and whether the DCS sets one.
func (d DCS) Class() (int, bool) {
	switch {
	case d&0x80 == 0 && d&0x10 != 0:
		return int(d & 3), true
	case d&0xF0 == 0xF0:
		return int(d & 3), true
	}
	return 0, false
}

// Compressed reports whether the DCS marks the user data as compressed
// (TS 23.038 general coding groups, bit 5).
func (d DCS) Compressed() bool { return d&0x80 == 0 && d&0x20 != 0 }

// IsBinary reports whether the DCS names uncompressed 8-bit data, the only
// coding a CoAP datagram travels in.
func (d DCS) IsBinary() bool { return d.Alphabet() == Alphabet8Bit && !d.Compressed() }

func (d DCS) String() string {
	s := fmt.Sprintf("0x%02X %s", byte(d), d.Alphabet())
	if c, ok := d.Class(); ok {
		s += fmt.Sprintf(" class %d", c)
	}
	if d.Compressed() {
		s += " compressed"
	}
	return s
}
