package oscore

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// RequestID is what a response is bound to (RFC 8613 §5.4): the kid and
// Partial IV of the request, which enter the response's AAD and, when the
// response carries no Partial IV of its own, its nonce.
//
// The zero RequestID has an empty kid and Partial IV (Seq 0).
type RequestID struct {
	KID   []byte // the requester's Sender ID
	PIV   []byte // the request's Partial IV as sent
	seq   uint64
	ks    *keyset // the keys the request was protected or verified with (or its response is protected with)
	reqKS *keyset // the request's keys when they differ from ks (Appendix B.2 response #1)
	phase b2Phase // Appendix B.2 step this request is (requester side)
}

// requestNonce returns the AEAD nonce of the request, which a response
// without a Partial IV uses (§8.3 step 3, §8.4 step 4: "the AEAD nonce
// from the request"): computed with the Common IV of the request's keys,
// also when the response is protected with others (Appendix B.2 response
// #1, as libcoap does).
func (r RequestID) requestNonce(fallback *keyset) [nonceLen]byte {
	ks := r.reqKS
	if ks == nil {
		ks = r.ks
	}
	if ks == nil {
		ks = fallback
	}
	return nonce(ks.keys.CommonIV, r.KID, r.seq)
}

// Seq returns the request's Partial IV as a number.
func (r RequestID) Seq() uint64 { return r.seq }

// Option classes (RFC 8613 §4.1, Figure 5). Options not listed there are
// Class E. Observe is both Inner and Outer (§4.1.3.5).
func classU(id message.OptionID) bool {
	switch id {
	case message.URIHost, message.URIPort, OptionNumber, message.ProxyURI, message.ProxyScheme,
		16, // Hop-Limit (RFC 8768)
		21: // EDHOC (RFC 9668)
		return true
	}
	return false
}

// aad returns the CBOR Enc_structure of RFC 8613 §5.4:
// ["Encrypt0", h”, bstr(external_aad)], external_aad =
// [oscore_version 1, [alg_aead], request_kid, request_piv, options h”].
func aad(requestKID, requestPIV []byte) []byte {
	ext := cborArray(make([]byte, 0, 24), 5)
	ext = cborInt(ext, 1)
	ext = cborArray(ext, 1)
	ext = cborInt(ext, AESCCM16_64_128)
	ext = cborBytes(ext, requestKID)
	ext = cborBytes(ext, requestPIV)
	ext = cborBytes(ext, nil) // no Class I options are defined
	b := cborArray(make([]byte, 0, 16+len(ext)), 3)
	b = cborText(b, "Encrypt0")
	b = cborBytes(b, nil)
	return cborBytes(b, ext)
}

// AAD returns the additional authenticated data for a request kid and
// Partial IV (exported for the test vectors).
func AAD(requestKID, requestPIV []byte) []byte { return aad(requestKID, requestPIV) }

// split returns the Inner (Class E) and Outer (Class U) options of a
// plaintext message, Observe in both (inner value empty for a
// notification, §4.1.3.5.2). The OSCORE option itself is never copied.
func split(opts message.Options, response bool) (inner, outer message.Options) {
	for _, o := range opts {
		switch {
		case o.ID == OptionNumber:
		case o.ID == message.Observe:
			outer = append(outer, o)
			if response {
				inner = append(inner, message.Option{ID: message.Observe})
			} else {
				inner = append(inner, o)
			}
		case classU(o.ID):
			outer = append(outer, o)
		default:
			inner = append(inner, o)
		}
	}
	return inner, outer
}

// plaintext encodes the code, inner options and payload (§5.3).
func plaintext(code codes.Code, inner message.Options, payload []byte) ([]byte, error) {
	n, err := inner.Marshal(nil)
	if err != nil && !errors.Is(err, message.ErrTooSmall) {
		return nil, fmt.Errorf("oscore: encode inner options: %w", err)
	}
	b := make([]byte, 1+n, 1+n+1+len(payload)+tagLen)
	b[0] = byte(code)
	if _, err := inner.Marshal(b[1:]); err != nil {
		return nil, fmt.Errorf("oscore: encode inner options: %w", err)
	}
	if len(payload) > 0 {
		b = append(b, 0xff)
		b = append(b, payload...)
	}
	return b, nil
}

// parsePlaintext decodes the decrypted plaintext: code, inner options,
// payload. Errors wrap ErrDecode.
func parsePlaintext(pt []byte) (codes.Code, message.Options, []byte, error) {
	if len(pt) == 0 {
		return 0, nil, nil, fmt.Errorf("%w: empty plaintext", ErrDecode)
	}
	code := codes.Code(pt[0])
	opts := make(message.Options, 0, 16)
	for {
		n, err := opts.Unmarshal(pt[1:], nil)
		if errors.Is(err, message.ErrOptionsTooSmall) && cap(opts) < 256 {
			opts = make(message.Options, 0, 4*cap(opts))
			continue
		}
		if err != nil {
			return 0, nil, nil, fmt.Errorf("%w: inner options: %w", ErrDecode, err)
		}
		// Unmarshal counts the payload marker in n when there is one.
		if rest := pt[1+n:]; len(rest) > 0 {
			return code, opts, rest, nil
		}
		return code, opts, nil, nil
	}
}

func sortOpts(o message.Options) {
	slices.SortStableFunc(o, func(a, b message.Option) int { return int(a.ID) - int(b.ID) })
}

func outerMessage(m *message.Message, code codes.Code, outer message.Options, opt OptionValue, ct []byte) (*message.Message, error) {
	ov, err := opt.Marshal()
	if err != nil {
		return nil, err
	}
	outer = append(outer, message.Option{ID: OptionNumber, Value: ov})
	sortOpts(outer)
	return &message.Message{
		Token: m.Token, Options: outer, Code: code, Payload: ct,
		MessageID: m.MessageID, Type: m.Type,
	}, nil
}

// ProtectRequest returns the OSCORE request for the plaintext request m
// (RFC 8613 §8.1): a new Partial IV from the Sender Sequence Number, kid =
// Sender ID (and kid context = ID Context when withKIDContext), outer code
// POST, or FETCH when m observes. Type, message ID and token are m's. If
// the peer asked for an Echo value (a 4.01 challenge, Appendix B.1.2), it
// is added as an inner Echo option. With WithRederivation the keys and the
// kid context follow Appendix B.2 (see rederive.go).
func (c *Context) ProtectRequest(m *message.Message, withKIDContext bool) (*message.Message, RequestID, error) {
	if c.store == nil {
		return nil, RequestID{}, ErrNotCreated
	}
	ks, kc, phase, err := c.requestKeyset(withKIDContext)
	if err != nil {
		return nil, RequestID{}, err
	}
	seq, err := c.nextSeq(ks)
	if err != nil {
		return nil, RequestID{}, err
	}
	opts := m.Options
	c.mu.Lock()
	echo := c.peerEch
	c.mu.Unlock()
	if echo != nil && !opts.HasOption(message.Echo) {
		opts = append(slices.Clone(opts), message.Option{ID: message.Echo, Value: echo})
		sortOpts(opts)
	}
	inner, outer := split(opts, false)
	pt, err := plaintext(m.Code, inner, m.Payload)
	if err != nil {
		return nil, RequestID{}, err
	}
	piv := encodePIV(seq)
	rid := RequestID{KID: c.p.SenderID, PIV: piv, seq: seq, ks: ks, phase: phase}
	n := nonce(ks.keys.CommonIV, c.p.SenderID, seq)
	ct := ks.send.Seal(pt[:0:0], n[:], pt, aad(rid.KID, rid.PIV))
	code := codes.POST
	if opts.HasOption(message.Observe) {
		code = codes.FETCH
	}
	opt := OptionValue{PIV: piv, KID: c.p.SenderID, HasKID: true}
	if kc != nil {
		opt.KIDContext, opt.HasKIDCtx = kc, true
	}
	out, err := outerMessage(m, code, outer, opt, ct)
	return out, rid, err
}

// ProtectResponse returns the OSCORE response for the plaintext response m
// to the request rid (§8.3), with the keys the request was verified with.
// With ownPIV the response carries a Partial IV from this endpoint's
// Sender Sequence Number and its nonce is built from it (required for
// notifications and whenever a request nonce could be used twice);
// otherwise the request's nonce is used and the option is empty. Outer
// code 2.04, or 2.05 for a notification.
func (c *Context) ProtectResponse(m *message.Message, rid RequestID, ownPIV bool) (*message.Message, error) {
	if c.store == nil {
		return nil, ErrNotCreated
	}
	ks := rid.ks
	if ks == nil {
		ks = c.current()
	}
	return c.protectResponse(ks, m, rid, ownPIV, nil)
}

// protectResponse protects m with ks; kidContext, when set, goes in the
// option (the R2 of an Appendix B.2 response #1).
func (c *Context) protectResponse(ks *keyset, m *message.Message, rid RequestID, ownPIV bool, kidContext []byte) (*message.Message, error) {
	inner, outer := split(m.Options, true)
	pt, err := plaintext(m.Code, inner, m.Payload)
	if err != nil {
		return nil, err
	}
	var opt OptionValue
	var n [nonceLen]byte
	if ownPIV {
		seq, err := c.nextSeq(ks)
		if err != nil {
			return nil, err
		}
		opt.PIV = encodePIV(seq)
		n = nonce(ks.keys.CommonIV, c.p.SenderID, seq)
	} else {
		n = rid.requestNonce(ks)
	}
	if kidContext != nil {
		opt.KIDContext, opt.HasKIDCtx = kidContext, true
	}
	ct := ks.send.Seal(pt[:0:0], n[:], pt, aad(rid.KID, rid.PIV))
	code := codes.Changed
	if m.Options.HasOption(message.Observe) {
		code = codes.Content
	}
	return outerMessage(m, code, outer, opt, ct)
}

// merge builds the plaintext message: m's header, m's Class U options
// (without OSCORE; outer Class E options are discarded, §8.2 step 2) and
// the inner code, options and payload. For a response the outer Observe
// value is kept (the inner one is empty, §4.1.3.5.2).
func merge(m *message.Message, code codes.Code, inner message.Options, payload []byte, response bool) *message.Message {
	opts := make(message.Options, 0, len(m.Options)+len(inner))
	var outerObs *message.Option
	for i, o := range m.Options {
		if o.ID == message.Observe {
			outerObs = &m.Options[i]
			continue
		}
		if classU(o.ID) && o.ID != OptionNumber {
			opts = append(opts, o)
		}
	}
	for _, o := range inner {
		if classU(o.ID) {
			continue
		}
		if o.ID == message.Observe {
			if response {
				if outerObs == nil {
					continue
				}
				o = *outerObs
			}
		}
		opts = append(opts, o)
	}
	sortOpts(opts)
	return &message.Message{Token: m.Token, Options: opts, Code: code, Payload: payload, MessageID: m.MessageID, Type: m.Type}
}

// findOption returns the OSCORE option of m.
func findOption(m *message.Message) (OptionValue, bool, error) {
	for _, o := range m.Options {
		if o.ID == OptionNumber {
			opt, err := ParseOption(o.Value)
			return opt, true, err
		}
	}
	return OptionValue{}, false, nil
}

// UnprotectRequest verifies and decrypts the OSCORE request m whose option
// is opt (RFC 8613 §8.2): replay check, AEAD verification, then the replay
// window update, or the Echo check when the window is not initialised
// (Appendix B.1.2). It returns the plaintext request and the RequestID to
// protect the response with. Errors are *Error: ErrReplay and
// ErrEchoRequired (4.01), ErrDecrypt and ErrDecode (4.00), ErrBadOption
// (4.02), and with WithRederivation ErrRederive (4.01: the request started
// or continued an Appendix B.2 run and is not executed; Conn answers it
// with response #1). On ErrEchoRequired the RequestID is valid: answer
// with EchoChallenge.
func (c *Context) UnprotectRequest(m *message.Message, opt OptionValue, now time.Time) (*message.Message, RequestID, error) {
	if c.store == nil {
		return nil, RequestID{}, errZeroContext
	}
	if len(opt.PIV) == 0 || !opt.HasKID {
		return nil, RequestID{}, newErr(codes.BadOption, ErrBadOption, "request without Partial IV or kid")
	}
	if m.Code != codes.POST && m.Code != codes.FETCH {
		return nil, RequestID{}, newErr(codes.BadRequest, ErrDecode, "outer code %v is not POST or FETCH", m.Code)
	}
	if c.b2 != nil {
		return c.unprotectRederivable(m, opt, now)
	}
	return c.unprotectWith(c.current(), m, opt, now)
}

// unprotectWith is UnprotectRequest with the keys ks.
func (c *Context) unprotectWith(ks *keyset, m *message.Message, opt OptionValue, now time.Time) (*message.Message, RequestID, error) {
	seq := decodePIV(opt.PIV)
	rid := RequestID{KID: append([]byte{}, opt.KID...), PIV: append([]byte{}, opt.PIV...), seq: seq, ks: ks}
	c.mu.Lock()
	fresh := ks.win.check(seq)
	c.mu.Unlock()
	if !fresh {
		return nil, rid, newErr(codes.Unauthorized, ErrReplay, "Partial IV %d", seq)
	}
	code, inner, payload, err := openRequest(ks, m, rid)
	if err != nil {
		return nil, rid, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ks.win.check(seq) {
		return nil, rid, newErr(codes.Unauthorized, ErrReplay, "Partial IV %d (concurrent)", seq)
	}
	if !ks.win.inited {
		ev, _ := inner.GetBytes(message.Echo)
		if ev == nil || !ks.echo.verify(ev, now) {
			return nil, rid, newErr(codes.Unauthorized, ErrEchoRequired, "replay window not initialised (Appendix B.1.2)")
		}
		ks.win.inited = true
		ks.echo.value = nil
	}
	ks.win.accept(seq)
	return merge(m, code, inner, payload, false), rid, nil
}

// openRequest decrypts and decodes request m with the keys ks and the
// nonce and AAD of rid (the request's own kid and Partial IV).
func openRequest(ks *keyset, m *message.Message, rid RequestID) (codes.Code, message.Options, []byte, error) {
	if len(m.Payload) < tagLen+1 {
		return 0, nil, nil, newErr(codes.BadRequest, ErrDecode, "payload of %d bytes is shorter than a tag and a code", len(m.Payload))
	}
	n := nonce(ks.keys.CommonIV, rid.KID, rid.seq)
	pt, err := ks.recv.Open(nil, n[:], m.Payload, aad(rid.KID, rid.PIV))
	if err != nil {
		return 0, nil, nil, newErr(codes.BadRequest, ErrDecrypt, "request Partial IV %d", rid.seq)
	}
	code, inner, payload, err := parsePlaintext(pt)
	if err != nil {
		return 0, nil, nil, &Error{Code: codes.BadRequest, Reason: ErrDecode, Detail: err.Error()}
	}
	if code == codes.Empty || code>>5 != 0 {
		return 0, nil, nil, newErr(codes.BadRequest, ErrDecode, "inner code %v is not a request", code)
	}
	return code, inner, payload, nil
}

// EchoChallenge returns the Echo value to send in a protected 4.01 while
// the replay window is not initialised (Appendix B.1.2, RFC 9175 §2.4).
func (c *Context) EchoChallenge(now time.Time) []byte {
	if c.store == nil { // a zero Context verifies nothing
		return nil
	}
	return c.echoChallenge(c.current(), now)
}

func (c *Context) echoChallenge(ks *keyset, now time.Time) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), ks.echo.challenge(now)...)
}

// ReplayWindowInitialised reports whether the replay window of the keys
// in use is set.
func (c *Context) ReplayWindowInitialised() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil && c.cur.win.inited
}

// UnprotectResponse verifies and decrypts the OSCORE response m to the
// request rid (§8.4), with the keys the request was protected with. It
// returns the plaintext response and, when the response carried its own
// Partial IV, that number (notifications are ordered by it, §7.4.1).
// Errors are *Error (ErrDecrypt, ErrDecode, ErrBadOption). A response with
// a kid context is an Appendix B.2 response #1: verified with the keys
// derived from its R2 when the context has WithRederivation, refused
// (ErrBadOption) otherwise.
func (c *Context) UnprotectResponse(m *message.Message, opt OptionValue, rid RequestID) (*message.Message, uint64, bool, error) {
	if c.store == nil {
		return nil, 0, false, errZeroContext
	}
	r, err := c.unprotectResponse(m, opt, rid)
	return r.msg, r.seq, r.own, err
}

// responseResult is what unprotectResponse found.
type responseResult struct {
	msg       *message.Message
	seq       uint64
	own       bool
	rederive  bool // an Appendix B.2 response #1: re-send the request (request #2)
	confirmed bool // verified with a B.2 run's new keys: the run is complete (step 5)
}

func (c *Context) unprotectResponse(m *message.Message, opt OptionValue, rid RequestID) (responseResult, error) {
	if opt.HasKID && string(opt.KID) != string(c.p.RecipientID) {
		return responseResult{}, newErr(codes.BadOption, ErrBadOption, "response kid %x is not the peer's %x", opt.KID, c.p.RecipientID)
	}
	if len(m.Payload) < tagLen+1 {
		return responseResult{}, newErr(codes.BadRequest, ErrDecode, "payload of %d bytes is shorter than a tag and a code", len(m.Payload))
	}
	ks := rid.ks
	if ks == nil {
		ks = c.current()
	}
	if opt.HasKIDCtx {
		return c.response1(m, opt, rid)
	}
	r, inner, err := openResponse(ks, c.p.RecipientID, m, opt, rid)
	if err != nil {
		return r, err
	}
	if r.msg.Code == codes.Unauthorized {
		if ev, _ := inner.GetBytes(message.Echo); len(ev) > 0 && len(ev) <= 40 {
			// Appendix B.1.2: the peer's replay window is being set up; our
			// next request carries this value.
			c.mu.Lock()
			c.peerEch = append([]byte(nil), ev...)
			c.mu.Unlock()
		}
	} else if r.msg.Code>>5 == 2 {
		c.mu.Lock()
		c.peerEch = nil
		c.mu.Unlock()
	}
	if c.b2 != nil {
		r.confirmed = c.verifiedWith(ks)
	}
	return r, nil
}

// openResponse decrypts response m to rid with ks: the nonce from the
// response's own Partial IV (generated by the peer, recipient) or the
// request's.
func openResponse(ks *keyset, recipient []byte, m *message.Message, opt OptionValue, rid RequestID) (responseResult, message.Options, error) {
	var n [nonceLen]byte
	var r responseResult
	r.own = len(opt.PIV) > 0
	if r.own {
		r.seq = decodePIV(opt.PIV)
		n = nonce(ks.keys.CommonIV, recipient, r.seq)
	} else {
		n = rid.requestNonce(ks)
	}
	pt, err := ks.recv.Open(nil, n[:], m.Payload, aad(rid.KID, rid.PIV))
	if err != nil {
		return r, nil, newErr(codes.BadRequest, ErrDecrypt, "response to Partial IV %d", rid.seq)
	}
	code, inner, payload, err := parsePlaintext(pt)
	if err != nil {
		return r, nil, &Error{Code: codes.BadRequest, Reason: ErrDecode, Detail: err.Error()}
	}
	if code>>5 < 2 {
		return r, nil, newErr(codes.BadRequest, ErrDecode, "inner code %v is not a response", code)
	}
	r.msg = merge(m, code, inner, payload, true)
	return r, inner, nil
}
