package smpp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// session is one bound TCP (or TLS) connection. Its reader goroutine
// (serve) dispatches responses to the requests waiting for them and
// requests from the SMSC to the link; writes are serialised.
type session struct {
	l      *Link
	conn   net.Conn
	cmd    smppwire.CommandID
	br     *bufio.Reader
	wmu    sync.Mutex
	seq    atomic.Uint32
	window chan struct{}

	mu      sync.Mutex
	pending map[uint32]chan smppwire.PDU
	done    chan struct{}
	once    sync.Once
	cause   error
}

func (l *Link) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: l.cfg.ResponseTimeout, KeepAlive: l.cfg.EnquireLink}
	if l.cfg.TLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: l.cfg.TLS}
		return td.DialContext(ctx, "tcp", l.cfg.Addr)
	}
	return d.DialContext(ctx, "tcp", l.cfg.Addr)
}

// bind connects and binds with cmd; it returns a session whose reader is
// not yet running (serve runs it).
func (l *Link) bind(cmd smppwire.CommandID) (*session, error) {
	ctx, cancel := context.WithTimeout(l.ctx, 2*l.cfg.ResponseTimeout)
	defer cancel()
	conn, err := l.dial(ctx)
	if err != nil {
		if l.cfg.TLS != nil {
			err = tlsError(err, true)
		}
		return nil, fmt.Errorf("smpp: connect %s: %w", l.cfg.Addr, err)
	}
	s := &session{l: l, conn: conn, cmd: cmd, br: bufio.NewReader(conn), window: make(chan struct{}, l.cfg.Window),
		pending: map[uint32]chan smppwire.PDU{}, done: make(chan struct{})}
	var ton, npi byte
	if a, ok := l.sources[l.defSrc]; ok {
		ton, npi = a.TON, a.NPI
	}
	body, err := (&smppwire.Bind{SystemID: l.cfg.SystemID, Password: l.cfg.Password, SystemType: l.cfg.SystemType,
		InterfaceVersion: smppwire.InterfaceVersion, AddrTON: ton, AddrNPI: npi}).Marshal()
	if err != nil {
		conn.Close()
		return nil, err
	}
	// The bind is the only exchange before the reader runs: read its
	// answer here, skipping what an SMSC may send first (enquire_link).
	conn.SetDeadline(time.Now().Add(l.cfg.ResponseTimeout))
	seq := s.seq.Add(1)
	if _, err := conn.Write(smppwire.Marshal(cmd, 0, seq, body)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("smpp: %s: %w", cmd, err)
	}
	for {
		p, err := smppwire.ReadPDU(s.br, 0)
		if err != nil {
			conn.Close()
			if l.cfg.TLS != nil {
				// With TLS 1.3 an SMSC that refuses our certificate says
				// so only now, on the first read.
				err = tlsError(err, false)
			}
			return nil, fmt.Errorf("smpp: %s: reading the answer: %w", cmd, err)
		}
		if p.ID == smppwire.EnquireLink {
			conn.Write(smppwire.Marshal(smppwire.EnquireLinkResp, 0, p.Sequence, nil))
			continue
		}
		if p.ID == smppwire.Outbind {
			l.refuseOutbind(p)
			conn.Close()
			return nil, fmt.Errorf("%w: %s answered with outbind", ErrOutbind, cmd)
		}
		if p.Sequence != seq || (p.ID != cmd.Resp() && p.ID != smppwire.GenericNack) {
			conn.Close()
			return nil, fmt.Errorf("%w: %s answered with %s seq %d", errBindRefused, cmd, p.ID, p.Sequence)
		}
		if p.Status != smppwire.ROK {
			conn.Close()
			return nil, fmt.Errorf("%w: %w", errBindRefused, &StatusError{Command: cmd, Status: p.Status})
		}
		if _, err := smppwire.ParseBindResp(p.Body); err != nil {
			l.log.Warn("smpp: unreadable bind response body", "err", err)
		}
		break
	}
	conn.SetDeadline(time.Time{})
	return s, nil
}

// serve runs the reader and the keep-alive until the session ends (error,
// unbind, Close) and returns then.
func (s *session) serve() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.keepAlive()
	}()
	s.readLoop()
	s.close(nil)
	wg.Wait()
}

func (s *session) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

func (s *session) close(cause error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.cause = cause
		s.mu.Unlock()
		close(s.done)
		s.conn.Close()
	})
}

// keepAlive sends enquire_link every EnquireLink; an unanswered one ends the
// session. On Close it unbinds.
func (s *session) keepAlive() {
	t := time.NewTicker(s.l.cfg.EnquireLink)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-s.l.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), s.l.cfg.ResponseTimeout)
			s.request(ctx, smppwire.Unbind, nil)
			cancel()
			s.close(ErrClosed)
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.l.ctx, s.l.cfg.ResponseTimeout)
			_, err := s.request(ctx, smppwire.EnquireLink, nil)
			cancel()
			if err != nil && s.l.ctx.Err() == nil {
				s.l.c.enquireFailures.Add(1)
				s.close(fmt.Errorf("smpp: enquire_link unanswered: %w", err))
				return
			}
		}
	}
}

func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn.SetWriteDeadline(time.Now().Add(s.l.cfg.ResponseTimeout))
	_, err := s.conn.Write(b)
	if err != nil {
		s.close(fmt.Errorf("smpp: write: %w", err))
	}
	return err
}

// respond answers a request from the SMSC.
func (s *session) respond(id smppwire.CommandID, st smppwire.Status, seq uint32, body []byte) {
	select {
	case <-s.done:
		return // lost with the session: the SMSC sends the request again
	default:
	}
	s.write(smppwire.Marshal(id, st, seq, body))
}

// requestWindowed is request with a window slot held for its duration.
func (s *session) requestWindowed(ctx context.Context, id smppwire.CommandID, body []byte) (smppwire.PDU, error) {
	select {
	case s.window <- struct{}{}:
	case <-ctx.Done():
		return smppwire.PDU{}, fmt.Errorf("%w: window full: %w", ErrNotBound, ctx.Err())
	case <-s.done:
		return smppwire.PDU{}, fmt.Errorf("%w: session ended", ErrNotBound)
	}
	defer func() { <-s.window }()
	return s.request(ctx, id, body)
}

// request sends a request and waits for its response (or generic_nack),
// ResponseTimeout at most.
func (s *session) request(ctx context.Context, id smppwire.CommandID, body []byte) (smppwire.PDU, error) {
	seq := s.seq.Add(1)
	if seq == 0 || seq > 0x7FFFFFFF {
		s.seq.Store(1)
		seq = 1
	}
	ch := make(chan smppwire.PDU, 1)
	s.mu.Lock()
	s.pending[seq] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, seq)
		s.mu.Unlock()
	}()
	if err := s.write(smppwire.Marshal(id, 0, seq, body)); err != nil {
		return smppwire.PDU{}, fmt.Errorf("%w: %w", ErrNotBound, err)
	}
	t := time.NewTimer(s.l.cfg.ResponseTimeout)
	defer t.Stop()
	select {
	case p := <-ch:
		if p.ID == smppwire.GenericNack {
			return p, &StatusError{Command: id, Status: p.Status}
		}
		return p, nil
	case <-t.C:
		s.l.c.timeouts.Add(1)
		return smppwire.PDU{}, fmt.Errorf("%w: %s seq %d", ErrResponseTimeout, id, seq)
	case <-ctx.Done():
		return smppwire.PDU{}, fmt.Errorf("%w: %s: %w", ErrResponseTimeout, id, ctx.Err())
	case <-s.done:
		return smppwire.PDU{}, fmt.Errorf("%w: session ended before the %s response", ErrNotBound, id)
	}
}

// readLoop reads PDUs until the connection fails. A peer that sends
// nothing for two keep-alive intervals is taken as gone.
func (s *session) readLoop() {
	idle := 2*s.l.cfg.EnquireLink + s.l.cfg.ResponseTimeout
	for {
		s.conn.SetReadDeadline(time.Now().Add(idle))
		p, err := smppwire.ReadPDU(s.br, 0)
		if err != nil {
			if errors.Is(err, smppwire.ErrTooLong) {
				s.l.c.malformed.Add(1)
				s.respond(smppwire.GenericNack, smppwire.RInvCmdLen, p.Sequence, nil)
			}
			s.close(fmt.Errorf("smpp: read: %w", err))
			return
		}
		if p.ID.IsResponse() && p.ID != smppwire.GenericNack || p.ID == smppwire.GenericNack && p.Sequence != 0 {
			s.mu.Lock()
			ch := s.pending[p.Sequence]
			s.mu.Unlock()
			if ch == nil {
				s.l.c.lateResponses.Add(1)
				continue
			}
			ch <- p
			continue
		}
		switch p.ID {
		case smppwire.EnquireLink:
			s.respond(smppwire.EnquireLinkResp, smppwire.ROK, p.Sequence, nil)
		case smppwire.Unbind:
			s.respond(smppwire.UnbindResp, smppwire.ROK, p.Sequence, nil)
			s.close(errors.New("smpp: the SMSC unbound"))
			return
		case smppwire.DeliverSM:
			if s.cmd == smppwire.BindTransmitter {
				s.respond(smppwire.DeliverSMResp, smppwire.RInvBndSts, p.Sequence, nil)
				continue
			}
			s.l.handleDeliver(s, p)
		case smppwire.GenericNack:
			s.l.c.malformed.Add(1)
		case smppwire.Outbind:
			s.l.refuseOutbind(p)
			s.respond(smppwire.GenericNack, smppwire.RInvBndSts, p.Sequence, nil)
		default:
			s.l.c.malformed.Add(1)
			s.respond(smppwire.GenericNack, smppwire.RInvCmdID, p.Sequence, nil)
		}
	}
}
