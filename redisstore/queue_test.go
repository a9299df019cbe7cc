package redisstore_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue/storetest"
	"github.com/m2mbearer/m2mbearer/redisstore"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestQueueConformance runs the queue.Store suite against Redis; the
// restart is a Redis SIGKILL and restart from its AOF (appendfsync
// always), so "durable" means what production has.
func TestQueueConformance(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	prefixOf := map[queue.Store]string{}
	open := func(t *testing.T, prefix string) queue.Store {
		db := openDB(t, srv, prefix, "n")
		q, err := db.OpenQueue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		prefixOf[q] = prefix
		return q
	}
	storetest.Run(t, storetest.Factory{
		New: func(t *testing.T) queue.Store { return open(t, prefixes(t)) },
		Reopen: func(t *testing.T, s queue.Store) queue.Store {
			s.Close()
			srv.Kill()
			srv.Restart()
			return open(t, prefixOf[s])
		},
	})
}

// TestQueueOutage: with Redis down, Add fails with an error that says so
// (errors.Is ErrUnavailable, Unavailable() true), and works again once
// Redis is back, without a new Open.
func TestQueueOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	db := openDB(t, srv, "out:", "n")
	q, err := db.OpenQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id1, err := q.Add(storetest.Rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	_, err = q.Add(storetest.Rec("a", 2))
	var u interface{ Unavailable() bool }
	if !errors.Is(err, redisstore.ErrUnavailable) || !errors.As(err, &u) || !u.Unavailable() {
		t.Fatalf("Add while down: %v", err)
	}
	if _, err := q.Get(id1); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("Get while down: %v", err)
	}
	srv.Restart()
	id2, err := q.Add(storetest.Rec("a", 3))
	if err != nil || id2 <= id1 {
		t.Fatalf("Add after restart: %d %v", id2, err)
	}
	var got []int32
	q.ForEach(func(r *queue.Record) error { got = append(got, r.ContentFormat); return nil })
	if len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("records %v: the refused Add must not be there", got)
	}
}

// lostReply is a go-redis hook that lets the next script reach Redis and
// then reports the connection lost: the reply of a write that happened
// never arrives.
type lostReply struct{ armed bool }

func (h *lostReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if h.armed && (cmd.Name() == "evalsha" || cmd.Name() == "eval") && err == nil {
			h.armed = false
			return &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		}
		return err
	}
}
func (h *lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestQueueAddLostReply: an Add whose script ran but whose reply was lost
// is reported unavailable (the API answers 503), and its record is
// deleted before anything else is stored, so the refused request never
// runs.
func TestQueueAddLostReply(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	db := openDB(t, srv, "lost:", "n")
	h := &lostReply{}
	db.Client().AddHook(h)
	q, err := db.OpenQueue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.armed = true
	if _, err := q.Add(storetest.Rec("a", 1)); !errors.Is(err, redisstore.ErrUnavailable) {
		t.Fatalf("Add with a lost reply: %v", err)
	}
	if n, _ := q.Len(); n != 1 {
		t.Fatalf("the script ran: %d records, want 1", n)
	}
	if _, err := q.Add(storetest.Rec("a", 2)); err != nil {
		t.Fatal(err)
	}
	var got []int32
	q.ForEach(func(r *queue.Record) error { got = append(got, r.ContentFormat); return nil })
	if len(got) != 1 || got[0] != 2 {
		t.Fatalf("records %v: the refused Add must be gone", got)
	}
}
