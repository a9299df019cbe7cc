package client_test

import (
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestObserveComposite: the server observes /3311/0/5850 and /3311/0/5851
// in one Observe-Composite (FETCH Observe=0, Core 1.1 §6.4.3); a change to
// either gives a notification with both values; cancelling stops them.
func TestObserveComposite(t *testing.T) {
	srv, addr := startServer(t)
	sub := srv.Subscribe(64)
	c, cep := newClient(t, "light-oc", client.WithLifetime(60))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddServer(client.Server{ShortID: 101, Lifetime: 60, Binding: "U"}))
	must(c.AddDevice(client.Device{Manufacturer: "ACME", Model: "SL-1"}))
	must(c.AddObject(3311, client.Handlers{}))
	must(c.Set(path.Resource(3311, 0, 5850), content.NewBool(false)))
	must(c.Set(path.Resource(3311, 0, 5851), content.NewInt(10)))
	ctx := ctxT(t)
	must(c.Start(ctx, cep, addr))
	waitEvent(t, sub, server.Registered)

	on, dim := path.Resource(3311, 0, 5850), path.Resource(3311, 0, 5851)
	notes := make(chan server.Notification, 8)
	obs, first, err := srv.ObserveComposite(ctx, "light-oc", []path.Path{on, dim}, func(n server.Notification) { notes <- n })
	if err != nil {
		t.Fatal(err)
	}
	values := func(c server.Content) map[path.Path]content.Value {
		recs, err := srv.Decode(path.Root, c)
		if err != nil {
			t.Fatalf("decode %v: %v", c, err)
		}
		m := map[path.Path]content.Value{}
		for _, r := range recs {
			m[r.Path] = r.Value
		}
		return m
	}
	v := values(first)
	if len(v) != 2 || v[dim].Int() != 10 {
		t.Fatalf("first response %v", v)
	}
	if c.Observations() != 1 {
		t.Fatalf("client serves %d observations", c.Observations())
	}
	must(c.Set(dim, content.NewInt(80)))
	select {
	case n := <-notes:
		v := values(n.Content)
		if len(n.Paths) != 2 || len(v) != 2 || v[dim].Int() != 80 {
			t.Fatalf("notification %+v: %v", n, v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no composite notification")
	}
	must(srv.CancelCompositeObservation(ctx, "light-oc", []path.Path{on, dim}))
	select {
	case <-obs.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("observation not ended by cancel")
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Observations() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("client still serves the composite observation after FETCH Observe=1")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
