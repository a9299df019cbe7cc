package bearer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// RFC 7959 block options: NUM << 4 | M << 3 | SZX, block size 16 << SZX.
func blockValue(num uint32, more bool, szx uint32) uint32 {
	v := num<<4 | szx
	if more {
		v |= 8
	}
	return v
}

func parseBlock(v uint32) (num uint32, more bool, szx uint32) {
	return v >> 4, v&8 != 0, v & 7
}

func optUint(opts message.Options, id message.OptionID) uint32 {
	v, _ := optionUint(opts, id)
	return v
}

// blockKey names a block-wise transfer of a peer: the request URI and
// Accept (plus method and Request-Tag for Block1), RFC 7959 §2.4 and RFC
// 9175.
func blockKey(pkey string, code codes.Code, opts message.Options, block1 bool) string {
	var sb strings.Builder
	sb.WriteString(pkey)
	if block1 {
		fmt.Fprintf(&sb, "|1|%d", code)
	} else {
		sb.WriteString("|2")
	}
	for _, o := range opts {
		switch o.ID {
		case message.URIPath, message.URIQuery, message.Accept:
			fmt.Fprintf(&sb, "|%d:%q", o.ID, o.Value)
		case message.RequestTag:
			if block1 {
				fmt.Fprintf(&sb, "|t:%x", o.Value)
			}
		}
	}
	return sb.String()
}

// blockStore holds Block1 reassembly buffers and Block2 bodies being
// served, bounded in count and bytes, each expiring after BlockExpiry.
type blockStore struct {
	mu      sync.Mutex
	lim     Limits
	bufs    map[string]*blockBuf
	perPeer map[string]int
	memory  int
	done    map[string]*qbDoneRec // answers to finished Q-Block1 bodies
	qbKeep  time.Duration         // how long a Q-Block2 body is kept after its last use
}

type blockBuf struct {
	peer    string
	data    []byte
	etag    []byte
	opts    message.Options // Block2: response options of the first block
	expires time.Time
	qr      *qbRecv // a Q-Block1 body being received (qblock_server.go)
	qs      *qbSend // a Q-Block2 body being sent
}

func (s *blockStore) init(l Limits) {
	s.lim = l
	s.bufs = make(map[string]*blockBuf)
	s.perPeer = make(map[string]int)
}

func (s *blockStore) drop(k string) {
	if b, ok := s.bufs[k]; ok {
		s.memory -= cap(b.data)
		delete(s.bufs, k)
		if s.perPeer[b.peer]--; s.perPeer[b.peer] <= 0 {
			delete(s.perPeer, b.peer)
		}
	}
}

func (s *blockStore) put(k string, b *blockBuf) {
	s.bufs[k] = b
	s.memory += cap(b.data)
	s.perPeer[b.peer]++
}

// makeRoom expires old buffers and evicts the oldest until one more buffer
// of n bytes for peer fits. It reports false if n alone is over the memory
// bound.
func (s *blockStore) makeRoom(n int, peer string, now time.Time, m Metrics) bool {
	if n > s.lim.MaxBlockMemory {
		return false
	}
	for k, b := range s.bufs {
		if !now.Before(b.expires) {
			s.drop(k)
			m.Count(EventBlockError, 1)
		}
	}
	for len(s.bufs) >= s.lim.MaxBlockBuffers || s.memory+n > s.lim.MaxBlockMemory || s.perPeer[peer] >= s.lim.MaxBlockBuffersPerPeer {
		onlyPeer := s.perPeer[peer] >= s.lim.MaxBlockBuffersPerPeer
		oldest := ""
		var t time.Time
		for k, b := range s.bufs {
			if onlyPeer && b.peer != peer {
				continue
			}
			if oldest == "" || b.expires.Before(t) {
				oldest, t = k, b.expires
			}
		}
		if oldest == "" {
			return false
		}
		s.drop(oldest)
		m.Count(EventBlockError, 1)
	}
	return true
}

type block1Result struct {
	done   bool       // body complete: run the handler
	body   []byte     // complete body when done
	code   codes.Code // reply when not done (2.31, 4.00, 4.08, 4.13, 5.03)
	block1 uint32     // Block1 option for the reply / final response
	size1  uint32     // Size1 for 4.13
}

// block1Part is one Block1 request block as received: the peer's key, the
// body's key (blockKey), the Block1 and Size1 option values and the block.
type block1Part struct {
	peer, key string
	v, size1  uint32
	payload   []byte
}

// block1 handles one Block1 request block (RFC 7959 §2.3, §2.5); ourSZX is
// the largest block size this endpoint asks for.
func (s *blockStore) block1(in block1Part, ourSZX uint32, now time.Time, m Metrics) block1Result {
	peer, key, v, size1, payload := in.peer, in.key, in.v, in.size1, in.payload
	num, more, szx := parseBlock(v)
	if szx == 7 { // BERT is for reliable transports only
		m.Count(EventBlockError, 1)
		return block1Result{code: codes.BadRequest}
	}
	size := 16 << szx
	if more && len(payload) != size || len(payload) > size {
		m.Count(EventBlockError, 1)
		return block1Result{code: codes.BadRequest}
	}
	max := s.lim.MaxBodySize
	tooLarge := block1Result{code: codes.RequestEntityTooLarge, size1: uint32(max)}
	s.mu.Lock()
	defer s.mu.Unlock()
	offset := int(num) * size
	if num == 0 {
		s.drop(key)
		if int(size1) > max || len(payload) > max {
			m.Count(EventBlockError, 1)
			return tooLarge
		}
		if !more {
			m.Count(EventBlockTransfer, 1)
			return block1Result{done: true, body: append([]byte(nil), payload...), block1: v}
		}
		want := size * 4
		if int(size1) > want {
			want = int(size1)
		}
		if !s.makeRoom(want, peer, now, m) {
			return block1Result{code: codes.ServiceUnavailable}
		}
		s.put(key, &blockBuf{peer: peer, data: make([]byte, 0, want), expires: now.Add(s.lim.BlockExpiry)})
		m.Set(GaugeBlockBuffers, len(s.bufs))
	}
	b, ok := s.bufs[key]
	if !ok || !now.Before(b.expires) && num != 0 || len(b.data) != offset {
		s.drop(key)
		m.Count(EventBlockError, 1)
		m.Set(GaugeBlockBuffers, len(s.bufs))
		return block1Result{code: codes.RequestEntityIncomplete}
	}
	if offset+len(payload) > max {
		s.drop(key)
		m.Count(EventBlockError, 1)
		return tooLarge
	}
	if need := len(b.data) + len(payload); need > cap(b.data) {
		grow := need * 2
		if grow > max {
			grow = max
		}
		s.drop(key)
		if !s.makeRoom(grow, peer, now, m) {
			m.Set(GaugeBlockBuffers, len(s.bufs))
			return block1Result{code: codes.ServiceUnavailable}
		}
		nd := make([]byte, len(b.data), grow)
		copy(nd, b.data)
		b.data = nd
		s.put(key, b)
	}
	b.data = append(b.data, payload...)
	b.expires = now.Add(s.lim.BlockExpiry)
	if more {
		// 2.31 Continue; we may ask for smaller blocks (§2.3).
		rs := szx
		if ourSZX < rs {
			rs = ourSZX
		}
		return block1Result{code: codes.Continue, block1: blockValue(num, true, rs)}
	}
	body := b.data
	s.drop(key)
	m.Set(GaugeBlockBuffers, len(s.bufs))
	m.Count(EventBlockTransfer, 1)
	return block1Result{done: true, body: body, block1: v}
}

// putBody keeps a Block2 body for the continuation requests.
func (s *blockStore) putBody(key string, b *blockBuf, now time.Time, m Metrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(key)
	if !s.makeRoom(cap(b.data), b.peer, now, m) {
		return
	}
	b.expires = now.Add(s.lim.BlockExpiry)
	if b.qs != nil {
		b.expires = now.Add(s.qbKeep)
	}
	s.put(key, b)
	m.Set(GaugeBlockBuffers, len(s.bufs))
}

// getBody returns the kept Block2 body of key, or nil. A body being
// fetched is not idle: each hit keeps it another BlockExpiry (qbKeep for
// a Q-Block2 body), so a long transfer on a slow link is not cut off
// BlockExpiry after its first block and the handler is not run again.
func (s *blockStore) getBody(key string, now time.Time) *blockBuf {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bufs[key]
	if !ok || !now.Before(b.expires) {
		return nil
	}
	keep := s.lim.BlockExpiry
	if b.qs != nil {
		keep = s.qbKeep
	}
	if e := now.Add(keep); e.After(b.expires) {
		b.expires = e
	}
	return b
}

func etagOf(body []byte) []byte {
	h := fnv.New64a()
	_, _ = h.Write(body)
	return h.Sum(nil)[:4]
}

// blockResponse slices a response payload into Block2 blocks when it is
// larger than the block size or the request asked for a block (RFC 7959
// §2.4), keeping the body for the continuation requests.
func (e *Endpoint) blockResponse(pkey string, req *Request, opts message.Options, payload []byte) (message.Options, []byte) {
	szx := e.szx
	num := uint32(0)
	v, asked := optionUint(req.Options, message.Block2)
	if asked {
		var rszx uint32
		num, _, rszx = parseBlock(v)
		if rszx < szx {
			szx = rszx
		}
	}
	size := 16 << szx
	if len(payload) <= size && num == 0 {
		return opts, payload
	}
	if _, ok := optionBytes(opts, message.ETag); !ok {
		opts = opts.Set(message.Option{ID: message.ETag, Value: etagOf(payload)})
	}
	offset := int(num) * size
	if offset >= len(payload) && offset > 0 {
		return opts.Remove(message.ETag), nil // 4.02 would be better; the caller sends what the handler chose
	}
	end := offset + size
	more := end < len(payload)
	if !more {
		end = len(payload)
	}
	if more {
		etag, _ := optionBytes(opts, message.ETag)
		e.blocks.putBody(blockKey(pkey, req.Code, req.Options, false), &blockBuf{
			peer: pkey, data: payload, etag: etag, opts: cloneOptions(opts), expires: time.Now(),
		}, time.Now(), e.m)
	}
	opts = opts.Set(UintOption(message.Block2, blockValue(num, more, szx)))
	if num == 0 {
		opts = opts.Set(UintOption(message.Size2, uint32(len(payload))))
	}
	return opts, payload[offset:end]
}

// serveCachedBlock2 answers a Block2 continuation request (NUM > 0) from a
// kept body, without running the handler. It reports false on a miss.
func (e *Endpoint) serveCachedBlock2(m *message.Message, in inbound, pkey string, v uint32) bool {
	b := e.blocks.getBody(blockKey(pkey, m.Code, m.Options, false), time.Now())
	if b == nil {
		return false
	}
	num, _, szx := parseBlock(v)
	if szx > 6 {
		return false
	}
	size := 16 << szx
	offset := int(num) * size
	if offset >= len(b.data) {
		e.m.Count(EventBlockError, 1)
		e.replyDirect(in, m.Token, codes.BadOption, nil, nil)
		return true
	}
	end := offset + size
	more := end < len(b.data)
	if !more {
		end = len(b.data)
	}
	opts := cloneOptions(b.opts).Remove(message.Observe).Remove(message.Size2)
	opts = opts.Set(UintOption(message.Block2, blockValue(num, more, szx)))
	e.replyDirect(in, m.Token, codes.Content, opts, b.data[offset:end])
	if !more {
		e.m.Count(EventBlockTransfer, 1)
	}
	return true
}

// needsBlock1 reports whether req's payload must go out in blocks.
func (e *Endpoint) needsBlock1(req *Request) bool {
	return req.bodyLen() > e.BlockSize()
}

// block1SZX computes the real header room of req's blocks (its options,
// token, Block1 and Size1) and returns the largest SZX, at most the
// Endpoint's, whose blocks still fit the bearer's BlockTarget()
// (long Uri-Query strings of an LwM2M registration over SMS shrink the
// blocks rather than split every block over two SMS).
func (e *Endpoint) block1SZX(req *Request, token message.Token) uint32 {
	return e.blockSZXFor(req, token, message.Block1)
}

// blockSZXFor is block1SZX for the block option id (Block1 or Q-Block1:
// Q-Block1 adds a Request-Tag to every block).
func (e *Endpoint) blockSZXFor(req *Request, token message.Token, id message.OptionID) uint32 {
	opts := cloneOptions(req.Options).Set(UintOption(id, 0xFFFFFF)).Set(UintOption(message.Size1, uint32(req.bodyLen())))
	if id == message.QBlock1 {
		opts = opts.Set(message.Option{ID: message.RequestTag, Value: make([]byte, qbTagLen)})
	}
	m := message.Message{Code: req.Code, Token: token, Options: opts, MessageID: 0, Type: message.Confirmable}
	n, err := encode(&m)
	if err != nil {
		return e.szx
	}
	room := len(n) + 1 // payload marker
	szx := e.szx
	for szx > 0 && room+(16<<szx) > e.p.BlockTarget() {
		szx--
	}
	return szx
}

// doBlock1 uploads req's payload with Block1 (RFC 7959 §2.5) and returns
// the final response.
func (e *Endpoint) doBlock1(ctx context.Context, req *Request, token message.Token) (*Response, error) {
	szx := e.block1SZX(req, token)
	total := req.bodyLen()
	offset := 0
	var buf []byte
	peer := req.Peer
	for {
		size := 16 << szx
		num := uint32(offset / size)
		end := offset + size
		more := end < total
		if !more {
			end = total
		}
		opts := cloneOptions(req.Options).Set(UintOption(message.Block1, blockValue(num, more, szx)))
		if num == 0 {
			opts = opts.Set(UintOption(message.Size1, uint32(total)))
		}
		payload, err := req.readBody(buf, offset, end-offset)
		if err != nil {
			return nil, err
		}
		if req.body != nil {
			buf = payload
		}
		m := message.Message{Code: req.Code, Token: token, Options: opts, Payload: payload}
		resp, err := e.roundTrip(ctx, peer, &m, rtOpts{con: req.Type == message.Confirmable, steer: req.steer})
		if err != nil {
			var ab *AbortError
			if errors.As(err, &ab) {
				ab.Blocks = int(num)
			}
			return nil, err
		}
		if resp.Peer != nil {
			peer = resp.Peer // a Steer may have moved the exchange
		}
		if !more {
			return resp, nil
		}
		if resp.Code != codes.Continue {
			return resp, nil // the server refused (4.13, 4.08, ...) or answered early
		}
		v, ok := optionUint(resp.Options, message.Block1)
		if !ok {
			return nil, fmt.Errorf("%w: 2.31 Continue without Block1", ErrBadResponse)
		}
		rnum, _, rszx := parseBlock(v)
		if rnum != num || rszx > szx {
			return nil, fmt.Errorf("%w: Block1 %d/%d acknowledged as %d/%d", ErrBadResponse, num, szx, rnum, rszx)
		}
		offset = end
		szx = rszx // the server may ask for smaller blocks
	}
}

// completeBlock2 fetches the remaining blocks of a Block2 response (RFC
// 7959 §2.4), checking ETag and offsets, bounded by MaxBodySize.
func (e *Endpoint) completeBlock2(ctx context.Context, req *Request, resp *Response, token message.Token) (*Response, error) {
	v, ok := optionUint(resp.Options, message.Block2)
	if !ok {
		return resp, nil
	}
	num, more, szx := parseBlock(v)
	if szx > 6 || num != 0 {
		return nil, fmt.Errorf("%w: first Block2 is %d/%d", ErrBadResponse, num, szx)
	}
	if !more {
		return resp, nil
	}
	etag, _ := optionBytes(resp.Options, message.ETag)
	body := append([]byte(nil), resp.Payload...)
	peer := req.Peer
	if resp.Peer != nil {
		peer = resp.Peer
	}
	if len(body) != 16<<szx {
		return nil, fmt.Errorf("%w: Block2 0 has %d bytes, SZX says %d", ErrBadResponse, len(body), 16<<szx)
	}
	for more {
		next := uint32(len(body) / (16 << szx))
		opts := cloneOptions(req.Options).Remove(message.Observe).Remove(message.Block1).Remove(message.Size1)
		opts = opts.Set(UintOption(message.Block2, blockValue(next, false, szx)))
		code := req.Code
		if code != codes.FETCH {
			code = codes.GET
		}
		var payload []byte
		if code == codes.FETCH {
			payload = req.Payload
		}
		m := message.Message{Code: code, Token: token, Options: opts, Payload: payload}
		r, err := e.roundTrip(ctx, peer, &m, rtOpts{con: true, steer: req.steer})
		if err != nil {
			return nil, err
		}
		if r.Peer != nil {
			peer = r.Peer
		}
		if r.Code>>5 != 2 {
			return nil, fmt.Errorf("%w: Block2 %d answered %v", ErrBadResponse, next, r.Code)
		}
		bv, ok := optionUint(r.Options, message.Block2)
		if !ok {
			return nil, fmt.Errorf("%w: Block2 %d answered without Block2", ErrBadResponse, next)
		}
		var rnum, rszx uint32
		rnum, more, rszx = parseBlock(bv)
		if rszx > 6 || int(rnum)*(16<<rszx) != len(body) {
			return nil, fmt.Errorf("%w: Block2 %d/%d at offset %d", ErrBadResponse, rnum, rszx, len(body))
		}
		if more && len(r.Payload) != 16<<rszx || len(r.Payload) > 16<<rszx {
			return nil, fmt.Errorf("%w: Block2 %d has %d bytes", ErrBadResponse, rnum, len(r.Payload))
		}
		if et, _ := optionBytes(r.Options, message.ETag); string(et) != string(etag) {
			return nil, fmt.Errorf("%w: ETag changed during Block2 transfer", ErrBadResponse)
		}
		if len(body)+len(r.Payload) > e.lim.MaxBodySize {
			return nil, fmt.Errorf("%w: Block2 body over %d bytes", ErrBodyTooLarge, e.lim.MaxBodySize)
		}
		body = append(body, r.Payload...)
		szx = rszx
	}
	e.m.Count(EventBlockTransfer, 1)
	out := *resp
	out.Payload = body
	out.Options = cloneOptions(resp.Options).Remove(message.Block2)
	return &out, nil
}
