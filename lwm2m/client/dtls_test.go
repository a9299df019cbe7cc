package client_test

import (
	"context"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestClientAgainstServerDTLS runs our client against our server over DTLS
// PSK on loopback UDP, with the identity bound to the endpoint name: the
// device authenticated as A registers as A and is managed; the same
// credentials cannot register as B (4.03).
func TestClientAgainstServerDTLS(t *testing.T) {
	ctx := ctxT(t)
	keys := map[string][]byte{"psk-a": []byte("0123456789abcdef")}
	sec := server.NewStaticSecurity(0)
	if err := sec.Bind("dev-a", bearer.Identity{Mode: "psk", PSKIdentity: []byte("psk-a")}); err != nil {
		t.Fatal(err)
	}
	inner := listen(t)
	dsrv, err := secure.NewServer(inner, &secure.Config{
		PSKLookup: func(id []byte) ([]byte, error) { return keys[string(id)], nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(new(registry.Memory), server.WithSecurity(sec), server.WithNoSec(false))
	if err != nil {
		t.Fatal(err)
	}
	sep, err := bearer.NewEndpoint(dsrv, bearer.WithHandler(srv.Handler("dtls")))
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach("dtls", sep)
	t.Cleanup(func() { srv.Close(); sep.Close() })
	sub := srv.Subscribe(64)

	dial := func(name string) (*client.Client, *bearer.Endpoint) {
		conn, err := secure.Dial(ctx, listen(t), inner.LocalAddr(), &secure.Config{
			PSKIdentity: []byte("psk-a"), PSKKey: keys["psk-a"],
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(name, client.WithLifetime(300))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddObject(3311, client.Handlers{}); err != nil {
			t.Fatal(err)
		}
		c.Set(path.Resource(3311, 0, 5851), content.NewInt(10))
		ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(c))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); ep.Close() })
		return c, ep
	}

	// A as B: refused.
	cb, epb := dial("dev-b")
	err = cb.Start(ctx, epb, inner.LocalAddr())
	if re, ok := err.(*client.RegistrationError); !ok || re.Code != codes.Forbidden {
		t.Fatalf("register as B: %v", err)
	}

	c, ep := dial("dev-a")
	if err := c.Start(ctx, ep, inner.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, server.Registered)
	if ev.Registration.Identity != "psk:psk-a" || ev.Registration.Transport() != "dtls" {
		t.Fatalf("registration %+v", ev.Registration)
	}
	v, err := srv.Read(ctx, "dev-a", path.Resource(3, 0, 0))
	if err != nil || v.Text() != "ACME" {
		t.Fatalf("Read over DTLS: %+v %v", v, err)
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
		t.Fatal("no notification over DTLS")
	}
	if err := c.Send(ctx, path.Resource(3311, 0, 5851)); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, server.Sent)
	if err := c.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, server.Deregistered)
}
