package bearer

import (
	"net"
	"sync"
)

// Steer moves a confirmable request while it is in flight: Resend sends it
// again at once, to the peer's new address if it changed, and Abort ends
// it. Give it to Endpoint.Do with Request.SetSteer.
//
// It exists for peers that sleep and wake up, such as LwM2M devices in
// queue mode: the device's first message after it woke (a Register, an
// Update, from the same or a new port) says it listens now, long before
// the request's next retransmission would be due, and the retransmissions
// must follow it to its new port. A re-send carries the same message ID
// and token: if the peer had received an earlier transmission it answers
// this one from its duplicate cache without running the request again
// (RFC 7252 §4.5). After a re-send the retransmission schedule starts
// afresh (ACK_TIMEOUT, then doubling, MAX_RETRANSMIT times, giving up
// MAX_TRANSMIT_WAIT after the re-send). A re-send after the peer's empty
// ACK does nothing: the request arrived and only the separate response is
// awaited.
//
// A Steer is for one Do call at a time; its methods never block and may be
// called from any goroutine, also before Do or after it returned (then
// they do nothing to that Do). A request sent block-wise (Block1, and the
// Block2 requests that fetch the rest of a response) is steered block by
// block: the block on the wire is re-sent or aborted, and the blocks after
// it go to the address of the last re-send.
//
// The zero Steer is ready to use, as NewSteer's.
type Steer struct {
	mu     sync.Mutex
	resend bool
	to     net.Addr
	abort  error
	sig    chan struct{} // made on first use: the zero Steer works
}

// NewSteer returns a Steer.
func NewSteer() *Steer { return &Steer{sig: make(chan struct{}, 1)} }

// signals returns the channel that wakes the exchange, making it for a
// zero Steer.
func (s *Steer) signals() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sig == nil {
		s.sig = make(chan struct{}, 1)
	}
	return s.sig
}

// Resend asks the exchange to transmit its request again now, to peer
// (nil: to the address of its last transmission). Calls that come before
// the exchange acts coalesce; the last address wins.
func (s *Steer) Resend(peer net.Addr) {
	s.mu.Lock()
	s.resend = true
	if peer != nil {
		s.to = peer
	}
	s.mu.Unlock()
	s.signal()
}

// Abort ends the exchange at once: Do returns an *AbortError wrapping err
// (which must not be nil). It wins over a pending Resend.
func (s *Steer) Abort(err error) {
	s.mu.Lock()
	s.abort = err
	s.mu.Unlock()
	s.signal()
}

func (s *Steer) signal() {
	select {
	case s.signals() <- struct{}{}:
	default:
	}
}

// AbortError is what Endpoint.Do returns for a request ended by
// Steer.Abort: the caller's error, and what had happened on the wire. A
// request transmitted once and never acknowledged, whose only
// transmission is known not to have arrived (an ICMP port unreachable for
// it), was certainly not delivered.
type AbortError struct {
	Err error
	// Transmissions is how many times the message on the wire when it
	// was aborted had been sent (1: never retransmitted nor re-sent).
	Transmissions int
	// Acked: the peer had acknowledged it (it arrived).
	Acked bool
	// Blocks is how many earlier blocks of a block-wise request had
	// been exchanged before (0 for a request sent whole).
	Blocks int
}

func (e *AbortError) Error() string {
	if e.Err == nil {
		return "bearer: exchange aborted"
	}
	return e.Err.Error()
}

// Unwrap returns the caller's error.
func (e *AbortError) Unwrap() error { return e.Err }

// take returns and clears what was asked since the last take.
func (s *Steer) take() (resend bool, to net.Addr, abort error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resend, to, abort = s.resend, s.to, s.abort
	s.resend, s.to, s.abort = false, nil, nil
	return resend, to, abort
}

// rekey moves exchange ex to peer: its message-ID and token entries are
// re-filed under the new address, so the answer from there matches. It
// fails (and leaves ex where it was) when another exchange to peer uses
// the same message ID or token.
func (e *Endpoint) rekey(ex *exchange, peer net.Addr) bool {
	pkey := AddrKey(peer)
	e.exMu.Lock()
	defer e.exMu.Unlock()
	if pkey == ex.pkey {
		return true
	}
	nmk := midKey{pkey, ex.mid}
	if other, busy := e.byMID[nmk]; busy && other != ex {
		return false
	}
	ntk := tokenKey{pkey, ex.token}
	if ex.token != "" {
		if other, busy := e.byToken[ntk]; busy && other != ex {
			return false
		}
	}
	omk := midKey{ex.pkey, ex.mid}
	if cur, ok := e.byMID[omk]; ok && cur == ex {
		delete(e.byMID, omk)
		e.byMID[nmk] = ex
	}
	if ex.token != "" {
		otk := tokenKey{ex.pkey, ex.token}
		if cur, ok := e.byToken[otk]; ok && cur == ex {
			delete(e.byToken, otk)
		}
		e.byToken[ntk] = ex
	}
	ex.peer, ex.pkey = peer, pkey
	return true
}
