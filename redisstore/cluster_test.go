package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue/storetest"
	"github.com/m2mbearer/m2mbearer/redisstore"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestNodes: a heartbeat makes a node alive for its TTL; after the TTL
// (or Leave) it is listed as down, with its last description.
func TestNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openDB(t, srv, "nodes:", "gw-a"), openDB(t, srv, "nodes:", "gw-b")
	ctx := context.Background()
	if err := a.Heartbeat(ctx, redisstore.NodeInfo{API: "http://a", SIMs: []string{"+1"}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, redisstore.NodeInfo{API: "http://b"}, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := a.Heartbeat(ctx, redisstore.NodeInfo{}, time.Millisecond); err == nil {
		t.Fatal("a 1 ms TTL was accepted")
	}
	alive := func() map[string]bool {
		ns, err := a.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, n := range ns {
			m[n.Name] = n.Alive
		}
		return m
	}
	if got := alive(); !got["gw-a"] || !got["gw-b"] {
		t.Fatalf("both just beat: %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive()["gw-b"] {
		if time.Now().After(deadline) {
			t.Fatal("gw-b still alive after its TTL")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.Forget(ctx, "gw-a"); err == nil {
		t.Fatal("a live node was forgotten")
	}
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if got := alive(); got["gw-a"] || len(got) != 2 {
		t.Fatalf("after Leave: %v", got)
	}
	if err := a.Forget(ctx, "gw-b"); err != nil {
		t.Fatal(err)
	}
	if got := alive(); len(got) != 1 {
		t.Fatalf("after Forget: %v", got)
	}
}

// TestLease: one holder at a time; the same owner renews and keeps its
// token; after expiry another node gets a larger token, and the old grant
// can neither renew nor release.
func TestLease(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openDB(t, srv, "lease:", "gw-a"), openDB(t, srv, "lease:", "gw-b")
	ctx := context.Background()
	la, err := a.Acquire(ctx, "camp:1", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "camp:1", time.Second); !errors.Is(err, redisstore.ErrLeaseHeld) {
		t.Fatalf("second holder: %v", err)
	}
	again, err := a.Acquire(ctx, "camp:1", 300*time.Millisecond)
	if err != nil || again.Token != la.Token {
		t.Fatalf("re-acquire by the holder: %v %v", again, err)
	}
	ls, err := b.Leases(ctx, "camp:", 10)
	if err != nil || len(ls) != 1 || ls[0].Owner != "gw-a" || ls[0].Token != la.Token {
		t.Fatalf("Leases: %+v %v", ls, err)
	}
	time.Sleep(400 * time.Millisecond)
	lb, err := b.Acquire(ctx, "camp:1", time.Second)
	if err != nil || lb.Token <= la.Token {
		t.Fatalf("after expiry: %+v %v (old token %d)", lb, err, la.Token)
	}
	if err := a.Renew(ctx, la, time.Second); !errors.Is(err, redisstore.ErrLeaseLost) {
		t.Fatalf("renew of an expired grant: %v", err)
	}
	if err := a.Release(ctx, la); !errors.Is(err, redisstore.ErrLeaseLost) {
		t.Fatalf("release of an expired grant: %v", err)
	}
	if err := b.Release(ctx, lb); err != nil {
		t.Fatal(err)
	}
}

// TestQueueLeases: the fenced Put of two nodes' queues on one prefix.
func TestQueueLeases(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	open := func(node string, ttl time.Duration) *redisstore.Queue {
		q, err := openDB(t, srv, "ql:", node).OpenQueue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		q.SetLeaseTTL(ttl)
		t.Cleanup(func() { q.Close() })
		return q
	}
	a, b := open("gw-a", 400*time.Millisecond), open("gw-b", 400*time.Millisecond)
	sending := func(q *redisstore.Queue, id uint64) error {
		rec, err := q.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		rec.State, rec.Attempt.N, rec.SendingSince = queue.StateSending, 1, time.Now()
		return q.Put(rec)
	}
	final := func(q *redisstore.Queue, id uint64, st queue.State) error {
		rec, err := q.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		rec.State, rec.Finished = st, time.Now()
		return q.Put(rec)
	}
	t.Run("one sender, outcome once", func(t *testing.T) {
		id, _ := a.Add(storetest.Rec("light-1", 0))
		if err := sending(a, id); err != nil {
			t.Fatal(err)
		}
		if err := sending(b, id); !errors.Is(err, queue.ErrNotOwner) {
			t.Fatalf("second sender: %v", err)
		}
		if err := final(b, id, queue.StateExpired); !errors.Is(err, queue.ErrNotOwner) {
			t.Fatalf("outcome from a node without the lease: %v", err)
		}
		if err := final(a, id, queue.StateDone); err != nil {
			t.Fatal(err)
		}
		if err := final(a, id, queue.StateFailed); !errors.Is(err, queue.ErrNotOwner) {
			t.Fatalf("a final record written again: %v", err)
		}
		if rec, _ := b.Get(id); rec.State != queue.StateDone {
			t.Fatalf("stored %v", rec.State)
		}
	})
	t.Run("renewed while in flight", func(t *testing.T) {
		// A TTL of 1 s (renewed every 333 ms): the lease lapses only if
		// the renewals stall for 2/3 of it, which a loaded 2-core CI
		// machine did once with 400 ms. The renewals are seen in Redis
		// (the TTL left goes up again) before the other node tries.
		a := open("gw-a1s", time.Second)
		look := openDB(t, srv, "ql:", "x")
		id, _ := a.Add(storetest.Rec("light-2", 0))
		if err := sending(a, id); err != nil {
			t.Fatal(err)
		}
		start, last, renewals := time.Now(), time.Second, 0
		for renewals < 2 || time.Since(start) < 1500*time.Millisecond {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%d renewals seen in 10 s", renewals)
			}
			ls, err := look.Leases(context.Background(), "q:"+itoa(id), 10)
			if err != nil || len(ls) != 1 || ls[0].Owner != "gw-a1s" {
				t.Fatalf("lease after %v: %v %v", time.Since(start), ls, err)
			}
			if ls[0].TTL > last {
				renewals++
			}
			last = ls[0].TTL
			time.Sleep(50 * time.Millisecond)
		}
		if err := sending(b, id); !errors.Is(err, queue.ErrNotOwner) {
			t.Fatalf("lease not renewed: %v", err)
		}
		if len(a.Claims()) != 1 {
			t.Fatalf("claims %v", a.Claims())
		}
		if err := final(a, id, queue.StateDone); err != nil {
			t.Fatal(err)
		}
		if len(a.Claims()) != 0 {
			t.Fatalf("claims after the outcome %v", a.Claims())
		}
	})
	t.Run("taken over after the sender died; fenced", func(t *testing.T) {
		dead := open("gw-dead", 400*time.Millisecond)
		id, _ := dead.Add(storetest.Rec("light-3", 0))
		if err := sending(dead, id); err != nil {
			t.Fatal(err)
		}
		ls, _ := openDB(t, srv, "ql:", "x").Leases(context.Background(), "q:", 10)
		var old uint64
		for _, l := range ls {
			if l.Owner == "gw-dead" {
				old = l.Token
			}
		}
		// The process dies: no more renewals. Its Queue's memory still
		// says it holds the lease, which is what a paused process would
		// believe when it wakes up.
		dead.Close()
		time.Sleep(600 * time.Millisecond)
		if err := sending(b, id); err != nil {
			t.Fatalf("take-over: %v", err)
		}
		ls, _ = openDB(t, srv, "ql:", "x").Leases(context.Background(), "q:"+itoa(id), 10)
		if len(ls) != 1 || ls[0].Owner != "gw-b" || ls[0].Token <= old {
			t.Fatalf("lease after take-over %+v (old token %d)", ls, old)
		}
		zombie := open("gw-dead", 400*time.Millisecond)
		if err := final(zombie, id, queue.StateFailed); !errors.Is(err, queue.ErrNotOwner) {
			t.Fatalf("old holder's outcome accepted: %v", err)
		}
		if err := final(b, id, queue.StateDone); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("change stream", func(t *testing.T) {
		var mu sync.Mutex
		var seen []uint64
		if err := b.Watch(func(ids []uint64) error {
			mu.Lock()
			seen = append(seen, ids...)
			mu.Unlock()
			return nil
		}, func() error { return nil }, nil); err != nil {
			t.Fatal(err)
		}
		id, _ := a.Add(storetest.Rec("light-4", 0))
		if err := final(a, id, queue.StateCancelled); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := slices.Index(seen, id)
			c := 0
			for _, s := range seen {
				if s == id {
					c++
				}
			}
			mu.Unlock()
			if n >= 0 && c == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream entries for %d: %d (want add and outcome)", id, c)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
