package sms

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Errors of the SMS bearer that callers branch on.
var (
	// ErrUnknownPeer: WriteTo to a number with no peer configuration. The
	// LwM2M SMS binding only talks to numbers it was provisioned with.
	ErrUnknownPeer = errors.New("sms: peer not configured")
	// ErrBudgetExceeded is matched (errors.Is) by *BudgetError.
	ErrBudgetExceeded = errors.New("sms: SMS budget exceeded")
	// ErrRateLimited is matched by *RateError.
	ErrRateLimited = errors.New("sms: rate limit")
	// ErrSecurityMode: a datagram does not match the peer's security mode
	// (plain CoAP to or from a DTLS peer, or DTLS records for a NoSec peer).
	ErrSecurityMode = errors.New("sms: datagram does not match the peer's security mode")
	// ErrTooManyPeers: AddPeer over Config.MaxPeers.
	ErrTooManyPeers = errors.New("sms: too many peers")
	// ErrLoop is matched by *LoopError.
	ErrLoop = errors.New("sms: loop of identical SMS refused")
	// ErrNotCreated is wrapped by the errors of a zero Bearer or
	// BoltState (not made by New or OpenBoltState). It matches
	// net.ErrClosed too: a zero value behaves as a closed one.
	ErrNotCreated = fmt.Errorf("%w: zero value, not made by New or OpenBoltState", net.ErrClosed)
	// ErrInvalidOption is wrapped by New's error for a Config that cannot
	// work: no Transport or StateDir, a negative size, count, rate or
	// duration, a BudgetWarnRatio above 1, invalid Params, Submit options,
	// Reassembly or Worker fields. The error names every such field.
	ErrInvalidOption = errors.New("sms: invalid option")
)

// BudgetError says which daily SMS budget a send would exceed.
type BudgetError struct {
	Scope string // "device" or "deployment"
	Peer  string
	Limit int // segments a day
	Used  int // already spent today
	Need  int // segments the datagram needs
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("sms: %s daily budget exceeded for %s: %d of %d SMS used, %d more needed",
		e.Scope, e.Peer, e.Used, e.Limit, e.Need)
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }

// RateError says a per-destination rate limit refused a send; it is
// temporary.
type RateError struct {
	Peer       string
	RetryAfter time.Duration
}

func (e *RateError) Error() string {
	return fmt.Sprintf("sms: rate limit for %s, retry after %v", e.Peer, e.RetryAfter.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateError) Is(target error) bool { return target == ErrRateLimited }

// Temporary reports true: the same send may succeed later.
func (e *RateError) Temporary() bool { return true }

// Timeout reports false.
func (e *RateError) Timeout() bool { return false }

// LoopError refuses a send that repeats the same datagram to one peer more
// than Config.LoopMax times within Config.LoopWindow (a device refused
// over and over, a relay in a loop). It is not temporary: the loop must be
// broken, not retried.
type LoopError struct {
	Peer   string
	Count  int
	Window time.Duration
}

func (e *LoopError) Error() string {
	return fmt.Sprintf("sms: loop refused: datagram sent to %s %d times within %v", e.Peer, e.Count, e.Window)
}

// Is makes errors.Is(err, ErrLoop) true.
func (e *LoopError) Is(target error) bool { return target == ErrLoop }
