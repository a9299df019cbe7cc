package bearer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Client side of RFC 9177: Q-Block1 uploads (every block NON, a burst of
// MAX_PAYLOADS, the next on 2.31 or after NON_TIMEOUT_RANDOM, the blocks a
// 4.08 lists sent again), Q-Block2 downloads (a NON request for the whole
// body, 'Continue' after each complete set, one request for the missing
// blocks after NON_RECEIVE_TIMEOUT or when a later set shows a hole) and
// the probe of RFC 9177 §4.1 for peers whose support is not known.

// Backlogger is implemented by bearers that keep written datagrams for a
// while before they reach the network, such as the SMS bearer's durable
// outbox. Backlog returns how many datagrams to peer are still waiting,
// in the order they were written. The Q-Block timers of an Endpoint do
// not run out while its peer's backlog is not empty (the blocks have not
// left yet), and blocks still waiting are not sent again when the peer
// asks for them.
type Backlogger interface {
	Backlog(peer net.Addr) int
}

// qbTagLen is the length of the Request-Tag of a Q-Block1 body.
const qbTagLen = 4

// errQBFallback: the peer turned Q-Block down; Do goes on with RFC 7959.
var errQBFallback = errors.New("bearer: peer does not support Q-Block")

// qbState is an Endpoint's Q-Block state: the peers' support, the tokens
// and message IDs of its transfers, the timer loop's wake-up.
type qbState struct {
	peers  qbPeers
	tag    atomic.Uint32 // Request-Tag counter (random start)
	kickc  chan struct{}
	mu     sync.Mutex
	tokens map[tokenKey]*qbTransfer
	mids   map[midKey]*qbTransfer
	max    int // bound on tokens + message IDs held
}

func (q *qbState) init(l Limits, tag uint32) {
	q.peers.max = l.MaxPeers
	q.max = 8 * l.MaxExchanges
	q.kickc = make(chan struct{}, 1)
	q.tokens = make(map[tokenKey]*qbTransfer)
	q.mids = make(map[midKey]*qbTransfer)
	q.tag.Store(tag)
}

// kick wakes the timer loop (something new is due).
func (q *qbState) kick() {
	select {
	case q.kickc <- struct{}{}:
	default:
	}
}

// qbLoop runs the Q-Block timers of the server side (qbTick) and forgets
// finished client transfers; it sleeps while nothing is pending.
func (e *Endpoint) qbLoop() {
	defer e.bg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		now := time.Now()
		next := e.qbTick(now)
		if p := e.qbPurge(now); !p.IsZero() && (next.IsZero() || p.Before(next)) {
			next = p
		}
		if !next.IsZero() {
			t.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-e.ctx.Done():
			t.Stop()
			return
		case <-e.qb.kickc:
		case <-t.C:
		}
		t.Stop()
	}
}

// qbTransfer is a client transfer: the tokens and message IDs of its
// messages route the peer's answers (and RSTs) to it.
type qbTransfer struct {
	e      *Endpoint
	peer   net.Addr
	pkey   string
	events chan *Response // answers; nil: an RST
	tokens []string
	mids   []uint16
	writes []int // block numbers written, in order (Q-Block1)
	// guarded by qbState.mu
	finished bool
	until    time.Time
	sent     int // datagrams sent
	start    time.Time
}

func (e *Endpoint) qbNewTransfer(peer net.Addr) *qbTransfer {
	return &qbTransfer{e: e, peer: peer, pkey: AddrKey(peer), start: time.Now(),
		events: make(chan *Response, 2*e.p.MaxPayloads()+16)}
}

// register routes answers on token to t.
func (t *qbTransfer) register(token []byte) error {
	q := &t.e.qb
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.tokens)+len(q.mids) >= q.max {
		t.e.m.Count(EventDropOverload, 1)
		return fmt.Errorf("%w: %d Q-Block tokens", ErrLimit, len(q.tokens))
	}
	k := tokenKey{t.pkey, string(token)}
	q.tokens[k] = t
	t.tokens = append(t.tokens, k.token)
	return nil
}

// send sends m as a NON of t (new message ID; token registered).
func (t *qbTransfer) send(m *message.Message) error { return t.sendMID(m, -1) }

// sendMID is send with the message ID mid (a copy of an earlier
// message), or a new one when mid < 0.
func (t *qbTransfer) sendMID(m *message.Message, mid int32) error {
	e := t.e
	if mid < 0 {
		mid = int32(e.newMID())
	}
	m.Type, m.MessageID = message.NonConfirmable, mid
	if err := t.register(m.Token); err != nil {
		return err
	}
	q := &e.qb
	q.mu.Lock()
	q.mids[midKey{t.pkey, uint16(m.MessageID)}] = t
	t.mids = append(t.mids, uint16(m.MessageID))
	q.mu.Unlock()
	data, err := encode(m)
	if err != nil {
		return fmt.Errorf("bearer: encode Q-Block request: %w", err)
	}
	if len(data) > e.p.MaxDatagram {
		return fmt.Errorf("%w: request of %d bytes > %d", ErrTooLarge, len(data), e.p.MaxDatagram)
	}
	t.sent++
	return e.writeQB(data, t.peer)
}

// close ends t; its tokens are kept a while so that late answers are
// dropped quietly instead of answered with an RST (one SMS each). A nil t
// is a no-op.
func (t *qbTransfer) close() {
	if t == nil {
		return
	}
	q := &t.e.qb
	q.mu.Lock()
	t.finished = true
	t.until = time.Now().Add(t.e.p.NonReceiveTimeout() + 2*t.e.p.MaxLatency)
	q.mu.Unlock()
	q.kick()
}

// qbPurge forgets finished transfers whose linger is over; it returns
// when the next one ends (zero: none).
func (e *Endpoint) qbPurge(now time.Time) time.Time {
	q := &e.qb
	q.mu.Lock()
	defer q.mu.Unlock()
	var next time.Time
	seen := make(map[*qbTransfer]bool)
	for _, t := range q.tokens {
		if seen[t] || !t.finished {
			continue
		}
		seen[t] = true
		if now.Before(t.until) {
			if next.IsZero() || t.until.Before(next) {
				next = t.until
			}
			continue
		}
		for _, tok := range t.tokens {
			if q.tokens[tokenKey{t.pkey, tok}] == t {
				delete(q.tokens, tokenKey{t.pkey, tok})
			}
		}
		for _, mid := range t.mids {
			if q.mids[midKey{t.pkey, mid}] == t {
				delete(q.mids, midKey{t.pkey, mid})
			}
		}
	}
	return next
}

// qbResponseIn routes a response that matched no exchange to the Q-Block
// transfer whose token it carries. It reports false when there is none.
func (e *Endpoint) qbResponseIn(m *message.Message, peer net.Addr, pkey string, dk midKey) bool {
	q := &e.qb
	q.mu.Lock()
	t, ok := q.tokens[tokenKey{pkey, string(m.Token)}]
	finished := ok && t.finished
	q.mu.Unlock()
	if !ok {
		return false
	}
	if m.Type == message.Confirmable {
		e.sendEmpty(message.Acknowledgement, uint16(m.MessageID), peer, &dk)
	}
	if finished {
		e.m.Count(EventDuplicate, 1) // a late block: no RST for it
		return true
	}
	select {
	case t.events <- e.makeResponse(m, peer):
	default:
		e.m.Count(EventDropOverload, 1)
	}
	return true
}

// qbResetIn routes an RST to the transfer that sent the message it
// rejects.
func (e *Endpoint) qbResetIn(mk midKey) bool {
	q := &e.qb
	q.mu.Lock()
	t, ok := q.mids[mk]
	finished := ok && t.finished
	q.mu.Unlock()
	if ok && !finished {
		select {
		case t.events <- nil:
		default:
		}
	}
	return ok
}

// writeQB writes a Q-Block datagram; a temporary refusal by the bearer
// (an SMS rate limit) is waited out a few times.
func (e *Endpoint) writeQB(data []byte, peer net.Addr) error {
	wait := max(e.p.NonTimeout()/16, time.Millisecond)
	for try := 0; ; try++ {
		err := e.writeRaw(data, peer)
		if err == nil {
			return nil
		}
		var tmp interface{ Temporary() bool }
		if try >= 6 || !errors.As(err, &tmp) || !tmp.Temporary() {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
			return ErrClosed
		}
		wait *= 2
	}
}

// backlog returns the datagrams to peer still waiting in the bearer.
func (e *Endpoint) backlog(peer net.Addr) int {
	if b, ok := e.b.(Backlogger); ok {
		return b.Backlog(peer)
	}
	return 0
}

// holdPeer takes one of the peer's NSTART slots for a whole transfer.
func (e *Endpoint) holdPeer(ctx context.Context, pkey string) (release func(), err error) {
	ps, err := e.acquirePeer(ctx, pkey)
	if err != nil {
		return nil, err
	}
	return func() { <-ps.sem; e.releasePeerRef(pkey, ps) }, nil
}

// qbNewTag returns the Request-Tag of a new body.
func (e *Endpoint) qbNewTag() []byte {
	return binary.BigEndian.AppendUint32(nil, e.qb.tag.Add(1))
}

// doQBlock sends req with RFC 9177 when it applies; ok false leaves it to
// the RFC 7252/7959 path of Do.
func (e *Endpoint) doQBlock(ctx context.Context, req *Request, token message.Token) (resp *Response, err error, ok bool) {
	if !e.p.QBlock.Enabled || req.midSet || req.steer != nil || hasAnyBlock(req.Options) {
		// A fixed message ID or a Steer (queue mode re-sends) is about one
		// RFC 7252 exchange: such requests go that way.
		return nil, nil, false
	}
	if _, obs := optionUint(req.Options, message.Observe); obs {
		return nil, nil, false // observations keep RFC 7959
	}
	big := e.needsBlock1(req)
	switch e.qb.peers.get(AddrKey(req.Peer)) {
	case qbYes:
		safe := req.Code == codes.GET || req.Code == codes.FETCH
		switch {
		case big:
			resp, err = e.doQBlock1(ctx, req, token)
		case safe || req.Type == message.NonConfirmable:
			resp, err = e.doQBlock2(ctx, req, token)
		default:
			return nil, nil, false // a small unsafe CON request stays as it is
		}
		if errors.Is(err, errQBFallback) {
			e.m.Count(EventQBlockFallback, 1)
			return nil, nil, false
		}
		if err == nil {
			resp, err = e.completeBlock2(ctx, req, resp, token) // a server may answer with Block2
		}
		return resp, err, true
	case qbNo:
		return nil, nil, false
	}
	if req.Type != message.Confirmable || big {
		// The probe must be CON (§4.1), and the blocks of one body must
		// not mix Block1 and Q-Block1: a large body to a peer not known
		// yet goes with RFC 7959.
		return nil, nil, false
	}
	return e.doQBProbe(ctx, req, token)
}

// qbGuard prepares for a Q-Block2 answer to a request sent the RFC 7252
// way by an Endpoint that uses Q-Block: a server that knows the peer
// supports Q-Block (libcoap remembers it from the probe) may answer any
// request with Q-Block2 blocks, the first in the ACK and the others as
// CON messages right after it. It returns nil when Q-Block is off.
func (e *Endpoint) qbGuard(req *Request, token message.Token) *qbTransfer {
	if !e.p.QBlock.Enabled {
		return nil
	}
	t := e.qbNewTransfer(req.Peer)
	if t.register(token) != nil {
		return nil
	}
	return t
}

// qbFinish gathers the rest of a Q-Block2 answer to a request sent the
// RFC 7252 way (see qbGuard); other answers are returned as they are.
func (e *Endpoint) qbFinish(ctx context.Context, t *qbTransfer, req *Request, resp *Response) (*Response, error) {
	if t == nil || resp == nil {
		return resp, nil
	}
	if b, bad := qbOptions(resp.Options, message.QBlock2); bad || len(b) != 1 || !b[0].more {
		return resp, nil
	}
	e.learnQBlock(t.pkey, false, resp)
	return e.qbReceive(ctx, t, req, resp, false)
}

// qbRequestFor returns the message of req with extra options (the body,
// if any, read whole: it fits one block).
func qbRequestFor(req *Request, token message.Token, extra ...message.Option) (message.Message, error) {
	payload, err := req.readBody(nil, 0, req.bodyLen())
	if err != nil {
		return message.Message{}, err
	}
	opts := cloneOptions(req.Options)
	for _, o := range extra {
		opts = opts.Set(o)
	}
	return message.Message{Code: req.Code, Token: token, Options: opts, Payload: payload}, nil
}

// doQBProbe sends req as a CON with a Q-Block2 option asking for block 0
// (RFC 9177 §4.1): the answer says whether the peer supports Q-Block. A
// 4.02 answer sends req again without it (ok false).
func (e *Endpoint) doQBProbe(ctx context.Context, req *Request, token message.Token) (*Response, error, bool) {
	pkey := AddrKey(req.Peer)
	m, err := qbRequestFor(req, token, UintOption(message.QBlock2, blockValue(0, false, e.szx)))
	if err != nil {
		return nil, err, true
	}
	t := e.qbNewTransfer(req.Peer)
	defer t.close()
	resp, err := e.roundTrip(ctx, req.Peer, &m, rtOpts{con: true})
	if err != nil {
		return nil, err, true
	}
	if resp.Code == codes.BadOption {
		e.qb.peers.set(pkey, qbNo)
		e.m.Count(EventQBlockFallback, 1)
		return nil, nil, false
	}
	e.learnQBlock(pkey, true, resp)
	if b, _ := qbOptions(resp.Options, message.QBlock2); len(b) == 1 && b[0].more {
		if err := t.register(token); err != nil {
			return nil, err, true
		}
		resp, err = e.qbReceive(ctx, t, req, resp, true)
	}
	if err == nil {
		resp, err = e.completeBlock2(ctx, req, resp, token)
	}
	return resp, err, true
}

// qbAwait waits up to d for an event of t (an answer, an RST: nil), not
// counting time while the peer's backlog in the bearer is not empty.
func (e *Endpoint) qbAwait(ctx context.Context, t *qbTransfer, d time.Duration) (resp *Response, timedOut bool, err error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case r := <-t.events:
			return r, false, nil
		case <-timer.C:
			if e.backlog(t.peer) > 0 {
				timer.Reset(d) // our datagrams have not left yet
				continue
			}
			return nil, true, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-e.ctx.Done():
			return nil, false, ErrClosed
		}
	}
}

func (t *qbTransfer) timeout(op string) error {
	t.e.m.Count(EventTimeout, 1)
	return &TimeoutError{Op: op, Peer: t.peer, Waited: time.Since(t.start), Transmissions: t.sent}
}

// doQBlock2 sends req as a NON with Q-Block2 asking for the whole body
// (NUM 0, M set) to a peer known to support Q-Block, and gathers the
// answer's blocks. A GET or FETCH that gets no answer at all is sent
// again on the bearer's CON schedule (ACK_TIMEOUT doubling, MAX_RETRANSMIT
// times, within MAX_TRANSMIT_WAIT). On a bearer whose MAX_RETRANSMIT is 0
// (the SMS binding: no CoAP retransmission, SMS has its own
// store-and-forward) a request nobody answers goes once and ends at
// MAX_TRANSMIT_WAIT, as a CON request does; it is sent again only while
// the peer is heard from, its answer's segments arriving without
// completing a block (qb2Schedule, PeerActivity), each time with a new
// message ID and the same token, so that the server, which got the
// request, answers it again with the same blocks. On the CON schedule the
// first copy keeps the message ID, so a peer that got the original drops
// it as a duplicate. Other methods are sent once
// and wait MAX_TRANSMIT_WAIT. Blocks missing from an answer that started
// to arrive are asked for by qbReceive.
func (e *Endpoint) doQBlock2(ctx context.Context, req *Request, token message.Token) (*Response, error) {
	pkey := AddrKey(req.Peer)
	release, err := e.holdPeer(ctx, pkey)
	if err != nil {
		return nil, err
	}
	defer release()
	t := e.qbNewTransfer(req.Peer)
	defer t.close()
	m, err := qbRequestFor(req, token, UintOption(message.QBlock2, blockValue(0, true, e.szx)))
	if err != nil {
		return nil, err
	}
	safe := req.Code == codes.GET || req.Code == codes.FETCH
	s := e.qb2Schedule(safe)
	mid := int32(-1)
	for n := 0; ; n++ {
		mm := m
		mm.Options = cloneOptions(m.Options)
		sent := time.Now() // before the write: the answer can be heard before it returns
		if err := t.sendMID(&mm, mid); err != nil {
			return nil, err
		}
		if n == 0 && !s.partial {
			mid = mm.MessageID // the first copy keeps it; later ones do not
		} else {
			// Sent again because the peer is heard: it got the
			// request and answers, but no block of the answer
			// arrived whole. A copy with the first message ID would
			// be dropped as a duplicate (RFC 7252 §4.5); a new one
			// with the same token gets the same blocks again (RFC
			// 9177 §4.4), on SMS byte for byte.
			mid = -1
		}
		resp, again, err := s.await(ctx, t, n, sent)
		if err != nil {
			return nil, err
		}
		if again {
			e.m.Count(EventRetransmission, 1)
			continue
		}
		if resp == nil || resp.Code == codes.BadOption {
			e.qb.peers.set(pkey, qbNo)
			return nil, errQBFallback
		}
		e.learnQBlock(pkey, true, resp)
		if b, _ := qbOptions(resp.Options, message.QBlock2); len(b) == 1 && (b[0].more || b[0].num > 0) {
			return e.qbReceive(ctx, t, req, resp, false)
		}
		return resp, nil
	}
}

// doQBlock1 uploads req's body with Q-Block1 (RFC 9177 §4.3, §7.2) to a
// peer known to support it and returns the final answer (gathering a
// Q-Block2 answer's blocks).
func (e *Endpoint) doQBlock1(ctx context.Context, req *Request, token message.Token) (*Response, error) {
	pkey := AddrKey(req.Peer)
	release, err := e.holdPeer(ctx, pkey)
	if err != nil {
		return nil, err
	}
	defer release()
	u := e.newQB1Upload(req, token)
	defer u.t.close()
	if err := u.sendSet(); err != nil {
		return nil, err
	}
	for {
		wait := e.nonTimeoutRandom()
		if u.next == u.n {
			// All sent: the server answers, or lists what it misses
			// after its NON_RECEIVE_TIMEOUT.
			wait = e.p.NonReceiveTimeout()<<min(u.retries, 16) + e.p.NonTimeout()
		}
		resp, timedOut, err := e.qbAwait(ctx, u.t, wait)
		if err != nil {
			return nil, err
		}
		final, err := u.step(resp, timedOut)
		switch {
		case err != nil:
			return nil, err
		case final == nil:
			continue
		}
		e.learnQBlock(pkey, false, final)
		e.m.Count(EventQBlockTransfer, 1)
		if b, _ := qbOptions(final.Options, message.QBlock2); len(b) == 1 && (b[0].more || b[0].num > 0) {
			return e.qbReceive(ctx, u.t, req, final, false)
		}
		return final, nil
	}
}

// qb1Upload is one Q-Block1 upload (doQBlock1): the body cut in blocks,
// how each block went, and where the exchange stands.
type qb1Upload struct {
	e     *Endpoint
	req   *Request
	t     *qbTransfer
	token message.Token // the request's: the first block goes with it
	szx   uint32
	bs    int             // block size
	total int             // body size
	n     int             // blocks
	mp    int             // MAX_PAYLOADS: blocks in a set
	base  message.Options // every block's options but Q-Block1
	buf   []byte
	// The message ID and token each block first went with: a block the
	// server reports missing goes again byte for byte (a server that got
	// it after all drops the copy as a duplicate; on SMS the copy's
	// segments join those of the first sending).
	sentAs   []qbSentAs
	next     int  // the first block not sent yet
	answered bool // the server showed it knows the body (2.31, a list of missing blocks)
	retries  int  // elicitations since the last list of missing blocks
}

// qbSentAs is how a Q-Block1 block was first sent.
type qbSentAs struct {
	mid int32
	tok message.Token
}

func (e *Endpoint) newQB1Upload(req *Request, token message.Token) *qb1Upload {
	szx := e.blockSZXFor(req, token, message.QBlock1)
	bs := 16 << szx
	total := req.bodyLen()
	n := max((total+bs-1)/bs, 1)
	mp := e.p.MaxPayloads()
	t := e.qbNewTransfer(req.Peer)
	base := cloneOptions(req.Options).Set(message.Option{ID: message.RequestTag, Value: e.qbNewTag()}).
		Set(UintOption(message.Size1, uint32(total)))
	return &qb1Upload{e: e, req: req, t: t, token: token, szx: szx, bs: bs, total: total, n: n, mp: mp,
		base: base, sentAs: make([]qbSentAs, n)}
}

// send sends block i; again: as it was first sent, if it was.
func (u *qb1Upload) send(i int, again bool) error {
	e, req, t := u.e, u.req, u.t
	off := i * u.bs
	payload, err := req.readBody(u.buf, off, min(u.bs, u.total-off))
	if err != nil {
		return err
	}
	if req.body != nil {
		u.buf = payload
	}
	tok, mid := u.token, int32(-1)
	switch {
	case again && u.sentAs[i].tok != nil:
		tok, mid = u.sentAs[i].tok, u.sentAs[i].mid
	case t.sent > 0:
		tok = e.newToken() // every block is a request of its own (§6)
	}
	m := message.Message{Code: req.Code, Token: tok, Payload: payload,
		Options: cloneOptions(u.base).Set(UintOption(message.QBlock1, blockValue(uint32(i), i < u.n-1, u.szx)))}
	if err := t.sendMID(&m, mid); err != nil {
		return err
	}
	if u.sentAs[i].tok == nil {
		u.sentAs[i].tok, u.sentAs[i].mid = tok, m.MessageID
	}
	t.writes = append(t.writes, i)
	return nil
}

// sendSet sends the blocks not sent yet up to the end of the next set.
func (u *qb1Upload) sendSet() error {
	for end := min((u.next/u.mp+1)*u.mp, u.n); u.next < end; u.next++ {
		if err := u.send(u.next, false); err != nil {
			return err
		}
	}
	return nil
}

// elicit asks for the server's answer when none came after the last
// block. The server answers a block received again as if it were new
// (§4.3; also a duplicate message, see qbDuplicate). Before the
// server showed it knows the body, that is the last block byte for
// byte (on SMS the copy also completes a block whose segments were
// lost in part); after, the first 16 bytes as a 16-byte block, which
// fits one SMS: the server answers it with its final answer or the
// blocks it misses.
func (u *qb1Upload) elicit() error {
	if !u.answered || u.szx == 0 {
		return u.send(u.n-1, true)
	}
	payload, err := u.req.readBody(nil, 0, min(16, u.total))
	if err != nil {
		return err
	}
	m := message.Message{Code: u.req.Code, Token: u.e.newToken(), Payload: payload,
		Options: cloneOptions(u.base).Set(UintOption(message.QBlock1, blockValue(0, u.total > 16, 0)))}
	return u.t.send(&m)
}

// step acts on what one wait brought: an answer (nil: an RST), or
// timedOut. It returns the server's final answer when the upload is
// over, nil while it goes on.
func (u *qb1Upload) step(resp *Response, timedOut bool) (*Response, error) {
	e := u.e
	switch {
	case timedOut && u.next < u.n:
		return nil, u.sendSet() // NON_TIMEOUT_RANDOM after a set without a 2.31
	case timedOut:
		if u.retries++; u.retries > e.p.NonMaxRetransmit() {
			return nil, u.t.timeout("Q-Block1 upload")
		}
		return nil, u.elicit()
	case resp == nil || resp.Code == codes.BadOption && !u.answered:
		if !u.answered {
			e.qb.peers.set(u.t.pkey, qbNo)
			return nil, errQBFallback
		}
		return nil, ErrReset
	case resp.Code == codes.Continue:
		u.answered = true
		if u.next < u.n {
			return nil, u.sendSet()
		}
		return nil, nil
	case resp.Code == codes.RequestEntityIncomplete && isMissingBlocks(resp):
		u.answered = true
		return nil, u.resend(resp)
	}
	return resp, nil
}

// resend sends again the blocks a 4.08 lists as missing, but for those
// still waiting in the bearer.
func (u *qb1Upload) resend(resp *Response) error {
	e := u.e
	miss, derr := decodeMissingBlocks(resp.Payload, u.n)
	if derr != nil {
		e.m.Count(EventDropMalformed, 1) // §5: dropped silently
		return nil
	}
	e.m.Count(EventQBlockMissing, 1)
	u.retries = 0
	queued := u.t.queued(e.backlog(u.t.peer))
	for _, i := range miss {
		if int(i) < u.next && !queued[int(i)] {
			if err := u.send(int(i), true); err != nil {
				return err
			}
		}
	}
	return nil
}

func isMissingBlocks(r *Response) bool {
	cf, ok := r.ContentFormat()
	return ok && cf == message.AppMissingBlocksCBORSeq
}

// queued returns the blocks of t among the last backlog datagrams
// written: they have not left the bearer yet.
func (t *qbTransfer) queued(backlog int) map[int]bool {
	if backlog <= 0 {
		return nil
	}
	q := make(map[int]bool, backlog)
	for i := len(t.writes) - 1; i >= 0 && len(t.writes)-i <= backlog; i-- {
		q[t.writes[i]] = true
	}
	return q
}
