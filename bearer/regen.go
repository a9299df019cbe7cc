package bearer

import (
	"crypto/sha256"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
)

// The duplicate cache by size: a CON request's reply is kept for
// EXCHANGE_LIFETIME so that a duplicate gets the same bytes without the
// handler running twice (RFC 7252 §4.5). A firmware block is a 1 KiB
// reply and a campaign serves hundreds of thousands of them within
// EXCHANGE_LIFETIME; kept whole they were most of a gateway's heap. A
// handler whose answer is a function of the request alone (a GET of
// content-addressed data) says so with SetRegenerable; its replies above
// Limits.MaxDedupReply are then kept as a 16-byte digest of the reply in
// the cache entry, and a duplicate (which carries the request again, byte
// for byte) runs the handler again: the new reply goes out only if it has
// the same digest (the same bytes), else nothing goes out, the entry is
// dropped and counted, and the next copy of the request is served as a
// new one (which the handler allows, RFC 7252 §4.5 relaxed deduplication
// for idempotent requests). Replies of other handlers are kept whole,
// whatever their size.

func replyDigest(b []byte) [16]byte {
	s := sha256.Sum256(b)
	var d [16]byte
	copy(d[:], s[:16])
	return d
}

// SetRegenerable tells the Endpoint that the handler, run again on the
// same request, writes the same response byte for byte and has no other
// effect: a GET of content-addressed data such as a firmware image block.
// A large piggybacked reply to the request is then kept for duplicates as
// a digest, and the handler runs again when a duplicate comes (see
// Limits.MaxDedupReply). Observe registrations, Block1 and Q-Block
// requests are never regenerated. Call it before WriteResponse.
//
// w may be the Endpoint's ResponseWriter or one wrapping it that has an
// Unwrap() ResponseWriter method; SetRegenerable reports false (and the
// reply is kept whole) for any other.
func SetRegenerable(w ResponseWriter) bool {
	for w != nil {
		switch x := w.(type) {
		case *serverExchange:
			x.mu.Lock()
			x.regen = !x.obsReg && x.qb == nil && !x.hasBlock1
			x.mu.Unlock()
			return true
		case interface{ Unwrap() ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
	return false
}

// keepReply stores the piggybacked reply data of sx for duplicates: as a
// digest when the handler is regenerable and data is large, else whole.
func (e *Endpoint) keepReply(sx *serverExchange, data []byte) {
	if sx.regen && len(data) > e.lim.MaxDedupReply {
		e.dedup.setRegen(sx.dk, replyDigest(data))
		return
	}
	e.dedup.setReply(sx.dk, data)
}

// regenerate answers the duplicate data of a request whose reply was kept
// as the digest sum: the handler runs again on a handler slot, on the
// duplicate; WriteResponse compares and sends.
func (e *Endpoint) regenerate(sum [16]byte, data []byte, peer net.Addr, dk midKey) {
	select {
	case e.hsem <- struct{}{}:
	default:
		e.m.Count(EventDropOverload, 1) // the client sends it again
		return
	}
	sx := &serverExchange{e: e, peer: peer, pkey: dk.peer, dk: dk, con: true, arrived: time.Now(), regenOf: &sum}
	buf := append([]byte(nil), data...)
	rm := message.Message{Options: sx.optv[:0]}
	if err := decode(buf, &rm); err != nil { // cannot fail: decoded before
		<-e.hsem
		return
	}
	sx.mid = uint16(rm.MessageID)
	sx.reqv = Request{Code: rm.Code, Type: rm.Type, Token: rm.Token, Options: rm.Options, Payload: rm.Payload,
		Peer: peer, Identity: PeerIdentity(peer), ctx: e.ctx}
	sx.req = &sx.reqv
	e.hwg.Add(1)
	go e.serve(sx)
}

// sendRegenerated sends a regenerated reply if it is the one the cache
// remembers.
func (e *Endpoint) sendRegenerated(sx *serverExchange, data []byte) error {
	if replyDigest(data) != *sx.regenOf {
		e.m.Count(EventDedupRegenMismatch, 1)
		e.dedup.forget(sx.dk)
		return nil
	}
	e.m.Count(EventDedupRegenerated, 1)
	return e.writeRaw(data, sx.peer)
}
