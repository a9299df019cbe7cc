package oscore

// RFC 8613 Appendix B.2, "Security Context Derived Multiple Times": two
// endpoints that share a Master Secret, Master Salt and Sender/Recipient
// IDs derive a fresh security context with a new ID Context built from
// random values they exchange in the 'kid context' field, so an endpoint
// that lost its mutable state (sequence number, replay window) never
// reuses a nonce and never accepts a replay:
//
//	requester (B.2 "client")               responder (B.2 "server")
//	1. ID1 = R1 (random)      request #1, kid context = bstr(R1)
//	                          ------------------------------------->  2. verify with ID1;
//	                                                                     R2 random, cache it
//	3. verify with R2||ID1    4.01 response #1, kid context = bstr(R2)   protect with R2||ID1
//	                          <-------------------------------------
//	   R3 random; protect     request #2, kid context = bstr(R2||R3)
//	   with R2||R3            ------------------------------------->  4. R2 cached → verify
//	                                                                     with R2||R3; it is the
//	5. verify with R2||R3;    response #2                                context from now on
//	   it is the context      <-------------------------------------
//	   from now on
//
// Step 1 is omitted when the responder starts the run (B.2: "the client
// or the server may initiate the protocol"): it answers a request it
// cannot trust with response #1, ID1 being the ID Context that request
// used. The request of step 1 is the real request (B.2: request #2 "can be
// an ordinary request"): Conn re-sends it as request #2 transparently, as
// it re-sends a request with an Echo value (Appendix B.1.2).
//
// When each side starts a run (the rules this package keeps):
//   - as requester (step 1): only when the context has no established state
//     (WithRederivation and nothing in the store: the first contact, or the
//     store was lost), never because a request failed — an error response
//     is not authenticated. One run at a time: concurrent requests share
//     R1, and every response #1 of the run leads to the same R2||R3.
//   - as responder (step 2): when a request verifies under a context
//     derived from the provisioned parameters with the ID Context its
//     'kid context' names, and that is not the context in use (the
//     requester started a run, or holds a context this endpoint lost); or,
//     without 'kid context', when this endpoint has no established state
//     for the context. The request is never executed.
//   - neither side runs B.2 while its state is intact: Appendix B.1
//     (sequence numbers in steps, Echo for the replay window) covers
//     restarts at no extra message.
//
// Bounds: R1, R2 and R3 are 8 random bytes (B.2: "typically at least 8
// bytes"); at most 4 R2 values are cached per context (B.2.1), each for
// the Echo lifetime (default 5 minutes), the oldest dropped first
// (EventB2Evicted); an R2 from the peer is at most 16 bytes; a request is
// tried against at most two derivations in each step, so a forged
// 'kid context' costs a bounded amount of work. The ID Context a run
// establishes is written with its first sequence-number step in one
// durable store write (IDContextStore) before it is used.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

const (
	b2RandLen = 8  // R1, R2, R3
	b2MaxR2   = 16 // the longest R2 accepted from a peer (Californium sends S2||HMAC, 16)
	b2MaxRuns = 4  // R2 values cached per context
	// b2MaxKIDContext is the longest kid context a context with B.2 sends:
	// bstr(R2||R3) with the longest R2.
	b2MaxKIDContext = 2 + b2MaxR2 + b2RandLen
)

// b2Phase says what a request is in an Appendix B.2 run.
type b2Phase uint8

const (
	b2None     b2Phase = iota
	b2Start            // the first request #1 of a run this endpoint started (step 1)
	b2Request1         // another request protected with the run's ID1
	b2Request2         // protected with the run's new keys R2||R3 (step 3)
	b2Complete         // this request completed a run (step 4, or step 5 on a request)
)

// WithRederivation enables RFC 8613 Appendix B.2 for the context, in both
// roles: the keys in use are derived from the provisioned parameters with
// an ID Context the two endpoints build from random values, whenever one
// of them has no state to continue with. The store must implement
// IDContextStore (MemoryStore and BoltStore do). Both endpoints must
// enable it, and among the contexts of one Conn its Recipient ID must be
// unique: requests of a run are found by kid alone.
func WithRederivation() ContextOption {
	return func(c *contextConfig) error { c.b2 = true; return nil }
}

// IDContextStore keeps what Appendix B.2 needs across restarts: for each
// context with WithRederivation (named by an opaque key, no secret), the
// ID Context its last completed run established.
type IDContextStore interface {
	// LoadIDContext returns origin's established ID Context.
	LoadIDContext(origin string) (idctx []byte, ok bool, err error)
	// SwitchIDContext durably records, in one write, idctx as origin's ID
	// Context and bound as the sequence-number bound (SeqStore) of the keys
	// derived with it under seqKey, and forgets the bound stored under
	// retired (the keys it replaces; "" for none).
	SwitchIDContext(origin string, idctx []byte, seqKey string, bound uint64, retired string) error
}

// rederivation is the Appendix B.2 state of a Context, guarded by its mu.
type rederivation struct {
	store       IDContextStore
	origin      string
	established bool      // cur came from the store or a completed run
	run1        *keyset   // step 1: our requests #1 (ID1 = R1)
	pend        *keyset   // step 3: R2||R3 chosen, not yet confirmed (step 5)
	pendExp     time.Time // pend is given up after the Echo lifetime
	r2          []r2Entry // step 2: R2 values sent, oldest first
}

type r2Entry struct {
	r2  []byte
	exp time.Time
}

// loadRederivation sets the keys in use from the store: the ID Context of
// the last completed run with its sequence-number bound, or, when either
// is missing (first contact, lost storage), nothing established: the
// next exchange with the peer runs B.2.
func (c *Context) loadRederivation() error {
	st, ok := c.store.(IDContextStore)
	if !ok {
		return fmt.Errorf("%w: WithRederivation needs a store that implements IDContextStore", ErrInvalidOption)
	}
	c.b2 = &rederivation{store: st, origin: storeKey(c.p)}
	idctx, ok, err := st.LoadIDContext(c.b2.origin)
	if err != nil {
		return fmt.Errorf("%w: load ID context: %w", ErrSeqStore, err)
	}
	if ok {
		ks, err := c.derive(idctx, true, true)
		if err != nil {
			return err
		}
		bound, have, err := c.store.LoadSeq(ks.key)
		if err != nil {
			return fmt.Errorf("%w: load: %w", ErrSeqStore, err)
		}
		if have {
			ks.seq, ks.bound = bound, bound
			c.cur, c.b2.established = ks, true
			return nil
		}
	}
	// Never used to protect anything: it names the provisioned keys (the
	// ID1 of a run the peer starts without a kid context).
	base, err := c.derive(c.p.IDContext, false, true)
	if err != nil {
		return err
	}
	c.cur = base
	return nil
}

// Rederivation reports whether Appendix B.2 is enabled and whether the
// keys in use are established (from the store or a completed run).
func (c *Context) Rederivation() (enabled, established bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.b2 == nil {
		return false, false
	}
	return true, c.b2.established
}

// randReader is where R1, R2 and R3 come from (B.2: "good sources of
// randomness"); tests make it deterministic to build a seed corpus.
var randReader io.Reader = rand.Reader

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(randReader, b); err != nil {
		panic("oscore: no randomness: " + err.Error())
	}
	return b
}

func concat(a, b []byte) []byte { return append(append(make([]byte, 0, len(a)+len(b)), a...), b...) }

// unwrapBstr returns the content of b when b is exactly one CBOR byte
// string in its shortest form (the 'kid context' of a B.2 message).
func unwrapBstr(b []byte) ([]byte, bool) {
	if len(b) == 0 || b[0]>>5 != 2 {
		return nil, false
	}
	ai := b[0] & 0x1f
	switch {
	case ai < 24 && len(b) == 1+int(ai):
		return b[1:], true
	case ai == 24 && len(b) >= 2 && b[1] >= 24 && len(b) == 2+int(b[1]):
		return b[2:], true
	}
	return nil, false
}

// requestKeyset chooses the keys and the kid context of our next request.
func (c *Context) requestKeyset(withKC bool) (*keyset, []byte, b2Phase, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.b2
	if b == nil {
		if withKC && c.cur.idctx != nil {
			return c.cur, c.cur.idctx, b2None, nil
		}
		return c.cur, nil, b2None, nil
	}
	now := timeNow()
	if b.pend != nil && now.Before(b.pendExp) {
		return b.pend, cborBytes(nil, b.pend.idctx), b2Request2, nil
	}
	b.pend = nil
	if b.established {
		// The ID Context goes in every request's kid context (§5.1 allows
		// it; libcoap does it and needs it: it keeps the provisioned and the
		// derived context side by side under one kid), and a peer that
		// lost the context can start a run from it (step 2).
		return c.cur, c.cur.idctx, b2None, nil
	}
	phase := b2Request1
	if b.run1 == nil {
		ks, err := c.derive(random(b2RandLen), false, false)
		if err != nil {
			return nil, nil, 0, err
		}
		b.run1, phase = ks, b2Start
	}
	return b.run1, cborBytes(nil, b.run1.idctx), phase, nil
}

// unprotectRederivable is UnprotectRequest for a context with
// WithRederivation: the keys in use, a run's pending keys, step 4 (a
// request #2 whose R2 we sent) or step 2 (a request to answer with
// response #1).
func (c *Context) unprotectRederivable(m *message.Message, opt OptionValue, now time.Time) (*message.Message, RequestID, error) {
	kc := newKIDContext(opt)
	cands, established := c.candidates(kc)
	seq := decodePIV(opt.PIV)
	rid := RequestID{KID: append([]byte{}, opt.KID...), PIV: append([]byte{}, opt.PIV...), seq: seq}
	msg, r, done, last := c.unprotectWithAny(cands, m, opt, now)
	if done {
		return msg, r, last
	}
	if kc.has && len(cands) > 0 {
		// The kid context named keys we have and the request does not
		// verify with them: tampered, not a run.
		return nil, rid, last
	}
	// Step 4: request #2 of a run we answered.
	if kc.isBstr && c.sentR2(kc.inner, now) {
		msg, r, err := c.request2(m, rid, kc.inner)
		if err == nil || !errors.Is(err, ErrDecrypt) {
			return msg, r, err
		}
		last = err
	}
	// Step 2: verify with ID1 and answer with response #1.
	return c.startRun(m, rid, kc.id1s(established, c.p.IDContext), last, now)
}

// kidContext is a request's kid context as Appendix B.2 reads it: has
// false for none; inner is its content when it is one CBOR byte string
// (isBstr), as B.2 wraps it.
type kidContext struct {
	k      []byte
	has    bool
	inner  []byte
	isBstr bool
}

func newKIDContext(opt OptionValue) kidContext {
	kc := kidContext{k: opt.KIDContext, has: opt.HasKIDCtx}
	if kc.has {
		kc.inner, kc.isBstr = unwrapBstr(kc.k)
	}
	return kc
}

// names reports whether the kid context names ks's ID Context (bare or
// wrapped), or is absent.
func (kc kidContext) names(ks *keyset) bool {
	return !kc.has || bytes.Equal(ks.idctx, kc.k) || (kc.isBstr && bytes.Equal(ks.idctx, kc.inner))
}

// id1s are the ID1 values step 2 tries for a request with this kid
// context: what it carries, or, without one, the provisioned ID Context
// when we lost our state (not established: the responder starts the run).
func (kc kidContext) id1s(established bool, provisioned []byte) [][]byte {
	switch {
	case kc.has && kc.isBstr:
		return [][]byte{kc.inner, kc.k} // B.2 wraps ID1 in a bstr; §5.1 sends it bare
	case kc.has:
		return [][]byte{kc.k}
	case !established:
		return [][]byte{provisioned}
	}
	return nil
}

// candidates returns the keys a request with kid context kc may be
// protected with: those in use (once established) and a run's pending
// keys, as kc names them; and whether keys are established.
func (c *Context) candidates(kc kidContext) ([]*keyset, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.b2
	var cands []*keyset
	if b.established && kc.names(c.cur) {
		cands = append(cands, c.cur)
	}
	if b.pend != nil && kc.names(b.pend) {
		cands = append(cands, b.pend)
	}
	return cands, b.established
}

// unprotectWithAny tries cands in turn. done: the request verified with
// one (err nil) or failed otherwise than by decryption (err says why);
// else err is the last decryption failure (nil: no candidate).
func (c *Context) unprotectWithAny(cands []*keyset, m *message.Message, opt OptionValue, now time.Time) (msg *message.Message, r RequestID, done bool, err error) {
	var last error
	for _, ks := range cands {
		msg, r, err := c.unprotectWith(ks, m, opt, now)
		if err == nil {
			if c.verifiedWith(ks) {
				r.phase = b2Complete
			}
			return msg, r, true, nil
		}
		if !errors.Is(err, ErrDecrypt) {
			return nil, r, true, err
		}
		last = err
	}
	return nil, RequestID{}, false, last
}

// startRun is step 2: it verifies the request with the keys of each ID1
// in ids and, with the first that fits, starts a run: a fresh R2 and the
// keys of R2||ID1 for response #1, returned as an ErrRederive Error. The
// request fits none: last, or a decryption error when nothing was tried.
func (c *Context) startRun(m *message.Message, rid RequestID, ids [][]byte, last error, now time.Time) (*message.Message, RequestID, error) {
	for _, id1 := range ids {
		ks1, err := c.derive(append([]byte(nil), id1...), false, false)
		if err != nil {
			return nil, rid, err
		}
		rid.ks = ks1
		if _, _, _, err := openRequest(ks1, m, rid); err != nil {
			last = err
			continue
		}
		r2 := random(b2RandLen)
		ks2, err := c.derive(concat(r2, id1), false, false)
		if err != nil {
			return nil, rid, err
		}
		rid.ks, rid.reqKS = ks2, ks1
		evicted := c.rememberR2(r2, now)
		return nil, rid, &Error{Code: codes.Unauthorized, Reason: ErrRederive, r2: r2, evicted: evicted,
			Detail: fmt.Sprintf("Appendix B.2 step 2: ID1 of %d bytes", len(id1))}
	}
	if last == nil {
		last = newErr(codes.BadRequest, ErrDecrypt, "request Partial IV %d", rid.seq)
	}
	return nil, rid, last
}

// request2 verifies a request #2 with the keys of ID3 = R2||R3 and makes
// them the context in use (step 4) before the request is executed.
func (c *Context) request2(m *message.Message, rid RequestID, id3 []byte) (*message.Message, RequestID, error) {
	ks3, err := c.derive(append([]byte(nil), id3...), true, false)
	if err != nil {
		return nil, rid, err
	}
	rid.ks = ks3
	code, inner, payload, err := openRequest(ks3, m, rid)
	if err != nil {
		return nil, rid, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	in, err := c.establishLocked(ks3)
	if err != nil {
		return nil, rid, &Error{Code: codes.ServiceUnavailable, Reason: ErrSeqStore, Detail: err.Error()}
	}
	rid.ks = in
	// A copy of request #2 that raced this one finds the context in use:
	// the replay window decides.
	if !in.win.check(rid.seq) {
		return nil, rid, newErr(codes.Unauthorized, ErrReplay, "Partial IV %d (request #2 again)", rid.seq)
	}
	in.win.accept(rid.seq)
	if in == ks3 {
		rid.phase = b2Complete
	}
	return merge(m, code, inner, payload, false), rid, nil
}

// sentR2 reports whether id3 starts with an R2 we sent in a response #1
// that has not expired, and is longer than it (R3 follows).
func (c *Context) sentR2(id3 []byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.b2.r2 {
		if now.Before(e.exp) && len(id3) > len(e.r2) && bytes.HasPrefix(id3, e.r2) {
			return true
		}
	}
	return false
}

// rememberR2 caches r2 (bounded: the oldest goes first; reports whether
// one went).
func (c *Context) rememberR2(r2 []byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.b2
	keep := b.r2[:0]
	for _, e := range b.r2 {
		if now.Before(e.exp) {
			keep = append(keep, e)
		}
	}
	b.r2 = keep
	evicted := false
	if len(b.r2) >= b2MaxRuns {
		b.r2 = append(b.r2[:0], b.r2[1:]...)
		evicted = true
	}
	b.r2 = append(b.r2, r2Entry{r2: r2, exp: now.Add(c.cfg.echoTTL)})
	return evicted
}

// establishLocked makes ks the keys in use (step 4 or 5): its ID Context
// and first sequence-number step are stored before anything is protected
// with it, the state of any run is dropped, and the keys it replaces are
// forgotten by the store. If keys with the same ID Context are already in
// use (a concurrent copy of the same message), those are returned.
func (c *Context) establishLocked(ks *keyset) (*keyset, error) {
	b := c.b2
	if b.established && bytes.Equal(c.cur.idctx, ks.idctx) {
		return c.cur, nil
	}
	retired := ""
	if b.established {
		retired = c.cur.key
	}
	bound := min(ks.seq+c.cfg.step, maxSeq+1)
	if err := b.store.SwitchIDContext(b.origin, ks.idctx, ks.key, bound, retired); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSeqStore, err)
	}
	ks.persist, ks.bound = true, bound
	c.cur, c.peerEch = ks, nil
	b.established = true
	b.run1, b.pend, b.r2 = nil, nil, nil
	return ks, nil
}

// verifiedWith records that a message from the peer verified with ks: a
// run's pending keys become the keys in use (step 5). It reports whether
// a run completed.
func (c *Context) verifiedWith(ks *keyset) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.b2
	if ks != b.pend {
		return false
	}
	in, err := c.establishLocked(ks)
	// A store error leaves the run pending; its keys keep protecting our
	// requests until the Echo lifetime ends, and the next verified message
	// tries again.
	return err == nil && in == ks
}

// response1 verifies an Appendix B.2 response #1 to rid (step 3): with the
// keys of R2||ID1, R2 from its kid context, ID1 the ID Context the request
// was protected with. It then chooses the run's new keys R2||R3 (one set
// per run: every response #1 of the run leads to the same), which Conn's
// re-sent request #2 uses.
func (c *Context) response1(m *message.Message, opt OptionValue, rid RequestID) (responseResult, error) {
	if c.b2 == nil {
		return responseResult{}, newErr(codes.BadOption, ErrBadOption, "kid context in a response: Appendix B.2 is not enabled for this context")
	}
	r2, ok := unwrapBstr(opt.KIDContext)
	if !ok || len(r2) == 0 || len(r2) > b2MaxR2 {
		return responseResult{}, newErr(codes.BadOption, ErrBadOption, "response #1 kid context %x is not a bstr of 1..%d bytes", opt.KIDContext, b2MaxR2)
	}
	ks := rid.ks
	if ks == nil {
		ks = c.current()
	}
	ks2, err := c.derive(concat(r2, ks.idctx), false, false)
	if err != nil {
		return responseResult{}, err
	}
	r, _, err := openResponse(ks2, c.p.RecipientID, m, opt, rid)
	if err != nil {
		return r, err
	}
	if r.msg.Code != codes.Unauthorized {
		return r, newErr(codes.BadRequest, ErrDecode, "response #1 is %v, not 4.01", r.msg.Code)
	}
	now := timeNow()
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.b2
	if b.pend == nil || !now.Before(b.pendExp) || ks == b.pend {
		// A response #1 to a request made with the pending keys: the peer
		// did not know them (it lost its R2), so they are given up.
		ks3, err := c.derive(concat(r2, random(b2RandLen)), false, false)
		if err != nil {
			return r, err
		}
		b.pend, b.pendExp = ks3, now.Add(c.cfg.echoTTL)
	}
	r.rederive = true
	return r, nil
}
