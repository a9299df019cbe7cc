package client_test

import (
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

const (
	srvNum = "+491710000001"
	devNum = "+491710000002"
	other  = "+491710000099"
)

// smsEndpoints returns SMS Endpoints on an in-memory network: the
// device's (handler h, accepting the server and a stranger), the
// server's and a stranger's.
func smsEndpoints(t *testing.T, h bearer.Handler) (dev, srv, stranger *bearer.Endpoint) {
	t.Helper()
	return smsEndpointsH(t, h, nil)
}

// smsEndpointsH is smsEndpoints with a handler on the server's Endpoint.
func smsEndpointsH(t *testing.T, h, srvH bearer.Handler) (dev, srv, stranger *bearer.Endpoint) {
	t.Helper()
	n := smstest.NewNetwork(3, smstest.Faults{})
	worker := outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	mk := func(own string, peers ...string) *sms.Bearer {
		ps := map[string]sms.Peer{}
		for _, p := range peers {
			ps[p] = sms.Peer{Security: sms.ModeNoSec, SIM: own}
		}
		b, err := sms.New(n.AddSIM(own), sms.Config{StateDir: t.TempDir(), Worker: worker, Peers: ps})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	var err error
	if dev, err = bearer.NewEndpoint(mk(devNum, srvNum, other), bearer.WithHandler(h)); err != nil {
		t.Fatal(err)
	}
	var opts []bearer.EndpointOption
	if srvH != nil {
		opts = append(opts, bearer.WithHandler(srvH))
	}
	if srv, err = bearer.NewEndpoint(mk(srvNum, devNum), opts...); err != nil {
		t.Fatal(err)
	}
	if stranger, err = bearer.NewEndpoint(mk(other, devNum)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); srv.Close(); stranger.Close(); n.Close() })
	return dev, srv, stranger
}

func msisdn(t *testing.T, s string) sms.Addr {
	a, err := sms.ParseMSISDN(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A queue-mode client closes its UDP socket after the awake window, is
// not woken by a stranger's trigger, and on its server's trigger updates
// from a new UDP socket and answers.
func TestQueueModeSleepAndTrigger(t *testing.T) {
	srv, addr := startServer(t)
	c, err := client.New("sleeper", client.WithVersion("1.0"), client.WithBinding("UQS"), client.WithSMSNumber("491710000002"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(client.Server{ShortID: 1, Lifetime: 3600, Binding: "UQS"}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
		t.Fatal(err)
	}
	devSMS, srvSMS, strangerSMS := smsEndpoints(t, c)
	states := make(chan bool, 16)
	var udpEPs []*bearer.Endpoint
	cfg := client.QueueModeConfig{Awake: 300 * time.Millisecond, UDPServer: addr, SMS: devSMS, SMSServer: msisdn(t, srvNum),
		OnState: func(a bool) { states <- a },
		DialUDP: func() (*bearer.Endpoint, error) {
			ep, err := bearer.NewEndpoint(listen(t), bearer.WithHandler(c))
			udpEPs = append(udpEPs, ep)
			return ep, err
		}}
	if err := c.StartQueueMode(ctxT(t), client.QueueModeConfig{}); err == nil {
		t.Fatal("queue mode without SMS accepted")
	}
	if err := c.StartQueueMode(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	wait := func(want bool) {
		t.Helper()
		select {
		case a := <-states:
			if a != want {
				t.Fatalf("state %v, want %v", a, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no state %v", want)
		}
	}
	wait(true)
	wait(false)
	select {
	case <-udpEPs[0].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("UDP endpoint still open while asleep")
	}
	first, _ := srv.Lookup("sleeper")

	resp, err := strangerSMS.Post(ctxT(t), msisdn(t, devNum), "/1/0/8", 0, nil)
	if err != nil || resp.Code != codes.Unauthorized {
		t.Fatalf("stranger's trigger: %v %v", resp, err)
	}
	if c.Awake() {
		t.Fatal("woken by a stranger")
	}
	resp, err = srvSMS.Post(ctxT(t), msisdn(t, devNum), "/1/0/8", 0, nil)
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("server's trigger: %v %v", resp, err)
	}
	wait(true)
	deadline := time.Now().Add(20 * time.Second)
	for {
		reg, _ := srv.Lookup("sleeper")
		if reg.Addr != first.Addr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Update from a new UDP socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v, err := srv.Read(ctxT(t), "sleeper", path.Resource(3, 0, 0)); err != nil || v.Text() != "ACME" {
		t.Fatalf("read while awake: %v %v", v, err)
	}
	if wakes, refused := c.QueueModeStats(); wakes != 1 || refused != 1 {
		t.Fatalf("wakes %d refused %d", wakes, refused)
	}
	wait(false)
}

// An SMS-only client (no UDP) registers over SMS and answers over SMS.
func TestQueueModeSMSOnly(t *testing.T) {
	srv, err := server.New(new(registry.Memory))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := client.New("sms-only", client.WithBinding("S"), client.WithQueueMode(), client.WithSMSNumber("491710000002"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
		t.Fatal(err)
	}
	devSMS, srvSMS, _ := smsEndpointsH(t, c, srv.Handler("sms"))
	srv.Attach("sms", srvSMS)
	if err := c.StartQueueMode(ctxT(t), client.QueueModeConfig{Awake: time.Second, SMS: devSMS, SMSServer: msisdn(t, srvNum)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	reg, ok := srv.Lookup("sms-only")
	if !ok || reg.Transport() != "sms" || reg.PeerAddr().String() != devNum {
		t.Fatalf("registration %+v", reg)
	}
	if v, err := srv.Read(ctxT(t), "sms-only", path.Resource(3, 0, 0)); err != nil || v.Text() != "ACME" {
		t.Fatalf("read over SMS: %v %v", v, err)
	}
}

// A UDP+SMS client that cannot open UDP when woken (no IP) sends its
// Update over SMS; the server then reaches it over SMS.
func TestQueueModeWakeWithoutIP(t *testing.T) {
	srv, addr := startServer(t)
	c, err := client.New("no-ip", client.WithVersion("1.0"), client.WithBinding("UQS"), client.WithSMSNumber("491710000002"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(client.Server{ShortID: 1, Lifetime: 3600, Binding: "UQS"}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
		t.Fatal(err)
	}
	devSMS, srvSMS, _ := smsEndpointsH(t, c, srv.Handler("sms"))
	srv.Attach("sms", srvSMS)
	states := make(chan bool, 16)
	dials := 0
	cfg := client.QueueModeConfig{Awake: 300 * time.Millisecond, UDPServer: addr, SMS: devSMS, SMSServer: msisdn(t, srvNum),
		OnState: func(a bool) { states <- a },
		DialUDP: func() (*bearer.Endpoint, error) {
			dials++
			if dials > 1 {
				return nil, errors.New("no PDP context")
			}
			return bearer.NewEndpoint(listen(t), bearer.WithHandler(c))
		}}
	if err := c.StartQueueMode(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, want := range []bool{true, false} {
		select {
		case a := <-states:
			if a != want {
				t.Fatalf("state %v", a)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no state change")
		}
	}
	if resp, err := srvSMS.Post(ctxT(t), msisdn(t, devNum), "/1/0/8", 0, nil); err != nil || resp.Code != codes.Changed {
		t.Fatalf("trigger: %v %v", resp, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if reg, _ := srv.Lookup("no-ip"); reg.Transport() == "sms" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Update over SMS")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v, err := srv.Read(ctxT(t), "no-ip", path.Resource(3, 0, 0)); err != nil || v.Text() != "ACME" {
		t.Fatalf("read over SMS: %v %v", v, err)
	}
}
