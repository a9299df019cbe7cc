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
	con, obs, ackOnly := o.con, o.obs, o.ackOnly
	pkey := AddrKey(peer)
	var ps *peerState
	if !ackOnly {
		var err error
		if ps, err = e.acquirePeer(ctx, pkey); err != nil {
			return nil, err
		}
	}
	slotHeld := ps != nil
	release := func() {
		if slotHeld {
			slotHeld = false
			<-ps.sem
			e.releasePeerRef(pkey, ps)
		}
	}
	defer release()

	fixedMID := o.midSet
	if fixedMID {
		m.MessageID = int32(o.mid)
	} else {
		m.MessageID = int32(e.newMID())
	}
	if con {
		m.Type = message.Confirmable
	} else {
		m.Type = message.NonConfirmable
	}
	data, err := encode(m)
	if err != nil {
		return nil, fmt.Errorf("bearer: encode request: %w", err)
	}
	if len(data) > e.p.MaxDatagram {
		return nil, fmt.Errorf("%w: request of %d bytes > %d", ErrTooLarge, len(data), e.p.MaxDatagram)
	}
	ex := &exchange{
		peer: peer, pkey: pkey, mid: uint16(m.MessageID), con: con,
		events: make(chan exResult, 2), obs: obs,
	}
	if m.Code != codes.Empty && !ackOnly {
		ex.token = string(m.Token)
	}
	if err := e.register(ex, fixedMID); err != nil {
		return nil, err
	}
	keepToken := false
	defer func() { e.unregister(ex, keepToken) }()

	start := time.Now()
	if err := e.writeRaw(data, peer); err != nil {
		return nil, err
	}
	transmissions := 1
	// One timer serves both the next retransmission and giving up.
	timeout := e.initialTimeout()
	giveUpAt := start.Add(e.lim.ResponseTimeout)
	var retransAt time.Time // zero: no more retransmissions
	if con {
		giveUpAt = start.Add(e.p.MaxTransmitWait())
		if e.p.MaxRetransmit > 0 {
			retransAt = start.Add(timeout)
		}
	}
	next := func() time.Duration {
		if !retransAt.IsZero() && retransAt.Before(giveUpAt) {
			return time.Until(retransAt)
		}
		return time.Until(giveUpAt)
	}
	timer := time.NewTimer(next())
	defer timer.Stop()
	acked := false
	op := "request"
	if m.Code == codes.Empty {
		op = "ping"
	}
	round := 1 // transmissions since the last (re)start of the schedule
	var steered <-chan struct{}
	if o.steer != nil && con && !ackOnly {
		steered = o.steer.sig
	}
	for {
		select {
		case <-steered:
			resend, to, abort := o.steer.take()
			if abort != nil {
				return nil, &AbortError{Err: abort, Transmissions: transmissions, Acked: acked}
			}
			if !resend || acked {
				continue
			}
			if to != nil && AddrKey(to) != ex.pkey {
				if !e.rekey(ex, to) {
					e.m.Count(EventDropOverload, 1)
					continue
				}
				peer = to
			}
			if err := e.writeRaw(data, peer); err != nil {
				return nil, err
			}
			e.m.Count(EventRetransmission, 1)
			transmissions++
			round = 1
			now := time.Now()
			timeout = e.initialTimeout()
			giveUpAt = now.Add(e.p.MaxTransmitWait())
			retransAt = time.Time{}
			if e.p.MaxRetransmit > 0 {
				retransAt = now.Add(timeout)
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(next())
		case r := <-ex.events:
			if r.ack {
				// Empty ACK: the interaction is no longer outstanding
				// (§4.7); wait for the separate response.
				if ackOnly {
					return nil, nil
				}
				if acked {
					continue
				}
				acked = true
				release()
				retransAt = time.Time{}
				giveUpAt = time.Now().Add(e.lim.ResponseTimeout)
				timer.Reset(next())
				op = "separate response"
				continue
			}
			if r.err == nil && obs != nil {
				keepToken = true
			}
			return r.resp, r.err
		case now := <-timer.C:
			if !now.Before(giveUpAt) {
				e.m.Count(EventTimeout, 1)
				return nil, &TimeoutError{Op: op, Peer: peer, Waited: now.Sub(start), Transmissions: transmissions}
			}
			if !retransAt.IsZero() && !now.Before(retransAt) {
				if err := e.writeRaw(data, peer); err != nil {
					return nil, err
				}
				e.m.Count(EventRetransmission, 1)
				transmissions++
				round++
				timeout *= 2
				if round <= e.p.MaxRetransmit {
					retransAt = retransAt.Add(timeout)
				} else {
					retransAt = time.Time{}
				}
			}
			timer.Reset(next())
		case <-ctx.Done():
			if acked && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// Acknowledged, and the separate response never came: say
				// so (a peer that does not implement a method, such as
				// Wakaama's client for FETCH and iPATCH, answers with an
				// empty ACK and nothing after it). Still a deadline.
				return nil, &TimeoutError{Op: op, Peer: peer, Waited: time.Since(start), Transmissions: transmissions}
			}
			return nil, ctx.Err()
		case <-e.ctx.Done():
			return nil, ErrClosed
		}
	}
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
