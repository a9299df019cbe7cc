package queue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// WakeTarget says how to wake one device by SMS. The zero WakeTarget
// names no number: Wake fails with ErrBadTarget.
type WakeTarget struct {
	// MSISDN is the device's number (any form sms.ParseMSISDN accepts;
	// the "sms=" registration parameter or configuration).
	MSISDN string
	// Version is the device's LwM2M version: "1.0", "1.1" or "1.2".
	Version string
	// Binding is the registered binding. LwM2M 1.0 devices are wakeable
	// with binding "UQS" (UDP queue mode plus SMS) or "SQ".
	Binding string
	// Trigger is the value of /1/x/21 (LwM2M 1.1/1.2): true lets the server
	// trigger the device over SMS.
	Trigger bool
	// ServerInstance is x in /1/x/8.
	ServerInstance uint16
	// Framing is raw CoAP or WAP Push (LwM2M 1.1 Core appendix).
	Framing sms.Framing
	// TransportArg, if set, is the binding letter ("U", "T", "S" or "N")
	// passed as Execute argument 0 of /1/x/8 (LwM2M 1.1 "0='U'"): the
	// transport the device should send its Update over.
	TransportArg string
	// SIM is the server number the device knows (its SMS is only accepted
	// from it); "" lets the SMS bearer choose.
	SIM string
	// Deadline is the earliest Expires of the device's queued requests, set
	// by the Manager: a wake-up is worth nothing after it, and an SMS
	// bearer that knows it sends the most urgent wake-ups first.
	Deadline time.Time
}

// Wakeable reports whether the LwM2M rules allow an SMS wake-up: a number,
// and binding UQS/SQ (1.0) or Trigger true (1.1, 1.2).
func (t *WakeTarget) Wakeable() bool {
	if t == nil || t.MSISDN == "" {
		return false
	}
	switch t.Version {
	case "1.0":
		b := strings.ToUpper(t.Binding)
		return strings.Contains(b, "S") && strings.Contains(b, "Q")
	case "1.1", "1.2":
		return t.Trigger
	}
	return false
}

// Waker sends a wake-up to a device. Wake returns once the wake-up is
// handed to the bearer (for SMS: stored in the durable outbox); whether
// the device shows up is learned from Manager.Seen.
type Waker interface {
	Wake(ctx context.Context, ep string, t WakeTarget) error
}

// WakerFunc adapts a function to Waker.
type WakerFunc func(ctx context.Context, ep string, t WakeTarget) error

// Wake calls f.
func (f WakerFunc) Wake(ctx context.Context, ep string, t WakeTarget) error { return f(ctx, ep, t) }

// ErrBadTarget is wrapped by errors about an unusable WakeTarget.
var ErrBadTarget = errors.New("queue: bad wake target")

// TriggerArgs returns the Execute argument payload of the Registration
// Update Trigger: "" for none, or "0='U'" for TransportArg "U" (LwM2M 1.1
// Core, Execute operation, argument syntax: arg = DIGIT ["=" "'" *CHAR "'"]).
func TriggerArgs(transport string) (string, error) {
	switch transport {
	case "":
		return "", nil
	case "U", "T", "S", "N":
		return "0='" + transport + "'", nil
	}
	return "", fmt.Errorf("%w: transport argument %q is not one of U, T, S, N", ErrBadTarget, transport)
}

// NoResponseSuccess is the No-Response option value (RFC 7967 §2.1) the
// trigger carries: "not interested in 2.xx responses". The device's
// answer to the trigger is of no use to the server (the device shows up by
// its Update), and on SMS it costs one more message; errors (4.xx, 5.xx)
// are still answered. A device that does not know the option (it is
// elective) answers anyway, and the server's Endpoint.Fire matches that
// answer and drops it without a Reset.
const NoResponseSuccess = 0x02

// triggerMessage returns the trigger as a CoAP message (MID and token
// left to the caller): a NON POST (LwM2M Execute) to /1/<server
// instance>/8 with No-Response 2.xx, carrying the optional transport
// argument as a text/plain payload.
func triggerMessage(t WakeTarget) (message.Message, error) {
	args, err := TriggerArgs(t.TransportArg)
	if err != nil {
		return message.Message{}, err
	}
	buf := make([]byte, 0, 8)
	opts := message.Options{}
	for _, seg := range []string{"1", strconv.Itoa(int(t.ServerInstance)), "8"} {
		opts = opts.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	var payload []byte
	if args != "" {
		payload = []byte(args)
		opts, _, err = opts.SetContentFormat(buf[:cap(buf)], message.TextPlain)
		if err != nil {
			return message.Message{}, fmt.Errorf("queue: trigger options: %w", err)
		}
	}
	opts = opts.Add(message.Option{ID: message.NoResponse, Value: []byte{NoResponseSuccess}})
	return message.Message{Options: opts, Code: codes.POST, Payload: payload, Type: message.NonConfirmable}, nil
}

// TriggerMessage encodes the SMS trigger: a CoAP NON POST (LwM2M Execute)
// to /1/<server instance>/8 with message ID mid and token, the No-Response
// option asking for no success answer (NoResponseSuccess), and the
// optional transport argument as a text/plain payload. The SMS bearer
// frames it as raw CoAP or WAP Push. Encoding is go-coap's udp/coder.
func TriggerMessage(t WakeTarget, mid uint16, token []byte) ([]byte, error) {
	if len(token) > message.MaxTokenSize {
		return nil, fmt.Errorf("%w: token of %d bytes", ErrBadTarget, len(token))
	}
	msg, err := triggerMessage(t)
	if err != nil {
		return nil, err
	}
	msg.Token, msg.MessageID = token, int32(mid)
	size, err := coder.DefaultCoder.Size(msg)
	if err != nil {
		return nil, fmt.Errorf("queue: trigger size: %w", err)
	}
	out := make([]byte, size)
	n, err := coder.DefaultCoder.Encode(msg, out)
	if err != nil {
		return nil, fmt.Errorf("queue: trigger encode: %w", err)
	}
	return out[:n], nil
}

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

// SMSWaker is the Waker that sends the trigger over an SMS bearer (an
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
// Endpoint's path) is the same case. Both fail with ErrUnprotectedTrigger
// (which wraps sms.ErrSecurityMode), cost no SMS and are counted
// (Refused).
//
// With Endpoint set (the server's SMS Endpoint, or the one over DTLS) the
// trigger goes through it (Firer), so that the answer of a device that
// ignores the No-Response option is matched and dropped rather than reset:
// a wake-up then costs one SMS, or two with such a device, never three.
//
// The zero SMSWaker has neither: Wake fails with ErrNotCreated (use
// NewSMSWaker or set Conn or Endpoint).
type SMSWaker struct {
	Conn     net.PacketConn
	Peers    PeerSetter
	Endpoint Firer
	mid      atomic.Uint32
	refused  atomic.Uint64
}

// Refused returns how many triggers the waker refused because they would
// have gone unprotected to a secured peer (ErrUnprotectedTrigger).
func (w *SMSWaker) Refused() uint64 { return w.refused.Load() }

// unprotected counts and returns the refusal of a trigger to addr.
func (w *SMSWaker) unprotected(ep string, addr sms.Addr, cause error) error {
	w.refused.Add(1)
	return fmt.Errorf("%w: wake %s via %s: %w", ErrUnprotectedTrigger, ep, addr, cause)
}

// NewSMSWaker returns a waker writing to conn; peers may be nil.
func NewSMSWaker(conn net.PacketConn, peers PeerSetter) *SMSWaker {
	w := &SMSWaker{Conn: conn, Peers: peers}
	var b [2]byte
	_, _ = rand.Read(b[:])
	w.mid.Store(uint32(b[0])<<8 | uint32(b[1]))
	return w
}

// Wake implements Waker. Errors of the bearer (sms.ErrBudgetExceeded,
// sms.ErrRateLimited, sms.ErrUnknownPeer) are wrapped, so callers and the
// Manager branch on them with errors.Is.
func (w *SMSWaker) Wake(ctx context.Context, ep string, t WakeTarget) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.Conn == nil && w.Endpoint == nil {
		return fmt.Errorf("queue: SMSWaker without Conn or Endpoint: %w", ErrNotCreated)
	}
	addr, err := sms.ParseMSISDN(t.MSISDN)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadTarget, err)
	}
	secured := securedPeer(w.Peers, addr) || securedPeer(w.Conn, addr)
	if w.Endpoint == nil && secured {
		return w.unprotected(ep, addr, fmt.Errorf("%w: the peer is secured and the waker has no Endpoint to protect the trigger", sms.ErrSecurityMode))
	}
	if w.Peers != nil && !secured {
		if err := w.Peers.AddPeer(addr.String(), sms.Peer{Security: sms.ModeNoSec, SIM: t.SIM, Framing: t.Framing}); err != nil {
			return fmt.Errorf("queue: wake %s: configure peer: %w", ep, err)
		}
	}
	token := make([]byte, 4)
	_, _ = rand.Read(token)
	if w.Endpoint != nil {
		msg, err := triggerMessage(t)
		if err != nil {
			return err
		}
		req := &bearer.Request{Code: msg.Code, Type: message.NonConfirmable, Token: token, Options: msg.Options,
			Payload: msg.Payload, Peer: addr, Expires: t.Deadline}
		if err := w.Endpoint.Fire(ctx, req, 0); err != nil {
			if errors.Is(err, sms.ErrSecurityMode) {
				return w.unprotected(ep, addr, err)
			}
			return fmt.Errorf("queue: wake %s via %s: %w", ep, addr, err)
		}
		return nil
	}
	msg, err := TriggerMessage(t, uint16(w.mid.Add(1)), token)
	if err != nil {
		return err
	}
	if dw, ok := w.Conn.(DeadlineWriter); ok && !t.Deadline.IsZero() {
		_, err = dw.WriteToBefore(msg, addr, t.Deadline)
	} else {
		_, err = w.Conn.WriteTo(msg, addr)
	}
	if errors.Is(err, sms.ErrSecurityMode) {
		return w.unprotected(ep, addr, err)
	}
	if err != nil {
		return fmt.Errorf("queue: wake %s via %s: %w", ep, addr, err)
	}
	return nil
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

// DeadlineWriter is a PacketConn that can be told when a datagram stops
// being worth sending (*sms.Bearer: its outbox sends the earliest deadline
// first and gives up at the deadline).
type DeadlineWriter = bearer.DeadlineWriter

// permanentWakeError reports wake errors that retrying later today will
// not cure: budget exhausted, unknown peer, wrong security mode (an
// unprotected trigger to a secured peer), bad target.
func permanentWakeError(err error) bool {
	return errors.Is(err, sms.ErrBudgetExceeded) || errors.Is(err, sms.ErrUnknownPeer) ||
		errors.Is(err, sms.ErrSecurityMode) || errors.Is(err, ErrUnprotectedTrigger) || errors.Is(err, ErrBadTarget) ||
		errors.Is(err, ErrNotCreated)
}
