package bearer

import (
	"fmt"
	"sync"
	"time"
)

// dedupCache remembers the (peer, MID) of received CON and NON messages for
// EXCHANGE_LIFETIME (NON_LIFETIME for NON), with the reply sent to each, so
// a duplicate gets the same reply and is never processed twice (RFC 7252
// §4.5). It is bounded by count; when full the oldest entry is evicted and
// counted.
//
// It is laid out for hundreds of thousands of entries (a firmware campaign
// keeps one per block request for EXCHANGE_LIFETIME): the entries live in
// one ring of 48-byte slots in arrival order (no allocation per entry),
// peers are interned (an entry names its peer by a 4-byte number, not a
// string), a regenerable reply is a 16-byte digest in the slot
// (regen.go), and what few entries have (a whole reply, a running
// handler) is in side maps.
type dedupCache struct {
	mu      sync.Mutex
	max     int
	index   map[dedupKey]int32 // → position in ring
	ring    []dedupSlot        // arrival order from head, wrapping
	head    int
	n       int // slots in use, live or gone
	live    int
	replies map[dedupKey][]byte          // encoded reply (ACK or RST) of entries that keep it whole
	running map[dedupKey]*serverExchange // the request's exchange while its handler runs

	peerIDs  map[string]uint32
	peerKeys []string // by id
	peerRefs []int32  // live entries naming each id
	freeIDs  []uint32
}

type dedupKey struct {
	peer uint32
	mid  uint16
}

// dedupSlot is one entry (48 bytes).
type dedupSlot struct {
	key     dedupKey
	gone    bool     // forgotten or replaced: skipped, reclaimed at the head
	regen   bool     // the reply is sum: regenerate it
	token   uint64   // hash of the token: same MID, other token is not a duplicate
	expires int64    // unix nanoseconds
	sum     [16]byte // digest of a regenerable reply
}

// dedupHit is what the cache holds for a duplicate.
type dedupHit struct {
	reply   []byte
	regen   bool
	sum     [16]byte
	running *serverExchange
}

func (c *dedupCache) init(max int) {
	c.max = max
	c.index = make(map[dedupKey]int32)
	c.peerIDs = make(map[string]uint32)
	c.replies = make(map[dedupKey][]byte)
	c.running = make(map[dedupKey]*serverExchange)
}

// lookup returns the live slot of k, or nil.
func (c *dedupCache) lookup(k midKey) *dedupSlot {
	id, ok := c.peerIDs[k.peer]
	if !ok {
		return nil
	}
	pos, ok := c.index[dedupKey{id, k.mid}]
	if !ok {
		return nil
	}
	return &c.ring[pos]
}

func (c *dedupCache) intern(peer string) uint32 {
	if id, ok := c.peerIDs[peer]; ok {
		c.peerRefs[id]++
		return id
	}
	var id uint32
	if n := len(c.freeIDs); n > 0 {
		id = c.freeIDs[n-1]
		c.freeIDs = c.freeIDs[:n-1]
		c.peerKeys[id] = peer
		c.peerRefs[id] = 1
	} else {
		id = uint32(len(c.peerKeys))
		c.peerKeys = append(c.peerKeys, peer)
		c.peerRefs = append(c.peerRefs, 1)
	}
	c.peerIDs[peer] = id
	return id
}

func (c *dedupCache) release(id uint32) {
	if c.peerRefs[id]--; c.peerRefs[id] == 0 {
		delete(c.peerIDs, c.peerKeys[id])
		c.peerKeys[id] = ""
		c.freeIDs = append(c.freeIDs, id)
	}
}

// drop makes a live slot gone.
func (c *dedupCache) drop(s *dedupSlot) {
	delete(c.index, s.key)
	delete(c.replies, s.key)
	delete(c.running, s.key)
	c.release(s.key.peer)
	s.gone = true
	c.live--
}

// check reports whether k was seen; if so it returns what is stored. If
// not, it records k with the given lifetime. A message with a known MID
// but another token is not a copy of the first: the peer reused the MID
// too early (a busy peer wraps 16-bit MIDs within EXCHANGE_LIFETIME); it
// replaces the entry rather than get a reply meant for another exchange.
func (c *dedupCache) check(k midKey, token []byte, lifetime time.Duration, now time.Time, m Metrics) (bool, dedupHit) {
	th := tokenHash(token)
	t := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.lookup(k); s != nil && t < s.expires {
		if s.token == th {
			return true, dedupHit{reply: c.replies[s.key], regen: s.regen, sum: s.sum, running: c.running[s.key]}
		}
		c.drop(s)
	}
	c.expire(t)
	for c.live >= c.max {
		c.evictOldest()
		m.Count(EventDedupEvicted, 1)
	}
	if c.n == len(c.ring) {
		c.makeRoom()
	}
	if s := c.lookup(k); s != nil {
		c.drop(s) // an expired entry of the same key not yet at the head
	}
	pos := (c.head + c.n) % len(c.ring)
	key := dedupKey{c.intern(k.peer), k.mid}
	c.ring[pos] = dedupSlot{key: key, token: th, expires: t + int64(lifetime)}
	c.index[key] = int32(pos)
	c.n++
	c.live++
	m.Set(GaugeDedupEntries, c.live)
	return false, dedupHit{}
}

// makeRoom frees a slot in a full ring: it grows the ring (up to max
// slots) or, when gone slots fill it, packs the live ones together.
func (c *dedupCache) makeRoom() {
	size := len(c.ring)
	if c.live == c.n && size < c.max {
		size = min(c.max, max(16, 2*size))
	}
	ring := make([]dedupSlot, size)
	j := 0
	for i := 0; i < c.n; i++ {
		s := &c.ring[(c.head+i)%len(c.ring)]
		if s.gone {
			continue
		}
		ring[j] = *s
		c.index[s.key] = int32(j)
		j++
	}
	c.ring, c.head, c.n = ring, 0, j
}

// setRunning records (sx) or clears (nil) the exchange whose handler runs.
func (c *dedupCache) setRunning(k midKey, sx *serverExchange) {
	c.mu.Lock()
	if s := c.lookup(k); s != nil {
		if sx != nil {
			c.running[s.key] = sx
		} else {
			delete(c.running, s.key)
		}
	}
	c.mu.Unlock()
}

// setReply stores the reply for a recorded message.
func (c *dedupCache) setReply(k midKey, reply []byte) {
	c.mu.Lock()
	if s := c.lookup(k); s != nil {
		c.replies[s.key], s.regen = reply, false
	}
	c.mu.Unlock()
}

// setRegen stores a regenerable reply's digest for a recorded message.
func (c *dedupCache) setRegen(k midKey, sum [16]byte) {
	c.mu.Lock()
	if s := c.lookup(k); s != nil {
		delete(c.replies, s.key)
		s.regen, s.sum = true, sum
	}
	c.mu.Unlock()
}

// forget removes k (a request that could not be processed, so that its
// retransmission is).
func (c *dedupCache) forget(k midKey) {
	c.mu.Lock()
	if s := c.lookup(k); s != nil {
		c.drop(s)
	}
	c.mu.Unlock()
}

// expire reclaims slots at the head that are gone or expired.
func (c *dedupCache) expire(t int64) {
	for c.n > 0 {
		s := &c.ring[c.head]
		if !s.gone && t < s.expires {
			return
		}
		c.pop()
	}
}

// evictOldest reclaims slots at the head up to the first live one.
func (c *dedupCache) evictOldest() {
	for c.n > 0 {
		gone := c.ring[c.head].gone
		c.pop()
		if !gone {
			return
		}
	}
}

func (c *dedupCache) pop() {
	s := &c.ring[c.head]
	if !s.gone {
		c.drop(s)
	}
	*s = dedupSlot{}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
}

// len returns the live entries.
func (c *dedupCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// verify checks the cache's invariants (tests).
func (c *dedupCache) verify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := 0
	refs := make(map[uint32]int32)
	for i := 0; i < c.n; i++ {
		pos := (c.head + i) % len(c.ring)
		s := &c.ring[pos]
		if s.gone {
			continue
		}
		live++
		refs[s.key.peer]++
		if p, ok := c.index[s.key]; !ok || int(p) != pos {
			return fmt.Errorf("live slot %d not indexed (%d %v)", pos, p, ok)
		}
	}
	if live != c.live || live != len(c.index) || live > c.max {
		return fmt.Errorf("%d live slots, live %d, %d indexed, max %d", live, c.live, len(c.index), c.max)
	}
	for k := range c.replies {
		if _, ok := c.index[k]; !ok {
			return fmt.Errorf("reply kept for a key not in the cache")
		}
	}
	for k := range c.running {
		if _, ok := c.index[k]; !ok {
			return fmt.Errorf("running handler kept for a key not in the cache")
		}
	}
	for id, n := range refs {
		if c.peerRefs[id] != n || c.peerIDs[c.peerKeys[id]] != id {
			return fmt.Errorf("peer %d: %d refs, %d counted", id, c.peerRefs[id], n)
		}
	}
	if len(c.peerIDs) != len(refs) {
		return fmt.Errorf("%d interned peers, %d in use", len(c.peerIDs), len(refs))
	}
	return nil
}

// tokenHash is FNV-1a of the token.
func tokenHash(t []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range t {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}
