package redisstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// SMSState is an sms.StateStore in Redis: the daily SMS budgets are the
// deployment's (every node spends from the same counters, checked and
// added in one Lua script, so nodes spending at once never pass a limit);
// the inbox is this node's (the SIMs whose SMS it receives are plugged
// into it).
//
// Keys:
//
//	P sms:budget:<day>         hash   peer number or "*" -> segments spent (expires after 3 days)
//	P sms:inbox:<node>         hash   id -> uvarint length + SIM + TPDU
//	P sms:inbox:<node>:seq     string inbox id sequence
type SMSState struct{ db *DB }

var _ sms.StateStore = (*SMSState)(nil)

// SMSState returns the deployment's SMS budgets and this node's inbox.
func (d *DB) SMSState() *SMSState { return &SMSState{db: d} }

func (s *SMSState) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (s *SMSState) ok() error {
	if s == nil || s.db == nil || s.db.c == nil {
		return ErrClosed
	}
	return nil
}

var inboxAdd = redis.NewScript(`
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], id, ARGV[1])
return id
`)

// StoreSegment implements sms.StateStore.
func (s *SMSState) StoreSegment(sim string, tpdu []byte) (uint64, error) {
	if err := s.ok(); err != nil {
		return 0, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	v := binary.AppendUvarint(nil, uint64(len(sim)))
	v = append(append(v, sim...), tpdu...)
	k := s.db.Key("sms:inbox", s.db.node)
	id, err := inboxAdd.Run(ctx, s.db.c, []string{k, k + ":seq"}, v).Uint64()
	return id, wrap("sms inbox store", err)
}

// DeleteSegments implements sms.StateStore.
func (s *SMSState) DeleteSegments(ids []uint64) error {
	if err := s.ok(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	f := make([]string, len(ids))
	for i, id := range ids {
		f[i] = strconv.FormatUint(id, 10)
	}
	return wrap("sms inbox delete", s.db.c.HDel(ctx, s.db.Key("sms:inbox", s.db.node), f...).Err())
}

// Segments implements sms.StateStore.
func (s *SMSState) Segments() ([]sms.StoredSegment, error) {
	if err := s.ok(); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	all, err := s.db.c.HGetAll(ctx, s.db.Key("sms:inbox", s.db.node)).Result()
	if err != nil {
		return nil, wrap("sms inbox load", err)
	}
	out := make([]sms.StoredSegment, 0, len(all))
	for k, v := range all {
		id, err := strconv.ParseUint(k, 10, 64)
		n, w := binary.Uvarint([]byte(v))
		if err != nil || w <= 0 || n > uint64(len(v)-w) {
			return nil, fmt.Errorf("redisstore: sms inbox record %q is corrupt", k)
		}
		out = append(out, sms.StoredSegment{ID: id, SIM: v[w : w+int(n)], TPDU: []byte(v[w+int(n):])})
	}
	slices.SortFunc(out, func(a, b sms.StoredSegment) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// budgetSpend: KEYS day hash; ARGV peer, n, perDevice, perDeployment.
// Returns {0|1|2, device count, deployment count}: 1 device budget, 2
// deployment budget exceeded (counts before), 0 spent (counts after).
var budgetSpend = redis.NewScript(`
local n, perDev, perDep = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local dev = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local dep = tonumber(redis.call('HGET', KEYS[1], '*') or '0')
if perDev > 0 and dev + n > perDev then return {1, dev, dep} end
if perDep > 0 and dep + n > perDep then return {2, dev, dep} end
dev, dep = math.max(0, dev + n), math.max(0, dep + n)
redis.call('HSET', KEYS[1], ARGV[1], dev, '*', dep)
redis.call('EXPIRE', KEYS[1], 259200)
return {0, dev, dep}
`)

// Spend implements sms.StateStore.
func (s *SMSState) Spend(day, peer string, n, perDevice, perDeployment int) (int, int, error) {
	if err := s.ok(); err != nil {
		return 0, 0, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := budgetSpend.Run(ctx, s.db.c, []string{s.db.Key("sms:budget", day)}, peer, n, perDevice, perDeployment).Int64Slice()
	if err != nil {
		return 0, 0, wrap("sms budget", err)
	}
	switch r[0] {
	case 1:
		return 0, 0, &sms.BudgetError{Scope: "device", Peer: peer, Limit: perDevice, Used: int(r[1]), Need: n}
	case 2:
		return 0, 0, &sms.BudgetError{Scope: "deployment", Peer: peer, Limit: perDeployment, Used: int(r[2]), Need: n}
	}
	return int(r[1]), int(r[2]), nil
}

// Used implements sms.StateStore.
func (s *SMSState) Used(day, who string) (int, error) {
	if err := s.ok(); err != nil {
		return 0, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	n, err := s.db.c.HGet(ctx, s.db.Key("sms:budget", day), who).Int()
	if err == redis.Nil {
		return 0, nil
	}
	return n, wrap("sms budget", err)
}

// Close implements sms.StateStore (the DB stays open).
func (s *SMSState) Close() error { return nil }

// RateLimiter is an sms.RateLimiter shared by the nodes: one token bucket
// per destination in Redis, taken from in one Lua script.
//
// Keys:
//
//	P sms:rate:<destination>  hash {t: tokens, at: ms} (expires when full again)
type RateLimiter struct {
	db    *DB
	rate  float64
	burst int
}

var _ sms.RateLimiter = (*RateLimiter)(nil)

// RateLimiter returns a shared limiter of rate segments a second and
// burst per destination (rate 0: no limit).
func (d *DB) RateLimiter(rate float64, burst int) *RateLimiter {
	if burst <= 0 {
		burst = 1
	}
	return &RateLimiter{db: d, rate: rate, burst: burst}
}

// rateTake: KEYS bucket; ARGV rate, burst, n, now (ms). Returns {1, 0} or
// {0, wait ms}. Same rule as the in-memory limiter: a datagram larger
// than the burst goes when the bucket is full, leaving it in debt.
var rateTake = redis.NewScript(`
local rate, burst, n, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = tonumber(redis.call('HGET', KEYS[1], 't') or ARGV[2])
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or ARGV[4])
t = math.min(burst, t + math.max(0, now - at) / 1000 * rate)
local need = math.min(n, burst)
local ttl = math.ceil((burst + n) / rate * 1000) + 1000
if t >= need then
  redis.call('HSET', KEYS[1], 't', tostring(t - n), 'at', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
redis.call('HSET', KEYS[1], 't', tostring(t), 'at', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return {0, math.ceil((need - t) / rate * 1000)}
`)

// Take implements sms.RateLimiter.
func (l *RateLimiter) Take(key string, n int, now time.Time) (bool, time.Duration, error) {
	if l == nil || l.db == nil || l.db.c == nil {
		return false, 0, ErrClosed
	}
	if l.rate <= 0 {
		return true, 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := rateTake.Run(ctx, l.db.c, []string{l.db.Key("sms:rate", key)},
		strconv.FormatFloat(l.rate, 'g', -1, 64), l.burst, n, now.UnixMilli()).Int64Slice()
	if err != nil {
		return false, 0, wrap("sms rate", err)
	}
	return r[0] == 1, time.Duration(r[1]) * time.Millisecond, nil
}
