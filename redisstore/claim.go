package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// Leases on queued requests in flight (issue 15, cluster mode). Every node's
// queue.Manager knows every record (it loads them at start and follows the
// change stream P q:log), but only one node may send a request and record
// its outcome:
//
//   - Put of a record in StateSending takes the lease P lease:q:<id> for
//     this node (a fencing token from P lease:seq) in the same script that
//     stores the record; the Queue renews it every LeaseTTL/3 until the
//     record is stored again. A node that dies stops renewing: after
//     LeaseTTL another node may take the request over.
//   - Every Put is refused (queue.ErrNotOwner) when the stored record is
//     already final, or when the lease is held by another grant than this
//     node's current one. So a node whose lease expired and was taken over
//     cannot overwrite the new holder's outcome (fencing), and no request is
//     reported twice.
//   - A final Put appends the id to P q:log, so waiters on other nodes learn
//     the outcome; an Add appends it too, so the other nodes queue the new
//     request (and one of them, the node holding the device, sends it).
//
// Keys: P lease:q:<id> string "<node> <token>" (PX LeaseTTL); P q:log stream
// {id}, about 50,000 entries.

// DefaultLeaseTTL is how long a request lease lives without renewal.
const DefaultLeaseTTL = 10 * time.Second

type claim struct {
	lease  Lease
	cancel context.CancelFunc
}

// queuePut: KEYS q, lease, lease:seq, q:log; ARGV id, record, mode (s:
// sending, q: queued, f: final), this grant's lease value or "", node, ttl
// ms, stream bound. Returns {token, holder}: token -1 final, -2 leased by
// holder, else the lease token (0 when no lease is held).
var queuePut = redis.NewScript(`
local function uv(s, i)
  local n, m = 0, 1
  while true do
    local b = string.byte(s, i)
    if not b then return n, i end
    i = i + 1
    n = n + (b % 128) * m
    if b < 128 then return n, i end
    m = m * 128
  end
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local _, i = uv(cur, 2)
  local l
  l, i = uv(cur, i)
  local st = string.byte(cur, i + l + 1)
  if st and st >= 3 then return {-1, 'final'} end
end
local l = redis.call('GET', KEYS[2])
if l and l ~= ARGV[4] then return {-2, l} end
local tok = 0
if ARGV[3] == 's' then
  if l then
    tok = tonumber(string.sub(l, string.find(l, ' ', 1, true) + 1))
    redis.call('PEXPIRE', KEYS[2], ARGV[6])
  else
    tok = redis.call('INCR', KEYS[3])
    redis.call('SET', KEYS[2], ARGV[5] .. ' ' .. tok, 'PX', ARGV[6])
  end
elseif l then
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == 'f' then redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'id', ARGV[1]) end
return {tok, ''}
`)

// SetLeaseTTL sets how long a request lease lives without renewal
// (DefaultLeaseTTL when not set; at least 300 ms).
func (q *Queue) SetLeaseTTL(d time.Duration) {
	if q == nil {
		return
	}
	q.mu.Lock()
	q.ttl = max(d, 300*time.Millisecond)
	q.mu.Unlock()
}

func (q *Queue) leaseTTL() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ttl <= 0 {
		return DefaultLeaseTTL
	}
	return q.ttl
}

func (q *Queue) put(ctx context.Context, rec *queue.Record) error {
	id := strconv.FormatUint(rec.ID, 10)
	mode := "q"
	switch {
	case rec.State == queue.StateSending:
		mode = "s"
	case rec.State.Final():
		mode = "f"
	}
	q.mu.Lock()
	mine := ""
	if c := q.claims[rec.ID]; c != nil {
		mine = c.lease.value()
	}
	q.mu.Unlock()
	ttl := q.leaseTTL()
	res, err := queuePut.Run(ctx, q.db.c, []string{q.db.Key("q"), q.db.Key("lease", "q", id), q.db.Key("lease:seq"), q.db.Key("q:log")},
		id, queue.EncodeRecord(nil, rec), mode, mine, q.db.node, ttl.Milliseconds(), maxStream).Slice()
	if err != nil {
		return wrap("queue put "+id, err)
	}
	tok, _ := res[0].(int64)
	switch tok {
	case -1:
		q.unclaim(rec.ID)
		return fmt.Errorf("queue: put %d: already final: %w", rec.ID, queue.ErrNotOwner)
	case -2:
		q.unclaim(rec.ID)
		holder, _ := res[1].(string)
		return fmt.Errorf("queue: put %d: leased by %s: %w", rec.ID, holder, queue.ErrNotOwner)
	}
	if mode != "s" {
		q.unclaim(rec.ID)
		return nil
	}
	q.keep(Lease{Name: "q:" + id, Owner: q.db.node, Token: uint64(tok), TTL: ttl})
	return nil
}

// keep renews l until unclaim (or Close).
func (q *Queue) keep(l Lease) {
	id, _ := strconv.ParseUint(l.Name[2:], 10, 64)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if c := q.claims[id]; c != nil {
		if c.lease == l {
			return // renewed by the script already; the loop goes on
		}
		c.cancel()
	}
	if q.claims == nil {
		q.claims = map[uint64]*claim{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.claims[id] = &claim{lease: l, cancel: cancel}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		t := time.NewTicker(l.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, l.TTL/3)
			err := q.db.Renew(rctx, l, l.TTL)
			rcancel()
			if err == nil || ctx.Err() != nil {
				continue
			}
			q.db.log.Warn("redisstore: request lease not renewed", "lease", l.Name, "token", l.Token, "err", err)
			if isLost(err) {
				q.mu.Lock()
				if c := q.claims[id]; c != nil && c.lease == l {
					delete(q.claims, id)
				}
				q.mu.Unlock()
				return
			}
		}
	}()
}

func isLost(err error) bool { return errors.Is(err, ErrLeaseLost) }

// unclaim stops renewing the lease of id (the script deleted it, or it is
// not ours any more).
func (q *Queue) unclaim(id uint64) {
	q.mu.Lock()
	c := q.claims[id]
	delete(q.claims, id)
	q.mu.Unlock()
	if c != nil {
		c.cancel()
	}
}

// Claims returns the request leases this node holds now.
func (q *Queue) Claims() []Lease {
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Lease, 0, len(q.claims))
	for _, c := range q.claims {
		out = append(out, c.lease)
	}
	return out
}

// Watch follows the queue's change stream: changed gets the ids of records
// added or finished by any node (this one included), in order; resync is
// called when entries may have been missed (after an outage or a gap), to
// walk the whole store again. Both run on the Watch goroutine, which Close
// stops; an error from either (Redis out of reach) makes the stream resync
// once Redis answers.
func (q *Queue) Watch(changed func(ids []uint64) error, resync func() error, log *slog.Logger) error {
	if err := q.open(); err != nil {
		return err
	}
	first := true
	f := &feed{db: q.db, stream: q.db.Key("q:log"), name: "queue", log: log,
		reload: func(context.Context) error {
			if first {
				first = false // the Manager has just loaded the store
				return nil
			}
			return resync()
		},
		apply: func(_ context.Context, msgs []redis.XMessage) error {
			ids := make([]uint64, 0, len(msgs))
			for _, m := range msgs {
				if id, err := strconv.ParseUint(field(m, "id"), 10, 64); err == nil {
					ids = append(ids, id)
				}
			}
			return changed(ids)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.start(ctx); err != nil {
		return err
	}
	q.mu.Lock()
	if q.closed || q.feed != nil {
		q.mu.Unlock()
		f.stop()
		return fmt.Errorf("redisstore: queue: Watch on a closed queue or twice")
	}
	q.feed = f
	q.mu.Unlock()
	return nil
}
