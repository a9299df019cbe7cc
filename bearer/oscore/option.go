package oscore

import "fmt"

// OptionNumber is the CoAP option number of OSCORE (RFC 8613 §2).
const OptionNumber = 9

// OptionValue is the value of the OSCORE option (RFC 8613 §6.1): the flag byte
// with the Partial IV length n, the k (kid) and h (kid context) flags,
// then the Partial IV, the kid context with its length byte, and the kid
// (the rest of the value).
//
// The zero OptionValue is the empty option (no Partial IV, kid or kid
// context), which Marshal encodes as zero bytes.
type OptionValue struct {
	PIV        []byte // 0..5 bytes
	KID        []byte // present when HasKID
	KIDContext []byte // present when HasKIDContext
	HasKID     bool
	HasKIDCtx  bool
}

// Marshal returns the option value. An option with no field set is empty
// (a response using the request's nonce).
func (o OptionValue) Marshal() ([]byte, error) {
	if len(o.PIV) > 5 {
		return nil, fmt.Errorf("%w: Partial IV of %d bytes", ErrBadOption, len(o.PIV))
	}
	if len(o.KIDContext) > 255 {
		return nil, fmt.Errorf("%w: kid context of %d bytes", ErrBadOption, len(o.KIDContext))
	}
	if len(o.PIV) == 0 && !o.HasKID && !o.HasKIDCtx {
		return []byte{}, nil
	}
	flags := byte(len(o.PIV))
	if o.HasKID {
		flags |= 0x08
	}
	if o.HasKIDCtx {
		flags |= 0x10
	}
	b := make([]byte, 0, 1+len(o.PIV)+1+len(o.KIDContext)+len(o.KID))
	b = append(b, flags)
	b = append(b, o.PIV...)
	if o.HasKIDCtx {
		b = append(b, byte(len(o.KIDContext)))
		b = append(b, o.KIDContext...)
	}
	if o.HasKID {
		b = append(b, o.KID...)
	}
	return b, nil
}

// ParseOption decodes an OSCORE option value. It refuses (ErrBadOption)
// reserved flag bits (bit 7 — the extension flag, undefined in RFC 8613 —
// bits 6 and 5), n = 6 or 7, lengths that overrun the value, a flag byte
// of 0 with more bytes, and a kid longer than MaxIDLen. The returned slices
// alias data.
func ParseOption(data []byte) (OptionValue, error) {
	var o OptionValue
	if len(data) == 0 {
		return o, nil
	}
	flags := data[0]
	if flags&0xe0 != 0 {
		return o, fmt.Errorf("%w: reserved flag bits %#02x", ErrBadOption, flags&0xe0)
	}
	if flags == 0 {
		// §6.1: a value of all-zero flags must be encoded as an empty option.
		return o, fmt.Errorf("%w: zero flag byte must be sent as an empty option", ErrBadOption)
	}
	n := int(flags & 0x07)
	if n > 5 {
		return o, fmt.Errorf("%w: Partial IV length %d is reserved", ErrBadOption, n)
	}
	rest := data[1:]
	if len(rest) < n {
		return o, fmt.Errorf("%w: Partial IV of %d bytes overruns the option", ErrBadOption, n)
	}
	o.PIV, rest = rest[:n], rest[n:]
	if flags&0x10 != 0 {
		if len(rest) < 1 {
			return o, fmt.Errorf("%w: kid context length missing", ErrBadOption)
		}
		s := int(rest[0])
		if len(rest) < 1+s {
			return o, fmt.Errorf("%w: kid context of %d bytes overruns the option", ErrBadOption, s)
		}
		o.HasKIDCtx, o.KIDContext, rest = true, rest[1:1+s], rest[1+s:]
	}
	if flags&0x08 != 0 {
		if len(rest) > MaxIDLen {
			return o, fmt.Errorf("%w: kid of %d bytes > %d", ErrBadOption, len(rest), MaxIDLen)
		}
		o.HasKID, o.KID = true, rest
	} else if len(rest) > 0 {
		return o, fmt.Errorf("%w: %d trailing bytes without the kid flag", ErrBadOption, len(rest))
	}
	return o, nil
}
