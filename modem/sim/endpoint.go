package sim

import (
	"context"
	"fmt"
	"sync"
)

// EndpointMessage is a message the network hands to an Endpoint.
type EndpointMessage struct {
	// TPDU is an SMS-DELIVER or, when StatusReport is set, an
	// SMS-STATUS-REPORT, without SMSC prefix.
	TPDU         []byte
	StatusReport bool
}

// Endpoint is a subscriber without a modem: a number that sends and
// receives TPDUs directly. It costs no goroutine, so a fleet of thousands of
// simulated devices can sit on one network next to a few AT modems.
// The zero Endpoint is not usable (use Network.AddEndpoint): Send fails
// with ErrNotCreated.
type Endpoint struct {
	n       *Network
	msisdn  string
	handler func(EndpointMessage) bool

	mu       sync.Mutex
	mr       byte
	attached bool
}

// AddEndpoint adds a subscriber owning msisdn. handler is called, from the
// network's timer goroutine, for each message; it must not block, and it
// returns false to refuse the message (the SMSC then retries later, as for
// a phone whose memory is full). The endpoint starts attached.
func (n *Network) AddEndpoint(msisdn string, handler func(EndpointMessage) bool) (*Endpoint, error) {
	e := &Endpoint{n: n, msisdn: NormalizeMSISDN(msisdn), handler: handler, attached: true}
	if err := n.register(e.msisdn, e); err != nil {
		return nil, err
	}
	n.ready(e.msisdn)
	return e, nil
}

// MSISDN returns the endpoint's number.
func (e *Endpoint) MSISDN() string { return e.msisdn }

// SetAttached attaches or detaches the endpoint; messages for a detached
// endpoint wait in the SMSC.
func (e *Endpoint) SetAttached(on bool) {
	e.mu.Lock()
	e.attached = on
	e.mu.Unlock()
	if on && e.n != nil {
		e.n.ready(e.msisdn)
	}
}

// Send submits an SMS-SUBMIT TPDU (no SMSC prefix). The endpoint assigns
// TP-MR, as a mobile station does, and returns it.
func (e *Endpoint) Send(ctx context.Context, tpdu []byte) (uint8, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if e.n == nil {
		return 0, ErrNotCreated
	}
	if len(tpdu) < 2 {
		return 0, fmt.Errorf("%w: %d octets", ErrBadPDU, len(tpdu))
	}
	b := append([]byte(nil), tpdu...)
	e.mu.Lock()
	mr := e.mr
	e.mr++
	e.mu.Unlock()
	b[1] = mr
	if err := e.n.submit(e.msisdn, b); err != nil {
		return 0, err
	}
	return mr, nil
}

// offer implements subscriber.
func (e *Endpoint) offer(m *mtMessage) bool {
	e.mu.Lock()
	on := e.attached
	e.mu.Unlock()
	if !on || e.handler == nil {
		return false
	}
	if !e.handler(EndpointMessage{TPDU: append([]byte(nil), m.tpdu...), StatusReport: m.kind == kindStatusReport}) {
		return false
	}
	m.done(true)
	return true
}
