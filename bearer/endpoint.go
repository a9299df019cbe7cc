package bearer

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/internal/backoff"
)

// blockHeaderRoom is the room kept for the CoAP header, token and options
// when a block size is chosen from Params.BlockTarget(): 4 (header) +
// 8 (token) + 4 (Block1/Block2) + 5 (Size1/Size2) + 9 (ETag) + 4 (Observe)
// + 3 (Content-Format) + 1 (payload marker) = 38, plus 26 for a short
// Uri-Path such as /5/0/0 and Uri-Query. So UDP's 1152 gives 1024-byte
// blocks and one 140-byte SMS segment gives 64-byte blocks (the SMS
// bearer sets BlockDatagram to a concatenated SMS of 9 segments instead,
// giving 1024).
const blockHeaderRoom = 64

// Endpoint is the RFC 7252 message layer on a Bearer: it serves requests
// to a Handler and sends requests with Do, handling message types,
// message IDs and tokens, duplicate detection, piggybacked and separate
// responses, retransmission with the bearer's Params, RFC 7641 observe
// and RFC 7959 block-wise transfers.
//
// The Endpoint owns one read goroutine; handlers run on a bounded number
// of goroutines. Close or Shutdown stops everything and closes the bearer.
//
// The zero Endpoint is a closed one (use NewEndpoint): its requests fail
// with ErrClosed and Done is closed.
type Endpoint struct {
	b        Bearer
	p        Params
	lim      Limits
	h        Handler
	log      *slog.Logger
	m        Metrics
	szx      uint32 // block size exponent: size = 16 << szx
	tokenLen int

	rngMu sync.Mutex
	rng   *rand.Rand
	mid   atomic.Uint32
	seq   atomic.Uint32 // observe sequence numbers (24-bit)

	ctx     context.Context // cancelled by Close; handler contexts derive from it
	cancel  context.CancelFunc
	closing atomic.Bool // Shutdown started: no new requests
	closed  atomic.Bool
	once    sync.Once
	loop    chan struct{} // closed when the read loop exits
	bg      sync.WaitGroup
	hwg     handlerCount // running handlers
	hsem    chan struct{}

	exMu    sync.Mutex
	byMID   map[midKey]*exchange
	byToken map[tokenKey]*exchange
	peers   map[string]*peerState
	waiting atomic.Int64

	dedup    dedupCache
	obs      observerSet
	blocks   blockStore
	inflight inflightList
	qb       qbState // RFC 9177 (qblock*.go)
	fired    firedSet

	rmsg  message.Message // read loop only
	ropts [32]message.Option
}

type midKey struct {
	peer string
	mid  uint16
}

type tokenKey struct {
	peer  string
	token string
}

// NewEndpoint returns an Endpoint on b and starts its read loop. b must
// have valid Params. The Endpoint takes ownership of b: Close closes it.
func NewEndpoint(b Bearer, opts ...EndpointOption) (*Endpoint, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: NewEndpoint: nil bearer", ErrInvalidOption)
	}
	p := b.Params()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("bearer: NewEndpoint: %w", err)
	}
	var cfg endpointConfig
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("bearer: NewEndpoint: %w", err)
		}
	}
	e := &Endpoint{
		b:        b,
		p:        p,
		lim:      cfg.limits.withDefaults(p),
		h:        cfg.handler,
		log:      cfg.logger,
		m:        cfg.metrics,
		tokenLen: cfg.tokenLen,
		loop:     make(chan struct{}),
		byMID:    make(map[midKey]*exchange),
		byToken:  make(map[tokenKey]*exchange),
		peers:    make(map[string]*peerState),
	}
	if e.h == nil {
		e.h = NotFoundHandler()
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.m == nil {
		e.m = nopMetrics{}
	}
	if e.tokenLen == 0 {
		e.tokenLen = 8
	}
	if cfg.seeded {
		e.rng = rand.New(rand.NewPCG(uint64(cfg.seed), 0x6d326d6265617265))
	} else {
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("bearer: NewEndpoint: seeding: %w", err)
		}
		e.rng = rand.New(rand.NewChaCha8(seed))
	}
	e.mid.Store(uint32(e.rng.Uint32N(1 << 16)))
	e.seq.Store(uint32(e.rng.Uint32N(1 << 16)))
	if cfg.blockSize > 0 {
		e.szx, _ = szxForSize(cfg.blockSize) // WithBlockSize checked it
	} else {
		e.szx = szxForDatagram(p.BlockTarget())
	}
	e.hsem = make(chan struct{}, e.lim.MaxHandlers)
	e.dedup.init(e.lim.MaxDedup)
	e.obs.init()
	e.blocks.init(e.lim)
	e.blocks.qbKeep = max(e.lim.BlockExpiry, p.NonPartialTimeout()) // a Q-Block2 client asks that long
	e.qb.init(e.lim, e.rng.Uint32())
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.bg.Add(2)
	go e.lateAckLoop()
	go e.qbLoop()
	go e.readLoop()
	return e, nil
}

// szxForDatagram returns the largest SZX whose block plus blockHeaderRoom
// fits in n bytes (at least SZX 0, 16 bytes).
func szxForDatagram(n int) uint32 {
	szx := uint32(6)
	for szx > 0 && (16<<szx)+blockHeaderRoom > n {
		szx--
	}
	return szx
}

func szxForSize(n int) (uint32, bool) {
	for szx := uint32(0); szx <= 6; szx++ {
		if 16<<szx == n {
			return szx, true
		}
	}
	return 0, false
}

// Bearer returns the bearer the Endpoint runs on.
func (e *Endpoint) Bearer() Bearer { return e.b }

// Params returns the bearer's parameters.
func (e *Endpoint) Params() Params { return e.p }

// Limits returns the effective limits (defaults filled in).
func (e *Endpoint) Limits() Limits { return e.lim }

// BlockSize returns the block size used for block-wise transfers: the
// largest of 16..1024 that fits the bearer's BlockTarget() (BlockDatagram,
// else PreferredDatagram) with header room, or the WithBlockSize value.
// Bodies up to BlockSize go whole.
func (e *Endpoint) BlockSize() int { return 16 << e.szx }

// LocalAddr returns the bearer's local address.
func (e *Endpoint) LocalAddr() net.Addr {
	if e.b == nil {
		return nil
	}
	return e.b.LocalAddr()
}

// Close stops the Endpoint at once: the read loop stops, the bearer is
// closed, pending exchanges fail with ErrClosed, observations end and
// handler contexts are cancelled. It does not wait for handlers; Shutdown
// does.
func (e *Endpoint) Close() error {
	if e.b == nil { // a zero Endpoint: nothing to close
		return nil
	}
	var err error
	e.once.Do(func() {
		e.closing.Store(true)
		e.closed.Store(true)
		e.cancel()
		err = e.b.Close()
		<-e.loop
		e.obs.closeAll(e)
		e.closeClientObservations()
		e.bg.Wait()
	})
	return err
}

// Shutdown stops accepting new requests (incoming ones get 5.03, Do
// returns ErrClosed), waits for running handlers until ctx is done, then
// closes the Endpoint. It returns ctx.Err() if handlers were still running.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	e.closing.Store(true)
	var werr error
	select {
	case <-e.hwg.idle():
	case <-ctx.Done():
		werr = ctx.Err()
	}
	if err := e.Close(); err != nil && werr == nil {
		werr = err
	}
	return werr
}

// Done returns a channel closed when the Endpoint's read loop has stopped
// (after Close, or when the bearer failed).
func (e *Endpoint) Done() <-chan struct{} {
	if e.loop == nil { // a zero Endpoint has no read loop
		return closedChan
	}
	return e.loop
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (e *Endpoint) newMID() uint16 { return uint16(e.mid.Add(1)) }

func (e *Endpoint) newToken() message.Token {
	var b [8]byte
	e.rngMu.Lock()
	binary.LittleEndian.PutUint64(b[:], e.rng.Uint64())
	e.rngMu.Unlock()
	return message.Token(append([]byte(nil), b[:e.tokenLen]...))
}

// initialTimeout returns a random duration in [ACK_TIMEOUT,
// ACK_TIMEOUT × ACK_RANDOM_FACTOR].
func (e *Endpoint) initialTimeout() time.Duration {
	e.rngMu.Lock()
	f := e.rng.Float64()
	e.rngMu.Unlock()
	return time.Duration(float64(e.p.AckTimeout) * (1 + f*(e.p.AckRandomFactor-1)))
}

// encode returns the wire form of m in a new slice.
func encode(m *message.Message) ([]byte, error) {
	n, err := coder.DefaultCoder.Size(*m)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(*m, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// writeRaw sends an encoded datagram to peer.
func (e *Endpoint) writeRaw(data []byte, peer net.Addr) error {
	if _, err := e.b.WriteTo(data, peer); err != nil {
		e.m.Count(EventWriteError, 1)
		return fmt.Errorf("bearer: write to %v: %w", peer, err)
	}
	e.m.Count(EventSent, 1)
	return nil
}

func emptyMessage(typ message.Type, mid uint16) []byte {
	return []byte{0x40 | byte(typ)<<4, 0, byte(mid >> 8), byte(mid)}
}

// sendEmpty sends an empty ACK or RST for mid. With dk set, the message is
// first stored as the reply for duplicates of the message it answers, so
// a duplicate arriving right after it gets it too.
func (e *Endpoint) sendEmpty(typ message.Type, mid uint16, peer net.Addr, dk *midKey) {
	b := emptyMessage(typ, mid)
	if dk != nil {
		e.dedup.setReply(*dk, b)
	}
	if e.writeRaw(b, peer) == nil && typ == message.Reset {
		e.m.Count(EventRSTSent, 1)
	}
}

// readBackoff is the pause after failed reads in a row: 1 ms doubled up
// to 1 s.
var readBackoff = backoff.Policy{Min: time.Millisecond, Max: time.Second}

func (e *Endpoint) readLoop() {
	defer close(e.loop)
	buf := make([]byte, e.p.MaxDatagram+1)
	fails := 0 // failed reads in a row
	for {
		n, peer, err := e.b.ReadFrom(buf)
		if err != nil {
			if e.closed.Load() || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// A failed read (one bad peer on a security layer, a short
			// buffer) must not stop the server: count, back off, go on.
			e.m.Count(EventReadError, 1)
			d := readBackoff.Delay(fails)
			fails++
			e.log.Debug("bearer: read failed", "bearer", e.p.Name, "err", err, "retry_in", d)
			if backoff.Wait(e.ctx, d) != nil {
				return
			}
			continue
		}
		fails = 0
		e.m.Count(EventReceived, 1)
		if n > e.p.MaxDatagram {
			e.m.Count(EventDropMalformed, 1)
			continue
		}
		e.handleDatagram(buf[:n], peer)
	}
}

// decode parses data into m, growing the options slice as needed.
func decode(data []byte, m *message.Message) error {
	if cap(m.Options) < 8 {
		m.Options = make(message.Options, 0, 8)
	}
	for {
		_, err := coder.DefaultCoder.Decode(data, m)
		if errors.Is(err, message.ErrOptionsTooSmall) && cap(m.Options) < 512 {
			m.Options = make(message.Options, 0, 2*cap(m.Options))
			continue
		}
		return err
	}
}

// handleDatagram processes one received datagram. data is only valid for
// the duration of the call.
func (e *Endpoint) handleDatagram(data []byte, peer net.Addr) {
	// The read loop is the only caller: its message and options are reused.
	m := &e.rmsg
	*m = message.Message{Options: e.ropts[:0]}
	if err := decode(data, m); err != nil {
		e.m.Count(EventDropMalformed, 1)
		// RFC 7252 §4.2: a CON with a format error is rejected with RST
		// when its message ID can be read; anything else is dropped.
		if len(data) >= 4 && data[0]>>6 == 1 && (data[0]>>4)&3 == byte(message.Confirmable) {
			e.sendEmpty(message.Reset, binary.BigEndian.Uint16(data[2:4]), peer, nil)
		}
		return
	}
	mid := uint16(m.MessageID)
	code := m.Code
	class := code >> 5
	switch m.Type {
	case message.Acknowledgement, message.Reset:
		if e.validAckOrReset(m) {
			e.handleAckOrReset(m, data, peer)
		}
		return
	}
	// CON or NON.
	con := m.Type == message.Confirmable
	if e.refuseNonRequest(m, peer) {
		return
	}
	pkey := AddrKey(peer)
	dk := midKey{pkey, mid}
	lifetime := e.p.NonLifetime()
	if con {
		lifetime = e.p.ExchangeLifetime()
	}
	if dup, hit := e.dedup.check(dk, m.Token, lifetime, time.Now(), e.m); dup {
		e.m.Count(EventDuplicate, 1)
		e.answerDuplicate(m, data, peer, dk, hit)
		return
	}
	if class == 0 {
		e.handleRequest(m, data, peer, pkey, dk)
		return
	}
	e.handleResponse(m, data, peer, pkey, dk)
}

// validAckOrReset reports whether an ACK or RST is well formed (RFC 7252
// §4.1–4.2: an RST and an empty ACK carry nothing; an ACK carries no
// request); it counts what it drops.
func (e *Endpoint) validAckOrReset(m *message.Message) bool {
	code := m.Code
	class := code >> 5
	if m.Type == message.Reset {
		e.m.Count(EventRSTReceived, 1)
		if code != codes.Empty || len(m.Token) > 0 || len(m.Options) > 0 || len(m.Payload) > 0 {
			e.m.Count(EventDropMalformed, 1)
			return false
		}
	}
	if m.Type == message.Acknowledgement && (class == 0 && code != codes.Empty || class == 1 || class >= 6) {
		e.m.Count(EventDropUnexpected, 1)
		return false
	}
	if m.Type == message.Acknowledgement && code == codes.Empty && (len(m.Token) > 0 || len(m.Options) > 0 || len(m.Payload) > 0) {
		e.m.Count(EventDropMalformed, 1)
		return false
	}
	return true
}

// refuseNonRequest answers a CON or NON that is neither a request nor a
// response: an empty CON is a CoAP ping (answered with RST), anything else
// empty or of a reserved class is dropped (a CON with an RST). It reports
// whether it did.
func (e *Endpoint) refuseNonRequest(m *message.Message, peer net.Addr) bool {
	con, mid := m.Type == message.Confirmable, uint16(m.MessageID)
	class := m.Code >> 5
	if m.Code == codes.Empty {
		if con && len(m.Token) == 0 && len(m.Options) == 0 && len(m.Payload) == 0 {
			e.sendEmpty(message.Reset, mid, peer, nil) // CoAP ping
			return true
		}
		e.m.Count(EventDropMalformed, 1)
		if con {
			e.sendEmpty(message.Reset, mid, peer, nil)
		}
		return true
	}
	if class == 1 || class >= 6 {
		e.m.Count(EventDropUnexpected, 1)
		if con {
			e.sendEmpty(message.Reset, mid, peer, nil)
		}
		return true
	}
	return false
}

// answerDuplicate answers a duplicate of message m (key dk) as the
// deduplication cache's hit says: the kept reply again, a regenerated
// one, a late empty ACK for a request whose handler still runs, or the
// Q-Block answer of a NON request; else nothing.
func (e *Endpoint) answerDuplicate(m *message.Message, data []byte, peer net.Addr, dk midKey, hit dedupHit) {
	con, class := m.Type == message.Confirmable, m.Code>>5
	switch running := hit.running; {
	case con && hit.reply != nil:
		_ = e.writeRaw(hit.reply, peer)
	case con && hit.regen:
		e.regenerate(hit.sum, data, peer, dk) // regen.go
	case con && running != nil && time.Since(running.arrived) >= e.p.AckTimeout/2:
		// The client retransmits while the handler runs: acknowledge
		// now (RFC 7252 §4.5) and answer separately. A copy arriving
		// sooner than a client can retransmit was duplicated by the
		// network and is just dropped.
		running.lateAck()
	case !con && class == 0:
		e.qbDuplicate(m, peer, dk.peer) // qblock_server.go
	}
}

// handlerCount counts running handlers. Unlike a sync.WaitGroup it may be
// incremented by the read loop while Shutdown waits for it to reach zero.
type handlerCount struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil when nobody waits
}

func (h *handlerCount) Add(d int) {
	h.mu.Lock()
	h.n += d
	if h.n == 0 && h.zero != nil {
		close(h.zero)
		h.zero = nil
	}
	h.mu.Unlock()
}

func (h *handlerCount) Done() { h.Add(-1) }

// idle returns a channel closed once no handler runs.
func (h *handlerCount) idle() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	if h.zero == nil {
		h.zero = make(chan struct{})
	}
	return h.zero
}
