package client_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestClientAgainstServerOSCORE runs our client against our server over
// OSCORE on loopback UDP. The client's context comes from its Security
// and OSCORE objects (/0/0/17 → /21/0); the server holds one context per
// device and binds its OSCORE identity to the endpoint name like a PSK
// identity: the device authenticated by context A registers as A and is
// managed (Read, Write, Observe, Send), and cannot register as B (4.03);
// a NoSec client cannot register as A either.
func TestClientAgainstServerOSCORE(t *testing.T) {
	ctx := ctxT(t)
	secret := bytes.Repeat([]byte{0x42}, 16)
	srvP := oscore.Params{MasterSecret: secret, SenderID: []byte("S"), RecipientID: []byte("dev-a")}
	srvCtx, err := oscore.NewContext(srvP, oscore.NewMemoryStore())
	if err != nil {
		t.Fatal(err)
	}
	sec := server.NewStaticSecurity(0)
	if err := sec.Bind("dev-a", srvCtx.Identity()); err != nil {
		t.Fatal(err)
	}
	inner := listen(t)
	oconn, err := oscore.New(inner, oscore.WithContext(srvCtx), oscore.AllowPlain())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(new(registry.Memory), server.WithSecurity(sec))
	if err != nil {
		t.Fatal(err)
	}
	sep, err := bearer.NewEndpoint(oconn, bearer.WithHandler(srv.Handler("udp")))
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach("udp", sep)
	t.Cleanup(func() { srv.Close(); sep.Close() })
	sub := srv.Subscribe(64)
	// The device's sequence numbers survive across its connections (its
	// flash): a second client with the same keys must not start again at 0.
	devStore := oscore.NewMemoryStore()

	dial := func(name string, withOSCORE bool) (*client.Client, *bearer.Endpoint) {
		c, err := client.New(name, client.WithLifetime(300))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddSecurity(client.Security{ServerURI: "coap://" + inner.LocalAddr().String(), Mode: 3, ShortID: 1}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddObject(3311, client.Handlers{}); err != nil {
			t.Fatal(err)
		}
		c.Set(path.Resource(3311, 0, 5851), content.NewInt(10))
		var b bearer.Bearer = listen(t)
		if withOSCORE {
			if err := c.AddOSCORE(0, client.OSCORE{MasterSecret: secret, SenderID: []byte("dev-a"), RecipientID: []byte("S")}); err != nil {
				t.Fatal(err)
			}
			p, err := c.OSCOREParams(0)
			if err != nil {
				t.Fatal(err)
			}
			x, err := oscore.NewContext(p, devStore)
			if err != nil {
				t.Fatal(err)
			}
			if b, err = oscore.New(b, oscore.WithDefault(x)); err != nil {
				t.Fatal(err)
			}
		}
		ep, err := bearer.NewEndpoint(b, bearer.WithHandler(c))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); ep.Close() })
		return c, ep
	}

	for _, tc := range []struct {
		name       string
		endpoint   string
		withOSCORE bool
	}{
		{"context A registering as B", "dev-b", true},
		{"NoSec client registering as A", "dev-a", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cb, epb := dial(tc.endpoint, tc.withOSCORE)
			err := cb.Start(ctx, epb, inner.LocalAddr())
			if re, ok := err.(*client.RegistrationError); !ok || re.Code != codes.Forbidden {
				t.Fatalf("register: %v", err)
			}
		})
	}

	c, ep := dial("dev-a", true)
	if err := c.Start(ctx, ep, inner.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, server.Registered)
	if ev.Registration.Identity != "oscore:6465762d61" {
		t.Fatalf("registration identity %q", ev.Registration.Identity)
	}
	// The server's requests to the device are protected too; the device's
	// fresh context re-learns its replay window with one Echo round trip.
	v, err := srv.Read(ctx, "dev-a", path.Resource(3, 0, 0))
	if err != nil || v.Text() != "ACME" {
		t.Fatalf("Read over OSCORE: %+v %v", v, err)
	}
	if err := srv.WriteValues(ctx, "dev-a", path.Resource(3311, 0, 5851), server.Replace,
		content.Record{Path: path.Resource(3311, 0, 5851), Value: content.NewInt(55)}); err != nil {
		t.Fatal(err)
	}
	notes := make(chan server.Notification, 4)
	if _, _, err := srv.Observe(ctx, "dev-a", path.Resource(3311, 0, 5851), func(n server.Notification) { notes <- n }); err != nil {
		t.Fatal(err)
	}
	c.Set(path.Resource(3311, 0, 5851), content.NewInt(56))
	select {
	case n := <-notes:
		if n.Content.Text() != "56" {
			t.Fatalf("notification %q", n.Content.Text())
		}
	case <-ctx.Done():
		t.Fatal("no notification over OSCORE")
	}
	if err := c.Send(ctx, path.Resource(3311, 0, 5851)); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, server.Sent)
	if n := oconn.Counter(oscore.EventEchoRetry); n != 1 {
		t.Fatalf("server Echo retries %d, want 1 (the device's fresh replay window): %v", n, oconn.Stats())
	}
}

// TestClientAgainstServerOSCOREAppendixB2 is RFC 8613 Appendix B.2 between
// our client and our server on loopback UDP, both contexts with
// WithRederivation. The device registers (its first contact runs B.2),
// loses its whole OSCORE state (sequence numbers, replay window, ID
// Context: its store is wiped) and comes back: it registers again after a
// new run, with no operator action, nothing refused as a replay and its
// identity unchanged. A B.2 run does not change who a device is: context
// A cannot take endpoint B's name after a run, and A's keys cannot run B.2
// under B's Recipient ID.
func TestClientAgainstServerOSCOREAppendixB2(t *testing.T) {
	ctx := ctxT(t)
	secretA, secretB := bytes.Repeat([]byte{0x42}, 16), bytes.Repeat([]byte{0x24}, 16)
	srvStore := oscore.NewMemoryStore()
	srvA, err := oscore.NewContext(oscore.Params{MasterSecret: secretA, SenderID: []byte("S"), RecipientID: []byte("dev-a")}, srvStore, oscore.WithRederivation())
	if err != nil {
		t.Fatal(err)
	}
	srvB, err := oscore.NewContext(oscore.Params{MasterSecret: secretB, SenderID: []byte("S"), RecipientID: []byte("dev-b")}, srvStore, oscore.WithRederivation())
	if err != nil {
		t.Fatal(err)
	}
	sec := server.NewStaticSecurity(0)
	for ep, x := range map[string]*oscore.Context{"dev-a": srvA, "dev-b": srvB} {
		if err := sec.Bind(ep, x.Identity()); err != nil {
			t.Fatalf("bind %s: %v", ep, err)
		}
	}
	inner := listen(t)
	oconn, err := oscore.New(inner, oscore.WithContext(srvA), oscore.WithContext(srvB), oscore.AllowPlain())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(new(registry.Memory), server.WithSecurity(sec))
	if err != nil {
		t.Fatal(err)
	}
	sep, err := bearer.NewEndpoint(oconn, bearer.WithHandler(srv.Handler("udp")))
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach("udp", sep)
	t.Cleanup(func() { srv.Close(); sep.Close() })
	sub := srv.Subscribe(64)
	devStore := oscore.NewMemoryStore() // the device's flash

	// boot starts a device process with the Object 21 of secret/senderID,
	// its context built with WithRederivation from devStore.
	boot := func(name string, secret, senderID []byte) (*client.Client, *bearer.Endpoint, *oscore.Conn) {
		c, err := client.New(name, client.WithLifetime(300))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddSecurity(client.Security{ServerURI: "coap://" + inner.LocalAddr().String(), Mode: 3, ShortID: 1}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddOSCORE(0, client.OSCORE{MasterSecret: secret, SenderID: senderID, RecipientID: []byte("S")}); err != nil {
			t.Fatal(err)
		}
		p, err := c.OSCOREParams(0)
		if err != nil {
			t.Fatal(err)
		}
		x, err := oscore.NewContext(p, devStore, oscore.WithRederivation())
		if err != nil {
			t.Fatal(err)
		}
		b, err := oscore.New(listen(t), oscore.WithDefault(x))
		if err != nil {
			t.Fatal(err)
		}
		ep, err := bearer.NewEndpoint(b, bearer.WithHandler(c))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); ep.Close() })
		return c, ep, b
	}
	registerAndRead := func(t *testing.T, c *client.Client, ep *bearer.Endpoint) {
		t.Helper()
		if err := c.Start(ctx, ep, inner.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		ev := waitEvent(t, sub, server.Registered)
		if ev.Registration.Identity != "oscore:6465762d61" {
			t.Fatalf("registration identity %q", ev.Registration.Identity)
		}
		v, err := srv.Read(ctx, "dev-a", path.Resource(3, 0, 0))
		if err != nil || v.Text() != "ACME" {
			t.Fatalf("Read over OSCORE: %+v %v", v, err)
		}
	}

	var firstID []byte
	t.Run("first contact runs B.2", func(t *testing.T) {
		c, ep, dconn := boot("dev-a", secretA, []byte("dev-a"))
		registerAndRead(t, c, ep)
		if dconn.Counter(oscore.EventB2Started) != 1 || oconn.Counter(oscore.EventB2Established) != 1 {
			t.Fatalf("device %v, server %v", dconn.Stats(), oconn.Stats())
		}
		firstID = srvA.CurrentIDContext()
		c.Close()
		ep.Close()
	})
	t.Run("device lost its whole OSCORE state: registers again after a new run", func(t *testing.T) {
		devStore.Forget()
		before := oconn.Stats()
		c, ep, dconn := boot("dev-a", secretA, []byte("dev-a"))
		registerAndRead(t, c, ep)
		after := oconn.Stats()
		if after["b2_response1"] != before["b2_response1"]+1 || after["b2_established"] != before["b2_established"]+1 || after["replay"] != 0 {
			t.Fatalf("server before %v after %v", before, after)
		}
		if dconn.Counter(oscore.EventB2Started) != 1 {
			t.Fatalf("device %v", dconn.Stats())
		}
		if bytes.Equal(srvA.CurrentIDContext(), firstID) {
			t.Fatal("same ID context after the device lost its state: its nonces would repeat")
		}
		c.Close()
		ep.Close()
	})
	t.Run("context A after a run cannot register as B", func(t *testing.T) {
		devStore.Forget()
		c, ep, dconn := boot("dev-b", secretA, []byte("dev-a"))
		err := c.Start(ctx, ep, inner.LocalAddr())
		if re, ok := err.(*client.RegistrationError); !ok || re.Code != codes.Forbidden {
			t.Fatalf("register as dev-b: %v", err)
		}
		if dconn.Counter(oscore.EventB2Established) != 1 {
			t.Fatalf("the run did not complete: %v", dconn.Stats())
		}
	})
	t.Run("A's keys under B's Recipient ID: the run never starts", func(t *testing.T) {
		devStore.Forget()
		before := oconn.Counter(oscore.EventDecryptFailed)
		c, ep, _ := boot("dev-b", secretA, []byte("dev-b"))
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := c.Start(rctx, ep, inner.LocalAddr()); err == nil {
			t.Fatal("registered with forged keys")
		}
		if oconn.Counter(oscore.EventDecryptFailed) <= before || srvB.CurrentIDContext() != nil {
			t.Fatalf("server %v, B's ID context %x", oconn.Stats(), srvB.CurrentIDContext())
		}
	})
	if _, ok := srv.Lookup("dev-b"); ok {
		t.Fatal("dev-b is registered")
	}
}
