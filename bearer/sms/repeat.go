package sms

import (
	"hash/maphash"
	"sync"
)

// repeats remembers the concatenation references of the last multi-segment
// datagrams sent to each peer, so that a datagram written again byte for
// byte (the message layer sends a block the peer reports missing again,
// with its message ID) goes out under the same reference: the receiver's
// reassembler joins its segments to those of the first sending, and a
// concatenated message whose segments were each lost at most once
// completes (pdu.WithRepeat). Bounded: repeatWindow datagrams per peer,
// repeatPeers peers.
type repeats struct {
	mu    sync.Mutex
	seed  maphash.Seed
	peers map[string]*peerRepeats
}

const (
	repeatWindow = 64
	repeatPeers  = 4096
	// repeatAge is how many newer references may have been taken for the
	// peer before an old one is not reused (8-bit references wrap at 256).
	repeatAge = 128
)

type peerRepeats struct {
	seq  uint32 // references taken for the peer so far
	next int
	sent [repeatWindow]sentDatagram
}

type sentDatagram struct {
	hash uint64
	n    int
	ref  uint16
	seq  uint32
	ok   bool
}

func newRepeats() *repeats {
	return &repeats{seed: maphash.MakeSeed(), peers: make(map[string]*peerRepeats)}
}

// lookup returns the reference data went out under to peer, if it did
// recently.
func (r *repeats) lookup(peer string, data []byte) (uint16, bool) {
	h := maphash.Bytes(r.seed, data)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[peer]
	if p == nil {
		return 0, false
	}
	for i := range p.sent {
		s := &p.sent[i]
		if s.ok && s.hash == h && s.n == len(data) && p.seq-s.seq < repeatAge {
			return s.ref, true
		}
	}
	return 0, false
}

// record notes that data went out to peer under a new reference ref.
func (r *repeats) record(peer string, data []byte, ref uint16) {
	h := maphash.Bytes(r.seed, data)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.peers[peer]
	if p == nil {
		if len(r.peers) >= repeatPeers {
			for k := range r.peers { // forget an arbitrary peer
				delete(r.peers, k)
				break
			}
		}
		p = &peerRepeats{}
		r.peers[peer] = p
	}
	p.seq++
	p.sent[p.next] = sentDatagram{hash: h, n: len(data), ref: ref, seq: p.seq, ok: true}
	p.next = (p.next + 1) % repeatWindow
}
