package oscore

import (
	"errors"
	"fmt"
	"net"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Sentinel errors. Every error of message verification is an *Error that
// matches one of them with errors.Is and carries the CoAP code RFC 8613
// §8.2/§8.4 prescribes for the answer.
var (
	// ErrBadOption: the OSCORE option is malformed (reserved flag bits,
	// lengths that overrun the value, a Partial IV longer than 5 bytes);
	// answered 4.02 Bad Option (§8.2 step 2).
	ErrBadOption = errors.New("oscore: malformed OSCORE option")
	// ErrNoContext: no security context for the kid (and kid context);
	// answered 4.01 Unauthorized "Security context not found" (§8.2 step 2).
	ErrNoContext = errors.New("oscore: security context not found")
	// ErrReplay: the Partial IV was seen before or is below the replay
	// window; answered 4.01 Unauthorized "Replay detected" (§7.4).
	ErrReplay = errors.New("oscore: replay detected")
	// ErrDecrypt: the AEAD tag did not verify (tampered message, wrong key);
	// answered 4.00 Bad Request "Decryption failed" (§8.2 step 6).
	ErrDecrypt = errors.New("oscore: decryption failed")
	// ErrDecode: the message or its decrypted plaintext is not valid CoAP
	// (no payload, bad inner options, a request code in a response);
	// answered 4.00 Bad Request.
	ErrDecode = errors.New("oscore: cannot decode protected message")
	// ErrEchoRequired: the replay window is not initialised (Appendix
	// B.1.2) and the request carries no valid Echo; answered with a
	// protected 4.01 Unauthorized carrying an Echo option (RFC 9175).
	ErrEchoRequired = errors.New("oscore: freshness not verified, Echo required")
	// ErrSeqExhausted: the Sender Sequence Number reached 2^40 − 1 (§7.2.1);
	// the context must be renewed.
	ErrSeqExhausted = errors.New("oscore: sender sequence number exhausted")
	// ErrSeqStore: the next step of the sender sequence number could not be
	// stored (Appendix B.1.1), so no message is protected until it can.
	ErrSeqStore = errors.New("oscore: cannot persist the sender sequence number")
	// ErrInvalidOption is wrapped by errors about unusable Params or
	// options (the same name in every package of the module).
	ErrInvalidOption = errors.New("oscore: invalid option")
	// ErrConfig is the old name of ErrInvalidOption.
	//
	// Deprecated: use ErrInvalidOption.
	ErrConfig = ErrInvalidOption
	// ErrRederive: the request was verified with keys derived for an
	// Appendix B.2 run (step 2) and is not executed; it is answered with a
	// protected 4.01 response #1 carrying R2 in its kid context.
	ErrRederive = errors.New("oscore: security context being re-derived (RFC 8613 Appendix B.2)")
	// ErrNotProtected: a message that must be protected came without the
	// OSCORE option.
	ErrNotProtected = errors.New("oscore: message is not OSCORE-protected")
	// ErrNotCreated is returned by a zero Conn, Context or BoltStore (not
	// made by New, NewContext, NewBoltStore or OpenBoltStore): a zero
	// Context has no keys and protects nothing, a zero BoltStore stores
	// no sequence number, a zero Conn behaves as a closed one (the error
	// wraps net.ErrClosed).
	ErrNotCreated = fmt.Errorf("oscore: zero value, not made by its constructor: %w", net.ErrClosed)
)

// Error is a verification failure: the reason (one of the sentinels above)
// and the CoAP response code RFC 8613 prescribes for it.
type Error struct {
	Code   codes.Code // 4.00, 4.01 or 4.02
	Reason error      // a sentinel above
	Detail string     // what exactly, for logs; never sent

	r2      []byte // ErrRederive: the R2 of response #1
	evicted bool   // ErrRederive: an older cached R2 was dropped for it
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%v (%v)", e.Reason, e.Code)
	}
	return fmt.Sprintf("%v (%v): %s", e.Reason, e.Code, e.Detail)
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Reason }

// Diagnostic is the diagnostic payload RFC 8613 suggests for the error
// response ("Security context not found", "Replay detected", ...).
func (e *Error) Diagnostic() string {
	switch {
	case errors.Is(e.Reason, ErrNoContext), errors.Is(e.Reason, ErrNotCreated):
		return "Security context not found"
	case errors.Is(e.Reason, ErrReplay):
		return "Replay detected"
	case errors.Is(e.Reason, ErrDecrypt):
		return "Decryption failed"
	case errors.Is(e.Reason, ErrBadOption):
		return "Bad OSCORE option"
	case errors.Is(e.Reason, ErrEchoRequired):
		return "Echo required"
	}
	return "Bad request"
}

// errZeroContext is what a zero Context answers to a protected message:
// it has no keys, so no security context (4.01, as ErrNoContext).
var errZeroContext = &Error{Code: codes.Unauthorized, Reason: ErrNotCreated, Detail: "zero Context, not made by NewContext"}

func newErr(code codes.Code, reason error, format string, a ...any) *Error {
	return &Error{Code: code, Reason: reason, Detail: fmt.Sprintf(format, a...)}
}

// CodeOf returns the CoAP code for err: the *Error's code, 4.00 otherwise.
func CodeOf(err error) codes.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return codes.BadRequest
}
