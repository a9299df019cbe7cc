package pdu

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrTooLarge is returned by Encoder.Encode when a datagram does not fit
	// in 255 segments with the chosen options. (This package does not import
	// package bearer; the SMS bearer wraps it together with
	// bearer.ErrTooLarge.)
	ErrTooLarge = errors.New("pdu: datagram does not fit in 255 SMS segments")
	// ErrInvalidOption is returned for unusable submit options (a DCS that is
	// not 8-bit, a port IE with invalid values, ...), and wrapped by the
	// error of NewEncoder or NewReassembler for an option or
	// ReassemblerConfig field out of its range.
	ErrInvalidOption = errors.New("pdu: invalid option")
	// ErrInvalidAddress is returned for an address that cannot be encoded or
	// decoded.
	ErrInvalidAddress = errors.New("pdu: invalid address")
	// ErrTruncated is wrapped by DecodeError when the input ends early.
	ErrTruncated = errors.New("pdu: truncated")
	// ErrTrailing is wrapped by DecodeError when bytes follow the user data.
	ErrTrailing = errors.New("pdu: trailing bytes after user data")
	// ErrMalformed is wrapped by DecodeError for a field whose value is not
	// allowed by TS 23.040 / TS 23.038.
	ErrMalformed = errors.New("pdu: malformed field")
	// ErrUnsupportedType is wrapped by DecodeError when the TP-MTI names a
	// TPDU type this package does not decode.
	ErrUnsupportedType = errors.New("pdu: unsupported TPDU type")
	// ErrNotBinary is returned when an SMS carries text (GSM 7-bit or UCS-2
	// coding, or compressed data) where a binary CoAP datagram is required.
	ErrNotBinary = errors.New("pdu: not 8-bit binary data")
)

// DecodeError reports where and why decoding failed.
type DecodeError struct {
	// Field is the TPDU field being decoded, e.g. "TP-OA", "TP-SCTS", "UDH".
	Field string
	// Offset is the byte offset of the field in the input.
	Offset int
	// Err is the cause; it wraps one of ErrTruncated, ErrTrailing,
	// ErrMalformed or ErrUnsupportedType.
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("pdu: decode %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

func decErr(field string, off int, err error, format string, args ...any) error {
	if format != "" {
		err = fmt.Errorf("%w: "+format, append([]any{err}, args...)...)
	}
	return &DecodeError{Field: field, Offset: off, Err: err}
}
