package oscore

import (
	"crypto/aes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/ccm"
)

// COSE algorithm identifiers (RFC 8152 / RFC 9053) OSCORE uses.
const (
	// AESCCM16_64_128 is AES-CCM-16-64-128 (COSE 10): 16-byte key, 13-byte
	// nonce, 8-byte tag; the OSCORE default (RFC 8613 §3.2) and the only
	// AEAD this package implements.
	AESCCM16_64_128 = 10
	// HKDFSHA256 is HKDF SHA-256 (COSE −10), the OSCORE default KDF and the
	// only one implemented.
	HKDFSHA256 = -10
)

const (
	keyLen   = 16
	nonceLen = 13
	tagLen   = 8
	// MaxIDLen is the longest Sender/Recipient ID with a 13-byte nonce:
	// nonce length − 6 (RFC 8613 §3.3).
	MaxIDLen = nonceLen - 6
	// maxSeq is 2^40 − 1, the largest Partial IV (§7.2.1).
	maxSeq = 1<<40 - 1
)

// Params are the input parameters of an OSCORE security context (RFC 8613
// §3.2): what an operator provisions (LwM2M Object 21). The zero Params
// has no master secret: Validate and NewContext refuse it.
type Params struct {
	// MasterSecret is the shared secret; at least 16 bytes recommended.
	MasterSecret []byte
	// MasterSalt is optional (empty by default).
	MasterSalt []byte
	// SenderID is this endpoint's ID (the peer's Recipient ID), at most
	// MaxIDLen bytes, possibly empty.
	SenderID []byte
	// RecipientID is the peer's ID, at most MaxIDLen bytes.
	RecipientID []byte
	// IDContext is the optional ID Context; nil means absent (CBOR null in
	// the derivation), which differs from an empty one.
	IDContext []byte
	// AEAD is the COSE AEAD algorithm; 0 means AESCCM16_64_128.
	AEAD int
	// HKDF is the COSE HKDF algorithm; 0 means HKDFSHA256.
	HKDF int
}

// Validate reports whether p can derive a context.
func (p Params) Validate() error {
	switch {
	case len(p.MasterSecret) == 0:
		return fmt.Errorf("%w: empty master secret", ErrInvalidOption)
	case len(p.SenderID) > MaxIDLen:
		return fmt.Errorf("%w: sender ID of %d bytes > %d", ErrInvalidOption, len(p.SenderID), MaxIDLen)
	case len(p.RecipientID) > MaxIDLen:
		return fmt.Errorf("%w: recipient ID of %d bytes > %d", ErrInvalidOption, len(p.RecipientID), MaxIDLen)
	case string(p.SenderID) == string(p.RecipientID):
		return fmt.Errorf("%w: sender and recipient ID are both %x; they must differ", ErrInvalidOption, p.SenderID)
	case p.AEAD != 0 && p.AEAD != AESCCM16_64_128:
		return fmt.Errorf("%w: AEAD algorithm %d not supported (only 10, AES-CCM-16-64-128)", ErrInvalidOption, p.AEAD)
	case p.HKDF != 0 && p.HKDF != HKDFSHA256 && p.HKDF != 5:
		// LwM2M Object 21 /21/x/4 names HMAC-SHA256 as 5 (COSE HMAC 256/256),
		// which is what HKDF SHA-256 is built on.
		return fmt.Errorf("%w: HKDF algorithm %d not supported (only -10, HKDF SHA-256)", ErrInvalidOption, p.HKDF)
	case len(p.IDContext) > 255:
		return fmt.Errorf("%w: ID context of %d bytes > 255", ErrInvalidOption, len(p.IDContext))
	}
	return nil
}

// Keys are the derived keys of a context (RFC 8613 §3.2.1).
type Keys struct {
	SenderKey    []byte
	RecipientKey []byte
	CommonIV     []byte
}

// info returns the CBOR-encoded HKDF info of RFC 8613 §3.2.1:
// [ id : bstr, id_context : bstr / nil, alg_aead : int, type : tstr, L : uint ].
func info(id, idContext []byte, typ string, l int) []byte {
	b := cborArray(make([]byte, 0, 32), 5)
	b = cborBytes(b, id)
	if idContext == nil {
		b = cborNull(b)
	} else {
		b = cborBytes(b, idContext)
	}
	b = cborInt(b, AESCCM16_64_128)
	b = cborText(b, typ)
	return cborInt(b, int64(l))
}

// Derive computes the Sender Key, Recipient Key and Common IV from p with
// HKDF-SHA256 (RFC 8613 §3.2.1).
func Derive(p Params) (Keys, error) {
	if err := p.Validate(); err != nil {
		return Keys{}, err
	}
	prk, err := hkdf.Extract(sha256.New, p.MasterSecret, p.MasterSalt)
	if err != nil {
		return Keys{}, fmt.Errorf("oscore: HKDF extract: %w", err)
	}
	exp := func(id []byte, typ string, l int) ([]byte, error) {
		return hkdf.Expand(sha256.New, prk, string(info(id, p.IDContext, typ, l)), l)
	}
	var k Keys
	if k.SenderKey, err = exp(p.SenderID, "Key", keyLen); err != nil {
		return Keys{}, err
	}
	if k.RecipientKey, err = exp(p.RecipientID, "Key", keyLen); err != nil {
		return Keys{}, err
	}
	if k.CommonIV, err = exp(nil, "IV", nonceLen); err != nil {
		return Keys{}, err
	}
	return k, nil
}

// nonce computes the AEAD nonce of RFC 8613 §5.2: the ID of the endpoint
// that generated the Partial IV, left-padded to nonceLen − 6 bytes and
// prefixed by its length, followed by the Partial IV left-padded to 5
// bytes, XORed with the Common IV.
func nonce(commonIV, idPIV []byte, piv uint64) [nonceLen]byte {
	var n [nonceLen]byte
	n[0] = byte(len(idPIV))
	copy(n[1+MaxIDLen-len(idPIV):1+MaxIDLen], idPIV)
	for i := 0; i < 5; i++ {
		n[nonceLen-1-i] = byte(piv >> (8 * i))
	}
	for i := range n {
		n[i] ^= commonIV[i]
	}
	return n
}

// encodePIV returns the shortest big-endian form of seq (at least one
// byte: 0 is 0x00), as the Partial IV field (§6.1).
func encodePIV(seq uint64) []byte {
	if seq == 0 {
		return []byte{0}
	}
	var b [8]byte
	n := 0
	for v := seq; v > 0; v >>= 8 {
		n++
	}
	for i := 0; i < n; i++ {
		b[i] = byte(seq >> (8 * (n - 1 - i)))
	}
	return append([]byte(nil), b[:n]...)
}

func decodePIV(piv []byte) uint64 {
	var v uint64
	for _, c := range piv {
		v = v<<8 | uint64(c)
	}
	return v
}

// Context is one OSCORE security context as provisioned (RFC 8613 §3):
// the Common Context, this endpoint's Sender Context (key, sequence number
// persisted in steps per Appendix B.1.1) and the Recipient Context (key,
// replay window that starts uninitialised and is set by an Echo exchange
// per Appendix B.1.2). With WithRederivation it also runs Appendix B.2:
// the keys in use are then derived from the provisioned parameters with a
// new ID Context, while the Context (its identity, its place in a Conn)
// stays the same. It is safe for concurrent use.
//
// The zero Context is not usable: use NewContext. It has no keys: it
// protects and verifies nothing (errors matching ErrNotCreated; an
// *Error with 4.01 for the Unprotect calls), and its Nonce is nil.
type Context struct {
	p     Params // as provisioned: the identity and the input of every derivation
	store SeqStore
	cfg   contextConfig

	mu      sync.Mutex
	cur     *keyset // keys in use
	peerEch []byte  // Echo value the peer asked for; sent in our next requests
	b2      *rederivation
}

// keyset is one derivation of a context's keys (RFC 8613 §3.2) with its
// mutable part: the sender sequence number and the replay window. The
// provisioned context has one; Appendix B.2 derives more, one per ID
// Context. The mutable fields are guarded by the owning Context's mu.
type keyset struct {
	idctx   []byte // nil: absent
	keys    Keys
	send    ccm.CCM
	recv    ccm.CCM
	key     string // SeqStore key: names the sender context, not its secrets
	persist bool   // sequence numbers kept in the SeqStore (false: a B.2 run's short-lived keys)

	seq   uint64 // next Sender Sequence Number
	bound uint64 // persisted: every seq < bound may have been used
	win   replayWindow
	echo  echoState
}

// ContextOption configures NewContext.
type ContextOption func(*contextConfig) error

type contextConfig struct {
	step      uint64
	window    int
	echoTTL   time.Duration
	noEcho    bool
	startSeq  uint64
	haveStart bool
	b2        bool
}

// WithSeqStep sets K of Appendix B.1.1: how many sequence numbers are
// reserved by one write to the SeqStore (default 64). Larger means fewer
// writes and more numbers skipped at each restart.
func WithSeqStep(k uint64) ContextOption {
	return func(c *contextConfig) error {
		if k == 0 || k > 1<<20 {
			return fmt.Errorf("%w: sequence step %d not in 1..2^20", ErrInvalidOption, k)
		}
		c.step = k
		return nil
	}
}

// WithReplayWindow sets the replay window size in messages (default 32,
// at most 64; RFC 8613 §7.4 says 32 by default).
func WithReplayWindow(n int) ContextOption {
	return func(c *contextConfig) error {
		if n < 1 || n > 64 {
			return fmt.Errorf("%w: replay window %d not in 1..64", ErrInvalidOption, n)
		}
		c.window = n
		return nil
	}
}

// WithEchoLifetime sets how long an Echo value sent in a 4.01 challenge
// stays valid (default 5 minutes: an SMS round trip can take a minute).
// An Appendix B.2 run waits as long for its second request.
func WithEchoLifetime(d time.Duration) ContextOption {
	return func(c *contextConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: echo lifetime %v", ErrInvalidOption, d)
		}
		c.echoTTL = d
		return nil
	}
}

// WithTrustedReplayWindow starts the replay window initialised, so the
// first request is accepted without an Echo round trip. Use it only for a
// context that has never been used before (fresh keys): after a restart the
// window must be re-learnt (Appendix B.1.2), which is the default.
func WithTrustedReplayWindow() ContextOption {
	return func(c *contextConfig) error { c.noEcho = true; return nil }
}

// WithSenderSequence starts the sender sequence number at seq instead of
// the store's value (test vectors; never in production).
func WithSenderSequence(seq uint64) ContextOption {
	return func(c *contextConfig) error { c.startSeq, c.haveStart = seq, true; return nil }
}

// NewContext derives a context from p. store keeps the sender sequence
// number across restarts (Appendix B.1.1); it is required, because a
// restart that reuses a sequence number reuses a nonce and breaks the
// AEAD. Use NewMemoryStore only where the context lives as long as the
// process (tests).
func NewContext(p Params, store SeqStore, opts ...ContextOption) (*Context, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: a SeqStore is required (RFC 8613 Appendix B.1.1)", ErrInvalidOption)
	}
	cfg := contextConfig{step: 64, window: 32, echoTTL: 5 * time.Minute}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &Context{p: clone(p), store: store, cfg: cfg}
	if cfg.b2 {
		if cfg.haveStart {
			return nil, fmt.Errorf("%w: WithSenderSequence and WithRederivation exclude each other", ErrInvalidOption)
		}
		return c, c.loadRederivation()
	}
	ks, err := c.derive(c.p.IDContext, true, !cfg.noEcho)
	if err != nil {
		return nil, err
	}
	if cfg.haveStart {
		ks.seq, ks.bound = cfg.startSeq, cfg.startSeq
	} else if err := c.loadSeq(ks); err != nil {
		return nil, err
	}
	c.cur = ks
	return c, nil
}

// derive computes the keys of this context with ID Context idctx; persist
// says whether its sequence numbers go to the SeqStore, needEcho whether
// its replay window starts uninitialised (Appendix B.1.2).
func (c *Context) derive(idctx []byte, persist, needEcho bool) (*keyset, error) {
	p := c.p
	p.IDContext = idctx
	keys, err := Derive(p)
	if err != nil {
		return nil, err
	}
	ks := &keyset{idctx: idctx, keys: keys, key: storeKey(p), persist: persist}
	if ks.send, err = newAEAD(keys.SenderKey); err != nil {
		return nil, err
	}
	if ks.recv, err = newAEAD(keys.RecipientKey); err != nil {
		return nil, err
	}
	ks.win.init(c.cfg.window, needEcho)
	ks.echo.ttl = c.cfg.echoTTL
	return ks, nil
}

// loadSeq starts ks at its stored bound (Appendix B.1.1: every number below
// it may have been used before the restart).
func (c *Context) loadSeq(ks *keyset) error {
	bound, ok, err := c.store.LoadSeq(ks.key)
	if err != nil {
		return fmt.Errorf("%w: load: %w", ErrSeqStore, err)
	}
	if ok {
		ks.seq, ks.bound = bound, bound
	}
	return nil
}

func newAEAD(key []byte) (ccm.CCM, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("oscore: %w", err)
	}
	a, err := ccm.NewCCM(b, tagLen, nonceLen)
	if err != nil {
		return nil, fmt.Errorf("oscore: %w", err)
	}
	return a, nil
}

func clone(p Params) Params {
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return append([]byte{}, b...)
	}
	p.MasterSecret, p.MasterSalt = cp(p.MasterSecret), cp(p.MasterSalt)
	p.SenderID, p.RecipientID, p.IDContext = cp(p.SenderID), cp(p.RecipientID), cp(p.IDContext)
	if p.SenderID == nil {
		p.SenderID = []byte{}
	}
	if p.RecipientID == nil {
		p.RecipientID = []byte{}
	}
	return p
}

// storeKey names the sender context in a SeqStore without revealing the
// secret: a hash of everything that determines the sender key and nonces.
// New keys (a new secret, salt or ID context) get a new key, so their
// sequence numbers start again at 0, which is safe.
func storeKey(p Params) string {
	h := sha256.New()
	for _, b := range [][]byte{p.MasterSecret, p.MasterSalt, p.SenderID, p.RecipientID, p.IDContext} {
		var l [2]byte
		l[0], l[1] = byte(len(b)>>8), byte(len(b))
		h.Write(l[:])
		h.Write(b)
	}
	if p.IDContext == nil {
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// current returns the keys in use.
func (c *Context) current() *keyset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Keys returns the derived keys in use (for tests and diagnostics).
func (c *Context) Keys() Keys {
	if c.store == nil { // a zero Context has none
		return Keys{}
	}
	return c.current().keys
}

// SenderID returns this endpoint's Sender ID.
func (c *Context) SenderID() []byte { return c.p.SenderID }

// RecipientID returns the peer's Sender ID.
func (c *Context) RecipientID() []byte { return c.p.RecipientID }

// IDContext returns the provisioned ID Context (nil when absent). With
// WithRederivation the keys in use may be derived from another one
// (CurrentIDContext); the identity stays the provisioned one.
func (c *Context) IDContext() []byte { return c.p.IDContext }

// CurrentIDContext returns the ID Context of the keys in use: the
// provisioned one, or the one the last Appendix B.2 run established.
func (c *Context) CurrentIDContext() []byte {
	if c.store == nil { // a zero Context has none
		return nil
	}
	return c.current().idctx
}

// Seq returns the next Sender Sequence Number of the keys in use.
func (c *Context) Seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil { // a zero Context
		return 0
	}
	return c.cur.seq
}

// nextSeq allocates a Sender Sequence Number of ks, persisting the next
// step first when the allocation reaches the stored bound (Appendix
// B.1.1: the store write happens before the number is used).
func (c *Context) nextSeq(ks *keyset) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ks.seq > maxSeq {
		return 0, ErrSeqExhausted
	}
	if ks.persist && ks.seq >= ks.bound {
		nb := min(ks.seq+c.cfg.step, maxSeq+1)
		if err := c.store.StoreSeq(ks.key, nb); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSeqStore, err)
		}
		ks.bound = nb
	}
	s := ks.seq
	ks.seq++
	return s, nil
}

// Nonce returns the nonce for a Partial IV generated by the endpoint with
// Sender ID idPIV (exported for the test vectors).
func (c *Context) Nonce(idPIV []byte, piv uint64) []byte {
	if c.store == nil { // a zero Context: no Common IV
		return nil
	}
	n := nonce(c.current().keys.CommonIV, idPIV, piv)
	return n[:]
}
