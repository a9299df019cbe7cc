package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
)

// Outbox is an outbox.Backend in Redis: the durable SMS outbox, one entry
// per key so any node can read an entry by its id, indexed per SIM so the
// node a SIM is plugged into loads that SIM's entries (and another node can
// take a dead node's SIM over: cluster mode).
//
// Keys:
//
//	P ob:seq          string entry id sequence (INCR; never reused)
//	P ob:e:<id>       string outbox.Entry.Marshal record
//	P ob:sim:<sim>    set    ids of the entries sent from that SIM ("any": not chosen yet)
//	P ob:mr           hash   outbox.MRKey / MRToKey -> outbox.RefValue (status report correlation)
//
// Update is a compare-and-set in one Lua script: the entry, its SIM index
// and its report references change together or not at all, so a crash
// never leaves a segment recorded as accepted without the reference its
// status report is found by, nor an entry removed with references still
// pointing to it. Updates of one entry on this node are serialised (commit
// order is the order the Outbox took them).
type Outbox struct {
	db   *DB
	sims []string
	seed maphash.Seed
	lock [64]sync.Mutex

	mu    sync.Mutex
	doubt []uint64 // ids of Adds whose outcome is unknown (deleted when Redis answers)
}

var _ outbox.Backend = (*Outbox)(nil)

// Outbox returns the outbox backend of the SIMs sims (E.164 with "+"):
// Load returns their entries and those no SIM was chosen for yet.
func (d *DB) Outbox(sims []string) *Outbox {
	return &Outbox{db: d, sims: append([]string(nil), sims...), seed: maphash.MakeSeed()}
}

func simOf(from string) string {
	if from == "" {
		return "any"
	}
	return from
}

func (o *Outbox) entryKey(id uint64) string { return o.db.Key("ob:e", strconv.FormatUint(id, 10)) }

func (o *Outbox) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (o *Outbox) ok() error {
	if o == nil || o.db == nil || o.db.c == nil {
		return outbox.ErrClosed
	}
	return nil
}

// Load implements outbox.Backend.
func (o *Outbox) Load(fn func(*outbox.Entry) error) error {
	if err := o.ok(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o.settle(ctx)
	for _, sim := range append(append([]string(nil), o.sims...), "any") {
		ids, err := o.db.c.SMembers(ctx, o.db.Key("ob:sim", sim)).Result()
		if err != nil {
			return wrap("outbox load", err)
		}
		for i := 0; i < len(ids); i += 500 {
			chunk := ids[i:min(i+500, len(ids))]
			keys := make([]string, len(chunk))
			for j, id := range chunk {
				keys[j] = o.db.Key("ob:e", id)
			}
			vals, err := o.db.c.MGet(ctx, keys...).Result()
			if err != nil {
				return wrap("outbox load", err)
			}
			for j, v := range vals {
				s, ok := v.(string)
				if !ok {
					continue // removed meanwhile; the index is cleaned with the entry
				}
				e, err := outbox.UnmarshalEntry([]byte(s))
				if err != nil {
					return fmt.Errorf("entry %s: %w", chunk[j], err)
				}
				if err := fn(e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Add implements outbox.Backend.
func (o *Outbox) Add(e *outbox.Entry) error {
	if err := o.ok(); err != nil {
		return err
	}
	ctx, cancel := o.ctx()
	defer cancel()
	o.settle(ctx)
	id, err := o.db.c.Incr(ctx, o.db.Key("ob:seq")).Uint64()
	if err != nil {
		return wrap("outbox add", err)
	}
	e.ID = id
	_, err = o.db.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, o.entryKey(id), e.Marshal(), 0)
		p.SAdd(ctx, o.db.Key("ob:sim", simOf(e.From)), id)
		return nil
	})
	if err != nil {
		err = wrap("outbox add", err)
		var ue *UnavailableError
		if errors.As(err, &ue) {
			// The transaction may have run with its reply lost: the
			// caller is told the datagram was not stored, so it must not
			// be sent later.
			o.mu.Lock()
			o.doubt = append(o.doubt, id)
			o.mu.Unlock()
		}
		e.ID = 0
		return err
	}
	return nil
}

// settle removes the entries of Adds that failed with their outcome
// unknown, once Redis answers.
func (o *Outbox) settle(ctx context.Context) {
	o.mu.Lock()
	ids := o.doubt
	o.doubt = nil
	o.mu.Unlock()
	for i, id := range ids {
		if _, err := o.remove(ctx, id); err != nil && !errors.Is(err, outbox.ErrNotFound) {
			o.mu.Lock()
			o.doubt = append(o.doubt, ids[i:]...)
			o.mu.Unlock()
			return
		}
	}
}

// Get implements outbox.Backend.
func (o *Outbox) Get(id uint64) (*outbox.Entry, error) {
	if err := o.ok(); err != nil {
		return nil, err
	}
	ctx, cancel := o.ctx()
	defer cancel()
	return o.get(ctx, id)
}

func (o *Outbox) get(ctx context.Context, id uint64) (*outbox.Entry, error) {
	b, err := o.db.c.Get(ctx, o.entryKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %d", outbox.ErrNotFound, id)
	}
	if err != nil {
		return nil, wrap("outbox get", err)
	}
	return outbox.UnmarshalEntry(b)
}

// outboxUpdate: KEYS entry, mr hash, old SIM set, new SIM set; ARGV old
// record, new record ("" removes the entry), id (decimal), id (8 bytes),
// n refs to set then n key/value pairs, m refs to drop then m keys (each
// dropped only while it points to this id). Returns 1, 0 (changed
// meanwhile) or -1 (gone).
var outboxUpdate = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if ARGV[1] ~= '' and cur ~= ARGV[1] then return 0 end
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2
end
local m = tonumber(ARGV[i]); i = i + 1
for _ = 1, m do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v and string.sub(v, 1, 8) == ARGV[4] then redis.call('HDEL', KEYS[2], ARGV[i]) end
  i = i + 1
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('SREM', KEYS[4], ARGV[3])
  return 1
end
redis.call('SET', KEYS[1], ARGV[2])
if KEYS[3] ~= KEYS[4] then
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[4], ARGV[3])
end
return 1
`)

func (o *Outbox) stripe(id uint64) *sync.Mutex {
	return &o.lock[maphash.Comparable(o.seed, id)%uint64(len(o.lock))]
}

// Update implements outbox.Backend.
func (o *Outbox) Update(id uint64, fn func(*outbox.Entry) error) (*outbox.Entry, bool, error) {
	if err := o.ok(); err != nil {
		return nil, false, err
	}
	l := o.stripe(id)
	l.Lock()
	defer l.Unlock()
	ctx, cancel := o.ctx()
	defer cancel()
	for range 16 {
		raw, err := o.db.c.Get(ctx, o.entryKey(id)).Result()
		if errors.Is(err, redis.Nil) {
			return nil, false, fmt.Errorf("%w: %d", outbox.ErrNotFound, id)
		}
		if err != nil {
			return nil, false, wrap("outbox update", err)
		}
		before, err := outbox.UnmarshalEntry([]byte(raw))
		if err != nil {
			return nil, false, err
		}
		e, _ := outbox.UnmarshalEntry([]byte(raw))
		if err := fn(e); err != nil {
			return nil, false, err
		}
		done := e.Done()
		args := []any{raw, "", strconv.FormatUint(id, 10), string(outbox.RefValue(id, 0)[:8])}
		var drop []string
		refs := outbox.NewRefs(before, e)
		if done {
			refs = nil
			drop = outbox.RefsOf(e)
		} else {
			args[1] = e.Marshal()
		}
		args = append(args, len(refs))
		for k, v := range refs {
			args = append(args, k, v)
		}
		args = append(args, len(drop))
		for _, k := range drop {
			args = append(args, k)
		}
		keys := []string{o.entryKey(id), o.db.Key("ob:mr"), o.db.Key("ob:sim", simOf(before.From)), o.db.Key("ob:sim", simOf(e.From))}
		n, err := outboxUpdate.Run(ctx, o.db.c, keys, args...).Int()
		if err != nil {
			return nil, false, wrap("outbox update", err)
		}
		switch n {
		case -1:
			return nil, false, fmt.Errorf("%w: %d", outbox.ErrNotFound, id)
		case 1:
			return e, done, nil
		}
	}
	return nil, false, fmt.Errorf("redisstore: outbox update %d: too many concurrent changes", id)
}

// Remove implements outbox.Backend.
func (o *Outbox) Remove(id uint64) (*outbox.Entry, error) {
	if err := o.ok(); err != nil {
		return nil, err
	}
	l := o.stripe(id)
	l.Lock()
	defer l.Unlock()
	ctx, cancel := o.ctx()
	defer cancel()
	return o.remove(ctx, id)
}

func (o *Outbox) remove(ctx context.Context, id uint64) (*outbox.Entry, error) {
	e, err := o.get(ctx, id)
	if err != nil {
		return nil, err
	}
	args := []any{"", "", strconv.FormatUint(id, 10), string(outbox.RefValue(id, 0)[:8]), 0}
	drop := outbox.RefsOf(e)
	args = append(args, len(drop))
	for _, k := range drop {
		args = append(args, k)
	}
	sk := o.db.Key("ob:sim", simOf(e.From))
	n, err := outboxUpdate.Run(ctx, o.db.c, []string{o.entryKey(id), o.db.Key("ob:mr"), sk, sk}, args...).Int()
	if err != nil {
		return nil, wrap("outbox remove", err)
	}
	if n == -1 {
		return nil, fmt.Errorf("%w: %d", outbox.ErrNotFound, id)
	}
	return e, nil
}

// Lookup implements outbox.Backend.
func (o *Outbox) Lookup(from, to string, mr uint8) (uint64, int, error) {
	if err := o.ok(); err != nil {
		return 0, -1, err
	}
	ctx, cancel := o.ctx()
	defer cancel()
	var v []byte
	var err error
	if to != "" {
		v, err = o.db.c.HGet(ctx, o.db.Key("ob:mr"), outbox.MRToKey(from, to, mr)).Bytes()
	}
	if to == "" || errors.Is(err, redis.Nil) {
		v, err = o.db.c.HGet(ctx, o.db.Key("ob:mr"), outbox.MRKey(from, mr)).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return 0, -1, nil
	}
	if err != nil {
		return 0, -1, wrap("outbox lookup", err)
	}
	id, seg, ok := outbox.ParseRef(v)
	if !ok {
		return 0, -1, nil
	}
	return id, seg, nil
}

// Close implements outbox.Backend: it settles what it can; the DB stays
// open.
func (o *Outbox) Close() error {
	if o.ok() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	o.settle(ctx)
	return nil
}
