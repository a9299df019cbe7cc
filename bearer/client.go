package bearer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// exchange is an outgoing CON or NON message awaiting its ACK/RST and, for
// requests, its response.
type exchange struct {
	peer  net.Addr
	pkey  string
	mid   uint16
	token string // "" for notifications and separate responses (ACK only)
	con   bool

	events chan exResult // capacity 2: at most one ACK and one result
	acked  bool          // guarded by e.exMu
	obs    *Observation  // client observation riding on this token
	done   bool          // guarded by e.exMu: the first response was delivered
}

type exResult struct {
	ack  bool // empty ACK
	resp *Response
	err  error
}

type peerState struct {
	sem  chan struct{}
	refs int
}

// Do sends req and returns its response. A confirmable request (the
// default) is retransmitted with exponential backoff per the bearer's
// Params (never when MaxRetransmit is 0) and given up after
// MAX_TRANSMIT_WAIT with a *TimeoutError; after an empty ACK the separate
// response is awaited up to Limits.ResponseTimeout. Payloads larger than
// BlockSize go out with Block1; a Block2 response is fetched completely
// (at most Limits.MaxBodySize). At most NSTART requests per peer are
// outstanding; others wait (bounded by Limits.MaxWaiting). Cancelling ctx
// aborts the exchange.
//
// A response with an error code (4.xx, 5.xx) is a response, not an error.
func (e *Endpoint) Do(ctx context.Context, req *Request) (*Response, error) {
	if e.b == nil || e.closing.Load() { // a zero Endpoint is a closed one
		return nil, ErrClosed
	}
	if req == nil || req.Peer == nil {
		return nil, errors.New("bearer: Do: request without peer")
	}
	if req.Code == codes.Empty || req.Code>>5 != 0 {
		return nil, fmt.Errorf("bearer: Do: %v is not a request method", req.Code)
	}
	if req.Type != message.Confirmable && req.Type != message.NonConfirmable {
		return nil, fmt.Errorf("bearer: Do: request type %v must be CON or NON", req.Type)
	}
	if len(req.Token) > message.MaxTokenSize {
		return nil, message.ErrInvalidTokenLen
	}
	if req.bodyLen() > e.lim.MaxBodySize || req.bodySize > int64(e.lim.MaxBodySize) {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrBodyTooLarge, max(int64(len(req.Payload)), req.bodySize), e.lim.MaxBodySize)
	}
	token := req.Token
	if len(token) == 0 {
		token = e.newToken()
	}
	if resp, err, ok := e.doQBlock(ctx, req, token); ok {
		return resp, err
	}
	var resp *Response
	var err error
	if req.body != nil && !e.needsBlock1(req) {
		p, err := req.readBody(nil, 0, req.bodyLen())
		if err != nil {
			return nil, err
		}
		r2 := *req
		r2.Payload, r2.body = p, nil
		req = &r2
	}
	t := e.qbGuard(req, token) // qblock_client.go
	defer t.close()
	if e.needsBlock1(req) {
		resp, err = e.doBlock1(ctx, req, token)
	} else {
		m := message.Message{Code: req.Code, Token: token, Options: req.Options, Payload: req.Payload}
		resp, err = e.roundTrip(ctx, req.Peer, &m, rtOpts{con: req.Type == message.Confirmable, midSet: req.midSet, mid: req.mid, steer: req.steer})
	}
	if err != nil {
		return nil, err
	}
	if resp, err = e.qbFinish(ctx, t, req, resp); err != nil {
		return nil, err
	}
	return e.completeBlock2(ctx, req, resp, token)
}

// Get sends a confirmable GET for path to peer.
func (e *Endpoint) Get(ctx context.Context, peer net.Addr, path string, opts ...message.Option) (*Response, error) {
	r := NewRequest(codes.GET, peer, path)
	for _, o := range opts {
		r.AddOption(o)
	}
	return e.Do(ctx, r)
}

// Post sends a confirmable POST with payload in content format cf.
func (e *Endpoint) Post(ctx context.Context, peer net.Addr, path string, cf message.MediaType, payload []byte, opts ...message.Option) (*Response, error) {
	return e.Do(ctx, withBody(NewRequest(codes.POST, peer, path), cf, payload, opts))
}

// Put sends a confirmable PUT with payload in content format cf.
func (e *Endpoint) Put(ctx context.Context, peer net.Addr, path string, cf message.MediaType, payload []byte, opts ...message.Option) (*Response, error) {
	return e.Do(ctx, withBody(NewRequest(codes.PUT, peer, path), cf, payload, opts))
}

// Delete sends a confirmable DELETE for path.
func (e *Endpoint) Delete(ctx context.Context, peer net.Addr, path string, opts ...message.Option) (*Response, error) {
	r := NewRequest(codes.DELETE, peer, path)
	for _, o := range opts {
		r.AddOption(o)
	}
	return e.Do(ctx, r)
}

// withBody sets r's payload in content format cf and adds opts.
func withBody(r *Request, cf message.MediaType, payload []byte, opts []message.Option) *Request {
	r.SetOption(ContentFormatOption(cf))
	for _, o := range opts {
		r.AddOption(o)
	}
	r.Payload = payload
	return r
}

// Ping sends an empty CON message (CoAP ping) and waits for the RST that
// proves the peer is alive.
func (e *Endpoint) Ping(ctx context.Context, peer net.Addr) error {
	if e.b == nil || e.closing.Load() {
		return ErrClosed
	}
	m := message.Message{Code: codes.Empty}
	_, err := e.roundTrip(ctx, peer, &m, rtOpts{con: true})
	if errors.Is(err, ErrReset) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("%w: answer to ping is not RST", ErrBadResponse)
	}
	return err
}

func (e *Endpoint) acquirePeer(ctx context.Context, pkey string) (*peerState, error) {
	e.exMu.Lock()
	ps, ok := e.peers[pkey]
	if !ok {
		if len(e.peers) >= e.lim.MaxPeers {
			// Idle peers are kept for reuse until the map is full.
			for k, p := range e.peers {
				if p.refs == 0 {
					delete(e.peers, k)
				}
			}
		}
		if len(e.peers) >= e.lim.MaxPeers {
			e.exMu.Unlock()
			e.m.Count(EventDropOverload, 1)
			return nil, fmt.Errorf("%w: %d peers", ErrLimit, e.lim.MaxPeers)
		}
		ps = &peerState{sem: make(chan struct{}, e.p.NStart)}
		e.peers[pkey] = ps
		e.m.Set(GaugePeers, len(e.peers))
	}
	ps.refs++
	e.exMu.Unlock()
	select {
	case ps.sem <- struct{}{}:
		return ps, nil
	default:
	}
	if e.waiting.Add(1) > int64(e.lim.MaxWaiting) {
		e.waiting.Add(-1)
		e.releasePeerRef(pkey, ps)
		e.m.Count(EventDropOverload, 1)
		return nil, fmt.Errorf("%w: %d requests waiting for NSTART", ErrLimit, e.lim.MaxWaiting)
	}
	defer e.waiting.Add(-1)
	select {
	case ps.sem <- struct{}{}:
		return ps, nil
	case <-ctx.Done():
		e.releasePeerRef(pkey, ps)
		return nil, ctx.Err()
	case <-e.ctx.Done():
		e.releasePeerRef(pkey, ps)
		return nil, ErrClosed
	}
}

func (e *Endpoint) releasePeerRef(pkey string, ps *peerState) {
	e.exMu.Lock()
	ps.refs--
	e.exMu.Unlock()
}

// rtOpts are the knobs of roundTrip.
type rtOpts struct {
	con     bool
	obs     *Observation // receives later notifications on the token
	ackOnly bool         // return on the ACK; NSTART does not apply
	midSet  bool         // mid is fixed by the caller (Request.SetMessageID), else allocated
	mid     uint16
	steer   *Steer // re-send/abort while in flight (Request.SetSteer)
}

// roundTrip sends m (type set here, MID allocated unless o fixes it) to
// peer and waits for the ACK/RST and, for requests, the response. For an
// empty CON (ping) the RST is the expected answer. o.obs, if set, receives
// later notifications on the token. With o.ackOnly (separate responses
// and notifications) it returns on the ACK and NSTART does not apply.
func (e *Endpoint) roundTrip(ctx context.Context, peer net.Addr, m *message.Message, o rtOpts) (*Response, error) {
	pkey := AddrKey(peer)
	release, err := e.holdSlot(ctx, pkey, o.ackOnly)
	if err != nil {
		return nil, err
	}
	defer release()
	data, ex, err := e.newExchange(peer, pkey, m, o)
	if err != nil {
		return nil, err
	}
	if err := e.register(ex, o.midSet); err != nil {
		return nil, err
	}
	keepToken := false
	defer func() { e.unregister(ex, keepToken) }()

	w := &rtWait{e: e, ex: ex, data: data, peer: peer, o: o, release: release, start: time.Now(), op: "request"}
	if err := e.writeRaw(data, peer); err != nil {
		return nil, err
	}
	if m.Code == codes.Empty {
		w.op = "ping"
	}
	resp, keep, err := w.run(ctx)
	keepToken = keep
	return resp, err
}

// holdSlot takes one of the peer's NSTART slots (none with ackOnly) and
// returns the function that gives it back; calling it again does nothing.
func (e *Endpoint) holdSlot(ctx context.Context, pkey string, ackOnly bool) (release func(), err error) {
	if ackOnly {
		return func() {}, nil
	}
	ps, err := e.acquirePeer(ctx, pkey)
	if err != nil {
		return nil, err
	}
	held := true
	return func() {
		if held {
			held = false
			<-ps.sem
			e.releasePeerRef(pkey, ps)
		}
	}, nil
}

// newExchange sets m's message ID and type, encodes it and returns the
// datagram and the exchange that will receive its answers.
func (e *Endpoint) newExchange(peer net.Addr, pkey string, m *message.Message, o rtOpts) ([]byte, *exchange, error) {
	if o.midSet {
		m.MessageID = int32(o.mid)
	} else {
		m.MessageID = int32(e.newMID())
	}
	if o.con {
		m.Type = message.Confirmable
	} else {
		m.Type = message.NonConfirmable
	}
	data, err := encode(m)
	if err != nil {
		return nil, nil, fmt.Errorf("bearer: encode request: %w", err)
	}
	if len(data) > e.p.MaxDatagram {
		return nil, nil, fmt.Errorf("%w: request of %d bytes > %d", ErrTooLarge, len(data), e.p.MaxDatagram)
	}
	ex := &exchange{
		peer: peer, pkey: pkey, mid: uint16(m.MessageID), con: o.con,
		events: make(chan exResult, 2), obs: o.obs,
	}
	if m.Code != codes.Empty && !o.ackOnly {
		ex.token = string(m.Token)
	}
	return data, ex, nil
}

// rtWait is the wait of one sent request for its answer: the
// retransmission schedule (RFC 7252 §4.2; one timer serves both the next
// retransmission and giving up) and what has happened so far.
type rtWait struct {
	e       *Endpoint
	ex      *exchange
	data    []byte
	peer    net.Addr
	o       rtOpts
	release func() // gives the NSTART slot back (on the empty ACK)
	start   time.Time
	op      string // named in a TimeoutError: "request", "ping", "separate response"

	acked         bool
	transmissions int
	round         int // transmissions since the last (re)start of the schedule
	timeout       time.Duration
	giveUpAt      time.Time
	retransAt     time.Time // zero: no more retransmissions
	timer         *time.Timer
}

// run waits for the answer to the first transmission (sent at w.start),
// retransmitting on schedule; keep says the exchange's token stays
// registered (an observation was established).
func (w *rtWait) run(ctx context.Context) (resp *Response, keep bool, err error) {
	e := w.e
	w.transmissions, w.round = 1, 1
	w.timeout = e.initialTimeout()
	w.giveUpAt = w.start.Add(e.lim.ResponseTimeout)
	if w.o.con {
		w.giveUpAt = w.start.Add(e.p.MaxTransmitWait())
		if e.p.MaxRetransmit > 0 {
			w.retransAt = w.start.Add(w.timeout)
		}
	}
	w.timer = time.NewTimer(w.next())
	defer w.timer.Stop()
	var steered <-chan struct{}
	if w.o.steer != nil && w.o.con && !w.o.ackOnly {
		steered = w.o.steer.signals()
	}
	for {
		var done bool
		select {
		case <-steered:
			done, err = w.steer()
		case r := <-w.ex.events:
			done, resp, keep, err = w.event(r)
		case now := <-w.timer.C:
			done, err = w.tick(now)
		case <-ctx.Done():
			return nil, false, w.ctxDone(ctx)
		case <-e.ctx.Done():
			return nil, false, ErrClosed
		}
		if done {
			return resp, keep, err
		}
	}
}

// next is the time until the timer should fire next.
func (w *rtWait) next() time.Duration {
	if !w.retransAt.IsZero() && w.retransAt.Before(w.giveUpAt) {
		return time.Until(w.retransAt)
	}
	return time.Until(w.giveUpAt)
}

// resend sends the request again.
func (w *rtWait) resend() error {
	if err := w.e.writeRaw(w.data, w.peer); err != nil {
		return err
	}
	w.e.m.Count(EventRetransmission, 1)
	w.transmissions++
	return nil
}

// steer applies the Steer: abort, or resend now (to a new address, if it
// names one) and start the schedule over.
func (w *rtWait) steer() (bool, error) {
	e := w.e
	resend, to, abort := w.o.steer.take()
	if abort != nil {
		return true, &AbortError{Err: abort, Transmissions: w.transmissions, Acked: w.acked}
	}
	if !resend || w.acked {
		return false, nil
	}
	if to != nil && AddrKey(to) != w.ex.pkey {
		if !e.rekey(w.ex, to) {
			e.m.Count(EventDropOverload, 1)
			return false, nil
		}
		w.peer = to
	}
	if err := w.resend(); err != nil {
		return true, err
	}
	w.round = 1
	now := time.Now()
	w.timeout = e.initialTimeout()
	w.giveUpAt = now.Add(e.p.MaxTransmitWait())
	w.retransAt = time.Time{}
	if e.p.MaxRetransmit > 0 {
		w.retransAt = now.Add(w.timeout)
	}
	if !w.timer.Stop() {
		select {
		case <-w.timer.C:
		default:
		}
	}
	w.timer.Reset(w.next())
	return false, nil
}

// event takes an answer: an empty ACK (the interaction is no longer
// outstanding, §4.7: wait for the separate response) or the end.
func (w *rtWait) event(r exResult) (done bool, resp *Response, keep bool, err error) {
	if !r.ack {
		return true, r.resp, r.err == nil && w.o.obs != nil, r.err
	}
	if w.o.ackOnly {
		return true, nil, false, nil
	}
	if w.acked {
		return false, nil, false, nil
	}
	w.acked = true
	w.release()
	w.retransAt = time.Time{}
	w.giveUpAt = time.Now().Add(w.e.lim.ResponseTimeout)
	w.timer.Reset(w.next())
	w.op = "separate response"
	return false, nil, false, nil
}

// tick gives up, or retransmits with the timeout doubled.
func (w *rtWait) tick(now time.Time) (bool, error) {
	e := w.e
	if !now.Before(w.giveUpAt) {
		e.m.Count(EventTimeout, 1)
		return true, &TimeoutError{Op: w.op, Peer: w.peer, Waited: now.Sub(w.start), Transmissions: w.transmissions}
	}
	if !w.retransAt.IsZero() && !now.Before(w.retransAt) {
		if err := w.resend(); err != nil {
			return true, err
		}
		w.round++
		w.timeout *= 2
		if w.round <= e.p.MaxRetransmit {
			w.retransAt = w.retransAt.Add(w.timeout)
		} else {
			w.retransAt = time.Time{}
		}
	}
	w.timer.Reset(w.next())
	return false, nil
}

// ctxDone is the error when the caller's context ends first.
func (w *rtWait) ctxDone(ctx context.Context) error {
	if w.acked && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Acknowledged, and the separate response never came: say so (a
		// peer that does not implement a method, such as Wakaama's client
		// for FETCH and iPATCH, answers with an empty ACK and nothing
		// after it). Still a deadline.
		return &TimeoutError{Op: w.op, Peer: w.peer, Waited: time.Since(w.start), Transmissions: w.transmissions}
	}
	return ctx.Err()
}

func (e *Endpoint) register(ex *exchange, fixedMID bool) error {
	e.exMu.Lock()
	defer e.exMu.Unlock()
	if len(e.byMID) >= e.lim.MaxExchanges {
		e.m.Count(EventDropOverload, 1)
		return fmt.Errorf("%w: %d exchanges", ErrLimit, e.lim.MaxExchanges)
	}
	mk := midKey{ex.pkey, ex.mid}
	if _, busy := e.byMID[mk]; busy && fixedMID {
		return fmt.Errorf("bearer: message ID %d to %s is in use by another exchange", ex.mid, ex.pkey)
	}
	e.byMID[mk] = ex
	if ex.token != "" {
		tk := tokenKey{ex.pkey, ex.token}
		if old, ok := e.byToken[tk]; ok && old.obs != nil {
			delete(e.byMID, mk)
			return fmt.Errorf("bearer: token %x already in use by an observation", ex.token)
		}
		e.byToken[tk] = ex
	}
	e.m.Set(GaugeExchanges, len(e.byMID))
	return nil
}

func (e *Endpoint) unregister(ex *exchange, keepToken bool) {
	e.exMu.Lock()
	mk := midKey{ex.pkey, ex.mid}
	if cur, ok := e.byMID[mk]; ok && cur == ex {
		delete(e.byMID, mk)
	}
	if ex.token != "" && !keepToken {
		tk := tokenKey{ex.pkey, ex.token}
		if cur, ok := e.byToken[tk]; ok && cur == ex {
			delete(e.byToken, tk)
		}
	}
	e.m.Set(GaugeExchanges, len(e.byMID))
	e.exMu.Unlock()
}

// handleAckOrReset matches an ACK or RST to an outgoing exchange by MID.
func (e *Endpoint) handleAckOrReset(m *message.Message, data []byte, peer net.Addr) {
	pkey := AddrKey(peer)
	mk := midKey{pkey, uint16(m.MessageID)}
	e.exMu.Lock()
	ex, ok := e.byMID[mk]
	if !ok {
		e.exMu.Unlock()
		if m.Type == message.Reset && (e.obs.resetByMID(e, mk) || e.qbResetIn(mk)) {
			return
		}
		e.m.Count(EventDropUnknownACK, 1)
		return
	}
	if m.Type == message.Reset {
		delete(e.byMID, mk)
		ex.done = true
		e.exMu.Unlock()
		deliver(ex, exResult{err: ErrReset})
		return
	}
	if m.Code == codes.Empty {
		delete(e.byMID, mk)
		if !ex.acked {
			ex.acked = true
			deliver(ex, exResult{ack: true})
		}
		e.exMu.Unlock()
		return
	}
	// Piggybacked response: the token must match, else it answers some
	// other message (a peer that reused the MID) and we keep waiting.
	if string(m.Token) != ex.token {
		e.exMu.Unlock()
		e.m.Count(EventDropUnexpected, 1)
		return
	}
	delete(e.byMID, mk)
	ex.done = true
	e.exMu.Unlock()
	if id, bad := badCriticalOption(m.Options); bad {
		// RFC 7252 §5.4.1: a response with an unrecognised critical
		// option is rejected.
		e.m.Count(EventBadOption, 1)
		deliver(ex, exResult{err: fmt.Errorf("%w: unrecognised critical option %d", ErrBadResponse, id)})
		return
	}
	resp := e.makeResponse(m, peer)
	if ex.obs != nil {
		ex.obs.notify(e, resp) // queued first, before any notification
	}
	deliver(ex, exResult{resp: resp})
}

func deliver(ex *exchange, r exResult) {
	select {
	case ex.events <- r:
	default:
	}
}

// makeResponse copies m into a Response that outlives the read buffer.
func (e *Endpoint) makeResponse(m *message.Message, peer net.Addr) *Response {
	r := &Response{
		Code:    m.Code,
		Type:    m.Type,
		Token:   append(message.Token(nil), m.Token...),
		Options: cloneOptions(m.Options),
		Peer:    peer,
	}
	if len(m.Payload) > 0 {
		r.Payload = append([]byte(nil), m.Payload...)
	}
	return r
}

// handleResponse processes a CON or NON response (separate response or
// notification), matched by token.
func (e *Endpoint) handleResponse(m *message.Message, data []byte, peer net.Addr, pkey string, dk midKey) {
	con := m.Type == message.Confirmable
	tk := tokenKey{pkey, string(m.Token)}
	e.exMu.Lock()
	ex, ok := e.byToken[tk]
	var obs *Observation
	first := false
	if ok {
		if !ex.done {
			ex.done = true
			first = true
			delete(e.byMID, midKey{pkey, ex.mid})
		} else {
			obs = ex.obs
		}
	}
	e.exMu.Unlock()
	if !ok && e.fired.answered(tk, time.Now()) {
		// The answer to a fire-and-forget request (Fire): expected,
		// not needed. A CON answer is still acknowledged.
		e.m.Count(EventFiredAnswer, 1)
		if con {
			e.sendEmpty(message.Acknowledgement, uint16(m.MessageID), peer, &dk)
		}
		return
	}
	if !ok || (!first && obs == nil) {
		if e.qbResponseIn(m, peer, pkey, dk) {
			return // a block of a Q-Block transfer (qblock_client.go)
		}
		// RFC 7252 §4.2/§4.3 and RFC 7641 §3.6: reject what we cannot
		// match.
		e.m.Count(EventDropUnexpected, 1)
		e.sendEmpty(message.Reset, uint16(m.MessageID), peer, &dk)
		return
	}
	if id, bad := badCriticalOption(m.Options); bad {
		// RFC 7252 §5.4.1: reject (RST) a response with an unrecognised
		// critical option; the request or observation fails.
		e.m.Count(EventBadOption, 1)
		e.sendEmpty(message.Reset, uint16(m.MessageID), peer, &dk)
		err := fmt.Errorf("%w: unrecognised critical option %d", ErrBadResponse, id)
		if first {
			deliver(ex, exResult{err: err})
		} else {
			e.dropToken(obs)
			obs.finishAsync(err)
		}
		return
	}
	if con {
		e.sendEmpty(message.Acknowledgement, uint16(m.MessageID), peer, &dk)
	}
	resp := e.makeResponse(m, peer)
	if first {
		if ex.obs != nil {
			ex.obs.notify(e, resp)
		}
		deliver(ex, exResult{resp: resp})
		return
	}
	obs.notify(e, resp)
}
