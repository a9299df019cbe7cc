package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// Queue is a queue.Store in Redis: the durable request queue and the job
// results of lwm2m/queue (a record per request, in its final state until
// the Manager prunes it).
//
// Keys:
//
//	P q          hash   request id (decimal) -> queue.EncodeRecord record
//	P q:seq      string the id sequence (INCR; never reused)
//	P q:tok:<t>  string request id of Add token t, for 1 h (see below)
//
// Add is one Lua script: the id comes from INCR and the record is stored
// with it in the same step, so no crash can leave an id without its record
// or a record twice. When Add fails because Redis went away, its reply may
// have been lost after the script ran: the caller was told "not stored"
// (and answered 503) but the record exists. Each Add carries a random
// token the script keeps with the id for an hour; the store remembers the
// tokens of failed Adds and deletes their records, if they exist, as soon
// as Redis answers again (at the latest at Close), so a refused request is
// not run later. Only a crash of this process in that window leaves such a
// record; it then runs once when the queue is loaded again.
type Queue struct {
	db *DB

	mu     sync.Mutex
	closed bool
	doubt  []string // tokens of Adds whose outcome is unknown
	claims map[uint64]*claim
	ttl    time.Duration
	feed   *feed
	wg     sync.WaitGroup
}

var _ queue.Store = (*Queue)(nil)

// OpenQueue returns the deployment's request store.
func (d *DB) OpenQueue(ctx context.Context) (*Queue, error) {
	if d == nil || d.c == nil {
		return nil, ErrClosed
	}
	if err := d.Ping(ctx); err != nil {
		return nil, err
	}
	return &Queue{db: d}, nil
}

// queueAdd: KEYS q, q:seq, q:tok:<t>, q:log; ARGV record, stream bound (encoded with id 0: its
// second byte is the uvarint 0). Returns the id.
var queueAdd = redis.NewScript(`
local id = redis.call('INCR', KEYS[2])
local v, n = '', id
while n >= 128 do
  v = v .. string.char(n % 128 + 128)
  n = math.floor(n / 128)
end
v = v .. string.char(n)
local rec = string.sub(ARGV[1], 1, 1) .. v .. string.sub(ARGV[1], 3)
redis.call('HSET', KEYS[1], id, rec)
redis.call('SET', KEYS[3], id, 'EX', 3600)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'id', id)
return id
`)

func (q *Queue) open() error {
	if q == nil || q.db == nil {
		return queue.ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return queue.ErrClosed
	}
	return nil
}

func (q *Queue) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// Add implements queue.Store.
func (q *Queue) Add(rec *queue.Record) (uint64, error) {
	if err := q.open(); err != nil {
		return 0, err
	}
	ctx, cancel := q.ctx()
	defer cancel()
	q.settle(ctx)
	rec.ID = 0
	var tb [12]byte
	_, _ = rand.Read(tb[:])
	tok := hex.EncodeToString(tb[:])
	id, err := queueAdd.Run(ctx, q.db.c, []string{q.db.Key("q"), q.db.Key("q:seq"), q.db.Key("q:tok", tok), q.db.Key("q:log")},
		queue.EncodeRecord(nil, rec), maxStream).Uint64()
	if err != nil {
		err = wrap("queue add", err)
		var ue *UnavailableError
		if errors.As(err, &ue) {
			q.mu.Lock()
			if len(q.doubt) < 100_000 {
				q.doubt = append(q.doubt, tok)
			}
			q.mu.Unlock()
		}
		return 0, err
	}
	rec.ID, rec.Attempt.ID = id, id
	return id, nil
}

// settle deletes the records of Adds that failed with their outcome
// unknown, once Redis answers.
func (q *Queue) settle(ctx context.Context) {
	q.mu.Lock()
	toks := q.doubt
	q.doubt = nil
	q.mu.Unlock()
	var left []string
	for i, tok := range toks {
		k := q.db.Key("q:tok", tok)
		id, err := q.db.c.Get(ctx, k).Result()
		if err == nil {
			err = q.db.c.HDel(ctx, q.db.Key("q"), id).Err()
			if err == nil {
				q.db.log.Warn("redisstore: removed a request whose Add was refused but reached Redis", "id", id)
			}
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			left = append(left, toks[i:]...)
			break
		}
		_ = q.db.c.Del(ctx, k).Err()
	}
	if len(left) > 0 {
		q.mu.Lock()
		q.doubt = append(left, q.doubt...)
		q.mu.Unlock()
	}
}

// Put implements queue.Store. It is fenced (see claim.go): a record that
// is final in Redis is never written again, and a record leased by another
// node is not written at all; both are refused with an error wrapping
// queue.ErrNotOwner. Storing a record in StateSending takes the request's
// lease for this node (renewed until the next Put of the record); storing
// it in any other state gives the lease up. Final states are announced on
// the change stream.
func (q *Queue) Put(rec *queue.Record) error {
	if err := q.open(); err != nil {
		return err
	}
	ctx, cancel := q.ctx()
	defer cancel()
	return q.put(ctx, rec)
}

// Get implements queue.Store.
func (q *Queue) Get(id uint64) (*queue.Record, error) {
	if err := q.open(); err != nil {
		return nil, err
	}
	ctx, cancel := q.ctx()
	defer cancel()
	b, err := q.db.c.HGet(ctx, q.db.Key("q"), strconv.FormatUint(id, 10)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("queue: store get %d: %w", id, queue.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(fmt.Sprintf("queue get %d", id), err)
	}
	return queue.DecodeRecord(b)
}

// Delete implements queue.Store.
func (q *Queue) Delete(ids ...uint64) error {
	if err := q.open(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		q.unclaim(id)
	}
	ctx, cancel := q.ctx()
	defer cancel()
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = strconv.FormatUint(id, 10)
	}
	return wrap("queue delete", q.db.c.HDel(ctx, q.db.Key("q"), fields...).Err())
}

// ForEach implements queue.Store: every record, in id order.
func (q *Queue) ForEach(fn func(*queue.Record) error) error {
	if err := q.open(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q.settle(ctx)
	type kv struct {
		id  uint64
		rec string
	}
	var all []kv
	var cursor uint64
	for {
		page, next, err := q.db.c.HScan(ctx, q.db.Key("q"), cursor, "", 1000).Result()
		if err != nil {
			return wrap("queue walk", err)
		}
		for i := 0; i+1 < len(page); i += 2 {
			id, err := strconv.ParseUint(page[i], 10, 64)
			if err != nil {
				return fmt.Errorf("queue: store walk: field %q: %w", page[i], queue.ErrCorrupt)
			}
			all = append(all, kv{id, page[i+1]})
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(a.id, b.id) })
	all = slices.CompactFunc(all, func(a, b kv) bool { return a.id == b.id }) // HSCAN may repeat
	for _, e := range all {
		rec, err := queue.DecodeRecord([]byte(e.rec))
		if err != nil {
			return fmt.Errorf("queue: store walk: record %d: %w", e.id, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of records held.
func (q *Queue) Len() (int, error) {
	if err := q.open(); err != nil {
		return 0, err
	}
	ctx, cancel := q.ctx()
	defer cancel()
	n, err := q.db.c.HLen(ctx, q.db.Key("q")).Result()
	return int(n), wrap("queue len", err)
}

// Close implements queue.Store: it settles what it can and refuses
// further calls; the DB stays open.
func (q *Queue) Close() error {
	if q == nil || q.db == nil {
		return nil
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	claims := q.claims
	q.claims = nil
	f := q.feed
	q.mu.Unlock()
	for _, c := range claims {
		c.cancel()
	}
	if f != nil {
		f.stop()
	}
	q.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q.settle(ctx)
	return nil
}
