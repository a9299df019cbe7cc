package oscore

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// ReadFrom returns the next datagram for the message layer: a verified
// message in plain form (from an *Addr carrying the OSCORE identity), an
// empty message, or, with AllowPlain, an unprotected one. What fails
// verification never comes up: a request is answered with the RFC 8613
// error (4.01, 4.02, 4.00) and counted, a response is dropped and counted.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.inner == nil {
		return 0, nil, ErrNotCreated
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		n, peer, err := c.inner.ReadFrom(c.rbuf)
		if err != nil {
			return 0, peer, err
		}
		if n > len(c.rbuf)-1 {
			continue
		}
		out, from, ok := c.receive(c.rbuf[:n], peer)
		if !ok {
			continue
		}
		if len(out) > len(p) {
			c.m.Count(EventDecodeError, 1)
			continue
		}
		return copy(p, out), from, nil
	}
}

// receive processes one datagram; ok false means it was consumed here.
func (c *Conn) receive(data []byte, peer net.Addr) ([]byte, net.Addr, bool) {
	m, err := decodeDatagram(data)
	pk := bearer.AddrKey(peer)
	if err == nil && m.Code == codes.Empty && m.Type == message.Acknowledgement {
		c.mu.Lock()
		b, ok := c.retries[midKey{pk, uint16(m.MessageID)}]
		c.mu.Unlock()
		if ok {
			// The ACK of our own Echo retry: the message layer never sent
			// that message ID.
			c.stopRetry(b)
			return nil, nil, false
		}
	}
	if err != nil || m.Code == codes.Empty {
		// Malformed datagrams go up for the message layer's own answer
		// (RST or drop); empty ACK/RST/ping are not protected.
		return data, peer, true
	}
	in := inbound{m: m, data: data, peer: peer, pk: pk}
	in.opt, in.has, in.oerr = findOption(m)
	if m.Code>>5 == 0 {
		return c.receiveRequest(in)
	}
	return c.receiveResponse(in)
}

// inbound is one received message being unprotected: the message, its
// datagram, its sender (and the sender's key), and its OSCORE option as
// findOption found it (has false: none; oerr: malformed).
type inbound struct {
	m    *message.Message
	data []byte
	peer net.Addr
	pk   string
	opt  OptionValue
	has  bool
	oerr error
}

// receiveRequest verifies a request: through the context its kid (and
// kid context) name, once per protected datagram (a copy of the same
// datagram goes up for the message layer's duplicate detection), and
// binds its token to the context for the response.
func (c *Conn) receiveRequest(in inbound) ([]byte, net.Addr, bool) {
	m, peer := in.m, in.peer
	if !in.has || in.oerr != nil {
		return c.unprotectedRequest(in)
	}
	x, ok := c.requestContext(in.opt)
	if !ok || !in.opt.HasKID {
		c.m.Count(EventNoContext, 1)
		c.replyError(m, peer, &Error{Code: codes.Unauthorized, Reason: ErrNoContext})
		return nil, nil, false
	}
	now := time.Now()
	sn := c.seenRequest(in, now)
	var inner *message.Message
	var rid RequestID
	var err error
	if sn.again {
		// The same protected request again (a CON retransmission, or the
		// network duplicated it): give it to the message layer, whose
		// duplicate detection answers it from its cache without running
		// the handler. The replay window is not consulted: it would
		// refuse it, and the peer would get 4.01 for its own retransmission.
		inner, rid, err = x.reopenRequest(m, in.opt, sn.prev.ks)
		c.m.Count(EventDuplicate, 1)
	} else {
		inner, rid, err = x.UnprotectRequest(m, in.opt, now)
	}
	if err != nil {
		c.refuse(m, peer, x, rid, err)
		return nil, nil, false
	}
	if rid.phase == b2Complete {
		c.m.Count(EventB2Established, 1)
		c.log.Info("oscore: Appendix B.2 run completed, new context in use", "peer", peer.String())
	}
	c.bindRequest(in, x, inner, rid, sn)
	out, err := encodeDatagram(inner)
	if err != nil {
		c.m.Count(EventDecodeError, 1)
		c.replyError(m, peer, &Error{Code: codes.BadRequest, Reason: ErrDecode, Detail: err.Error()})
		return nil, nil, false
	}
	c.m.Count(EventVerified, 1)
	return out, &Addr{Inner: peer, Identity: x.Identity()}, true
}

// unprotectedRequest takes a request without a valid OSCORE option: up
// as it is from a peer allowed to talk plain (AllowPlain), else refused
// with 4.01 (no option) or 4.02 (a malformed one).
func (c *Conn) unprotectedRequest(in inbound) ([]byte, net.Addr, bool) {
	if !in.has {
		if c.cfg.allowPlain && !c.configured(in.pk) {
			c.m.Count(EventPlainPassed, 1)
			return in.data, in.peer, true
		}
		c.m.Count(EventPlainRefused, 1)
		c.replyError(in.m, in.peer, &Error{Code: codes.Unauthorized, Reason: ErrNotProtected})
		return nil, nil, false
	}
	c.m.Count(EventBadOption, 1)
	c.replyError(in.m, in.peer, &Error{Code: codes.BadOption, Reason: ErrBadOption, Detail: in.oerr.Error()})
	return nil, nil, false
}

// requestContext returns the context a request's option names: by
// Recipient ID, by kid and kid context, or, for a peer that does not send
// its kid context, by kid alone when exactly one context has that
// Recipient ID.
func (c *Conn) requestContext(opt OptionValue) (*Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	x, ok := c.byRID[string(opt.KID)]
	if !ok {
		x, ok = c.byKID[kidKey(ctxOf(opt), opt.KID)]
	}
	if !ok && !opt.HasKIDCtx {
		x = c.byKIDOnlyLocked(opt.KID)
		ok = x != nil
	}
	return x, ok
}

// seenReq is what the Conn remembers of a request's message ID when the
// request arrives (at): mk, the datagram's digest d, the entry of an
// earlier request with that ID (prev), and again: it was this very
// datagram.
type seenReq struct {
	at    time.Time
	mk    midKey
	d     [32]byte
	prev  seenEntry
	again bool
}

func (c *Conn) seenRequest(in inbound, now time.Time) seenReq {
	sn := seenReq{at: now, mk: midKey{in.pk, uint16(in.m.MessageID)}, d: digest(in.data)}
	c.mu.Lock()
	prev, dup := c.seen.get(sn.mk, now)
	c.mu.Unlock()
	sn.prev, sn.again = prev, dup && prev.digest == sn.d
	return sn
}

// bindRequest remembers a verified request: its datagram (for copies),
// its token bound to x for the response (kept for the observation's idle
// time when it registers one), and x as the peer's context when none is
// configured for it.
func (c *Conn) bindRequest(in inbound, x *Context, inner *message.Message, rid RequestID, sn seenReq) {
	now := sn.at
	obs, oe := inner.Options.Observe()
	b := &srvBinding{ctx: x, rid: rid, observe: oe == nil && obs == 0}
	exp := now.Add(c.lifetime())
	if b.observe {
		exp = now.Add(c.cfg.obsIdle)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen.put(sn.mk, seenEntry{sn.d, rid.ks}, now.Add(c.lifetime()), now)
	tk := tokKey{in.pk, string(in.m.Token)}
	if old, ok := c.srv.get(tk, now); !(ok && sn.again && old.rid.seq == rid.seq) {
		c.srv.put(tk, b, exp, now)
	}
	if _, bound := c.byPeer[in.pk]; !bound {
		c.learned[in.pk] = x
		if len(c.learned) > c.cfg.maxBindings {
			for k := range c.learned {
				delete(c.learned, k)
				break
			}
		}
	}
}

func ctxOf(o OptionValue) []byte {
	if !o.HasKIDCtx {
		return nil
	}
	return o.KIDContext
}

func (c *Conn) byKIDOnlyLocked(kid []byte) *Context {
	var found *Context
	for _, x := range c.byKID {
		if string(x.p.RecipientID) == string(kid) {
			if found != nil {
				return nil
			}
			found = x
		}
	}
	return found
}

// refuse counts a failed request and answers it: a protected 4.01 with an
// Echo value when only freshness is missing (Appendix B.1.2), the RFC
// 8613 error code unprotected otherwise.
func (c *Conn) refuse(m *message.Message, peer net.Addr, x *Context, rid RequestID, err error) {
	var e *Error
	switch {
	case errors.As(err, &e) && errors.Is(err, ErrRederive):
		// Appendix B.2 step 2: response #1, a protected 4.01 with R2 in its
		// kid context, under the keys of R2||ID1 (fresh: the request's
		// nonce protects nothing else with them).
		c.m.Count(EventB2Response1, 1)
		if e.evicted {
			c.m.Count(EventB2Evicted, 1)
		}
		resp := c.replyHeader(m)
		resp.Code = codes.Unauthorized
		out, perr := x.protectResponse(rid.ks, resp, rid, false, cborBytes(nil, e.r2))
		if perr != nil {
			c.m.Count(EventDecodeError, 1)
			return
		}
		c.log.Info("oscore: request answered with Appendix B.2 response #1", "peer", peer.String(), "detail", e.Detail)
		c.send(out, peer)
		return
	case errors.Is(err, ErrEchoRequired):
		c.m.Count(EventEchoChallenge, 1)
		resp := c.replyHeader(m)
		resp.Code = codes.Unauthorized
		resp.Options = message.Options{{ID: message.Echo, Value: x.echoChallenge(rid.ks, time.Now())}}
		// Our own Partial IV: the request may be a replay, and its nonce
		// must not protect a second plaintext (Appendix B.1.2).
		out, perr := x.ProtectResponse(resp, rid, true)
		if perr != nil {
			c.m.Count(EventSeqStoreError, 1)
			return
		}
		c.send(out, peer)
		return
	case errors.Is(err, ErrReplay):
		c.m.Count(EventReplay, 1)
	case errors.Is(err, ErrDecrypt):
		c.m.Count(EventDecryptFailed, 1)
	case errors.Is(err, ErrBadOption):
		c.m.Count(EventBadOption, 1)
	case errors.Is(err, ErrSeqStore):
		c.m.Count(EventSeqStoreError, 1)
	default:
		c.m.Count(EventDecodeError, 1)
	}
	c.log.Debug("oscore: request refused", "peer", peer.String(), "err", err)
	if !errors.As(err, &e) {
		e = &Error{Code: codes.BadRequest, Reason: ErrDecode, Detail: err.Error()}
	}
	c.replyError(m, peer, e)
}

// replyHeader returns a response header for request m: a piggybacked ACK
// for a CON, a NON with a fresh message ID for a NON.
func (c *Conn) replyHeader(m *message.Message) *message.Message {
	r := &message.Message{Token: m.Token, MessageID: m.MessageID, Type: message.Acknowledgement}
	if m.Type == message.NonConfirmable {
		r.Type = message.NonConfirmable
		r.MessageID = int32(rand.Uint32N(1 << 16))
	}
	return r
}

// replyError answers request m with the error's code and diagnostic
// payload, unprotected (RFC 8613 §8.2: the error is not protected, the
// context to protect it is what failed).
func (c *Conn) replyError(m *message.Message, peer net.Addr, e *Error) {
	if m.Type != message.Confirmable && m.Type != message.NonConfirmable {
		return
	}
	r := c.replyHeader(m)
	r.Code = e.Code
	r.Payload = []byte(e.Diagnostic())
	r.Options = message.Options{{ID: message.ContentFormat, Value: []byte{}}}
	c.send(r, peer)
}

func (c *Conn) send(m *message.Message, peer net.Addr) {
	b, err := encodeDatagram(m)
	if err != nil {
		return
	}
	if _, err := c.inner.WriteTo(b, peer); err != nil {
		c.log.Debug("oscore: write failed", "peer", peer.String(), "err", err)
	}
}

// reopenRequest decrypts a request already accepted once (a duplicate of
// the same datagram) with the keys it verified with, without the replay
// window.
func (x *Context) reopenRequest(m *message.Message, opt OptionValue, ks *keyset) (*message.Message, RequestID, error) {
	seq := decodePIV(opt.PIV)
	if ks == nil {
		ks = x.current()
	}
	rid := RequestID{KID: append([]byte{}, opt.KID...), PIV: append([]byte{}, opt.PIV...), seq: seq, ks: ks}
	code, inner, payload, err := openRequest(ks, m, rid)
	if err != nil {
		return nil, rid, err
	}
	return merge(m, code, inner, payload, false), rid, nil
}

// receiveResponse verifies a response with the context its token is
// bound to; an Echo challenge or an Appendix B.2 response #1 makes the
// request go again (retry) instead of going up.
func (c *Conn) receiveResponse(in inbound) ([]byte, net.Addr, bool) {
	m, peer := in.m, in.peer
	now := time.Now()
	tk := tokKey{in.pk, string(m.Token)}
	c.mu.Lock()
	b, ok := c.cli.get(tk, now)
	c.mu.Unlock()
	if !ok || !in.has || in.oerr != nil {
		return c.unverifiedResponse(in, ok)
	}
	r, err := b.ctx.unprotectResponse(m, in.opt, b.rid)
	if err != nil {
		c.dropResponse(peer, err)
		return nil, nil, false
	}
	if r.confirmed {
		c.m.Count(EventB2Established, 1)
		c.log.Info("oscore: Appendix B.2 run completed, new context in use", "peer", peer.String())
	}
	fresh, retry, ev := c.admitResponse(b, tk, r, now)
	if !fresh {
		c.m.Count(EventNotificationReplay, 1)
		c.ackIfCON(m, peer)
		return nil, nil, false
	}
	if retry {
		return c.retry(m, peer, in.pk, b, ev)
	}
	return c.deliverResponse(in, b, r.msg)
}

// unverifiedResponse takes a response that cannot be verified: bound
// false, its token is bound to no request of ours (up as it is from a
// peer allowed to talk plain, else dropped and a CON acknowledged); or it
// has no valid OSCORE option (an unprotected error goes up: it can only
// fail the request).
func (c *Conn) unverifiedResponse(in inbound, bound bool) ([]byte, net.Addr, bool) {
	m, peer := in.m, in.peer
	if !bound {
		if !in.has && c.cfg.allowPlain && !c.configured(in.pk) {
			c.m.Count(EventPlainPassed, 1)
			return in.data, peer, true
		}
		c.m.Count(EventUnexpected, 1)
		c.ackIfCON(m, peer)
		return nil, nil, false
	}
	if !in.has {
		if m.Code>>5 >= 4 {
			// An unprotected error (the peer could not verify the request:
			// 4.01, 4.02, 4.00): the requester learns it failed. It is not
			// authenticated, so it can only ever fail a request.
			c.m.Count(EventPlainError, 1)
			return in.data, peer, true
		}
		c.m.Count(EventPlainRefused, 1)
		return nil, nil, false
	}
	c.m.Count(EventBadOption, 1)
	return nil, nil, false
}

// dropResponse counts a response that failed verification.
func (c *Conn) dropResponse(peer net.Addr, err error) {
	switch {
	case errors.Is(err, ErrDecrypt):
		c.m.Count(EventDecryptFailed, 1)
	case errors.Is(err, ErrBadOption):
		c.m.Count(EventBadOption, 1)
	default:
		c.m.Count(EventDecodeError, 1)
	}
	c.log.Debug("oscore: response dropped", "peer", peer.String(), "err", err)
}

// admitResponse updates b for a verified response r: fresh false for a
// notification older than the last one (§7.4.1: accepted in Partial IV
// order only); retry when the request must go again (an Echo challenge
// or a B.2 response #1, at most maxRetries times), ev saying which.
func (c *Conn) admitResponse(b *cliBinding, tk tokKey, r responseResult, now time.Time) (fresh, retry bool, ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.observe && r.own {
		if b.notified && r.seq <= b.lastNotif {
			return false, false, 0
		}
		b.notified, b.lastNotif = true, r.seq
		c.cli.touch(tk, now.Add(c.cfg.obsIdle))
	}
	ev = EventEchoRetry
	if r.rederive {
		ev = EventB2Request2
	}
	inner := r.msg
	retry = (r.rederive || inner.Code == codes.Unauthorized && inner.Options.HasOption(message.Echo)) && b.retries < maxRetries
	if retry {
		b.retries++
	}
	return true, retry, ev
}

// deliverResponse hands a verified response up, ending the Echo retry it
// answers.
func (c *Conn) deliverResponse(in inbound, b *cliBinding, inner *message.Message) ([]byte, net.Addr, bool) {
	m := in.m
	if b.retryMID >= 0 && m.Type == message.Acknowledgement && m.MessageID == b.retryMID {
		// The answer to our Echo retry, piggybacked on an ACK the message
		// layer never sent a request for: hand it up as a separate
		// response, matched by token.
		inner.Type = message.NonConfirmable
	}
	if b.stop != nil && (m.Type != message.Acknowledgement || m.MessageID == b.retryMID) {
		c.stopRetry(b)
	}
	out, err := encodeDatagram(inner)
	if err != nil {
		c.m.Count(EventDecodeError, 1)
		return nil, nil, false
	}
	c.m.Count(EventVerified, 1)
	return out, &Addr{Inner: in.peer, Identity: b.ctx.Identity()}, true
}

func (c *Conn) ackIfCON(m *message.Message, peer net.Addr) {
	if m.Type == message.Confirmable {
		b := []byte{0x60, 0, 0, 0}
		binary.BigEndian.PutUint16(b[2:], uint16(m.MessageID))
		_, _ = c.inner.WriteTo(b, peer)
	}
}

func (c *Conn) stopRetry(b *cliBinding) {
	c.mu.Lock()
	s := b.stop
	b.stop = nil
	for k, v := range c.retries {
		if v == b {
			delete(c.retries, k)
		}
	}
	c.mu.Unlock()
	if s != nil {
		close(s)
	}
}

// maxRetries bounds how often one request is re-sent after an Echo
// challenge or an Appendix B.2 response #1 (e.g. response #1 and then, the
// peer having lost its R2, another).
const maxRetries = 2

// retry re-sends the request of b: with the Echo value the peer just sent
// (ev EventEchoRetry: Appendix B.1.2, RFC 9175 §2.3), or with the keys of
// the Appendix B.2 run the peer's response #1 started (EventB2Request2:
// request #2). It goes under a new message ID and Partial IV and the same
// token, so the message layer above, which saw only an empty ACK, gets the
// real answer as a separate response.
func (c *Conn) retry(m *message.Message, peer net.Addr, pk string, b *cliBinding, ev Event) ([]byte, net.Addr, bool) {
	c.m.Count(ev, 1)
	plain, err := decodeDatagram(b.plain)
	if err != nil {
		return nil, nil, false
	}
	// The answer to an earlier retry (its ACK carries the retry's message
	// ID, which the message layer never sent): stop retransmitting it.
	answersRetry := m.Type == message.Acknowledgement && b.retryMID >= 0 && m.MessageID == b.retryMID
	if b.stop != nil {
		c.stopRetry(b)
	}
	newMID := uint16(b.mid) + [maxRetries]uint16{0x8000, 0x4000}[b.retries-1]
	plain.MessageID = int32(newMID)
	out, rid, err := b.ctx.ProtectRequest(plain, c.cfg.kidContext)
	if err != nil {
		c.m.Count(EventSeqStoreError, 1)
		return nil, nil, false
	}
	data, err := encodeDatagram(out)
	if err != nil {
		return nil, nil, false
	}
	stop := make(chan struct{})
	c.mu.Lock()
	b.rid, b.retryMID, b.stop = rid, int32(newMID), stop
	if len(c.retries) < c.cfg.maxBindings {
		c.retries[midKey{pk, newMID}] = b
	}
	c.mu.Unlock()
	if _, err := c.inner.WriteTo(data, peer); err != nil {
		c.log.Debug("oscore: retry write failed", "peer", peer.String(), "err", err)
	}
	c.m.Count(EventProtected, 1)
	if plain.Type == message.Confirmable {
		c.retransmit(data, peer, stop)
	}
	switch {
	case answersRetry:
	case m.Type == message.Acknowledgement:
		// The 4.01 came piggybacked: the message layer gets an empty ACK
		// and waits for the separate response.
		ack := []byte{0x60, 0, 0, 0}
		binary.BigEndian.PutUint16(ack[2:], uint16(m.MessageID))
		return ack, peer, true
	case m.Type == message.Confirmable:
		c.ackIfCON(m, peer)
	}
	return nil, nil, false
}

// retransmit re-sends a CON Echo retry with the bearer's RFC 7252 backoff
// until stop is closed (its answer arrived), the Conn closes, or
// MAX_RETRANSMIT is reached.
func (c *Conn) retransmit(data []byte, peer net.Addr, stop chan struct{}) {
	p := c.inner.Params()
	if p.MaxRetransmit == 0 {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			for k, v := range c.retries {
				if v.stop == stop {
					delete(c.retries, k)
				}
			}
			c.mu.Unlock()
		}()
		d := time.Duration(float64(p.AckTimeout) * (1 + rand.Float64()*(p.AckRandomFactor-1)))
		for i := 0; i < p.MaxRetransmit; i++ {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return
			case <-c.closed:
				t.Stop()
				return
			}
			if _, err := c.inner.WriteTo(data, peer); err != nil {
				return
			}
			d *= 2
		}
	}()
}
