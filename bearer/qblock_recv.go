package bearer

import (
	"bytes"
	"context"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"
)

// qb2rx gathers the blocks of a Q-Block2 body on the client side, in any
// order, bounded by Limits.MaxBodySize.
type qb2rx struct {
	max       int // MaxBodySize
	mp        int // MAX_PAYLOADS
	etag      []byte
	szx       uint32
	size, n   int // n == 0: no block yet
	got       []uint64
	have      int
	body      []byte
	first     *Response // the answer carrying block 0: its code and options make the result
	contig    int       // sets 0..contig-1 are complete
	continued int       // sets up to this one were asked for (the request, 'Continue')
	askedSet  int       // a block of this set already made us ask for earlier holes
	resets    int       // bodies given up because the ETag changed
}

func (r *qb2rx) has(i int) bool { return r.got[i/64]&(1<<(i%64)) != 0 }

func (r *qb2rx) complete() bool { return r.n > 0 && r.have == r.n }

func (r *qb2rx) setComplete(s int) bool {
	for i := s * r.mp; i < min((s+1)*r.mp, r.n); i++ {
		if !r.has(i) {
			return false
		}
	}
	return true
}

func (r *qb2rx) seenSet(s int) bool {
	for i := s * r.mp; i < min((s+1)*r.mp, r.n); i++ {
		if r.has(i) {
			return true
		}
	}
	return false
}

// add takes the block an answer carries. It reports whether the block was
// new; an answer that breaks RFC 9177 §4.4/§4.6 is an error.
func (r *qb2rx) add(resp *Response) (bool, error) {
	bs, bad := qbOptions(resp.Options, message.QBlock2)
	if bad || len(bs) != 1 || bs[0].szx > 6 {
		return false, fmt.Errorf("%w: answer with %d Q-Block2 options", ErrBadResponse, len(bs))
	}
	b := bs[0]
	etag, _ := optionBytes(resp.Options, message.ETag)
	size2, hasSize := optionUint(resp.Options, message.Size2)
	if !hasSize {
		if b.num == 0 && !b.more {
			size2 = uint32(len(resp.Payload))
		} else {
			return false, fmt.Errorf("%w: Q-Block2 %d without Size2", ErrBadResponse, b.num)
		}
	}
	if r.n > 0 && (!bytes.Equal(etag, r.etag) || int(size2) != r.size || b.szx != r.szx) {
		// Another representation (§4.4): what we have is stale.
		if r.resets++; r.resets > 4 {
			return false, fmt.Errorf("%w: the body changed %d times during the transfer", ErrBadResponse, r.resets)
		}
		r.n = 0
	}
	if r.n == 0 {
		if int64(size2) > int64(r.max) {
			return false, fmt.Errorf("%w: Size2 %d over %d bytes", ErrBodyTooLarge, size2, r.max)
		}
		blk := 16 << b.szx
		r.etag, r.szx, r.size = append([]byte(nil), etag...), b.szx, int(size2)
		r.n = max((r.size+blk-1)/blk, 1)
		r.got, r.have, r.body, r.first = make([]uint64, (r.n+63)/64), 0, make([]byte, r.size), nil
		r.contig, r.continued, r.askedSet = 0, 0, -1
	}
	blk := 16 << r.szx
	num := int(b.num)
	want := blk
	if num == r.n-1 {
		want = r.size - num*blk
	}
	if num >= r.n || b.more != (num < r.n-1) || len(resp.Payload) != want {
		return false, fmt.Errorf("%w: Q-Block2 %d/%d with %d bytes in a body of %d", ErrBadResponse, num, r.n, len(resp.Payload), r.size)
	}
	if num == 0 {
		r.first = resp
	}
	if r.has(num) {
		return false, nil // §4.4: a duplicate is ignored
	}
	r.got[num/64] |= 1 << (num % 64)
	r.have++
	copy(r.body[num*blk:], resp.Payload)
	return true, nil
}

// missing returns Q-Block2 options for the missing blocks below limit, at
// most maxListed of them: each block on its own, except that a run of
// missing blocks that ends its set (and does not start it) is one option
// with M set, "this block and the rest of its set" (§4.4).
func (r *qb2rx) missing(limit, maxListed int) []qbBlock {
	var out []qbBlock
	for i := 0; i < min(limit, r.n) && len(out) < maxListed; {
		if r.has(i) {
			i++
			continue
		}
		end := min((i/r.mp+1)*r.mp, r.n)
		j := i
		for j < end && !r.has(j) {
			j++
		}
		if j == end && i%r.mp != 0 && j-i > 1 {
			out = append(out, qbBlock{uint32(i), true, r.szx})
			i = j
			continue
		}
		out = append(out, qbBlock{uint32(i), false, r.szx})
		i++
	}
	return out
}

// qbFollowOptions are the options of a request for more blocks of req's
// answer: req's, without what belongs to req's own body or observation
// (§4.4, §4.5), with the Q-Block2 options asked. A request for block 0
// alone would read as a new request for the first block of a new body; it
// names the body with its ETag (§4.4 allows it), so that the server
// sends the block it kept, byte for byte, and does not run the request
// again.
func qbFollowOptions(req message.Options, ask []qbBlock, etag []byte) message.Options {
	o := cloneOptions(req)
	for _, id := range []message.OptionID{message.Observe, message.Block1, message.Block2, message.QBlock1,
		message.QBlock2, message.Size1, message.Size2, message.RequestTag, message.ContentFormat} {
		o = o.Remove(id)
	}
	for _, b := range ask {
		o = o.Add(UintOption(message.QBlock2, b.value()))
	}
	o = o.Remove(message.ETag)
	if len(ask) == 1 && ask[0].num == 0 && !ask[0].more && len(etag) > 0 {
		o = o.Set(message.Option{ID: message.ETag, Value: etag})
	}
	return o
}

// qbReceive gathers the rest of a Q-Block2 body whose first answer is
// resp: 'Continue' after each complete set, a request for the missing
// blocks when a later set shows a hole or nothing came for NON_RECEIVE_
// TIMEOUT (doubling; given up after NON_MAX_RETRANSMIT such requests in a
// row). With ask set the server is not sending (resp answered a probe
// for block 0 only): the rest of set 0 is asked for at once.
func (e *Endpoint) qbReceive(ctx context.Context, t *qbTransfer, req *Request, resp *Response, ask bool) (*Response, error) {
	d := &qb2Download{e: e, t: t, req: req, r: &qb2rx{max: e.lim.MaxBodySize, mp: e.p.MaxPayloads(), askedSet: -1}}
	r := d.r
	if _, err := r.add(resp); err != nil {
		return nil, err
	}
	if !r.complete() && ask {
		if err := d.askMissing(r.mp); err != nil {
			return nil, err
		}
	}
	for !r.complete() {
		resp, timedOut, err := e.qbAwait(ctx, t, e.p.NonReceiveTimeout()<<min(d.asks, 16))
		if err != nil {
			return nil, err
		}
		if other, err := d.step(resp, timedOut); err != nil || other != nil {
			return other, err
		}
	}
	if r.first == nil {
		return nil, fmt.Errorf("%w: Q-Block2 body without block 0", ErrBadResponse)
	}
	e.m.Count(EventQBlockTransfer, 1)
	out := *r.first
	out.Payload = r.body
	out.Options = cloneOptions(r.first.Options).Remove(message.QBlock2).Remove(message.Size2)
	return &out, nil
}

// qb2Download is the client's side of one Q-Block2 download (qbReceive):
// the blocks gathered and the requests that ask for more.
type qb2Download struct {
	e    *Endpoint
	t    *qbTransfer
	req  *Request
	r    *qb2rx
	asks int // requests for missing blocks since the last new block
}

// step acts on what one wait brought: an answer (nil: an RST), or
// timedOut. It returns an answer other than a block of the body (an
// error answer: the body is gone, ...), which ends the download.
func (d *qb2Download) step(resp *Response, timedOut bool) (*Response, error) {
	switch {
	case timedOut:
		if d.asks++; d.asks > d.e.p.NonMaxRetransmit() {
			return nil, d.t.timeout("Q-Block2 download")
		}
		return nil, d.askMissing(d.r.n)
	case resp == nil:
		return nil, ErrReset
	}
	if bs, _ := qbOptions(resp.Options, message.QBlock2); len(bs) == 0 {
		return resp, nil // an error answer (the body is gone, ...)
	}
	fresh, err := d.r.add(resp)
	if err != nil || !fresh {
		return nil, err
	}
	d.asks = 0
	b, _ := qbOptions(resp.Options, message.QBlock2)
	return nil, d.after(int(b[0].num))
}

// send asks for blocks of the body, in a request of its own.
func (d *qb2Download) send(blocks []qbBlock) error {
	if len(blocks) == 0 {
		return nil
	}
	m := message.Message{Code: d.req.Code, Token: d.e.newToken(), Options: qbFollowOptions(d.req.Options, blocks, d.r.etag)}
	return d.t.send(&m)
}

// askMissing asks for the blocks missing below limit.
func (d *qb2Download) askMissing(limit int) error {
	miss := d.r.missing(limit, d.e.qbMaxListed(8))
	if len(miss) > 0 {
		d.e.m.Count(EventQBlockMissing, 1)
	}
	return d.send(miss)
}

// after a new block num: 'Continue' when a set is complete, holes of
// earlier sets asked for when a later set begins (§7.2).
func (d *qb2Download) after(num int) error {
	r := d.r
	for r.contig*r.mp < r.n && r.setComplete(r.contig) {
		r.contig++
	}
	if r.contig > r.continued && r.contig*r.mp < r.n && !r.seenSet(r.contig) {
		r.continued = r.contig
		if err := d.send([]qbBlock{{uint32(r.contig * r.mp), true, r.szx}}); err != nil {
			return err
		}
	}
	if set := num / r.mp; set > r.askedSet && set > r.contig {
		r.askedSet = set
		return d.askMissing(set * r.mp)
	}
	return nil
}
