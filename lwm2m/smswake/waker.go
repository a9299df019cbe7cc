package smswake

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// Firer sends a NON request without waiting for its answer and matches a
// late answer instead of resetting it; *bearer.Endpoint implements it
// (Endpoint.Fire).
type Firer interface {
	Fire(ctx context.Context, req *bearer.Request, keep time.Duration) error
}

// PeerSetter configures SMS peers; *sms.Bearer implements it.
type PeerSetter interface {
	AddPeer(number string, p sms.Peer) error
}

// Waker is the queue.Waker that sends the trigger over an SMS bearer (an
// *sms.Bearer, or anything that writes datagrams to sms.Addr). The peer's
// framing on the bearer decides raw CoAP or WAP Push; with Peers set, the
// waker first configures the peer as NoSec (LwM2M allows unsecured SMS
// triggers where configured) with the target's framing and SIM, unless
// the peer is configured for DTLS or OSCORE already (Peers that tell, as
// *sms.Bearer does: a secured peer is never downgraded).
//
// A device that talks DTLS or OSCORE over SMS refuses an unprotected
// trigger, and sending it one would downgrade a secured peer: set Endpoint
// to the Endpoint whose bearer carries that security for the device
// (smsgw: its SMS Endpoint, over OSCORE contexts bound to the devices'
// numbers and the DTLS server), so the trigger is an OSCORE-protected
// request (one SMS: the protected Execute with its No-Response option
// fits one segment) or goes through the device's DTLS session (a DTLS
// server cannot start a handshake: without a live session the Endpoint
// fails the write, nothing is sent, and the Manager retries the wake-up
// later). Without Endpoint, a trigger to a peer that Conn or Peers report
// as DTLS or OSCORE (PeerMode, as *sms.Bearer does) is not written at
// all; a write the bearer refuses for its security mode
// (sms.ErrSecurityMode: no OSCORE context for the number on the
// Endpoint's path) is the same case. Both fail with
// queue.ErrUnprotectedTrigger (which wraps sms.ErrSecurityMode), cost no
// SMS and are counted (Refused).
//
// With Endpoint set (the server's SMS Endpoint, or the one over DTLS) the
// trigger goes through it (Firer), so that the answer of a device that
// ignores the No-Response option is matched and dropped rather than reset:
// a wake-up then costs one SMS, or two with such a device, never three.
//
// The zero Waker has neither: Wake fails with queue.ErrNotCreated (use
// New or set Conn or Endpoint).
type Waker struct {
	Conn     net.PacketConn
	Peers    PeerSetter
	Endpoint Firer
	mid      atomic.Uint32
	refused  atomic.Uint64
}

var _ queue.Waker = (*Waker)(nil)

// New returns a waker writing to conn; peers may be nil.
func New(conn net.PacketConn, peers PeerSetter) *Waker {
	w := &Waker{Conn: conn, Peers: peers}
	var b [2]byte
	_, _ = rand.Read(b[:])
	w.mid.Store(uint32(b[0])<<8 | uint32(b[1]))
	return w
}

// Refused returns how many triggers the waker refused because they would
// have gone unprotected to a secured peer (queue.ErrUnprotectedTrigger).
func (w *Waker) Refused() uint64 { return w.refused.Load() }

// Wake implements queue.Waker. Errors of the bearer (sms.ErrBudgetExceeded,
// sms.ErrRateLimited, sms.ErrUnknownPeer) are wrapped, so callers branch
// on them with errors.Is; those retrying will not cure (budget exceeded,
// unknown peer, security mode) also match queue.ErrWakeRefused, which
// the Manager takes as final.
func (w *Waker) Wake(ctx context.Context, ep string, t queue.WakeTarget) error {
	err := w.wake(ctx, ep, t)
	if errors.Is(err, sms.ErrBudgetExceeded) || errors.Is(err, sms.ErrUnknownPeer) || errors.Is(err, sms.ErrSecurityMode) {
		return queue.RefuseWake(err)
	}
	return err
}

func (w *Waker) wake(ctx context.Context, ep string, t queue.WakeTarget) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.Conn == nil && w.Endpoint == nil {
		return fmt.Errorf("smswake: Waker without Conn or Endpoint: %w", queue.ErrNotCreated)
	}
	addr, err := sms.ParseMSISDN(t.MSISDN)
	if err != nil {
		return fmt.Errorf("%w: %w", queue.ErrBadTarget, err)
	}
	secured := securedPeer(w.Peers, addr) || securedPeer(w.Conn, addr)
	if w.Endpoint == nil && secured {
		return w.unprotected(ep, addr, fmt.Errorf("%w: the peer is secured and the waker has no Endpoint to protect the trigger", sms.ErrSecurityMode))
	}
	if w.Peers != nil && !secured {
		if err := w.Peers.AddPeer(addr.String(), sms.Peer{Security: sms.ModeNoSec, SIM: t.SIM, Framing: Framing(t)}); err != nil {
			return fmt.Errorf("smswake: wake %s: configure peer: %w", ep, err)
		}
	}
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	if w.Endpoint != nil {
		req, err := queue.TriggerRequest(t, token)
		if err != nil {
			return err
		}
		req.Peer = addr
		if err := w.Endpoint.Fire(ctx, req, 0); err != nil {
			if errors.Is(err, sms.ErrSecurityMode) {
				return w.unprotected(ep, addr, err)
			}
			return fmt.Errorf("smswake: wake %s via %s: %w", ep, addr, err)
		}
		return nil
	}
	msg, err := queue.TriggerMessage(t, uint16(w.mid.Add(1)), token)
	if err != nil {
		return err
	}
	if dw, ok := w.Conn.(bearer.DeadlineWriter); ok && !t.Deadline.IsZero() {
		_, err = dw.WriteToBefore(msg, addr, t.Deadline)
	} else {
		_, err = w.Conn.WriteTo(msg, addr)
	}
	if errors.Is(err, sms.ErrSecurityMode) {
		return w.unprotected(ep, addr, err)
	}
	if err != nil {
		return fmt.Errorf("smswake: wake %s via %s: %w", ep, addr, err)
	}
	return nil
}

// unprotected counts and returns the refusal of a trigger to addr.
func (w *Waker) unprotected(ep string, addr sms.Addr, cause error) error {
	w.refused.Add(1)
	return fmt.Errorf("%w: wake %s via %s: %w", queue.ErrUnprotectedTrigger, ep, addr, cause)
}

// Framing is the SMS framing of t's trigger: WAP Push when t.WAPPush,
// raw CoAP otherwise.
func Framing(t queue.WakeTarget) sms.Framing {
	if t.WAPPush {
		return sms.FramingWAPPush
	}
	return sms.FramingCoAP
}

// securedPeer reports whether peers (a PeerSetter or the Conn) has addr
// as a DTLS or OSCORE peer (*sms.Bearer tells, PeerMode): the waker never
// turns such a peer into a NoSec one, and sends its trigger only through
// Endpoint, under the peer's security.
func securedPeer(peers any, addr sms.Addr) bool {
	pm, ok := peers.(interface {
		PeerMode(net.Addr) (sms.Mode, bool)
	})
	if !ok {
		return false
	}
	mode, known := pm.PeerMode(addr)
	return known && mode != sms.ModeNoSec
}
