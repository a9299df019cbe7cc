package secure

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// Mixed is one bearer for a CoAP Endpoint whose peers are reached either
// through a DTLS Server or in plain, each as the operator configured it:
// the SMS binding, where one modem pool carries NoSec (and OSCORE) devices
// beside devices secured by DTLS over SMS. ReadFrom returns what either
// side read (a DTLS peer's address is an *Addr with its identity);
// WriteTo goes through the Server when Secured says the destination is a
// DTLS peer, through the plain bearer otherwise. Which side a peer is on
// comes from configuration (Secured), never from a datagram's content: a
// datagram claiming to be from a DTLS peer that arrives in plain was
// refused below (sms.DTLSView).
//
// Its Params are the Server's (the smaller datagrams, so that a message
// fits either way) with the plain bearer's Name. The zero Mixed is closed.
type Mixed struct {
	plain   bearer.Bearer
	srv     *Server
	secured func(peer net.Addr) bool
	params  bearer.Params

	in    chan datagram
	rd    deadline
	done  chan struct{}
	fatal atomic.Pointer[error]
	once  sync.Once
	wg    sync.WaitGroup
}

// NewMixed joins plain and srv. secured reports whether a peer (an inner
// address, or an *Addr) is a DTLS peer; it must be fast and safe for
// concurrent use. The Mixed owns both bearers: Close closes them.
func NewMixed(plain bearer.Bearer, srv *Server, secured func(peer net.Addr) bool) (*Mixed, error) {
	if plain == nil || srv == nil || secured == nil {
		return nil, fmt.Errorf("%w: Mixed needs a plain bearer, a Server and a Secured function", ErrInvalidOption)
	}
	m := &Mixed{plain: plain, srv: srv, secured: secured, params: srv.Params(),
		in: make(chan datagram, DefaultQueueLen), done: make(chan struct{})}
	m.params.Name = plain.Params().Name
	if pp := plain.Params(); pp.MaxDatagram < m.params.MaxDatagram {
		m.params.MaxDatagram = pp.MaxDatagram
	}
	m.wg.Add(2)
	go m.pump(plain)
	go m.pump(srv)
	return m, nil
}

func (m *Mixed) pump(b bearer.Bearer) {
	defer m.wg.Done()
	buf := make([]byte, b.Params().MaxDatagram+1)
	for {
		n, addr, err := b.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select {
			case <-m.done:
			default:
				e := fmt.Errorf("secure: mixed bearer: %s side: %w", b.Params().Name, err)
				m.fatal.CompareAndSwap(nil, &e)
				go m.Close() //nolint:errcheck // reported through ReadFrom
			}
			return
		}
		select {
		case m.in <- datagram{b: bytes.Clone(buf[:n]), addr: addr}:
		case <-m.done:
			return
		}
	}
}

// Params returns the Server's parameters with the plain bearer's name.
func (m *Mixed) Params() bearer.Params { return m.params }

// LocalAddr returns the plain bearer's local address (nil for a zero
// Mixed).
func (m *Mixed) LocalAddr() net.Addr {
	if m.plain == nil {
		return nil
	}
	return m.plain.LocalAddr()
}

// zero reports whether m was not made by NewMixed.
func (m *Mixed) zero() bool { return m.plain == nil || m.srv == nil || m.done == nil }

// Server returns the DTLS side.
func (m *Mixed) Server() *Server { return m.srv }

// ReadFrom returns the next datagram from either side.
func (m *Mixed) ReadFrom(p []byte) (int, net.Addr, error) {
	if m.zero() {
		return 0, nil, ErrClosed
	}
	select {
	case d := <-m.in:
		n := copy(p, d.b)
		if n < len(d.b) {
			return n, d.addr, fmt.Errorf("secure: %d-byte datagram into %d-byte buffer: %w", len(d.b), len(p), io.ErrShortBuffer)
		}
		return n, d.addr, nil
	case <-m.rd.done():
		return 0, nil, &timeoutError{op: "read"}
	case <-m.done:
		if e := m.fatal.Load(); e != nil {
			return 0, nil, *e
		}
		return 0, nil, ErrClosed
	}
}

// WriteTo sends p to addr through the Server (a DTLS peer) or the plain
// bearer.
func (m *Mixed) WriteTo(p []byte, addr net.Addr) (int, error) {
	return m.WriteToBefore(p, addr, time.Time{})
}

// SetDeadline sets the read deadline.
func (m *Mixed) SetDeadline(t time.Time) error { return m.SetReadDeadline(t) }

// SetReadDeadline sets the deadline of ReadFrom.
func (m *Mixed) SetReadDeadline(t time.Time) error { m.rd.set(t); return nil }

// SetWriteDeadline sets both sides' write deadlines.
func (m *Mixed) SetWriteDeadline(t time.Time) error {
	if m.zero() {
		return ErrClosed
	}
	return errors.Join(m.srv.SetWriteDeadline(t), m.plain.SetWriteDeadline(t))
}

// Close closes the Server, then the plain bearer, and waits for the
// readers.
func (m *Mixed) Close() error {
	if m.zero() {
		return nil
	}
	var err error
	m.once.Do(func() {
		close(m.done)
		err = errors.Join(m.srv.Close(), m.plain.Close())
		m.rd.stop()
		m.wg.Wait()
	})
	return err
}

// WriteToBefore is WriteTo for a datagram worth nothing after deadline:
// the deadline goes to the plain bearer when it is a bearer.DeadlineWriter
// (the SMS bearer: its outbox drops the datagram at the deadline and sends
// the earliest first), so wake-ups keep their order through a Mixed; a
// DTLS peer's record goes without. The zero deadline is WriteTo.
func (m *Mixed) WriteToBefore(p []byte, addr net.Addr, deadline time.Time) (int, error) {
	if m.zero() {
		return 0, ErrClosed
	}
	select {
	case <-m.done:
		return 0, ErrClosed
	default:
	}
	if m.secured(addr) {
		return m.srv.WriteTo(p, addr)
	}
	if dw, ok := m.plain.(bearer.DeadlineWriter); ok && !deadline.IsZero() {
		return dw.WriteToBefore(p, addr, deadline)
	}
	return m.plain.WriteTo(p, addr)
}

// Backlog reports how many datagrams to peer wait below (bearer.Backlogger:
// the SMS bearer's outbox), from the side that carries the peer; 0 when
// that side cannot tell.
func (m *Mixed) Backlog(peer net.Addr) int {
	if m.zero() {
		return 0
	}
	var b net.PacketConn = m.plain
	if m.secured(peer) {
		b = m.srv.inner
	}
	return bearer.BacklogOf(b, unwrapAddr(peer))
}

// LastHeard reports when anything from peer last arrived below
// (bearer.PeerActivity: the SMS bearer's segments), from the side that
// carries the peer.
func (m *Mixed) LastHeard(peer net.Addr) time.Time {
	if m.zero() {
		return time.Time{}
	}
	var b net.PacketConn = m.plain
	if m.secured(peer) {
		b = m.srv.inner
	}
	return bearer.LastHeardOf(b, unwrapAddr(peer))
}

var (
	_ bearer.DeadlineWriter = (*Mixed)(nil)
	_ bearer.Backlogger     = (*Mixed)(nil)
	_ bearer.PeerActivity   = (*Mixed)(nil)
)
