package oscore

import (
	"crypto/rand"
	"crypto/subtle"
	"time"
)

// replayWindow is the Recipient Context's replay window of RFC 8613 §7.4:
// a sliding bitmap of the last size Partial IVs below and including the
// highest one accepted. It is bounded (one word) whatever the peer sends.
//
// A window that is not initialised (after a restart, Appendix B.1.2)
// accepts nothing until a request proves its freshness with an Echo value
// this endpoint chose (RFC 9175); that request's Partial IV then starts the
// window.
type replayWindow struct {
	size   uint64
	top    uint64 // highest accepted Partial IV
	bits   uint64 // bit i set: top − i was accepted
	inited bool
}

func (w *replayWindow) init(size int, needEcho bool) {
	w.size = uint64(size)
	w.inited = !needEcho
}

// check reports whether piv is fresh (not seen, not below the window).
func (w *replayWindow) check(piv uint64) bool {
	if !w.inited || w.bits == 0 {
		return true
	}
	if piv > w.top {
		return true
	}
	d := w.top - piv
	if d >= w.size {
		return false
	}
	return w.bits&(1<<d) == 0
}

// accept records piv as seen; call only after check and successful
// decryption (§7.4: the window is updated only for verified messages).
func (w *replayWindow) accept(piv uint64) {
	switch {
	case w.bits == 0:
		w.top, w.bits = piv, 1
	case piv > w.top:
		shift := piv - w.top
		if shift >= 64 {
			w.bits = 1
		} else {
			w.bits = w.bits<<shift | 1
		}
		w.top = piv
	default:
		w.bits |= 1 << (w.top - piv)
	}
	if w.size < 64 {
		w.bits &= 1<<w.size - 1
	}
}

// echoState is the Echo challenge of a Recipient Context whose replay
// window is not initialised: one random value at a time, valid for ttl.
type echoState struct {
	ttl     time.Duration
	value   []byte
	created time.Time
}

// challenge returns the current Echo value, making a new one when there is
// none or it expired. Repeated challenges (retransmissions, concurrent
// requests) get the same value while it is valid.
func (e *echoState) challenge(now time.Time) []byte {
	if e.value == nil || now.Sub(e.created) > e.ttl {
		v := make([]byte, 8)
		_, _ = rand.Read(v)
		e.value, e.created = v, now
	}
	return e.value
}

// verify reports whether v is the current, unexpired Echo value.
func (e *echoState) verify(v []byte, now time.Time) bool {
	return e.value != nil && len(v) == len(e.value) && now.Sub(e.created) <= e.ttl &&
		subtle.ConstantTimeCompare(v, e.value) == 1
}
