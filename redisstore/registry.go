package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// Registry is a registry.Store in Redis, shared by the gateway nodes of a
// deployment. Writes go to Redis in one Lua script each (atomic: the
// record, the endpoint index, the expiry set, the bound and the change
// stream move together); reads are served from an in-memory copy that a
// change feed keeps in step with every node's writes, so the server's hot
// path (Get, ByEndpoint on every Update and request) costs no round trip
// and keeps working while Redis is briefly away (writes then fail with
// ErrUnavailable: the server answers 5.03).
//
// Keys (P is the deployment prefix):
//
//	P reg       hash   location id (base 36) -> registry.MarshalRegistration record
//	P reg:ep    hash   endpoint name -> location id
//	P reg:exp   zset   location id, score = expiry in Unix microseconds
//	P reg:log   stream {op: a|u|d, id}: the change feed (about 50,000 entries kept)
type Registry struct {
	db    *DB
	opts  registry.Options
	dec   registry.AddrDecoder
	cache atomic.Pointer[registry.Memory] // replaced whole on reloads
	feed  feed
	seed  maphash.Seed
	locks [256]sync.Mutex

	mu     sync.Mutex
	closed bool
}

var _ registry.Store = (*Registry)(nil)

// RegistryOptions configure OpenRegistry.
type RegistryOptions struct {
	registry.Options
	// AddrDecoder rebuilds non-UDP addresses (sms.Addr); nil keeps
	// registry.StoredAddr.
	AddrDecoder registry.AddrDecoder
	// Logger; optional (the DB's by default).
	Logger *slog.Logger
}

// OpenRegistry loads the deployment's registrations into memory and
// starts following the changes other nodes make. Close stops it.
func (d *DB) OpenRegistry(ctx context.Context, o RegistryOptions) (*Registry, error) {
	if d == nil || d.c == nil {
		return nil, ErrClosed
	}
	opts := o.Options
	var f cfgcheck.Fields
	cfgcheck.Default(&f, "MaxRegistrations", &opts.MaxRegistrations, 1_000_000)
	cfgcheck.NonNegative(&f, "Grace", opts.Grace)
	if err := f.Err(ErrInvalidOption, "RegistryOptions"); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = d.log
	}
	r := &Registry{db: d, opts: opts, dec: o.AddrDecoder, seed: maphash.MakeSeed()}
	// The copy is bounded by the shared bound, which the scripts enforce.
	cache, err := r.newCache()
	if err != nil {
		return nil, err
	}
	r.cache.Store(cache)
	r.feed = feed{db: d, stream: d.Key("reg:log"), name: "registry", log: log, reload: r.reload, apply: r.apply}
	if err := r.feed.start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// newCache is an empty local copy: bounded by the shared bound (which the
// scripts enforce), not by its own.
func (r *Registry) newCache() (*registry.Memory, error) {
	return registry.NewMemory(registry.Options{MaxRegistrations: 1 << 62, Grace: r.opts.Grace})
}

func (r *Registry) keys() []string {
	return []string{r.db.Key("reg"), r.db.Key("reg:ep"), r.db.Key("reg:exp"), r.db.Key("reg:log")}
}

// reload replaces the copy by what Redis holds (feed.mu held).
func (r *Registry) reload(ctx context.Context) error {
	fresh, err := r.newCache()
	if err != nil {
		return err
	}
	var cursor uint64
	for {
		kv, next, err := r.db.c.HScan(ctx, r.db.Key("reg"), cursor, "", 1000).Result()
		if err != nil {
			return wrap("registry load", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			reg, err := registry.UnmarshalRegistration([]byte(kv[i+1]), r.dec)
			if err != nil {
				r.feed.log.Warn("redisstore: skipping corrupt registration", "id", kv[i], "err", err)
				continue
			}
			if _, err := fresh.Add(ctx, reg); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if old := r.cache.Swap(fresh); old != nil {
		old.Close()
	}
	return nil
}

// apply re-reads the registrations a batch of change entries names.
func (r *Registry) apply(ctx context.Context, msgs []redis.XMessage) error {
	ids := make([]string, 0, len(msgs))
	seen := map[string]bool{}
	for _, m := range msgs {
		if id := field(m, "id"); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	vals, err := r.db.c.HMGet(ctx, r.db.Key("reg"), ids...).Result()
	if err != nil {
		return wrap("registry feed", err)
	}
	for i, v := range vals {
		id, ok := registry.ParseID(ids[i])
		if !ok {
			continue
		}
		s, _ := v.(string)
		if s == "" {
			_, _ = r.cache.Load().Remove(ctx, id)
			continue
		}
		reg, err := registry.UnmarshalRegistration([]byte(s), r.dec)
		if err != nil {
			r.feed.log.Warn("redisstore: corrupt registration in feed", "id", ids[i], "err", err)
			continue
		}
		if cur, ok := r.cache.Load().Get(id); ok && Same(cur, reg) {
			continue
		}
		if _, err := r.cache.Load().Add(ctx, reg); err != nil {
			return errFeed("registry", err)
		}
	}
	return nil
}

// Same reports whether two registrations encode alike.
func Same(a, b *registry.Registration) bool {
	return string(registry.MarshalRegistration(nil, a)) == string(registry.MarshalRegistration(nil, b))
}

func (r *Registry) stripe(ep string) *sync.Mutex {
	return &r.locks[maphash.String(r.seed, ep)%uint64(len(r.locks))]
}

// begin checks the store is open and ctx live, and takes the feed's
// shared lock (released by the returned func).
func (r *Registry) begin(ctx context.Context) (func(), error) {
	if r == nil || r.db == nil {
		return nil, registry.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, registry.ErrClosed
	}
	r.feed.mu.RLock()
	return r.feed.mu.RUnlock, nil
}

// expiryMicros is the zset score of a registration.
func expiryMicros(reg *registry.Registration) string {
	return strconv.FormatInt(reg.ExpiresAt().UnixNano()/1000, 10)
}

// luaEndpoint reads the endpoint name out of a registration record
// (version byte, uvarint ID, uvarint length, name): the scripts need it to
// keep the endpoint index right when they remove a record by ID.
const luaEndpoint = `
local function uvarint(s, pos)
  local x, mul = 0, 1
  while true do
    local b = string.byte(s, pos)
    pos = pos + 1
    x = x + (b % 128) * mul
    if b < 128 then return x, pos end
    mul = mul * 128
  end
end
local function endpoint(rec)
  local _, p = uvarint(rec, 2)
  local n
  n, p = uvarint(rec, p)
  return string.sub(rec, p, p + n - 1)
end
`

// addScript: KEYS reg, reg:ep, reg:exp, reg:log; ARGV id, endpoint,
// record, score, max, fresh, maxlen. Returns {status, previous record}:
// status "ok", "full" or "dup" (a fresh id already in use).
var addScript = redis.NewScript(luaEndpoint + `
local id, ep, rec, score, max, fresh, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local same = redis.call('HGET', KEYS[1], id)
if same then
  if fresh == '1' then return {'dup', false} end
  local sep = endpoint(same)
  if sep ~= ep and redis.call('HGET', KEYS[2], sep) == id then redis.call('HDEL', KEYS[2], sep) end
end
local prevID = redis.call('HGET', KEYS[2], ep)
local prev = false
if prevID then
  prev = redis.call('HGET', KEYS[1], prevID)
  if prevID ~= id then
    redis.call('HDEL', KEYS[1], prevID)
    redis.call('ZREM', KEYS[3], prevID)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'op', 'd', 'id', prevID)
  end
elseif not same and redis.call('HLEN', KEYS[1]) >= max then
  return {'full', false}
end
redis.call('HSET', KEYS[1], id, rec)
redis.call('HSET', KEYS[2], ep, id)
redis.call('ZADD', KEYS[3], score, id)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'op', 'a', 'id', id)
return {'ok', prev}
`)

// updateScript: compare-and-set of one record. ARGV id, old record, new
// record, score, maxlen. Returns 1, 0 (changed meanwhile) or -1 (gone).
var updateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return -1 end
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'op', 'u', 'id', ARGV[1])
return 1
`)

// removeScript: ARGV id, maxlen. Returns the removed record or nil.
var removeScript = redis.NewScript(luaEndpoint + `
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return false end
local ep = endpoint(rec)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], ep) == ARGV[1] then redis.call('HDEL', KEYS[2], ep) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'op', 'd', 'id', ARGV[1])
return rec
`)

// expireScript: ARGV limit (µs), max, maxlen. Removes up to max records
// whose expiry is not after limit, earliest first, and returns them: only
// one node gets each expired registration.
var expireScript = redis.NewScript(luaEndpoint + `
local ids = redis.call('ZRANGE', KEYS[3], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[1], id)
  redis.call('ZREM', KEYS[3], id)
  if rec then
    local ep = endpoint(rec)
    redis.call('HDEL', KEYS[1], id)
    if redis.call('HGET', KEYS[2], ep) == id then redis.call('HDEL', KEYS[2], ep) end
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 'id', id)
    out[#out + 1] = rec
  end
end
return out
`)

func freshID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// Add implements registry.Store.
func (r *Registry) Add(ctx context.Context, reg *registry.Registration) (*registry.Registration, error) {
	done, err := r.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	l := r.stripe(reg.Endpoint)
	l.Lock()
	defer l.Unlock()
	fresh := reg.ID == 0
	for range 8 {
		if fresh {
			reg.ID = freshID()
		}
		res, err := addScript.Run(ctx, r.db.c, r.keys(), registry.FormatID(reg.ID), reg.Endpoint,
			registry.MarshalRegistration(nil, reg), expiryMicros(reg), r.opts.MaxRegistrations, boolArg(fresh), maxStream).Slice()
		if err != nil {
			if fresh {
				reg.ID = 0
			}
			return nil, wrap("registry add "+reg.Endpoint, err)
		}
		switch res[0] {
		case "dup":
			continue
		case "full":
			if fresh {
				reg.ID = 0
			}
			return nil, registry.ErrFull
		}
		var prev *registry.Registration
		if s, ok := res[1].(string); ok && s != "" {
			if prev, err = registry.UnmarshalRegistration([]byte(s), r.dec); err != nil {
				r.feed.log.Warn("redisstore: replaced a corrupt registration", "endpoint", reg.Endpoint, "err", err)
				prev = nil
			}
		}
		if prev != nil && prev.ID != reg.ID {
			_, _ = r.cache.Load().Remove(ctx, prev.ID)
		}
		if _, err := r.cache.Load().Add(ctx, reg); err != nil {
			return nil, err
		}
		return prev, nil
	}
	return nil, fmt.Errorf("redisstore: registry add %s: no free id", reg.Endpoint)
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// read returns the shared record of id and its decoded form.
func (r *Registry) read(ctx context.Context, id uint64) (string, *registry.Registration, error) {
	s, err := r.db.c.HGet(ctx, r.db.Key("reg"), registry.FormatID(id)).Result()
	if errors.Is(err, redis.Nil) {
		_, _ = r.cache.Load().Remove(ctx, id) // a change the feed has not brought yet
		return "", nil, registry.ErrNotFound
	}
	if err != nil {
		return "", nil, wrap("registry read", err)
	}
	reg, err := registry.UnmarshalRegistration([]byte(s), r.dec)
	if err != nil {
		return "", nil, err
	}
	return s, reg, nil
}

// Update implements registry.Store. It reads the shared record and writes
// fn's result only if nobody changed it meanwhile (compare-and-set),
// calling fn again otherwise.
func (r *Registry) Update(ctx context.Context, id uint64, fn func(*registry.Registration) (*registry.Registration, error)) (*registry.Registration, *registry.Registration, error) {
	done, err := r.begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	for range 16 {
		raw, old, err := r.read(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		cur, stored, err := r.updateOnce(ctx, id, raw, old, fn)
		if err != nil || stored {
			return old, cur, err
		}
	}
	return nil, nil, fmt.Errorf("redisstore: registry update %d: too many concurrent changes", id)
}

func (r *Registry) updateOnce(ctx context.Context, id uint64, raw string, old *registry.Registration, fn func(*registry.Registration) (*registry.Registration, error)) (*registry.Registration, bool, error) {
	l := r.stripe(old.Endpoint)
	l.Lock()
	defer l.Unlock()
	cur, err := fn(old)
	if err != nil {
		return nil, true, err
	}
	cur.ID, cur.Endpoint = old.ID, old.Endpoint
	n, err := updateScript.Run(ctx, r.db.c, r.keys(), registry.FormatID(id), raw,
		registry.MarshalRegistration(nil, cur), expiryMicros(cur), maxStream).Int()
	if err != nil {
		return nil, true, wrap("registry update "+old.Endpoint, err)
	}
	switch n {
	case -1:
		_, _ = r.cache.Load().Remove(ctx, id)
		return nil, true, registry.ErrNotFound
	case 0:
		return nil, false, nil
	}
	if _, err := r.cache.Load().Add(ctx, cur); err != nil {
		return nil, true, err
	}
	return cur, true, nil
}

// Remove implements registry.Store.
func (r *Registry) Remove(ctx context.Context, id uint64) (*registry.Registration, error) {
	done, err := r.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	s, err := removeScript.Run(ctx, r.db.c, r.keys(), registry.FormatID(id), maxStream).Text()
	if errors.Is(err, redis.Nil) {
		_, _ = r.cache.Load().Remove(ctx, id)
		return nil, registry.ErrNotFound
	}
	if err != nil {
		return nil, wrap("registry remove", err)
	}
	_, _ = r.cache.Load().Remove(ctx, id)
	return registry.UnmarshalRegistration([]byte(s), r.dec)
}

// Expire implements registry.Store: the script removes the due records
// atomically, so of several nodes expiring at once each registration is
// returned by exactly one.
func (r *Registry) Expire(ctx context.Context, now time.Time, max int) ([]*registry.Registration, error) {
	done, err := r.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if max <= 0 {
		return nil, nil
	}
	limit := now.Add(-r.opts.Grace).UnixNano() / 1000
	recs, err := expireScript.Run(ctx, r.db.c, r.keys(), strconv.FormatInt(limit, 10), max, maxStream).StringSlice()
	if err != nil {
		return nil, wrap("registry expire", err)
	}
	out := make([]*registry.Registration, 0, len(recs))
	for _, s := range recs {
		reg, err := registry.UnmarshalRegistration([]byte(s), r.dec)
		if err != nil {
			r.feed.log.Warn("redisstore: expired a corrupt registration", "err", err)
			continue
		}
		_, _ = r.cache.Load().Remove(ctx, reg.ID)
		out = append(out, reg)
	}
	return out, nil
}

// copy returns the in-memory copy (replaced on reloads).
func (r *Registry) copy() *registry.Memory {
	if r == nil || r.db == nil {
		return nil
	}
	return r.cache.Load()
}

// Get implements registry.Store (from the node's copy).
func (r *Registry) Get(id uint64) (*registry.Registration, bool) {
	if c := r.copy(); c != nil {
		return c.Get(id)
	}
	return nil, false
}

// ByEndpoint implements registry.Store (from the node's copy).
func (r *Registry) ByEndpoint(name string) (*registry.Registration, bool) {
	if c := r.copy(); c != nil {
		return c.ByEndpoint(name)
	}
	return nil, false
}

// Len implements registry.Store (from the node's copy).
func (r *Registry) Len() int {
	if c := r.copy(); c != nil {
		return c.Len()
	}
	return 0
}

// Range implements registry.Store (over the node's copy).
func (r *Registry) Range(fn func(*registry.Registration) bool) {
	if c := r.copy(); c != nil {
		c.Range(fn)
	}
}

// NextExpiry implements registry.Store (from the node's copy).
func (r *Registry) NextExpiry() (time.Time, bool) {
	if c := r.copy(); c != nil {
		return c.NextExpiry()
	}
	return time.Time{}, false
}

// FeedStats says what the change feed did (reloads after outages).
func (r *Registry) FeedStats() FeedStats {
	if r == nil || r.db == nil {
		return FeedStats{}
	}
	return r.feed.snapshot()
}

// Close implements registry.Store: it stops the feed; the DB stays open.
func (r *Registry) Close() error {
	if r == nil || r.db == nil {
		return nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.feed.stop()
	return nil
}
