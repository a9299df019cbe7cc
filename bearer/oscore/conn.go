package oscore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// Addr is the address of a peer whose message was verified with an OSCORE
// context, as ReadFrom returns it. Network and String are the inner
// address's, so bearer.AddrKey is the same with or without OSCORE; WriteTo
// accepts either form. It implements bearer.IdentityAddr. The zero Addr
// has no inner address: its Network and String are "".
type Addr struct {
	Inner    net.Addr
	Identity bearer.Identity
}

var _ bearer.IdentityAddr = (*Addr)(nil)

// Network returns the inner address's network.
func (a *Addr) Network() string { return ofInner(a.Inner, net.Addr.Network) }

// String returns the inner address's string.
func (a *Addr) String() string { return ofInner(a.Inner, net.Addr.String) }

// ofInner is f(inner), or "" for a zero Addr's nil inner address.
func ofInner(inner net.Addr, f func(net.Addr) string) string {
	if inner == nil {
		return ""
	}
	return f(inner)
}

// PeerIdentity returns the OSCORE identity.
func (a *Addr) PeerIdentity() bearer.Identity { return a.Identity }

func unwrap(a net.Addr) net.Addr {
	for {
		switch v := a.(type) {
		case *Addr:
			a = v.Inner
		default:
			return a
		}
	}
}

// Identity returns the bearer identity of a peer verified with c.
func (c *Context) Identity() bearer.Identity {
	id := bearer.Identity{Mode: "oscore", OSCOREID: append([]byte{}, c.p.RecipientID...)}
	if c.p.IDContext != nil {
		id.OSCOREIDContext = append([]byte{}, c.p.IDContext...)
	}
	return id
}

// ConnOption configures a Conn.
type ConnOption func(*connConfig) error

type connConfig struct {
	contexts    []*Context
	peers       map[string]peerCtx
	def         *Context
	allowPlain  bool
	kidContext  bool
	metrics     []Metrics
	log         *slog.Logger
	maxBindings int
	maxCache    int
	maxCacheB   int
	obsIdle     time.Duration
}

type peerCtx struct {
	addr net.Addr
	ctx  *Context
}

// WithContext adds a context: requests whose kid (and kid context) match
// its Recipient ID (and ID Context) are verified with it.
func WithContext(c *Context) ConnOption {
	return func(cfg *connConfig) error {
		if c == nil {
			return fmt.Errorf("%w: nil context", ErrInvalidOption)
		}
		cfg.contexts = append(cfg.contexts, c)
		return nil
	}
}

// WithPeer adds c and binds it to peer: requests to peer are protected
// with it, and unprotected messages from peer are refused even with
// AllowPlain (no downgrade for a peer the operator configured).
func WithPeer(peer net.Addr, c *Context) ConnOption {
	return func(cfg *connConfig) error {
		if c == nil || peer == nil {
			return fmt.Errorf("%w: WithPeer needs an address and a context", ErrInvalidOption)
		}
		cfg.contexts = append(cfg.contexts, c)
		if cfg.peers == nil {
			cfg.peers = map[string]peerCtx{}
		}
		cfg.peers[bearer.AddrKey(peer)] = peerCtx{peer, c}
		return nil
	}
}

// WithDefault adds c and protects requests to any peer without its own
// context with it (a client talking to its one server).
func WithDefault(c *Context) ConnOption {
	return func(cfg *connConfig) error {
		if c == nil {
			return fmt.Errorf("%w: nil context", ErrInvalidOption)
		}
		cfg.contexts = append(cfg.contexts, c)
		cfg.def = c
		return nil
	}
}

// AllowPlain passes unprotected messages from peers without a configured
// context up with a zero identity (a server that also serves NoSec
// devices; the layer above decides). Default: refused with 4.01.
func AllowPlain() ConnOption { return func(c *connConfig) error { c.allowPlain = true; return nil } }

// WithKIDContext sends the ID Context as kid context in every request
// (needed when the peer tells contexts apart by it, RFC 8613 §6.1).
func WithKIDContext() ConnOption {
	return func(c *connConfig) error { c.kidContext = true; return nil }
}

// WithMetrics adds a Metrics receiver (Stats counts anyway).
func WithMetrics(m Metrics) ConnOption {
	return func(c *connConfig) error {
		if m != nil {
			c.metrics = append(c.metrics, m)
		}
		return nil
	}
}

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(l *slog.Logger) ConnOption {
	return func(c *connConfig) error { c.log = l; return nil }
}

// WithLimits bounds the request/response bindings (default 16,384 each
// way), the retransmission and duplicate caches (default 16,384 entries
// and 4 MiB of protected datagrams).
func WithLimits(bindings, cacheEntries, cacheBytes int) ConnOption {
	return func(c *connConfig) error {
		if bindings < 1 || cacheEntries < 1 || cacheBytes < 1 {
			return fmt.Errorf("%w: limits must be positive", ErrInvalidOption)
		}
		c.maxBindings, c.maxCache, c.maxCacheB = bindings, cacheEntries, cacheBytes
		return nil
	}
}

// Conn runs OSCORE (RFC 8613) over any bearer.Bearer and is itself a
// bearer.Bearer: the CoAP message layer (bearer.Endpoint) above it sends and
// receives plain CoAP; Conn protects every request and response end to end
// and verifies every one it receives. Empty messages (ACK, RST, ping) pass
// as they are: OSCORE protects requests and responses, not the message
// layer (RFC 8613 §4.1).
//
// It owns no goroutine but the short-lived ones re-sending an Echo retry
// (stopped by Close).
//
// The zero Conn is not usable: use New. It behaves as a closed Conn whose
// calls fail with ErrNotCreated; AddContext and BindPeer do nothing.
type Conn struct {
	inner  bearer.Bearer
	params bearer.Params
	cfg    connConfig
	log    *slog.Logger
	m      multiMetrics
	stats  Counters

	mu      sync.Mutex
	byKID   map[string]*Context // kid context | kid → context
	byRID   map[string]*Context // kid → context with Appendix B.2 (its ID Context changes)
	byPeer  map[string]peerCtx  // configured peers
	learned map[string]*Context // peers seen with a verified request
	srv     *lru[tokKey, *srvBinding]
	cli     *lru[tokKey, *cliBinding]
	sent    *lru[midKey, sentEntry] // protected datagrams by MID, for retransmissions
	seen    *lru[midKey, seenEntry] // accepted requests by MID, for duplicates
	retries map[midKey]*cliBinding  // Echo retries awaiting their ACK

	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	rbuf   []byte
	rmu    sync.Mutex
}

type tokKey struct {
	peer  string
	token string
}

type midKey struct {
	peer string
	mid  uint16
}

type sentEntry struct {
	digest [32]byte
	data   []byte
}

type seenEntry struct {
	digest [32]byte
	ks     *keyset // the keys the request verified with
}

type srvBinding struct {
	ctx     *Context
	rid     RequestID
	observe bool
	first   [32]byte // digest of the first response's plaintext
	replied bool
}

type cliBinding struct {
	ctx       *Context
	rid       RequestID
	plain     []byte // the plaintext request, for an Echo retry
	mid       uint16
	typ       message.Type
	observe   bool
	notified  bool
	lastNotif uint64
	retries   int   // re-sent after an Echo challenge or a B.2 response #1 (at most maxRetries)
	retryMID  int32 // -1: none
	stop      chan struct{}
}

// New wraps inner. At least one context is needed unless AllowPlain.
func New(inner bearer.Bearer, opts ...ConnOption) (*Conn, error) {
	if inner == nil {
		return nil, fmt.Errorf("%w: nil bearer", ErrInvalidOption)
	}
	cfg := connConfig{maxBindings: 16384, maxCache: 16384, maxCacheB: 4 << 20, obsIdle: 24 * time.Hour}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if len(cfg.contexts) == 0 && !cfg.allowPlain {
		return nil, fmt.Errorf("%w: no context and plain not allowed", ErrInvalidOption)
	}
	c := &Conn{
		inner: inner, cfg: cfg, log: cfg.log,
		retries: map[midKey]*cliBinding{}, byKID: map[string]*Context{}, byRID: map[string]*Context{},
		byPeer: map[string]peerCtx{}, learned: map[string]*Context{},
		srv:    newLRU[tokKey, *srvBinding](cfg.maxBindings, 0, nil),
		cli:    newLRU[tokKey, *cliBinding](cfg.maxBindings, 0, nil),
		sent:   newLRU[midKey, sentEntry](cfg.maxCache, cfg.maxCacheB, func(e sentEntry) int { return len(e.data) + 64 }),
		seen:   newLRU[midKey, seenEntry](cfg.maxCache, 0, nil),
		closed: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.m = append(multiMetrics{&c.stats}, cfg.metrics...)
	for _, x := range cfg.contexts {
		if err := c.indexLocked(x); err != nil {
			return nil, err
		}
	}
	for k, v := range cfg.peers {
		c.byPeer[k] = v
	}
	p := inner.Params()
	ov := Overhead(maxKIDContext(cfg.kidContext, cfg.contexts))
	p.Name = "oscore+" + p.Name
	p.MaxDatagram -= ov
	p.PreferredDatagram = max(p.PreferredDatagram-ov, 16)
	if p.BlockDatagram > 0 {
		p.BlockDatagram = max(p.BlockDatagram-ov, 16)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("oscore: inner bearer too small: %w", err)
	}
	c.params = p
	c.rbuf = make([]byte, inner.Params().MaxDatagram+1)
	return c, nil
}

// maxKIDContext reports whether requests may carry a kid context and its
// longest length: the ID Context with WithKIDContext, a B.2 run's
// bstr(R2||R3) with WithRederivation.
func maxKIDContext(kidContext bool, cs []*Context) (bool, int) {
	n, any := 0, kidContext
	for _, c := range cs {
		if c.b2 != nil {
			any, n = true, max(n, b2MaxKIDContext)
		} else if kidContext {
			n = max(n, len(c.p.IDContext))
		}
	}
	return any, n
}

// Overhead is the most OSCORE adds to a message: the AEAD tag (8), the
// inner code (1), a payload marker (1), the OSCORE option (up to 3 bytes
// of option header, the flag byte, a 5-byte Partial IV, a kid of up to
// MaxIDLen bytes and, with kidContext, the kid context and its length).
func Overhead(kidContext bool, idContextLen int) int {
	n := tagLen + 1 + 1 + 3 + 1 + 5 + MaxIDLen
	if kidContext {
		n += 1 + idContextLen
	}
	return n
}

func kidKey(idctx, kid []byte) string {
	if idctx == nil {
		return "\x00|" + string(kid)
	}
	return "\x01" + string(idctx) + "|" + string(kid)
}

// indexLocked makes x findable by the kid (and kid context) of requests.
// A context with Appendix B.2 is found by its Recipient ID alone, which
// must then be unique in the Conn.
func (c *Conn) indexLocked(x *Context) error {
	rid := string(x.p.RecipientID)
	if other, ok := c.byRID[rid]; ok && other != x {
		return fmt.Errorf("%w: two contexts with Recipient ID %x and Appendix B.2", ErrInvalidOption, x.p.RecipientID)
	}
	if x.b2 != nil {
		for _, y := range c.byKID {
			if string(y.p.RecipientID) == rid {
				return fmt.Errorf("%w: Recipient ID %x of a context with Appendix B.2 is used by another context", ErrInvalidOption, x.p.RecipientID)
			}
		}
		c.byRID[rid] = x
		return nil
	}
	c.byKID[kidKey(x.p.IDContext, x.p.RecipientID)] = x
	return nil
}

// AddContext adds (or replaces) a context at run time. It fails when x
// has Appendix B.2 and another context has its Recipient ID.
func (c *Conn) AddContext(x *Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKID == nil { // a zero Conn
		return ErrNotCreated
	}
	c.unindexLocked(x.p.IDContext, x.p.RecipientID)
	return c.indexLocked(x)
}

// BindPeer binds peer to x at run time (see WithPeer).
func (c *Conn) BindPeer(peer net.Addr, x *Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKID == nil { // a zero Conn
		return ErrNotCreated
	}
	c.unindexLocked(x.p.IDContext, x.p.RecipientID)
	if err := c.indexLocked(x); err != nil {
		return err
	}
	c.byPeer[bearer.AddrKey(peer)] = peerCtx{peer, x}
	return nil
}

func (c *Conn) unindexLocked(idctx, rid []byte) {
	delete(c.byKID, kidKey(idctx, rid))
	delete(c.byRID, string(rid))
}

// RemoveContext forgets x and every peer bound to it.
func (c *Conn) RemoveContext(x *Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := kidKey(x.p.IDContext, x.p.RecipientID)
	if c.byKID[k] == x {
		delete(c.byKID, k)
	}
	if c.byRID[string(x.p.RecipientID)] == x {
		delete(c.byRID, string(x.p.RecipientID))
	}
	for pk, v := range c.byPeer {
		if v.ctx == x {
			delete(c.byPeer, pk)
		}
	}
	for pk, v := range c.learned {
		if v == x {
			delete(c.learned, pk)
		}
	}
}

// Stats returns the counters.
func (c *Conn) Stats() map[string]int64 { return c.stats.Snapshot() }

// Counter returns one count.
func (c *Conn) Counter(ev Event) int64 { return c.stats.Get(ev) }

// Params returns the inner bearer's parameters, sizes reduced by Overhead.
func (c *Conn) Params() bearer.Params { return c.params }

// Backlog and LastHeard are the inner bearer's (bearer.Backlogger,
// bearer.PeerActivity: over SMS, the outbox and the arrival of segments),
// for the message layer's RFC 9177 timers.
func (c *Conn) Backlog(peer net.Addr) int {
	if c.inner == nil {
		return 0
	}
	return bearer.BacklogOf(c.inner, innerAddr(peer))
}

// LastHeard: see Backlog.
func (c *Conn) LastHeard(peer net.Addr) time.Time {
	if c.inner == nil {
		return time.Time{}
	}
	return bearer.LastHeardOf(c.inner, innerAddr(peer))
}

// innerAddr returns the inner bearer's address of addr.
func innerAddr(addr net.Addr) net.Addr {
	if a, ok := addr.(*Addr); ok && a != nil && a.Inner != nil {
		return a.Inner
	}
	return addr
}

// LocalAddr returns the inner bearer's local address.
func (c *Conn) LocalAddr() net.Addr {
	if c.inner == nil {
		return nil
	}
	return c.inner.LocalAddr()
}

// SetDeadline sets the inner bearer's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.setInner(bearer.Bearer.SetDeadline, t) }

// SetReadDeadline sets the inner bearer's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.setInner(bearer.Bearer.SetReadDeadline, t)
}

// SetWriteDeadline sets the inner bearer's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setInner(bearer.Bearer.SetWriteDeadline, t)
}

// setInner sets a deadline of the inner bearer (ErrNotCreated for a zero
// Conn).
func (c *Conn) setInner(set func(bearer.Bearer, time.Time) error, t time.Time) error {
	if c.inner == nil {
		return ErrNotCreated
	}
	return set(c.inner, t)
}

// Close stops the Echo retries and closes the inner bearer.
func (c *Conn) Close() error {
	if c.inner == nil { // a zero Conn: nothing runs
		return nil
	}
	var err error
	c.once.Do(func() {
		close(c.closed)
		err = c.inner.Close()
		c.wg.Wait()
	})
	return err
}

func digest(b []byte) [32]byte { return sha256.Sum256(b) }

// lifetime is how long bindings and caches keep an exchange: the inner
// bearer's EXCHANGE_LIFETIME.
func (c *Conn) lifetime() time.Duration { return c.inner.Params().ExchangeLifetime() }

// contextFor returns the context that protects requests to peer.
func (c *Conn) contextFor(pk string) (*Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.byPeer[pk]; ok {
		return v.ctx, true
	}
	if x, ok := c.learned[pk]; ok {
		return x, false
	}
	return c.cfg.def, false
}

// configured reports whether plain messages from pk must be refused.
func (c *Conn) configured(pk string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.byPeer[pk]
	return ok || (!c.cfg.allowPlain)
}

var errClosed = fmt.Errorf("oscore: closed: %w", net.ErrClosed)

// isClosed reports whether Close was called.
func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// ErrNoContextForPeer is wrapped by WriteTo when a request is for a peer
// with no context and plain is not allowed.
var ErrNoContextForPeer = errors.New("oscore: no security context for peer")

// WriteTo protects the CoAP datagram p and sends it to addr. Empty
// messages go as they are; a request is protected with the peer's context;
// a response with the context of the request it answers.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.inner == nil {
		return 0, ErrNotCreated
	}
	if c.isClosed() {
		return 0, errClosed
	}
	peer := unwrap(addr)
	if len(p) > c.params.MaxDatagram {
		return 0, fmt.Errorf("%w: %d bytes > %d", bearer.ErrTooLarge, len(p), c.params.MaxDatagram)
	}
	m, err := decodeDatagram(p)
	if err != nil || m.Code == codes.Empty {
		// Empty messages, and whatever the message layer sends that we
		// cannot read, are not ours to protect.
		return c.inner.WriteTo(p, peer)
	}
	pk := bearer.AddrKey(peer)
	now := time.Now()
	mk := midKey{pk, uint16(m.MessageID)}
	d := digest(p)
	c.mu.Lock()
	if e, ok := c.sent.get(mk, now); ok && e.digest == d {
		// A retransmission by the message layer: the same protected bytes
		// (a new Partial IV would make it a different message).
		c.mu.Unlock()
		if _, err := c.inner.WriteTo(e.data, peer); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.mu.Unlock()
	var out *message.Message
	if m.Code>>5 == 0 {
		out, err = c.protectRequest(m, p, pk)
	} else {
		out, err = c.protectResponse(m, pk)
	}
	if err != nil {
		if errors.Is(err, ErrSeqStore) || errors.Is(err, ErrSeqExhausted) {
			c.m.Count(EventSeqStoreError, 1)
		}
		return 0, err
	}
	if out == nil { // plain pass-through
		return c.inner.WriteTo(p, peer)
	}
	data, err := encodeDatagram(out)
	if err != nil {
		return 0, fmt.Errorf("oscore: encode: %w", err)
	}
	c.mu.Lock()
	c.sent.put(mk, sentEntry{d, data}, now.Add(c.lifetime()), now)
	c.mu.Unlock()
	if _, err := c.inner.WriteTo(data, peer); err != nil {
		return 0, err
	}
	c.m.Count(EventProtected, 1)
	return len(p), nil
}

func (c *Conn) protectRequest(m *message.Message, p []byte, pk string) (*message.Message, error) {
	x, _ := c.contextFor(pk)
	if x == nil {
		if c.cfg.allowPlain {
			return nil, nil
		}
		return nil, fmt.Errorf("%w %s", ErrNoContextForPeer, pk)
	}
	out, rid, err := x.ProtectRequest(m, c.cfg.kidContext)
	if err != nil {
		return nil, err
	}
	if rid.phase == b2Start {
		c.m.Count(EventB2Started, 1)
		c.log.Info("oscore: no established context for the peer, Appendix B.2 run started", "peer", pk)
	}
	obs, err := m.Options.Observe()
	b := &cliBinding{ctx: x, rid: rid, plain: append([]byte(nil), p...), mid: uint16(m.MessageID), typ: m.Type,
		observe: err == nil && obs == 0, retryMID: -1}
	now := time.Now()
	exp := now.Add(c.lifetime())
	if b.observe {
		exp = now.Add(c.cfg.obsIdle)
	}
	c.mu.Lock()
	c.cli.put(tokKey{pk, string(m.Token)}, b, exp, now)
	c.mu.Unlock()
	return out, nil
}

func (c *Conn) protectResponse(m *message.Message, pk string) (*message.Message, error) {
	tk := tokKey{pk, string(m.Token)}
	now := time.Now()
	c.mu.Lock()
	b, ok := c.srv.get(tk, now)
	c.mu.Unlock()
	if !ok {
		if c.cfg.allowPlain && !c.configured(pk) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: response to %s matches no verified request", ErrNotProtected, pk)
	}
	pt, _ := plaintext(m.Code, m.Options, m.Payload)
	d := digest(pt)
	c.mu.Lock()
	// A second, different response to one request (a notification, or a
	// separate response after another) must not reuse the request's nonce.
	own := b.observe || m.Options.HasOption(message.Observe) || (b.replied && b.first != d)
	if !b.replied {
		b.replied, b.first = true, d
	}
	if b.observe {
		c.srv.touch(tk, now.Add(c.cfg.obsIdle))
	}
	c.mu.Unlock()
	return b.ctx.ProtectResponse(m, b.rid, own)
}
