package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// DefaultBufferSize is the socket receive and send buffer size requested by
// default: 4 MiB, room for about 3,600 full 1,152-byte CoAP datagrams, so a
// burst from thousands of devices waits in the kernel rather than being
// dropped while the read loop is busy. The kernel may grant less (Linux caps
// it at net.core.rmem_max / wmem_max); Conn.BufferSizes reports what it
// granted.
const DefaultBufferSize = 4 << 20

// ErrBadAddr is wrapped by WriteTo errors when the destination is not a UDP
// address: neither a *net.UDPAddr nor a net.Addr whose String() is a literal
// IP host:port (an sms.Addr, a host name).
var ErrBadAddr = errors.New("udp: not a UDP address")

// ErrWrongPeer is wrapped by WriteTo errors on a dialed Conn when the
// destination is not the peer it was dialed to.
var ErrWrongPeer = errors.New("udp: destination is not the dialed peer")

// Option configures Listen and Dial. An option out of its range makes
// them fail with an error wrapping ErrInvalidOption.
type Option func(*config)

// ErrInvalidOption is wrapped by the error of Listen, Dial and New for an
// option out of its range (invalid Params, a negative buffer size).
var ErrInvalidOption = errors.New("udp: invalid option")

type config struct {
	params       bearer.Params
	paramsSet    bool
	readBuffer   int
	writeBuffer  int
	forceBuffers bool
}

// WithParams replaces the bearer parameters (default bearer.UDPParams("udp")).
// They are validated by Listen and Dial.
func WithParams(p bearer.Params) Option {
	return func(c *config) { c.params, c.paramsSet = p, true }
}

// WithReadBuffer sets the socket receive buffer size to request (SO_RCVBUF),
// in bytes; 0 keeps the operating system default. Default DefaultBufferSize.
func WithReadBuffer(n int) Option {
	return func(c *config) { c.readBuffer = n }
}

// WithWriteBuffer sets the socket send buffer size to request (SO_SNDBUF), in
// bytes; 0 keeps the operating system default. Default DefaultBufferSize.
func WithWriteBuffer(n int) Option {
	return func(c *config) { c.writeBuffer = n }
}

// WithForceBuffers makes Listen and Dial ask for the buffer sizes even above
// the system limit (net.core.rmem_max / wmem_max) on Linux, with
// SO_RCVBUFFORCE / SO_SNDBUFFORCE. That needs CAP_NET_ADMIN; without it the
// request is silently capped as usual (check BufferSizes). Elsewhere it does
// nothing.
func WithForceBuffers() Option {
	return func(c *config) { c.forceBuffers = true }
}

// Stats are the counters of a Conn. All counts are since the Conn was opened.
type Stats struct {
	// DatagramsIn and BytesIn count datagrams returned by ReadFrom.
	DatagramsIn, BytesIn uint64
	// DatagramsOut and BytesOut count datagrams sent by WriteTo.
	DatagramsOut, BytesOut uint64
	// Truncated counts received datagrams dropped because they did not fit
	// in the buffer given to ReadFrom.
	Truncated uint64
	// Refused counts ICMP port-unreachable reports (ECONNREFUSED; Windows:
	// WSAECONNRESET) absorbed in ReadFrom: a peer was not listening for an
	// earlier datagram. They are not errors of the read path.
	Refused uint64
	// TooLarge counts WriteTo calls refused with bearer.ErrTooLarge.
	TooLarge uint64
	// BadAddr counts WriteTo calls refused with ErrBadAddr or ErrWrongPeer.
	BadAddr uint64
}

// Conn is a UDP bearer. It is safe for concurrent use. A zero Conn (not
// made by Listen or Dial) behaves as a closed one.
type Conn struct {
	uc     *net.UDPConn
	params bearer.Params
	// peer is the dialed peer, nil for a listening Conn.
	peer     *net.UDPAddr
	peerAP   netip.AddrPort
	rbuf     int
	wbuf     int
	unreach  atomic.Pointer[func(net.Addr)] // OnUnreachable
	counters struct {
		in, bytesIn, out, bytesOut, truncated, refused, tooLarge, badAddr atomic.Uint64
	}
}

var (
	_ bearer.Bearer              = (*Conn)(nil)
	_ bearer.UnreachableReporter = (*Conn)(nil)
)

func checkNetwork(network string) error {
	switch network {
	case "udp", "udp4", "udp6":
		return nil
	}
	return fmt.Errorf("udp: %w", net.UnknownNetworkError(network))
}

func newConfig(opts []Option) (config, error) {
	c := config{readBuffer: DefaultBufferSize, writeBuffer: DefaultBufferSize}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if !c.paramsSet {
		c.params = bearer.UDPParams("udp")
	}
	if err := c.params.Validate(); err != nil {
		return c, fmt.Errorf("%w: WithParams: %w", ErrInvalidOption, err)
	}
	var f cfgcheck.Fields
	cfgcheck.NonNegative(&f, "WithReadBuffer", c.readBuffer)
	cfgcheck.NonNegative(&f, "WithWriteBuffer", c.writeBuffer)
	return c, f.Err(ErrInvalidOption, "options")
}

// Listen opens a UDP socket on address ("127.0.0.1:5683", "[::]:5683",
// ":0") for network "udp", "udp4" or "udp6". The Conn exchanges datagrams
// with any peer.
func Listen(network, address string, opts ...Option) (*Conn, error) {
	return ListenContext(context.Background(), network, address, opts...)
}

// ListenContext is Listen with a context for resolving address.
func ListenContext(ctx context.Context, network, address string, opts ...Option) (*Conn, error) {
	if err := checkNetwork(network); err != nil {
		return nil, err
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("udp: listen: %w", err)
	}
	return newConn(pc.(*net.UDPConn), nil, cfg)
}

// Dial opens a UDP socket connected to address (host:port; a host name is
// resolved with ctx). The Conn sends only to that peer and ReadFrom returns
// only its datagrams.
func Dial(ctx context.Context, network, address string, opts ...Option) (*Conn, error) {
	if err := checkNetwork(network); err != nil {
		return nil, err
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("udp: dial: %w", err)
	}
	uc := nc.(*net.UDPConn)
	return newConn(uc, uc.RemoteAddr().(*net.UDPAddr), cfg)
}

// New wraps an already open *net.UDPConn (for example one from a socket
// activation file descriptor). Socket buffer options are applied to it.
// Closing the Conn closes uc.
func New(uc *net.UDPConn, opts ...Option) (*Conn, error) {
	if uc == nil {
		return nil, fmt.Errorf("%w: nil *net.UDPConn", ErrInvalidOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var peer *net.UDPAddr
	if ra, ok := uc.RemoteAddr().(*net.UDPAddr); ok && ra != nil {
		peer = ra
	}
	return newConn(uc, peer, cfg)
}

func newConn(uc *net.UDPConn, peer *net.UDPAddr, cfg config) (*Conn, error) {
	c := &Conn{uc: uc, params: cfg.params, peer: peer}
	if peer != nil {
		c.peerAP = unmap(peer.AddrPort())
	}
	if cfg.readBuffer > 0 {
		if err := uc.SetReadBuffer(cfg.readBuffer); err != nil {
			_ = uc.Close()
			return nil, fmt.Errorf("udp: set read buffer: %w", err)
		}
	}
	if cfg.writeBuffer > 0 {
		if err := uc.SetWriteBuffer(cfg.writeBuffer); err != nil {
			_ = uc.Close()
			return nil, fmt.Errorf("udp: set write buffer: %w", err)
		}
	}
	if cfg.forceBuffers {
		forceBuffers(uc, cfg.readBuffer, cfg.writeBuffer)
	}
	c.rbuf, c.wbuf = socketBuffers(uc)
	return c, nil
}

// Params returns the bearer parameters.
func (c *Conn) Params() bearer.Params { return c.params }

// BufferSizes returns the socket receive and send buffer sizes the kernel
// granted, as reported by getsockopt (on Linux that is twice the usable
// payload room, capped by net.core.rmem_max / wmem_max unless the process
// may raise it). Zero means the platform does not report it.
func (c *Conn) BufferSizes() (read, write int) { return c.rbuf, c.wbuf }

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats {
	k := &c.counters
	return Stats{
		DatagramsIn: k.in.Load(), BytesIn: k.bytesIn.Load(),
		DatagramsOut: k.out.Load(), BytesOut: k.bytesOut.Load(),
		Truncated: k.truncated.Load(), Refused: k.refused.Load(),
		TooLarge: k.tooLarge.Load(), BadAddr: k.badAddr.Load(),
	}
}

// ReadFrom reads one datagram into b and returns its size and sender (a
// *net.UDPAddr; IPv4-mapped IPv6 senders are reported as IPv4). A datagram
// larger than b is dropped and counted in Stats().Truncated instead of being
// returned cut short; give b at least Params().MaxDatagram+1 bytes to receive
// everything. ICMP port-unreachable reports for earlier datagrams (on a
// dialed Conn; on Windows on any Conn) are counted and skipped: a peer that
// went away must not stop the caller's read loop.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.uc == nil {
		return 0, nil, notOpen("read")
	}
	for {
		n, _, flags, ap, err := c.uc.ReadMsgUDPAddrPort(b, nil)
		if err != nil {
			if isRefused(err) {
				c.refused()
				continue
			}
			return n, nil, err
		}
		if flags&msgTrunc != 0 {
			c.counters.truncated.Add(1)
			continue
		}
		c.counters.in.Add(1)
		c.counters.bytesIn.Add(uint64(n))
		if c.peer != nil {
			return n, c.peer, nil
		}
		return n, net.UDPAddrFromAddrPort(unmap(ap)), nil
	}
}

// WriteTo sends b as one datagram to addr: a *net.UDPAddr, or any net.Addr
// whose String() is a literal IP host:port ("192.0.2.1:5683",
// "[2001:db8::1]:5683"). It refuses datagrams over Params().MaxDatagram with
// an error wrapping bearer.ErrTooLarge, and addresses it cannot use with
// ErrBadAddr (or ErrWrongPeer on a dialed Conn).
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.uc == nil {
		return 0, notOpen("write")
	}
	for i := 0; ; i++ {
		n, err := c.writeOnce(b, addr)
		if err != nil && isRefused(err) && c.unreach.Load() != nil && i < 4 {
			// With OnUnreachable on, the kernel reports an ICMP error
			// of an earlier datagram on the next send too, which then
			// did not go out: take the report and send again.
			c.refused()
			continue
		}
		return n, err
	}
}

// writeOnce is one send of WriteTo.
func (c *Conn) writeOnce(b []byte, addr net.Addr) (int, error) {
	if len(b) > c.params.MaxDatagram {
		c.counters.tooLarge.Add(1)
		return 0, &net.OpError{Op: "write", Net: c.network(), Source: c.uc.LocalAddr(), Addr: addr,
			Err: fmt.Errorf("%w: %d bytes > %d", bearer.ErrTooLarge, len(b), c.params.MaxDatagram)}
	}
	var (
		n   int
		err error
	)
	switch {
	case c.peer != nil:
		ap, aerr := AddrPort(addr)
		if aerr != nil || ap != c.peerAP {
			if aerr == nil {
				aerr = fmt.Errorf("%w: %v, dialed %v", ErrWrongPeer, addr, c.peer)
			}
			c.counters.badAddr.Add(1)
			return 0, &net.OpError{Op: "write", Net: c.network(), Source: c.uc.LocalAddr(), Addr: addr, Err: aerr}
		}
		n, err = c.uc.Write(b)
	default:
		if ua, ok := addr.(*net.UDPAddr); ok && ua != nil && len(ua.IP) != 0 {
			n, err = c.uc.WriteToUDP(b, ua)
			break
		}
		ap, aerr := AddrPort(addr)
		if aerr != nil {
			c.counters.badAddr.Add(1)
			return 0, &net.OpError{Op: "write", Net: c.network(), Source: c.uc.LocalAddr(), Addr: addr, Err: aerr}
		}
		n, err = c.uc.WriteToUDPAddrPort(b, ap)
	}
	if err != nil {
		return n, err
	}
	c.counters.out.Add(1)
	c.counters.bytesOut.Add(uint64(n))
	return n, nil
}

// OnUnreachable makes the Conn call fn with the destination of every
// datagram it sent that met an ICMP port unreachable (nothing listens
// there: for a sleeping LwM2M device, its socket is closed). It reports
// whether the Conn can tell: a dialed Conn can on every platform (the
// destination is its peer); a listening Conn only on Linux, where it turns
// on IP_RECVERR/IPV6_RECVERR and reads the socket's error queue. fn runs
// on the goroutine of ReadFrom or WriteTo and must not block. Every report
// is also counted in Stats.Refused. It implements
// bearer.UnreachableReporter.
func (c *Conn) OnUnreachable(fn func(peer net.Addr)) bool {
	if fn == nil {
		c.unreach.Store(nil)
		return true
	}
	if c.uc == nil { // a zero Conn: nothing to report
		return false
	}
	if c.peer == nil && !enableRecvErr(c.uc) {
		return false
	}
	c.unreach.Store(&fn)
	return true
}

// refused counts an ICMP error surfacing as ECONNREFUSED and reports the
// destinations it concerns to OnUnreachable's function.
func (c *Conn) refused() {
	c.counters.refused.Add(1)
	fp := c.unreach.Load()
	if fp == nil {
		return
	}
	if c.peer != nil {
		(*fp)(c.peer)
		return
	}
	for _, ap := range drainErrQueue(c.uc) {
		(*fp)(net.UDPAddrFromAddrPort(ap))
	}
}

func (c *Conn) network() string {
	if a, ok := c.uc.LocalAddr().(*net.UDPAddr); ok {
		return a.Network()
	}
	return "udp"
}

// Close closes the socket; blocked ReadFrom and WriteTo calls return an error
// wrapping net.ErrClosed.
func (c *Conn) Close() error {
	if c.uc == nil {
		return notOpen("close")
	}
	return c.uc.Close()
}

// notOpen is the error of a zero Conn (not made by Listen or Dial), which
// behaves as a closed one.
func notOpen(op string) error { return &net.OpError{Op: op, Net: "udp", Err: net.ErrClosed} }

// LocalAddr returns the local address, a *net.UDPAddr (nil for a zero Conn).
func (c *Conn) LocalAddr() net.Addr {
	if c.uc == nil {
		return nil
	}
	return c.uc.LocalAddr()
}

// RemoteAddr returns the dialed peer, or nil for a listening Conn.
func (c *Conn) RemoteAddr() net.Addr {
	if c.peer == nil {
		return nil
	}
	return c.peer
}

// SetDeadline sets the read and write deadlines (net.PacketConn).
func (c *Conn) SetDeadline(t time.Time) error {
	if c.uc == nil {
		return notOpen("set deadline")
	}
	return c.uc.SetDeadline(t)
}

// SetReadDeadline sets the read deadline; a ReadFrom that passes it returns
// an error with Timeout() true that wraps os.ErrDeadlineExceeded.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.uc == nil {
		return notOpen("set deadline")
	}
	return c.uc.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.uc == nil {
		return notOpen("set deadline")
	}
	return c.uc.SetWriteDeadline(t)
}

// SyscallConn gives access to the socket for options this package does not
// set (DSCP, SO_MARK, ...).
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if c.uc == nil {
		return nil, notOpen("syscall conn")
	}
	return c.uc.SyscallConn()
}

// AddrPort converts a net.Addr to a UDP address: a *net.UDPAddr directly,
// anything else by parsing its String() as a literal IP host:port (with an
// optional IPv6 zone). IPv4-mapped IPv6 addresses are unmapped. Host names
// are refused (no DNS lookup on the datagram path) with ErrBadAddr.
func AddrPort(addr net.Addr) (netip.AddrPort, error) {
	switch a := addr.(type) {
	case nil:
		return netip.AddrPort{}, fmt.Errorf("%w: nil address", ErrBadAddr)
	case *net.UDPAddr:
		if a == nil {
			return netip.AddrPort{}, fmt.Errorf("%w: nil address", ErrBadAddr)
		}
		ap := a.AddrPort()
		if !ap.Addr().IsValid() {
			return netip.AddrPort{}, fmt.Errorf("%w: %q has no IP", ErrBadAddr, a.String())
		}
		return unmap(ap), nil
	}
	s := addr.String()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %s address %q: %v", ErrBadAddr, addr.Network(), s, err)
	}
	return unmap(ap), nil
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}
