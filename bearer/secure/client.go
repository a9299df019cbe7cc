package secure

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/pion/dtls/v3"
)

// Conn is the client side of DTLS over a bearer: a bearer.Bearer to a
// single peer, the server it handshook with. ReadFrom returns decrypted
// datagrams from that server with an *Addr carrying the server's identity;
// WriteTo accepts only that server's address.
//
// The zero Conn is not usable: use Dial. It behaves as a closed Conn whose
// calls fail with ErrNotCreated.
type Conn struct {
	inner  bearer.Bearer
	peer   net.Addr
	key    string
	params bearer.Params
	conn   *dtls.Conn
	vc     *vconn
	ident  bearer.Identity
	addr   *Addr
	suite  dtls.CipherSuiteID

	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	dropped atomic.Uint64 // datagrams from other addresses, or on a full queue
	// serverCID is the length of the CID the server issued, +1; 0 until
	// the ServerHello was seen (so > 0 also means "ServerHello received").
	// Written by pump during the handshake.
	serverCID atomic.Int32
	handshook atomic.Bool
	resumed   bool        // the handshake resumed a session from Config.Sessions
	quiet     bool        // Config.QuietClose
	closing   atomic.Bool // Close was called
}

// Dial handshakes with peer over inner and returns the session as a
// bearer.Bearer. ctx bounds the handshake (as does cfg.HandshakeTimeout).
// The Conn owns inner from then on: Close closes it. On error inner is
// closed too.
func Dial(ctx context.Context, inner bearer.Bearer, peer net.Addr, cfg *Config) (*Conn, error) {
	if inner == nil || peer == nil {
		if inner != nil {
			_ = inner.Close()
		}
		return nil, fmt.Errorf("%w: nil inner bearer or peer", ErrInvalidOption)
	}
	c, params, mtu, err := dialSetup(inner, cfg)
	if err != nil {
		_ = inner.Close() // as documented: on error inner is closed too
		return nil, err
	}
	cn := &Conn{
		inner: inner, peer: peer, key: bearer.AddrKey(peer), params: params,
		done: make(chan struct{}),
	}
	cn.vc = newVConn(inner, c.QueueLen, nil, nil)

	v := &peerVerifier{roots: c.RootCAs, serverName: c.ServerName, rawKey: c.VerifyRawKey}
	offered := c.offeredSession(peer)
	opts := c.clientOptions(mtu, v, offered)
	cn.wg.Add(1)
	go cn.pump()
	conn, err := dtls.ClientWithOptions(cn.vc, peer, opts...)
	if err != nil {
		cn.shutdown()
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	if err := cn.handshake(ctx, conn, &c, v); err != nil {
		return nil, err
	}
	cn.established(conn, &c, v, offered)
	return cn, nil
}

// dialSetup checks cfg and computes what Dial needs before it starts:
// the config with its defaults, and inner's parameters and MTU adapted to
// DTLS with the chosen suites and CIDs.
func dialSetup(inner bearer.Bearer, cfg *Config) (Config, bearer.Params, int, error) {
	if err := cfg.validate(false); err != nil {
		return Config{}, bearer.Params{}, 0, err
	}
	c := cfg.withDefaults()
	if err := checkSuitesKnown(c.CipherSuites); err != nil {
		return Config{}, bearer.Params{}, 0, err
	}
	// The client pays for the CIDs the server issues (DefaultCIDLength by
	// default); it asks for its own only when CIDLength was set > 0.
	params, mtu, err := wrapParams(inner.Params(), c.suites(false), c.issuedCIDLen(), c.MTU)
	if err != nil {
		return Config{}, bearer.Params{}, 0, err
	}
	return c, params, mtu, nil
}

// offeredSession returns the ID of the session the client offers to
// resume with peer (Config.Sessions), nil for none.
func (c *Config) offeredSession(peer net.Addr) []byte {
	if c.Sessions == nil {
		return nil
	}
	key := c.SessionKey
	if key == "" {
		key = peer.String() + "_" + c.ServerName // pion's client key
	}
	return c.Sessions.peek(key)
}

// clientOptions are pion's options for a client with c (defaults
// applied): credentials, server name, and the connection IDs it sends
// and asks for, offering session offered.
func (c *Config) clientOptions(mtu int, v *peerVerifier, offered []byte) []dtls.ClientOption {
	var opts []dtls.ClientOption
	for _, o := range c.pionOptions(false, mtu, v) {
		opts = append(opts, o)
	}
	if c.hasPSKClient() {
		key := c.PSKKey
		opts = append(opts,
			dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
			// pion sends the client's PSK identity as its "identity hint".
			dtls.WithPSKIdentityHint(c.PSKIdentity))
	}
	if c.ServerName != "" {
		opts = append(opts, dtls.WithServerName(c.ServerName))
	}
	switch own := c.ownCIDLen(); {
	case c.CIDLength != nil && own == 0:
		// No connection IDs: no connection_id extension at all.
	case own > 0 && len(offered) == 0:
		opts = append(opts, dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(own)))
	default:
		// The default, or a session offered: the client sends the CID
		// the server issues and asks for none of its own. Offering a
		// session it must not ask: pion's abbreviated ServerHello carries no connection_id
		// extension, yet a pion server would wrap its records in the CID
		// the client asked for, which the client then cannot read.
		opts = append(opts, dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()))
	}
	return opts
}

// handshake runs conn's handshake within ctx and c.HandshakeTimeout. On
// failure it shuts cn down (inner closed) and says why, naming a likely
// wrong PSK key or the verifier's refusal.
func (cn *Conn) handshake(ctx context.Context, conn *dtls.Conn, c *Config, v *peerVerifier) error {
	hctx, cancel := context.WithTimeout(ctx, c.HandshakeTimeout)
	defer cancel()
	err := conn.HandshakeContext(hctx)
	if err == nil {
		return nil
	}
	_ = conn.Close()
	cn.shutdown()
	if hctx.Err() != nil && cn.serverCID.Load() > 0 && c.hasPSKClient() {
		// The server answered the hello but never sent a Finished we
		// could decrypt: DTLS drops undecryptable records silently,
		// which is what a key mismatch looks like.
		return fmt.Errorf("%w with %s: no Finished from the server after the PSK key exchange "+
			"(wrong PSK key for identity %q?): %w", ErrHandshake, cn.peer, c.PSKIdentity, err)
	}
	if verr := v.failure(); verr != nil {
		err = verr
	}
	return fmt.Errorf("%w with %s: %w", ErrHandshake, cn.peer, err)
}

// established takes the handshook conn: the negotiated suite, the
// server's identity, whether the offered session was resumed, and the
// parameters with the real overhead.
func (cn *Conn) established(conn *dtls.Conn, c *Config, v *peerVerifier, offered []byte) {
	st, _ := conn.ConnectionState()
	cn.conn = conn
	cn.suite = st.CipherSuiteID
	cn.ident = identityFromState(st, v.mode, false)
	cn.resumed = len(offered) > 0 && bytes.Equal(offered, st.SessionID)
	cn.quiet = c.QuietClose
	cn.addr = &Addr{Inner: cn.peer, Identity: cn.ident}
	cn.handshook.Store(true)
	// Now the real overhead is known: the negotiated suite, and the CID
	// the server issued (which the client's records carry).
	cidLen := max(int(cn.serverCID.Load())-1, 0)
	if p, _, err := wrapParams(cn.inner.Params(), []CipherSuiteID{st.CipherSuiteID}, cidLen, c.MTU); err == nil {
		cn.params = p
	}
}

// pump moves datagrams from the inner bearer to the DTLS conn, dropping
// those from other addresses.
func (c *Conn) pump() {
	defer c.wg.Done()
	buf := make([]byte, c.inner.Params().MaxDatagram+1)
	for {
		n, addr, err := c.inner.ReadFrom(buf)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			_ = c.vc.Close() // the DTLS conn sees the end of its transport
			return
		}
		if bearer.AddrKey(addr) != c.key {
			c.dropped.Add(1)
			continue
		}
		if !c.handshook.Load() {
			if cid, ok := serverHelloCID(buf[:n]); ok {
				c.serverCID.Store(int32(len(cid)) + 1)
			}
		}
		if !c.vc.deliver(datagram{b: append([]byte(nil), buf[:n]...), addr: addr}) {
			c.dropped.Add(1)
		}
	}
}

func (c *Conn) shutdown() {
	c.once.Do(func() {
		close(c.done)
		_ = c.vc.Close()
		_ = c.inner.Close()
		c.wg.Wait()
	})
}

// Params returns inner's parameters adapted to DTLS.
func (c *Conn) Params() bearer.Params { return c.params }

// Identity returns the server's authenticated identity.
func (c *Conn) Identity() bearer.Identity { return c.ident }

// Resumed reports whether the handshake was an abbreviated one that
// resumed the session Config.Sessions held for the server (RFC 5246 §7.3).
func (c *Conn) Resumed() bool { return c.resumed }

// CipherSuite returns the negotiated cipher suite's name.
func (c *Conn) CipherSuite() string { return dtls.CipherSuiteName(c.suite) }

// RemoteAddr returns the server's address as an *Addr.
func (c *Conn) RemoteAddr() net.Addr { return c.addr }

// Dropped counts datagrams dropped: from other addresses or on a full queue.
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// Backlog and LastHeard are the inner bearer's (bearer.Backlogger,
// bearer.PeerActivity: over SMS, the outbox and the arrival of segments),
// for the message layer's RFC 9177 timers.
func (c *Conn) Backlog(peer net.Addr) int {
	if c.inner == nil {
		return 0
	}
	return bearer.BacklogOf(c.inner, unwrapAddr(peer))
}

// LastHeard: see Backlog.
func (c *Conn) LastHeard(peer net.Addr) time.Time {
	if c.inner == nil {
		return time.Time{}
	}
	return bearer.LastHeardOf(c.inner, unwrapAddr(peer))
}

// ReadFrom returns the next decrypted datagram from the server. After the
// server ends the session (close_notify, e.g. on idle expiry) it returns an
// error wrapping io.EOF; Dial again for a new session. After Close it
// returns ErrClosed.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.conn == nil {
		return 0, nil, ErrNotCreated
	}
	n, err := c.conn.Read(p)
	if err != nil {
		if c.closing.Load() {
			return n, nil, ErrClosed
		}
		return n, nil, fmt.Errorf("secure: read: %w", err)
	}
	hintPurpose(c.inner, c.addr, bearer.Received, p[:n])
	return n, c.addr, nil
}

// WriteTo encrypts p to the server; addr must be the server's address.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.conn == nil {
		return 0, ErrNotCreated
	}
	if len(p) > c.params.MaxDatagram {
		return 0, fmt.Errorf("secure: %d bytes > %d: %w", len(p), c.params.MaxDatagram, bearer.ErrTooLarge)
	}
	if k := bearer.AddrKey(unwrapAddr(addr)); k != c.key {
		return 0, fmt.Errorf("secure: write to %s on a session with %s: %w", k, c.key, ErrNoSession)
	}
	hintPurpose(c.inner, c.addr, bearer.Sent, p)
	n, err := c.conn.Write(p)
	if err != nil {
		if c.closing.Load() {
			return n, ErrClosed
		}
		return n, fmt.Errorf("secure: write: %w", err)
	}
	return n, nil
}

// Close sends close_notify (not with Config.QuietClose), closes the
// session and the inner bearer.
func (c *Conn) Close() error {
	if c.conn == nil || c.closing.Swap(true) {
		return nil
	}
	if c.quiet {
		_ = c.vc.Close() // pion's close_notify then goes nowhere
	}
	err := c.conn.Close()
	c.shutdown()
	return err
}

// LocalAddr returns the inner bearer's local address.
func (c *Conn) LocalAddr() net.Addr {
	if c.inner == nil {
		return nil
	}
	return c.inner.LocalAddr()
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.conn == nil {
		return ErrNotCreated
	}
	return c.conn.SetDeadline(t)
}

// SetReadDeadline sets the deadline of ReadFrom.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.conn == nil {
		return ErrNotCreated
	}
	return c.conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline of WriteTo.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.conn == nil {
		return ErrNotCreated
	}
	return c.conn.SetWriteDeadline(t)
}
