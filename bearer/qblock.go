package bearer

import (
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// RFC 9177 (Q-Block1 and Q-Block2, "quick" block-wise transfers): the
// blocks of a body go out as NON messages without waiting for one answer
// per block, and the receiver asks for the missing ones in one message (a
// 4.08 listing them for Q-Block1, a request with one Q-Block2 option per
// missing block for Q-Block2). A transfer of N blocks costs N datagrams
// and one answer instead of 2N: on SMS, close to the segment minimum.
//
// This file holds the parameters, the option helpers, the table of which
// peers support Q-Block and the missing-blocks codec; qblock_server.go
// serves Q-Block requests, qblock_client.go sends them.

// QBlockParams are the RFC 9177 §7.2 transmission parameters of a bearer.
// Zero fields take the RFC's defaults, derived from the bearer's Params.
type QBlockParams struct {
	// Enabled makes the Endpoint use Q-Block as a client: a body larger
	// than the block size goes to a peer known to support Q-Block with
	// Q-Block1, a GET or FETCH to such a peer asks for its answer with
	// Q-Block2 (NON messages), and a confirmable request to a peer whose
	// support is not known yet carries a Q-Block2 option, the probe of
	// RFC 9177 §4.1 (the answer tells; a 4.02 makes the Endpoint send the
	// request again without it). Serving Q-Block requests is always on.
	Enabled bool
	// MaxPayloads is MAX_PAYLOADS, the blocks sent in one burst before the
	// sender waits for the receiver's 2.31 or 'Continue' (default 10).
	// Both ends must use the same value.
	MaxPayloads int
	// NonTimeout is NON_TIMEOUT, the base of the delay between two bursts
	// of one body (default AckTimeout).
	NonTimeout time.Duration
	// NonReceiveTimeout is NON_RECEIVE_TIMEOUT, how long a receiver waits
	// after the last block before asking for the missing ones; it doubles
	// with each ask that brings nothing (default 2 × NonTimeout). It must
	// exceed NonTimeout × AckRandomFactor (RFC 9177: by at least 1 s).
	NonReceiveTimeout time.Duration
	// NonMaxRetransmit is NON_MAX_RETRANSMIT, the asks for missing blocks
	// that may go unanswered before the body is given up (default 4, the
	// RFC 7252 MAX_RETRANSMIT: the SMS binding's MaxRetransmit of 0 is
	// about CON retransmission, not about asking for lost blocks).
	NonMaxRetransmit int
}

// Defaults of RFC 9177 §7.2.
const (
	DefaultMaxPayloads      = 10
	DefaultNonMaxRetransmit = 4
)

func (q QBlockParams) validate(p Params) error {
	switch {
	case q.MaxPayloads < 0 || q.MaxPayloads > 1024:
		return fmt.Errorf("%w: QBlock.MaxPayloads %d not in [0, 1024]", ErrInvalidParams, q.MaxPayloads)
	case q.NonTimeout < 0 || q.NonReceiveTimeout < 0:
		return fmt.Errorf("%w: negative QBlock timeout", ErrInvalidParams)
	case q.NonMaxRetransmit < 0 || q.NonMaxRetransmit > 20:
		return fmt.Errorf("%w: QBlock.NonMaxRetransmit %d not in [0, 20]", ErrInvalidParams, q.NonMaxRetransmit)
	}
	if p.AckTimeout > 0 && p.AckRandomFactor >= 1 && p.NonReceiveTimeout() <= time.Duration(float64(p.NonTimeout())*p.AckRandomFactor) {
		return fmt.Errorf("%w: NON_RECEIVE_TIMEOUT %v must exceed NON_TIMEOUT × ACK_RANDOM_FACTOR (%v)",
			ErrInvalidParams, p.NonReceiveTimeout(), time.Duration(float64(p.NonTimeout())*p.AckRandomFactor))
	}
	return nil
}

// MaxPayloads returns MAX_PAYLOADS: QBlock.MaxPayloads or 10.
func (p Params) MaxPayloads() int {
	if p.QBlock.MaxPayloads > 0 {
		return p.QBlock.MaxPayloads
	}
	return DefaultMaxPayloads
}

// NonTimeout returns NON_TIMEOUT: QBlock.NonTimeout or ACK_TIMEOUT.
func (p Params) NonTimeout() time.Duration {
	if p.QBlock.NonTimeout > 0 {
		return p.QBlock.NonTimeout
	}
	return p.AckTimeout
}

// NonReceiveTimeout returns NON_RECEIVE_TIMEOUT: QBlock.NonReceiveTimeout
// or 2 × NON_TIMEOUT.
func (p Params) NonReceiveTimeout() time.Duration {
	if p.QBlock.NonReceiveTimeout > 0 {
		return p.QBlock.NonReceiveTimeout
	}
	return 2 * p.NonTimeout()
}

// NonMaxRetransmit returns NON_MAX_RETRANSMIT: QBlock.NonMaxRetransmit or 4.
func (p Params) NonMaxRetransmit() int {
	if p.QBlock.NonMaxRetransmit > 0 {
		return p.QBlock.NonMaxRetransmit
	}
	return DefaultNonMaxRetransmit
}

// NonPartialTimeout returns NON_PARTIAL_TIMEOUT: NON_TIMEOUT ×
// (2^NON_MAX_RETRANSMIT − 1) × ACK_RANDOM_FACTOR + 2 × MAX_LATENCY +
// NON_TIMEOUT (247 s with the UDP defaults), how long a partly received
// body is kept.
func (p Params) NonPartialTimeout() time.Duration {
	nt := p.NonTimeout()
	return time.Duration(float64(nt)*float64(int(1)<<p.NonMaxRetransmit()-1)*p.AckRandomFactor) + 2*p.MaxLatency + nt
}

// qbSenderSpan bounds how long a Q-Block1 sender keeps asking for the
// final answer after its last block: the sum of its waits (NON_RECEIVE_
// TIMEOUT doubling, plus NON_TIMEOUT each) over NON_MAX_RETRANSMIT + 1
// rounds. A server keeps a finished body's answer at least this long
// (plus 2 × MAX_LATENCY), so a re-sent block is answered, never run again.
func (p Params) qbSenderSpan() time.Duration {
	n := p.NonMaxRetransmit()
	return p.NonReceiveTimeout()*time.Duration(int(1)<<(n+1)-1) + time.Duration(n+1)*p.NonTimeout()
}

// qbDoneLifetime is how long a server remembers the answer to a finished
// Q-Block1 body.
func (p Params) qbDoneLifetime() time.Duration {
	return max(p.NonPartialTimeout(), p.qbSenderSpan()+2*p.MaxLatency)
}

// qbBlock is one Q-Block option value: NUM, M, SZX (RFC 7959 §2.2).
type qbBlock struct {
	num  uint32
	more bool
	szx  uint32
}

func (b qbBlock) value() uint32 { return blockValue(b.num, b.more, b.szx) }

// qbOptions returns the values of all options id in opts, in order, and
// whether one of them is not a valid uint of at most 3 bytes.
func qbOptions(opts message.Options, id message.OptionID) (out []qbBlock, bad bool) {
	for _, o := range opts {
		if o.ID != id {
			continue
		}
		if len(o.Value) > 3 {
			return nil, true
		}
		var v uint32
		for _, c := range o.Value {
			v = v<<8 | uint32(c)
		}
		num, more, szx := parseBlock(v)
		out = append(out, qbBlock{num, more, szx})
	}
	return out, false
}

// hasQBlock reports whether opts carry a Q-Block1 or Q-Block2 option.
func hasQBlock(opts message.Options) bool {
	for _, o := range opts {
		if o.ID == message.QBlock1 || o.ID == message.QBlock2 {
			return true
		}
	}
	return false
}

// hasAnyBlock reports whether opts carry any block option.
func hasAnyBlock(opts message.Options) bool {
	for _, o := range opts {
		switch o.ID {
		case message.Block1, message.Block2, message.QBlock1, message.QBlock2:
			return true
		}
	}
	return false
}

// qbCap is what an Endpoint knows of a peer's Q-Block support.
type qbCap uint8

const (
	qbUnknown qbCap = iota
	qbYes
	qbNo
)

// qbPeers remembers which peers support Q-Block, bounded in count.
type qbPeers struct {
	mu  sync.Mutex
	max int
	m   map[string]qbCap
}

func (t *qbPeers) get(pkey string) qbCap {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[pkey]
}

// set records c for pkey; a full table forgets an arbitrary peer (it
// probes again later, which costs a few bytes).
func (t *qbPeers) set(pkey string, c qbCap) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]qbCap)
	}
	if _, ok := t.m[pkey]; !ok && len(t.m) >= t.max {
		for k := range t.m {
			delete(t.m, k)
			break
		}
	}
	t.m[pkey] = c
}

// QBlockSupport reports what the Endpoint knows of peer's RFC 9177
// support: known is false until a message from the peer told (a Q-Block
// option in a request or a response, or a 4.02 to a request that carried
// one).
func (e *Endpoint) QBlockSupport(peer net.Addr) (supported, known bool) {
	switch e.qb.peers.get(AddrKey(peer)) {
	case qbYes:
		return true, true
	case qbNo:
		return false, true
	}
	return false, false
}

// SetQBlockSupport records what is known of peer's RFC 9177 support from
// elsewhere (a provisioning record, a previous session), sparing the
// probe.
func (e *Endpoint) SetQBlockSupport(peer net.Addr, supported bool) {
	c := qbNo
	if supported {
		c = qbYes
	}
	e.qb.peers.set(AddrKey(peer), c)
}

// learnQBlock records from a response to a request of ours whether the
// peer supports Q-Block: a Q-Block option in any answer but a 4.02 says
// yes; a 4.02 to a request that carried one (probe) says no (libcoap
// 4.3.1 echoes the option it does not know in its 4.02). A 2.xx without
// one says nothing: a server sends no Q-Block2 when its answer fits one
// block (libcoap does so; ours always adds it to answer a probe).
func (e *Endpoint) learnQBlock(pkey string, probe bool, resp *Response) {
	if resp == nil {
		return
	}
	switch {
	case probe && resp.Code == codes.BadOption:
		e.qb.peers.set(pkey, qbNo)
	case hasQBlock(resp.Options) && resp.Code != codes.BadOption:
		e.qb.peers.set(pkey, qbYes)
	}
}

// Missing-blocks payload (RFC 9177 §5, content format 272
// application/missing-blocks+cbor-seq): a CBOR sequence of unsigned
// integers, the missing block numbers in ascending order.

// ErrMissingBlocks is wrapped by errors decoding a missing-blocks payload.
var ErrMissingBlocks = errors.New("bearer: bad missing-blocks payload")

// appendMissingBlocks appends n as a CBOR unsigned integer (preferred
// serialisation, RFC 8949 §4.2.1).
func appendMissingBlocks(b []byte, n uint32) []byte {
	switch {
	case n < 24:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0x18, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0x19, byte(n>>8), byte(n))
	default:
		return append(b, 0x1a, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// encodeMissingBlocks returns the missing-blocks payload of nums (which
// must be ascending and unique).
func encodeMissingBlocks(nums []uint32) []byte {
	b := make([]byte, 0, 3*len(nums))
	for _, n := range nums {
		b = appendMissingBlocks(b, n)
	}
	return b
}

// maxBlockNum is the largest block number a 20-bit NUM field holds.
const maxBlockNum = 1<<20 - 1

// decodeMissingBlocks parses a missing-blocks payload. It accepts only
// unsigned integers of at most 20 bits, in strictly ascending order (RFC
// 9177 §5: the client SHOULD drop a 4.08 that repeats or disorders them),
// and at most max of them.
func decodeMissingBlocks(p []byte, max int) ([]uint32, error) {
	var out []uint32
	for i := 0; i < len(p); {
		c := p[i]
		if c>>5 != 0 {
			return nil, fmt.Errorf("%w: item at offset %d is CBOR major type %d, not an unsigned integer", ErrMissingBlocks, i, c>>5)
		}
		ai := c & 0x1f
		i++
		var v uint64
		var n int
		switch {
		case ai < 24:
			v = uint64(ai)
		case ai == 24:
			n = 1
		case ai == 25:
			n = 2
		case ai == 26:
			n = 4
		case ai == 27:
			n = 8
		default:
			return nil, fmt.Errorf("%w: reserved additional information %d at offset %d", ErrMissingBlocks, ai, i-1)
		}
		if len(p)-i < n {
			return nil, fmt.Errorf("%w: truncated integer at offset %d", ErrMissingBlocks, i-1)
		}
		for j := 0; j < n; j++ {
			v = v<<8 | uint64(p[i+j])
		}
		i += n
		if v > maxBlockNum {
			return nil, fmt.Errorf("%w: block number %d over 20 bits", ErrMissingBlocks, v)
		}
		if len(out) > 0 && uint32(v) <= out[len(out)-1] {
			return nil, fmt.Errorf("%w: block %d after %d (not ascending)", ErrMissingBlocks, v, out[len(out)-1])
		}
		if len(out) >= max {
			return nil, fmt.Errorf("%w: more than %d block numbers", ErrMissingBlocks, max)
		}
		out = append(out, uint32(v))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMissingBlocks)
	}
	return out, nil
}
