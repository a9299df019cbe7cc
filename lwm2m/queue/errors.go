package queue

import (
	"errors"
	"fmt"
)

// Errors callers branch on. A failed request's error (Manager.Wait,
// Record.Err) is a *RequestError that matches one of ErrExpired,
// ErrCancelled, ErrNotWoken, ErrUnknownOutcome or ErrExecutor with
// errors.Is.
var (
	// ErrQueueFull: Enqueue over a per-device or total bound (*FullError).
	ErrQueueFull = errors.New("queue: queue full")
	// ErrExpired: the request's expiry passed before it was sent.
	ErrExpired = errors.New("queue: request expired")
	// ErrCancelled: the request was cancelled by Cancel.
	ErrCancelled = errors.New("queue: request cancelled")
	// ErrNotWoken: the device did not show up after the allowed SMS
	// wake-ups, or could not be woken at all (budget, configuration).
	ErrNotWoken = errors.New("queue: device not woken")
	// ErrUnknownOutcome: a non-idempotent request may have run on the
	// device, but its answer was lost and the CoAP deduplication window
	// that would make a re-send safe has passed; it is not sent again.
	ErrUnknownOutcome = errors.New("queue: outcome unknown")
	// ErrExecutor: the executor failed the request (a transport or
	// protocol error other than the device being asleep).
	ErrExecutor = errors.New("queue: executor error")
	// ErrNotFound: no request with that id (never existed, or pruned
	// after the result retention).
	ErrNotFound = errors.New("queue: no such request")
	// ErrNotOwner: a shared Store refused a Put because the record is
	// already final or is being sent by another node (it holds the
	// request's lease). The Manager leaves the request to that node.
	ErrNotOwner = errors.New("queue: request is final or leased by another node")
	// ErrClosed: the Manager or Store is closed.
	ErrClosed = errors.New("queue: closed")
	// ErrNotCreated: a zero Manager or BoltStore (not made by New,
	// OpenBoltStore or NewBoltStore), which behaves as a closed one (it
	// matches ErrClosed too), or a zero SMS waker (lwm2m/smswake: no
	// Conn, no Endpoint).
	ErrNotCreated = fmt.Errorf("%w: zero value, not made by New, OpenBoltStore, NewBoltStore or smswake.New", ErrClosed)
	// ErrInvalidRequest: Enqueue of a request without endpoint, with an
	// unknown kind, or with a past expiry.
	ErrInvalidRequest = errors.New("queue: invalid request")
	// ErrInvalidOption is wrapped by New's error for a Config field out
	// of its range (a negative limit or duration, a Wake.Factor below 1).
	// The same name is used in every package of the module.
	ErrInvalidOption = errors.New("queue: invalid option")
	// ErrInvalidConfig is the old name of ErrInvalidOption.
	//
	// Deprecated: use ErrInvalidOption.
	ErrInvalidConfig = ErrInvalidOption
	// ErrTooManyDevices: the device table is at Config.MaxDevices.
	ErrTooManyDevices = errors.New("queue: too many devices")
	// ErrDeviceAsleep is returned (wrapped) by an Executor when the device
	// did not answer because it went back to sleep; a timeout error
	// (net.Error with Timeout() true, or context.DeadlineExceeded from the
	// executor's own deadline) is taken the same way. The request goes
	// back to the head of its queue.
	ErrDeviceAsleep = errors.New("queue: device asleep")
	// ErrNotDelivered is wrapped, together with ErrDeviceAsleep, by an
	// Executor that knows its request never reached the device (it went
	// out once and an ICMP port unreachable came back for it). The
	// request goes back to the queue as not sent at all: the next send is
	// a new attempt, and a non-idempotent request is not failed with
	// ErrUnknownOutcome however late the device wakes.
	ErrNotDelivered = errors.New("queue: request not delivered")
	// ErrUnprotectedTrigger: the SMS waker refused to send a trigger to
	// a device whose SMS binding is secured (DTLS or OSCORE) because the
	// trigger would have gone out unprotected (no Endpoint carrying the
	// device's security, or one without the device's OSCORE context). A
	// secured peer is never downgraded to a NoSec trigger; the refusal
	// costs no SMS, is permanent for the wake-up (ErrNotWoken) and is
	// counted (smswake.Waker.Refused, Manager metric
	// "wake_refused_unprotected").
	ErrUnprotectedTrigger = errors.New("queue: SMS trigger refused: the device's SMS binding is secured and the trigger would go out unprotected")
	// ErrWakeRefused is matched by a Waker's error that retrying later
	// will not cure (see RefuseWake): for the SMS waker, the day's budget
	// spent, a number the SMS bearer does not know, a trigger the peer's
	// security mode refuses. The Manager gives such a wake-up up at once:
	// the device's requests fail with ErrNotWoken.
	ErrWakeRefused = errors.New("queue: wake-up refused")
	// ErrCorrupt: a stored record does not decode.
	ErrCorrupt = errors.New("queue: corrupt record")
)

// FullError says which bound refused an Enqueue. It matches ErrQueueFull.
type FullError struct {
	Endpoint string
	// Scope is "device" or "total"; What is "count" or "bytes".
	Scope, What string
	Limit       int64
}

func (e *FullError) Error() string {
	return fmt.Sprintf("queue: queue full: %s %s limit %d reached (endpoint %q)", e.Scope, e.What, e.Limit, e.Endpoint)
}

// Is makes errors.Is(err, ErrQueueFull) true.
func (e *FullError) Is(target error) bool { return target == ErrQueueFull }

// ErrKind classifies a failed request.
type ErrKind uint8

// Failure kinds, stored with the record.
const (
	ErrKindNone ErrKind = iota
	ErrKindExpired
	ErrKindCancelled
	ErrKindNotWoken
	ErrKindUnknownOutcome
	ErrKindExecutor
	errKindEnd
)

func (k ErrKind) sentinel() error {
	switch k {
	case ErrKindExpired:
		return ErrExpired
	case ErrKindCancelled:
		return ErrCancelled
	case ErrKindNotWoken:
		return ErrNotWoken
	case ErrKindUnknownOutcome:
		return ErrUnknownOutcome
	case ErrKindExecutor:
		return ErrExecutor
	}
	return nil
}

// RequestError is the error a request ended with.
type RequestError struct {
	ID       uint64
	Endpoint string
	Kind     ErrKind
	// Msg is the detail (the executor's or waker's error text).
	Msg string
	// Cause is the original error while the Manager that saw it runs
	// (e.g. a *NotWokenError wrapping an sms.BudgetError); it is not
	// persisted, so after a restart only Msg remains.
	Cause error
}

func (e *RequestError) Error() string {
	s := fmt.Sprintf("request %d for %q", e.ID, e.Endpoint)
	if base := e.Kind.sentinel(); base != nil {
		s += ": " + base.Error()
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is matches the sentinel of the error's kind.
func (e *RequestError) Is(target error) bool {
	return target != nil && target == e.Kind.sentinel()
}

// Unwrap returns Cause.
func (e *RequestError) Unwrap() error { return e.Cause }

// NotWokenError is the cause of ErrNotWoken failures: how many wake-ups
// were sent and the last waker error (e.g. an sms.BudgetError). It matches
// ErrNotWoken and unwraps to the cause.
type NotWokenError struct {
	Endpoint string
	Wakes    int
	Cause    error
}

func (e *NotWokenError) Error() string {
	s := fmt.Sprintf("queue: device %q not woken after %d wake-up(s)", e.Endpoint, e.Wakes)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrNotWoken) true.
func (e *NotWokenError) Is(target error) bool { return target == ErrNotWoken }

// Unwrap returns the last waker error.
func (e *NotWokenError) Unwrap() error { return e.Cause }
