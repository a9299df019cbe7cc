package sms

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/deadline"
)

// DTLSView is the part of a Bearer that carries its DTLS peers, when
// Config.SplitDTLS is set: a bearer.Bearer for a bearer/secure Server,
// while the Bearer itself carries the NoSec and OSCORE peers (plain CoAP
// on the SMS) for a CoAP Endpoint.
//
// Datagrams are routed by the sender's configured Peer.Security, never by
// their content: a datagram from a DTLS peer comes here, any other to
// Bearer.ReadFrom. Content is still checked against the mode first, so a
// peer configured for DTLS that sends plain CoAP is dropped and counted
// (Stats.DroppedSecurity) before any routing, and a NoSec peer's DTLS
// record likewise. WriteTo sends only to DTLS peers (others:
// ErrSecurityMode); the Bearer's own WriteTo refuses DTLS peers when it is
// split.
//
// Close ends the view only (the Bearer's Close ends both): datagrams of
// DTLS peers that arrive afterwards stay in the bearer's inbox store, not
// handed on (Stats.HeldForRestart), and are replayed at the next start.
// The zero DTLSView is closed; Bearer.DTLS makes the real one.
type DTLSView struct {
	b    *Bearer
	q    chan received
	rd   *deadline.Deadline
	done chan struct{}
	once sync.Once
}

var (
	_ bearer.Bearer        = (*DTLSView)(nil)
	_ bearer.PurposeHinter = (*DTLSView)(nil)
)

func newDTLSView(b *Bearer, n int) *DTLSView {
	return &DTLSView{b: b, q: make(chan received, n), rd: deadline.New(), done: make(chan struct{})}
}

// DTLS returns the view of the Bearer's DTLS peers, or nil when
// Config.SplitDTLS is not set.
func (b *Bearer) DTLS() *DTLSView { return b.dtls }

// queueFor returns the queue a datagram from a peer in mode sec goes to,
// and a channel closed when that queue's reader is gone (nil: never).
func (b *Bearer) queueFor(sec Mode) (chan received, <-chan struct{}) {
	if b.dtls != nil && sec == ModeDTLS {
		return b.dtls.q, b.dtls.done
	}
	return b.readq, nil
}

// isSplitDTLS reports whether writes to a peer in mode sec belong to the
// DTLS view rather than to the Bearer.
func (b *Bearer) isSplitDTLS(sec Mode) bool { return b.dtls != nil && sec == ModeDTLS }

// Params returns the Bearer's parameters (zero for a zero view).
func (v *DTLSView) Params() bearer.Params {
	if v.b == nil {
		return bearer.Params{}
	}
	return v.b.params
}

// LocalAddr returns the Bearer's local address.
func (v *DTLSView) LocalAddr() net.Addr {
	if v.b == nil {
		return Addr{}
	}
	return v.b.local
}

// ReadFrom returns the next datagram (a DTLS record) from a DTLS peer.
func (v *DTLSView) ReadFrom(p []byte) (int, net.Addr, error) {
	if v.b == nil {
		return 0, nil, &net.OpError{Op: "read", Net: Network, Err: net.ErrClosed}
	}
	select {
	case r := <-v.q:
		n := copy(p, r.data)
		if n < len(r.data) {
			return n, r.from, v.b.opErr("read", r.from, io.ErrShortBuffer)
		}
		return n, r.from, nil
	case <-v.done:
		return 0, nil, v.b.opErr("read", nil, net.ErrClosed)
	case <-v.b.ctx.Done():
		return 0, nil, v.b.opErr("read", nil, net.ErrClosed)
	case <-v.rd.Wait():
		return 0, nil, v.b.opErr("read", nil, os.ErrDeadlineExceeded)
	}
}

// WriteTo sends a DTLS record to a DTLS peer through the Bearer (durable
// outbox, budgets, accounting). A peer configured otherwise gets
// ErrSecurityMode; the other errors are Bearer.WriteTo's.
func (v *DTLSView) WriteTo(p []byte, addr net.Addr) (int, error) {
	if v.b == nil {
		return 0, &net.OpError{Op: "write", Net: Network, Addr: addr, Err: net.ErrClosed}
	}
	select {
	case <-v.done:
		return 0, v.b.opErr("write", addr, net.ErrClosed)
	default:
	}
	return v.b.writeTo(p, addr, time.Time{}, true)
}

// HintPurpose passes bearer/secure's purpose hints to the Bearer's
// accounting.
func (v *DTLSView) HintPurpose(addr net.Addr, received bool, p bearer.Purpose) {
	if v.b != nil {
		v.b.HintPurpose(addr, received, p)
	}
}

// SetDeadline sets the read deadline.
func (v *DTLSView) SetDeadline(t time.Time) error { return v.SetReadDeadline(t) }

// SetReadDeadline sets the deadline of ReadFrom.
func (v *DTLSView) SetReadDeadline(t time.Time) error {
	if v.rd != nil {
		v.rd.Set(t)
	}
	return nil
}

// SetWriteDeadline is accepted and ignored, as on the Bearer.
func (v *DTLSView) SetWriteDeadline(time.Time) error { return nil }

// Close ends the view (not the Bearer).
func (v *DTLSView) Close() error {
	if v.done != nil {
		v.once.Do(func() { close(v.done) })
	}
	return nil
}

// modeError is the error of a write to a peer whose mode belongs to the
// other side of a split Bearer.
func modeError(sec Mode, view bool) error {
	if view {
		return fmt.Errorf("%w: peer mode %s, not dtls (write it through the Bearer)", ErrSecurityMode, sec)
	}
	return fmt.Errorf("%w: peer mode dtls (write it through Bearer.DTLS())", ErrSecurityMode)
}

// PeerMode returns the configured security mode of the peer at addr (an
// Addr or any address whose String is its number, such as a security
// layer's), and whether it is a peer at all.
func (b *Bearer) PeerMode(addr net.Addr) (Mode, bool) {
	a, err := toAddr(addr, b.parse)
	if err != nil {
		return 0, false
	}
	p, ok := b.peer(a)
	return p.Security, ok
}

// Backlog is the Bearer's (bearer.Backlogger): datagrams to peer still in
// the outbox.
func (v *DTLSView) Backlog(peer net.Addr) int {
	if v.b == nil {
		return 0
	}
	return v.b.Backlog(peer)
}

// LastHeard is the Bearer's (bearer.PeerActivity).
func (v *DTLSView) LastHeard(peer net.Addr) time.Time {
	if v.b == nil {
		return time.Time{}
	}
	return v.b.LastHeard(peer)
}

var (
	_ bearer.Backlogger   = (*DTLSView)(nil)
	_ bearer.PeerActivity = (*DTLSView)(nil)
)
