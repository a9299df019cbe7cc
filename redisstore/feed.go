package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/internal/backoff"
)

// feed keeps a node's in-memory copy of a shared table in step with Redis:
// every write to the table appends {op, id} to a change stream in the same
// Lua script, and the feed tails that stream (XREAD BLOCK) and re-reads
// the named rows. Entries say only which row changed, never its value, so
// applying one twice, or late, converges to what Redis holds.
//
// Start-up and every reconnection after an outage (and a gap, when the
// stream was trimmed past the last entry this node applied) do a full
// reload: the stream's last ID is read first, then the whole table, so
// changes made during the reload are replayed afterwards.
type feed struct {
	db     *DB
	stream string
	name   string // for logs ("registry")
	log    *slog.Logger
	// reload replaces the whole cache from Redis; apply re-reads the rows
	// of a batch of entries and updates the cache. Both run with mu held.
	reload func(ctx context.Context) error
	apply  func(ctx context.Context, msgs []redis.XMessage) error

	// mu: the feed holds it exclusively while it reads and applies;
	// local writers hold it shared across their write to Redis and to
	// the cache, so a value read by the feed never overwrites a newer
	// local write.
	mu   sync.RWMutex
	last string

	stats feedStats

	cancel context.CancelFunc
	done   chan struct{}
}

type feedStats struct {
	mu              sync.Mutex
	applied, reload uint64
	errors          uint64
	lastErr         string
}

// maxStream bounds a change stream (approximate trimming, XADD MAXLEN ~):
// a node that falls further behind reloads the whole table.
const maxStream = 50_000

// start loads the table and starts tailing; stop ends it.
func (f *feed) start(ctx context.Context) error {
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if err := f.resync(ctx); err != nil {
		return err
	}
	fctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go f.run(fctx)
	return nil
}

func (f *feed) stop() {
	if f.cancel != nil {
		f.cancel() // a blocked XREAD ends within feedBlock
		<-f.done
	}
}

// feedBlock is how long one XREAD waits for entries. go-redis cannot
// interrupt a blocked read (closing its connection meanwhile races), so
// this bounds how long stop waits.
const feedBlock = 200 * time.Millisecond

// lastID returns the ID of the stream's newest entry, "0-0" when empty.
func (f *feed) lastID(ctx context.Context) (string, error) {
	msgs, err := f.db.c.XRevRangeN(ctx, f.stream, "+", "-", 1).Result()
	if err != nil {
		return "", wrap(f.name+" feed", err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// firstID returns the ID of the stream's oldest entry, "" when empty.
func (f *feed) firstID(ctx context.Context) (string, error) {
	msgs, err := f.db.c.XRangeN(ctx, f.stream, "-", "+", 1).Result()
	if err != nil {
		return "", wrap(f.name+" feed", err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return msgs[0].ID, nil
}

func (f *feed) resync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	last, err := f.lastID(ctx)
	if err != nil {
		return err
	}
	if err := f.reload(ctx); err != nil {
		return err
	}
	f.last = last
	f.stats.mu.Lock()
	f.stats.reload++
	f.stats.mu.Unlock()
	return nil
}

// streamLess compares stream IDs "ms-seq".
func streamLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		return x < y
	}
	i, _ := strconv.ParseUint(as, 10, 64)
	j, _ := strconv.ParseUint(bs, 10, 64)
	return i < j
}

func (f *feed) run(ctx context.Context) {
	defer close(f.done)
	fails := 0 // failures in a row: the backoff's attempt
	broken := false
	lastGapCheck := time.Now()
	for ctx.Err() == nil {
		if broken || time.Since(lastGapCheck) > 5*time.Second {
			lastGapCheck = time.Now()
			need := broken
			if !need {
				first, err := f.firstID(ctx)
				if err == nil && first != "" && f.last != "0-0" && streamLess(f.last, first) {
					f.log.Warn("redisstore: change stream trimmed past this node; reloading", "table", f.name)
					need = true
				}
			}
			if need {
				if err := f.resync(ctx); err != nil {
					f.fail(ctx, err, &fails)
					continue
				}
				broken, fails = false, 0
			}
		}
		res, err := f.db.c.XRead(ctx, &redis.XReadArgs{Streams: []string{f.stream, f.last}, Count: 512, Block: feedBlock}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			broken = true
			f.fail(ctx, err, &fails)
			continue
		}
		for _, s := range res {
			if len(s.Messages) == 0 {
				continue
			}
			f.mu.Lock()
			err := f.apply(ctx, s.Messages)
			if err == nil {
				f.last = s.Messages[len(s.Messages)-1].ID
			}
			f.mu.Unlock()
			if err != nil {
				broken = true
				f.fail(ctx, err, &fails)
				break
			}
			f.stats.mu.Lock()
			f.stats.applied += uint64(len(s.Messages))
			f.stats.mu.Unlock()
		}
	}
}

// feedBackoff is the change feed's wait after failures in a row: 100 ms
// doubled up to 2 s.
var feedBackoff = backoff.Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second}

// fail counts err, logs it at the start of an outage and then every 30
// failures, and waits the backoff of the fails-th failure in a row.
func (f *feed) fail(ctx context.Context, err error, fails *int) {
	if ctx.Err() != nil {
		return
	}
	f.stats.mu.Lock()
	f.stats.errors++
	n := f.stats.errors
	f.stats.lastErr = err.Error()
	f.stats.mu.Unlock()
	// The first failure of an outage, then one line a minute (the feed
	// retries every 2 s).
	if *fails == 0 || n%30 == 0 {
		f.log.Warn("redisstore: change feed interrupted; reloading when Redis answers", "table", f.name, "failures", n, "err", err)
	}
	_ = backoff.Wait(ctx, feedBackoff.Delay(*fails)) // ctx ending ends the feed's loop
	*fails++
}

// FeedStats is what a store's change feed did.
type FeedStats struct {
	// Applied entries, full Reloads (start-up, reconnections, gaps),
	// Errors (reads that failed: Redis out of reach).
	Applied, Reloads, Errors uint64
	LastError                string
}

func (f *feed) snapshot() FeedStats {
	f.stats.mu.Lock()
	defer f.stats.mu.Unlock()
	return FeedStats{Applied: f.stats.applied, Reloads: f.stats.reload, Errors: f.stats.errors, LastError: f.stats.lastErr}
}

// field returns a string field of a stream entry.
func field(m redis.XMessage, k string) string {
	v, _ := m.Values[k].(string)
	return v
}

// errFeed wraps a feed's apply errors.
func errFeed(table string, err error) error { return fmt.Errorf("%s feed: %w", table, err) }
