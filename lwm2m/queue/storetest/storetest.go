package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// Factory makes the stores under test.
type Factory struct {
	// New returns an empty store; the suite closes it.
	New func(t *testing.T) queue.Store
	// Reopen closes s and returns a store over the same data (a restart);
	// nil for a store that is not durable.
	Reopen func(t *testing.T, s queue.Store) queue.Store
}

// Rec returns a queued Read of /3/0 for ep, told apart by cf.
func Rec(ep string, cf int32) *queue.Record {
	return &queue.Record{Request: queue.Request{Endpoint: ep, Kind: queue.KindRead, Paths: []string{"/3/0"}, ContentFormat: cf}, State: queue.StateQueued}
}

// Run runs every case against f.
func Run(t *testing.T, f Factory) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.durable && f.Reopen == nil {
				t.Skip("store is not durable")
			}
			s := f.New(t)
			t.Cleanup(func() { s.Close() })
			c.run(t, f, s)
		})
	}
}

func add(t *testing.T, s queue.Store, r *queue.Record) uint64 {
	t.Helper()
	id, err := s.Add(r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func walk(t *testing.T, s queue.Store) []uint64 {
	t.Helper()
	var ids []uint64
	if err := s.ForEach(func(r *queue.Record) error { ids = append(ids, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

var cases = []struct {
	name    string
	durable bool
	run     func(t *testing.T, f Factory, s queue.Store)
}{
	{name: "add assigns increasing ids", run: func(t *testing.T, _ Factory, s queue.Store) {
		var last uint64
		for i := range 5 {
			r := Rec("lamp", int32(i))
			id := add(t, s, r)
			if r.ID != id || r.Attempt.ID != id || id <= last {
				t.Fatalf("id %d (record %d, attempt %d) after %d", id, r.ID, r.Attempt.ID, last)
			}
			last = id
		}
	}},
	{name: "get returns what was stored", run: func(t *testing.T, _ Factory, s queue.Store) {
		r := Rec("lamp", 7)
		r.Paths = []string{"/3/0/0", "/5/0/3"}
		r.Payload = []byte{1, 2, 3}
		id := add(t, s, r)
		got, err := s.Get(id)
		if err != nil || got.Endpoint != "lamp" || got.ContentFormat != 7 || !slices.Equal(got.Paths, r.Paths) || string(got.Payload) != "\x01\x02\x03" {
			t.Fatalf("Get: %v %+v", err, got)
		}
		got.Payload[0] = 9 // the caller's copy
		if again, _ := s.Get(id); again.Payload[0] != 1 {
			t.Fatal("Get shares memory with the store")
		}
	}},
	{name: "put overwrites", run: func(t *testing.T, _ Factory, s queue.Store) {
		id := add(t, s, Rec("lamp", 1))
		r, _ := s.Get(id)
		r.State = queue.StateDone
		r.Result = &queue.Result{Code: 0x45, Payload: []byte("ok")}
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(id)
		if got.State != queue.StateDone || got.Result == nil || string(got.Result.Payload) != "ok" {
			t.Fatalf("after Put %+v", got)
		}
	}},
	{name: "unknown id is ErrNotFound", run: func(t *testing.T, _ Factory, s queue.Store) {
		if _, err := s.Get(12345); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
	}},
	{name: "delete ignores unknown ids", run: func(t *testing.T, _ Factory, s queue.Store) {
		a, b := add(t, s, Rec("a", 0)), add(t, s, Rec("b", 0))
		if err := s.Delete(a, 999); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(a); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("deleted: %v", err)
		}
		if ids := walk(t, s); !slices.Equal(ids, []uint64{b}) {
			t.Fatalf("left %v", ids)
		}
	}},
	{name: "for each walks in id order and stops on error", run: func(t *testing.T, _ Factory, s queue.Store) {
		var want []uint64
		for i := range 30 {
			want = append(want, add(t, s, Rec(fmt.Sprintf("d%d", i%4), int32(i))))
		}
		if got := walk(t, s); !slices.Equal(got, want) {
			t.Fatalf("walk %v, want %v", got, want)
		}
		stop := errors.New("stop")
		n := 0
		if err := s.ForEach(func(*queue.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Fatalf("ForEach error: %v after %d", err, n)
		}
	}},
	{name: "concurrent adds get distinct ids", run: func(t *testing.T, _ Factory, s queue.Store) {
		var mu sync.Mutex
		seen := map[uint64]bool{}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 25 {
					id, err := s.Add(Rec(fmt.Sprintf("g%d", g), int32(i)))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if seen[id] {
						t.Errorf("id %d twice", id)
					}
					seen[id] = true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if n := len(walk(t, s)); n != 200 {
			t.Fatalf("stored %d of 200", n)
		}
	}},
	{name: "closed store refuses", run: func(t *testing.T, _ Factory, s queue.Store) {
		s.Close()
		if _, err := s.Add(Rec("x", 0)); !errors.Is(err, queue.ErrClosed) {
			t.Fatalf("Add after Close: %v", err)
		}
	}},
	{name: "durable and ids never reused across a restart", durable: true, run: func(t *testing.T, f Factory, s queue.Store) {
		var ids []uint64
		for i := range 5 {
			ids = append(ids, add(t, s, Rec("lamp", int32(i))))
		}
		r, _ := s.Get(ids[2])
		r.State, r.Attempt.N = queue.StateSending, 3
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
		s.Delete(ids[0], ids[4])
		s = f.Reopen(t, s)
		t.Cleanup(func() { s.Close() })
		if got := walk(t, s); !slices.Equal(got, ids[1:4]) {
			t.Fatalf("after restart %v", got)
		}
		if got, _ := s.Get(ids[2]); got.State != queue.StateSending || got.Attempt.N != 3 {
			t.Fatalf("after restart %+v", got)
		}
		if id := add(t, s, Rec("lamp", 9)); id <= ids[4] {
			t.Fatalf("id %d after %d", id, ids[4])
		}
	}},
}
