package secure

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/logging"
)

var netErrClosed = net.ErrClosed

// timeoutError is returned when a deadline passes; it is a net.Error with
// Timeout() true and wraps os.ErrDeadlineExceeded, as net conns do.
type timeoutError struct{ op string }

func (e *timeoutError) Error() string   { return "secure: " + e.op + ": i/o timeout" }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }

// deadline is a settable deadline with a channel closed when it passes, the
// way net conns implement SetReadDeadline. The zero value has no deadline.
type deadline struct {
	mu    sync.Mutex
	t     time.Time
	timer *time.Timer
	ch    chan struct{} // closed when the deadline passes
}

// set changes the deadline; a zero t clears it, a past t expires it now.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.t = t
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	select {
	case <-d.ch: // expired: make a fresh channel
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	ch := d.ch
	dur := time.Until(t)
	if dur <= 0 {
		close(ch)
		return
	}
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ch == ch {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	})
}

// done returns the channel closed when the current deadline passes.
func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// datagram is one received datagram and its source address.
type datagram struct {
	b    []byte
	addr net.Addr
}

// vconn is the virtual net.PacketConn pion/dtls runs over for one peer:
// reads come from a bounded queue the demultiplexer (server) or pump
// (client) fills; writes go straight to the inner bearer at the address pion
// asks for (pion tracks the peer's address and updates it on RFC 9146 CID
// address changes).
type vconn struct {
	inner  net.PacketConn
	queue  chan datagram
	closed chan struct{}
	once   sync.Once
	rd, wd deadline
	// onSend, if set, is called with each datagram before it is handed
	// to the inner bearer: state the peer's answer depends on must be in
	// place before that answer can come back, and an inner WriteTo may
	// return after the peer has answered (a bearer that delivers at once,
	// a writer descheduled after the send).
	onSend func(p []byte)
	// onWrite, if set, is called with each datagram written successfully
	// (activity tracking, handshake progress).
	onWrite func(p []byte)
}

func newVConn(inner net.PacketConn, queueLen int, onSend, onWrite func([]byte)) *vconn {
	return &vconn{inner: inner, queue: make(chan datagram, queueLen), closed: make(chan struct{}), onSend: onSend, onWrite: onWrite}
}

// deliver queues d without blocking; it reports false when the queue is
// full or the conn is closed (the datagram is dropped).
func (v *vconn) deliver(d datagram) bool {
	select {
	case <-v.closed:
		return false
	default:
	}
	select {
	case v.queue <- d:
		return true
	default:
		return false
	}
}

func (v *vconn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case <-v.closed:
		return 0, nil, net.ErrClosed
	case <-v.rd.done():
		return 0, nil, &timeoutError{op: "read"}
	case d := <-v.queue:
		n := copy(p, d.b)
		if n < len(d.b) {
			return n, d.addr, fmt.Errorf("secure: %d-byte datagram into %d-byte buffer: %w", len(d.b), len(p), io.ErrShortBuffer)
		}
		return n, d.addr, nil
	}
}

func (v *vconn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-v.closed:
		return 0, net.ErrClosed
	case <-v.wd.done():
		return 0, &timeoutError{op: "write"}
	default:
	}
	if v.onSend != nil {
		v.onSend(p)
	}
	n, err := v.inner.WriteTo(p, addr)
	if err == nil && v.onWrite != nil {
		v.onWrite(p)
	}
	return n, err
}

// isClosed reports whether Close has been called (by us or by pion/dtls
// closing its conn).
func (v *vconn) isClosed() bool {
	select {
	case <-v.closed:
		return true
	default:
		return false
	}
}

func (v *vconn) Close() error {
	v.once.Do(func() {
		close(v.closed)
		v.rd.stop()
		v.wd.stop()
	})
	return nil
}

func (v *vconn) LocalAddr() net.Addr { return v.inner.LocalAddr() }

func (v *vconn) SetDeadline(t time.Time) error {
	v.rd.set(t)
	v.wd.set(t)
	return nil
}
func (v *vconn) SetReadDeadline(t time.Time) error  { v.rd.set(t); return nil }
func (v *vconn) SetWriteDeadline(t time.Time) error { v.wd.set(t); return nil }

// slogLoggerFactory adapts log/slog to pion's logging.LoggerFactory. All
// pion output goes to slog at Debug level: pion logs every dropped packet,
// which an attacker controls, so nothing it says is a warning of ours.
type slogLoggerFactory struct{ l *slog.Logger }

func (f slogLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return slogLogger{f.l.With("pion", scope)}
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) log(msg string) { s.l.Debug(msg) }

func (s slogLogger) logf(format string, args ...any) {
	if s.l.Enabled(context.Background(), slog.LevelDebug) {
		s.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (s slogLogger) Trace(string)                      {}
func (s slogLogger) Tracef(string, ...any)             {}
func (s slogLogger) Debug(msg string)                  { s.log(msg) }
func (s slogLogger) Debugf(format string, args ...any) { s.logf(format, args...) }
func (s slogLogger) Info(msg string)                   { s.log(msg) }
func (s slogLogger) Infof(format string, args ...any)  { s.logf(format, args...) }
func (s slogLogger) Warn(msg string)                   { s.log(msg) }
func (s slogLogger) Warnf(format string, args ...any)  { s.logf(format, args...) }
func (s slogLogger) Error(msg string)                  { s.log(msg) }
func (s slogLogger) Errorf(format string, args ...any) { s.logf(format, args...) }
