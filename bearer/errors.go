package bearer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Sentinel errors of the message layer. Callers branch with errors.Is.
var (
	// ErrTimeout is matched (errors.Is) by every *TimeoutError.
	ErrTimeout = errors.New("bearer: exchange timed out")
	// ErrClosed is returned by operations on a closed Endpoint.
	ErrClosed = errors.New("bearer: endpoint closed")
	// ErrReset is returned when the peer answered a confirmable message
	// with RST (it does not know the exchange, or rejects it).
	ErrReset = errors.New("bearer: peer reset the exchange")
	// ErrLimit is wrapped when a bounded resource (peers, exchanges,
	// waiting requests, observations, block buffers) is full.
	ErrLimit = errors.New("bearer: limit reached")
	// ErrBodyTooLarge is wrapped when a block-wise body exceeds
	// Limits.MaxBodySize.
	ErrBodyTooLarge = errors.New("bearer: body too large")
	// ErrBadResponse is wrapped when a response breaks the protocol
	// (unrecognised critical option, inconsistent blocks, changed ETag).
	ErrBadResponse = errors.New("bearer: bad response")
	// ErrAlreadyWritten is returned by a second ResponseWriter.WriteResponse.
	ErrAlreadyWritten = errors.New("bearer: response already written")
	// ErrNotObservable is returned by ResponseWriter.Observe when the
	// request is not a GET/FETCH with Observe=0.
	ErrNotObservable = errors.New("bearer: request is not an observe registration")
	// ErrNotObserved is returned by Endpoint.Observe when the server
	// answered without the Observe option (it did not register us).
	ErrNotObserved = errors.New("bearer: server did not accept the observation")
	// ErrObservationEnded is returned by Observer.Notify once the
	// observation is over (RST, deregistration, timeout, Close).
	ErrObservationEnded = errors.New("bearer: observation ended")
)

// TimeoutError reports an exchange that got no answer in time: no ACK or
// response within MAX_TRANSMIT_WAIT for a CON message, or no response in
// time for a NON request or after an empty ACK. It satisfies net.Error, and
// errors.Is(err, ErrTimeout) and errors.Is(err, context.DeadlineExceeded)
// both hold.
type TimeoutError struct {
	// Op names what timed out: "request", "notification", "response".
	Op string
	// Peer is the remote address.
	Peer net.Addr
	// Waited is how long the exchange waited.
	Waited time.Duration
	// Transmissions is how many times the message was sent.
	Transmissions int
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("bearer: %s to %v timed out after %v (%d transmissions)", e.Op, e.Peer, e.Waited.Round(time.Millisecond), e.Transmissions)
}

// Timeout reports true.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports true: the peer may answer a later attempt.
func (e *TimeoutError) Temporary() bool { return true }

// Is matches ErrTimeout and context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

var _ net.Error = (*TimeoutError)(nil)
