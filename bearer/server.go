package bearer

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// knownOption reports whether the Endpoint understands option id (RFC
// 7252 §5.4.1: an unrecognised critical option rejects the message).
func knownOption(id message.OptionID) bool {
	switch id {
	case message.IfMatch, message.URIHost, message.ETag, message.IfNoneMatch, message.Observe,
		message.URIPort, message.LocationPath, message.URIPath, message.ContentFormat, message.MaxAge,
		message.URIQuery, message.Accept, message.LocationQuery, message.Block2, message.Block1,
		message.Size2, message.Size1, message.NoResponse, message.RequestTag, message.Echo,
		message.QBlock1, message.QBlock2:
		return true
	}
	return false
}

// badCriticalOption returns the first critical option in opts that is not
// recognised or has an invalid length (§5.4.3 treats those alike).
func badCriticalOption(opts message.Options) (message.OptionID, bool) {
	for _, o := range opts {
		if o.ID%2 == 0 {
			continue
		}
		if !knownOption(o.ID) {
			return o.ID, true
		}
		if def, ok := message.CoapOptionDefs[o.ID]; ok {
			if n := uint32(len(o.Value)); n < def.MinLen || n > def.MaxLen {
				return o.ID, true
			}
		}
	}
	return 0, false
}

func defaultCode(method codes.Code) codes.Code {
	switch method {
	case codes.GET, codes.FETCH:
		return codes.Content
	case codes.POST:
		return codes.Created
	case codes.DELETE:
		return codes.Deleted
	default:
		return codes.Changed
	}
}

// handleRequest processes a new (not duplicate) CON or NON request. data
// and m are only valid during the call.
func (e *Endpoint) handleRequest(m *message.Message, data []byte, peer net.Addr, pkey string, dk midKey) {
	in := inboundOf(m, peer, dk)
	if e.refuseEarly(m, in) {
		return
	}
	// A handler slot is taken before any state changes (a final Block1
	// block completes its body), so that a request dropped for overload
	// is processed intact when the client retransmits it.
	select {
	case e.hsem <- struct{}{}:
	default:
		e.m.Count(EventDropOverload, 1)
		e.dedup.forget(dk)
		return
	}
	direct := func(code codes.Code, opts message.Options, payload []byte) {
		<-e.hsem
		e.replyDirect(in, m.Token, code, opts, payload)
	}
	var qb *qbReq
	if hasQBlock(m.Options) {
		r, handled := e.qbHandleRequest(m, peer, pkey, dk) // qblock_server.go
		if handled {
			return
		}
		qb = &r
	} else {
		qb = e.qbImplicit(m, pkey)
	}
	obsVal, hasObs := optionUint(m.Options, message.Observe)
	if hasObs && obsVal == 1 && (m.Code == codes.GET || m.Code == codes.FETCH) {
		e.obs.removeByToken(e, tokenKey{pkey, string(m.Token)}, nil)
	}
	var block1Echo uint32
	hasBlock1 := false
	var payload []byte
	if v, ok := optionUint(m.Options, message.Block1); ok {
		res := e.blocks.block1(block1Part{peer: pkey, key: blockKey(pkey, m.Code, m.Options, true), v: v,
			size1: optUint(m.Options, message.Size1), payload: m.Payload}, e.szx, time.Now(), e.m)
		if !res.done {
			direct(res.code, res.replyOptions(), nil)
			return
		}
		hasBlock1, block1Echo, payload = true, res.block1, res.body
	}
	if qb != nil && qb.hasBody {
		payload = qb.body
	}
	if v, ok := optionUint(m.Options, message.Block2); ok && v>>4 > 0 && !hasBlock1 {
		if e.serveCachedBlock2(m, in, pkey, v) {
			<-e.hsem
			return
		}
	}
	// One allocation holds the exchange, the request, its options and (if
	// small) a copy of the datagram: the handler outlives the read buffer.
	sx := &serverExchange{
		e: e, peer: peer, pkey: pkey, dk: dk, mid: in.mid, con: in.con, arrived: time.Now(),
		block1: block1Echo, hasBlock1: hasBlock1,
		obsReg: hasObs && obsVal == 0 && (m.Code == codes.GET || m.Code == codes.FETCH), qb: qb,
	}
	e.startServe(sx, data, payload)
}

// refuseEarly answers, from the read loop, a request that no handler may
// see: the endpoint is closing (5.03), or an unknown critical option
// (4.02, or 5.05 for proxying). It reports whether it did.
func (e *Endpoint) refuseEarly(m *message.Message, in inbound) bool {
	direct := func(code codes.Code) { e.replyDirect(in, m.Token, code, nil, nil) }
	if e.closing.Load() {
		direct(codes.ServiceUnavailable)
		return true
	}
	if id, bad := badCriticalOption(m.Options); bad {
		e.m.Count(EventBadOption, 1)
		if id == message.ProxyURI || id == message.ProxyScheme {
			direct(codes.ProxyingNotSupported)
			return true
		}
		direct(codes.BadOption)
		return true
	}
	return false
}

// replyOptions are the options of the answer to a Block1 block that does
// not complete the body: Block1 (2.31 Continue or an error echoing it) and
// Size1 (4.13).
func (res block1Result) replyOptions() message.Options {
	var opts message.Options
	if res.block1 != 0 || res.code == codes.Continue {
		opts = opts.Add(UintOption(message.Block1, res.block1))
	}
	if res.size1 > 0 {
		opts = opts.Add(UintOption(message.Size1, res.size1))
	}
	return opts
}

// startServe copies the datagram into sx (the handler outlives the read
// buffer), builds its Request with payload (the whole body when blocks
// made it), and starts the handler. The handler slot is held.
func (e *Endpoint) startServe(sx *serverExchange, data, payload []byte) {
	hasBlock1, qb, dk, peer := sx.hasBlock1, sx.qb, sx.dk, sx.peer
	var buf []byte
	if len(data) <= len(sx.datav) {
		buf = sx.datav[:len(data)]
		copy(buf, data)
	} else {
		buf = append([]byte(nil), data...)
	}
	rm := message.Message{Options: sx.optv[:0]}
	if err := decode(buf, &rm); err != nil { // cannot fail: decoded once already
		<-e.hsem
		e.dedup.forget(dk)
		return
	}
	if hasBlock1 || qb != nil && qb.hasBody {
		// The handler sees the whole body, not the last block.
		rm.Options = rm.Options.Remove(message.Block1).Remove(message.QBlock1).Remove(message.Size1)
	} else {
		payload = rm.Payload
	}
	sx.reqv = Request{
		Code: rm.Code, Type: rm.Type, Token: rm.Token, Options: rm.Options, Payload: payload,
		Peer: peer, Identity: PeerIdentity(peer), ctx: e.ctx,
	}
	sx.req = &sx.reqv
	if sx.con {
		e.dedup.setRunning(dk, sx)
	}
	e.hwg.Add(1)
	go e.serve(sx)
}

// serve runs the handler for one request on its own goroutine.
func (e *Endpoint) serve(sx *serverExchange) {
	defer func() {
		<-e.hsem
		e.hwg.Done()
	}()
	track := sx.con && sx.regenOf == nil // a regeneration is not the request's exchange
	if track {
		e.inflight.add(sx, time.Now())
	}
	defer func() {
		if track {
			e.inflight.remove(sx)
			e.dedup.setRunning(sx.dk, nil)
		}
		if r := recover(); r != nil {
			e.log.Error("bearer: handler panicked", "peer", sx.peer, "path", sx.req.Path(), "panic", r)
			_ = sx.WriteResponse(codes.InternalServerError, nil)
		}
	}()
	e.h.ServeCoAP(sx, sx.req)
	sx.mu.Lock()
	written := sx.written
	sx.mu.Unlock()
	if !written {
		_ = sx.WriteResponse(defaultCode(sx.req.Code), nil)
	}
}

// suppressed reports whether the request's No-Response option (RFC 7967
// §2.1: bit 1 suppresses 2.xx, bit 3 4.xx, bit 4 5.xx; an empty option
// suppresses nothing) asks not to be answered with code.
func suppressed(opts message.Options, code codes.Code) bool {
	v, ok := optionUint(opts, message.NoResponse)
	if !ok || v == 0 {
		return false
	}
	switch code >> 5 {
	case 2:
		return v&0x02 != 0
	case 4:
		return v&0x08 != 0
	case 5:
		return v&0x10 != 0
	}
	return false
}

// inbound is where the read loop's replies to one received request go:
// its peer, the deduplication key the reply is kept under, and whether it
// came CON (the reply is then piggybacked in an ACK with its message ID).
type inbound struct {
	peer net.Addr
	dk   midKey
	con  bool
	mid  uint16
}

// inboundOf is the inbound of request m from peer.
func inboundOf(m *message.Message, peer net.Addr, dk midKey) inbound {
	return inbound{peer: peer, dk: dk, con: m.Type == message.Confirmable, mid: uint16(m.MessageID)}
}

// replyDirect answers a request from the read loop (errors, 2.31
// Continue, cached blocks): piggybacked in an ACK for CON, a NON otherwise.
func (e *Endpoint) replyDirect(in inbound, token message.Token, code codes.Code, opts message.Options, payload []byte) {
	rm := message.Message{Code: code, Token: token, Options: opts, Payload: payload}
	if in.con {
		rm.Type, rm.MessageID = message.Acknowledgement, int32(in.mid)
	} else {
		rm.Type, rm.MessageID = message.NonConfirmable, int32(e.newMID())
	}
	data, err := encode(&rm)
	if err != nil {
		e.log.Warn("bearer: encode reply", "err", err)
		return
	}
	if in.con {
		e.dedup.setReply(in.dk, data)
	}
	_ = e.writeRaw(data, in.peer)
}

// serverExchange is the ResponseWriter of one request.
type serverExchange struct {
	e         *Endpoint
	req       *Request
	peer      net.Addr
	pkey      string
	dk        midKey
	mid       uint16
	con       bool
	arrived   time.Time
	block1    uint32 // Block1 option to echo in the final response
	hasBlock1 bool
	obsReg    bool
	qb        *qbReq    // the request carried a Q-Block option
	regen     bool      // SetRegenerable: the reply may be kept as a digest
	regenOf   *[16]byte // this run regenerates the reply with this digest

	mu       sync.Mutex
	written  bool
	acked    bool // empty ACK sent: the response goes separately
	opts     message.Options
	observer *Observer

	// in-flight list (guarded by Endpoint.inflight.mu)
	start      time.Time
	prev, next *serverExchange
	listed     bool

	reqv  Request
	optv  [8]message.Option
	datav [160]byte
}

// inflightList holds the CON requests whose handlers run, oldest first,
// so one goroutine can send the empty ACK for late ones without a timer
// per request.
type inflightList struct {
	mu         sync.Mutex
	head, tail *serverExchange
}

func (l *inflightList) add(sx *serverExchange, now time.Time) {
	l.mu.Lock()
	sx.start, sx.listed = now, true
	sx.prev, sx.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = sx
	} else {
		l.head = sx
	}
	l.tail = sx
	l.mu.Unlock()
}

func (l *inflightList) unlink(sx *serverExchange) {
	if !sx.listed {
		return
	}
	if sx.prev != nil {
		sx.prev.next = sx.next
	} else {
		l.head = sx.next
	}
	if sx.next != nil {
		sx.next.prev = sx.prev
	} else {
		l.tail = sx.prev
	}
	sx.prev, sx.next, sx.listed = nil, nil, false
}

func (l *inflightList) remove(sx *serverExchange) {
	l.mu.Lock()
	l.unlink(sx)
	l.mu.Unlock()
}

// takeLate unlinks and returns the exchanges started before cutoff.
func (l *inflightList) takeLate(cutoff time.Time, out []*serverExchange) []*serverExchange {
	l.mu.Lock()
	for l.head != nil && l.head.start.Before(cutoff) {
		sx := l.head
		l.unlink(sx)
		out = append(out, sx)
	}
	l.mu.Unlock()
	return out
}

// lateAckLoop sends the empty ACK for requests whose handlers are slower
// than Limits.SeparateAfter (checked every SeparateAfter/4).
func (e *Endpoint) lateAckLoop() {
	defer e.bg.Done()
	tick := e.lim.SeparateAfter / 4
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var late []*serverExchange
	for {
		select {
		case <-e.ctx.Done():
			return
		case now := <-t.C:
			late = e.inflight.takeLate(now.Add(-e.lim.SeparateAfter), late[:0])
			for i, sx := range late {
				sx.lateAck()
				late[i] = nil
			}
		}
	}
}

func (sx *serverExchange) SetOption(opt message.Option) {
	sx.mu.Lock()
	sx.opts = sx.opts.Set(opt)
	sx.mu.Unlock()
}

func (sx *serverExchange) AddOption(opt message.Option) {
	sx.mu.Lock()
	sx.opts = sx.opts.Add(opt)
	sx.mu.Unlock()
}

// lateAck sends the empty ACK when the handler is slower than
// Limits.SeparateAfter (RFC 7252 §5.2.2).
func (sx *serverExchange) lateAck() {
	sx.mu.Lock()
	defer sx.mu.Unlock()
	if sx.written || sx.acked {
		return
	}
	sx.acked = true
	sx.e.m.Count(EventSeparateResponse, 1)
	sx.e.sendEmpty(message.Acknowledgement, sx.mid, sx.peer, &sx.dk)
}

func (sx *serverExchange) Observe() (*Observer, error) {
	if !sx.obsReg {
		return nil, ErrNotObservable
	}
	sx.mu.Lock()
	defer sx.mu.Unlock()
	if sx.observer != nil {
		return sx.observer, nil
	}
	o, err := sx.e.obs.add(sx.e, sx.req)
	if err != nil {
		return nil, err
	}
	sx.observer = o
	return o, nil
}

func (sx *serverExchange) WriteResponse(code codes.Code, payload []byte) error {
	e := sx.e
	sx.mu.Lock()
	if sx.written {
		sx.mu.Unlock()
		return ErrAlreadyWritten
	}
	sx.written = true
	opts := sx.opts
	observer := sx.observer
	if observer != nil {
		if code>>5 == 2 {
			opts = opts.Set(UintOption(message.Observe, observer.nextSeq()))
		} else {
			// RFC 7641 §4.1: a non-2.xx response ends the registration.
			defer e.obs.removeByToken(e, tokenKey{sx.pkey, string(sx.req.Token)}, ErrObservationEnded)
		}
	}
	if sx.hasBlock1 {
		opts = opts.Set(UintOption(message.Block1, sx.block1))
	}
	if suppressed(sx.req.Options, code) && observer == nil {
		// RFC 7967: the requester is not interested in this class of
		// response. A NON gets nothing; a CON still gets its empty ACK.
		e.m.Count(EventNoResponse, 1)
		if sx.con && !sx.acked {
			sx.acked = true
			sx.mu.Unlock()
			e.sendEmpty(message.Acknowledgement, sx.mid, sx.peer, &sx.dk)
			return nil
		}
		sx.mu.Unlock()
		return nil
	}
	var after func() // the other blocks of a Q-Block2 answer
	if sx.qb != nil && sx.qb.hasBody {
		opts = opts.Set(UintOption(message.QBlock1, sx.qb.last.value()))
	}
	if sx.qb != nil && sx.qb.wantQ2 && code>>5 == 2 {
		var own bool
		opts, payload, after, own = e.qbResponse(sx, code, opts, payload) // qblock_server.go
		if sx.qb.doneKey != "" {
			e.blocks.finishDone(sx.qb.doneKey, code, opts, payload)
		}
		if own {
			sx.mu.Unlock()
			after()
			return nil
		}
	} else {
		opts, payload = e.blockResponse(sx.pkey, sx.req, opts, payload)
		if sx.qb != nil && sx.qb.doneKey != "" {
			e.blocks.finishDone(sx.qb.doneKey, code, opts, payload)
		}
	}
	if after != nil {
		defer after()
	}
	return sx.send(message.Message{Code: code, Token: sx.req.Token, Options: opts, Payload: payload})
}

// send sends the response rm (sx.mu held; send releases it): piggybacked
// in the ACK of a CON not yet acknowledged (kept for duplicates, or sent
// as a regenerated reply), else separately, CON retransmitted until
// acknowledged, or NON.
func (sx *serverExchange) send(rm message.Message) error {
	e := sx.e
	if sx.con && !sx.acked {
		rm.Type, rm.MessageID = message.Acknowledgement, int32(sx.mid)
		data, err := encode(&rm)
		if err != nil {
			sx.mu.Unlock()
			return err
		}
		if sx.regenOf != nil {
			sx.mu.Unlock()
			return e.sendRegenerated(sx, data)
		}
		e.keepReply(sx, data)
		err = e.writeRaw(data, sx.peer)
		sx.mu.Unlock()
		return err
	}
	sx.mu.Unlock()
	if sx.con {
		// Separate response: CON, retransmitted until ACKed.
		ctx, cancel := context.WithTimeout(e.ctx, e.p.MaxTransmitWait()+time.Second)
		defer cancel()
		_, err := e.roundTrip(ctx, sx.peer, &rm, rtOpts{con: true, ackOnly: true})
		return err
	}
	rm.Type, rm.MessageID = message.NonConfirmable, int32(e.newMID())
	data, err := encode(&rm)
	if err != nil {
		return err
	}
	return e.writeRaw(data, sx.peer)
}
