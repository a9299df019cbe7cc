package registrytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// Factory makes the stores under test.
type Factory struct {
	// New returns an empty store with o. The suite closes it.
	New func(t *testing.T, o registry.Options) registry.Store
	// Reopen closes s and returns a store over the same data (a restart);
	// nil for a store that is not durable.
	Reopen func(t *testing.T, s registry.Store, o registry.Options) registry.Store
	// Peer returns a second store over s's data, as another gateway node
	// has it; nil when the store cannot be shared.
	Peer func(t *testing.T, s registry.Store, o registry.Options) registry.Store
}

// T0 is the suite's clock origin.
var T0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewReg returns a UDP registration of ep with lifetime lt updated at upd.
func NewReg(ep string, lt uint32, upd time.Time) *registry.Registration {
	r := &registry.Registration{Endpoint: ep, Lifetime: lt, Version: registry.V1_1, Binding: registry.BindingU,
		Registered: upd.UnixNano(), Updated: upd.UnixNano(),
		Objects: []registry.ObjectLink{{Object: 1, Instance: 0}, {Object: 3, Instance: 0, VerMajor: 1, VerMinor: 2}}}
	r.SetPeerAddr(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5683})
	return r
}

// Same reports whether two registrations are equal in every stored field.
func Same(a, b *registry.Registration) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(registry.MarshalRegistration(nil, a), registry.MarshalRegistration(nil, b))
}

type tcase struct {
	name string
	need func(Factory) bool
	run  func(t *testing.T, f Factory)
}

// Run runs every case against f.
func Run(t *testing.T, f Factory) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.need != nil && !c.need(f) {
				t.Skip("not offered by this store")
			}
			c.run(t, f)
		})
	}
}

var ctx = context.Background()

func open(t *testing.T, f Factory, o registry.Options) registry.Store {
	s := f.New(t, o)
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAdd(t *testing.T, s registry.Store, r *registry.Registration) *registry.Registration {
	t.Helper()
	prev, err := s.Add(ctx, r)
	if err != nil {
		t.Fatalf("Add %s: %v", r.Endpoint, err)
	}
	return prev
}

// eventually polls cond for up to 5 s (a peer's copy follows a change
// stream).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func clone(lt uint32) func(o *registry.Registration) (*registry.Registration, error) {
	return func(o *registry.Registration) (*registry.Registration, error) {
		n := o.Clone()
		n.Lifetime = lt
		return n, nil
	}
}

var cases = []tcase{
	{name: "add then get by id and endpoint", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		a := NewReg("a", 60, T0)
		a.SetAltPath("/lwm2m")
		a.SMS, a.Identity = "+4915112345", "psk:a"
		a.SetTransport("dtls")
		a.SetNode("node-b")
		if prev := mustAdd(t, s, a); prev != nil || a.ID == 0 {
			t.Fatalf("Add: prev %v id %d", prev, a.ID)
		}
		if got, ok := s.Get(a.ID); !ok || !Same(got, a) {
			t.Fatalf("Get: %v %v", got, ok)
		}
		if got, ok := s.ByEndpoint("a"); !ok || !Same(got, a) || got.Node() != "node-b" {
			t.Fatalf("ByEndpoint: %v %v", got, ok)
		}
		if _, ok := s.Get(a.ID + 1); ok {
			t.Fatal("Get of an unknown id")
		}
		if _, ok := s.ByEndpoint("zz"); ok {
			t.Fatal("ByEndpoint of an unknown name")
		}
		if s.Len() != 1 {
			t.Fatalf("Len %d", s.Len())
		}
	}},
	{name: "ids are random and distinct", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		seen := map[uint64]bool{}
		for i := range 50 {
			r := NewReg(fmt.Sprintf("e%d", i), 60, T0)
			mustAdd(t, s, r)
			if seen[r.ID] || r.ID < 1<<20 {
				t.Fatalf("id %d reused or small", r.ID)
			}
			seen[r.ID] = true
		}
	}},
	{name: "register again replaces with a new location", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		a := NewReg("a", 60, T0)
		mustAdd(t, s, a)
		a2 := NewReg("a", 120, T0)
		prev := mustAdd(t, s, a2)
		if !Same(prev, a) || a2.ID == a.ID {
			t.Fatalf("prev %v, new id %d old %d", prev, a2.ID, a.ID)
		}
		if _, ok := s.Get(a.ID); ok {
			t.Fatal("old location still present")
		}
		if got, _ := s.ByEndpoint("a"); !Same(got, a2) || s.Len() != 1 {
			t.Fatalf("ByEndpoint %v Len %d", got, s.Len())
		}
		if _, err := s.Remove(ctx, a.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Remove old location: %v", err)
		}
	}},
	{name: "full refuses a new endpoint, not a re-registration", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{MaxRegistrations: 2})
		mustAdd(t, s, NewReg("a", 60, T0))
		mustAdd(t, s, NewReg("b", 60, T0))
		if _, err := s.Add(ctx, NewReg("c", 60, T0)); !errors.Is(err, registry.ErrFull) {
			t.Fatalf("3rd Add: %v", err)
		}
		if _, err := s.Add(ctx, NewReg("a", 90, T0)); err != nil {
			t.Fatalf("re-register when full: %v", err)
		}
		if s.Len() != 2 {
			t.Fatalf("Len %d", s.Len())
		}
	}},
	{name: "update", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		b := NewReg("b", 10, T0)
		mustAdd(t, s, b)
		old, cur, err := s.Update(ctx, b.ID, func(o *registry.Registration) (*registry.Registration, error) {
			n := o.Clone()
			n.Lifetime = 100
			n.ID, n.Endpoint = 7, "other" // ignored: ID and name stay
			n.SetNode("node-c")
			return n, nil
		})
		if err != nil || !Same(old, b) || cur.Lifetime != 100 || cur.ID != b.ID || cur.Endpoint != "b" {
			t.Fatalf("Update: %v %v %v", old, cur, err)
		}
		if got, _ := s.Get(b.ID); !Same(got, cur) || got.Node() != "node-c" {
			t.Fatalf("Get after Update %v", got)
		}
		if _, _, err := s.Update(ctx, 9999, clone(1)); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Update unknown: %v", err)
		}
		boom := errors.New("boom")
		if _, _, err := s.Update(ctx, b.ID, func(*registry.Registration) (*registry.Registration, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("Update fn error: %v", err)
		}
		if got, _ := s.Get(b.ID); got.Lifetime != 100 {
			t.Fatal("failed Update changed the registration")
		}
	}},
	{name: "remove", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		d := NewReg("d", 5, T0)
		mustAdd(t, s, d)
		if r, err := s.Remove(ctx, d.ID); err != nil || !Same(r, d) {
			t.Fatalf("Remove: %v %v", r, err)
		}
		if _, err := s.Remove(ctx, d.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Remove twice: %v", err)
		}
		if _, ok := s.ByEndpoint("d"); ok || s.Len() != 0 {
			t.Fatal("still present")
		}
		if _, ok := s.NextExpiry(); ok {
			t.Fatal("NextExpiry on an empty store")
		}
	}},
	{name: "expire in expiry order after grace", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{Grace: time.Second})
		a, b, c := NewReg("a", 120, T0), NewReg("b", 10, T0), NewReg("c", 30, T0)
		for _, r := range []*registry.Registration{a, b, c} {
			mustAdd(t, s, r)
		}
		if _, _, err := s.Update(ctx, b.ID, clone(100)); err != nil {
			t.Fatal(err)
		}
		next, ok := s.NextExpiry()
		if !ok || !next.Equal(T0.Add(31*time.Second)) {
			t.Fatalf("NextExpiry %v %v", next, ok)
		}
		if got, err := s.Expire(ctx, T0.Add(30*time.Second), 10); err != nil || len(got) != 0 {
			t.Fatalf("early Expire: %v %v", got, err)
		}
		got, err := s.Expire(ctx, T0.Add(200*time.Second), 1)
		if err != nil || len(got) != 1 || !Same(got[0], c) {
			t.Fatalf("Expire(1) = %v %v", got, err)
		}
		got, _ = s.Expire(ctx, T0.Add(200*time.Second), 10)
		if len(got) != 2 || got[0].Endpoint != "b" || got[1].Endpoint != "a" {
			t.Fatalf("Expire order %v", got)
		}
		if s.Len() != 0 {
			t.Fatalf("Len %d", s.Len())
		}
		if _, ok := s.ByEndpoint("a"); ok {
			t.Fatal("expired registration still found")
		}
	}},
	{name: "range visits each once", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		for i := range 20 {
			mustAdd(t, s, NewReg(fmt.Sprintf("r%d", i), 60, T0))
		}
		seen := map[string]int{}
		s.Range(func(r *registry.Registration) bool { seen[r.Endpoint]++; return true })
		if len(seen) != 20 {
			t.Fatalf("Range saw %d", len(seen))
		}
		n := 0
		s.Range(func(*registry.Registration) bool { n++; return n < 3 })
		if n != 3 {
			t.Fatalf("Range did not stop: %d", n)
		}
	}},
	{name: "range callback may call the store while a writer waits", run: func(t *testing.T, f Factory) {
		// A callback that reads the store (the queue's holder check does)
		// while another goroutine adds a registration: with the read lock
		// held across fn, the writer's pending Lock blocks fn's second
		// RLock and both wait forever.
		s := open(t, f, registry.Options{})
		for i := range 3 {
			mustAdd(t, s, NewReg(fmt.Sprintf("r%d", i), 60, T0))
		}
		done := make(chan struct{})
		added := make(chan struct{}) // closed when the writer's Add returned
		go func() {
			defer close(done)
			first := true
			s.Range(func(r *registry.Registration) bool {
				if first {
					first = false
					go func() {
						defer close(added)
						if _, err := s.Add(ctx, NewReg("writer", 60, T0)); err != nil {
							t.Error(err)
						}
					}()
					select { // let the writer reach its lock, or finish
					case <-added:
					case <-time.After(50 * time.Millisecond):
					}
				}
				if _, ok := s.ByEndpoint(r.Endpoint); !ok {
					t.Errorf("ByEndpoint(%s) inside Range: not found", r.Endpoint)
				}
				return true
			})
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Range with a callback reading the store did not return within 10 s (deadlock)")
		}
		// Range may end before the writer (a slow machine): wait for it.
		select {
		case <-added:
		case <-time.After(10 * time.Second):
			t.Fatal("the concurrent Add did not return within 10 s after Range")
		}
		if _, ok := s.ByEndpoint("writer"); !ok {
			t.Fatal("the concurrent Add was lost")
		}
	}},
	{name: "closed store refuses changes", run: func(t *testing.T, f Factory) {
		s := f.New(t, registry.Options{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Add(ctx, NewReg("e", 1, T0)); !errors.Is(err, registry.ErrClosed) {
			t.Fatalf("Add after Close: %v", err)
		}
	}},
	{name: "cancelled context", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		c, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Add(c, NewReg("x", 1, T0)); err == nil {
			t.Fatal("Add with a cancelled context succeeded")
		}
		if s.Len() != 0 {
			t.Fatal("stored anyway")
		}
	}},
	{name: "concurrent writers keep both indexes consistent", run: func(t *testing.T, f Factory) {
		s := open(t, f, registry.Options{})
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				for i := range 30 {
					r := NewReg(fmt.Sprintf("ep-%d", i%10), uint32(1+g), T0)
					if _, err := s.Add(ctx, r); err != nil {
						t.Error(err)
						return
					}
					s.Update(ctx, r.ID, func(o *registry.Registration) (*registry.Registration, error) { return o.Clone(), nil })
					if i%7 == 0 {
						s.Remove(ctx, r.ID)
					}
				}
			})
		}
		wg.Wait()
		n := 0
		s.Range(func(r *registry.Registration) bool {
			if got, ok := s.ByEndpoint(r.Endpoint); !ok || got.ID != r.ID {
				t.Errorf("index mismatch for %s", r.Endpoint)
			}
			n++
			return true
		})
		if n != s.Len() || n > 10 {
			t.Fatalf("Range saw %d, Len %d", n, s.Len())
		}
		got, _ := s.Expire(ctx, T0.Add(time.Hour), 100)
		if len(got) != n || s.Len() != 0 {
			t.Fatalf("expired %d of %d", len(got), n)
		}
	}},
	{name: "durable across a restart", need: func(f Factory) bool { return f.Reopen != nil }, run: func(t *testing.T, f Factory) {
		o := registry.Options{}
		s := f.New(t, o)
		a := NewReg("a", 60, T0)
		a.SetAltPath("/lwm2m")
		a.SetNode("n1")
		mustAdd(t, s, a)
		sm := NewReg("s", 60, T0)
		sm.SetPeerAddr(registry.StoredAddr{Net: "sms", Addr: "+4915199999"})
		mustAdd(t, s, sm)
		gone := NewReg("gone", 60, T0)
		mustAdd(t, s, gone)
		s.Remove(ctx, gone.ID)
		_, cur, err := s.Update(ctx, a.ID, clone(99))
		if err != nil {
			t.Fatal(err)
		}
		s = f.Reopen(t, s, o)
		t.Cleanup(func() { s.Close() })
		if s.Len() != 2 {
			t.Fatalf("Len after restart %d", s.Len())
		}
		if got, ok := s.ByEndpoint("a"); !ok || !Same(got, cur) {
			t.Fatalf("reloaded %+v", got)
		}
		if got, _ := s.ByEndpoint("s"); got == nil || got.PeerAddr().String() != "+4915199999" {
			t.Fatalf("sms registration %v", got)
		}
		if _, ok := s.Get(gone.ID); ok {
			t.Fatal("removed registration came back")
		}
		if next, ok := s.NextExpiry(); !ok || !next.Equal(T0.Add(60*time.Second)) {
			t.Fatalf("NextExpiry after restart %v", next)
		}
	}},
	{name: "a peer node sees every change", need: func(f Factory) bool { return f.Peer != nil }, run: func(t *testing.T, f Factory) {
		o := registry.Options{}
		a := open(t, f, o)
		b := f.Peer(t, a, o)
		t.Cleanup(func() { b.Close() })
		r := NewReg("x", 60, T0)
		r.SetNode("A")
		mustAdd(t, a, r)
		eventually(t, "B sees x", func() bool { g, ok := b.ByEndpoint("x"); return ok && Same(g, r) })
		// Re-registered at B: A's copy follows, the old location is gone.
		r2 := NewReg("x", 90, T0)
		r2.SetNode("B")
		if prev := mustAdd(t, b, r2); !Same(prev, r) {
			t.Fatalf("prev at B %v", prev)
		}
		eventually(t, "A sees x at B", func() bool {
			g, ok := a.ByEndpoint("x")
			_, old := a.Get(r.ID)
			return ok && Same(g, r2) && !old && a.Len() == 1
		})
		// Updated at A (the copy there may lag a moment: Update reads
		// the shared record).
		if _, _, err := a.Update(ctx, r2.ID, clone(500)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B sees the update", func() bool { g, _ := b.Get(r2.ID); return g != nil && g.Lifetime == 500 })
		if _, err := b.Remove(ctx, r2.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "A sees the removal", func() bool { _, ok := a.Get(r2.ID); return !ok && a.Len() == 0 })
	}},
	{name: "peers expire each registration once", need: func(f Factory) bool { return f.Peer != nil }, run: func(t *testing.T, f Factory) {
		o := registry.Options{}
		a := open(t, f, o)
		b := f.Peer(t, a, o)
		t.Cleanup(func() { b.Close() })
		for i := range 200 {
			mustAdd(t, a, NewReg(fmt.Sprintf("e%d", i), uint32(1+i%50), T0))
		}
		eventually(t, "B loaded", func() bool { return b.Len() == 200 })
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for _, s := range []registry.Store{a, b} {
			wg.Go(func() {
				for {
					out, err := s.Expire(ctx, T0.Add(time.Hour), 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(out) == 0 {
						return
					}
					mu.Lock()
					for _, r := range out {
						got[r.Endpoint]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(got) != 200 {
			t.Fatalf("expired %d of 200", len(got))
		}
		for ep, n := range got {
			if n != 1 {
				t.Fatalf("%s expired %d times", ep, n)
			}
		}
	}},
	{name: "peers share the bound", need: func(f Factory) bool { return f.Peer != nil }, run: func(t *testing.T, f Factory) {
		o := registry.Options{MaxRegistrations: 3}
		a := open(t, f, o)
		b := f.Peer(t, a, o)
		t.Cleanup(func() { b.Close() })
		mustAdd(t, a, NewReg("a1", 60, T0))
		mustAdd(t, a, NewReg("a2", 60, T0))
		mustAdd(t, b, NewReg("b1", 60, T0))
		if _, err := b.Add(ctx, NewReg("b2", 60, T0)); !errors.Is(err, registry.ErrFull) {
			t.Fatalf("4th Add across nodes: %v", err)
		}
	}},
}
