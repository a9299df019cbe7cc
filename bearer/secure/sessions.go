package secure

import (
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	bolt "go.etcd.io/bbolt"
)

// Defaults of a SessionCache.
const (
	// DefaultSessionTTL is how long a session may be resumed after its
	// full handshake: RFC 5246 §F.1.4 suggests an upper limit of 24 hours.
	DefaultSessionTTL = 24 * time.Hour
	// DefaultMaxSessionsCached bounds a SessionCache.
	DefaultMaxSessionsCached = DefaultMaxSessions
)

// ErrSessionCache is wrapped by errors of a SessionCache's file.
var ErrSessionCache = errors.New("secure: session cache")

// SessionCache keeps DTLS sessions (master secret, cipher suite, peer
// identity) so that a peer that comes back can resume one with the RFC
// 5246 §7.3 abbreviated handshake instead of a full one: on SMS, 3
// datagrams after the HelloVerifyRequest exchange instead of 6 or 7, and no
// key exchange. Set it as Config.Sessions on a Server (keyed by session ID)
// or a client (keyed by server address); it implements pion/dtls's
// SessionStore.
//
// It is bounded (MaxEntries, least recently used evicted first) and
// entries expire TTL after the full handshake that made them (a resumed
// session keeps its first handshake's age, so a master secret is not used
// for ever). OpenSessionCache keeps it in a bbolt file as well, so sessions
// survive a restart of the process (a device that reboots, a server that
// restarts); the file holds master secrets and is created with mode 0600.
//
// pion/dtls v3 resumes sessions authenticated by PSK and, on a client, by
// a server certificate; a server does not resume sessions whose client
// authenticated with a certificate (raw public key or X.509): such a client
// pays a full handshake. A resumed session has no RFC 9146 connection ID
// (pion's abbreviated ServerHello carries none).
//
// The zero SessionCache is an in-memory cache with the defaults, as
// NewSessionCache() returns.
type SessionCache struct {
	max int
	ttl time.Duration
	now func() time.Time
	db  *bolt.DB // nil: memory only

	mu  sync.Mutex
	lru *list.List // of *cacheEntry, most recent first
	by  map[string]*list.Element

	hits, misses, evicted, expired, stored atomic.Uint64
}

type cacheEntry struct {
	key     string
	created time.Time
	s       dtls.Session
}

// SessionCacheOption configures a SessionCache.
type SessionCacheOption func(*SessionCache) error

// WithSessionTTL sets how long a session may be resumed after its full
// handshake (default DefaultSessionTTL). d must be positive.
func WithSessionTTL(d time.Duration) SessionCacheOption {
	return func(c *SessionCache) error {
		if d <= 0 {
			return fmt.Errorf("%w: session TTL %v must be positive", ErrInvalidOption, d)
		}
		c.ttl = d
		return nil
	}
}

// WithMaxEntries bounds the cache (default DefaultMaxSessionsCached). n
// must be positive.
func WithMaxEntries(n int) SessionCacheOption {
	return func(c *SessionCache) error {
		if n <= 0 {
			return fmt.Errorf("%w: session cache size %d must be positive", ErrInvalidOption, n)
		}
		c.max = n
		return nil
	}
}

// WithSessionClock sets the cache's clock (tests).
func WithSessionClock(now func() time.Time) SessionCacheOption {
	return func(c *SessionCache) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// init fills the defaults of a zero SessionCache. c.mu is held.
func (c *SessionCache) init() {
	if c.lru == nil {
		c.lru, c.by = list.New(), map[string]*list.Element{}
	}
	if c.max <= 0 {
		c.max = DefaultMaxSessionsCached
	}
	if c.ttl <= 0 {
		c.ttl = DefaultSessionTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// NewSessionCache returns an in-memory SessionCache.
func NewSessionCache(opts ...SessionCacheOption) (*SessionCache, error) {
	c := &SessionCache{max: DefaultMaxSessionsCached, ttl: DefaultSessionTTL, now: time.Now,
		lru: list.New(), by: map[string]*list.Element{}}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

var sessionBucket = []byte("dtls-sessions")

// storedSession is the file form of an entry.
type storedSession struct {
	Created time.Time    `json:"created"`
	Session dtls.Session `json:"session"`
}

// OpenSessionCache returns a SessionCache kept in the bbolt file path as
// well as in memory: every stored session is written (and synced) before
// the handshake that made it completes, and the unexpired ones are loaded
// here. Close closes the file.
func OpenSessionCache(path string, opts ...SessionCacheOption) (*SessionCache, error) {
	c, err := NewSessionCache(opts...)
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSessionCache, path, err)
	}
	c.db = db
	type loaded struct {
		key string
		st  storedSession
	}
	var all []loaded
	var stale [][]byte
	now := c.now()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(sessionBucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var st storedSession
			if json.Unmarshal(v, &st) != nil || now.Sub(st.Created) >= c.ttl || now.Before(st.Created.Add(-time.Minute)) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			all = append(all, loaded{string(k), st})
			return nil
		})
	})
	if err == nil && len(stale) > 0 {
		err = db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(sessionBucket)
			for _, k := range stale {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrSessionCache, path, err)
	}
	// Oldest first, so that the most recent end up at the front and the
	// bound evicts the oldest.
	for i := range all {
		for j := i; j > 0 && all[j].st.Created.Before(all[j-1].st.Created); j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	for _, l := range all {
		c.put(l.key, l.st.Created, l.st.Session)
	}
	if over := c.trim(); len(over) > 0 {
		if err := c.deleteFromFile(over); err != nil {
			db.Close()
			return nil, err
		}
	}
	return c, nil
}

// WriteTo writes a consistent copy of the cache's file to w (one read
// transaction: sessions go on being stored meanwhile), for backups of a
// running server. A cache without a file (NewSessionCache, the zero value)
// has nothing to copy and returns an error wrapping ErrSessionCache.
func (c *SessionCache) WriteTo(w io.Writer) (n int64, err error) {
	if c == nil || c.db == nil {
		return 0, fmt.Errorf("%w: not kept in a file", ErrSessionCache)
	}
	err = c.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Close closes the cache's file (a memory-only cache has nothing to
// close). The cache must not be used afterwards.
func (c *SessionCache) Close() error {
	if c == nil || c.db == nil {
		return nil
	}
	return c.db.Close()
}

// SessionCacheStats are a SessionCache's counters.
type SessionCacheStats struct {
	// Entries is the number of sessions held, at most MaxEntries.
	Entries int
	// Hits and Misses count lookups (a hit is a session pion may resume).
	Hits, Misses uint64
	// Stored counts sessions stored, Evicted those dropped for the bound,
	// Expired those dropped for their age.
	Stored, Evicted, Expired uint64
}

// Stats returns the counters.
func (c *SessionCache) Stats() SessionCacheStats {
	c.mu.Lock()
	c.init()
	n := c.lru.Len()
	c.mu.Unlock()
	return SessionCacheStats{Entries: n, Hits: c.hits.Load(), Misses: c.misses.Load(),
		Stored: c.stored.Load(), Evicted: c.evicted.Load(), Expired: c.expired.Load()}
}

// Len returns the number of sessions held.
func (c *SessionCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	return c.lru.Len()
}

// Set stores a session under key (pion/dtls's SessionStore). A session
// resumed again under the same key keeps the creation time of the first.
func (c *SessionCache) Set(key []byte, s dtls.Session) error {
	k := string(key)
	c.mu.Lock()
	c.init()
	now := c.now()
	created := now
	if el, ok := c.by[k]; ok {
		e := el.Value.(*cacheEntry)
		if string(e.s.Secret) == string(s.Secret) {
			created = e.created // the same master secret: a resumption
		}
	}
	c.put(k, created, cloneSession(s))
	over := c.trim()
	c.mu.Unlock()
	c.stored.Add(1)
	if c.db == nil {
		return nil
	}
	v, err := json.Marshal(storedSession{Created: created, Session: s})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSessionCache, err)
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(sessionBucket)
		for _, o := range over {
			if err := b.Delete([]byte(o)); err != nil {
				return err
			}
		}
		return b.Put(key, v)
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSessionCache, err)
	}
	return nil
}

// Get returns the session stored under key (pion/dtls's SessionStore). An
// unknown or expired key returns a zero Session and no error: pion then
// runs a full handshake.
func (c *SessionCache) Get(key []byte) (dtls.Session, error) {
	k := string(key)
	c.mu.Lock()
	c.init()
	el, ok := c.by[k]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		return dtls.Session{}, nil
	}
	e := el.Value.(*cacheEntry)
	if c.now().Sub(e.created) >= c.ttl {
		c.lru.Remove(el)
		delete(c.by, k)
		c.mu.Unlock()
		c.expired.Add(1)
		c.misses.Add(1)
		return dtls.Session{}, c.deleteFromFile([]string{k})
	}
	c.lru.MoveToFront(el)
	s := cloneSession(e.s)
	c.mu.Unlock()
	c.hits.Add(1)
	return s, nil
}

// Del forgets the session under key (pion/dtls's SessionStore; pion calls
// it after a fatal alert and when a server would not resume).
func (c *SessionCache) Del(key []byte) error {
	k := string(key)
	c.mu.Lock()
	c.init()
	if el, ok := c.by[k]; ok {
		c.lru.Remove(el)
		delete(c.by, k)
	}
	c.mu.Unlock()
	return c.deleteFromFile([]string{k})
}

// put inserts or replaces k at the front. c.mu is held (or c is not shared
// yet).
func (c *SessionCache) put(k string, created time.Time, s dtls.Session) {
	if el, ok := c.by[k]; ok {
		el.Value = &cacheEntry{key: k, created: created, s: s}
		c.lru.MoveToFront(el)
		return
	}
	c.by[k] = c.lru.PushFront(&cacheEntry{key: k, created: created, s: s})
}

// trim evicts the least recently used entries over the bound and returns
// their keys. c.mu is held.
func (c *SessionCache) trim() []string {
	var over []string
	for c.lru.Len() > c.max {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.by, e.key)
		over = append(over, e.key)
		c.evicted.Add(1)
	}
	return over
}

func (c *SessionCache) deleteFromFile(keys []string) error {
	if c.db == nil || len(keys) == 0 {
		return nil
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(sessionBucket)
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSessionCache, err)
	}
	return nil
}

func cloneSession(s dtls.Session) dtls.Session {
	c := s
	c.ID = append([]byte(nil), s.ID...)
	c.Secret = append([]byte(nil), s.Secret...)
	c.IdentityHint = append([]byte(nil), s.IdentityHint...)
	if s.PeerCertificates != nil {
		c.PeerCertificates = make([][]byte, len(s.PeerCertificates))
		for i, p := range s.PeerCertificates {
			c.PeerCertificates[i] = append([]byte(nil), p...)
		}
	}
	return c
}

var _ dtls.SessionStore = (*SessionCache)(nil)

// keyedSessions is a client's view of a SessionCache under a fixed key
// (Config.SessionKey) instead of pion's "address_servername".
type keyedSessions struct {
	c   *SessionCache
	key []byte
}

func (k keyedSessions) Set(_ []byte, s dtls.Session) error { return k.c.Set(k.key, s) }
func (k keyedSessions) Get([]byte) (dtls.Session, error)   { return k.c.Get(k.key) }
func (k keyedSessions) Del([]byte) error                   { return k.c.Del(k.key) }

// peek returns the session ID stored under key without counting a lookup
// or refreshing the entry (to tell afterwards whether a client resumed).
func (c *SessionCache) peek(key string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	if el, ok := c.by[key]; ok {
		return append([]byte(nil), el.Value.(*cacheEntry).s.ID...)
	}
	return nil
}
