package smpp

import (
	"errors"

	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// Errors SendTPDU returns, besides *StatusError from the SMSC.
var (
	// ErrClosed: the link was closed.
	ErrClosed = errors.New("smpp: link closed")
	// ErrUnknownSource: from names a number this link may not send from
	// (permanent: a configuration error).
	ErrUnknownSource error = &kindError{"smpp: source number not configured on this link", false}
	// ErrBadTPDU: the TPDU is not an SMS-SUBMIT this link can carry
	// (permanent).
	ErrBadTPDU error = &kindError{"smpp: cannot carry TPDU", false}
	// ErrNotBound: the link has no bound session now (retryable).
	ErrNotBound error = &kindError{"smpp: link not bound", true}
	// ErrResponseTimeout: the SMSC did not answer a request in time
	// (retryable; the outcome of a submit is unknown, so a duplicate is
	// possible, which the receiver's reassembler and CoAP drop).
	ErrResponseTimeout error = &kindError{"smpp: no response in time", true}
	// ErrOutbind: the SMSC sent an outbind (SMPP 3.4 §4.1.7). SMSC-initiated
	// sessions are not supported (docs/smpp.md says why); the account
	// must be set up for ESME-initiated binds.
	ErrOutbind error = &kindError{"smpp: outbind (an SMSC-initiated session) is not supported; ask the operator for ESME-initiated binds", true}
)

// StatusError is the SMSC's refusal of a request; see smppwire.Status for
// which statuses are retryable.
type StatusError = smppwire.StatusError

type kindError struct {
	msg       string
	retryable bool
}

func (e *kindError) Error() string   { return e.msg }
func (e *kindError) Retryable() bool { return e.retryable }
func (e *kindError) Temporary() bool { return e.retryable }
func (e *kindError) Timeout() bool   { return e == ErrResponseTimeout }
