package bearer

import (
	"sync"
	"time"
)

// dedupCache remembers the (peer, MID) of received CON and NON messages for
// EXCHANGE_LIFETIME (NON_LIFETIME for NON), with the reply sent to each, so
// a duplicate gets the same reply and is never processed twice (RFC 7252
// §4.5). It is bounded by count; when full the oldest entry is evicted and
// counted.
type dedupCache struct {
	mu      sync.Mutex
	max     int
	entries map[midKey]*dedupEntry
	fifo    []*dedupEntry // insertion order
	head    int
}

type dedupEntry struct {
	key     midKey
	token   uint64 // hash of the token: same MID, other token is not a duplicate
	expires time.Time
	reply   []byte          // encoded reply (ACK or RST); nil while the handler runs
	running *serverExchange // the request's exchange while its handler runs
	gone    bool
}

func (c *dedupCache) init(max int) {
	c.max = max
	c.entries = make(map[midKey]*dedupEntry)
}

// check reports whether k was seen; if so it returns the stored reply. If
// not, it records k with the given lifetime. A message with a known MID
// but another token is not a copy of the first: the peer reused the MID
// too early (a busy peer wraps 16-bit MIDs within EXCHANGE_LIFETIME); it
// replaces the entry rather than get a reply meant for another exchange.
func (c *dedupCache) check(k midKey, token []byte, lifetime time.Duration, now time.Time, m Metrics) (bool, []byte, *serverExchange) {
	th := tokenHash(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok && now.Before(e.expires) {
		if e.token == th {
			return true, e.reply, e.running
		}
		e.gone = true
		delete(c.entries, k)
	}
	c.expire(now)
	for len(c.entries) >= c.max {
		c.evictOldest()
		m.Count(EventDedupEvicted, 1)
	}
	e := &dedupEntry{key: k, token: th, expires: now.Add(lifetime)}
	c.entries[k] = e
	c.fifo = append(c.fifo, e)
	m.Set(GaugeDedupEntries, len(c.entries))
	return false, nil, nil
}

// setRunning records (sx) or clears (nil) the exchange whose handler runs.
func (c *dedupCache) setRunning(k midKey, sx *serverExchange) {
	c.mu.Lock()
	if e, ok := c.entries[k]; ok {
		e.running = sx
	}
	c.mu.Unlock()
}

// setReply stores the reply for a recorded message.
func (c *dedupCache) setReply(k midKey, reply []byte) {
	c.mu.Lock()
	if e, ok := c.entries[k]; ok {
		e.reply = reply
	}
	c.mu.Unlock()
}

// forget removes k (a request that could not be processed, so that its
// retransmission is).
func (c *dedupCache) forget(k midKey) {
	c.mu.Lock()
	if e, ok := c.entries[k]; ok {
		e.gone = true
		delete(c.entries, k)
	}
	c.mu.Unlock()
}

func (c *dedupCache) expire(now time.Time) {
	for c.head < len(c.fifo) {
		e := c.fifo[c.head]
		if !e.gone && now.Before(e.expires) {
			break
		}
		c.pop()
	}
	c.compact()
}

func (c *dedupCache) evictOldest() {
	for c.head < len(c.fifo) {
		gone := c.fifo[c.head].gone
		c.pop()
		if !gone {
			return
		}
	}
}

func (c *dedupCache) pop() {
	e := c.fifo[c.head]
	c.fifo[c.head] = nil
	c.head++
	if !e.gone {
		if cur, ok := c.entries[e.key]; ok && cur == e {
			delete(c.entries, e.key)
		}
		e.gone = true
	}
}

func (c *dedupCache) compact() {
	if c.head > 1024 && c.head*2 > len(c.fifo) {
		n := copy(c.fifo, c.fifo[c.head:])
		clear(c.fifo[n:])
		c.fifo = c.fifo[:n]
		c.head = 0
	}
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
