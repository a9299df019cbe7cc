package sms

import (
	"net"
	"slices"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// Count is what crossed the SMS network for one purpose: CoAP (or DTLS)
// datagrams, the SMS segments that carried them, and the datagram bytes
// (framing and UDH excluded).
type Count struct {
	Datagrams, Segments, Bytes uint64
}

func (c *Count) add(o Count) {
	c.Datagrams += o.Datagrams
	c.Segments += o.Segments
	c.Bytes += o.Bytes
}

func (c *Count) sub(o Count) {
	c.Datagrams -= min(c.Datagrams, o.Datagrams)
	c.Segments -= min(c.Segments, o.Segments)
	c.Bytes -= min(c.Bytes, o.Bytes)
}

// Usage is the SMS accounting of one peer (or of the whole bearer) since
// the bearer started, by purpose (indexed by bearer.Purpose: trigger,
// request, response, block, handshake, empty, secured).
type Usage struct {
	Peer           string // "" for the bearer's totals
	Sent, Received [bearer.NumPurposes]Count
}

// Total adds up the purposes of one direction.
func Total(c [bearer.NumPurposes]Count) Count {
	var t Count
	for _, x := range c {
		t.add(x)
	}
	return t
}

// maxPendingHints bounds the received DTLS datagrams per peer waiting for
// the security layer to say what they were.
const maxPendingHints = 16

type peerUsage struct {
	u Usage
	// pendingRx: received DTLS application datagrams (counted as
	// Secured) the security layer has not described yet, oldest first.
	pendingRx []Count
	// hintTx: the purpose of the next DTLS application datagram to send.
	hintTx    bearer.Purpose
	hintTxSet bool
	// heard: when a segment from the peer last arrived (Bearer.LastHeard).
	heard time.Time
}

// usageBook keeps the per-peer and total accounting. Its size follows
// the peer table (only configured peers send or are received from).
type usageBook struct {
	mu    sync.Mutex
	total Usage
	peers map[Addr]*peerUsage
}

func (ub *usageBook) peer(a Addr) *peerUsage {
	if ub.peers == nil {
		ub.peers = map[Addr]*peerUsage{}
	}
	pu := ub.peers[a]
	if pu == nil {
		pu = &peerUsage{u: Usage{Peer: a.String()}}
		ub.peers[a] = pu
	}
	return pu
}

func (ub *usageBook) sent(a Addr, data []byte, segments int) bearer.Purpose {
	p := bearer.Classify(data)
	c := Count{Datagrams: 1, Segments: uint64(segments), Bytes: uint64(len(data))}
	ub.mu.Lock()
	defer ub.mu.Unlock()
	pu := ub.peer(a)
	if p == bearer.PurposeSecured && pu.hintTxSet {
		p, pu.hintTxSet = pu.hintTx, false
	}
	pu.u.Sent[p].add(c)
	ub.total.Sent[p].add(c)
	return p
}

func (ub *usageBook) received(a Addr, data []byte, segments int) bearer.Purpose {
	p := bearer.Classify(data)
	c := Count{Datagrams: 1, Segments: uint64(segments), Bytes: uint64(len(data))}
	ub.mu.Lock()
	defer ub.mu.Unlock()
	pu := ub.peer(a)
	pu.u.Received[p].add(c)
	ub.total.Received[p].add(c)
	if p == bearer.PurposeSecured {
		if len(pu.pendingRx) >= maxPendingHints {
			pu.pendingRx = slices.Delete(pu.pendingRx, 0, 1)
		}
		pu.pendingRx = append(pu.pendingRx, c)
	}
	return p
}

// heard records a segment from a.
func (ub *usageBook) heard(a Addr, now time.Time) {
	ub.mu.Lock()
	defer ub.mu.Unlock()
	ub.peer(a).heard = now
}

// lastHeard returns when a's last segment arrived.
func (ub *usageBook) lastHeard(a Addr) time.Time {
	ub.mu.Lock()
	defer ub.mu.Unlock()
	if pu, ok := ub.peers[a]; ok {
		return pu.heard
	}
	return time.Time{}
}

// hint records what a security layer says of a DTLS datagram.
func (ub *usageBook) hint(a Addr, received bool, p bearer.Purpose) {
	if p >= bearer.NumPurposes || p == bearer.PurposeSecured {
		return
	}
	ub.mu.Lock()
	defer ub.mu.Unlock()
	pu, ok := ub.peers[a]
	if !received {
		if !ok {
			pu = ub.peer(a)
		}
		pu.hintTx, pu.hintTxSet = p, true
		return
	}
	if !ok || len(pu.pendingRx) == 0 {
		return
	}
	c := pu.pendingRx[0]
	pu.pendingRx = slices.Delete(pu.pendingRx, 0, 1)
	pu.u.Received[bearer.PurposeSecured].sub(c)
	ub.total.Received[bearer.PurposeSecured].sub(c)
	pu.u.Received[p].add(c)
	ub.total.Received[p].add(c)
}

func (ub *usageBook) get(a Addr) (Usage, bool) {
	ub.mu.Lock()
	defer ub.mu.Unlock()
	pu, ok := ub.peers[a]
	if !ok {
		return Usage{Peer: a.String()}, false
	}
	return pu.u, true
}

func (ub *usageBook) all() []Usage {
	ub.mu.Lock()
	defer ub.mu.Unlock()
	out := make([]Usage, 0, len(ub.peers))
	for _, pu := range ub.peers {
		out = append(out, pu.u)
	}
	slices.SortFunc(out, func(x, y Usage) int {
		switch {
		case x.Peer < y.Peer:
			return -1
		case x.Peer > y.Peer:
			return 1
		}
		return 0
	})
	return out
}

// HintPurpose implements bearer.PurposeHinter: bearer/secure tells the
// purpose of the DTLS application record it is about to send to addr, or
// of the one it just decrypted from addr, so that the accounting shows
// requests, responses and blocks instead of "secured".
func (b *Bearer) HintPurpose(addr net.Addr, received bool, p bearer.Purpose) {
	to, err := toAddr(addr, b.parse)
	if err != nil {
		return
	}
	b.usage.hint(to, received, p)
}

// Usage returns the SMS accounting of peer (any form ParseMSISDN
// accepts) since the bearer started: datagrams, segments and bytes sent
// and received, by purpose. ok is false when nothing was exchanged.
func (b *Bearer) Usage(peer string) (u Usage, ok bool) {
	a, err := b.parse(peer)
	if err != nil {
		return Usage{Peer: peer}, false
	}
	return b.usage.get(a)
}

// Usages returns the accounting of every peer that exchanged SMS, by
// number.
func (b *Bearer) Usages() []Usage { return b.usage.all() }

// TotalUsage returns the bearer's accounting over all peers.
func (b *Bearer) TotalUsage() Usage {
	b.usage.mu.Lock()
	defer b.usage.mu.Unlock()
	return b.usage.total
}
