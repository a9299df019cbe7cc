package client_test

import (
	"net"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestBootstrapThenRegister: client-initiated bootstrap against our
// bootstrap server, then registration with the server it was given.
func TestBootstrapThenRegister(t *testing.T) {
	ctx := ctxT(t)
	dm, dmAddr := startServer(t)
	sub := dm.Subscribe(16)
	finished := make(chan error, 1)
	bsConn := listen(t)
	bsrv, err := server.NewBootstrapServer(func(ep string, _ bearer.Identity) (*server.BootstrapConfig, bool) {
		if ep != "fresh-light" {
			return nil, false
		}
		return &server.BootstrapConfig{Accounts: []server.Account{
			{SecurityInstance: 0, ServerURI: "coap://bootstrap", Bootstrap: true, Mode: 3},
			{SecurityInstance: 1, ServerURI: "coap://" + dmAddr.String(), Mode: 3, ShortID: 101,
				ServerInstance: 0, Lifetime: 120, Binding: "U"},
		}}, true
	}, server.WithBootstrapDone(func(ep string, err error) { finished <- err }))
	if err != nil {
		t.Fatal(err)
	}
	bep, err := bearer.NewEndpoint(bsConn, bearer.WithHandler(bsrv.Handler("udp")))
	if err != nil {
		t.Fatal(err)
	}
	bsrv.Attach("udp", bep)
	t.Cleanup(func() { bsrv.Close(); bep.Close() })

	// An unknown endpoint is refused.
	stranger, sep := newClient(t, "stranger")
	if _, err := stranger.Bootstrap(ctx, sep, bsConn.LocalAddr()); err == nil {
		t.Fatal("unknown endpoint bootstrapped")
	}

	c, cep := newClient(t, "fresh-light")
	if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
		t.Fatal(err)
	}
	accts, err := c.Bootstrap(ctx, cep, bsConn.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if len(accts) != 2 || !accts[0].Bootstrap || accts[1].ShortID != 101 || accts[1].Lifetime != 120 || accts[1].Binding != "U" {
		t.Fatalf("accounts %+v", accts)
	}
	host := accts[1].ServerURI[len("coap://"):]
	addr, err := net.ResolveUDPAddr("udp", host)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, cep, addr); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, server.Registered)
	if ev.Registration.Endpoint != "fresh-light" || ev.Registration.Lifetime != 120 || !ev.Registration.HasObject(1) {
		t.Fatalf("registration %+v", ev.Registration)
	}
	// The DM server cannot read the Security object written by bootstrap.
	if _, err := dm.Read(ctx, "fresh-light", pathSecurity); server.Code(err) != 0x81 {
		t.Fatalf("read /0/1: %v", err)
	}
}

var pathSecurity = mustPath("/0/1")
