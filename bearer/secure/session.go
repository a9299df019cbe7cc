package secure

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/pion/dtls/v3"
)

// session is one peer's DTLS association on the Server.
type session struct {
	srv  *Server
	vc   *vconn
	pred *session // established session this one replaces (RFC 6347 §4.2.8)

	// addr, key, cid and removed are guarded by srv.mu.
	addr    net.Addr
	key     string
	cid     string
	removed bool // taken out of the Server's maps and counts

	created  time.Time
	verified atomic.Bool // pion sent a ServerHello: the peer echoed a cookie
	moved    atomic.Bool // a CID record came from another address
	ccsSent  atomic.Bool // pion is sending its ChangeCipherSpec (new keys in use); see sending
	quiet    atomic.Bool // end without close_notify
	resumed  bool        // an abbreviated handshake; set before established
	// offered is the session ID the peer's ClientHello offered; peerCCS
	// says the peer's ChangeCipherSpec was routed here, held are the
	// datagrams of the new epoch that came before it (admitLocked). All
	// three are guarded by srv.mu.
	offered []byte
	peerCCS bool
	held    []datagram
	hello   helloAssembler
	// ownCID: the peer's ClientHello asks for a connection ID of its own;
	// such a peer is not resumed (sessionGate).
	ownCID atomic.Bool
	// pskIdentity is the PSK identity the client presented (a string),
	// for the failure log.
	pskIdentity atomic.Value

	conn        *dtls.Conn // set before established
	established atomic.Bool
	ident       bearer.Identity // set before established
	suite       string          // set before established
	last        atomic.Int64    // unix nanoseconds of the last activity
	closing     chan struct{}
	closeOnce   sync.Once
	connOnce    sync.Once
}

// closeConn closes the DTLS conn once; concurrent callers wait until the
// close_notify alert has been written, so the vconn under it stays open
// until then.
func (ss *session) closeConn() {
	ss.connOnce.Do(func() {
		if ss.quiet.Load() {
			// pion's Close writes close_notify; with the vconn closed
			// first that write fails and nothing goes out.
			_ = ss.vc.Close()
		}
		if ss.conn != nil {
			_ = ss.conn.Close()
		}
	})
}

func (ss *session) touch() { ss.last.Store(time.Now().UnixNano()) }

// sending is the vconn's hook run before a datagram goes out. ccsSent is
// set here, not once the write has returned: the peer's Finished and first
// request under the new keys can reach the demultiplexer before the inner
// WriteTo returns, and were then routed to the session being replaced
// only, which dropped the request (TestResumptionPeerFasterThanWrite).
// Set early it costs nothing if the write fails: until this session is
// established, records of the new epoch go to both sessions (route).
func (ss *session) sending(p []byte) {
	if !ss.ccsSent.Load() && hasRecord(p, contentChangeCipherSpec) {
		ss.ccsSent.Store(true)
	}
}

// wrote is the vconn's hook run after a datagram was written.
func (ss *session) wrote(p []byte) {
	ss.touch()
	if !ss.verified.Load() && isServerHello(p) {
		ss.verified.Store(true)
	}
}

// close stops the session; run cleans up.
func (ss *session) close() { ss.closeOnce.Do(func() { close(ss.closing) }) }

// ending reports whether the session has been told to stop.
func (ss *session) ending() bool {
	select {
	case <-ss.closing:
		return true
	default:
		return false
	}
}

// cidGen is the session's connection ID generator: one random CID, unique
// on the Server, registered for routing.
func (ss *session) cidGen() []byte {
	s := ss.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.cid != "" {
		return []byte(ss.cid)
	}
	b := make([]byte, s.cidLen)
	for {
		_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
		if s.byCID[string(b)] == nil {
			break
		}
	}
	ss.cid = string(b)
	s.byCID[ss.cid] = ss
	return bytes.Clone(b)
}

// run handshakes, then moves decrypted datagrams to srv.incoming until the
// session ends.
func (ss *session) run() {
	s := ss.srv
	defer s.sessWG.Done()
	defer ss.cleanup()

	v := &peerVerifier{roots: s.cfg.RootCAs, rawKey: s.cfg.VerifyRawKey}
	conn, err := dtls.ServerWithOptions(ss.vc, ss.addr, ss.serverOptions(v)...)
	if err != nil {
		s.st.handshakesFailed.Add(1)
		s.log.Warn("dtls server: cannot start session", "peer", ss.addr, "err", err)
		return
	}
	ss.conn = conn
	if !ss.handshake(conn, v) {
		return
	}
	st, _ := conn.ConnectionState()
	if !ss.establish(st, v) {
		return
	}
	ss.read(conn)
}

// serverOptions are pion's options for this session's handshake.
func (ss *session) serverOptions(v *peerVerifier) []dtls.ServerOption {
	s := ss.srv
	var opts []dtls.ServerOption
	for _, o := range s.cfg.pionOptions(true, s.mtu, v) {
		opts = append(opts, o)
	}
	if s.cfg.Certificate != nil {
		opts = append(opts, dtls.WithClientAuth(dtls.RequireAnyClientCert))
	}
	if lookup := s.cfg.PSKLookup; lookup != nil {
		opts = append(opts, dtls.WithPSK(func(identity []byte) ([]byte, error) {
			ss.pskIdentity.Store(string(identity))
			key, err := lookup(identity)
			if err == nil && len(key) == 0 {
				err = fmt.Errorf("unknown PSK identity %q", identity)
			}
			return key, err
		}))
	}
	if s.cidLen > 0 {
		opts = append(opts, dtls.WithConnectionIDGenerator(ss.cidGen))
	}
	if s.cfg.SkipHelloVerify {
		opts = append(opts, dtls.WithInsecureSkipVerifyHello(true))
	}
	if s.cfg.Sessions != nil && s.cidLen > 0 {
		opts = append(opts, dtls.WithSessionStore(sessionGate{s.cfg.Sessions, ss}))
	}
	return opts
}

// handshake runs the handshake within Config.HandshakeTimeout (or until
// the session closes); false: it failed, counted and logged.
func (ss *session) handshake(conn *dtls.Conn, v *peerVerifier) bool {
	s := ss.srv
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	go func() {
		select {
		case <-ss.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := conn.HandshakeContext(ctx)
	timedOut := ctx.Err() != nil && s.ctx.Err() == nil
	cancel()
	if err != nil {
		s.st.handshakesFailed.Add(1)
		if id, ok := ss.pskIdentity.Load().(string); ok && ss.verified.Load() && timedOut {
			s.logFailure("dtls server: handshake failed: no valid Finished after the PSK key exchange (wrong PSK key?)",
				"peer", ss.addr, "psk_identity", id, "err", err)
			return false
		}
		if verr := v.failure(); verr != nil {
			err = verr
		}
		s.logFailure("dtls server: handshake failed", "peer", ss.addr, "err", err)
		return false
	}
	return true
}

// establish records the established session in the server's tables (it
// replaces the session it succeeds from the same address); false: the
// session was removed meanwhile.
func (ss *session) establish(st dtls.State, v *peerVerifier) bool {
	s := ss.srv
	ss.ident = identityFromState(st, v.mode, true)
	ss.suite = dtls.CipherSuiteName(st.CipherSuiteID)
	s.mu.Lock()
	if ss.removed {
		s.mu.Unlock()
		return false
	}
	ss.resumed = len(ss.offered) > 0 && bytes.Equal(ss.offered, st.SessionID)
	delete(s.half, ss)
	s.nHandshaking--
	ss.established.Store(true)
	pred := ss.pred
	if pred != nil {
		if s.next[ss.key] == ss {
			delete(s.next, ss.key)
		}
		s.byAddr[ss.key] = ss
		ss.pred = nil
	}
	s.mu.Unlock()
	if pred != nil {
		// The peer handshook again from the same address: it has lost
		// or abandoned the old session, which ends without a
		// close_notify (on SMS that alert is an SMS nobody can read).
		pred.quiet.Store(true)
		pred.close()
		s.st.replaced.Add(1)
	}
	s.st.handshakesOK.Add(1)
	if ss.resumed {
		s.st.resumed.Add(1)
	}
	s.log.Debug("dtls server: session established", "peer", ss.addr, "identity", ss.ident.String(),
		"suite", dtls.CipherSuiteName(st.CipherSuiteID), "cid", len(ss.cid) > 0, "resumed", ss.resumed)
	ss.touch()
	return true
}

// read moves decrypted datagrams to srv.incoming until the session ends.
func (ss *session) read(conn *dtls.Conn) {
	s := ss.srv
	go func() {
		<-ss.closing
		ss.closeConn() // sends close_notify; unblocks Read
	}()
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	for {
		n, err := conn.Read(buf)
		if err != nil {
			s.log.Debug("dtls server: session ended", "peer", ss.addr, "err", err)
			return
		}
		ss.touch()
		ra := conn.RemoteAddr()
		if ss.moved.Swap(false) {
			s.mu.Lock()
			k := ss.key
			s.mu.Unlock()
			ra = ss.awaitAddressUpdate(k)
		}
		s.mu.Lock()
		// A session already taken out of the table (expired, closed)
		// must not put itself back by rebinding.
		if k := bearer.AddrKey(ra); k != ss.key && !ss.removed {
			s.rebindLocked(ss, ra, k)
		}
		addr := &Addr{Inner: ss.addr, Identity: ss.ident}
		s.mu.Unlock()
		select {
		case s.incoming <- datagram{b: bytes.Clone(buf[:n]), addr: addr}:
		case <-ss.closing:
			return
		case <-s.done:
			return
		}
	}
}

// addressUpdateWait bounds how long a session's reader waits for pion to
// apply an RFC 9146 address update after returning the record's data.
const addressUpdateWait = 5 * time.Millisecond

// awaitAddressUpdate is called when a record carrying this session's CID
// came from another address. pion/dtls updates the peer address only after
// it has authenticated the record and handed its data to Read, so the data
// can arrive a moment before the new address is visible; wait for it
// briefly. A forged or replayed record never updates it: the wait then
// ends at the bound and the old address stays.
func (ss *session) awaitAddressUpdate(old string) net.Addr {
	deadline := time.Now().Add(addressUpdateWait)
	for time.Now().Before(deadline) {
		if cur := ss.conn.RemoteAddr(); bearer.AddrKey(cur) != old {
			return cur
		}
		time.Sleep(50 * time.Microsecond)
	}
	return ss.conn.RemoteAddr()
}

// rebindLocked moves ss to a new address after pion accepted a CID record
// from it (RFC 9146 §6). s.mu is held.
func (s *Server) rebindLocked(ss *session, ra net.Addr, key string) {
	if s.byAddr[ss.key] == ss {
		delete(s.byAddr, ss.key)
	}
	s.log.Debug("dtls server: peer address changed", "from", ss.addr, "to", ra, "identity", ss.ident.String())
	ss.addr, ss.key = ra, key
	s.byAddr[key] = ss
	s.st.rebinds.Add(1)
}

// cleanup removes the session from the Server's maps and closes its conns.
func (ss *session) cleanup() {
	s := ss.srv
	ss.close()
	s.mu.Lock()
	s.removeLocked(ss)
	s.mu.Unlock()
	ss.closeConn()
	_ = ss.vc.Close()
}

// sessionGate is a server session's view of the SessionCache: a peer that
// asks for a connection ID of its own gets a full handshake instead of a
// resumed session. pion/dtls 3.1.15 gives an abbreviated handshake no
// connection_id extension, but keeps the CID the ClientHello asked for
// and wraps every record it sends in it: the client, told of no CID,
// cannot read a single answer. (Our Dial asks for no CID of its own when
// it offers a session.)
type sessionGate struct {
	c  *SessionCache
	ss *session
}

func (g sessionGate) Get(key []byte) (dtls.Session, error) {
	if g.ss.ownCID.Load() {
		g.ss.srv.st.notResumedCID.Add(1)
		return dtls.Session{}, nil
	}
	return g.c.Get(key)
}
func (g sessionGate) Set(key []byte, s dtls.Session) error { return g.c.Set(key, s) }
func (g sessionGate) Del(key []byte) error                 { return g.c.Del(key) }
