package queue

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Kind is the LwM2M operation of a queued request.
type Kind uint8

// The device-management and information-reporting operations a request may
// carry (LwM2M 1.1/1.2 Core: Device Management and Information Reporting
// interfaces).
const (
	KindRead Kind = iota + 1
	KindWrite
	KindWritePartial
	KindWriteAttributes
	KindDiscover
	KindExecute
	KindCreate
	KindDelete
	KindObserve
	KindCancelObserve
	KindReadComposite
	KindWriteComposite
	kindEnd
)

var kindNames = [...]string{
	KindRead: "read", KindWrite: "write", KindWritePartial: "write-partial",
	KindWriteAttributes: "write-attributes", KindDiscover: "discover",
	KindExecute: "execute", KindCreate: "create", KindDelete: "delete",
	KindObserve: "observe", KindCancelObserve: "cancel-observe",
	KindReadComposite: "read-composite", KindWriteComposite: "write-composite",
}

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k >= KindRead && k < kindEnd }

// String returns the operation name, e.g. "write-partial".
func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Idempotent reports whether running the operation twice on a device leaves
// it as running it once did: Read, Discover, Write (replace),
// Write-Attributes, Delete, Cancel-Observe and Read-Composite. Execute,
// Create, Write-Partial (which may append instances), Write-Composite and
// Observe (a second observation) are not. The drain re-sends an idempotent
// request whose first outcome is unknown even outside the CoAP
// deduplication window; a non-idempotent one then fails with
// ErrUnknownOutcome instead (see Manager).
func (k Kind) Idempotent() bool {
	switch k {
	case KindRead, KindDiscover, KindWrite, KindWriteAttributes, KindDelete,
		KindCancelObserve, KindReadComposite:
		return true
	}
	return false
}

// State is where a request is in its life. Queued and Sending are live;
// the others are final and reported exactly once.
type State uint8

// Request states.
const (
	StateQueued State = iota + 1
	StateSending
	StateDone
	StateFailed
	StateExpired
	StateCancelled
	stateEnd
)

var stateNames = [...]string{
	StateQueued: "queued", StateSending: "sending", StateDone: "done",
	StateFailed: "failed", StateExpired: "expired", StateCancelled: "cancelled",
}

// String returns the state name.
func (s State) String() string {
	if s >= StateQueued && s < stateEnd {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Final reports whether s is a final state.
func (s State) Final() bool { return s >= StateDone && s < stateEnd }

// NoContentFormat marks a request or result without a payload format.
const NoContentFormat = -1

// Request is an LwM2M operation for one endpoint, as the caller gives it to
// Manager.Enqueue.
type Request struct {
	// Endpoint is the LwM2M endpoint client name. Required.
	Endpoint string
	// Kind is the operation. Required.
	Kind Kind
	// Paths are the LwM2M paths ("/3/0/1"); one for most operations,
	// several for the composite ones.
	Paths []string
	// Payload and ContentFormat (a CoAP Content-Format number, or
	// NoContentFormat) of Write, Create, Execute arguments, etc.
	Payload       []byte
	ContentFormat int32
	// Args are operation arguments that are not the payload: the
	// Write-Attributes query ("pmin=10&pmax=60"), an Accept format.
	Args string
	// Expires is when the request stops being worth sending. The zero
	// time means Config.DefaultExpiry after creation.
	Expires time.Time
	// Meta is opaque caller metadata (operator, job, webhook id) kept with
	// the request and its result.
	Meta map[string]string

	// Set by the Manager:

	// ID is the durable, monotonic request id.
	ID uint64
	// Created is when the request was accepted.
	Created time.Time
	// Attempt is the attempt token of the current send (see Attempt).
	Attempt Attempt
}

// Attempt names one send of a request to the device. The executor turns it
// into the CoAP token and message ID of the request it sends, so that a
// re-send of the same attempt is a CoAP duplicate the device's message
// layer answers from its cache without running the operation again (RFC
// 7252 §4.5).
//
// The zero Attempt maps to message ID 0 and an all-zero token.
type Attempt struct {
	// ID is the request id.
	ID uint64
	// N numbers the attempt, from 1. It grows only when the drain decides a
	// fresh send is safe (an idempotent request outside the dedup window).
	N uint32
}

// Token returns an 8-byte CoAP token unique to the attempt: the request id
// in the high 48 bits and the attempt number in the low 16.
func (a Attempt) Token() []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], a.ID<<16|uint64(a.N&0xffff))
	return b[:]
}

// MessageID returns a CoAP message ID derived from the attempt (a 16-bit
// mix of id and attempt number). An executor that uses it for the first
// transmission of the attempt makes a resend after a server crash carry the
// same message ID, so the device's duplicate detection matches on it.
func (a Attempt) MessageID() uint16 {
	x := a.ID<<16 | uint64(a.N&0xffff)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return uint16(x)
}

// Result is what a request ended with.
type Result struct {
	// Code is the CoAP response code of the device's answer (e.g. 0x45 for
	// 2.05 Content); 0 when the request did not reach an answer.
	Code uint8
	// ContentFormat and Payload of the answer.
	ContentFormat int32
	Payload       []byte
}

// Record is a request as the Store keeps it: the request, its state, its
// result and the bookkeeping of the drain.
//
// The zero Record is request 0 of no device, in no valid state
// (State 0), with no result.
type Record struct {
	Request
	State State
	// SendingSince is when the current attempt was first sent (zero if
	// never sent).
	SendingSince time.Time
	// Result is set in StateDone.
	Result *Result
	// ErrKind and ErrMsg describe the failure of a failed, expired or
	// cancelled request; Err rebuilds the typed error.
	ErrKind ErrKind
	ErrMsg  string
	// Finished is when the record reached its final state.
	Finished time.Time
}

// Err returns the typed error of a record in a final state other than
// done, or nil.
func (r *Record) Err() error {
	if r.State == StateDone || !r.State.Final() {
		return nil
	}
	return &RequestError{ID: r.ID, Endpoint: r.Endpoint, Kind: r.ErrKind, Msg: r.ErrMsg}
}
