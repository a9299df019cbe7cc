package bearer

import (
	"bytes"
	"context"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Server side of RFC 9177: reassembly of Q-Block1 bodies (blocks in any
// order, 2.31 after each complete MAX_PAYLOADS set, a 4.08 listing the
// missing blocks after NON_RECEIVE_TIMEOUT or when a block of a later set
// shows a hole) and Q-Block2 answers (a burst of MAX_PAYLOADS blocks, the
// next set on a 'Continue' or after NON_TIMEOUT_RANDOM, missing blocks
// from the kept body without running the handler again).

// qbRecv is a Q-Block1 body being received; it lives in a blockBuf
// (bounded and expired with the other block buffers) and is guarded by
// blockStore.mu.
type qbRecv struct {
	size, n  int
	szx      uint32
	got      []uint64 // bitmap of received blocks
	have     int
	cf       string // Content-Format of the body (the same in every block)
	con      bool   // the blocks come as CON (RFC 9177 Appendix A)
	peer     net.Addr
	token    []byte // token of the last received block: answers use it
	lastNum  uint32
	asks     int       // 4.08s sent since the last new block
	askAt    time.Time // next 4.08 due; zero: none
	acked    int       // sets 0..acked-1 are complete and were answered with 2.31
	askedSet int       // a block of this set already triggered a 4.08 for holes before it
}

func (q *qbRecv) has(i int) bool { return q.got[i/64]&(1<<(i%64)) != 0 }

// setComplete reports whether every block of set s is in.
func (q *qbRecv) setComplete(s, mp int) bool {
	for i := s * mp; i < min((s+1)*mp, q.n); i++ {
		if !q.has(i) {
			return false
		}
	}
	return true
}

// missing returns up to max missing block numbers below limit, ascending.
func (q *qbRecv) missing(limit, max int) []uint32 {
	var out []uint32
	for i := 0; i < min(limit, q.n) && len(out) < max; i++ {
		if !q.has(i) {
			out = append(out, uint32(i))
		}
	}
	return out
}

// qbDoneRec is the answer to a finished Q-Block1 body, kept so that a
// block sent again (the client lost the answer) is answered again and
// never runs the handler twice.
type qbDoneRec struct {
	peer    string
	running bool // the handler has not answered yet
	code    codes.Code
	opts    message.Options
	payload []byte
	expires time.Time
}

// qb1Result is what receiving one Q-Block1 block asks of the Endpoint.
type qb1Result struct {
	code    codes.Code // answer now (2.31, 4.08, 4.00, 4.13, 5.03); 0: none
	opts    message.Options
	payload []byte
	ack     bool // CON block that completes nothing: an empty ACK
	done    bool // the body is complete: run the handler with body
	body    []byte
	last    qbBlock    // Q-Block1 of the completing block, echoed in the answer
	replay  *qbDoneRec // the body was finished before: answer with this
	ignore  bool       // the body's handler runs: its answer will come
}

// qb1Part is one Q-Block1 request block as received: its peer (and the
// peer's key), the body's key, the message and its Q-Block1 option.
type qb1Part struct {
	peer      net.Addr
	pkey, key string
	m         *message.Message
	b         qbBlock
}

// qblock1 takes one Q-Block1 block (RFC 9177 §4.3).
func (s *blockStore) qblock1(e *Endpoint, in qb1Part, now time.Time) qb1Result {
	peer, pkey, key, m, b := in.peer, in.pkey, in.key, in.m, in.b
	size, n, refused, ok := s.qb1Check(e, m, b)
	if !ok {
		return refused
	}
	bs, num := 16<<b.szx, int(b.num)
	cf, _ := optionBytes(m.Options, message.ContentFormat)
	con := m.Type == message.Confirmable
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.done[key]; ok && now.Before(d.expires) {
		if d.running {
			return qb1Result{ignore: true}
		}
		return qb1Result{replay: d}
	}
	buf, ok := s.bufs[key]
	if ok && (buf.qr == nil || !now.Before(buf.expires)) {
		s.drop(key)
		ok = false
	}
	if ok && buf.qr.size == size && buf.qr.cf == string(cf) && b.szx < buf.qr.szx && !con {
		// A small block of a body we have in larger blocks: the client
		// asks where we are (it lost our answers; qbElicit). Answer as
		// for a block received again: the missing blocks.
		q := buf.qr
		q.token = append(q.token[:0], m.Token...)
		if miss := q.missing(q.n, e.qbMaxListed(len(m.Token))); len(miss) > 0 {
			e.m.Count(EventQBlockMissing, 1)
			return qb1Result{code: codes.RequestEntityIncomplete, opts: missingOpts(), payload: encodeMissingBlocks(miss)}
		}
		return qb1Result{}
	}
	if ok && (buf.qr.size != size || buf.qr.szx != b.szx || buf.qr.cf != string(cf)) {
		// The body changed under the same Request-Tag: give it up
		// (RFC 7959 §2.9.2 semantics of a 4.08 without a payload).
		s.drop(key)
		e.m.Count(EventBlockError, 1)
		return qb1Result{code: codes.RequestEntityIncomplete}
	}
	if !ok {
		if !s.makeRoom(size, pkey, now, e.m) {
			return qb1Result{code: codes.ServiceUnavailable}
		}
		buf = &blockBuf{peer: pkey, data: make([]byte, size), qr: &qbRecv{
			size: size, n: n, szx: b.szx, got: make([]uint64, (n+63)/64), cf: string(cf), askedSet: -1,
		}}
		s.put(key, buf)
		e.m.Set(GaugeBlockBuffers, len(s.bufs))
	}
	q := buf.qr
	q.con, q.peer, q.lastNum = con, peer, b.num
	q.token = append(q.token[:0], m.Token...)
	buf.expires = now.Add(e.p.NonPartialTimeout())
	if !q.has(num) {
		q.got[num/64] |= 1 << (num % 64)
		q.have++
		copy(buf.data[num*bs:], m.Payload)
		q.asks = 0
	}
	if q.have == q.n {
		body := buf.data
		s.drop(key)
		e.m.Set(GaugeBlockBuffers, len(s.bufs))
		s.putDone(key, &qbDoneRec{peer: pkey, running: true, expires: now.Add(e.p.qbDoneLifetime())}, now)
		e.m.Count(EventQBlockTransfer, 1)
		return qb1Result{done: true, body: body, last: b}
	}
	if con {
		return qb1Result{ack: true}
	}
	return q.nonAnswer(e, num, len(m.Token), now)
}

// qb1Check checks a Q-Block1 block against its Size1 (§4.3): it returns the
// body's size and block count, or the refusal (ok false).
func (s *blockStore) qb1Check(e *Endpoint, m *message.Message, b qbBlock) (size, n int, refused qb1Result, ok bool) {
	bad := func() (int, int, qb1Result, bool) {
		e.m.Count(EventBlockError, 1)
		return 0, 0, qb1Result{code: codes.BadRequest}, false
	}
	size1, hasSize := optionUint(m.Options, message.Size1)
	if _, ok := optionBytes(m.Options, message.RequestTag); !ok || !hasSize {
		return bad() // §4.3: Q-Block1 needs Request-Tag and Size1
	}
	if b.szx > 6 {
		return bad()
	}
	if int64(size1) > int64(s.lim.MaxBodySize) {
		e.m.Count(EventBlockError, 1)
		return 0, 0, qb1Result{code: codes.RequestEntityTooLarge, opts: message.Options{UintOption(message.Size1, uint32(s.lim.MaxBodySize))}}, false
	}
	bs := 16 << b.szx
	size = int(size1)
	n = max((size+bs-1)/bs, 1)
	num := int(b.num)
	want := bs
	if num == n-1 {
		want = size - num*bs
	}
	if num >= n || b.more != (num < n-1) || len(m.Payload) != want {
		return bad()
	}
	return size, n, qb1Result{}, true
}

// nonAnswer is the answer to NON block num of an incomplete body (the
// store's lock held): 2.31 when its set is complete, 4.08 with the missing
// blocks when an earlier set has holes, else nothing (the timer asks
// later). tokLen is the request's token length.
func (q *qbRecv) nonAnswer(e *Endpoint, num, tokLen int, now time.Time) qb1Result {
	q.askAt = now.Add(e.p.NonReceiveTimeout())
	e.qb.kick()
	mp := e.p.MaxPayloads()
	set := num / mp
	if q.acked <= set {
		advanced := false
		for q.acked*mp < q.n && q.setComplete(q.acked, mp) {
			q.acked++
			advanced = true
		}
		if advanced && q.acked > set {
			// Every block up to the end of this set is in: 2.31 lets the
			// sender go on at once (§7.2).
			last := uint32(min(q.acked*mp, q.n) - 1)
			return qb1Result{code: codes.Continue, opts: message.Options{UintOption(message.QBlock1, blockValue(last, true, q.szx))}}
		}
	}
	if set > q.askedSet && set > q.acked {
		q.askedSet = set
		if miss := q.missing(set*mp, e.qbMaxListed(tokLen)); len(miss) > 0 {
			// A block of a later set while an earlier one has holes:
			// ask for them now (§7.2).
			q.asks++
			q.askAt = now.Add(e.p.NonReceiveTimeout() << min(q.asks, 16))
			e.m.Count(EventQBlockMissing, 1)
			return qb1Result{code: codes.RequestEntityIncomplete, opts: missingOpts(), payload: encodeMissingBlocks(miss)}
		}
	}
	return qb1Result{}
}

func missingOpts() message.Options {
	return message.Options{ContentFormatOption(message.AppMissingBlocksCBORSeq)}
}

// qbDuplicate answers a NON request that is a duplicate (same message ID)
// of a Q-Block1 block of a finished body with the body's answer again: RFC
// 9177 §4.3 wants a block received again answered as if it were new, and
// a client that lost the answer asks for it so (on SMS, byte for byte, so
// that the copy also completes a block whose segments were lost in part).
func (e *Endpoint) qbDuplicate(m *message.Message, peer net.Addr, pkey string) {
	if _, ok := optionBytes(m.Options, message.QBlock1); !ok {
		return
	}
	key := blockKey(pkey, m.Code, m.Options, true) + "|q"
	now := time.Now()
	e.blocks.mu.Lock()
	d, ok := e.blocks.done[key]
	if !ok || d.running || !now.Before(d.expires) {
		e.blocks.mu.Unlock()
		return
	}
	code, opts, payload := d.code, d.opts, d.payload
	e.blocks.mu.Unlock()
	e.replyDirect(inbound{peer: peer}, m.Token, code, opts, payload)
}

// qbMaxListed is how many block numbers one 4.08 or one request for
// missing blocks may list: at most MAX_PAYLOADS, and few enough that the
// message fits one preferred datagram (one SMS).
func (e *Endpoint) qbMaxListed(tokenLen int) int {
	room := e.p.PreferredDatagram - 4 - tokenLen - 8
	return max(1, min(e.p.MaxPayloads(), room/3))
}

// putDone records a finished body's answer, bounded like the buffers.
func (s *blockStore) putDone(key string, d *qbDoneRec, now time.Time) {
	if s.done == nil {
		s.done = make(map[string]*qbDoneRec)
	}
	if _, ok := s.done[key]; !ok && len(s.done) >= s.lim.MaxBlockBuffers {
		oldest := ""
		for k, o := range s.done {
			if !now.Before(o.expires) {
				delete(s.done, k)
				continue
			}
			if oldest == "" || o.expires.Before(s.done[oldest].expires) {
				oldest = k
			}
		}
		if len(s.done) >= s.lim.MaxBlockBuffers && oldest != "" {
			delete(s.done, oldest)
		}
	}
	s.done[key] = d
}

// finishDone stores the answer the handler wrote for a finished body.
func (s *blockStore) finishDone(key string, code codes.Code, opts message.Options, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.done[key]; ok {
		d.running = false
		d.code, d.opts = code, cloneOptions(opts)
		if len(payload) > 0 {
			d.payload = append([]byte(nil), payload...)
		}
	}
}

// qbReq is what the Q-Block handling of a request leaves for the handler.
type qbReq struct {
	body     []byte // complete Q-Block1 body
	hasBody  bool
	last     qbBlock
	doneKey  string    // key of the finished body's answer record
	want     []qbBlock // Q-Block2 options of the request: answer with Q-Block2
	wantQ2   bool
	implicit bool // no Q-Block2 in the request: an answer that fits stays plain
}

// qbHandleRequest runs the RFC 9177 part of an incoming request that
// carries a Q-Block option. With handled true the request was answered (or
// needs no answer) and the handler slot was released; otherwise the
// handler runs with what qbReq says.
func (e *Endpoint) qbHandleRequest(m *message.Message, peer net.Addr, pkey string, dk midKey) (qbReq, bool) {
	in := inboundOf(m, peer, dk)
	direct := func(code codes.Code, opts message.Options, payload []byte) {
		<-e.hsem
		e.replyDirect(in, m.Token, code, opts, payload)
	}
	q1, bad1 := qbOptions(m.Options, message.QBlock1)
	q2, bad2 := qbOptions(m.Options, message.QBlock2)
	_, b1 := optionBytes(m.Options, message.Block1)
	_, b2 := optionBytes(m.Options, message.Block2)
	if bad1 || bad2 || len(q1) > 1 || b1 || b2 {
		// §4.1: a repeated Q-Block1 (§5.4.5), or Q-Block mixed with Block
		// in one message, is rejected with 4.02.
		e.m.Count(EventBadOption, 1)
		direct(codes.BadOption, nil, nil)
		return qbReq{}, true
	}
	e.qb.peers.set(pkey, qbYes) // §4.1: it supports both options
	var r qbReq
	if len(q2) > 0 {
		if _, obs := optionUint(m.Options, message.Observe); !obs {
			r.want, r.wantQ2 = q2, true
		}
		for i := 1; i < len(q2); i++ {
			if q2[i].num <= q2[i-1].num {
				// §4.4: missing blocks in ascending order, no duplicates.
				e.m.Count(EventBlockError, 1)
				direct(codes.BadRequest, nil, nil)
				return qbReq{}, true
			}
		}
	}
	if len(q1) == 1 {
		key := blockKey(pkey, m.Code, m.Options, true) + "|q"
		res := e.blocks.qblock1(e, qb1Part{peer: peer, pkey: pkey, key: key, m: m, b: q1[0]}, time.Now())
		switch {
		case res.done:
			r.body, r.hasBody, r.last, r.doneKey = res.body, true, res.last, key
			if !r.wantQ2 {
				// A Q-Block1 client takes a Q-Block2 answer (§4.1).
				r.want, r.wantQ2 = []qbBlock{{num: 0, more: true, szx: e.szx}}, true
			}
			return r, false
		case res.replay != nil:
			d := res.replay
			direct(d.code, d.opts, d.payload)
		case res.ignore:
			<-e.hsem
		case res.ack:
			<-e.hsem
			e.sendEmpty(message.Acknowledgement, in.mid, peer, &dk)
		case res.code != 0:
			direct(res.code, res.opts, res.payload)
		default:
			<-e.hsem // a NON block that needs no answer
		}
		return qbReq{}, true
	}
	_, etag := optionBytes(m.Options, message.ETag)
	if r.wantQ2 && (len(q2) > 1 || q2[0].num > 0 || etag) {
		// Blocks of a body being sent (missing ones, 'Continue'), or
		// block 0 of the body with this ETag (qbFollowOptions).
		if e.qbServeCached(m, peer, pkey, dk, q2) {
			return qbReq{}, true
		}
		if m.Code != codes.GET && m.Code != codes.FETCH {
			// The body asked for is gone and the method must not run
			// twice.
			e.m.Count(EventBlockError, 1)
			direct(codes.RequestEntityIncomplete, nil, nil)
			return qbReq{}, true
		}
	}
	return r, false
}

// qbImplicit lets a peer known to support Q-Block get a large answer with
// Q-Block2 even when its request carries no Q-Block2 option: libcoap's
// client puts one in its probe only and relies on the server remembering
// (its server does). Observations and RFC 7959 requests stay as they are.
func (e *Endpoint) qbImplicit(m *message.Message, pkey string) *qbReq {
	if hasAnyBlock(m.Options) || e.qb.peers.get(pkey) != qbYes {
		return nil
	}
	if _, obs := optionUint(m.Options, message.Observe); obs {
		return nil
	}
	return &qbReq{want: []qbBlock{{num: 0, more: true, szx: e.szx}}, wantQ2: true, implicit: true}
}

// qbKey2 names a Q-Block2 body kept for a peer.
func qbKey2(pkey string, code codes.Code, opts message.Options) string {
	return blockKey(pkey, code, opts, false) + "|q" + code.String()
}

// qbSend is the transmission state of a kept Q-Block2 body (guarded by
// blockStore.mu).
type qbSend struct {
	code     codes.Code
	szx      uint32
	n        int
	token    []byte // token of the request that asked for the whole body
	peer     net.Addr
	con      bool
	nextSet  int // next set to send on schedule; -1: none
	nextAt   time.Time
	sentSets int // sets 0..sentSets-1 went out (a 'Continue' for one of them is late)
	// NON blocks sent so far: their message IDs and tokens, so that a block
	// asked for again goes out byte for byte as the first time (a peer that
	// got it drops the copy as a duplicate; on SMS the copy joins the
	// segments of the first sending, see Backlogger and the SMS bearer).
	mids []int32 // -1: not sent yet
	toks [][]byte
}

// qbOut is a Q-Block2 body being sent: what each of its block messages
// needs.
type qbOut struct {
	peer  net.Addr
	con   bool
	token []byte
	code  codes.Code
	opts  message.Options
	body  []byte
	szx   uint32
	st    *qbSend // the kept body's state (message IDs of NON blocks); may be nil
}

// qbWanted expands the Q-Block2 options of a request into the block
// numbers to send (ascending, each once, §4.4) and whether the
// transmission goes on set after set.
func qbWanted(want []qbBlock, n, mp int) (nums []int, goOn bool) {
	seen := make(map[int]bool)
	add := func(i int) {
		if i < n && !seen[i] {
			seen[i] = true
			nums = append(nums, i)
		}
	}
	for _, w := range want {
		k := int(w.num)
		switch {
		case !w.more:
			add(k)
		case k%mp == 0:
			// The whole body (NUM 0) or 'Continue' (§4.4): this set, and
			// the next ones later.
			for i := k; i < min(k+mp, n); i++ {
				add(i)
			}
			goOn = true
		default:
			for i := k; i < min((k/mp+1)*mp, n); i++ {
				add(i)
			}
		}
	}
	for i := 1; i < len(nums); i++ { // ascending for the sender
		for j := i; j > 0 && nums[j] < nums[j-1]; j-- {
			nums[j], nums[j-1] = nums[j-1], nums[j]
		}
	}
	return nums, goOn
}

// block builds block i of the body with token.
func (o qbOut) block(i int, token []byte) message.Message {
	bs := 16 << o.szx
	end := min((i+1)*bs, len(o.body))
	opts := cloneOptions(o.opts).Set(UintOption(message.QBlock2, blockValue(uint32(i), end < len(o.body), o.szx)))
	opts = opts.Set(UintOption(message.Size2, uint32(len(o.body))))
	return message.Message{Code: o.code, Token: token, Options: opts, Payload: o.body[i*bs : end]}
}

// qbResponse turns a handler's answer to a Q-Block2 request into its
// first message (sent by WriteResponse as usual: piggybacked or separate)
// and a function that sends the other blocks asked for. With own set (a
// NON request) the function sends them all, the first included.
func (e *Endpoint) qbResponse(sx *serverExchange, code codes.Code, opts message.Options, payload []byte) (message.Options, []byte, func(), bool) {
	szx := e.szx
	if len(sx.qb.want) > 0 && sx.qb.want[0].szx < szx {
		szx = sx.qb.want[0].szx
	}
	bs := 16 << szx
	if len(payload) <= bs {
		if !sx.qb.implicit {
			opts = opts.Set(UintOption(message.QBlock2, blockValue(0, false, szx))).Set(UintOption(message.Size2, uint32(len(payload))))
		}
		return opts, payload, nil, false
	}
	if _, ok := optionBytes(opts, message.ETag); !ok {
		opts = opts.Set(message.Option{ID: message.ETag, Value: etagOf(payload)})
	}
	n := (len(payload) + bs - 1) / bs
	mp := e.p.MaxPayloads()
	nums, goOn := qbWanted(sx.qb.want, n, mp)
	if len(nums) == 0 {
		nums = []int{0}
	}
	now := time.Now()
	st := &qbSend{code: code, szx: szx, n: n, token: append([]byte(nil), sx.req.Token...), peer: sx.peer, con: sx.con,
		nextSet: -1, sentSets: nums[len(nums)-1]/mp + 1, mids: make([]int32, n), toks: make([][]byte, n)}
	for i := range st.mids {
		st.mids[i] = -1
	}
	key := qbKey2(sx.pkey, sx.req.Code, sx.req.Options)
	e.blocks.mu.Lock()
	if b, ok := e.blocks.bufs[key]; ok && b.qs != nil && !sx.con && b.qs.code == code && b.qs.szx == szx &&
		bytes.Equal(b.qs.token, st.token) && bytes.Equal(b.data, payload) {
		// The same request again (the client lost every block): the
		// same blocks, byte for byte, so that copies a client got are
		// dropped as duplicates and, on SMS, segments lost the first time
		// may complete the blocks now.
		copy(st.mids, b.qs.mids)
		copy(st.toks, b.qs.toks)
	}
	e.blocks.mu.Unlock()
	if goOn && nums[len(nums)-1]/mp+1 < (n+mp-1)/mp {
		st.nextSet = nums[len(nums)-1]/mp + 1
		st.nextAt = now.Add(e.nonTimeoutRandom())
	}
	etag, _ := optionBytes(opts, message.ETag)
	e.blocks.putBody(key, &blockBuf{
		peer: sx.pkey, data: payload, etag: etag, opts: cloneOptions(opts), qs: st,
	}, now, e.m)
	if st.nextSet >= 0 {
		e.qb.kick()
	}
	out := qbOut{peer: sx.peer, con: sx.con, token: st.token, code: code, opts: opts, body: payload, szx: szx, st: st}
	first := out.block(nums[0], nil)
	if !sx.con {
		return first.Options, first.Payload, func() { e.qbSendBlocks(out, nums) }, true
	}
	rest := nums[1:]
	var after func()
	if len(rest) > 0 {
		after = func() { e.qbSendBlocks(out, rest) }
	} else if nums[0] == n-1 {
		e.m.Count(EventQBlockTransfer, 1)
	}
	return first.Options, first.Payload, after, false
}

// nonTimeoutRandom is NON_TIMEOUT_RANDOM: a random duration in
// [NON_TIMEOUT, NON_TIMEOUT × ACK_RANDOM_FACTOR].
func (e *Endpoint) nonTimeoutRandom() time.Duration {
	e.rngMu.Lock()
	f := e.rng.Float64()
	e.rngMu.Unlock()
	return time.Duration(float64(e.p.NonTimeout()) * (1 + f*(e.p.AckRandomFactor-1)))
}

// qbSendBlocks sends blocks nums of o's body: NON, or CON one after the
// other (each waits for its ACK, RFC 9177 Appendix A) when the request was
// CON. A NON block sent before goes again with its message ID and token.
func (e *Endpoint) qbSendBlocks(o qbOut, nums []int) {
	for _, i := range nums {
		m := o.block(i, o.token)
		if o.con {
			ctx, cancel := context.WithTimeout(e.ctx, e.p.MaxTransmitWait()+time.Second)
			_, err := e.roundTrip(ctx, o.peer, &m, rtOpts{con: true, ackOnly: true})
			cancel()
			if err != nil {
				e.log.Debug("bearer: Q-Block2 block not acknowledged", "peer", o.peer, "block", i, "err", err)
				return
			}
			continue
		}
		m.Type, m.MessageID = message.NonConfirmable, -1
		if o.st != nil {
			e.blocks.mu.Lock()
			if i < len(o.st.mids) {
				if o.st.mids[i] >= 0 {
					m.MessageID, m.Token = o.st.mids[i], o.st.toks[i]
				} else {
					m.MessageID = int32(e.newMID())
					o.st.mids[i], o.st.toks[i] = m.MessageID, append([]byte(nil), m.Token...)
				}
			}
			e.blocks.mu.Unlock()
		}
		if m.MessageID < 0 {
			m.MessageID = int32(e.newMID())
		}
		data, err := encode(&m)
		if err != nil {
			e.log.Warn("bearer: encode Q-Block2 block", "err", err)
			return
		}
		if e.writeQB(data, o.peer) != nil {
			return
		}
	}
	if len(nums) > 0 && (nums[len(nums)-1]+1)<<(o.szx+4) >= len(o.body) {
		e.m.Count(EventQBlockTransfer, 1)
	}
}

// qbServeCached answers a request for some blocks of a kept Q-Block2 body
// (missing blocks, a 'Continue') without running the handler. It reports
// false when the body is not kept. The handler slot is released.
func (e *Endpoint) qbServeCached(m *message.Message, peer net.Addr, pkey string, dk midKey, want []qbBlock) bool {
	key := qbKey2(pkey, m.Code, m.Options)
	now := time.Now()
	e.blocks.mu.Lock()
	b, ok := e.blocks.bufs[key]
	if !ok || b.qs == nil || !now.Before(b.expires) {
		e.blocks.mu.Unlock()
		return false
	}
	st := b.qs
	body, opts, code, szx := b.data, b.opts, st.code, st.szx
	mp := e.p.MaxPayloads()
	if et, ok := optionBytes(m.Options, message.ETag); ok && !bytes.Equal(et, b.etag) {
		e.blocks.mu.Unlock()
		return false // another representation: the handler answers afresh
	}
	if len(want) > 0 && want[0].szx != szx {
		e.blocks.mu.Unlock()
		return false // another block size: the handler answers afresh
	}
	nums, goOn := qbWanted(want, st.n, mp)
	token := m.Token
	if goOn && len(nums) > 0 && nums[0] > 0 {
		if nums[0]/mp < st.sentSets {
			// A late 'Continue' for a set that went out on schedule:
			// nothing to do (missing blocks are asked for one by one).
			e.blocks.mu.Unlock()
			<-e.hsem
			return true
		}
		// 'Continue': the next sets follow on schedule, with the token
		// of the request that asked for the whole body (§7.2, Figure 13).
		token = st.token
		st.sentSets = nums[len(nums)-1]/mp + 1
		st.nextSet, st.nextAt = -1, time.Time{}
		if next := nums[len(nums)-1]/mp + 1; next*mp < st.n {
			st.nextSet, st.nextAt = next, now.Add(e.nonTimeoutRandom())
		}
	}
	b.expires = now.Add(e.blocks.qbKeep)
	e.blocks.mu.Unlock()
	con := m.Type == message.Confirmable
	if len(nums) == 0 {
		e.m.Count(EventBlockError, 1)
		<-e.hsem
		e.replyDirect(inboundOf(m, peer, dk), m.Token, codes.BadOption, nil, nil)
		return true
	}
	e.qb.kick()
	out := qbOut{peer: peer, con: con, token: append([]byte(nil), token...), code: code, opts: opts, body: body, szx: szx, st: st}
	first := out.block(nums[0], append([]byte(nil), m.Token...))
	mid := uint16(m.MessageID)
	e.hwg.Add(1)
	go func() {
		defer func() { <-e.hsem; e.hwg.Done() }()
		if !con {
			e.qbSendBlocks(out, nums)
			return
		}
		e.replyDirect(inbound{peer: peer, dk: dk, con: con, mid: mid}, first.Token, code, first.Options, first.Payload)
		e.qbSendBlocks(out, nums[1:])
	}()
	return true
}

// qbWriteAnswer sends an answer about a Q-Block1 body from the timer loop
// (a 4.08 listing missing blocks): a NON with the token of the last block.
func (e *Endpoint) qbWriteAnswer(peer net.Addr, token []byte, code codes.Code, opts message.Options, payload []byte) {
	m := message.Message{Code: code, Token: token, Options: opts, Payload: payload,
		Type: message.NonConfirmable, MessageID: int32(e.newMID())}
	data, err := encode(&m)
	if err != nil {
		e.log.Warn("bearer: encode Q-Block answer", "err", err)
		return
	}
	_ = e.writeQB(data, peer)
}

// qbTick does what is due in the server's Q-Block state at now: a 4.08
// for bodies whose blocks stopped coming (NON_RECEIVE_TIMEOUT, doubling),
// giving up bodies asked for too often, the next set of Q-Block2 bodies.
// It returns when it next has something to do (zero: nothing pending).
func (e *Endpoint) qbTick(now time.Time) time.Time {
	var asks []qbAsk
	var sets []qbSet
	var next time.Time
	soon := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	s := &e.blocks
	s.mu.Lock()
	for k, b := range s.bufs {
		switch {
		case b.qr != nil:
			a, at := e.qbRecvDue(k, b, now)
			soon(at)
			if a != nil {
				asks = append(asks, *a)
			}
		case b.qs != nil && b.qs.nextSet >= 0:
			set, at := e.qbSendDue(b, now)
			soon(at)
			if set != nil {
				sets = append(sets, *set)
			}
		}
	}
	for k, d := range s.done {
		if !now.Before(d.expires) {
			delete(s.done, k)
		} else {
			soon(d.expires)
		}
	}
	e.m.Set(GaugeBlockBuffers, len(s.bufs))
	s.mu.Unlock()
	for _, a := range asks {
		e.m.Count(EventQBlockMissing, 1)
		e.qbWriteAnswer(a.peer, a.token, codes.RequestEntityIncomplete, missingOpts(), encodeMissingBlocks(a.miss))
	}
	for _, st := range sets {
		if st.out.con {
			// CON blocks wait for their ACKs: not on the timer loop.
			if !e.qbGo(func() { e.qbSendBlocks(st.out, st.nums) }) {
				e.m.Count(EventDropOverload, 1)
			}
			continue
		}
		e.qbSendBlocks(st.out, st.nums)
	}
	return next
}

// qbAsk is a request for missing blocks qbTick sends.
type qbAsk struct {
	peer  net.Addr
	token []byte
	miss  []uint32
}

// qbSet is the next set of a Q-Block2 body qbTick sends.
type qbSet struct {
	out  qbOut
	nums []int
}

// qbRecvDue looks at body k being received (b.qr; the store's lock held):
// it gives up a body past its time or asked for NON_MAX_RETRANSMIT times
// without an answer (§7.2), or returns the request for its missing blocks
// when one is due; at is when to look again (zero: no need).
func (e *Endpoint) qbRecvDue(k string, b *blockBuf, now time.Time) (a *qbAsk, at time.Time) {
	s, q := &e.blocks, b.qr
	if !now.Before(b.expires) {
		s.drop(k)
		e.m.Count(EventBlockError, 1)
		return nil, time.Time{}
	}
	if q.con || q.askAt.IsZero() {
		return nil, time.Time{}
	}
	if now.Before(q.askAt) {
		return nil, q.askAt
	}
	if q.asks >= e.p.NonMaxRetransmit() {
		// §7.2: NON_MAX_RETRANSMIT asks without an answer: give
		// the body up.
		s.drop(k)
		e.m.Count(EventBlockError, 1)
		return nil, time.Time{}
	}
	q.asks++
	q.askAt = now.Add(e.p.NonReceiveTimeout() << min(q.asks, 16))
	return &qbAsk{q.peer, append([]byte(nil), q.token...), q.missing(q.n, e.qbMaxListed(len(q.token)))}, q.askAt
}

// qbSendDue returns the next set of body b being sent (b.qs; the store's
// lock held) when it is due; at is when to look again (zero: no need).
func (e *Endpoint) qbSendDue(b *blockBuf, now time.Time) (set *qbSet, at time.Time) {
	st, mp := b.qs, e.p.MaxPayloads()
	if now.Before(st.nextAt) {
		return nil, st.nextAt
	}
	var nums []int
	for i := st.nextSet * mp; i < min((st.nextSet+1)*mp, st.n); i++ {
		nums = append(nums, i)
	}
	st.nextSet++
	st.sentSets = max(st.sentSets, st.nextSet)
	if st.nextSet*mp >= st.n {
		st.nextSet = -1
	} else {
		st.nextAt = now.Add(e.nonTimeoutRandom())
		at = st.nextAt
	}
	b.expires = now.Add(e.blocks.qbKeep)
	return &qbSet{qbOut{st.peer, st.con, st.token, st.code, b.opts, b.data, st.szx, st}, nums}, at
}

// qbGo runs fn on a handler slot (bounded by Limits.MaxHandlers, waited for
// by Shutdown); it reports false when every slot is busy.
func (e *Endpoint) qbGo(fn func()) bool {
	select {
	case e.hsem <- struct{}{}:
	default:
		return false
	}
	e.hwg.Add(1)
	go func() {
		defer func() { <-e.hsem; e.hwg.Done() }()
		fn()
	}()
	return true
}
