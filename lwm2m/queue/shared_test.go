package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// sharedState is a Store shared by several nodes with the fencing rules of
// redisstore.Queue (claim.go): Put in StateSending takes the request's
// lease for the node, any Put is refused with ErrNotOwner when the stored
// record is final or leased by another node, and a Put in another state
// gives the lease up. Release drops a lease (its holder died and it
// expired).
type sharedState struct {
	*MemStore
	mu     sync.Mutex
	leases map[uint64]string
}

type nodeStore struct {
	*sharedState
	node string
}

func newShared() *sharedState {
	return &sharedState{MemStore: NewMemStore(), leases: map[uint64]string{}}
}

func (s *sharedState) on(node string) *nodeStore { return &nodeStore{s, node} }

func (s *sharedState) release(id uint64) {
	s.mu.Lock()
	delete(s.leases, id)
	s.mu.Unlock()
}

func (s *sharedState) holder(id uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[id]
}

func (n *nodeStore) Put(rec *Record) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, err := n.MemStore.Get(rec.ID); err == nil && cur.State.Final() {
		return fmt.Errorf("put %d: final: %w", rec.ID, ErrNotOwner)
	}
	if h := n.leases[rec.ID]; h != "" && h != n.node {
		return fmt.Errorf("put %d: leased by %s: %w", rec.ID, h, ErrNotOwner)
	}
	if rec.State == StateSending {
		n.leases[rec.ID] = n.node
	} else {
		delete(n.leases, rec.ID)
	}
	return n.MemStore.Put(rec)
}

func sharedManager(t *testing.T, st Store, fleet Executor, waker Waker, holds func(string) bool) *Manager {
	t.Helper()
	m, err := New(Config{Store: st, Executor: fleet, Waker: waker, Holds: holds, LeaseRetry: 20 * time.Millisecond,
		Wake: WakePolicy{Timeout: time.Hour, MinInterval: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestSharedStore: two nodes' Managers on one fenced store.
func TestSharedStore(t *testing.T) {
	wakeTarget := &WakeTarget{MSISDN: "+491720000001", Version: "1.1", Trigger: true}
	t.Run("only the holder wakes; the other learns the outcome", func(t *testing.T) {
		st, fleet := newShared(), newFleet()
		var mu sync.Mutex
		wakes := map[string]int{}
		var a, b *Manager
		waker := func(node string) Waker {
			return WakerFunc(func(ctx context.Context, ep string, _ WakeTarget) error {
				mu.Lock()
				wakes[node]++
				mu.Unlock()
				if node == "a" {
					go a.Seen(ep, time.Minute) // the device shows up at its holder
				}
				return nil
			})
		}
		a = sharedManager(t, st.on("a"), fleet, waker("a"), func(string) bool { return true })
		b = sharedManager(t, st.on("b"), fleet, waker("b"), func(string) bool { return false })
		for _, m := range []*Manager{a, b} {
			if err := m.SetDevice("dev", DeviceConfig{Wake: wakeTarget}); err != nil {
				t.Fatal(err)
			}
		}
		id, err := b.Enqueue(context.Background(), Request{Endpoint: "dev", Kind: KindExecute, Paths: []string{"/3/0/4"}})
		if err != nil {
			t.Fatal(err)
		}
		// The change stream tells a.
		if err := a.Refresh(id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "done in the store", func() bool { r, _ := st.Get(id); return r != nil && r.State == StateDone })
		// ... and then b, whose waiter gets the outcome decided at a.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { _, err := b.Wait(ctx, id); done <- err }()
		if err := b.Refresh(id); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("wait at b: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if wakes["a"] != 1 || wakes["b"] != 0 {
			t.Fatalf("wake-ups %v: want one, from a only", wakes)
		}
		fleet.mu.Lock()
		runs := fleet.runs[id]
		fleet.mu.Unlock()
		if runs != 1 || len(b.Pending("dev")) != 0 {
			t.Fatalf("ran %d times; pending at b %v", runs, b.Pending("dev"))
		}
	})
	t.Run("a request leased by another node waits for its lease", func(t *testing.T) {
		st, fleet := newShared(), newFleet()
		a := sharedManager(t, st.on("a"), fleet, nil, nil)
		id, err := st.Add(&Record{Request: Request{Endpoint: "dev", Kind: KindExecute, Paths: []string{"/3/0/4"},
			Expires: time.Now().Add(time.Hour)}, State: StateQueued})
		if err != nil {
			t.Fatal(err)
		}
		// Node "dead" was sending it when it died: its lease is still there.
		rec, _ := st.Get(id)
		rec.State, rec.Attempt, rec.SendingSince = StateSending, Attempt{ID: id, N: 1}, time.Now()
		if err := st.on("dead").Put(rec); err != nil {
			t.Fatal(err)
		}
		if err := a.Refresh(id); err != nil {
			t.Fatal(err)
		}
		a.Seen("dev", time.Minute)
		time.Sleep(100 * time.Millisecond)
		fleet.mu.Lock()
		n := fleet.runs[id]
		fleet.mu.Unlock()
		if n != 0 || st.holder(id) != "dead" {
			t.Fatalf("sent %d times while another node held it (holder %q)", n, st.holder(id))
		}
		st.release(id) // the lease expires
		waitFor(t, "taken over", func() bool { r, _ := st.Get(id); return r.State == StateDone })
		fleet.mu.Lock()
		defer fleet.mu.Unlock()
		if att := fleet.attempts[id]; len(att) != 1 || att[0].N != 1 {
			t.Fatalf("attempts %v: want the dead node's attempt 1 again (same token and message ID)", att)
		}
	})
	t.Run("an outcome stored elsewhere first is not overwritten", func(t *testing.T) {
		st := newShared()
		gate := make(chan struct{})
		fleet := newFleet()
		fleet.gate = gate
		var events []Event
		var mu sync.Mutex
		m, err := New(Config{Store: st.on("a"), Executor: fleet, LeaseRetry: 20 * time.Millisecond, OnEvent: func(ev Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		m.Seen("dev", time.Minute)
		id, err := m.Enqueue(context.Background(), Request{Endpoint: "dev", Kind: KindRead, Paths: []string{"/3/0"}})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "sending", func() bool { return st.holder(id) == "a" })
		// a's lease expires while it waits for the device; b takes the
		// request over and stores its outcome.
		st.release(id)
		rec, _ := st.Get(id)
		rec.State, rec.Finished = StateCancelled, time.Now()
		if err := st.on("b").Put(rec); err != nil {
			t.Fatal(err)
		}
		close(gate)
		waitFor(t, "a gave up", func() bool { return len(m.Pending("dev")) == 0 })
		if r, _ := st.Get(id); r.State != StateCancelled {
			t.Fatalf("stored %v: a overwrote b's outcome", r.State)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			if ev.Type == EventDone {
				t.Fatalf("a reported done for a request whose outcome is b's: %+v", ev)
			}
		}
	})
}
