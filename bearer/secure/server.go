package secure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/logthrottle"
	"github.com/pion/dtls/v3"
)

// Server is the server side of DTLS over a bearer: a bearer.Bearer whose
// ReadFrom returns decrypted datagrams from authenticated peers (with an
// *Addr carrying the peer's bearer.Identity) and whose WriteTo encrypts to
// the peer's established session.
//
// A demultiplexer goroutine reads the inner bearer and routes each datagram
// by its first DTLS record: records with an RFC 9146 connection ID go to the
// session that issued it (whatever the source address), others to the
// session of their source address; an epoch-0 ClientHello from an unknown
// address starts a new session (pion/dtls answers it with a
// HelloVerifyRequest cookie before any costly work). Malformed datagrams and
// records for no session are dropped and counted in Stats.
//
// The zero Server is not usable: use NewServer. It behaves as a closed
// Server whose calls fail with ErrNotCreated.
type Server struct {
	inner  bearer.Bearer
	cfg    Config
	params bearer.Params
	cidLen int // length of issued CIDs; 0 when disabled
	mtu    int
	log    *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu           sync.Mutex
	byAddr       map[string]*session // AddrKey → current session of that address
	next         map[string]*session // AddrKey → handshaking successor of an established session
	byCID        map[string]*session
	all          map[*session]struct{} // every live session
	half         map[*session]struct{} // sessions still handshaking
	nSessions    int
	nHandshaking int
	closed       bool

	incoming chan datagram // decrypted datagrams, bounded
	rd       deadline
	wdMu     sync.Mutex
	wd       time.Time
	done     chan struct{}
	fatal    atomic.Pointer[error] // inner bearer read error that stopped the demultiplexer
	once     sync.Once
	wg       sync.WaitGroup // demux and janitor
	sessWG   sync.WaitGroup // session goroutines
	bufs     sync.Pool

	st counters
	// failLog limits the lines about failed handshakes: anyone can send
	// ClientHellos from spoofed addresses, so each failure is counted
	// (HandshakesFailed) but only the first lines of every 10 s are
	// logged, then one with the number held back (LogSuppressed).
	failLog logthrottle.Limiter
}

// counters are the Server's statistics, updated atomically.
type counters struct {
	handshakesOK, handshakesFailed, refused, garbage, unknownPeer,
	queueDrops, expired, rebinds, evicted, datagramsIn, bytesIn, helloVersion, logSuppressed,
	resumed, replaced, notResumedCID atomic.Uint64
}

// Stats is a snapshot of a Server's counters; every bounded structure of
// the Server has its gauge or drop counter here.
type Stats struct {
	// Sessions is the current number of sessions (handshaking included),
	// bounded by Config.MaxSessions.
	Sessions int
	// Handshaking is the current number of handshakes in progress, bounded
	// by Config.MaxHandshakes.
	Handshaking int
	// HandshakesOK and HandshakesFailed count finished handshakes (failed
	// ones include timed-out and evicted handshakes).
	HandshakesOK, HandshakesFailed uint64
	// Resumed counts the HandshakesOK that were abbreviated handshakes
	// resuming a session from Config.Sessions (RFC 5246 §7.3).
	Resumed uint64
	// Replaced counts established sessions ended by a new handshake from
	// the same peer (RFC 6347 §4.2.8: a device that restarted, or lost its
	// session); they end without a close_notify.
	Replaced uint64
	// NotResumedCID counts sessions a peer offered that were not resumed
	// because its ClientHello asked for a connection ID of its own (pion
	// cannot give a resumed session one; see sessionGate): a full
	// handshake instead.
	NotResumedCID uint64
	// Refused counts ClientHellos dropped because a limit was reached.
	Refused uint64
	// Garbage counts datagrams that did not start with a DTLS record.
	Garbage uint64
	// UnknownPeer counts well-formed records for no session (unknown CID,
	// or a non-ClientHello from an unknown address).
	UnknownPeer uint64
	// QueueDrops counts datagrams dropped on a full per-peer queue.
	QueueDrops uint64
	// Expired counts sessions closed for idleness. A session is out of the
	// session table (and of Sessions) before it is counted here, so WriteTo
	// to its peer then fails with ErrNoSession.
	Expired uint64
	// Evicted counts handshakes dropped to make room for a new one: at the
	// MaxSessions or MaxHandshakes limit, the oldest handshake whose peer
	// has not echoed a HelloVerifyRequest cookie yet gives way.
	Evicted uint64
	// Rebinds counts session address changes through connection IDs.
	Rebinds uint64
	// DatagramsIn and BytesIn count what the inner bearer delivered.
	DatagramsIn, BytesIn uint64
	// HelloVersionRewritten counts ClientHello datagrams whose record-layer
	// version was an older or unusual {254, xx} (mbedTLS 2.x sends 0xFE00)
	// and was read as DTLS 1.0 (see the package documentation).
	HelloVersionRewritten uint64
	// LogSuppressed counts handshake failure log lines held back by the
	// log limit (HandshakesFailed counts every failure).
	LogSuppressed uint64
}

// NewServer starts a DTLS server on inner. The Server owns inner from now
// on: Close closes it. Its Params are inner's with Name "dtls+"+inner name
// and the datagram sizes reduced by the record overhead (see Overhead).
func NewServer(inner bearer.Bearer, cfg *Config) (*Server, error) {
	if inner == nil {
		return nil, fmt.Errorf("%w: nil inner bearer", ErrInvalidOption)
	}
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	if err := checkSuitesKnown(c.CipherSuites); err != nil {
		return nil, err
	}
	s := &Server{
		inner:    inner,
		cfg:      c,
		log:      c.Logger.With("bearer", "dtls+"+inner.Params().Name),
		byAddr:   make(map[string]*session),
		next:     make(map[string]*session),
		byCID:    make(map[string]*session),
		all:      make(map[*session]struct{}),
		half:     make(map[*session]struct{}),
		incoming: make(chan datagram, c.QueueLen),
		done:     make(chan struct{}),
	}
	s.cidLen = c.issuedCIDLen()
	var err error
	s.params, s.mtu, err = wrapParams(inner.Params(), c.suites(true), s.cidLen, c.MTU)
	if err != nil {
		return nil, err
	}
	bufSize := inner.Params().MaxDatagram + 1
	s.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.demux()
	if c.IdleTimeout > 0 {
		s.wg.Add(1)
		go s.janitor()
	}
	return s, nil
}

// wrapParams derives the Params of DTLS over inner and the handshake MTU.
func wrapParams(p bearer.Params, suites []dtls.CipherSuiteID, cidLen, mtu int) (bearer.Params, int, error) {
	o := recordOverhead(suites, cidLen)
	q := p
	q.Name = "dtls+" + p.Name
	q.MaxDatagram -= o
	q.PreferredDatagram -= o
	if q.PreferredDatagram < 16 {
		q.PreferredDatagram = min(16, q.MaxDatagram)
	}
	if q.BlockDatagram > 0 {
		q.BlockDatagram = max(q.BlockDatagram-o, q.PreferredDatagram)
	}
	if err := q.Validate(); err != nil {
		return q, 0, fmt.Errorf("%w: inner bearer too small for %d bytes of record overhead: %w", ErrInvalidOption, o, err)
	}
	if mtu <= 0 {
		mtu = min(p.MaxDatagram, 1200)
	}
	return q, min(mtu, p.MaxDatagram), nil
}

// Overhead returns the bytes a DTLS record adds to each datagram with cfg's
// cipher suites and connection IDs: 13-byte header, 8-byte explicit nonce
// and 8-byte tag for the CCM_8 suites (29 bytes), plus CIDLength+1 bytes
// (CID and inner content type, RFC 9146 §4) when connection IDs are used.
// It is what Server.Params subtracts. A client cannot know before the
// handshake whether and how long a CID the server will issue, so for a
// client it assumes DefaultCIDLength (none when CIDLength is new(0));
// Conn.Params, computed after the handshake, is exact.
func Overhead(cfg *Config, server bool) int {
	if cfg == nil {
		cfg = &Config{}
	}
	c := cfg.withDefaults()
	return recordOverhead(c.suites(server), c.issuedCIDLen())
}

// Params returns inner's parameters adapted to DTLS.
func (s *Server) Params() bearer.Params { return s.params }

// Backlog and LastHeard are the inner bearer's (bearer.Backlogger,
// bearer.PeerActivity: over SMS, the outbox and the arrival of segments),
// for the message layer's RFC 9177 timers.
func (s *Server) Backlog(peer net.Addr) int {
	if s.inner == nil {
		return 0
	}
	return bearer.BacklogOf(s.inner, unwrapAddr(peer))
}

// LastHeard: see Backlog.
func (s *Server) LastHeard(peer net.Addr) time.Time {
	if s.inner == nil {
		return time.Time{}
	}
	return bearer.LastHeardOf(s.inner, unwrapAddr(peer))
}

// LocalAddr returns the inner bearer's local address.
func (s *Server) LocalAddr() net.Addr {
	if s.inner == nil {
		return nil
	}
	return s.inner.LocalAddr()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n, h := s.nSessions, s.nHandshaking
	s.mu.Unlock()
	return Stats{
		Sessions: n, Handshaking: h,
		HandshakesOK:     s.st.handshakesOK.Load(),
		HandshakesFailed: s.st.handshakesFailed.Load(),
		Resumed:          s.st.resumed.Load(),
		Replaced:         s.st.replaced.Load(),
		NotResumedCID:    s.st.notResumedCID.Load(),
		Refused:          s.st.refused.Load(),
		Garbage:          s.st.garbage.Load(),
		UnknownPeer:      s.st.unknownPeer.Load(),
		QueueDrops:       s.st.queueDrops.Load(),
		Expired:          s.st.expired.Load(),
		Evicted:          s.st.evicted.Load(),
		Rebinds:          s.st.rebinds.Load(),
		DatagramsIn:      s.st.datagramsIn.Load(),
		BytesIn:          s.st.bytesIn.Load(),

		HelloVersionRewritten: s.st.helloVersion.Load(),
		LogSuppressed:         s.st.logSuppressed.Load(),
	}
}

// logFailure logs a failed handshake within the log limit.
func (s *Server) logFailure(msg string, args ...any) {
	ok, held := s.failLog.Allow()
	if !ok {
		s.st.logSuppressed.Add(1)
		return
	}
	s.log.Info(msg, append(args, "suppressed", held)...)
}

// ReadFrom returns the next decrypted datagram and its sender as an *Addr.
// A datagram longer than p is truncated and an error wrapping
// io.ErrShortBuffer is returned with it.
func (s *Server) ReadFrom(p []byte) (int, net.Addr, error) {
	if s.done == nil {
		return 0, nil, ErrNotCreated
	}
	select {
	case d := <-s.incoming:
		n := copy(p, d.b)
		if n < len(d.b) {
			return n, d.addr, fmt.Errorf("secure: %d-byte datagram into %d-byte buffer: %w", len(d.b), len(p), io.ErrShortBuffer)
		}
		hintPurpose(s.inner, d.addr, bearer.Received, d.b)
		return n, d.addr, nil
	case <-s.rd.done():
		return 0, nil, &timeoutError{op: "read"}
	case <-s.done:
		if e := s.fatal.Load(); e != nil {
			return 0, nil, *e
		}
		return 0, nil, ErrClosed
	}
}

// WriteTo encrypts p to the established session of addr (an *Addr from
// ReadFrom or the peer's inner address). It fails with an error wrapping
// ErrNoSession when there is none — never established, expired, closed by
// CloseSession or by the peer, or ending while p was being written — and
// bearer.ErrTooLarge when p exceeds Params().MaxDatagram.
func (s *Server) WriteTo(p []byte, addr net.Addr) (int, error) {
	if s.done == nil {
		return 0, ErrNotCreated
	}
	if len(p) > s.params.MaxDatagram {
		return 0, fmt.Errorf("secure: %d bytes > %d: %w", len(p), s.params.MaxDatagram, bearer.ErrTooLarge)
	}
	select {
	case <-s.done:
		return 0, ErrClosed
	default:
	}
	s.wdMu.Lock()
	wd := s.wd
	s.wdMu.Unlock()
	if !wd.IsZero() && !time.Now().Before(wd) {
		return 0, &timeoutError{op: "write"}
	}
	key := bearer.AddrKey(unwrapAddr(addr))
	s.mu.Lock()
	closed := s.closed
	sess := s.byAddr[key]
	s.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	if sess == nil || !sess.established.Load() || sess.ending() {
		return 0, fmt.Errorf("secure: write to %s: %w", key, ErrNoSession)
	}
	hintPurpose(s.inner, addr, bearer.Sent, p)
	n, err := sess.conn.Write(p)
	if err != nil {
		s.mu.Lock()
		closed = s.closed
		s.mu.Unlock()
		switch {
		case closed:
			return n, ErrClosed
		case sess.ending() || errors.Is(err, dtls.ErrConnClosed) || sess.vc.isClosed():
			// The session ended under the write: it expired, was closed
			// or replaced, or the peer sent close_notify or a fatal
			// alert. For the caller that is no session, as if the write
			// had come a moment later.
			return n, fmt.Errorf("secure: write to %s: session ended (%v): %w", key, err, ErrNoSession)
		}
		return n, fmt.Errorf("secure: write to %s: %w", key, err)
	}
	sess.touch()
	return n, nil
}

// Identity returns the authenticated identity of the established session
// of addr, and whether there is one.
func (s *Server) Identity(addr net.Addr) (bearer.Identity, bool) {
	s.mu.Lock()
	sess := s.byAddr[bearer.AddrKey(unwrapAddr(addr))]
	s.mu.Unlock()
	if sess == nil || !sess.established.Load() {
		return bearer.Identity{}, false
	}
	return sess.ident, true
}

// CipherSuite returns the name of the cipher suite negotiated with addr's
// established session, and whether there is one.
func (s *Server) CipherSuite(addr net.Addr) (string, bool) {
	s.mu.Lock()
	sess := s.byAddr[bearer.AddrKey(unwrapAddr(addr))]
	s.mu.Unlock()
	if sess == nil || !sess.established.Load() {
		return "", false
	}
	return sess.suite, true
}

// CloseSession closes the session of addr (sending a close_notify alert),
// e.g. when the application revokes a credential. It reports whether there
// was one.
func (s *Server) CloseSession(addr net.Addr) bool {
	s.mu.Lock()
	sess := s.byAddr[bearer.AddrKey(unwrapAddr(addr))]
	if sess != nil {
		// Out of the table first: once CloseSession returns, WriteTo to
		// addr fails with ErrNoSession, not on a conn closing under it.
		s.removeLocked(sess)
	}
	s.mu.Unlock()
	if sess == nil {
		return false
	}
	sess.close()
	return true
}

// SetDeadline sets the read and write deadlines.
func (s *Server) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of ReadFrom calls, pending ones included.
func (s *Server) SetReadDeadline(t time.Time) error {
	if s.done == nil {
		return ErrNotCreated
	}
	s.rd.set(t)
	return nil
}

// SetWriteDeadline sets the deadline checked by WriteTo.
func (s *Server) SetWriteDeadline(t time.Time) error {
	if s.done == nil {
		return ErrNotCreated
	}
	s.wdMu.Lock()
	s.wd = t
	s.wdMu.Unlock()
	return nil
}

// Close sends close_notify to every established peer, closes all sessions
// and the inner bearer, and waits for the Server's goroutines to stop.
func (s *Server) Close() error {
	if s.done == nil { // a zero Server: nothing runs
		return nil
	}
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		all := make([]*session, 0, len(s.all))
		for sess := range s.all {
			all = append(all, sess)
		}
		s.mu.Unlock()
		for _, sess := range all {
			if s.cfg.QuietClose {
				sess.quiet.Store(true)
			}
			sess.close()
		}
		s.cancel()
		// Let sessions send their close_notify before the inner bearer goes.
		waitTimeout(&s.sessWG, closeGrace)
		close(s.done)
		err = s.inner.Close()
		s.sessWG.Wait()
		s.rd.stop()
		s.wg.Wait()
	})
	return err
}

// demux reads the inner bearer and routes datagrams to sessions.
func (s *Server) demux() {
	defer s.wg.Done()
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	for {
		n, addr, err := s.inner.ReadFrom(buf)
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Warn("dtls server: inner bearer read failed; stopping", "err", err)
			e := fmt.Errorf("secure: inner bearer: %w", err)
			s.fatal.Store(&e)
			go s.Close() //nolint:errcheck // reported through ReadFrom
			return
		}
		s.st.datagramsIn.Add(1)
		s.st.bytesIn.Add(uint64(n))
		s.route(bytes.Clone(buf[:n]), addr)
	}
}

// route hands one datagram to its session, starting one for a ClientHello.
func (s *Server) route(b []byte, addr net.Addr) {
	ri, err := parseRecord(b, s.cidLen)
	if err != nil {
		s.st.garbage.Add(1)
		s.log.Debug("dtls server: dropped datagram", "peer", addr, "err", err)
		return
	}
	if ri.clientHello && legacyHelloVersion(b) > 0 {
		s.st.helloVersion.Add(1)
	}
	key := bearer.AddrKey(addr)
	s.mu.Lock()
	target, also := s.pickLocked(ri, addr, key)
	if ri.clientHello && target != nil {
		s.noteHelloLocked(target, b)
	}
	dg := datagram{b: b, addr: addr}
	var out []delivery
	if target != nil {
		out = s.admitLocked(target, ri, dg, out)
	}
	if also != nil {
		out = s.admitLocked(also, ri, dg, out)
	}
	s.mu.Unlock()
	if target == nil {
		if !ri.clientHello {
			s.st.unknownPeer.Add(1)
		}
		return
	}
	// No touch here: only authenticated traffic (decrypted data, our own
	// writes) keeps a session from expiring, not datagrams anyone can spoof.
	for _, d := range out {
		if !d.ss.vc.deliver(d.dg) {
			s.st.queueDrops.Add(1)
		}
	}
}

// pickLocked returns the session a datagram from addr (key its AddrKey)
// whose first record is ri goes to, starting one for a ClientHello, and
// the session that gets it too (nil: none). target nil: no session takes
// it.
func (s *Server) pickLocked(ri recordInfo, addr net.Addr, key string) (target, also *session) {
	switch est, nxt := s.byAddr[key], s.next[key]; {
	case ri.cid != nil:
		target = s.byCID[string(ri.cid)]
		if target != nil && target.key != key {
			target.moved.Store(true) // maybe: pion decides if it is authentic
		}
	case ri.clientHello && est == nil:
		target = s.newSessionLocked(addr, key, nil)
	case ri.clientHello && !est.established.Load():
		target = est // retransmission, or the ClientHello with the cookie
	case ri.clientHello && nxt != nil:
		target = nxt
	case ri.clientHello:
		// RFC 6347 §4.2.8: a new handshake on an existing association.
		// The old session stays until the new one completes, so a spoofed
		// ClientHello cannot tear down a live session.
		target = s.newSessionLocked(addr, key, est)
	case nxt != nil && (ri.contentType == contentHandshake || ri.contentType == contentChangeCipherSpec):
		target = nxt
	case nxt != nil && nxt.ccsSent.Load():
		// The successor is sending its ChangeCipherSpec and Finished (the
		// flag is set before the datagram leaves: the peer's answer can
		// come back before the write returns): the peer may now write
		// under the new keys (at once after an abbreviated handshake,
		// where the peer's Finished and its first request arrive
		// together, before the successor has read the Finished and
		// taken the address over). Without a CID neither
		// header says which session a record belongs to, so both get it:
		// the one whose keys fit decrypts it, the other drops it (DTLS
		// drops records that fail authentication silently).
		return nxt, est
	default:
		target = est
	}
	return target, nil
}

// noteHelloLocked notes what target's ClientHello b says: the session it
// offers to resume, and, once the whole hello is in, whether the client
// asks for a connection ID of its own.
func (s *Server) noteHelloLocked(target *session, b []byte) {
	if id := helloSessionID(b); id != nil {
		target.offered = id
	}
	if s.cidLen > 0 && s.cfg.Sessions != nil {
		// Before pion reads the last fragment: it looks the
		// session up as soon as it has the whole ClientHello.
		if m := target.hello.add(b); m != nil {
			target.ownCID.Store(wantsOwnCID(m))
		}
	}
}

// delivery is a datagram for a session's virtual conn.
type delivery struct {
	ss *session
	dg datagram
}

// maxHeld bounds the datagrams a handshaking session holds back (see
// admitLocked).
const maxHeld = 8

// admitLocked appends to out what ss gets now for a datagram whose first
// record is ri. A handshaking session gets records of the new epoch only
// after the peer's ChangeCipherSpec: datagrams can be reordered (SMS
// reorders freely), and pion/dtls leaves a record of the next epoch that
// comes before the ChangeCipherSpec queued for good in an abbreviated
// handshake (its server never reads that queue before the handshake
// ends), so a request sent right after the peer's Finished was lost.
// Such records wait here (at most maxHeld; more are dropped and counted
// in Stats.QueueDrops) and follow the datagram carrying the
// ChangeCipherSpec, in order. s.mu is held.
func (s *Server) admitLocked(ss *session, ri recordInfo, dg datagram, out []delivery) []delivery {
	if ss.established.Load() || ss.peerCCS {
		return append(out, delivery{ss, dg})
	}
	if hasRecord(dg.b, contentChangeCipherSpec) {
		ss.peerCCS = true
		out = append(out, delivery{ss, dg})
		for _, h := range ss.held {
			out = append(out, delivery{ss, h})
		}
		ss.held = nil
		return out
	}
	if ri.epoch > 0 || ri.contentType == contentTLS12CID {
		if len(ss.held) >= maxHeld {
			s.st.queueDrops.Add(1)
			return out
		}
		ss.held = append(ss.held, dg)
		return out
	}
	return append(out, delivery{ss, dg})
}

// newSessionLocked starts a session for addr; pred is the established
// session it will replace, if any. It returns nil (and counts) when a limit
// is reached. s.mu is held.
func (s *Server) newSessionLocked(addr net.Addr, key string, pred *session) *session {
	if s.closed {
		return nil
	}
	if s.nSessions >= s.cfg.MaxSessions || s.nHandshaking >= s.cfg.MaxHandshakes {
		s.evictUnverifiedLocked()
	}
	if s.nSessions >= s.cfg.MaxSessions || s.nHandshaking >= s.cfg.MaxHandshakes {
		s.st.refused.Add(1)
		s.log.Debug("dtls server: refused ClientHello", "peer", addr,
			"sessions", s.nSessions, "handshaking", s.nHandshaking)
		return nil
	}
	sess := &session{srv: s, addr: addr, key: key, pred: pred, closing: make(chan struct{})}
	sess.vc = newVConn(s.inner, s.cfg.QueueLen, sess.sending, sess.wrote)
	sess.created = time.Now()
	sess.touch()
	s.all[sess] = struct{}{}
	s.half[sess] = struct{}{}
	s.nSessions++
	s.nHandshaking++
	if pred == nil {
		s.byAddr[key] = sess
	} else {
		s.next[key] = sess
	}
	s.sessWG.Add(1)
	go sess.run()
	return sess
}

// evictUnverifiedLocked makes room for a new handshake by dropping the
// oldest handshaking session whose peer has not yet echoed a cookie (pion
// has sent it no ServerHello). Such sessions may come from spoofed
// ClientHellos, so they must not be able to lock legitimate peers out for a
// whole HandshakeTimeout. s.mu is held.
func (s *Server) evictUnverifiedLocked() {
	var victim *session
	for ss := range s.half {
		if !ss.verified.Load() && !ss.removed && (victim == nil || ss.created.Before(victim.created)) {
			victim = ss
		}
	}
	if victim == nil {
		return
	}
	s.removeLocked(victim)
	s.st.evicted.Add(1)
	victim.close()
}

// removeLocked takes ss out of the maps and counts once. s.mu is held.
func (s *Server) removeLocked(ss *session) {
	if ss.removed {
		return
	}
	ss.removed = true
	if s.byAddr[ss.key] == ss {
		delete(s.byAddr, ss.key)
	}
	if s.next[ss.key] == ss {
		delete(s.next, ss.key)
	}
	if ss.cid != "" && s.byCID[ss.cid] == ss {
		delete(s.byCID, ss.cid)
	}
	delete(s.all, ss)
	if _, ok := s.half[ss]; ok {
		delete(s.half, ss)
		s.nHandshaking--
	}
	s.nSessions--
}

// janitor closes idle sessions.
func (s *Server) janitor() {
	defer s.wg.Done()
	idle := s.cfg.IdleTimeout
	tick := time.NewTicker(max(idle/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-tick.C:
			var stale []*session
			s.mu.Lock()
			for sess := range s.all {
				if sess.established.Load() && now.Sub(time.Unix(0, sess.last.Load())) > idle {
					// Out of the table before it is counted and closed:
					// from the moment Expired counts it, WriteTo to the
					// peer fails with ErrNoSession, never on the DTLS conn
					// being closed under it, and a new ClientHello from
					// the peer starts a fresh session.
					s.removeLocked(sess)
					stale = append(stale, sess)
				}
			}
			s.mu.Unlock()
			for _, sess := range stale {
				s.st.expired.Add(1)
				if s.cfg.QuietClose {
					sess.quiet.Store(true)
				}
				s.log.Debug("dtls server: session expired", "peer", sess.addr, "identity", sess.ident.String())
				sess.close()
			}
		}
	}
}

// closeGrace bounds how long Close waits for sessions to say goodbye.
const closeGrace = 2 * time.Second

// waitTimeout waits for wg at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// hintPurpose tells an inner bearer that accounts costs by purpose (SMS)
// what the plain datagram p of a DTLS record is (see bearer.PurposeHinter).
func hintPurpose(inner net.PacketConn, addr net.Addr, received bool, p []byte) {
	if h, ok := inner.(bearer.PurposeHinter); ok && addr != nil {
		h.HintPurpose(unwrapAddr(addr), received, bearer.Classify(p))
	}
}
