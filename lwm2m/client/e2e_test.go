package client_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

func listen(t *testing.T) bearer.Bearer {
	t.Helper()
	c, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startServer(t *testing.T, opts ...server.Option) (*server.Server, net.Addr) {
	t.Helper()
	b := listen(t)
	srv, err := server.New(new(registry.Memory), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(b, bearer.WithHandler(srv.Handler("udp")))
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach("udp", ep)
	t.Cleanup(func() { srv.Close(); ep.Close() })
	return srv, b.LocalAddr()
}

func newClient(t *testing.T, name string, opts ...client.Option) (*client.Client, *bearer.Endpoint) {
	t.Helper()
	c, err := client.New(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(listen(t), bearer.WithHandler(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); ep.Close() })
	return c, ep
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitEvent(t *testing.T, sub *server.Subscription, kind server.EventKind) server.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-sub.C:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event", kind)
		}
	}
}

// TestClientAgainstServer runs every operation of our server against our
// client over loopback UDP.
func TestClientAgainstServer(t *testing.T) {
	sent := make(chan server.SendEvent, 1)
	srv, addr := startServer(t, server.WithSendHandler(func(ev server.SendEvent) { sent <- ev }))
	sub := srv.Subscribe(256)
	var rebooted atomic.Bool
	c, cep := newClient(t, "light-1", client.WithLifetime(60))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddServer(client.Server{ShortID: 101, Lifetime: 60, Binding: "U"}))
	must(c.AddDevice(client.Device{Manufacturer: "ACME", Model: "SL-1", Serial: "0001", Firmware: "1.0",
		Reboot: func() error { rebooted.Store(true); return nil }}))
	must(c.AddConnectivity(client.Connectivity{NetworkBearer: 6, RSSI: -70, IPAddresses: []string{"10.0.0.7"}}))
	must(c.AddFirmware(client.Firmware{}))
	must(c.AddObject(3311, client.Handlers{}))
	must(c.Set(path.Resource(3311, 0, 5850), content.NewBool(false)))
	must(c.Set(path.Resource(3311, 0, 5851), content.NewInt(0)))

	ctx := ctxT(t)
	must(c.Start(ctx, cep, addr))
	ev := waitEvent(t, sub, server.Registered)
	reg := ev.Registration
	if reg.Endpoint != "light-1" || reg.Lifetime != 60 || reg.Version != registry.V1_1 || !reg.HasObject(3311) || reg.HasObject(0) ||
		reg.Formats == 0 || reg.Location() != c.Location() {
		t.Fatalf("registration %+v (%s)", reg, reg.Links())
	}

	// Read: single resource (text), instance (client's preferred format).
	cv, err := srv.Read(ctx, "light-1", path.Resource(3, 0, 0))
	if err != nil || cv.Text() != "ACME" {
		t.Fatalf("Read /3/0/0: %+v %v", cv, err)
	}
	recs, err := srv.ReadValues(ctx, "light-1", path.Instance(3, 0))
	if err != nil || len(recs) < 4 || recs[0].Value.Str() != "ACME" {
		t.Fatalf("ReadValues /3/0: %v %v", recs, err)
	}
	for _, f := range []struct {
		name string
		opt  server.RequestOption
	}{
		{"TLV", server.WithFormat(server.FormatTLV)},
		{"SenML JSON", server.WithFormat(server.FormatSenMLJSON)},
		{"LwM2M CBOR", server.WithFormat(server.FormatLwM2MCBOR)},
	} {
		t.Run("ReadValues in "+f.name, func(t *testing.T) {
			recs, err := srv.ReadValues(ctx, "light-1", path.Instance(3311, 0), f.opt)
			if err != nil || len(recs) != 2 {
				t.Fatalf("ReadValues /3311/0: %v %v", recs, err)
			}
		})
	}
	if _, err := srv.Read(ctx, "light-1", path.Resource(3, 0, 4)); server.Code(err) != codes.MethodNotAllowed {
		t.Fatalf("Read executable: %v", err)
	}
	if _, err := srv.Read(ctx, "light-1", path.Instance(3311, 9)); server.Code(err) != codes.NotFound {
		t.Fatalf("Read missing: %v", err)
	}
	if _, err := srv.Read(ctx, "light-1", path.Instance(0, 0)); server.Code(err) != codes.Unauthorized {
		t.Fatalf("Read security: %v", err)
	}

	// Write replace and partial update.
	must(srv.WriteValues(ctx, "light-1", path.Resource(3311, 0, 5851), server.Replace,
		content.Record{Path: path.Resource(3311, 0, 5851), Value: content.NewInt(40)}))
	if v, _ := c.Get(path.Resource(3311, 0, 5851)); v.Int() != 40 {
		t.Fatalf("dimmer = %v", v)
	}
	must(srv.WriteValues(ctx, "light-1", path.Instance(3311, 0), server.PartialUpdate,
		content.Record{Path: path.Resource(3311, 0, 5850), Value: content.NewBool(true)}))
	if v, _ := c.Get(path.Resource(3311, 0, 5850)); !v.Bool() {
		t.Fatal("light not on")
	}
	if v, _ := c.Get(path.Resource(3311, 0, 5851)); v.Int() != 40 {
		t.Fatal("partial update lost the dimmer")
	}
	err = srv.WriteValues(ctx, "light-1", path.Resource(3, 0, 0), server.Replace,
		content.Record{Path: path.Resource(3, 0, 0), Value: content.NewString("EVIL")})
	if server.Code(err) != codes.MethodNotAllowed {
		t.Fatalf("write read-only: %v", err)
	}
	err = srv.Write(ctx, "light-1", path.Resource(3311, 0, 5851), server.Replace, server.Content{Format: server.FormatTLV, Payload: []byte{0xFF}})
	if server.Code(err) != codes.BadRequest {
		t.Fatalf("broken TLV: %v", err)
	}
	err = srv.Write(ctx, "light-1", path.Resource(3311, 0, 5851), server.Replace, server.Content{Format: 9999, Payload: []byte{1}})
	if server.Code(err) != codes.UnsupportedMediaType {
		t.Fatalf("unknown format: %v", err)
	}

	if c.Refused() < 5 {
		t.Fatalf("client counted %d refusals", c.Refused())
	}

	// Discover.
	links, err := srv.Discover(ctx, "light-1", path.Object(3))
	if err != nil || len(links) < 3 || links[0].Target != "/3" || links[1].Target != "/3/0" {
		t.Fatalf("Discover: %v %v", links, err)
	}

	// Execute.
	must(srv.Execute(ctx, "light-1", path.Resource(3, 0, 4), ""))
	if !rebooted.Load() {
		t.Fatal("reboot hook not run")
	}
	if err := srv.Execute(ctx, "light-1", path.Resource(3, 0, 0), ""); server.Code(err) != codes.MethodNotAllowed {
		t.Fatalf("execute non-executable: %v", err)
	}

	// Create and Delete.
	np, err := srv.CreateValues(ctx, "light-1", path.Object(3311),
		content.Record{Path: path.Resource(3311, 1, 5850), Value: content.NewBool(true)})
	if err != nil || np != path.Instance(3311, 1) {
		t.Fatalf("Create: %v %v", np, err)
	}
	if v, ok := c.Get(path.Resource(3311, 1, 5850)); !ok || !v.Bool() {
		t.Fatal("created instance missing")
	}
	must(srv.Delete(ctx, "light-1", path.Instance(3311, 1)))
	if _, ok := c.Get(path.Resource(3311, 1, 5850)); ok {
		t.Fatal("deleted instance still there")
	}
	if err := srv.Delete(ctx, "light-1", path.Instance(3311, 1)); server.Code(err) != codes.NotFound {
		t.Fatalf("second delete: %v", err)
	}

	// Composite operations.
	recs, err = srv.ReadCompositeValues(ctx, "light-1", path.Resource(3, 0, 0), path.Resource(3311, 0, 5851))
	if err != nil || len(recs) != 2 || recs[1].Value.Int() != 40 {
		t.Fatalf("ReadComposite: %v %v", recs, err)
	}
	must(srv.WriteCompositeValues(ctx, "light-1",
		content.Record{Path: path.Resource(3311, 0, 5851), Value: content.NewInt(70)},
		content.Record{Path: path.Resource(1, 0, 1), Value: content.NewInt(120)}))
	if v, _ := c.Get(path.Resource(3311, 0, 5851)); v.Int() != 70 {
		t.Fatalf("composite write: dimmer %v", v)
	}

	// Write-Attributes and Observe: st=10 suppresses small steps.
	must(srv.WriteAttributes(ctx, "light-1", path.Resource(3311, 0, 5851), link.Attributes{St: link.Ptr(10.0)}))
	notes := make(chan server.Notification, 8)
	_, first, err := srv.Observe(ctx, "light-1", path.Resource(3311, 0, 5851), func(n server.Notification) { notes <- n })
	if err != nil || first.Text() != "70" {
		t.Fatalf("Observe: %+v %v", first, err)
	}
	must(c.Set(path.Resource(3311, 0, 5851), content.NewInt(75))) // step 5 < st
	must(c.Set(path.Resource(3311, 0, 5851), content.NewInt(90))) // step 20 ≥ st
	select {
	case n := <-notes:
		rs, err := n.Records(nil)
		if err != nil || len(rs) != 1 || rs[0].Value.String() != "90" {
			t.Fatalf("notification %v %v (%+v)", rs, err, n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no notification")
	}
	select {
	case n := <-notes:
		t.Fatalf("unexpected notification %+v", n)
	default:
	}
	must(srv.CancelObservation(ctx, "light-1", path.Resource(3311, 0, 5851)))

	// Send.
	must(c.Send(ctx, path.Resource(3311, 0, 5851), path.Resource(3, 0, 0)))
	select {
	case ev := <-sent:
		rs, err := ev.Records(nil)
		if err != nil || ev.Endpoint != "light-1" || len(rs) != 2 {
			t.Fatalf("send %v %v", rs, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no Send")
	}

	// Registration Update Trigger → Update.
	must(srv.Execute(ctx, "light-1", path.Resource(1, 0, 8), ""))
	waitEvent(t, sub, server.Updated)

	// De-register.
	must(c.Deregister(ctx))
	waitEvent(t, sub, server.Deregistered)
	if err := c.Update(ctx, false); !errors.Is(err, client.ErrNotRegistered) {
		t.Fatalf("update after deregister: %v", err)
	}
}

// TestObservePmax checks that pmax forces notifications without changes
// and pmin spaces them out.
func TestObservePmax(t *testing.T) {
	srv, addr := startServer(t)
	c, cep := newClient(t, "pm", client.WithLifetime(300))
	if err := c.AddObject(3311, client.Handlers{}); err != nil {
		t.Fatal(err)
	}
	c.Set(path.Resource(3311, 0, 5851), content.NewInt(1))
	ctx := ctxT(t)
	if err := c.Start(ctx, cep, addr); err != nil {
		t.Fatal(err)
	}
	if err := srv.WriteAttributes(ctx, "pm", path.Instance(3311, 0), link.Attributes{Pmin: link.Ptr[uint32](1), Pmax: link.Ptr[uint32](1)}); err != nil {
		t.Fatal(err)
	}
	notes := make(chan time.Time, 16)
	start := time.Now()
	if _, _, err := srv.Observe(ctx, "pm", path.Resource(3311, 0, 5851), func(server.Notification) { notes <- time.Now() }); err != nil {
		t.Fatal(err)
	}
	// Changes right away must wait for pmin = 1 s.
	c.Set(path.Resource(3311, 0, 5851), content.NewInt(2))
	c.Set(path.Resource(3311, 0, 5851), content.NewInt(3))
	var got []time.Time
	for len(got) < 2 {
		select {
		case at := <-notes:
			got = append(got, at)
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d notifications", len(got))
		}
	}
	if d := got[0].Sub(start); d < 900*time.Millisecond {
		t.Fatalf("first notification after %v, before pmin", d)
	}
	if d := got[1].Sub(got[0]); d < 900*time.Millisecond {
		t.Fatalf("notifications %v apart, closer than pmin", d)
	}
}

// TestLifetimeUpdates checks that the client refreshes its registration
// before the lifetime ends and re-registers when the server forgot it.
func TestLifetimeUpdates(t *testing.T) {
	srv, addr := startServer(t)
	sub := srv.Subscribe(64)
	c, cep := newClient(t, "lt", client.WithLifetime(1), client.WithRetry(200*time.Millisecond))
	if err := c.AddDevice(client.Device{Manufacturer: "x"}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := c.Start(ctx, cep, addr); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, server.Registered)
	waitEvent(t, sub, server.Updated)
	// The server forgets the client; its next Update gets 4.04 and it
	// registers again.
	reg, _ := srv.Lookup("lt")
	srv.Store().Remove(ctx, reg.ID)
	ev := waitEvent(t, sub, server.Registered)
	if ev.Registration.Endpoint != "lt" || ev.Registration.ID == reg.ID {
		t.Fatalf("re-registration %+v", ev.Registration)
	}
}

func mustPath(s string) path.Path { return path.MustParse(s) }

// TestClient10 registers a LwM2M 1.0 client in queue mode ("UQ"): the
// server records version and queue mode and reads it in TLV.
func TestClient10(t *testing.T) {
	srv, addr := startServer(t)
	sub := srv.Subscribe(8)
	c, cep := newClient(t, "old", client.WithVersion("1.0"), client.WithBinding("UQ"), client.WithLifetime(300))
	if err := c.AddDevice(client.Device{Manufacturer: "Legacy"}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := c.Start(ctx, cep, addr); err != nil {
		t.Fatal(err)
	}
	reg := waitEvent(t, sub, server.Registered).Registration
	if reg.Version != registry.V1_0 || !reg.Queue || reg.Binding != registry.BindingU || reg.Formats != 0 {
		t.Fatalf("registration %+v", reg)
	}
	cv, err := srv.Read(ctx, "old", path.Instance(3, 0))
	if err != nil || cv.Format != server.FormatTLV {
		t.Fatalf("Read: %+v %v", cv, err)
	}
	recs, err := srv.Decode(path.Instance(3, 0), cv)
	if err != nil || recs[0].Value.Str() != "Legacy" {
		t.Fatalf("decode: %v %v", recs, err)
	}
	if err := c.Send(ctx, path.Resource(3, 0, 0)); err == nil {
		t.Fatal("a 1.0 client sent with Send")
	}
}
